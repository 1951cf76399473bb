/* report.c: parse and validate RFC 8460 JSON reports (jsondoc), docs/acceptance.md.
 *
 * The validator walks the whole document and records every finding with its
 * JSON path, so `tlsrptd validate` can list them all. A report is rejected only
 * when it cannot be counted reliably; everything else is accepted with a
 * warning (an RFC deviation that strict parsers reject) or a note (a tolerated
 * quirk). Knows nothing of MIME, gzip or SQLite. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "tlsrptd/jsondoc.h"
#include "tlsrptd/jsonscan.h"
#include "tlsrptd/report.h"
#include "tlsrptd/result_type.h"

#define PATHLEN 160

/* ---- diagnostics ---------------------------------------------------------------------------- */

void diag_list_free(struct diag_list *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].path);
        free(d->items[i].message);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

void diag_add(struct diag_list *d, enum diag_level level, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    if (level == DIAG_ERROR)
        d->errors++;
    else if (level == DIAG_WARNING)
        d->warnings++;
    else
        d->notes++;
    size_t cost = strlen(path ? path : "") + strlen(msg);
    if ((d->n >= REPORT_MAX_DIAGNOSTICS || d->bytes + cost > REPORT_MAX_DIAGNOSTIC_BYTES) &&
        !(level == DIAG_ERROR && d->errors == 1)) {
        d->dropped[level]++; /* counted, not kept: one report cannot fill the database */
        return;
    }
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 8;
        struct diag *p = realloc(d->items, ncap * sizeof *p);
        if (p == NULL)
            return; /* counted, not described: the verdict stays right */
        d->items = p;
        d->cap = ncap;
    }
    struct diag *it = &d->items[d->n];
    it->level = level;
    it->path = strdup(path ? path : "");
    it->message = strdup(msg);
    if (it->path == NULL || it->message == NULL) {
        free(it->path);
        free(it->message);
        return;
    }
    d->n++;
    d->bytes += cost;
}

/* After the last finding: one note saying how many were not kept. */
static void diag_note_dropped(struct diag_list *d)
{
    static const char *const names[] = {"notes", "warnings", "errors"};
    char msg[160];
    size_t len = 0;
    for (int level = DIAG_ERROR; level >= DIAG_NOTE; level--) {
        if (d->dropped[level] == 0 || len >= sizeof msg)
            continue;
        int w = snprintf(msg + len, sizeof msg - len, "%s%zu more %s", len ? " and " : "",
                         d->dropped[level], names[level]);
        len = w < 0 ? len : len + (size_t)w;
    }
    if (len == 0)
        return;
    if (d->n == d->cap) { /* past REPORT_MAX_DIAGNOSTICS on purpose: this one is the summary */
        struct diag *p = realloc(d->items, (d->cap + 1) * sizeof *p);
        if (p == NULL)
            return;
        d->items = p;
        d->cap++;
    }
    struct diag *it = &d->items[d->n];
    it->level = DIAG_NOTE;
    it->path = strdup("");
    size_t need = strlen(msg) + 96;
    it->message = malloc(need);
    if (it->path == NULL || it->message == NULL) {
        free(it->path);
        free(it->message);
        return;
    }
    snprintf(it->message, need, "%s not kept (a report keeps %d findings, %d bytes of them)", msg,
             REPORT_MAX_DIAGNOSTICS, REPORT_MAX_DIAGNOSTIC_BYTES);
    d->n++;
}

const char *diag_level_name(enum diag_level level)
{
    switch (level) {
    case DIAG_ERROR:
        return "error";
    case DIAG_WARNING:
        return "warning";
    default:
        return "note";
    }
}

void diag_first_error(const struct diag_list *d, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->items[i].level != DIAG_ERROR)
            continue;
        if (d->items[i].path[0])
            snprintf(out, outlen, "%s: %s", d->items[i].path, d->items[i].message);
        else
            snprintf(out, outlen, "%s", d->items[i].message);
        return;
    }
    if (d->errors)
        snprintf(out, outlen, "not an acceptable report");
}

json_t *diag_list_json(const struct diag_list *d)
{
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < d->n; i++) {
        if (d->items[i].level == DIAG_ERROR)
            continue;
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "level",
                                           diag_level_name(d->items[i].level), "path",
                                           d->items[i].path, "message", d->items[i].message));
    }
    return a;
}

/* ---- date-times ----------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (civil calendar). */
static int64_t days_since_epoch(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                  /* [0, 399] */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int report_parse_datetime(const char *s, int64_t *t, bool *had_zone)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 19)
        return -1;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    if (digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t offset = 0;
    *had_zone = true;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        int sign = *p == '-' ? -1 : 1;
        p++;
        if (digits(p, 2, &oh))
            return -1;
        p += 2;
        if (*p == ':')
            p++;
        if (digits(p, 2, &om))
            return -1;
        p += 2;
        if (oh > 23 || om > 59)
            return -1;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        *had_zone = false;
    }
    if (*p != 0)
        return -1;
    if (sec == 60)
        sec = 59; /* a leap second counts as the second before it */
    *t = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    return 0;
}

void report_format_time(int64_t t, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outlen, "%lld", (long long)t);
}

/* ---- registries ----------------------------------------------------------------------------- */

bool report_known_result_type(const char *s)
{
    return result_type_find(s) != NULL; /* the table lives in result_type.c */
}

bool report_known_policy_type(const char *s)
{
    return strcmp(s, "sts") == 0 || strcmp(s, "tlsa") == 0 || strcmp(s, "no-policy-found") == 0;
}

/* ---- JSON paths ---------------------------------------------------------------------------- */

/* A path into the document, linked up the C stack: building one costs nothing,
 * and it is formatted ("policies[0].summary.total-failure-session-count") only
 * when a finding is recorded. key NULL means an array element at idx. */
struct jpath {
    const struct jpath *up;
    const char *key;
    size_t idx;
};

static size_t jpath_format(const struct jpath *p, char *out, size_t n)
{
    if (p == NULL || n == 0)
        return 0;
    size_t len = jpath_format(p->up, out, n);
    if (len >= n - 1)
        return len;
    int w;
    if (p->key)
        w = snprintf(out + len, n - len, "%s%s", len ? "." : "", p->key);
    else
        w = snprintf(out + len, n - len, "[%zu]", p->idx);
    if (w < 0)
        return len;
    return (size_t)w >= n - len ? n - 1 : len + (size_t)w;
}

static void diag_vat(struct diag_list *d, enum diag_level level, const struct jpath *p,
                     const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void diag_vat(struct diag_list *d, enum diag_level level, const struct jpath *p,
                     const char *fmt, va_list ap)
{
    char path[PATHLEN], msg[512];
    path[0] = 0;
    jpath_format(p, path, sizeof path);
    vsnprintf(msg, sizeof msg, fmt, ap);
    diag_add(d, level, path, "%s", msg);
}

static void diag_at(struct diag_list *d, enum diag_level level, const struct jpath *p,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void diag_at(struct diag_list *d, enum diag_level level, const struct jpath *p,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vat(d, level, p, fmt, ap);
    va_end(ap);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static const char *kind_of(const struct jd_value *v)
{
    switch (v->type) {
    case JD_OBJECT:
        return "an object";
    case JD_ARRAY:
        return "an array";
    case JD_STRING:
        return "a string";
    case JD_INTEGER:
        return "an integer";
    case JD_REAL:
        return "a number with a fraction";
    case JD_TRUE:
    case JD_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Notes every key of obj that is not in known (NULL-terminated). */
static void check_keys(const struct jd_value *obj, const struct jpath *path,
                       const char *const *known, struct diag_list *d)
{
    for (size_t i = 0; i < obj->len; i++) {
        const char *key = obj->u.members[i].key;
        bool found = false;
        for (const char *const *k = known; *k && !found; k++)
            found = strcmp(key, *k) == 0;
        if (!found) {
            struct jpath kp = {path, key, 0};
            diag_at(d, DIAG_NOTE, &kp, "unknown key; ignored");
        }
    }
}

/* True for the code points that show nothing: the Unicode White_Space
 * characters and the invisible U+200B, U+2060 and U+FEFF. */
static bool invisible_code_point(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200b) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x2060 || c == 0x3000 || c == 0xfeff;
}

/* True when the UTF-8 string s (jansson hands out valid UTF-8 only) is empty
 * or holds only white space: an organization-name of three spaces names nobody. */
static bool is_blank(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;
        uint32_t c = n == 1 ? *p : (uint32_t)(*p & (0x7f >> n));
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false; /* not UTF-8 after all: something, not nothing */
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (!invisible_code_point(c))
            return false;
        p += n;
    }
    return true;
}

/* A required non-empty string member; error when absent or wrong. */
static const char *need_string(const struct jd_value *obj, const char *key,
                               const struct jpath *path, struct diag_list *d)
{
    struct jpath p = {path, key, 0};
    const struct jd_value *v = jd_get(obj, key);
    if (v == NULL) {
        diag_at(d, DIAG_ERROR, &p, "missing");
        return NULL;
    }
    if (!jd_is(v, JD_STRING)) {
        diag_at(d, DIAG_ERROR, &p, "not a string (%s)", kind_of(v));
        return NULL;
    }
    if (v->len == 0) {
        diag_at(d, DIAG_ERROR, &p, "empty");
        return NULL;
    }
    return v->u.str;
}

/* A required name (organization-name, report-id): a string with something
 * visible in it; white space alone counts as empty (docs/acceptance.md). */
static const char *need_name(const struct jd_value *obj, const char *key, struct diag_list *d)
{
    const char *s = need_string(obj, key, NULL, d);
    if (s != NULL && is_blank(s)) {
        struct jpath p = {NULL, key, 0};
        diag_at(d, DIAG_ERROR, &p, "empty (only white space)");
        return NULL;
    }
    return s;
}

/* A count written as a JSON number with a fraction part. 2.0 is counted as 2
 * with a warning; 2.5, or one outside [0, 2^53], is an error. -1 when bad. */
static int64_t real_count(const struct jd_value *v, const struct jpath *p, struct diag_list *d)
{
    double x = v->u.real;
    if (!(x >= 0 && x <= (double)REPORT_MAX_COUNT)) {
        diag_at(d, DIAG_ERROR, p, "%g is outside [0, 2^53]", x);
        return -1;
    }
    int64_t n = (int64_t)x; /* in range, so the conversion is defined */
    if ((double)n != x) {
        diag_at(d, DIAG_ERROR, p, "not an integer (%g, a number with a fraction)", x);
        return -1;
    }
    diag_at(d, DIAG_WARNING, p,
            "%.1f is written with a fraction (RFC 8460 §4.4 wants an integer); counted as %lld", x,
            (long long)n);
    return n;
}

/* A required session count: an integer in [0, 2^53]. Returns -1 when bad. */
static int64_t need_count(const struct jd_value *obj, const char *key, const struct jpath *path,
                          struct diag_list *d)
{
    struct jpath p = {path, key, 0};
    const struct jd_value *v = jd_get(obj, key);
    if (v == NULL) {
        diag_at(d, DIAG_ERROR, &p, "missing");
        return -1;
    }
    if (jd_is(v, JD_REAL))
        return real_count(v, &p, d);
    if (!jd_is(v, JD_INTEGER)) {
        diag_at(d, DIAG_ERROR, &p, "not an integer (%s)", kind_of(v));
        return -1;
    }
    long long n = v->u.integer;
    if (n < 0 || n > REPORT_MAX_COUNT) {
        diag_at(d, DIAG_ERROR, &p, "%lld is outside [0, 2^53]", (long long)n);
        return -1;
    }
    return (int64_t)n;
}

/* An optional string member; a note when present but not a string. */
static const char *opt_string(const struct jd_value *obj, const char *key, const struct jpath *path,
                              struct diag_list *d)
{
    const struct jd_value *v = jd_get(obj, key);
    if (v == NULL || jd_is(v, JD_NULL))
        return NULL;
    if (!jd_is(v, JD_STRING)) {
        struct jpath p = {path, key, 0};
        diag_at(d, DIAG_NOTE, &p, "not a string (%s); ignored", kind_of(v));
        return NULL;
    }
    return v->u.str;
}

static const char *opt_ip(const struct jd_value *obj, const char *key, const struct jpath *path,
                          struct diag_list *d)
{
    const char *s = opt_string(obj, key, path, d);
    if (s == NULL)
        return NULL;
    unsigned char addr[16];
    if (inet_pton(AF_INET, s, addr) != 1 && inet_pton(AF_INET6, s, addr) != 1) {
        struct jpath p = {path, key, 0};
        diag_at(d, DIAG_NOTE, &p,
                "\"%.64s\" is not an IP address (RFC 8460 §4.4: IPv4 dotted decimal or IPv6); "
                "kept as text",
                s);
    }
    return s;
}

/* True when s has the syntax of a URI (RFC 3986 §3): a scheme, ':', then only
 * characters a URI may hold, each '%' opening a %XX escape. */
static bool is_uri(const char *s)
{
    static const char allowed[] = "-._~:/?#[]@!$&'()*+,;=";
    if (!isalpha((unsigned char)*s))
        return false;
    s += strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (*s++ != ':')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '%') {
            if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
                return false;
            s += 2;
        } else if (c >= 0x80 || (!isalnum(c) && strchr(allowed, c) == NULL)) {
            return false;
        }
    }
    return true;
}

static const char *opt_uri(const struct jd_value *obj, const char *key, const struct jpath *path,
                           struct diag_list *d)
{
    const char *s = opt_string(obj, key, path, d);
    if (s != NULL && !is_uri(s)) {
        struct jpath p = {path, key, 0};
        diag_at(d, DIAG_NOTE, &p, "\"%.64s\" is not a URI (RFC 8460 §4.4, RFC 3986); kept as text",
                s);
    }
    return s;
}

/* Whether a and b name the same domain: letter case and one trailing dot
 * aside, white space around them ignored. */
static bool same_domain(const char *a, const char *b)
{
    a += strspn(a, " \t");
    b += strspn(b, " \t");
    size_t na = strlen(a), nb = strlen(b);
    while (na > 0 && (a[na - 1] == ' ' || a[na - 1] == '\t'))
        na--;
    while (nb > 0 && (b[nb - 1] == ' ' || b[nb - 1] == '\t'))
        nb--;
    if (na > 1 && a[na - 1] == '.')
        na--;
    if (nb > 1 && b[nb - 1] == '.')
        nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

/* Lower-case ASCII, drop one trailing dot. NULL on allocation failure. */
static char *normalize_domain(const char *s)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = 0;
    return out;
}

/* A NEW array holding the strings of v (array of strings, or one string);
 * notes every deviation. NULL when v is absent or not a list. */
static json_t *string_list(const struct jd_value *v, const struct jpath *path, const char *what,
                           struct diag_list *d)
{
    if (v == NULL || v->type == JD_NULL)
        return NULL;
    json_t *a;
    if (v->type == JD_STRING) {
        diag_at(d, DIAG_NOTE, path, "%s is a single string, not an array; taken as one entry",
                what);
        a = json_array();
        json_array_append_new(a, json_stringn_nocheck(v->u.str, v->len));
        return a;
    }
    if (v->type != JD_ARRAY) {
        diag_at(d, DIAG_NOTE, path, "not an array (%s); ignored", kind_of(v));
        return NULL;
    }
    a = json_array();
    for (size_t i = 0; i < v->len; i++) {
        const struct jd_value *e = &v->u.items[i];
        if (e->type == JD_STRING) {
            json_array_append_new(a, json_stringn_nocheck(e->u.str, e->len));
        } else {
            struct jpath ep = {path, NULL, i};
            diag_at(d, DIAG_NOTE, &ep, "not a string (%s); ignored", kind_of(e));
        }
    }
    return a;
}

/* mx-host as string_list() takes it, without empty names: "" (or white space)
 * names no host, so it is not stored as one. A NEW array, or NULL. */
static json_t *mx_host_list(const struct jd_value *v, const struct jpath *path, struct diag_list *d)
{
    if (jd_is(v, JD_STRING) && is_blank(v->u.str)) {
        diag_at(d, DIAG_WARNING, path, "empty; not stored as a host");
        return NULL;
    }
    json_t *list = string_list(v, path, "mx-host", d);
    size_t blanks = 0;
    for (size_t i = 0; jd_is(v, JD_ARRAY) && i < v->len; i++) {
        const struct jd_value *e = &v->u.items[i];
        if (e->type == JD_STRING && is_blank(e->u.str)) {
            struct jpath ep = {path, NULL, i};
            diag_at(d, DIAG_WARNING, &ep, "empty; not stored as a host");
            blanks++;
        }
    }
    if (blanks == 0 || list == NULL)
        return list;
    json_t *kept = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (!is_blank(json_string_value(e)))
            json_array_append(kept, e);
    }
    json_decref(list);
    return kept;
}

/* Microsoft sends a TLSA policy-string as ONE string holding a JSON-encoded
 * array of records. Returns a NEW unwrapped array, or NULL when a is not that. */
static json_t *unwrap_json_string_array(const json_t *a)
{
    if (json_array_size(a) != 1)
        return NULL;
    const char *s = json_string_value(json_array_get(a, 0));
    if (s == NULL)
        return NULL;
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '[')
        return NULL;
    json_t *inner = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_array(inner) || json_array_size(inner) == 0) {
        json_decref(inner);
        return NULL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(inner, i, e)
    {
        if (!json_is_string(e)) {
            json_decref(inner);
            return NULL;
        }
    }
    return inner;
}

/* ---- the document --------------------------------------------------------------------------- */

static const char *const top_keys[] = {"organization-name", "date-range", "contact-info",
                                       "report-id",         "policies",   NULL};
static const char *const range_keys[] = {"start-datetime", "end-datetime", NULL};
static const char *const policy_item_keys[] = {"policy", "summary", "failure-details", NULL};
static const char *const policy_keys[] = {"policy-type", "policy-string", "policy-domain",
                                          "mx-host", NULL};
static const char *const summary_keys[] = {"total-successful-session-count",
                                           "total-failure-session-count", NULL};
static const char *const failure_keys[] = {"result-type",
                                           "sending-mta-ip",
                                           "receiving-mx-hostname",
                                           "receiving-mx-helo",
                                           "receiving-ip",
                                           "failed-session-count",
                                           "additional-information",
                                           "failure-reason-code",
                                           NULL};

/* A date without a time, "YYYY-MM-DD": the start of that day (UTC) in *t.
 * -1 when s is anything else. */
static int parse_date_only(const char *s, int64_t *t)
{
    int y, m, dd;
    if (strlen(s) != 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &m) || s[7] != '-' ||
        digits(s + 8, 2, &dd) || m < 1 || m > 12 || dd < 1 || dd > days_in_month(y, m))
        return -1;
    *t = days_since_epoch(y, m, dd) * 86400;
    return 0;
}

/* start-datetime or end-datetime (is_end): an RFC 3339 date-time; a date
 * alone is taken as the day's first second, or as an end its last one. */
static void parse_datetime_member(const struct jd_value *range, const char *key, bool is_end,
                                  const struct jpath *path, const char **text, int64_t *t, bool *ok,
                                  struct diag_list *d)
{
    struct jpath p = {path, key, 0};
    *ok = false;
    const char *s = need_string(range, key, path, d);
    if (s == NULL)
        return;
    bool zone;
    if (report_parse_datetime(s, t, &zone) != 0) {
        if (parse_date_only(s, t) != 0) {
            diag_at(d, DIAG_ERROR, &p, "\"%.64s\" is not an RFC 3339 date-time", s);
            return;
        }
        if (is_end)
            *t += 86399;
        char as[32];
        report_format_time(*t, as, sizeof as);
        diag_at(d, DIAG_WARNING, &p,
                "\"%s\" is a date without a time (RFC 8460 §4.4 wants an RFC 3339 date-time); "
                "taken as %s, %s",
                s, as, is_end ? "the day's last second" : "the start of that day (UTC)");
        *text = s;
        *ok = true;
        return;
    }
    if (!zone)
        diag_at(d, DIAG_WARNING, &p, "\"%.64s\" has no timezone; UTC assumed", s);
    *text = s;
    *ok = true;
}

static void parse_failure(const struct jd_value *e, const struct jpath *p, struct report_failure *f,
                          struct diag_list *d)
{
    check_keys(e, p, failure_keys, d);
    struct jpath rp = {p, "result-type", 0};
    const struct jd_value *rt = jd_get(e, "result-type");
    if (rt == NULL)
        diag_at(d, DIAG_ERROR, &rp, "missing");
    else if (!jd_is(rt, JD_STRING))
        diag_at(d, DIAG_ERROR, &rp, "not a string (%s)", kind_of(rt));
    else if (rt->len == 0)
        diag_at(d, DIAG_ERROR, &rp, "empty");
    else {
        f->result_type = rt->u.str;
        if (!report_known_result_type(f->result_type))
            diag_at(d, DIAG_NOTE, &rp,
                    "\"%.64s\" is not a result type of RFC 8460 §4.3; stored as sent",
                    f->result_type);
    }
    f->failed_session_count = need_count(e, "failed-session-count", p, d);
    f->sending_mta_ip = opt_ip(e, "sending-mta-ip", p, d);
    f->receiving_ip = opt_ip(e, "receiving-ip", p, d);
    f->receiving_mx_hostname = opt_string(e, "receiving-mx-hostname", p, d);
    if (f->receiving_mx_hostname == NULL) {
        const char *typo = opt_string(e, "receiving-mx-host-name", p, d);
        if (typo != NULL) {
            struct jpath tp = {p, "receiving-mx-host-name", 0};
            diag_at(d, DIAG_NOTE, &tp, "taken as receiving-mx-hostname");
            f->receiving_mx_hostname = typo;
        }
    }
    f->receiving_mx_helo = opt_string(e, "receiving-mx-helo", p, d);
    f->additional_information = opt_uri(e, "additional-information", p, d);
    f->failure_reason_code = opt_string(e, "failure-reason-code", p, d);
}

static void parse_failures(const struct jd_value *arr, const struct jpath *path,
                           struct report_policy *pol, struct diag_list *d)
{
    if (arr == NULL)
        return;
    if (jd_is(arr, JD_NULL)) {
        diag_at(d, DIAG_NOTE, path, "null; taken as no failure details");
        return;
    }
    if (arr->type != JD_ARRAY) {
        /* the summary totals are intact: count them, without a breakdown */
        diag_at(d, DIAG_WARNING, path,
                "not an array (%s); ignored: the summary's total-failure-session-count is "
                "counted, its breakdown by result type is unknown",
                kind_of(arr));
        pol->failures_unknown = true;
        return;
    }
    size_t n = arr->len;
    if (n == 0)
        return;
    pol->failures = calloc(n, sizeof *pol->failures);
    if (pol->failures == NULL) {
        diag_at(d, DIAG_ERROR, path, "out of memory");
        return;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        struct jpath p = {path, NULL, i};
        const struct jd_value *e = &arr->u.items[i];
        if (!jd_is(e, JD_OBJECT)) {
            diag_at(d, DIAG_ERROR, &p, "not an object (%s)", kind_of(e));
            continue;
        }
        struct report_failure *f = &pol->failures[pol->nfailures];
        parse_failure(e, &p, f, d);
        if (f->failed_session_count < 0 || f->result_type == NULL) {
            memset(f, 0, sizeof *f);
            continue;
        }
        sum += f->failed_session_count;
        pol->nfailures++;
    }
    if (pol->nfailures == n && sum != pol->failed_sessions && pol->failed_sessions >= 0)
        diag_at(d, DIAG_NOTE, path,
                "failed-session-count adds up to %lld, summary says %lld; the summary total "
                "is counted",
                (long long)sum, (long long)pol->failed_sessions);
}

/* The TLS-Report-Domain header of the options, NULL when none or blank. */
static const char *header_domain(const struct report_options *opt)
{
    if (opt == NULL || opt->fallback_domain == NULL || is_blank(opt->fallback_domain))
        return NULL;
    return opt->fallback_domain;
}

/* A TLS-Report-Domain header that names none of the report's own policy
 * domains: the body is counted, and a note says so (RFC 8460 §5.6 lets the
 * report win over the mail's metadata). A report about several domains
 * agrees with the header when one of them is the header's. */
static void compare_header_domain(const struct report *r, const struct report_options *opt,
                                  struct diag_list *d)
{
    const char *header = header_domain(opt);
    size_t first = r->npolicies;
    for (size_t i = 0; header != NULL && i < r->npolicies; i++) {
        const struct report_policy *pol = &r->policies[i];
        if (pol->policy_domain == NULL || pol->domain_from_header)
            continue;
        if (same_domain(pol->policy_domain, header))
            return;
        if (first == r->npolicies)
            first = i;
    }
    if (first == r->npolicies)
        return;
    struct jpath pp = {NULL, "policies", 0}, ip = {&pp, NULL, first}, op = {&ip, "policy", 0},
                 dp = {&op, "policy-domain", 0};
    diag_at(d, DIAG_NOTE, &dp,
            "the TLS-Report-Domain header names %.128s, no policy of the report does; the report "
            "body is counted (RFC 8460 §5.6)",
            header);
}

static void parse_policy_object(const struct jd_value *policy, const struct jpath *p,
                                struct report_policy *pol, const struct report_options *opt,
                                struct diag_list *d)
{
    check_keys(policy, p, policy_keys, d);
    pol->policy_type = need_string(policy, "policy-type", p, d);
    struct jpath tp = {p, "policy-type", 0};
    if (pol->policy_type && !report_known_policy_type(pol->policy_type))
        diag_at(d, DIAG_NOTE, &tp, "\"%.64s\" is not sts, tlsa or no-policy-found; stored as sent",
                pol->policy_type);

    struct jpath dp = {p, "policy-domain", 0};
    const struct jd_value *dom = jd_get(policy, "policy-domain");
    const char *domain = NULL;
    if (dom == NULL)
        diag_at(d, DIAG_WARNING, &dp, "missing (RFC 8460 requires it)");
    else if (!jd_is(dom, JD_STRING) || dom->len == 0)
        diag_at(d, DIAG_WARNING, &dp, "%s, not a domain name; treated as missing",
                jd_is(dom, JD_STRING) ? "empty" : kind_of(dom));
    else
        domain = dom->u.str;
    const char *header = header_domain(opt);
    if (domain == NULL && header != NULL) {
        domain = header;
        pol->domain_from_header = true;
        diag_at(d, DIAG_NOTE, &dp, "taken from the TLS-Report-Domain header: %.128s", domain);
    }
    if (domain) {
        pol->policy_domain = normalize_domain(domain);
        if (pol->policy_domain == NULL)
            diag_at(d, DIAG_ERROR, &dp, "out of memory");
    }

    struct jpath sp = {p, "policy-string", 0};
    pol->policy_strings = string_list(jd_get(policy, "policy-string"), &sp, "policy-string", d);
    json_t *unwrapped = pol->policy_strings ? unwrap_json_string_array(pol->policy_strings) : NULL;
    if (unwrapped) {
        diag_at(d, DIAG_NOTE, &sp,
                "one string holding a JSON array of %zu records (Microsoft); unwrapped",
                json_array_size(unwrapped));
        json_decref(pol->policy_strings);
        pol->policy_strings = unwrapped;
    }
    struct jpath mp = {p, "mx-host", 0};
    pol->mx_hosts = mx_host_list(jd_get(policy, "mx-host"), &mp, d);
}

static void parse_policy(const struct jd_value *item, const struct jpath *path,
                         struct report_policy *pol, const struct report_options *opt,
                         struct diag_list *d)
{
    pol->successful_sessions = pol->failed_sessions = -1;
    if (!jd_is(item, JD_OBJECT)) {
        diag_at(d, DIAG_ERROR, path, "not an object (%s)", kind_of(item));
        return;
    }
    check_keys(item, path, policy_item_keys, d);

    struct jpath p = {path, "policy", 0};
    const struct jd_value *policy = jd_get(item, "policy");
    if (policy == NULL)
        diag_at(d, DIAG_ERROR, &p, "missing");
    else if (!jd_is(policy, JD_OBJECT))
        diag_at(d, DIAG_ERROR, &p, "not an object (%s)", kind_of(policy));
    else
        parse_policy_object(policy, &p, pol, opt, d);

    struct jpath sp = {path, "summary", 0};
    const struct jd_value *summary = jd_get(item, "summary");
    if (summary == NULL) {
        diag_at(d, DIAG_ERROR, &sp, "missing");
    } else if (!jd_is(summary, JD_OBJECT)) {
        diag_at(d, DIAG_ERROR, &sp, "not an object (%s)", kind_of(summary));
    } else {
        check_keys(summary, &sp, summary_keys, d);
        pol->successful_sessions = need_count(summary, "total-successful-session-count", &sp, d);
        pol->failed_sessions = need_count(summary, "total-failure-session-count", &sp, d);
    }

    struct jpath fp = {path, "failure-details", 0};
    parse_failures(jd_get(item, "failure-details"), &fp, pol, d);
}

void report_free(struct report *r)
{
    for (size_t i = 0; i < r->npolicies; i++) {
        free(r->policies[i].policy_domain);
        free(r->policies[i].failures);
        json_decref(r->policies[i].policy_strings);
        json_decref(r->policies[i].mx_hosts);
    }
    free(r->policies);
    jsondoc_free(r->doc);
    free(r->strings);
    memset(r, 0, sizeof *r);
}

/* report_detach's walk over the borrowed strings: with block NULL it only
 * adds up their sizes, else it copies each into block and points at the copy. */
static size_t detach_strings(struct report *r, char *block)
{
    size_t used = 0;
#define DETACH(field)                                                                              \
    do {                                                                                           \
        if ((field) != NULL) {                                                                     \
            size_t n = strlen(field) + 1;                                                          \
            if (block) {                                                                           \
                memcpy(block + used, (field), n);                                                  \
                (field) = block + used;                                                            \
            }                                                                                      \
            used += n;                                                                             \
        }                                                                                          \
    } while (0)
    DETACH(r->organization_name);
    DETACH(r->report_id);
    DETACH(r->contact_info);
    DETACH(r->start_text);
    DETACH(r->end_text);
    for (size_t i = 0; i < r->npolicies; i++) {
        struct report_policy *p = &r->policies[i];
        DETACH(p->policy_type);
        for (size_t k = 0; k < p->nfailures; k++) {
            struct report_failure *f = &p->failures[k];
            DETACH(f->result_type);
            DETACH(f->sending_mta_ip);
            DETACH(f->receiving_mx_hostname);
            DETACH(f->receiving_mx_helo);
            DETACH(f->receiving_ip);
            DETACH(f->additional_information);
            DETACH(f->failure_reason_code);
        }
    }
#undef DETACH
    return used;
}

bool report_detach(struct report *r)
{
    if (r->doc == NULL)
        return true;
    char *block = malloc(detach_strings(r, NULL) + 1);
    if (block == NULL)
        return false;
    detach_strings(r, block);
    free(r->strings);
    r->strings = block;
    jsondoc_free(r->doc);
    r->doc = NULL;
    return true;
}

static void parse_date_range(const struct jd_value *root, struct report *out, struct diag_list *d)
{
    struct jpath rp = {NULL, "date-range", 0};
    const struct jd_value *range = jd_get(root, "date-range");
    if (range == NULL) {
        diag_at(d, DIAG_ERROR, &rp, "missing");
        return;
    }
    if (!jd_is(range, JD_OBJECT)) {
        diag_at(d, DIAG_ERROR, &rp, "not an object (%s)", kind_of(range));
        return;
    }
    bool ok_start, ok_end;
    check_keys(range, &rp, range_keys, d);
    parse_datetime_member(range, "start-datetime", false, &rp, &out->start_text, &out->start_time,
                          &ok_start, d);
    parse_datetime_member(range, "end-datetime", true, &rp, &out->end_text, &out->end_time, &ok_end,
                          d);
    if (!ok_start || !ok_end)
        return;
    struct jpath ep = {&rp, "end-datetime", 0};
    if (out->end_time < out->start_time)
        diag_at(d, DIAG_ERROR, &ep, "%s is before start-datetime %s", out->end_text,
                out->start_text);
    else if (out->end_time % 86400 == 0 && out->end_time - out->start_time == 86400)
        diag_at(d, DIAG_NOTE, &ep,
                "the next day's 00:00:00 (RFC 8460 examples end at 23:59:59Z); stored as sent");
}

static tr_err parse(const void *buf, size_t len, const struct report_options *opt, bool scanned,
                    struct report *out, struct diag_list *d)
{
    const unsigned char *s = buf;
    size_t max_depth = opt && opt->max_depth ? opt->max_depth : REPORT_DEFAULT_MAX_DEPTH;
    memset(out, 0, sizeof *out);

    if (len >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) {
        diag_add(d, DIAG_NOTE, "", "starts with a UTF-8 byte order mark; skipped");
        s += 3;
        len -= 3;
    }
    /* counts and lengths on the text, before anything is built of it */
    struct jsonscan_limits scan = jsonscan_effective(opt ? opt->scan : NULL);
    scan.max_depth = max_depth;
    struct jsonscan_stats stats;
    char why[TR_ERRLEN];
    tr_err checked = scanned ? TR_OK : jsonscan_check(s, len, &scan, &stats, why);
    if (checked != TR_OK) {
        diag_add(d, DIAG_ERROR, stats.path, "%s", why);
        return checked;
    }
    struct jsondoc *doc = NULL;
    size_t where = 0;
    tr_err parsed = jsondoc_parse((const char *)s, len, &doc, &where);
    if (parsed == TR_EPARSE) {
        /* jansson, which takes the same JSON, says what is wrong and where */
        json_error_t jerr;
        json_t *j =
            json_loadb((const char *)s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (j != NULL) /* the one text it takes: a NUL byte it loses (jsondoc.h) */
            diag_add(d, DIAG_ERROR, "", "not valid JSON: byte 0x%02x at offset %zu", s[where],
                     where);
        else
            diag_add(d, DIAG_ERROR, "", "%s: %s at line %d column %d",
                     strstr(jerr.text, "duplicate object key") ? "duplicate key (I-JSON, RFC 7493)"
                                                               : "not valid JSON",
                     jerr.text, jerr.line, jerr.column);
        json_decref(j);
        return TR_EPARSE;
    }
    if (parsed != TR_OK) {
        diag_add(d, DIAG_ERROR, "", "out of memory while parsing");
        return parsed;
    }
    out->doc = doc;
    const struct jd_value *root = jsondoc_root(doc);
    size_t errors_before = d->errors;

    if (!jd_is(root, JD_OBJECT)) {
        diag_add(d, DIAG_ERROR, "", "top level is %s, not an object", kind_of(root));
        goto verdict;
    }
    check_keys(root, NULL, top_keys, d);
    out->organization_name = need_name(root, "organization-name", d);
    out->report_id = need_name(root, "report-id", d);

    const struct jd_value *contact = jd_get(root, "contact-info");
    if (contact == NULL)
        diag_add(d, DIAG_WARNING, "contact-info", "missing (RFC 8460 requires it)");
    else if (jd_is(contact, JD_NULL))
        diag_add(d, DIAG_WARNING, "contact-info", "null (RFC 8460 requires a string)");
    else if (!jd_is(contact, JD_STRING))
        diag_add(d, DIAG_WARNING, "contact-info", "not a string (%s); ignored", kind_of(contact));
    else
        out->contact_info = contact->u.str;

    parse_date_range(root, out, d);

    struct jpath pp = {NULL, "policies", 0};
    const struct jd_value *policies = jd_get(root, "policies");
    if (policies == NULL) {
        diag_at(d, DIAG_ERROR, &pp, "missing");
    } else if (policies->type != JD_ARRAY) {
        diag_at(d, DIAG_ERROR, &pp, "not an array (%s)", kind_of(policies));
    } else if (policies->len == 0) {
        diag_at(d, DIAG_ERROR, &pp, "empty");
    } else {
        size_t n = policies->len;
        out->policies = calloc(n, sizeof *out->policies);
        if (out->policies == NULL) {
            diag_at(d, DIAG_ERROR, &pp, "out of memory");
            goto verdict;
        }
        /* Each count is at most 2^53; the report's sum must stay under 2^62,
         * so that adding it up (one SQL SUM per report) cannot overflow. */
        int64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            struct jpath ip = {&pp, NULL, i};
            struct report_policy *pol = &out->policies[i];
            parse_policy(&policies->u.items[i], &ip, pol, opt, d);
            out->npolicies++;
            if (total <= REPORT_MAX_TOTAL && pol->successful_sessions > 0)
                total += pol->successful_sessions;
            if (total <= REPORT_MAX_TOTAL && pol->failed_sessions > 0)
                total += pol->failed_sessions;
        }
        if (total > REPORT_MAX_TOTAL)
            diag_at(d, DIAG_ERROR, &pp, "the session counts add up to more than 2^62");
        compare_header_domain(out, opt, d);
    }

verdict:
    diag_note_dropped(d);
    if (d->errors > errors_before) {
        report_free(out);
        return TR_EINVAL;
    }
    return TR_OK;
}

tr_err report_parse(const void *buf, size_t len, const struct report_options *opt,
                    struct report *out, struct diag_list *d)
{
    return parse(buf, len, opt, false, out, d);
}

tr_err report_parse_scanned(const void *buf, size_t len, const struct report_options *opt,
                            struct report *out, struct diag_list *d)
{
    return parse(buf, len, opt, true, out, d);
}
