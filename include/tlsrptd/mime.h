/* mime.h: find TLS-RPT report parts in a MIME message (GMime), docs/architecture.md.
 * Returns each report part's decoded body (still gzip or JSON as sent) and the
 * headers stored as the report's source. Knows nothing of JSON, HTTP or SQLite. */
#ifndef TLSRPTD_MIME_H
#define TLSRPTD_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/buf.h"

struct mime_limits {
    size_t max_message; /* bytes of the whole message */
    size_t max_parts;   /* MIME parts visited */
    size_t max_depth;   /* nesting of multiparts and message/rfc822 */
    size_t max_reports; /* report parts returned */
};
#define MIME_DEFAULT_LIMITS                                                                        \
    {                                                                                              \
        (size_t)64 << 20, 1000, 16, 16                                                             \
    }

struct mime_report_part {
    struct buf body;  /* transfer-decoded body; owned */
    char *media_type; /* lower-case "type/subtype"; owned */
    char *filename;   /* NULL when the part has none; owned */
    bool is_gzip;     /* the body starts with the gzip magic bytes 1f 8b */
};

/* A parameter of a Content-Type field. */
struct mime_param {
    char *name;  /* lower-case; owned */
    char *value; /* decoded (RFC 2231), as sent; owned */
};
#define MIME_MAX_PARAMS 32 /* parameters of the top-level Content-Type kept */

struct mime_message {
    /* The message's own (top-level) Content-Type: lower-case "type/subtype"
     * ("text/plain" when the message has none, as RFC 2045 says), and its
     * parameters in order (boundary, report-type, ...). NULL / 0 only when
     * the input is not a message at all. Owned. */
    char *media_type;
    struct mime_param *params;
    size_t nparams;
    char *report_domain;    /* TLS-Report-Domain, or NULL; owned */
    char *report_submitter; /* TLS-Report-Submitter */
    char *subject;          /* decoded, unfolded */
    char *message_id;       /* without angle brackets */
    struct mime_report_part *parts;
    size_t nparts;
};

/* True when buf looks like an RFC 5322 message (starts with a header field). */
bool mime_looks_like_message(const void *buf, size_t len);

/* Parse a message and collect its report parts. TR_ENOREPORT when it holds
 * none (headers are still returned), TR_ETOOBIG past a limit, TR_EPARSE when
 * it is not a message. out is always initialised; free it with mime_message_free. */
tr_err mime_extract(const void *buf, size_t len, const struct mime_limits *lim,
                    struct mime_message *out, char *err);
void mime_message_free(struct mime_message *m);
/* The value of the top-level Content-Type parameter name (any letter case),
 * or NULL. Borrowed from m. */
const char *mime_param(const struct mime_message *m, const char *name);

#endif
