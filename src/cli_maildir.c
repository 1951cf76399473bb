/* cli_maildir.c: `tlsrptd maildir [--watch] DIR...`: process the mailed
 * reports in each Maildir's new/ once (or keep watching), with the same
 * writer, group commit and file moves as `serve --maildir`. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/log.h"
#include "tlsrptd/maildir.h"
#include "tlsrptd/writer.h"

static void maildir_help(void)
{
    printf("Usage: tlsrptd maildir [-c FILE] [--watch] [OPTIONS] DIR...\n"
           "\n"
           "Store the reports mailed into each Maildir DIR. Every message in DIR/new is\n"
           "read; once its report is committed it moves to DIR/cur/<name>:2,S (seen). A\n"
           "message without an acceptable report moves to the quarantine folder (default\n"
           "DIR/.Quarantine, a Maildir) and its reason is logged. When the database is\n"
           "unavailable, messages stay in new/ (retried with backoff under --watch).\n"
           "Nothing is deleted.\n"
           "\n"
           "Without --watch: one pass, a summary on stdout, then exit 0, 74 (a DIR is\n"
           "not a readable Maildir) or 75 (messages left in new/: retry later).\n"
           "With --watch: keep watching new/ (inotify, plus a rescan every\n"
           "maildir_rescan seconds) until SIGTERM or SIGINT.\n"
           "\n"
           "DIR arguments replace the maildir entries of the config file. Options are\n"
           "the keys of tlsrptd.conf as flags (db, maildir_quarantine, maildir_rescan,\n"
           "max_message, log_format, ...; see tlsrptd serve --help):\n"
           "\n"
           "  -c, --config FILE   config file\n"
           "  --watch             keep watching\n");
}

static void print_stats(const struct maildir_stats *s)
{
    cli_print_mail_tally("maildir", s->messages, s->stored, s->duplicates, s->quarantined,
                         s->deferred, "in new/");
}

int cmd_maildir(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct cli_watch_args args = {&cfg, "maildir", "maildir", false, false};
    int rc = cli_config_args("maildir", argc, argv, &cfg, maildir_help, cli_watch_extra, &args);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    if (cfg.maildir.n == 0) {
        config_free(&cfg);
        return cli_usage_error("maildir", "no Maildir given (DIR arguments or maildir = ...)");
    }
    cli_setup_log(&cfg, "maildir");
    if ((rc = cli_config_trust(&cfg, "maildir")) != 0) {
        config_free(&cfg);
        return rc;
    }

    sigset_t sigs;
    if (args.watch)
        cli_block_signals(&sigs);

    char err[TR_ERRLEN];
    struct store *st = NULL;
    struct writer *w = NULL;
    struct maildir_stats stats = {0};
    int exit_code = EXIT_TEMPFAIL;
    struct ingest_limits lim;
    cli_config_limits(&cfg, &lim);
    struct maildir_options mopt = {cfg.maildir_quarantine, (unsigned)cfg.maildir_rescan, 0, lim};
    for (size_t i = 0; i < cfg.maildir.n; i++) {
        if (maildir_prepare_dir(cfg.maildir.items[i], cfg.maildir_quarantine, err) != TR_OK) {
            fprintf(stderr, "tlsrptd maildir: %s\n", err);
            config_free(&cfg);
            return EXIT_IOERR;
        }
    }
    if (!cli_start_writer(&cfg, &lim, "maildir", &st, &w)) {
        config_free(&cfg);
        return EXIT_TEMPFAIL;
    }

    if (!args.watch) {
        tr_err e = maildir_run_once(cfg.maildir.items, cfg.maildir.n, w, &mopt, &stats, err);
        writer_stop(w);
        store_close(st);
        print_stats(&stats);
        if (e != TR_OK) {
            fprintf(stderr, "tlsrptd maildir: %s\n", err);
            exit_code = EXIT_IOERR;
        } else {
            exit_code = stats.deferred ? EXIT_TEMPFAIL : 0;
        }
        config_free(&cfg);
        return exit_code;
    }

    struct maildir_watch *mw = maildir_watch_start(cfg.maildir.items, cfg.maildir.n, w, &mopt, err);
    if (mw == NULL) {
        fprintf(stderr, "tlsrptd maildir: %s\n", err);
        exit_code = EXIT_IOERR;
    } else {
        cli_wait_for_stop(&cfg, "maildir", &sigs, "finishing the messages in progress");
        maildir_watch_stop(mw, &stats);
        print_stats(&stats);
        exit_code = 0;
    }
    writer_stop(w);
    store_close(st);
    config_free(&cfg);
    return exit_code;
}
