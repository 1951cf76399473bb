/* dkim.c: DKIM verification of mailed reports (dkim.h), with libopendkim.
 *
 * libopendkim parses the signatures, canonicalizes header and body and checks
 * the hashes and the signatures. Two things it is told here: where the keys
 * come from (a key lookup callback that asks DNS through dns.h, so every
 * lookup is bounded by the message's time budget and a DNS failure, a
 * temperror, is told from a missing key, a fail) and which keys serve
 * TLS-RPT: libopendkim accepts keys for s=email or * only, RFC 8460 §3 wants
 * s=tlsrpt or *, so the callback drops the s= tag of a key that serves
 * TLS-RPT and refuses one that does not. Verifying is this file's whole job;
 * what a verdict leads to is decided by ingest.c. The only file that includes
 * libopendkim. */
#define _DEFAULT_SOURCE /* u_char, u_int: libopendkim's header uses them */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <opendkim/dkim.h>
#include "tlsrptd/dkim.h"
#include "tlsrptd/dns.h"

/* ---- names ---------------------------------------------------------------------------------- */

bool dkim_policy_parse(const char *s, enum dkim_policy *out)
{
    static const char *const names[] = {"off", "record", "require"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum dkim_policy)i;
            return true;
        }
    }
    return false;
}

const char *dkim_result_name(enum dkim_result r)
{
    switch (r) {
    case DKIM_RESULT_PASS:
        return "pass";
    case DKIM_RESULT_FAIL:
        return "fail";
    case DKIM_RESULT_TEMPERROR:
        return "temperror";
    default:
        return "none";
    }
}

/* ---- the pure parts ------------------------------------------------------------------------- */

/* s without surrounding white space and one trailing dot: *len bytes from the return. */
static const char *trimmed_domain(const char *s, size_t *len)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    if (n && s[n - 1] == '.')
        n--;
    *len = n;
    return s;
}

bool dkim_domain_covers(const char *d, const char *domain)
{
    if (d == NULL || domain == NULL)
        return false;
    size_t dl, nl;
    d = trimmed_domain(d, &dl);
    domain = trimmed_domain(domain, &nl);
    if (dl == 0 || nl < dl || strncasecmp(domain + (nl - dl), d, dl) != 0)
        return false;
    return nl == dl || domain[nl - dl - 1] == '.';
}

static bool is_fws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* [*p, end) trimmed of folding white space on both sides. */
static void trim_span(const char **p, const char **end)
{
    while (*p < *end && is_fws(**p))
        (*p)++;
    while (*end > *p && is_fws((*end)[-1]))
        (*end)--;
}

/* Does the s= value [v, end) name "tlsrpt" or "*" among its colon-separated types? */
static bool serves_tlsrpt(const char *v, const char *end)
{
    while (v <= end) {
        const char *stop = memchr(v, ':', (size_t)(end - v));
        if (stop == NULL)
            stop = end;
        const char *a = v, *b = stop;
        trim_span(&a, &b);
        size_t n = (size_t)(b - a);
        if ((n == 1 && *a == '*') || (n == 6 && strncasecmp(a, "tlsrpt", 6) == 0))
            return true;
        v = stop + 1;
    }
    return false;
}

tr_err dkim_key_for_tlsrpt(const char *record, char *out, size_t outlen, char *why)
{
    size_t used = 0;
    bool seen_s = false;
    if (outlen == 0)
        return tr_fail(why, TR_ETOOBIG, "no room for the key record");
    out[0] = 0;
    for (const char *p = record; *p;) {
        const char *end = strchr(p, ';');
        const char *next = end ? end + 1 : p + strlen(p);
        if (end == NULL)
            end = next;
        const char *a = p, *b = end;
        trim_span(&a, &b);
        p = next;
        if (a == b)
            continue; /* an empty tag-spec: "…; " at the end */
        const char *eq = memchr(a, '=', (size_t)(b - a));
        const char *na = a, *nb = eq ? eq : b;
        trim_span(&na, &nb);
        if (nb - na == 1 && *na == 's') {
            if (seen_s)
                return tr_fail(why, TR_EINVAL, "key record has two s= tags (RFC 6376 §3.2)");
            seen_s = true;
            const char *va = eq ? eq + 1 : b, *vb = b;
            trim_span(&va, &vb);
            if (!serves_tlsrpt(va, vb))
                return tr_fail(why, TR_EINVAL,
                               "key is for s=%.*s, not tlsrpt (RFC 8460 §3 asks for s=tlsrpt or "
                               "s=*)",
                               (int)(vb - va > 64 ? 64 : vb - va), va);
            continue; /* served: libopendkim must not refuse it for lacking "email" */
        }
        size_t n = (size_t)(b - a);
        if (used + (used ? 2 : 0) + n + 1 > outlen)
            return tr_fail(why, TR_ETOOBIG, "key record longer than %zu bytes", outlen - 1);
        if (used) {
            memcpy(out + used, "; ", 2);
            used += 2;
        }
        memcpy(out + used, a, n);
        used += n;
        out[used] = 0;
    }
    return TR_OK;
}

static void set_text(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* The first signature in state: one whose domain covers the submitter and
 * from_domain if there is one (never, when they are NULL), else any. */
static const struct dkim_sig_outcome *first_in(const struct dkim_sig_outcome *sigs, size_t n,
                                               enum dkim_sig_state state, const char *submitter,
                                               const char *from_domain)
{
    for (size_t i = 0; i < n; i++)
        if (sigs[i].state == state && dkim_domain_covers(sigs[i].domain, submitter) &&
            dkim_domain_covers(sigs[i].domain, from_domain))
            return &sigs[i];
    for (size_t i = 0; i < n; i++)
        if (sigs[i].state == state)
            return &sigs[i];
    return NULL;
}

void dkim_combine(const struct dkim_sig_outcome *sigs, size_t n, const char *submitter,
                  const char *from_domain, struct dkim_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->result = DKIM_RESULT_NONE;
    if (n == 0)
        return;
    const struct dkim_sig_outcome *pick = NULL;
    if ((pick = first_in(sigs, n, DKIM_SIG_PASS, submitter, from_domain)) != NULL)
        out->result = DKIM_RESULT_PASS;
    else if ((pick = first_in(sigs, n, DKIM_SIG_TEMPERROR, NULL, NULL)) != NULL)
        out->result = DKIM_RESULT_TEMPERROR; /* the key may be found later */
    else
        pick = &sigs[0], out->result = DKIM_RESULT_FAIL;
    set_text(out->domain, sizeof out->domain, pick->domain);
    if (out->result != DKIM_RESULT_PASS)
        set_text(out->reason, sizeof out->reason, pick->reason ? pick->reason : "not verified");
    out->aligned = dkim_domain_covers(pick->domain, submitter) &&
                   dkim_domain_covers(pick->domain, from_domain);
}

/* ---- libopendkim ---------------------------------------------------------------------------- */

/* What the key lookup decided about one signature, when it decided. */
struct sig_note {
    DKIM_SIGINFO *sig;
    enum dkim_sig_state state; /* DKIM_SIG_PASS: the key was handed to libopendkim */
    char reason[TR_ERRLEN];
};

/* One message's verification (the DKIM handle's user context). */
struct verify_ctx {
    struct timespec deadline; /* the key lookups' time budget ends */
    unsigned timeout;
    struct dns_server resolver;
    struct sig_note notes[DKIM_MAX_SIGNATURES];
    size_t nnotes;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static DKIM_LIB *lib; /* shared by every thread, as libopendkim allows */
static char lib_error[TR_ERRLEN];

static struct sig_note *note_for(struct verify_ctx *c, DKIM_SIGINFO *sig)
{
    for (size_t i = 0; i < c->nnotes; i++)
        if (c->notes[i].sig == sig)
            return &c->notes[i];
    if (c->nnotes == DKIM_MAX_SIGNATURES)
        return NULL;
    struct sig_note *n = &c->notes[c->nnotes++];
    memset(n, 0, sizeof *n);
    n->sig = sig;
    return n;
}

static double seconds_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(deadline->tv_sec - now.tv_sec) +
           (double)(deadline->tv_nsec - now.tv_nsec) / 1e9;
}

/* A DNS name made of printable ASCII without spaces, under 254 bytes. */
static bool key_name(DKIM_SIGINFO *sig, char *out, size_t outlen)
{
    const char *sel = (const char *)dkim_sig_getselector(sig);
    const char *dom = (const char *)dkim_sig_getdomain(sig);
    if (sel == NULL || dom == NULL || sel[0] == 0 || dom[0] == 0)
        return false;
    int n = snprintf(out, outlen, "%s._domainkey.%s", sel, dom);
    if (n < 0 || (size_t)n >= outlen || n > 253)
        return false;
    for (const char *p = out; *p; p++)
        if (*p <= ' ' || *p >= 0x7f)
            return false;
    return true;
}

/* libopendkim's key lookup: the TXT record at <s>._domainkey.<d>, its
 * strings joined (RFC 6376 §3.6.2.2), checked for the tlsrpt service. A
 * missing key or a DNS failure is noted for the signature (fail or
 * temperror) and reported as "not found", so libopendkim goes on with the
 * other signatures. */
static DKIM_CBSTAT key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    struct verify_ctx *c = dkim_get_user_context(dkim);
    struct sig_note *note = c ? note_for(c, sig) : NULL;
    if (note == NULL)
        return DKIM_CBSTAT_ERROR;
    char name[300];
    note->state = DKIM_SIG_FAIL;
    if (!key_name(sig, name, sizeof name)) {
        snprintf(note->reason, sizeof note->reason, "s= and d= make no DNS name for the key");
        return DKIM_CBSTAT_NOTFOUND;
    }
    double left = seconds_left(&c->deadline);
    if (left <= 0) {
        note->state = DKIM_SIG_TEMPERROR;
        snprintf(note->reason, sizeof note->reason,
                 "key lookup of %.120s not tried: the message's key lookups took dkim_timeout "
                 "(%u s)",
                 name, c->timeout);
        return DKIM_CBSTAT_NOTFOUND;
    }
    /* two tries within what is left (the resolver counts whole seconds) */
    int secs = (int)(left + 0.5);
    int tries = secs >= 2 ? 2 : 1;
    int per_try = secs / tries > 1 ? secs / tries : 1;
    struct dns_txt txt;
    enum dns_status status;
    char err[TR_ERRLEN];
    tr_err rc = dns_lookup_txt_tries(name, &c->resolver, tries, per_try, &txt, &status, err);
    DKIM_CBSTAT cb = DKIM_CBSTAT_NOTFOUND;
    if (rc == TR_ENOMEM) {
        note->state = DKIM_SIG_TEMPERROR;
        snprintf(note->reason, sizeof note->reason, "out of memory");
    } else if (rc != TR_OK) {
        note->state = DKIM_SIG_TEMPERROR;
        snprintf(note->reason, sizeof note->reason, "key lookup failed: %.200s", err);
    } else if (status != DNS_OK || txt.nrr == 0) {
        snprintf(note->reason, sizeof note->reason, "no key at %.200s (%s)", name,
                 status == DNS_NXDOMAIN ? "no such name" : "no TXT record");
    } else {
        /* the first record (RFC 6376 §6.1.2 lets a verifier choose one) */
        char record[2048];
        size_t len = 0;
        bool fits = true;
        for (size_t i = 0; i < txt.rr[0].n && fits; i++) {
            const struct record_string *s = &txt.rr[0].str[i];
            fits = len + s->len < sizeof record && memchr(s->s, 0, s->len) == NULL;
            if (fits) {
                memcpy(record + len, s->s, s->len);
                len += s->len;
            }
        }
        record[len] = 0;
        char why[TR_ERRLEN];
        if (!fits) {
            snprintf(note->reason, sizeof note->reason,
                     "key record at %.200s is too long or holds a NUL byte", name);
        } else if (dkim_key_for_tlsrpt(record, (char *)buf, buflen, why) != TR_OK) {
            snprintf(note->reason, sizeof note->reason, "%s", why);
        } else {
            note->state = DKIM_SIG_PASS; /* libopendkim decides */
            cb = DKIM_CBSTAT_CONTINUE;
        }
    }
    dns_txt_free(&txt);
    return cb;
}

/* Verify the first DKIM_MAX_SIGNATURES signatures of a message; ignore the
 * rest (RFC 6376 §6.1 lets a verifier limit them), so a message cannot make
 * us look up any number of keys. */
static DKIM_CBSTAT prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
    (void)dkim;
    for (int i = DKIM_MAX_SIGNATURES; i < nsigs; i++)
        dkim_sig_ignore(sigs[i]);
    return DKIM_CBSTAT_CONTINUE;
}

static void lib_setup(void)
{
    lib = dkim_init(NULL, NULL);
    if (lib == NULL) {
        snprintf(lib_error, sizeof lib_error, "libopendkim: dkim_init failed (out of memory)");
        return;
    }
    /* FIXCRLF: Maildir files end their lines in LF, canonicalization wants CRLF;
     * BADSIGHANDLES: a signature with a syntax error is listed (as failed) too */
    unsigned flags = DKIM_LIBFLAGS_FIXCRLF | DKIM_LIBFLAGS_BADSIGHANDLES;
    if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags) != DKIM_STAT_OK ||
        dkim_set_key_lookup(lib, key_lookup) != DKIM_STAT_OK ||
        dkim_set_prescreen(lib, prescreen) != DKIM_STAT_OK) {
        snprintf(lib_error, sizeof lib_error, "libopendkim: cannot set its options");
        dkim_close(lib);
        lib = NULL;
    }
}

/* Why a signature libopendkim processed did not verify. */
static const char *sig_reason(DKIM_SIGINFO *sig)
{
    int e = dkim_sig_geterror(sig);
    if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH)
        return "body hash did not verify";
    switch (e) {
    case DKIM_SIGERROR_BADSIG:
        return "signature did not verify";
    case DKIM_SIGERROR_EXPIRED:
        return "signature expired (x=)";
    case DKIM_SIGERROR_FUTURE:
        return "signature dated in the future (t=)";
    case DKIM_SIGERROR_KEYREVOKED:
        return "key revoked (empty p=)";
    case DKIM_SIGERROR_KEYTOOSMALL:
        return "key too small (under 1024 bits)";
    case DKIM_SIGERROR_UNKNOWN:
    case DKIM_SIGERROR_OK:
        return "not verified";
    default: {
        const char *s = dkim_sig_geterrorstr(e);
        return s ? s : "not verified";
    }
    }
}

/* The outcome of one signature after dkim_eom(). */
static void sig_outcome(DKIM *dkim, DKIM_SIGINFO *sig, struct verify_ctx *c,
                        struct dkim_sig_outcome *o)
{
    o->domain = (const char *)dkim_sig_getdomain(sig);
    o->state = DKIM_SIG_FAIL;
    o->reason = NULL;
    for (size_t i = 0; i < c->nnotes; i++) {
        if (c->notes[i].sig == sig && c->notes[i].state != DKIM_SIG_PASS) {
            o->state = c->notes[i].state;
            o->reason = c->notes[i].reason;
            return;
        }
    }
    unsigned flags = dkim_sig_getflags(sig);
    if ((flags & DKIM_SIGFLAG_PASSED) == 0 || dkim_sig_getbh(sig) != DKIM_SIGBH_MATCH) {
        o->reason = sig_reason(sig);
        return;
    }
    ssize_t signlen = -1;
    if (dkim_sig_getcanonlen(dkim, sig, NULL, NULL, &signlen) == DKIM_STAT_OK && signlen >= 0) {
        /* RFC 6376 §6.3: a verifier may treat what follows l= as unsigned */
        o->reason = "l= signs only the start of the body (RFC 6376 §8.2): not accepted";
        return;
    }
    o->state = DKIM_SIG_PASS;
}

void dkim_verify_message(const void *msg, size_t len, const char *submitter,
                         const struct dkim_config *opt, struct dkim_verdict *out)
{
    memset(out, 0, sizeof *out);
    pthread_once(&lib_once, lib_setup);
    if (lib == NULL) {
        out->result = DKIM_RESULT_TEMPERROR;
        snprintf(out->reason, sizeof out->reason, "%s", lib_error);
        return;
    }
    struct verify_ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        out->result = DKIM_RESULT_TEMPERROR;
        snprintf(out->reason, sizeof out->reason, "out of memory");
        return;
    }
    c->timeout = opt && opt->timeout ? opt->timeout : DKIM_DEFAULT_TIMEOUT;
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += (time_t)c->timeout;
    char ignore[TR_ERRLEN];
    (void)dns_server_parse(NULL, &c->resolver, ignore); /* the system resolver */

    DKIM_STAT st;
    DKIM *d = dkim_verify(lib, (const unsigned char *)"tlsrptd", NULL, &st);
    if (d == NULL) {
        free(c);
        out->result = DKIM_RESULT_TEMPERROR;
        snprintf(out->reason, sizeof out->reason, "libopendkim: %s", dkim_getresultstr(st));
        return;
    }
    dkim_set_user_context(d, c);
    /* libopendkim reads the buffer and never writes it */
    st = dkim_chunk(d, (u_char *)(uintptr_t)msg, len);
    if (st == DKIM_STAT_OK)
        st = dkim_chunk(d, NULL, 0);
    if (st == DKIM_STAT_OK)
        st = dkim_eom(d, NULL);

    DKIM_SIGINFO **sigs = NULL;
    int nsigs = 0;
    if (st == DKIM_STAT_NORESOURCE || st == DKIM_STAT_INTERNAL) {
        out->result = DKIM_RESULT_TEMPERROR;
        snprintf(out->reason, sizeof out->reason, "libopendkim: %s", dkim_getresultstr(st));
    } else if (st == DKIM_STAT_NOSIG || dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK ||
               nsigs <= 0) {
        out->result = DKIM_RESULT_NONE;
    } else {
        struct dkim_sig_outcome o[DKIM_MAX_SIGNATURES];
        size_t n = 0;
        for (int i = 0; i < nsigs && n < DKIM_MAX_SIGNATURES; i++)
            if ((dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_IGNORE) == 0)
                sig_outcome(d, sigs[i], c, &o[n++]);
        dkim_combine(o, n, submitter, (const char *)dkim_getdomain(d), out);
    }
    dkim_free(d);
    free(c);
}
