/* retention.h: how long tlsrptd keeps what it stored (docs/trust.md): the
 * settings retention, rollup_retention, quarantine_retention ("400d") and
 * prune_interval, turned into what store_prune() removes; what a prune did,
 * for people and as JSON; and the thread with which `serve` prunes every
 * prune_interval (a day by default). The SQL is in store_retention.c. */
#ifndef TLSRPTD_RETENTION_H
#define TLSRPTD_RETENTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "tlsrptd/config.h"
#include "tlsrptd/err.h"
#include "tlsrptd/store.h"

/* "400d", "12w", "36h", "90m", "30s" -> seconds (at most a hundred years);
 * false for anything else. */
bool retention_parse_duration(const char *s, int64_t *seconds);

/* The settings, in seconds (0: kept for ever), with their text for messages. */
struct retention {
    int64_t reports, rollups, quarantine;
    const char *reports_text, *rollups_text, *quarantine_text; /* borrowed from the config */
    int64_t interval;                                          /* serve: seconds between prunes */
};
/* From cfg; TR_EUSAGE naming the key when a value is not a duration. */
tr_err retention_from_config(const struct config *cfg, struct retention *out, char *err);
/* Whether anything is ever pruned. */
bool retention_any(const struct retention *r);
/* What to remove at time now. */
void retention_cutoffs(const struct retention *r, int64_t now, struct store_retention *out);

/* What a prune removed (or, dry_run, would remove), as lines for people
 * ("prune: ...") and as JSON (a NEW reference). */
void retention_print(FILE *out, const struct retention *r, const struct store_retention *cut,
                     const struct store_prune_stats *s, bool dry_run);
json_t *retention_json(const struct retention *r, const struct store_retention *cut,
                       const struct store_prune_stats *s, bool dry_run);

/* serve: prune db (opened with sopt, its own connection) once r->interval
 * after the start, at most a minute after it, and every r->interval after
 * that; each prune is logged. r and sopt are copied; the strings they point
 * to must outlive the pruner. NULL with err set when the thread cannot
 * start. */
struct pruner;
struct pruner *pruner_start(const char *db, const struct store_options *sopt,
                            const struct retention *r, char *err);
/* Stop (a prune in progress finishes its batch first). NULL is fine. */
void pruner_stop(struct pruner *p);

#endif
