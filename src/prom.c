/* prom.c: the Prometheus text format helpers (see prom.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "tlsrptd/prom.h"

tr_err prom_printf(struct buf *out, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return TR_EINVAL;
    if ((size_t)n < sizeof small)
        return buf_append(out, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (big == NULL)
        return TR_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tr_err e = buf_append(out, big, (size_t)n);
    free(big);
    return e;
}

void prom_label(const char *v, char *out, size_t n)
{
    size_t k = 0;
    for (; *v && k + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            out[k++] = '\\';
            out[k++] = *v;
        } else if (*v == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *v;
        }
    }
    out[k] = 0;
}
