/* store.c: the generic half of the storage port (store.h): picks the backend
 * by the db value, serializes validated reports for storage, writes reports,
 * policies and failure details, keeps the quarantine within its budget and
 * free of repeats, and batches rollup deltas.
 *
 * Rollups: every stored report adds to the per-day and all-time totals that
 * summaries and /metrics read (schema 002). Instead of updating those rows
 * once per report, a transaction collects the deltas in memory, keyed by
 * table and row, and writes each row once when it commits, in key order: a
 * batch of a thousand reports for a few domains is a few upserts, and two
 * collectors sharing one PostgreSQL database take the rows' locks in the same
 * order, so they do not deadlock on them. Sums saturate at INT64_MAX instead
 * of wrapping (hostile reports may claim 2^53 sessions each).
 *
 * The SQL here and in store_read.c is shared by the backends (?N
 * placeholders); the backends own connections and statement preparation. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "store_backend.h"
#include "tlsrptd/arena.h"
#include "tlsrptd/gz.h"
#include "tlsrptd/log.h"
#include "tlsrptd/store.h"

/* ---- rollup deltas -------------------------------------------------------------------------- */

enum rollup_kind {
    RU_SESSIONS,         /* (domain, start, reporter): successful, failed, reports */
    RU_FAILURES,         /* (domain, start, result type): failed */
    RU_DOMAIN,           /* (domain): successful, failed, reports */
    RU_DOMAIN_FAILURES,  /* (domain, result type): failed */
    RU_DOMAIN_REPORTERS, /* (domain, reporter): latest start (n[0]) */
    RU_REPORTS,          /* (start, reporter): reports */
    RU_OUTCOMES,         /* (source, outcome): count */
    RU_META,             /* (key): the value it is set to (n[0]), not a delta */
};

struct rollup_entry {
    uint64_t hash;
    int kind; /* enum rollup_kind; -1: empty slot */
    const char *a, *b;
    int64_t t;
    int64_t n[3];
};

struct rollups {
    struct rollup_entry *slots;
    size_t cap, n;
    struct arena keys; /* the strings of the entries' keys */
};

/* A report queued with a backend that sends them in batches: what the
 * rollups and counters need once its fate is known. */
struct queued {
    const struct report *r;
    const char *kind;
    struct store_added *out;
};

struct store {
    const struct store_backend *be;
    void *h;
    char *target;
    char *display; /* target as messages show it (no password), while h is closed */
    struct store_options opt;
    char *password_file;
    struct rollups ru;
    struct queued *queue;
    size_t nqueued, qcap;
};

#define SAT_MAX INT64_MAX

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > SAT_MAX - b)
        return SAT_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

static void rollups_reset(struct rollups *ru)
{
    arena_clear(&ru->keys);
    if (ru->n) {
        for (size_t i = 0; i < ru->cap; i++)
            ru->slots[i].kind = -1;
    }
    ru->n = 0;
    if (ru->cap > 65536) { /* a huge batch: give the memory back */
        free(ru->slots);
        ru->slots = NULL;
        ru->cap = 0;
    }
}

static uint64_t entry_hash(int kind, const char *a, const char *b, int64_t t)
{
    uint64_t h = fnv1a(FNV_INIT, &kind, sizeof kind);
    h = fnv1a(h, a, strlen(a) + 1);
    if (b)
        h = fnv1a(h, b, strlen(b) + 1);
    return fnv1a(h, &t, sizeof t);
}

static bool rollups_grow(struct rollups *ru)
{
    size_t cap = ru->cap ? ru->cap * 2 : 256;
    struct rollup_entry *slots = malloc(cap * sizeof *slots);
    if (slots == NULL)
        return false;
    for (size_t i = 0; i < cap; i++)
        slots[i].kind = -1;
    for (size_t i = 0; i < ru->cap; i++) {
        if (ru->slots[i].kind < 0)
            continue;
        size_t j = ru->slots[i].hash & (cap - 1);
        while (slots[j].kind >= 0)
            j = (j + 1) & (cap - 1);
        slots[j] = ru->slots[i];
    }
    free(ru->slots);
    ru->slots = slots;
    ru->cap = cap;
    return true;
}

/* The entry for (kind, a, b, t), created with zero counts. NULL: out of memory. */
static struct rollup_entry *rollup_at(struct rollups *ru, int kind, const char *a, const char *b,
                                      int64_t t)
{
    if ((ru->n + 1) * 4 > ru->cap * 3 && !rollups_grow(ru))
        return NULL;
    uint64_t h = entry_hash(kind, a, b, t);
    size_t j = h & (ru->cap - 1);
    for (;; j = (j + 1) & (ru->cap - 1)) {
        struct rollup_entry *e = &ru->slots[j];
        if (e->kind < 0)
            break;
        if (e->hash == h && e->kind == kind && e->t == t && strcmp(e->a, a) == 0 &&
            ((e->b == NULL && b == NULL) || (e->b && b && strcmp(e->b, b) == 0)))
            return e;
    }
    struct rollup_entry *e = &ru->slots[j];
    const char *ca = arena_strdup(&ru->keys, a), *cb = b ? arena_strdup(&ru->keys, b) : NULL;
    if (ca == NULL || (b && cb == NULL))
        return NULL;
    *e = (struct rollup_entry){h, kind, ca, cb, t, {0, 0, 0}};
    ru->n++;
    return e;
}

static bool rollup_add(struct rollups *ru, int kind, const char *a, const char *b, int64_t t,
                       int64_t n0, int64_t n1, int64_t n2)
{
    struct rollup_entry *e = rollup_at(ru, kind, a, b, t);
    if (e == NULL)
        return false;
    e->n[0] = sat_add(e->n[0], n0);
    e->n[1] = sat_add(e->n[1], n1);
    e->n[2] = sat_add(e->n[2], n2);
    return true;
}

static int cmp_entries(const void *pa, const void *pb)
{
    const struct rollup_entry *a = *(struct rollup_entry *const *)pa;
    const struct rollup_entry *b = *(struct rollup_entry *const *)pb;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    int c = strcmp(a->a, b->a);
    if (c)
        return c;
    return strcmp(a->b ? a->b : "", b->b ? b->b : "");
}

/* "a + b" that stops at INT64_MAX instead of failing (PostgreSQL) or turning
 * into a REAL (SQLite); b is never negative here. */
#define SAT(t, c)                                                                                  \
    "CASE WHEN " t "." c " > 9223372036854775807 - excluded." c                                    \
    " THEN 9223372036854775807 ELSE " t "." c " + excluded." c " END"

/* Each rollup table's upsert in three parts: the INSERT head, the rows (one
 * row of ?N arguments, or — PostgreSQL — every row of a batch from six arrays,
 * so a commit is one statement per table) and the conflict clause. The arrays
 * are the columns a, b, t, n0, n1, n2 of rollup_entry, sent in binary. */
struct rollup_stmt {
    const char *head, *values, *select, *conflict;
};
#define FROM_ARRAYS                                                                                \
    " FROM unnest(?1::text[], ?2::text[], ?3::bigint[], ?4::bigint[], ?5::bigint[], "              \
    "?6::bigint[]) AS x(a, b, t, n0, n1, n2)"

static const struct rollup_stmt rollup_stmts[] = {
    [RU_SESSIONS] = {"INSERT INTO rollup_sessions (policy_domain, start_time, reporter, "
                     "successful, failed, reports)",
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", " SELECT a, t, b, n0, n1, n2" FROM_ARRAYS,
                     " ON CONFLICT (start_time, policy_domain, reporter) DO UPDATE SET "
                     "successful = " SAT("rollup_sessions", "successful") ", failed = " SAT(
                         "rollup_sessions", "failed") ", reports = " SAT("rollup_sessions",
                                                                         "reports")},
    [RU_FAILURES] = {"INSERT INTO rollup_failures (policy_domain, start_time, result_type, failed)",
                     " VALUES (?1, ?2, ?3, ?4)", " SELECT a, t, b, n1" FROM_ARRAYS,
                     " ON CONFLICT (start_time, policy_domain, result_type) DO UPDATE SET "
                     "failed = " SAT("rollup_failures", "failed")},
    [RU_DOMAIN] = {"INSERT INTO domain_totals (policy_domain, successful, failed, reports)",
                   " VALUES (?1, ?2, ?3, ?4)", " SELECT a, n0, n1, n2" FROM_ARRAYS,
                   " ON CONFLICT (policy_domain) DO UPDATE SET successful = " SAT(
                       "domain_totals",
                       "successful") ", failed = " SAT("domain_totals",
                                                       "failed") ", reports = " SAT("domain_totals",
                                                                                    "reports")},
    [RU_DOMAIN_FAILURES] = {"INSERT INTO domain_failures (policy_domain, result_type, failed)",
                            " VALUES (?1, ?2, ?3)", " SELECT a, b, n1" FROM_ARRAYS,
                            " ON CONFLICT (policy_domain, result_type) DO UPDATE SET failed = " SAT(
                                "domain_failures", "failed")},
    [RU_DOMAIN_REPORTERS] = {"INSERT INTO domain_reporters (policy_domain, reporter, last_start)",
                             " VALUES (?1, ?2, ?3)", " SELECT a, b, n0" FROM_ARRAYS,
                             " ON CONFLICT (policy_domain, reporter) DO UPDATE SET last_start = "
                             "CASE WHEN excluded.last_start > domain_reporters.last_start THEN "
                             "excluded.last_start ELSE domain_reporters.last_start END"},
    [RU_REPORTS] = {"INSERT INTO rollup_reports (start_time, reporter, reports)",
                    " VALUES (?1, ?2, ?3)", " SELECT t, a, n2" FROM_ARRAYS,
                    " ON CONFLICT (start_time, reporter) DO UPDATE SET reports = " SAT(
                        "rollup_reports", "reports")},
    [RU_OUTCOMES] = {"INSERT INTO outcome_counts (source, outcome, count)", " VALUES (?1, ?2, ?3)",
                     " SELECT a, b, n0" FROM_ARRAYS,
                     " ON CONFLICT (source, outcome) DO UPDATE SET count = " SAT("outcome_counts",
                                                                                 "count")},
    [RU_META] = {"INSERT INTO meta (key, value)", " VALUES (?1, ?2)", " SELECT a, n0" FROM_ARRAYS,
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value"},
};
#define NROLLUPS (sizeof rollup_stmts / sizeof *rollup_stmts)
static const unsigned rollup_key[] = {
    [RU_SESSIONS] = STMT_ROLLUP_SESSIONS,
    [RU_FAILURES] = STMT_ROLLUP_FAILURES,
    [RU_DOMAIN] = STMT_DOMAIN_TOTALS,
    [RU_DOMAIN_FAILURES] = STMT_DOMAIN_FAILURES,
    [RU_DOMAIN_REPORTERS] = STMT_DOMAIN_REPORTERS,
    [RU_REPORTS] = STMT_ROLLUP_REPORTS,
    [RU_OUTCOMES] = STMT_OUTCOMES,
    [RU_META] = STMT_META_SET,
};

/* The arguments of each upsert's one-row form. */
static const size_t rollup_nargs[] = {
    [RU_SESSIONS] = 6,         [RU_FAILURES] = 4, [RU_DOMAIN] = 4,   [RU_DOMAIN_FAILURES] = 3,
    [RU_DOMAIN_REPORTERS] = 3, [RU_REPORTS] = 3,  [RU_OUTCOMES] = 3, [RU_META] = 2,
};
/* SQLite: rows upserted by one statement where a batch has that many of a
 * table (the rest one at a time): a statement's fixed cost, about as much as
 * a row's, is paid once for them all. */
#define ROLLUP_ROWS 16

/* Appends " (?F, ?F+1, ...), (...)" to t: rows of cols placeholders
 * numbered from first. */
static void append_value_rows(char *t, size_t size, size_t rows, size_t cols, size_t first)
{
    for (size_t r = 0; r < rows; r++) {
        size_t used = strlen(t);
        snprintf(t + used, size - used, "%s(", r ? ", " : " ");
        for (size_t a = 0; a < cols; a++) {
            used = strlen(t);
            snprintf(t + used, size - used, "%s?%zu", a ? ", " : "", first + r * cols + a);
        }
        used = strlen(t);
        snprintf(t + used, size - used, ")");
    }
}

/* The text of each upsert, head + rows + conflict: [bulk][kind], built once;
 * and the ROLLUP_ROWS-row form of each. */
static char rollup_texts[2][NROLLUPS][1024];
static char rollup_rows_texts[NROLLUPS][2048];
static pthread_once_t rollup_texts_once = PTHREAD_ONCE_INIT;

static void build_rollup_texts(void)
{
    for (size_t k = 0; k < NROLLUPS; k++) {
        for (int bulk = 0; bulk < 2; bulk++)
            snprintf(rollup_texts[bulk][k], sizeof rollup_texts[bulk][k], "%s%s%s",
                     rollup_stmts[k].head, bulk ? rollup_stmts[k].select : rollup_stmts[k].values,
                     rollup_stmts[k].conflict);
        char *t = rollup_rows_texts[k];
        size_t size = sizeof rollup_rows_texts[k];
        snprintf(t, size, "%s VALUES", rollup_stmts[k].head);
        append_value_rows(t, size, ROLLUP_ROWS, rollup_nargs[k], 1);
        size_t used = strlen(t);
        snprintf(t + used, size - used, "%s", rollup_stmts[k].conflict);
    }
}

static const char *rollup_text(int kind, bool bulk)
{
    pthread_once(&rollup_texts_once, build_rollup_texts);
    return rollup_texts[bulk][kind];
}

static const char *rollup_rows_text(int kind)
{
    pthread_once(&rollup_texts_once, build_rollup_texts);
    return rollup_rows_texts[kind];
}

/* SQLite: the one-row upserts calls[0..k), those of a table in a run (they
 * are sorted), ROLLUP_ROWS rows to a statement where there are enough. */
static tr_err rollups_exec_rows(struct store *st, const struct sql_call *calls,
                                const struct rollup_entry *const *v, size_t k, char *err)
{
    tr_err rc = TR_OK;
    for (size_t i = 0; i < k && rc == TR_OK;) {
        int kind = v[i]->kind;
        size_t run = 0;
        while (i + run < k && v[i + run]->kind == kind && run < ROLLUP_ROWS)
            run++;
        if (run < ROLLUP_ROWS) { /* the rest of this table's rows */
            for (size_t end = i + run; i < end && rc == TR_OK; i++)
                rc = st->be->exec(st->h, calls[i].key, calls[i].sql, calls[i].args, calls[i].nargs,
                                  NULL, NULL, NULL, err);
            continue;
        }
        struct sql_arg args[ROLLUP_ROWS * SQL_CALL_MAX_ARGS];
        size_t n = 0;
        for (size_t end = i + run; i < end; i++) {
            memcpy(&args[n], calls[i].args, calls[i].nargs * sizeof *args);
            n += calls[i].nargs;
        }
        rc = st->be->exec(st->h, STMT_ROLLUP_ROWS_FIRST + (unsigned)kind, rollup_rows_text(kind),
                          args, n, NULL, NULL, NULL, err);
    }
    return rc;
}

/* PostgreSQL: each table's rows of the batch in one statement (its columns
 * as arrays), and the COMMIT in the same round trip when commit. */
static tr_err rollups_flush_arrays(struct store *st, struct rollup_entry **v, size_t k, bool commit,
                                   char *err)
{
    const char **text = malloc(2 * k * sizeof *text); /* a, then b */
    int64_t *num = malloc(4 * k * sizeof *num);       /* t, n0, n1, n2 */
    if (text == NULL || num == NULL) {
        free(text);
        free(num);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < k; i++) {
        text[i] = v[i]->a;
        text[k + i] = v[i]->b;
        num[i] = v[i]->t;
        for (size_t c = 0; c < 3; c++)
            num[(c + 1) * k + i] = v[i]->n[c];
    }
    struct sql_call calls[NROLLUPS];
    size_t ncalls = 0;
    for (size_t i = 0; i < k;) { /* the entries are sorted: each table's are a run */
        int kind = v[i]->kind;
        size_t from = i;
        while (i < k && v[i]->kind == kind)
            i++;
        size_t m = i - from;
        calls[ncalls++] =
            (struct sql_call){rollup_key[kind] + STMT_ROLLUP_ARRAYS_OFFSET,
                              rollup_text(kind, true),
                              {sql_texts(text + from, m), sql_texts(text + k + from, m),
                               sql_ints(num + from, m), sql_ints(num + k + from, m),
                               sql_ints(num + 2 * k + from, m), sql_ints(num + 3 * k + from, m)},
                              6};
    }
    tr_err rc = st->be->exec_batch(st->h, calls, ncalls, commit, err);
    free(text);
    free(num);
    return rc;
}

/* Write the transaction's rollup rows: a backend with exec_batch (PostgreSQL)
 * gets each table's as arrays, the COMMIT with them (one round trip less;
 * *committed says so); SQLite gets them as rows. */
static tr_err rollups_flush(struct store *st, bool *committed, char *err)
{
    struct rollups *ru = &st->ru;
    *committed = false;
    if (ru->n == 0)
        return TR_OK;
    struct rollup_entry **v = malloc(ru->n * sizeof *v);
    if (v == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < ru->cap; i++)
        if (ru->slots[i].kind >= 0)
            v[k++] = &ru->slots[i];
    qsort(v, k, sizeof *v, cmp_entries);
    if (st->be->dialect == STORE_DIALECT_POSTGRESQL && st->be->exec_batch) {
        tr_err rc = rollups_flush_arrays(st, v, k, true, err);
        *committed = true; /* or rolled back */
        free(v);
        return rc;
    }
    struct sql_call *calls = calloc(k, sizeof *calls);
    if (calls == NULL) {
        free(v);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < k; i++) {
        const struct rollup_entry *e = v[i];
        struct sql_call *c = &calls[i];
        struct sql_arg *args = c->args;
        size_t n = 0;
        c->key = rollup_key[e->kind];
        c->sql = rollup_text(e->kind, false);
        if (e->kind == RU_REPORTS) /* keyed by time first */
            args[n++] = sql_int(e->t);
        args[n++] = sql_text(e->a);
        switch (e->kind) {
        case RU_SESSIONS:
            args[n++] = sql_int(e->t);
            args[n++] = sql_text(e->b);
            args[n++] = sql_int(e->n[0]);
            args[n++] = sql_int(e->n[1]);
            args[n++] = sql_int(e->n[2]);
            break;
        case RU_FAILURES:
            args[n++] = sql_int(e->t);
            args[n++] = sql_text(e->b);
            args[n++] = sql_int(e->n[1]);
            break;
        case RU_DOMAIN:
            args[n++] = sql_int(e->n[0]);
            args[n++] = sql_int(e->n[1]);
            args[n++] = sql_int(e->n[2]);
            break;
        case RU_DOMAIN_FAILURES:
            args[n++] = sql_text(e->b);
            args[n++] = sql_int(e->n[1]);
            break;
        case RU_DOMAIN_REPORTERS:
            args[n++] = sql_text(e->b);
            args[n++] = sql_int(e->n[0]);
            break;
        case RU_REPORTS:
            args[n++] = sql_int(e->n[2]);
            break;
        case RU_META:
            args[n++] = sql_int(e->n[0]);
            break;
        default: /* RU_OUTCOMES */
            args[n++] = sql_text(e->b);
            args[n++] = sql_int(e->n[0]);
            break;
        }
        c->nargs = n;
    }
    tr_err rc = rollups_exec_rows(st, calls, (const struct rollup_entry **)v, k, err);
    free(calls);
    free(v);
    return rc;
}

static void queue_reset(struct store *st)
{
    st->nqueued = 0;
    if (st->qcap > 4096) {
        free(st->queue);
        st->queue = NULL;
        st->qcap = 0;
    }
}

/* ---- opening -------------------------------------------------------------------------------- */

bool store_is_postgresql(const char *db)
{
    return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

const char *store_sqlite_path(const char *db)
{
    return strncmp(db, "sqlite:", 7) == 0 ? db + 7 : db;
}

/* Open the backend's connection. With defer_sync, what the log already holds
 * may be commits of a process killed before it synced them: this one would see
 * them (and answer "duplicate" for them) as if they were on disk, so they are
 * synced first. On failure st->h is NULL. */
static tr_err open_backend(struct store *st, char *err)
{
    tr_err rc = st->be->open(st->target, &st->opt, &st->h, err);
    if (rc == TR_OK && st->opt.defer_sync)
        rc = store_sync(st, err);
    if (rc != TR_OK) {
        if (st->h)
            st->be->close(st->h);
        st->h = NULL;
    }
    return rc;
}

tr_err store_open(const char *db, const struct store_options *opt, struct store **out, char *err)
{
    static const struct store_options defaults = STORE_DEFAULT_OPTIONS;
    *out = NULL;
    struct store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return tr_fail(err, TR_ENOMEM, "database %s: out of memory", db);
    st->opt = opt ? *opt : defaults;
    bool pg = store_is_postgresql(db);
    st->be = pg ? &store_pg_backend : &store_sqlite_backend;
    st->target = strdup(pg ? db : store_sqlite_path(db));
    if (st->opt.password_file)
        st->password_file = strdup(st->opt.password_file);
    st->opt.password_file = st->password_file;
    if (st->target == NULL || (opt && opt->password_file && st->password_file == NULL)) {
        store_close(st);
        return tr_fail(err, TR_ENOMEM, "database %s: out of memory", db);
    }
    if (!pg && st->target[0] == 0) {
        store_close(st);
        return tr_fail(err, TR_EUSAGE, "database: an empty path");
    }
    tr_err rc = open_backend(st, err);
    if (rc != TR_OK) {
        store_close(st);
        return rc;
    }
    if ((st->display = strdup(st->be->display(st->h))) == NULL) {
        store_close(st);
        return tr_fail(err, TR_ENOMEM, "database: out of memory");
    }
    *out = st;
    return TR_OK;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    if (st->h)
        st->be->close(st->h);
    rollups_reset(&st->ru);
    free(st->ru.slots);
    free(st->queue);
    free(st->target);
    free(st->display);
    free(st->password_file);
    free(st);
}

const char *store_name(const struct store *st)
{
    return st->h ? st->be->display(st->h) : st->display;
}

const char *store_backend_name(const struct store *st)
{
    return st->be->name;
}

enum store_dialect store_dialect(const struct store *st)
{
    return st->be->dialect;
}

tr_err store_reconnect(struct store *st, char *err)
{
    if (st->h)
        st->be->close(st->h);
    st->h = NULL;
    rollups_reset(&st->ru);
    return open_backend(st, err);
}

static tr_err not_open(const struct store *st, char *err)
{
    return tr_fail(err, TR_EDB, "database %s: not connected", store_name(st));
}

bool store_connected(struct store *st)
{
    /* the backends answer TR_EDB for a lost connection or file (a read-only
     * connection is TR_EUSAGE once those checks passed, without a query) */
    char why[TR_ERRLEN];
    return st->h != NULL && st->be->check_writable(st->h, why) != TR_EDB;
}

tr_err store_exec(struct store *st, unsigned key, const char *sql, const struct sql_arg *args,
                  size_t nargs, sql_row_fn fn, void *cls, int64_t *changes, char *err)
{
    if (st->h == NULL)
        return not_open(st, err);
    return st->be->exec(st->h, key, sql, args, nargs, fn, cls, changes, err);
}

tr_err store_check_writable(struct store *st, char *why)
{
    if (st->h == NULL)
        return not_open(st, why);
    return st->be->check_writable(st->h, why);
}

tr_err store_start_maintenance(struct store *st, char *err)
{
    return st->h ? st->be->start_maintenance(st->h, err) : not_open(st, err);
}

void store_stop_maintenance(struct store *st)
{
    if (st->h)
        st->be->stop_maintenance(st->h);
}

int64_t store_size_bytes(struct store *st)
{
    return st->h ? st->be->size_bytes(st->h) : 0;
}

/* ---- transactions --------------------------------------------------------------------------- */

tr_err store_begin(struct store *st, char *err)
{
    rollups_reset(&st->ru);
    queue_reset(st);
    return st->h ? st->be->begin(st->h, err) : not_open(st, err);
}

tr_err store_commit(struct store *st, char *err)
{
    if (st->h == NULL)
        return not_open(st, err);
    bool committed = false;
    tr_err rc = store_flush(st, err);
    if (rc == TR_OK)
        rc = rollups_flush(st, &committed, err);
    rollups_reset(&st->ru);
    queue_reset(st);
    if (rc != TR_OK) {
        st->be->rollback(st->h);
        return rc;
    }
    return committed ? TR_OK : st->be->commit(st->h, err);
}

int store_sync_fd(struct store *st, tr_err *rc, char *err)
{
    *rc = TR_OK;
    return st->h && st->be->sync_fd ? st->be->sync_fd(st->h, rc, err) : -1;
}

tr_err store_sync(struct store *st, char *err)
{
    tr_err rc;
    int fd = store_sync_fd(st, &rc, err);
    if (fd < 0)
        return rc;
    if (fdatasync(fd) != 0)
        rc = tr_fail(err, TR_EDB, "database %s: syncing its log: %s", store_name(st),
                     strerror(errno));
    close(fd);
    return rc;
}

void store_rollback(struct store *st)
{
    rollups_reset(&st->ru);
    queue_reset(st);
    if (st->h)
        st->be->rollback(st->h);
}

bool store_in_transaction(const struct store *st)
{
    return st->h && st->be->in_transaction(st->h);
}

/* ---- serializing ---------------------------------------------------------------------------- */

/* A JSON string's text as json_dumps writes it with JSON_ENSURE_ASCII,
 * appended to b: false when s is not UTF-8 or b cannot grow. */
static bool append_json_string(struct buf *b, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (buf_append(b, "\"", 1) != TR_OK)
        return false;
    size_t plain = 0; /* start of the run of bytes that need no escape */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (buf_append(b, s + plain, i - plain) != TR_OK)
            return false;
        char seq[12];
        size_t len = 2;
        uint32_t cp = c;
        size_t width = 1;
        seq[0] = '\\';
        if (c >= 0x80) { /* a UTF-8 sequence: \uXXXX, or a surrogate pair */
            width = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (c < 0xc2 || c > 0xf4 || i + width > n)
                return false;
            cp = c & (0x3f >> (width - 1));
            for (size_t k = 1; k < width; k++) {
                if ((s[i + k] & 0xc0) != 0x80)
                    return false;
                cp = cp << 6 | (s[i + k] & 0x3f);
            }
        }
        switch (cp) {
        case '"':
        case '\\':
            seq[1] = (char)cp;
            break;
        case '\b':
            seq[1] = 'b';
            break;
        case '\f':
            seq[1] = 'f';
            break;
        case '\n':
            seq[1] = 'n';
            break;
        case '\r':
            seq[1] = 'r';
            break;
        case '\t':
            seq[1] = 't';
            break;
        default: {
            uint32_t units[2] = {cp, 0};
            size_t nunits = 1;
            if (cp >= 0x10000) {
                units[0] = 0xd800 | ((cp - 0x10000) >> 10);
                units[1] = 0xdc00 | ((cp - 0x10000) & 0x3ff);
                nunits = 2;
            }
            len = 0;
            for (size_t u = 0; u < nunits; u++) {
                seq[len++] = '\\';
                seq[len++] = 'u';
                for (int shift = 12; shift >= 0; shift -= 4)
                    seq[len++] = hex[(units[u] >> shift) & 0xf];
            }
        }
        }
        if (buf_append(b, seq, len) != TR_OK)
            return false;
        i += width;
        plain = i;
    }
    return buf_append(b, s + plain, n - plain) == TR_OK && buf_append(b, "\"", 1) == TR_OK;
}

/* j (an array of strings: policy-strings, mx-hosts) as compact JSON text in
 * ASCII, the text json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) gives, without
 * its generic machinery, which cost ingest a few per cent; json_dumps itself
 * for anything else. NULL for NULL, and when out of memory. */
static char *dump_or_null(const json_t *j)
{
    if (j == NULL)
        return NULL;
    struct buf b;
    buf_init(&b, SIZE_MAX / 2);
    bool ok = json_is_array(j) && buf_append(&b, "[", 1) == TR_OK;
    for (size_t i = 0; ok && i < json_array_size(j); i++) {
        const json_t *e = json_array_get(j, i);
        ok = json_is_string(e) && (i == 0 || buf_append(&b, ",", 1) == TR_OK) &&
             append_json_string(&b, (const unsigned char *)json_string_value(e),
                                json_string_length(e));
    }
    if (ok && buf_append(&b, "]", 1) == TR_OK)
        return (char *)b.data;
    buf_free(&b);
    return json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
}

void store_blob_free(struct store_blob *b)
{
    for (size_t i = 0; i < b->npolicies; i++) {
        free(b->policy_strings[i]);
        free(b->mx_hosts[i]);
    }
    free(b->policy_strings);
    free(b->mx_hosts);
    free(b->diagnostics);
    buf_free(&b->owned);
    memset(b, 0, sizeof *b);
}

tr_err store_serialize(const struct report *r, const struct diag_list *diags, const void *raw,
                       size_t rawlen, size_t json_size, struct store_blob *out, char *err)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = raw;
    out->encoding = "gzip";
    out->data = raw;
    out->len = rawlen;
    out->json_size = json_size;
    if (gz_is_compressed(raw, rawlen)) {
        if (!(rawlen >= 2 && b[0] == 0x1f && b[1] == 0x8b))
            out->encoding = "zlib";
    } else if (rawlen <= STORE_PLAIN_MAX) {
        out->encoding = "identity"; /* compressing would save under 3 KiB for 10 µs */
    } else {
        buf_init(&out->owned, rawlen + rawlen / 4 + 4096); /* zlib's worst case fits */
        if (gz_deflate(raw, rawlen, 6, &out->owned, err) != TR_OK) {
            store_blob_free(out);
            return TR_ENOMEM;
        }
        out->data = out->owned.data;
        out->len = out->owned.len;
    }
    json_t *dj = diags->n ? diag_list_json(diags) : NULL; /* most reports: none */
    if (dj && json_array_size(dj))
        out->diagnostics = json_dumps(dj, JSON_COMPACT);
    json_decref(dj);
    out->npolicies = r->npolicies;
    out->policy_strings = calloc(r->npolicies, sizeof *out->policy_strings);
    out->mx_hosts = calloc(r->npolicies, sizeof *out->mx_hosts);
    if (out->policy_strings == NULL || out->mx_hosts == NULL) {
        out->npolicies = 0;
        store_blob_free(out);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < r->npolicies; i++) {
        out->policy_strings[i] = dump_or_null(r->policies[i].policy_strings);
        out->mx_hosts[i] = dump_or_null(r->policies[i].mx_hosts);
    }
    return TR_OK;
}

/* ---- reports -------------------------------------------------------------------------------- */

/* The source's columns as arguments (received_at first, then the fields of
 * struct store_source in order): 8 of them. */
static struct sql_arg *source_args(struct sql_arg *a, const struct store_source *src)
{
    *a++ = sql_int(src->received_at ? src->received_at : (int64_t)time(NULL));
    const char *fields[] = {src->kind,       src->name,          src->client,
                            src->message_id, src->report_domain, src->report_submitter,
                            src->subject};
    for (size_t i = 0; i < 7; i++)
        *a++ = sql_text(fields[i]);
    return a;
}

static tr_err count_outcome(struct store *st, const char *source, const char *outcome, char *err)
{
    if (!rollup_add(&st->ru, RU_OUTCOMES, source ? source : "", outcome, 0, 1, 0, 0))
        return tr_fail(err, TR_ENOMEM, "out of memory");
    return TR_OK;
}

/* The INSERT of n (1..FAILURE_ROWS_MAX) failure details: one statement for
 * the failure details of a policy, not one each (most policies have a few). */
#define FAILURE_COLUMNS 9
static char failure_texts[FAILURE_ROWS_MAX][FAILURE_ROWS_MAX * 80 + 256];
static pthread_once_t failure_texts_once = PTHREAD_ONCE_INIT;

static void build_failure_texts(void)
{
    for (size_t n = 1; n <= FAILURE_ROWS_MAX; n++) {
        char *t = failure_texts[n - 1];
        size_t size = sizeof failure_texts[n - 1];
        snprintf(t, size, "%s",
                 "INSERT INTO failure_details (policy, result_type, sending_mta_ip, "
                 "receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, "
                 "additional_information, failure_reason_code) VALUES");
        append_value_rows(t, size, n, FAILURE_COLUMNS, 1);
    }
}

static const char *failure_insert(size_t n)
{
    pthread_once(&failure_texts_once, build_failure_texts);
    return failure_texts[n - 1];
}

/* Runs an INSERT of one row and gives the new row's id (0 when ON CONFLICT
 * DO NOTHING inserted nothing): from the backend's last_insert_id where it
 * has one (SQLite: cheaper than RETURNING), else from returning_id, the same
 * statement with "RETURNING id". */
static tr_err insert_with_id(struct store *st, unsigned key, const char *sql,
                             const char *returning_id, const struct sql_arg *args, size_t nargs,
                             int64_t *id, char *err)
{
    *id = 0;
    if (st->be->last_insert_id == NULL)
        return st->be->exec(st->h, key, returning_id, args, nargs, sql_take_int, id, NULL, err);
    int64_t added = 0;
    tr_err rc = st->be->exec(st->h, key, sql, args, nargs, NULL, NULL, &added, err);
    if (rc == TR_OK && added > 0)
        *id = st->be->last_insert_id(st->h);
    return rc;
}

static tr_err insert_policy(struct store *st, int64_t report, size_t idx,
                            const struct report_policy *p, const struct store_blob *blob, char *err)
{
#define SQL_POLICY                                                                                 \
    "INSERT INTO policies (report, idx, policy_type, policy_domain, policy_strings, mx_hosts, "    \
    "successful_sessions, failed_sessions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    static const char sql_policy[] = SQL_POLICY " RETURNING id", sql_policy_plain[] = SQL_POLICY;
    struct sql_arg pa[] = {
        sql_int(report),
        sql_int((int64_t)idx),
        sql_text(p->policy_type),
        sql_text(p->policy_domain),
        sql_text(blob->policy_strings[idx]),
        sql_text(blob->mx_hosts[idx]),
        sql_int(p->successful_sessions),
        sql_int(p->failed_sessions),
    };
    int64_t policy = 0;
    tr_err rc =
        insert_with_id(st, STMT_INSERT_POLICY, sql_policy_plain, sql_policy, pa, 8, &policy, err);
    for (size_t i = 0; rc == TR_OK && i < p->nfailures;) {
        size_t rows = p->nfailures - i < FAILURE_ROWS_MAX ? p->nfailures - i : FAILURE_ROWS_MAX;
        struct sql_arg fa[FAILURE_ROWS_MAX * FAILURE_COLUMNS], *a = fa;
        for (size_t k = 0; k < rows; k++, i++) {
            const struct report_failure *f = &p->failures[i];
            *a++ = sql_int(policy);
            *a++ = sql_text(f->result_type);
            *a++ = sql_text(f->sending_mta_ip);
            *a++ = sql_text(f->receiving_mx_hostname);
            *a++ = sql_text(f->receiving_mx_helo);
            *a++ = sql_text(f->receiving_ip);
            *a++ = sql_int(f->failed_session_count);
            *a++ = sql_text(f->additional_information);
            *a++ = sql_text(f->failure_reason_code);
        }
        rc = st->be->exec(st->h, STMT_INSERT_FAILURE + (unsigned)rows - 1, failure_insert(rows), fa,
                          (size_t)(a - fa), NULL, NULL, NULL, err);
    }
    return rc;
}

/* The rollup deltas of one stored report: per policy domain (reports counted
 * once per domain), per result type, per reporter. */
static tr_err add_rollups(struct store *st, const struct report *r, char *err)
{
    struct rollups *ru = &st->ru;
    const char *org = r->organization_name;
    if (!rollup_add(ru, RU_REPORTS, org, NULL, r->start_time, 0, 0, 1))
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->npolicies; i++) {
        const struct report_policy *p = &r->policies[i];
        const char *d = p->policy_domain ? p->policy_domain : "";
        bool first = true; /* the first policy of this report for domain d */
        for (size_t k = 0; k < i && first; k++) {
            const char *dk = r->policies[k].policy_domain ? r->policies[k].policy_domain : "";
            first = strcmp(dk, d) != 0;
        }
        if (!rollup_add(ru, RU_SESSIONS, d, org, r->start_time, p->successful_sessions,
                        p->failed_sessions, first) ||
            !rollup_add(ru, RU_DOMAIN, d, NULL, 0, p->successful_sessions, p->failed_sessions,
                        first))
            return tr_fail(err, TR_ENOMEM, "out of memory");
        struct rollup_entry *e = rollup_at(ru, RU_DOMAIN_REPORTERS, d, org, 0);
        if (e == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        if (e->n[2] == 0 || r->start_time > e->n[0]) /* n[0]: the latest start */
            e->n[0] = r->start_time;
        e->n[2] = 1;
        for (size_t k = 0; k < p->nfailures; k++) {
            const struct report_failure *f = &p->failures[k];
            if (!rollup_add(ru, RU_FAILURES, d, f->result_type, r->start_time, 0,
                            f->failed_session_count, 0) ||
                !rollup_add(ru, RU_DOMAIN_FAILURES, d, f->result_type, 0, 0,
                            f->failed_session_count, 0))
                return tr_fail(err, TR_ENOMEM, "out of memory");
        }
    }
    return TR_OK;
}

#define SQL_REPORT_INSERT                                                                          \
    "INSERT INTO reports (organization_name, report_id, start_time, end_time, "                    \
    "start_datetime, end_datetime, contact_info, received_at, source_kind, source_name, "          \
    "source_client, source_message_id, source_report_domain, source_submitter, "                   \
    "source_subject, warning_count, note_count, diagnostics, raw_encoding, raw, raw_size, "        \
    "dkim_result, dkim_domain, dkim_aligned, dkim_reason) "                                        \
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "         \
    "?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) "                                                     \
    "ON CONFLICT (organization_name, report_id, start_time, end_time) DO NOTHING"
static const char sql_report_insert[] = SQL_REPORT_INSERT " RETURNING id";
static const char sql_report_insert_plain[] = SQL_REPORT_INSERT;
static const char sql_report_find[] = "SELECT id FROM reports WHERE organization_name = ?1 AND "
                                      "report_id = ?2 AND start_time = ?3 AND end_time = ?4";
#define REPORT_ARGS 25

/* The reports row of r as the INSERT's arguments; false when r and blob
 * disagree. */
static bool report_args(struct sql_arg a[REPORT_ARGS], const struct report *r,
                        const struct diag_list *diags, const struct store_source *src,
                        const struct store_blob *blob)
{
    if (blob->npolicies != r->npolicies)
        return false;
    struct sql_arg head[] = {
        sql_text(r->organization_name), sql_text(r->report_id),  sql_int(r->start_time),
        sql_int(r->end_time),           sql_text(r->start_text), sql_text(r->end_text),
        sql_text(r->contact_info),
    };
    memcpy(a, head, sizeof head);
    struct sql_arg *rest = source_args(&a[7], src);
    *rest++ = sql_int((int64_t)diags->warnings);
    *rest++ = sql_int((int64_t)diags->notes);
    *rest++ = sql_text(blob->diagnostics);
    *rest++ = sql_text(blob->encoding);
    *rest++ = sql_blob(blob->len ? blob->data : "", blob->len);
    *rest++ = sql_int((int64_t)blob->json_size);
    *rest++ = sql_text(src->dkim_result);
    *rest++ = sql_text(src->dkim_result ? src->dkim_domain : NULL);
    *rest++ = src->dkim_result ? sql_int(src->dkim_aligned) : sql_text(NULL);
    *rest = sql_text(src->dkim_result ? src->dkim_reason : NULL);
    return true;
}

/* A report's fate is known: its rollups (when stored) and its outcome. */
static tr_err report_done(struct store *st, const struct report *r, const char *kind,
                          bool duplicate, char *err)
{
    if (duplicate)
        return count_outcome(st, kind, "duplicate", err);
    tr_err rc = add_rollups(st, r, err);
    return rc == TR_OK ? count_outcome(st, kind, "stored", err) : rc;
}

/* The generic way: the row, then each policy and its failure details. */
static tr_err insert_rows(struct store *st, const struct sql_arg *a, const struct report *r,
                          const struct store_blob *blob, int64_t *id, bool *duplicate, char *err)
{
    int64_t report = 0; /* 0: the key is taken */
    tr_err rc = insert_with_id(st, STMT_INSERT_REPORT, sql_report_insert_plain, sql_report_insert,
                               a, REPORT_ARGS, &report, err);
    if (rc != TR_OK)
        return rc;
    if (report == 0) {
        /* the (organization, report-id, start, end) key is taken: a duplicate */
        rc = st->be->exec(st->h, STMT_FIND_REPORT, sql_report_find, a, 4, sql_take_int, id, NULL,
                          err);
        if (rc == TR_OK && *id == 0)
            rc = tr_fail(err, TR_EDB, "database %s: a duplicate report vanished", store_name(st));
        *duplicate = true;
        return rc;
    }
    for (size_t i = 0; i < r->npolicies && rc == TR_OK; i++)
        rc = insert_policy(st, report, i, &r->policies[i], blob, err);
    *id = report;
    return rc;
}

tr_err store_add_report(struct store *st, const struct report *r, const struct diag_list *diags,
                        const struct store_source *src, const struct store_blob *blob, int64_t *id,
                        bool *duplicate, char *err)
{
    *duplicate = false;
    *id = 0;
    if (st->h == NULL)
        return not_open(st, err);
    struct sql_arg a[REPORT_ARGS];
    if (!report_args(a, r, diags, src, blob))
        return tr_fail(err, TR_EDB, "database %s: report and blob disagree", store_name(st));
    tr_err rc = st->be->add_report
                    ? st->be->add_report(st->h, a, REPORT_ARGS, r, blob, id, duplicate, err)
                    : insert_rows(st, a, r, blob, id, duplicate, err);
    return rc == TR_OK ? report_done(st, r, src->kind, *duplicate, err) : rc;
}

tr_err store_queue_report(struct store *st, const struct report *r, const struct diag_list *diags,
                          const struct store_source *src, const struct store_blob *blob,
                          struct store_added *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (st->h == NULL)
        return not_open(st, err);
    if (st->be->queue_report == NULL) {
        tr_err rc = store_add_report(st, r, diags, src, blob, &out->id, &out->duplicate, err);
        out->done = rc == TR_OK;
        return rc;
    }
    struct sql_arg a[REPORT_ARGS];
    if (!report_args(a, r, diags, src, blob))
        return tr_fail(err, TR_EDB, "database %s: report and blob disagree", store_name(st));
    if (st->nqueued == st->qcap) {
        size_t cap = st->qcap ? 2 * st->qcap : 256;
        struct queued *q = realloc(st->queue, cap * sizeof *q);
        if (q == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        st->queue = q;
        st->qcap = cap;
    }
    tr_err rc =
        st->be->queue_report(st->h, a, REPORT_ARGS, r, blob, &out->id, &out->duplicate, err);
    if (rc == TR_OK)
        st->queue[st->nqueued++] = (struct queued){r, src->kind, out};
    return rc;
}

tr_err store_flush(struct store *st, char *err)
{
    if (st->nqueued == 0)
        return TR_OK;
    tr_err rc = st->be->flush_reports(st->h, err);
    for (size_t i = 0; i < st->nqueued && rc == TR_OK; i++) {
        struct queued *q = &st->queue[i];
        q->out->done = true;
        rc = report_done(st, q->r, q->kind, q->out->duplicate, err);
    }
    st->nqueued = 0;
    return rc;
}

/* ---- counters ------------------------------------------------------------------------------- */

tr_err store_counter_add(struct store *st, const char *key, int64_t n, int64_t *now, char *err)
{
    static const char sql[] =
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET "
        "value = meta.value + excluded.value RETURNING value";
    struct sql_arg a[] = {sql_text(key), sql_int(n)};
    int64_t v = 0;
    tr_err rc = store_exec(st, STMT_COUNTER_ADD, sql, a, 2, sql_take_int, &v, NULL, err);
    if (rc == TR_OK && now)
        *now = v;
    return rc;
}

tr_err store_meta_set_at_commit(struct store *st, const char *key, int64_t value, char *err)
{
    if (!store_in_transaction(st))
        return tr_fail(err, TR_EINVAL, "%s set outside a transaction", key);
    struct rollup_entry *e = rollup_at(&st->ru, RU_META, key, NULL, 0);
    if (e == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    e->n[0] = value; /* set, not added: the last value set in the transaction */
    return TR_OK;
}

tr_err store_counter_get(struct store *st, const char *key, int64_t *value, char *err)
{
    struct sql_arg a[] = {sql_text(key)};
    *value = 0;
    return store_exec(st, STMT_COUNTER_GET, "SELECT value FROM meta WHERE key = ?1", a, 1,
                      sql_take_int, value, NULL, err);
}

tr_err store_counter_delete(struct store *st, const char *key, char *err)
{
    struct sql_arg a[] = {sql_text(key)};
    return store_exec(st, STMT_NONE, "DELETE FROM meta WHERE key = ?1", a, 1, NULL, NULL, NULL,
                      err);
}

tr_err store_outcome_set(struct store *st, const char *source, const char *outcome, int64_t n,
                         char *err)
{
    static const char sql[] = "INSERT INTO outcome_counts (source, outcome, count) VALUES (?1, ?2, "
                              "?3) ON CONFLICT (source, outcome) DO UPDATE SET count = "
                              "excluded.count";
    struct sql_arg a[] = {sql_text(source), sql_text(outcome), sql_int(n)};
    return store_exec(st, STMT_NONE, sql, a, 3, NULL, NULL, NULL, err);
}

/* ---- the quarantine ------------------------------------------------------------------------- */

/* Who sent it and which bytes: the same input read again gets the same key. */
static void dedupe_key(const struct store_source *src, const void *raw, size_t rawlen, char out[80])
{
    uint64_t who = FNV_INIT;
    const char *parts[] = {src->kind, src->name, src->client};
    for (size_t i = 0; i < 3; i++)
        who = fnv1a(who, parts[i] ? parts[i] : "", parts[i] ? strlen(parts[i]) + 1 : 1);
    uint64_t what = raw ? fnv1a(FNV_INIT, raw, rawlen) : FNV_INIT;
    snprintf(out, 80, "%016llx-%016llx-%zu", (unsigned long long)who, (unsigned long long)what,
             rawlen);
}

/* Evict the oldest rows (not keep_id) while the totals exceed the budget. */
static tr_err quarantine_trim(struct store *st, int64_t keep_id, int64_t rows, int64_t bytes,
                              char *err)
{
    static const char sql_oldest[] = "SELECT id, COALESCE(raw_size * raw_kept, 0) FROM quarantine "
                                     "WHERE id <> ?1 ORDER BY id LIMIT 1";
    static const char sql_delete[] = "DELETE FROM quarantine WHERE id = ?1";
    int64_t evicted = 0, freed = 0;
    tr_err rc = TR_OK;
    while (rows > (int64_t)st->opt.quarantine_max_rows ||
           bytes > (int64_t)st->opt.quarantine_max_bytes) {
        struct sql_pair o = {0, 0}; /* id, bytes */
        struct sql_arg a[] = {sql_int(keep_id)};
        if ((rc = store_exec(st, STMT_QUARANTINE_OLDEST, sql_oldest, a, 1, sql_take_pair, &o, NULL,
                             err)) != TR_OK)
            return rc;
        if (o.a == 0)
            break; /* counters drifted; nothing left to evict */
        struct sql_arg d[] = {sql_int(o.a)};
        if ((rc = store_exec(st, STMT_QUARANTINE_DELETE, sql_delete, d, 1, NULL, NULL, NULL,
                             err)) != TR_OK)
            return rc;
        rows--, bytes -= o.b, evicted++, freed += o.b;
    }
    if (evicted == 0)
        return TR_OK;
    tr_warn("quarantine full: evicted the %lld oldest entries (%lld bytes)", (long long)evicted,
            (long long)freed);
    if ((rc = store_counter_add(st, "quarantine_rows", -evicted, NULL, err)) != TR_OK ||
        (rc = store_counter_add(st, "quarantine_bytes", -freed, NULL, err)) != TR_OK ||
        (rc = store_counter_add(st, "quarantine_evicted", evicted, NULL, err)) != TR_OK)
        return rc;
    return TR_OK;
}

tr_err store_add_quarantine(struct store *st, const struct store_source *src, const char *reason,
                            const void *raw, size_t rawlen, int64_t *id, char *err)
{
    static const char sql_find[] = "SELECT id FROM quarantine WHERE dedupe_key = ?1";
    static const char sql_insert[] =
        "INSERT INTO quarantine (received_at, source_kind, source_name, source_client, "
        "source_message_id, source_report_domain, source_submitter, source_subject, reason, raw, "
        "raw_size, raw_kept, dedupe_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
        "?12, ?13) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";
    *id = 0;
    if (st->h == NULL)
        return not_open(st, err);
    char key[80];
    dedupe_key(src, raw, rawlen, key);
    struct sql_arg k[] = {sql_text(key)};
    tr_err rc =
        st->be->exec(st->h, STMT_QUARANTINE_FIND, sql_find, k, 1, sql_take_int, id, NULL, err);
    if (rc != TR_OK || *id)
        return rc; /* read before: kept once */
    bool keep = raw != NULL && rawlen <= st->opt.quarantine_max_bytes;
    if (raw != NULL && !keep)
        tr_warn("quarantine: %s: %zu bytes exceed the quarantine budget of %zu; reason kept, "
                "bytes not",
                src->name ? src->name : src->kind, rawlen, st->opt.quarantine_max_bytes);
    struct sql_arg a[13];
    struct sql_arg *rest = source_args(a, src);
    *rest++ = sql_text(reason);
    *rest++ = keep ? sql_blob(rawlen ? raw : "", rawlen) : sql_text(NULL);
    *rest++ = sql_int((int64_t)rawlen);
    *rest++ = sql_int(keep);
    *rest = sql_text(key);
    if ((rc = st->be->exec(st->h, STMT_QUARANTINE_INSERT, sql_insert, a, 13, sql_take_int, id, NULL,
                           err)) != TR_OK)
        return rc;
    if (*id == 0) /* another writer kept it a moment ago */
        return st->be->exec(st->h, STMT_QUARANTINE_FIND, sql_find, k, 1, sql_take_int, id, NULL,
                            err);
    int64_t rows = 0, bytes = 0;
    if ((rc = store_counter_add(st, "quarantine_rows", 1, &rows, err)) != TR_OK ||
        (rc = store_counter_add(st, "quarantine_bytes", keep ? (int64_t)rawlen : 0, &bytes, err)) !=
            TR_OK ||
        (rc = quarantine_trim(st, *id, rows, bytes, err)) != TR_OK)
        return rc;
    return count_outcome(st, src->kind, "rejected", err);
}
