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

tr_err ingest_inflate(const void *in, size_t len, struct buf *out, const struct ingest_limits *lim,
                      char *err)
{
    struct jsonscan_limits jl = lim->json;
    jl.max_depth = lim->max_depth;
    struct inflate_scan f = {jsonscan_new(&jl), -1};
    if (f.sc == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    tr_err e = gz_inflate_each(in, len, out, scan_piece, &f, err);
    jsonscan_free(f.sc);
    return e;
}

/* used: bytes the input's earlier payloads inflated to. max_inflated bounds
 * them all together, so a message of many report parts costs no more than one. */
static void decode_payload(struct ingest_payload *p, const struct ingest_limits *lim, size_t used)
{
    buf_init(&p->inflated, used < lim->max_inflated ? lim->max_inflated - used : 0);
    if (gz_is_compressed(p->raw, p->rawlen)) {
        p->decode_err = ingest_inflate(p->raw, p->rawlen, &p->inflated, lim, p->decode_reason);
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
    struct report_options ropt = {
        lim->max_depth, job->dec.is_message ? job->dec.msg.report_domain : NULL, &lim->json};
    for (size_t i = 0; i < job->dec.npayloads; i++) {
        const struct ingest_payload *p = &job->dec.payloads[i];
        struct job_report *jr = &job->reports[i];
        if (p->decode_err != TR_OK) {
            jr->rc = p->decode_err;
            snprintf(jr->reason, sizeof jr->reason, "%s", p->decode_reason);
            continue;
        }
        jr->rc = report_parse(p->json, p->jsonlen, &ropt, &jr->r, &jr->diags);
        if (jr->rc != TR_OK) {
            diag_first_error(&jr->diags, jr->reason, sizeof jr->reason);
            continue;
        }
        /* the writer only writes rows: serialize here, on the preparing thread */
        if (store_serialize(&jr->r, &jr->diags, p->raw, p->rawlen, p->jsonlen, &jr->blob,
                            jr->reason) != TR_OK) {
            report_free(&jr->r);
            jr->rc = TR_ENOMEM;
            goto oom;
        }
    }
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

static void quarantine(struct ingest *ig, const struct ingest_job *job, const char *reason,
                       struct ingest_result *res)
{
    char err[TR_ERRLEN];
    if (store_add_quarantine(ig->st, &job->src, reason, job->data, job->data ? job->len : job->size,
                             &res->quarantine_id, err) != TR_OK)
        poison(ig, res, err);
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
    bool dup = false;
    if (store_add_report(ig->st, r, &jr->diags, &job->src, &jr->blob, &rep->id, &dup, err) !=
        TR_OK) {
        poison(ig, res, err);
        return false;
    }
    rep->outcome = dup ? INGEST_DUPLICATE : INGEST_STORED;
    return true;
}

void ingest_store(struct ingest *ig, const struct ingest_job *job, struct ingest_result *res)
{
    memset(res, 0, sizeof *res);
    if (ig->failed) {
        ingest_result_tempfail(res, ig->failure);
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
    if (!ig->failed)
        res->outcome = stored ? INGEST_STORED : dups ? INGEST_DUPLICATE : INGEST_REJECTED;
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
    ingest_job_free(job);
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
