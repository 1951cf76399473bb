/* record.h: the `_smtp._tls` TXT record of TLS-RPT (RFC 8460 §3) and its
 * MTA-STS companions (RFC 8461 §3): domain and URI checks, the record value
 * and its zone-file form, the §3 grammar, the §3 discovery rules over TXT
 * records, and the MTA-STS record and policy file. Pure functions: no I/O,
 * no DNS (dns.h looks records up). Exports record_*; the rest is static. */
#ifndef TLSRPTD_RECORD_H
#define TLSRPTD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"

#define RECORD_DOMAIN_MAX  254 /* 253 octets + NUL */
#define RECORD_PREFIX      "_smtp._tls."
#define RECORD_VERSION     "v=TLSRPTv1"
#define RECORD_MAX_URIS    32 /* rua destinations one record may list */
#define RECORD_MAX_EXTS    32 /* extension fields one record may hold */
#define RECORD_MAX_WARN    4
#define RECORD_STRING_MAX  255        /* octets of one DNS character-string */
#define RECORD_STS_MAX_AGE 31557600ul /* RFC 8461 §3.2: at most one year */

/* A domain given by the user (--domain): one trailing dot dropped, lower-cased
 * into out; A-labels only. Refuses anything but LDH labels of 1-63 octets, a
 * numeric last label, and names too long for `_smtp._tls.` in front (more
 * than 242 octets). A U-label name is refused with its A-label in err (IDNA
 * 2008 through libidn2). TR_OK, or TR_EINVAL with err set. */
tr_err record_domain(const char *in, char out[RECORD_DOMAIN_MAX], char *err);
/* An MTA-STS mx pattern: a host name, or "*." and a host name. */
tr_err record_mx_host(const char *in, char out[RECORD_DOMAIN_MAX], char *err);

/* Check one rua URI as it stands in a record (s, n: the URI alone): RFC 3986
 * characters, `!` `,` `;` percent-encoded (RFC 8460 §3), scheme mailto or
 * https (any case), a mailto holding one addr-spec (RFC 5322 §3.4.1) before
 * any `?`, an https URI with a host. TR_OK, or TR_EINVAL with err set and
 * *errpos the offset in s of the problem. */
tr_err record_uri_check(const char *s, size_t n, size_t *errpos, char *err);
/* Normalise a URI for a record: scheme and host (https) or domain (mailto)
 * lower-cased, `,` `!` `;` percent-encoded, %xx in upper case; then checked
 * as record_uri_check does. *out is a NEW string the caller free()s. When a
 * character had to be encoded, note (TR_ERRLEN bytes, may be NULL) says which;
 * otherwise note is "". TR_OK, TR_EINVAL (err set) or TR_ENOMEM. */
tr_err record_uri_normalize(const char *in, char **out, char *note, char *err);
/* An address (report_mailbox: "tlsrpt@example.net", or already a mailto:
 * URI) as a normalised mailto: URI; *out as for record_uri_normalize. */
tr_err record_mailbox_uri(const char *addr, char **out, char *note, char *err);
/* Whether a destination of a record (dest, normalised) reaches the collector
 * address coll (normalised): the same mailbox (compared without letter case;
 * header fields ignored), or the same https URL or one below its path
 * (tlsrptd accepts PATH/anything). */
bool record_uri_reaches(const char *dest, const char *coll);

/* "v=TLSRPTv1; rua=URI,URI": a NEW string (free()), NULL when out of memory. */
char *record_value(const char *const *uris, size_t n);
/* The TXT data of value as zone-file character-strings: split into pieces of
 * at most 255 octets, each quoted, `"` and `\` escaped, bytes outside
 * printable ASCII as \DDD, joined by a space. NEW string, NULL on ENOMEM. */
char *record_zone_strings(const char *value, size_t len);
/* "NAME. TTL IN TXT STRINGS": name without the trailing dot. NEW string. */
char *record_zone_line(const char *name, unsigned long ttl, const char *value);

/* A span of the parsed record: the octets at rec[off, off + len). */
struct record_span {
    size_t off, len;
};

/* What record_parse found. */
struct record_parse {
    struct record_span rua[RECORD_MAX_URIS]; /* destinations, in record order */
    size_t nrua;
    struct record_span ext[RECORD_MAX_EXTS]; /* extension fields, "name=value" */
    size_t next;
    size_t err_col;      /* 1-based column of the first error; 0 when valid */
    char err[TR_ERRLEN]; /* what is wrong there */
    size_t nwarn;        /* valid, but worth a word */
    size_t warn_col[RECORD_MAX_WARN];
    char warn[RECORD_MAX_WARN][TR_ERRLEN];
};

/* Check a record (rec, len: the TXT strings concatenated) against the RFC 8460
 * §3 grammar: `v=TLSRPTv1` first (case-sensitive), then fields delimited by
 * *WSP ";" *WSP, an optional trailing ";", one `rua=` with URIs separated by
 * *WSP "," *WSP, extensions `name=value`. Also refused: whitespace before the
 * first ";" (the grammar allows it, but discovery discards any record that
 * does not begin with "v=TLSRPTv1;") and a record without rua. TR_OK when
 * valid, TR_EPARSE with out->err_col and out->err set otherwise. */
tr_err record_parse(const char *rec, size_t len, struct record_parse *out);

/* One DNS character-string, and one TXT resource record as its strings. */
struct record_string {
    const char *s;
    size_t len;
};
struct record_txt {
    const struct record_string *str;
    size_t n;
};

/* What the discovery rules made of the TXT records at _smtp._tls.<domain>. */
struct record_discovery {
    size_t ntxt;    /* TXT records given */
    size_t ntlsrpt; /* of them, beginning with "v=TLSRPTv1;" (strings joined) */
    char *record;   /* the one TLS-RPT record (NEW, NUL-terminated), else NULL */
    size_t len;
    size_t nstrings; /* character-strings it was made of */
};

/* RFC 8460 §3 discovery: the strings of each record are concatenated without
 * a separator; records that do not begin with "v=TLSRPTv1;" are discarded;
 * anything but exactly one left means no policy. TR_OK with out->record set,
 * TR_EINVAL (err says why there is no policy) or TR_ENOMEM.
 * record_discovery_free() releases out in every case. */
tr_err record_discover(const struct record_txt *rrs, size_t n, struct record_discovery *out,
                       char *err);
void record_discovery_free(struct record_discovery *d);

/* MTA-STS (RFC 8461 §3.2): the policy file, "version: STSv1", "mode: MODE",
 * one "mx: HOST" each, "max_age: S", every line ended by CRLF. mode is
 * testing, enforce or none. NEW string, NULL on ENOMEM. */
char *record_sts_policy(const char *mode, const char *const *mx, size_t nmx, unsigned long max_age);
/* The policy id: 16 lower-case hex digits of the 64-bit FNV-1a hash of the
 * policy text, so the same policy always gets the same id and any change to
 * it a new one. */
void record_sts_id(const char *policy, char id[17]);

#endif
