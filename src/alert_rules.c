/* alert_rules.c: the rules of alert.h, run by alert_evaluate(): what was
 * stored is read (through store.h and store_alerts.h), candidates are made,
 * and each is stored as an alert with its deliveries unless its episode has
 * alerted already or its (rule, domain, subject) is cooling down. Sends
 * nothing (alert.c does).
 *
 * Reports are looked at once each, in id order, a chunk at a time: the
 * highest id evaluated is kept in the database (meta 'alerts_evaluated') and
 * moved in the same transaction as the alerts of its chunk, from the value
 * read (so a second process evaluating the same chunk rolls back). An id
 * missing below the highest (another collector's transaction that has not
 * committed yet) is remembered and looked at again for GAP_TTL seconds.
 * Reports whose window ended more than RECENT_DAYS before now are history,
 * not news: they never alert.
 *
 * Days are UTC days of a report's start. The episode of new-failure,
 * failure-rate and rate-jump is that day; of silent-reporter the start of the
 * last report; of quarantine-spike the hour. Everything read is bounded:
 * result types, hosts and IPs per alert, report ids listed, chunk sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/alert.h"
#include "tlsrptd/alert_message.h"
#include "tlsrptd/log.h"
#include "tlsrptd/query.h"
#include "tlsrptd/result_type.h"

#define DAY              86400
#define RECENT_DAYS      7    /* older reports never alert */
#define JUMP_RECENT_DAYS 3    /* rate-jump: days up to this far before now */
#define BASELINE_DAYS    28   /* rate-jump: the trailing baseline */
#define BASELINE_MIN     7    /* rate-jump: days of baseline needed */
#define SILENT_WINDOW    14   /* silent-reporter: days looked at before the last report */
#define SILENT_MOST      8    /* ... of which it must have reported on this many */
#define CHUNK            1000 /* report ids per transaction */
#define GAP_MAX          1000 /* missing ids remembered per chunk */
#define GAP_TTL          600  /* seconds a missing id is looked for */
#define MAX_TYPES        20   /* result types per alert */
#define MAX_NAMES        10   /* MX hosts and sending IPs per result type and alert */
#define MAX_REPORTS      50   /* report ids listed per alert */
#define MAX_REPORTERS    20
#define MAX_CANDIDATES   20000
#define STORE_BATCH      100 /* candidates stored per transaction */
#define YIELD_MS         150 /* pause between those transactions */
#define NAME_MAX_BYTES   255

static const char *const rule_names[ALERT_NRULES] = {
    [ALERT_NEW_FAILURE] = "new-failure",
    [ALERT_FAILURE_RATE] = "failure-rate",
    [ALERT_RATE_JUMP] = "rate-jump",
    [ALERT_SILENT_REPORTER] = "silent-reporter",
    [ALERT_QUARANTINE_SPIKE] = "quarantine-spike",
};

const char *alert_rule_name(enum alert_rule r)
{
    return (unsigned)r < ALERT_NRULES ? rule_names[r] : "unknown";
}

enum alert_rule alert_rule_find(const char *name)
{
    for (int r = 0; r < ALERT_NRULES; r++)
        if (strcmp(rule_names[r], name) == 0)
            return (enum alert_rule)r;
    return ALERT_NRULES;
}

static int64_t day_of(int64_t t)
{
    return t - (((t % DAY) + DAY) % DAY);
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

static void format_day(int64_t t, char out[16])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 16, "?");
}

/* s cut to NAME_MAX_BYTES at a UTF-8 boundary, into out. */
static const char *clip(const char *s, char out[NAME_MAX_BYTES + 1])
{
    size_t n = strlen(s);
    if (n <= NAME_MAX_BYTES)
        return s;
    n = NAME_MAX_BYTES;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

/* map[key] += n; a key beyond max keys is counted under "(others)". */
static void count_into(json_t *map, const char *key, int64_t n, size_t max)
{
    char tmp[NAME_MAX_BYTES + 1];
    key = clip(key, tmp);
    json_t *v = json_object_get(map, key);
    if (v == NULL && json_object_size(map) >= max) {
        key = "(others)";
        v = json_object_get(map, key);
    }
    json_int_t old = v ? json_integer_value(v) : 0;
    json_object_set_new(map, key, json_integer(sat_add(old, n)));
}

/* The failures of one result type: {"failed", "mx_hosts": {}, "sending_ips": {}}. */
static json_t *type_entry(json_t *types, const char *type)
{
    char tmp[NAME_MAX_BYTES + 1];
    type = clip(type, tmp);
    json_t *t = json_object_get(types, type);
    if (t)
        return t;
    if (json_object_size(types) >= MAX_TYPES)
        return NULL;
    t = json_pack("{s:I, s:o, s:o}", "failed", (json_int_t)0, "mx_hosts", json_object(),
                  "sending_ips", json_object());
    json_object_set_new(types, type, t);
    return t;
}

static void add_failure(json_t *types, const char *type, const char *mx, const char *ip,
                        int64_t failed)
{
    json_t *t = type_entry(types, type);
    if (t == NULL)
        return;
    json_object_set_new(
        t, "failed",
        json_integer(sat_add(json_integer_value(json_object_get(t, "failed")), failed)));
    if (mx && mx[0])
        count_into(json_object_get(t, "mx_hosts"), mx, failed, MAX_NAMES);
    if (ip && ip[0])
        count_into(json_object_get(t, "sending_ips"), ip, failed, MAX_NAMES);
}

/* Add type entry src (as made above) into types. */
static void merge_type(json_t *types, const char *type, const json_t *src)
{
    json_t *t = type_entry(types, type);
    if (t == NULL)
        return;
    json_object_set_new(t, "failed",
                        json_integer(sat_add(json_integer_value(json_object_get(t, "failed")),
                                             json_integer_value(json_object_get(src, "failed")))));
    const char *keys[] = {"mx_hosts", "sending_ips"};
    for (size_t i = 0; i < 2; i++) {
        const char *name;
        json_t *n;
        json_object_foreach(json_object_get(src, keys[i]), name, n)
        {
            count_into(json_object_get(t, keys[i]), name, json_integer_value(n), MAX_NAMES);
        }
    }
}

/* ---- the new reports of a chunk ------------------------------------------------------------- */

/* One report's policies for one domain. */
struct rec {
    int64_t report, start, end;
    char *reporter, *domain;
    int64_t successful, failed;
    json_t *types;
};

struct chunk {
    struct rec *v;
    size_t n, cap;
    bool oom;
};

static void chunk_free(struct chunk *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].reporter);
        free(c->v[i].domain);
        json_decref(c->v[i].types);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* The record of (report, domain); rows come in report order, so only the
 * records of the last report are searched. */
static struct rec *chunk_find(struct chunk *c, int64_t report, const char *domain)
{
    for (size_t i = c->n; i > 0 && c->v[i - 1].report >= report; i--)
        if (c->v[i - 1].report == report && strcmp(c->v[i - 1].domain, domain) == 0)
            return &c->v[i - 1];
    return NULL;
}

static int take_policy(void *cls, const struct store_alert_policy *p)
{
    struct chunk *c = cls;
    struct rec *r = chunk_find(c, p->report, p->domain);
    if (r == NULL) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 256;
            struct rec *v = realloc(c->v, cap * sizeof *v);
            if (v == NULL) {
                c->oom = true;
                return 1;
            }
            c->v = v;
            c->cap = cap;
        }
        r = &c->v[c->n];
        *r = (struct rec){
            p->report, p->start_time, p->end_time, strdup(p->reporter), strdup(p->domain), 0,
            0,         json_object()};
        c->n++;
        if (r->reporter == NULL || r->domain == NULL || r->types == NULL) {
            c->oom = true;
            return 1;
        }
    }
    r->successful = sat_add(r->successful, p->successful);
    r->failed = sat_add(r->failed, p->failed);
    return 0;
}

static int take_detail(void *cls, const struct store_alert_detail *d)
{
    struct chunk *c = cls;
    /* details come in report order too; search by report */
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->v[mid].report < d->report)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < c->n && c->v[i].report == d->report; i++)
        if (strcmp(c->v[i].domain, d->domain) == 0) {
            add_failure(c->v[i].types, d->result_type,
                        d->mx_host && d->mx_host[0] ? d->mx_host : d->receiving_ip, d->sending_ip,
                        d->failed);
            break;
        }
    return 0;
}

/* ---- candidates ----------------------------------------------------------------------------- */

struct cand {
    enum alert_rule rule;
    char *domain, *subject;
    int64_t episode;
    bool has_sessions;
    int64_t successful, failed;
    json_t *types;     /* result type -> entry (type_entry) */
    json_t *reporters; /* name -> reports */
    json_t *reports;   /* "id" -> true */
    json_t *extra;     /* fields of the rule's own */
    /* after storing */
    char *title;
    int64_t id;
    enum store_alert_added added;
};

struct eval {
    struct store *st;
    const struct alert_config *ac;
    int64_t now;
    struct cand *c;
    size_t n, cap;
    json_t *index; /* "rule\ndomain\nsubject" -> position in c */
    bool oom;
    bool timed;     /* the candidates come from the timed rules: finding them again is no repeat */
    json_t *seen;   /* new-failure checks of this chunk: "domain\ntype\nday" -> new or not */
    bool truncated; /* MAX_CANDIDATES reached: the rest of the chunk was not looked at */
    alert_fired_fn fn;
    void *cls;
    struct alert_counts *counts;
};

static void cands_clear(struct eval *e)
{
    for (size_t i = 0; i < e->n; i++) {
        struct cand *c = &e->c[i];
        free(c->domain);
        free(c->subject);
        json_decref(c->types);
        json_decref(c->reporters);
        json_decref(c->reports);
        json_decref(c->extra);
        free(c->title);
    }
    e->n = 0;
    json_object_clear(e->index);
}

/* The candidate of (rule, domain, subject, episode), made when new; NULL when
 * out of memory or when there are too many. Two episodes of one key are two
 * candidates: the later one is then held back by the cooldown. */
static struct cand *cand_at(struct eval *e, enum alert_rule rule, const char *domain,
                            const char *subject, int64_t episode)
{
    char d[NAME_MAX_BYTES + 1], s[NAME_MAX_BYTES + 1];
    domain = clip(domain, d);
    subject = clip(subject, s);
    size_t kl = strlen(rule_names[rule]) + strlen(domain) + strlen(subject) + 24;
    char *key = malloc(kl);
    if (key == NULL) {
        e->oom = true;
        return NULL;
    }
    snprintf(key, kl, "%s\n%s\n%s\n%lld", rule_names[rule], domain, subject, (long long)episode);
    json_t *at = json_object_get(e->index, key);
    if (at) {
        free(key);
        return &e->c[json_integer_value(at)];
    }
    if (e->n == MAX_CANDIDATES) {
        free(key);
        return NULL;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 64;
        struct cand *v = realloc(e->c, cap * sizeof *v);
        if (v == NULL) {
            free(key);
            e->oom = true;
            return NULL;
        }
        e->c = v;
        e->cap = cap;
    }
    struct cand *c = &e->c[e->n];
    *c = (struct cand){rule, strdup(domain), strdup(subject), episode,       false,         0,
                       0,    json_object(),  json_object(),   json_object(), json_object(), NULL,
                       0,    STORE_ALERT_NEW};
    json_object_set_new(e->index, key, json_integer((json_int_t)e->n));
    free(key);
    e->n++;
    if (!c->domain || !c->subject || !c->types || !c->reporters || !c->reports || !c->extra)
        e->oom = true;
    return c;
}

static void cand_report(struct cand *c, int64_t report, const char *reporter)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)report);
    json_object_set_new(c->reports, id, json_true());
    if (reporter)
        count_into(c->reporters, reporter, 1, MAX_REPORTERS);
}

/* A report's part for one domain: its sessions, reporter, id and (all, or
 * only type) failures. */
static void cand_add_rec(struct cand *c, const struct rec *r, const char *type)
{
    cand_report(c, r->report, r->reporter);
    if (type == NULL) {
        c->has_sessions = true;
        c->successful = sat_add(c->successful, r->successful);
        c->failed = sat_add(c->failed, r->failed);
    }
    const char *name;
    json_t *t;
    json_object_foreach(r->types, name, t)
    {
        if (type == NULL || strcmp(name, type) == 0)
            merge_type(c->types, name, t);
    }
}

/* ---- the details JSON ----------------------------------------------------------------------- */

static int by_count(const void *pa, const void *pb)
{
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    json_int_t na = json_integer_value(json_object_get(a, "failed")),
               nb = json_integer_value(json_object_get(b, "failed"));
    if (na != nb)
        return na > nb ? -1 : 1;
    return strcmp(json_string_value(json_object_get(a, "name")),
                  json_string_value(json_object_get(b, "name")));
}

/* {name: n} as [{"name", "failed"}], most failed first: a NEW reference. */
static json_t *ranked(const json_t *map)
{
    size_t n = json_object_size(map), k = 0;
    json_t **v = calloc(n ? n : 1, sizeof *v);
    json_t *out = json_array();
    if (v == NULL || out == NULL) {
        free(v);
        return out;
    }
    const char *name;
    json_t *count;
    json_object_foreach((json_t *)map, name, count)
    {
        v[k++] = json_pack("{s:s, s:O}", "name", name, "failed", count);
    }
    qsort(v, k, sizeof *v, by_count);
    for (size_t i = 0; i < k; i++)
        json_array_append_new(out, v[i]);
    free(v);
    return out;
}

static int by_id(const void *pa, const void *pb)
{
    long long a = *(const long long *)pa, b = *(const long long *)pb;
    return a < b ? -1 : a > b;
}

static double rate_of(int64_t successful, int64_t failed)
{
    double total = (double)successful + (double)failed;
    return total > 0 ? (double)failed / total : 0.0;
}

/* A configured rate as people write it: 0.05 -> "5%". */
static void setting(double r, char out[24])
{
    snprintf(out, 24, "%g%%", r * 100.0);
}

static json_t *why(const struct alert_config *ac, enum alert_rule rule)
{
    char a[24], b[24];
    switch (rule) {
    case ALERT_NEW_FAILURE:
        return json_sprintf("a result type seen for a domain for the first time, or again after "
                            "%lld days without it",
                            (long long)ac->clean_days);
    case ALERT_FAILURE_RATE:
        setting(ac->failure_rate, a);
        return json_sprintf("a report in which at least %s of a domain's TLS sessions failed "
                            "(with at least %lld sessions)",
                            a, (long long)ac->min_sessions);
    case ALERT_RATE_JUMP:
        setting(ac->jump_floor, a);
        snprintf(b, sizeof b, "%g", ac->jump);
        return json_sprintf("a domain's daily failure rate at least %s times its %d-day baseline "
                            "and at least %s",
                            b, BASELINE_DAYS, a);
    case ALERT_SILENT_REPORTER:
        return json_sprintf("a reporter that reported a domain on most of %d days sent nothing "
                            "for %lld days",
                            SILENT_WINDOW, (long long)ac->silence_days);
    default:
        return json_sprintf("more than %lld inputs rejected in an hour",
                            (long long)ac->quarantine_max);
    }
}

/* The details JSON of a candidate: a NEW reference. */
static json_t *cand_details(const struct eval *e, const struct cand *c)
{
    json_t *d = json_object();
    json_object_set_new(d, "why", why(e->ac, c->rule));
    if (c->rule != ALERT_QUARANTINE_SPIKE && c->rule != ALERT_SILENT_REPORTER) {
        char day[16];
        format_day(c->episode, day);
        json_object_set_new(d, "day", json_string(day));
    }
    const char *name;
    json_t *v;
    json_t *reporters = json_array();
    json_object_foreach(c->reporters, name, v)
    {
        json_array_append_new(reporters, json_string(name));
    }
    json_object_set_new(d, "reporters", reporters);
    if (c->has_sessions) {
        json_object_set_new(d, "sessions",
                            json_pack("{s:I, s:I}", "successful", (json_int_t)c->successful,
                                      "failed", (json_int_t)c->failed));
        json_object_set_new(d, "failure_rate", json_real(rate_of(c->successful, c->failed)));
    }
    json_t *types = json_object(), *mx = json_object(), *ips = json_object();
    json_object_foreach(c->types, name, v)
    {
        const struct result_type *rt = result_type_find(name);
        json_t *t =
            json_pack("{s:O, s:s, s:s, s:o, s:o}", "failed", json_object_get(v, "failed"),
                      "meaning", rt ? rt->meaning : "a result type RFC 8460 does not define", "fix",
                      rt ? rt->fix : "see the report's failure details", "mx_hosts",
                      ranked(json_object_get(v, "mx_hosts")), "sending_ips",
                      ranked(json_object_get(v, "sending_ips")));
        json_object_set_new(types, name, t);
        const char *h;
        json_t *n;
        json_object_foreach(json_object_get(v, "mx_hosts"), h, n)
        {
            count_into(mx, h, json_integer_value(n), MAX_NAMES);
        }
        json_object_foreach(json_object_get(v, "sending_ips"), h, n)
        {
            count_into(ips, h, json_integer_value(n), MAX_NAMES);
        }
    }
    json_object_set_new(d, "result_types", types);
    json_object_set_new(d, "mx_hosts", ranked(mx));
    json_object_set_new(d, "sending_ips", ranked(ips));
    json_decref(mx);
    json_decref(ips);
    size_t nrep = json_object_size(c->reports), k = 0;
    long long *ids = calloc(nrep ? nrep : 1, sizeof *ids);
    json_t *reports = json_array();
    if (ids) {
        json_object_foreach(c->reports, name, v)
        {
            ids[k++] = strtoll(name, NULL, 10);
        }
        qsort(ids, k, sizeof *ids, by_id);
        for (size_t i = 0; i < k && i < MAX_REPORTS; i++)
            json_array_append_new(reports, json_integer(ids[i]));
        free(ids);
    }
    json_object_set_new(d, "reports", reports);
    json_object_set_new(d, "reports_total", json_integer((json_int_t)nrep));
    json_object_update(d, c->extra);
    return d;
}

/* ---- storing -------------------------------------------------------------------------------- */

/* Store candidates [from, to) (in the caller's transaction). */
static tr_err store_cands(struct eval *e, size_t from, size_t to, char *err)
{
    const struct alert_config *ac = e->ac;
    for (size_t i = from; i < to; i++) {
        struct cand *c = &e->c[i];
        json_t *details = cand_details(e, c);
        char *text = details ? json_dumps(details, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (text == NULL) {
            json_decref(details);
            return tr_fail(err, TR_ENOMEM, "alerts: out of memory");
        }
        char title[512];
        struct alert_msg m = {0,         e->now,     0,    rule_names[c->rule],
                              c->domain, c->subject, NULL, details};
        alert_message_title(&m, title, sizeof title);
        free(c->title);
        c->title = strdup(title);
        const char *channels[ALERT_MAX_CHANNELS];
        size_t nch = 0;
        for (size_t k = 0; k < ac->nchannels; k++)
            if (alert_channel_wants(&ac->channels[k], c->domain))
                channels[nch++] = ac->channels[k].name;
        struct store_alert a = {0,         e->now,     c->episode, 0,   rule_names[c->rule],
                                c->domain, c->subject, title,      text};
        tr_err rc = store_alert_add(e->st, &a, ac->cooldown, !e->timed, channels, nch, &c->id,
                                    &c->added, err);
        free(text);
        json_decref(details);
        if (rc != TR_OK)
            return rc;
    }
    return TR_OK;
}

/* After the commits: count and tell the first n. A timed rule finding its
 * situation again is neither news nor a repeat: it is not told. */
static void report_cands(struct eval *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct cand *c = &e->c[i];
        if (c->added != STORE_ALERT_NEW && e->timed)
            continue;
        if (c->added == STORE_ALERT_NEW)
            e->counts->fired++;
        else
            e->counts->suppressed++;
        if (e->fn) {
            struct store_alert a = {c->id,
                                    e->now,
                                    c->episode,
                                    0,
                                    rule_names[c->rule],
                                    c->domain,
                                    c->subject,
                                    c->title ? c->title : "",
                                    ""};
            e->fn(e->cls, &a, c->added);
        }
    }
}

/* Store the candidates, STORE_BATCH to a transaction (SQLite's write lock is
 * then held for milliseconds, not for a flood's seconds), and in the last one
 * move the evaluated mark from old to upto (when upto >= 0), remember gaps
 * and forget gap_done. *moved false: another process did this chunk first;
 * the last batch is not kept (what earlier batches stored, that process finds
 * stored: an episode alerts once). */
static tr_err commit_cands(struct eval *e, int64_t old, int64_t upto, const int64_t *gaps,
                           size_t ngaps, int64_t gap_done, bool *moved, char *err)
{
    *moved = true;
    tr_err rc = TR_OK;
    size_t from = 0;
    do {
        size_t to = e->n - from > STORE_BATCH ? from + STORE_BATCH : e->n;
        bool last = to == e->n;
        for (int attempt = 0; attempt < 3; attempt++) {
            if ((rc = store_begin(e->st, err)) != TR_OK)
                break;
            rc = store_cands(e, from, to, err);
            for (size_t i = 0; last && rc == TR_OK && i < ngaps; i++)
                rc = store_alert_gap_add(e->st, gaps[i], (int64_t)time(NULL), err);
            if (last && rc == TR_OK && gap_done > 0)
                rc = store_alert_gap_done(e->st, gap_done, err);
            if (last && rc == TR_OK && upto >= 0)
                rc = store_alert_advance(e->st, old, upto, moved, err);
            if (rc == TR_OK && !*moved) {
                store_rollback(e->st);
                report_cands(e, from);
                return TR_OK;
            }
            if (rc == TR_OK)
                rc = store_commit(e->st, err);
            else
                store_rollback(e->st);
            if (rc != TR_ERETRY)
                break;
        }
        if (rc != TR_OK) {
            report_cands(e, from);
            return rc;
        }
        from = to;
        if (from < e->n) { /* let a waiting writer in: SQLite's busy handler polls every 100 ms */
            struct timespec pause = {0, YIELD_MS * 1000000L};
            nanosleep(&pause, NULL);
        }
    } while (from < e->n);
    report_cands(e, e->n);
    return TR_OK;
}

/* ---- the report rules ----------------------------------------------------------------------- */

struct seen_ctx {
    const char *type;
    int64_t last; /* latest day with failures of type; 0: none */
};

static int seen_type(void *cls, const struct store_failure *f)
{
    struct seen_ctx *s = cls;
    if (f->failed > 0 && strcmp(f->result_type, s->type) == 0 && f->day >= s->last)
        s->last = f->day ? f->day : 1;
    return 0;
}

/* The latest day in [since, until) on which domain had failures of type
 * (0: none). */
static tr_err last_seen(struct store *st, const char *domain, const char *type, int64_t since,
                        int64_t until, int64_t *last, char *err)
{
    struct store_filter f;
    store_filter_init(&f);
    f.domains[f.ndomains++] = domain;
    f.since = since;
    f.until = until;
    struct seen_ctx s = {type, 0};
    tr_err rc = store_summary_failures(st, &f, STORE_BY_DAY, NULL, 0, seen_type, &s, err);
    *last = s.last;
    return rc;
}

static tr_err rule_new_failure(struct eval *e, const struct rec *r, char *err)
{
    int64_t day = day_of(r->start);
    const char *type;
    json_t *t;
    json_object_foreach(r->types, type, t)
    {
        if (json_integer_value(json_object_get(t, "failed")) <= 0)
            continue;
        /* another report of this chunk for the same domain, type and day: asked already */
        char key[2 * NAME_MAX_BYTES + 32];
        snprintf(key, sizeof key, "%s\n%s\n%lld", r->domain, type, (long long)day);
        json_t *known = json_object_get(e->seen, key);
        int64_t last = 0;
        tr_err rc = TR_OK;
        if (known) {
            last = json_is_true(known) ? 0 : 1;
        } else {
            rc = last_seen(e->st, r->domain, type, day - e->ac->clean_days * DAY, day, &last, err);
            if (rc != TR_OK)
                return rc;
            json_object_set_new(e->seen, key, json_boolean(last == 0));
        }
        if (last)
            continue;
        struct cand *c = cand_at(e, ALERT_NEW_FAILURE, r->domain, type, day);
        if (c == NULL)
            continue;
        if (json_object_get(c->extra, "last_seen") == NULL) {
            /* the first time ever, or back after clean days? */
            if ((rc = last_seen(e->st, r->domain, type, INT64_MIN, day - e->ac->clean_days * DAY,
                                &last, err)) != TR_OK)
                return rc;
            char when[16] = "";
            if (last)
                format_day(last, when);
            json_object_set_new(c->extra, "last_seen", last ? json_string(when) : json_null());
            json_object_set_new(c->extra, "clean_days", json_integer(e->ac->clean_days));
        }
        cand_add_rec(c, r, type);
    }
    return TR_OK;
}

static void rule_failure_rate(struct eval *e, const struct rec *r)
{
    double total = (double)r->successful + (double)r->failed;
    if (total < (double)e->ac->min_sessions ||
        rate_of(r->successful, r->failed) < e->ac->failure_rate)
        return;
    struct cand *c = cand_at(e, ALERT_FAILURE_RATE, r->domain, "", day_of(r->start));
    if (c == NULL)
        return;
    cand_add_rec(c, r, NULL);
    json_object_set_new(c->extra, "threshold", json_real(e->ac->failure_rate));
}

struct days_ctx {
    int64_t day;
    int64_t ok, bad;           /* on day */
    int64_t base_ok, base_bad; /* before it */
    int64_t base_days;
};

static int take_day(void *cls, const struct store_group *g)
{
    struct days_ctx *d = cls;
    if (g->day == d->day) {
        d->ok = sat_add(d->ok, g->successful);
        d->bad = sat_add(d->bad, g->failed);
    } else if (g->day < d->day) {
        d->base_ok = sat_add(d->base_ok, g->successful);
        d->base_bad = sat_add(d->base_bad, g->failed);
        d->base_days++;
    }
    return 0;
}

static int jump_detail(void *cls, const struct store_alert_detail *d)
{
    struct cand *c = cls;
    cand_report(c, d->report, d->reporter);
    add_failure(c->types, d->result_type,
                d->mx_host && d->mx_host[0] ? d->mx_host : d->receiving_ip, d->sending_ip,
                d->failed);
    return 0;
}

/* rate-jump for domain on day (the UTC midnight). */
static tr_err rule_rate_jump(struct eval *e, const char *domain, int64_t day, char *err)
{
    const struct alert_config *ac = e->ac;
    struct store_filter f;
    store_filter_init(&f);
    f.domains[f.ndomains++] = domain;
    f.since = day - BASELINE_DAYS * DAY;
    f.until = day + DAY;
    struct days_ctx d = {day, 0, 0, 0, 0, 0};
    tr_err rc = store_summary_groups(e->st, &f, STORE_BY_DAY, NULL, take_day, &d, NULL, err);
    if (rc != TR_OK)
        return rc;
    double rate = rate_of(d.ok, d.bad), base = rate_of(d.base_ok, d.base_bad);
    if ((double)d.ok + (double)d.bad < (double)ac->min_sessions || d.base_days < BASELINE_MIN ||
        rate < ac->jump_floor || rate < ac->jump * base || rate <= base)
        return TR_OK;
    struct cand *c = cand_at(e, ALERT_RATE_JUMP, domain, "", day);
    if (c == NULL || c->has_sessions)
        return TR_OK;
    c->has_sessions = true;
    c->successful = d.ok;
    c->failed = d.bad;
    json_object_set_new(c->extra, "baseline_rate", json_real(base));
    json_object_set_new(c->extra, "baseline_days", json_integer(d.base_days));
    json_object_set_new(c->extra, "jump", json_real(base > 0 ? rate / base : 0));
    struct store_alert_sel sel = {0, 0, 0, domain, day, day + DAY, INT64_MIN};
    return store_alert_details(e->st, &sel, jump_detail, c, err);
}

/* The rules over one chunk of reports. */
static tr_err run_report_rules(struct eval *e, const struct store_alert_sel *sel, size_t *nreports,
                               char *err)
{
    struct chunk ch = {0};
    tr_err rc = store_alert_policies(e->st, sel, take_policy, &ch, err);
    if (rc == TR_OK && !ch.oom)
        rc = store_alert_details(e->st, sel, take_detail, &ch, err);
    if (rc == TR_OK && ch.oom)
        rc = tr_fail(err, TR_ENOMEM, "alerts: out of memory");
    unsigned rules = e->ac->rules;
    json_t *days = json_object(); /* "domain\nday" of rate-jump, once each */
    int64_t today = day_of(e->now);
    int64_t last_report = -1;
    json_object_clear(e->seen);
    for (size_t i = 0; rc == TR_OK && i < ch.n; i++) {
        const struct rec *r = &ch.v[i];
        if (r->report != last_report)
            (*nreports)++, last_report = r->report;
        if (e->n >= MAX_CANDIDATES) { /* a flood: what is held is plenty to act on */
            if (!e->truncated)
                tr_warn("alerts: more than %d alerts in reports %lld to %lld; the rest of them "
                        "are not evaluated",
                        MAX_CANDIDATES, (long long)ch.v[0].report,
                        (long long)ch.v[ch.n - 1].report);
            e->truncated = true;
            break;
        }
        if (rules & (1u << ALERT_FAILURE_RATE))
            rule_failure_rate(e, r);
        if (rules & (1u << ALERT_NEW_FAILURE))
            rc = rule_new_failure(e, r, err);
        int64_t day = day_of(r->start);
        if (rc == TR_OK && (rules & (1u << ALERT_RATE_JUMP)) && r->failed > 0 && day <= today &&
            day >= today - JUMP_RECENT_DAYS * DAY) {
            char key[NAME_MAX_BYTES + 32];
            snprintf(key, sizeof key, "%s\n%lld", r->domain, (long long)day);
            if (json_object_get(days, key) == NULL) {
                json_object_set_new(days, key, json_true());
                rc = rule_rate_jump(e, r->domain, day, err);
            }
        }
    }
    json_decref(days);
    chunk_free(&ch);
    if (rc == TR_OK && e->oom)
        rc = tr_fail(err, TR_ENOMEM, "alerts: out of memory");
    return rc;
}

static tr_err pass_reports(struct eval *e, char *err)
{
    int64_t min_end = e->now - RECENT_DAYS * DAY;
    /* ids that were missing last time */
    int64_t gaps[64];
    size_t ngaps = 0;
    tr_err rc = store_alert_gaps(e->st, (int64_t)time(NULL) - GAP_TTL, gaps, 64, &ngaps, err);
    for (size_t i = 0; rc == TR_OK && i < ngaps; i++) {
        int64_t present[1];
        size_t np = 0;
        if ((rc = store_alert_present(e->st, gaps[i] - 1, gaps[i], present, 1, &np, err)) !=
                TR_OK ||
            np == 0)
            continue;
        struct store_alert_sel sel = {-1, 0, gaps[i], NULL, 0, 0, min_end};
        bool moved;
        cands_clear(e);
        if ((rc = run_report_rules(e, &sel, &e->counts->reports, err)) == TR_OK)
            rc = commit_cands(e, 0, -1, NULL, 0, gaps[i], &moved, err);
    }
    int64_t mark = 0, highest = 0;
    if (rc == TR_OK)
        rc = store_alert_marks(e->st, &mark, &highest, err);
    int64_t *present = rc == TR_OK && mark < highest ? malloc(CHUNK * sizeof *present) : NULL;
    while (rc == TR_OK && mark < highest) {
        if (present == NULL)
            return tr_fail(err, TR_ENOMEM, "alerts: out of memory");
        int64_t upto = highest - mark > CHUNK ? mark + CHUNK : highest;
        size_t np = 0;
        if ((rc = store_alert_present(e->st, mark, upto, present, CHUNK, &np, err)) != TR_OK)
            break;
        /* ids not there: not committed yet, or never will be (a rolled-back
         * insert); looked at again for a while */
        int64_t missing[GAP_MAX];
        size_t nmissing = 0;
        for (int64_t id = mark + 1, k = 0; id <= upto && nmissing < GAP_MAX; id++) {
            if ((size_t)k < np && present[k] == id)
                k++;
            else
                missing[nmissing++] = id;
        }
        struct store_alert_sel sel = {mark, upto, 0, NULL, 0, 0, min_end};
        cands_clear(e);
        bool moved = true;
        if ((rc = run_report_rules(e, &sel, &e->counts->reports, err)) == TR_OK)
            rc = commit_cands(e, mark, upto, missing, nmissing, 0, &moved, err);
        if (rc == TR_OK && !moved) {
            tr_debug("alerts: reports %lld to %lld were evaluated by another process",
                     (long long)mark + 1, (long long)upto);
            break;
        }
        mark = upto;
    }
    free(present);
    cands_clear(e);
    return rc;
}

/* ---- the timed rules ------------------------------------------------------------------------ */

struct reporter_row {
    char *domain, *reporter;
    int64_t last;
};

struct reporters_ctx {
    struct reporter_row *v;
    size_t n, cap;
    int64_t since, until;
    bool oom;
};

static int take_reporter(void *cls, const struct store_count_row *r)
{
    struct reporters_ctx *c = cls;
    if (r->a == NULL || r->a[0] == 0 || r->b == NULL || r->n1 < c->since || r->n1 >= c->until)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        if (cap > MAX_CANDIDATES)
            return 1;
        struct reporter_row *v = realloc(c->v, cap * sizeof *v);
        if (v == NULL) {
            c->oom = true;
            return 1;
        }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n] = (struct reporter_row){strdup(r->a), strdup(r->b), r->n1};
    if (c->v[c->n].domain == NULL || c->v[c->n].reporter == NULL)
        c->oom = true;
    c->n++;
    return c->oom;
}

static int count_day(void *cls, const struct store_group *g)
{
    *(int64_t *)cls += g->reports > 0;
    return 0;
}

static int take_last_report(void *cls, const struct store_report_row *r)
{
    cand_report(cls, r->id, NULL);
    return 0;
}

static tr_err rule_silent_reporters(struct eval *e, char *err)
{
    const struct alert_config *ac = e->ac;
    int64_t today = day_of(e->now);
    /* silent: the last report's day is alert_silence full days or more before
     * yesterday; recent: that silence began within the window */
    int64_t latest = today - (ac->silence_days + 1) * DAY;
    struct reporters_ctx rc_ = {NULL, 0, 0, latest - SILENT_WINDOW * DAY, latest + DAY, false};
    tr_err rc = store_counts(e->st, STORE_COUNT_DOMAIN_REPORTERS, take_reporter, &rc_, err);
    if (rc == TR_OK && rc_.oom)
        rc = tr_fail(err, TR_ENOMEM, "alerts: out of memory");
    for (size_t i = 0; rc == TR_OK && i < rc_.n; i++) {
        struct reporter_row *r = &rc_.v[i];
        int64_t last_day = day_of(r->last);
        struct store_filter f;
        store_filter_init(&f);
        f.domains[f.ndomains++] = r->domain;
        f.reporters[f.nreporters++] = r->reporter;
        f.since = last_day - (SILENT_WINDOW - 1) * DAY;
        f.until = last_day + DAY;
        int64_t days = 0;
        if ((rc = store_summary_groups(e->st, &f, STORE_BY_DAY, NULL, count_day, &days, NULL,
                                       err)) != TR_OK ||
            days < SILENT_MOST)
            continue;
        struct cand *c = cand_at(e, ALERT_SILENT_REPORTER, r->domain, r->reporter, r->last);
        if (c == NULL)
            continue;
        count_into(c->reporters, r->reporter, 1, MAX_REPORTERS);
        char when[32], day[16];
        query_format_time(r->last, when);
        format_day(last_day, day);
        json_object_set_new(c->extra, "reporter", json_string(r->reporter));
        json_object_set_new(c->extra, "last_report", json_string(when));
        json_object_set_new(c->extra, "last_day", json_string(day));
        json_object_set_new(c->extra, "days_reported", json_integer(days));
        json_object_set_new(c->extra, "days_looked_at", json_integer(SILENT_WINDOW));
        json_object_set_new(c->extra, "silent_days", json_integer((today - last_day) / DAY - 1));
        f.since = r->last;
        f.until = r->last + 1;
        rc = store_list_reports(e->st, &f, 5, 0, take_last_report, c, NULL, err);
    }
    for (size_t i = 0; i < rc_.n; i++) {
        free(rc_.v[i].domain);
        free(rc_.v[i].reporter);
    }
    free(rc_.v);
    return rc;
}

struct spike_ctx {
    json_t *reasons, *ids, *domains;
};

static int take_rejected(void *cls, const struct store_quarantine_row *q)
{
    struct spike_ctx *s = cls;
    if (json_array_size(s->ids) < MAX_REPORTS)
        json_array_append_new(s->ids, json_integer(q->id));
    count_into(s->reasons, q->reason ? q->reason : "", 1, MAX_NAMES);
    if (q->src.report_domain && q->src.report_domain[0])
        count_into(s->domains, q->src.report_domain, 1, MAX_NAMES);
    return 0;
}

static tr_err rule_quarantine_spike(struct eval *e, char *err)
{
    struct spike_ctx s = {json_object(), json_array(), json_object()};
    int64_t total = 0;
    tr_err rc = store_list_quarantine(e->st, e->now - 3600, e->now + 1, 200, 0, take_rejected, &s,
                                      &total, err);
    if (rc == TR_OK && total > e->ac->quarantine_max) {
        struct cand *c = cand_at(e, ALERT_QUARANTINE_SPIKE, "", "", e->now - e->now % 3600);
        if (c) {
            json_object_set_new(c->extra, "rejected", json_integer(total));
            json_object_set_new(c->extra, "threshold", json_integer(e->ac->quarantine_max));
            json_object_set_new(c->extra, "reasons", ranked(s.reasons));
            json_object_set_new(c->extra, "report_domains", ranked(s.domains));
            json_object_set_new(c->extra, "quarantine", json_incref(s.ids));
        }
    }
    json_decref(s.reasons);
    json_decref(s.ids);
    json_decref(s.domains);
    return rc;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

tr_err alert_evaluate(struct store *st, const struct alert_config *ac, int64_t now, unsigned passes,
                      alert_fired_fn fn, void *cls, struct alert_counts *out, char *err)
{
    memset(out, 0, sizeof *out);
    struct eval e = {st,    ac,    now,           NULL,  0,  0,   json_object(),
                     false, false, json_object(), false, fn, cls, out};
    if (e.index == NULL || e.seen == NULL) {
        json_decref(e.index);
        json_decref(e.seen);
        return tr_fail(err, TR_ENOMEM, "alerts: out of memory");
    }
    tr_err rc = TR_OK;
    if ((passes & ALERT_PASS_REPORTS) &&
        (ac->rules &
         ((1u << ALERT_NEW_FAILURE) | (1u << ALERT_FAILURE_RATE) | (1u << ALERT_RATE_JUMP))))
        rc = pass_reports(&e, err);
    cands_clear(&e);
    e.timed = true;
    if (rc == TR_OK && (passes & ALERT_PASS_SILENCE) && (ac->rules & (1u << ALERT_SILENT_REPORTER)))
        rc = rule_silent_reporters(&e, err);
    if (rc == TR_OK && (passes & ALERT_PASS_QUARANTINE) &&
        (ac->rules & (1u << ALERT_QUARANTINE_SPIKE)))
        rc = rule_quarantine_spike(&e, err);
    if (rc == TR_OK && e.oom)
        rc = tr_fail(err, TR_ENOMEM, "alerts: out of memory");
    bool moved;
    if (rc == TR_OK && e.n)
        rc = commit_cands(&e, 0, -1, NULL, 0, 0, &moved, err);
    cands_clear(&e);
    free(e.c);
    json_decref(e.index);
    json_decref(e.seen);
    return rc;
}
