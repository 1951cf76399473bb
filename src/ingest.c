/* ingest.c: bytes in -> extract (MIME) -> decode (gzip) -> validate -> store.
 *
 * The one path every source takes (files, stdin, HTTP, Maildir). An input is
 * sniffed by content: JSON ('{'), gzip or zlib, or a mail message (a header
 * field first). A message may carry several reports; each is stored or found
 * to be a duplicate on its own, and an input that holds no acceptable report
 * at all is quarantined whole with the reason. Nothing here commits: callers
 * group inputs into batches and acknowledge them only after ingest_commit(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/gz.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/log.h"

struct ingest {
    struct store *st;
    struct ingest_limits lim;
    bool failed; /* a store error happened in this batch */
    char failure[TR_ERRLEN];
};

/* ---- decoding ------------------------------------------------------------------------------- */

static size_t skip_space(const unsigned char *s, size_t n)
{
    size_t i = 0;
    if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) i = 3;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

static void decode_payload(struct ingest_payload *p, const struct ingest_limits *lim)
{
    buf_init(&p->inflated, lim->max_inflated);
    if (gz_is_compressed(p->raw, p->rawlen)) {
        p->decode_err = gz_inflate(p->raw, p->rawlen, &p->inflated, p->decode_reason);
        p->json = p->inflated.data;
        p->jsonlen = p->inflated.len;
    } else {
        p->json = p->raw;
        p->jsonlen = p->rawlen;
    }
}

static tr_err add_payload(struct ingest_decoded *dec, const void *raw, size_t rawlen,
                          const struct ingest_limits *lim, char *err)
{
    struct ingest_payload *np = realloc(dec->payloads, (dec->npayloads + 1) * sizeof *np);
    if (np == NULL) return tr_fail(err, TR_ENOMEM, "out of memory");
    dec->payloads = np;
    struct ingest_payload *p = &np[dec->npayloads++];
    memset(p, 0, sizeof *p);
    p->raw = raw;
    p->rawlen = rawlen;
    decode_payload(p, lim);
    return TR_OK;
}

tr_err ingest_decode(const void *data, size_t len, const struct ingest_limits *lim,
                     struct ingest_decoded *dec, char *err)
{
    static const struct ingest_limits defaults = INGEST_DEFAULT_LIMITS;
    const unsigned char *s = data;
    memset(dec, 0, sizeof *dec);
    if (lim == NULL) lim = &defaults;
    if (len > lim->max_input)
        return tr_fail(err, TR_ETOOBIG, "input larger than %zu bytes", lim->max_input);
    if (len == 0) return tr_fail(err, TR_EPARSE, "empty input");

    size_t i = skip_space(s, len);
    bool gzip = len >= 2 && s[0] == 0x1f && s[1] == 0x8b;
    if ((i < len && (s[i] == '{' || s[i] == '[')) || gzip)
        return add_payload(dec, data, len, lim, err);
    if (mime_looks_like_message(data, len)) {
        dec->is_message = true;
        tr_err e = mime_extract(data, len, &lim->mime, &dec->msg, err);
        if (e != TR_OK) return e;
        for (size_t k = 0; k < dec->msg.nparts; k++) {
            const struct buf *b = &dec->msg.parts[k].body;
            if ((e = add_payload(dec, b->data, b->len, lim, err)) != TR_OK) return e;
        }
        return TR_OK;
    }
    if (gz_is_compressed(data, len)) return add_payload(dec, data, len, lim, err); /* zlib */
    if (i == len) return tr_fail(err, TR_EPARSE, "input holds only white space");
    return tr_fail(
        err, TR_EPARSE,
        "not a TLS-RPT report: neither JSON, gzip nor a mail message (first byte 0x%02x)", s[i]);
}

void ingest_decoded_free(struct ingest_decoded *dec)
{
    for (size_t i = 0; i < dec->npayloads; i++)
        buf_free(&dec->payloads[i].inflated);
    free(dec->payloads);
    mime_message_free(&dec->msg);
    memset(dec, 0, sizeof *dec);
}

/* ---- batches -------------------------------------------------------------------------------- */

struct ingest *ingest_new(struct store *st, const struct ingest_limits *lim)
{
    static const struct ingest_limits defaults = INGEST_DEFAULT_LIMITS;
    struct ingest *ig = calloc(1, sizeof *ig);
    if (ig == NULL) return NULL;
    ig->st = st;
    ig->lim = lim ? *lim : defaults;
    return ig;
}

void ingest_free(struct ingest *ig)
{
    if (ig && store_in_transaction(ig->st)) store_rollback(ig->st);
    free(ig);
}

tr_err ingest_begin(struct ingest *ig, char *err)
{
    ig->failed = false;
    ig->failure[0] = 0;
    return store_begin(ig->st, err);
}

tr_err ingest_commit(struct ingest *ig, char *err)
{
    if (ig->failed) {
        store_rollback(ig->st);
        return tr_fail(err, TR_EDB, "%s", ig->failure);
    }
    return store_commit(ig->st, err);
}

void ingest_rollback(struct ingest *ig)
{
    store_rollback(ig->st);
}

bool ingest_failed(const struct ingest *ig)
{
    return ig->failed;
}

static void poison(struct ingest *ig, struct ingest_result *res, const char *why)
{
    ig->failed = true;
    snprintf(ig->failure, sizeof ig->failure, "%s", why);
    ingest_result_tempfail(res, why);
}

static void quarantine(struct ingest *ig, const void *data, size_t len,
                       const struct store_source *src, const char *reason,
                       struct ingest_result *res)
{
    char err[TR_ERRLEN];
    if (store_add_quarantine(ig->st, src, reason, data, len, &res->quarantine_id, err) != TR_OK)
        poison(ig, res, err);
}

void ingest_reject(struct ingest *ig, const void *data, size_t len, const struct store_source *src,
                   const char *reason, struct ingest_result *res)
{
    memset(res, 0, sizeof *res);
    res->outcome = INGEST_REJECTED;
    snprintf(res->reason, sizeof res->reason, "%s", reason);
    if (ig->failed)
        ingest_result_tempfail(res, ig->failure);
    else
        quarantine(ig, data, len, src, reason, res);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Validate and store one payload into rep. Returns false on a storage failure. */
static bool ingest_payload(struct ingest *ig, const struct ingest_payload *p,
                           const struct ingest_decoded *dec, const struct store_source *src,
                           struct ingest_report *rep, struct ingest_result *res)
{
    rep->outcome = INGEST_REJECTED;
    if (p->decode_err != TR_OK) {
        snprintf(rep->reason, sizeof rep->reason, "%s", p->decode_reason);
        return true;
    }
    struct report_options ropt = {ig->lim.max_depth,
                                  dec->is_message ? dec->msg.report_domain : NULL};
    struct report r;
    struct diag_list diags = {0};
    if (report_parse(p->json, p->jsonlen, &ropt, &r, &diags) != TR_OK) {
        diag_first_error(&diags, rep->reason, sizeof rep->reason);
        diag_list_free(&diags);
        return true;
    }
    rep->organization_name = dup_or_null(r.organization_name);
    rep->report_id = dup_or_null(r.report_id);
    rep->first_domain = dup_or_null(r.policies[0].policy_domain);
    rep->npolicies = r.npolicies;
    rep->warnings = diags.warnings;
    rep->notes = diags.notes;
    for (size_t i = 0; i < r.npolicies; i++) {
        rep->successful_sessions += r.policies[i].successful_sessions;
        rep->failed_sessions += r.policies[i].failed_sessions;
    }
    char err[TR_ERRLEN];
    bool dup = false;
    tr_err e = store_add_report(ig->st, &r, &diags, src, p->raw, p->rawlen, p->jsonlen, &rep->id,
                                &dup, err);
    report_free(&r);
    diag_list_free(&diags);
    if (e != TR_OK) {
        poison(ig, res, err);
        return false;
    }
    rep->outcome = dup ? INGEST_DUPLICATE : INGEST_STORED;
    return true;
}

void ingest_input(struct ingest *ig, const void *data, size_t len, const struct store_source *src,
                  struct ingest_result *res)
{
    memset(res, 0, sizeof *res);
    if (ig->failed) {
        ingest_result_tempfail(res, ig->failure);
        return;
    }
    struct ingest_decoded dec;
    char err[TR_ERRLEN] = "";
    tr_err e = ingest_decode(data, len, &ig->lim, &dec, err);

    struct store_source s = *src;
    if (dec.is_message) {
        if (!s.message_id) s.message_id = dec.msg.message_id;
        if (!s.report_domain) s.report_domain = dec.msg.report_domain;
        if (!s.report_submitter) s.report_submitter = dec.msg.report_submitter;
        if (!s.subject) s.subject = dec.msg.subject;
    }
    if (e != TR_OK) {
        res->outcome = e == TR_ENOMEM ? INGEST_TEMPFAIL : INGEST_REJECTED;
        snprintf(res->reason, sizeof res->reason, "%s", err);
        if (res->outcome == INGEST_REJECTED) quarantine(ig, data, len, &s, err, res);
        ingest_decoded_free(&dec);
        return;
    }

    res->reports = calloc(dec.npayloads, sizeof *res->reports);
    if (res->reports == NULL) {
        ingest_result_tempfail(res, "out of memory");
        ingest_decoded_free(&dec);
        return;
    }
    size_t stored = 0, dups = 0, rejected = 0;
    const char *first_reason = NULL;
    for (size_t i = 0; i < dec.npayloads; i++) {
        struct ingest_report *rep = &res->reports[res->nreports++];
        if (!ingest_payload(ig, &dec.payloads[i], &dec, &s, rep, res)) {
            ingest_decoded_free(&dec);
            return; /* the batch is poisoned; res says tempfail */
        }
        if (rep->outcome == INGEST_STORED)
            stored++;
        else if (rep->outcome == INGEST_DUPLICATE)
            dups++;
        else {
            rejected++;
            if (first_reason == NULL) first_reason = rep->reason;
        }
    }
    if (rejected) {
        if (dec.npayloads > 1) {
            size_t k = 0;
            while (res->reports[k].outcome != INGEST_REJECTED)
                k++;
            snprintf(res->reason, sizeof res->reason, "report part %zu of %zu: %.200s", k + 1,
                     dec.npayloads, first_reason);
        } else {
            snprintf(res->reason, sizeof res->reason, "%s", first_reason);
        }
        quarantine(ig, data, len, &s, res->reason, res);
    }
    if (!ig->failed)
        res->outcome = stored ? INGEST_STORED : dups ? INGEST_DUPLICATE : INGEST_REJECTED;
    ingest_decoded_free(&dec);
}

void ingest_result_tempfail(struct ingest_result *res, const char *why)
{
    res->outcome = INGEST_TEMPFAIL;
    snprintf(res->reason, sizeof res->reason, "%s", why);
}

void ingest_result_free(struct ingest_result *res)
{
    for (size_t i = 0; i < res->nreports; i++) {
        free(res->reports[i].organization_name);
        free(res->reports[i].report_id);
        free(res->reports[i].first_domain);
    }
    free(res->reports);
    memset(res, 0, sizeof *res);
}

const char *ingest_outcome_name(enum ingest_outcome o)
{
    switch (o) {
    case INGEST_STORED:
        return "stored";
    case INGEST_DUPLICATE:
        return "duplicate";
    case INGEST_REJECTED:
        return "rejected";
    case INGEST_UNREADABLE:
        return "unreadable";
    default:
        return "storage unavailable";
    }
}

int ingest_exit_code(enum ingest_outcome o)
{
    switch (o) {
    case INGEST_STORED:
    case INGEST_DUPLICATE:
        return 0;
    case INGEST_REJECTED:
        return 65; /* EX_DATAERR */
    case INGEST_UNREADABLE:
        return 74; /* EX_IOERR */
    default:
        return 75; /* EX_TEMPFAIL */
    }
}
