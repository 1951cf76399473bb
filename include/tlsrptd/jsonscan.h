/* jsonscan.h: count and measure a JSON text before a parser builds a tree of it.
 *
 * One pass over the bytes, no allocation but one small table: nesting depth,
 * the length of every string and number, the members of every object, the
 * elements of every array and the values of the whole document; and, for the
 * shape of an RFC 8460 report, the policies, the failure-details and the
 * policy-string / mx-host lists of each policy, and the distinct policy
 * domains. A text within every bound can be given to the parser (jsondoc.h),
 * whose document is then bounded too; one over a bound is refused with the bound and the JSON
 * path named. The scanner does not validate JSON: where the text stops being
 * JSON it stops counting, and the parser, which stops at the same place,
 * reports the error. docs/limits.md gives each default with its reason. */
#ifndef TLSRPTD_JSONSCAN_H
#define TLSRPTD_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"

/* Defaults. Real reports are far below each (docs/limits.md): 3 policies,
 * 3 failure-details, 7 policy-strings, 6 keys, 950-byte strings at most in
 * the shared corpus of real senders' reports. */
#define JSONSCAN_DEFAULT_MAX_DEPTH           32
#define JSONSCAN_DEFAULT_MAX_STRING          16384  /* bytes of a string or number as written */
#define JSONSCAN_DEFAULT_MAX_VALUES          250000 /* values in one document */
#define JSONSCAN_DEFAULT_MAX_POLICIES        1000   /* elements of "policies" */
#define JSONSCAN_DEFAULT_MAX_FAILURE_DETAILS 10000  /* elements of one "failure-details" */
#define JSONSCAN_DEFAULT_MAX_POLICY_STRINGS  1000   /* "policy-string" or "mx-host" entries */
#define JSONSCAN_DEFAULT_MAX_POLICY_DOMAINS  100    /* distinct "policy-domain" values */
/* Not configurable: no real report comes near them, and the RFC 8460 objects
 * have at most 8 keys. */
#define JSONSCAN_MAX_KEYS  100   /* members of one object */
#define JSONSCAN_MAX_ARRAY 10000 /* elements of any other array */

/* Each field 0 means its default, so a zeroed struct is the defaults. */
struct jsonscan_limits {
    size_t max_depth;
    size_t max_string;
    size_t max_values;
    size_t max_policies;
    size_t max_failure_details;
    size_t max_policy_strings;
    size_t max_policy_domains;
};

#define JSONSCAN_PATHLEN 160

/* Every field 0: the defaults, for initialisers. */
#define JSONSCAN_DEFAULT_LIMITS                                                                    \
    {                                                                                              \
        0, 0, 0, 0, 0, 0, 0                                                                        \
    }

/* What a scan counted (up to where it stopped), and where it stopped. */
struct jsonscan_stats {
    size_t values;               /* values of the document (scalars, arrays, objects) */
    size_t string_bytes;         /* bytes inside string quotes, keys included */
    char path[JSONSCAN_PATHLEN]; /* over a bound: the JSON path ("" for the document) */
};

/* Scan s[0..n). TR_OK when every count and length is within lim (lim NULL:
 * the defaults); TR_ETOOBIG past a bound, with stats->path set to the JSON
 * path and err to what is over which bound, with its configuration key
 * ("more than 10000 entries (max_failure_details)" at
 * "policies[0].failure-details"); TR_ENOMEM when the table of domains cannot
 * be allocated. stats may be NULL. */
tr_err jsonscan_check(const void *s, size_t n, const struct jsonscan_limits *lim,
                      struct jsonscan_stats *stats, char *err);

/* The same, as the text arrives (while it is inflated, say), so that a report
 * over a bound is refused before the rest of it is even inflated. text[0..n)
 * is all of the text so far, at each call (it may have moved since the last
 * one); final says no more will come. TR_OK while within every bound so far;
 * TR_ETOOBIG (for good) past one, with err as for jsonscan_check; TR_ENOMEM.
 * A leading UTF-8 byte order mark is skipped. */
struct jsonscan;
struct jsonscan *jsonscan_new(const struct jsonscan_limits *lim); /* NULL: out of memory */
tr_err jsonscan_feed(struct jsonscan *sc, const void *text, size_t n, bool final, char *err);
const struct jsonscan_stats *jsonscan_stats(const struct jsonscan *sc);
void jsonscan_free(struct jsonscan *sc);

/* lim with every 0 replaced by its default. */
struct jsonscan_limits jsonscan_effective(const struct jsonscan_limits *lim);

#endif
