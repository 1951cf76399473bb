/* record_gen.h: what `tlsrptd record` does with its inputs, written once for
 * the command line (cli_record.c) and the API (api_record.c), so that both
 * apply the same rules in the same order and say the same words: the domain
 * and the destinations (the --rua URIs, else this collector's public_url and
 * report_mailbox), the TXT record and its MTA-STS companion, the record as
 * `--format json` and as zone-file lines, `--parse`, and the live check
 * (`--check`) printed as text and returned as a JSON verdict.
 *
 * The rules themselves are in record.c (pure functions) and the lookups in
 * dns.c; this module sequences them and words the outcome. It parses no
 * command line and speaks no HTTP. Exports record_gen_*. */
#ifndef TLSRPTD_RECORD_GEN_H
#define TLSRPTD_RECORD_GEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include "tlsrptd/dns.h"
#include "tlsrptd/record.h"

#define RECORD_GEN_MAX_ARGS    32 /* --rua and --mx values */
#define RECORD_GEN_MAX_NOTES   (RECORD_GEN_MAX_ARGS + 2)
#define RECORD_GEN_TTL         3600ul
#define RECORD_GEN_MAX_AGE     604800ul /* one week, RFC 8461 §3.2's example */
#define RECORD_GEN_DNS_TIMEOUT 3        /* seconds per DNS try */

/* The outcome codes are the command's exit codes (sysexits.h). */
#define RECORD_GEN_USAGE    64 /* a missing or malformed argument */
#define RECORD_GEN_INVALID  65 /* invalid input; for a check: no policy, or not reached */
#define RECORD_GEN_TEMPFAIL 75 /* out of memory, or the lookup failed: try again later */

/* What to generate or check. Strings are borrowed; numbers are given as text
 * (as typed) so that a bad one is refused with the command's message. */
struct record_gen_request {
    const char *domain; /* NULL: refused, "--domain D is needed" */
    const char *rua[RECORD_GEN_MAX_ARGS];
    size_t nrua;
    const char *public_url, *report_mailbox; /* the collector, used when nrua is 0 */
    const char *ttl;                         /* NULL: 3600 */
    bool mta_sts;
    const char *mx[RECORD_GEN_MAX_ARGS];
    size_t nmx;
    const char *mode, *max_age; /* NULL: testing, 604800 */
    bool policy_file;           /* --policy-file was given (goes with --mta-sts) */
};

/* The outcome. Everything it points to is owned by it: record_gen_free(). */
struct record_gen {
    int status;          /* 0, or RECORD_GEN_USAGE / _INVALID / _TEMPFAIL */
    char err[TR_ERRLEN]; /* status != 0: what is wrong (the command prints
                            "tlsrptd record: " and this) */
    const char *field;   /* the request field err is about: "domain", "rua",
                            "ttl", "mx", "mode", "max_age", or NULL */
    /* notes and warnings in the order they arose, "note: ..." or
     * "warning: ..." (the command prints each after "tlsrptd record: ") */
    char notes[RECORD_GEN_MAX_NOTES][TR_ERRLEN];
    size_t nnotes;
    char domain[RECORD_DOMAIN_MAX];        /* normalised */
    char *uris[RECORD_GEN_MAX_ARGS];       /* the destinations, normalised, no duplicates */
    size_t nuris;                          /* -- */
    unsigned long ttl;                     /* record_gen_build only */
    char *value;                           /* "v=TLSRPTv1; rua=..." */
    char *sts_value, *sts_policy;          /* with mta_sts: "v=STSv1; id=...", the policy */
    char name[RECORD_DOMAIN_MAX + 16];     /* "_smtp._tls.D" */
    char sts_name[RECORD_DOMAIN_MAX + 16]; /* "_mta-sts.D" */
    char sts_url[RECORD_DOMAIN_MAX + 48];  /* the policy file's URL */
};

/* The domain and the destinations, as `record --check` needs them: the
 * domain checked (record_domain), then every destination normalised, a
 * duplicate dropped with a note. Returns out->status. */
int record_gen_target(const struct record_gen_request *rq, struct record_gen *out);
/* Everything `record` checks and makes, in its order: the target, the TTL,
 * the MTA-STS options (mode, max_age, the MX hosts), a warning for more than
 * two destinations, the record value and the MTA-STS record and policy.
 * Returns out->status. */
int record_gen_build(const struct record_gen_request *rq, struct record_gen *out);
void record_gen_free(struct record_gen *g);

/* `record --format json` of a built record: {"name", "type", "ttl", "value"}
 * and with MTA-STS "mta_sts": {"name", "type", "ttl", "value", "policy_url",
 * "policy"}. A NEW reference; NULL when out of memory. */
json_t *record_gen_json(const struct record_gen *g);
/* The zone-file line of the record (sts: of the _mta-sts record), as
 * `record --format zone` prints it, without the newline. NEW string. */
char *record_gen_zone_line(const struct record_gen *g, bool sts);

/* `record --parse`: print what record_parse makes of rec on out. Returns 0
 * when the record is valid, RECORD_GEN_INVALID otherwise. */
int record_gen_parse(const char *rec, FILE *out);

/* `record --check` for a target (record_gen_target succeeded): look up the
 * TXT records at _smtp._tls.<domain> on srv, apply the discovery rules, parse
 * the policy and say whether a destination reaches the collector (the
 * target's uris). Prints the command's text on out (may be NULL) and, when
 * verdict is not NULL, stores a NEW JSON object there:
 *   {"domain", "name", "dns", "collector": [URI...],
 *    "lookup": "ok"|"nxdomain"|"nodata"|"servfail"|"refused"|"timeout"|"error",
 *    "txt": [the TXT records as zone strings], "record": the policy or null,
 *    "strings": how many strings it was joined from, "valid": true|false|null,
 *    "error": {"column", "message"} or null, "warnings": [{"column", "message"}],
 *    "rua": [{"uri", "this_collector"}], "extensions": ["name=value"...],
 *    "verdict": "reaches"|"does-not-reach"|"invalid"|"no-policy"|"lookup-failed",
 *    "message": the last line, "exit": 0|65|75, "text": everything printed}
 * Returns the command's exit code: 0 reached, RECORD_GEN_INVALID, or
 * RECORD_GEN_TEMPFAIL (the lookup failed, or out of memory). */
int record_gen_check(const struct record_gen *target, const struct dns_server *srv, int timeout_s,
                     FILE *out, json_t **verdict);

#endif
