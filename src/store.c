/* store.c: the SQLite database (WAL): open, schema migrations (schema/NNN_*.sql,
 * compiled in, recorded in PRAGMA user_version), transactions, prepared
 * statements for reports, policies, failure details and the quarantine.
 *
 * One struct store is one connection, used by one thread at a time. Batches use
 * BEGIN IMMEDIATE so the duplicate check and the insert see the same database.
 * synchronous=FULL: a committed report survives power loss, which is what an
 * acknowledgement promises. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/gz.h"
#include "tlsrptd/log.h"
#include "tlsrptd/store.h"

struct tlsrptd_schema_file {
    const char *name;
    const char *sql;
};
extern const struct tlsrptd_schema_file tlsrptd_schema[];
extern const size_t tlsrptd_schema_count;

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_FIND_REPORT,
    S_INSERT_REPORT,
    S_INSERT_POLICY,
    S_INSERT_FAILURE,
    S_INSERT_QUARANTINE,
    S_QUARANTINE_OLDEST,
    S_QUARANTINE_DELETE,
    S_META_GET,
    S_META_ADD,
    S_ROLLUP_SESSIONS,
    S_ROLLUP_FAILURES,
    S_TOTAL_SESSIONS,
    S_TOTAL_FAILURES,
    S_TOTAL_REPORTERS,
    S_COUNT_OUTCOME,
    S_COUNT
};

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_FIND_REPORT] = "SELECT id FROM reports WHERE organization_name = ?1 AND report_id = ?2 "
                      "AND start_time = ?3 AND end_time = ?4",
    [S_INSERT_REPORT] =
        "INSERT INTO reports (organization_name, report_id, start_time, end_time, "
        "start_datetime, end_datetime, contact_info, received_at, source_kind, source_name, "
        "source_client, source_message_id, source_report_domain, source_submitter, "
        "source_subject, warning_count, note_count, diagnostics, raw_encoding, raw, raw_size) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
        "?18, ?19, ?20, ?21) "
        "ON CONFLICT (organization_name, report_id, start_time, end_time) DO NOTHING",
    [S_INSERT_POLICY] = "INSERT INTO policies (report, idx, policy_type, policy_domain, "
                        "policy_strings, mx_hosts, successful_sessions, failed_sessions) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_INSERT_FAILURE] =
        "INSERT INTO failure_details (policy, result_type, sending_mta_ip, "
        "receiving_mx_hostname, receiving_mx_helo, receiving_ip, failed_session_count, "
        "additional_information, failure_reason_code) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_INSERT_QUARANTINE] =
        "INSERT INTO quarantine (received_at, source_kind, source_name, source_client, "
        "source_message_id, source_report_domain, source_submitter, source_subject, reason, raw, "
        "raw_size, raw_kept) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_QUARANTINE_OLDEST] =
        "SELECT id, COALESCE(length(raw), 0) FROM quarantine ORDER BY id LIMIT 1",
    [S_QUARANTINE_DELETE] = "DELETE FROM quarantine WHERE id = ?1",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    /* 002_rollups.sql: a report's policies and failure details, just inserted,
     * added to the per-domain totals (one reports count per domain) */
    [S_ROLLUP_SESSIONS] =
        "INSERT INTO rollup_sessions (policy_domain, start_time, reporter, successful, failed, "
        "reports) SELECT COALESCE(policy_domain, ''), ?2, ?3, SUM(successful_sessions), "
        "SUM(failed_sessions), 1 FROM policies WHERE report = ?1 GROUP BY 1 "
        "ON CONFLICT DO UPDATE SET successful = successful + excluded.successful, "
        "failed = failed + excluded.failed, reports = reports + excluded.reports",
    [S_ROLLUP_FAILURES] =
        "INSERT INTO rollup_failures (policy_domain, start_time, result_type, failed) "
        "SELECT COALESCE(p.policy_domain, ''), ?2, f.result_type, SUM(f.failed_session_count) "
        "FROM failure_details f JOIN policies p ON p.id = f.policy WHERE p.report = ?1 "
        "GROUP BY 1, 3 ON CONFLICT DO UPDATE SET failed = failed + excluded.failed",
    /* the all-time tables of the same: ?2 and ?3 as above, where used */
    [S_TOTAL_SESSIONS] =
        "INSERT INTO domain_totals (policy_domain, successful, failed, reports) "
        "SELECT COALESCE(policy_domain, ''), SUM(successful_sessions), SUM(failed_sessions), 1 "
        "FROM policies WHERE report = ?1 AND ?2 IS NOT NULL GROUP BY 1 "
        "ON CONFLICT DO UPDATE SET successful = successful + excluded.successful, "
        "failed = failed + excluded.failed, reports = reports + excluded.reports",
    [S_TOTAL_FAILURES] =
        "INSERT INTO domain_failures (policy_domain, result_type, failed) "
        "SELECT COALESCE(p.policy_domain, ''), f.result_type, SUM(f.failed_session_count) "
        "FROM failure_details f JOIN policies p ON p.id = f.policy WHERE p.report = ?1 "
        "AND ?2 IS NOT NULL GROUP BY 1, 2 ON CONFLICT DO UPDATE SET failed = failed + "
        "excluded.failed",
    [S_TOTAL_REPORTERS] =
        "INSERT INTO domain_reporters (policy_domain, reporter) "
        "SELECT DISTINCT COALESCE(policy_domain, ''), ?3 FROM policies WHERE report = ?1 "
        "AND ?2 IS NOT NULL ON CONFLICT DO NOTHING",
    [S_COUNT_OUTCOME] = "INSERT INTO outcome_counts (source, outcome, count) VALUES (?1, ?2, 1) "
                        "ON CONFLICT DO UPDATE SET count = count + 1",
    [S_META_ADD] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                   "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    struct store_options opt;
    char *path;
};

static tr_err db_fail(struct store *st, char *err, const char *what)
{
    return tr_fail(err, TR_EDB, "database %s: %s: %s", st->path, what,
                   st->db ? sqlite3_errmsg(st->db) : "not open");
}

sqlite3 *store_db(struct store *st)
{
    return st->db;
}

const char *store_path(const struct store *st)
{
    return st->path;
}

static sqlite3_stmt *stmt(struct store *st, int which)
{
    sqlite3_stmt *s = st->stmt[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static tr_err exec_simple(struct store *st, int which, char *err, const char *what)
{
    sqlite3_stmt *s = stmt(st, which);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, what);
    return TR_OK;
}

static tr_err migrate(struct store *st, char *err)
{
    sqlite3_stmt *s = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return db_fail(st, err, "reading schema version");
    if (sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version > (int)tlsrptd_schema_count)
        return tr_fail(err, TR_EDB,
                       "database %s: schema version %d is newer than this tlsrptd knows (%zu)",
                       st->path, version, tlsrptd_schema_count);
    if (st->opt.read_only) {
        if (version == 0)
            return tr_fail(err, TR_EDB, "database %s: not a tlsrptd database", st->path);
        if (version < (int)tlsrptd_schema_count)
            return tr_fail(err, TR_EDB,
                           "database %s: schema version %d is older than this tlsrptd's (%zu); "
                           "run a command that writes to it (ingest, maildir, serve) to upgrade it",
                           st->path, version, tlsrptd_schema_count);
        return TR_OK;
    }
    for (size_t i = (size_t)version; i < tlsrptd_schema_count; i++) {
        char pragma[64];
        char *msg = NULL;
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %zu", i + 1);
        if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return db_fail(st, err, "starting migration");
        /* re-check inside the lock: another process may have migrated meanwhile */
        int now = 0;
        if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            now = sqlite3_column_int(s, 0);
        sqlite3_finalize(s);
        if ((size_t)now > i) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        if (sqlite3_exec(st->db, tlsrptd_schema[i].sql, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(st->db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            tr_err e = tr_fail(err, TR_EDB, "database %s: applying %s: %s", st->path,
                               tlsrptd_schema[i].name, msg ? msg : sqlite3_errmsg(st->db));
            sqlite3_free(msg);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return e;
        }
        tr_debug("database %s: applied %s", st->path, tlsrptd_schema[i].name);
    }
    return TR_OK;
}

tr_err store_open(const char *path, const struct store_options *opt, struct store **out, char *err)
{
    static const struct store_options defaults = STORE_DEFAULT_OPTIONS;
    *out = NULL;
    struct store *st = calloc(1, sizeof *st);
    if (st == NULL || (st->path = strdup(path)) == NULL) {
        free(st);
        return tr_fail(err, TR_ENOMEM, "database %s: out of memory", path);
    }
    st->opt = opt ? *opt : defaults;
    int flags =
        st->opt.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    tr_err rc = TR_EDB;
    if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        rc = db_fail(st, err, "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, st->opt.busy_timeout_ms);
    sqlite3_extended_result_codes(st->db, 1);
    if (!st->opt.read_only) {
        char *msg = NULL;
        if (sqlite3_exec(st->db, "PRAGMA journal_mode = WAL", NULL, NULL, &msg) != SQLITE_OK) {
            rc = tr_fail(err, TR_EDB, "database %s: cannot enable WAL: %s", path,
                         msg ? msg : sqlite3_errmsg(st->db));
            sqlite3_free(msg);
            goto fail;
        }
    }
    /* FULL: a commit is on disk before anyone is told "stored". A 16 MiB page
     * cache keeps the indexes' hot pages; checkpoints every 32 MiB of WAL
     * rather than 4 MiB halve their cost on bulk ingests. */
    if (sqlite3_exec(st->db,
                     "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                     "PRAGMA cache_size = -16384",
                     NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(st, err, "setting pragmas");
        goto fail;
    }
    sqlite3_wal_autocheckpoint(st->db, STORE_CHECKPOINT_PAGES);
    if ((rc = migrate(st, err)) != TR_OK)
        goto fail;
    if (!st->opt.read_only) {
        for (int i = 0; i < S_COUNT; i++) {
            if (sqlite3_prepare_v3(st->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
                                   NULL) != SQLITE_OK) {
                rc = db_fail(st, err, "preparing statements");
                goto fail;
            }
        }
    }
    *out = st;
    return TR_OK;
fail:
    store_close(st);
    return rc;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (st->db && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

tr_err store_begin(struct store *st, char *err)
{
    return exec_simple(st, S_BEGIN, err, "starting a transaction");
}

tr_err store_commit(struct store *st, char *err)
{
    tr_err rc = exec_simple(st, S_COMMIT, err, "committing");
    if (rc != TR_OK)
        store_rollback(st);
    return rc;
}

void store_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        (void)exec_simple(st, S_ROLLBACK, NULL, "rolling back");
}

bool store_in_transaction(const struct store *st)
{
    return sqlite3_get_autocommit(st->db) == 0;
}

static char *dump_or_null(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
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
    json_t *dj = diag_list_json(diags);
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

/* outcome_counts: stored, duplicate or rejected, per source kind */
static tr_err count_outcome(struct store *st, const char *source, const char *outcome, char *err)
{
    sqlite3_stmt *s = stmt(st, S_COUNT_OUTCOME);
    bind_text(s, 1, source);
    bind_text(s, 2, outcome);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? TR_OK : db_fail(st, err, "counting outcomes");
}

static tr_err insert_policy(struct store *st, int64_t report, size_t idx,
                            const struct report_policy *p, const struct store_blob *blob, char *err)
{
    sqlite3_stmt *s = stmt(st, S_INSERT_POLICY);
    sqlite3_bind_int64(s, 1, report);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
    bind_text(s, 3, p->policy_type);
    bind_text(s, 4, p->policy_domain);
    bind_text(s, 5, blob->policy_strings[idx]);
    bind_text(s, 6, blob->mx_hosts[idx]);
    sqlite3_bind_int64(s, 7, p->successful_sessions);
    sqlite3_bind_int64(s, 8, p->failed_sessions);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, "storing a policy");
    int64_t policy = sqlite3_last_insert_rowid(st->db);

    for (size_t i = 0; i < p->nfailures; i++) {
        const struct report_failure *f = &p->failures[i];
        s = stmt(st, S_INSERT_FAILURE);
        sqlite3_bind_int64(s, 1, policy);
        bind_text(s, 2, f->result_type);
        bind_text(s, 3, f->sending_mta_ip);
        bind_text(s, 4, f->receiving_mx_hostname);
        bind_text(s, 5, f->receiving_mx_helo);
        bind_text(s, 6, f->receiving_ip);
        sqlite3_bind_int64(s, 7, f->failed_session_count);
        bind_text(s, 8, f->additional_information);
        bind_text(s, 9, f->failure_reason_code);
        rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return db_fail(st, err, "storing a failure detail");
    }
    return TR_OK;
}

tr_err store_add_report(struct store *st, const struct report *r, const struct diag_list *diags,
                        const struct store_source *src, const struct store_blob *blob, int64_t *id,
                        bool *duplicate, char *err)
{
    *duplicate = false;
    *id = 0;
    if (blob->npolicies != r->npolicies)
        return tr_fail(err, TR_EDB, "database %s: report and blob disagree", st->path);
    sqlite3_stmt *s = stmt(st, S_INSERT_REPORT);
    bind_text(s, 1, r->organization_name);
    bind_text(s, 2, r->report_id);
    sqlite3_bind_int64(s, 3, r->start_time);
    sqlite3_bind_int64(s, 4, r->end_time);
    bind_text(s, 5, r->start_text);
    bind_text(s, 6, r->end_text);
    bind_text(s, 7, r->contact_info);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)time(NULL));
    bind_text(s, 9, src->kind);
    bind_text(s, 10, src->name);
    bind_text(s, 11, src->client);
    bind_text(s, 12, src->message_id);
    bind_text(s, 13, src->report_domain);
    bind_text(s, 14, src->report_submitter);
    bind_text(s, 15, src->subject);
    sqlite3_bind_int64(s, 16, (sqlite3_int64)diags->warnings);
    sqlite3_bind_int64(s, 17, (sqlite3_int64)diags->notes);
    bind_text(s, 18, blob->diagnostics);
    bind_text(s, 19, blob->encoding);
    sqlite3_bind_blob64(s, 20, blob->len ? blob->data : "", blob->len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 21, (sqlite3_int64)blob->json_size);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, "storing a report");
    if (sqlite3_changes(st->db) == 0) {
        /* the (organization, report-id, start, end) key is taken: a duplicate */
        s = stmt(st, S_FIND_REPORT);
        bind_text(s, 1, r->organization_name);
        bind_text(s, 2, r->report_id);
        sqlite3_bind_int64(s, 3, r->start_time);
        sqlite3_bind_int64(s, 4, r->end_time);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            *id = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc != SQLITE_ROW)
            return db_fail(st, err, "looking up a duplicate");
        *duplicate = true;
        return count_outcome(st, src->kind, "duplicate", err);
    }
    int64_t report = sqlite3_last_insert_rowid(st->db);
    for (size_t i = 0; i < r->npolicies; i++) {
        tr_err e = insert_policy(st, report, i, &r->policies[i], blob, err);
        if (e != TR_OK)
            return e;
    }
    for (int which = S_ROLLUP_SESSIONS; which <= S_TOTAL_REPORTERS; which++) {
        s = stmt(st, which);
        sqlite3_bind_int64(s, 1, report);
        sqlite3_bind_int64(s, 2, r->start_time);
        if (which == S_ROLLUP_SESSIONS || which == S_TOTAL_REPORTERS)
            bind_text(s, 3, r->organization_name);
        rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return db_fail(st, err, "adding to the summary totals");
    }
    *id = report;
    return count_outcome(st, src->kind, "stored", err);
}

static int64_t meta_get(struct store *st, const char *key)
{
    sqlite3_stmt *s = stmt(st, S_META_GET);
    bind_text(s, 1, key);
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return v;
}

static tr_err meta_add(struct store *st, const char *key, int64_t delta, char *err)
{
    sqlite3_stmt *s = stmt(st, S_META_ADD);
    bind_text(s, 1, key);
    sqlite3_bind_int64(s, 2, delta);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? TR_OK : db_fail(st, err, "updating counters");
}

/* Evict the oldest quarantine rows until one more row of rawlen bytes fits. */
static tr_err quarantine_make_room(struct store *st, size_t rawlen, char *err)
{
    int64_t rows = meta_get(st, "quarantine_rows");
    int64_t bytes = meta_get(st, "quarantine_bytes");
    int64_t evicted = 0, freed = 0;
    while (rows > 0 && (rows + 1 > (int64_t)st->opt.quarantine_max_rows ||
                        (rawlen <= st->opt.quarantine_max_bytes &&
                         bytes + (int64_t)rawlen > (int64_t)st->opt.quarantine_max_bytes))) {
        sqlite3_stmt *s = stmt(st, S_QUARANTINE_OLDEST);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(s);
            if (rc == SQLITE_DONE)
                break; /* counters drifted; nothing left to evict */
            return db_fail(st, err, "reading the quarantine");
        }
        int64_t qid = sqlite3_column_int64(s, 0), qlen = sqlite3_column_int64(s, 1);
        sqlite3_reset(s);
        s = stmt(st, S_QUARANTINE_DELETE);
        sqlite3_bind_int64(s, 1, qid);
        rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE)
            return db_fail(st, err, "evicting from the quarantine");
        rows--, bytes -= qlen, evicted++, freed += qlen;
    }
    if (evicted == 0)
        return TR_OK;
    tr_warn("quarantine full: evicted the %lld oldest entries (%lld bytes)", (long long)evicted,
            (long long)freed);
    tr_err e;
    if ((e = meta_add(st, "quarantine_rows", -evicted, err)) != TR_OK ||
        (e = meta_add(st, "quarantine_bytes", -freed, err)) != TR_OK ||
        (e = meta_add(st, "quarantine_evicted", evicted, err)) != TR_OK)
        return e;
    return TR_OK;
}

tr_err store_add_quarantine(struct store *st, const struct store_source *src, const char *reason,
                            const void *raw, size_t rawlen, int64_t *id, char *err)
{
    bool keep = raw != NULL && rawlen <= st->opt.quarantine_max_bytes;
    tr_err e = quarantine_make_room(st, keep ? rawlen : 0, err);
    if (e != TR_OK)
        return e;
    if (raw != NULL && !keep)
        tr_warn("quarantine: %s: %zu bytes exceed the quarantine budget of %zu; reason kept, "
                "bytes not",
                src->name ? src->name : src->kind, rawlen, st->opt.quarantine_max_bytes);
    sqlite3_stmt *s = stmt(st, S_INSERT_QUARANTINE);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)time(NULL));
    bind_text(s, 2, src->kind);
    bind_text(s, 3, src->name);
    bind_text(s, 4, src->client);
    bind_text(s, 5, src->message_id);
    bind_text(s, 6, src->report_domain);
    bind_text(s, 7, src->report_submitter);
    bind_text(s, 8, src->subject);
    bind_text(s, 9, reason);
    if (keep)
        sqlite3_bind_blob64(s, 10, rawlen ? raw : "", rawlen, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 10);
    sqlite3_bind_int64(s, 11, (sqlite3_int64)rawlen);
    sqlite3_bind_int(s, 12, keep);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_fail(st, err, "quarantining an input");
    *id = sqlite3_last_insert_rowid(st->db);
    if ((e = meta_add(st, "quarantine_rows", 1, err)) != TR_OK ||
        (e = meta_add(st, "quarantine_bytes", keep ? (int64_t)rawlen : 0, err)) != TR_OK)
        return e;
    return count_outcome(st, src->kind, "rejected", err);
}
