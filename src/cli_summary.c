/* cli_summary.c: `tlsrptd summary` (failure summaries, filtered and grouped;
 * --reports lists the reports behind them) and `tlsrptd show KEY` (one
 * stored report: its JSON, its source, its warnings). Read-only. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/query.h"
#include "tlsrptd/render.h"

static const char summary_help[] =
    "Usage: tlsrptd summary [--db DB] [--domain D]... [--reporter ORG]... [--since T]\n"
    "                       [--until T] [--by DIM] [--top N] [--fill]\n"
    "                       [--format table|json|csv] [--reports [--limit N]]\n"
    "\n"
    "Successful and failed sessions (as the senders' summaries report them), the\n"
    "failure rate, failed sessions per result type (summed over failure details),\n"
    "reports and reporters, per group and in total. The table explains each result\n"
    "type and what to fix.\n"
    "\n"
    "Options:\n"
    "  --db DB              database: a SQLite file or a postgresql:// URI (default\n"
    "                       " DEFAULT_DB ")\n"
    "  --domain D           only policies for D (repeatable; '(none)': policies\n"
    "                       without a domain)\n"
    "  --reporter ORG       only reports from this organization-name (repeatable)\n"
    "  --since T, --until T reports whose start-datetime is in [since, until); T is a\n"
    "                       date (2026-11-01), a date and time (2026-11-01 12:00, UTC\n"
    "                       unless an offset is given), an RFC 3339 date-time, or a\n"
    "                       time ago (30d, 12h, 2w, 45m)\n"
    "  --by DIM             domain (default), day, result-type, reporter, sending-ip,\n"
    "                       mx-host or policy-type\n"
    "  --top N              the N groups with the most failed sessions\n"
    "  --fill               with --by day: every day of the window, zeros included\n"
    "  --format FMT         table (default), json or csv\n"
    "  --reports            list the stored reports behind the numbers instead\n"
    "                       (table, json or csv)\n"
    "  --limit N            with --reports: at most N (default all)\n";

static const char show_help[] =
    "Usage: tlsrptd show [--db PATH] [--format text|json] KEY\n"
    "\n"
    "Print one stored report: where it came from, its warnings and notes, and the\n"
    "report JSON as it was received. KEY is the id (as ingest and summary --reports\n"
    "print it) or the report-id.\n";

enum {
    OPT_DB = 256,
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
};

static struct store *open_read(const char *cmd, const char *db)
{
    struct store_options sopt = STORE_DEFAULT_OPTIONS;
    sopt.read_only = true;
    struct store *st = NULL;
    char err[TR_ERRLEN];
    if (store_open(db, &sopt, &st, err) != TR_OK)
        fprintf(stderr, "tlsrptd %s: %s\n", cmd, err);
    return st;
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
    fputc('\n', stdout);
}

int cmd_summary(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"by", required_argument, NULL, OPT_BY},
        {"top", required_argument, NULL, OPT_TOP},
        {"reports", no_argument, NULL, OPT_REPORTS},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"reporter", required_argument, NULL, OPT_REPORTER},
        {"fill", no_argument, NULL, OPT_FILL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = DEFAULT_DB, *format = "table";
    static struct query_filter f;
    query_filter_init(&f);
    bool reports = false;
    long limit = 0, top = 0;
    int64_t now = (int64_t)time(NULL);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DB:
            db = optarg;
            break;
        case OPT_FORMAT:
            format = optarg;
            if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 &&
                strcmp(format, "csv") != 0)
                return cli_usage_error("summary", "--format: '%s' is not table, json or csv",
                                       format);
            break;
        case OPT_DOMAIN:
            if (!query_filter_add_domain(&f, optarg))
                return cli_usage_error("summary",
                                       "--domain: '%s' is empty, too long, or one "
                                       "too many (at most %d)",
                                       optarg, QUERY_MAX_DOMAINS);
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
            if (!query_parse_time(optarg, now, c == OPT_SINCE ? &f.sf.since : &f.sf.until))
                return cli_usage_error("summary",
                                       "%s: '%s' is not a date, a date and time, an RFC 3339 "
                                       "date-time or a time ago like 30d",
                                       c == OPT_SINCE ? "--since" : "--until", optarg);
            break;
        case OPT_REPORTER:
            if (!query_filter_add_reporter(&f, optarg))
                return cli_usage_error("summary",
                                       "--reporter: '%s' is empty, too long, or one too many "
                                       "(at most %d)",
                                       optarg, QUERY_MAX_DOMAINS);
            break;
        case OPT_FILL:
            f.fill = true;
            break;
        case OPT_BY:
            if (!query_parse_by(optarg, &f.by))
                return cli_usage_error("summary",
                                       "--by: '%s' is not domain, day, result-type, reporter, "
                                       "sending-ip, mx-host or policy-type",
                                       optarg);
            break;
        case OPT_TOP:
            if (!cli_parse_long(optarg, 1, 1000000, &top))
                return cli_usage_error("summary", "--top: '%s' is not in [1, 1000000]", optarg);
            f.top = (size_t)top;
            break;
        case OPT_REPORTS:
            reports = true;
            break;
        case OPT_LIMIT:
            if (!cli_parse_long(optarg, 1, 100000000, &limit))
                return cli_usage_error("summary", "--limit: '%s' is not a positive number", optarg);
            break;
        case 'h':
            fputs(summary_help, stdout);
            return 0;
        default:
            return cli_usage_error("summary", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("summary", "unexpected argument '%s'", argv[optind]);
    if (f.sf.since >= f.sf.until)
        return cli_usage_error("summary", "--since is not before --until");
    if (reports && (f.by != QUERY_BY_DOMAIN || f.top || f.fill))
        return cli_usage_error("summary", "--by, --top and --fill do not apply to --reports");
    if (f.fill && f.by != QUERY_BY_DAY)
        return cli_usage_error("summary", "--fill applies to --by day only");
    if (!reports && limit)
        return cli_usage_error("summary", "--limit applies to --reports only");

    struct store *st = open_read("summary", db);
    if (st == NULL)
        return EXIT_TEMPFAIL;
    char err[TR_ERRLEN];
    json_t *out =
        reports ? query_reports(st, &f, (size_t)limit, 0, err) : query_summary(st, &f, err);
    store_close(st);
    if (out == NULL) {
        fprintf(stderr, "tlsrptd summary: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    bool csv = strcmp(format, "csv") == 0;
    if (strcmp(format, "json") == 0)
        print_json(out);
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

int cmd_show(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = DEFAULT_DB, *format = "text";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DB:
            db = optarg;
            break;
        case OPT_FORMAT:
            format = optarg;
            if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
                return cli_usage_error("show", "--format: '%s' is not text or json", format);
            break;
        case 'h':
            fputs(show_help, stdout);
            return 0;
        default:
            return cli_usage_error("show", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("show", "give one KEY (an id or a report-id)");
    struct store *st = open_read("show", db);
    if (st == NULL)
        return EXIT_TEMPFAIL;
    char err[TR_ERRLEN];
    size_t found = 0;
    json_t *r = query_report(st, argv[optind], &found, err);
    store_close(st);
    if (r == NULL) {
        if (found > 1)
            return cli_usage_error("show", "%s", err);
        if (found == 0 && err[0] == 0) {
            fprintf(stderr, "tlsrptd show: no stored report has the id or report-id '%s'\n",
                    argv[optind]);
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
