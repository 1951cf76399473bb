/* query.c: the summary model (see query.h). It asks the store for groups,
 * failures and totals (store_summary_*), and builds the JSON of the summary JSON of the README:
 * group keys as names (days as YYYY-MM-DD, no domain as null), failure
 * rates, zero-filled days, the meaning of each result type. The store orders
 * and pages the groups; this file only puts them together, so it knows no
 * SQL and no backend. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "tlsrptd/gz.h"
#include "tlsrptd/query.h"
#include "tlsrptd/report.h"
#include "tlsrptd/result_type.h"

#define DAY 86400

static const struct {
    const char *name;  /* --by value */
    const char *field; /* JSON key of a group */
} dims[] = {
    [QUERY_BY_DOMAIN] = {"domain", "policy_domain"},
    [QUERY_BY_DAY] = {"day", "day"},
    [QUERY_BY_RESULT_TYPE] = {"result-type", "result_type"},
    [QUERY_BY_REPORTER] = {"reporter", "reporter"},
    [QUERY_BY_SENDING_IP] = {"sending-ip", "sending_ip"},
    [QUERY_BY_MX_HOST] = {"mx-host", "mx_host"},
    [QUERY_BY_POLICY_TYPE] = {"policy-type", "policy_type"},
    [QUERY_BY_DKIM] = {"dkim", "dkim"},
};
#define NDIMS (sizeof dims / sizeof *dims)

/* ---- filters -------------------------------------------------------------------------------- */

void query_filter_init(struct query_filter *f)
{
    memset(f, 0, sizeof *f);
    store_filter_init(&f->sf);
    f->by = QUERY_BY_DOMAIN;
}

bool query_parse_by(const char *s, enum query_by *by)
{
    for (size_t i = 0; i < NDIMS; i++) {
        if (strcmp(s, dims[i].name) == 0) {
            *by = (enum query_by)i;
            return true;
        }
    }
    return false;
}

const char *query_by_name(enum query_by by)
{
    return (size_t)by < NDIMS ? dims[by].name : "?";
}

const char *query_by_field(enum query_by by)
{
    return (size_t)by < NDIMS ? dims[by].field : "?";
}

void query_format_time(int64_t t, char *out)
{
    report_format_time(t, out, 32);
}

bool query_parse_time(const char *s, int64_t now, int64_t *out)
{
    size_t n = strlen(s);
    if (n >= 2 && n <= 8 && strchr("mhdw", s[n - 1])) {
        int64_t v = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                return false;
            v = v * 10 + (s[i] - '0');
        }
        int64_t unit = s[n - 1] == 'm'   ? 60
                       : s[n - 1] == 'h' ? 3600
                       : s[n - 1] == 'd' ? DAY
                                         : 7 * DAY;
        *out = now - v * unit;
        return true;
    }
    char dt[64];
    if (n == 10) { /* a date: midnight UTC */
        snprintf(dt, sizeof dt, "%sT00:00:00Z", s);
    } else if (n >= 16 && n < 40 && (s[10] == ' ' || s[10] == 'T' || s[10] == 't') &&
               s[16] != ':') {
        /* "2026-11-01 00:00", maybe with an offset ("+02:00", "Z"): the seconds
         * are :00; a date and time is UTC unless an offset is given */
        snprintf(dt, sizeof dt, "%.16s:00%s", s, s + 16);
    } else {
        snprintf(dt, sizeof dt, "%s", s);
    }
    bool zone;
    return n < 40 && report_parse_datetime(dt, out, &zone) == 0;
}

static char *filter_name(struct query_filter *f)
{
    return f->nnames < sizeof f->names / sizeof *f->names ? f->names[f->nnames++] : NULL;
}

bool query_filter_add_domain(struct query_filter *f, const char *domain)
{
    if (f->sf.ndomains == QUERY_MAX_DOMAINS)
        return false;
    size_t n = strlen(domain);
    bool none = strcmp(domain, "(none)") == 0;
    if (!none) {
        if (n && domain[n - 1] == '.') /* one trailing dot, as ingest drops it */
            n--;
        if (n == 0 || n >= QUERY_NAME_MAX)
            return false;
    }
    char *store = filter_name(f);
    if (store == NULL)
        return false;
    if (none) {
        store[0] = 0;
    } else {
        for (size_t i = 0; i < n; i++)
            store[i] = (char)tolower((unsigned char)domain[i]);
        store[n] = 0;
    }
    f->sf.domains[f->sf.ndomains++] = store;
    return true;
}

bool query_filter_add_reporter(struct query_filter *f, const char *reporter)
{
    size_t n = strlen(reporter);
    if (f->sf.nreporters == QUERY_MAX_DOMAINS || n == 0 || n >= QUERY_NAME_MAX)
        return false;
    char *store = filter_name(f);
    if (store == NULL)
        return false;
    memcpy(store, reporter, n + 1);
    f->sf.reporters[f->sf.nreporters++] = store;
    return true;
}

/* ---- the summary ---------------------------------------------------------------------------- */

static json_t *time_or_null(int64_t t, int64_t open)
{
    if (t == open)
        return json_null();
    char buf[32];
    query_format_time(t, buf);
    return json_string(buf);
}

static json_t *day_name(int64_t day)
{
    char t[32], d[16];
    query_format_time(day, t);
    snprintf(d, sizeof d, "%.10s", t);
    return json_string(d);
}

struct build {
    const struct query_filter *f;
    json_t *groups; /* array, in the store's order */
    json_t *index;  /* key -> group */
};

static json_int_t int_of(const json_t *g, const char *key)
{
    return json_integer_value(json_object_get(g, key));
}

static void set_rate(json_t *g)
{
    json_t *ok = json_object_get(g, "successful_sessions");
    /* in doubles: both sums may be near INT64_MAX (they saturate there) */
    double bad = (double)int_of(g, "failed_sessions");
    double all = json_is_integer(ok) ? (double)json_integer_value(ok) + bad : 0;
    if (all <= 0)
        json_object_set_new(g, "failure_rate", json_null());
    else
        json_object_set_new(g, "failure_rate", json_real(bad / all));
}

/* a group with zero counts, keyed k (a JSON value: a name, a day or null) */
static json_t *new_group(const struct query_filter *f, json_t *k)
{
    bool failure_only = store_dim_failure_only((enum store_dim)f->by);
    json_t *g = json_object();
    json_object_set_new(g, dims[f->by].field, k);
    json_object_set_new(g, "successful_sessions", failure_only ? json_null() : json_integer(0));
    json_object_set_new(g, "failed_sessions", json_integer(0));
    json_object_set_new(g, "failures", json_object());
    json_object_set_new(g, "reports", json_integer(0));
    json_object_set_new(g, "reporters", json_integer(0));
    return g;
}

/* the index key of a row: the name, or the day's date in day (16 bytes) */
static const char *index_key(const struct query_filter *f, const char *key, int64_t day, char *buf)
{
    if (f->by != QUERY_BY_DAY)
        return key;
    char t[32];
    query_format_time(day, t);
    snprintf(buf, 16, "%.10s", t);
    return buf;
}

static int on_group(void *cls, const struct store_group *row)
{
    struct build *b = cls;
    const struct query_filter *f = b->f;
    bool none =
        row->key[0] == 0 && f->by != QUERY_BY_DAY &&
        (f->by == QUERY_BY_DOMAIN || f->by == QUERY_BY_SENDING_IP || f->by == QUERY_BY_MX_HOST);
    none = none || (row->key[0] == 0 && f->by == QUERY_BY_DKIM); /* not mail: no verdict */
    json_t *k = f->by == QUERY_BY_DAY ? day_name(row->day)
                : none                ? json_null()
                                      : json_string(row->key);
    if (k == NULL) /* not UTF-8: cannot be a JSON string */
        return 0;
    json_t *g = new_group(f, k);
    if (row->has_successful)
        json_object_set_new(g, "successful_sessions", json_integer(row->successful));
    json_object_set_new(g, "failed_sessions", json_integer(row->failed));
    json_object_set_new(g, "reports", json_integer(row->reports));
    json_object_set_new(g, "reporters", json_integer(row->reporters));
    if ((f->by == QUERY_BY_DOMAIN || f->by == QUERY_BY_REPORTER) && row->last_start)
        json_object_set_new(g, "last_report", time_or_null(row->last_start, 0));
    char day[16];
    json_object_set(b->index, index_key(f, row->key, row->day, day), g);
    json_array_append_new(b->groups, g);
    return 0;
}

static void add_count(json_t *obj, const char *key, json_int_t n)
{
    json_t *v = json_object_get(obj, key);
    json_int_t old = v ? json_integer_value(v) : 0;
    json_object_set_new(obj, key, json_integer(old > INT64_MAX - n ? INT64_MAX : old + n));
}

static int on_failure(void *cls, const struct store_failure *row)
{
    struct build *b = cls;
    char day[16];
    json_t *g = json_object_get(b->index, index_key(b->f, row->key, row->day, day));
    if (g)
        add_count(json_object_get(g, "failures"), row->result_type, row->failed);
    return 0;
}

static int on_total_failure(void *cls, const struct store_failure *row)
{
    add_count(cls, row->result_type, row->failed);
    return 0;
}

/* every day of the window, zero groups where the store had none */
static json_t *filled_days(const struct query_filter *f, json_t *groups)
{
    size_t n = json_array_size(groups);
    int64_t first = INT64_MAX, last = INT64_MIN;
    json_t *by_day = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *g = json_array_get(groups, i);
        const char *d = json_string_value(json_object_get(g, "day"));
        int64_t t;
        if (d == NULL || !query_parse_time(d, 0, &t))
            continue;
        json_object_set(by_day, d, g);
        first = t < first ? t : first;
        last = t > last ? t : last;
    }
    int64_t now = (int64_t)time(NULL);
    int64_t start = f->sf.since != INT64_MIN ? f->sf.since : first;
    int64_t end = f->sf.until != INT64_MAX   ? f->sf.until - 1
                  : f->sf.since != INT64_MIN ? now
                                             : last;
    json_t *out = json_array();
    if (start != INT64_MAX && end != INT64_MIN && start <= end) {
        start -= ((start % DAY) + DAY) % DAY;
        if ((end - start) / DAY >= QUERY_FILL_DAYS)
            start = end - ((end % DAY) + DAY) % DAY - (int64_t)(QUERY_FILL_DAYS - 1) * DAY;
        for (int64_t t = start; t <= end; t += DAY) {
            json_t *name = day_name(t);
            json_t *g = json_object_get(by_day, json_string_value(name));
            if (g) {
                json_array_append(out, g);
                json_decref(name);
            } else {
                g = new_group(f, name);
                set_rate(g);
                json_array_append_new(out, g);
            }
        }
    }
    json_decref(by_day);
    return out;
}

json_t *query_summary(struct store *st, const struct query_filter *f, char *err)
{
    struct build b = {f, json_array(), json_object()};
    json_t *totals = json_object(), *tfail = json_object(), *out = NULL;
    json_object_set(totals, "failures", tfail); /* tfail is ours too: its types make result_types */
    enum store_dim dim = (enum store_dim)f->by;
    bool natural = f->by == QUERY_BY_DOMAIN || f->by == QUERY_BY_DAY;
    size_t limit = f->top ? f->top : f->limit;
    struct store_page page = {f->top > 0 || !natural, limit, f->top ? 0 : f->offset};
    size_t ngroups = 0;
    struct store_totals t;
    struct store_summary_fns fns = {on_group, f->sessions_only ? NULL : on_failure, &b,
                                    f->sessions_only ? NULL : on_total_failure, tfail};
    if (store_summary(st, &f->sf, dim, &page, &fns, limit ? &ngroups : NULL, &t, err) != TR_OK)
        goto done;
    json_object_set_new(totals, "successful_sessions", json_integer(t.successful));
    json_object_set_new(totals, "failed_sessions", json_integer(t.failed));
    json_object_set_new(totals, "reports", json_integer(t.reports));
    json_object_set_new(totals, "reporters", json_integer(t.reporters));
    set_rate(totals);
    size_t i;
    json_t *g;
    json_array_foreach(b.groups, i, g) set_rate(g);
    json_t *groups =
        f->fill && f->by == QUERY_BY_DAY ? filled_days(f, b.groups) : json_incref(b.groups);
    if (f->sessions_only) { /* not asked for: not there, rather than shown as none */
        json_array_foreach(groups, i, g) json_object_del(g, "failures");
        json_object_del(totals, "failures");
    }

    json_t *domains = json_array();
    for (size_t k = 0; k < f->sf.ndomains; k++)
        json_array_append_new(domains,
                              f->sf.domains[k][0] ? json_string(f->sf.domains[k]) : json_null());
    json_t *filter = json_pack("{s:o, s:o, s:o, s:s}", "domains", domains, "since",
                               time_or_null(f->sf.since, INT64_MIN), "until",
                               time_or_null(f->sf.until, INT64_MAX), "by", dims[f->by].name);
    if (f->sf.nreporters) {
        json_t *reporters = json_array();
        for (size_t k = 0; k < f->sf.nreporters; k++)
            json_array_append_new(reporters, json_string(f->sf.reporters[k]));
        json_object_set_new(filter, "reporters", reporters);
    }
    if (f->top)
        json_object_set_new(filter, "top", json_integer((json_int_t)f->top));
    if (f->fill)
        json_object_set_new(filter, "fill", json_true());
    if (f->sessions_only)
        json_object_set_new(filter, "failures", json_false());

    json_t *meanings = json_object();
    const char *type;
    json_t *n;
    json_object_foreach(tfail, type, n)
    {
        const struct result_type *rt = result_type_find(type);
        json_object_set_new(
            meanings, type,
            rt ? json_pack("{s:s, s:s, s:b}", "meaning", rt->meaning, "fix", rt->fix, "rfc", 1)
               : json_pack("{s:n, s:n, s:b}", "meaning", "fix", "rfc", 0));
    }
    out = json_pack("{s:s, s:o, s:o, s:O, s:o}", "by", dims[f->by].name, "filter", filter, "groups",
                    groups, "totals", totals, "result_types", meanings);
    if (f->by == QUERY_BY_DOMAIN)
        json_object_set(out, "domains", groups);
    if (limit && !f->top) {
        json_object_set_new(out, "total_groups", json_integer((json_int_t)ngroups));
        json_object_set_new(out, "limit", json_integer((json_int_t)f->limit));
        json_object_set_new(out, "offset", json_integer((json_int_t)f->offset));
    }
done:
    json_decref(totals);
    json_decref(tfail);
    json_decref(b.groups);
    json_decref(b.index);
    return out;
}

/* ---- reports -------------------------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

static json_t *source_json(const struct store_source *s)
{
    static const char *const names[] = {"kind",   "name",      "client", "message_id",
                                        "domain", "submitter", "subject"};
    const char *values[] = {s->kind,       s->name,          s->client,
                            s->message_id, s->report_domain, s->report_submitter,
                            s->subject};
    json_t *src = json_object();
    for (int i = 0; i < 7; i++)
        if (values[i])
            json_object_set_new(src, names[i], str_or_null(values[i]));
    return src;
}

/* A mailed report's DKIM verdict: {"result", "domain", "aligned"} and, when it
 * did not pass, "reason"; null when there is none (not mail, or dkim = off). */
static json_t *dkim_json(const struct store_source *s)
{
    if (s->dkim_result == NULL)
        return json_null();
    json_t *d = json_pack("{s:o, s:o, s:b}", "result", str_or_null(s->dkim_result), "domain",
                          str_or_null(s->dkim_domain), "aligned", s->dkim_aligned);
    if (d && s->dkim_reason)
        json_object_set_new(d, "reason", str_or_null(s->dkim_reason));
    return d ? d : json_null();
}

static json_t *report_base(const struct store_report_row *r)
{
    char received[32];
    query_format_time(r->received_at, received);
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:o}", "id",
                     (json_int_t)r->id, "organization_name", str_or_null(r->organization_name),
                     "report_id", str_or_null(r->report_id), "start_datetime",
                     str_or_null(r->start_datetime), "end_datetime", str_or_null(r->end_datetime),
                     "received_at", received, "warnings", (json_int_t)r->warnings, "notes",
                     (json_int_t)r->notes, "successful_sessions", (json_int_t)r->successful,
                     "failed_sessions", (json_int_t)r->failed, "source", source_json(&r->src));
}

/* What listings and one report show of every report: the base and "dkim". */
static json_t *report_json(const struct store_report_row *r)
{
    json_t *out = report_base(r);
    if (out)
        json_object_set_new(out, "dkim", dkim_json(&r->src));
    return out;
}

static int on_listed(void *cls, const struct store_report_row *r)
{
    json_t *item = report_json(r);
    json_t *domains = r->policy_domains ? json_loads(r->policy_domains, 0, NULL) : NULL;
    json_object_set_new(item, "policy_domains", domains ? domains : json_array());
    json_array_append_new(cls, item);
    return 0;
}

json_t *query_reports(struct store *st, const struct query_filter *f, size_t limit, size_t offset,
                      char *err)
{
    json_t *list = json_array();
    int64_t total = 0;
    if (store_list_reports(st, &f->sf, limit, offset, on_listed, list, &total, err) != TR_OK) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:o, s:I}", "reports", list, "total", (json_int_t)total);
}

/* The report JSON as received (stored raw, maybe compressed). */
static json_t *raw_json(const char *enc, const void *raw, size_t len)
{
    if (raw == NULL)
        return json_null();
    struct buf out;
    buf_init(&out, (size_t)32 << 20);
    const void *json = raw;
    size_t jlen = len;
    char err[TR_ERRLEN];
    if (enc && strcmp(enc, "identity") != 0) {
        if (gz_inflate(raw, len, &out, err) != TR_OK) {
            buf_free(&out);
            return json_pack("{s:s}", "error", err);
        }
        json = out.data;
        jlen = out.len;
    }
    json_error_t je;
    json_t *j = json_loadb(json, jlen, JSON_DECODE_ANY, &je);
    if (j == NULL)
        j = json_stringn(json, jlen);
    buf_free(&out);
    return j ? j : json_null();
}

struct one_report {
    json_t *out;
    char ids[TR_ERRLEN];
};

static int on_one(void *cls, const struct store_report_row *r)
{
    struct one_report *o = cls;
    size_t used = strlen(o->ids);
    snprintf(o->ids + used, sizeof o->ids - used, "%s%lld", used ? ", " : "", (long long)r->id);
    if (o->out)
        return 0;
    o->out = report_json(r);
    json_t *diags = r->diagnostics ? json_loads(r->diagnostics, 0, NULL) : NULL;
    json_object_set_new(o->out, "contact_info", str_or_null(r->contact_info));
    json_object_set_new(o->out, "diagnostics", diags ? diags : json_array());
    json_object_set_new(o->out, "report", raw_json(r->raw_encoding, r->raw, r->rawlen));
    return 0;
}

static json_t *json_text_or(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_array();
}

/* The policies of one report, and where each stored idx is among them (a
 * tenant's view shows only some). */
struct policies_ctx {
    json_t *list;
    json_t *by_idx; /* "idx" -> the policy (borrowed from list) */
};

static int on_policy(void *cls, const struct store_policy_row *p)
{
    struct policies_ctx *c = cls;
    char idx[24];
    snprintf(idx, sizeof idx, "%zu", p->idx);
    json_array_append_new(
        c->list,
        json_pack("{s:o, s:o, s:o, s:o, s:I, s:I, s:o}", "policy_type", str_or_null(p->policy_type),
                  "policy_domain", str_or_null(p->policy_domain), "policy_strings",
                  json_text_or(p->policy_strings), "mx_hosts", json_text_or(p->mx_hosts),
                  "successful_sessions", (json_int_t)p->successful, "failed_sessions",
                  (json_int_t)p->failed, "failure_details", json_array()));
    json_object_set(c->by_idx, idx, json_array_get(c->list, json_array_size(c->list) - 1));
    return 0;
}

static int on_detail(void *cls, const struct store_failure_row *f)
{
    struct policies_ctx *c = cls;
    char idx[24];
    snprintf(idx, sizeof idx, "%zu", f->policy_idx);
    json_t *policy = json_object_get(c->by_idx, idx);
    if (policy == NULL)
        return 0;
    json_t *d = json_pack("{s:o, s:I}", "result_type", str_or_null(f->result_type),
                          "failed_session_count", (json_int_t)f->failed_session_count);
    const char *keys[] = {"sending_mta_ip", "receiving_mx_hostname",  "receiving_mx_helo",
                          "receiving_ip",   "additional_information", "failure_reason_code"};
    const char *values[] = {f->sending_mta_ip, f->receiving_mx_hostname,  f->receiving_mx_helo,
                            f->receiving_ip,   f->additional_information, f->failure_reason_code};
    for (size_t i = 0; i < 6; i++)
        if (values[i])
            json_object_set_new(d, keys[i], str_or_null(values[i]));
    json_array_append_new(json_object_get(policy, "failure_details"), d);
    return 0;
}

json_t *query_report(struct store *st, const char *key, size_t *nfound, char *err)
{
    return query_report_scoped(st, NULL, key, nfound, err);
}

json_t *query_report_scoped(struct store *st, const struct store_scope *scope, const char *key,
                            size_t *nfound, char *err)
{
    /* an id first; a number that is no id may still be a report-id */
    bool numeric = key[0] != 0 && strspn(key, "0123456789") == strlen(key) && strlen(key) < 19;
    struct one_report o = {NULL, ""};
    err[0] = 0;
    *nfound = 0;
    tr_err rc = TR_OK;
    if (numeric)
        rc = store_get_reports_scoped(st, scope, strtoll(key, NULL, 10), NULL, on_one, &o, nfound,
                                      err);
    if (rc == TR_OK && *nfound == 0)
        rc = store_get_reports_scoped(st, scope, 0, key, on_one, &o, nfound, err);
    if (rc != TR_OK) {
        json_decref(o.out);
        return NULL;
    }
    if (*nfound > 1) {
        json_decref(o.out);
        tr_fail(err, TR_EUSAGE, "report-id %s matches %zu stored reports (ids %s); give the id",
                key, *nfound, o.ids);
        return NULL;
    }
    if (o.out) {
        struct policies_ctx pc = {json_array(), json_object()};
        rc = store_report_details_scoped(st, scope, int_of(o.out, "id"), on_policy, on_detail, &pc,
                                         err);
        json_decref(pc.by_idx);
        if (rc != TR_OK) {
            json_decref(pc.list);
            json_decref(o.out);
            return NULL;
        }
        json_object_set_new(o.out, "policies", pc.list);
    }
    return o.out;
}

/* ---- policies ------------------------------------------------------------------------------- */

/* The mode of an MTA-STS policy ("mode: enforce" among its strings), else NULL. */
static const char *sts_mode(const json_t *strings)
{
    size_t i;
    json_t *s;
    json_array_foreach(strings, i, s)
    {
        const char *v = json_string_value(s);
        if (v == NULL || strncasecmp(v, "mode:", 5) != 0)
            continue;
        v += 5;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strncmp(v, "enforce", 7) == 0)
            return "enforce";
        if (strncmp(v, "testing", 7) == 0)
            return "testing";
        if (strncmp(v, "none", 4) == 0)
            return "none";
    }
    return NULL;
}

static int on_seen(void *cls, const struct store_seen_policy *p)
{
    json_t *strings = json_text_or(p->policy_strings);
    const char *mode =
        p->policy_type && strcmp(p->policy_type, "sts") == 0 ? sts_mode(strings) : NULL;
    char first[32], last[32];
    query_format_time(p->first_start, first);
    query_format_time(p->last_start, last);
    json_array_append_new(
        cls, json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:s, s:s}", "policy_domain",
                       p->policy_domain && p->policy_domain[0] ? json_string(p->policy_domain)
                                                               : json_null(),
                       "policy_type", str_or_null(p->policy_type), "mode",
                       mode ? json_string(mode) : json_null(), "policy_strings", strings,
                       "mx_hosts", json_text_or(p->mx_hosts), "reports", (json_int_t)p->reports,
                       "first_seen", first, "last_seen", last));
    return 0;
}

json_t *query_policies(struct store *st, const struct query_filter *f, char *err)
{
    json_t *list = json_array();
    if (store_seen_policies(st, &f->sf, on_seen, list, err) != TR_OK) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:o}", "policies", list);
}

/* ---- the quarantine ------------------------------------------------------------------------- */

struct entry_ctx {
    json_t *out;
    bool raw;
};

static bool is_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t'))
            return false;
    return true;
}

static json_t *base64(const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out == NULL)
        return json_null();
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[k++] = tab[v >> 18];
        out[k++] = tab[(v >> 12) & 63];
        out[k++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? tab[v & 63] : '=';
    }
    json_t *j = json_stringn(out, k);
    free(out);
    return j ? j : json_null();
}

static int on_entry(void *cls, const struct store_quarantine_row *q)
{
    struct entry_ctx *c = cls;
    char received[32];
    query_format_time(q->received_at, received);
    json_t *e =
        json_pack("{s:I, s:s, s:o, s:o, s:I, s:b}", "id", (json_int_t)q->id, "received_at",
                  received, "reason", str_or_null(q->reason), "source", source_json(&q->src),
                  "raw_size", (json_int_t)q->raw_size, "raw_kept", q->raw_kept);
    if (c->raw && q->raw) {
        json_t *text = is_text(q->raw, q->rawlen) ? json_stringn(q->raw, q->rawlen) : NULL;
        if (text)
            json_object_set_new(e, "raw_text", text);
        else
            json_object_set_new(e, "raw_base64", base64(q->raw, q->rawlen));
    }
    if (json_is_array(c->out))
        json_array_append_new(c->out, e);
    else
        c->out = e;
    return 0;
}

json_t *query_quarantine(struct store *st, int64_t since, int64_t until, size_t limit,
                         size_t offset, char *err)
{
    struct entry_ctx c = {json_array(), false};
    int64_t total = 0;
    if (store_list_quarantine(st, since, until, limit, offset, on_entry, &c, &total, err) !=
        TR_OK) {
        json_decref(c.out);
        return NULL;
    }
    return json_pack("{s:o, s:I}", "entries", c.out, "total", (json_int_t)total);
}

json_t *query_quarantine_entry(struct store *st, int64_t id, bool raw, bool *found, char *err)
{
    struct entry_ctx c = {NULL, raw};
    if (store_get_quarantine(st, id, on_entry, &c, found, err) != TR_OK) {
        json_decref(c.out);
        return NULL;
    }
    return c.out;
}
