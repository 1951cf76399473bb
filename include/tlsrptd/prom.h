/* prom.h: writing the Prometheus text exposition format (version 0.0.4):
 * formatted lines appended to a capped buffer, label values escaped. Used by
 * every module that contributes to GET /metrics. */
#ifndef TLSRPTD_PROM_H
#define TLSRPTD_PROM_H

#include <stddef.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"

/* Append to out, failing only when out is full. */
tr_err prom_printf(struct buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v as a label value (backslash, quote and newline escaped) into out (n bytes). */
void prom_label(const char *v, char *out, size_t n);

#endif
