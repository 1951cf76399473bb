/* cli_summary.c: `tlsrptd summary` (failure summaries, filtered and grouped;
 * --reports lists the reports behind them) and `tlsrptd show KEY` (one
 * stored report: its JSON, its source, its warnings). Read-only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/findings.h"
#include "tlsrptd/query.h"
#include "tlsrptd/render.h"

static void summary_help(void)
{
    printf("Usage: tlsrptd summary [-c FILE] [--db DB] [--domain D]... [--reporter ORG]...\n"
           "                       [--since T] [--until T] [--by DIM] [--top N] [--fill]\n"
           "                       [--format table|json|csv] [--reports [--limit N]]\n"
           "       tlsrptd summary --findings [--domain D]... [--now T] [--check-records]\n"
           "                       [--format table|json]\n"
           "\n"
           "Successful and failed sessions (as the senders' summaries report them), the\n"
           "failure rate, failed sessions per result type (summed over failure details),\n"
           "reports and reporters, per group and in total. The table explains each result\n"
           "type and what to fix.\n"
           "\n"
           "Options:\n"
           "  -c, --config FILE    config file (default " TLSRPTD_CONFIG_FILE " when it exists):\n"
           "                       its db is the database read\n"
           "  --db DB              the database (the config key db: a SQLite file or a\n"
           "                       postgresql:// URI; default ./tlsrptd.db)\n"
           "  --domain D           only policies for D (repeatable; '(none)': policies\n"
           "                       without a domain)\n"
           "  --reporter ORG       only reports from this organization-name (repeatable)\n"
           "  --since T, --until T reports whose start-datetime is in [since, until); T is a\n"
           "                       date (2026-11-01), a date and time (2026-11-01 12:00, UTC\n"
           "                       unless an offset is given), an RFC 3339 date-time, or a\n"
           "                       time ago (30d, 12h, 2w, 45m)\n"
           "  --by DIM             domain (default), day, result-type, reporter, sending-ip,\n"
           "                       mx-host, policy-type or dkim\n"
           "  --top N              the N groups with the most failed sessions\n"
           "  --fill               with --by day: every day of the window, zeros included\n"
           "  --format FMT         table (default), json or csv\n"
           "  --reports            list the stored reports behind the numbers instead\n"
           "                       (table, json or csv)\n"
           "  --limit N            with --reports: at most N (default all)\n"
           "  --findings           what to act on, in sentences with their evidence: MTA-STS\n"
           "                       ready for enforce, senders that found no policy, a\n"
           "                       reporter that stopped, a new result type, certificate\n"
           "                       and STARTTLS failures on an MX (the last 90 days)\n"
           "  --now T              --findings as of T instead of now\n"
           "  --check-records      --findings also looks up each domain's _smtp._tls record\n"
           "                       (the config key dns names the server)\n"
           "\n"
           "Exit status: 0; 64 usage; 66 no database; 75 the database cannot be read;\n"
           "78 the config file is unusable.\n");
}

static void show_help(void)
{
    printf("Usage: tlsrptd show [-c FILE] [--db DB] [--format text|json] KEY\n"
           "\n"
           "Print one stored report: where it came from, its warnings and notes, and the\n"
           "report JSON as it was received. KEY is the id (as ingest and summary --reports\n"
           "print it) or the report-id. The database is the config file's db (-c FILE, "
           "or\n" TLSRPTD_CONFIG_FILE " when it exists), or --db.\n");
}

enum {
    OPT_FORMAT,
    OPT_DOMAIN,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_BY,
    OPT_TOP,
    OPT_REPORTS,
    OPT_LIMIT,
    OPT_REPORTER,
    OPT_FILL,
    OPT_FINDINGS,
    OPT_NOW,
    OPT_CHECK_RECORDS,
};

static const struct cli_flag summary_flags[] = {
    {"format", true},         {"domain", true},    {"since", true},
    {"until", true},          {"by", true},        {"top", true},
    {"reports", false},       {"limit", true},     {"reporter", true},
    {"fill", false},          {"findings", false}, {"now", true},
    {"check-records", false}, {NULL, false},
};

static struct store *open_read(const char *cmd, const struct config *cfg)
{
    struct store_options sopt;
    cli_config_store_options(cfg, &sopt);
    sopt.read_only = true;
    struct store *st = NULL;
    char err[TR_ERRLEN];
    if (store_open(cfg->db, &sopt, &st, err) != TR_OK)
        fprintf(stderr, "tlsrptd %s: %s\n", cmd, err);
    return st;
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
    fputc('\n', stdout);
}

struct summary_args {
    const char *format;
    struct query_filter f;
    bool reports;
    long limit, top;
    int64_t now;
    const char *key; /* show */
    bool show;
    bool findings, check_records;
    int64_t findings_now; /* --now: 0 = now */
};

static int take_summary(void *ctx, int flag, const char *v)
{
    struct summary_args *a = ctx;
    const char *cmd = a->show ? "show" : "summary";
    switch (flag) {
    case -1:
        if (!a->show)
            return cli_usage_error(cmd, "unexpected argument '%s'", v);
        if (a->key)
            return cli_usage_error(cmd, "give one KEY (an id or a report-id)");
        a->key = v;
        return 0;
    case OPT_FORMAT:
        a->format = v;
        if (a->show && strcmp(v, "text") != 0 && strcmp(v, "json") != 0)
            return cli_usage_error(cmd, "--format: '%s' is not text or json", v);
        if (!a->show && strcmp(v, "table") != 0 && strcmp(v, "json") != 0 && strcmp(v, "csv") != 0)
            return cli_usage_error(cmd, "--format: '%s' is not table, json or csv", v);
        return 0;
    case OPT_DOMAIN:
        if (!query_filter_add_domain(&a->f, v))
            return cli_usage_error(cmd,
                                   "--domain: '%s' is empty, too long, or one "
                                   "too many (at most %d)",
                                   v, QUERY_MAX_DOMAINS);
        return 0;
    case OPT_SINCE:
    case OPT_UNTIL:
        if (!query_parse_time(v, a->now, flag == OPT_SINCE ? &a->f.sf.since : &a->f.sf.until))
            return cli_usage_error(cmd,
                                   "%s: '%s' is not a date, a date and time, an RFC 3339 "
                                   "date-time or a time ago like 30d",
                                   flag == OPT_SINCE ? "--since" : "--until", v);
        return 0;
    case OPT_REPORTER:
        if (!query_filter_add_reporter(&a->f, v))
            return cli_usage_error(cmd,
                                   "--reporter: '%s' is empty, too long, or one too many "
                                   "(at most %d)",
                                   v, QUERY_MAX_DOMAINS);
        return 0;
    case OPT_FILL:
        a->f.fill = true;
        return 0;
    case OPT_FINDINGS:
        a->findings = true;
        return 0;
    case OPT_CHECK_RECORDS:
        a->check_records = true;
        return 0;
    case OPT_NOW:
        if (!query_parse_time(v, a->now, &a->findings_now))
            return cli_usage_error(cmd, "--now: '%s' is not a date or a date and time", v);
        return 0;
    case OPT_BY:
        if (!query_parse_by(v, &a->f.by))
            return cli_usage_error(cmd,
                                   "--by: '%s' is not domain, day, result-type, reporter, "
                                   "sending-ip, mx-host, policy-type or dkim",
                                   v);
        return 0;
    case OPT_TOP:
        if (!cli_parse_long(v, 1, 1000000, &a->top))
            return cli_usage_error(cmd, "--top: '%s' is not in [1, 1000000]", v);
        a->f.top = (size_t)a->top;
        return 0;
    case OPT_REPORTS:
        a->reports = true;
        return 0;
    case OPT_LIMIT:
        if (!cli_parse_long(v, 1, 100000000, &a->limit))
            return cli_usage_error(cmd, "--limit: '%s' is not a positive number", v);
        return 0;
    default:
        return cli_usage_error(cmd, "unexpected option");
    }
}

static int check_summary_args(const struct summary_args *a)
{
    if (a->f.sf.since >= a->f.sf.until)
        return cli_usage_error("summary", "--since is not before --until");
    if (a->reports && (a->f.by != QUERY_BY_DOMAIN || a->f.top || a->f.fill))
        return cli_usage_error("summary", "--by, --top and --fill do not apply to --reports");
    if (a->f.fill && a->f.by != QUERY_BY_DAY)
        return cli_usage_error("summary", "--fill applies to --by day only");
    if (a->findings && (a->reports || a->f.by != QUERY_BY_DOMAIN || a->f.top || a->f.fill ||
                        a->f.sf.nreporters || strcmp(a->format, "csv") == 0))
        return cli_usage_error("summary", "--findings takes --domain, --now, --check-records "
                                          "and --format table|json only");
    if (!a->findings && (a->findings_now || a->check_records))
        return cli_usage_error("summary", "--now and --check-records apply to --findings");
    if (!a->reports && a->limit)
        return cli_usage_error("summary", "--limit applies to --reports only");
    return 0;
}

int cmd_summary(int argc, char **argv)
{
    static struct summary_args a;
    a = (struct summary_args){.format = "table", .now = (int64_t)time(NULL)};
    query_filter_init(&a.f);
    struct config cfg;
    config_init(&cfg);
    int rc = cli_args("summary", argc, argv, &cfg, summary_help, summary_flags, take_summary, &a);
    if (rc == 0)
        rc = check_summary_args(&a);
    if (rc == 0)
        rc = cli_need_db("summary", cfg.db);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    const struct query_filter *f = &a.f;
    bool reports = a.reports;
    long limit = a.limit;
    const char *format = a.format;

    struct store *st = open_read("summary", &cfg);
    if (st == NULL) {
        config_free(&cfg);
        return EXIT_TEMPFAIL;
    }
    char err[TR_ERRLEN];
    json_t *out;
    if (a.findings) {
        struct findings_options fo = FINDINGS_DEFAULT_OPTIONS;
        fo.now = a.findings_now;
        fo.dns = a.check_records;
        fo.dns_server = cfg.dns;
        out = findings_compute(st, f, &fo, err);
    } else {
        out = reports ? query_reports(st, f, (size_t)limit, 0, err) : query_summary(st, f, err);
    }
    config_free(&cfg);
    store_close(st);
    if (out == NULL) {
        fprintf(stderr, "tlsrptd summary: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    bool csv = strcmp(format, "csv") == 0;
    if (strcmp(format, "json") == 0)
        print_json(out);
    else if (a.findings)
        render_findings(out, stdout);
    else if (reports)
        (csv ? render_reports_csv : render_reports_table)(out, stdout);
    else
        (csv ? render_summary_csv : render_summary_table)(out, stdout);
    json_decref(out);
    return 0;
}

static void print_source(const json_t *src)
{
    static const char *const keys[] = {"kind",   "name",      "client", "message_id",
                                       "domain", "submitter", "subject"};
    static const char *const labels[] = {"source",       "  name",          "  client",
                                         "  message-id", "  report-domain", "  submitter",
                                         "  subject"};
    for (size_t i = 0; i < 7; i++) {
        const char *v = json_string_value(json_object_get(src, keys[i]));
        if (v)
            printf("%-16s %s\n", labels[i], v);
    }
}

/* "pass, d=sender.example, aligned" / "fail, d=…, not aligned: body hash did not verify" */
static void print_dkim(const json_t *d)
{
    if (!json_is_object(d)) {
        printf("%-16s %s\n", "dkim", "(no verdict: not mail, or dkim = off)");
        return;
    }
    const char *domain = json_string_value(json_object_get(d, "domain"));
    const char *reason = json_string_value(json_object_get(d, "reason"));
    printf("%-16s %s", "dkim", json_string_value(json_object_get(d, "result")));
    if (domain)
        printf(", d=%s, %s", domain,
               json_is_true(json_object_get(d, "aligned")) ? "aligned" : "not aligned");
    printf("%s%s\n", reason ? ": " : "", reason ? reason : "");
}

static const struct cli_flag show_flags[] = {{"format", true}, {NULL, false}};

int cmd_show(int argc, char **argv)
{
    static struct summary_args a;
    a = (struct summary_args){.format = "text", .show = true};
    query_filter_init(&a.f);
    struct config cfg;
    config_init(&cfg);
    int rc = cli_args("show", argc, argv, &cfg, show_help, show_flags, take_summary, &a);
    if (rc == 0 && a.key == NULL)
        rc = cli_usage_error("show", "give one KEY (an id or a report-id)");
    if (rc == 0)
        rc = cli_need_db("show", cfg.db);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    const char *format = a.format;
    struct store *st = open_read("show", &cfg);
    config_free(&cfg);
    if (st == NULL)
        return EXIT_TEMPFAIL;
    char err[TR_ERRLEN];
    size_t found = 0;
    json_t *r = query_report(st, a.key, &found, err);
    store_close(st);
    if (r == NULL) {
        if (found > 1)
            return cli_usage_error("show", "%s", err);
        if (found == 0 && err[0] == 0) {
            fprintf(stderr, "tlsrptd show: no stored report has the id or report-id '%s'\n", a.key);
            return EXIT_DATAERR;
        }
        fprintf(stderr, "tlsrptd show: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    if (strcmp(format, "json") == 0) {
        print_json(r);
        json_decref(r);
        return 0;
    }
    printf("%-16s %lld\n", "id", (long long)json_integer_value(json_object_get(r, "id")));
    printf("%-16s %s\n", "organization",
           json_string_value(json_object_get(r, "organization_name")));
    printf("%-16s %s\n", "report-id", json_string_value(json_object_get(r, "report_id")));
    printf("%-16s %s .. %s\n", "date-range",
           json_string_value(json_object_get(r, "start_datetime")),
           json_string_value(json_object_get(r, "end_datetime")));
    const char *contact = json_string_value(json_object_get(r, "contact_info"));
    printf("%-16s %s\n", "contact-info", contact ? contact : "(none)");
    printf("%-16s %s\n", "received", json_string_value(json_object_get(r, "received_at")));
    print_source(json_object_get(r, "source"));
    print_dkim(json_object_get(r, "dkim"));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(r, "diagnostics"), i, d)
    {
        printf("%-16s %s: %s\n", json_string_value(json_object_get(d, "level")),
               json_string_value(json_object_get(d, "path")),
               json_string_value(json_object_get(d, "message")));
    }
    printf("\n");
    json_dumpf(json_object_get(r, "report"), stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("\n");
    json_decref(r);
    return 0;
}
