/* render.h: summaries, report listings and the quarantine for people: the
 * table (with what each result type means and how to fix it) and CSV (RFC
 * 4180), from the JSON the query model builds (query.h). */
#ifndef TLSRPTD_RENDER_H
#define TLSRPTD_RENDER_H

#include <jansson.h>
#include <stdio.h>

/* query_summary() as a table, or as CSV with one row per group. */
void render_summary_table(const json_t *summary, FILE *out);
void render_summary_csv(const json_t *summary, FILE *out);
/* query_reports() as a table, or as CSV. */
void render_reports_table(const json_t *reports, FILE *out);
void render_reports_csv(const json_t *reports, FILE *out);
/* findings_compute() as lines for people, the most urgent first. */
void render_findings(const json_t *findings, FILE *out);
/* query_quarantine() as a table. */
void render_quarantine_table(const json_t *entries, FILE *out);

#endif
