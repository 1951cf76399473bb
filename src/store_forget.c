/* store_forget.c: everything stored about one domain leaves the database
 * (store.h, store_forget_domain), for `tlsrptd forget`.
 *
 * In one transaction: the reports that hold a policy of the domain, or name
 * it in their source or diagnostics, are found; those with no other domain
 * are deleted with their policies and failure details; the others lose the domain's policies, and
 * their raw bytes are rewritten without those policies (store_redact.c), their diagnostics without
 * the entries about them or naming the domain, their source fields that name it emptied. Then the
 * rollups: the domain's rows go, and the report counts per day and reporter (rollup_reports, which
 * count a report once whatever its domains) are corrected: counted again from the reports still
 * stored, or, for days whose reports were pruned already, lowered by the domain's count but never
 * below another domain's count of that day. Knows nothing of mail: the caller says which quarantine
 * entries name the domain. On SQLite, what is deleted is overwritten (secure_delete) and the file
 * is rebuilt afterwards (VACUUM), so no copy stays in free pages, in an index's inner pages or in
 * the WAL; PostgreSQL keeps old row versions until its autovacuum reuses their space. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_backend.h"
#include "store_redact.h"
#include "tlsrptd/domains.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/store.h"

/* Room for one more element in *v (n used, *cap allocated, elem bytes each). */
static bool grow(void *v, size_t n, size_t *cap, size_t elem)
{
    void **p = v;
    if (n < *cap)
        return true;
    size_t ncap = *cap ? 2 * *cap : 64;
    void *nv = realloc(*p, ncap * elem);
    if (nv == NULL)
        return false;
    *p = nv;
    *cap = ncap;
    return true;
}

/* A report the domain touches: its stored policies of the domain, and of others. */
struct touched {
    int64_t id, own, others;
};

struct touched_list {
    struct touched *v;
    size_t n, cap;
    bool oom;
};

static int take_touched(void *cls, struct sql_row *row)
{
    struct touched_list *l = cls;
    if (!grow(&l->v, l->n, &l->cap, sizeof *l->v)) {
        l->oom = true;
        return 1;
    }
    l->v[l->n++] = (struct touched){sql_col_int(row, 0), sql_col_int(row, 1), sql_col_int(row, 2)};
    return 0;
}

/* The reports with a policy of the domain, or naming it in their source or
 * diagnostics (a test that also finds longer names: rewrite() looks closer). */
static tr_err find_touched(struct store *st, const char *domain, struct touched_list *l, char *err)
{
    /* the one word the dialects spell differently: where a text holds another */
    const char *in = store_dialect(st) == STORE_DIALECT_SQLITE ? "instr" : "strpos";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT r.id, (SELECT COUNT(*) FROM policies p WHERE p.report = r.id AND "
             "p.policy_domain = ?1), (SELECT COUNT(*) FROM policies p WHERE p.report = r.id AND "
             "COALESCE(p.policy_domain, '') <> ?1) FROM reports r WHERE EXISTS (SELECT 1 FROM "
             "policies p WHERE p.report = r.id AND p.policy_domain = ?1) OR "
             "lower(r.source_report_domain) = ?1 OR %s(lower(r.diagnostics), ?1) > 0 OR "
             "%s(lower(r.source_subject), ?1) > 0 OR %s(lower(r.source_name), ?1) > 0 OR "
             "%s(lower(r.source_submitter), ?1) > 0 OR %s(lower(r.source_message_id), ?1) > 0 "
             "ORDER BY r.id",
             in, in, in, in, in);
    struct sql_arg a[] = {sql_text(domain)};
    tr_err rc = store_exec(st, STMT_NONE, sql, a, 1, take_touched, l, NULL, err);
    if (rc == TR_OK && l->oom)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    return rc;
}

/* ---- rewriting a report ------------------------------------------------------------------- */

struct stored_report {
    char *encoding, *diagnostics;
    void *raw;
    size_t rawlen;
    char *source[5]; /* name, message_id, report_domain, submitter, subject */
    bool oom;
};

static char *dup_col(struct sql_row *row, int col, bool *oom)
{
    const char *s = sql_col_text(row, col);
    char *d = s ? strdup(s) : NULL;
    if (s && d == NULL)
        *oom = true;
    return d;
}

static int take_stored(void *cls, struct sql_row *row)
{
    struct stored_report *r = cls;
    r->encoding = dup_col(row, 0, &r->oom);
    r->diagnostics = dup_col(row, 1, &r->oom);
    size_t n = 0;
    const void *raw = sql_col_blob(row, 2, &n);
    if (raw && (r->raw = malloc(n ? n : 1)) != NULL) {
        memcpy(r->raw, raw, n);
        r->rawlen = n;
    } else if (raw) {
        r->oom = true;
    }
    for (int i = 0; i < 5; i++)
        r->source[i] = dup_col(row, 3 + i, &r->oom);
    return 1;
}

static void stored_free(struct stored_report *r)
{
    free(r->encoding);
    free(r->diagnostics);
    free(r->raw);
    for (int i = 0; i < 5; i++)
        free(r->source[i]);
}

static bool keep_other(void *cls, const char *domain)
{
    return strcmp(domain, cls) != 0;
}

static bool names_domain(void *cls, const char *text)
{
    return domain_mentioned(text, strlen(text), cls);
}

/* Report id without the domain: raw bytes, diagnostics, source. *changed:
 * whether any of them named it. */
static tr_err rewrite(struct store *st, int64_t id, const char *domain, bool *changed, char *err)
{
    static const char sql_get[] =
        "SELECT raw_encoding, diagnostics, raw, source_name, source_message_id, "
        "source_report_domain, source_submitter, source_subject FROM reports WHERE id = ?1";
    static const char sql_set[] =
        "UPDATE reports SET raw_encoding = ?1, raw = ?2, raw_size = COALESCE(?3, raw_size), "
        "diagnostics = ?4, source_name = ?5, source_message_id = ?6, "
        "source_report_domain = ?7, source_submitter = ?8, source_subject = ?9 WHERE id = ?10";
    struct sql_arg a[] = {sql_int(id)};
    struct stored_report r = {0};
    tr_err rc = store_exec(st, STMT_NONE, sql_get, a, 1, take_stored, &r, NULL, err);
    if (rc == TR_OK && r.oom)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    struct store_redacted red = {0};
    struct buf packed;
    buf_init(&packed, (size_t)64 << 20);
    char *diags = NULL;
    if (rc == TR_OK)
        rc = store_redact_report(r.encoding, r.raw, r.rawlen, r.source[2], keep_other,
                                 (void *)domain, &red, err);
    if (rc == TR_EPARSE)
        rc = tr_fail(err, TR_EDB,
                     "report %lld: its stored JSON cannot be read, so the domain "
                     "cannot be taken out of it; nothing was forgotten",
                     (long long)id);
    if (rc == TR_OK) {
        const char *enc = r.encoding;
        const void *raw = r.raw;
        size_t rawlen = r.rawlen;
        int64_t size = -1;
        if (red.ndropped) {
            enc = "identity";
            raw = red.json.data;
            rawlen = size = (int64_t)red.json.len;
            if (red.json.len > STORE_PLAIN_MAX) { /* as store_serialize() keeps a report */
                if ((rc = gz_deflate(red.json.data, red.json.len, 6, &packed, err)) == TR_OK) {
                    enc = "gzip";
                    raw = packed.data;
                    rawlen = packed.len;
                }
            }
        }
        diags = store_redact_diagnostics(r.diagnostics, &red, false, names_domain, (void *)domain);
        *changed = red.ndropped > 0 || (diags && r.diagnostics && strcmp(diags, r.diagnostics));
        for (int i = 0; i < 5; i++) {
            if (r.source[i] && domain_mentioned(r.source[i], strlen(r.source[i]), domain)) {
                free(r.source[i]);
                r.source[i] = NULL;
                *changed = true;
            }
        }
        struct sql_arg set[] = {
            sql_text(enc),
            sql_blob(rawlen ? raw : "", rawlen),
            size < 0 ? sql_text(NULL) : sql_int(size),
            sql_text(diags),
            sql_text(r.source[0]),
            sql_text(r.source[1]),
            sql_text(r.source[2]),
            sql_text(r.source[3]),
            sql_text(r.source[4]),
            sql_int(id),
        };
        if (rc == TR_OK)
            rc = store_exec(st, STMT_NONE, sql_set, set, 10, NULL, NULL, NULL, err);
    }
    free(diags);
    buf_free(&packed);
    store_redacted_free(&red);
    stored_free(&r);
    return rc;
}

/* ---- rollups -------------------------------------------------------------------------------- */

struct day_key {
    int64_t start_time, count;
    char *reporter;
};

struct day_keys {
    struct day_key *v;
    size_t n, cap;
    bool oom;
};

static int take_day(void *cls, struct sql_row *row)
{
    struct day_keys *k = cls;
    if (!grow(&k->v, k->n, &k->cap, sizeof *k->v)) {
        k->oom = true;
        return 1;
    }
    const char *reporter = sql_col_text(row, 1);
    struct day_key d = {sql_col_int(row, 0), sql_col_int(row, 2), strdup(reporter ? reporter : "")};
    if (d.reporter == NULL) {
        k->oom = true;
        return 1;
    }
    k->v[k->n++] = d;
    return 0;
}

/* The report counts of the days and reporters the domain had (see the top). */
static tr_err correct_report_counts(struct store *st, const char *domain, char *err)
{
    static const char sql_keys[] = "SELECT start_time, reporter, reports FROM rollup_sessions "
                                   "WHERE policy_domain = ?1";
    static const char sql_stored[] = "SELECT COUNT(*) FROM reports WHERE start_time = ?1 AND "
                                     "organization_name = ?2";
    static const char sql_current[] =
        "SELECT r.reports, COALESCE((SELECT MAX(s.reports) FROM rollup_sessions s WHERE "
        "s.start_time = ?1 AND s.reporter = ?2 AND s.policy_domain <> ?3), 0) FROM "
        "rollup_reports r WHERE r.start_time = ?1 AND r.reporter = ?2";
    static const char sql_set[] =
        "UPDATE rollup_reports SET reports = ?3 WHERE start_time = ?1 AND reporter = ?2";
    static const char sql_drop[] = "DELETE FROM rollup_reports WHERE start_time = ?1 AND "
                                   "reporter = ?2";
    struct day_keys k = {0};
    struct sql_arg a[] = {sql_text(domain)};
    tr_err rc = store_exec(st, STMT_NONE, sql_keys, a, 1, take_day, &k, NULL, err);
    if (rc == TR_OK && k.oom)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < k.n && rc == TR_OK; i++) {
        const struct day_key *d = &k.v[i];
        struct sql_arg key[] = {sql_int(d->start_time), sql_text(d->reporter), sql_text(domain)};
        int64_t stored = 0;
        struct sql_pair now = {0, 0}; /* the day's count, the largest other domain's */
        if ((rc = store_exec(st, STMT_NONE, sql_stored, key, 2, sql_take_int, &stored, NULL,
                             err)) != TR_OK ||
            (rc = store_exec(st, STMT_NONE, sql_current, key, 3, sql_take_pair, &now, NULL, err)) !=
                TR_OK)
            break;
        int64_t left = stored; /* the reports of the day are still there: count them */
        if (stored == 0) {     /* pruned: estimate from the rollups */
            left = now.a - d->count;
            if (left < now.b)
                left = now.b;
        }
        struct sql_arg set[] = {sql_int(d->start_time), sql_text(d->reporter), sql_int(left)};
        rc = store_exec(st, STMT_NONE, left > 0 ? sql_set : sql_drop, set, left > 0 ? 3 : 2, NULL,
                        NULL, NULL, err);
    }
    for (size_t i = 0; i < k.n; i++)
        free(k.v[i].reporter);
    free(k.v);
    return rc;
}

/* ---- forget --------------------------------------------------------------------------------- */

/* One report with its policies and failure details (PostgreSQL's schema has
 * no foreign keys to cascade). */
static tr_err delete_report(struct store *st, int64_t report, char *err)
{
    static const char *const sql[] = {
        "DELETE FROM failure_details WHERE policy IN (SELECT id FROM policies WHERE report = ?1)",
        "DELETE FROM policies WHERE report = ?1",
        "DELETE FROM reports WHERE id = ?1",
    };
    struct sql_arg a[] = {sql_int(report)};
    tr_err rc = TR_OK;
    for (size_t i = 0; i < 3 && rc == TR_OK; i++)
        rc = store_exec(st, STMT_NONE, sql[i], a, 1, NULL, NULL, NULL, err);
    return rc;
}

static tr_err forget(struct store *st, const char *domain, const int64_t *qids, size_t nq,
                     struct store_forget_stats *out, char *err)
{
    struct sql_arg a[] = {sql_text(domain)};
    tr_err rc = store_exec(st, STMT_NONE, "SELECT COUNT(*) FROM policies WHERE policy_domain = ?1",
                           a, 1, sql_take_int, &out->policies, NULL, err);
    if (rc == TR_OK)
        rc = store_exec(st, STMT_NONE,
                        "SELECT COUNT(*) FROM failure_details f JOIN policies p ON p.id = "
                        "f.policy WHERE p.policy_domain = ?1",
                        a, 1, sql_take_int, &out->failure_details, NULL, err);
    struct touched_list l = {0};
    if (rc == TR_OK)
        rc = find_touched(st, domain, &l, err);
    for (size_t i = 0; i < l.n && rc == TR_OK; i++) {
        const struct touched *t = &l.v[i];
        struct sql_arg id[] = {sql_int(t->id), sql_text(domain)};
        if (t->own > 0 && t->others == 0) {
            rc = delete_report(st, t->id, err);
            out->reports_deleted++;
            continue;
        }
        if (t->own > 0)
            rc = store_exec(st, STMT_NONE,
                            "DELETE FROM failure_details WHERE policy IN (SELECT id FROM policies "
                            "WHERE report = ?1 AND policy_domain = ?2)",
                            id, 2, NULL, NULL, NULL, err);
        if (t->own > 0 && rc == TR_OK)
            rc = store_exec(st, STMT_NONE,
                            "DELETE FROM policies WHERE report = ?1 AND policy_domain = ?2", id, 2,
                            NULL, NULL, NULL, err);
        bool changed = false;
        if (rc == TR_OK)
            rc = rewrite(st, t->id, domain, &changed, err);
        if (t->own > 0 || changed) /* not only a longer name that holds it */
            out->reports_edited++;
    }
    free(l.v);
    if (rc == TR_OK)
        rc = correct_report_counts(st, domain, err);
    static const char *const rollups[] = {
        "DELETE FROM rollup_sessions WHERE policy_domain = ?1",
        "DELETE FROM rollup_failures WHERE policy_domain = ?1",
        "DELETE FROM domain_totals WHERE policy_domain = ?1",
        "DELETE FROM domain_failures WHERE policy_domain = ?1",
        "DELETE FROM domain_reporters WHERE policy_domain = ?1",
    };
    for (size_t i = 0; i < sizeof rollups / sizeof *rollups && rc == TR_OK; i++) {
        int64_t n = 0;
        rc = store_exec(st, STMT_NONE, rollups[i], a, 1, NULL, NULL, &n, err);
        out->rollup_rows += n;
    }
    for (size_t i = 0; i < nq && rc == TR_OK; i++) {
        rc = store_delete_quarantine(st, qids[i], err);
        out->quarantine++;
    }
    return rc;
}

tr_err store_forget_domain(struct store *st, const char *domain, const int64_t *quarantine_ids,
                           size_t nquarantine, bool dry_run, struct store_forget_stats *out,
                           char *err)
{
    memset(out, 0, sizeof *out);
    if (domain[0] == 0)
        return tr_fail(err, TR_EUSAGE, "forget: no domain");
    bool sqlite = store_dialect(st) == STORE_DIALECT_SQLITE;
    tr_err rc = TR_OK;
    /* SQLite: what is deleted is overwritten with zeros, not left in free pages */
    if (sqlite && !dry_run)
        rc = store_exec(st, STMT_NONE, "PRAGMA secure_delete = ON", NULL, 0, NULL, NULL, NULL, err);
    if (rc == TR_OK)
        rc = store_begin(st, err);
    if (rc != TR_OK)
        return rc;
    rc = forget(st, domain, quarantine_ids, nquarantine, out, err);
    if (rc != TR_OK || dry_run) {
        store_rollback(st);
        return rc;
    }
    if ((rc = store_commit(st, err)) != TR_OK || !sqlite)
        return rc;
    /* the file rebuilt, so that no copy of what went stays in it (a key in an index's
     * inner page, an old page in the WAL); then the WAL emptied */
    char why[TR_ERRLEN];
    out->rebuilt = store_exec(st, STMT_NONE, "VACUUM", NULL, 0, NULL, NULL, NULL, why) == TR_OK &&
                   store_exec(st, STMT_NONE, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, 0, NULL, NULL,
                              NULL, why) == TR_OK;
    if (!out->rebuilt)
        snprintf(out->not_rebuilt, sizeof out->not_rebuilt, "%s", why);
    return TR_OK;
}
