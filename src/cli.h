/* cli.h: the subcommands of the tlsrptd binary and their shared helpers.
 * Internal to the binary (not part of the core library). */
#ifndef TLSRPTD_CLI_H
#define TLSRPTD_CLI_H

#include <stdbool.h>
#include <stddef.h>

#define EXIT_USAGE    64 /* EX_USAGE */
#define EXIT_DATAERR  65 /* EX_DATAERR */
#define EXIT_IOERR    74 /* EX_IOERR */
#define EXIT_TEMPFAIL 75 /* EX_TEMPFAIL */

#define DEFAULT_DB "./tlsrptd.db"

int cmd_ingest(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* "10M", "32MiB", "512k", "1048576" -> bytes. false when malformed or zero. */
bool cli_parse_size(const char *s, size_t *out);
/* A decimal integer in [min, max]. */
bool cli_parse_long(const char *s, long min, long max, long *out);
/* Print "tlsrptd CMD: message" to stderr and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
