/* fuzz_mime.c: libFuzzer target for mime_extract() (mime.c) and the whole
 * decode path of ingest_decode() (sniff -> MIME -> gunzip), with every decoded
 * payload validated by report_parse() and, for a message, checked by
 * mailcheck_report_part() as validate --strict does. Limits are small so the
 * part, depth and report-count caps are reached by short inputs. Nothing is
 * stored. */
#include <stdint.h>
#include <string.h>
#include <jansson.h>
#include "tlsrptd/ingest.h"
#include "tlsrptd/mailcheck.h"
#include "tlsrptd/mime.h"
#include "tlsrptd/report.h"

#define FUZZ_MIME_MAX ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink; /* keeps the reads below from being optimised away */

static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t touch_message(const struct mime_message *m)
{
    size_t n = touch(m->report_domain) + touch(m->report_submitter) + touch(m->subject) +
               touch(m->message_id) + touch(m->media_type);
    for (size_t i = 0; i < m->nparams; i++)
        n += touch(m->params[i].name) + touch(m->params[i].value);
    for (size_t i = 0; i < m->nparts; i++) {
        const struct mime_report_part *p = &m->parts[i];
        n += touch(p->media_type) + touch(p->filename) + p->body.len + p->is_gzip;
        if (p->body.len > 0)
            n += p->body.data[0] + p->body.data[p->body.len - 1] + p->body.data[p->body.len];
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct mime_limits mlim = {FUZZ_MIME_MAX, 64, 8, 8};
    const struct ingest_limits ilim = {.max_input = FUZZ_MIME_MAX,
                                       .max_inflated = FUZZ_MIME_MAX,
                                       .max_depth = REPORT_DEFAULT_MAX_DEPTH,
                                       .mime = mlim,
                                       .json = JSONSCAN_DEFAULT_LIMITS};
    char err[TR_ERRLEN] = "";

    if (size > FUZZ_MIME_MAX)
        return 0;
    (void)mime_looks_like_message(data, size);

    struct mime_message msg;
    (void)mime_extract(data, size, &mlim, &msg, err);
    sink = touch_message(&msg);
    mime_message_free(&msg);

    struct ingest_decoded dec;
    tr_err e = ingest_decode(data, size, &ilim, &dec, err);
    sink = touch_message(&dec.msg);
    if (e == TR_OK) {
        for (size_t i = 0; i < dec.npayloads; i++) {
            const struct ingest_payload *p = &dec.payloads[i];
            if (p->decode_err != TR_OK)
                continue;
            struct report_options opt = {0, dec.is_message ? dec.msg.report_domain : NULL,
                                         &ilim.json};
            struct report r;
            struct diag_list diags = {0};
            tr_err pe = report_parse(p->json, p->jsonlen, &opt, &r, &diags);
            if (dec.is_message)
                mailcheck_report_part(&dec.msg, i, pe == TR_OK ? &r : NULL, &diags);
            if (pe == TR_OK)
                report_free(&r);
            json_t *j = diag_list_json(&diags);
            json_decref(j);
            diag_list_free(&diags);
        }
    }
    ingest_decoded_free(&dec);
    return 0;
}
