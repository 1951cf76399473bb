/* store_sqlite.c: the SQLite backend of the store (store_backend.h): one
 * connection to a database file in WAL mode, schema/sqlite/NNN_*.sql applied
 * in order and recorded in PRAGMA user_version, a cache of prepared
 * statements, and the checks that keep the daemon honest about its file.
 *
 * Batches use BEGIN IMMEDIATE, so the duplicate check and the insert see the
 * same database. synchronous=FULL: a committed report survives power loss,
 * which is what an acknowledgement promises; with defer_sync, NORMAL, and the
 * caller syncs the WAL file itself before it acknowledges (sqlite_sync_fd).
 * NORMAL is SQLite's own mode for this: a commit is written to the WAL but not
 * synced, and a power loss may take back the commits since the last sync,
 * never more and never leaving the file inconsistent (checkpoints and the
 * restart of the WAL are still synced). Before each batch the file is
 * checked to be the one that was opened, and after each commit again (a
 * commit that went into a file removed meanwhile fails): a database deleted
 * or replaced while the daemon runs would otherwise take acknowledged
 * reports into an unlinked inode. A file created here is mode 0640 (SQLite gives its -wal
 * and -shm the same), since it holds quarantined mail. */
#define _DEFAULT_SOURCE /* fchmod, getpwuid */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "store_backend.h"
#include "store_schema.h"
#include "store_sqlite.h"
#include "tlsrptd/log.h"

struct sqlite_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[STORE_MAX_STMTS];
    struct store_options opt;
    char *path;
    dev_t dev; /* the file opened, to notice a delete or replace */
    ino_t ino;
    struct checkpointer *ckpt;
    int wal_fd; /* defer_sync: the WAL file, opened at the first sqlite_sync_fd(); else -1 */
};

struct sqlite_row {
    struct sql_row base;
    sqlite3_stmt *s;
};

static tr_err db_fail(struct sqlite_conn *c, char *err, const char *what)
{
    int code = c->db ? sqlite3_errcode(c->db) : SQLITE_ERROR;
    return tr_fail(err, (code & 0xff) == SQLITE_BUSY ? TR_EDB : TR_EDB, "database %s: %s: %s",
                   c->path, what, c->db ? sqlite3_errmsg(c->db) : "not open");
}

/* ---- tsum: a SUM that saturates instead of failing on overflow ------------------------------ */

struct tsum_acc {
    int64_t sum;
    int any;
};

static void tsum_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    struct tsum_acc *a = sqlite3_aggregate_context(ctx, sizeof *a);
    if (a == NULL || sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    int64_t v = sqlite3_value_int64(argv[0]);
    a->any = 1;
    if (v > 0 && a->sum > INT64_MAX - v)
        a->sum = INT64_MAX;
    else if (v < 0 && a->sum < INT64_MIN - v)
        a->sum = INT64_MIN;
    else
        a->sum += v;
}

static void tsum_final(sqlite3_context *ctx)
{
    struct tsum_acc *a = sqlite3_aggregate_context(ctx, 0);
    if (a == NULL || !a->any)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, a->sum);
}

/* ---- opening -------------------------------------------------------------------------------- */

static tr_err user_version(struct sqlite_conn *c, int *version, char *err)
{
    sqlite3_stmt *s = NULL;
    *version = 0;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return db_fail(c, err, "reading the schema version");
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? TR_OK : db_fail(c, err, "reading the schema version");
}

static tr_err migrate(struct sqlite_conn *c, char *err)
{
    int version;
    tr_err rc = user_version(c, &version, err);
    if (rc != TR_OK)
        return rc;
    size_t count = tlsrptd_schema_sqlite_count;
    if (version > (int)count)
        return tr_fail(err, TR_EDB,
                       "database %s: schema version %d is newer than this tlsrptd knows (%zu)",
                       c->path, version, count);
    if (c->opt.read_only) {
        if (version == 0)
            return tr_fail(err, TR_EDB, "database %s: not a tlsrptd database", c->path);
        if (version < (int)count)
            return tr_fail(err, TR_EDB,
                           "database %s: schema version %d is older than this tlsrptd's (%zu); "
                           "run a command that writes to it (ingest, maildir, serve) to upgrade it",
                           c->path, version, count);
        return TR_OK;
    }
    for (size_t i = (size_t)version; i < count; i++) {
        char pragma[64];
        char *msg = NULL;
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %zu", i + 1);
        if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return db_fail(c, err, "starting migration");
        /* re-check inside the lock: another process may have migrated meanwhile */
        int now = 0;
        if ((rc = user_version(c, &now, err)) != TR_OK) {
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        if ((size_t)now > i) {
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        const struct store_schema_file *f = &tlsrptd_schema_sqlite[i];
        if (sqlite3_exec(c->db, f->sql, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(c->db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            tr_err e = tr_fail(err, TR_EDB, "database %s: applying %s: %s", c->path, f->name,
                               msg ? msg : sqlite3_errmsg(c->db));
            sqlite3_free(msg);
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return e;
        }
        tr_debug("database %s: applied %s", c->path, f->name);
    }
    return TR_OK;
}

static void sqlite_close(void *h)
{
    struct sqlite_conn *c = h;
    if (c == NULL)
        return;
    checkpointer_stop(c->ckpt);
    if (c->wal_fd >= 0)
        close(c->wal_fd);
    for (int i = 0; i < STORE_MAX_STMTS; i++)
        sqlite3_finalize(c->stmt[i]);
    if (c->db && !sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

/* A new database file is made 0640 before SQLite opens it (SQLite would use
 * 0644 less the umask, and it holds quarantined mail). */
static void precreate(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd >= 0) {
        (void)fchmod(fd, 0640); /* whatever the umask */
        close(fd);
    }
}

static tr_err check_access(const char *path, char *why);

/* A statement that inserts several rows (the multi-row rollup and failure
 * INSERTs) and may fail half-way (a constraint, a foreign key) keeps the
 * pages it changes in a statement journal, to undo just itself. SQLite keeps
 * that journal in memory up to 64 KiB and then writes it to a temporary
 * file: on an ingest that was two write(2) calls in three, for journals that
 * are thrown away a moment later (they hold 64-256 KiB). 1 MiB in memory
 * holds a batch statement's pages; a statement that changes more (a large
 * DELETE of retention or forget) still spills to disk, so memory stays
 * bounded. (SQLite allocates the journal in pieces of this size: 4 MiB pieces
 * went to mmap(2) and back for every statement.) Set once, before SQLite
 * initialises; if something initialised it first, the default stays. */
#define STMT_JOURNAL_SPILL_BYTES (1 << 20)

static pthread_once_t sqlite_configured = PTHREAD_ONCE_INIT;
static bool walbuf_registered;

static void configure_sqlite(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, STMT_JOURNAL_SPILL_BYTES);
    /* SQLite counts the memory it allocates under a global mutex, on every
     * allocation and free of every connection; nothing here reads the count */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    walbuf_registered = sqlite_walbuf_register() == SQLITE_OK;
}

static tr_err sqlite_open(const char *target, const struct store_options *opt, void **h, char *err)
{
    *h = NULL;
    pthread_once(&sqlite_configured, configure_sqlite);
    struct sqlite_conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(target)) == NULL) {
        free(c);
        return tr_fail(err, TR_ENOMEM, "database %s: out of memory", target);
    }
    c->opt = *opt;
    c->wal_fd = -1;
    tr_err rc = TR_EDB;
    if (!c->opt.read_only)
        precreate(target);
    int flags =
        c->opt.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* a connection that writes gathers its WAL frames (store_sqlite_walbuf.c) */
    const char *vfs = !c->opt.read_only && walbuf_registered ? SQLITE_WALBUF_VFS : NULL;
    if (sqlite3_open_v2(target, &c->db, flags | SQLITE_OPEN_NOMUTEX, vfs) != SQLITE_OK) {
        rc = db_fail(c, err, "cannot open");
        goto fail;
    }
    struct stat sb;
    if (stat(target, &sb) == 0) {
        c->dev = sb.st_dev;
        c->ino = sb.st_ino;
    }
    sqlite3_busy_timeout(c->db, c->opt.busy_timeout_ms);
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_create_function(c->db, "tsum", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL,
                            tsum_step, tsum_final);
    if (!c->opt.read_only) {
        char *msg = NULL;
        /* takes effect in a new database only (before its first table): so that
         * pruning can give space back (store_retention.c converts older ones) */
        (void)sqlite3_exec(c->db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL);
        if (sqlite3_exec(c->db, "PRAGMA journal_mode = WAL", NULL, NULL, &msg) != SQLITE_OK) {
            rc = tr_fail(err, TR_EDB, "database %s: cannot enable WAL: %s", target,
                         msg ? msg : sqlite3_errmsg(c->db));
            sqlite3_free(msg);
            goto fail;
        }
    }
    /* FULL: a commit is on disk before anyone is told "stored" (NORMAL when
     * the caller syncs: see the top of this file). A 16 MiB page cache keeps
     * the indexes' hot pages; checkpoints every 32 MiB of WAL rather than
     * 4 MiB halve their cost on bulk ingests. */
    bool defer = c->opt.defer_sync && !c->opt.read_only;
    if (sqlite3_exec(c->db,
                     defer ? "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
                             "PRAGMA cache_size = -16384"
                           : "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                             "PRAGMA cache_size = -16384",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(c, err, "setting pragmas");
        goto fail;
    }
    sqlite3_wal_autocheckpoint(c->db, SQLITE_CHECKPOINT_PAGES);
    if ((rc = migrate(c, err)) != TR_OK)
        goto fail;
    *h = c;
    return TR_OK;
fail:
    /* an existing file the service cannot write (or whose directory it cannot
     * write, for -wal and -shm): a configuration problem, told with the owner */
    if (rc == TR_EDB && !c->opt.read_only && access(target, F_OK) == 0 &&
        check_access(target, err) != TR_OK)
        rc = TR_ECONFIG;
    sqlite_close(c);
    return rc;
}

static const char *sqlite_display(void *h)
{
    return ((struct sqlite_conn *)h)->path;
}

/* ---- statements ----------------------------------------------------------------------------- */

static tr_err sqlite_exec(void *h, unsigned key, const char *sql, const struct sql_arg *args,
                          size_t nargs, sql_row_fn fn, void *cls, int64_t *changes, char *err)
{
    struct sqlite_conn *c = h;
    sqlite3_stmt *s = key && key < STORE_MAX_STMTS ? c->stmt[key] : NULL;
    bool cached = s != NULL;
    if (s == NULL) {
        unsigned flags = key ? SQLITE_PREPARE_PERSISTENT : 0;
        if (sqlite3_prepare_v3(c->db, sql, -1, flags, &s, NULL) != SQLITE_OK)
            return db_fail(c, err, "preparing a statement");
        if (key && key < STORE_MAX_STMTS) {
            c->stmt[key] = s;
            cached = true;
        }
    }
    for (size_t i = 0; i < nargs; i++) {
        const struct sql_arg *a = &args[i];
        int col = (int)i + 1;
        switch (a->type) {
        case SQL_INT:
            sqlite3_bind_int64(s, col, a->i);
            break;
        case SQL_TEXT:
            sqlite3_bind_text(s, col, a->s, -1, SQLITE_STATIC);
            break;
        case SQL_BLOB:
            sqlite3_bind_blob64(s, col, a->s, a->len, SQLITE_STATIC);
            break;
        case SQL_INTS:
        case SQL_TEXTS: /* store.c sends arrays to PostgreSQL only */
            if (cached)
                sqlite3_clear_bindings(s);
            else
                sqlite3_finalize(s);
            return tr_fail(err, TR_EINVAL, "database %s: an array argument (PostgreSQL only)",
                           c->path);
        default:
            sqlite3_bind_null(s, col);
        }
    }
    struct sqlite_row row = {{&store_sqlite_backend}, s};
    int rc;
    bool stopped = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (fn && !stopped && fn(cls, &row.base) != 0)
            stopped = true; /* step on: an INSERT … RETURNING completes only at DONE */
    }
    tr_err out = TR_OK;
    if (rc != SQLITE_DONE)
        out = db_fail(c, err, "running a statement");
    else if (changes)
        *changes = sqlite3_changes64(c->db);
    if (cached) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    } else {
        sqlite3_finalize(s);
    }
    return out;
}

static bool sqlite_col_null(struct sql_row *r, int col)
{
    return sqlite3_column_type(((struct sqlite_row *)r)->s, col) == SQLITE_NULL;
}

static int64_t sqlite_col_int(struct sql_row *r, int col)
{
    sqlite3_stmt *s = ((struct sqlite_row *)r)->s;
    if (sqlite3_column_type(s, col) == SQLITE_FLOAT) { /* an old rollup that overflowed */
        double d = sqlite3_column_double(s, col);
        return d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
    }
    return sqlite3_column_int64(s, col);
}

static const char *sqlite_col_text(struct sql_row *r, int col)
{
    return (const char *)sqlite3_column_text(((struct sqlite_row *)r)->s, col);
}

static const void *sqlite_col_blob(struct sql_row *r, int col, size_t *len)
{
    sqlite3_stmt *s = ((struct sqlite_row *)r)->s;
    if (sqlite3_column_type(s, col) == SQLITE_NULL) {
        *len = 0;
        return NULL;
    }
    const void *p = sqlite3_column_blob(s, col);
    *len = (size_t)sqlite3_column_bytes(s, col);
    return p ? p : "";
}

static int64_t sqlite_last_insert_id(void *h)
{
    return sqlite3_last_insert_rowid(((struct sqlite_conn *)h)->db);
}

/* ---- transactions --------------------------------------------------------------------------- */

static tr_err check_identity(struct sqlite_conn *c, char *err)
{
    struct stat sb;
    if (stat(c->path, &sb) != 0)
        return tr_fail(err, TR_EDB,
                       "database %s was removed while tlsrptd runs (%s): nothing is stored "
                       "until it is back; tlsrptd opens it again",
                       c->path, strerror(errno));
    if (c->ino && (sb.st_dev != c->dev || sb.st_ino != c->ino))
        return tr_fail(err, TR_EDB,
                       "database %s was replaced by another file while tlsrptd runs; "
                       "tlsrptd opens the new one",
                       c->path);
    return TR_OK;
}

static tr_err simple(struct sqlite_conn *c, const char *sql, char *err, const char *what)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(c, err, what);
    return TR_OK;
}

static tr_err sqlite_begin(void *h, char *err)
{
    struct sqlite_conn *c = h;
    tr_err rc = check_identity(c, err);
    if (rc != TR_OK)
        return rc;
    return simple(c, "BEGIN IMMEDIATE", err, "starting a transaction");
}

static void sqlite_rollback(void *h)
{
    struct sqlite_conn *c = h;
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static tr_err sqlite_commit(void *h, char *err)
{
    struct sqlite_conn *c = h;
    tr_err rc = simple(c, "COMMIT", err, "committing");
    if (rc != TR_OK) {
        sqlite_rollback(c);
        return rc;
    }
    /* removed while the batch ran: it went into a file nobody will read again */
    return check_identity(c, err);
}

/* The WAL holds every commit not yet copied into the database, and a
 * checkpoint syncs the WAL before it copies: an fdatasync() of the WAL file
 * after a commit makes it and all before it durable. The descriptor is our
 * own (SQLite keeps no locks on the WAL file, so closing it releases none of
 * SQLite's); the WAL is not removed while this connection is open, and a
 * reconnect opens it again. */
static int sqlite_sync_fd(void *h, tr_err *rc, char *err)
{
    struct sqlite_conn *c = h;
    *rc = TR_OK;
    if (!c->opt.defer_sync || c->opt.read_only)
        return -1;
    if (c->wal_fd < 0) {
        const char *wal = sqlite3_filename_wal(sqlite3_db_filename(c->db, "main"));
        if (wal == NULL || (c->wal_fd = open(wal, O_RDONLY | O_CLOEXEC)) < 0) {
            *rc = tr_fail(err, TR_EDB, "database %s: cannot open its WAL to sync it: %s", c->path,
                          wal ? strerror(errno) : "no WAL file name");
            return -1;
        }
    }
    int fd = fcntl(c->wal_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        *rc =
            tr_fail(err, TR_EDB, "database %s: cannot sync its WAL: %s", c->path, strerror(errno));
    return fd;
}

static bool sqlite_in_transaction(void *h)
{
    return sqlite3_get_autocommit(((struct sqlite_conn *)h)->db) == 0;
}

/* ---- health --------------------------------------------------------------------------------- */

static void describe_owner(const char *path, char *out, size_t n)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(out, n, "%s: %s", path, strerror(errno));
        return;
    }
    struct passwd *pw = getpwuid(sb.st_uid);
    struct group *gr = getgrgid(sb.st_gid);
    char u[32], g[32];
    snprintf(u, sizeof u, "%ld", (long)sb.st_uid);
    snprintf(g, sizeof g, "%ld", (long)sb.st_gid);
    snprintf(out, n, "%s is owned by %s:%s mode %04o", path, pw ? pw->pw_name : u,
             gr ? gr->gr_name : g, (unsigned)(sb.st_mode & 07777));
}

static tr_err read_only_error(const char *what, char *why)
{
    char owner[512], me[64];
    struct passwd *pw = getpwuid(geteuid());
    if (pw)
        snprintf(me, sizeof me, "%s", pw->pw_name);
    else
        snprintf(me, sizeof me, "uid %ld", (long)geteuid());
    describe_owner(what, owner, sizeof owner);
    return tr_fail(why, TR_ECONFIG, "database is read-only: %s; tlsrptd runs as %s", owner, me);
}

/* TR_ECONFIG naming the owner when this process may not write path or its
 * directory (WAL mode creates -wal and -shm beside the database). */
static tr_err check_access(const char *path, char *why)
{
    if (access(path, W_OK) != 0)
        return read_only_error(path, why);
    char *copy = strdup(path);
    if (copy == NULL)
        return tr_fail(why, TR_ENOMEM, "out of memory");
    const char *dir = dirname(copy);
    tr_err rc = access(dir, W_OK) == 0 ? TR_OK : read_only_error(dir, why);
    free(copy);
    return rc;
}

static tr_err sqlite_check_writable(void *h, char *why)
{
    struct sqlite_conn *c = h;
    tr_err rc = check_identity(c, why);
    if (rc != TR_OK)
        return rc;
    if (c->opt.read_only)
        return tr_fail(why, TR_ECONFIG, "database %s: opened read-only", c->path);
    if ((rc = check_access(c->path, why)) != TR_OK)
        return rc;
    if (sqlite3_db_readonly(c->db, "main") == 1)
        return tr_fail(why, TR_EDB,
                       "database %s was opened read-only; it is writable now and will be "
                       "reopened",
                       c->path);
    return TR_OK;
}

static int64_t file_size(const char *path, const char *suffix)
{
    char p[4096];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    struct stat sb;
    return stat(p, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static int64_t sqlite_size_bytes(void *h)
{
    struct sqlite_conn *c = h;
    return file_size(c->path, "") + file_size(c->path, "-wal");
}

static tr_err sqlite_start_maintenance(void *h, char *err)
{
    struct sqlite_conn *c = h;
    if (c->ckpt)
        return TR_OK;
    c->ckpt = checkpointer_start(
        c->db, c->path, c->opt.wal_pages ? c->opt.wal_pages : SQLITE_CHECKPOINT_PAGES, err);
    return c->ckpt ? TR_OK : TR_EDB;
}

static void sqlite_stop_maintenance(void *h)
{
    struct sqlite_conn *c = h;
    checkpointer_stop(c->ckpt);
    c->ckpt = NULL;
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .dialect = STORE_DIALECT_SQLITE,
    .open = sqlite_open,
    .close = sqlite_close,
    .display = sqlite_display,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .in_transaction = sqlite_in_transaction,
    .exec = sqlite_exec,
    .col_null = sqlite_col_null,
    .col_int = sqlite_col_int,
    .col_text = sqlite_col_text,
    .col_blob = sqlite_col_blob,
    .last_insert_id = sqlite_last_insert_id,
    .check_writable = sqlite_check_writable,
    .size_bytes = sqlite_size_bytes,
    .start_maintenance = sqlite_start_maintenance,
    .stop_maintenance = sqlite_stop_maintenance,
    .sync_fd = sqlite_sync_fd,
};
