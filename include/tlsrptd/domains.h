/* domains.h: domain names and domain patterns, as the `domains` setting,
 * `domains_file` and the lines of `tokens_file` give them (docs/trust.md).
 *
 * A pattern is a name ("example.com": that name only) or "*.NAME" (every
 * name below NAME, at any depth, not NAME itself); a list may also hold "*"
 * (every domain) where the caller allows it. Names are compared as the
 * validator stores policy domains: lower case, without a trailing dot.
 * Matching a set of any size costs a few binary searches per domain.
 *
 * Pure functions and immutable sets: no I/O but reading domains_file, no
 * globals, no SQL. */
#ifndef TLSRPTD_DOMAINS_H
#define TLSRPTD_DOMAINS_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"

#define DOMAIN_MAX_LEN       253        /* octets of a domain name (RFC 1035) */
#define DOMAIN_FILE_MAX      (16 << 20) /* bytes of a domains_file */
#define DOMAIN_SET_MAX       1000000    /* patterns in one set */
#define DOMAIN_LIST_SEPARATE ", \t\r\n" /* what separates the entries of a list */

/* domain lower-cased and without its trailing dot into out (DOMAIN_MAX_LEN +
 * 1 bytes); false when it is empty or too long. Any bytes are kept as they
 * are otherwise: policy domains are names a sender wrote. */
bool domain_normalize(const char *domain, char *out);

/* Does pattern (normalized: "name", "*.name" or "*") match the normalized
 * domain? "" (a policy without a domain) matches only "*". */
bool domain_pattern_match(const char *pattern, const char *domain);

/* An immutable set of patterns. */
struct domain_set;

/* Parse list (entries separated by commas or white space; may be NULL) and
 * the file at path (one or more entries a line, '#' starts a comment; may be
 * NULL) into *out. allow_all: "*" is accepted (it matches every domain).
 * Each entry must be a pattern of LDH labels (letters, digits, '-', '_'; an
 * A-label for an internationalized name): otherwise TR_EUSAGE with err naming
 * the entry (and the file and line). An empty result is not an error. */
tr_err domain_set_parse(const char *list, const char *path, bool allow_all, struct domain_set **out,
                        char *err);
/* A set of the patterns of one line of text (as list above), for tokens_file;
 * where names the line in messages ("tokens.txt:3"). */
tr_err domain_set_from_words(const char *const *words, size_t n, bool allow_all, const char *where,
                             struct domain_set **out, char *err);
void domain_set_free(struct domain_set *s);

/* Does any pattern of s match domain (any letter case, a trailing dot)? */
bool domain_set_match(const struct domain_set *s, const char *domain);
/* True when s holds "*". */
bool domain_set_all(const struct domain_set *s);
/* The patterns, normalized ("*.example.org"), borrowed from s; *n gets their
 * number. */
const char *const *domain_set_patterns(const struct domain_set *s, size_t *n);

/* Is domain named in text[0..len) as a whole name (any letter case)? Not when
 * it is only part of a longer name: "example.com" is not named in
 * "mail.example.com", "my-example.com" or "example.com.au", but is in
 * "tlsrpt@example.com", "2026-11-03T00:00:00Z_example.com" and "Report Domain:
 * example.com.". */
bool domain_mentioned(const void *text, size_t len, const char *domain);

#endif
