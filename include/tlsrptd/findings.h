/* findings.h: what an operator can act on, in plain sentences with their
 * evidence, computed from the stored reports: an MTA-STS policy in testing
 * with no failures (ready for enforce), senders that found no policy, a
 * reporter that stopped, a result type that appeared, certificate and STARTTLS
 * failures on an MX since a date, and (when asked to look in DNS) a TLS-RPT
 * record with more than two destinations. For `tlsrptd summary --findings`,
 * GET /api/v1/findings and the console. */
#ifndef TLSRPTD_FINDINGS_H
#define TLSRPTD_FINDINGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "tlsrptd/query.h"
#include "tlsrptd/store.h"

struct findings_options {
    int64_t now;            /* the time the findings are about (0: now) */
    unsigned history_days;  /* how far back to look (default 90) */
    unsigned clean_days;    /* testing without failures this long: ready for enforce (30) */
    unsigned recent_days;   /* "appeared", "still failing": within this many days (7) */
    unsigned silence_days;  /* a regular reporter silent this long has stopped (3) */
    bool dns;               /* also look up each domain's _smtp._tls record */
    const char *dns_server; /* HOST:PORT, or NULL for the system resolver */
    unsigned dns_limit;     /* at most this many lookups (50) */
};
#define FINDINGS_DEFAULT_OPTIONS                                                                   \
    {                                                                                              \
        0, 90, 30, 7, 3, false, NULL, 50                                                           \
    }

/* {"findings": [{"kind", "severity": "critical"|"warning"|"info", "domain", "text",
 * "since", "evidence": {"reports": [ids], ...}}], "now"}: for the filter's
 * domains (none: every domain). NULL with err set. */
json_t *findings_compute(struct store *st, const struct query_filter *f,
                         const struct findings_options *opt, char *err);

#endif
