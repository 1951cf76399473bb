/* store_schema.h: the schema files compiled into the binary, one list per
 * storage backend (schema/sqlite/NNN_*.sql, schema/postgresql/NNN_*.sql),
 * generated at build time by cmake/embed_schema.cmake. Each backend applies
 * its list in order and records how far it got. Internal to the backends. */
#ifndef TLSRPTD_STORE_SCHEMA_H
#define TLSRPTD_STORE_SCHEMA_H

#include <stddef.h>

struct store_schema_file {
    const char *name; /* "001_init.sql" */
    const char *sql;  /* the whole file, NUL-terminated */
};

extern const struct store_schema_file tlsrptd_schema_sqlite[];
extern const size_t tlsrptd_schema_sqlite_count;
extern const struct store_schema_file tlsrptd_schema_postgresql[];
extern const size_t tlsrptd_schema_postgresql_count;

#endif
