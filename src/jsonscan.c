/* jsonscan.c: count and measure a JSON text before a parser builds it (see
 * jsonscan.h for the contract).
 *
 * A stack of frames, one per open array or object, each knowing what it is
 * in a report (the policies array, a policy, its failure-details, ...), so
 * each array is held to its own bound. Keys are compared after undoing JSON
 * escapes ("polic\u0069es" is "policies" to jansson, so it must be here too).
 * Policy domains are compared as the validator stores them: ASCII letters in
 * lower case, one trailing dot dropped. The scan is incremental: it keeps
 * offsets, not pointers, into a text that may grow and move between calls
 * (an inflate buffer), and stops before a string or number that has not
 * wholly arrived, unless it is already too long. Knows nothing of jansson. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/jsondoc.h"
#include "tlsrptd/jsonscan.h"

enum role {
    R_OTHER,
    R_ROOT,        /* the top-level object */
    R_POLICIES,    /* its "policies" array */
    R_POLICY_ITEM, /* an element of it */
    R_POLICY,      /* the item's "policy" object */
    R_FAILURES,    /* the item's "failure-details" array */
    R_PSTRINGS,    /* the policy's "policy-string" array */
    R_MXHOSTS      /* the policy's "mx-host" array */
};

#define KEYMAX 24 /* longest key a role depends on ("total-failure-session-count" is not one) */

struct frame {
    unsigned char kind; /* '{' or '[' */
    enum role role;
    bool want_key;         /* object: the next string is a member's key */
    size_t count;          /* members (object) or elements (array) so far */
    size_t key, keylen;    /* object: the current member's key (offset, length as written) */
    char name[KEYMAX + 1]; /* the key unescaped, "" when longer or not ASCII */
};

struct domain {
    uint32_t hash;
    size_t off, len; /* as written, without a trailing dot */
};

struct jsonscan {
    const unsigned char *s; /* the text so far (for this call) */
    size_t n, i;            /* its length; where the scan is */
    bool final;             /* no more text will come */
    bool done;              /* the rest is not JSON: the parser stops there too */
    tr_err rc;              /* once over a bound, over for good */
    char why[TR_ERRLEN];
    struct jsonscan_limits lim;
    struct frame *stack;
    size_t depth;
    struct domain *domains;
    size_t ndomains;
    struct jsonscan_stats st;
};

struct jsonscan_limits jsonscan_effective(const struct jsonscan_limits *lim)
{
    struct jsonscan_limits l = {0};
    if (lim)
        l = *lim;
    const struct {
        size_t *field;
        size_t def;
    } defaults[] = {
        {&l.max_depth, JSONSCAN_DEFAULT_MAX_DEPTH},
        {&l.max_string, JSONSCAN_DEFAULT_MAX_STRING},
        {&l.max_values, JSONSCAN_DEFAULT_MAX_VALUES},
        {&l.max_policies, JSONSCAN_DEFAULT_MAX_POLICIES},
        {&l.max_failure_details, JSONSCAN_DEFAULT_MAX_FAILURE_DETAILS},
        {&l.max_policy_strings, JSONSCAN_DEFAULT_MAX_POLICY_STRINGS},
        {&l.max_policy_domains, JSONSCAN_DEFAULT_MAX_POLICY_DOMAINS},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (*defaults[i].field == 0)
            *defaults[i].field = defaults[i].def;
    return l;
}

/* ---- where we are --------------------------------------------------------------------------- */

/* The JSON path of the open frames; with inside, also the current position in
 * the innermost one (the member or element being read). */
static void set_path(struct jsonscan *sc, bool inside)
{
    char *out = sc->st.path;
    size_t n = sizeof sc->st.path, len = 0;
    out[0] = 0;
    size_t levels = inside ? sc->depth : sc->depth ? sc->depth - 1 : 0;
    for (size_t k = 0; k < levels && len < n - 1; k++) {
        const struct frame *f = &sc->stack[k];
        int w = 0;
        if (f->kind == '{' && f->count > 0)
            w = snprintf(out + len, n - len, "%s%.*s", len ? "." : "",
                         (int)(f->keylen > 64 ? 64 : f->keylen), (const char *)sc->s + f->key);
        else if (f->kind == '[' && f->count > 0)
            w = snprintf(out + len, n - len, "[%zu]", f->count - 1);
        if (w > 0)
            len = (size_t)w >= n - len ? n - 1 : len + (size_t)w;
    }
}

/* Over a bound: the path is set, why says which bound (a printf format), and
 * the scan is over for good. */
#define OVER(sc, inside, ...)                                                                      \
    (set_path((sc), (inside)), (void)snprintf((sc)->why, sizeof(sc)->why, __VA_ARGS__),            \
     (sc)->rc = TR_ETOOBIG)

/* ---- keys ----------------------------------------------------------------------------------- */

/* Unescape a short ASCII key into out (KEYMAX + 1 bytes); "" when it is longer
 * or holds anything but ASCII, as no key a role depends on does. */
static void key_name(const unsigned char *k, size_t len, char *out)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned c = k[i];
        if (c == '\\' && i + 1 < len) {
            c = k[++i];
            if (c == 'u' && i + 4 < len) {
                int h[4] = {jd_hex_digit(k[i + 1]), jd_hex_digit(k[i + 2]), jd_hex_digit(k[i + 3]),
                            jd_hex_digit(k[i + 4])};
                if (h[0] < 0 || h[1] < 0 || h[2] < 0 || h[3] < 0)
                    return;
                c = (unsigned)(h[0] << 12 | h[1] << 8 | h[2] << 4 | h[3]);
                i += 4;
            } else if (c != '"' && c != '\\' && c != '/') {
                return; /* \n, \t and the like: in none of our keys */
            }
        }
        if (c == 0 || c >= 0x80 || o == KEYMAX) {
            out[0] = 0;
            return;
        }
        out[o++] = (char)c;
    }
    out[o] = 0;
}

static enum role child_role(const struct jsonscan *sc, unsigned char kind)
{
    if (sc->depth == 0)
        return kind == '{' ? R_ROOT : R_OTHER;
    const struct frame *p = &sc->stack[sc->depth - 1];
    const char *k = p->kind == '{' ? p->name : "";
    switch (p->role) {
    case R_ROOT:
        return kind == '[' && strcmp(k, "policies") == 0 ? R_POLICIES : R_OTHER;
    case R_POLICIES:
        return kind == '{' ? R_POLICY_ITEM : R_OTHER;
    case R_POLICY_ITEM:
        if (kind == '{' && strcmp(k, "policy") == 0)
            return R_POLICY;
        return kind == '[' && strcmp(k, "failure-details") == 0 ? R_FAILURES : R_OTHER;
    case R_POLICY:
        if (kind == '[' && strcmp(k, "policy-string") == 0)
            return R_PSTRINGS;
        return kind == '[' && strcmp(k, "mx-host") == 0 ? R_MXHOSTS : R_OTHER;
    default:
        return R_OTHER;
    }
}

/* ---- policy domains ------------------------------------------------------------------------- */

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static tr_err add_domain(struct jsonscan *sc, size_t off, size_t len)
{
    const unsigned char *s = sc->s + off;
    if (len > 1 && s[len - 1] == '.')
        len--;
    if (len == 0)
        return TR_OK;         /* empty: the validator treats it as missing */
    uint32_t h = 2166136261u; /* FNV-1a of the lower-cased text */
    for (size_t i = 0; i < len; i++)
        h = (h ^ lower(s[i])) * 16777619u;
    for (size_t d = 0; d < sc->ndomains; d++) {
        const struct domain *o = &sc->domains[d];
        if (o->hash != h || o->len != len)
            continue;
        size_t i = 0;
        while (i < len && lower(sc->s[o->off + i]) == lower(s[i]))
            i++;
        if (i == len)
            return TR_OK;
    }
    if (sc->ndomains == sc->lim.max_policy_domains)
        return OVER(sc, true,
                    "more than %zu distinct policy domains in one report "
                    "(max_policy_domains)",
                    sc->lim.max_policy_domains);
    if (sc->domains == NULL &&
        (sc->domains = calloc(sc->lim.max_policy_domains, sizeof *sc->domains)) == NULL) {
        snprintf(sc->why, sizeof sc->why, "out of memory");
        return sc->rc = TR_ENOMEM;
    }
    sc->domains[sc->ndomains++] = (struct domain){h, off, len};
    return TR_OK;
}

/* ---- values --------------------------------------------------------------------------------- */

/* A value starts in the innermost frame (or at the top level). */
static tr_err value(struct jsonscan *sc)
{
    if (++sc->st.values > sc->lim.max_values)
        return OVER(sc, false, "more than %zu values in one document (max_json_values)",
                    sc->lim.max_values);
    if (sc->depth == 0)
        return TR_OK;
    struct frame *f = &sc->stack[sc->depth - 1];
    if (f->kind != '[')
        return TR_OK;
    f->count++;
    switch (f->role) {
    case R_POLICIES:
        if (f->count > sc->lim.max_policies)
            return OVER(sc, false, "more than %zu policies (max_policies)", sc->lim.max_policies);
        break;
    case R_FAILURES:
        if (f->count > sc->lim.max_failure_details)
            return OVER(sc, false, "more than %zu entries (max_failure_details)",
                        sc->lim.max_failure_details);
        break;
    case R_PSTRINGS:
    case R_MXHOSTS:
        if (f->count > sc->lim.max_policy_strings)
            return OVER(sc, false, "more than %zu entries (max_policy_strings)",
                        sc->lim.max_policy_strings);
        break;
    default:
        if (f->count > JSONSCAN_MAX_ARRAY)
            return OVER(sc, false, "an array of more than %d elements (a fixed limit)",
                        JSONSCAN_MAX_ARRAY);
        break;
    }
    return TR_OK;
}

/* A string (a key or a value), once it has wholly arrived or is too long. */
static tr_err string(struct jsonscan *sc)
{
    const unsigned char *s = sc->s;
    size_t start = sc->i + 1, j = start, max = sc->lim.max_string;
    while (j < sc->n && s[j] != '"' && j - start <= max)
        j += s[j] == '\\' ? 2 : 1;
    struct frame *f = sc->depth ? &sc->stack[sc->depth - 1] : NULL;
    bool is_key = f && f->kind == '{' && f->want_key;
    if (j - start > max) {
        if (is_key) /* name the object; the key itself is no path */
            return OVER(sc, false, "a key longer than %zu bytes (max_json_string)", max);
        tr_err e = value(sc);
        return e != TR_OK ? e
                          : OVER(sc, true, "a string longer than %zu bytes (max_json_string)", max);
    }
    if (j >= sc->n) { /* not all here */
        if (sc->final)
            sc->done = true; /* unterminated: the parser says so */
        return TR_OK;
    }
    size_t len = j - start;
    sc->st.string_bytes += len;
    sc->i = j + 1;
    if (is_key) {
        f->want_key = false;
        f->key = start;
        f->keylen = len;
        if (f->role == R_ROOT || f->role == R_POLICY_ITEM || f->role == R_POLICY)
            key_name(s + start, len, f->name); /* the objects whose keys give roles */
        else
            f->name[0] = 0;
        if (++f->count > JSONSCAN_MAX_KEYS)
            return OVER(sc, false, "an object with more than %d keys (a fixed limit)",
                        JSONSCAN_MAX_KEYS);
        return TR_OK;
    }
    tr_err e = value(sc);
    if (e == TR_OK && f && f->role == R_POLICY && f->kind == '{' &&
        strcmp(f->name, "policy-domain") == 0)
        e = add_domain(sc, start, len);
    return e;
}

static bool token_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '+' || c == '.';
}

/* A number or a literal (true, false, null), once it has wholly arrived or is too long. */
static tr_err token(struct jsonscan *sc)
{
    size_t j = sc->i;
    while (j < sc->n && token_byte(sc->s[j]) && j - sc->i <= sc->lim.max_string)
        j++;
    if (j - sc->i > sc->lim.max_string) {
        tr_err e = value(sc);
        return e != TR_OK ? e
                          : OVER(sc, true, "a number longer than %zu bytes (max_json_string)",
                                 sc->lim.max_string);
    }
    if (j >= sc->n && !sc->final)
        return TR_OK; /* more of it may come */
    sc->i = j;
    return value(sc);
}

static tr_err open_container(struct jsonscan *sc, unsigned char kind)
{
    tr_err e = value(sc);
    if (e != TR_OK)
        return e;
    if (sc->depth == sc->lim.max_depth) {
        /* named by its offset: the path would be as long as the nesting */
        e = OVER(sc, false, "JSON nested deeper than %zu levels (at byte %zu)", sc->lim.max_depth,
                 sc->i);
        sc->st.path[0] = 0;
        return e;
    }
    enum role role = child_role(sc, kind);
    struct frame *f = &sc->stack[sc->depth++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->role = role;
    f->want_key = kind == '{';
    sc->i++;
    return TR_OK;
}

struct jsonscan *jsonscan_new(const struct jsonscan_limits *lim)
{
    struct jsonscan *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return NULL;
    sc->lim = jsonscan_effective(lim);
    if ((sc->stack = malloc(sc->lim.max_depth * sizeof *sc->stack)) == NULL) {
        free(sc);
        return NULL;
    }
    return sc;
}

void jsonscan_free(struct jsonscan *sc)
{
    if (sc == NULL)
        return;
    free(sc->stack);
    free(sc->domains);
    free(sc);
}

const struct jsonscan_stats *jsonscan_stats(const struct jsonscan *sc)
{
    return &sc->st;
}

tr_err jsonscan_feed(struct jsonscan *sc, const void *text, size_t n, bool final, char *err)
{
    sc->s = text;
    sc->n = n;
    sc->final = final;
    if (sc->i == 0 && n >= 3 && sc->s[0] == 0xef && sc->s[1] == 0xbb && sc->s[2] == 0xbf)
        sc->i = 3; /* a byte order mark */
    while (sc->rc == TR_OK && !sc->done && sc->i < n) {
        size_t at = sc->i;
        unsigned char c = sc->s[sc->i];
        switch (c) {
        case ' ':
        case '\t':
        case '\r':
        case '\n':
        case ':':
            sc->i++;
            break;
        case ',':
            if (sc->depth && sc->stack[sc->depth - 1].kind == '{')
                sc->stack[sc->depth - 1].want_key = true;
            sc->i++;
            break;
        case '"':
            string(sc);
            break;
        case '{':
        case '[':
            open_container(sc, c);
            break;
        case '}':
        case ']':
            if (sc->depth == 0 || sc->stack[sc->depth - 1].kind != (c == '}' ? '{' : '[')) {
                sc->done = true; /* not JSON from here on: the parser stops here too */
                break;
            }
            sc->depth--;
            sc->i++;
            break;
        default:
            if (!token_byte(c))
                sc->done = true;
            else
                token(sc);
            break;
        }
        if (sc->i == at && sc->rc == TR_OK && !sc->done)
            break; /* a string or number still arriving */
    }
    if (sc->rc != TR_OK && err)
        snprintf(err, TR_ERRLEN, "%s", sc->why);
    return sc->rc;
}

tr_err jsonscan_check(const void *text, size_t n, const struct jsonscan_limits *lim,
                      struct jsonscan_stats *stats, char *err)
{
    struct jsonscan *sc = jsonscan_new(lim);
    if (sc == NULL) {
        if (err)
            snprintf(err, TR_ERRLEN, "out of memory");
        return TR_ENOMEM;
    }
    tr_err rc = jsonscan_feed(sc, text, n, true, err);
    if (stats)
        *stats = sc->st;
    jsonscan_free(sc);
    return rc;
}
