/* store_alerts.c: the SQL of alerts (see store_alerts.h): the new reports
 * the rules look at, the evaluated mark, alerts with their episodes and
 * cooldowns, and the delivery queue. Written once for both backends (?N
 * placeholders, store_exec); nothing here decides what is worth an alert or
 * how it is sent.
 *
 * Concurrency: several processes may evaluate and send on one database (two
 * collectors on PostgreSQL, `tlsrptd alerts --evaluate` from cron beside
 * serve). The evaluated mark moves only from the value a process read (a
 * compare-and-set), an episode is UNIQUE, a cooldown is claimed by an upsert
 * that only takes an expired one, and a delivery is leased by an UPDATE that
 * only takes a due, pending row: each of these is atomic on both backends. */
#include <stdio.h>
#include <string.h>
#include "store_backend.h"
#include "tlsrptd/store_alerts.h"

#define MARK_KEY "alerts_evaluated"

/* ---- what the rules read -------------------------------------------------------------------- */

/* The WHERE of a selection (fixed text) and its arguments; returns the
 * number of arguments, the min_end bound last. */
static size_t sel_where(const struct store_alert_sel *sel, char *where, size_t n,
                        struct sql_arg *args)
{
    size_t k = 0;
    const char *part;
    if (sel->domain) {
        part = "r.start_time >= ?1 AND r.start_time < ?2 AND p.policy_domain = ?3";
        args[k++] = sql_int(sel->since);
        args[k++] = sql_int(sel->until);
        args[k++] = sql_text(sel->domain);
    } else if (sel->after < 0) {
        part = "r.id = ?1";
        args[k++] = sql_int(sel->id);
    } else {
        part = "r.id > ?1 AND r.id <= ?2";
        args[k++] = sql_int(sel->after);
        args[k++] = sql_int(sel->upto);
    }
    args[k++] = sql_int(sel->min_end);
    snprintf(where, n,
             " WHERE %s AND r.end_time >= ?%zu AND p.policy_domain IS NOT NULL AND "
             "p.policy_domain <> ''",
             part, k);
    return k;
}

struct policy_ctx {
    store_alert_policy_fn fn;
    void *cls;
};

static int policy_row(void *cls, struct sql_row *row)
{
    struct policy_ctx *c = cls;
    struct store_alert_policy p = {
        sql_col_int(row, 0),  sql_col_text(row, 1), sql_col_int(row, 2), sql_col_int(row, 3),
        sql_col_text(row, 4), sql_col_int(row, 5),  sql_col_int(row, 6),
    };
    if (p.reporter == NULL || p.domain == NULL)
        return 0;
    return c->fn(c->cls, &p);
}

tr_err store_alert_policies(struct store *st, const struct store_alert_sel *sel,
                            store_alert_policy_fn fn, void *cls, char *err)
{
    char where[256], sql[768];
    struct sql_arg args[4];
    size_t n = sel_where(sel, where, sizeof where, args);
    snprintf(sql, sizeof sql,
             "SELECT r.id, r.organization_name, r.start_time, r.end_time, p.policy_domain, "
             "p.successful_sessions, p.failed_sessions FROM reports r JOIN policies p ON "
             "p.report = r.id%s ORDER BY r.id, p.idx",
             where);
    struct policy_ctx c = {fn, cls};
    return store_exec(st, STMT_NONE, sql, args, n, policy_row, &c, NULL, err);
}

struct detail_ctx {
    store_alert_detail_fn fn;
    void *cls;
};

static int detail_row(void *cls, struct sql_row *row)
{
    struct detail_ctx *c = cls;
    struct store_alert_detail d = {
        sql_col_int(row, 0),  sql_col_text(row, 1), sql_col_int(row, 2),
        sql_col_text(row, 3), sql_col_text(row, 4), sql_col_text(row, 5),
        sql_col_text(row, 6), sql_col_text(row, 7), sql_col_int(row, 8),
    };
    if (d.reporter == NULL || d.domain == NULL || d.result_type == NULL)
        return 0;
    return c->fn(c->cls, &d);
}

tr_err store_alert_details(struct store *st, const struct store_alert_sel *sel,
                           store_alert_detail_fn fn, void *cls, char *err)
{
    char where[256], sql[1024];
    struct sql_arg args[4];
    size_t n = sel_where(sel, where, sizeof where, args);
    snprintf(sql, sizeof sql,
             "SELECT r.id, r.organization_name, r.start_time, p.policy_domain, f.result_type, "
             "f.sending_mta_ip, f.receiving_mx_hostname, f.receiving_ip, f.failed_session_count "
             "FROM reports r JOIN policies p ON p.report = r.id JOIN failure_details f ON "
             "f.policy = p.id%s ORDER BY r.id, p.idx, f.id",
             where);
    struct detail_ctx c = {fn, cls};
    return store_exec(st, STMT_NONE, sql, args, n, detail_row, &c, NULL, err);
}

tr_err store_alert_marks(struct store *st, int64_t *evaluated, int64_t *highest, char *err)
{
    struct sql_pair p = {0, 0};
    tr_err rc = store_exec(st, STMT_NONE,
                           "SELECT (SELECT value FROM meta WHERE key = '" MARK_KEY
                           "'), (SELECT MAX(id) FROM reports)",
                           NULL, 0, sql_take_pair, &p, NULL, err);
    *evaluated = p.a;
    *highest = p.b;
    return rc;
}

tr_err store_alert_advance(struct store *st, int64_t old, int64_t upto, bool *moved, char *err)
{
    static const char sql[] = "INSERT INTO meta (key, value) VALUES ('" MARK_KEY "', ?2) "
                              "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                              "WHERE meta.value = ?1";
    struct sql_arg a[] = {sql_int(old), sql_int(upto)};
    int64_t changes = 0;
    tr_err rc = store_exec(st, STMT_NONE, sql, a, 2, NULL, NULL, &changes, err);
    *moved = rc == TR_OK && changes == 1;
    return rc;
}

struct ids_ctx {
    int64_t *ids;
    size_t cap, n;
};

static int take_id(void *cls, struct sql_row *row)
{
    struct ids_ctx *c = cls;
    if (c->n == c->cap)
        return 1;
    c->ids[c->n++] = sql_col_int(row, 0);
    return 0;
}

tr_err store_alert_present(struct store *st, int64_t after, int64_t upto, int64_t *ids, size_t cap,
                           size_t *n, char *err)
{
    struct sql_arg a[] = {sql_int(after), sql_int(upto), sql_int((int64_t)cap)};
    struct ids_ctx c = {ids, cap, 0};
    tr_err rc = store_exec(st, STMT_NONE,
                           "SELECT id FROM reports WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
                           a, 3, take_id, &c, NULL, err);
    *n = c.n;
    return rc;
}

tr_err store_alert_gap_add(struct store *st, int64_t report, int64_t now, char *err)
{
    struct sql_arg a[] = {sql_int(report), sql_int(now)};
    return store_exec(st, STMT_NONE,
                      "INSERT INTO alert_gaps (report, noticed_at) VALUES (?1, ?2) "
                      "ON CONFLICT (report) DO NOTHING",
                      a, 2, NULL, NULL, NULL, err);
}

tr_err store_alert_gaps(struct store *st, int64_t expire, int64_t *ids, size_t cap, size_t *n,
                        char *err)
{
    *n = 0;
    struct sql_arg e[] = {sql_int(expire)};
    tr_err rc = store_exec(st, STMT_NONE, "DELETE FROM alert_gaps WHERE noticed_at < ?1", e, 1,
                           NULL, NULL, NULL, err);
    if (rc != TR_OK)
        return rc;
    struct sql_arg a[] = {sql_int((int64_t)cap)};
    struct ids_ctx c = {ids, cap, 0};
    rc = store_exec(st, STMT_NONE, "SELECT report FROM alert_gaps ORDER BY report LIMIT ?1", a, 1,
                    take_id, &c, NULL, err);
    *n = c.n;
    return rc;
}

tr_err store_alert_gap_done(struct store *st, int64_t report, char *err)
{
    struct sql_arg a[] = {sql_int(report)};
    return store_exec(st, STMT_NONE, "DELETE FROM alert_gaps WHERE report = ?1", a, 1, NULL, NULL,
                      NULL, err);
}

/* ---- alerts --------------------------------------------------------------------------------- */

#define ALERT_COLUMNS                                                                              \
    "id, created_at, episode, suppressed, rule, policy_domain, subject, title, details"

struct alert_ctx {
    store_alert_fn fn;
    void *cls;
    bool found;
};

static int alert_row(void *cls, struct sql_row *row)
{
    struct alert_ctx *c = cls;
    struct store_alert a = {
        sql_col_int(row, 0),  sql_col_int(row, 1),  sql_col_int(row, 2),
        sql_col_int(row, 3),  sql_col_text(row, 4), sql_col_text(row, 5),
        sql_col_text(row, 6), sql_col_text(row, 7), sql_col_text(row, 8),
    };
    c->found = true;
    if (a.rule == NULL || a.domain == NULL || a.subject == NULL || a.title == NULL ||
        a.details == NULL)
        return 0;
    return c->fn(c->cls, &a);
}

/* Count one more repeat held back by alert id. */
static tr_err suppress(struct store *st, int64_t id, char *err)
{
    struct sql_arg a[] = {sql_int(id)};
    return store_exec(st, STMT_NONE, "UPDATE alerts SET suppressed = suppressed + 1 WHERE id = ?1",
                      a, 1, NULL, NULL, NULL, err);
}

tr_err store_alert_add(struct store *st, const struct store_alert *a, int64_t cooldown, bool repeat,
                       const char *const *channels, size_t nchannels, int64_t *id,
                       enum store_alert_added *added, char *err)
{
    static const char sql_episode[] = "SELECT id FROM alerts WHERE rule = ?1 AND policy_domain = "
                                      "?2 AND subject = ?3 AND episode = ?4";
    /* takes the cooldown only when the one stored has run out */
    static const char sql_claim[] =
        "INSERT INTO alert_cooldowns (rule, policy_domain, subject, alert, until) VALUES (?1, ?2, "
        "?3, 0, ?4) ON CONFLICT (rule, policy_domain, subject) DO UPDATE SET alert = 0, until = "
        "excluded.until WHERE alert_cooldowns.until <= ?5 RETURNING 1";
    static const char sql_holder[] = "SELECT alert FROM alert_cooldowns WHERE rule = ?1 AND "
                                     "policy_domain = ?2 AND subject = ?3";
    static const char sql_insert[] =
        "INSERT INTO alerts (created_at, rule, policy_domain, subject, episode, title, details) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (rule, policy_domain, subject, episode) "
        "DO NOTHING RETURNING id";
    static const char sql_hold[] = "UPDATE alert_cooldowns SET alert = ?4 WHERE rule = ?1 AND "
                                   "policy_domain = ?2 AND subject = ?3";
    static const char sql_delivery[] =
        "INSERT INTO alert_deliveries (alert, channel, state, attempts, next_attempt) VALUES "
        "(?1, ?2, 'pending', 0, ?3) ON CONFLICT (alert, channel) DO NOTHING";
    *id = 0;
    *added = STORE_ALERT_SAME_EPISODE;
    struct sql_arg key[] = {sql_text(a->rule), sql_text(a->domain), sql_text(a->subject),
                            sql_int(a->episode), sql_int(a->created_at)};
    int64_t earlier = 0;
    tr_err rc = store_exec(st, STMT_NONE, sql_episode, key, 4, sql_take_int, &earlier, NULL, err);
    if (rc != TR_OK)
        return rc;
    if (earlier) {
        *id = earlier;
        return repeat ? suppress(st, earlier, err) : TR_OK;
    }
    int64_t until = a->created_at > INT64_MAX - cooldown ? INT64_MAX : a->created_at + cooldown;
    struct sql_arg claim[] = {key[0], key[1], key[2], sql_int(until), sql_int(a->created_at)};
    int64_t claimed = 0;
    if ((rc = store_exec(st, STMT_NONE, sql_claim, claim, 5, sql_take_int, &claimed, NULL, err)) !=
        TR_OK)
        return rc;
    if (claimed == 0) {
        *added = STORE_ALERT_COOLING;
        if ((rc = store_exec(st, STMT_NONE, sql_holder, key, 3, sql_take_int, id, NULL, err)) !=
            TR_OK)
            return rc;
        return *id && repeat ? suppress(st, *id, err) : TR_OK;
    }
    struct sql_arg ins[] = {
        sql_int(a->created_at), key[0], key[1], key[2], sql_int(a->episode), sql_text(a->title),
        sql_text(a->details)};
    if ((rc = store_exec(st, STMT_NONE, sql_insert, ins, 7, sql_take_int, id, NULL, err)) != TR_OK)
        return rc;
    if (*id == 0) /* another process stored this episode a moment ago */
        return TR_OK;
    *added = STORE_ALERT_NEW;
    struct sql_arg hold[] = {key[0], key[1], key[2], sql_int(*id)};
    if ((rc = store_exec(st, STMT_NONE, sql_hold, hold, 4, NULL, NULL, NULL, err)) != TR_OK)
        return rc;
    for (size_t i = 0; i < nchannels && rc == TR_OK; i++) {
        struct sql_arg d[] = {sql_int(*id), sql_text(channels[i]), sql_int(a->created_at)};
        rc = store_exec(st, STMT_NONE, sql_delivery, d, 3, NULL, NULL, NULL, err);
    }
    return rc;
}

tr_err store_alert_get(struct store *st, int64_t id, store_alert_fn fn, void *cls, bool *found,
                       char *err)
{
    struct sql_arg a[] = {sql_int(id)};
    struct alert_ctx c = {fn, cls, false};
    tr_err rc = store_exec(st, STMT_NONE, "SELECT " ALERT_COLUMNS " FROM alerts WHERE id = ?1", a,
                           1, alert_row, &c, NULL, err);
    *found = c.found;
    return rc;
}

tr_err store_alert_list(struct store *st, int64_t since, int64_t until, const char *rule,
                        const char *domain, size_t limit, store_alert_fn fn, void *cls,
                        int64_t *total, char *err)
{
    static const char where[] = " FROM alerts WHERE created_at >= ?1 AND created_at < ?2 AND "
                                "(?3 = '' OR rule = ?3) AND (?4 = '' OR policy_domain = ?4)";
    struct sql_arg a[] = {sql_int(since), sql_int(until), sql_text(rule ? rule : ""),
                          sql_text(domain ? domain : ""), sql_int((int64_t)limit)};
    char sql[512];
    if (total) {
        *total = 0;
        snprintf(sql, sizeof sql, "SELECT COUNT(*)%s", where);
        tr_err rc = store_exec(st, STMT_NONE, sql, a, 4, sql_take_int, total, NULL, err);
        if (rc != TR_OK)
            return rc;
    }
    snprintf(sql, sizeof sql, "SELECT " ALERT_COLUMNS "%s ORDER BY id DESC LIMIT ?5", where);
    struct alert_ctx c = {fn, cls, false};
    return store_exec(st, STMT_NONE, sql, a, 5, alert_row, &c, NULL, err);
}

/* ---- deliveries ----------------------------------------------------------------------------- */

#define DELIVERY_COLUMNS                                                                           \
    "SELECT alert, channel, state, attempts, next_attempt, sent_at, digest, last_error FROM "      \
    "alert_deliveries "

struct delivery_ctx {
    store_alert_delivery_fn fn;
    void *cls;
};

static int delivery_row(void *cls, struct sql_row *row)
{
    struct delivery_ctx *c = cls;
    struct store_alert_delivery d = {
        sql_col_int(row, 0), sql_col_text(row, 1), sql_col_text(row, 2), sql_col_int(row, 3),
        sql_col_int(row, 4), sql_col_int(row, 5),  sql_col_int(row, 6),  sql_col_text(row, 7),
    };
    if (d.channel == NULL || d.state == NULL)
        return 0;
    return c->fn(c->cls, &d);
}

tr_err store_alert_due(struct store *st, int64_t now, size_t limit, store_alert_delivery_fn fn,
                       void *cls, char *err)
{
    struct sql_arg a[] = {sql_int(now), sql_int((int64_t)limit)};
    struct delivery_ctx c = {fn, cls};
    return store_exec(st, STMT_NONE,
                      DELIVERY_COLUMNS "WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY "
                                       "channel, alert LIMIT ?2",
                      a, 2, delivery_row, &c, NULL, err);
}

tr_err store_alert_take(struct store *st, int64_t alert, const char *channel, int64_t now,
                        int64_t lease_until, bool *taken, char *err)
{
    struct sql_arg a[] = {sql_int(alert), sql_text(channel), sql_int(now), sql_int(lease_until)};
    int64_t changes = 0;
    tr_err rc = store_exec(st, STMT_NONE,
                           "UPDATE alert_deliveries SET next_attempt = ?4 WHERE alert = ?1 AND "
                           "channel = ?2 AND state = 'pending' AND next_attempt <= ?3",
                           a, 4, NULL, NULL, &changes, err);
    *taken = rc == TR_OK && changes == 1;
    return rc;
}

tr_err store_alert_sent(struct store *st, int64_t alert, const char *channel, int64_t now,
                        int64_t digest, char *err)
{
    struct sql_arg a[] = {sql_int(alert), sql_text(channel), sql_int(now), sql_int(digest)};
    return store_exec(st, STMT_NONE,
                      "UPDATE alert_deliveries SET state = 'sent', sent_at = ?3, attempts = "
                      "attempts + 1, digest = ?4, last_error = NULL WHERE alert = ?1 AND "
                      "channel = ?2",
                      a, 4, NULL, NULL, NULL, err);
}

tr_err store_alert_failed(struct store *st, int64_t alert, const char *channel,
                          int64_t next_attempt, const char *final_state, const char *error,
                          char *err)
{
    struct sql_arg a[] = {sql_int(alert), sql_text(channel), sql_int(next_attempt), sql_text(error),
                          sql_text(final_state ? final_state : "pending")};
    return store_exec(st, STMT_NONE,
                      "UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt = ?3, "
                      "last_error = ?4, state = ?5 WHERE alert = ?1 AND channel = ?2",
                      a, 5, NULL, NULL, NULL, err);
}

tr_err store_alert_deliveries(struct store *st, int64_t alert, store_alert_delivery_fn fn,
                              void *cls, char *err)
{
    struct sql_arg a[] = {sql_int(alert)};
    struct delivery_ctx c = {fn, cls};
    return store_exec(st, STMT_NONE, DELIVERY_COLUMNS "WHERE alert = ?1 ORDER BY channel", a, 1,
                      delivery_row, &c, NULL, err);
}

/* pg_advisory_lock key of rule evaluation ("tlsrptA" as a big-endian integer) */
#define EVALUATION_LOCK "32770340395447361"

tr_err store_alert_claim(struct store *st, bool *claimed, char *err)
{
    *claimed = true;
    if (store_dialect(st) != STORE_DIALECT_POSTGRESQL)
        return TR_OK;
    int64_t got = 0;
    tr_err rc = store_exec(st, STMT_NONE, "SELECT pg_try_advisory_lock(" EVALUATION_LOCK ")::int",
                           NULL, 0, sql_take_int, &got, NULL, err);
    *claimed = rc == TR_OK && got == 1;
    return rc;
}

void store_alert_claim_release(struct store *st)
{
    if (store_dialect(st) != STORE_DIALECT_POSTGRESQL)
        return;
    char ignore[TR_ERRLEN];
    store_exec(st, STMT_NONE, "SELECT pg_advisory_unlock(" EVALUATION_LOCK ")", NULL, 0, NULL, NULL,
               NULL, ignore);
}

tr_err store_alert_next_due(struct store *st, int64_t *when, char *err)
{
    struct sql_pair p = {0, 0};
    tr_err rc = store_exec(st, STMT_NONE,
                           "SELECT COUNT(*), MIN(next_attempt) FROM alert_deliveries WHERE state "
                           "= 'pending'",
                           NULL, 0, sql_take_pair, &p, NULL, err);
    *when = p.a ? p.b : INT64_MAX;
    return rc;
}
