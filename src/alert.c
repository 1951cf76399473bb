/* alert.c: the alert_* configuration, the sender and the test of alert.h.
 * The rules are in alert_rules.c, the words in alert_message.c, the
 * transports in alert_channel.c, the thread of `serve` in alert_thread.c.
 *
 * The sender takes the deliveries due now, channel by channel: each is
 * leased first (store_alert_take), so a second process on the same database
 * skips it; then sent, one message per alert or, when more than
 * alert_digest are due at once for one channel, one digest of them all. A
 * delivery that fails stays pending with its next attempt 5 s later,
 * doubling to 15 min, and is given up after ALERT_GIVE_UP seconds. A
 * delivery for a channel that is no longer configured is dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tlsrptd/alert.h"
#include "tlsrptd/log.h"

#define DUE_MAX       2000 /* deliveries taken in one pass */
#define LEASE         300  /* seconds a taken delivery is another sender's to leave alone */
#define BACKOFF_FIRST 5
#define BACKOFF_MAX   900

int64_t alert_backoff(int64_t attempts)
{
    int64_t d = BACKOFF_FIRST;
    for (int64_t i = 1; i < attempts && d < BACKOFF_MAX; i++)
        d *= 2;
    return d < BACKOFF_MAX ? d : BACKOFF_MAX;
}

/* ---- configuration -------------------------------------------------------------------------- */

/* "5%", "0.05" or "2.5" into *out; percent: a trailing % divides by 100. */
static bool parse_number(const char *s, double *out)
{
    char *end;
    if (s == NULL || *s == 0)
        return false;
    double v = strtod(s, &end);
    if (end == s)
        return false;
    if (*end == '%') {
        v /= 100.0;
        end++;
    }
    if (*end || !(v >= 0.0 && v <= 1e9)) /* also false for NaN */
        return false;
    *out = v;
    return true;
}

static tr_err parse_rules(const char *s, unsigned *rules, char *err)
{
    *rules = 0;
    if (s == NULL || strcmp(s, "all") == 0) {
        *rules = (1u << ALERT_NRULES) - 1;
        return TR_OK;
    }
    if (strcmp(s, "none") == 0)
        return TR_OK;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        enum alert_rule r = alert_rule_find(tok);
        if (r == ALERT_NRULES)
            return tr_fail(err, TR_EUSAGE,
                           "alert_rules: '%s' is not a rule (all, none, new-failure, "
                           "failure-rate, rate-jump, silent-reporter, quarantine-spike)",
                           tok);
        *rules |= 1u << r;
    }
    return TR_OK;
}

static char *copy_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

tr_err alert_config_init(struct alert_config *ac, const struct config *cfg, char *err)
{
    memset(ac, 0, sizeof *ac);
    tr_err rc = parse_rules(cfg->alert_rules, &ac->rules, err);
    if (rc != TR_OK)
        return rc;
    ac->cooldown = (int64_t)cfg->alert_cooldown;
    ac->interval = (int64_t)cfg->alert_interval;
    ac->clean_days = (int64_t)cfg->alert_clean_days;
    ac->min_sessions = (int64_t)cfg->alert_min_sessions;
    ac->silence_days = (int64_t)cfg->alert_silence;
    ac->quarantine_max = (int64_t)cfg->alert_quarantine;
    ac->digest_min = (int64_t)cfg->alert_digest;
    if (!parse_number(cfg->alert_failure_rate, &ac->failure_rate) || ac->failure_rate <= 0 ||
        ac->failure_rate > 1)
        return tr_fail(err, TR_EUSAGE,
                       "alert_failure_rate: '%s' is not a rate above 0 and at most 100%% (5%% "
                       "or 0.05)",
                       cfg->alert_failure_rate ? cfg->alert_failure_rate : "");
    if (!parse_number(cfg->alert_jump, &ac->jump) || ac->jump < 1)
        return tr_fail(err, TR_EUSAGE, "alert_jump: '%s' is not a factor of at least 1",
                       cfg->alert_jump ? cfg->alert_jump : "");
    if (!parse_number(cfg->alert_jump_floor, &ac->jump_floor) || ac->jump_floor > 1)
        return tr_fail(err, TR_EUSAGE,
                       "alert_jump_floor: '%s' is not a rate from 0 to 100%% (1%% or 0.01)",
                       cfg->alert_jump_floor ? cfg->alert_jump_floor : "");
    const struct config_list *lists[2] = {&cfg->alert_webhook, &cfg->alert_email};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < lists[k]->n; i++) {
            struct alert_channel *c = &ac->channels[ac->nchannels];
            if ((rc = alert_channel_parse(k ? ALERT_CHANNEL_EMAIL : ALERT_CHANNEL_WEBHOOK,
                                          lists[k]->items[i], c, err)) != TR_OK) {
                alert_config_free(ac);
                return rc;
            }
            ac->nchannels++;
            for (size_t j = 0; j + 1 < ac->nchannels; j++)
                if (strcmp(ac->channels[j].name, c->name) == 0) {
                    rc = tr_fail(err, TR_EUSAGE, "%s: %s is configured twice",
                                 k ? "alert_email" : "alert_webhook", c->name);
                    alert_config_free(ac);
                    return rc;
                }
        }
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    char from[300];
    snprintf(from, sizeof from, "tlsrptd@%s", host);
    ac->mailer.sendmail = copy_or_null(cfg->alert_sendmail);
    ac->mailer.smtp = copy_or_null(cfg->alert_smtp);
    ac->mailer.from = strdup(cfg->alert_from && cfg->alert_from[0] ? cfg->alert_from : from);
    ac->mailer.host = strdup(host);
    if (ac->mailer.from == NULL || ac->mailer.host == NULL) {
        alert_config_free(ac);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    struct alert_channel probe;
    char detail[TR_ERRLEN];
    char probe_value[320];
    snprintf(probe_value, sizeof probe_value, "%s", ac->mailer.from);
    if (alert_channel_parse(ALERT_CHANNEL_EMAIL, probe_value, &probe, detail) != TR_OK) {
        alert_config_free(ac);
        return tr_fail(err, TR_EUSAGE, "alert_from: '%s' is not a mail address",
                       cfg->alert_from ? cfg->alert_from : from);
    }
    alert_channel_free(&probe);
    return TR_OK;
}

void alert_config_free(struct alert_config *ac)
{
    for (size_t i = 0; i < ac->nchannels; i++)
        alert_channel_free(&ac->channels[i]);
    free((char *)ac->mailer.sendmail);
    free((char *)ac->mailer.smtp);
    free((char *)ac->mailer.from);
    free((char *)ac->mailer.host);
    memset(ac, 0, sizeof *ac);
}

/* ---- delivering ----------------------------------------------------------------------------- */

struct due {
    int64_t alert, attempts;
    char *channel;
};

struct due_list {
    struct due *v;
    size_t n, cap;
    bool oom;
};

static int take_due(void *cls, const struct store_alert_delivery *d)
{
    struct due_list *l = cls;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct due *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            l->oom = true;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = (struct due){d->alert, d->attempts, strdup(d->channel)};
    if (l->v[l->n].channel == NULL) {
        l->oom = true;
        return 1;
    }
    l->n++;
    return 0;
}

/* An alert loaded for sending: owned copies. */
struct loaded {
    struct alert_msg m;
    char *rule, *domain, *subject, *title;
    json_t *details;
    int64_t attempts;
};

static int load_alert(void *cls, const struct store_alert *a)
{
    struct loaded *l = cls;
    l->rule = strdup(a->rule);
    l->domain = strdup(a->domain);
    l->subject = strdup(a->subject);
    l->title = strdup(a->title);
    l->details = json_loads(a->details, 0, NULL);
    if (l->details == NULL)
        l->details = json_object();
    l->m = (struct alert_msg){a->id,     a->created_at, a->suppressed, l->rule,
                              l->domain, l->subject,    l->title,      l->details};
    return 1;
}

static void loaded_free(struct loaded *l)
{
    free(l->rule);
    free(l->domain);
    free(l->subject);
    free(l->title);
    json_decref(l->details);
    memset(l, 0, sizeof *l);
}

static const struct alert_channel *channel_named(const struct alert_config *ac, const char *name)
{
    for (size_t i = 0; i < ac->nchannels; i++)
        if (strcmp(ac->channels[i].name, name) == 0)
            return &ac->channels[i];
    return NULL;
}

/* Record the outcome of one attempt for alerts v[0..n), in one transaction. */
static tr_err record(struct store *st, const char *channel, struct loaded *v, size_t n, int64_t now,
                     bool ok, const char *why, struct alert_sent *out, char *err)
{
    tr_err rc = store_begin(st, err);
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        if (ok) {
            rc = store_alert_sent(st, v[i].m.id, channel, now, (int64_t)n, err);
            out->alerts++;
            continue;
        }
        out->failed++;
        int64_t attempts = v[i].attempts + 1;
        bool give_up = now - v[i].m.created_at > ALERT_GIVE_UP;
        int64_t next = now + alert_backoff(attempts);
        rc = store_alert_failed(st, v[i].m.id, channel, next, give_up ? "failed" : NULL, why, err);
        if (give_up)
            tr_err_log("alert %lld: giving up on %s after %lld attempts: %s", (long long)v[i].m.id,
                       channel, (long long)attempts, why);
        else if (i == 0 || n < 4)
            tr_warn("alert %lld%s: %s failed (attempt %lld): %s; trying again in %lld s",
                    (long long)v[i].m.id, n < 4 ? "" : " and the rest of its digest", channel,
                    (long long)attempts, why, (long long)alert_backoff(attempts));
    }
    if (rc == TR_OK)
        return store_commit(st, err);
    store_rollback(st);
    return rc;
}

/* Send the taken alerts v[0..n) of one channel. */
static tr_err send_taken(struct store *st, const struct alert_config *ac,
                         const struct alert_channel *c, struct loaded *v, size_t n, int64_t now,
                         const volatile int *stop, struct alert_sent *out, char *err)
{
    struct alert_msg *msgs = malloc((n ? n : 1) * sizeof *msgs);
    if (msgs == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        msgs[i] = v[i].m;
    bool digest = (int64_t)n > ac->digest_min;
    tr_err rc = TR_OK;
    char why[TR_ERRLEN] = "";
    for (size_t i = 0; i < n && rc == TR_OK;) {
        size_t k = digest ? (n - i < ALERT_DIGEST_MAX ? n - i : ALERT_DIGEST_MAX) : 1;
        bool ok = why[0] == 0 && /* after a failure the channel is taken as down */
                  alert_channel_send(c, &ac->mailer, &msgs[i], k, stop, why) == TR_OK;
        if (ok) {
            out->messages++;
            if (k == 1)
                tr_info("alert %lld sent to %s", (long long)msgs[i].id, c->name);
            else
                tr_info("digest of %zu alerts (%lld to %lld) sent to %s", k, (long long)msgs[i].id,
                        (long long)msgs[i + k - 1].id, c->name);
        }
        rc = record(st, c->name, &v[i], k, now, ok, why, out, err);
        i += k;
    }
    free(msgs);
    return rc;
}

tr_err alert_deliver(struct store *st, const struct alert_config *ac, int64_t now,
                     const volatile int *stop, struct alert_sent *out, char *err)
{
    memset(out, 0, sizeof *out);
    struct due_list due = {0};
    tr_err rc = store_alert_due(st, now, DUE_MAX, take_due, &due, err);
    if (rc == TR_OK && due.oom)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    struct loaded *v = rc == TR_OK && due.n ? calloc(due.n, sizeof *v) : NULL;
    if (rc == TR_OK && due.n && v == NULL)
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; rc == TR_OK && i < due.n && !(stop && *stop);) {
        size_t j = i;
        while (j < due.n && strcmp(due.v[j].channel, due.v[i].channel) == 0)
            j++;
        const struct alert_channel *c = channel_named(ac, due.v[i].channel);
        size_t n = 0;
        /* lease them (or drop them) in one transaction, then load them */
        rc = store_begin(st, err);
        for (size_t k = i; k < j && rc == TR_OK; k++) {
            if (c == NULL) {
                rc = store_alert_failed(st, due.v[k].alert, due.v[k].channel, now, "dropped",
                                        "the channel is no longer configured", err);
                tr_warn("alert %lld: %s is no longer configured; not sent there",
                        (long long)due.v[k].alert, due.v[k].channel);
                continue;
            }
            bool taken = false;
            if ((rc = store_alert_take(st, due.v[k].alert, due.v[k].channel, now, now + LEASE,
                                       &taken, err)) == TR_OK &&
                taken)
                due.v[k].attempts = -1 - due.v[k].attempts; /* mark: taken */
        }
        if (rc == TR_OK)
            rc = store_commit(st, err);
        else
            store_rollback(st);
        for (size_t k = i; k < j && rc == TR_OK; k++) {
            if (due.v[k].attempts >= 0)
                continue;
            bool found = false;
            if ((rc = store_alert_get(st, due.v[k].alert, load_alert, &v[n], &found, err)) ==
                    TR_OK &&
                found && v[n].rule) {
                v[n].attempts = -1 - due.v[k].attempts;
                n++;
            } else {
                loaded_free(&v[n]);
            }
        }
        if (rc == TR_OK && n)
            rc = send_taken(st, ac, c, v, n, now, stop, out, err);
        for (size_t k = 0; k < n; k++)
            loaded_free(&v[k]);
        i = j;
    }
    for (size_t i = 0; i < due.n; i++)
        free(due.v[i].channel);
    free(due.v);
    free(v);
    return rc;
}

/* ---- the test ------------------------------------------------------------------------------- */

size_t alert_test(const struct alert_config *ac, int64_t now, alert_test_fn fn, void *cls)
{
    json_t *details = json_pack("{s:s}", "why", "tlsrptd alerts --test");
    struct alert_msg m = {0, now, 0, "test", "", "", "tlsrptd test alert", details};
    size_t failed = 0;
    for (size_t i = 0; i < ac->nchannels; i++) {
        char why[TR_ERRLEN];
        bool ok = alert_channel_send(&ac->channels[i], &ac->mailer, &m, 1, NULL, why) == TR_OK;
        failed += !ok;
        fn(cls, &ac->channels[i], ok, ok ? "" : why);
    }
    json_decref(details);
    return failed;
}
