/* check_db.h: read one value from a test database (unit tests of store and
 * ingest). The SQL is the test's own; values are read back as the tests assert. */
#ifndef TLSRPTD_CHECK_DB_H
#define TLSRPTD_CHECK_DB_H

#include <stdint.h>
#include <stdio.h>
#include "tlsrptd/store.h"

/* The first column of the first row as an integer; -1 when there is none. */
static inline int64_t count(struct store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* The first column of the first row as text ("" when NULL or none), in a
 * static buffer that the next call overwrites. */
static inline char *text(struct store *st, const char *sql)
{
    static char out[4096];
    sqlite3_stmt *s = NULL;
    out[0] = 0;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
}

#endif
