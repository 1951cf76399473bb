/* trust.h: which domains this collector takes reports for, and which domains
 * each API token may see (docs/trust.md), as one snapshot the whole process
 * shares.
 *
 * Every ingest path (HTTP, Maildir, `ingest`, IMAP, the spool, re-ingested
 * quarantine entries) asks trust_get() for the own domains when it turns a
 * validated report into one to store; the API asks it for a token's domains.
 * serve builds a new snapshot on SIGHUP (domains_file and tokens_file read
 * again) and swaps it in; whoever holds the old one keeps it until
 * trust_put(). Process-wide like the log set-up: each command configures it
 * once from its settings, before it ingests or answers anything. Before
 * that, and without settings, every domain is accepted and no token is
 * known. */
#ifndef TLSRPTD_TRUST_H
#define TLSRPTD_TRUST_H

#include <stdbool.h>
#include "tlsrptd/domains.h"
#include "tlsrptd/err.h"
#include "tlsrptd/tokens.h"

/* The settings a snapshot is made from (borrowed; any may be NULL). */
struct trust_settings {
    const char *domains;      /* "example.com, *.example.org" */
    const char *domains_file; /* one or more patterns a line */
    const char *tokens_file;  /* "TOKEN DOMAIN..." lines */
};

struct trust;

/* Build a snapshot from s and make it the current one. On error (a bad
 * pattern, an unreadable file: TR_EUSAGE, err names it) the current snapshot
 * stays. */
tr_err trust_configure(const struct trust_settings *s, char *err);

/* The current snapshot, held until trust_put(); never NULL. */
struct trust *trust_get(void);
void trust_put(struct trust *t);

/* The own domains; NULL when every domain is accepted (no domains set). */
const struct domain_set *trust_own_domains(const struct trust *t);
/* The tenant tokens; NULL without tokens_file. */
const struct tokens *trust_tokens(const struct trust *t);

/* A short description for logs: "3 own domains, 2 tokens". */
void trust_describe(const struct trust *t, char *out, size_t n);

#endif
