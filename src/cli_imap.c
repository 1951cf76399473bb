/* cli_imap.c: `tlsrptd imap [--watch] URL...`: store the reports mailed into
 * IMAP mailboxes, in one pass (or polling), with the same writer, group
 * commit and moves after the commit as `serve --imap`. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "tlsrptd/imap.h"
#include "tlsrptd/log.h"
#include "tlsrptd/writer.h"

static void imap_help(void)
{
    printf("Usage: tlsrptd imap [-c FILE] [--watch] [OPTIONS] URL...\n"
           "\n"
           "Store the reports mailed into IMAP mailboxes. URL is imaps://USER@HOST[:PORT]/FOLDER\n"
           "(FOLDER defaults to INBOX), or imap://... with STARTTLS (required unless\n"
           "imap_insecure = yes). Each unseen message is fetched whole (without marking it\n"
           "seen); once its report is committed it is moved to imap_done_folder (default\n"
           "TLSRPT/Processed) and marked seen there. A message without an acceptable report\n"
           "is moved to imap_quarantine_folder (default TLSRPT/Quarantine). When the\n"
           "database is unavailable, messages stay unseen and are retried. Nothing is\n"
           "deleted. Credentials: imap_password_file, or imap_oauth2_token_file (an OAuth2\n"
           "access token, read again at every poll). Certificates are verified\n"
           "(imap_ca_file adds a CA).\n"
           "\n"
           "Without --watch: one pass, a summary on stdout, then exit 0; 75 (server\n"
           "unreachable, or messages left unseen: retry later); 77 (login refused); 78 (the\n"
           "certificate is not trusted, STARTTLS missing, no such folder).\n"
           "With --watch: poll every imap_poll seconds (backoff after failures) until\n"
           "SIGTERM or SIGINT.\n"
           "\n"
           "URL arguments replace the imap entries of the config file. Options are the\n"
           "keys of tlsrptd.conf as flags (db, imap_poll, imap_done_folder,\n"
           "imap_quarantine_folder, imap_password_file, imap_oauth2_token_file,\n"
           "imap_ca_file, imap_insecure, max_message, log_format, ...; see tlsrptd serve\n"
           "--help):\n"
           "\n"
           "  -c, --config FILE   config file\n"
           "  --watch             keep polling\n");
}

static void print_stats(const struct imap_stats *s)
{
    cli_print_mail_tally("imap", s->messages, s->stored, s->duplicates, s->quarantined, s->deferred,
                         "unseen");
}

void cli_config_imap_options(const struct config *cfg, const struct ingest_limits *lim,
                             struct imap_options *o)
{
    memset(o, 0, sizeof *o);
    o->done_folder = cfg->imap_done_folder;
    o->quarantine_folder = cfg->imap_quarantine_folder;
    o->password_file = cfg->imap_password_file;
    o->oauth2_token_file = cfg->imap_oauth2_token_file;
    o->ca_file = cfg->imap_ca_file;
    o->insecure = cfg->imap_insecure;
    o->poll_seconds = (unsigned)cfg->imap_poll;
    o->lim = *lim;
}

int cmd_imap(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    struct cli_watch_args args = {&cfg, "imap", "imap", false, false};
    int rc = cli_config_args("imap", argc, argv, &cfg, imap_help, cli_watch_extra, &args);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    if (cfg.imap.n == 0) {
        config_free(&cfg);
        return cli_usage_error("imap", "no mailbox given (URL arguments or imap = ...)");
    }
    if ((rc = cli_config_trust(&cfg, "imap")) != 0) { /* domains, domains_file */
        config_free(&cfg);
        return rc;
    }
    struct ingest_limits lim;
    cli_config_limits(&cfg, &lim);
    struct imap_options iopt;
    cli_config_imap_options(&cfg, &lim, &iopt);
    char err[TR_ERRLEN];
    for (size_t i = 0; i < cfg.imap.n; i++) {
        if (imap_check(cfg.imap.items[i], &iopt, err) != TR_OK) {
            config_free(&cfg);
            return cli_usage_error("imap", "%s", err);
        }
    }
    cli_setup_log(&cfg, "imap");

    sigset_t sigs;
    if (args.watch)
        cli_block_signals(&sigs);
    signal(SIGPIPE, SIG_IGN);

    struct store *st = NULL;
    struct writer *w = NULL;
    struct imap_stats stats = {0};
    int exit_code = EXIT_TEMPFAIL;
    if (!cli_start_writer(&cfg, &lim, "imap", &st, &w)) {
        config_free(&cfg);
        return EXIT_TEMPFAIL;
    }

    if (!args.watch) {
        enum imap_failure f = imap_run_once(cfg.imap.items, cfg.imap.n, w, &iopt, &stats, err);
        writer_stop(w);
        store_close(st);
        print_stats(&stats);
        switch (f) {
        case IMAP_OK:
            exit_code = stats.deferred ? EXIT_TEMPFAIL : 0;
            break;
        case IMAP_EUNAVAILABLE:
            exit_code = EXIT_TEMPFAIL;
            break;
        case IMAP_ELOGIN:
            exit_code = EXIT_NOPERM;
            break;
        case IMAP_ECONFIG:
            exit_code = EXIT_CONFIG;
            break;
        }
        if (f != IMAP_OK)
            fprintf(stderr, "tlsrptd imap: %s\n", err);
        config_free(&cfg);
        return exit_code;
    }

    struct imap_watch *iw = imap_watch_start(cfg.imap.items, cfg.imap.n, w, &iopt, err);
    if (iw == NULL) {
        fprintf(stderr, "tlsrptd imap: %s\n", err);
        exit_code = EXIT_USAGE;
    } else {
        cli_wait_for_stop(&cfg, "imap", &sigs, "finishing the messages in progress");
        imap_watch_stop(iw, &stats);
        print_stats(&stats);
        exit_code = 0;
    }
    writer_stop(w);
    store_close(st);
    config_free(&cfg);
    return exit_code;
}
