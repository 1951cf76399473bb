/* alert_message.c: an alert in words (see alert_message.h): the title, the
 * mail (subject, headers, a plain-text body an operator can act on without
 * opening anything else) and the webhook JSON with its chat text, for one
 * alert or a digest of many. Reads only the alert and its details JSON.
 *
 * Two styles share each sentence: PLAIN (mail, titles) and CHAT (Slack and
 * Mattermost: *bold* rule names, untrusted values in `code` spans with the
 * characters that could end the span, mention someone or make a link taken
 * out, since a report can name any domain, host or reporter it likes). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/alert_message.h"

#define VALUE_MAX  255   /* bytes of an untrusted value shown */
#define LIST_SHOWN 5     /* report ids, hosts and IPs named in a line */
#define CHAT_MAX   35000 /* characters of a chat text (Slack cuts at 40,000) */

enum style { PLAIN, CHAT, HEADER };

/* ---- building text -------------------------------------------------------------------------- */

struct text {
    struct buf *b;
    bool full;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    char line[8192]; /* every piece is bounded: values are cut to VALUE_MAX */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    if (buf_append(t->b, line, (size_t)n) != TR_OK)
        t->full = true;
}

/* s as lines of at most WRAP columns: the first continues a line already
 * holding `used` columns, the others start with indent. */
#define WRAP 72
static void put_wrapped(struct text *t, const char *s, size_t used, const char *indent)
{
    size_t col = used, il = strlen(indent);
    while (*s) {
        while (*s == ' ')
            s++;
        size_t wl = strcspn(s, " ");
        if (wl == 0)
            break;
        if (col > used || col > il) { /* not the first word of a line */
            if (col + 1 + wl > WRAP) {
                put(t, "\n%s", indent);
                col = il;
            } else {
                put(t, " ");
                col++;
            }
        }
        put(t, "%.*s", (int)wl, s);
        col += wl;
        s += wl;
    }
    put(t, "\n");
}

/* v as shown in style st, into out (at least 2 * VALUE_MAX bytes). */
static const char *val(enum style st, const char *v, char *out, size_t n)
{
    size_t k = 0, used = 0;
    if (v == NULL)
        v = "";
    if (st == CHAT)
        out[k++] = '`';
    for (const unsigned char *p = (const unsigned char *)v; *p && used < VALUE_MAX && k + 4 < n;
         p++, used++) {
        unsigned char ch = *p;
        if (ch < 0x20 || ch == 0x7f)
            ch = ' ';
        else if (st == HEADER && ch >= 0x80)
            ch = '?';
        else if (st == CHAT && (ch == '`' || ch == '<' || ch == '>' || ch == '&'))
            ch = '?';
        out[k++] = (char)ch;
    }
    while (used == VALUE_MAX && k > 1 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
        k--; /* cut at a UTF-8 boundary */
    if (st == CHAT)
        out[k++] = '`';
    out[k] = 0;
    return out;
}

static const char *jstr(const json_t *d, const char *key)
{
    return json_string_value(json_object_get(d, key));
}

static long long jint(const json_t *d, const char *key)
{
    return (long long)json_integer_value(json_object_get(d, key));
}

static double jreal(const json_t *d, const char *key)
{
    return json_number_value(json_object_get(d, key));
}

static void percent(double r, char out[24])
{
    snprintf(out, 24, r > 0 && r < 0.01 ? "%.2f%%" : "%.1f%%", r * 100.0);
}

static const char *plural(long long n)
{
    return n == 1 ? "" : "s";
}

static void format_utc(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(out, 32, "?");
}

static bool is(const struct alert_msg *m, const char *rule)
{
    return strcmp(m->rule, rule) == 0;
}

/* ---- sentences ------------------------------------------------------------------------------ */

/* What happened, without the domain: "12.5% of TLS sessions failed on
 * 2026-03-14 (40 of 320)". */
static void what(const struct alert_msg *m, enum style st, char *out, size_t n)
{
    const json_t *d = m->details;
    const char *day = jstr(d, "day") ? jstr(d, "day") : "?";
    char v[2 * VALUE_MAX + 8], p[24], q[24];
    const json_t *s = json_object_get(d, "sessions");
    long long ok = jint(s, "successful"), bad = jint(s, "failed");
    if (is(m, "new-failure")) {
        long long failed =
            jint(json_object_get(json_object_get(d, "result_types"), m->subject), "failed");
        const char *last = jstr(d, "last_seen");
        if (last)
            snprintf(out, n,
                     "%s again after %lld days without it: %lld failed session%s on %s (last "
                     "seen %s)",
                     val(st, m->subject, v, sizeof v), jint(d, "clean_days"), failed,
                     plural(failed), day, last);
        else
            snprintf(out, n, "%s for the first time: %lld failed session%s on %s",
                     val(st, m->subject, v, sizeof v), failed, plural(failed), day);
    } else if (is(m, "failure-rate")) {
        percent(jreal(d, "failure_rate"), p);
        snprintf(out, n, "%s of TLS sessions failed on %s (%lld of %lld)", p, day, bad, ok + bad);
    } else if (is(m, "rate-jump")) {
        percent(jreal(d, "failure_rate"), p);
        percent(jreal(d, "baseline_rate"), q);
        double k = jreal(d, "jump");
        if (k > 0)
            snprintf(out, n, "failure rate up to %s on %s, %.1f times the %lld-day baseline (%s)",
                     p, day, k, jint(d, "baseline_days"), q);
        else
            snprintf(out, n, "failure rate up to %s on %s, from 0%% over the %lld days before", p,
                     day, jint(d, "baseline_days"));
    } else if (is(m, "silent-reporter")) {
        snprintf(out, n, "no report from %s for %lld days (the last was for %s)",
                 val(st, m->subject, v, sizeof v), jint(d, "silent_days"),
                 jstr(d, "last_day") ? jstr(d, "last_day") : "?");
    } else if (is(m, "quarantine-spike")) {
        snprintf(out, n, "%lld inputs rejected in the last hour (more than %lld)",
                 jint(d, "rejected"), jint(d, "threshold"));
    } else if (is(m, "test")) {
        snprintf(out, n, "a test alert: this channel works");
    } else {
        snprintf(out, n, "%s", val(st == CHAT ? CHAT : PLAIN, m->title, v, sizeof v));
    }
}

/* Short, for a digest line: "12.5% failed on 2026-03-14". */
static void brief(const struct alert_msg *m, enum style st, char *out, size_t n)
{
    const json_t *d = m->details;
    char v[2 * VALUE_MAX + 8], p[24], q[24];
    if (is(m, "new-failure")) {
        long long failed =
            jint(json_object_get(json_object_get(d, "result_types"), m->subject), "failed");
        snprintf(out, n, "%s %s (%lld)", jstr(d, "last_seen") ? "back:" : "new failure",
                 val(st, m->subject, v, sizeof v), failed);
    } else if (is(m, "failure-rate")) {
        percent(jreal(d, "failure_rate"), p);
        snprintf(out, n, "%s of sessions failed on %s", p, jstr(d, "day") ? jstr(d, "day") : "?");
    } else if (is(m, "rate-jump")) {
        percent(jreal(d, "failure_rate"), p);
        percent(jreal(d, "baseline_rate"), q);
        snprintf(out, n, "failure rate up to %s (baseline %s)", p, q);
    } else if (is(m, "silent-reporter")) {
        snprintf(out, n, "no report from %s for %lld days", val(st, m->subject, v, sizeof v),
                 jint(d, "silent_days"));
    } else {
        what(m, st, out, n);
    }
}

void alert_message_title(const struct alert_msg *m, char *out, size_t len)
{
    char w[1024], v[2 * VALUE_MAX + 8];
    what(m, PLAIN, w, sizeof w);
    if (m->domain && m->domain[0])
        snprintf(out, len, "%s: %s", val(PLAIN, m->domain, v, sizeof v), w);
    else
        snprintf(out, len, "%s: %s", is(m, "quarantine-spike") ? "quarantine" : "tlsrptd", w);
}

/* What it means for mail, and where to look (plain text, one paragraph). */
static void explain_raw(const struct alert_msg *m, struct text *t)
{
    const json_t *d = m->details;
    char v[2 * VALUE_MAX + 8], r[2 * VALUE_MAX + 8], p[24];
    val(PLAIN, m->domain, v, sizeof v);
    if (is(m, "new-failure")) {
        if (jstr(d, "last_seen"))
            put(t,
                "Senders reported a kind of TLS failure for %s that they had not reported in "
                "the %lld days before.",
                v, jint(d, "clean_days"));
        else
            put(t,
                "Senders reported a kind of TLS failure for %s that they had never reported "
                "before.",
                v);
        put(t, " Something changed: a certificate, an MX host, a DNS record, the MTA-STS policy "
               "or a TLSA record.\n");
    } else if (is(m, "failure-rate")) {
        percent(jreal(d, "failure_rate"), p);
        put(t,
            "Senders could not set up a TLS session they trust with the MX hosts of %s for %s "
            "of their attempts. Senders that require TLS (MTA-STS in enforce mode, DANE) do "
            "not deliver over such a session: that mail waits in their queues, then bounces.\n",
            v, p);
    } else if (is(m, "rate-jump")) {
        put(t,
            "The share of failed TLS sessions to %s rose well above what it was over the "
            "previous %lld days. Something changed: a certificate, an MX host, a DNS record or "
            "the MTA-STS policy.\n",
            v, jint(d, "baseline_days"));
    } else if (is(m, "silent-reporter")) {
        val(PLAIN, m->subject, r, sizeof r);
        put(t,
            "%s reported on mail to %s on %lld of the %lld days up to %s and has sent nothing "
            "since. Its reports may no longer reach this collector (check the _smtp._tls "
            "record of %s, and that the rua endpoint or mailbox is reachable), or it stopped "
            "sending mail to %s.\n",
            r, v, jint(d, "days_reported"), jint(d, "days_looked_at"),
            jstr(d, "last_day") ? jstr(d, "last_day") : "?", v, v);
    } else if (is(m, "quarantine-spike")) {
        put(t, "More inputs than usual were rejected. A sender may have changed the format of "
               "its reports, or someone is sending junk to the endpoint. Each one is kept with "
               "its reason: tlsrptd quarantine list.\n");
    } else if (is(m, "test")) {
        put(t, "This is a test sent by `tlsrptd alerts --test`. Alerts about failing TLS will "
               "reach you here.\n");
    }
}

static void explain(const struct alert_msg *m, struct text *t)
{
    struct buf para;
    buf_init(&para, 1 << 16);
    struct text p = {&para, false};
    explain_raw(m, &p);
    if (buf_append(&para, "", 1) == TR_OK) { /* NUL-terminated */
        for (size_t i = 0; i < para.len; i++)
            if (para.data[i] == '\n')
                para.data[i] = ' ';
        put_wrapped(t, (const char *)para.data, 0, "");
    }
    buf_free(&para);
}

/* A JSON array of {"name", "failed"} as "a (3), b (1)", the first few. */
static void names(const json_t *list, enum style st, struct text *t)
{
    size_t n = json_array_size(list);
    char v[2 * VALUE_MAX + 8];
    for (size_t i = 0; i < n && i < LIST_SHOWN; i++) {
        const json_t *e = json_array_get(list, i);
        put(t, "%s%s (%lld)", i ? ", " : "", val(st, jstr(e, "name"), v, sizeof v),
            jint(e, "failed"));
    }
    if (n > LIST_SHOWN)
        put(t, " and %zu more", n - LIST_SHOWN);
}

static void reporters(const json_t *d, enum style st, struct text *t)
{
    const json_t *list = json_object_get(d, "reporters");
    char v[2 * VALUE_MAX + 8];
    for (size_t i = 0; i < json_array_size(list); i++)
        put(t, "%s%s", i ? ", " : "",
            val(st, json_string_value(json_array_get(list, i)), v, sizeof v));
}

/* Result types, most failed first: their positions in order[] (at most 32). */
static size_t types_ranked(const json_t *types, const char **order, size_t max)
{
    size_t n = 0;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)types, name, v)
    {
        if (n == max)
            break;
        size_t k = n++;
        long long f = jint(v, "failed");
        while (k > 0 && jint(json_object_get(types, order[k - 1]), "failed") < f) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = name;
    }
    return n;
}

static void evidence(const json_t *d, enum style st, struct text *t)
{
    const json_t *ids = json_object_get(d, "reports");
    size_t n = json_array_size(ids);
    if (n == 0)
        return;
    put(t, "Evidence: report%s ", plural((long long)n));
    for (size_t i = 0; i < n && i < LIST_SHOWN * 2; i++)
        put(t, "%s%lld", i ? ", " : "", (long long)json_integer_value(json_array_get(ids, i)));
    long long total = jint(d, "reports_total");
    if (total > (long long)(n < LIST_SHOWN * 2 ? n : LIST_SHOWN * 2))
        put(t, " and %lld more", total - (long long)(n < LIST_SHOWN * 2 ? n : LIST_SHOWN * 2));
    long long first = (long long)json_integer_value(json_array_get(ids, 0));
    if (st == CHAT)
        put(t, " (`tlsrptd show %lld`)", first);
    else
        put(t, "\n  see one with: tlsrptd show %lld", first);
    put(t, "\n");
}

/* ---- mail ----------------------------------------------------------------------------------- */

static void mail_one(const struct alert_msg *m, const char *host, struct text *t)
{
    const json_t *d = m->details;
    char title[1024], v[2 * VALUE_MAX + 8], p[24];
    alert_message_title(m, title, sizeof title);
    put(t, "%s\n\n", title);
    explain(m, t);
    put(t, "\n");
    if (!is(m, "test")) {
        char rule[600];
        snprintf(rule, sizeof rule, "%s: %s", m->rule, jstr(d, "why") ? jstr(d, "why") : "");
        put(t, "  Rule:         ");
        put_wrapped(t, rule, 16, "                ");
    }
    if (m->domain && m->domain[0])
        put(t, "  Domain:       %s\n", val(PLAIN, m->domain, v, sizeof v));
    if (jstr(d, "day"))
        put(t, "  Day:          %s (UTC)\n", jstr(d, "day"));
    if (json_array_size(json_object_get(d, "reporters"))) {
        put(t, "  Reported by:  ");
        reporters(d, PLAIN, t);
        put(t, "\n");
    }
    const json_t *s = json_object_get(d, "sessions");
    if (s) {
        percent(jreal(d, "failure_rate"), p);
        put(t, "  Sessions:     %lld successful, %lld failed (%s)\n", jint(s, "successful"),
            jint(s, "failed"), p);
    }
    if (json_object_get(d, "baseline_rate")) {
        percent(jreal(d, "baseline_rate"), p);
        put(t, "  Baseline:     %s of sessions failed over the %lld days before\n", p,
            jint(d, "baseline_days"));
    }
    if (jstr(d, "last_report"))
        put(t, "  Last report:  %s (reported on %lld of the %lld days up to it)\n",
            jstr(d, "last_report"), jint(d, "days_reported"), jint(d, "days_looked_at"));
    if (json_object_get(d, "rejected"))
        put(t, "  Rejected:     %lld in the last hour\n", jint(d, "rejected"));

    const json_t *types = json_object_get(d, "result_types");
    const char *order[32];
    size_t nt = types_ranked(types, order, 32);
    if (nt)
        put(t, "\nWhat failed\n");
    for (size_t i = 0; i < nt; i++) {
        const json_t *e = json_object_get(types, order[i]);
        long long f = jint(e, "failed");
        put(t, "  %s: %lld failed session%s\n", val(PLAIN, order[i], v, sizeof v), f, plural(f));
        put(t, "    What it means: %s\n    What to do:    %s\n", jstr(e, "meaning"),
            jstr(e, "fix"));
        if (json_array_size(json_object_get(e, "mx_hosts"))) {
            put(t, "    MX hosts:      ");
            names(json_object_get(e, "mx_hosts"), PLAIN, t);
            put(t, "\n");
        }
        if (json_array_size(json_object_get(e, "sending_ips"))) {
            put(t, "    Sending IPs:   ");
            names(json_object_get(e, "sending_ips"), PLAIN, t);
            put(t, "\n");
        }
    }
    const json_t *reasons = json_object_get(d, "reasons");
    if (json_array_size(reasons))
        put(t, "\nWhy they were rejected\n");
    for (size_t i = 0; i < json_array_size(reasons); i++) {
        const json_t *e = json_array_get(reasons, i);
        put(t, "  %5lld  %s\n", jint(e, "failed"), val(PLAIN, jstr(e, "name"), v, sizeof v));
    }
    if (json_array_size(json_object_get(d, "report_domains"))) {
        put(t, "  Domains their mail named: ");
        names(json_object_get(d, "report_domains"), PLAIN, t);
        put(t, "\n");
    }
    const json_t *q = json_object_get(d, "quarantine");
    if (json_array_size(q)) {
        put(t, "  Quarantine entries: ");
        for (size_t i = 0; i < json_array_size(q) && i < LIST_SHOWN * 2; i++)
            put(t, "%s%lld", i ? ", " : "", (long long)json_integer_value(json_array_get(q, i)));
        put(t, "%s\n  see one with: tlsrptd quarantine show %lld\n",
            json_array_size(q) > LIST_SHOWN * 2 ? ", ..." : "",
            (long long)json_integer_value(json_array_get(q, 0)));
    }
    put(t, "\n");
    evidence(d, PLAIN, t);
    char when[32];
    format_utc(m->created_at, when);
    put(t, "\n-- \n");
    if (m->id)
        put(t, "Alert %lld, raised by tlsrptd on %s at %s.\n", (long long)m->id, host, when);
    else
        put(t, "Sent by tlsrptd on %s at %s.\n", host, when);
    if (m->suppressed > 0)
        put(t, "%lld repeat%s of this alert %s held back since.\n", (long long)m->suppressed,
            plural(m->suppressed), m->suppressed == 1 ? "was" : "were");
    if (m->id)
        put(t, "Every alert: tlsrptd alerts\n");
}

/* Alerts by domain, then rule, then id. */
static int by_domain(const void *pa, const void *pb)
{
    const struct alert_msg *a = *(const struct alert_msg *const *)pa,
                           *b = *(const struct alert_msg *const *)pb;
    int c = strcmp(a->domain, b->domain);
    if (c)
        return c;
    if ((c = strcmp(a->rule, b->rule)))
        return c;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* The domains of a digest, one line each. */
static size_t digest_lines(const struct alert_msg *msgs, size_t n, enum style st, struct text *t,
                           size_t *ndomains)
{
    const struct alert_msg **v = malloc(n * sizeof *v);
    *ndomains = 0;
    if (v == NULL) {
        t->full = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = &msgs[i];
    qsort(v, n, sizeof *v, by_domain);
    char line[2048], b[1024], dv[2 * VALUE_MAX + 8];
    size_t shown = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        const char *dom = v[i]->domain[0] ? val(st, v[i]->domain, dv, sizeof dv) : "(no domain)";
        int k = snprintf(line, sizeof line, st == CHAT ? "• %s: " : "  %s: ", dom);
        for (; j < n && strcmp(v[j]->domain, v[i]->domain) == 0; j++) {
            brief(v[j], st, b, sizeof b);
            if (k > 0 && (size_t)k < sizeof line)
                k += snprintf(line + k, sizeof line - (size_t)k, "%s%s",
                              j > i ? (st == CHAT ? " · " : "; ") : "", b);
        }
        (*ndomains)++;
        if (st == CHAT && t->b->len + strlen(line) > CHAT_MAX) {
            i = j;
            continue;
        }
        put(t, "%s\n", line);
        shown++;
        i = j;
    }
    free(v);
    return shown;
}

static size_t count_domains(const struct alert_msg *msgs, size_t n)
{
    struct buf scratch;
    buf_init(&scratch, (size_t)1 << 24);
    struct text t = {&scratch, false};
    size_t nd = 0;
    digest_lines(msgs, n, PLAIN, &t, &nd);
    buf_free(&scratch);
    return nd;
}

/* The result types of a digest's alerts, each once, with what they mean
 * and what to do (at most 20). */
static void digest_types(const struct alert_msg *msgs, size_t n, enum style st, struct text *t)
{
    json_t *seen = json_object();
    char v[2 * VALUE_MAX + 8];
    for (size_t i = 0; i < n && json_object_size(seen) < 20; i++) {
        const char *name;
        json_t *e;
        json_object_foreach(json_object_get(msgs[i].details, "result_types"), name, e)
        {
            const char *meaning = jstr(e, "meaning"), *fix = jstr(e, "fix");
            if (json_object_get(seen, name) || meaning == NULL || fix == NULL ||
                json_object_size(seen) >= 20)
                continue;
            if (json_object_size(seen) == 0)
                put(t, st == CHAT ? "What the failures mean:\n" : "\nWhat the failures mean\n");
            json_object_set_new(seen, name, json_true());
            put(t, st == CHAT ? "• %s: %s: %s.\n" : "  %s: %s: %s\n", val(st, name, v, sizeof v),
                meaning, fix);
        }
    }
    json_decref(seen);
}

static void mail_digest(const struct alert_msg *msgs, size_t n, const char *host, struct text *t)
{
    char when[32], line[512];
    format_utc(msgs[0].created_at, when);
    size_t nd = count_domains(msgs, n);
    put(t, "tlsrptd raised %zu alerts for %zu domain%s at once; one line per domain:\n\n", n, nd,
        plural((long long)nd));
    size_t ignored;
    digest_lines(msgs, n, PLAIN, t, &ignored);
    digest_types(msgs, n, PLAIN, t);
    int64_t lo = msgs[0].id, hi = msgs[0].id;
    for (size_t i = 1; i < n; i++) {
        lo = msgs[i].id < lo ? msgs[i].id : lo;
        hi = msgs[i].id > hi ? msgs[i].id : hi;
    }
    put(t, "\n");
    snprintf(line, sizeof line,
             "Each alert in full, with its MX hosts, sending IPs and report ids (alerts %lld to "
             "%lld):",
             (long long)lo, (long long)hi);
    put_wrapped(t, line, 0, "");
    put(t, "  tlsrptd alerts --format json\n\n-- \n");
    snprintf(line, sizeof line,
             "A digest: this many alerts were due at once. Sent by tlsrptd on %s at %s.", host,
             when);
    put_wrapped(t, line, 0, "");
}

void alert_message_subject(const struct alert_msg *msgs, size_t n, char *out, size_t len)
{
    if (n == 1) {
        char title[1024], v[2 * VALUE_MAX + 8];
        alert_message_title(&msgs[0], title, sizeof title);
        val(HEADER, title, v, sizeof v); /* ASCII, at most VALUE_MAX bytes */
        size_t k = (size_t)snprintf(out, len, "[tlsrptd] "), vl = strlen(v);
        if (k + vl >= len)
            vl = k < len ? len - k - 1 : 0;
        memcpy(out + k, v, vl);
        out[k + vl] = 0;
        return;
    }
    size_t nd = count_domains(msgs, n);
    snprintf(out, len, "[tlsrptd] %zu alerts for %zu domain%s", n, nd, plural((long long)nd));
}

tr_err alert_message_text(const struct alert_msg *msgs, size_t n, const char *host, struct buf *out)
{
    struct text t = {out, false};
    if (n == 1)
        mail_one(&msgs[0], host, &t);
    else
        mail_digest(msgs, n, host, &t);
    return t.full ? TR_ETOOBIG : TR_OK;
}

/* out with every "\n" as eol. */
static tr_err with_eol(const struct buf *in, const char *eol, struct buf *out)
{
    size_t el = strlen(eol);
    for (size_t i = 0; i < in->len; i++) {
        tr_err rc =
            in->data[i] == '\n' ? buf_append(out, eol, el) : buf_append(out, &in->data[i], 1);
        if (rc != TR_OK)
            return rc;
    }
    return TR_OK;
}

tr_err alert_message_mail(const struct alert_msg *msgs, size_t n, const char *from, const char *to,
                          const char *host, int64_t now, const char *eol, struct buf *out)
{
    struct buf body;
    buf_init(&body, (size_t)8 << 20);
    struct text t = {&body, false};
    char subject[512], date[64], fromv[2 * VALUE_MAX + 8], tov[2 * VALUE_MAX + 8];
    char hostv[2 * VALUE_MAX + 8], domv[2 * VALUE_MAX + 8];
    alert_message_subject(msgs, n, subject, sizeof subject);
    time_t tt = (time_t)now;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
        snprintf(date, sizeof date, "Thu, 01 Jan 1970 00:00:00 +0000");
    put(&t, "From: tlsrptd <%s>\nTo: %s\nSubject: %s\nDate: %s\n",
        val(HEADER, from, fromv, sizeof fromv), val(HEADER, to, tov, sizeof tov), subject, date);
    put(&t, "Message-ID: <tlsrptd.%lld.%zu.%lld@%s>\n", (long long)msgs[0].id, n, (long long)now,
        val(HEADER, host, hostv, sizeof hostv));
    put(&t, "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\nAuto-Submitted: auto-generated\n");
    put(&t, "X-Tlsrptd-Rule: %s\n", n == 1 ? msgs[0].rule : "digest");
    if (n == 1 && msgs[0].domain && msgs[0].domain[0])
        put(&t, "X-Tlsrptd-Domain: %s\n", val(HEADER, msgs[0].domain, domv, sizeof domv));
    put(&t, "\n");
    tr_err rc = t.full ? TR_ETOOBIG : alert_message_text(msgs, n, host, &body);
    if (rc == TR_OK)
        rc = with_eol(&body, eol, out);
    buf_free(&body);
    return rc;
}

/* ---- chat and webhook ----------------------------------------------------------------------- */

static void chat_one(const struct alert_msg *m, const char *host, struct text *t)
{
    const json_t *d = m->details;
    char w[1024], v[2 * VALUE_MAX + 8];
    what(m, CHAT, w, sizeof w);
    if (is(m, "test")) {
        put(t, ":white_check_mark: *tlsrptd* on %s: %s\n", val(CHAT, host, v, sizeof v), w);
        return;
    }
    if (m->domain && m->domain[0])
        put(t, ":rotating_light: *%s* for %s: %s\n", m->rule, val(CHAT, m->domain, v, sizeof v), w);
    else
        put(t, ":rotating_light: *%s*: %s\n", m->rule, w);
    if (json_array_size(json_object_get(d, "reporters")) && !is(m, "silent-reporter")) {
        put(t, "Reported by ");
        reporters(d, CHAT, t);
        put(t, ". ");
    }
    if (is(m, "failure-rate"))
        put(t, "Senders that require TLS (MTA-STS enforce, DANE) do not deliver over a failed "
               "session.");
    else if (is(m, "new-failure") || is(m, "rate-jump"))
        put(t, "Something changed: a certificate, an MX host, a DNS record or the MTA-STS "
               "policy.");
    else if (is(m, "silent-reporter"))
        put(t,
            "It reported on %lld of the %lld days up to its last report; its reports may no "
            "longer reach this collector.",
            jint(d, "days_reported"), jint(d, "days_looked_at"));
    else if (is(m, "quarantine-spike"))
        put(t, "Each is kept with its reason: `tlsrptd quarantine list`.");
    put(t, "\n");
    const json_t *types = json_object_get(d, "result_types");
    const char *order[32];
    size_t nt = types_ranked(types, order, 32);
    for (size_t i = 0; i < nt; i++) {
        const json_t *e = json_object_get(types, order[i]);
        const char *meaning = jstr(e, "meaning");
        long long f = jint(e, "failed");
        put(t, "• %s: %lld failed session%s. %c%s: %s.\n", val(CHAT, order[i], v, sizeof v), f,
            plural(f), meaning[0] >= 'a' && meaning[0] <= 'z' ? meaning[0] - 'a' + 'A' : meaning[0],
            meaning + 1, jstr(e, "fix"));
        bool mx = json_array_size(json_object_get(e, "mx_hosts")) > 0,
             ips = json_array_size(json_object_get(e, "sending_ips")) > 0;
        if (mx) {
            put(t, "    MX hosts: ");
            names(json_object_get(e, "mx_hosts"), CHAT, t);
        }
        if (ips) {
            put(t, "%sSending IPs: ", mx ? ". " : "    ");
            names(json_object_get(e, "sending_ips"), CHAT, t);
        }
        if (mx || ips)
            put(t, ".\n");
    }
    const json_t *reasons = json_object_get(d, "reasons");
    for (size_t i = 0; i < json_array_size(reasons) && i < LIST_SHOWN; i++) {
        const json_t *e = json_array_get(reasons, i);
        put(t, "• %lld× %s\n", jint(e, "failed"), val(CHAT, jstr(e, "name"), v, sizeof v));
    }
    evidence(d, CHAT, t);
}

static void chat_digest(const struct alert_msg *msgs, size_t n, struct text *t)
{
    size_t nd = count_domains(msgs, n);
    put(t, ":rotating_light: *tlsrptd: %zu alerts for %zu domain%s*\n", n, nd,
        plural((long long)nd));
    size_t all = 0, shown = digest_lines(msgs, n, CHAT, t, &all);
    if (shown < all)
        put(t, "… and %zu more domains\n", all - shown);
    digest_types(msgs, n, CHAT, t);
    put(t, "Each alert in full: `tlsrptd alerts --format json`\n");
}

/* One alert as webhook fields (no text): a NEW reference. */
static json_t *alert_fields(const struct alert_msg *m)
{
    json_t *o = m->details ? json_deep_copy(m->details) : json_object();
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    char when[32];
    time_t tt = (time_t)m->created_at;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(when, sizeof when, "?");
    char title[1024];
    alert_message_title(m, title, sizeof title);
    json_object_set_new(o, "id", json_integer(m->id));
    json_object_set_new(o, "created_at", json_string(when));
    json_object_set_new(o, "rule", json_string(m->rule));
    json_object_set_new(o, "domain",
                        m->domain && m->domain[0] ? json_string(m->domain) : json_null());
    json_object_set_new(o, "subject", json_string(m->subject ? m->subject : ""));
    json_object_set_new(o, "title", json_string(title));
    json_object_set_new(o, "suppressed", json_integer(m->suppressed));
    return o;
}

json_t *alert_message_webhook(const struct alert_msg *msgs, size_t n, const char *host)
{
    struct buf text;
    buf_init(&text, (size_t)1 << 20);
    struct text t = {&text, false};
    json_t *o;
    if (n == 1) {
        chat_one(&msgs[0], host, &t);
        o = alert_fields(&msgs[0]);
    } else {
        chat_digest(msgs, n, &t);
        o = json_object();
        json_t *alerts = json_array(), *domains = json_object(), *dl = json_array();
        for (size_t i = 0; i < n; i++) {
            json_array_append_new(alerts, alert_fields(&msgs[i]));
            if (msgs[i].domain && msgs[i].domain[0] &&
                json_object_get(domains, msgs[i].domain) == NULL) {
                json_object_set_new(domains, msgs[i].domain, json_true());
                json_array_append_new(dl, json_string(msgs[i].domain));
            }
        }
        json_decref(domains);
        json_object_set_new(o, "rule", json_string("digest"));
        json_object_set_new(o, "count", json_integer((json_int_t)n));
        json_object_set_new(o, "domains", dl);
        json_object_set_new(o, "alerts", alerts);
    }
    if (o && text.len && text.data[text.len - 1] == '\n')
        text.len--; /* no trailing empty line in the chat */
    json_t *s = json_stringn((const char *)text.data, text.len);
    if (o == NULL || s == NULL || json_object_set_new(o, "text", s) != 0) {
        json_decref(o);
        o = NULL;
    }
    buf_free(&text);
    return o;
}
