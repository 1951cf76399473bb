/* cli_summary.c: `tlsrptd summary`: failure summaries per policy domain. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "tlsrptd/query.h"

static const char summary_help[] =
    "Usage: tlsrptd summary [--db PATH] [--format table|json]\n"
    "\n"
    "Per policy domain and in total: successful and failed sessions (as the\n"
    "senders' summaries report them), the failure rate, failed sessions per\n"
    "result type (summed over failure details) and the number of reports.\n"
    "Policies without a policy-domain are counted under '(none)' (JSON: null).\n"
    "\n"
    "Options:\n"
    "  --db PATH              database file (default " DEFAULT_DB ")\n"
    "  --format table|json    output format (default table)\n";

int cmd_summary(int argc, char **argv)
{
    enum { OPT_DB = 256, OPT_FORMAT };
    static const struct option longopts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db = DEFAULT_DB, *format = "table";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DB:
            db = optarg;
            break;
        case OPT_FORMAT:
            format = optarg;
            if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
                return cli_usage_error("summary", "--format: '%s' is not table or json", format);
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

    struct store_options sopt = STORE_DEFAULT_OPTIONS;
    sopt.read_only = true;
    struct store *st = NULL;
    char err[TR_ERRLEN];
    if (store_open(db, &sopt, &st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd summary: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    json_t *summary = query_summary(st, err);
    store_close(st);
    if (summary == NULL) {
        fprintf(stderr, "tlsrptd summary: %s\n", err);
        return EXIT_TEMPFAIL;
    }
    if (strcmp(format, "json") == 0) {
        json_dumpf(summary, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
        fputc('\n', stdout);
    } else {
        query_print_table(summary, stdout);
    }
    json_decref(summary);
    return 0;
}
