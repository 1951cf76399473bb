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
#define EXIT_NOINPUT  66 /* EX_NOINPUT */
#define EXIT_IOERR    74 /* EX_IOERR */
#define EXIT_TEMPFAIL 75 /* EX_TEMPFAIL */
#define EXIT_NOPERM   77 /* EX_NOPERM */
#define EXIT_CONFIG   78 /* EX_CONFIG: the configuration cannot work; do not retry */

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
int cmd_imap(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_alerts(int argc, char **argv);

/* A decimal integer in [min, max]. */
bool cli_parse_long(const char *s, long min, long max, long *out);
/* Print "tlsrptd CMD: message" to stderr and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A mail reader's summary line on stdout: "CMD: N messages: S stored, D
 * duplicates, Q quarantined, L left WHERE", each noun agreeing with its
 * number ("1 message", "1 duplicate"). */
void cli_print_mail_tally(const char *cmd, size_t messages, size_t stored, size_t duplicates,
                          size_t quarantined, size_t deferred, const char *where);

/* cli_config.c: the configuration of every command.
 *
 * cli_args reads the config file (-c FILE or --config FILE anywhere among the
 * arguments; else $TLSRPTD_CONFIG, "" meaning none; else
 * /etc/tlsrptd/tlsrptd.conf when it exists), then applies every config key
 * given as a flag (--key-name value or --key-name=value; the first flag of a
 * repeatable key replaces the file's list), and hands the command's own
 * flags (in `flags`, a table ending in {NULL}) and its positional arguments
 * ("-" included; everything after "--") to take(ctx, index, value): index
 * is the flag's place in `flags` (value NULL for a flag without one), or -1
 * for a positional argument. take returns 0, or an exit code after printing
 * the problem. cli_args returns 0; -1 after printing --help (exit 0); 64 for
 * a usage error; 78 when the config file cannot be read or holds a bad
 * value, or the keys do not fit together (config_finish). Every command
 * calls it (or cli_config_args) first. */
struct cli_flag {
    const char *name; /* "format" for --format, "q" for -q */
    bool value;       /* takes a value */
};
typedef int (*cli_arg_fn)(void *ctx, int index, const char *value);
int cli_args(const char *cmd, int argc, char **argv, struct config *cfg, void (*help)(void),
             const struct cli_flag *flags, cli_arg_fn take, void *ctx);
/* The same with a callback that sees every argument first (serve, maildir,
 * record): extra returns 1 when it took the argument, -1 after printing a
 * usage error, 0 to let it be parsed as a config flag. */
int cli_config_args(const char *cmd, int argc, char **argv, struct config *cfg, void (*help)(void),
                    int (*extra)(void *ctx, const char *arg), void *ctx);
/* Print "tlsrptd CMD: msg" to stderr and return EXIT_CONFIG. */
int cli_config_error(const char *cmd, const char *msg);
/* Log target, format and level from cfg (also on SIGHUP, to reopen a file).
 * False when the log file could not be (re)opened: the failure is logged where
 * the log went so far, which stays the log. */
bool cli_setup_log(const struct config *cfg, const char *cmd);
/* Input limits and database options from cfg (ingest_limits_from_config). */
void cli_config_limits(const struct config *cfg, struct ingest_limits *lim);
void cli_config_store_options(const struct config *cfg, struct store_options *sopt);
/* For commands that change an existing database (prune, forget): open cfg's
 * db for writing into *st: 0, EXIT_NOINPUT when no SQLite file is there
 * (none is created), EXIT_TEMPFAIL when it cannot be opened; errors printed. */
int cli_open_existing(const struct config *cfg, const char *cmd, struct store **st);
/* Own domains and tenant tokens (trust.h) from cfg's domains, domains_file
 * and tokens_file: 0, or EXIT_CONFIG after printing what is wrong. */
int cli_config_trust(const struct config *cfg, const char *cmd);
/* SIGHUP: the same again (domains_file and tokens_file re-read); on an error
 * the old settings stay and the error is logged. */
void cli_reload_trust(const struct config *cfg);
/* The spool directory of `serve` (spool_dir, or derived from db: DB.spool
 * beside a SQLite file, ./tlsrptd.spool for PostgreSQL); false when it is
 * "off". */
bool cli_spool_dir(const struct config *cfg, char *out, size_t n);
/* For commands that only read: 0 when the database exists (or is not a
 * file), else print "no database at PATH (set db = ... or --db)" and return
 * EXIT_NOINPUT. */
int cli_need_db(const char *cmd, const char *db);
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
