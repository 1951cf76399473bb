/* mailcheck.h: the RFC 8460 mail format of a mailed report, for
 * `tlsrptd validate --strict` (people testing their own report generators).
 *
 * Checks a report part of a message against RFC 8460 §5.3 (the message is
 * multipart/report; report-type=tlsrpt; the report part is
 * application/tlsrpt+gzip or application/tlsrpt+json and its bytes are what
 * the type says; the TLS-Report-Domain and TLS-Report-Submitter header
 * fields) and the file name against §5.1. Every finding is an error whose
 * message names the section it enforces. Reads what mime.c extracted and what
 * report.c parsed; knows nothing of GMime, zlib or SQLite. Exports mailcheck_*. */
#ifndef TLSRPTD_MAILCHECK_H
#define TLSRPTD_MAILCHECK_H

#include <stddef.h>
#include "tlsrptd/mime.h"
#include "tlsrptd/report.h"

/* Check message msg around its report part k (k < msg->nparts). r is the
 * report parsed from that part, or NULL when it was rejected: the checks
 * against the report body (file name fields, the submitter) are then skipped.
 * Findings are added to d (owned by the caller) as errors. */
void mailcheck_report_part(const struct mime_message *msg, size_t k, const struct report *r,
                           struct diag_list *d);

#endif
