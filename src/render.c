/* render.c: summaries, report listings and the quarantine as tables for people
 * and as CSV (see render.h). Input is the JSON of query.c; nothing here reads
 * the database. Column widths follow the widest value (up to a cap), and
 * names are cut on a character boundary, never inside a UTF-8 sequence. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/query.h"
#include "tlsrptd/render.h"
#include "tlsrptd/result_type.h"

#define MAX_WIDTH 60

static json_int_t int_of(const json_t *g, const char *key)
{
    return json_integer_value(json_object_get(g, key));
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* Characters (not bytes) of a UTF-8 string. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* s padded or cut to exactly width characters. */
static void put_cell(FILE *out, const char *s, size_t width)
{
    size_t chars = 0;
    const char *p = s;
    while (*p && chars < width) {
        p++;
        while (((unsigned char)*p & 0xc0) == 0x80)
            p++;
        chars++;
    }
    fwrite(s, 1, (size_t)(p - s), out);
    for (; chars < width; chars++)
        fputc(' ', out);
}

static const char *group_label(const json_t *g, const char *field, const char *none)
{
    const char *v = json_string_value(json_object_get(g, field));
    return v ? (v[0] ? v : none) : none;
}

static void format_rate(const json_t *g, char *out, size_t n)
{
    json_t *r = json_object_get(g, "failure_rate");
    if (json_is_number(r))
        snprintf(out, n, "%.2f%%", 100.0 * json_number_value(r));
    else
        snprintf(out, n, "-");
}

static void format_count(const json_t *v, char *out, size_t n)
{
    if (json_is_integer(v))
        snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else
        snprintf(out, n, "-");
}

static void print_hint(FILE *out, const char *type)
{
    const struct result_type *rt = result_type_find(type);
    if (rt)
        fprintf(out, "%s: %s", rt->meaning, rt->fix);
    else
        fputs("(not an RFC 8460 result type)", out);
}

static void print_row(FILE *out, const char *label, const json_t *g, size_t width, bool by_type)
{
    char rate[32], ok[32];
    format_rate(g, rate, sizeof rate);
    format_count(json_object_get(g, "successful_sessions"), ok, sizeof ok);
    put_cell(out, label, width);
    fprintf(out, " %12s %12lld %9s %8lld %9lld\n", ok, (long long)int_of(g, "failed_sessions"),
            rate, (long long)int_of(g, "reports"), (long long)int_of(g, "reporters"));
    if (by_type) { /* the group is the result type: its hint, no breakdown */
        put_cell(out, "", width);
        fputs("   ", out);
        print_hint(out, label);
        fputc('\n', out);
        return;
    }
    const char *type;
    json_t *n;
    json_object_foreach((json_t *)json_object_get(g, "failures"), type, n)
    {
        put_cell(out, "", width);
        fprintf(out, "   %-26s %10lld  ", type, (long long)json_integer_value(n));
        print_hint(out, type);
        fputc('\n', out);
    }
}

void render_summary_table(const json_t *summary, FILE *out)
{
    const char *by = json_string_value(json_object_get(summary, "by"));
    enum query_by which = QUERY_BY_DOMAIN;
    if (by)
        (void)query_parse_by(by, &which);
    const char *field = query_by_field(which);
    const json_t *groups = json_object_get(summary, "groups");
    const char *none = which == QUERY_BY_DOMAIN ? "(none)" : "(unknown)";
    if (which == QUERY_BY_DKIM)
        none = "(no verdict)"; /* not mail, or dkim = off */
    char head[64];
    size_t k = 0;
    for (const char *p = field; *p && k < sizeof head - 1; p++)
        head[k++] = *p == '_' ? ' ' : (char)toupper((unsigned char)*p);
    head[k] = 0;
    size_t width = strlen(head) > 13 ? strlen(head) : 13;
    size_t i;
    json_t *g;
    json_array_foreach((json_t *)groups, i, g)
    {
        size_t len = text_width(group_label(g, field, none));
        if (len > width)
            width = len > MAX_WIDTH ? MAX_WIDTH : len;
    }
    put_cell(out, head, width);
    fprintf(out, " %12s %12s %9s %8s %9s\n", "SUCCESSFUL", "FAILED", "FAIL RATE", "REPORTS",
            "REPORTERS");
    json_array_foreach((json_t *)groups, i, g)
    {
        print_row(out, group_label(g, field, none), g, width, which == QUERY_BY_RESULT_TYPE);
    }
    for (size_t d = 0; d < width + 55; d++)
        fputc('-', out);
    fputc('\n', out);
    print_row(out, "TOTAL", json_object_get(summary, "totals"), width, false);
    /* a domain asked for by name that no stored report mentions */
    const json_t *asked = json_object_get(json_object_get(summary, "filter"), "domains");
    json_t *d;
    json_array_foreach((json_t *)asked, i, d)
    {
        const char *name = json_string_value(d);
        bool seen = false;
        size_t j;
        json_array_foreach((json_t *)groups, j, g)
        {
            const char *v = json_string_value(json_object_get(g, "policy_domain"));
            seen |= (v == NULL && name == NULL) || (v && name && strcmp(v, name) == 0);
        }
        if (!seen && which == QUERY_BY_DOMAIN)
            fprintf(
                out, "no reports for %s%s\n", name ? name : "(none)",
                json_is_null(json_object_get(json_object_get(summary, "filter"), "since")) &&
                        json_is_null(json_object_get(json_object_get(summary, "filter"), "until"))
                    ? ""
                    : " in this time window");
    }
}

/* RFC 4180: quote a field holding a comma, quote or line break */
static void csv_field(FILE *out, const char *v)
{
    if (strpbrk(v, ",\"\r\n") == NULL) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (; *v; v++) {
        if (*v == '"')
            fputc('"', out);
        fputc(*v, out);
    }
    fputc('"', out);
}

void render_summary_csv(const json_t *summary, FILE *out)
{
    const char *by = json_string_value(json_object_get(summary, "by"));
    enum query_by which = QUERY_BY_DOMAIN;
    if (by)
        (void)query_parse_by(by, &which);
    const char *field = query_by_field(which);
    fprintf(out,
            "%s,successful_sessions,failed_sessions,failure_rate,reports,reporters,failures\r\n",
            field);
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(summary, "groups"), i, g)
    {
        csv_field(out, str_of(g, field));
        char ok[32], rate[32] = "";
        format_count(json_object_get(g, "successful_sessions"), ok, sizeof ok);
        json_t *r = json_object_get(g, "failure_rate");
        if (json_is_number(r))
            snprintf(rate, sizeof rate, "%.6f", json_number_value(r));
        fprintf(out, ",%s,%lld,%s,%lld,%lld,", strcmp(ok, "-") == 0 ? "" : ok,
                (long long)int_of(g, "failed_sessions"), rate, (long long)int_of(g, "reports"),
                (long long)int_of(g, "reporters"));
        struct buf failures;
        buf_init(&failures, (size_t)16 << 20);
        const char *type;
        json_t *n;
        json_object_foreach(json_object_get(g, "failures"), type, n)
        {
            char count[32];
            snprintf(count, sizeof count, "=%lld", (long long)json_integer_value(n));
            if (failures.len)
                buf_append(&failures, ";", 1);
            buf_append(&failures, type, strlen(type));
            buf_append(&failures, count, strlen(count));
        }
        csv_field(out, failures.len ? (const char *)failures.data : "");
        buf_free(&failures);
        fputs("\r\n", out);
    }
}

/* The distinct policy domains of a report, in order, joined by commas. */
static void report_domains(const json_t *r, struct buf *out)
{
    size_t k;
    json_t *d;
    json_array_foreach(json_object_get(r, "policy_domains"), k, d)
    {
        const char *name = json_string_value(d);
        if (name == NULL)
            name = "(none)";
        bool again = false;
        for (size_t j = 0; j < k && !again; j++) {
            const char *prev =
                json_string_value(json_array_get(json_object_get(r, "policy_domains"), j));
            again = strcmp(prev ? prev : "(none)", name) == 0;
        }
        if (again)
            continue;
        if (out->len)
            buf_append(out, ",", 1);
        buf_append(out, name, strlen(name));
    }
}

void render_reports_table(const json_t *reports, FILE *out)
{
    const json_t *list = json_object_get(reports, "reports");
    size_t wr = 8, wid = 9, i; /* REPORTER, REPORT-ID */
    json_t *r;
    json_array_foreach((json_t *)list, i, r)
    {
        size_t a = text_width(str_of(r, "organization_name")),
               b = text_width(str_of(r, "report_id"));
        wr = a > wr ? (a > 40 ? 40 : a) : wr;
        wid = b > wid ? (b > MAX_WIDTH ? MAX_WIDTH : b) : wid;
    }
    fprintf(out, "%8s  %-20s  ", "ID", "START");
    put_cell(out, "REPORTER", wr);
    fputs("  ", out);
    put_cell(out, "REPORT-ID", wid);
    fprintf(out, "  %10s %8s  %-8s  %s\n", "SUCCESSFUL", "FAILED", "SOURCE", "DOMAINS / WARNINGS");
    json_array_foreach((json_t *)list, i, r)
    {
        struct buf domains;
        buf_init(&domains, (size_t)1 << 20);
        report_domains(r, &domains);
        fprintf(out, "%8lld  %-20s  ", (long long)int_of(r, "id"), str_of(r, "start_datetime"));
        put_cell(out, str_of(r, "organization_name"), wr);
        fputs("  ", out);
        put_cell(out, str_of(r, "report_id"), wid);
        fprintf(out, "  %10lld %8lld  %-8s  %s", (long long)int_of(r, "successful_sessions"),
                (long long)int_of(r, "failed_sessions"),
                str_of(json_object_get(r, "source"), "kind"),
                domains.len ? (const char *)domains.data : "");
        if (int_of(r, "warnings"))
            fprintf(out, " (%lld warnings)", (long long)int_of(r, "warnings"));
        fputc('\n', out);
        buf_free(&domains);
    }
    long long n = (long long)int_of(reports, "total");
    fprintf(out, "%lld report%s\n", n, n == 1 ? "" : "s");
}

void render_reports_csv(const json_t *reports, FILE *out)
{
    fputs("id,start_datetime,end_datetime,organization_name,report_id,successful_sessions,"
          "failed_sessions,warnings,source,policy_domains\r\n",
          out);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(reports, "reports"), i, r)
    {
        struct buf domains;
        buf_init(&domains, (size_t)1 << 20);
        report_domains(r, &domains);
        fprintf(out, "%lld,", (long long)int_of(r, "id"));
        csv_field(out, str_of(r, "start_datetime"));
        fputc(',', out);
        csv_field(out, str_of(r, "end_datetime"));
        fputc(',', out);
        csv_field(out, str_of(r, "organization_name"));
        fputc(',', out);
        csv_field(out, str_of(r, "report_id"));
        fprintf(out, ",%lld,%lld,%lld,", (long long)int_of(r, "successful_sessions"),
                (long long)int_of(r, "failed_sessions"), (long long)int_of(r, "warnings"));
        csv_field(out, str_of(json_object_get(r, "source"), "kind"));
        fputc(',', out);
        csv_field(out, domains.len ? (const char *)domains.data : "");
        fputs("\r\n", out);
        buf_free(&domains);
    }
}

void render_quarantine_table(const json_t *entries, FILE *out)
{
    const json_t *list = json_object_get(entries, "entries");
    fprintf(out, "%8s  %-20s  %-8s  %10s  %-32s  %s\n", "ID", "RECEIVED", "SOURCE", "BYTES", "NAME",
            "REASON");
    size_t i;
    json_t *e;
    json_array_foreach((json_t *)list, i, e)
    {
        const json_t *src = json_object_get(e, "source");
        const char *name = str_of(src, "name");
        fprintf(out, "%8lld  %-20s  %-8s  %10lld  ", (long long)int_of(e, "id"),
                str_of(e, "received_at"), str_of(src, "kind"), (long long)int_of(e, "raw_size"));
        const char *shown = name[0] ? name : str_of(src, "client");
        size_t w = text_width(shown), width = 32;
        if (w > width) { /* a path: its end says more than its start */
            fputs("...", out);
            width -= 3;
            for (; w > width; w--) {
                shown++;
                while (((unsigned char)*shown & 0xc0) == 0x80)
                    shown++;
            }
        }
        put_cell(out, shown, width);
        fprintf(out, "  %s%s\n", str_of(e, "reason"),
                json_is_false(json_object_get(e, "raw_kept")) ? " (bytes not kept)" : "");
    }
    long long n = (long long)int_of(entries, "total");
    fprintf(out, "%lld entr%s\n", n, n == 1 ? "y" : "ies");
}

static int severity_rank(const char *s)
{
    return s == NULL ? 3 : strcmp(s, "critical") == 0 ? 0 : strcmp(s, "warning") == 0 ? 1 : 2;
}

void render_findings(const json_t *findings, FILE *out)
{
    const json_t *list = json_object_get(findings, "findings");
    size_t shown = 0;
    for (int rank = 0; rank < 4; rank++) {
        size_t i;
        json_t *f;
        json_array_foreach((json_t *)list, i, f)
        {
            const char *sev = json_string_value(json_object_get(f, "severity"));
            if (severity_rank(sev) != rank)
                continue;
            fprintf(out, "%-8s  %s\n", sev ? sev : "?", str_of(f, "text"));
            const json_t *ids = json_object_get(json_object_get(f, "evidence"), "reports");
            if (json_array_size(ids)) {
                fputs("          reports:", out);
                size_t k;
                json_t *id;
                json_array_foreach((json_t *)ids, k, id)
                {
                    fprintf(out, "%s %lld", k ? "," : "", (long long)json_integer_value(id));
                }
                fputs(" (tlsrptd show ID)\n", out);
            }
            shown++;
        }
    }
    if (shown == 0)
        fprintf(out, "no findings as of %s\n", str_of(findings, "now"));
}
