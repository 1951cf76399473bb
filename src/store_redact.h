/* store_redact.h: a stored report with some of its policies taken out, for
 * tenants' views (store_read.c: a token sees only its domains' policies) and
 * for `forget` (store_forget.c: a forgotten domain's policies leave the raw
 * bytes too). Internal to the store_*.c files. */
#ifndef TLSRPTD_STORE_REDACT_H
#define TLSRPTD_STORE_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"

/* Which policies stay: keep(cls, domain) for each policy's domain as the
 * validator stores it (lower case, no trailing dot; the fallback — the
 * TLS-Report-Domain header — when the policy names none; "" when neither). */
typedef bool (*store_keep_fn)(void *cls, const char *domain);

struct store_redacted {
    struct buf json;  /* the report JSON without the dropped policies (when any were dropped) */
    bool *dropped;    /* per policy of the stored JSON: taken out */
    size_t npolicies; /* of the stored JSON */
    size_t ndropped;
};

/* Decode raw (encoding "gzip", "zlib" or "identity") and take out the
 * policies keep() refuses. TR_OK with ndropped 0 (json empty) when all stay;
 * TR_EPARSE when raw is not a report's JSON (nothing dropped then). */
tr_err store_redact_report(const char *encoding, const void *raw, size_t len, const char *fallback,
                           store_keep_fn keep, void *cls, struct store_redacted *out, char *err);
void store_redacted_free(struct store_redacted *r);

/* The diagnostics (a JSON array of {"level", "path", "message"} as text)
 * without the entries about dropped policies (path "policies[N]..."), and
 * without the entries mention() finds (may be NULL), and, with policies_only,
 * without the entries about anything but a kept policy. A new malloc'd
 * string; NULL when text is NULL or out of memory. */
char *store_redact_diagnostics(const char *text, const struct store_redacted *r, bool policies_only,
                               bool (*mention)(void *cls, const char *msg), void *cls);

#endif
