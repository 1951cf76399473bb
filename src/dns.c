/* dns.c: TXT lookups with libresolv (res_ninit, res_nmkquery, res_nsend,
 * ns_initparse/ns_parserr), so the answer's rcode tells NXDOMAIN, NODATA,
 * SERVFAIL and REFUSED apart and a timeout is told from them. A given server
 * replaces the resolv.conf name servers (IPv4 only: nsaddr_list). */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/dns.h"

#define ANSWER_MAX 65536 /* the largest DNS message (TCP) */

tr_err dns_server_parse(const char *s, struct dns_server *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (s == NULL) {
        snprintf(out->name, sizeof out->name, "the system resolver");
        return TR_OK;
    }
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    unsigned long port = 53;
    if (colon) {
        char *end;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || port == 0 || port > 65535 || colon[1] == '-')
            return tr_fail(err, TR_EUSAGE, "dns = %s: the port is not a number in 1-65535", s);
    }
    if (s[0] == '[' || (colon && memchr(s, ':', hl)))
        return tr_fail(err, TR_EUSAGE, "dns = %s: only IPv4 servers are supported", s);
    if (hl == 0 || hl >= sizeof host)
        return tr_fail(err, TR_EUSAGE, "dns = %s: expected an IPv4 address, HOST:PORT", s);
    memcpy(host, s, hl);
    host[hl] = 0;
    if (inet_pton(AF_INET, host, &out->addr.sin_addr) != 1)
        return tr_fail(err, TR_EUSAGE,
                       "dns = %s: '%s' is not an IPv4 address (HOST:PORT, no host names)", s, host);
    out->addr.sin_family = AF_INET;
    out->addr.sin_port = htons((unsigned short)port);
    snprintf(out->name, sizeof out->name, "%s:%lu", host, port);
    return TR_OK;
}

void dns_txt_free(struct dns_txt *t)
{
    free(t->rr);
    free(t->strs);
    free(t->msg);
    memset(t, 0, sizeof *t);
}

/* Collect the TXT records of the answer section (CNAMEs before them are
 * skipped: the resolver followed them) as strings pointing into msg. */
static tr_err collect_txt(ns_msg *msg, struct dns_txt *out, char *err)
{
    int nan = ns_msg_count(*msg, ns_s_an);
    size_t nstr = 0;
    ns_rr rr;
    for (int pass = 0; pass < 2; pass++) {
        size_t ri = 0, si = 0;
        for (int i = 0; i < nan; i++) {
            if (ns_parserr(msg, ns_s_an, i, &rr) < 0)
                return tr_fail(err, TR_EIO, "malformed answer (record %d)", i + 1);
            if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
                continue;
            const unsigned char *d = ns_rr_rdata(rr);
            size_t dl = ns_rr_rdlen(rr), k = 0, first = si;
            while (k < dl) {
                size_t sl = d[k];
                if (k + 1 + sl > dl)
                    return tr_fail(err, TR_EIO, "malformed TXT record (a string runs past it)");
                if (pass == 1)
                    out->strs[si] = (struct record_string){(const char *)d + k + 1, sl};
                si++;
                k += 1 + sl;
            }
            if (pass == 1)
                out->rr[ri] = (struct record_txt){out->strs + first, si - first};
            ri++;
        }
        if (pass == 0) {
            nstr = si;
            out->nrr = ri;
            out->rr = calloc(ri ? ri : 1, sizeof *out->rr);
            out->strs = calloc(nstr ? nstr : 1, sizeof *out->strs);
            if (out->rr == NULL || out->strs == NULL)
                return tr_fail(err, TR_ENOMEM, "out of memory");
        }
    }
    return TR_OK;
}

tr_err dns_lookup_txt(const char *name, const struct dns_server *srv, int timeout_s,
                      struct dns_txt *out, enum dns_status *status, char *err)
{
    return dns_lookup_txt_tries(name, srv, 2, timeout_s, out, status, err);
}

tr_err dns_lookup_txt_tries(const char *name, const struct dns_server *srv, int tries,
                            int timeout_s, struct dns_txt *out, enum dns_status *status, char *err)
{
    memset(out, 0, sizeof *out);
    *status = DNS_ERROR;
    struct __res_state rs;
    memset(&rs, 0, sizeof rs);
    if (res_ninit(&rs) != 0)
        return tr_fail(err, TR_EIO, "cannot set up the resolver (/etc/resolv.conf)");
    rs.retrans = timeout_s;
    rs.retry = tries > 0 ? tries : 1;
    rs.options |= RES_USE_EDNS0;
    if (srv->addr.sin_family == AF_INET) {
        rs.nscount = 1;
        rs.nsaddr_list[0] = srv->addr;
    }
    tr_err rc = TR_EIO;
    unsigned char query[NS_PACKETSZ];
    int ql =
        res_nmkquery(&rs, ns_o_query, name, ns_c_in, ns_t_txt, NULL, 0, NULL, query, sizeof query);
    if (ql < 0) {
        tr_fail(err, TR_EIO, "%s: cannot make a DNS query for this name", name);
        goto done;
    }
    if ((out->msg = malloc(ANSWER_MAX)) == NULL) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    memset(out->msg, 0, NS_HFIXEDSZ);
    errno = 0;
    int n = res_nsend(&rs, query, ql, out->msg, ANSWER_MAX);
    int rcode = -1;
    /* glibc ends SERVFAIL, NOTIMP and REFUSED answers in -1 (to try the next
     * server), but leaves the last one in the buffer: tell them from silence */
    if (n < 0 && memcmp(out->msg, query, 2) == 0 && (out->msg[2] & 0x80) &&
        (out->msg[3] & 0x0f) != ns_r_noerror && (out->msg[3] & 0x0f) != ns_r_nxdomain)
        rcode = out->msg[3] & 0x0f;
    if (n < 0 && rcode < 0) {
        *status = DNS_TIMEOUT;
        if (errno == ECONNREFUSED)
            tr_fail(err, TR_EIO, "%s: no DNS server at %s (connection refused)", name, srv->name);
        else
            tr_fail(err, TR_EIO, "%s: no answer from %s (timed out after %d tr%s of %d s)", name,
                    srv->name, rs.retry, rs.retry == 1 ? "y" : "ies", timeout_s);
        goto done;
    }
    ns_msg msg;
    if (n >= 0 && ns_initparse(out->msg, n, &msg) < 0) {
        tr_fail(err, TR_EIO, "%s: malformed answer from %s", name, srv->name);
        goto done;
    }
    if (n >= 0)
        rcode = ns_msg_getflag(msg, ns_f_rcode);
    switch (rcode) {
    case ns_r_noerror:
        rc = collect_txt(&msg, out, err);
        if (rc == TR_OK)
            *status = out->nrr ? DNS_OK : DNS_NODATA;
        break;
    case ns_r_nxdomain:
        *status = DNS_NXDOMAIN;
        rc = TR_OK;
        break;
    case ns_r_servfail:
        *status = DNS_SERVFAIL;
        tr_fail(err, TR_EIO, "%s: %s answered SERVFAIL (server failure; try again later)", name,
                srv->name);
        break;
    default:
        *status = DNS_REFUSED;
        if (rcode == ns_r_refused)
            tr_fail(err, TR_EIO, "%s: %s answered REFUSED (not a server for this name?)", name,
                    srv->name);
        else
            tr_fail(err, TR_EIO, "%s: %s answered with error rcode %d", name, srv->name, rcode);
        break;
    }
done:
    res_nclose(&rs);
    return rc;
}
