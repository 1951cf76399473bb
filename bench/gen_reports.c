/* gen_reports.c: write N distinct, realistic synthetic RFC 8460 reports for
 * the benchmarks: as .json.gz files (bench/ingest.sh), as mails in a Maildir
 * (bench/maildir.sh), or both.
 *
 *   gen_reports -n N [-o DIR] [-m MAILDIR] [-s SEED] [-d DOMAINS] [-y DAYS] [-f FIRST]
 *
 * At least one of -o and -m. The shapes copy real senders
 * (../shared/corpus/MANIFEST.tsv): Google (compact,
 * "<date>T00:00:00Z_<domain>", sts with policy-string and mx-host), Microsoft
 * ("<18 digits>+<domain>", no mx-host, tlsa policy-strings sometimes as ONE
 * JSON-encoded string, some datetimes without a zone), Mail.ru (sorted keys,
 * 3-space indent, failure details without IPs, end-datetime next day 00:00:00Z),
 * Mimecast (64-hex report-id, "failure-details":[] always) and a Postfix
 * tlsrpt-reporter (no-policy-found without policy-domain, summary first).
 * 1-4 policies per report, 0-8 failure details per policy.
 *
 * Report i gets policy domain (i mod DOMAINS) and day (i div DOMAINS), so the
 * (organization, report-id, date range) key never repeats. Each report is drawn
 * from its own PRNG stream seeded by (SEED, i): the output is deterministic
 * for a seed. With -o, files go to DIR/00 .. DIR/15 as
 * sender!domain!start!end!i.json.gz.
 *
 * -y DAYS keeps the dates within DAYS days (bench/summary.sh: 500 domains
 * and a year, several reports per domain and day, as a domain gets them from
 * several senders). Report i then gets day (i div DOMAINS) mod DAYS, and the
 * pass w = (i div DOMAINS) div DAYS chooses its sender: passes 0-5 take
 * Google, Microsoft, Mimecast, Mail.ru and Postfix hosts 1 and 2, rotated by
 * (domain + day) so that a partial last pass still mixes them; passes 6-13
 * take Postfix hosts 3-10. No two reports of one domain and day share an
 * organization-name, so the key stays unique; FIRST + N may not exceed
 * 14 * DOMAINS * DAYS. The draws are made as without -y (the sender and the
 * Postfix host are replaced after being drawn).
 * -f FIRST writes reports FIRST .. FIRST + N - 1 (default 0): exactly the
 * files of a run with -n FIRST + N, from FIRST on (a batch of new reports for
 * a database holding the first FIRST). Without -y and -f the output is that
 * of the generator before these options, byte for byte.
 *
 * With -m, the same gzipped report (byte for byte) is also mailed as RFC 8460
 * §5.3 says and real senders do: a message delivered into MAILDIR (its tmp/,
 * new/ and cur/ are created; each message is written to tmp/ and renamed into
 * new/ as <FIXED_EPOCH>.M<i>P<pid>.bench). Headers as the receiving MTA and
 * the sender leave them: Return-Path, Delivered-To, one Received, a
 * DKIM-Signature (random bytes, not verifiable), From, To, Date (the day after
 * the report's range), Subject "Report Domain: <domain> Submitter: <submitter>
 * Report-ID: <<report-id>>", Message-ID, MIME-Version, TLS-Report-Domain,
 * TLS-Report-Submitter and Content-Type multipart/report; report-type="tlsrpt".
 * The body is a short text/plain part and the report as application/tlsrpt+gzip,
 * base64 in 76-character lines, with Content-Disposition: attachment;
 * filename="<submitter>!<domain>!<start>!<end>!<i>.json.gz". The mail fields
 * come from a PRNG stream of their own, so -m changes no report.
 * A benchmark tool, not part of tlsrptd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tlsrptd/gz.h"

#define NSUBDIRS    16
#define DAY         86400
#define FIRST_DAY   1735689600 /* 2025-01-01T00:00:00Z */
#define MAXMX       3
#define FIXED_EPOCH 1767225600 /* 2026-01-01T00:00:00Z: Maildir names of the mails */

/* ---- randomness ----------------------------------------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream, uint64_t salt)
{
    r->s = seed ^ 0x6a09e667f3bcc909u;
    (void)splitmix(&r->s);
    r->s ^= stream * 0xd1342543de82ef95u + salt;
    (void)splitmix(&r->s);
}

static uint64_t rnd64(struct rng *r)
{
    return splitmix(&r->s);
}

/* Uniform in [0, n); the modulo bias is irrelevant for a benchmark. */
static unsigned rnd(struct rng *r, unsigned n)
{
    return n ? (unsigned)(rnd64(r) % n) : 0;
}

static bool chance(struct rng *r, unsigned percent)
{
    return rnd(r, 100) < percent;
}

/* A session count with a long tail: mostly small, sometimes 100000+. */
static int64_t rnd_count(struct rng *r, unsigned max_bits)
{
    unsigned bits = rnd(r, max_bits + 1);
    int64_t base = (int64_t)1 << bits;
    return base - 1 + (int64_t)(rnd64(r) % (uint64_t)base);
}

#define PICK(r, arr) ((arr)[rnd((r), sizeof(arr) / sizeof *(arr))])

/* ---- policy domains ------------------------------------------------------------------------- */

static const char *const words1[] = {
    "acme",  "blue",   "north",  "river",  "stone", "bright",  "swift",  "green", "silver",
    "cedar", "maple",  "harbor", "summit", "pixel", "quantum", "atlas",  "nova",  "lumen",
    "orbit", "vertex", "falcon", "coral",  "ember", "granite", "willow",
};
static const char *const words2[] = {
    "mail", "net",  "systems", "labs",   "works",  "cloud",  "media",  "group",  "tech",  "it",
    "bank", "shop", "hosting", "studio", "school", "health", "energy", "travel", "legal", "foods",
};
static const char *const tlds[] = {"com", "net", "org",   "de", "fr",
                                   "nl",  "io",  "co.uk", "ch", "se"};
static const unsigned max_ages[] = {86400, 86401, 604800, 1209600, 2592000, 31557600};
static const unsigned public_octets[] = {37,  46,  62,  77,  81,  85,  91,  95,
                                         145, 176, 178, 185, 193, 212, 213, 217};

/* What a domain publishes; the same in every report that names it. */
struct domain {
    char name[96];
    unsigned nmx;
    char mx[MAXMX][160];      /* MX host names (mx-host, receiving-mx-hostname) */
    char pattern[MAXMX][160]; /* the "mx:" lines of its MTA-STS policy */
    char ip4[MAXMX][16];
    char ip6[MAXMX][48];
    const char *mode;
    unsigned max_age;
    bool dane;
    unsigned ntlsa;
    char tlsa[4][96]; /* "3 1 1 <sha256 hex>" */
};

static void hex(struct rng *r, char *out, size_t nbytes, bool upper)
{
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    for (size_t i = 0; i < nbytes; i++) {
        unsigned b = rnd(r, 256);
        out[2 * i] = (upper ? up : lo)[b >> 4];
        out[2 * i + 1] = (upper ? up : lo)[b & 15];
    }
    out[2 * nbytes] = 0;
}

static void domain_make(uint64_t seed, unsigned k, struct domain *d)
{
    struct rng r;
    rng_seed(&r, seed, k, 0x646f6d61696e); /* "domain" */
    const unsigned n1 = sizeof words1 / sizeof *words1, n2 = sizeof words2 / sizeof *words2;
    unsigned w1 = k % n1, w2 = (k / n1) % n2, rep = k / (n1 * n2);
    const char *tld = PICK(&r, tlds);
    char name[sizeof d->name];
    if (rep)
        snprintf(name, sizeof name, "%s%s%u.%s", words1[w1], words2[w2], rep, tld);
    else
        snprintf(name, sizeof name, "%s%s.%s", words1[w1], words2[w2], tld);
    memcpy(d->name, name, sizeof name);

    d->nmx = 1 + rnd(&r, MAXMX);
    unsigned style = rnd(&r, 10); /* 0-5 own MX, 6-7 wildcard policy, 8-9 hosted at Microsoft */
    for (unsigned i = 0; i < d->nmx; i++) {
        char mx[sizeof d->mx[i]];
        if (style >= 8) {
            char label[sizeof name];
            memcpy(label, name, sizeof name);
            for (char *p = label; *p; p++)
                if (*p == '.')
                    *p = '-';
            if (i)
                snprintf(mx, sizeof mx, "%s%02u.mail.protection.outlook.com", label, i);
            else
                snprintf(mx, sizeof mx, "%s.mail.protection.outlook.com", label);
            snprintf(d->pattern[i], sizeof d->pattern[i], "*.mail.protection.outlook.com");
        } else {
            snprintf(mx, sizeof mx, "mx%u.%s", i + 1, name);
            if (style >= 6)
                snprintf(d->pattern[i], sizeof d->pattern[i], "*.%s", name);
            else
                memcpy(d->pattern[i], mx, sizeof mx);
        }
        memcpy(d->mx[i], mx, sizeof mx);
        snprintf(d->ip4[i], sizeof d->ip4[i], "%u.%u.%u.%u", PICK(&r, public_octets), rnd(&r, 256),
                 rnd(&r, 256), 1 + rnd(&r, 254));
        snprintf(d->ip6[i], sizeof d->ip6[i], "2a01:4f8:%x:%x::%x", rnd(&r, 0x10000),
                 rnd(&r, 0x10000), 1 + rnd(&r, 0xfffe));
    }
    if (style >= 6 && d->nmx > 1) /* a wildcard pattern is listed once */
        for (unsigned i = 1; i < d->nmx; i++)
            d->pattern[i][0] = 0;
    d->mode = chance(&r, 70) ? "enforce" : "testing";
    d->max_age = PICK(&r, max_ages);
    d->dane = chance(&r, 30);
    d->ntlsa = 1 + rnd(&r, 4);
    for (unsigned i = 0; i < d->ntlsa; i++) {
        char h[65];
        hex(&r, h, 32, true);
        snprintf(d->tlsa[i], sizeof d->tlsa[i], "%s 1 1 %s", chance(&r, 70) ? "3" : "2", h);
    }
}

/* ---- senders -------------------------------------------------------------------------------- */

enum sender { GOOGLE, MICROSOFT, MAILRU, MIMECAST, POSTFIX };

/* Fictional hosts running a Postfix tlsrpt-reporter (the report's organization-name). */
static const char *const postfix_hosts[] = {
    "sonne.sternwarte.example", "mail.kernel-hackers.example", "mx.uni-campus.example",
    "smtp.fjord.example",       "mail.hochschule.example",     "mx1.oldschool.example",
    "relay.lan-party.example",  "mail.bitwerk.example",        "mx.kooperative.example",
    "smtp.norte.example",
};

static enum sender pick_sender(struct rng *r)
{
    unsigned x = rnd(r, 100);
    return x < 40 ? GOOGLE : x < 70 ? MICROSOFT : x < 78 ? MAILRU : x < 88 ? MIMECAST : POSTFIX;
}

#define MAX_PASSES 14 /* -y: passes with a sender of their own (6 + the 8 other Postfix hosts) */

/* -y: the sender of pass w for domain k on day `day` (*host: its Postfix
 * host), distinct for the passes 0 .. MAX_PASSES - 1 of one domain and day. */
static enum sender pass_sender(uint64_t w, uint64_t k, uint64_t day, unsigned *host)
{
    static const enum sender first[6] = {GOOGLE, MICROSOFT, MIMECAST, MAILRU, POSTFIX, POSTFIX};
    if (w >= 6) {
        *host = (unsigned)(w - 4);
        return POSTFIX;
    }
    unsigned slot = (unsigned)((w + k + day) % 6);
    *host = slot >= 4 ? slot - 4 : 0; /* Postfix hosts 0 and 1 for slots 4 and 5 */
    return first[slot];
}

static const char *const sts_results[] = {
    "certificate-host-mismatch", "certificate-expired",    "certificate-not-trusted",
    "validation-failure",        "starttls-not-supported", "sts-policy-fetch-error",
    "sts-policy-invalid",        "sts-webpki-invalid",
};
static const char *const tlsa_results[] = {
    "tlsa-invalid",           "dnssec-invalid",     "dane-required",
    "starttls-not-supported", "validation-failure", "certificate-host-mismatch",
};
static const char *const none_results[] = {
    "starttls-not-supported",    "certificate-expired", "certificate-not-trusted",
    "certificate-host-mismatch", "validation-failure",
};
static const char *const mailru_results[] = {
    "sts-policy-fetch-error", "sts-policy-fetch-error", "sts-policy-invalid",
    "sts-webpki-invalid",     "validation-failure",
};
static const char *const mailru_reasons[] = {
    "bad https response code: 404",
    "bad https response code: 500",
    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
    "x509: certificate signed by unknown authority",
};

/* A sending MTA address of the sender: its real ranges, IPv4 or IPv6. */
static void sending_ip(struct rng *r, enum sender s, char *out, size_t n)
{
    bool v6 = chance(r, 30);
    switch (s) {
    case GOOGLE:
        if (v6)
            snprintf(out, n, "2a00:1450:%x:%x::%x", 0x4800 + rnd(r, 0x100), rnd(r, 0x40),
                     0x200 + rnd(r, 0x100));
        else
            snprintf(out, n, "209.85.%u.%u", 128 + rnd(r, 128), 1 + rnd(r, 254));
        break;
    case MICROSOFT:
        if (v6)
            snprintf(out, n, "2a01:111:f403:%x::%x", 0xc000 + rnd(r, 0x1000), 1 + rnd(r, 0x800));
        else
            snprintf(out, n, "%s.%u.%u", chance(r, 50) ? "40.92" : "52.100", rnd(r, 256),
                     1 + rnd(r, 254));
        break;
    case MIMECAST:
        snprintf(out, n, "%s.%u", chance(r, 50) ? "205.139.110" : "207.211.30", 1 + rnd(r, 254));
        break;
    default:
        if (v6)
            snprintf(out, n, "2001:67c:%x::%x", rnd(r, 0x10000), 1 + rnd(r, 0xff));
        else
            snprintf(out, n, "%u.%u.%u.%u", PICK(r, public_octets), rnd(r, 256), rnd(r, 256),
                     1 + rnd(r, 254));
    }
}

static json_t *failure_detail(struct rng *r, enum sender s, const struct domain *d,
                              const char *ptype, int64_t count)
{
    json_t *f = json_object();
    if (s == MAILRU) {
        char reason[512];
        if (chance(r, 20)) /* a Go error string with embedded quotes */
            snprintf(reason, sizeof reason,
                     "Get \"https://mta-sts.%s/.well-known/mta-sts.txt\": dial tcp: lookup "
                     "mta-sts.%s: no such host",
                     d->name, d->name);
        else
            snprintf(reason, sizeof reason, "%s", PICK(r, mailru_reasons));
        json_object_set_new(f, "result-type", json_string(PICK(r, mailru_results)));
        json_object_set_new(f, "failed-session-count", json_integer(count));
        json_object_set_new(f, "failure-reason-code", json_string(reason));
        return f;
    }
    const char *rt = strcmp(ptype, "sts") == 0    ? PICK(r, sts_results)
                     : strcmp(ptype, "tlsa") == 0 ? PICK(r, tlsa_results)
                                                  : PICK(r, none_results);
    unsigned mx = rnd(r, d->nmx);
    char ip[64];
    json_object_set_new(f, "result-type", json_string(rt));
    if (!(s == MICROSOFT && chance(r, 40))) { /* Microsoft often leaves it out */
        sending_ip(r, s, ip, sizeof ip);
        json_object_set_new(f, "sending-mta-ip", json_string(ip));
    }
    json_object_set_new(f, "receiving-mx-hostname", json_string(d->mx[mx]));
    if (s == POSTFIX && chance(r, 50))
        json_object_set_new(f, "receiving-mx-helo", json_string(d->mx[mx]));
    json_object_set_new(f, "receiving-ip", json_string(chance(r, 25) ? d->ip6[mx] : d->ip4[mx]));
    json_object_set_new(f, "failed-session-count", json_integer(count));
    if (strcmp(rt, "starttls-not-supported") == 0 && chance(r, 50))
        json_object_set_new(f, "failure-reason-code",
                            json_string("STARTTLS not offered in EHLO response"));
    else if (strcmp(rt, "certificate-host-mismatch") == 0 && chance(r, 30))
        json_object_set_new(f, "additional-information",
                            json_string("https://tls-reporting.example/info/host-mismatch"));
    return f;
}

static json_t *sts_policy_strings(const struct domain *d)
{
    char line[200];
    json_t *a = json_array();
    json_array_append_new(a, json_string("version: STSv1"));
    snprintf(line, sizeof line, "mode: %s", d->mode);
    json_array_append_new(a, json_string(line));
    for (unsigned i = 0; i < d->nmx; i++) {
        if (!d->pattern[i][0])
            continue;
        snprintf(line, sizeof line, "mx: %s", d->pattern[i]);
        json_array_append_new(a, json_string(line));
    }
    snprintf(line, sizeof line, "max_age: %u", d->max_age);
    json_array_append_new(a, json_string(line));
    return a;
}

static json_t *mx_hosts(const struct domain *d)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < d->nmx; i++)
        json_array_append_new(a, json_string(d->mx[i]));
    return a;
}

/* The "policy" object as this sender writes it. */
static json_t *policy_object(struct rng *r, enum sender s, const struct domain *d,
                             const char *ptype)
{
    json_t *p = json_object();
    json_object_set_new(p, "policy-type", json_string(ptype));
    if (strcmp(ptype, "sts") == 0 && s != MAILRU)
        json_object_set_new(p, "policy-string", sts_policy_strings(d));
    if (strcmp(ptype, "tlsa") == 0) {
        json_t *recs = json_array();
        for (unsigned i = 0; i < d->ntlsa; i++)
            json_array_append_new(recs, json_string(d->tlsa[i]));
        if (s == MICROSOFT && chance(r, 60)) { /* one string holding a JSON array */
            char *enc = json_dumps(recs, JSON_COMPACT);
            json_decref(recs);
            recs = json_array();
            json_array_append_new(recs, json_string(enc ? enc : "[]"));
            free(enc);
        }
        json_object_set_new(p, "policy-string", recs);
    }
    if (!(s == POSTFIX && strcmp(ptype, "no-policy-found") == 0))
        json_object_set_new(p, "policy-domain", json_string(d->name));
    if (strcmp(ptype, "sts") == 0 && (s == GOOGLE || s == MIMECAST || s == POSTFIX))
        json_object_set_new(p, "mx-host", mx_hosts(d));
    return p;
}

static json_t *policy_item(struct rng *r, enum sender s, const struct domain *d, const char *ptype)
{
    unsigned nfail = chance(r, 40) ? 0 : 1 + rnd(r, 8);
    json_t *details = json_array();
    int64_t failed = 0;
    for (unsigned i = 0; i < nfail; i++) {
        int64_t c = 1 + rnd_count(r, 6);
        failed += c;
        json_array_append_new(details, failure_detail(r, s, d, ptype, c));
    }
    if (s == MAILRU && nfail > 1 && chance(r, 30))
        failed--; /* Mail.ru: details add up to more than the summary says */

    json_t *summary = json_object();
    json_t *policy = policy_object(r, s, d, ptype);
    json_t *item = json_object();
    if (s == POSTFIX) {
        json_object_set_new(summary, "total-failure-session-count", json_integer(failed));
        json_object_set_new(summary, "total-successful-session-count",
                            json_integer(rnd_count(r, 10)));
        json_object_set_new(item, "summary", summary);
        json_object_set_new(item, "policy", policy);
    } else {
        json_object_set_new(summary, "total-successful-session-count",
                            json_integer(rnd_count(r, 17)));
        json_object_set_new(summary, "total-failure-session-count", json_integer(failed));
        json_object_set_new(item, "policy", policy);
        json_object_set_new(item, "summary", summary);
    }
    if (nfail > 0 || s == MIMECAST || s == POSTFIX)
        json_object_set_new(item, "failure-details", details);
    else
        json_decref(details);
    return item;
}

static const char *pick_policy_type(struct rng *r, enum sender s, const struct domain *d,
                                    size_t index)
{
    if (s == POSTFIX)
        return chance(r, 70) ? "no-policy-found" : "sts";
    if (s == MICROSOFT && d->dane && index <= 1)
        return index == 0 ? "sts" : "tlsa"; /* Microsoft: sts, then tlsa of the same domain */
    if (s == MAILRU)
        return "sts";
    unsigned x = rnd(r, 100);
    if (x < 65)
        return "sts";
    if (x < 80 && d->dane && s != MIMECAST)
        return "tlsa";
    return "no-policy-found";
}

/* ---- one report ----------------------------------------------------------------------------- */

struct gen {
    uint64_t seed;
    unsigned ndomains;
    unsigned ndays;      /* -y: dates wrap after ndays days; 0 = no wrapping */
    const char *outdir;  /* -o, or NULL */
    const char *maildir; /* -m, or NULL */
    struct buf gz;
    struct buf mail;
    char err[TR_ERRLEN];
};

/* days since 1970-01-01 -> y, m (1-12), d (civil_from_days, Howard Hinnant) */
static void civil(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    *year = y + (m <= 2);
    *month = (int)m;
    *day = (int)d;
}

static void fmt_day(int64_t t, const char *tod, const char *zone, char *out, size_t n)
{
    int64_t y;
    int m, d;
    civil(t / DAY, &y, &m, &d);
    snprintf(out, n, "%04d-%02d-%02dT%s%s", (int)(y % 10000), m, d, tod, zone);
}

static int write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return close(fd);
}

/* ---- the report as a mail (-m) -------------------------------------------------------------- */

/* What a sender puts in its report mails. */
struct mail_meta {
    enum sender sender;
    const char *submitter; /* TLS-Report-Submitter: the sender's domain */
    const char *contact;   /* the report's contact-info */
    const char *domain;    /* TLS-Report-Domain: the report's first policy domain */
    const char *report_id;
    const char *filename; /* of the attachment */
    int64_t end;          /* of the report's date range */
};

static bool mail_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool mail_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) != TR_OK)
        return false;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

/* Append p[0..n) in base64 (RFC 2045): lines of 76 characters, each ending in LF. */
static bool base64_lines(struct buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t chars = (n + 2) / 3 * 4;
    if (buf_reserve(b, chars + chars / 76 + 1) != TR_OK)
        return false;
    char *o = (char *)b->data + b->len, *start = o;
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
        if ((col += 4) == 76) {
            *o++ = '\n';
            col = 0;
        }
    }
    if (col)
        *o++ = '\n';
    b->len += (size_t)(o - start);
    b->data[b->len] = 0;
    return true;
}

/* Random base64 text of n characters (a DKIM hash or signature). */
static void rnd_base64(struct rng *r, char *out, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i++)
        out[i] = tab[rnd(r, 64)];
    out[n] = 0;
}

/* RFC 5322 date-time of t, in UTC */
static void fmt_mail_date(int64_t t, char *out, size_t n)
{
    static const char *const wdays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t y;
    int m, d;
    civil(t / DAY, &y, &m, &d);
    int64_t s = t % DAY;
    snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000", wdays[(t / DAY) % 7], d,
             months[m - 1], (int)(y % 10000), (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
}

/* The message of report i, as delivered: into g->mail. */
static bool build_mail(struct gen *g, uint64_t i, const struct mail_meta *mm)
{
    struct rng r;
    rng_seed(&r, g->seed, i, 0x6d61696c); /* "mail": a stream of its own */
    struct buf *b = &g->mail;
    buf_reset(b);

    const char *from = mm->sender == GOOGLE   ? "noreply-smtp-tls-reporting@google.com"
                       : mm->sender == MAILRU ? "noreply-smtp-tls-reporting@corp.mail.ru"
                                              : mm->contact;
    char date[64], received_date[64], boundary[80], msgid[128], bh[45], sig[345], qid[13];
    int64_t sent = mm->end + 1 + 3600 + (int64_t)rnd(&r, 6 * 3600); /* next morning */
    fmt_mail_date(sent, date, sizeof date);
    fmt_mail_date(sent + 1 + rnd(&r, 30), received_date, sizeof received_date);
    char h[33];
    hex(&r, h, 16, false);
    switch (mm->sender) {
    case GOOGLE:
        snprintf(boundary, sizeof boundary, "0000000000%.18s", h);
        snprintf(msgid, sizeof msgid, "<%.8s.%.8s.%" PRIu64 "tls@google.com>", h + 8, h + 16, i);
        break;
    case MICROSOFT:
        snprintf(boundary, sizeof boundary, "_%.8s-%.4s-%.4s-%.4s-%.12s_", h, h + 8, h + 12, h + 16,
                 h + 20);
        snprintf(msgid, sizeof msgid, "<%.16s@%s>", h, mm->submitter);
        break;
    default:
        snprintf(boundary, sizeof boundary, "----=_NextPart_%" PRIu64 "%.12s", i, h);
        snprintf(msgid, sizeof msgid, "<%.20s.%" PRIu64 "@%s>", h, i, mm->submitter);
    }
    rnd_base64(&r, bh, 43);
    bh[43] = '=';
    bh[44] = 0;
    rnd_base64(&r, sig, 342);
    sig[342] = sig[343] = '=';
    sig[344] = 0;
    hex(&r, h, 6, true);
    memcpy(qid, h, 12);
    qid[12] = 0;
    /* the sending MTA; drawn one by one (argument order is unspecified) */
    unsigned mta = 1 + rnd(&r, 40), ip[4];
    ip[0] = PICK(&r, public_octets);
    ip[1] = rnd(&r, 256);
    ip[2] = rnd(&r, 256);
    ip[3] = 1 + rnd(&r, 254);

    bool ok =
        mail_printf(b,
                    "Return-Path: <%s>\n"
                    "Delivered-To: tlsrpt@%s\n"
                    "Received: from mta%u.%s (mta%u.%s [%u.%u.%u.%u])\n"
                    "\tby mx1.%s (Postfix) with ESMTPS id %s\n"
                    "\tfor <tlsrpt@%s>; %s\n",
                    from, mm->domain, mta, mm->submitter, mta, mm->submitter, ip[0], ip[1], ip[2],
                    ip[3], mm->domain, qid, mm->domain, received_date) &&
        mail_printf(b,
                    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=tlsrpt;\n"
                    "\th=from:to:subject:date:message-id:tls-report-domain:tls-report-submitter;\n"
                    "\tbh=%s;\n\tb=",
                    mm->submitter, bh);
    for (size_t k = 0; ok && k < 344; k += 68) /* folded as senders fold it */
        ok = mail_printf(b, "%s%.68s", k ? "\n\t  " : "", sig + k);
    ok = ok &&
         mail_printf(b,
                     "\n"
                     "From: %s\n"
                     "To: tlsrpt@%s\n"
                     "Date: %s\n"
                     "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\n"
                     "Message-ID: %s\n"
                     "MIME-Version: 1.0\n"
                     "TLS-Report-Domain: %s\n"
                     "TLS-Report-Submitter: %s\n"
                     "Content-Type: multipart/report; report-type=\"tlsrpt\";\n"
                     "\tboundary=\"%s\"\n"
                     "\n"
                     "--%s\n"
                     "Content-Type: text/plain; charset=\"us-ascii\"\n"
                     "Content-Transfer-Encoding: 7bit\n"
                     "\n"
                     "This is an aggregate TLS report from %s for %s.\n"
                     "\n"
                     "--%s\n"
                     "Content-Type: application/tlsrpt+gzip;\n"
                     "\tname=\"%s\"\n"
                     "Content-Disposition: attachment;\n"
                     "\tfilename=\"%s\"\n"
                     "Content-Transfer-Encoding: base64\n"
                     "\n",
                     from, mm->domain, date, mm->domain, mm->submitter, mm->report_id, msgid,
                     mm->domain, mm->submitter, boundary, boundary, mm->submitter, mm->domain,
                     boundary, mm->filename, mm->filename) &&
         base64_lines(b, g->gz.data, g->gz.len) && mail_printf(b, "\n--%s--\n", boundary);
    if (!ok)
        fprintf(stderr, "gen_reports: out of memory (mail of report %" PRIu64 ")\n", i);
    return ok;
}

static int gen_one(struct gen *g, uint64_t i)
{
    struct rng r;
    rng_seed(&r, g->seed, i, 0x7265706f7274); /* "report" */
    unsigned k = (unsigned)(i % g->ndomains);
    uint64_t day = i / g->ndomains, pass = 0;
    if (g->ndays) {
        pass = day / g->ndays;
        day %= g->ndays;
    }
    int64_t start = FIRST_DAY + (int64_t)day * DAY;
    struct domain d;
    domain_make(g->seed, k, &d);
    enum sender s = pick_sender(&r);
    unsigned pass_host = 0;
    if (g->ndays)
        s = pass_sender(pass, k, day, &pass_host);

    char sday[64], eday[64], rid[200], org[64], contact[96], sender_dom[64];
    int64_t end = start + DAY - 1;
    const char *zone = "Z";
    if (s == MICROSOFT && chance(&r, 10))
        zone = ""; /* as Microsoft sent in 2023: no timezone */
    fmt_day(start, "00:00:00", zone, sday, sizeof sday);
    if (s == MAILRU) {
        end = start + DAY;
        fmt_day(end, "00:00:00", "Z", eday, sizeof eday);
    } else {
        fmt_day(start, "23:59:59", zone, eday, sizeof eday);
    }

    switch (s) {
    case GOOGLE:
        snprintf(org, sizeof org, "Google Inc.");
        snprintf(contact, sizeof contact, "smtp-tls-reporting@google.com");
        snprintf(rid, sizeof rid, "%.10sT00:00:00Z_%s", sday, d.name);
        snprintf(sender_dom, sizeof sender_dom, "google.com");
        break;
    case MICROSOFT: {
        /* Windows FILETIME of a moment of the next day: 18 digits */
        uint64_t ticks = ((uint64_t)(start + DAY) + 11644473600u) * 10000000u +
                         rnd64(&r) % ((uint64_t)DAY * 10000000u);
        snprintf(org, sizeof org, "Microsoft Corporation");
        snprintf(contact, sizeof contact, "tlsrpt-noreply@microsoft.com");
        snprintf(rid, sizeof rid, "%" PRIu64 "+%s", ticks, d.name);
        snprintf(sender_dom, sizeof sender_dom, "microsoft.com");
        break;
    }
    case MAILRU: {
        char h[33];
        hex(&r, h, 16, false);
        snprintf(org, sizeof org, "Mail.ru");
        snprintf(contact, sizeof contact, "tls_support@corp.mail.ru");
        snprintf(rid, sizeof rid, "%.8s-%.4s-%.4s-%.4s-%.12s@mail.ru", h, h + 8, h + 12, h + 16,
                 h + 20);
        snprintf(sender_dom, sizeof sender_dom, "mail.ru");
        break;
    }
    case MIMECAST: {
        char h[65];
        hex(&r, h, 32, false);
        snprintf(org, sizeof org, "Mimecast");
        snprintf(contact, sizeof contact, "noreply@mimecast.org");
        snprintf(rid, sizeof rid, "%s", h);
        snprintf(sender_dom, sizeof sender_dom, "mimecast.org");
        break;
    }
    default: {
        const char *host = PICK(&r, postfix_hosts);
        if (g->ndays)
            host = postfix_hosts[pass_host];
        snprintf(org, sizeof org, "%s", host);
        snprintf(contact, sizeof contact, "smtp-tls-reporting@%s", host);
        snprintf(rid, sizeof rid, "%.10sT00:00:00Z_idx%u_%s", sday, 1 + rnd(&r, 3), d.name);
        snprintf(sender_dom, sizeof sender_dom, "%s", host);
    }
    }

    /* 1-4 policies: the report's domain first, then other domains (distinct:
     * k + base, k + base + 1, ...), except Microsoft's tlsa for a DANE domain */
    unsigned x = rnd(&r, 100);
    size_t npol = x < 55 ? 1 : x < 85 ? 2 : x < 95 ? 3 : 4;
    if (s == MICROSOFT && d.dane && npol < 2)
        npol = 2; /* sts + tlsa */
    unsigned base = 1 + rnd(&r, g->ndomains - 4);
    json_t *policies = json_array();
    for (size_t p = 0; p < npol; p++) {
        struct domain other;
        const struct domain *pd = &d;
        if (p > 0 && !(s == MICROSOFT && d.dane && p == 1)) {
            domain_make(g->seed, (unsigned)((k + base + p - 1) % g->ndomains), &other);
            pd = &other;
        }
        json_array_append_new(policies, policy_item(&r, s, pd, pick_policy_type(&r, s, pd, p)));
    }

    json_t *range = json_object();
    json_object_set_new(range, "start-datetime", json_string(sday));
    json_object_set_new(range, "end-datetime", json_string(eday));
    json_t *root = json_object();
    json_object_set_new(root, "organization-name", json_string(org));
    json_object_set_new(root, "date-range", range);
    json_object_set_new(root, "contact-info", json_string(contact));
    if (s != POSTFIX)
        json_object_set_new(root, "report-id", json_string(rid));
    json_object_set_new(root, "policies", policies);
    if (s == POSTFIX)
        json_object_set_new(root, "report-id", json_string(rid));

    size_t flags = s == MAILRU    ? JSON_INDENT(3) | JSON_SORT_KEYS
                   : s == POSTFIX ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
                                  : JSON_COMPACT | JSON_PRESERVE_ORDER;
    char *text = json_dumps(root, flags);
    json_decref(root);
    if (text == NULL) {
        fprintf(stderr, "gen_reports: out of memory\n");
        return -1;
    }

    buf_reset(&g->gz);
    tr_err e = gz_deflate(text, strlen(text), 6, &g->gz, g->err);
    free(text);
    if (e != TR_OK) {
        fprintf(stderr, "gen_reports: %s\n", g->err);
        return -1;
    }
    char fname[512], path[1024];
    snprintf(fname, sizeof fname, "%s!%s!%" PRId64 "!%" PRId64 "!%07" PRIu64 ".json.gz", sender_dom,
             d.name, start, end, i);
    if (g->outdir) {
        snprintf(path, sizeof path, "%s/%02u/%s", g->outdir, (unsigned)(i % NSUBDIRS), fname);
        if (write_file(path, g->gz.data, g->gz.len) != 0) {
            fprintf(stderr, "gen_reports: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    if (g->maildir) {
        struct mail_meta mm = {s, sender_dom, contact, d.name, rid, fname, end};
        if (!build_mail(g, i, &mm))
            return -1;
        /* delivered as an MDA does: written to tmp/, then renamed into new/ */
        char name[128], tmp[1024];
        snprintf(name, sizeof name, "%d.M%" PRIu64 "P%ld.bench", FIXED_EPOCH, i, (long)getpid());
        snprintf(tmp, sizeof tmp, "%s/tmp/%s", g->maildir, name);
        snprintf(path, sizeof path, "%s/new/%s", g->maildir, name);
        if (write_file(tmp, g->mail.data, g->mail.len) != 0 || rename(tmp, path) != 0) {
            fprintf(stderr, "gen_reports: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: gen_reports -n N [-o DIR] [-m MAILDIR] [-s SEED] [-d DOMAINS]\n"
                    "                   [-y DAYS] [-f FIRST]\n"
                    "  writes N distinct RFC 8460 reports as DIR/NN/*.json.gz (-o) and/or\n"
                    "  as RFC 8460 report mails into MAILDIR/new (-m); at least one of them\n"
                    "  (SEED default 1, DOMAINS default 500); -y: dates within DAYS days,\n"
                    "  a sender per pass over them; -f: reports FIRST .. FIRST+N-1 (default 0)\n");
    return 64;
}

static bool make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_reports: %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    uint64_t n = 0, seed = 1, ndomains = 500, ndays = 0, first = 0;
    const char *outdir = NULL, *maildir = NULL;
    int c;
    while ((c = getopt(argc, argv, "n:o:m:s:d:y:f:h")) != -1) {
        switch (c) {
        case 'n':
            if (!parse_u64(optarg, 1, 100000000, &n))
                return usage();
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'm':
            maildir = optarg;
            break;
        case 's':
            if (!parse_u64(optarg, 0, UINT64_MAX, &seed))
                return usage();
            break;
        case 'd':
            if (!parse_u64(optarg, 5, 1000000, &ndomains))
                return usage();
            break;
        case 'y':
            if (!parse_u64(optarg, 1, 100000, &ndays))
                return usage();
            break;
        case 'f':
            if (!parse_u64(optarg, 0, 100000000, &first))
                return usage();
            break;
        default:
            return usage();
        }
    }
    if (n == 0 || (outdir == NULL && maildir == NULL) || optind != argc)
        return usage();
    if (ndays && first + n > MAX_PASSES * ndomains * ndays) {
        fprintf(stderr,
                "gen_reports: -y %" PRIu64 ": at most %d reports per domain and day, so at most "
                "%" PRIu64 " reports in all\n",
                ndays, MAX_PASSES, MAX_PASSES * ndomains * ndays);
        return 64;
    }

    if (outdir) {
        if (!make_dir(outdir))
            return 1;
        for (unsigned i = 0; i < NSUBDIRS; i++) {
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%02u", outdir, i);
            if (!make_dir(sub))
                return 1;
        }
    }
    if (maildir) {
        static const char *const subs[] = {"tmp", "new", "cur"};
        if (!make_dir(maildir))
            return 1;
        for (unsigned i = 0; i < 3; i++) {
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", maildir, subs[i]);
            if (!make_dir(sub))
                return 1;
        }
    }

    struct gen g = {.seed = seed,
                    .ndomains = (unsigned)ndomains,
                    .ndays = (unsigned)ndays,
                    .outdir = outdir,
                    .maildir = maildir};
    buf_init(&g.gz, (size_t)16 << 20);
    buf_init(&g.mail, (size_t)32 << 20);
    int rc = 0;
    for (uint64_t i = first; i < first + n && rc == 0; i++)
        rc = gen_one(&g, i);
    buf_free(&g.gz);
    buf_free(&g.mail);
    if (rc == 0) {
        if (outdir)
            fprintf(stderr, "gen_reports: wrote %" PRIu64 " reports to %s (seed %" PRIu64 ")\n", n,
                    outdir, seed);
        if (maildir)
            fprintf(stderr,
                    "gen_reports: delivered %" PRIu64 " report mails to %s/new (seed %" PRIu64
                    ")\n",
                    n, maildir, seed);
    }
    return rc == 0 ? 0 : 1;
}
