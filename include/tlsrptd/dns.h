/* dns.h: TXT lookups for `tlsrptd record --check` through libresolv, with the
 * system resolver or one given IPv4 server (HOST:PORT). Returns each TXT
 * record as its character-strings (record.h's struct record_txt), so the
 * RFC 8460 §3 discovery rules can be applied to exactly what DNS said. */
#ifndef TLSRPTD_DNS_H
#define TLSRPTD_DNS_H

#include <netinet/in.h>
#include "tlsrptd/err.h"
#include "tlsrptd/record.h"

enum dns_status {
    DNS_OK,       /* an answer: rr[0, nrr) holds its TXT records (maybe none) */
    DNS_NXDOMAIN, /* the name does not exist */
    DNS_NODATA,   /* the name exists, without TXT records */
    DNS_SERVFAIL, /* the server failed (SERVFAIL): try again later */
    DNS_REFUSED,  /* the server refused or did not understand the query */
    DNS_TIMEOUT,  /* no answer in time, or the server is unreachable */
    DNS_ERROR     /* anything else (a malformed answer, no resolver set up) */
};

struct dns_server {
    struct sockaddr_in addr; /* sin_family 0: the system resolver */
    char name[64];           /* "127.0.0.1:5353" or "the system resolver", for messages */
};

/* The TXT records of one name. Owns its memory: dns_txt_free(). */
struct dns_txt {
    struct record_txt *rr;
    size_t nrr;
    struct record_string *strs; /* the strings of every record, in answer order */
    unsigned char *msg;         /* the answer they point into */
};

/* "HOST:PORT" or "HOST" (port 53); HOST an IPv4 address. NULL: the system
 * resolver. TR_OK or TR_EUSAGE with err set. */
tr_err dns_server_parse(const char *s, struct dns_server *out, char *err);
/* Look up the TXT records of name (an absolute name, no search list) with
 * timeout_s seconds per try, two tries. *status says what DNS answered;
 * TR_OK for DNS_OK, DNS_NXDOMAIN and DNS_NODATA (out holds what was found,
 * possibly nothing), TR_EIO otherwise, with err saying why. */
tr_err dns_lookup_txt(const char *name, const struct dns_server *srv, int timeout_s,
                      struct dns_txt *out, enum dns_status *status, char *err);
/* The same with tries tries (at least 1) of timeout_s seconds each. */
tr_err dns_lookup_txt_tries(const char *name, const struct dns_server *srv, int tries,
                            int timeout_s, struct dns_txt *out, enum dns_status *status, char *err);
void dns_txt_free(struct dns_txt *t);

#endif
