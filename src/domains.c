/* domains.c: domain names, patterns and sets of patterns (see domains.h).
 *
 * A set keeps its exact names and the names under its "*." patterns in two
 * sorted arrays, so a domain is matched by one binary search for itself and
 * one for each name it sits below (a.b.example.org: b.example.org,
 * example.org, org). Knows nothing of reports, HTTP or storage. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/domains.h"

struct domain_set {
    char **patterns; /* normalized, sorted, unique; owned */
    size_t n, cap;
    const char **exact; /* the names among patterns, sorted */
    size_t nexact;
    const char **below; /* the NAMEs of the "*.NAME" patterns, sorted */
    size_t nbelow;
    bool all; /* "*" */
};

bool domain_normalize(const char *domain, char *out)
{
    size_t n = strlen(domain);
    if (n && domain[n - 1] == '.')
        n--;
    if (n == 0 || n > DOMAIN_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)domain[i]);
    out[n] = 0;
    return true;
}

bool domain_pattern_match(const char *pattern, const char *domain)
{
    if (strcmp(pattern, "*") == 0)
        return true;
    if (domain[0] == 0)
        return false;
    if (strncmp(pattern, "*.", 2) != 0)
        return strcmp(pattern, domain) == 0;
    const char *name = pattern + 2;
    size_t pn = strlen(name), dn = strlen(domain);
    return dn > pn + 1 && domain[dn - pn - 1] == '.' && strcmp(domain + dn - pn, name) == 0;
}

/* ---- parsing -------------------------------------------------------------------------------- */

/* word as a normalized pattern into out (DOMAIN_MAX_LEN + 3 bytes); false
 * with why set when it is not one. */
static bool parse_pattern(const char *word, bool allow_all, char *out, const char **why)
{
    if (strcmp(word, "*") == 0) {
        *why = "\"*\" (every domain) is allowed in tokens_file only";
        if (!allow_all)
            return false;
        memcpy(out, "*", 2);
        return true;
    }
    size_t k = 0;
    const char *name = word;
    if (strncmp(word, "*.", 2) == 0) {
        out[k++] = '*';
        out[k++] = '.';
        name += 2;
    }
    char norm[DOMAIN_MAX_LEN + 1];
    *why = "not a domain name (1 to 253 octets)";
    if (!domain_normalize(name, norm))
        return false;
    size_t label = 0;
    for (const char *p = norm;; p++) {
        if (*p == '.' || *p == 0) {
            *why = label == 0 ? "an empty label" : "a label longer than 63 octets";
            if (label == 0 || label > 63)
                return false;
            label = 0;
            if (*p == 0)
                break;
            continue;
        }
        *why = "only letters, digits, '-' and '_' in a label (give an internationalized name "
               "as its A-label, xn--...)";
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
        label++;
    }
    memcpy(out + k, norm, strlen(norm) + 1);
    return true;
}

static tr_err set_add(struct domain_set *s, const char *word, bool allow_all, const char *where,
                      char *err)
{
    char pat[DOMAIN_MAX_LEN + 3];
    const char *why = NULL;
    if (strlen(word) > DOMAIN_MAX_LEN + 2 || !parse_pattern(word, allow_all, pat, &why))
        return tr_fail(err, TR_EUSAGE, "%s: '%.80s': %s", where, word,
                       why ? why : "longer than a domain name");
    if (s->n == DOMAIN_SET_MAX)
        return tr_fail(err, TR_EUSAGE, "%s: more than %d domains", where, DOMAIN_SET_MAX);
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->patterns, cap * sizeof *v);
        if (v == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        s->patterns = v;
        s->cap = cap;
    }
    if ((s->patterns[s->n] = strdup(pat)) == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    s->n++;
    return TR_OK;
}

/* Every entry of text (separated by DOMAIN_LIST_SEPARATE; '#' to the end of
 * a line is a comment when comments is set) into s; where names the input. */
static tr_err add_text(struct domain_set *s, char *text, bool comments, bool allow_all,
                       const char *where, char *err)
{
    unsigned line = 1;
    char *p = text;
    while (*p) {
        if (*p == '\n') {
            line++;
            p++;
            continue;
        }
        if (strchr(DOMAIN_LIST_SEPARATE, *p)) {
            p++;
            continue;
        }
        if (comments && *p == '#') {
            p += strcspn(p, "\n");
            continue;
        }
        size_t n = strcspn(p, comments ? DOMAIN_LIST_SEPARATE "#" : DOMAIN_LIST_SEPARATE);
        char save = p[n];
        p[n] = 0;
        char place[300];
        if (comments)
            snprintf(place, sizeof place, "%s:%u", where, line);
        else
            snprintf(place, sizeof place, "%s", where);
        tr_err rc = set_add(s, p, allow_all, place, err);
        p[n] = save;
        if (rc != TR_OK)
            return rc;
        p += n;
    }
    return TR_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort, drop repeats, and index the exact names and the "*." patterns. */
static tr_err set_finish(struct domain_set *s, char *err)
{
    if (s->n)
        qsort(s->patterns, s->n, sizeof *s->patterns, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (k && strcmp(s->patterns[k - 1], s->patterns[i]) == 0) {
            free(s->patterns[i]);
            continue;
        }
        s->patterns[k++] = s->patterns[i];
    }
    s->n = k;
    s->exact = calloc(k ? k : 1, sizeof *s->exact);
    s->below = calloc(k ? k : 1, sizeof *s->below);
    if (s->exact == NULL || s->below == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < k; i++) {
        const char *p = s->patterns[i];
        if (strcmp(p, "*") == 0)
            s->all = true;
        else if (strncmp(p, "*.", 2) == 0)
            s->below[s->nbelow++] = p + 2;
        else
            s->exact[s->nexact++] = p;
    }
    /* the "*." patterns sort among themselves by their NAME: still in order */
    return TR_OK;
}

/* The end of making a set: rc is how filling s went. On success *out owns
 * s, sorted and indexed; otherwise s is freed. */
static tr_err set_done(struct domain_set *s, tr_err rc, struct domain_set **out, char *err)
{
    if (rc == TR_OK)
        rc = set_finish(s, err);
    if (rc != TR_OK) {
        domain_set_free(s);
        return rc;
    }
    *out = s;
    return TR_OK;
}

/* The entries of domains_file into s. */
static tr_err add_file(struct domain_set *s, const char *path, bool allow_all, char *err)
{
    struct buf b;
    buf_init(&b, DOMAIN_FILE_MAX);
    char detail[TR_ERRLEN];
    tr_err rc = buf_read_file(&b, path, detail);
    if (rc == TR_ETOOBIG)
        rc =
            tr_fail(err, TR_EUSAGE, "domains_file %s: larger than %d bytes", path, DOMAIN_FILE_MAX);
    else if (rc != TR_OK)
        rc = tr_fail(err, TR_EUSAGE, "domains_file: %s", detail);
    else if (memchr(b.data, 0, b.len))
        rc = tr_fail(err, TR_EUSAGE, "domains_file %s: holds a NUL byte", path);
    else if (b.len)
        rc = add_text(s, (char *)b.data, true, allow_all, path, err);
    buf_free(&b);
    return rc;
}

tr_err domain_set_parse(const char *list, const char *path, bool allow_all, struct domain_set **out,
                        char *err)
{
    *out = NULL;
    struct domain_set *s = calloc(1, sizeof *s);
    if (s == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    tr_err rc = TR_OK;
    if (list) {
        char *copy = strdup(list);
        rc = copy ? add_text(s, copy, false, allow_all, "domains", err)
                  : tr_fail(err, TR_ENOMEM, "out of memory");
        free(copy);
    }
    if (rc == TR_OK && path)
        rc = add_file(s, path, allow_all, err);
    return set_done(s, rc, out, err);
}

tr_err domain_set_from_words(const char *const *words, size_t n, bool allow_all, const char *where,
                             struct domain_set **out, char *err)
{
    *out = NULL;
    struct domain_set *s = calloc(1, sizeof *s);
    if (s == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    tr_err rc = TR_OK;
    for (size_t i = 0; i < n && rc == TR_OK; i++)
        rc = set_add(s, words[i], allow_all, where, err);
    return set_done(s, rc, out, err);
}

void domain_set_free(struct domain_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->patterns[i]);
    free(s->patterns);
    free(s->exact);
    free(s->below);
    free(s);
}

/* ---- matching ------------------------------------------------------------------------------- */

static bool in_sorted(const char *const *v, size_t n, const char *key)
{
    return n && bsearch(&key, v, n, sizeof *v, cmp_str) != NULL;
}

bool domain_set_match(const struct domain_set *s, const char *domain)
{
    if (s->all)
        return true;
    char d[DOMAIN_MAX_LEN + 1];
    if (!domain_normalize(domain, d))
        return false;
    if (in_sorted(s->exact, s->nexact, d))
        return true;
    for (const char *p = strchr(d, '.'); p; p = strchr(p + 1, '.'))
        if (in_sorted(s->below, s->nbelow, p + 1))
            return true;
    return false;
}

bool domain_set_all(const struct domain_set *s)
{
    return s->all;
}

const char *const *domain_set_patterns(const struct domain_set *s, size_t *n)
{
    *n = s->n;
    return (const char *const *)s->patterns;
}

/* ---- mentions ------------------------------------------------------------------------------- */

static bool name_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c >= 0x80;
}

bool domain_mentioned(const void *text, size_t len, const char *domain)
{
    const unsigned char *t = text;
    size_t dn = strlen(domain);
    if (dn == 0 || dn > len)
        return false;
    for (size_t i = 0; i + dn <= len; i++) {
        if (tolower(t[i]) != tolower((unsigned char)domain[0]))
            continue;
        size_t k = 1;
        while (k < dn && tolower(t[i + k]) == tolower((unsigned char)domain[k]))
            k++;
        if (k < dn)
            continue;
        /* a whole name: not the tail of a longer one, not the head of one; '_' before
         * it is a separator (Google's report-ids end in "Z_example.com") */
        if (i > 0 && ((name_char(t[i - 1]) && t[i - 1] != '_') || t[i - 1] == '.'))
            continue;
        size_t e = i + dn;
        if (e < len && name_char(t[e]))
            continue;
        if (e + 1 < len && t[e] == '.' && name_char(t[e + 1]))
            continue;
        return true;
    }
    return false;
}
