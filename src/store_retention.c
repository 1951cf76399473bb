/* store_retention.c: pruning by age (store.h, store_prune): reports with
 * their policies, failure details and raw bytes; the daily rollups; the
 * quarantine. Then the space goes back to the file system.
 *
 * Reports go in batches of PRUNE_BATCH, each its own transaction, so a
 * daemon's writer never waits for more than one batch; their policies and
 * failure details are deleted with them. The rollups (per day, per
 * domain) are what long-range summaries read, so pruning reports leaves them;
 * the all-time totals per domain (domain_totals, ...) are never pruned.
 *
 * SQLite gives freed pages back only with auto_vacuum: new databases are
 * made with auto_vacuum = INCREMENTAL (store_sqlite.c), and a database made
 * before gets it here, at its first prune that frees anything, with the one
 * VACUUM that setting needs. Then PRAGMA incremental_vacuum moves the free
 * pages out of the file and a TRUNCATE checkpoint shortens the file and the
 * WAL. PostgreSQL: autovacuum makes the space reusable; nothing to do here.
 * Knows no configuration: the caller turns "400d" into times. */
#include <string.h>
#include "store_backend.h"
#include "tlsrptd/log.h"
#include "tlsrptd/store.h"

#define PRUNE_BATCH 500 /* reports (or quarantine entries) per transaction */

static bool bounded(int64_t before)
{
    return before != INT64_MIN;
}

static tr_err take_count(struct store *st, const char *sql, int64_t before, int64_t *n,
                         int64_t *sum, char *err)
{
    struct sql_arg a[] = {sql_int(before)};
    struct sql_pair p = {0, 0};
    tr_err rc = store_exec(st, STMT_NONE, sql, a, 1, sql_take_pair, &p, NULL, err);
    *n = p.a;
    if (sum)
        *sum = p.b;
    return rc;
}

/* What would go (the counts of out). */
static tr_err count(struct store *st, const struct store_retention *r,
                    struct store_prune_stats *out, char *err)
{
    tr_err rc = TR_OK;
    int64_t n = 0;
    if (bounded(r->reports_before)) {
        if ((rc = take_count(st,
                             "SELECT COUNT(*), COALESCE(SUM(length(raw)), 0) FROM reports WHERE "
                             "start_time < ?1",
                             r->reports_before, &out->reports, &out->raw_bytes, err)) != TR_OK ||
            (rc = take_count(st,
                             "SELECT COUNT(*), 0 FROM policies p JOIN reports r ON r.id = "
                             "p.report WHERE r.start_time < ?1",
                             r->reports_before, &out->policies, NULL, err)) != TR_OK ||
            (rc = take_count(st,
                             "SELECT COUNT(*), 0 FROM failure_details f JOIN policies p ON p.id = "
                             "f.policy JOIN reports r ON r.id = p.report WHERE r.start_time < ?1",
                             r->reports_before, &out->failure_details, NULL, err)) != TR_OK)
            return rc;
    }
    if (bounded(r->rollups_before)) {
        static const char *const tables[] = {
            "SELECT COUNT(*), 0 FROM rollup_sessions WHERE start_time < ?1",
            "SELECT COUNT(*), 0 FROM rollup_failures WHERE start_time < ?1",
            "SELECT COUNT(*), 0 FROM rollup_reports WHERE start_time < ?1",
        };
        for (size_t i = 0; i < 3; i++) {
            if ((rc = take_count(st, tables[i], r->rollups_before, &n, NULL, err)) != TR_OK)
                return rc;
            out->rollup_rows += n;
        }
    }
    if (bounded(r->quarantine_before))
        rc = take_count(st,
                        "SELECT COUNT(*), COALESCE(SUM(raw_size * raw_kept), 0) FROM quarantine "
                        "WHERE received_at < ?1",
                        r->quarantine_before, &out->quarantine, &out->quarantine_bytes, err);
    return rc;
}

/* What one batch of a DELETE ... RETURNING freed (quarantine entries: their
 * bytes), and the sums over all batches. */
struct batch_sums {
    int64_t rows, bytes;             /* this batch */
    int64_t total_rows, total_bytes; /* every batch */
    bool quarantine;                 /* keep the quarantine's counters in step */
};

static int sum_row(void *cls, struct sql_row *row)
{
    struct batch_sums *b = cls;
    b->rows++;
    b->bytes += sql_null(row, 0) ? 0 : sql_col_int(row, 0);
    return 0;
}

/* Run sql (a DELETE of at most ?2 rows older than ?1, RETURNING one number
 * per row) in transactions until a batch is not full; the statements of
 * first (NULL-terminated, same arguments) run before it in each transaction. */
static tr_err in_batches(struct store *st, const char *const *first, const char *sql,
                         int64_t before, struct batch_sums *b, char *err)
{
    for (;;) {
        struct sql_arg a[] = {sql_int(before), sql_int(PRUNE_BATCH)};
        b->rows = b->bytes = 0;
        tr_err rc = store_begin(st, err);
        for (size_t i = 0; first && first[i] && rc == TR_OK; i++)
            rc = store_exec(st, STMT_NONE, first[i], a, 2, NULL, NULL, NULL, err);
        if (rc == TR_OK)
            rc = store_exec(st, STMT_NONE, sql, a, 2, sum_row, b, NULL, err);
        if (rc == TR_OK && b->quarantine && b->rows)
            rc = store_counter_add(st, "quarantine_rows", -b->rows, NULL, err);
        if (rc == TR_OK && b->quarantine && b->rows)
            rc = store_counter_add(st, "quarantine_bytes", -b->bytes, NULL, err);
        if (rc == TR_OK)
            rc = store_commit(st, err);
        else
            store_rollback(st);
        if (rc != TR_OK)
            return rc;
        b->total_rows += b->rows;
        b->total_bytes += b->bytes;
        if (b->rows < PRUNE_BATCH)
            return TR_OK;
    }
}

/* SQLite: hand the free pages back to the file system (see the top). */
static tr_err give_space_back(struct store *st, bool *rebuilt, char *err)
{
    int64_t mode = 0;
    tr_err rc =
        store_exec(st, STMT_NONE, "PRAGMA auto_vacuum", NULL, 0, sql_take_int, &mode, NULL, err);
    if (rc != TR_OK)
        return rc;
    if (mode == 0) { /* NONE: made before tlsrptd set it; once, the whole file is rebuilt */
        tr_info("database %s: rebuilding it once (VACUUM) so that pruned space can be given "
                "back from now on",
                store_name(st));
        if ((rc = store_exec(st, STMT_NONE, "PRAGMA auto_vacuum = INCREMENTAL", NULL, 0, NULL, NULL,
                             NULL, err)) != TR_OK ||
            (rc = store_exec(st, STMT_NONE, "VACUUM", NULL, 0, NULL, NULL, NULL, err)) != TR_OK)
            return rc;
        *rebuilt = true;
    } else if ((rc = store_exec(st, STMT_NONE, "PRAGMA incremental_vacuum", NULL, 0, NULL, NULL,
                                NULL, err)) != TR_OK) {
        return rc;
    }
    /* the file shrinks when the WAL is checkpointed; a reader in the way only delays that */
    char ignore[TR_ERRLEN];
    (void)store_exec(st, STMT_NONE, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, 0, NULL, NULL, NULL,
                     ignore);
    return TR_OK;
}

/* The oldest reports of one batch, and their policies' and failure details'
 * rows, deleted first: PostgreSQL's schema has no foreign keys to cascade
 * (SQLite's does, and finds nothing left to delete). */
#define BATCH_OF_REPORTS "SELECT id FROM reports WHERE start_time < ?1 ORDER BY id LIMIT ?2"
static const char *const report_children[] = {
    "DELETE FROM failure_details WHERE policy IN (SELECT p.id FROM policies p WHERE p.report IN "
    "(" BATCH_OF_REPORTS "))",
    "DELETE FROM policies WHERE report IN (" BATCH_OF_REPORTS ")",
    NULL,
};

tr_err store_prune(struct store *st, const struct store_retention *r, bool dry_run,
                   struct store_prune_stats *out, char *err)
{
    memset(out, 0, sizeof *out);
    out->size_before = out->size_after = store_size_bytes(st);
    tr_err rc = count(st, r, out, err);
    if (rc != TR_OK || dry_run)
        return rc;
    struct batch_sums reports = {0}, quarantine = {0, 0, 0, 0, true};
    if (bounded(r->reports_before) && out->reports &&
        (rc = in_batches(st, report_children,
                         "DELETE FROM reports WHERE id IN (" BATCH_OF_REPORTS
                         ") RETURNING length(raw)",
                         r->reports_before, &reports, err)) != TR_OK)
        return rc;
    if (reports.total_rows) {
        out->reports = reports.total_rows;
        out->raw_bytes = reports.total_bytes;
    }
    int64_t n = 0;
    if (bounded(r->rollups_before) && out->rollup_rows) {
        static const char *const tables[] = {
            "DELETE FROM rollup_sessions WHERE start_time < ?1",
            "DELETE FROM rollup_failures WHERE start_time < ?1",
            "DELETE FROM rollup_reports WHERE start_time < ?1",
        };
        out->rollup_rows = 0;
        for (size_t i = 0; i < 3; i++) {
            struct sql_arg a[] = {sql_int(r->rollups_before)};
            if ((rc = store_exec(st, STMT_NONE, tables[i], a, 1, NULL, NULL, &n, err)) != TR_OK)
                return rc;
            out->rollup_rows += n;
        }
    }
    if (bounded(r->quarantine_before) && out->quarantine) {
        if ((rc = in_batches(st, NULL,
                             "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine WHERE "
                             "received_at < ?1 ORDER BY id LIMIT ?2) RETURNING "
                             "COALESCE(raw_size * raw_kept, 0)",
                             r->quarantine_before, &quarantine, err)) != TR_OK)
            return rc;
        out->quarantine = quarantine.total_rows;
        out->quarantine_bytes = quarantine.total_bytes;
    }
    bool freed = out->reports || out->rollup_rows || out->quarantine;
    if (freed && store_dialect(st) == STORE_DIALECT_SQLITE &&
        (rc = give_space_back(st, &out->rebuilt, err)) != TR_OK)
        return rc;
    out->size_after = store_size_bytes(st);
    return TR_OK;
}
