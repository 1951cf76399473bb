/* record.c: the `_smtp._tls` TXT record (RFC 8460 §3): domain and URI checks,
 * the value and its zone-file strings, the §3 grammar and discovery rules, and
 * the MTA-STS record and policy (RFC 8461 §3). Pure functions over strings;
 * libidn2 only to name the A-label of a U-label domain. No I/O, no DNS. */
#include <arpa/inet.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/record.h"

#define TEXT_MAX (1u << 20) /* no record text we build comes near this */

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* How a character is named in a message: 'x', or 0xNN when not printable. */
static const char *show_char(unsigned char c, char buf[8])
{
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 8, "'%c'", c);
    else if (c == ' ')
        snprintf(buf, 8, "a space");
    else
        snprintf(buf, 8, "0x%02X", c);
    return buf;
}

/* ---- domain names ------------------------------------------------------------------------ */

/* LDH host name check (RFC 1123 §2.1, RFC 3696 §2) of s[0, n), no trailing dot.
 * On error *errpos is the offset of the problem. */
static tr_err check_host(const char *s, size_t n, size_t *errpos, char *err)
{
    char cb[8];
    *errpos = 0;
    if (n == 0)
        return tr_fail(err, TR_EINVAL, "empty name");
    if (n > 253)
        return tr_fail(err, TR_EINVAL, "longer than 253 octets");
    size_t start = 0;
    bool numeric = true;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t ll = i - start;
            *errpos = start;
            if (ll == 0)
                return tr_fail(err, TR_EINVAL, "empty label (two dots in a row, or a leading dot)");
            if (ll > 63)
                return tr_fail(err, TR_EINVAL, "label '%.*s' is longer than 63 octets", (int)ll,
                               s + start);
            if (s[start] == '-' || s[i - 1] == '-')
                return tr_fail(err, TR_EINVAL, "label '%.*s' starts or ends with '-'", (int)ll,
                               s + start);
            if (i < n) {
                start = i + 1;
                numeric = true;
            }
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-') {
            *errpos = i;
            if (c >= 0x80)
                return tr_fail(err, TR_EINVAL, "non-ASCII octet (a U-label): use the A-label form");
            return tr_fail(err, TR_EINVAL,
                           "%s is not allowed in a host name (letters, digits, '-')",
                           show_char(c, cb));
        }
        if (!is_digit(c))
            numeric = false;
    }
    if (numeric) {
        *errpos = start;
        return tr_fail(err, TR_EINVAL, "the last label is numeric: an IP address is not a domain");
    }
    return TR_OK;
}

/* A user-given name: trailing dot dropped, U-labels refused with the A-label,
 * LDH-checked, lower-cased into out. what names the input in messages. */
static tr_err user_host(const char *in, char *out, size_t outsz, const char *what, char *err)
{
    size_t n = strlen(in);
    if (n > 0 && in[n - 1] == '.')
        n--;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)in[i] < 0x80)
            continue;
        char *copy = strndup(in, n), *alabel = NULL;
        if (copy == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        int rc = idn2_lookup_u8((const uint8_t *)copy, (uint8_t **)&alabel,
                                IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
        tr_err e;
        if (rc == IDN2_OK)
            e = tr_fail(err, TR_EINVAL,
                        "%s '%s' holds a U-label (Unicode): give its A-label form '%s'", what, copy,
                        alabel);
        else
            e = tr_fail(err, TR_EINVAL,
                        "%s '%s' is not an A-label name, nor a valid internationalized one (%s)",
                        what, copy, idn2_strerror(rc));
        free(alabel);
        free(copy);
        return e;
    }
    size_t pos;
    char detail[TR_ERRLEN];
    if (check_host(in, n, &pos, detail) != TR_OK)
        return tr_fail(err, TR_EINVAL, "%s '%s': %s", what, in, detail);
    if (n >= outsz)
        return tr_fail(err, TR_EINVAL, "%s '%s': longer than 253 octets", what, in);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)lower(in[i]);
    out[n] = 0;
    return TR_OK;
}

tr_err record_domain(const char *in, char out[RECORD_DOMAIN_MAX], char *err)
{
    tr_err e = user_host(in, out, RECORD_DOMAIN_MAX, "domain", err);
    if (e != TR_OK)
        return e;
    if (strlen(out) + strlen(RECORD_PREFIX) > 253)
        return tr_fail(err, TR_EINVAL,
                       "domain of %zu octets is too long: with '" RECORD_PREFIX
                       "' in front it would exceed 253 octets (at most %zu)",
                       strlen(out), 253 - strlen(RECORD_PREFIX));
    return TR_OK;
}

tr_err record_mx_host(const char *in, char out[RECORD_DOMAIN_MAX], char *err)
{
    if (strncmp(in, "*.", 2) != 0)
        return user_host(in, out, RECORD_DOMAIN_MAX, "mx", err);
    tr_err e = user_host(in + 2, out + 2, RECORD_DOMAIN_MAX - 2, "mx", err);
    if (e == TR_OK)
        memcpy(out, "*.", 2);
    return e;
}

/* ---- URIs -------------------------------------------------------------------------------- */

/* RFC 3986 unreserved, gen-delims and sub-delims ('%' is handled apart). */
static bool uri_char(int c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("-._~:/?#[]@!$&'()*+,;=", c));
}

/* RFC 5322 atext */
static bool atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* addr-spec (RFC 5322 §3.4.1) without obsolete forms: dot-atom or
 * quoted-string, "@", a host name or a domain literal. */
static tr_err check_addr_spec(const char *a, size_t n, char *err)
{
    size_t i = 0;
    if (n > 0 && a[0] == '"') {
        for (i = 1; i < n && a[i] != '"'; i++) {
            if (a[i] == '\\')
                i++;
            else if ((unsigned char)a[i] < 0x20 || (unsigned char)a[i] > 0x7e)
                return tr_fail(err, TR_EINVAL, "a control or non-ASCII octet in the local part");
        }
        if (i >= n)
            return tr_fail(err, TR_EINVAL, "unterminated quoted local part");
        i++;
    } else {
        bool dot_ok = false;
        for (; i < n && a[i] != '@'; i++) {
            char cb[8];
            if (a[i] == ',')
                return tr_fail(err, TR_EINVAL,
                               "holds more than one address: give each as its own URI");
            if (a[i] == '.') {
                if (!dot_ok)
                    return tr_fail(err, TR_EINVAL, "misplaced '.' in the local part");
                dot_ok = false;
            } else if (atext((unsigned char)a[i])) {
                dot_ok = true;
            } else {
                return tr_fail(err, TR_EINVAL, "%s is not allowed in the local part",
                               show_char((unsigned char)a[i], cb));
            }
        }
        if (i == 0)
            return tr_fail(err, TR_EINVAL, "the address has no local part (before '@')");
        if (!dot_ok && i < n)
            return tr_fail(err, TR_EINVAL, "misplaced '.' in the local part");
    }
    if (i >= n || a[i] != '@')
        return tr_fail(err, TR_EINVAL, "'%.*s' is not an address: no '@'", (int)n, a);
    if (i > 64)
        return tr_fail(err, TR_EINVAL, "the local part is longer than 64 octets");
    const char *d = a + i + 1;
    size_t dn = n - i - 1;
    if (memchr(d, ',', dn))
        return tr_fail(err, TR_EINVAL, "holds more than one address: give each as its own URI");
    if (dn >= 2 && d[0] == '[' && d[dn - 1] == ']') {
        for (size_t k = 1; k + 1 < dn; k++)
            if ((unsigned char)d[k] < 33 || (unsigned char)d[k] > 126 || d[k] == '[' ||
                d[k] == ']' || d[k] == '\\')
                return tr_fail(err, TR_EINVAL, "malformed domain literal");
        return TR_OK;
    }
    size_t pos;
    char detail[TR_ERRLEN];
    if (check_host(d, dn, &pos, detail) != TR_OK)
        return tr_fail(err, TR_EINVAL, "mail domain '%.*s': %s", (int)dn, d, detail);
    return TR_OK;
}

/* The host[:port] of an https URI: s[0, n) is the authority. */
static tr_err check_authority(const char *s, size_t n, size_t *errpos, char *err)
{
    const char *at = memchr(s, '@', n);
    size_t h = at ? (size_t)(at - s) + 1 : 0; /* userinfo is allowed, the host checked */
    size_t hend = n;
    *errpos = h;
    if (h < n && s[h] == '[') {
        const char *close = memchr(s + h, ']', n - h);
        if (close == NULL)
            return tr_fail(err, TR_EINVAL, "unterminated IP literal '['");
        hend = (size_t)(close - s) + 1;
        for (size_t k = h + 1; k + 1 < hend; k++)
            if (!is_hex((unsigned char)s[k]) && s[k] != ':' && s[k] != '.') {
                *errpos = k;
                return tr_fail(err, TR_EINVAL, "malformed IPv6 literal");
            }
    } else {
        const char *colon = memchr(s + h, ':', n - h);
        hend = colon ? (size_t)(colon - s) : n;
        if (hend == h)
            return tr_fail(err, TR_EINVAL, "https URI without a host");
        char ip[16];
        struct in_addr a4;
        size_t hl = hend - h;
        bool v4 = false;
        if (hl < sizeof ip) {
            memcpy(ip, s + h, hl);
            ip[hl] = 0;
            v4 = inet_pton(AF_INET, ip, &a4) == 1;
        }
        size_t pos;
        char detail[TR_ERRLEN];
        if (!v4 && check_host(s + h, hl, &pos, detail) != TR_OK) {
            *errpos = h + pos;
            return tr_fail(err, TR_EINVAL, "host '%.*s': %s", (int)hl, s + h, detail);
        }
    }
    if (hend < n) {
        *errpos = hend;
        if (s[hend] != ':' || hend + 1 == n || n - hend - 1 > 5)
            return tr_fail(err, TR_EINVAL, "malformed port after the host");
        unsigned long port = 0;
        for (size_t k = hend + 1; k < n; k++) {
            if (!is_digit((unsigned char)s[k]))
                return tr_fail(err, TR_EINVAL, "malformed port after the host");
            port = port * 10 + (unsigned long)(s[k] - '0');
        }
        if (port == 0 || port > 65535)
            return tr_fail(err, TR_EINVAL, "port %lu is outside 1-65535", port);
    }
    return TR_OK;
}

/* Length of the scheme of s (before ':'), 0 when s does not start with one. */
static size_t scheme_len(const char *s, size_t n)
{
    if (n == 0 || !is_alpha((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] == ':')
            return i;
        if (!is_alpha((unsigned char)s[i]) && !is_digit((unsigned char)s[i]) &&
            !strchr("+-.", s[i]))
            return 0;
    }
    return 0;
}

static bool scheme_is(const char *s, size_t sl, const char *want)
{
    if (sl != strlen(want))
        return false;
    for (size_t i = 0; i < sl; i++)
        if (lower((unsigned char)s[i]) != want[i])
            return false;
    return true;
}

tr_err record_uri_check(const char *s, size_t n, size_t *errpos, char *err)
{
    char cb[8];
    *errpos = 0;
    if (n == 0)
        return tr_fail(err, TR_EINVAL, "empty URI");
    size_t sl = scheme_len(s, n);
    if (sl == 0)
        return tr_fail(err, TR_EINVAL,
                       "'%.*s' is not a URI: no scheme (expected mailto: or https:)",
                       (int)(n > 64 ? 64 : n), s);
    bool mailto = scheme_is(s, sl, "mailto");
    if (!mailto && !scheme_is(s, sl, "https"))
        return tr_fail(err, TR_EINVAL, "unknown scheme '%.*s:' (TLS-RPT takes mailto: and https:)",
                       (int)sl, s);
    for (size_t i = sl + 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        *errpos = i;
        if (c == '%') {
            if (i + 2 >= n || !is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]))
                return tr_fail(err, TR_EINVAL, "'%%' not followed by two hex digits");
            i += 2;
        } else if (c == ',' || c == '!' || c == ';') {
            return tr_fail(err, TR_EINVAL,
                           "'%c' must be percent-encoded as %%%02X inside a URI (RFC 8460 §3)", c,
                           c);
        } else if (!uri_char(c)) {
            return tr_fail(err, TR_EINVAL, "%s is not allowed in a URI (percent-encode it)",
                           show_char(c, cb));
        }
    }
    const char *rest = s + sl + 1;
    size_t rn = n - sl - 1;
    if (!mailto) {
        *errpos = sl + 1;
        if (rn < 2 || rest[0] != '/' || rest[1] != '/')
            return tr_fail(err, TR_EINVAL, "https URI without '//host'");
        size_t an = 2;
        while (an < rn && !strchr("/?#", rest[an]))
            an++;
        size_t pos;
        tr_err e = check_authority(rest + 2, an - 2, &pos, err);
        *errpos = sl + 3 + pos;
        return e;
    }
    *errpos = sl + 1;
    const char *q = memchr(rest, '?', rn);
    size_t an = q ? (size_t)(q - rest) : rn;
    if (an == 0)
        return tr_fail(err, TR_EINVAL, "mailto: URI without an address");
    char *addr = malloc(an + 1);
    if (addr == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < an; i++) {
        if (rest[i] == '%') {
            char hex[3] = {rest[i + 1], rest[i + 2], 0};
            addr[k++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            addr[k++] = rest[i];
        }
    }
    char detail[TR_ERRLEN];
    tr_err e = check_addr_spec(addr, k, detail);
    if (e != TR_OK)
        tr_fail(err, e, "mailto: %s", detail);
    free(addr);
    return e;
}

tr_err record_uri_normalize(const char *in, char **out, char *note, char *err)
{
    size_t n = strlen(in);
    *out = NULL;
    if (note)
        note[0] = 0;
    size_t sl = scheme_len(in, n);
    bool https = sl && scheme_is(in, sl, "https");
    bool mailto = sl && scheme_is(in, sl, "mailto");
    struct buf b;
    buf_init(&b, TEXT_MAX);
    char encoded[4] = {0};
    size_t nenc = 0;
    /* the host of https (after "//", to the next '/', '?' or '#'), the domain
     * of mailto (after the last '@' before '?') are lower-cased */
    size_t lo_from = n, lo_to = n;
    if (https && n > sl + 3 && in[sl + 1] == '/' && in[sl + 2] == '/') {
        lo_from = sl + 3;
        lo_to = lo_from + strcspn(in + lo_from, "/?#");
    } else if (mailto) {
        lo_to = sl + 1 + strcspn(in + sl + 1, "?");
        for (size_t i = sl + 1; i < lo_to; i++)
            if (in[i] == '@')
                lo_from = i + 1;
    }
    tr_err e = TR_OK;
    for (size_t i = 0; i < n && e == TR_OK; i++) {
        char c = in[i];
        if (i < sl || (i >= lo_from && i < lo_to))
            c = (char)lower((unsigned char)c);
        if (sl && i > sl && (c == ',' || c == '!' || c == ';')) {
            char enc[4];
            snprintf(enc, sizeof enc, "%%%02X", (unsigned)c);
            e = buf_append(&b, enc, 3);
            if (!memchr(encoded, c, nenc))
                encoded[nenc++] = c;
            continue;
        }
        if (c == '%' && i + 2 < n && is_hex((unsigned char)in[i + 1]) &&
            is_hex((unsigned char)in[i + 2])) {
            char enc[3] = {'%', in[i + 1], in[i + 2]};
            for (int k = 1; k < 3; k++)
                if (enc[k] >= 'a' && enc[k] <= 'f')
                    enc[k] = (char)(enc[k] - 32);
            e = buf_append(&b, enc, 3);
            i += 2;
            continue;
        }
        e = buf_append(&b, &c, 1);
    }
    if (e != TR_OK) {
        buf_free(&b);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    size_t pos;
    char detail[TR_ERRLEN];
    if (record_uri_check((char *)b.data, b.len, &pos, detail) != TR_OK) {
        buf_free(&b);
        return tr_fail(err, TR_EINVAL, "'%s': %s", in, detail);
    }
    if (note && nenc) {
        size_t k = (size_t)snprintf(note, TR_ERRLEN, "'%s': percent-encoded", in);
        for (size_t i = 0; i < nenc && k < TR_ERRLEN; i++)
            k += (size_t)snprintf(note + k, TR_ERRLEN - k, "%s '%c' as %%%02X", i ? "," : "",
                                  encoded[i], (unsigned)encoded[i]);
        if (k < TR_ERRLEN)
            snprintf(note + k, TR_ERRLEN - k, " (RFC 8460 §3)");
    }
    *out = (char *)b.data;
    return TR_OK;
}

tr_err record_mailbox_uri(const char *addr, char **out, char *note, char *err)
{
    size_t n = strlen(addr);
    if (n >= 7 && scheme_len(addr, n) == 6 && scheme_is(addr, 6, "mailto"))
        return record_uri_normalize(addr, out, note, err);
    char *uri = malloc(n + 8);
    if (uri == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    memcpy(uri, "mailto:", 7);
    memcpy(uri + 7, addr, n + 1);
    tr_err e = record_uri_normalize(uri, out, note, err);
    free(uri);
    return e;
}

bool record_uri_reaches(const char *dest, const char *coll)
{
    if (strncmp(coll, "mailto:", 7) == 0) {
        size_t dl = strcspn(dest, "?"), cl = strcspn(coll, "?");
        if (strncmp(dest, "mailto:", 7) != 0 || dl != cl)
            return false;
        for (size_t i = 7; i < dl; i++)
            if (lower((unsigned char)dest[i]) != lower((unsigned char)coll[i]))
                return false;
        return true;
    }
    size_t cn = strlen(coll);
    while (cn > 0 && coll[cn - 1] == '/')
        cn--;
    if (strncmp(dest, coll, cn) != 0)
        return false;
    return dest[cn] == 0 || strchr("/?#", dest[cn]) != NULL;
}

/* ---- the record and its zone-file form --------------------------------------------------- */

char *record_value(const char *const *uris, size_t n)
{
    struct buf b;
    buf_init(&b, TEXT_MAX);
    tr_err e = buf_append(&b, RECORD_VERSION "; rua=", strlen(RECORD_VERSION "; rua="));
    for (size_t i = 0; i < n && e == TR_OK; i++) {
        if (i)
            e = buf_append(&b, ",", 1);
        if (e == TR_OK)
            e = buf_append(&b, uris[i], strlen(uris[i]));
    }
    if (e != TR_OK) {
        buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

char *record_zone_strings(const char *value, size_t len)
{
    struct buf b;
    buf_init(&b, TEXT_MAX);
    tr_err e = TR_OK;
    size_t off = 0;
    do {
        size_t piece = len - off > RECORD_STRING_MAX ? RECORD_STRING_MAX : len - off;
        if (off)
            e = buf_append(&b, " ", 1);
        if (e == TR_OK)
            e = buf_append(&b, "\"", 1);
        for (size_t i = off; i < off + piece && e == TR_OK; i++) {
            unsigned char c = (unsigned char)value[i];
            char esc[5];
            if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                e = buf_append(&b, esc, 2);
            } else if (c < 0x20 || c > 0x7e) {
                snprintf(esc, sizeof esc, "\\%03u", c);
                e = buf_append(&b, esc, 4);
            } else {
                e = buf_append(&b, &c, 1);
            }
        }
        if (e == TR_OK)
            e = buf_append(&b, "\"", 1);
        off += piece;
    } while (off < len && e == TR_OK);
    if (e != TR_OK) {
        buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

char *record_zone_line(const char *name, unsigned long ttl, const char *value)
{
    char *strings = record_zone_strings(value, strlen(value));
    if (strings == NULL)
        return NULL;
    size_t n = strlen(name) + strlen(strings) + 40;
    char *line = malloc(n);
    if (line)
        snprintf(line, n, "%s. %lu IN TXT %s", name, ttl, strings);
    free(strings);
    return line;
}

/* ---- the RFC 8460 §3 grammar ------------------------------------------------------------- */

static tr_err parse_fail(struct record_parse *out, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static tr_err parse_fail(struct record_parse *out, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->err, sizeof out->err, fmt, ap);
    va_end(ap);
    out->err_col = off + 1;
    return TR_EPARSE;
}

static void parse_warn(struct record_parse *out, size_t off, const char *msg)
{
    if (out->nwarn == RECORD_MAX_WARN)
        return;
    out->warn_col[out->nwarn] = off + 1;
    snprintf(out->warn[out->nwarn], TR_ERRLEN, "%s", msg);
    out->nwarn++;
}

/* tlsrpt-rua after "rua=": tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri). *p is left
 * after the last URI. */
static tr_err parse_rua(const char *rec, size_t len, size_t *p, struct record_parse *out)
{
    size_t i = *p;
    for (;;) {
        size_t start = i;
        while (i < len && !is_wsp(rec[i]) && rec[i] != ',' && rec[i] != ';')
            i++;
        if (i == start) {
            if (start < len && is_wsp(rec[start]))
                return parse_fail(out, start, "whitespace is not allowed right after '%s'",
                                  rec[start - 1] == '=' ? "rua=" : ",");
            return parse_fail(out, start, "expected a URI after '%s'",
                              rec[start - 1] == '=' ? "rua=" : ",");
        }
        size_t pos;
        char detail[TR_ERRLEN];
        if (record_uri_check(rec + start, i - start, &pos, detail) != TR_OK)
            return parse_fail(out, start + pos, "%s", detail);
        if (out->nrua == RECORD_MAX_URIS)
            return parse_fail(out, start, "more than %d rua URIs", RECORD_MAX_URIS);
        out->rua[out->nrua++] = (struct record_span){start, i - start};
        size_t q = i;
        while (q < len && is_wsp(rec[q]))
            q++;
        if (q < len && rec[q] == ',') {
            i = q + 1;
            while (i < len && is_wsp(rec[i]))
                i++;
            continue;
        }
        *p = i;
        return TR_OK;
    }
}

/* tlsrpt-extension: tlsrpt-ext-name "=" tlsrpt-ext-value. */
static tr_err parse_extension(const char *rec, size_t len, size_t *p, struct record_parse *out)
{
    char cb[8];
    size_t start = *p, i = *p;
    if (i >= len || (!is_alpha((unsigned char)rec[i]) && !is_digit((unsigned char)rec[i]))) {
        if (i < len && rec[i] == ';')
            return parse_fail(out, i, "empty field (';' after ';')");
        return parse_fail(out, i, "expected a field name (a letter or digit), found %s",
                          i < len ? show_char((unsigned char)rec[i], cb) : "the end");
    }
    for (i++; i < len && rec[i] != '='; i++) {
        unsigned char c = (unsigned char)rec[i];
        if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-' && c != '.') {
            if (c == ';' || is_wsp(c))
                return parse_fail(out, i, "expected '=' after the field name '%.*s'",
                                  (int)(i - start), rec + start);
            return parse_fail(out, i, "%s is not allowed in a field name", show_char(c, cb));
        }
        if (i - start == 32)
            return parse_fail(out, i, "field name longer than 32 characters");
    }
    if (i >= len)
        return parse_fail(out, i, "expected '=' after the field name '%.*s'", (int)(i - start),
                          rec + start);
    size_t vstart = ++i;
    for (; i < len && rec[i] != ';' && !is_wsp(rec[i]); i++) {
        unsigned char c = (unsigned char)rec[i];
        if (c == '=')
            return parse_fail(out, i, "'=' is not allowed in the value of '%.*s'",
                              (int)(vstart - 1 - start), rec + start);
        if (c < 0x21 || c > 0x7e)
            return parse_fail(out, i, "%s is not allowed in the value of '%.*s'", show_char(c, cb),
                              (int)(vstart - 1 - start), rec + start);
    }
    if (i == vstart)
        return parse_fail(out, i, "empty value for '%.*s'", (int)(vstart - 1 - start), rec + start);
    if (out->next == RECORD_MAX_EXTS)
        return parse_fail(out, start, "more than %d extension fields", RECORD_MAX_EXTS);
    out->ext[out->next++] = (struct record_span){start, i - start};
    *p = i;
    return TR_OK;
}

static bool prefix_nocase(const char *s, size_t n, const char *want)
{
    size_t wl = strlen(want);
    if (n < wl)
        return false;
    for (size_t i = 0; i < wl; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)want[i]))
            return false;
    return true;
}

tr_err record_parse(const char *rec, size_t len, struct record_parse *out)
{
    memset(out, 0, sizeof *out);
    const size_t vl = strlen(RECORD_VERSION);
    if (len < vl || memcmp(rec, RECORD_VERSION, vl) != 0) {
        if (prefix_nocase(rec, len, RECORD_VERSION))
            return parse_fail(out, 0, "'%.*s' is not '" RECORD_VERSION "' (case-sensitive)",
                              (int)vl, rec);
        for (size_t i = 1; i + vl <= len; i++)
            if (memcmp(rec + i, RECORD_VERSION, vl) == 0)
                return parse_fail(out, 0, "'" RECORD_VERSION "' must come first");
        return parse_fail(out, 0, "a TLS-RPT record starts with '" RECORD_VERSION "'");
    }
    size_t p = vl;
    if (p < len && is_wsp(rec[p])) {
        size_t q = p;
        while (q < len && is_wsp(rec[q]))
            q++;
        if (q < len && rec[q] == ';')
            return parse_fail(out, p,
                              "whitespace before the first ';': senders discard records that do "
                              "not begin with '" RECORD_VERSION ";' (RFC 8460 §3)");
    }
    if (p >= len)
        return parse_fail(out, p, "expected '; rua=URI' after '" RECORD_VERSION "'");
    if (rec[p] != ';')
        return parse_fail(out, p, "expected ';' after '" RECORD_VERSION "'");
    size_t nfields = 0, rua_at = 0, rua_like = SIZE_MAX;
    while (p < len) { /* rec[p] is ';' */
        p++;
        while (p < len && is_wsp(rec[p]))
            p++;
        if (p == len && nfields > 0)
            break; /* the optional trailing delimiter */
        if (p == len)
            return parse_fail(out, p, "expected 'rua=URI' after '" RECORD_VERSION ";'");
        size_t fstart = p;
        tr_err e;
        if (len - p >= 4 && memcmp(rec + p, "rua=", 4) == 0) {
            if (out->nrua > 0)
                parse_warn(out, p,
                           "a second rua= field: list every URI in one rua=, separated "
                           "by ','");
            else
                rua_at = p;
            p += 4;
            e = parse_rua(rec, len, &p, out);
        } else {
            e = parse_extension(rec, len, &p, out);
            if (e == TR_OK && prefix_nocase(rec + fstart, len - fstart, "rua=") &&
                rua_like == SIZE_MAX)
                rua_like = fstart;
            if (e == TR_OK && len - fstart >= 2 && memcmp(rec + fstart, "v=", 2) == 0)
                parse_warn(out, fstart, "a second v= field (read as an extension)");
        }
        if (e != TR_OK)
            return e;
        nfields++;
        size_t ws = p;
        while (p < len && is_wsp(rec[p]))
            p++;
        if (p == len && ws < len)
            return parse_fail(out, ws, "trailing whitespace (allowed only around ';')");
        if (p < len && rec[p] != ';') {
            char cb[8];
            return parse_fail(out, p, "expected ';' between fields, found %s",
                              show_char((unsigned char)rec[p], cb));
        }
    }
    if (out->nrua == 0) {
        if (rua_like != SIZE_MAX)
            return parse_fail(out, rua_like,
                              "no rua= field: '%.3s=' is not 'rua=' (field names are "
                              "case-sensitive)",
                              rec + rua_like);
        return parse_fail(out, 0, "no rua= field: a TLS-RPT record needs rua=URI");
    }
    if (out->nrua > 2)
        parse_warn(out, rua_at,
                   "more than two rua destinations: some senders deliver to the "
                   "first only");
    return TR_OK;
}

/* ---- discovery --------------------------------------------------------------------------- */

tr_err record_discover(const struct record_txt *rrs, size_t n, struct record_discovery *out,
                       char *err)
{
    memset(out, 0, sizeof *out);
    out->ntxt = n;
    const char *tag = RECORD_VERSION ";";
    const size_t tl = strlen(tag);
    for (size_t i = 0; i < n; i++) {
        size_t total = 0;
        for (size_t k = 0; k < rrs[i].n; k++)
            total += rrs[i].str[k].len;
        char *joined = malloc(total + 1);
        if (joined == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        size_t off = 0;
        for (size_t k = 0; k < rrs[i].n; k++) {
            if (rrs[i].str[k].len)
                memcpy(joined + off, rrs[i].str[k].s, rrs[i].str[k].len);
            off += rrs[i].str[k].len;
        }
        joined[total] = 0;
        if (total < tl || memcmp(joined, tag, tl) != 0) {
            free(joined);
            continue;
        }
        out->ntlsrpt++;
        if (out->record == NULL) {
            out->record = joined;
            out->len = total;
            out->nstrings = rrs[i].n;
        } else {
            free(joined);
        }
    }
    if (out->ntlsrpt == 1)
        return TR_OK;
    free(out->record);
    out->record = NULL;
    out->len = 0;
    if (n == 0)
        return tr_fail(err, TR_EINVAL, "no TXT record: no TLS-RPT policy");
    if (out->ntlsrpt == 0)
        return tr_fail(err, TR_EINVAL,
                       "%zu TXT record%s, none beginning with '%s': no TLS-RPT policy", n,
                       n == 1 ? "" : "s", tag);
    return tr_fail(err, TR_EINVAL,
                   "%zu records begin with '%s': anything but exactly one means no TLS-RPT "
                   "policy (RFC 8460 §3)",
                   out->ntlsrpt, tag);
}

void record_discovery_free(struct record_discovery *d)
{
    free(d->record);
    d->record = NULL;
}

/* ---- MTA-STS ----------------------------------------------------------------------------- */

char *record_sts_policy(const char *mode, const char *const *mx, size_t nmx, unsigned long max_age)
{
    struct buf b;
    buf_init(&b, TEXT_MAX);
    char age[32];
    snprintf(age, sizeof age, "%lu", max_age);
    const char *const head[] = {"version: STSv1\r\nmode: ", mode, "\r\n"};
    tr_err e = TR_OK;
    for (size_t i = 0; i < 3 && e == TR_OK; i++)
        e = buf_append(&b, head[i], strlen(head[i]));
    for (size_t i = 0; i < nmx && e == TR_OK; i++) {
        e = buf_append(&b, "mx: ", 4);
        if (e == TR_OK)
            e = buf_append(&b, mx[i], strlen(mx[i]));
        if (e == TR_OK)
            e = buf_append(&b, "\r\n", 2);
    }
    const char *const tail[] = {"max_age: ", age, "\r\n"};
    for (size_t i = 0; i < 3 && e == TR_OK; i++)
        e = buf_append(&b, tail[i], strlen(tail[i]));
    if (e != TR_OK) {
        buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

void record_sts_id(const char *policy, char id[17])
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */
    for (const unsigned char *p = (const unsigned char *)policy; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    snprintf(id, 17, "%016llx", (unsigned long long)h);
}
