/* err.h: the one error enum of tlsrptd and its strerror.
 * Detail goes into a caller-owned buffer of TR_ERRLEN bytes ("char *err"). */
#ifndef TLSRPTD_ERR_H
#define TLSRPTD_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define TR_ERRLEN 256

typedef enum {
    TR_OK = 0,
    TR_ENOMEM,    /* allocation failed */
    TR_EPARSE,    /* input is not what it claims to be (JSON, gzip, MIME) */
    TR_EINVAL,    /* input parsed but breaks an acceptance rule */
    TR_ETOOBIG,   /* a configured limit was reached */
    TR_ENOREPORT, /* a message holds no report */
    TR_EIO,       /* reading an input failed */
    TR_EDB,       /* storage unavailable or failed: retry later */
    TR_EUSAGE,    /* bad command line or configuration */
    TR_ERETRY,    /* a transaction lost a race with another writer: run it again */
    TR_ECONFIG,   /* the configuration cannot work (exit 78: retrying will not help) */
    TR_ELAST
} tr_err;

/* Never NULL: "unknown error" for codes out of range. */
const char *tr_strerror(tr_err e);

/* Writes a formatted message into err (TR_ERRLEN bytes) when err is not NULL;
 * returns e so callers can write `return tr_fail(err, TR_EIO, "...")`. */
tr_err tr_fail(char *err, tr_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
