/* cli_record.c: `tlsrptd record`: generate the `_smtp._tls` TXT record that
 * points rua at this collector (and the MTA-STS record and policy), check a
 * record against the RFC 8460 §3 grammar (--parse), or look the live one up
 * and say whether it reaches this collector (--check). The record logic is in
 * record.c, the lookup in dns.c; this file parses flags and prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"
#include "tlsrptd/dns.h"
#include "tlsrptd/record.h"

#define DEFAULT_TTL     3600ul
#define DEFAULT_MAX_AGE 604800ul /* one week, RFC 8461 §3.2's example */
#define DEFAULT_TIMEOUT 3        /* seconds per DNS try */
#define MAX_ARGS        32       /* --rua and --mx values */

static void record_help(void)
{
    printf("Usage: tlsrptd record --domain D [--rua URI]... [--ttl N] [--format zone|value|json]\n"
           "                      [--mta-sts --mx HOST... [--mode MODE] [--max-age S]]\n"
           "       tlsrptd record --parse 'RECORD'\n"
           "       tlsrptd record --check --domain D [--dns HOST:PORT]\n"
           "Each also takes -c FILE, --public-url URL and --report-mailbox ADDR.\n"
           "\n"
           "The _smtp._tls TXT record of SMTP TLS Reporting (RFC 8460 section 3).\n"
           "\n"
           "Generate the record for _smtp._tls.D. Without --rua, rua points at this\n"
           "collector: its public_url (https) and/or report_mailbox (mailto), from the\n"
           "flags or the config file.\n"
           "  --domain D            the policy domain, in A-labels (a U-label name is\n"
           "                        refused, and its A-label form shown)\n"
           "  --rua URI             a destination, mailto: or https: (repeatable); ',' '!'\n"
           "                        ';' are percent-encoded, duplicates dropped\n"
           "  --ttl N               TTL of the zone line (default 3600)\n"
           "  --format FORMAT       zone (a zone-file line; default), value (the TXT data)\n"
           "                        or json\n"
           "  --mta-sts             also the _mta-sts.D TXT record and the policy file for\n"
           "                        https://mta-sts.D/.well-known/mta-sts.txt (RFC 8461)\n"
           "  --mx HOST...          MX host names of the policy (repeatable; *.example.net)\n"
           "  --mode MODE           testing (default), enforce or none\n"
           "  --max-age S           the policy's max_age (default 604800, at most 31557600)\n"
           "  --policy-file FILE    also write the policy file (CRLF line ends) to FILE\n"
           "\n"
           "Parse a record:\n"
           "  --parse RECORD        check RECORD against the RFC 8460 section 3 grammar;\n"
           "                        print its destinations and extensions, or its first\n"
           "                        error with the column\n"
           "\n"
           "Check the published record:\n"
           "  --check               look up the TXT records at _smtp._tls.D, apply the\n"
           "                        discovery rules (strings joined; records not beginning\n"
           "                        'v=TLSRPTv1;' dropped; exactly one must be left), parse\n"
           "                        it, and say whether rua reaches this collector (the\n"
           "                        --rua URIs when given, else public_url / report_mailbox)\n"
           "  --dns HOST:PORT       ask this DNS server (an IPv4 address; port 53 by\n"
           "                        default) instead of those of /etc/resolv.conf\n"
           "  --dns-timeout S       seconds per DNS try, two tries (default 3)\n"
           "\n"
           "This collector:\n"
           "  -c, --config FILE     read public_url and report_mailbox from tlsrptd.conf\n"
           "  --public-url URL      the https URL senders POST reports to\n"
           "  --report-mailbox ADDR the address reports are mailed to\n"
           "\n"
           "Exit status: 0 done (--check: rua reaches this collector); 64 usage error;\n"
           "65 invalid input (domain, URI, record), or for --check no policy or one that\n"
           "does not reach this collector; 75 the DNS lookup failed (try again later).\n");
}

struct record_args {
    const char *domain, *format, *parse, *dns, *mode, *policy_file;
    const char *ttl, *max_age, *timeout;
    const char *rua[MAX_ARGS], *mx[MAX_ARGS];
    size_t nrua, nmx;
    bool check, mta_sts, parse_given, format_given;
    const char *pending; /* a flag waiting for its value */
    bool in_mx;          /* after --mx: further words are host names */
    bool failed;
};

static const char *const value_flags[] = {"domain",  "rua",         "ttl",        "format",
                                          "parse",   "dns",         "mx",         "mode",
                                          "max-age", "policy-file", "dns-timeout"};

/* Store a flag's value. Returns 1, or -1 after a usage error. */
static int record_set(struct record_args *a, const char *flag, const char *v)
{
    if (strcmp(flag, "rua") == 0 || strcmp(flag, "mx") == 0) {
        bool rua = flag[0] == 'r';
        size_t *n = rua ? &a->nrua : &a->nmx;
        if (*n == MAX_ARGS) {
            cli_usage_error("record", "at most %d --%s values", MAX_ARGS, flag);
            return -1;
        }
        (rua ? a->rua : a->mx)[(*n)++] = v;
        a->in_mx = !rua;
        return 1;
    }
    const char **slot = strcmp(flag, "domain") == 0        ? &a->domain
                        : strcmp(flag, "ttl") == 0         ? &a->ttl
                        : strcmp(flag, "format") == 0      ? &a->format
                        : strcmp(flag, "parse") == 0       ? &a->parse
                        : strcmp(flag, "dns") == 0         ? &a->dns
                        : strcmp(flag, "mode") == 0        ? &a->mode
                        : strcmp(flag, "max-age") == 0     ? &a->max_age
                        : strcmp(flag, "policy-file") == 0 ? &a->policy_file
                                                           : &a->timeout;
    if (*slot != NULL) {
        cli_usage_error("record", "--%s given twice", flag);
        return -1;
    }
    *slot = v;
    a->parse_given |= slot == &a->parse;
    a->format_given |= slot == &a->format;
    return 1;
}

/* cli_config_args' extra: record's own flags, their values (the argument
 * after a flag), and the host names after --mx. */
static int record_extra(void *ctx, const char *arg)
{
    struct record_args *a = ctx;
    if (a->pending) {
        const char *flag = a->pending;
        a->pending = NULL;
        return record_set(a, flag, arg);
    }
    if (a->in_mx && arg[0] != '-')
        return record_set(a, "mx", arg);
    a->in_mx = false;
    if (strcmp(arg, "--check") == 0 || strcmp(arg, "--mta-sts") == 0) {
        *(arg[2] == 'c' ? &a->check : &a->mta_sts) = true;
        return 1;
    }
    if (strncmp(arg, "--", 2) != 0)
        return 0;
    for (size_t i = 0; i < sizeof value_flags / sizeof *value_flags; i++) {
        size_t fl = strlen(value_flags[i]);
        if (strncmp(arg + 2, value_flags[i], fl) != 0)
            continue;
        if (arg[2 + fl] == '=')
            return record_set(a, value_flags[i], arg + 3 + fl);
        if (arg[2 + fl] == 0) {
            a->pending = value_flags[i];
            return 1;
        }
    }
    return 0; /* a config flag (--public-url, ...), or unknown */
}

/* The collector's addresses: the --rua URIs, else public_url and
 * report_mailbox; normalised, duplicates dropped (noted on stderr). Returns 0,
 * EXIT_USAGE when there are none, or EXIT_DATAERR. */
static int collector_uris(const struct record_args *a, const struct config *cfg, char **uris,
                          size_t *n)
{
    char err[TR_ERRLEN], note[TR_ERRLEN];
    const char *src[MAX_ARGS];
    bool mailbox[MAX_ARGS] = {false};
    size_t ns = 0;
    *n = 0;
    if (a->nrua) {
        for (size_t i = 0; i < a->nrua; i++)
            src[ns++] = a->rua[i];
    } else {
        if (cfg->public_url)
            src[ns++] = cfg->public_url;
        if (cfg->report_mailbox) {
            mailbox[ns] = true;
            src[ns++] = cfg->report_mailbox;
        }
    }
    if (ns == 0)
        return cli_usage_error("record",
                               "no destination: give --rua URI, or this collector's --public-url "
                               "URL and/or --report-mailbox ADDR (public_url, report_mailbox in "
                               "the config file)");
    for (size_t i = 0; i < ns; i++) {
        char *u = NULL;
        const char *what = a->nrua ? "--rua" : mailbox[i] ? "report_mailbox" : "public_url";
        tr_err e = mailbox[i] ? record_mailbox_uri(src[i], &u, note, err)
                              : record_uri_normalize(src[i], &u, note, err);
        if (e == TR_OK && !a->nrua && !mailbox[i] && strncmp(u, "https:", 6) != 0)
            e = tr_fail(err, TR_EINVAL, "'%s' is not an https: URL", src[i]);
        if (e != TR_OK) {
            fprintf(stderr, "tlsrptd record: %s %s\n", what, err);
            free(u);
            return e == TR_ENOMEM ? EXIT_TEMPFAIL : EXIT_DATAERR;
        }
        if (note[0])
            fprintf(stderr, "tlsrptd record: note: %s %s\n", what, note);
        bool dup = false;
        for (size_t k = 0; k < *n && !dup; k++)
            dup = strcmp(uris[k], u) == 0;
        if (dup) {
            fprintf(stderr, "tlsrptd record: note: duplicate destination %s dropped\n", u);
            free(u);
            continue;
        }
        uris[(*n)++] = u;
    }
    return 0;
}

static void free_uris(char **uris, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(uris[i]);
}

/* ---- --parse and the parse part of --check ----------------------------------------------- */

/* Print the outcome of record_parse on stdout: the destinations and
 * extensions (marking those that reach coll, when given), or the error with a
 * caret under its column. */
static void print_parse(const char *rec, size_t len, tr_err rc, const struct record_parse *pr,
                        char *const *coll, size_t ncoll, size_t *reached)
{
    if (reached)
        *reached = 0;
    if (rc != TR_OK) {
        printf("invalid: column %zu: %s\n  %.*s\n  ", pr->err_col, pr->err, (int)len, rec);
        for (size_t i = 0; i + 1 < pr->err_col; i++)
            putchar(rec[i] == '\t' ? '\t' : ' '); /* the caret stays under the column */
        printf("^\n");
        return;
    }
    printf("valid: %.*s\n", (int)len, rec);
    for (size_t i = 0; i < pr->nwarn; i++)
        printf("warning: column %zu: %s\n", pr->warn_col[i], pr->warn[i]);
    for (size_t i = 0; i < pr->nrua; i++) {
        const char *u = rec + pr->rua[i].off;
        int ul = (int)pr->rua[i].len;
        bool here = false;
        if (coll) {
            char *raw = strndup(u, (size_t)ul), *norm = NULL, err[TR_ERRLEN];
            if (raw && record_uri_normalize(raw, &norm, NULL, err) == TR_OK)
                for (size_t k = 0; k < ncoll && !here; k++)
                    here = record_uri_reaches(norm, coll[k]);
            free(norm);
            free(raw);
        }
        if (here)
            (*reached)++;
        printf("  rua: %.*s%s\n", ul, u, here ? "  (this collector)" : "");
    }
    for (size_t i = 0; i < pr->next; i++)
        printf("  extension: %.*s\n", (int)pr->ext[i].len, rec + pr->ext[i].off);
}

static int do_parse(const char *rec)
{
    struct record_parse pr;
    size_t len = strlen(rec);
    tr_err rc = record_parse(rec, len, &pr);
    print_parse(rec, len, rc, &pr, NULL, 0, NULL);
    return rc == TR_OK ? 0 : EXIT_DATAERR;
}

/* ---- --check ----------------------------------------------------------------------------- */

static int do_check(const struct record_args *a, const char *domain, char **coll, size_t ncoll)
{
    char err[TR_ERRLEN], name[RECORD_DOMAIN_MAX + 16];
    struct dns_server srv;
    long timeout = DEFAULT_TIMEOUT;
    if (a->timeout && !cli_parse_long(a->timeout, 1, 60, &timeout))
        return cli_usage_error("record", "--dns-timeout: '%s' is not a number in 1-60", a->timeout);
    if (dns_server_parse(a->dns, &srv, err) != TR_OK)
        return cli_usage_error("record", "%s", err);
    snprintf(name, sizeof name, RECORD_PREFIX "%s", domain);

    struct dns_txt txt;
    enum dns_status st;
    tr_err e = dns_lookup_txt(name, &srv, (int)timeout, &txt, &st, err);
    if (e != TR_OK) {
        printf("lookup failed: %s\n", err);
        dns_txt_free(&txt);
        return e == TR_ENOMEM || st == DNS_SERVFAIL || st == DNS_TIMEOUT || st == DNS_REFUSED
                   ? EXIT_TEMPFAIL
                   : EXIT_DATAERR;
    }
    if (st == DNS_NXDOMAIN) {
        printf("%s: no such name (NXDOMAIN): no TLS-RPT policy\n", name);
        dns_txt_free(&txt);
        return EXIT_DATAERR;
    }
    if (st == DNS_NODATA) {
        printf("%s: no TXT records (the name exists): no TLS-RPT policy\n", name);
        dns_txt_free(&txt);
        return EXIT_DATAERR;
    }
    printf("%s: %zu TXT record%s\n", name, txt.nrr, txt.nrr == 1 ? "" : "s");
    for (size_t i = 0; i < txt.nrr; i++) {
        /* the strings as DNS has them (record_zone_strings of each, not re-split) */
        printf("  TXT");
        for (size_t k = 0; k < txt.rr[i].n; k++) {
            char *one = record_zone_strings(txt.rr[i].str[k].s, txt.rr[i].str[k].len);
            printf(" %s", one ? one : "?");
            free(one);
        }
        printf("\n");
    }
    struct record_discovery d;
    e = record_discover(txt.rr, txt.nrr, &d, err);
    dns_txt_free(&txt);
    if (e != TR_OK) {
        printf("no policy: %s\n", err);
        record_discovery_free(&d);
        return e == TR_ENOMEM ? EXIT_TEMPFAIL : EXIT_DATAERR;
    }
    if (d.nstrings > 1)
        printf("policy (%zu strings joined):\n", d.nstrings);
    struct record_parse pr;
    tr_err rc = record_parse(d.record, d.len, &pr);
    size_t reached = 0;
    print_parse(d.record, d.len, rc, &pr, coll, ncoll, &reached);
    record_discovery_free(&d);
    if (rc != TR_OK) {
        printf("no policy: the record is not valid, senders ignore it\n");
        return EXIT_DATAERR;
    }
    printf("%s: rua %s this collector (", reached ? "ok" : "not reached",
           reached ? "reaches" : "does not reach");
    for (size_t i = 0; i < ncoll; i++)
        printf("%s%s", i ? ", " : "", coll[i]);
    printf(")\n");
    return reached ? 0 : EXIT_DATAERR;
}

/* ---- generation -------------------------------------------------------------------------- */

/* The MTA-STS part: record value and policy, from the arguments. */
struct sts {
    char *policy, *value;
    char mx[MAX_ARGS][RECORD_DOMAIN_MAX];
};

static int sts_build(const struct record_args *a, struct sts *s)
{
    char err[TR_ERRLEN];
    const char *mode = a->mode ? a->mode : "testing";
    long max_age = (long)DEFAULT_MAX_AGE;
    if (strcmp(mode, "testing") != 0 && strcmp(mode, "enforce") != 0 && strcmp(mode, "none") != 0)
        return cli_usage_error("record", "--mode: '%s' is not testing, enforce or none", mode);
    if (a->max_age && !cli_parse_long(a->max_age, 0, (long)RECORD_STS_MAX_AGE, &max_age))
        return cli_usage_error("record", "--max-age: '%s' is not a number of seconds in 0-%lu",
                               a->max_age, RECORD_STS_MAX_AGE);
    if (a->nmx == 0 && strcmp(mode, "none") != 0)
        return cli_usage_error("record", "--mta-sts needs the MX hosts: --mx HOST...");
    const char *mx[MAX_ARGS];
    for (size_t i = 0; i < a->nmx; i++) {
        if (record_mx_host(a->mx[i], s->mx[i], err) != TR_OK) {
            fprintf(stderr, "tlsrptd record: --mx %s\n", err);
            return EXIT_DATAERR;
        }
        mx[i] = s->mx[i];
    }
    s->policy = record_sts_policy(mode, mx, a->nmx, (unsigned long)max_age);
    if (s->policy == NULL)
        return EXIT_TEMPFAIL;
    char id[17], value[40];
    record_sts_id(s->policy, id);
    snprintf(value, sizeof value, "v=STSv1; id=%s", id);
    s->value = strdup(value);
    return s->value ? 0 : EXIT_TEMPFAIL;
}

static int print_json(const char *domain, unsigned long ttl, const char *value,
                      const struct sts *sts)
{
    char name[RECORD_DOMAIN_MAX + 16], url[RECORD_DOMAIN_MAX + 48];
    snprintf(name, sizeof name, RECORD_PREFIX "%s", domain);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "name", name, "type", "TXT", "ttl",
                          (json_int_t)ttl, "value", value);
    if (o && sts) {
        snprintf(name, sizeof name, "_mta-sts.%s", domain);
        snprintf(url, sizeof url, "https://mta-sts.%s/.well-known/mta-sts.txt", domain);
        json_object_set_new(o, "mta_sts",
                            json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "name", name, "type", "TXT",
                                      "ttl", (json_int_t)ttl, "value", sts->value, "policy_url",
                                      url, "policy", sts->policy));
    }
    char *s = o ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (s == NULL)
        return EXIT_TEMPFAIL;
    printf("%s\n", s);
    free(s);
    return 0;
}

static int print_records(const char *format, const char *domain, unsigned long ttl,
                         const char *value, const struct sts *sts)
{
    char name[RECORD_DOMAIN_MAX + 16];
    if (strcmp(format, "json") == 0)
        return print_json(domain, ttl, value, sts);
    bool zone = strcmp(format, "zone") == 0;
    for (int i = 0; i < (sts ? 2 : 1); i++) {
        const char *v = i ? sts->value : value;
        snprintf(name, sizeof name, "%s%s", i ? "_mta-sts." : RECORD_PREFIX, domain);
        char *line = zone ? record_zone_line(name, ttl, v) : strdup(v);
        if (line == NULL)
            return EXIT_TEMPFAIL;
        printf("%s\n", line);
        free(line);
    }
    if (sts)
        printf("\npolicy file https://mta-sts.%s/.well-known/mta-sts.txt (text/plain):\n%s", domain,
               sts->policy);
    return 0;
}

static int write_policy(const char *path, const char *policy)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(policy, f) == EOF || fclose(f) != 0) {
        fprintf(stderr, "tlsrptd record: --policy-file %s: %s\n", path, strerror(errno));
        return EXIT_IOERR;
    }
    return 0;
}

static int do_generate(const struct record_args *a, const char *domain, char **uris, size_t n)
{
    long ttl = (long)DEFAULT_TTL;
    if (a->ttl && !cli_parse_long(a->ttl, 0, 2147483647, &ttl))
        return cli_usage_error("record", "--ttl: '%s' is not a number of seconds in 0-2147483647",
                               a->ttl);
    if (!a->mta_sts && (a->nmx || a->mode || a->max_age || a->policy_file))
        return cli_usage_error("record", "--mx, --mode, --max-age and --policy-file go with "
                                         "--mta-sts");
    if (n > 2)
        fprintf(stderr,
                "tlsrptd record: warning: %zu destinations: some senders deliver to the first "
                "only\n",
                n);
    struct sts sts = {NULL, NULL, {{0}}};
    int rc = a->mta_sts ? sts_build(a, &sts) : 0;
    char *value = rc == 0 ? record_value((const char *const *)uris, n) : NULL;
    if (rc == 0 && value == NULL)
        rc = EXIT_TEMPFAIL;
    if (rc == 0)
        rc = print_records(a->format ? a->format : "zone", domain, (unsigned long)ttl, value,
                           a->mta_sts ? &sts : NULL);
    if (rc == 0 && a->policy_file)
        rc = write_policy(a->policy_file, sts.policy);
    free(value);
    free(sts.policy);
    free(sts.value);
    return rc;
}

int cmd_record(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct record_args a = {0};
    int rc = cli_config_args("record", argc, argv, &cfg, record_help, record_extra, &a);
    char *uris[MAX_ARGS];
    size_t n = 0;
    char domain[RECORD_DOMAIN_MAX], err[TR_ERRLEN];
    if (rc != 0) {
        rc = rc < 0 ? 0 : rc;
        goto done;
    }
    if (a.pending) {
        rc = cli_usage_error("record", "--%s needs a value", a.pending);
        goto done;
    }
    if (a.format && strcmp(a.format, "zone") != 0 && strcmp(a.format, "value") != 0 &&
        strcmp(a.format, "json") != 0) {
        rc = cli_usage_error("record", "--format: '%s' is not zone, value or json", a.format);
        goto done;
    }
    if (a.parse_given) {
        if (a.check || a.domain || a.nrua || a.mta_sts || a.format_given)
            rc = cli_usage_error("record", "--parse takes the record alone");
        else
            rc = do_parse(a.parse);
        goto done;
    }
    if (a.domain == NULL) {
        rc = cli_usage_error("record", "--domain D is needed (or --parse RECORD)");
        goto done;
    }
    if (a.check && (a.mta_sts || a.format_given || a.ttl)) {
        rc = cli_usage_error("record", "--check takes --domain, --dns and the collector's "
                                       "addresses only");
        goto done;
    }
    if (!a.check && (a.dns || a.timeout)) {
        rc = cli_usage_error("record", "--dns and --dns-timeout go with --check");
        goto done;
    }
    if (record_domain(a.domain, domain, err) != TR_OK) {
        fprintf(stderr, "tlsrptd record: %s\n", err);
        rc = EXIT_DATAERR;
        goto done;
    }
    rc = collector_uris(&a, &cfg, uris, &n);
    if (rc == 0)
        rc = a.check ? do_check(&a, domain, uris, n) : do_generate(&a, domain, uris, n);
done:
    free_uris(uris, n);
    config_free(&cfg);
    return rc;
}
