/* tokens.c: tokens_file, the API's tenant tokens (see tokens.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/tokens.h"

struct token {
    char *secret;
    struct domain_set *domains;
};

struct tokens {
    struct token *v;
    size_t n;
};

bool tokens_same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) /* time depends on a's length only */
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0 && lb > 0;
}

void tokens_free(struct tokens *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].secret);
        domain_set_free(t->v[i].domains);
    }
    free(t->v);
    free(t);
}

size_t tokens_count(const struct tokens *t)
{
    return t->n;
}

static bool token_chars_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* One line's words: the token, then its domain patterns. */
static tr_err add_line(struct tokens *t, char **words, size_t n, const char *where, char *err)
{
    size_t len = strlen(words[0]);
    if (len < TOKEN_MIN_LEN || len > TOKEN_MAX_LEN || !token_chars_ok(words[0]))
        return tr_fail(err, TR_EUSAGE,
                       "%s: a token is %d to %d printable characters without spaces", where,
                       TOKEN_MIN_LEN, TOKEN_MAX_LEN);
    if (n < 2)
        return tr_fail(err, TR_EUSAGE, "%s: the token names no domain (\"*\" for every domain)",
                       where);
    if (n - 1 > TOKEN_MAX_DOMAINS)
        return tr_fail(err, TR_EUSAGE, "%s: more than %d domains for one token", where,
                       TOKEN_MAX_DOMAINS);
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].secret, words[0]) == 0)
            return tr_fail(err, TR_EUSAGE, "%s: the same token as an earlier line", where);
    if (t->n == TOKENS_MAX)
        return tr_fail(err, TR_EUSAGE, "%s: more than %d tokens", where, TOKENS_MAX);
    struct token tok = {strdup(words[0]), NULL};
    if (tok.secret == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    tr_err rc = domain_set_from_words((const char *const *)words + 1, n - 1, true, where,
                                      &tok.domains, err);
    if (rc != TR_OK) {
        free(tok.secret);
        return rc;
    }
    t->v[t->n++] = tok;
    return TR_OK;
}

tr_err tokens_load(const char *path, struct tokens **out, char *err)
{
    *out = NULL;
    struct buf b;
    buf_init(&b, TOKENS_FILE_MAX);
    char detail[TR_ERRLEN];
    tr_err rc = buf_read_file(&b, path, detail);
    if (rc != TR_OK) {
        buf_free(&b);
        if (rc == TR_ETOOBIG)
            return tr_fail(err, TR_EUSAGE, "tokens_file %s: larger than %d bytes", path,
                           TOKENS_FILE_MAX);
        return tr_fail(err, TR_EUSAGE, "tokens_file: %s", detail);
    }
    struct tokens *t = calloc(1, sizeof *t);
    size_t lines = 1;
    for (size_t i = 0; i < b.len; i++)
        lines += b.data[i] == '\n';
    char **words = calloc(TOKEN_MAX_DOMAINS + 2, sizeof *words);
    if (t == NULL || words == NULL ||
        (t->v = calloc(lines < TOKENS_MAX ? lines : TOKENS_MAX, sizeof *t->v)) == NULL) {
        free(words);
        tokens_free(t);
        buf_free(&b);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    if (memchr(b.data, 0, b.len))
        rc = tr_fail(err, TR_EUSAGE, "tokens_file %s: holds a NUL byte", path);
    char *p = (char *)b.data;
    for (size_t lineno = 1; rc == TR_OK && p && *p; lineno++) {
        char *line = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        p = nl ? nl + 1 : NULL;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        size_t n = 0;
        char *wsave = NULL;
        for (char *w = strtok_r(line, " \t\r", &wsave); w && n < TOKEN_MAX_DOMAINS + 2;
             w = strtok_r(NULL, " \t\r", &wsave))
            words[n++] = w;
        if (n == 0)
            continue;
        char where[300];
        snprintf(where, sizeof where, "%s:%zu", path, lineno);
        rc = add_line(t, words, n, where, err);
    }
    free(words);
    buf_free(&b);
    if (rc != TR_OK) {
        tokens_free(t);
        return rc;
    }
    *out = t;
    return TR_OK;
}

const struct domain_set *tokens_find(const struct tokens *t, const char *presented)
{
    const struct domain_set *found = NULL;
    for (size_t i = 0; i < t->n; i++) { /* every entry, whatever matched before */
        bool same = tokens_same_secret(presented, t->v[i].secret);
        found = same ? t->v[i].domains : found;
    }
    return found;
}
