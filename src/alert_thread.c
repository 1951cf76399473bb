/* alert_thread.c: alerts in `serve` (see alert.h): one thread with a
 * database connection of its own, never the writer's, so rules and slow
 * channels do not hold up a group commit.
 *
 * The thread evaluates and delivers at start (what the last run left
 * pending), one second after a commit woke it (commits in that second are
 * evaluated together: a storm becomes one digest), every alert_interval
 * seconds (silent reporters, quarantine spikes, anything missed), and
 * whenever a delivery that failed is due again. While the database fails it
 * retries every few seconds, reopening the connection. Collectors that share
 * a PostgreSQL database evaluate one at a time (store_alert_claim()): one
 * that finds another at it tries again a second later, and the other's
 * evaluation covers what it stored meanwhile. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/alert.h"
#include "tlsrptd/log.h"
#include "tlsrptd/store_alerts.h"

#define DEBOUNCE    1  /* seconds from the first commit's wake-up to the evaluation */
#define RETRY_DELAY 5  /* seconds before trying a failing database again */
#define MAX_SLEEP   60 /* seconds the thread sleeps at most */

struct alerter {
    const struct config *cfg;
    const struct alert_config *ac;
    struct store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    time_t woken_at;
    volatile int stop; /* read by transfers in progress */
};

static void log_fired(void *cls, const struct store_alert *a, enum store_alert_added added)
{
    (void)cls;
    if (added == STORE_ALERT_NEW)
        tr_info("alert %lld: %s: %s", (long long)a->id, a->rule, a->title);
    else
        tr_debug("alerts: %s %s %s held back (%s)", a->rule, a->domain, a->subject,
                 added == STORE_ALERT_COOLING ? "cooldown" : "already alerted");
}

/* One round: the rules (passes), then every due delivery. false when the
 * database failed. *busy: another collector was evaluating, so this one did
 * not. */
static bool run_round(struct alerter *a, unsigned passes, time_t *next_due, bool *busy)
{
    char err[TR_ERRLEN];
    int64_t now = (int64_t)time(NULL);
    struct alert_counts c = {0};
    bool claimed = true;
    *busy = false;
    if (passes && store_alert_claim(a->st, &claimed, err) != TR_OK) {
        tr_warn("alerts: %s", err);
        return false;
    }
    if (passes && !claimed) {
        *busy = true;
        passes = 0;
    }
    if (passes) {
        tr_err rc = alert_evaluate(a->st, a->ac, now, passes, log_fired, NULL, &c, err);
        store_alert_claim_release(a->st);
        if (rc != TR_OK) {
            tr_warn("alerts: %s", err);
            return false;
        }
    }
    if (passes && c.reports)
        tr_debug("alerts: %zu new reports evaluated: %zu alerts, %zu held back", c.reports, c.fired,
                 c.suppressed);
    struct alert_sent s;
    if (alert_deliver(a->st, a->ac, now, &a->stop, &s, err) != TR_OK) {
        tr_warn("alerts: delivering: %s", err);
        return false;
    }
    int64_t due;
    if (store_alert_next_due(a->st, &due, err) != TR_OK) {
        tr_warn("alerts: %s", err);
        return false;
    }
    *next_due = due == INT64_MAX ? (time_t)INT64_MAX : (time_t)due;
    return true;
}

static void *alerter_main(void *arg)
{
    struct alerter *a = arg;
    time_t next_timed = 0, next_due = 0, retry_at = 0;
    bool failing = false;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        time_t now = time(NULL);
        time_t wake = next_timed < next_due ? next_timed : next_due;
        if (a->woken && a->woken_at + DEBOUNCE < wake)
            wake = a->woken_at + DEBOUNCE;
        if (failing && retry_at > wake)
            wake = retry_at;
        if (wake > now) {
            struct timespec until = {now + (wake - now < MAX_SLEEP ? wake - now : MAX_SLEEP), 0};
            pthread_cond_timedwait(&a->cv, &a->mu, &until);
            continue;
        }
        unsigned passes = 0;
        if (now >= next_timed)
            passes = ALERT_PASS_ALL;
        else if (a->woken && now >= a->woken_at + DEBOUNCE)
            passes = ALERT_PASS_REPORTS | ALERT_PASS_QUARANTINE;
        bool was_woken = a->woken;
        a->woken = false;
        pthread_mutex_unlock(&a->mu);
        if (failing) {
            char err[TR_ERRLEN];
            if (store_reconnect(a->st, err) != TR_OK)
                tr_debug("alerts: reopening the database: %s", err);
        }
        bool busy;
        bool ok = run_round(a, passes, &next_due, &busy);
        pthread_mutex_lock(&a->mu);
        if (ok) {
            if (failing)
                tr_info("alerts: the database answers again");
            failing = false;
            if (busy && passes == ALERT_PASS_ALL) /* another collector at it: again soon */
                next_timed = now + DEBOUNCE;
            else if (passes == ALERT_PASS_ALL)
                next_timed = now + (time_t)a->ac->interval;
            else if (busy && !a->woken) {
                a->woken = true;
                a->woken_at = now;
            }
        } else {
            failing = true;
            retry_at = time(NULL) + RETRY_DELAY;
            next_due = retry_at;
            if (was_woken && !a->woken) { /* evaluate what woke it once the database is back */
                a->woken = true;
                a->woken_at = now;
            }
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct alerter *alerter_start(const struct config *cfg, const struct alert_config *ac, char *err)
{
    struct alerter *a = calloc(1, sizeof *a);
    if (a == NULL) {
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->ac = ac;
    struct store_options sopt = STORE_DEFAULT_OPTIONS;
    sopt.busy_timeout_ms = (int)cfg->busy_timeout;
    sopt.password_file = cfg->db_password_file;
    if (store_open(cfg->db, &sopt, &a->st, err) != TR_OK) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, alerter_main, a) != 0) {
        store_close(a->st);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free(a);
        tr_fail(err, TR_ENOMEM, "cannot start the alert thread");
        return NULL;
    }
    tr_info("alerts: %zu channel%s; rules run after each commit and every %lld s", ac->nchannels,
            ac->nchannels == 1 ? "" : "s", (long long)ac->interval);
    return a;
}

void alerter_wake(void *alerter)
{
    struct alerter *a = alerter;
    pthread_mutex_lock(&a->mu);
    if (!a->woken) {
        a->woken = true;
        a->woken_at = time(NULL);
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
}

void alerter_stop(struct alerter *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    store_close(a->st);
    free(a);
}
