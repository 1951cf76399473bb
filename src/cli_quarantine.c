/* cli_quarantine.c: `tlsrptd quarantine list|show|export|reingest`, the inputs
 * that were not acceptable reports (docs/operations.md): why each was refused, where
 * it came from, its bytes, and running it through the pipeline again once the
 * cause is fixed (a stored one leaves the quarantine in the same
 * transaction). Reads and writes through the storage port, on any backend. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/query.h"
#include "tlsrptd/render.h"

static const char help[] =
    "Usage: tlsrptd quarantine list [-c FILE] [--db DB] [--since T] [--until T] [--limit N]\n"
    "                               [--format table|json]\n"
    "       tlsrptd quarantine show [-c FILE] [--db DB] [--format text|json] ID\n"
    "       tlsrptd quarantine export [-c FILE] [--db DB] ID > FILE\n"
    "       tlsrptd quarantine reingest [-c FILE] [--db DB] ID...|--all\n"
    "\n"
    "The inputs that held no acceptable report, kept with the reason, the source\n"
    "and the bytes as received (within the quarantine's budget).\n"
    "\n"
    "  list      newest first: id, time received, source, size, name, reason\n"
    "  show      one entry: its reason and source, and its bytes as text (or a hex\n"
    "            dump when they are not text)\n"
    "  export    the bytes as received, to standard output\n"
    "  reingest  run entries through the pipeline again (after fixing what refused\n"
    "            them, say raising a limit); an entry whose report is now stored (or\n"
    "            found to be a duplicate) leaves the quarantine\n"
    "\n"
    "  --since T, --until T  received in [since, until): a date, a date and time,\n"
    "                        or a time ago (30d, 12h)\n"
    "  --limit N             at most N entries (default 100)\n"
    "  --all                 reingest: every entry, oldest first\n"
    "\n"
    "Exit: 0; 64 usage; 65 an entry is still not acceptable (reingest), no such\n"
    "entry, or its bytes were not kept (export); 66 no database; 75 storage\n"
    "unavailable.\n";

static void print_help(void)
{
    fputs(help, stdout);
}

struct args {
    const char *action;
    const char *format;
    int64_t since, until;
    size_t limit;
    bool all;
    int64_t ids[1024];
    size_t nids;
    bool bad;
};

/* the arguments of this command beside the config flags */
static int take_arg(void *ctx, const char *arg)
{
    static const char *pending; /* the option whose value comes next */
    struct args *a = ctx;
    int64_t now = (int64_t)time(NULL);
    if (pending) {
        const char *opt = pending;
        pending = NULL;
        long n;
        if (strcmp(opt, "--since") == 0 || strcmp(opt, "--until") == 0) {
            if (!query_parse_time(arg, now, opt[2] == 's' ? &a->since : &a->until)) {
                cli_usage_error("quarantine", "%s: '%s' is not a date or a time ago", opt, arg);
                return -1;
            }
        } else if (strcmp(opt, "--limit") == 0) {
            if (!cli_parse_long(arg, 1, 100000000, &n)) {
                cli_usage_error("quarantine", "--limit: '%s' is not a positive number", arg);
                return -1;
            }
            a->limit = (size_t)n;
        } else {
            a->format = arg;
        }
        return 1;
    }
    if (strcmp(arg, "--since") == 0 || strcmp(arg, "--until") == 0 || strcmp(arg, "--limit") == 0 ||
        strcmp(arg, "--format") == 0) {
        pending = arg;
        return 1;
    }
    if (strcmp(arg, "--all") == 0) {
        a->all = true;
        return 1;
    }
    if (arg[0] == '-')
        return 0; /* a config flag */
    if (a->action == NULL) {
        a->action = arg;
        return 1;
    }
    long id;
    if (!cli_parse_long(arg, 1, INT32_MAX, &id) || a->nids == sizeof a->ids / sizeof *a->ids) {
        cli_usage_error("quarantine", "'%s' is not a quarantine id", arg);
        return -1;
    }
    a->ids[a->nids++] = id;
    return 1;
}

static void hexdump(const unsigned char *p, size_t n)
{
    for (size_t off = 0; off < n; off += 16) {
        printf("%08zx ", off);
        for (size_t i = 0; i < 16; i++)
            if (off + i < n)
                printf(" %02x", p[off + i]);
            else
                printf("   ");
        printf("  |");
        for (size_t i = 0; i < 16 && off + i < n; i++)
            putchar(isprint(p[off + i]) ? p[off + i] : '.');
        printf("|\n");
    }
}

struct entry_out {
    bool text;
    bool export_only;
    bool not_kept; /* out: export found no bytes */
};

static int print_entry(void *cls, const struct store_quarantine_row *q)
{
    struct entry_out *o = cls;
    if (o->export_only) {
        if (q->raw)
            fwrite(q->raw, 1, q->rawlen, stdout);
        o->not_kept = q->raw == NULL;
        return 1;
    }
    char when[32];
    query_format_time(q->received_at, when);
    printf("%-16s %lld\n%-16s %s\n%-16s %s\n", "id", (long long)q->id, "received", when, "reason",
           q->reason ? q->reason : "");
    const char *labels[] = {"source",          "  name",      "  client", "  message-id",
                            "  report-domain", "  submitter", "  subject"};
    const char *values[] = {q->src.kind,       q->src.name,          q->src.client,
                            q->src.message_id, q->src.report_domain, q->src.report_submitter,
                            q->src.subject};
    for (size_t i = 0; i < 7; i++)
        if (values[i])
            printf("%-16s %s\n", labels[i], values[i]);
    printf("%-16s %lld%s\n\n", "bytes", (long long)q->raw_size,
           q->raw_kept ? "" : " (not kept: over the quarantine's byte budget)");
    if (q->raw == NULL)
        return 1;
    const unsigned char *raw = q->raw;
    bool text = true;
    for (size_t i = 0; i < q->rawlen && text; i++)
        text = raw[i] >= 0x20 || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '\t';
    if (text) {
        fwrite(raw, 1, q->rawlen, stdout);
        if (q->rawlen && raw[q->rawlen - 1] != '\n')
            putchar('\n');
    } else {
        hexdump(raw, q->rawlen);
    }
    return 1;
}

struct reingest_ctx {
    const struct ingest_limits *lim;
    struct ingest_job *job;
    bool kept;
};

static int make_job(void *cls, const struct store_quarantine_row *q)
{
    struct reingest_ctx *c = cls;
    c->kept = q->raw != NULL;
    if (c->kept) {
        c->job = ingest_prepare((void *)(uintptr_t)q->raw, q->rawlen, false, &q->src, c->lim);
        if (c->job)
            ingest_job_set_requeue(c->job, q->id);
    }
    return 1;
}

static int collect_id(void *cls, const struct store_quarantine_row *q)
{
    struct args *a = cls;
    if (a->nids < sizeof a->ids / sizeof *a->ids)
        a->ids[a->nids++] = q->id;
    return 0;
}

static int take_newest(void *cls, const struct store_quarantine_row *q)
{
    *(int64_t *)cls = q->id;
    return 1;
}

struct tally {
    size_t entries, stored, still;
};

/* Run the entries of a->ids again, each in its own transaction. */
static int reingest_ids(struct store *st, struct ingest *ig, const struct ingest_limits *lim,
                        const struct args *a, struct tally *t)
{
    char err[TR_ERRLEN];
    int rc = 0;
    for (size_t i = 0; i < a->nids; i++) {
        int64_t id = a->ids[i];
        t->entries++;
        struct reingest_ctx c = {lim, NULL, false};
        bool found = false;
        if (store_get_quarantine(st, id, make_job, &c, &found, err) != TR_OK) {
            fprintf(stderr, "tlsrptd quarantine: %s\n", err);
            rc = EXIT_TEMPFAIL;
            break;
        }
        if (!found || !c.kept) {
            printf("quarantine %lld: %s\n", (long long)id,
                   found ? "its bytes were not kept; nothing to run again" : "no such entry");
            rc = rc ? rc : EXIT_DATAERR;
            continue;
        }
        if (c.job == NULL) {
            rc = EXIT_TEMPFAIL;
            break;
        }
        struct ingest_result res = {0};
        if (ingest_begin(ig, err) != TR_OK) {
            ingest_result_tempfail(&res, err);
        } else {
            ingest_store(ig, c.job, &res);
            if (ingest_commit(ig, err) != TR_OK)
                ingest_result_tempfail(&res, err);
        }
        ingest_job_free(c.job);
        switch (res.outcome) {
        case INGEST_STORED:
        case INGEST_DUPLICATE:
            t->stored++;
            printf("quarantine %lld: %s", (long long)id, ingest_outcome_name(res.outcome));
            for (size_t k = 0; k < res.nreports; k++)
                if (res.reports[k].outcome <= INGEST_DUPLICATE)
                    printf("%s report %lld", k ? "," : "", (long long)res.reports[k].id);
            printf("; removed from the quarantine\n");
            break;
        case INGEST_REJECTED:
            t->still++;
            printf("quarantine %lld: still not acceptable: %s\n", (long long)id, res.reason);
            rc = rc ? rc : EXIT_DATAERR;
            break;
        default:
            printf("quarantine %lld: %s: %s\n", (long long)id, ingest_outcome_name(res.outcome),
                   res.reason);
            rc = EXIT_TEMPFAIL;
        }
        ingest_result_free(&res);
        if (rc == EXIT_TEMPFAIL)
            break;
    }
    return rc;
}

/* The entries named, or with --all every entry there when it starts, oldest
 * first (in pages: the quarantine may hold more than a->ids). */
static int reingest(struct store *st, const struct config *cfg, struct args *a)
{
    char err[TR_ERRLEN];
    struct ingest_limits lim;
    cli_config_limits(cfg, &lim);
    struct ingest *ig = ingest_new(st, &lim);
    if (ig == NULL)
        return EXIT_TEMPFAIL;
    struct tally t = {0, 0, 0};
    int rc = 0;
    if (!a->all) {
        rc = reingest_ids(st, ig, &lim, a, &t);
    } else {
        int64_t newest = 0, after = 0;
        tr_err e =
            store_list_quarantine(st, INT64_MIN, INT64_MAX, 1, 0, take_newest, &newest, NULL, err);
        while (e == TR_OK && after < newest && (rc == 0 || rc == EXIT_DATAERR)) {
            a->nids = 0;
            if ((e = store_scan_quarantine(st, after, sizeof a->ids / sizeof *a->ids, collect_id, a,
                                           err)) != TR_OK ||
                a->nids == 0)
                break;
            after = a->ids[a->nids - 1];
            while (a->nids > 0 && a->ids[a->nids - 1] > newest) /* arrived meanwhile */
                a->nids--;
            int r = reingest_ids(st, ig, &lim, a, &t);
            rc = r == EXIT_TEMPFAIL || rc == 0 ? r : rc;
        }
        if (e != TR_OK) {
            fprintf(stderr, "tlsrptd quarantine: %s\n", err);
            rc = EXIT_TEMPFAIL;
        }
    }
    ingest_free(ig);
    if (t.entries > 1)
        printf("reingest: %zu entries: %zu stored or duplicate, %zu still not acceptable\n",
               t.entries, t.stored, t.still);
    return rc;
}

int cmd_quarantine(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    static struct args a;
    memset(&a, 0, sizeof a);
    a.since = INT64_MIN;
    a.until = INT64_MAX;
    a.limit = 100;
    int rc = cli_config_args("quarantine", argc, argv, &cfg, print_help, take_arg, &a);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    const char *act = a.action ? a.action : "list";
    bool list = strcmp(act, "list") == 0, show = strcmp(act, "show") == 0,
         exp = strcmp(act, "export") == 0, again = strcmp(act, "reingest") == 0;
    const char *format = a.format ? a.format : list ? "table" : "text";
    if (!list && !show && !exp && !again)
        rc = cli_usage_error("quarantine", "'%s' is not list, show, export or reingest", act);
    else if ((show || exp) && a.nids != 1)
        rc = cli_usage_error("quarantine", "%s takes one ID", act);
    else if (again && (a.nids == 0) == !a.all)
        rc = cli_usage_error("quarantine", "reingest takes IDs or --all");
    else if (list && a.nids)
        rc = cli_usage_error("quarantine", "list takes no IDs");
    else if ((list && strcmp(format, "table") != 0 && strcmp(format, "json") != 0) ||
             (show && strcmp(format, "text") != 0 && strcmp(format, "json") != 0))
        rc = cli_usage_error("quarantine", "--format: '%s' is not valid for %s", format, act);
    else if (a.since >= a.until)
        rc = cli_usage_error("quarantine", "--since is not before --until");
    if (rc == 0)
        rc = cli_need_db("quarantine", cfg.db); /* none is created */
    if (rc) {
        config_free(&cfg);
        return rc;
    }
    struct store_options sopt;
    cli_config_store_options(&cfg, &sopt);
    sopt.read_only = !again;
    struct store *st = NULL;
    char err[TR_ERRLEN];
    if (store_open(cfg.db, &sopt, &st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd quarantine: %s\n", err);
        config_free(&cfg);
        return EXIT_TEMPFAIL;
    }
    rc = 0;
    if (list) {
        json_t *out = query_quarantine(st, a.since, a.until, a.limit, 0, err);
        if (out == NULL) {
            fprintf(stderr, "tlsrptd quarantine: %s\n", err);
            rc = EXIT_TEMPFAIL;
        } else if (strcmp(format, "json") == 0) {
            json_dumpf(out, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
            putchar('\n');
        } else {
            render_quarantine_table(out, stdout);
        }
        json_decref(out);
    } else if (show && strcmp(format, "json") == 0) {
        bool found = false;
        json_t *out = query_quarantine_entry(st, a.ids[0], true, &found, err);
        if (out) {
            json_dumpf(out, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
            putchar('\n');
        } else if (!found) {
            fprintf(stderr, "tlsrptd quarantine: no entry %lld\n", (long long)a.ids[0]);
            rc = EXIT_DATAERR;
        } else {
            fprintf(stderr, "tlsrptd quarantine: %s\n", err);
            rc = EXIT_TEMPFAIL;
        }
        json_decref(out);
    } else if (show || exp) {
        struct entry_out o = {true, exp, false};
        bool found = false;
        if (store_get_quarantine(st, a.ids[0], print_entry, &o, &found, err) != TR_OK) {
            fprintf(stderr, "tlsrptd quarantine: %s\n", err);
            rc = EXIT_TEMPFAIL;
        } else if (!found) {
            fprintf(stderr, "tlsrptd quarantine: no entry %lld\n", (long long)a.ids[0]);
            rc = EXIT_DATAERR;
        } else if (o.not_kept) {
            fprintf(stderr,
                    "tlsrptd quarantine: entry %lld: its bytes were not kept (over the "
                    "quarantine's byte budget); nothing to export\n",
                    (long long)a.ids[0]);
            rc = EXIT_DATAERR;
        }
    } else if ((rc = cli_config_trust(&cfg, "quarantine")) == 0) {
        rc = reingest(st, &cfg, &a);
    }
    store_close(st);
    config_free(&cfg);
    return rc;
}
