/* metrics_day.h: the /metrics gauges by report date: sessions and failed
 * sessions (per result type) per policy domain in the reports whose window
 * started on the last complete UTC day, read from the rollups. Counters since
 * the database began cannot say "yesterday 7% failed" without Prometheus
 * history; these can, so alerting rules work from the first scrape
 * (contrib/prometheus/tlsrptd-rules.yml). */
#ifndef TLSRPTD_METRICS_DAY_H
#define TLSRPTD_METRICS_DAY_H

#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"
#include "tlsrptd/store.h"

/* Append tlsrptd_report_day_sessions{policy_domain,result},
 * tlsrptd_report_day_failed_sessions{policy_domain,result_type} and
 * tlsrptd_report_day_timestamp_seconds for the UTC day before now's: the top
 * domains by sessions that day with series of their own, the rest summed as
 * "(other)". */
tr_err metrics_day_write(struct store *st, struct buf *out, size_t top, int64_t now, char *err);

#endif
