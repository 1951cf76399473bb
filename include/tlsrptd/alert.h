/* alert.h: alerting: tell the operator when mail to their
 * domains stops being protected, without their having to look.
 *
 * Rules (alert_rules.c) look at what was stored and write alerts, each with
 * one pending delivery per channel, into the database before anything is
 * sent. The sender (alert.c) takes due deliveries, sends them (one message,
 * or one digest per channel when many are due at once), and marks them sent
 * or tries again later with backoff. `serve` runs both on a thread and
 * connection of its own (alert_thread.c), woken after each commit and on a
 * timer; `tlsrptd alerts --evaluate` runs them once.
 *
 * The rules, each alerting at most once per episode (the day, hour or last
 * report it is about) and once per (rule, domain, subject) per cooldown:
 *   new-failure       a result type seen for a domain for the first time, or
 *                     again after alert_clean_days without it
 *   failure-rate      a report in which a domain's failure rate is at least
 *                     alert_failure_rate with at least alert_min_sessions
 *   rate-jump         a domain's daily failure rate at least alert_jump times
 *                     its 28-day baseline, and at least alert_jump_floor
 *   silent-reporter   a reporter that reported a domain on most of 14 days
 *                     and then sent nothing for alert_silence days
 *   quarantine-spike  more than alert_quarantine rejected inputs in an hour */
#ifndef TLSRPTD_ALERT_H
#define TLSRPTD_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/alert_channel.h"
#include "tlsrptd/config.h"
#include "tlsrptd/err.h"
#include "tlsrptd/store.h"
#include "tlsrptd/store_alerts.h"

enum alert_rule {
    ALERT_NEW_FAILURE,
    ALERT_FAILURE_RATE,
    ALERT_RATE_JUMP,
    ALERT_SILENT_REPORTER,
    ALERT_QUARANTINE_SPIKE,
    ALERT_NRULES
};
/* "new-failure", ...; alert_rule_find: ALERT_NRULES when name is none. */
const char *alert_rule_name(enum alert_rule r);
enum alert_rule alert_rule_find(const char *name);

#define ALERT_MAX_CHANNELS (2 * CONFIG_MAX_LIST)

/* The alert_* keys of the configuration, checked. */
struct alert_config {
    unsigned rules; /* 1u << enum alert_rule for each rule that alerts */
    int64_t cooldown, interval;
    int64_t clean_days, min_sessions, silence_days, quarantine_max, digest_min;
    double failure_rate, jump, jump_floor; /* fractions (0.05), and a factor */
    struct alert_channel channels[ALERT_MAX_CHANNELS];
    size_t nchannels;
    struct alert_mailer mailer;
};

/* Fill ac from cfg; TR_EUSAGE with err naming the key when a value is wrong.
 * ac owns copies of what it keeps: alert_config_free() releases them. */
tr_err alert_config_init(struct alert_config *ac, const struct config *cfg, char *err);
void alert_config_free(struct alert_config *ac);

/* What alert_evaluate looks at. */
enum {
    ALERT_PASS_REPORTS = 1,    /* the reports stored since the last pass */
    ALERT_PASS_QUARANTINE = 2, /* rejected inputs of the last hour */
    ALERT_PASS_SILENCE = 4,    /* reporters that went quiet */
    ALERT_PASS_ALL = 7
};

struct alert_counts {
    size_t reports;    /* new reports looked at */
    size_t fired;      /* alerts stored (and queued for every channel) */
    size_t suppressed; /* repeats held back (same episode, or cooldown) */
};
/* Called for each alert a rule raised: added says whether it was stored. */
typedef void (*alert_fired_fn)(void *cls, const struct store_alert *a,
                               enum store_alert_added added);

/* Run the rules as of now (Unix seconds); fn (may be NULL) sees each alert.
 * TR_EDB when storage fails (what was committed before stays). */
tr_err alert_evaluate(struct store *st, const struct alert_config *ac, int64_t now, unsigned passes,
                      alert_fired_fn fn, void *cls, struct alert_counts *out, char *err);

struct alert_sent {
    size_t messages; /* messages that reached a channel (a digest is one) */
    size_t alerts;   /* deliveries marked sent */
    size_t failed;   /* deliveries that failed this time (retried later, or given up) */
};
/* Send every delivery due at now. stop (may be NULL) cuts a transfer short
 * when it becomes non-zero. */
tr_err alert_deliver(struct store *st, const struct alert_config *ac, int64_t now,
                     const volatile int *stop, struct alert_sent *out, char *err);

/* Send a test message through every channel; fn sees each outcome. Returns
 * the number of channels that failed. Stores nothing. */
typedef void (*alert_test_fn)(void *cls, const struct alert_channel *c, bool ok,
                              const char *detail);
size_t alert_test(const struct alert_config *ac, int64_t now, alert_test_fn fn, void *cls);

/* The delay before attempt n+1 of a delivery that failed n times (n >= 1):
 * 5 s doubling to 15 min. After ALERT_GIVE_UP seconds it is given up. */
int64_t alert_backoff(int64_t attempts);
#define ALERT_GIVE_UP (3 * 86400)

/* ---- in serve: a thread and connection of their own ------------------------------------------ */

struct alerter;
/* Open a connection to cfg->db and start the thread: it evaluates and
 * delivers at once (what a restart left pending), then after each
 * alerter_wake (debounced) and every ac->interval seconds. ac must outlive
 * the alerter. */
struct alerter *alerter_start(const struct config *cfg, const struct alert_config *ac, char *err);
/* Something was committed: evaluate soon. Cheap; any thread (a writer hook). */
void alerter_wake(void *alerter);
/* Stop (a transfer in progress is cut short) and close. NULL: nothing. */
void alerter_stop(struct alerter *a);

#endif
