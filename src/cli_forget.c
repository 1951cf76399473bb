/* cli_forget.c: `tlsrptd forget --domain D`, everything stored about one
 * domain removed (docs/trust.md): its policies, the reports it was the only
 * domain of, its policies and mentions in shared reports (raw bytes
 * included), its rollups and totals, the quarantine entries that name it.
 * The quarantine entries are chosen here, where mail can be read (a mailed
 * report names its domain inside a base64 attachment); the rest is
 * store_forget_domain(). --dry-run does it all in a transaction it rolls
 * back, so the counts are exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "tlsrptd/domains.h"
#include "tlsrptd/ingest.h"

static const char help[] =
    "Usage: tlsrptd forget [-c FILE] [--db DB] --domain D [--dry-run] [--format text|json]\n"
    "\n"
    "Delete everything stored about the policy domain D (a customer leaves, a domain\n"
    "is sold): the reports where D is the only domain; D's policies in reports it\n"
    "shares with other domains, and every mention of D in their raw JSON,\n"
    "diagnostics and source; D's daily and all-time totals (the report counts of\n"
    "the days D shared are corrected); the quarantine entries that name D (in the\n"
    "reason, the source, or the bytes, mail attachments included). Names below D\n"
    "(mail.D) are other domains: forget each of them.\n"
    "\n"
    "  --domain D          the domain (any letter case, a trailing dot is dropped)\n"
    "  --dry-run           print what would be removed; remove nothing\n"
    "  --format text|json  the report of what went (default text)\n"
    "\n"
    "Exit: 0; 64 usage; 66 no database; 75 storage unavailable.\n";

static void print_help(void)
{
    fputs(help, stdout);
}

struct args {
    const char *domain;
    const char *format;
    bool dry_run;
    const char *const *pending; /* the option whose value comes next */
};

static int take_arg(void *ctx, const char *arg)
{
    struct args *a = ctx;
    if (a->pending) {
        *(const char **)a->pending = arg;
        a->pending = NULL;
        return 1;
    }
    if (strcmp(arg, "--dry-run") == 0) {
        a->dry_run = true;
        return 1;
    }
    if (strcmp(arg, "--domain") == 0 || strcmp(arg, "--format") == 0) {
        a->pending = arg[2] == 'd' ? &a->domain : &a->format;
        return 1;
    }
    if (strncmp(arg, "--domain=", 9) == 0) {
        a->domain = arg + 9;
        return 1;
    }
    if (strncmp(arg, "--format=", 9) == 0) {
        a->format = arg + 9;
        return 1;
    }
    return 0;
}

/* ---- the quarantine entries that name the domain -------------------------------------------- */

struct ids {
    int64_t *v;
    size_t n, cap;
    int64_t last; /* the scan's position */
    const char *domain;
    bool oom;
};

static bool mentions(const void *p, size_t n, const char *domain)
{
    return p && domain_mentioned(p, n, domain);
}

static bool str_mentions(const char *s, const char *domain)
{
    return s && domain_mentioned(s, strlen(s), domain);
}

/* In the reason, the source, the bytes as received, or a report decoded
 * from them (gzip, a mail's attachment). */
static bool entry_names(const struct store_quarantine_row *q, const char *d)
{
    const char *text[] = {q->reason,
                          q->src.name,
                          q->src.message_id,
                          q->src.report_domain,
                          q->src.report_submitter,
                          q->src.subject};
    for (size_t i = 0; i < sizeof text / sizeof *text; i++)
        if (str_mentions(text[i], d))
            return true;
    if (q->raw == NULL || q->rawlen == 0)
        return false;
    if (mentions(q->raw, q->rawlen, d))
        return true;
    struct ingest_decoded dec;
    char err[TR_ERRLEN];
    bool found = false;
    if (ingest_decode(q->raw, q->rawlen, NULL, &dec, err) == TR_OK) {
        for (size_t i = 0; i < dec.npayloads && !found; i++)
            found = mentions(dec.payloads[i].json, dec.payloads[i].jsonlen, d);
        found = found || str_mentions(dec.msg.report_domain, d) || str_mentions(dec.msg.subject, d);
    }
    ingest_decoded_free(&dec);
    return found;
}

static int take_entry(void *cls, const struct store_quarantine_row *q)
{
    struct ids *ids = cls;
    ids->last = q->id;
    if (!entry_names(q, ids->domain))
        return 0;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 64;
        int64_t *v = realloc(ids->v, cap * sizeof *v);
        if (v == NULL) {
            ids->oom = true;
            return 1;
        }
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = q->id;
    return 0;
}

static tr_err find_quarantine(struct store *st, struct ids *ids, char *err)
{
    for (;;) {
        int64_t before = ids->last;
        tr_err rc = store_scan_quarantine(st, ids->last, 64, take_entry, ids, err);
        if (rc != TR_OK)
            return rc;
        if (ids->oom)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        if (ids->last == before)
            return TR_OK;
    }
}

int cmd_forget(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct args a = {NULL, "text", false, NULL};
    int rc = cli_config_args("forget", argc, argv, &cfg, print_help, take_arg, &a);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    char domain[DOMAIN_MAX_LEN + 1];
    if (a.pending)
        rc = cli_usage_error("forget", "%s needs a value",
                             a.pending == &a.domain ? "--domain" : "--format");
    else if (a.domain == NULL)
        rc = cli_usage_error("forget", "--domain D is required");
    else if (!domain_normalize(a.domain, domain) || strchr(domain, ' '))
        rc = cli_usage_error("forget", "--domain: '%s' is not a domain name", a.domain);
    else if (strcmp(a.format, "text") != 0 && strcmp(a.format, "json") != 0)
        rc = cli_usage_error("forget", "--format: '%s' is not text or json", a.format);
    if (rc) {
        config_free(&cfg);
        return rc;
    }
    struct store *st = NULL;
    if ((rc = cli_open_existing(&cfg, "forget", &st)) != 0) {
        config_free(&cfg);
        return rc;
    }
    char err[TR_ERRLEN];
    struct ids ids = {NULL, 0, 0, 0, domain, false};
    struct store_forget_stats s;
    if (find_quarantine(st, &ids, err) != TR_OK ||
        store_forget_domain(st, domain, ids.v, ids.n, a.dry_run, &s, err) != TR_OK) {
        fprintf(stderr, "tlsrptd forget: %s\n", err);
        rc = EXIT_TEMPFAIL;
    } else if (strcmp(a.format, "json") == 0) {
        json_t *out = json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "domain", domain,
                                "dry_run", a.dry_run, "rebuilt", s.rebuilt, "reports_deleted",
                                (json_int_t)s.reports_deleted, "reports_edited",
                                (json_int_t)s.reports_edited, "policies", (json_int_t)s.policies,
                                "failure_details", (json_int_t)s.failure_details, "rollup_rows",
                                (json_int_t)s.rollup_rows, "quarantine", (json_int_t)s.quarantine);
        json_dumpf(out, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(out);
    } else {
        const char *verb = a.dry_run ? "would remove" : "removed";
        printf("forget %s: %s %lld reports where it was the only domain; took it out of %lld "
               "reports shared with other domains; %lld policies, %lld failure details, %lld "
               "rollup rows, %lld quarantine entries\n",
               domain, verb, (long long)s.reports_deleted, (long long)s.reports_edited,
               (long long)s.policies, (long long)s.failure_details, (long long)s.rollup_rows,
               (long long)s.quarantine);
        if (a.dry_run)
            printf("forget %s: dry run: nothing was removed\n", domain);
        else if (s.rebuilt)
            printf("forget %s: the database file was rebuilt: no copy of what was removed is "
                   "left in it\n",
                   domain);
    }
    if (rc == 0 && !a.dry_run && s.not_rebuilt[0])
        fprintf(stderr,
                "tlsrptd forget: %s is forgotten, but the database file could not be rebuilt "
                "(%s): removed bytes may stay in its free pages until it is; run forget "
                "again\n",
                domain, s.not_rebuilt);
    free(ids.v);
    store_close(st);
    config_free(&cfg);
    return rc;
}
