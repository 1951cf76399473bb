/* store_pg.c: the PostgreSQL backend of the store (store_backend.h), with
 * libpq: one connection per struct store, schema/postgresql/NNN_*.sql applied
 * under an advisory lock (several collectors may start at once) and recorded
 * in tlsrptd_schema_version, statements prepared once per connection with
 * their arguments' types, rows streamed one at a time. A transaction's BEGIN
 * goes with its first statement and its COMMIT with the rollups, in pipeline
 * mode: a group commit of serve is two round trips (reports, then rollups and
 * COMMIT).
 *
 * What the generic half relies on: a COMMIT that returns is durable
 * (synchronous_commit as the server has it, on by default); a duplicate key
 * inserted by another collector's transaction in flight makes our INSERT wait
 * for it and then do nothing, so the same report arriving at two collectors
 * at once is stored once; deadlocks and serialization failures come back as
 * TR_ERETRY so the caller runs the whole batch again; a lost connection is
 * TR_EDB and store_check_writable() says so until store_reconnect() succeeds.
 *
 * Passwords come from ~/.pgpass, PGPASSFILE or the db_password_file option
 * (libpq's passfile), never from the command line; messages name the database
 * without its password. Text that is not UTF-8 (a Maildir file name, a mail
 * header) is stored with the bad bytes replaced, as PostgreSQL refuses it. */
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_backend.h"
#include "store_schema.h"
#include "tlsrptd/utf8.h"
#include "tlsrptd/buf.h"
#include "tlsrptd/log.h"

#define INT8OID       20
#define TEXTOID       25
#define BYTEAOID      17
#define INT8ARRAYOID  1016
#define TEXTARRAYOID  1009
#define BYTEAARRAYOID 1001

/* pg_advisory_lock key of schema migrations ("tlsrptd" in ASCII) */
#define MIGRATION_LOCK "7631734839301223524"

/* The arguments of a reports row (store.c's REPORT_ARGS). */
#define ROW_ARGS 25

/* A report queued for the next flush (store_queue_report). */
struct pg_queued {
    struct sql_arg args[ROW_ARGS];
    const struct report *r;        /* borrowed until the flush */
    const struct store_blob *blob; /* borrowed until the flush */
    int64_t *id;
    bool *duplicate;
};

struct pg_conn {
    PGconn *conn;
    struct pg_queued *queue;
    size_t nqueued, qcap;
    struct store_options opt;
    char *uri;
    char *display; /* uri without a password */
    bool prepared[STORE_MAX_STMTS];
    bool broken;  /* the connection was lost */
    bool reading; /* a statement's rows are being read: no other statement now */
    /* pg_begin() only sets this: BEGIN goes with the transaction's first
     * statement, in the same round trip when that one is pipelined */
    bool begin_pending;
};

struct pg_row {
    struct sql_row base;
    PGresult *res;
    unsigned char *blobs[8]; /* PQunescapeBytea results, freed after the row */
    size_t nblobs;
};

/* ---- helpers -------------------------------------------------------------------------------- */

/* uri with the password (user:PASSWORD@, or password=…) left out */
static char *redact(const char *uri)
{
    size_t n = strlen(uri);
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    const char *scheme = strstr(uri, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme && at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (colon && uri + i == colon) {
            i = (size_t)(at - uri) - 1; /* skip ":password" */
            continue;
        }
        out[k++] = uri[i];
    }
    out[k] = 0;
    char *pw = strstr(out, "password=");
    if (pw) {
        char *end = strchr(pw, '&');
        const char *rest = end ? end : "";
        memmove(pw + 9 + 3, rest, strlen(rest) + 1);
        memcpy(pw + 9, "***", 3);
    }
    return out;
}

/* msg on one line, into out (TR_ERRLEN bytes): libpq's messages end in newlines */
static void one_line(const char *msg, char *out)
{
    snprintf(out, TR_ERRLEN, "%s", msg ? msg : "unknown error");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = *(p + 1) ? ' ' : 0;
}

static tr_err pg_fail(struct pg_conn *c, const PGresult *res, char *err, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg =
        res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res) : PQerrorMessage(c->conn);
    char clean[TR_ERRLEN];
    one_line(msg, clean);
    if (PQstatus(c->conn) != CONNECTION_OK)
        c->broken = true;
    tr_err e = TR_EDB;
    if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
        e = TR_ERETRY;
    return tr_fail(err, e, "database %s: %s: %s", c->display, what, clean);
}

/* Run a command without arguments or rows; TR_OK when it succeeded. */
static tr_err command(struct pg_conn *c, const char *sql, char *err, const char *what)
{
    PGresult *res = PQexec(c->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    tr_err rc = TR_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_fail(c, res, err, what);
    PQclear(res);
    return rc;
}

/* The pending BEGIN of the transaction, on its own. */
static tr_err begin_now(struct pg_conn *c, char *err)
{
    if (!c->begin_pending)
        return TR_OK;
    c->begin_pending = false;
    return command(c, "BEGIN", err, "starting a transaction");
}

/* ---- pipelines ------------------------------------------------------------------------------ */

/* One round trip in pipeline mode: pipe_start() enters it and sends the
 * transaction's pending BEGIN, the caller sends its statements, pipe_finish()
 * sends COMMIT when asked, then the sync, and reads every result. */
static tr_err pipe_start(struct pg_conn *c, bool *began, char *err)
{
    *began = false;
    if (!PQenterPipelineMode(c->conn))
        return pg_fail(c, NULL, err, "entering pipeline mode");
    if (c->begin_pending) {
        if (!PQsendQueryParams(c->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
            return pg_fail(c, NULL, err, "starting a transaction");
        c->begin_pending = false;
        *began = true;
    }
    return TR_OK;
}

/* rc: how sending went. *rows (may be NULL) gets the result of the caller's
 * first statement when it returned rows (PQclear it). With commit, a failure
 * rolls the transaction back, as pg_commit does. */
static void pg_rollback(void *h);
static tr_err pipe_finish(struct pg_conn *c, tr_err rc, bool began, bool commit, PGresult **rows,
                          char *err, const char *what)
{
    if (PQpipelineStatus(c->conn) == PQ_PIPELINE_OFF) { /* pipe_start could not enter it */
        if (commit)
            pg_rollback(c);
        return rc;
    }
    if (commit && rc == TR_OK &&
        !PQsendQueryParams(c->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
        rc = pg_fail(c, NULL, err, "committing");
    if (!PQpipelineSync(c->conn) && rc == TR_OK)
        rc = pg_fail(c, NULL, err, "sending a pipeline");
    size_t stmt = 0; /* the statement whose results come: BEGIN's first when began */
    size_t first = began ? 1 : 0;
    for (;;) {
        PGresult *res = PQgetResult(c->conn);
        if (res == NULL) {
            if (PQstatus(c->conn) != CONNECTION_OK) {
                c->broken = true;
                rc = tr_fail(err, TR_EDB, "database %s: the connection was lost", c->display);
                break;
            }
            stmt++; /* the end of one statement's results */
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            if (rc == TR_OK)
                rc = st == PGRES_PIPELINE_ABORTED
                         ? tr_fail(err, TR_EDB, "database %s: %s: a statement failed", c->display,
                                   what)
                         : pg_fail(c, res, err, what);
        } else if (st == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
            if (rc == TR_OK) /* COMMIT of an aborted transaction */
                rc =
                    tr_fail(err, TR_EDB, "database %s: committing: the transaction was rolled back",
                            c->display);
        } else if (rows && *rows == NULL && stmt == first && st == PGRES_TUPLES_OK) {
            *rows = res;
            continue;
        }
        PQclear(res);
    }
    if (!PQexitPipelineMode(c->conn) && rc == TR_OK)
        rc = pg_fail(c, NULL, err, "leaving pipeline mode");
    if (rc != TR_OK && rows && *rows) {
        PQclear(*rows);
        *rows = NULL;
    }
    if (rc != TR_OK && commit)
        pg_rollback(c);
    return rc;
}

/* ---- opening -------------------------------------------------------------------------------- */

static tr_err pg_exec(void *h, unsigned key, const char *sql, const struct sql_arg *args,
                      size_t nargs, sql_row_fn fn, void *cls, int64_t *changes, char *err);

static tr_err schema_version(struct pg_conn *c, int64_t *version, char *err)
{
    *version = -1;
    return pg_exec(c, STMT_NONE, "SELECT COALESCE(MAX(version), 0) FROM tlsrptd_schema_version",
                   NULL, 0, sql_take_int, version, NULL, err);
}

static tr_err migrate(struct pg_conn *c, char *err)
{
    size_t count = tlsrptd_schema_postgresql_count;
    int64_t version = 0;
    tr_err rc;
    if (c->opt.read_only) {
        if ((rc = schema_version(c, &version, err)) != TR_OK)
            return tr_fail(err, TR_EDB, "database %s: not a tlsrptd database (no schema)",
                           c->display);
        if (version != (int64_t)count)
            return tr_fail(err, TR_EDB,
                           "database %s: schema version %lld, this tlsrptd has %zu; run a command "
                           "that writes to it (ingest, maildir, serve) to upgrade it",
                           c->display, (long long)version, count);
        return TR_OK;
    }
    /* one process at a time; the others wait here and then find it done */
    if ((rc = command(c, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", err,
                      "locking for "
                      "migrations")) != TR_OK)
        return rc;
    rc = command(c,
                 "CREATE TABLE IF NOT EXISTS tlsrptd_schema_version (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                 err, "creating the schema version table");
    if (rc == TR_OK)
        rc = schema_version(c, &version, err);
    if (rc == TR_OK && version > (int64_t)count)
        rc = tr_fail(err, TR_EDB,
                     "database %s: schema version %lld is newer than this tlsrptd knows (%zu)",
                     c->display, (long long)version, count);
    for (size_t i = (size_t)(version < 0 ? 0 : version); rc == TR_OK && i < count; i++) {
        const struct store_schema_file *f = &tlsrptd_schema_postgresql[i];
        struct sql_arg rec[] = {sql_int((int64_t)i + 1), sql_text(f->name)};
        if ((rc = command(c, "BEGIN", err, "starting a migration")) != TR_OK)
            break;
        char what[96];
        snprintf(what, sizeof what, "applying %s", f->name);
        if ((rc = command(c, f->sql, err, what)) != TR_OK ||
            (rc = pg_exec(c, STMT_NONE,
                          "INSERT INTO tlsrptd_schema_version (version, name) VALUES (?1, ?2)", rec,
                          2, NULL, NULL, NULL, err)) != TR_OK ||
            (rc = command(c, "COMMIT", err, what)) != TR_OK) {
            char ignore[TR_ERRLEN];
            command(c, "ROLLBACK", ignore, "rolling back");
            break;
        }
        tr_debug("database %s: applied %s", c->display, f->name);
    }
    char ignore[TR_ERRLEN];
    command(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")", ignore, "unlocking");
    return rc;
}

static void queue_clear(struct pg_conn *c)
{
    c->nqueued = 0;
}

static void pg_close(void *h)
{
    struct pg_conn *c = h;
    if (c == NULL)
        return;
    queue_clear(c);
    free(c->queue);
    PQfinish(c->conn);
    free(c->uri);
    free(c->display);
    free(c);
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    tr_debug("postgresql: %s", message);
}

static tr_err pg_open(const char *target, const struct store_options *opt, void **h, char *err)
{
    *h = NULL;
    struct pg_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->uri = strdup(target)) == NULL || (c->display = redact(target)) == NULL) {
        if (c) {
            free(c->uri);
            free(c);
        }
        return tr_fail(err, TR_ENOMEM, "database: out of memory");
    }
    c->opt = *opt;
    const char *keys[6] = {"dbname", "application_name", "connect_timeout", NULL, NULL, NULL};
    const char *values[6] = {target, "tlsrptd", "10", NULL, NULL, NULL};
    if (opt->password_file) {
        keys[3] = "passfile";
        values[3] = opt->password_file;
    }
    c->conn = PQconnectdbParams(keys, values, 1);
    if (c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK) {
        char msg[TR_ERRLEN];
        one_line(c->conn ? PQerrorMessage(c->conn) : "out of memory", msg);
        tr_err e = tr_fail(err, TR_EDB, "database %s: cannot connect: %s", c->display, msg);
        pg_close(c);
        return e;
    }
    PQsetNoticeProcessor(c->conn, quiet_notices, NULL);
    /* lock_timeout: how long to wait for a row another writer holds (busy_timeout) */
    char ms[24];
    snprintf(ms, sizeof ms, "%dms", opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 1);
    struct sql_arg set[] = {sql_text(ms), sql_text(opt->read_only ? "on" : "off")};
    tr_err rc = command(c, "SET client_encoding = 'UTF8'", err, "setting up the session");
    if (rc == TR_OK)
        rc = pg_exec(c, STMT_NONE,
                     "SELECT set_config('lock_timeout', ?1, false), "
                     "set_config('default_transaction_read_only', ?2, false)",
                     set, 2, NULL, NULL, NULL, err);
    if (rc == TR_OK)
        rc = migrate(c, err);
    if (rc != TR_OK) {
        pg_close(c);
        return rc;
    }
    *h = c;
    return TR_OK;
}

static const char *pg_display(void *h)
{
    return ((struct pg_conn *)h)->display;
}

/* ---- statements ----------------------------------------------------------------------------- */

/* sql with ?N turned into $N (outside quoted strings). */
static char *dollar_params(const char *sql)
{
    size_t n = strlen(sql);
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    bool quoted = false;
    for (size_t i = 0; i <= n; i++) {
        char ch = sql[i];
        if (ch == '\'')
            quoted = !quoted;
        out[i] = !quoted && ch == '?' && isdigit((unsigned char)sql[i + 1]) ? '$' : ch;
    }
    return out;
}

/* ---- arrays in PostgreSQL's binary format ---------------------------------------------------- */

struct pg_array {
    struct buf b;
    bool failed; /* out of memory */
};

static void put_be32(struct pg_array *a, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    a->failed = a->failed || buf_append(&a->b, p, 4) != TR_OK;
}

/* The header of a one-dimensional array of n elements of type elem. */
static void array_start(struct pg_array *a, unsigned elem, size_t n)
{
    buf_reset(&a->b);
    a->failed = false;
    put_be32(a, n ? 1 : 0); /* dimensions */
    put_be32(a, 0);         /* flags: array_recv works out the NULLs itself */
    put_be32(a, elem);
    if (n) {
        put_be32(a, (uint32_t)n); /* the dimension's length */
        put_be32(a, 1);           /* its lower bound */
    }
}

static void array_bytes(struct pg_array *a, const void *p, size_t len)
{
    put_be32(a, (uint32_t)len);
    a->failed = a->failed || buf_append(&a->b, p, len) != TR_OK;
}

static void array_null(struct pg_array *a)
{
    put_be32(a, UINT32_MAX); /* -1 */
}

static void array_int(struct pg_array *a, int64_t v)
{
    uint64_t u = (uint64_t)v;
    unsigned char p[8];
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (56 - 8 * i));
    array_bytes(a, p, 8);
}

/* A text element, its invalid UTF-8 replaced as params_make does; NULL: NULL. */
static void array_text(struct pg_array *a, const char *s)
{
    if (s == NULL) {
        array_null(a);
        return;
    }
    if (utf8_valid(s)) {
        array_bytes(a, s, strlen(s));
        return;
    }
    char *fixed = utf8_repair(s);
    if (fixed == NULL) {
        a->failed = true;
        return;
    }
    array_bytes(a, fixed, strlen(fixed));
    free(fixed);
}

struct pg_params {
    const char **values;
    int *lengths, *formats;
    unsigned *types;
    char (*ints)[24];
    char **repaired; /* text made valid UTF-8, and arrays: freed with the parameters */
};

static void params_free(struct pg_params *p, size_t n)
{
    for (size_t i = 0; p->repaired && i < n; i++)
        free(p->repaired[i]);
    free(p->values);
    free(p->lengths);
    free(p->formats);
    free(p->types);
    free(p->ints);
    free(p->repaired);
}

static bool params_make(struct pg_params *p, const struct sql_arg *args, size_t n)
{
    memset(p, 0, sizeof *p);
    size_t k = n ? n : 1;
    p->values = calloc(k, sizeof *p->values);
    p->lengths = calloc(k, sizeof *p->lengths);
    p->formats = calloc(k, sizeof *p->formats);
    p->types = calloc(k, sizeof *p->types);
    p->ints = calloc(k, sizeof *p->ints);
    p->repaired = calloc(k, sizeof *p->repaired);
    if (!p->values || !p->lengths || !p->formats || !p->types || !p->ints || !p->repaired)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct sql_arg *a = &args[i];
        switch (a->type) {
        case SQL_INT:
            snprintf(p->ints[i], sizeof p->ints[i], "%lld", (long long)a->i);
            p->values[i] = p->ints[i];
            p->types[i] = INT8OID;
            break;
        case SQL_TEXT:
            p->values[i] = a->s;
            p->types[i] = TEXTOID;
            if (!utf8_valid(a->s)) {
                if ((p->repaired[i] = utf8_repair(a->s)) == NULL)
                    return false;
                p->values[i] = p->repaired[i];
            }
            break;
        case SQL_BLOB:
            p->values[i] = a->s;
            p->lengths[i] = (int)a->len;
            p->formats[i] = 1; /* binary: the bytes as they are */
            p->types[i] = BYTEAOID;
            break;
        case SQL_INTS:
        case SQL_TEXTS: {
            struct pg_array arr;
            buf_init(&arr.b, (size_t)INT32_MAX - 1); /* a parameter's length is an int */
            array_start(&arr, a->type == SQL_INTS ? INT8OID : TEXTOID, a->len);
            for (size_t e = 0; e < a->len; e++)
                if (a->type == SQL_INTS)
                    array_int(&arr, ((const int64_t *)a->v)[e]);
                else
                    array_text(&arr, ((const char *const *)a->v)[e]);
            if (arr.failed) {
                buf_free(&arr.b);
                return false;
            }
            p->repaired[i] = (char *)arr.b.data; /* freed with the parameters */
            p->values[i] = p->repaired[i];
            p->lengths[i] = (int)arr.b.len;
            p->formats[i] = 1;
            p->types[i] = a->type == SQL_INTS ? INT8ARRAYOID : TEXTARRAYOID;
            break;
        }
        default:
            p->values[i] = NULL;
            p->types[i] = 0; /* the server infers it */
        }
    }
    return true;
}

static tr_err pg_exec(void *h, unsigned key, const char *sql, const struct sql_arg *args,
                      size_t nargs, sql_row_fn fn, void *cls, int64_t *changes, char *err)
{
    struct pg_conn *c = h;
    if (c->broken || PQstatus(c->conn) != CONNECTION_OK) {
        c->broken = true;
        return tr_fail(err, TR_EDB, "database %s: the connection was lost", c->display);
    }
    if (c->reading) /* a row callback asked another question: a bug of the caller */
        return tr_fail(err, TR_EINVAL,
                       "database %s: a statement while another's rows are read (one connection "
                       "answers one statement at a time)",
                       c->display);
    struct pg_params p;
    char *text = NULL;
    tr_err rc = begin_now(c, err);
    if (rc != TR_OK)
        return rc;
    if (!params_make(&p, args, nargs) || (text = dollar_params(sql)) == NULL) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    char name[16] = "";
    if (key && key < STORE_MAX_STMTS) {
        snprintf(name, sizeof name, "t%u", key);
        if (!c->prepared[key]) {
            PGresult *res = PQprepare(c->conn, name, text, (int)nargs, (const unsigned *)p.types);
            bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            if (!ok)
                rc = pg_fail(c, res, err, "preparing a statement");
            PQclear(res);
            if (!ok)
                goto done;
            c->prepared[key] = true;
        }
    }
    int sent =
        name[0] ? PQsendQueryPrepared(c->conn, name, (int)nargs, p.values, p.lengths, p.formats, 0)
                : PQsendQueryParams(c->conn, text, (int)nargs, (const unsigned *)p.types, p.values,
                                    p.lengths, p.formats, 0);
    if (!sent) {
        rc = pg_fail(c, NULL, err, "sending a statement");
        goto done;
    }
    PQsetSingleRowMode(c->conn);
    bool stopped = false;
    PGresult *res;
    c->reading = true;
    while ((res = PQgetResult(c->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE) {
            if (fn && !stopped && rc == TR_OK) {
                struct pg_row row = {{&store_pg_backend}, res, {NULL}, 0};
                stopped = fn(cls, &row.base) != 0;
                for (size_t i = 0; i < row.nblobs; i++)
                    PQfreemem(row.blobs[i]);
            }
        } else if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            if (changes) {
                const char *n = PQcmdTuples(res);
                *changes = n && n[0] ? strtoll(n, NULL, 10) : 0;
            }
        } else if (rc == TR_OK) {
            rc = pg_fail(c, res, err, "running a statement");
        }
        PQclear(res);
    }
    c->reading = false;
done:
    params_free(&p, nargs);
    free(text);
    return rc;
}

static bool pg_col_null(struct sql_row *r, int col)
{
    return PQgetisnull(((struct pg_row *)r)->res, 0, col) != 0;
}

static int64_t pg_col_int(struct sql_row *r, int col)
{
    PGresult *res = ((struct pg_row *)r)->res;
    if (PQgetisnull(res, 0, col))
        return 0;
    const char *v = PQgetvalue(res, 0, col);
    if (strcmp(v, "t") == 0)
        return 1;
    errno = 0;
    long long n = strtoll(v, NULL, 10); /* numeric sums: saturated by strtoll */
    return (int64_t)n;
}

static const char *pg_col_text(struct sql_row *r, int col)
{
    PGresult *res = ((struct pg_row *)r)->res;
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

static const void *pg_col_blob(struct sql_row *r, int col, size_t *len)
{
    struct pg_row *row = (struct pg_row *)r;
    *len = 0;
    if (PQgetisnull(row->res, 0, col) || row->nblobs == sizeof row->blobs / sizeof *row->blobs)
        return NULL;
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(row->res, 0, col), &n);
    if (b == NULL)
        return NULL;
    row->blobs[row->nblobs++] = b;
    *len = n;
    return b;
}

/* ---- writing many at once ------------------------------------------------------------------ */

/* Prepare statement key on first use (outside a pipeline). */
static tr_err prepare_once(struct pg_conn *c, unsigned key, const char *sql,
                           const struct pg_params *p, size_t nargs, char *err)
{
    if (key == 0 || key >= STORE_MAX_STMTS || c->prepared[key])
        return TR_OK;
    char *text = dollar_params(sql);
    if (text == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    char name[16];
    snprintf(name, sizeof name, "t%u", key);
    PGresult *res = PQprepare(c->conn, name, text, (int)nargs, (const unsigned *)p->types);
    free(text);
    tr_err rc = TR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(c, res, err, "preparing a statement");
    else
        c->prepared[key] = true;
    PQclear(res);
    return rc;
}

/* Statements sent per round trip in pipeline mode: their answers (a few bytes
 * each) must fit the socket buffers, as libpq reads them only after sending. */
#define PIPELINE_CHUNK 256

/* Send calls[0..n) in pipeline mode, then COMMIT when commit, and read their
 * results. */
static tr_err pipeline_chunk(struct pg_conn *c, const struct sql_call *calls, size_t n, bool commit,
                             char *err)
{
    bool began;
    tr_err rc = pipe_start(c, &began, err);
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        struct pg_params p;
        if (!params_make(&p, calls[i].args, calls[i].nargs)) {
            params_free(&p, calls[i].nargs);
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            break;
        }
        char name[16];
        snprintf(name, sizeof name, "t%u", calls[i].key);
        if (!PQsendQueryPrepared(c->conn, name, (int)calls[i].nargs, p.values, p.lengths, p.formats,
                                 0))
            rc = pg_fail(c, NULL, err, "sending a statement");
        params_free(&p, calls[i].nargs);
    }
    return pipe_finish(c, rc, began, commit, NULL, err, "running a pipeline");
}

static tr_err pg_exec_batch(void *h, const struct sql_call *calls, size_t n, bool then_commit,
                            char *err)
{
    struct pg_conn *c = h;
    if (c->broken || PQstatus(c->conn) != CONNECTION_OK) {
        c->broken = true;
        return tr_fail(err, TR_EDB, "database %s: the connection was lost", c->display);
    }
    for (size_t i = 0; i < n; i++) {
        if (calls[i].key == 0 || calls[i].key >= STORE_MAX_STMTS)
            return tr_fail(err, TR_EINVAL, "a batched statement needs a key");
        if (!c->prepared[calls[i].key]) {
            struct pg_params p;
            tr_err rc = params_make(&p, calls[i].args, calls[i].nargs)
                            ? prepare_once(c, calls[i].key, calls[i].sql, &p, calls[i].nargs, err)
                            : tr_fail(err, TR_ENOMEM, "out of memory");
            params_free(&p, calls[i].nargs);
            if (rc != TR_OK)
                return rc;
        }
    }
    size_t i = 0;
    do {
        size_t k = n - i < PIPELINE_CHUNK ? n - i : PIPELINE_CHUNK;
        tr_err rc = pipeline_chunk(c, calls + i, k, then_commit && i + k == n, err);
        if (rc != TR_OK)
            return rc;
        i += k;
    } while (i < n);
    return TR_OK;
}

struct added {
    int64_t id;
    int stored; /* 1 stored, 0 a duplicate, -1 no answer */
};

static int take_added(void *cls, struct sql_row *row)
{
    struct added *a = cls;
    a->id = pg_col_int(row, 0);
    a->stored = (int)pg_col_int(row, 1);
    return 1;
}

static tr_err pg_queue_report(void *h, const struct sql_arg *row, size_t nrow,
                              const struct report *r, const struct store_blob *blob, int64_t *id,
                              bool *duplicate, char *err)
{
    struct pg_conn *c = h;
    if (nrow != ROW_ARGS)
        return tr_fail(err, TR_EINVAL, "a report row has %d columns", ROW_ARGS);
    if (blob->npolicies != r->npolicies)
        return tr_fail(err, TR_EINVAL, "a report and its blob disagree");
    if (c->nqueued == c->qcap) {
        size_t cap = c->qcap ? 2 * c->qcap : 64;
        struct pg_queued *q = realloc(c->queue, cap * sizeof *q);
        if (q == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        c->queue = q;
        c->qcap = cap;
    }
    struct pg_queued *q = &c->queue[c->nqueued];
    memcpy(q->args, row, nrow * sizeof *row);
    q->r = r;
    q->blob = blob;
    q->id = id;
    q->duplicate = duplicate;
    c->nqueued++;
    return TR_OK;
}

/* ---- many reports in one statement ---------------------------------------------------------- */

/* The queued reports go to the server as one statement per chunk: every
 * column as one array parameter in PostgreSQL's binary array format (what
 * array_recv reads: a header, then each element as a 4-byte big-endian length,
 * -1 for NULL, and its bytes), unnested there. Beside one statement per
 * report decoding two JSON documents, this spends a fraction of the server's
 * CPU: one executor start per chunk, no JSON, no text to number conversions.
 *
 * The statement takes each report's id from the reports' sequence itself (as
 * the column's default would, in the chunk's order: unnest's rows come in the
 * order WITH ORDINALITY numbers them, so no sort of the wide rows is needed)
 * and each stored policy's
 * id from the policies' one, so policies and failure details find their
 * parent's id by an array subscript rather than a join (the planner knows
 * nothing of the rows a CTE returns and nests loops over them). A report
 * whose key a report before it in the chunk has is not sent: it is that
 * report's duplicate (pg_flush_reports). */
/* Reports per statement, and the raw bytes that end a chunk earlier. */
#define REPORTS_PER_STATEMENT 256
#define BYTES_PER_STATEMENT   (32u << 20)

/* The column types of a reports row (store.c's REPORT_ARGS order), of a
 * policy (its report's place in the chunk, from 1; its index; type, domain,
 * strings, mx hosts; sessions) and of a failure detail (its policy's place in
 * the chunk, from 1; the rest of its row): i int8, t text, b bytea. */
static const char report_columns[ROW_ARGS + 1] = "ttiittti"
                                                 "ttttttt"
                                                 "iittbitt"
                                                 "it";
#define POLICY_COLUMNS  "iittttii"
#define FAILURE_COLUMNS "itttttitt"
#define NPOLICY         (sizeof POLICY_COLUMNS - 1)
#define NFAILURE        (sizeof FAILURE_COLUMNS - 1)
#define NARRAYS         (ROW_ARGS + NPOLICY + NFAILURE)

static const char sql_add_reports[] =
    "WITH s AS (SELECT u.*, nextval('reports_id_seq') AS id FROM unnest($1::text[], "
    "$2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::int8[], "
    "$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], "
    "$16::int8[], $17::int8[], $18::text[], $19::text[], $20::bytea[], $21::int8[], "
    "$22::text[], $23::text[], $24::int8[], $25::text[]) WITH ORDINALITY AS u(org, rid, st, et, "
    "sdt, edt, contact, recv, kind, name, client, msgid, rdom, subm, subj, warn, note, diag, "
    "enc, raw, rsize, dres, ddom, dal, dwhy, ord)), "
    "r AS (INSERT INTO reports (id, organization_name, report_id, start_time, end_time, "
    "start_datetime, end_datetime, contact_info, received_at, source_kind, source_name, "
    "source_client, source_message_id, source_report_domain, source_submitter, "
    "source_subject, warning_count, note_count, diagnostics, raw_encoding, raw, raw_size, "
    "dkim_result, dkim_domain, dkim_aligned, dkim_reason) SELECT id, org, rid, st, et, sdt, "
    "edt, contact, recv, kind, name, client, msgid, rdom, subm, subj, warn, note, diag, enc, "
    "raw, rsize, dres, ddom, dal, dwhy FROM s ON CONFLICT (organization_name, "
    "report_id, start_time, end_time) DO NOTHING RETURNING id), "
    /* k: the ids stored now; m: each report's id by its place */
    "k AS (SELECT COALESCE(array_agg(id), '{}') AS stored FROM r), "
    "m AS (SELECT array_agg(id ORDER BY ord) AS ids FROM s), "
    "x AS (SELECT x.*, m.ids[x.ro] AS report, CASE WHEN m.ids[x.ro] = ANY (k.stored) THEN "
    "nextval('policies_id_seq') END AS id FROM m, k, unnest($26::int8[], $27::int8[], "
    "$28::text[], $29::text[], $30::text[], $31::text[], $32::int8[], $33::int8[]) WITH "
    "ORDINALITY AS x(ro, idx, t, d, ps, pm, ok, bad, o) ORDER BY x.o), "
    "p AS (INSERT INTO policies (id, report, idx, policy_type, policy_domain, policy_strings, "
    "mx_hosts, successful_sessions, failed_sessions) SELECT id, report, idx, t, d, ps, pm, ok, "
    "bad FROM x WHERE id IS NOT NULL), "
    "pa AS (SELECT array_agg(id ORDER BY o) AS ids FROM x), "
    "f AS (INSERT INTO failure_details (policy, result_type, sending_mta_ip, "
    "receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, "
    "additional_information, failure_reason_code) SELECT pa.ids[y.pk], y.rt, y.sip, y.mxh, "
    "y.helo, y.rip, y.cnt, y.info, y.code FROM pa, unnest($34::int8[], $35::text[], "
    "$36::text[], $37::text[], $38::text[], $39::text[], $40::int8[], $41::text[], "
    "$42::text[]) WITH ORDINALITY AS y(pk, rt, sip, mxh, helo, rip, cnt, info, code, o) WHERE "
    "pa.ids[y.pk] IS NOT NULL ORDER BY y.o), "
    /* the reports not stored now: stored before (this statement sees no row it wrote) */
    "d AS MATERIALIZED (SELECT s.ord, s.org, s.rid, s.st, s.et FROM s, k WHERE NOT s.id = ANY "
    "(k.stored)) "
    "SELECT s.ord, s.id, 1 FROM s, k WHERE s.id = ANY (k.stored) "
    "UNION ALL SELECT d.ord, e.id, 0 FROM d JOIN reports e ON e.organization_name = d.org AND "
    "e.report_id = d.rid AND e.start_time = d.st AND e.end_time = d.et";

/* One array parameter being built. */
/* An argument of a reports row as an element of its column's array; false
 * when its type is not the column's (a bug of the caller). */
static bool array_arg(struct pg_array *a, const struct sql_arg *arg, char column)
{
    switch (arg->type) {
    case SQL_NULL:
        array_null(a);
        return true;
    case SQL_INT:
        if (column != 'i')
            return false;
        array_int(a, arg->i);
        return true;
    case SQL_TEXT:
        if (column != 't')
            return false;
        array_text(a, arg->s);
        return true;
    default: /* SQL_BLOB */
        if (column != 'b')
            return false;
        array_bytes(a, arg->s, arg->len);
        return true;
    }
}

static unsigned array_type(char column)
{
    return column == 'i' ? INT8ARRAYOID : column == 't' ? TEXTARRAYOID : BYTEAARRAYOID;
}

static unsigned element_type(char column)
{
    return column == 'i' ? INT8OID : column == 't' ? TEXTOID : BYTEAOID;
}

/* The NARRAYS parameters of the reports queue[send[0..n)]: the reports'
 * columns, their policies' and their failure details'. */
static tr_err chunk_arrays(struct pg_array *arrays, const struct pg_queued *queue,
                           const size_t *send, size_t n, char *err)
{
    size_t npolicies = 0, nfailures = 0;
    for (size_t i = 0; i < n; i++) {
        const struct report *r = queue[send[i]].r;
        npolicies += r->npolicies;
        for (size_t k = 0; k < r->npolicies; k++)
            nfailures += r->policies[k].nfailures;
    }
    for (size_t col = 0; col < ROW_ARGS; col++) {
        struct pg_array *a = &arrays[col];
        array_start(a, element_type(report_columns[col]), n);
        for (size_t i = 0; i < n; i++)
            if (!array_arg(a, &queue[send[i]].args[col], report_columns[col]))
                return tr_fail(err, TR_EINVAL, "a report row's column %zu has the wrong type",
                               col + 1);
    }
    struct pg_array *pa = &arrays[ROW_ARGS], *fa = &arrays[ROW_ARGS + NPOLICY];
    for (size_t col = 0; col < NPOLICY; col++)
        array_start(&pa[col], element_type(POLICY_COLUMNS[col]), npolicies);
    for (size_t col = 0; col < NFAILURE; col++)
        array_start(&fa[col], element_type(FAILURE_COLUMNS[col]), nfailures);
    int64_t place = 0; /* of a policy in the chunk */
    for (size_t i = 0; i < n; i++) {
        const struct report *r = queue[send[i]].r;
        const struct store_blob *blob = queue[send[i]].blob;
        for (size_t k = 0; k < r->npolicies; k++) {
            const struct report_policy *p = &r->policies[k];
            place++;
            array_int(&pa[0], (int64_t)i + 1);
            array_int(&pa[1], (int64_t)k);
            array_text(&pa[2], p->policy_type);
            array_text(&pa[3], p->policy_domain);
            array_text(&pa[4], blob->policy_strings[k]);
            array_text(&pa[5], blob->mx_hosts[k]);
            array_int(&pa[6], p->successful_sessions);
            array_int(&pa[7], p->failed_sessions);
            for (size_t j = 0; j < p->nfailures; j++) {
                const struct report_failure *f = &p->failures[j];
                array_int(&fa[0], place);
                array_text(&fa[1], f->result_type);
                array_text(&fa[2], f->sending_mta_ip);
                array_text(&fa[3], f->receiving_mx_hostname);
                array_text(&fa[4], f->receiving_mx_helo);
                array_text(&fa[5], f->receiving_ip);
                array_int(&fa[6], f->failed_session_count);
                array_text(&fa[7], f->additional_information);
                array_text(&fa[8], f->failure_reason_code);
            }
        }
    }
    for (size_t i = 0; i < NARRAYS; i++)
        if (arrays[i].failed)
            return tr_fail(err, TR_ENOMEM, "out of memory");
    return TR_OK;
}

/* The unique key of a reports row (its first four arguments) is the same. */
static bool same_key(const struct sql_arg *a, const struct sql_arg *b)
{
    return a[2].i == b[2].i && a[3].i == b[3].i && a[0].s && b[0].s && a[1].s && b[1].s &&
           strcmp(a[0].s, b[0].s) == 0 && strcmp(a[1].s, b[1].s) == 0;
}

/* Store queue[0..n) with one statement; each answer sets its report's id and
 * duplicate, or leaves *id 0 when another collector won the race. first
 * (n entries) is scratch. */
static tr_err flush_chunk(struct pg_conn *c, struct pg_array *arrays, struct pg_queued *queue,
                          size_t n, size_t *send, size_t *first, char *err)
{
    size_t nsend = 0;
    for (size_t i = 0; i < n; i++) {
        *queue[i].id = 0;
        first[i] = i;
        for (size_t k = 0; k < nsend && first[i] == i; k++)
            if (same_key(queue[send[k]].args, queue[i].args))
                first[i] = send[k];
        if (first[i] == i)
            send[nsend++] = i;
    }
    tr_err rc = chunk_arrays(arrays, queue, send, nsend, err);
    if (rc != TR_OK)
        return rc;
    char name[16];
    snprintf(name, sizeof name, "t%u", (unsigned)STMT_PG_ADD_REPORT);
    if (!c->prepared[STMT_PG_ADD_REPORT]) {
        unsigned types[NARRAYS];
        for (size_t i = 0; i < NARRAYS; i++)
            types[i] =
                array_type(i < ROW_ARGS             ? report_columns[i]
                           : i < ROW_ARGS + NPOLICY ? POLICY_COLUMNS[i - ROW_ARGS]
                                                    : FAILURE_COLUMNS[i - ROW_ARGS - NPOLICY]);
        PGresult *res = PQprepare(c->conn, name, sql_add_reports, (int)NARRAYS, types);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = pg_fail(c, res, err, "preparing a statement");
        else
            c->prepared[STMT_PG_ADD_REPORT] = true;
        PQclear(res);
        if (rc != TR_OK)
            return rc;
    }
    const char *values[NARRAYS];
    int lengths[NARRAYS], formats[NARRAYS];
    for (size_t i = 0; i < NARRAYS; i++) {
        values[i] = (const char *)arrays[i].b.data;
        lengths[i] = (int)arrays[i].b.len;
        formats[i] = 1;
    }
    PGresult *res = NULL;
    /* libpq 15 carries the single-row mode of pg_exec's last statement over to
     * the first statement of the next pipeline, and these rows must come in one
     * result: pipelined only behind the transaction's BEGIN, which takes it */
    if (c->begin_pending) {
        bool began;
        rc = pipe_start(c, &began, err);
        if (rc == TR_OK &&
            !PQsendQueryPrepared(c->conn, name, (int)NARRAYS, values, lengths, formats, 0))
            rc = pg_fail(c, NULL, err, "sending a statement");
        rc = pipe_finish(c, rc, began, false, &res, err, "storing reports");
        if (rc == TR_OK && res == NULL)
            rc =
                tr_fail(err, TR_EDB, "database %s: storing reports: no rows came back", c->display);
    } else {
        res = PQexecPrepared(c->conn, name, (int)NARRAYS, values, lengths, formats, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            rc = pg_fail(c, res, err, "storing reports");
    }
    if (rc == TR_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            long long ord = strtoll(PQgetvalue(res, row, 0), NULL, 10);
            if (ord < 1 || (size_t)ord > nsend)
                continue;
            struct pg_queued *q = &queue[send[ord - 1]];
            *q->id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
            *q->duplicate = strcmp(PQgetvalue(res, row, 2), "0") == 0;
        }
        for (size_t i = 0; i < n; i++) /* a copy of a report before it in the chunk */
            if (first[i] != i) {
                *queue[i].id = *queue[first[i]].id;
                *queue[i].duplicate = true;
            }
    }
    PQclear(res);
    return rc;
}

/* Store queue[0..n) (chunk by chunk) and set every report's id and duplicate. */
static tr_err store_queued(struct pg_conn *c, struct pg_queued *queue, size_t n, char *err)
{
    tr_err rc = TR_OK;
    struct pg_array arrays[NARRAYS];
    size_t send[REPORTS_PER_STATEMENT], first[REPORTS_PER_STATEMENT];
    for (size_t i = 0; i < NARRAYS; i++)
        buf_init(&arrays[i].b, (size_t)INT32_MAX - 1); /* a parameter's length is an int */
    for (size_t i = 0; i < n && rc == TR_OK;) {
        size_t k = 0, bytes = 0;
        while (i + k < n && k < REPORTS_PER_STATEMENT &&
               (k == 0 || bytes + queue[i + k].blob->len <= BYTES_PER_STATEMENT))
            bytes += queue[i + k++].blob->len;
        rc = flush_chunk(c, arrays, queue + i, k, send, first, err);
        i += k;
    }
    for (size_t i = 0; i < NARRAYS; i++)
        buf_free(&arrays[i].b);
    /* a report another collector stored while ours waited: a new snapshot sees it */
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        struct pg_queued *q = &queue[i];
        if (*q->id)
            continue;
        struct added a = {0, -1};
        rc = pg_exec(c, STMT_PG_FIND_REPORT,
                     "SELECT id, 0 FROM reports WHERE organization_name = ?1 AND report_id = ?2 "
                     "AND start_time = ?3 AND end_time = ?4",
                     q->args, 4, take_added, &a, NULL, err);
        if (rc == TR_OK && a.stored < 0)
            rc = tr_fail(err, TR_ERETRY, "database %s: a duplicate report vanished", c->display);
        *q->id = a.id;
        *q->duplicate = true;
    }
    return rc;
}

static tr_err pg_flush_reports(void *h, char *err)
{
    struct pg_conn *c = h;
    tr_err rc = store_queued(c, c->queue, c->nqueued, err);
    queue_clear(c);
    return rc;
}

/* One report now: a chunk of one. */
static tr_err pg_add_report(void *h, const struct sql_arg *row, size_t nrow, const struct report *r,
                            const struct store_blob *blob, int64_t *id, bool *duplicate, char *err)
{
    struct pg_conn *c = h;
    if (nrow != ROW_ARGS)
        return tr_fail(err, TR_EINVAL, "a report row has %d columns", ROW_ARGS);
    if (blob->npolicies != r->npolicies)
        return tr_fail(err, TR_EINVAL, "a report and its blob disagree");
    if (c->broken || PQstatus(c->conn) != CONNECTION_OK) {
        c->broken = true;
        return tr_fail(err, TR_EDB, "database %s: the connection was lost", c->display);
    }
    struct pg_queued q = {.r = r, .blob = blob, .id = id, .duplicate = duplicate};
    memcpy(q.args, row, nrow * sizeof *row);
    return store_queued(c, &q, 1, err);
}

/* ---- transactions --------------------------------------------------------------------------- */

static tr_err pg_begin(void *h, char *err)
{
    struct pg_conn *c = h;
    queue_clear(c);
    if (c->broken || PQstatus(c->conn) != CONNECTION_OK) {
        c->broken = true;
        return tr_fail(err, TR_EDB, "database %s: the connection was lost", c->display);
    }
    c->begin_pending = true;
    return TR_OK;
}

static void pg_rollback(void *h)
{
    struct pg_conn *c = h;
    queue_clear(c);
    c->begin_pending = false;
    if (PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE) {
        char ignore[TR_ERRLEN];
        command(c, "ROLLBACK", ignore, "rolling back");
    }
}

static tr_err pg_commit(void *h, char *err)
{
    struct pg_conn *c = h;
    if (c->begin_pending) { /* nothing was sent: nothing to commit */
        c->begin_pending = false;
        return TR_OK;
    }
    PGresult *res = PQexec(c->conn, "COMMIT");
    tr_err rc = TR_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_fail(c, res, err, "committing");
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) /* an aborted transaction */
        rc = tr_fail(err, TR_EDB, "database %s: committing: the transaction was rolled back",
                     c->display);
    PQclear(res);
    if (rc != TR_OK)
        pg_rollback(c);
    return rc;
}

static bool pg_in_transaction(void *h)
{
    struct pg_conn *c = h;
    return c->begin_pending ||
           (PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE);
}

/* ---- health --------------------------------------------------------------------------------- */

static int take_flag(void *cls, struct sql_row *row)
{
    const char *v = pg_col_text(row, 0);
    *(int *)cls = v && (strcmp(v, "t") == 0 || strcmp(v, "on") == 0);
    return 1;
}

static tr_err pg_check_writable(void *h, char *why)
{
    struct pg_conn *c = h;
    if (c->broken || PQstatus(c->conn) != CONNECTION_OK)
        return tr_fail(why, TR_EDB, "database %s: the connection was lost", c->display);
    if (c->opt.read_only)
        return tr_fail(why, TR_ECONFIG, "database %s: opened read-only", c->display);
    int recovery = 0;
    tr_err rc = pg_exec(c, STMT_NONE, "SELECT pg_is_in_recovery()", NULL, 0, take_flag, &recovery,
                        NULL, why);
    if (rc != TR_OK)
        return rc;
    if (recovery)
        return tr_fail(why, TR_EDB,
                       "database %s is a standby (in recovery): it takes no writes; point db at "
                       "the primary",
                       c->display);
    return TR_OK;
}

static int64_t pg_size_bytes(void *h)
{
    int64_t n = 0;
    char err[TR_ERRLEN];
    if (pg_exec(h, STMT_NONE, "SELECT pg_database_size(current_database())", NULL, 0, sql_take_int,
                &n, NULL, err) != TR_OK)
        return 0;
    return n;
}

static tr_err pg_start_maintenance(void *h, char *err)
{
    (void)h, (void)err;
    return TR_OK; /* autovacuum does it */
}

static void pg_stop_maintenance(void *h)
{
    (void)h;
}

const struct store_backend store_pg_backend = {
    .name = "postgresql",
    .dialect = STORE_DIALECT_POSTGRESQL,
    .open = pg_open,
    .close = pg_close,
    .display = pg_display,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_transaction = pg_in_transaction,
    .exec = pg_exec,
    .col_null = pg_col_null,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .exec_batch = pg_exec_batch,
    .add_report = pg_add_report,
    .queue_report = pg_queue_report,
    .flush_reports = pg_flush_reports,
    .check_writable = pg_check_writable,
    .size_bytes = pg_size_bytes,
    .start_maintenance = pg_start_maintenance,
    .stop_maintenance = pg_stop_maintenance,
};
