/* store_backend.h: what a storage backend gives the generic half of the store
 * (store.c, store_read.c): a connection, transactions, and statements run with
 * bound arguments whose result rows come back through a callback.
 *
 * The SQL is written once, in store.c and store_read.c, with ?N placeholders
 * numbered from 1 in the order of the arguments; each backend prepares it its
 * own way (SQLite natively, PostgreSQL as $N with the arguments' types). The
 * few places where the dialects differ ask store_dialect(). Internal to the
 * store_*.c files: nothing else includes this header. */
#ifndef TLSRPTD_STORE_BACKEND_H
#define TLSRPTD_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/err.h"
#include "tlsrptd/store.h"

/* SQL_INTS and SQL_TEXTS: an array of len values (PostgreSQL only: bigint[]
 * and text[], for many rows in one statement through unnest). */
enum sql_type { SQL_NULL, SQL_INT, SQL_TEXT, SQL_BLOB, SQL_INTS, SQL_TEXTS };

/* One bound argument; strings and blobs are borrowed for the call. */
struct sql_arg {
    enum sql_type type;
    int64_t i;
    const char *s; /* SQL_TEXT: NUL-terminated; SQL_BLOB: len bytes */
    size_t len;
    const void *v; /* SQL_INTS: const int64_t[len]; SQL_TEXTS: const char *[len], NULL: NULL */
};

static inline struct sql_arg sql_int(int64_t v)
{
    return (struct sql_arg){SQL_INT, v, NULL, 0, NULL};
}
static inline struct sql_arg sql_text(const char *s)
{
    return (struct sql_arg){s ? SQL_TEXT : SQL_NULL, 0, s, 0, NULL};
}
static inline struct sql_arg sql_blob(const void *p, size_t n)
{
    return (struct sql_arg){p ? SQL_BLOB : SQL_NULL, 0, (const char *)p, n, NULL};
}
static inline struct sql_arg sql_ints(const int64_t *v, size_t n)
{
    return (struct sql_arg){SQL_INTS, 0, NULL, n, v};
}
static inline struct sql_arg sql_texts(const char *const *v, size_t n)
{
    return (struct sql_arg){SQL_TEXTS, 0, NULL, n, v};
}

/* A result row. Each backend's row type starts with this, so the accessors
 * below reach the backend that made it. Valid during the callback only. */
struct sql_row {
    const struct store_backend *be;
};
/* Return 0 to go on with the next row, anything else to stop (not an error). */
typedef int (*sql_row_fn)(void *cls, struct sql_row *row);

enum store_dialect { STORE_DIALECT_SQLITE, STORE_DIALECT_POSTGRESQL };

/* One statement of a batch that returns no rows (store_backend.exec_batch). */
#define SQL_CALL_MAX_ARGS 8
struct sql_call {
    unsigned key; /* as for exec */
    const char *sql;
    struct sql_arg args[SQL_CALL_MAX_ARGS];
    size_t nargs;
};

/* Statements run often enough to be prepared once per connection: each has a
 * key below STORE_MAX_STMTS (store.c and store_read.c number theirs). */
#define STORE_MAX_STMTS 64

struct store_backend {
    const char *name; /* "sqlite", "postgresql" */
    enum store_dialect dialect;
    /* Open target (a path, or a URI); migrate the schema unless opt->read_only.
     * *h is the connection. */
    tr_err (*open)(const char *target, const struct store_options *opt, void **h, char *err);
    void (*close)(void *h);
    const char *(*display)(void *h); /* for messages: a path, a URI without password */
    tr_err (*begin)(void *h, char *err);
    tr_err (*commit)(void *h, char *err); /* rolls back on failure; TR_ERETRY: run again */
    void (*rollback)(void *h);
    bool (*in_transaction)(void *h);
    /* Run sql with its arguments; every result row goes to fn (which may be
     * NULL); *changes (may be NULL) gets the rows it inserted, updated or
     * deleted. key > 0: a fixed statement, prepared on first use and kept;
     * 0: prepared for this call. TR_EDB, or TR_ERETRY for a deadlock or
     * serialization failure, with err set. */
    tr_err (*exec)(void *h, unsigned key, const char *sql, const struct sql_arg *args, size_t nargs,
                   sql_row_fn fn, void *cls, int64_t *changes, char *err);
    bool (*col_null)(struct sql_row *r, int col);
    int64_t (*col_int)(struct sql_row *r, int col);      /* saturates at INT64_MIN/MAX */
    const char *(*col_text)(struct sql_row *r, int col); /* NULL for NULL */
    const void *(*col_blob)(struct sql_row *r, int col, size_t *len); /* NULL for NULL */
    /* Optional. Run many statements without result rows at once (PostgreSQL:
     * one round trip in pipeline mode instead of one each); then_commit:
     * and commit the transaction in the same round trip (as commit(): rolled
     * back on failure). */
    tr_err (*exec_batch)(void *h, const struct sql_call *calls, size_t n, bool then_commit,
                         char *err);
    /* Optional. Store one validated report in one statement (see
     * store_add_report): row holds the nrow arguments of the reports row in
     * the order of store.c's INSERT, r and blob its policies and failure
     * details. NULL: store.c inserts the rows one by one. */
    tr_err (*add_report)(void *h, const struct sql_arg *row, size_t nrow, const struct report *r,
                         const struct store_blob *blob, int64_t *id, bool *duplicate, char *err);
    /* Optional, both or neither. queue_report: like add_report, but the
     * results (*id, *duplicate) are set by flush_reports(), which sends every
     * queued report at once; row, r, blob and the result pointers stay valid
     * until then. */
    tr_err (*queue_report)(void *h, const struct sql_arg *row, size_t nrow, const struct report *r,
                           const struct store_blob *blob, int64_t *id, bool *duplicate, char *err);
    tr_err (*flush_reports)(void *h, char *err);
    /* Optional. The id of the row the connection's last INSERT added (SQLite's
     * rowid), so that store.c's inserts need no RETURNING clause, which costs
     * SQLite a temporary table per statement. NULL: store.c uses RETURNING. */
    int64_t (*last_insert_id)(void *h);
    tr_err (*check_writable)(void *h, char *why);
    int64_t (*size_bytes)(void *h);
    tr_err (*start_maintenance)(void *h, char *err);
    void (*stop_maintenance)(void *h);
    /* Optional. A new descriptor of the file to fdatasync() to make the
     * commits so far durable, -1 when they are; -1 with *rc and err set on
     * failure (store_sync_fd). NULL: commits are durable. */
    int (*sync_fd)(void *h, tr_err *rc, char *err);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

static inline bool sql_null(struct sql_row *r, int col)
{
    return r->be->col_null(r, col);
}
static inline int64_t sql_col_int(struct sql_row *r, int col)
{
    return r->be->col_int(r, col);
}
static inline const char *sql_col_text(struct sql_row *r, int col)
{
    return r->be->col_text(r, col);
}
static inline const void *sql_col_blob(struct sql_row *r, int col, size_t *len)
{
    return r->be->col_blob(r, col, len);
}

/* Row callbacks that keep the first row: one integer (cls: int64_t *) and
 * two (cls: struct sql_pair *); a NULL reads as 0. */
struct sql_pair {
    int64_t a, b;
};
static inline int sql_take_int(void *cls, struct sql_row *row)
{
    *(int64_t *)cls = sql_null(row, 0) ? 0 : sql_col_int(row, 0);
    return 1;
}
static inline int sql_take_pair(void *cls, struct sql_row *row)
{
    struct sql_pair *p = cls;
    p->a = sql_null(row, 0) ? 0 : sql_col_int(row, 0);
    p->b = sql_null(row, 1) ? 0 : sql_col_int(row, 1);
    return 1;
}

/* For store_read.c: run a statement on st's connection (see exec above). */
tr_err store_exec(struct store *st, unsigned key, const char *sql, const struct sql_arg *args,
                  size_t nargs, sql_row_fn fn, void *cls, int64_t *changes, char *err);
enum store_dialect store_dialect(const struct store *st);

/* Failure details inserted by one statement, at most (store.c). */
#define FAILURE_ROWS_MAX 8

/* The keys of the fixed statements (see STORE_MAX_STMTS). */
enum store_stmt {
    STMT_NONE,
    /* store.c */
    STMT_INSERT_REPORT,
    STMT_FIND_REPORT,
    STMT_INSERT_POLICY,
    STMT_INSERT_FAILURE,
    /* failure details 2..FAILURE_ROWS_MAX rows at a time (store.c) */
    STMT_INSERT_FAILURES_LAST = STMT_INSERT_FAILURE + FAILURE_ROWS_MAX - 1,
    STMT_ROLLUP_SESSIONS,
    STMT_ROLLUP_FAILURES,
    STMT_DOMAIN_TOTALS,
    STMT_DOMAIN_FAILURES,
    STMT_DOMAIN_REPORTERS,
    STMT_ROLLUP_REPORTS,
    STMT_OUTCOMES,
    STMT_META_SET,
    STMT_ROLLUP_LAST = STMT_META_SET,
    /* the rollup upserts ROLLUP_ROWS rows at a time, in the order above (store.c) */
    STMT_ROLLUP_ROWS_FIRST,
    STMT_ROLLUP_ROWS_LAST = STMT_ROLLUP_ROWS_FIRST + STMT_ROLLUP_LAST - STMT_ROLLUP_SESSIONS,
    STMT_COUNTER_ADD,
    STMT_COUNTER_GET,
    STMT_QUARANTINE_FIND,
    STMT_QUARANTINE_INSERT,
    STMT_QUARANTINE_OLDEST,
    STMT_QUARANTINE_DELETE,
    /* store_read.c */
    STMT_COUNT_DOMAINS,
    STMT_COUNT_DOMAIN_FAILURES,
    STMT_COUNT_DOMAIN_REPORTERS,
    STMT_COUNT_OUTCOMES,
    STMT_REPORT_POLICIES,
    STMT_REPORT_FAILURES,
    STMT_SCAN_REPORTS,
    STMT_SCAN_QUARANTINE,
    STMT_GET_QUARANTINE,
    /* store_pg.c */
    STMT_PG_ADD_REPORT,
    STMT_PG_FIND_REPORT,
    STMT_LAST
};
/* The array forms of the rollup upserts (store.c, PostgreSQL) take the keys
 * of the one-row forms plus this. */
enum { STMT_ROLLUP_ARRAYS_OFFSET = STMT_LAST - STMT_ROLLUP_SESSIONS };
_Static_assert(STMT_LAST + (STMT_ROLLUP_LAST - STMT_ROLLUP_SESSIONS) < STORE_MAX_STMTS,
               "STORE_MAX_STMTS is too small for the statements with keys");
enum { STMT_KEYS_END = STMT_LAST + (STMT_ROLLUP_LAST - STMT_ROLLUP_SESSIONS) + 1 };

#endif
