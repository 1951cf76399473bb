/* mailcheck.c: the RFC 8460 mail format of a mailed report, for
 * `tlsrptd validate --strict`.
 *
 * §5.3: the message is multipart/report with report-type=tlsrpt; the report
 * part is application/tlsrpt+gzip (gzip bytes) or application/tlsrpt+json
 * (JSON); the TLS-Report-Domain and TLS-Report-Submitter header fields are
 * there, name domains, and the submitter is the domain of contact-info.
 * §5.1: the part's file name is sender!policy-domain!begin-timestamp!
 * end-timestamp[!unique-id].json[.gz], its extension says what the bytes are,
 * and its fields agree with the report.
 *
 * Ingest does not run these checks: real senders break some of them (Mail.ru's
 * submitter is not its contact-info domain; the RFC's own example mail breaks
 * several) and their reports are counted all the same. Every finding is an error naming its
 * section. Knows nothing of GMime, zlib or SQLite. Exports mailcheck_*. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tlsrptd/mailcheck.h"
#include "tlsrptd/record.h"

#define P_TYPE      "message Content-Type"
#define P_DOMAIN    "message TLS-Report-Domain"
#define P_SUBMITTER "message TLS-Report-Submitter"
#define P_PART_TYPE "report part Content-Type"
#define P_FILENAME  "report part filename"
#define NAME_FORM   "sender!policy-domain!begin-timestamp!end-timestamp[!unique-id].json[.gz]"

/* ---- the message ---------------------------------------------------------------------------- */

static void check_message_type(const struct mime_message *msg, struct diag_list *d)
{
    const char *mt = msg->media_type ? msg->media_type : "text/plain";
    if (strncmp(mt, "multipart/", 10) != 0) {
        diag_add(d, DIAG_ERROR, P_TYPE,
                 "%.64s: the message is not multipart; RFC 8460 §5.3 sends the report as a part "
                 "of a multipart/report; report-type=tlsrpt message",
                 mt);
        return;
    }
    if (strcmp(mt, "multipart/report") != 0) {
        diag_add(d, DIAG_ERROR, P_TYPE, "%.64s, not multipart/report (RFC 8460 §5.3)", mt);
        return;
    }
    const char *rt = mime_param(msg, "report-type");
    if (rt == NULL)
        diag_add(d, DIAG_ERROR, P_TYPE,
                 "multipart/report without report-type=tlsrpt (RFC 8460 §5.3)");
    else if (strcasecmp(rt, "tlsrpt") != 0)
        diag_add(d, DIAG_ERROR, P_TYPE, "report-type=%.64s, not tlsrpt (RFC 8460 §5.3)", rt);
}

/* The domain of contact-info (an addr-spec, RFC 8460 §4.4), lower-cased into
 * out; false when there is none. */
static bool contact_domain(const struct report *r, char *out, size_t outlen)
{
    const char *at = r && r->contact_info ? strrchr(r->contact_info, '@') : NULL;
    if (at == NULL || at[1] == 0 || strlen(at + 1) >= outlen)
        return false;
    size_t i = 0;
    for (const char *p = at + 1; *p; p++)
        out[i++] = (char)tolower((unsigned char)*p);
    out[i] = 0;
    return true;
}

/* A header field naming a domain: present (§5.3 requires both) and a domain
 * name; its normalised form in out. False after adding an error. */
static bool check_domain_field(const char *path, const char *value, char out[RECORD_DOMAIN_MAX],
                               struct diag_list *d)
{
    char err[TR_ERRLEN];
    if (value == NULL || value[0] == 0) {
        diag_add(d, DIAG_ERROR, path, "missing (RFC 8460 §5.3 requires the field)");
        return false;
    }
    if (record_domain(value, out, err) != TR_OK) {
        diag_add(d, DIAG_ERROR, path, "not a domain name: %s (RFC 8460 §5.3)", err);
        return false;
    }
    return true;
}

static void check_headers(const struct mime_message *msg, const struct report *r,
                          struct diag_list *d)
{
    char domain[RECORD_DOMAIN_MAX], contact[RECORD_DOMAIN_MAX];
    /* a TLS-Report-Domain naming another domain than the report is report.c's
     * note (RFC 8460 §5.6), which --strict makes an error as well */
    check_domain_field(P_DOMAIN, msg->report_domain, domain, d);
    if (check_domain_field(P_SUBMITTER, msg->report_submitter, domain, d) &&
        contact_domain(r, contact, sizeof contact) && strcmp(domain, contact) != 0)
        diag_add(d, DIAG_ERROR, P_SUBMITTER,
                 "%.128s is not %.128s, the domain of contact-info; RFC 8460 §5.3 says they "
                 "match",
                 domain, contact);
}

/* ---- the report part ------------------------------------------------------------------------ */

static void check_part_type(const struct mime_report_part *p, struct diag_list *d)
{
    const char *mt = p->media_type ? p->media_type : "(none)";
    if (strcmp(mt, "application/tlsrpt+gzip") == 0) {
        if (!p->is_gzip)
            diag_add(d, DIAG_ERROR, P_PART_TYPE,
                     "application/tlsrpt+gzip, but the part holds uncompressed JSON, not gzip "
                     "(RFC 8460 §5.3: application/tlsrpt+json)");
    } else if (strcmp(mt, "application/tlsrpt+json") == 0) {
        if (p->is_gzip)
            diag_add(d, DIAG_ERROR, P_PART_TYPE,
                     "application/tlsrpt+json, but the part holds gzip (RFC 8460 §5.3: "
                     "application/tlsrpt+gzip)");
    } else {
        diag_add(d, DIAG_ERROR, P_PART_TYPE,
                 "%.64s, not application/tlsrpt+json or application/tlsrpt+gzip (RFC 8460 §5.3); "
                 "for these bytes: %s",
                 mt, p->is_gzip ? "application/tlsrpt+gzip" : "application/tlsrpt+json");
    }
}

/* The fields of a §5.1 file name. */
struct report_name {
    char sender[RECORD_DOMAIN_MAX], policy_domain[RECORD_DOMAIN_MAX];
    int64_t begin, end;
    bool gz; /* .json.gz rather than .json */
};

/* 1*DIGIT, at most 18 of them (a Unix time in seconds fits many times over). */
static bool timestamp(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* A domain field of the name into out; why not in why. */
static bool name_domain(const char *s, size_t n, char out[RECORD_DOMAIN_MAX], char *why)
{
    char field[RECORD_DOMAIN_MAX];
    if (n == 0 || n >= sizeof field) {
        snprintf(why, TR_ERRLEN, "%s domain", n ? "a too long" : "an empty");
        return false;
    }
    memcpy(field, s, n);
    field[n] = 0;
    return record_domain(field, out, why) == TR_OK;
}

/* Parse name by the §5.1 ABNF. False with why (TR_ERRLEN bytes) set. */
static bool parse_report_name(const char *name, struct report_name *out, char *why)
{
    size_t n = strlen(name);
    if (n > 9 && strcasecmp(name + n - 8, ".json.gz") == 0) {
        out->gz = true;
        n -= 8;
    } else if (n > 6 && strcasecmp(name + n - 5, ".json") == 0) {
        out->gz = false;
        n -= 5;
    } else {
        snprintf(why, TR_ERRLEN, "the extension is neither .json nor .json.gz");
        return false;
    }
    const char *field[6];
    size_t len[6], nf = 0;
    for (const char *p = name, *end = name + n; nf < 6;) {
        const char *bang = memchr(p, '!', (size_t)(end - p));
        field[nf] = p;
        len[nf++] = (size_t)((bang ? bang : end) - p);
        if (bang == NULL)
            break;
        p = bang + 1;
    }
    if (nf < 4 || nf > 5) {
        snprintf(why, TR_ERRLEN, "%s%zu field%s separated by '!', not 4 or 5",
                 nf > 5 ? "more than " : "", nf > 5 ? (size_t)5 : nf, nf == 1 ? "" : "s");
        return false;
    }
    char err[TR_ERRLEN];
    if (!name_domain(field[0], len[0], out->sender, err)) {
        snprintf(why, TR_ERRLEN, "sender: %.200s", err);
        return false;
    }
    if (!name_domain(field[1], len[1], out->policy_domain, err)) {
        snprintf(why, TR_ERRLEN, "policy-domain: %.200s", err);
        return false;
    }
    if (!timestamp(field[2], len[2], &out->begin) || !timestamp(field[3], len[3], &out->end)) {
        snprintf(why, TR_ERRLEN, "the timestamps are not seconds since 1970 (digits)");
        return false;
    }
    if (nf == 5) {
        bool alnum = len[4] > 0;
        for (size_t i = 0; i < len[4]; i++)
            alnum = alnum && isalnum((unsigned char)field[4][i]);
        if (!alnum) {
            snprintf(why, TR_ERRLEN, "the unique-id is not letters and digits");
            return false;
        }
    }
    return true;
}

/* Whether one of the report's policies is for domain. */
static bool report_has_domain(const struct report *r, const char *domain)
{
    for (size_t i = 0; i < r->npolicies; i++)
        if (r->policies[i].policy_domain && strcmp(r->policies[i].policy_domain, domain) == 0)
            return true;
    return false;
}

static void check_filename(const struct mime_report_part *p, const struct report *r,
                           struct diag_list *d)
{
    if (p->filename == NULL || p->filename[0] == 0) {
        diag_add(d, DIAG_ERROR, P_FILENAME, "none; RFC 8460 §5.1 names the report " NAME_FORM);
        return;
    }
    struct report_name nm;
    char why[TR_ERRLEN];
    if (!parse_report_name(p->filename, &nm, why)) {
        diag_add(d, DIAG_ERROR, P_FILENAME,
                 "\"%.128s\" does not follow " NAME_FORM " (RFC 8460 §5.1): %s", p->filename, why);
        return;
    }
    if (nm.gz != p->is_gzip)
        diag_add(d, DIAG_ERROR, P_FILENAME,
                 "\"%.128s\" ends in %s but the part holds %s (RFC 8460 §5.1: .json.gz for gzip, "
                 ".json for plain JSON)",
                 p->filename, nm.gz ? ".json.gz" : ".json",
                 p->is_gzip ? "gzip" : "uncompressed JSON");
    if (r == NULL)
        return;
    char contact[RECORD_DOMAIN_MAX];
    if (!report_has_domain(r, nm.policy_domain))
        diag_add(d, DIAG_ERROR, P_FILENAME,
                 "names the policy domain %s, which no policy of the report has (RFC 8460 §5.1)",
                 nm.policy_domain);
    if (nm.begin != r->start_time)
        diag_add(d, DIAG_ERROR, P_FILENAME,
                 "begin-timestamp %lld is not start-datetime %s, %lld (RFC 8460 §5.1)",
                 (long long)nm.begin, r->start_text, (long long)r->start_time);
    if (nm.end != r->end_time)
        diag_add(d, DIAG_ERROR, P_FILENAME,
                 "end-timestamp %lld is not end-datetime %s, %lld (RFC 8460 §5.1)",
                 (long long)nm.end, r->end_text, (long long)r->end_time);
    if (contact_domain(r, contact, sizeof contact) && strcmp(nm.sender, contact) != 0)
        diag_add(d, DIAG_ERROR, P_FILENAME,
                 "the sender %s is not %s, the domain of contact-info (RFC 8460 §5.1)", nm.sender,
                 contact);
}

void mailcheck_report_part(const struct mime_message *msg, size_t k, const struct report *r,
                           struct diag_list *d)
{
    if (k >= msg->nparts)
        return;
    check_message_type(msg, d);
    check_headers(msg, r, d);
    check_part_type(&msg->parts[k], d);
    check_filename(&msg->parts[k], r, d);
}
