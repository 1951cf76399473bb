/* cli_alerts.c: `tlsrptd alerts`: the history of alerts with what became of
 * each delivery (table or JSON); `--evaluate` runs the rules once and sends
 * what is due (for cron, and for tests with `--now`); `--test` sends a test
 * message through every channel and says which worked. The rules, channels
 * and queue are alert*.c and store_alerts.c; this file parses arguments and
 * prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/alert.h"
#include "tlsrptd/query.h"
#include "tlsrptd/store_alerts.h"

/* seconds --evaluate waits while another collector evaluates the rules */
#define TURN_WAIT 60

static const char help[] =
    "Usage: tlsrptd alerts [-c FILE] [--db DB] [--since T] [--until T] [--rule R]\n"
    "                      [--domain D] [--limit N] [--format table|json]\n"
    "       tlsrptd alerts --evaluate [--now T] [-c FILE] [OPTIONS]\n"
    "       tlsrptd alerts --test [-c FILE] [OPTIONS]\n"
    "\n"
    "Alerts tell when mail to a domain stops being protected by TLS. `serve` runs\n"
    "the rules after each commit and on a timer; this command shows their history\n"
    "(newest first, with each channel's delivery), runs them once, or tests the\n"
    "channels.\n"
    "\n"
    "  --evaluate      run the rules as of now (or --now) and send every alert due,\n"
    "                  then print what fired (for cron when serve does not run)\n"
    "  --now T         --evaluate as of this time (a date, or a date and time, UTC)\n"
    "  --test          send a test message through every alert_webhook and\n"
    "                  alert_email and say which worked (stores nothing)\n"
    "  --since T, --until T  alerts created in [since, until): a date, a date and\n"
    "                  time, or a time ago (30d, 12h)\n"
    "  --rule R        only this rule's alerts; --domain D only this domain's\n"
    "  --limit N       at most N alerts (default 100)\n"
    "  --format F      table (default) or json\n"
    "\n"
    "Rules: new-failure, failure-rate, rate-jump, silent-reporter,\n"
    "quarantine-spike; channels and thresholds are the alert_* keys (tlsrptd serve\n"
    "--help lists them; every key is also a flag here).\n"
    "\n"
    "Exit: 0; 64 usage; 66 no database; 75 storage unavailable, or (--test,\n"
    "--evaluate) a channel failed; 78 --test without channels.\n";

static void print_help(void)
{
    fputs(help, stdout);
}

struct args {
    bool evaluate, test;
    const char *format, *rule, *domain;
    int64_t now, since, until;
    size_t limit;
};

static int take_arg(void *ctx, const char *arg)
{
    static const char *pending;
    struct args *a = ctx;
    if (pending) {
        const char *opt = pending;
        pending = NULL;
        long n;
        if (strcmp(opt, "--since") == 0 || strcmp(opt, "--until") == 0 ||
            strcmp(opt, "--now") == 0) {
            int64_t *t = opt[2] == 's' ? &a->since : opt[2] == 'u' ? &a->until : &a->now;
            if (!query_parse_time(arg, (int64_t)time(NULL), t)) {
                cli_usage_error("alerts", "%s: '%s' is not a date or a time ago", opt, arg);
                return -1;
            }
        } else if (strcmp(opt, "--limit") == 0) {
            if (!cli_parse_long(arg, 1, 100000000, &n)) {
                cli_usage_error("alerts", "--limit: '%s' is not a positive number", arg);
                return -1;
            }
            a->limit = (size_t)n;
        } else if (strcmp(opt, "--rule") == 0) {
            if (alert_rule_find(arg) == ALERT_NRULES) {
                cli_usage_error("alerts", "--rule: '%s' is not a rule", arg);
                return -1;
            }
            a->rule = arg;
        } else if (strcmp(opt, "--domain") == 0) {
            a->domain = arg;
        } else {
            a->format = arg;
        }
        return 1;
    }
    static const char *const valued[] = {"--since", "--until",  "--now",   "--limit",
                                         "--rule",  "--domain", "--format"};
    for (size_t i = 0; i < sizeof valued / sizeof *valued; i++)
        if (strcmp(arg, valued[i]) == 0) {
            pending = valued[i];
            return 1;
        }
    if (strcmp(arg, "--evaluate") == 0) {
        a->evaluate = true;
        return 1;
    }
    if (strcmp(arg, "--test") == 0) {
        a->test = true;
        return 1;
    }
    if (arg[0] != '-') {
        cli_usage_error("alerts", "unexpected argument '%s'", arg);
        return -1;
    }
    return 0; /* a config flag */
}

/* ---- the history ---------------------------------------------------------------------------- */

static json_t *time_or_null(int64_t t)
{
    if (t <= 0)
        return json_null();
    char s[32];
    query_format_time(t, s);
    return json_string(s);
}

static int delivery_json(void *cls, const struct store_alert_delivery *d)
{
    json_t *list = cls;
    bool pending = strcmp(d->state, "pending") == 0;
    json_array_append_new(
        list, json_pack("{s:s, s:s, s:I, s:o, s:o, s:o, s:o}", "channel", d->channel, "state",
                        d->state, "attempts", (json_int_t)d->attempts, "next_attempt",
                        pending ? time_or_null(d->next_attempt) : json_null(), "sent_at",
                        time_or_null(d->sent_at), "digest",
                        d->digest > 1 ? json_integer(d->digest) : json_null(), "last_error",
                        d->last_error ? json_string(d->last_error) : json_null()));
    return 0;
}

struct list_ctx {
    struct store *st;
    json_t *alerts;
    tr_err rc;
    char err[TR_ERRLEN];
};

static int alert_json(void *cls, const struct store_alert *a)
{
    struct list_ctx *c = cls;
    json_t *deliveries = json_array();
    json_t *details = json_loads(a->details, 0, NULL);
    json_t *o = json_pack("{s:I, s:o, s:s, s:o, s:s, s:s, s:I, s:o, s:o}", "id", (json_int_t)a->id,
                          "created_at", time_or_null(a->created_at), "rule", a->rule, "domain",
                          a->domain[0] ? json_string(a->domain) : json_null(), "subject",
                          a->subject, "title", a->title, "suppressed", (json_int_t)a->suppressed,
                          "details", details ? details : json_object(), "deliveries", deliveries);
    json_array_append_new(c->alerts, o);
    return 0;
}

static int fill_deliveries(struct list_ctx *c)
{
    size_t i;
    json_t *o;
    json_array_foreach(c->alerts, i, o)
    {
        c->rc = store_alert_deliveries(c->st, json_integer_value(json_object_get(o, "id")),
                                       delivery_json, json_object_get(o, "deliveries"), c->err);
        if (c->rc != TR_OK)
            return 1;
    }
    return 0;
}

static void print_table(const json_t *out)
{
    size_t i, k;
    json_t *a, *d;
    if (json_array_size(json_object_get(out, "alerts")) == 0) {
        printf("no alerts\n");
        return;
    }
    json_array_foreach(json_object_get(out, "alerts"), i, a)
    {
        const char *created = json_string_value(json_object_get(a, "created_at"));
        const char *domain = json_string_value(json_object_get(a, "domain"));
        printf("%s#%lld  %.10s %.5s UTC  %s  %s\n", i ? "\n" : "",
               (long long)json_integer_value(json_object_get(a, "id")), created ? created : "",
               created && strlen(created) > 11 ? created + 11 : "",
               json_string_value(json_object_get(a, "rule")), domain ? domain : "(no domain)");
        printf("    %s\n", json_string_value(json_object_get(a, "title")));
        json_array_foreach(json_object_get(a, "deliveries"), k, d)
        {
            const char *state = json_string_value(json_object_get(d, "state"));
            const char *error = json_string_value(json_object_get(d, "last_error"));
            long long attempts = (long long)json_integer_value(json_object_get(d, "attempts"));
            printf("    %s: %s", json_string_value(json_object_get(d, "channel")), state);
            if (strcmp(state, "sent") == 0) {
                const char *at = json_string_value(json_object_get(d, "sent_at"));
                printf(" %s", at ? at : "");
                if (json_integer_value(json_object_get(d, "digest")) > 1)
                    printf(" (in a digest of %lld)",
                           (long long)json_integer_value(json_object_get(d, "digest")));
                if (attempts > 1)
                    printf(" after %lld attempts", attempts);
            } else {
                const char *next = json_string_value(json_object_get(d, "next_attempt"));
                printf(", %lld attempt%s", attempts, attempts == 1 ? "" : "s");
                if (next)
                    printf(", next %s", next);
            }
            if (error)
                printf(": %s", error);
            putchar('\n');
        }
        long long held = (long long)json_integer_value(json_object_get(a, "suppressed"));
        if (held)
            printf("    %lld repeat%s held back\n", held, held == 1 ? "" : "s");
    }
    long long total = (long long)json_integer_value(json_object_get(out, "total"));
    if ((size_t)total > json_array_size(json_object_get(out, "alerts")))
        printf("\n%zu of %lld alerts shown (--limit)\n",
               json_array_size(json_object_get(out, "alerts")), total);
}

static int list(struct store *st, const struct args *a)
{
    struct list_ctx c = {st, json_array(), TR_OK, ""};
    int64_t total = 0;
    c.rc = store_alert_list(st, a->since, a->until, a->rule, a->domain, a->limit, alert_json, &c,
                            &total, c.err);
    if (c.rc == TR_OK)
        fill_deliveries(&c);
    if (c.rc != TR_OK) {
        fprintf(stderr, "tlsrptd alerts: %s\n", c.err);
        json_decref(c.alerts);
        return EXIT_TEMPFAIL;
    }
    json_t *out = json_pack("{s:o, s:I}", "alerts", c.alerts, "total", (json_int_t)total);
    if (strcmp(a->format, "json") == 0) {
        json_dumpf(out, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
        putchar('\n');
    } else {
        print_table(out);
    }
    json_decref(out);
    return 0;
}

/* ---- evaluate and test ---------------------------------------------------------------------- */

static void print_fired(void *cls, const struct store_alert *a, enum store_alert_added added)
{
    (void)cls;
    if (added == STORE_ALERT_NEW)
        printf("alert %lld: %s: %s\n", (long long)a->id, a->rule, a->title);
    else
        printf("held back (%s): %s: %s\n",
               added == STORE_ALERT_COOLING ? "cooldown" : "already alerted", a->rule, a->title);
}

/* Collectors sharing a PostgreSQL database take turns at the rules
 * (store_alert_claim): wait for ours, at most TURN_WAIT seconds. */
static bool wait_for_turn(struct store *st)
{
    char err[TR_ERRLEN];
    for (int waited = 0;; waited++) {
        bool claimed = false;
        if (store_alert_claim(st, &claimed, err) != TR_OK) {
            fprintf(stderr, "tlsrptd alerts: %s\n", err);
            return false;
        }
        if (claimed)
            return true;
        if (waited == TURN_WAIT) {
            fprintf(stderr,
                    "tlsrptd alerts: another collector has been evaluating the rules for %d s; "
                    "try again later\n",
                    TURN_WAIT);
            return false;
        }
        if (waited == 0)
            fprintf(stderr, "tlsrptd alerts: another collector is evaluating the rules; "
                            "waiting for it to finish\n");
        sleep(1);
    }
}

static int evaluate(struct store *st, const struct alert_config *ac, int64_t now)
{
    char err[TR_ERRLEN];
    struct alert_counts c;
    if (!wait_for_turn(st))
        return EXIT_TEMPFAIL;
    tr_err rc = alert_evaluate(st, ac, now, ALERT_PASS_ALL, print_fired, NULL, &c, err);
    store_alert_claim_release(st);
    if (rc != TR_OK) {
        fprintf(stderr, "tlsrptd alerts: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    struct alert_sent s;
    if (alert_deliver(st, ac, now, NULL, &s, err) != TR_OK) {
        fprintf(stderr, "tlsrptd alerts: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    printf("alerts: %zu new report%s evaluated; %zu alert%s raised, %zu held back; "
           "%zu deliver%s in %zu message%s, %zu failed\n",
           c.reports, c.reports == 1 ? "" : "s", c.fired, c.fired == 1 ? "" : "s", c.suppressed,
           s.alerts, s.alerts == 1 ? "y" : "ies", s.messages, s.messages == 1 ? "" : "s", s.failed);
    return s.failed ? EXIT_TEMPFAIL : 0;
}

static void print_test(void *cls, const struct alert_channel *c, bool ok, const char *detail)
{
    (void)cls;
    if (ok)
        printf("%s: ok\n", c->name);
    else
        printf("%s: failed: %s\n", c->name, detail);
}

int cmd_alerts(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct args a = {false, false, NULL, NULL, NULL, 0, INT64_MIN, INT64_MAX, 100};
    a.now = (int64_t)time(NULL);
    int rc = cli_config_args("alerts", argc, argv, &cfg, print_help, take_arg, &a);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    if (a.format == NULL)
        a.format = "table";
    if (strcmp(a.format, "table") != 0 && strcmp(a.format, "json") != 0)
        rc = cli_usage_error("alerts", "--format: '%s' is not table or json", a.format);
    else if (a.evaluate && a.test)
        rc = cli_usage_error("alerts", "--evaluate and --test do not go together");
    else if (a.since >= a.until)
        rc = cli_usage_error("alerts", "--since is not before --until");
    struct alert_config ac;
    char err[TR_ERRLEN];
    if (rc == 0 && alert_config_init(&ac, &cfg, err) != TR_OK)
        rc = cli_usage_error("alerts", "%s", err);
    if (rc) {
        config_free(&cfg);
        return rc;
    }
    if (a.test) {
        if (ac.nchannels == 0) {
            fprintf(stderr, "tlsrptd alerts: no channels: set alert_webhook or alert_email\n");
            rc = EXIT_CONFIG;
        } else {
            size_t failed = alert_test(&ac, (int64_t)time(NULL), print_test, NULL);
            printf("alerts --test: %zu of %zu channel%s worked\n", ac.nchannels - failed,
                   ac.nchannels, ac.nchannels == 1 ? "" : "s");
            rc = failed ? EXIT_TEMPFAIL : 0;
        }
        alert_config_free(&ac);
        config_free(&cfg);
        return rc;
    }
    struct store_options sopt;
    cli_config_store_options(&cfg, &sopt);
    sopt.read_only = !a.evaluate;
    struct store *st = NULL;
    if ((rc = cli_need_db("alerts", cfg.db)) != 0) {
        /* said why; none is created */
    } else if (store_open(cfg.db, &sopt, &st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd alerts: %s\n", err);
        rc = EXIT_TEMPFAIL;
    } else if (a.evaluate) {
        rc = evaluate(st, &ac, a.now);
    } else {
        rc = list(st, &a);
    }
    store_close(st);
    alert_config_free(&ac);
    config_free(&cfg);
    return rc;
}
