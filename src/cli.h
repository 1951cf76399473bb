/* cli.h: the subcommands of the tlsrptd binary and their shared helpers.
 * Internal to the binary (not part of the core library). */
#ifndef TLSRPTD_CLI_H
#define TLSRPTD_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/config.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/store.h"

#define EXIT_USAGE    64 /* EX_USAGE */
#define EXIT_DATAERR  65 /* EX_DATAERR */
#define EXIT_IOERR    74 /* EX_IOERR */
#define EXIT_TEMPFAIL 75 /* EX_TEMPFAIL */
#define EXIT_NOPERM   77 /* EX_NOPERM */
#define EXIT_CONFIG   78 /* EX_CONFIG */

#define DEFAULT_DB "./tlsrptd.db"

int cmd_ingest(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_maildir(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_imap(int argc, char **argv);

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
/* The arguments of `maildir` and `imap`: --watch, and positional arguments
 * that replace the config file's list (maildir, imap). Use cli_watch_extra
 * as cli_config_args' extra with a struct cli_watch_args as its ctx. */
struct cli_watch_args {
    struct config *cfg;
    const char *cmd;  /* for messages */
    const char *list; /* the repeatable key the arguments go to */
    bool watch;
    bool given; /* an argument was given: the file's list is replaced */
};
int cli_watch_extra(void *ctx, const char *arg);
/* For commands that keep running (--watch): block SIGTERM, SIGINT and SIGHUP
 * in this thread and the threads it starts (sigs gets them), then later wait
 * for SIGTERM or SIGINT, reopening the log on SIGHUP; "SIGTERM: <stopping>"
 * is logged. */
void cli_block_signals(sigset_t *sigs);
void cli_wait_for_stop(const struct config *cfg, const char *cmd, const sigset_t *sigs,
                       const char *stopping);
/* Input limits (Maildir messages) and database options from cfg. */
void cli_config_limits(const struct config *cfg, struct ingest_limits *lim);
void cli_config_store_options(const struct config *cfg, struct store_options *sopt);
/* Open cfg's database and start the writer on it (maildir, imap): false
 * after printing "tlsrptd CMD: why" (the caller exits 75). */
struct writer;
bool cli_start_writer(const struct config *cfg, const struct ingest_limits *lim, const char *cmd,
                      struct store **st, struct writer **w);
/* cli_imap.c: the IMAP options (imap.h) from cfg, with lim for the messages. */
struct imap_options;
void cli_config_imap_options(const struct config *cfg, const struct ingest_limits *lim,
                             struct imap_options *o);

#endif
