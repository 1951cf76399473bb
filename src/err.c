/* err.c: tr_err codes and their messages. */
#include <stdio.h>
#include "tlsrptd/err.h"

static const char *const messages[TR_ELAST] = {
    [TR_OK] = "success",
    [TR_ENOMEM] = "out of memory",
    [TR_EPARSE] = "malformed input",
    [TR_EINVAL] = "not an acceptable report",
    [TR_ETOOBIG] = "limit exceeded",
    [TR_ENOREPORT] = "no TLS-RPT report in message",
    [TR_EIO] = "input/output error",
    [TR_EDB] = "storage unavailable",
    [TR_EUSAGE] = "usage error",
    [TR_ERETRY] = "transaction conflict; retry",
    [TR_ECONFIG] = "configuration error",
};

const char *tr_strerror(tr_err e)
{
    if ((unsigned)e >= TR_ELAST || messages[e] == NULL)
        return "unknown error";
    return messages[e];
}

tr_err tr_fail(char *err, tr_err e, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, TR_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return e;
}
