/* jsondoc.c: parse a JSON text into a read-only document held in one arena
 * (arena.h; jsondoc.h says what it accepts and why it exists).
 *
 * A recursive-descent parser over the bytes. Values are first pushed on one
 * growing stack; when an array or object closes, its elements are copied into
 * the arena in one piece and popped, so every array and object ends up as one
 * contiguous run. Strings are copied (unescaped where they hold escapes) into
 * the arena with a NUL after them. Nesting stops at JSONDOC_MAX_DEPTH, as
 * jansson's parser does. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/arena.h"
#include "tlsrptd/jsondoc.h"
#include "tlsrptd/utf8.h"

#define JSONDOC_MAX_DEPTH 2048 /* jansson's own limit */

struct jsondoc {
    struct arena arena; /* every value, member run and string */
    struct jd_value root;
};

void jsondoc_free(struct jsondoc *doc)
{
    if (doc == NULL)
        return;
    arena_clear(&doc->arena);
    free(doc);
}

const struct jd_value *jsondoc_root(const struct jsondoc *doc)
{
    return &doc->root;
}

const struct jd_value *jd_get(const struct jd_value *obj, const char *key)
{
    if (!jd_is(obj, JD_OBJECT))
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->len; i++) {
        const struct jd_member *m = &obj->u.members[i];
        if (m->keylen == n && memcmp(m->key, key, n) == 0)
            return &m->value;
    }
    return NULL;
}

/* ---- parser --------------------------------------------------------------------------------- */

struct parser {
    const unsigned char *p, *end;
    struct jsondoc *doc;
    struct jd_member *stack; /* elements of the arrays and objects still open */
    size_t top, cap;
    size_t depth;
    tr_err rc; /* TR_EPARSE or TR_ENOMEM once failed */
};

static bool fail(struct parser *ps, tr_err rc)
{
    if (ps->rc == TR_OK)
        ps->rc = rc;
    return false;
}

static void skip_space(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static struct jd_member *push(struct parser *ps)
{
    if (ps->top == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        struct jd_member *s = realloc(ps->stack, cap * sizeof *s);
        if (s == NULL) {
            fail(ps, TR_ENOMEM);
            return NULL;
        }
        ps->stack = s;
        ps->cap = cap;
    }
    return &ps->stack[ps->top++];
}

int jd_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller); -1 when not. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = jd_hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(unsigned char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xc0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (c & 0x3f));
    return 4;
}

/* A string whose opening quote is at ps->p: into the arena, NUL-terminated. */
static bool parse_string(struct parser *ps, const char **out, size_t *outlen)
{
    const unsigned char *s = ++ps->p, *q = s;
    bool plain = true; /* no escape: the bytes are the value */
    for (;;) {
        if (q == ps->end)
            return fail(ps, TR_EPARSE);
        unsigned char c = *q;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(ps, TR_EPARSE);
        if (c == '\\') {
            plain = false;
            if (q + 1 == ps->end)
                return fail(ps, TR_EPARSE);
            q += 2; /* what the escape is, is checked while decoding */
        } else if (c >= 0x80) {
            size_t n = utf8_sequence(q, (size_t)(ps->end - q));
            if (n == 0)
                return fail(ps, TR_EPARSE);
            q += n;
        } else {
            q++;
        }
    }
    size_t span = (size_t)(q - s); /* the value is at most this long: escapes only shrink */
    unsigned char *o = arena_alloc(&ps->doc->arena, span + 1);
    if (o == NULL)
        return fail(ps, TR_ENOMEM);
    size_t n = 0;
    if (plain) {
        memcpy(o, s, span);
        n = span;
    } else {
        for (const unsigned char *r = s; r < q;) {
            if (*r != '\\') {
                o[n++] = *r++;
                continue;
            }
            r++;
            unsigned char e = *r++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                o[n++] = e;
                break;
            case 'b':
                o[n++] = '\b';
                break;
            case 'f':
                o[n++] = '\f';
                break;
            case 'n':
                o[n++] = '\n';
                break;
            case 'r':
                o[n++] = '\r';
                break;
            case 't':
                o[n++] = '\t';
                break;
            case 'u': {
                long c = q - r >= 4 ? hex4(r) : -1;
                if (c <= 0 || (c >= 0xdc00 && c <= 0xdfff))
                    return fail(ps, TR_EPARSE); /* not hex, U+0000 or a lone low surrogate */
                r += 4;
                if (c >= 0xd800 && c <= 0xdbff) {
                    long lo = q - r >= 6 && r[0] == '\\' && r[1] == 'u' ? hex4(r + 2) : -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return fail(ps, TR_EPARSE);
                    c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                    r += 6;
                }
                n += put_utf8(o + n, (uint32_t)c);
                break;
            }
            default:
                return fail(ps, TR_EPARSE);
            }
        }
    }
    o[n] = 0;
    *out = (const char *)o;
    *outlen = n;
    ps->p = q + 1;
    return true;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* A number: an integer when it has neither fraction nor exponent. */
static bool parse_number(struct parser *ps, struct jd_value *v)
{
    const unsigned char *s = ps->p, *p = s, *end = ps->end;
    bool negative = p < end && *p == '-';
    if (negative)
        p++;
    if (!is_digit(p, end))
        return fail(ps, TR_EPARSE);
    if (*p == '0') {
        p++;
        if (is_digit(p, end))
            return fail(ps, TR_EPARSE); /* a leading zero */
    } else {
        while (is_digit(p, end))
            p++;
    }
    bool real = false;
    if (p < end && *p == '.') {
        real = true;
        p++;
        if (!is_digit(p, end))
            return fail(ps, TR_EPARSE);
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return fail(ps, TR_EPARSE);
        while (is_digit(p, end))
            p++;
    }
    ps->p = p;
    if (!real) {
        unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX, x = 0;
        for (const unsigned char *d = s + negative; d < p; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (x > (limit - digit) / 10)
                return fail(ps, TR_EPARSE); /* past a long long, as jansson refuses it */
            x = x * 10 + digit;
        }
        v->type = JD_INTEGER;
        v->u.integer = negative
                           ? (x == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)x)
                           : (long long)x;
        return true;
    }
    size_t n = (size_t)(p - s);
    char small[64];
    char *text = n < sizeof small ? small : malloc(n + 1);
    if (text == NULL)
        return fail(ps, TR_ENOMEM);
    memcpy(text, s, n);
    text[n] = 0;
    errno = 0;
    double x = strtod(text, NULL);
    bool overflow = errno == ERANGE && (x == HUGE_VAL || x == -HUGE_VAL);
    if (text != small)
        free(text);
    if (overflow)
        return fail(ps, TR_EPARSE);
    v->type = JD_REAL;
    v->u.real = x;
    return true;
}

static bool literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, TR_EPARSE);
    ps->p += n;
    return true;
}

static bool parse_value(struct parser *ps, struct jd_value *v);

/* The elements pushed since base, copied into the arena as one run. */
static void *close_run(struct parser *ps, size_t base, bool members)
{
    size_t n = ps->top - base;
    if (n == 0)
        return NULL;
    void *run;
    if (members) {
        struct jd_member *m = arena_alloc(&ps->doc->arena, n * sizeof *m);
        if (m != NULL)
            memcpy(m, ps->stack + base, n * sizeof *m);
        run = m;
    } else {
        struct jd_value *items = arena_alloc(&ps->doc->arena, n * sizeof *items);
        if (items != NULL)
            for (size_t i = 0; i < n; i++)
                items[i] = ps->stack[base + i].value;
        run = items;
    }
    if (run == NULL)
        fail(ps, TR_ENOMEM);
    ps->top = base;
    return run;
}

/* A member's key and its colon, in the object whose members were pushed
 * since base; no key twice (I-JSON). */
static bool parse_key(struct parser *ps, size_t base, const char **key, size_t *keylen)
{
    skip_space(ps);
    if (ps->p == ps->end || *ps->p != '"')
        return fail(ps, TR_EPARSE);
    if (!parse_string(ps, key, keylen))
        return false;
    for (size_t i = base; i < ps->top; i++)
        if (ps->stack[i].keylen == *keylen && memcmp(ps->stack[i].key, *key, *keylen) == 0)
            return fail(ps, TR_EPARSE);
    skip_space(ps);
    if (ps->p == ps->end || *ps->p != ':')
        return fail(ps, TR_EPARSE);
    ps->p++;
    return true;
}

/* An array or (object) an object whose opening bracket is at ps->p. */
static bool parse_container(struct parser *ps, struct jd_value *v, bool object)
{
    unsigned char close = object ? '}' : ']';
    size_t base = ps->top;
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            const char *key = NULL;
            size_t keylen = 0;
            if (object && !parse_key(ps, base, &key, &keylen))
                return false;
            struct jd_member *m = push(ps);
            if (m == NULL)
                return false;
            m->key = key;
            m->keylen = keylen;
            struct jd_value value;
            if (!parse_value(ps, &value))
                return false;
            ps->stack[ps->top - 1].value = value; /* the stack may have moved */
            skip_space(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            return fail(ps, TR_EPARSE);
        }
    }
    v->type = object ? JD_OBJECT : JD_ARRAY;
    v->len = ps->top - base;
    if (object)
        v->u.members = close_run(ps, base, true);
    else
        v->u.items = close_run(ps, base, false);
    return ps->rc == TR_OK;
}

static bool parse_scalar(struct parser *ps, struct jd_value *v)
{
    switch (*ps->p) {
    case '"':
        v->type = JD_STRING;
        return parse_string(ps, &v->u.str, &v->len);
    case 't':
        v->type = JD_TRUE;
        return literal(ps, "true", 4);
    case 'f':
        v->type = JD_FALSE;
        return literal(ps, "false", 5);
    case 'n':
        v->type = JD_NULL;
        return literal(ps, "null", 4);
    default:
        return parse_number(ps, v);
    }
}

/* Every value counts towards the depth, a scalar too, as in jansson. */
static bool parse_value(struct parser *ps, struct jd_value *v)
{
    skip_space(ps);
    if (ps->p == ps->end)
        return fail(ps, TR_EPARSE);
    if (++ps->depth > JSONDOC_MAX_DEPTH)
        return fail(ps, TR_EPARSE);
    v->len = 0;
    bool ok = *ps->p == '{' || *ps->p == '[' ? parse_container(ps, v, *ps->p == '{')
                                             : parse_scalar(ps, v);
    ps->depth--;
    return ok;
}

tr_err jsondoc_parse(const char *text, size_t len, struct jsondoc **out, size_t *where)
{
    *out = NULL;
    struct jsondoc *doc = calloc(1, sizeof *doc);
    if (doc == NULL)
        return TR_ENOMEM;
    struct parser ps = {
        (const unsigned char *)text, (const unsigned char *)text + len, doc, NULL, 0, 0, 0, TR_OK};
    if (parse_value(&ps, &doc->root)) {
        skip_space(&ps);
        if (ps.p != ps.end)
            fail(&ps, TR_EPARSE); /* something after the value */
    }
    free(ps.stack);
    if (where != NULL)
        *where = (size_t)(ps.p - (const unsigned char *)text);
    if (ps.rc != TR_OK) {
        jsondoc_free(doc);
        return ps.rc;
    }
    *out = doc;
    return TR_OK;
}

/* ---- comparing ------------------------------------------------------------------------------ */

bool jd_equal(const struct jd_value *a, const struct jd_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JD_INTEGER:
        return a->u.integer == b->u.integer;
    case JD_REAL:
        return memcmp(&a->u.real, &b->u.real, sizeof a->u.real) == 0; /* -0.0 is not 0.0 */
    case JD_STRING:
        return a->len == b->len && memcmp(a->u.str, b->u.str, a->len) == 0 && a->u.str[a->len] == 0;
    case JD_ARRAY:
        if (a->len != b->len)
            return false;
        for (size_t i = 0; i < a->len; i++)
            if (!jd_equal(&a->u.items[i], &b->u.items[i]))
                return false;
        return true;
    case JD_OBJECT:
        if (a->len != b->len)
            return false;
        for (size_t i = 0; i < a->len; i++) {
            const struct jd_member *x = &a->u.members[i], *y = &b->u.members[i];
            if (x->keylen != y->keylen || memcmp(x->key, y->key, x->keylen) != 0 ||
                !jd_equal(&x->value, &y->value))
                return false;
        }
        return true;
    default:
        return true;
    }
}

/* ---- from a jansson tree -------------------------------------------------------------------- */

static const char *copy_text(struct jsondoc *doc, const char *s, size_t n)
{
    char *o = arena_alloc(&doc->arena, n + 1);
    if (o != NULL) {
        memcpy(o, s, n);
        o[n] = 0;
    }
    return o;
}

static bool convert(struct jsondoc *doc, const json_t *j, struct jd_value *v)
{
    v->len = 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        v->type = JD_OBJECT;
        v->len = json_object_size(j);
        v->u.members = NULL;
        if (v->len == 0)
            return true;
        struct jd_member *m = arena_alloc(&doc->arena, v->len * sizeof *m);
        if (m == NULL)
            return false;
        v->u.members = m;
        const char *key;
        json_t *value;
        size_t i = 0;
        json_object_foreach((json_t *)j, key, value)
        {
            m[i].keylen = strlen(key);
            m[i].key = copy_text(doc, key, m[i].keylen);
            if (m[i].key == NULL || !convert(doc, value, &m[i].value))
                return false;
            i++;
        }
        return true;
    }
    case JSON_ARRAY: {
        v->type = JD_ARRAY;
        v->len = json_array_size(j);
        v->u.items = NULL;
        if (v->len == 0)
            return true;
        struct jd_value *items = arena_alloc(&doc->arena, v->len * sizeof *items);
        if (items == NULL)
            return false;
        v->u.items = items;
        for (size_t i = 0; i < v->len; i++)
            if (!convert(doc, json_array_get(j, i), &items[i]))
                return false;
        return true;
    }
    case JSON_STRING:
        v->type = JD_STRING;
        v->len = json_string_length(j);
        v->u.str = copy_text(doc, json_string_value(j), v->len);
        return v->u.str != NULL;
    case JSON_INTEGER:
        v->type = JD_INTEGER;
        v->u.integer = json_integer_value(j);
        return true;
    case JSON_REAL:
        v->type = JD_REAL;
        v->u.real = json_real_value(j);
        return true;
    case JSON_TRUE:
        v->type = JD_TRUE;
        return true;
    case JSON_FALSE:
        v->type = JD_FALSE;
        return true;
    default:
        v->type = JD_NULL;
        return true;
    }
}

tr_err jsondoc_from_jansson(const json_t *root, struct jsondoc **out)
{
    *out = NULL;
    struct jsondoc *doc = calloc(1, sizeof *doc);
    if (doc == NULL)
        return TR_ENOMEM;
    if (!convert(doc, root, &doc->root)) {
        jsondoc_free(doc);
        return TR_ENOMEM;
    }
    *out = doc;
    return TR_OK;
}
