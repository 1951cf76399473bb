/* store_alerts.h: the storage of alerts, on every backend:
 * what the rules read that the summaries do not (the new reports, one policy
 * domain at a time, with their failure details), the alerts themselves with
 * their cooldowns, and the delivery queue (one row per alert and channel).
 *
 * An alert and its deliveries are written in one transaction before anything
 * is sent; a sender takes a due delivery by leasing it (so two processes on
 * one database do not send it twice), then marks it sent or schedules its
 * next attempt. Rules and senders live in alert*.c; only this file (with the
 * other store_*.c) speaks SQL. */
#ifndef TLSRPTD_STORE_ALERTS_H
#define TLSRPTD_STORE_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/err.h"
#include "tlsrptd/store.h"

/* ---- what the rules read -------------------------------------------------------------------- */

/* Which reports: ids in (after, upto], or the one report id (after < 0), or
 * (domain set) the reports of domain that started in [since, until). Reports
 * whose window ended before min_end are left out. */
struct store_alert_sel {
    int64_t after, upto, id;
    const char *domain;
    int64_t since, until;
    int64_t min_end;
};

/* One policy of a report with a policy domain (policies without one are not
 * alerted on). Strings are borrowed for the callback. */
struct store_alert_policy {
    int64_t report;
    const char *reporter;
    int64_t start_time, end_time;
    const char *domain;
    int64_t successful, failed;
};
/* One failure detail of such a policy. */
struct store_alert_detail {
    int64_t report;
    const char *reporter;
    int64_t start_time;
    const char *domain, *result_type, *sending_ip, *mx_host, *receiving_ip;
    int64_t failed;
};
typedef int (*store_alert_policy_fn)(void *cls, const struct store_alert_policy *p);
typedef int (*store_alert_detail_fn)(void *cls, const struct store_alert_detail *d);

/* Policies and failure details of the selected reports, in report id order. */
tr_err store_alert_policies(struct store *st, const struct store_alert_sel *sel,
                            store_alert_policy_fn fn, void *cls, char *err);
tr_err store_alert_details(struct store *st, const struct store_alert_sel *sel,
                           store_alert_detail_fn fn, void *cls, char *err);

/* Whether this connection may evaluate the rules now. On PostgreSQL a
 * session advisory lock that one connection of all collectors holds at a
 * time: another collector would evaluate the same reports only to roll back
 * (the mark moves from the value read). On SQLite always. Held until
 * store_alert_claim_release() or the connection's end. */
tr_err store_alert_claim(struct store *st, bool *claimed, char *err);
void store_alert_claim_release(struct store *st);
/* The highest report id the rules have looked at, and the highest stored. */
tr_err store_alert_marks(struct store *st, int64_t *evaluated, int64_t *highest, char *err);
/* In a transaction: move the evaluated mark from old to new. *moved is false
 * when another process moved it first (then roll back: it did the work). */
tr_err store_alert_advance(struct store *st, int64_t old, int64_t upto, bool *moved, char *err);
/* The ids in (after, upto] that are stored, in order (ids is filled up to
 * cap; *n gets how many). */
tr_err store_alert_present(struct store *st, int64_t after, int64_t upto, int64_t *ids, size_t cap,
                           size_t *n, char *err);

/* Ids that were missing below the mark (see schema 004): remember one, forget
 * those noticed before expire, list the rest (up to cap), drop one. */
tr_err store_alert_gap_add(struct store *st, int64_t report, int64_t now, char *err);
tr_err store_alert_gaps(struct store *st, int64_t expire, int64_t *ids, size_t cap, size_t *n,
                        char *err);
tr_err store_alert_gap_done(struct store *st, int64_t report, char *err);

/* ---- alerts --------------------------------------------------------------------------------- */

/* An alert as stored. subject: result type, reporter or ""; details: JSON. */
struct store_alert {
    int64_t id, created_at, episode, suppressed;
    const char *rule, *domain, *subject, *title, *details;
};

enum store_alert_added {
    STORE_ALERT_NEW,          /* stored, with its deliveries */
    STORE_ALERT_SAME_EPISODE, /* this situation has alerted already: not stored */
    STORE_ALERT_COOLING,      /* (rule, domain, subject) is within its cooldown: not stored */
};

/* In a transaction: store a (its id and suppressed are ignored) unless its
 * episode has an alert already or its (rule, domain, subject) is cooling
 * down; then, when repeat is set (a new report said it again), that alert's
 * suppressed count grows instead. A new alert starts a cooldown until
 * created_at + cooldown and gets one pending delivery per channel, due at
 * once. *id: the new alert's, or the one that held it back. */
tr_err store_alert_add(struct store *st, const struct store_alert *a, int64_t cooldown, bool repeat,
                       const char *const *channels, size_t nchannels, int64_t *id,
                       enum store_alert_added *added, char *err);

/* One alert by id; *found false when there is none. */
typedef int (*store_alert_fn)(void *cls, const struct store_alert *a);
tr_err store_alert_get(struct store *st, int64_t id, store_alert_fn fn, void *cls, bool *found,
                       char *err);
/* Alerts created in [since, until), newest first, optionally of one rule and
 * domain (NULL: any); *total gets how many match. */
tr_err store_alert_list(struct store *st, int64_t since, int64_t until, const char *rule,
                        const char *domain, size_t limit, store_alert_fn fn, void *cls,
                        int64_t *total, char *err);

/* ---- deliveries ----------------------------------------------------------------------------- */

struct store_alert_delivery {
    int64_t alert;
    const char *channel, *state; /* pending, sent, failed, dropped */
    int64_t attempts, next_attempt, sent_at, digest;
    const char *last_error; /* NULL when none */
};
typedef int (*store_alert_delivery_fn)(void *cls, const struct store_alert_delivery *d);

/* Pending deliveries due at now, by channel then alert, at most limit. */
tr_err store_alert_due(struct store *st, int64_t now, size_t limit, store_alert_delivery_fn fn,
                       void *cls, char *err);
/* Take a due delivery until lease_until; *taken is false when it is not due
 * or pending any more (another sender took it). */
tr_err store_alert_take(struct store *st, int64_t alert, const char *channel, int64_t now,
                        int64_t lease_until, bool *taken, char *err);
/* After an attempt: sent (in a digest of digest alerts; 1 for one alert), or
 * failed with error: state stays pending until next_attempt, or becomes
 * final_state ("failed", "dropped") when final_state is not NULL. */
tr_err store_alert_sent(struct store *st, int64_t alert, const char *channel, int64_t now,
                        int64_t digest, char *err);
tr_err store_alert_failed(struct store *st, int64_t alert, const char *channel,
                          int64_t next_attempt, const char *final_state, const char *error,
                          char *err);
/* The deliveries of one alert, by channel. */
tr_err store_alert_deliveries(struct store *st, int64_t alert, store_alert_delivery_fn fn,
                              void *cls, char *err);
/* When the next pending delivery is due (INT64_MAX: none). */
tr_err store_alert_next_due(struct store *st, int64_t *when, char *err);

#endif
