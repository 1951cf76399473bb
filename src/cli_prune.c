/* cli_prune.c: `tlsrptd prune`, the retention settings applied now
 * (docs/trust.md): reports older than `retention` with their details and
 * raw bytes, daily totals older than `rollup_retention`, quarantine entries
 * older than `quarantine_retention`; --dry-run only counts. `serve` does the
 * same every prune_interval (retention.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/retention.h"

static const char help[] =
    "Usage: tlsrptd prune [-c FILE] [--db DB] [--retention D] [--rollup-retention D]\n"
    "                     [--quarantine-retention D] [--dry-run] [--format text|json]\n"
    "\n"
    "Remove what is older than the retention settings, then give the space back to\n"
    "the file system (SQLite; PostgreSQL's autovacuum does it its way):\n"
    "\n"
    "  --retention D             reports whose start is older than D, with their\n"
    "                            policies, failure details and raw bytes; the daily\n"
    "                            totals stay, so long-range summaries are unchanged\n"
    "  --rollup-retention D      daily totals older than D\n"
    "  --quarantine-retention D  quarantine entries received longer ago than D\n"
    "  --dry-run                 print what would go; remove nothing\n"
    "  --format text|json        the report of what went (default text)\n"
    "\n"
    "D is a number and a unit: 400d, 52w, 36h (s, m, h, d, w). The keys are read\n"
    "from -c FILE too; `tlsrptd serve` prunes by them every prune_interval (1d).\n"
    "\n"
    "Exit: 0; 64 usage (no retention setting, a bad duration); 66 no database;\n"
    "75 storage unavailable.\n";

static void print_help(void)
{
    fputs(help, stdout);
}

struct args {
    bool dry_run;
    const char *format;
    bool want_format;
};

static int take_arg(void *ctx, const char *arg)
{
    struct args *a = ctx;
    if (a->want_format) {
        a->want_format = false;
        a->format = arg;
        return 1;
    }
    if (strcmp(arg, "--dry-run") == 0) {
        a->dry_run = true;
        return 1;
    }
    if (strcmp(arg, "--format") == 0) {
        a->want_format = true;
        return 1;
    }
    if (strncmp(arg, "--format=", 9) == 0) {
        a->format = arg + 9;
        return 1;
    }
    return 0;
}

int cmd_prune(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct args a = {false, "text", false};
    int rc = cli_config_args("prune", argc, argv, &cfg, print_help, take_arg, &a);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    char err[TR_ERRLEN];
    struct retention keep;
    if (a.want_format)
        rc = cli_usage_error("prune", "--format needs text or json");
    else if (strcmp(a.format, "text") != 0 && strcmp(a.format, "json") != 0)
        rc = cli_usage_error("prune", "--format: '%s' is not text or json", a.format);
    else if (retention_from_config(&cfg, &keep, err) != TR_OK)
        rc = cli_usage_error("prune", "%s", err);
    else if (!retention_any(&keep))
        rc = cli_usage_error("prune", "nothing to prune: set retention, rollup_retention or "
                                      "quarantine_retention (in -c FILE or as flags)");
    if (rc) {
        config_free(&cfg);
        return rc;
    }
    struct store *st = NULL;
    if ((rc = cli_open_existing(&cfg, "prune", &st)) != 0) {
        config_free(&cfg);
        return rc;
    }
    struct store_retention cut;
    retention_cutoffs(&keep, (int64_t)time(NULL), &cut);
    struct store_prune_stats s;
    if (store_prune(st, &cut, a.dry_run, &s, err) != TR_OK) {
        fprintf(stderr, "tlsrptd prune: %s\n", err);
        rc = EXIT_TEMPFAIL;
    } else if (strcmp(a.format, "json") == 0) {
        json_t *out = retention_json(&keep, &cut, &s, a.dry_run);
        json_dumpf(out, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(out);
    } else {
        retention_print(stdout, &keep, &cut, &s, a.dry_run);
    }
    store_close(st);
    config_free(&cfg);
    return rc;
}
