/* cli.h: the subcommands of the tlsrptd binary and their shared helpers.
 * Internal to the binary (not part of the core library). */
#ifndef TLSRPTD_CLI_H
#define TLSRPTD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/config.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/store.h"

#define EXIT_USAGE    64 /* EX_USAGE */
#define EXIT_DATAERR  65 /* EX_DATAERR */
#define EXIT_IOERR    74 /* EX_IOERR */
#define EXIT_TEMPFAIL 75 /* EX_TEMPFAIL */
#define EXIT_CONFIG   78 /* EX_CONFIG */

#define DEFAULT_DB "./tlsrptd.db"

int cmd_ingest(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_maildir(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_quarantine(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_alerts(int argc, char **argv);

/* "10M", "32MiB", "512k", "1048576" -> bytes. false when malformed or zero. */
bool cli_parse_size(const char *s, size_t *out);
/* A decimal integer in [min, max]. */
bool cli_parse_long(const char *s, long min, long max, long *out);
/* Print "tlsrptd CMD: message" to stderr and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* cli_config.c: for commands configured by tlsrptd.conf (serve, maildir, record).
 * Parse -c FILE, then every flag over it; extra (may be NULL) sees each
 * argument first and returns 1 when it took it, -1 after printing a usage
 * error, 0 to let it be parsed as a config flag. Returns 0, -1 after --help,
 * or EXIT_USAGE. */
int cli_config_args(const char *cmd, int argc, char **argv, struct config *cfg, void (*help)(void),
                    int (*extra)(void *ctx, const char *arg), void *ctx);
/* Log target, format and level from cfg (also on SIGHUP, to reopen a file). */
void cli_setup_log(const struct config *cfg, const char *cmd);
/* Input limits (Maildir messages) and database options from cfg. */
void cli_config_limits(const struct config *cfg, struct ingest_limits *lim);
void cli_config_store_options(const struct config *cfg, struct store_options *sopt);
/* The spool directory of `serve` (spool_dir, or derived from db: DB.spool
 * beside a SQLite file, ./tlsrptd.spool for PostgreSQL); false when it is
 * "off". */
bool cli_spool_dir(const struct config *cfg, char *out, size_t n);

#endif
