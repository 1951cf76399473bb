/* store_agg.h: a GROUP BY in memory, for summaries over the rollup rows of a
 * time window (store_read.c). SQLite has no hash aggregation: its GROUP BY
 * sorts every row it reads, about a microsecond a row, so a 30-day summary
 * over 500 domains (65,000 rollup rows) took 100 ms per statement and the
 * console's overview a second. Reading the same rows unsorted costs a tenth
 * of that; this table sums them by group, counts distinct reporters per
 * group, and sorts only the groups. Internal to the store_*.c files. */
#ifndef TLSRPTD_STORE_AGG_H
#define TLSRPTD_STORE_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a group has summed. A group is keyed by a name (key, NULL for a
 * day) or a day, and an optional second name (sub: a result type). */
enum { AGG_SUCCESSFUL, AGG_FAILED, AGG_REPORTS, AGG_REPORTS_ONCE, AGG_NSUMS };
struct agg_group {
    const char *key; /* "" when the rows had none */
    int64_t day;
    const char *sub;        /* NULL when the groups have no second name */
    int64_t sum[AGG_NSUMS]; /* saturating sums */
    int64_t last;           /* the greatest value given to agg_max */
    int64_t distinct;       /* distinct names given to agg_distinct */
};

struct agg;

struct agg *agg_new(void);
void agg_free(struct agg *a);

/* The group of (key, day, sub), made with zero sums when create is set and it
 * is new; NULL when it is not there (create unset) or memory ran out (then
 * agg_failed is true). Pointers stay valid until agg_free. */
struct agg_group *agg_group(struct agg *a, const char *key, int64_t day, const char *sub,
                            bool create);
bool agg_failed(const struct agg *a);

void agg_add(struct agg_group *g, int which, int64_t v);
void agg_max(struct agg_group *g, int64_t v);
/* Counts name in g->distinct the first time it is given for g. */
void agg_distinct(struct agg *a, struct agg_group *g, const char *name);

/* The groups in order: ranked (most failed sessions first), then by day, or
 * by key with "" last, then by sub; bytewise, as SQLite and strcmp compare.
 * The array belongs to a; NULL when there are none or memory ran out
 * (agg_failed). */
struct agg_group **agg_sorted(struct agg *a, bool ranked, size_t *n);

#endif
