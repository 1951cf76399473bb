/* query.h: failure summaries from the database (DESIGN.md §6).
 * Only query.c and store.c speak SQL. */
#ifndef TLSRPTD_QUERY_H
#define TLSRPTD_QUERY_H

#include <jansson.h>
#include <stdio.h>
#include "tlsrptd/store.h"

/* Per policy domain and in total: successful and failed sessions, failed
 * sessions per result type, reports. Returns a NEW reference in the shape of
 * DESIGN.md §6 ({"domains": [...], "totals": {...}}); NULL with err set on failure. */
json_t *query_summary(struct store *st, char *err);

/* Render a summary made by query_summary() as an aligned table for people. */
void query_print_table(const json_t *summary, FILE *out);

#endif
