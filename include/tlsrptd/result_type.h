/* result_type.h: the result types of RFC 8460 §4.3 in one table, each with
 * what it means and what to do about it, for the validator (which warns on a
 * type it does not know), the summaries (table, JSON, console) and alerts. */
#ifndef TLSRPTD_RESULT_TYPE_H
#define TLSRPTD_RESULT_TYPE_H

#include <stddef.h>

struct result_type {
    const char *name;    /* "certificate-expired" */
    const char *meaning; /* "the MX presented an expired certificate" */
    const char *fix;     /* "renew it" */
};

/* The entry for name, or NULL for a type RFC 8460 does not define. */
const struct result_type *result_type_find(const char *name);
/* Every known type, in the RFC's order. */
const struct result_type *result_types(size_t *n);

#endif
