/* api_record.h: the API calls of `tlsrptd serve` that need no database, for
 * the console's record generator (DESIGN §11):
 *
 *   GET /api/v1/record?domain=D&rua=URI&rua=URI&ttl=N
 *                     [&mta_sts=1&mx=HOST&mx=HOST&mode=M&max_age=S][&explain=1]
 *       exactly the JSON of `tlsrptd record --format json` with the same
 *       arguments (without rua: this collector's public_url and
 *       report_mailbox); explain=1 adds "zone" (the zone-file line, also in
 *       mta_sts) and "notes" (the notes and warnings the command prints on
 *       stderr). A refused input is 400 {"status", "error", "detail": the
 *       command's message, "field", "exit": 64|65}.
 *   GET /api/v1/record/check?domain=D[&rua=URI...]
 *       the verdict of `tlsrptd record --check` as JSON (record_gen.h), asking
 *       the config's dns server; one check at a time (503 while one runs).
 *   GET /api/v1/config
 *       {"version", "public_url", "report_mailbox"} for prefilling forms.
 *
 * The access rule is the caller's (http.c applies api_check_access first).
 * What is checked and said comes from record_gen.c, as for the command. */
#ifndef TLSRPTD_API_RECORD_H
#define TLSRPTD_API_RECORD_H

#include <jansson.h>
#include "tlsrptd/api.h"
#include "tlsrptd/config.h"

/* Answer path (without the query string) when it is one of the above: the
 * HTTP status, and a NEW JSON body in *body. 0 (body untouched) for any other
 * path. */
unsigned api_record(const struct config *cfg, const char *path, const struct api_args *args,
                    json_t **body);

#endif
