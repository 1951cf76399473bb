/* findings.c: the findings (see findings.h). Each rule reads a few rows per
 * domain from the rollups (store_findings.c) over the last history_days, and
 * turns what it sees into one sentence, with the numbers and the newest
 * reports that show it. No SQL here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/dns.h"
#include "tlsrptd/findings.h"
#include "tlsrptd/record.h"
#include "tlsrptd/result_type.h"

#define DAY      86400
#define EVIDENCE 10 /* report ids per finding */

struct ctx {
    struct store *st;
    const struct findings_options *o;
    int64_t now, today, since;
    json_t *list;
    json_t *days;   /* domain -> {"first": t, "reported": n, "failed_recent": n, ...} */
    json_t *wanted; /* evidence_key -> the findings' "reports" arrays that wait for it */
    size_t unfilled_policies, unfilled_failures; /* those arrays not yet full */
    char *err;
    tr_err rc;
};

static int64_t day_of(int64_t t)
{
    return t - ((t % DAY) + DAY) % DAY;
}

static void date_of(int64_t t, char out[16])
{
    char full[32];
    query_format_time(t, full);
    snprintf(out, 16, "%.10s", full);
}

static json_t *domain_json(const char *d)
{
    return d && d[0] ? json_string(d) : json_null();
}

static const char *domain_name(const char *d)
{
    return d && d[0] ? d : "(policies without a domain)";
}

/* The key under which a finding waits for its evidence: failure details of
 * a result type (and MX host) for a domain, or policies (of a type) for a
 * domain. NULL when it does not fit. */
static const char *evidence_key(char *key, size_t n, const char *domain, const char *result_type,
                                const char *policy_type, const char *mx)
{
    int len = result_type ? snprintf(key, n, "F\x1f%s\x1f%s\x1f%s%s", domain ? domain : "",
                                     result_type, mx ? "=" : "*", mx ? mx : "")
                          : snprintf(key, n, "P\x1f%s\x1f%s%s", domain ? domain : "",
                                     policy_type ? "=" : "*", policy_type ? policy_type : "");
    return len > 0 && (size_t)len < n ? key : NULL;
}

#define EVIDENCE_KEY_MAX 1024

/* Add a finding; its evidence (the newest reports that show it) is gathered
 * for all findings at once by gather_evidence. */
static void add(struct ctx *c, const char *kind, const char *severity, const char *domain,
                int64_t since, const char *text, const char *result_type, const char *policy_type,
                const char *mx, json_t *extra)
{
    json_t *evidence = extra ? extra : json_object();
    json_t *reports = json_array();
    json_object_set_new(evidence, "reports", reports);
    char key[EVIDENCE_KEY_MAX];
    if (evidence_key(key, sizeof key, domain, result_type, policy_type, mx) != NULL) {
        json_t *waiting = json_object_get(c->wanted, key);
        if (waiting == NULL) {
            waiting = json_array();
            json_object_set_new(c->wanted, key, waiting);
        }
        json_array_append(waiting, reports);
        if (result_type)
            c->unfilled_failures++;
        else
            c->unfilled_policies++;
    }
    json_t *f = json_pack("{s:s, s:s, s:o, s:s, s:o}", "kind", kind, "severity", severity, "domain",
                          domain_json(domain), "text", text, "evidence", evidence);
    if (since) {
        char t[32];
        query_format_time(since, t);
        json_object_set_new(f, "since", json_string(t));
    }
    json_array_append_new(c->list, f);
}

/* Add report to the evidence waiting under key (once each, at most EVIDENCE). */
static void add_evidence(struct ctx *c, const char *key, int64_t report, size_t *unfilled)
{
    json_t *waiting = key ? json_object_get(c->wanted, key) : NULL;
    size_t i;
    json_t *reports;
    json_array_foreach(waiting, i, reports)
    {
        size_t n = json_array_size(reports);
        if (n == EVIDENCE ||
            (n > 0 && json_integer_value(json_array_get(reports, n - 1)) == report))
            continue;
        json_array_append_new(reports, json_integer(report));
        if (n + 1 == EVIDENCE)
            (*unfilled)--;
    }
}

static int on_evidence(void *cls, const struct store_evidence_row *r)
{
    struct ctx *c = cls;
    char key[EVIDENCE_KEY_MAX];
    if (r->result_type) {
        add_evidence(c, evidence_key(key, sizeof key, r->domain, r->result_type, NULL, r->mx),
                     r->report, &c->unfilled_failures);
        add_evidence(c, evidence_key(key, sizeof key, r->domain, r->result_type, NULL, NULL),
                     r->report, &c->unfilled_failures);
        return c->unfilled_failures == 0;
    }
    if (r->policy_type)
        add_evidence(c, evidence_key(key, sizeof key, r->domain, NULL, r->policy_type, NULL),
                     r->report, &c->unfilled_policies);
    add_evidence(c, evidence_key(key, sizeof key, r->domain, NULL, NULL, NULL), r->report,
                 &c->unfilled_policies);
    return c->unfilled_policies == 0;
}

/* Every finding's evidence from one pass over the window's policies and one
 * over its failure details (each only when some finding waits for it). */
static tr_err gather_evidence(struct ctx *c, const struct store_filter *sf)
{
    tr_err rc = TR_OK;
    if (c->unfilled_policies > 0)
        rc = store_evidence_scan(c->st, sf, false, on_evidence, c, c->err);
    if (rc == TR_OK && c->unfilled_failures > 0)
        rc = store_evidence_scan(c->st, sf, true, on_evidence, c, c->err);
    return rc;
}

/* ---- rows, kept: a backend streams a query's rows over its connection, so
 * nothing may ask it another question (the evidence) until they are read ---- */

struct row_copy {
    struct store_finding_row r;
    char *domain, *name, *type;
};
struct rows {
    struct row_copy *v;
    size_t n, cap;
    bool oom;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int keep_row(void *cls, const struct store_finding_row *r)
{
    struct rows *rs = cls;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? 2 * rs->cap : 64;
        struct row_copy *v = realloc(rs->v, cap * sizeof *v);
        if (v == NULL) {
            rs->oom = true;
            return 1;
        }
        rs->v = v;
        rs->cap = cap;
    }
    struct row_copy *c = &rs->v[rs->n++];
    c->r = *r;
    c->r.domain = c->domain = dup_or_null(r->domain);
    c->r.name = c->name = dup_or_null(r->name);
    c->r.type = c->type = dup_or_null(r->type);
    return 0;
}

static void rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].domain);
        free(rs->v[i].name);
        free(rs->v[i].type);
    }
    free(rs->v);
}

/* Run query which, then fn on each of its rows. */
static tr_err each_row(struct ctx *c, enum store_finding_query which, const struct store_filter *sf,
                       store_finding_fn fn)
{
    struct rows rs = {NULL, 0, 0, false};
    tr_err rc = store_findings_rows(c->st, which, sf, keep_row, &rs, c->err);
    if (rc == TR_OK && rs.oom)
        rc = tr_fail(c->err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; rc == TR_OK && i < rs.n; i++)
        fn(c, &rs.v[i].r);
    rows_free(&rs);
    return rc;
}

/* ---- per domain and day: history, failures -------------------------------------------------- */

static int on_domain_day(void *cls, const struct store_finding_row *r)
{
    struct ctx *c = cls;
    json_t *d = json_object_get(c->days, r->domain);
    if (d == NULL) {
        d = json_pack("{s:I, s:I, s:I, s:I}", "first", (json_int_t)r->first, "clean_days", 0,
                      "failed_clean", 0, "clean_first", 0);
        json_object_set_new(c->days, r->domain, d);
    }
    if (r->first < json_integer_value(json_object_get(d, "first")))
        json_object_set_new(d, "first", json_integer(r->first));
    int64_t clean_from = c->today - (int64_t)c->o->clean_days * DAY;
    if (r->first >= clean_from) {
        json_object_set_new(d, "clean_days",
                            json_integer(json_integer_value(json_object_get(d, "clean_days")) + 1));
        json_object_set_new(
            d, "failed_clean",
            json_integer(json_integer_value(json_object_get(d, "failed_clean")) + r->n2));
        json_int_t cf = json_integer_value(json_object_get(d, "clean_first"));
        if (cf == 0 || r->first < cf)
            json_object_set_new(d, "clean_first", json_integer(r->first));
    }
    return 0;
}

/* The latest MTA-STS policy seen for each domain: its mode. */
static int on_policy(void *cls, const struct store_seen_policy *p)
{
    json_t *latest = cls;
    if (p->policy_type == NULL || strcmp(p->policy_type, "sts") != 0)
        return 0;
    json_t *prev = json_object_get(latest, p->policy_domain);
    if (prev && json_integer_value(json_object_get(prev, "last")) >= p->last_start)
        return 0;
    json_t *strings = p->policy_strings ? json_loads(p->policy_strings, 0, NULL) : NULL;
    const char *mode = NULL;
    size_t i;
    json_t *s;
    json_array_foreach(strings, i, s)
    {
        const char *v = json_string_value(s);
        if (v && strncmp(v, "mode:", 5) == 0) {
            v += 5;
            while (*v == ' ')
                v++;
            mode = strncmp(v, "testing", 7) == 0   ? "testing"
                   : strncmp(v, "enforce", 7) == 0 ? "enforce"
                                                   : "none";
        }
    }
    json_object_set_new(latest, p->policy_domain,
                        json_pack("{s:I, s:s?}", "last", (json_int_t)p->last_start, "mode", mode));
    json_decref(strings);
    return 0;
}

static void ready_for_enforce(struct ctx *c, const struct query_filter *f)
{
    json_t *latest = json_object();
    if ((c->rc = store_seen_policies(c->st, &f->sf, on_policy, latest, c->err)) != TR_OK) {
        json_decref(latest);
        return;
    }
    const char *domain;
    json_t *p;
    json_object_foreach(latest, domain, p)
    {
        const char *mode = json_string_value(json_object_get(p, "mode"));
        json_t *d = json_object_get(c->days, domain);
        if (mode == NULL || strcmp(mode, "testing") != 0 || d == NULL)
            continue;
        json_int_t days = json_integer_value(json_object_get(d, "clean_days"));
        json_int_t failed = json_integer_value(json_object_get(d, "failed_clean"));
        /* enough evidence: reports on at least half of the days */
        if (failed != 0 || days * 2 < (json_int_t)c->o->clean_days)
            continue;
        char text[512];
        snprintf(text, sizeof text,
                 "MTA-STS for %s is in testing and no sender reported a failure in the last %u "
                 "days (reports on %lld of them): ready for enforce",
                 domain_name(domain), c->o->clean_days, (long long)days);
        add(c, "ready-for-enforce", "info", domain,
            json_integer_value(json_object_get(d, "clean_first")), text, NULL, "sts", NULL,
            json_pack("{s:I, s:s}", "days_with_reports", days, "mode", "testing"));
    }
    json_decref(latest);
}

/* ---- senders that found no policy ----------------------------------------------------------- */

struct npf {
    json_t *by_domain; /* domain -> {"reporters": [...], "sessions": n, "latest": t} */
};

static int on_policy_reporter(void *cls, const struct store_finding_row *r)
{
    struct npf *n = cls;
    /* the reporter's latest report found no policy, and none later found one */
    if (r->first == 0 || r->first <= r->last)
        return 0;
    json_t *d = json_object_get(n->by_domain, r->domain);
    if (d == NULL) {
        d = json_pack("{s:[], s:I, s:I}", "reporters", "sessions", (json_int_t)0, "latest",
                      (json_int_t)0);
        json_object_set_new(n->by_domain, r->domain, d);
    }
    json_array_append_new(json_object_get(d, "reporters"), json_string(r->name ? r->name : "?"));
    json_object_set_new(d, "sessions",
                        json_integer(json_integer_value(json_object_get(d, "sessions")) + r->n1));
    if (r->first > json_integer_value(json_object_get(d, "latest")))
        json_object_set_new(d, "latest", json_integer(r->first));
    return 0;
}

static void no_policy(struct ctx *c, const struct store_filter *sf)
{
    struct npf n = {json_object()};
    if ((c->rc = store_findings_rows(c->st, STORE_FQ_POLICY_REPORTERS, sf, on_policy_reporter, &n,
                                     c->err)) != TR_OK) {
        json_decref(n.by_domain);
        return;
    }
    const char *domain;
    json_t *d;
    json_object_foreach(n.by_domain, domain, d)
    {
        json_t *who = json_object_get(d, "reporters");
        char names[256] = "";
        size_t i, used = 0;
        json_t *r;
        json_array_foreach(who, i, r)
        {
            int w = snprintf(names + used, sizeof names - used, "%s%s",
                             i == 0                          ? ""
                             : i + 1 == json_array_size(who) ? " and "
                                                             : ", ",
                             json_string_value(r));
            if (w < 0 || (size_t)w >= sizeof names - used)
                break;
            used += (size_t)w;
        }
        char text[768], when[16];
        date_of(json_integer_value(json_object_get(d, "latest")), when);
        snprintf(text, sizeof text,
                 "%s %s no-policy-found for %s (%lld sessions; the latest report %s): publish an "
                 "MTA-STS policy (tlsrptd record --mta-sts) so senders require TLS",
                 names, json_array_size(who) > 1 ? "report" : "reports", domain_name(domain),
                 (long long)json_integer_value(json_object_get(d, "sessions")), when);
        add(c, "no-policy-found", "warning", domain, 0, text, NULL, "no-policy-found", NULL,
            json_pack("{s:O, s:O}", "reporters", who, "sessions", json_object_get(d, "sessions")));
    }
    json_decref(n.by_domain);
}

/* ---- reporters that stopped ----------------------------------------------------------------- */

static int on_reporter_day(void *cls, const struct store_finding_row *r)
{
    json_t *seen = cls; /* "domain\x1freporter" -> [days] */
    char key[1024];
    snprintf(key, sizeof key, "%s\x1f%s", r->domain, r->name ? r->name : "");
    json_t *days = json_object_get(seen, key);
    if (days == NULL) {
        days = json_array();
        json_object_set_new(seen, key, days);
    }
    json_array_append_new(days, json_integer(r->first));
    return 0;
}

static void silent_reporters(struct ctx *c, const struct store_filter *sf)
{
    json_t *seen = json_object();
    if ((c->rc = store_findings_rows(c->st, STORE_FQ_REPORTER_DAYS, sf, on_reporter_day, seen,
                                     c->err)) != TR_OK) {
        json_decref(seen);
        return;
    }
    const char *key;
    json_t *days;
    json_object_foreach(seen, key, days)
    {
        int64_t last = 0;
        size_t i;
        json_t *d;
        json_array_foreach(days, i, d) if (json_integer_value(d) > last) last =
            json_integer_value(d);
        int64_t silent = (c->today - last) / DAY - 1; /* whole days without a report */
        if (silent < (int64_t)c->o->silence_days)
            continue;
        size_t before = 0; /* days reported in the 14 up to the last one */
        json_array_foreach(days, i, d) before += json_integer_value(d) > last - 14 * DAY;
        if (before < 7)
            continue;
        char domain[512], reporter[512], text[1280], when[16];
        const char *sep = strchr(key, '\x1f');
        snprintf(domain, sizeof domain, "%.*s", (int)(sep - key), key);
        snprintf(reporter, sizeof reporter, "%s", sep + 1);
        date_of(last, when);
        snprintf(text, sizeof text,
                 "%s stopped reporting for %s %lld days ago: it reported on %zu of the 14 days "
                 "up to %s, and nothing since (check that the _smtp._tls record still points "
                 "here and that mail from it reaches the collector)",
                 reporter, domain_name(domain), (long long)silent + 1, before, when);
        add(c, "silent-reporter", "warning", domain, last + DAY, text, NULL, NULL, NULL,
            json_pack("{s:s, s:I}", "reporter", reporter, "days_reported", (json_int_t)before));
    }
    json_decref(seen);
}

/* ---- result types that appeared, and MX hosts that fail -------------------------------------- */

static int on_type_span(void *cls, const struct store_finding_row *r)
{
    struct ctx *c = cls;
    int64_t recent = c->today - (int64_t)c->o->recent_days * DAY;
    json_t *d = json_object_get(c->days, r->domain);
    /* new: first seen lately, for a domain with reports from before */
    if (r->type == NULL || r->first < recent || d == NULL ||
        json_integer_value(json_object_get(d, "first")) >= recent)
        return 0;
    const struct result_type *rt = result_type_find(r->type);
    char text[768], when[16];
    date_of(r->first, when);
    snprintf(text, sizeof text, "%s appeared for %s on %s (%lld failed sessions): %s: %s", r->type,
             domain_name(r->domain), when, (long long)r->n1,
             rt ? rt->meaning : "a result type RFC 8460 does not define",
             rt ? rt->fix : "see the failure details");
    add(c, "new-result-type", "warning", r->domain, r->first, text, r->type, NULL, NULL,
        json_pack("{s:s, s:I}", "result_type", r->type, "failed_sessions", (json_int_t)r->n1));
    return 0;
}

static int on_mx(void *cls, const struct store_finding_row *r)
{
    struct ctx *c = cls;
    if (r->type == NULL || r->last < c->today - (int64_t)c->o->recent_days * DAY)
        return 0; /* not lately: fixed */
    const struct result_type *rt = result_type_find(r->type);
    const char *mx = r->name && r->name[0] ? r->name : "an MX the reports do not name";
    char text[1024], when[16];
    date_of(r->first, when);
    bool starttls = strcmp(r->type, "starttls-not-supported") == 0;
    if (starttls)
        snprintf(text, sizeof text,
                 "%s did not offer STARTTLS since %s (%s, %lld failed session%s in %lld report%s): "
                 "enable STARTTLS on it",
                 mx, when, domain_name(r->domain), (long long)r->n1, r->n1 == 1 ? "" : "s",
                 (long long)r->n2, r->n2 == 1 ? "" : "s");
    else
        snprintf(text, sizeof text,
                 "%s on %s since %s (%s, %lld failed session%s in %lld report%s): %s", r->type, mx,
                 when, domain_name(r->domain), (long long)r->n1, r->n1 == 1 ? "" : "s",
                 (long long)r->n2, r->n2 == 1 ? "" : "s", rt ? rt->fix : "fix it");
    add(c, starttls ? "starttls-not-supported" : "certificate-problem", "critical", r->domain,
        r->first, text, r->type, NULL, r->name,
        json_pack("{s:s, s:s, s:I}", "mx_host", r->name ? r->name : "", "result_type", r->type,
                  "failed_sessions", (json_int_t)r->n1));
    return 0;
}

/* ---- the published record ------------------------------------------------------------------- */

static void too_many_destinations(struct ctx *c)
{
    struct dns_server srv;
    char err[TR_ERRLEN];
    memset(&srv, 0, sizeof srv);
    if (c->o->dns_server && dns_server_parse(c->o->dns_server, &srv, err) != TR_OK)
        return;
    unsigned looked = 0;
    const char *domain;
    json_t *d;
    json_object_foreach(c->days, domain, d)
    {
        if (domain[0] == 0 || looked++ >= c->o->dns_limit)
            continue;
        char name[600];
        snprintf(name, sizeof name, "_smtp._tls.%s", domain);
        struct dns_txt txt = {0};
        enum dns_status status;
        if (dns_lookup_txt(name, &srv, 2, &txt, &status, err) != TR_OK || status != DNS_OK) {
            dns_txt_free(&txt);
            continue;
        }
        struct record_discovery disc;
        struct record_parse parsed;
        if (record_discover(txt.rr, txt.nrr, &disc, err) == TR_OK &&
            record_parse(disc.record, disc.len, &parsed) == TR_OK && parsed.nrua > 2) {
            char text[768];
            snprintf(text, sizeof text,
                     "the _smtp._tls record of %s lists %zu rua destinations: some senders "
                     "deliver only to the first one or two; list this collector first",
                     domain, parsed.nrua);
            add(c, "too-many-rua", "info", domain, 0, text, NULL, NULL, NULL,
                json_pack("{s:s}", "record", disc.record));
        }
        record_discovery_free(&disc);
        dns_txt_free(&txt);
    }
}

json_t *findings_compute(struct store *st, const struct query_filter *f,
                         const struct findings_options *opt, char *err)
{
    static const struct findings_options defaults = FINDINGS_DEFAULT_OPTIONS;
    const struct findings_options *o = opt ? opt : &defaults;
    struct ctx c = {.st = st,
                    .o = o,
                    .now = o->now ? o->now : (int64_t)time(NULL),
                    .list = json_array(),
                    .days = json_object(),
                    .wanted = json_object(),
                    .err = err,
                    .rc = TR_OK};
    c.today = day_of(c.now);
    c.since = c.today - (int64_t)o->history_days * DAY;
    struct store_filter sf = f->sf;
    sf.nreporters = 0; /* findings are about domains; a reporter filter would hide evidence */
    sf.since = c.since;
    sf.until = c.now + DAY;
    struct query_filter qf = *f;
    qf.sf = sf;
    if ((c.rc = each_row(&c, STORE_FQ_DOMAIN_DAYS, &sf, on_domain_day)) == TR_OK)
        ready_for_enforce(&c, &qf);
    if (c.rc == TR_OK)
        no_policy(&c, &sf);
    if (c.rc == TR_OK)
        silent_reporters(&c, &sf);
    if (c.rc == TR_OK)
        c.rc = each_row(&c, STORE_FQ_TYPE_SPANS, &sf, on_type_span);
    if (c.rc == TR_OK)
        c.rc = each_row(&c, STORE_FQ_MX_FAILURES, &sf, on_mx);
    if (c.rc == TR_OK && o->dns)
        too_many_destinations(&c);
    if (c.rc == TR_OK)
        c.rc = gather_evidence(&c, &sf);
    json_decref(c.days);
    json_decref(c.wanted);
    if (c.rc != TR_OK) {
        json_decref(c.list);
        return NULL;
    }
    char now[32];
    query_format_time(c.now, now);
    return json_pack("{s:o, s:s}", "findings", c.list, "now", now);
}
