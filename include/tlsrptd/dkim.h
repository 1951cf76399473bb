/* dkim.h: DKIM verification of mailed reports (RFC 6376; RFC 8460 §3), docs/dkim.md.
 *
 * Every DKIM-Signature of a message is verified (libopendkim does the
 * canonicalization and the cryptography; the key records are looked up here,
 * through dns.h, so that the lookups are bounded in time and a DNS failure is
 * told from a missing key). A key serves TLS-RPT when its service types (s=)
 * name "tlsrpt" or "*", or when it has no s=; a key for s=email only does not.
 * The verdict of a message: pass (a signature verified), fail (signatures,
 * none verified), none (unsigned) or temperror (a key could not be looked up),
 * with the d= domain of the passing (or first) signature and whether that
 * domain is the same as, or a parent of, the TLS-Report-Submitter and the From
 * domains. What the verdict leads to (stored, quarantined, retried later) is
 * ingest's business (dkim = off | record | require), not this module's.
 *
 * Only dkim.c includes libopendkim. Thread-safe: many threads may verify at
 * once. */
#ifndef TLSRPTD_DKIM_H
#define TLSRPTD_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"

/* The dkim option: what a verdict leads to. */
enum dkim_policy {
    DKIM_POLICY_OFF,    /* mails are not verified (no verdict) */
    DKIM_POLICY_RECORD, /* the verdict is stored with the report (the default) */
    DKIM_POLICY_REQUIRE /* no passing signature: quarantined; temperror: retried later */
};

enum dkim_result { DKIM_RESULT_NONE, DKIM_RESULT_PASS, DKIM_RESULT_FAIL, DKIM_RESULT_TEMPERROR };

struct dkim_config {
    enum dkim_policy policy; /* zero: off */
    unsigned timeout;        /* seconds the key lookups of one message may take (0: 5) */
};

#define DKIM_DEFAULT_TIMEOUT 5
#define DKIM_MAX_SIGNATURES  8 /* signatures of one message that are verified; the rest ignored */
#define DKIM_DOMAIN_MAX      256

struct dkim_verdict {
    enum dkim_result result;
    char domain[DKIM_DOMAIN_MAX]; /* d= of the passing (or first) signature; "" for none */
    bool aligned; /* domain is, or is a parent of, the TLS-Report-Submitter and From domains */
    char reason[TR_ERRLEN]; /* fail, temperror: why ("body hash did not verify"); else "" */
};

/* "off", "record", "require" -> *out; false for anything else. */
bool dkim_policy_parse(const char *s, enum dkim_policy *out);
/* "pass", "fail", "none", "temperror". */
const char *dkim_result_name(enum dkim_result r);

/* Verify the signatures of msg[0..len) (a whole message as received; LF or
 * CRLF line ends). submitter: the TLS-Report-Submitter header's value, or
 * NULL. The key lookups of the message take at most opt->timeout seconds
 * together. out is always filled; a failure to run the verification at all
 * (out of memory) is a temperror. */
void dkim_verify_message(const void *msg, size_t len, const char *submitter,
                         const struct dkim_config *opt, struct dkim_verdict *out);

/* ---- the pure parts, exported for the unit tests ---------------------------------------- */

/* True when d is domain or a parent of it (letter case and one trailing dot
 * ignored): "example.net" covers "example.net" and "mx.example.net", not
 * "badexample.net". False when either is NULL or empty. */
bool dkim_domain_covers(const char *d, const char *domain);

/* A key record (tag=value; ..., RFC 6376 §3.6.1) as libopendkim should see it:
 * TR_OK with the record in out (outlen bytes) and its s= tag left out, when
 * the key serves TLS-RPT (s= names "tlsrpt" or "*", or there is no s=);
 * TR_EINVAL with why set when it does not ("key is for s=email only, not
 * tlsrpt (RFC 8460 §3)"); TR_ETOOBIG when out is too small. */
tr_err dkim_key_for_tlsrpt(const char *record, char *out, size_t outlen, char *why);

/* What became of one signature. */
enum dkim_sig_state { DKIM_SIG_PASS, DKIM_SIG_FAIL, DKIM_SIG_TEMPERROR };
struct dkim_sig_outcome {
    enum dkim_sig_state state;
    const char *domain; /* d= */
    const char *reason; /* fail, temperror: why */
};

/* The verdict of a message from its signatures' outcomes, in message order:
 * none without signatures; pass when one passed (the first whose domain is
 * aligned, else the first); temperror when none passed and a key could not be
 * looked up (the first such); fail otherwise (the first signature's domain
 * and reason). submitter and from_domain may be NULL (then not aligned). */
void dkim_combine(const struct dkim_sig_outcome *sigs, size_t n, const char *submitter,
                  const char *from_domain, struct dkim_verdict *out);

#endif
