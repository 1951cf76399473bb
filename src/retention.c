/* retention.c: retention settings, prune reports, and serve's pruning thread
 * (see retention.h). The pruner sleeps on a condition variable, so stopping
 * it does not wait for the next round. */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/log.h"
#include "tlsrptd/report.h"
#include "tlsrptd/retention.h"

#define CENTURY ((int64_t)100 * 366 * 86400)

bool retention_parse_duration(const char *s, int64_t *seconds)
{
    size_t n = strlen(s);
    if (n < 2 || n > 12)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    const char *units = "smhdw";
    static const int64_t unit[] = {1, 60, 3600, 86400, 7 * 86400};
    const char *u = strchr(units, s[n - 1]);
    if (u == NULL || *u == 0 || v <= 0 || v > CENTURY / unit[u - units])
        return false;
    *seconds = v * unit[u - units];
    return true;
}

tr_err retention_from_config(const struct config *cfg, struct retention *out, char *err)
{
    memset(out, 0, sizeof *out);
    const struct {
        const char *name, *value;
        int64_t *seconds;
        const char **text;
    } keys[] = {
        {"retention", cfg->retention, &out->reports, &out->reports_text},
        {"rollup_retention", cfg->rollup_retention, &out->rollups, &out->rollups_text},
        {"quarantine_retention", cfg->quarantine_retention, &out->quarantine,
         &out->quarantine_text},
        {"prune_interval", cfg->prune_interval ? cfg->prune_interval : "1d", &out->interval, NULL},
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        if (keys[i].value == NULL || keys[i].value[0] == 0)
            continue;
        if (!retention_parse_duration(keys[i].value, keys[i].seconds))
            return tr_fail(err, TR_EUSAGE,
                           "%s: '%s' is not a duration (a number and s, m, h, d or w: 400d)",
                           keys[i].name, keys[i].value);
        if (keys[i].text)
            *keys[i].text = keys[i].value;
    }
    if (out->rollups && out->reports && out->rollups < out->reports)
        return tr_fail(err, TR_EUSAGE,
                       "rollup_retention (%s) is shorter than retention (%s): the daily totals "
                       "would go before the reports they sum",
                       out->rollups_text, out->reports_text);
    return TR_OK;
}

bool retention_any(const struct retention *r)
{
    return r->reports || r->rollups || r->quarantine;
}

void retention_cutoffs(const struct retention *r, int64_t now, struct store_retention *out)
{
    out->reports_before = r->reports ? now - r->reports : INT64_MIN;
    out->rollups_before = r->rollups ? now - r->rollups : INT64_MIN;
    out->quarantine_before = r->quarantine ? now - r->quarantine : INT64_MIN;
}

/* ---- what a prune did ----------------------------------------------------------------------- */

void retention_print(FILE *out, const struct retention *r, const struct store_retention *cut,
                     const struct store_prune_stats *s, bool dry_run)
{
    const char *verb = dry_run ? "would be removed" : "removed";
    char when[32];
    if (r->reports) {
        report_format_time(cut->reports_before, when, sizeof when);
        fprintf(out,
                "prune: reports that started before %s (retention %s): %lld reports, %lld "
                "policies, %lld failure details, %lld raw bytes %s\n",
                when, r->reports_text, (long long)s->reports, (long long)s->policies,
                (long long)s->failure_details, (long long)s->raw_bytes, verb);
    }
    if (r->rollups) {
        report_format_time(cut->rollups_before, when, sizeof when);
        fprintf(out, "prune: daily totals before %s (rollup_retention %s): %lld rows %s\n", when,
                r->rollups_text, (long long)s->rollup_rows, verb);
    }
    if (r->quarantine) {
        report_format_time(cut->quarantine_before, when, sizeof when);
        fprintf(out,
                "prune: quarantine entries received before %s (quarantine_retention %s): %lld "
                "entries, %lld bytes %s\n",
                when, r->quarantine_text, (long long)s->quarantine, (long long)s->quarantine_bytes,
                verb);
    }
    if (dry_run)
        fprintf(out, "prune: dry run: nothing was removed\n");
    else
        fprintf(out, "prune: database %lld bytes before, %lld bytes now%s\n",
                (long long)s->size_before, (long long)s->size_after,
                s->rebuilt ? " (rebuilt once, so that pruned space goes back to the file system)"
                           : "");
}

static json_t *cutoff_json(int64_t before)
{
    if (before == INT64_MIN)
        return json_null();
    char when[32];
    report_format_time(before, when, sizeof when);
    return json_string(when);
}

json_t *retention_json(const struct retention *r, const struct store_retention *cut,
                       const struct store_prune_stats *s, bool dry_run)
{
    (void)r;
    return json_pack(
        "{s:b, s:{s:o, s:I, s:I, s:I, s:I}, s:{s:o, s:I}, s:{s:o, s:I, s:I}, s:{s:I, s:I, s:b}}",
        "dry_run", dry_run, "reports", "before", cutoff_json(cut->reports_before), "reports",
        (json_int_t)s->reports, "policies", (json_int_t)s->policies, "failure_details",
        (json_int_t)s->failure_details, "raw_bytes", (json_int_t)s->raw_bytes, "rollups", "before",
        cutoff_json(cut->rollups_before), "rows", (json_int_t)s->rollup_rows, "quarantine",
        "before", cutoff_json(cut->quarantine_before), "entries", (json_int_t)s->quarantine,
        "bytes", (json_int_t)s->quarantine_bytes, "database", "bytes_before",
        (json_int_t)s->size_before, "bytes_after", (json_int_t)s->size_after, "rebuilt",
        s->rebuilt);
}

/* ---- serve's pruner ------------------------------------------------------------------------- */

struct pruner {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    char *db;
    struct store_options sopt;
    struct retention r;
};

static void prune_once(struct pruner *p)
{
    char err[TR_ERRLEN];
    struct store *st = NULL;
    if (store_open(p->db, &p->sopt, &st, err) != TR_OK) {
        tr_warn("prune: %s; trying again in %lld s", err, (long long)p->r.interval);
        return;
    }
    struct store_retention cut;
    retention_cutoffs(&p->r, (int64_t)time(NULL), &cut);
    struct store_prune_stats s;
    if (store_prune(st, &cut, false, &s, err) != TR_OK)
        tr_warn("prune: %s; trying again in %lld s", err, (long long)p->r.interval);
    else if (s.reports || s.rollup_rows || s.quarantine)
        tr_info("prune: removed %lld reports (%lld raw bytes), %lld daily-total rows, %lld "
                "quarantine entries; database %lld -> %lld bytes",
                (long long)s.reports, (long long)s.raw_bytes, (long long)s.rollup_rows,
                (long long)s.quarantine, (long long)s.size_before, (long long)s.size_after);
    else
        tr_debug("prune: nothing older than the retention settings");
    store_close(st);
}

static void *pruner_main(void *arg)
{
    struct pruner *p = arg;
    int64_t wait = p->r.interval < 60 ? p->r.interval : 60; /* the first round soon */
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)wait;
        while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
            ; /* woken early: stop, or spurious */
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->mu);
        prune_once(p);
        pthread_mutex_lock(&p->mu);
        wait = p->r.interval;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct pruner *pruner_start(const char *db, const struct store_options *sopt,
                            const struct retention *r, char *err)
{
    struct pruner *p = calloc(1, sizeof *p);
    if (p == NULL || (p->db = strdup(db)) == NULL) {
        free(p);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    p->sopt = *sopt;
    p->sopt.read_only = false;
    p->r = *r;
    if (p->r.interval <= 0)
        p->r.interval = 86400;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, pruner_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p->db);
        free(p);
        tr_fail(err, TR_EIO, "cannot start the pruning thread");
        return NULL;
    }
    return p;
}

void pruner_stop(struct pruner *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->db);
    free(p);
}
