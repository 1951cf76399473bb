/* cli_migrate.c: `tlsrptd migrate --db SOURCE --to TARGET` copies a whole
 * database into another, typically SQLite into PostgreSQL (docs/storage.md): every
 * report as stored (raw bytes, source, diagnostics, policies, failure
 * details), the quarantine, and the outcome counters; then it checks that
 * both databases give the same summaries.
 *
 * It goes in batches, each one transaction on the target that also records
 * how far it got (meta "migrate:<source>:report"), so an interrupted run
 * resumes where it stopped and copies nothing twice (a report is also its own
 * duplicate check: copied again, it would be a duplicate). The target must be
 * empty (no reports, no quarantine entries), or hold only what an earlier run
 * of the same migration copied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/log.h"
#include "tlsrptd/query.h"

#define BATCH       500
#define BATCH_BYTES ((size_t)64 << 20)

static const char help[] =
    "Usage: tlsrptd migrate [-c FILE] --db SOURCE --to TARGET [--batch N]\n"
    "\n"
    "Copy every report (raw bytes, source, diagnostics, policies, failure details),\n"
    "the quarantine and the outcome counters of SOURCE into TARGET, in batches with\n"
    "progress on stderr, then check that both give the same summaries. SOURCE and\n"
    "TARGET are database values as for db: a SQLite file (or sqlite:PATH) or a\n"
    "postgresql:// URI. TARGET is created and migrated when it is new; it must hold\n"
    "nothing but what an earlier run of the same migration copied. An interrupted\n"
    "run (Ctrl-C, a crash, a lost connection) is resumed by running it again.\n"
    "\n"
    "  --to TARGET   the database to copy into\n"
    "  --batch N     reports per transaction (default 500)\n"
    "\n"
    "Exit: 0 copied and verified; 64 usage; 65 the target holds other data, or the\n"
    "summaries differ; 75 a database is unavailable.\n";

static void print_help(void)
{
    fputs(help, stdout);
}

struct margs {
    const char *to;
    long batch;
    bool want_to, want_batch;
};

static int take_arg(void *ctx, const char *arg)
{
    struct margs *a = ctx;
    if (a->want_to) {
        a->want_to = false;
        a->to = arg;
        return 1;
    }
    if (a->want_batch) {
        a->want_batch = false;
        if (!cli_parse_long(arg, 1, 100000, &a->batch)) {
            cli_usage_error("migrate", "--batch: '%s' is not in [1, 100000]", arg);
            return -1;
        }
        return 1;
    }
    if (strcmp(arg, "--to") == 0 || strncmp(arg, "--to=", 5) == 0) {
        if (arg[4] == '=')
            a->to = arg + 5;
        else
            a->want_to = true;
        return 1;
    }
    if (strcmp(arg, "--batch") == 0) {
        a->want_batch = true;
        return 1;
    }
    return 0;
}

/* ---- one report, copied out of the source ------------------------------------------------ */

struct copy {
    struct store_report_row row; /* strings below are owned */
    struct store_added added;    /* the target's answer, at the batch's commit */
    struct diag_list diags;      /* the warning and note counts only */
    char *strings[20];
    size_t nstrings;
    unsigned char *raw;
    struct report r;
    struct store_blob blob;
    size_t policy_cap;
};

static const char *keep(struct copy *c, const char *s)
{
    if (s == NULL || c->nstrings == sizeof c->strings / sizeof *c->strings)
        return NULL;
    return c->strings[c->nstrings++] = strdup(s);
}

static void copy_free(struct copy *c)
{
    for (size_t i = 0; i < c->nstrings; i++)
        free(c->strings[i]);
    free(c->raw);
    for (size_t i = 0; i < c->r.npolicies; i++) {
        struct report_policy *p = &c->r.policies[i];
        for (size_t k = 0; k < p->nfailures; k++) {
            struct report_failure *f = &p->failures[k];
            free((char *)f->result_type);
            free((char *)f->sending_mta_ip);
            free((char *)f->receiving_mx_hostname);
            free((char *)f->receiving_mx_helo);
            free((char *)f->receiving_ip);
            free((char *)f->additional_information);
            free((char *)f->failure_reason_code);
        }
        free(p->failures);
        free((char *)p->policy_type);
        free(p->policy_domain);
        free(c->blob.policy_strings[i]);
        free(c->blob.mx_hosts[i]);
    }
    free(c->r.policies);
    free(c->blob.policy_strings);
    free(c->blob.mx_hosts);
    free(c->blob.diagnostics);
    memset(c, 0, sizeof *c);
}

struct batch {
    struct copy *v;
    size_t n, max, bytes;
    bool oom;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int take_report(void *cls, const struct store_report_row *row)
{
    struct batch *b = cls;
    struct copy *c = &b->v[b->n];
    memset(c, 0, sizeof *c);
    c->row = *row;
    c->row.organization_name = keep(c, row->organization_name);
    c->row.report_id = keep(c, row->report_id);
    c->row.start_datetime = keep(c, row->start_datetime);
    c->row.end_datetime = keep(c, row->end_datetime);
    c->row.contact_info = keep(c, row->contact_info);
    c->row.raw_encoding = keep(c, row->raw_encoding);
    c->row.src.kind = keep(c, row->src.kind);
    c->row.src.name = keep(c, row->src.name);
    c->row.src.client = keep(c, row->src.client);
    c->row.src.message_id = keep(c, row->src.message_id);
    c->row.src.report_domain = keep(c, row->src.report_domain);
    c->row.src.report_submitter = keep(c, row->src.report_submitter);
    c->row.src.subject = keep(c, row->src.subject);
    c->row.src.dkim_result = keep(c, row->src.dkim_result);
    c->row.src.dkim_domain = keep(c, row->src.dkim_domain);
    c->row.src.dkim_reason = keep(c, row->src.dkim_reason);
    c->blob.diagnostics = dup_or_null(row->diagnostics);
    c->raw = malloc(row->rawlen ? row->rawlen : 1);
    if (c->raw == NULL) {
        b->oom = true;
        return 1;
    }
    memcpy(c->raw, row->raw, row->rawlen);
    b->n++;
    b->bytes += row->rawlen;
    return b->n == b->max || b->bytes >= BATCH_BYTES;
}

static int take_policy(void *cls, const struct store_policy_row *p)
{
    struct copy *c = cls;
    if (c->r.npolicies == c->policy_cap) {
        size_t cap = c->policy_cap ? 2 * c->policy_cap : 4;
        struct report_policy *np = realloc(c->r.policies, cap * sizeof *np);
        char **ps = realloc(c->blob.policy_strings, cap * sizeof *ps);
        if (ps)
            c->blob.policy_strings = ps;
        char **mx = realloc(c->blob.mx_hosts, cap * sizeof *mx);
        if (mx)
            c->blob.mx_hosts = mx;
        if (np)
            c->r.policies = np;
        if (!np || !ps || !mx)
            return 1;
        c->policy_cap = cap;
    }
    size_t i = c->r.npolicies++;
    memset(&c->r.policies[i], 0, sizeof c->r.policies[i]);
    c->r.policies[i].policy_type = dup_or_null(p->policy_type);
    c->r.policies[i].policy_domain = dup_or_null(p->policy_domain);
    c->r.policies[i].successful_sessions = p->successful;
    c->r.policies[i].failed_sessions = p->failed;
    c->blob.policy_strings[i] = dup_or_null(p->policy_strings);
    c->blob.mx_hosts[i] = dup_or_null(p->mx_hosts);
    return 0;
}

static int take_failure(void *cls, const struct store_failure_row *f)
{
    struct copy *c = cls;
    if (f->policy_idx >= c->r.npolicies)
        return 0;
    struct report_policy *p = &c->r.policies[f->policy_idx];
    struct report_failure *nf = realloc(p->failures, (p->nfailures + 1) * sizeof *nf);
    if (nf == NULL)
        return 1;
    p->failures = nf;
    p->failures[p->nfailures++] = (struct report_failure){
        dup_or_null(f->result_type),           dup_or_null(f->sending_mta_ip),
        dup_or_null(f->receiving_mx_hostname), dup_or_null(f->receiving_mx_helo),
        dup_or_null(f->receiving_ip),          dup_or_null(f->additional_information),
        dup_or_null(f->failure_reason_code),   f->failed_session_count,
    };
    return 0;
}

/* The report as store_add_report() wants it, from the rows. */
static void make_report(struct copy *c)
{
    c->r.organization_name = c->row.organization_name;
    c->r.report_id = c->row.report_id;
    c->r.contact_info = c->row.contact_info;
    c->r.start_text = c->row.start_datetime;
    c->r.end_text = c->row.end_datetime;
    c->r.start_time = c->row.start_time;
    c->r.end_time = c->row.end_time;
    c->blob.encoding = c->row.raw_encoding;
    c->blob.data = c->raw;
    c->blob.len = c->row.rawlen;
    c->blob.json_size = (size_t)c->row.raw_size;
    c->blob.npolicies = c->r.npolicies;
    c->row.src.received_at = c->row.received_at;
}

/* ---- the quarantine ------------------------------------------------------------------------- */

struct qcopy {
    struct store *to;
    int64_t last;
    size_t n;
    tr_err rc;
    char *err;
};

static int copy_entry(void *cls, const struct store_quarantine_row *q)
{
    struct qcopy *c = cls;
    int64_t id;
    c->rc = store_add_quarantine(c->to, &q->src, q->reason ? q->reason : "", q->raw,
                                 q->raw ? q->rawlen : (size_t)q->raw_size, &id, c->err);
    c->last = q->id;
    c->n++;
    return c->rc != TR_OK;
}

static int no_row(void *cls, const struct store_quarantine_row *q)
{
    (void)cls, (void)q;
    return 1;
}

/* ---- the counters --------------------------------------------------------------------------- */

struct counts {
    struct store *to;
    char *err;
    tr_err rc;
};

static int set_outcome(void *cls, const struct store_count_row *r)
{
    struct counts *c = cls;
    c->rc = store_outcome_set(c->to, r->a ? r->a : "", r->b ? r->b : "", r->n1, c->err);
    return c->rc != TR_OK;
}

/* ---- verifying ------------------------------------------------------------------------------ */

static json_t *summary_of(struct store *st, enum query_by by, char *err)
{
    static struct query_filter f;
    query_filter_init(&f);
    f.by = by;
    json_t *s = query_summary(st, &f, err);
    if (s == NULL)
        return NULL;
    json_t *out = json_pack("{s:O, s:O}", "groups", json_object_get(s, "groups"), "totals",
                            json_object_get(s, "totals"));
    json_decref(s);
    return out;
}

static int verify(struct store *from, struct store *to, char *err)
{
    static const enum query_by dims[] = {QUERY_BY_DOMAIN, QUERY_BY_DAY, QUERY_BY_REPORTER,
                                         QUERY_BY_RESULT_TYPE, QUERY_BY_POLICY_TYPE};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        json_t *a = summary_of(from, dims[i], err), *b = a ? summary_of(to, dims[i], err) : NULL;
        bool same = a && b && json_equal(a, b);
        json_decref(a);
        json_decref(b);
        if (!a || !b) {
            fprintf(stderr, "tlsrptd migrate: verifying: %s\n", err);
            return EXIT_TEMPFAIL;
        }
        if (!same) {
            fprintf(stderr,
                    "tlsrptd migrate: the summaries by %s differ between source and target\n",
                    query_by_name(dims[i]));
            return EXIT_DATAERR;
        }
    }
    return 0;
}

/* ---- the command ---------------------------------------------------------------------------- */

static tr_err open_pair(const struct config *cfg, const char *to_db, struct store **from,
                        struct store **to, char *err)
{
    struct store_options sopt;
    cli_config_store_options(cfg, &sopt);
    sopt.read_only = true;
    if (store_open(cfg->db, &sopt, from, err) != TR_OK)
        return TR_EDB;
    cli_config_store_options(cfg, &sopt);
    sopt.quarantine_max_rows = SIZE_MAX / 2; /* the source's quarantine is already within its
                                                budget: keep every entry */
    sopt.quarantine_max_bytes = SIZE_MAX / 2;
    return store_open(to_db, &sopt, to, err);
}

int cmd_migrate(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct margs a = {NULL, BATCH, false, false};
    int rc = cli_config_args("migrate", argc, argv, &cfg, print_help, take_arg, &a);
    if (rc == 0 && (a.to == NULL || a.want_to))
        rc = cli_usage_error("migrate", "--to TARGET is required");
    if (rc == 0 && strcmp(store_sqlite_path(a.to), store_sqlite_path(cfg.db)) == 0)
        rc = cli_usage_error("migrate", "--to names the source database");
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    char err[TR_ERRLEN];
    struct store *from = NULL, *to = NULL;
    struct copy *v = calloc((size_t)a.batch, sizeof *v);
    if (v == NULL || open_pair(&cfg, a.to, &from, &to, err) != TR_OK) {
        fprintf(stderr, "tlsrptd migrate: %s\n", v ? err : "out of memory");
        rc = EXIT_TEMPFAIL;
        goto done;
    }
    /* how far an earlier run got, and whether the target holds anything else */
    char key_report[512], key_quarantine[512], key_counters[512];
    snprintf(key_report, sizeof key_report, "migrate:%s:report", store_name(from));
    snprintf(key_quarantine, sizeof key_quarantine, "migrate:%s:quarantine", store_name(from));
    snprintf(key_counters, sizeof key_counters, "migrate:%s:counters", store_name(from));
    int64_t last = 0, qlast = 0, counters = 0;
    struct store_filter all;
    store_filter_init(&all);
    struct store_totals there;
    if (store_counter_get(to, key_report, &last, err) != TR_OK ||
        store_counter_get(to, key_quarantine, &qlast, err) != TR_OK ||
        store_counter_get(to, key_counters, &counters, err) != TR_OK ||
        store_summary_totals(to, &all, &there, NULL, NULL, err) != TR_OK) {
        fprintf(stderr, "tlsrptd migrate: %s\n", err);
        rc = EXIT_TEMPFAIL;
        goto done;
    }
    int64_t there_quarantined = 0;
    if (store_list_quarantine(to, INT64_MIN, INT64_MAX, 1, 0, no_row, NULL, &there_quarantined,
                              err) != TR_OK) {
        fprintf(stderr, "tlsrptd migrate: %s\n", err);
        rc = EXIT_TEMPFAIL;
        goto done;
    }
    if (last == 0 && qlast == 0 && (there.reports > 0 || there_quarantined > 0)) {
        fprintf(stderr,
                "tlsrptd migrate: %s already holds %lld reports and %lld quarantine entries "
                "that are not from %s; migrate copies into an empty database\n",
                store_name(to), (long long)there.reports, (long long)there_quarantined,
                store_name(from));
        rc = EXIT_DATAERR;
        goto done;
    }
    struct store_totals total;
    if (store_summary_totals(from, &all, &total, NULL, NULL, err) != TR_OK) {
        fprintf(stderr, "tlsrptd migrate: %s\n", err);
        rc = EXIT_TEMPFAIL;
        goto done;
    }
    if (last)
        fprintf(stderr, "migrate: resuming after report %lld\n", (long long)last);
    size_t copied = 0, dups = 0;
    time_t started = time(NULL), shown = 0;
    long long tenth_shown = -1; /* a line at each tenth of the way, and at least once a second */
    for (;;) {
        struct batch b = {v, 0, (size_t)a.batch, 0, false};
        if (store_scan_reports(from, last, (size_t)a.batch, take_report, &b, err) != TR_OK) {
            rc = EXIT_TEMPFAIL;
            break;
        }
        for (size_t i = 0; i < b.n && rc == 0; i++)
            if (store_report_details(from, v[i].row.id, take_policy, take_failure, &v[i], err) !=
                TR_OK)
                rc = EXIT_TEMPFAIL;
        if (b.oom && rc == 0) {
            snprintf(err, TR_ERRLEN, "out of memory");
            rc = EXIT_TEMPFAIL;
        }
        if (b.n == 0 || rc) {
            for (size_t i = 0; i < b.n; i++)
                copy_free(&v[i]);
            break;
        }
        tr_err e = store_begin(to, err);
        for (size_t i = 0; i < b.n && e == TR_OK; i++) {
            make_report(&v[i]);
            v[i].diags.warnings = (size_t)v[i].row.warnings;
            v[i].diags.notes = (size_t)v[i].row.notes;
            /* queued: a backend that can sends the whole batch at once */
            e = store_queue_report(to, &v[i].r, &v[i].diags, &v[i].row.src, &v[i].blob, &v[i].added,
                                   err);
        }
        int64_t next = v[b.n - 1].row.id;
        if (e == TR_OK)
            e = store_counter_add(to, key_report, next - last, NULL, err);
        if (e == TR_OK)
            e = store_commit(to, err);
        else
            store_rollback(to);
        for (size_t i = 0; i < b.n && e == TR_OK; i++)
            dups += v[i].added.duplicate;
        for (size_t i = 0; i < b.n; i++)
            copy_free(&v[i]);
        if (e != TR_OK) {
            rc = EXIT_TEMPFAIL;
            break;
        }
        last = next;
        copied += b.n;
        long long tenth = total.reports > 0 ? (long long)copied * 10 / total.reports : 0;
        if (time(NULL) != shown || tenth != tenth_shown) {
            shown = time(NULL);
            tenth_shown = tenth;
            fprintf(stderr, "migrate: %zu reports copied (of %lld), up to id %lld\n", copied,
                    (long long)total.reports, (long long)last);
        }
    }
    if (rc) {
        fprintf(stderr, "tlsrptd migrate: %s; run it again to resume\n", err);
        goto done;
    }
    fprintf(stderr, "migrate: %zu reports copied in %lld s%s\n", copied,
            (long long)(time(NULL) - started), dups ? " (some were duplicates)" : "");
    /* the quarantine, in batches too */
    for (;;) {
        struct qcopy qc = {to, qlast, 0, TR_OK, err};
        tr_err e = store_begin(to, err);
        if (e == TR_OK)
            e = store_scan_quarantine(from, qlast, BATCH, copy_entry, &qc, err);
        if (e == TR_OK)
            e = qc.rc;
        if (e == TR_OK && qc.n)
            e = store_counter_add(to, key_quarantine, qc.last - qlast, NULL, err);
        if (e == TR_OK)
            e = store_commit(to, err);
        else
            store_rollback(to);
        if (e != TR_OK) {
            fprintf(stderr, "tlsrptd migrate: the quarantine: %s; run it again to resume\n", err);
            rc = EXIT_TEMPFAIL;
            goto done;
        }
        if (qc.n == 0)
            break;
        qlast = qc.last;
    }
    /* the outcome counters, once: the source's replace what the copying counted */
    if (counters == 0) {
        struct counts c = {to, err, TR_OK};
        tr_err e = store_begin(to, err);
        if (e == TR_OK)
            e = store_counts(from, STORE_COUNT_OUTCOMES, set_outcome, &c, err);
        if (e == TR_OK)
            e = c.rc;
        if (e == TR_OK)
            e = store_counter_add(to, key_counters, 1, NULL, err);
        if (e == TR_OK)
            e = store_commit(to, err);
        else
            store_rollback(to);
        if (e != TR_OK) {
            fprintf(stderr, "tlsrptd migrate: the counters: %s; run it again to resume\n", err);
            rc = EXIT_TEMPFAIL;
            goto done;
        }
    }
    rc = verify(from, to, err);
    if (rc == 0)
        printf("migrate: %s -> %s: %lld reports; the summaries by domain, day, reporter, result "
               "type and policy type are equal\n",
               store_name(from), store_name(to), (long long)total.reports);
done:
    store_close(from);
    store_close(to);
    free(v);
    config_free(&cfg);
    return rc;
}
