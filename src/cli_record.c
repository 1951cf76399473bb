/* cli_record.c: `tlsrptd record`: generate the `_smtp._tls` TXT record that
 * points rua at this collector (and the MTA-STS record and policy), check a
 * record against the RFC 8460 §3 grammar (--parse), or look the live one up
 * and say whether it reaches this collector (--check). What is checked, made
 * and said is in record_gen.c (shared with the API, api_record.c), the rules
 * in record.c, the lookup in dns.c; this file parses flags and prints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"
#include "tlsrptd/record_gen.h"

#define MAX_ARGS RECORD_GEN_MAX_ARGS /* --rua and --mx values */

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

/* The request of record_gen from the arguments and the collector's config. */
static void gen_request(const struct record_args *a, const struct config *cfg,
                        struct record_gen_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->domain = a->domain;
    memcpy(rq->rua, a->rua, a->nrua * sizeof *a->rua);
    rq->nrua = a->nrua;
    rq->public_url = cfg->public_url;
    rq->report_mailbox = cfg->report_mailbox;
    rq->ttl = a->ttl;
    rq->mta_sts = a->mta_sts;
    memcpy(rq->mx, a->mx, a->nmx * sizeof *a->mx);
    rq->nmx = a->nmx;
    rq->mode = a->mode;
    rq->max_age = a->max_age;
    rq->policy_file = a->policy_file != NULL;
}

/* Print record_gen's notes, then its error (a usage error with the hint). */
static int gen_outcome(const struct record_gen *g)
{
    for (size_t i = 0; i < g->nnotes; i++)
        fprintf(stderr, "tlsrptd record: %s\n", g->notes[i]);
    if (g->status == RECORD_GEN_USAGE)
        return cli_usage_error("record", "%s", g->err);
    if (g->status != 0)
        fprintf(stderr, "tlsrptd record: %s\n", g->err);
    return g->status;
}

static int do_check(const struct record_args *a, const struct config *cfg,
                    const struct record_gen *t)
{
    char err[TR_ERRLEN];
    struct dns_server srv;
    long timeout = RECORD_GEN_DNS_TIMEOUT;
    if (a->timeout && !cli_parse_long(a->timeout, 1, 60, &timeout))
        return cli_usage_error("record", "--dns-timeout: '%s' is not a number in 1-60", a->timeout);
    if (dns_server_parse(a->dns ? a->dns : cfg->dns, &srv, err) != TR_OK)
        return cli_usage_error("record", "%s", err);
    return record_gen_check(t, &srv, (int)timeout, stdout, NULL);
}

static int print_records(const char *format, const struct record_gen *g)
{
    if (strcmp(format, "json") == 0) {
        json_t *o = record_gen_json(g);
        char *s = o ? json_dumps(o, JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (s == NULL)
            return EXIT_TEMPFAIL;
        printf("%s\n", s);
        free(s);
        return 0;
    }
    bool zone = strcmp(format, "zone") == 0;
    for (int i = 0; i < (g->sts_value ? 2 : 1); i++) {
        char *line = zone ? record_gen_zone_line(g, i == 1) : strdup(i ? g->sts_value : g->value);
        if (line == NULL)
            return EXIT_TEMPFAIL;
        printf("%s\n", line);
        free(line);
    }
    if (g->sts_value)
        printf("\npolicy file %s (text/plain):\n%s", g->sts_url, g->sts_policy);
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

int cmd_record(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct record_args a = {0};
    struct record_gen g = {0};
    struct record_gen_request rq;
    int rc = cli_config_args("record", argc, argv, &cfg, record_help, record_extra, &a);
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
            rc = record_gen_parse(a.parse, stdout);
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
    gen_request(&a, &cfg, &rq);
    if (a.check)
        record_gen_target(&rq, &g);
    else
        record_gen_build(&rq, &g);
    rc = gen_outcome(&g);
    if (rc == 0 && a.check)
        rc = do_check(&a, &cfg, &g);
    else if (rc == 0)
        rc = print_records(a.format ? a.format : "zone", &g);
    if (rc == 0 && !a.check && a.policy_file)
        rc = write_policy(a.policy_file, g.sts_policy);
done:
    record_gen_free(&g);
    config_free(&cfg);
    return rc;
}
