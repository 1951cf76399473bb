/* check_db.h: read values back from a test database (unit tests of store and
 * ingest), through the store's own statement runner, so the same checks run
 * on every backend (the SQL is the test's own); and find the PostgreSQL
 * database such a test runs on too. */
#ifndef TLSRPTD_CHECK_DB_H
#define TLSRPTD_CHECK_DB_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_backend.h"
#include "tlsrptd/store.h"

static inline int check_db_int(void *cls, struct sql_row *row)
{
    *(int64_t *)cls = sql_null(row, 0) ? -1 : sql_col_int(row, 0);
    return 1;
}

/* The first column of the first row as an integer; -1 when there is none. */
static inline int64_t count(struct store *st, const char *sql)
{
    int64_t n = -1;
    char err[TR_ERRLEN];
    if (store_exec(st, STMT_NONE, sql, NULL, 0, check_db_int, &n, NULL, err) != TR_OK)
        fprintf(stderr, "check_db: %s\n", err);
    return n;
}

static inline int check_db_text(void *cls, struct sql_row *row)
{
    char *out = cls;
    size_t used = strlen(out);
    const char *v = sql_col_text(row, 0);
    snprintf(out + used, 4096 - used, "%s%s", used ? " " : "", v ? v : "");
    return 0;
}

/* The first column of every row as text, joined by spaces ("" when none), in
 * a static buffer that the next call overwrites. */
static inline char *text(struct store *st, const char *sql)
{
    static char out[4096];
    char err[TR_ERRLEN];
    out[0] = 0;
    if (store_exec(st, STMT_NONE, sql, NULL, 0, check_db_text, out, NULL, err) != TR_OK)
        fprintf(stderr, "check_db: %s\n", err);
    return out;
}

/* A database of the PostgreSQL cluster tests/pg_cluster.py started, as a URI
 * in out (see tests/CMakeLists.txt for the databases it makes); false without
 * one (TLSRPTD_PG_STATE unset) or when it does not fit in n bytes. */
static inline bool check_db_pg_target(char *out, size_t n, const char *db)
{
    const char *state = getenv("TLSRPTD_PG_STATE");
    char path[512], uri[400] = "";
    if (state == NULL || state[0] == 0)
        return false;
    snprintf(path, sizeof path, "%s/uri", state);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(uri, sizeof uri, f) == NULL) {
        if (f)
            fclose(f);
        return false;
    }
    fclose(f);
    uri[strcspn(uri, "\n")] = 0;
    int k = snprintf(out, n, "%s%s", uri, db);
    return k > 0 && (size_t)k < n;
}

#endif
