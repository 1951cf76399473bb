/* tokens.h: the API's tenant tokens (tokens_file, docs/trust.md). Each line
 * "TOKEN DOMAIN..." gives a bearer token and the domain patterns it may see
 * (domains.h: "example.com", "*.example.org"; "*" sees every domain). A
 * presented token is compared with every entry in full, in time that depends
 * on its own length only, so the answer's timing tells nothing of the
 * tokens. Pure: reads the file it is given, keeps no globals. */
#ifndef TLSRPTD_TOKENS_H
#define TLSRPTD_TOKENS_H

#include <stddef.h>
#include "tlsrptd/domains.h"
#include "tlsrptd/err.h"

#define TOKENS_FILE_MAX   (1 << 20) /* bytes of a tokens_file */
#define TOKENS_MAX        10000     /* tokens in one file */
#define TOKEN_MIN_LEN     16        /* a shorter token is refused: too easy to guess */
#define TOKEN_MAX_LEN     256
#define TOKEN_MAX_DOMAINS 1000 /* domain patterns of one token */

struct tokens;

/* Read path. A bad line (a short token, a token twice, no domain, a bad
 * pattern) is TR_EUSAGE naming the file and line, never the token. */
tr_err tokens_load(const char *path, struct tokens **out, char *err);
void tokens_free(struct tokens *t);
size_t tokens_count(const struct tokens *t);

/* The domains of the presented token, borrowed from t, or NULL when it is
 * none of t's tokens. */
const struct domain_set *tokens_find(const struct tokens *t, const char *presented);

/* a and b equal, in time that depends on a's length only (a: the presented
 * secret). An empty b never matches. */
bool tokens_same_secret(const char *a, const char *b);

#endif
