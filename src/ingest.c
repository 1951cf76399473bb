/* ingest.c: bytes in -> extract (MIME) -> decode (gzip) -> validate -> store.
 *
 * The one path every source takes (files, stdin, HTTP, Maildir). An input is
 * sniffed by content: JSON ('{'), gzip or zlib, or a mail message (a header
 * field first). A message may carry several reports; each is stored or found
 * to be a duplicate on its own, and an input that holds no acceptable report
 * at all is quarantined whole with the reason. Nothing here commits: callers
 * group inputs into batches and acknowledge them only after ingest_commit(). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/config.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/log.h"
#include "tlsrptd/trust.h"

/* A stored input whose reports' fate (stored or duplicate) the store tells
 * at commit: its result is completed then. */
struct awaiting {
    int64_t requeue_of; /* the job's quarantine entry, > 0 when it re-ingests one (the
                         * job itself may be freed before the commit) */
    struct ingest_result *res;
};

struct ingest {
    struct store *st;
    struct ingest_limits lim;
    struct awaiting *awaiting;
    size_t nawaiting, acap;
    bool failed;         /* a store error happened in this batch */
    tr_err failure_code; /* TR_EDB, or TR_ERETRY: the batch may simply run again */
    char failure[TR_ERRLEN];
};

/* ---- decoding ------------------------------------------------------------------------------- */

static size_t skip_space(const unsigned char *s, size_t n)
{
    size_t i = 0;
    if (n >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf)
        i = 3;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* Inflating, the JSON text is scanned as it comes (jsonscan_feed), so that a
 * report over a bound (600,000 failure-details, a 30 MiB string) is refused
 * after the piece that crosses it, not after all of it is inflated. */
struct inflate_scan {
    struct jsonscan *sc;
    int json; /* -1 not known yet, 0 not JSON (gzip in gzip, say), 1 JSON */
};

static tr_err scan_piece(void *cls, const struct buf *out, char *err)
{
    struct inflate_scan *f = cls;
    if (f->json < 0) {
        size_t i = skip_space(out->data, out->len);
        if (i == out->len)
            return TR_OK; /* white space so far */
        f->json = out->data[i] == '{' || out->data[i] == '[';
    }
    if (!f->json)
        return TR_OK;
    char why[TR_ERRLEN];
    tr_err e = jsonscan_feed(f->sc, out->data, out->len, false, why);
    if (e == TR_ENOMEM)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    if (e != TR_OK) {
        const char *path = jsonscan_stats(f->sc)->path;
        return tr_fail(err, TR_EINVAL, "%s%s%s", path, path[0] ? ": " : "", why);
    }
    return TR_OK;
}

/* ingest_inflate, also telling whether the whole text was scanned as JSON
 * (*scanned): then report_parse, given the same limits, need not scan it again. */
static tr_err inflate_scanned(const void *in, size_t len, struct buf *out,
                              const struct ingest_limits *lim, bool *scanned, char *err)
{
    struct jsonscan_limits jl = lim->json;
    jl.max_depth = lim->max_depth;
    struct inflate_scan f = {jsonscan_new(&jl), -1};
    *scanned = false;
    if (f.sc == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    tr_err e = gz_inflate_each(in, len, out, scan_piece, &f, err);
    if (e == TR_OK && f.json == 1) {
        /* the end of the text: a number still open at it is counted now */
        char why[TR_ERRLEN];
        e = jsonscan_feed(f.sc, out->data, out->len, true, why);
        if (e == TR_ENOMEM) {
            e = tr_fail(err, TR_ENOMEM, "out of memory");
        } else if (e != TR_OK) {
            const char *path = jsonscan_stats(f.sc)->path;
            e = tr_fail(err, TR_EINVAL, "%s%s%s", path, path[0] ? ": " : "", why);
        }
        *scanned = e == TR_OK;
    }
    jsonscan_free(f.sc);
    return e;
}

tr_err ingest_inflate(const void *in, size_t len, struct buf *out, const struct ingest_limits *lim,
                      char *err)
{
    bool scanned;
    return inflate_scanned(in, len, out, lim, &scanned, err);
}

/* used: bytes the input's earlier payloads inflated to. max_inflated bounds
 * them all together, so a message of many report parts costs no more than one. */
static void decode_payload(struct ingest_payload *p, const struct ingest_limits *lim, size_t used)
{
    buf_init(&p->inflated, used < lim->max_inflated ? lim->max_inflated - used : 0);
    if (gz_is_compressed(p->raw, p->rawlen)) {
        p->decode_err =
            inflate_scanned(p->raw, p->rawlen, &p->inflated, lim, &p->scanned, p->decode_reason);
        if (p->decode_err == TR_ETOOBIG && used > 0)
            snprintf(p->decode_reason, sizeof p->decode_reason,
                     "gzip: the report parts of one input inflate to more than %zu bytes "
                     "together",
                     lim->max_inflated);
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
    if (np == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    dec->payloads = np;
    struct ingest_payload *p = &np[dec->npayloads++];
    memset(p, 0, sizeof *p);
    p->raw = raw;
    p->rawlen = rawlen;
    size_t used = 0;
    for (size_t i = 0; i + 1 < dec->npayloads; i++)
        used += np[i].inflated.len;
    decode_payload(p, lim, used);
    return TR_OK;
}

tr_err ingest_decode(const void *data, size_t len, const struct ingest_limits *lim,
                     struct ingest_decoded *dec, char *err)
{
    static const struct ingest_limits defaults = INGEST_DEFAULT_LIMITS;
    const unsigned char *s = data;
    memset(dec, 0, sizeof *dec);
    if (lim == NULL)
        lim = &defaults;
    if (len > lim->max_input)
        return tr_fail(err, TR_ETOOBIG, "input larger than %zu bytes", lim->max_input);
    if (len == 0)
        return tr_fail(err, TR_EPARSE, "empty input");

    size_t i = skip_space(s, len);
    bool gzip = len >= 2 && s[0] == 0x1f && s[1] == 0x8b;
    if ((i < len && (s[i] == '{' || s[i] == '[')) || gzip)
        return add_payload(dec, data, len, lim, err);
    if (mime_looks_like_message(data, len)) {
        dec->is_message = true;
        tr_err e = mime_extract(data, len, &lim->mime, &dec->msg, err);
        if (e != TR_OK)
            return e;
        for (size_t k = 0; k < dec->msg.nparts; k++) {
            const struct buf *b = &dec->msg.parts[k].body;
            if ((e = add_payload(dec, b->data, b->len, lim, err)) != TR_OK)
                return e;
        }
        return TR_OK;
    }
    if (gz_is_compressed(data, len))
        return add_payload(dec, data, len, lim, err); /* zlib */
    if (i == len)
        return tr_fail(err, TR_EPARSE, "input holds only white space");
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

void ingest_limits_from_config(const struct config *cfg, bool http, struct ingest_limits *lim)
{
    *lim = (struct ingest_limits)INGEST_DEFAULT_LIMITS;
    lim->max_input = cfg->max_message;
    if (http)
        lim->max_input = cfg->max_inflated > cfg->max_body ? cfg->max_inflated : cfg->max_body;
    lim->max_inflated = cfg->max_inflated;
    lim->max_depth = cfg->max_json_depth;
    lim->mime.max_message = lim->max_input;
    lim->mime.max_parts = cfg->max_parts;
    lim->json.max_depth = cfg->max_json_depth;
    lim->json.max_string = cfg->max_json_string;
    lim->json.max_values = cfg->max_json_values;
    lim->json.max_policies = cfg->max_policies;
    lim->json.max_failure_details = cfg->max_failure_details;
    lim->json.max_policy_strings = cfg->max_policy_strings;
    lim->json.max_policy_domains = cfg->max_policy_domains;
    lim->dkim.policy = DKIM_POLICY_RECORD;
    if (cfg->dkim)
        (void)dkim_policy_parse(cfg->dkim, &lim->dkim.policy); /* checked by config_finish */
    lim->dkim.timeout = (unsigned)cfg->dkim_timeout;
}

/* ---- prepared jobs -------------------------------------------------------------------------- */

/* One report payload of a job, parsed and validated. */
struct job_report {
    tr_err rc; /* TR_OK: r and diags hold an acceptable report */
    struct report r;
    struct diag_list diags;
    struct store_blob blob; /* r serialized for storage (when rc is TR_OK) */
    char reason[TR_ERRLEN]; /* why rejected */
};

struct ingest_job {
    unsigned char *data; /* the input as received; owned */
    size_t len;
    size_t size; /* bytes of the input (differs from len when it was not read) */
    /* the source, with owned copies of its strings */
    struct store_source src;
    char *src_strings[7];
    tr_err rc; /* input-level: TR_OK, or why no report could be found */
    char reason[TR_ERRLEN];
    struct ingest_decoded dec;
    struct job_report *reports; /* dec.npayloads of them */
    int64_t requeue_of;         /* > 0: re-ingesting this quarantine entry */
    struct dkim_verdict dkim;   /* a mail's; src.dkim_* point here */
    bool temporary;             /* retry later: a DKIM key lookup failed under dkim = require */
};

static bool copy_source(struct ingest_job *job, const struct store_source *src)
{
    const char *const in[7] = {src->kind,       src->name,          src->client,
                               src->message_id, src->report_domain, src->report_submitter,
                               src->subject};
    const char **out[7] = {&job->src.kind,          &job->src.name,
                           &job->src.client,        &job->src.message_id,
                           &job->src.report_domain, &job->src.report_submitter,
                           &job->src.subject};
    for (int i = 0; i < 7; i++) {
        if (in[i] && (job->src_strings[i] = strdup(in[i])) == NULL)
            return false;
        *out[i] = job->src_strings[i];
    }
    job->src.received_at = src->received_at;
    return true;
}

void ingest_job_free(struct ingest_job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; job->reports && i < job->dec.npayloads; i++) {
        if (job->reports[i].rc == TR_OK) {
            store_blob_free(&job->reports[i].blob);
            report_free(&job->reports[i].r);
        }
        diag_list_free(&job->reports[i].diags);
    }
    free(job->reports);
    ingest_decoded_free(&job->dec);
    for (int i = 0; i < 7; i++)
        free(job->src_strings[i]);
    free(job->data);
    free(job);
}

enum ingest_outcome ingest_job_verdict(const struct ingest_job *job, char *reason, size_t n)
{
    char none[1];
    if (reason == NULL || n == 0)
        reason = none, n = sizeof none;
    reason[0] = 0;
    if (job->rc != TR_OK) {
        snprintf(reason, n, "%s", job->reason);
        return job->rc == TR_ENOMEM ? INGEST_TEMPFAIL
               : job->rc == TR_EIO  ? INGEST_UNREADABLE
                                    : INGEST_REJECTED;
    }
    size_t k = job->dec.npayloads, first_rejected = k;
    for (size_t i = 0; i < k; i++) {
        if (job->reports[i].rc == TR_OK)
            return INGEST_STORED;
        if (first_rejected == k)
            first_rejected = i;
    }
    if (k > 1)
        snprintf(reason, n, "report part %zu of %zu: %.180s", first_rejected + 1, k,
                 job->reports[first_rejected].reason);
    else if (k == 1)
        snprintf(reason, n, "%s", job->reports[0].reason);
    return INGEST_REJECTED;
}

bool ingest_job_inflate_capped(const struct ingest_job *job)
{
    for (size_t i = 0; job->rc == TR_OK && i < job->dec.npayloads; i++)
        if (job->dec.payloads[i].decode_err == TR_ETOOBIG)
            return true;
    return false;
}

size_t ingest_job_bytes(const struct ingest_job *job, size_t *json)
{
    size_t bytes = sizeof *job + job->len, parsed = 0;
    for (size_t i = 0; i < job->dec.msg.nparts; i++)
        bytes += job->dec.msg.parts[i].body.cap;
    for (size_t i = 0; i < job->dec.npayloads; i++) {
        bytes += job->dec.payloads[i].inflated.cap;
        if (job->reports && job->reports[i].rc == TR_OK) {
            const struct store_blob *b = &job->reports[i].blob;
            bytes += b->owned.cap + (b->diagnostics ? strlen(b->diagnostics) : 0);
            parsed += job->dec.payloads[i].jsonlen;
        }
    }
    if (json)
        *json = parsed;
    return bytes;
}

struct ingest_job *ingest_prepare_failed(const struct store_source *src, tr_err e,
                                         const char *reason, size_t size)
{
    struct ingest_job *job = calloc(1, sizeof *job);
    if (job == NULL || !copy_source(job, src)) {
        ingest_job_free(job);
        return NULL;
    }
    job->rc = e == TR_OK ? TR_EIO : e;
    job->size = size;
    snprintf(job->reason, sizeof job->reason, "%s", reason);
    return job;
}

/* A job owning data (taken, or copied) and a copy of src; NULL when out of
 * memory (taken data is then freed too). */
static struct ingest_job *new_job(void *data, size_t len, bool take, const struct store_source *src)
{
    struct ingest_job *job = calloc(1, sizeof *job);
    if (job != NULL) {
        if (take)
            job->data = data;
        else if ((job->data = malloc(len ? len : 1)) != NULL)
            memcpy(job->data, data, len);
        take = job->data == NULL; /* still ours to free when the job could not hold it */
    }
    if (job == NULL || job->data == NULL || !copy_source(job, src)) {
        if (take)
            free(data);
        ingest_job_free(job);
        return NULL;
    }
    job->len = job->size = len;
    return job;
}

struct ingest_job *ingest_prepare_rejected(void *data, size_t len, bool take,
                                           const struct store_source *src, const char *reason)
{
    struct ingest_job *job = new_job(data, len, take, src);
    if (job == NULL)
        return NULL;
    job->rc = TR_EPARSE;
    snprintf(job->reason, sizeof job->reason, "%s", reason);
    return job;
}

/* ---- own domains ---------------------------------------------------------------------------- */

/* Is name one of the entries of the ", "-separated list? */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len;
        p += strspn(p, ", ");
    }
    return false;
}

/* Drop the policies of r whose domain is not one of own (docs/trust.md): each
 * with a warning in diags, so it is neither stored nor counted. False when no
 * policy is left: reason then names the foreign domains. */
static bool keep_own_policies(struct report *r, struct diag_list *diags,
                              const struct domain_set *own, char *reason)
{
    size_t kept = 0;
    char names[TR_ERRLEN - 40] = ""; /* the reason's end */
    size_t used = 0;
    for (size_t i = 0; i < r->npolicies; i++) {
        struct report_policy *p = &r->policies[i];
        const char *d = p->policy_domain ? p->policy_domain : "";
        if (d[0] && domain_set_match(own, d)) {
            r->policies[kept++] = *p;
            continue;
        }
        const char *shown = d[0] ? d : "(no policy-domain)";
        char path[64];
        snprintf(path, sizeof path, "policies[%zu].policy.policy-domain", i);
        diag_add(diags, DIAG_WARNING, path,
                 "%s is not a domain of this collector: policy skipped, not counted", shown);
        if (!listed(names, shown) && used + 8 < sizeof names) { /* the first names that fit */
            int w =
                snprintf(names + used, sizeof names - used, "%s%.100s", used ? ", " : "", shown);
            used = w > 0 && used + (size_t)w < sizeof names ? used + (size_t)w : sizeof names - 1;
        }
        free(p->policy_domain);
        free(p->failures);
        json_decref(p->policy_strings);
        json_decref(p->mx_hosts);
    }
    r->npolicies = kept;
    if (kept == 0)
        snprintf(reason, TR_ERRLEN, "not a domain of this collector: %s", names);
    return kept > 0;
}

/* A mail's DKIM verdict joins its source. Under require, a mail without a
 * passing signature can only be quarantined, and one whose key could not be
 * looked up is tried again later. */
static void verify_dkim(struct ingest_job *job, const struct dkim_config *cfg)
{
    struct dkim_verdict *v = &job->dkim;
    dkim_verify_message(job->data, job->len, job->src.report_submitter, cfg, v);
    job->src.dkim_result = dkim_result_name(v->result);
    job->src.dkim_domain = v->domain[0] ? v->domain : NULL;
    job->src.dkim_reason = v->reason[0] ? v->reason : NULL;
    job->src.dkim_aligned = v->aligned;
    if (cfg->policy != DKIM_POLICY_REQUIRE || v->result == DKIM_RESULT_PASS)
        return;
    if (v->result == DKIM_RESULT_TEMPERROR) {
        job->temporary = true;
        snprintf(job->reason, sizeof job->reason, "DKIM: %.230s", v->reason);
        return;
    }
    job->rc = TR_EINVAL;
    snprintf(job->reason, sizeof job->reason, "DKIM: no valid signature (%s: %.200s)",
             dkim_result_name(v->result),
             v->result == DKIM_RESULT_NONE ? "the message is not signed" : v->reason);
}

struct ingest_job *ingest_prepare(void *data, size_t len, bool take, const struct store_source *src,
                                  const struct ingest_limits *lim)
{
    static const struct ingest_limits defaults = INGEST_DEFAULT_LIMITS;
    if (lim == NULL)
        lim = &defaults;
    struct ingest_job *job = new_job(data, len, take, src);
    if (job == NULL)
        return NULL;

    job->rc = ingest_decode(job->data, len, lim, &job->dec, job->reason);
    if (job->dec.is_message) {
        /* the message's headers fill what the caller did not say */
        if (!job->src.message_id)
            job->src.message_id = job->dec.msg.message_id;
        if (!job->src.report_domain)
            job->src.report_domain = job->dec.msg.report_domain;
        if (!job->src.report_submitter)
            job->src.report_submitter = job->dec.msg.report_submitter;
        if (!job->src.subject)
            job->src.subject = job->dec.msg.subject;
    }
    if (job->rc != TR_OK)
        return job;

    job->reports = calloc(job->dec.npayloads, sizeof *job->reports);
    if (job->reports == NULL)
        goto oom;
    struct trust *trust = trust_get(); /* the own domains, as they are now */
    const struct domain_set *own = trust_own_domains(trust);
    /* the domain of policies that name none: what the caller said (the
     * request path of a POST to PATH/<domain>), else the message's
     * TLS-Report-Domain header (copied into src above) */
    struct report_options ropt = {lim->max_depth, job->src.report_domain, &lim->json};
    for (size_t i = 0; i < job->dec.npayloads; i++) {
        const struct ingest_payload *p = &job->dec.payloads[i];
        struct job_report *jr = &job->reports[i];
        if (p->decode_err != TR_OK) {
            jr->rc = p->decode_err;
            snprintf(jr->reason, sizeof jr->reason, "%s", p->decode_reason);
            continue;
        }
        jr->rc = (p->scanned ? report_parse_scanned : report_parse)(p->json, p->jsonlen, &ropt,
                                                                    &jr->r, &jr->diags);
        if (jr->rc != TR_OK) {
            diag_first_error(&jr->diags, jr->reason, sizeof jr->reason);
            continue;
        }
        if (own && !keep_own_policies(&jr->r, &jr->diags, own, jr->reason)) {
            report_free(&jr->r);
            jr->rc = TR_EINVAL;
            continue;
        }
        /* the writer only writes rows: serialize here, on the preparing thread */
        if (store_serialize(&jr->r, &jr->diags, p->raw, p->rawlen, p->jsonlen, &jr->blob,
                            jr->reason) != TR_OK ||
            !report_detach(&jr->r)) { /* the tree's memory back while it waits */
            report_free(&jr->r);
            jr->rc = TR_ENOMEM;
            trust_put(trust);
            goto oom;
        }
    }
    trust_put(trust);
    /* mail only (not a body POSTed over HTTP), and only when there is a
     * report to vouch for: no DNS for what is quarantined anyway */
    bool acceptable = false;
    for (size_t i = 0; i < job->dec.npayloads; i++)
        acceptable |= job->reports[i].rc == TR_OK;
    if (job->dec.is_message && acceptable && lim->dkim.policy != DKIM_POLICY_OFF &&
        !(job->src.kind && strcmp(job->src.kind, "http") == 0))
        verify_dkim(job, &lim->dkim);
    return job;
oom:
    ingest_job_free(job);
    return NULL;
}

/* ---- batches -------------------------------------------------------------------------------- */

struct ingest *ingest_new(struct store *st, const struct ingest_limits *lim)
{
    static const struct ingest_limits defaults = INGEST_DEFAULT_LIMITS;
    struct ingest *ig = calloc(1, sizeof *ig);
    if (ig == NULL)
        return NULL;
    ig->st = st;
    ig->lim = lim ? *lim : defaults;
    return ig;
}

void ingest_free(struct ingest *ig)
{
    if (ig && store_in_transaction(ig->st))
        store_rollback(ig->st);
    if (ig)
        free(ig->awaiting);
    free(ig);
}

static void settle(struct ingest *ig, int64_t requeue_of, struct ingest_result *res);
static void unquarantine(struct ingest *ig, int64_t requeue_of, struct ingest_result *res);

tr_err ingest_begin(struct ingest *ig, char *err)
{
    ig->nawaiting = 0;
    ig->failed = false;
    ig->failure[0] = 0;
    return store_begin(ig->st, err);
}

tr_err ingest_commit(struct ingest *ig, char *err)
{
    if (!ig->failed) {
        tr_err rc = store_flush(ig->st, err);
        if (rc != TR_OK) {
            ig->failed = true;
            ig->failure_code = rc == TR_ERETRY ? TR_ERETRY : TR_EDB;
            snprintf(ig->failure, sizeof ig->failure, "%s", err);
        }
        for (size_t i = 0; i < ig->nawaiting && !ig->failed; i++)
            settle(ig, ig->awaiting[i].requeue_of, ig->awaiting[i].res);
    }
    ig->nawaiting = 0;
    if (ig->failed) {
        store_rollback(ig->st);
        return tr_fail(err, ig->failure_code, "%s", ig->failure);
    }
    return store_commit(ig->st, err);
}

void ingest_rollback(struct ingest *ig)
{
    ig->nawaiting = 0;
    store_rollback(ig->st);
}

bool ingest_failed(const struct ingest *ig)
{
    return ig->failed;
}

static void poison(struct ingest *ig, struct ingest_result *res, tr_err code, const char *why)
{
    ig->failed = true;
    ig->failure_code = code == TR_ERETRY ? TR_ERETRY : TR_EDB;
    snprintf(ig->failure, sizeof ig->failure, "%s", why);
    ingest_result_tempfail(res, why);
}

static void quarantine(struct ingest *ig, const struct ingest_job *job, const char *reason,
                       struct ingest_result *res)
{
    char err[TR_ERRLEN];
    tr_err rc = store_add_quarantine(ig->st, &job->src, reason, job->data,
                                     job->data ? job->len : job->size, &res->quarantine_id, err);
    if (rc != TR_OK)
        poison(ig, res, rc, err);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Store one validated report of a job. Returns false on a storage failure. */
static bool store_report(struct ingest *ig, const struct ingest_job *job, size_t i,
                         struct ingest_report *rep, struct ingest_result *res)
{
    const struct job_report *jr = &job->reports[i];
    rep->outcome = INGEST_REJECTED;
    if (jr->rc != TR_OK) {
        snprintf(rep->reason, sizeof rep->reason, "%s", jr->reason);
        return true;
    }
    const struct report *r = &jr->r;
    rep->organization_name = dup_or_null(r->organization_name);
    rep->report_id = dup_or_null(r->report_id);
    rep->first_domain = dup_or_null(r->policies[0].policy_domain);
    rep->npolicies = r->npolicies;
    rep->warnings = jr->diags.warnings;
    rep->notes = jr->diags.notes;
    for (size_t k = 0; k < r->npolicies; k++) {
        rep->successful_sessions += r->policies[k].successful_sessions;
        rep->failed_sessions += r->policies[k].failed_sessions;
    }
    char err[TR_ERRLEN];
    tr_err rc = store_queue_report(ig->st, r, &jr->diags, &job->src, &jr->blob, &rep->added, err);
    if (rc != TR_OK) {
        poison(ig, res, rc, err);
        return false;
    }
    /* stored or a duplicate: which one, the store may tell only at commit */
    rep->outcome = rep->added.duplicate ? INGEST_DUPLICATE : INGEST_STORED;
    rep->id = rep->added.id;
    return true;
}

/* The outcome of an input from its reports' (stored beats duplicate beats
 * rejected), once the store has told which reports were duplicates. */
static void settle(struct ingest *ig, int64_t requeue_of, struct ingest_result *res)
{
    size_t stored = 0, dups = 0;
    for (size_t i = 0; i < res->nreports; i++) {
        struct ingest_report *rep = &res->reports[i];
        if (rep->outcome != INGEST_STORED && rep->outcome != INGEST_DUPLICATE)
            continue;
        rep->outcome = rep->added.duplicate ? INGEST_DUPLICATE : INGEST_STORED;
        rep->id = rep->added.id;
        stored += rep->outcome == INGEST_STORED;
        dups += rep->outcome == INGEST_DUPLICATE;
    }
    res->outcome = stored ? INGEST_STORED : dups ? INGEST_DUPLICATE : INGEST_REJECTED;
    unquarantine(ig, requeue_of, res);
}

const void *ingest_job_input(const struct ingest_job *job, size_t *len,
                             const struct store_source **src)
{
    *len = job->len;
    *src = &job->src;
    return job->data;
}

bool ingest_job_rejected(const struct ingest_job *job, const char **reason)
{
    *reason = job->reason;
    if (job->temporary)
        return false;
    if (job->rc == TR_ENOMEM || job->rc == TR_EIO)
        return false;
    if (job->rc != TR_OK)
        return true;
    for (size_t i = 0; i < job->dec.npayloads; i++)
        if (job->reports[i].rc == TR_OK)
            return false;
    if (job->dec.npayloads)
        *reason = job->reports[0].reason;
    return true;
}

void ingest_job_set_requeue(struct ingest_job *job, int64_t quarantine_id)
{
    job->requeue_of = quarantine_id;
}

/* A re-ingested quarantine entry that now stored (or was a duplicate) leaves
 * the quarantine in the same transaction. */
static void unquarantine(struct ingest *ig, int64_t requeue_of, struct ingest_result *res)
{
    char err[TR_ERRLEN];
    if (requeue_of > 0 && (res->outcome == INGEST_STORED || res->outcome == INGEST_DUPLICATE) &&
        store_delete_quarantine(ig->st, requeue_of, err) != TR_OK)
        poison(ig, res, TR_EDB, err);
}

void ingest_store(struct ingest *ig, const struct ingest_job *job, struct ingest_result *res)
{
    memset(res, 0, sizeof *res);
    if (ig->failed) {
        ingest_result_tempfail(res, ig->failure);
        return;
    }
    if (job->temporary) {
        ingest_result_tempfail(res, job->reason);
        res->input_tempfail = true;
        return;
    }
    if (job->rc != TR_OK) {
        snprintf(res->reason, sizeof res->reason, "%s", job->reason);
        if (job->rc == TR_ENOMEM) {
            res->outcome = INGEST_TEMPFAIL;
        } else if (job->rc == TR_EIO) {
            res->outcome = INGEST_UNREADABLE;
        } else {
            res->outcome = INGEST_REJECTED;
            quarantine(ig, job, job->reason, res);
        }
        return;
    }

    size_t n = job->dec.npayloads;
    res->reports = calloc(n, sizeof *res->reports);
    if (res->reports == NULL) {
        ingest_result_tempfail(res, "out of memory");
        return;
    }
    size_t stored = 0, dups = 0, first_rejected = n;
    for (size_t i = 0; i < n; i++) {
        struct ingest_report *rep = &res->reports[res->nreports++];
        if (!store_report(ig, job, i, rep, res))
            return; /* the batch is poisoned; res says tempfail */
        if (rep->outcome == INGEST_STORED)
            stored++;
        else if (rep->outcome == INGEST_DUPLICATE)
            dups++;
        else if (first_rejected == n)
            first_rejected = i;
    }
    if (first_rejected < n) {
        if (n > 1)
            snprintf(res->reason, sizeof res->reason, "report part %zu of %zu: %.180s",
                     first_rejected + 1, n, res->reports[first_rejected].reason);
        else
            snprintf(res->reason, sizeof res->reason, "%s", res->reports[0].reason);
        quarantine(ig, job, res->reason, res);
    }
    if (ig->failed)
        return;
    res->outcome = stored ? INGEST_STORED : dups ? INGEST_DUPLICATE : INGEST_REJECTED;
    if (stored + dups == 0)
        return;
    /* completed by settle() at commit, when the store knows the duplicates */
    if (ig->nawaiting == ig->acap) {
        size_t cap = ig->acap ? 2 * ig->acap : 256;
        struct awaiting *a = realloc(ig->awaiting, cap * sizeof *a);
        if (a == NULL) {
            poison(ig, res, TR_ENOMEM, "out of memory");
            return;
        }
        ig->awaiting = a;
        ig->acap = cap;
    }
    ig->awaiting[ig->nawaiting++] = (struct awaiting){job->requeue_of, res};
}

void ingest_input(struct ingest *ig, const void *data, size_t len, const struct store_source *src,
                  struct ingest_result *res)
{
    struct ingest_job *job = ingest_prepare((void *)(uintptr_t)data, len, false, src, &ig->lim);
    if (job == NULL) {
        memset(res, 0, sizeof *res);
        ingest_result_tempfail(res, "out of memory");
        return;
    }
    ingest_store(ig, job, res);
    /* the store reads the job's report until it is sent (PostgreSQL queues a
     * batch's reports): send it before the job goes */
    char err[TR_ERRLEN];
    tr_err rc = ig->failed ? TR_OK : store_flush(ig->st, err);
    if (rc != TR_OK)
        poison(ig, res, rc, err);
    ingest_job_free(job);
}

bool ingest_result_settled(const struct ingest_result *res)
{
    for (size_t i = 0; i < res->nreports; i++) {
        const struct ingest_report *rep = &res->reports[i];
        if ((rep->outcome == INGEST_STORED || rep->outcome == INGEST_DUPLICATE) && !rep->added.done)
            return false;
    }
    return true;
}

void ingest_result_tempfail(struct ingest_result *res, const char *why)
{
    res->outcome = INGEST_TEMPFAIL;
    res->input_tempfail = false;
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
    case INGEST_SPOOLED:
        return "spooled";
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
    case INGEST_SPOOLED:
        return 0;
    case INGEST_REJECTED:
        return 65; /* EX_DATAERR */
    case INGEST_UNREADABLE:
        return 74; /* EX_IOERR */
    default:
        return 75; /* EX_TEMPFAIL */
    }
}
