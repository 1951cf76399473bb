/* cli_serve.c: `tlsrptd serve`, the daemon: configuration, listening
 * sockets, privilege drop, the writer thread, the HTTP endpoint, signals.
 *
 * Startup order: read config and flags -> open the log -> bind every
 * listener and read the TLS files (may need root) -> drop privileges ->
 * open the database (created as the unprivileged user) -> start the writer
 * -> start HTTP. Signals are blocked in every thread and taken by the main
 * thread with sigtimedwait: SIGTERM/SIGINT stop accepting, let in-flight
 * requests finish (their reports are committed before they are answered),
 * and exit 0; SIGHUP reopens the log file, re-reads the own domains and
 * tokens, and reloads the certificate. */
#define _DEFAULT_SOURCE /* initgroups */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/alert.h"
#include "tlsrptd/config.h"
#include "tlsrptd/http.h"
#include "tlsrptd/imap.h"
#include "tlsrptd/log.h"
#include "tlsrptd/maildir.h"
#include "tlsrptd/ratelimit.h"
#include "tlsrptd/tls.h"
#include "tlsrptd/retention.h"
#include "tlsrptd/writer.h"

static void serve_help(void)
{
    printf("Usage: tlsrptd serve [-c FILE] [OPTIONS]\n"
           "\n"
           "Run the https rua endpoint: senders POST reports to PATH (and PATH/anything);\n"
           "each is committed to the database before it is answered: 201 stored, 200\n"
           "duplicate, 202 kept in the spool while the database is down (stored when it\n"
           "is back), 400 not a report, 405, 411, 413, 415, 429, 503 (retry later).\n"
           "GET /healthz answers 200 while the database takes writes, else 503 and why.\n"
           "\n"
           "Every config file key is also a flag (listen_tls = ... is --listen-tls ...);\n"
           "flags override the file. Without any listener: HTTP on 127.0.0.1:8080.\n"
           "\n"
           "  -c, --config FILE           config file (see samples/tlsrptd.conf)\n");
    config_print_help(stdout);
    printf("\nSignals: SIGTERM/SIGINT finish in-flight requests and exit 0; SIGHUP reopens\n"
           "the log file, re-reads domains_file and tokens_file, and reloads tls_cert and\n"
           "tls_key (a bad one is refused and the old one kept).\n");
}

/* Resolve tls_cert and tls_key (paths or credential:NAME) and read and check
 * the pair (tls.h). */
static tr_err load_tls(const struct config *cfg, struct tls_material *m, char *err)
{
    char cert[4096], key[4096];
    tr_err e = config_resolve_file("tls_cert", cfg->tls_cert, cert, sizeof cert, err);
    if (e == TR_OK)
        e = config_resolve_file("tls_key", cfg->tls_key, key, sizeof key, err);
    if (e == TR_OK)
        e = tls_load(cert, key, m, err);
    if (e == TR_OK && m->not_after < (int64_t)time(NULL))
        tr_warn("tls_cert %s has expired: senders will refuse it; renew it and reload", cert);
    return e;
}

/* The log file (fd 2) is the service user's, so it can reopen it on SIGHUP. */
static void give_log_file(const struct config *cfg, const struct passwd *pw)
{
    struct stat sb;
    if (strcmp(cfg->log_target, "stderr") == 0 || strcmp(cfg->log_target, "syslog") == 0 ||
        fstat(STDERR_FILENO, &sb) != 0 || !S_ISREG(sb.st_mode))
        return;
    if (fchown(STDERR_FILENO, pw->pw_uid, pw->pw_gid) != 0)
        tr_warn("cannot give the log file %s to user %s: %s; reopening it on SIGHUP may fail",
                cfg->log_target, pw->pw_name, strerror(errno));
}

/* TR_ECONFIG for an unknown user, TR_EIO when the change fails; err says why. */
static tr_err drop_privileges(const struct config *cfg, char *err)
{
    const char *user = cfg->user;
    if (user == NULL || user[0] == 0)
        return TR_OK;
    if (geteuid() != 0) {
        tr_warn("user = %s ignored: not started as root", user);
        return TR_OK;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL)
        return tr_fail(err, TR_ECONFIG,
                       "user = %s: no such user: create it (adduser --system %s) or change user =",
                       user, user);
    give_log_file(cfg, pw);
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0)
        return tr_fail(err, TR_EIO, "cannot become user %s: %s", user, strerror(errno));
    if (setuid(0) == 0)
        return tr_fail(err, TR_EIO, "dropping privileges to %s did not stick", user);
    tr_info("running as user %s (uid %ld)", user, (long)pw->pw_uid);
    return TR_OK;
}

/* Does every listener bind a loopback address (127.0.0.0/8, ::1, localhost)? */
static bool loopback_only(const struct config *cfg)
{
    const struct config_list *lists[] = {&cfg->listen, &cfg->listen_tls};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < lists[l]->n; i++) {
            const char *a = lists[l]->items[i];
            if (strncmp(a, "127.", 4) != 0 && strncmp(a, "[::1]:", 6) != 0 &&
                strncmp(a, "localhost:", 10) != 0)
                return false;
        }
    }
    return true;
}

int cmd_serve(int argc, char **argv)
{
    struct config cfg;
    config_init(&cfg);
    int rc = cli_config_args("serve", argc, argv, &cfg, serve_help, NULL, NULL);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    /* a startup error is logged, and also said on the original stderr when the
     * log goes elsewhere (a file, syslog), so whoever started it sees it once */
    int orig_stderr = strcmp(cfg.log_target, "stderr") != 0 ? dup(STDERR_FILENO) : -1;
    cli_setup_log(&cfg, "serve");

    char err[TR_ERRLEN];
    tr_err e = TR_EIO; /* what failed: TR_ECONFIG exits 78, the rest 75 */
    struct http_listener listeners[2 * CONFIG_MAX_LIST];
    size_t nl = 0;
    struct tls_material tls = {0};
    struct store *st = NULL;
    struct writer *w = NULL;
    struct maildir_watch *mw = NULL;
    struct imap_watch *iw = NULL;
    struct ratelimit *rl = NULL;
    struct http_server *hs = NULL;
    struct pruner *pruner = NULL;
    struct alert_config ac;
    struct alerter *alerts = NULL;
    int exit_code = EXIT_TEMPFAIL;
    if (alert_config_init(&ac, &cfg, err) != TR_OK) {
        fprintf(stderr, "tlsrptd serve: %s\n", err);
        config_free(&cfg);
        return EXIT_USAGE;
    }

    /* signals: blocked everywhere (threads inherit the mask), taken below */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (size_t k = 0; k < cfg.listen.n + cfg.listen_tls.n; k++, nl++) {
        bool tls_l = k >= cfg.listen.n;
        const char *addr = tls_l ? cfg.listen_tls.items[k - cfg.listen.n] : cfg.listen.items[k];
        char detail[TR_ERRLEN];
        if ((e = http_bind(addr, tls_l, &listeners[nl], detail)) != TR_OK) {
            tr_fail(err, e, "%s = %s: %s", tls_l ? "listen_tls" : "listen", addr, detail);
            goto fail;
        }
    }
    if (cfg.listen_tls.n && ((e = tls_check_priorities(cfg.tls_priorities, err)) != TR_OK ||
                             (e = load_tls(&cfg, &tls, err)) != TR_OK))
        goto fail;
    if ((e = drop_privileges(&cfg, err)) != TR_OK)
        goto fail;
    /* a Maildir that is not there will not appear by retrying */
    for (size_t i = 0; i < cfg.maildir.n; i++) {
        char detail[TR_ERRLEN];
        if (maildir_prepare_dir(cfg.maildir.items[i], cfg.maildir_quarantine, detail) != TR_OK) {
            e = tr_fail(err, TR_ECONFIG,
                        "maildir = %s: %s: create it (mkdir -p DIR/new DIR/cur DIR/tmp, owned "
                        "by the service user) or change maildir =",
                        cfg.maildir.items[i], detail);
            goto fail;
        }
    }
    struct retention keep;
    if ((e = retention_from_config(&cfg, &keep, err)) != TR_OK) {
        e = TR_ECONFIG;
        goto fail;
    }
    if (cli_config_trust(&cfg, "serve") != 0) { /* read as the service user, as SIGHUP will */
        exit_code = EXIT_CONFIG;
        goto done;
    }
    if (cfg.domains == NULL && cfg.domains_file == NULL && !loopback_only(&cfg))
        tr_warn("no domains set: reports for any domain are taken from anyone who can reach "
                "this endpoint; set domains (or domains_file) to the domains this collector "
                "serves");
    e = TR_EIO;

    struct store_options sopt;
    cli_config_store_options(&cfg, &sopt);
    sopt.defer_sync = true; /* the writer answers after syncing (syncer.h) */
    tr_err orc = store_open(cfg.db, &sopt, &st, err);
    if (orc != TR_OK) {
        if (orc == TR_EUSAGE || orc == TR_ECONFIG) /* e.g. a file the service may not write */
            e = TR_ECONFIG;
        goto fail;
    }
    /* a database the service cannot write is a configuration problem: say
     * who owns it now, rather than answer 503 to every sender */
    tr_err wrc = store_check_writable(st, err);
    if (wrc == TR_ECONFIG) {
        e = TR_ECONFIG;
        goto fail;
    }
    if (wrc != TR_OK)
        tr_warn("%s", err);
    struct ingest_limits lim;
    cli_config_limits(&cfg, &lim);
    if ((w = writer_start(st, &lim, cfg.commit_max, err)) == NULL)
        goto fail;
    /* alerts: a thread and connection of their own, woken after each commit */
    if ((alerts = alerter_start(&cfg, &ac, err)) == NULL)
        goto fail;
    writer_on_commit(w, alerter_wake, alerts);
    char spool[4096];
    if (cli_spool_dir(&cfg, spool, sizeof spool) &&
        writer_set_spool(w, spool, cfg.spool_max, err) != TR_OK) {
        e = TR_ECONFIG;
        goto fail;
    }
    if (cfg.maildir.n) {
        struct maildir_options mopt = {cfg.maildir_quarantine, (unsigned)cfg.maildir_rescan, 0,
                                       lim};
        if ((mw = maildir_watch_start(cfg.maildir.items, cfg.maildir.n, w, &mopt, err)) == NULL)
            goto fail;
    }
    if (cfg.imap.n) {
        struct imap_options iopt;
        cli_config_imap_options(&cfg, &lim, &iopt);
        for (size_t i = 0; i < cfg.imap.n; i++)
            if (imap_check(cfg.imap.items[i], &iopt, err) != TR_OK)
                goto fail;
        if ((iw = imap_watch_start(cfg.imap.items, cfg.imap.n, w, &iopt, err)) == NULL)
            goto fail;
    }
    if (retention_any(&keep) && (pruner = pruner_start(cfg.db, &sopt, &keep, err)) == NULL)
        goto fail;
    rl = ratelimit_new(cfg.rate_limit);
    hs = http_start(&cfg, w, rl, listeners, nl, (const char *)tls.cert.data,
                    (const char *)tls.key.data, err);
    nl = 0; /* the server owns the sockets now */
    if (hs == NULL)
        goto fail;
    tr_info("tlsrptd %s serving; database %s", TLSRPTD_VERSION, store_name(st));

    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGHUP) {
            if (cli_setup_log(&cfg, "serve"))
                tr_info("SIGHUP: log reopened");
            cli_reload_trust(&cfg);
            if (cfg.listen_tls.n) {
                /* check the new pair before any listener is touched; on any
                 * failure the old certificate goes on serving */
                struct tls_material ntls;
                if (load_tls(&cfg, &ntls, err) != TR_OK) {
                    tr_err_log("SIGHUP: keeping the old certificate and key: %s", err);
                } else if (http_reload_tls(hs, (const char *)ntls.cert.data,
                                           (const char *)ntls.key.data, err) != TR_OK) {
                    tr_err_log("SIGHUP: keeping the old certificate and key: %s", err);
                    tls_material_free(&ntls);
                } else {
                    /* the new daemons hold pointers into ntls: keep it */
                    tls_material_free(&tls);
                    tls = ntls;
                    tr_info("SIGHUP: certificate and key reloaded");
                }
            }
        } else if (sig == SIGTERM || sig == SIGINT) {
            tr_info("%s: finishing in-flight requests", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        http_tick(hs);
    }

    /* graceful stop: no new connections or requests; wait for those in flight */
    http_quiesce(hs);
    time_t deadline = time(NULL) + (time_t)cfg.shutdown_timeout;
    while (http_in_flight(hs) > 0 && time(NULL) < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (http_in_flight(hs) > 0)
        tr_warn("%zu requests still open after %zu s; closing them", http_in_flight(hs),
                cfg.shutdown_timeout);
    maildir_watch_stop(mw, NULL); /* its round in progress is committed and moved */
    mw = NULL;
    imap_watch_stop(iw, NULL); /* likewise */
    iw = NULL;
    http_stop_preparing(hs); /* what it prepared is queued for the writer */
    writer_stop(w);          /* stores and answers whatever is still queued */
    w = NULL;
    alerter_stop(alerts); /* what it has not sent waits in the database */
    alerts = NULL;
    deadline = time(NULL) + 2; /* let the last answers go out */
    while (http_in_flight(hs) > 0 && time(NULL) < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    http_stop(hs);
    hs = NULL;
    pruner_stop(pruner);
    pruner = NULL;
    exit_code = 0;
    tr_info("stopped");
    goto done;
fail:
    tr_err_log("%s", err);
    if (orig_stderr >= 0)
        dprintf(orig_stderr, "tlsrptd serve: %s\n", err);
    exit_code = e == TR_ECONFIG ? EXIT_CONFIG : EXIT_TEMPFAIL;
done:
    for (size_t i = 0; i < nl; i++)
        close(listeners[i].fd);
    if (orig_stderr >= 0)
        close(orig_stderr);
    pruner_stop(pruner);
    http_stop_preparing(hs);
    http_stop(hs);
    maildir_watch_stop(mw, NULL);
    imap_watch_stop(iw, NULL);
    writer_stop(w);
    alerter_stop(alerts);
    alert_config_free(&ac);
    ratelimit_free(rl);
    store_close(st);
    tls_material_free(&tls);
    config_free(&cfg);
    return exit_code;
}
