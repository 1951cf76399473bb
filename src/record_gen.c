/* record_gen.c: what `tlsrptd record` does with its inputs, for the command
 * line and the API alike (see record_gen.h). The order of the checks and the
 * wording of every message are the command's: both callers show them as they
 * are. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/record_gen.h"

/* ---- outcome helpers ------------------------------------------------------------------------ */

static int gen_fail(struct record_gen *g, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int gen_fail(struct record_gen *g, int status, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    g->status = status;
    g->field = field;
    return status;
}

static void gen_note(struct record_gen *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void gen_note(struct record_gen *g, const char *fmt, ...)
{
    if (g->nnotes == RECORD_GEN_MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->notes[g->nnotes++], TR_ERRLEN, fmt, ap);
    va_end(ap);
}

/* A decimal number in [min, max], the whole string. */
static bool parse_number(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || (unsigned long)v > max)
        return false;
    *out = (unsigned long)v;
    return true;
}

/* ---- the target: domain and destinations ---------------------------------------------------- */

int record_gen_target(const struct record_gen_request *rq, struct record_gen *g)
{
    char err[TR_ERRLEN], note[TR_ERRLEN];
    const char *src[RECORD_GEN_MAX_ARGS];
    bool mailbox[RECORD_GEN_MAX_ARGS] = {false};
    size_t ns = 0;
    memset(g, 0, sizeof *g);
    if (rq->domain == NULL)
        return gen_fail(g, RECORD_GEN_USAGE, "domain", "--domain D is needed (or --parse RECORD)");
    if (rq->nrua > RECORD_GEN_MAX_ARGS || rq->nmx > RECORD_GEN_MAX_ARGS)
        return gen_fail(g, RECORD_GEN_USAGE, rq->nrua > RECORD_GEN_MAX_ARGS ? "rua" : "mx",
                        "at most %d --%s values", RECORD_GEN_MAX_ARGS,
                        rq->nrua > RECORD_GEN_MAX_ARGS ? "rua" : "mx");
    if (record_domain(rq->domain, g->domain, err) != TR_OK)
        return gen_fail(g, RECORD_GEN_INVALID, "domain", "%s", err);
    snprintf(g->name, sizeof g->name, RECORD_PREFIX "%s", g->domain);
    snprintf(g->sts_name, sizeof g->sts_name, "_mta-sts.%s", g->domain);
    snprintf(g->sts_url, sizeof g->sts_url, "https://mta-sts.%s/.well-known/mta-sts.txt",
             g->domain);
    if (rq->nrua) {
        for (size_t i = 0; i < rq->nrua; i++)
            src[ns++] = rq->rua[i];
    } else {
        if (rq->public_url)
            src[ns++] = rq->public_url;
        if (rq->report_mailbox) {
            mailbox[ns] = true;
            src[ns++] = rq->report_mailbox;
        }
    }
    if (ns == 0)
        return gen_fail(g, RECORD_GEN_USAGE, "rua",
                        "no destination: give --rua URI, or this collector's --public-url URL "
                        "and/or --report-mailbox ADDR (public_url, report_mailbox in the config "
                        "file)");
    for (size_t i = 0; i < ns; i++) {
        char *u = NULL;
        const char *what = rq->nrua ? "--rua" : mailbox[i] ? "report_mailbox" : "public_url";
        tr_err e = mailbox[i] ? record_mailbox_uri(src[i], &u, note, err)
                              : record_uri_normalize(src[i], &u, note, err);
        if (e == TR_OK && !rq->nrua && !mailbox[i] && strncmp(u, "https:", 6) != 0)
            e = tr_fail(err, TR_EINVAL, "'%s' is not an https: URL", src[i]);
        if (e != TR_OK) {
            free(u);
            return gen_fail(g, e == TR_ENOMEM ? RECORD_GEN_TEMPFAIL : RECORD_GEN_INVALID, "rua",
                            "%s %s", what, err);
        }
        if (note[0])
            gen_note(g, "note: %s %s", what, note);
        bool dup = false;
        for (size_t k = 0; k < g->nuris && !dup; k++)
            dup = strcmp(g->uris[k], u) == 0;
        if (dup) {
            gen_note(g, "note: duplicate destination %s dropped", u);
            free(u);
            continue;
        }
        g->uris[g->nuris++] = u;
    }
    return 0;
}

/* ---- generation ----------------------------------------------------------------------------- */

/* The MTA-STS record and policy (RFC 8461 §3): mode, max_age, MX hosts. */
static int sts_build(const struct record_gen_request *rq, struct record_gen *g)
{
    char err[TR_ERRLEN], mxn[RECORD_GEN_MAX_ARGS][RECORD_DOMAIN_MAX];
    const char *mode = rq->mode ? rq->mode : "testing";
    unsigned long max_age = RECORD_GEN_MAX_AGE;
    if (strcmp(mode, "testing") != 0 && strcmp(mode, "enforce") != 0 && strcmp(mode, "none") != 0)
        return gen_fail(g, RECORD_GEN_USAGE, "mode", "--mode: '%s' is not testing, enforce or none",
                        mode);
    if (rq->max_age && !parse_number(rq->max_age, RECORD_STS_MAX_AGE, &max_age))
        return gen_fail(g, RECORD_GEN_USAGE, "max_age",
                        "--max-age: '%s' is not a number of seconds in 0-%lu", rq->max_age,
                        RECORD_STS_MAX_AGE);
    if (rq->nmx == 0 && strcmp(mode, "none") != 0)
        return gen_fail(g, RECORD_GEN_USAGE, "mx", "--mta-sts needs the MX hosts: --mx HOST...");
    const char *mx[RECORD_GEN_MAX_ARGS];
    for (size_t i = 0; i < rq->nmx; i++) {
        if (record_mx_host(rq->mx[i], mxn[i], err) != TR_OK)
            return gen_fail(g, RECORD_GEN_INVALID, "mx", "--mx %s", err);
        mx[i] = mxn[i];
    }
    g->sts_policy = record_sts_policy(mode, mx, rq->nmx, max_age);
    if (g->sts_policy == NULL)
        return gen_fail(g, RECORD_GEN_TEMPFAIL, NULL, "out of memory");
    char id[17], value[40];
    record_sts_id(g->sts_policy, id);
    snprintf(value, sizeof value, "v=STSv1; id=%s", id);
    g->sts_value = strdup(value);
    return g->sts_value ? 0 : gen_fail(g, RECORD_GEN_TEMPFAIL, NULL, "out of memory");
}

int record_gen_build(const struct record_gen_request *rq, struct record_gen *g)
{
    if (record_gen_target(rq, g) != 0)
        return g->status;
    g->ttl = RECORD_GEN_TTL;
    if (rq->ttl && !parse_number(rq->ttl, 2147483647ul, &g->ttl))
        return gen_fail(g, RECORD_GEN_USAGE, "ttl",
                        "--ttl: '%s' is not a number of seconds in 0-2147483647", rq->ttl);
    if (!rq->mta_sts && (rq->nmx || rq->mode || rq->max_age || rq->policy_file))
        return gen_fail(g, RECORD_GEN_USAGE, "mx",
                        "--mx, --mode, --max-age and --policy-file go with --mta-sts");
    if (g->nuris > 2)
        gen_note(g, "warning: %zu destinations: some senders deliver to the first only", g->nuris);
    if (rq->mta_sts && sts_build(rq, g) != 0)
        return g->status;
    g->value = record_value((const char *const *)g->uris, g->nuris);
    if (g->value == NULL)
        return gen_fail(g, RECORD_GEN_TEMPFAIL, NULL, "out of memory");
    return 0;
}

void record_gen_free(struct record_gen *g)
{
    for (size_t i = 0; i < g->nuris; i++)
        free(g->uris[i]);
    g->nuris = 0;
    free(g->value);
    free(g->sts_value);
    free(g->sts_policy);
    g->value = g->sts_value = g->sts_policy = NULL;
}

json_t *record_gen_json(const struct record_gen *g)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "name", g->name, "type", "TXT", "ttl",
                          (json_int_t)g->ttl, "value", g->value);
    if (o && g->sts_value &&
        json_object_set_new(o, "mta_sts",
                            json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "name", g->sts_name, "type",
                                      "TXT", "ttl", (json_int_t)g->ttl, "value", g->sts_value,
                                      "policy_url", g->sts_url, "policy", g->sts_policy)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *record_gen_zone_line(const struct record_gen *g, bool sts)
{
    return sts ? record_zone_line(g->sts_name, g->ttl, g->sts_value)
               : record_zone_line(g->name, g->ttl, g->value);
}

/* ---- --parse and the parse part of --check -------------------------------------------------- */

/* Print the outcome of record_parse: the destinations and extensions
 * (marking those that reach a collector address, when coll is given), or the
 * error with a caret under its column. here[i] (may be NULL) says whether
 * destination i reaches the collector. */
static void print_parse(FILE *out, const char *rec, size_t len, tr_err rc,
                        const struct record_parse *pr, char *const *coll, size_t ncoll, bool *here,
                        size_t *reached)
{
    if (reached)
        *reached = 0;
    if (rc != TR_OK) {
        fprintf(out, "invalid: column %zu: %s\n  %.*s\n  ", pr->err_col, pr->err, (int)len, rec);
        for (size_t i = 0; i + 1 < pr->err_col; i++)
            fputc(rec[i] == '\t' ? '\t' : ' ', out); /* the caret stays under the column */
        fprintf(out, "^\n");
        return;
    }
    fprintf(out, "valid: %.*s\n", (int)len, rec);
    for (size_t i = 0; i < pr->nwarn; i++)
        fprintf(out, "warning: column %zu: %s\n", pr->warn_col[i], pr->warn[i]);
    for (size_t i = 0; i < pr->nrua; i++) {
        const char *u = rec + pr->rua[i].off;
        int ul = (int)pr->rua[i].len;
        bool ok = false;
        if (coll) {
            char *raw = strndup(u, (size_t)ul), *norm = NULL, err[TR_ERRLEN];
            if (raw && record_uri_normalize(raw, &norm, NULL, err) == TR_OK)
                for (size_t k = 0; k < ncoll && !ok; k++)
                    ok = record_uri_reaches(norm, coll[k]);
            free(norm);
            free(raw);
        }
        if (ok)
            (*reached)++;
        if (here)
            here[i] = ok;
        fprintf(out, "  rua: %.*s%s\n", ul, u, ok ? "  (this collector)" : "");
    }
    for (size_t i = 0; i < pr->next; i++)
        fprintf(out, "  extension: %.*s\n", (int)pr->ext[i].len, rec + pr->ext[i].off);
}

int record_gen_parse(const char *rec, FILE *out)
{
    struct record_parse pr;
    size_t len = strlen(rec);
    tr_err rc = record_parse(rec, len, &pr);
    print_parse(out, rec, len, rc, &pr, NULL, 0, NULL, NULL);
    return rc == TR_OK ? 0 : RECORD_GEN_INVALID;
}

/* ---- --check -------------------------------------------------------------------------------- */

static const char *lookup_name(enum dns_status st)
{
    static const char *const names[] = {"ok",      "nxdomain", "nodata", "servfail",
                                        "refused", "timeout",  "error"};
    return (unsigned)st < sizeof names / sizeof *names ? names[st] : "error";
}

/* The verdict's fields that depend on the parsed policy. */
static void verdict_parse(json_t *v, const char *rec, size_t len, tr_err rc,
                          const struct record_parse *pr, const bool *here)
{
    json_object_set_new(v, "record", json_stringn(rec, len));
    json_object_set_new(v, "valid", json_boolean(rc == TR_OK));
    json_object_set_new(v, "error",
                        rc == TR_OK ? json_null()
                                    : json_pack("{s:I, s:s}", "column", (json_int_t)pr->err_col,
                                                "message", pr->err));
    json_t *warnings = json_array(), *rua = json_array(), *ext = json_array();
    for (size_t i = 0; rc == TR_OK && i < pr->nwarn; i++)
        json_array_append_new(
            warnings,
            json_pack("{s:I, s:s}", "column", (json_int_t)pr->warn_col[i], "message", pr->warn[i]));
    for (size_t i = 0; rc == TR_OK && i < pr->nrua; i++)
        json_array_append_new(rua, json_pack("{s:s%, s:b}", "uri", rec + pr->rua[i].off,
                                             pr->rua[i].len, "this_collector", here[i]));
    for (size_t i = 0; rc == TR_OK && i < pr->next; i++)
        json_array_append_new(ext, json_stringn(rec + pr->ext[i].off, pr->ext[i].len));
    json_object_set_new(v, "warnings", warnings);
    json_object_set_new(v, "rua", rua);
    json_object_set_new(v, "extensions", ext);
}

/* Prints on out (a memory stream) and fills v; returns the exit code. */
static int check(const struct record_gen *t, const struct dns_server *srv, int timeout_s, FILE *out,
                 json_t *v, const char **verdict)
{
    char err[TR_ERRLEN];
    struct dns_txt txt;
    enum dns_status st;
    tr_err e = dns_lookup_txt(t->name, srv, timeout_s, &txt, &st, err);
    json_object_set_new(v, "lookup", json_string(lookup_name(e == TR_ENOMEM ? DNS_ERROR : st)));
    if (e != TR_OK) {
        fprintf(out, "lookup failed: %s\n", err);
        dns_txt_free(&txt);
        *verdict = "lookup-failed";
        return e == TR_ENOMEM || st == DNS_SERVFAIL || st == DNS_TIMEOUT || st == DNS_REFUSED
                   ? RECORD_GEN_TEMPFAIL
                   : RECORD_GEN_INVALID;
    }
    *verdict = "no-policy";
    if (st == DNS_NXDOMAIN) {
        fprintf(out, "%s: no such name (NXDOMAIN): no TLS-RPT policy\n", t->name);
        dns_txt_free(&txt);
        return RECORD_GEN_INVALID;
    }
    if (st == DNS_NODATA) {
        fprintf(out, "%s: no TXT records (the name exists): no TLS-RPT policy\n", t->name);
        dns_txt_free(&txt);
        return RECORD_GEN_INVALID;
    }
    fprintf(out, "%s: %zu TXT record%s\n", t->name, txt.nrr, txt.nrr == 1 ? "" : "s");
    json_t *txts = json_array();
    json_object_set_new(v, "txt", txts);
    for (size_t i = 0; i < txt.nrr; i++) {
        /* the strings as DNS has them (record_zone_strings of each, not re-split) */
        char *line = NULL;
        size_t linelen = 0;
        FILE *one = open_memstream(&line, &linelen);
        for (size_t k = 0; one && k < txt.rr[i].n; k++) {
            char *s = record_zone_strings(txt.rr[i].str[k].s, txt.rr[i].str[k].len);
            fprintf(one, "%s%s", k ? " " : "", s ? s : "?");
            free(s);
        }
        if (one)
            fclose(one);
        fprintf(out, "  TXT %s\n", line ? line : "?");
        json_array_append_new(txts, json_string(line ? line : "?"));
        free(line);
    }
    struct record_discovery d;
    e = record_discover(txt.rr, txt.nrr, &d, err);
    dns_txt_free(&txt);
    if (e != TR_OK) {
        fprintf(out, "no policy: %s\n", err);
        record_discovery_free(&d);
        return e == TR_ENOMEM ? RECORD_GEN_TEMPFAIL : RECORD_GEN_INVALID;
    }
    if (d.nstrings > 1)
        fprintf(out, "policy (%zu strings joined):\n", d.nstrings);
    json_object_set_new(v, "strings", json_integer((json_int_t)d.nstrings));
    struct record_parse pr;
    bool here[RECORD_MAX_URIS] = {false};
    tr_err rc = record_parse(d.record, d.len, &pr);
    size_t reached = 0;
    print_parse(out, d.record, d.len, rc, &pr, t->uris, t->nuris, here, &reached);
    verdict_parse(v, d.record, d.len, rc, &pr, here);
    record_discovery_free(&d);
    if (rc != TR_OK) {
        fprintf(out, "no policy: the record is not valid, senders ignore it\n");
        *verdict = "invalid";
        return RECORD_GEN_INVALID;
    }
    fprintf(out, "%s: rua %s this collector (", reached ? "ok" : "not reached",
            reached ? "reaches" : "does not reach");
    for (size_t i = 0; i < t->nuris; i++)
        fprintf(out, "%s%s", i ? ", " : "", t->uris[i]);
    fprintf(out, ")\n");
    *verdict = reached ? "reaches" : "does-not-reach";
    return reached ? 0 : RECORD_GEN_INVALID;
}

int record_gen_check(const struct record_gen *t, const struct dns_server *srv, int timeout_s,
                     FILE *out, json_t **verdict)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    json_t *v = json_object(), *coll = json_array();
    if (mem == NULL || v == NULL || coll == NULL) {
        if (mem)
            fclose(mem);
        free(text);
        json_decref(v);
        json_decref(coll);
        return RECORD_GEN_TEMPFAIL;
    }
    for (size_t i = 0; i < t->nuris; i++)
        json_array_append_new(coll, json_string(t->uris[i]));
    json_object_set_new(v, "domain", json_string(t->domain));
    json_object_set_new(v, "name", json_string(t->name));
    json_object_set_new(v, "dns", json_string(srv->name));
    json_object_set_new(v, "collector", coll);
    json_object_set_new(v, "txt", json_array());
    json_object_set_new(v, "record", json_null());
    json_object_set_new(v, "strings", json_integer(0));
    json_object_set_new(v, "valid", json_null());
    json_object_set_new(v, "error", json_null());
    json_object_set_new(v, "warnings", json_array());
    json_object_set_new(v, "rua", json_array());
    json_object_set_new(v, "extensions", json_array());
    const char *what = "lookup-failed";
    int rc = check(t, srv, timeout_s, mem, v, &what);
    fclose(mem);
    /* the last line is the verdict in words */
    size_t end = len, start;
    while (end > 0 && text[end - 1] == '\n')
        end--;
    for (start = end; start > 0 && text[start - 1] != '\n'; start--)
        ;
    json_object_set_new(v, "verdict", json_string(what));
    json_object_set_new(v, "message", json_stringn(text + start, end - start));
    json_object_set_new(v, "exit", json_integer(rc));
    json_object_set_new(v, "text", json_stringn(text, len));
    if (out)
        fputs(text, out);
    free(text);
    if (verdict)
        *verdict = v;
    else
        json_decref(v);
    return rc;
}
