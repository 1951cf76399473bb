/* cli_serve.c: `tlsrptd serve`, the daemon: configuration, listening
 * sockets, privilege drop, the writer thread, the HTTP endpoint, signals.
 *
 * Startup order: read config and flags -> open the log -> bind every
 * listener and read the TLS files (may need root) -> drop privileges ->
 * open the database (created as the unprivileged user) -> start the writer
 * -> start HTTP. Signals are blocked in every thread and taken by the main
 * thread with sigtimedwait: SIGTERM/SIGINT stop accepting, let in-flight
 * requests finish (their reports are committed before they are answered),
 * and exit 0; SIGHUP reopens the log file and reloads the certificate. */
#define _DEFAULT_SOURCE /* initgroups */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/config.h"
#include "tlsrptd/http.h"
#include "tlsrptd/log.h"
#include "tlsrptd/maildir.h"
#include "tlsrptd/ratelimit.h"
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
           "the log file and reloads tls_cert and tls_key.\n");
}

/* Read the TLS material (NUL-terminated PEM text). */
static bool read_pem(const struct config *cfg, struct buf *cert, struct buf *key, char *err)
{
    buf_init(cert, 1 << 20);
    buf_init(key, 1 << 20);
    if (buf_read_file(cert, cfg->tls_cert, err) != TR_OK ||
        buf_read_file(key, cfg->tls_key, err) != TR_OK) {
        buf_free(cert);
        buf_free(key);
        return false;
    }
    return true;
}

static bool drop_privileges(const char *user, char *err)
{
    if (user == NULL || user[0] == 0)
        return true;
    if (geteuid() != 0) {
        tr_warn("user = %s ignored: not started as root", user);
        return true;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        tr_fail(err, TR_EUSAGE, "user '%s' does not exist", user);
        return false;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        tr_fail(err, TR_EIO, "cannot become user %s: %s", user, strerror(errno));
        return false;
    }
    if (setuid(0) == 0) {
        tr_fail(err, TR_EIO, "dropping privileges to %s did not stick", user);
        return false;
    }
    tr_info("running as user %s (uid %ld)", user, (long)pw->pw_uid);
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
    cli_setup_log(&cfg, "serve");

    char err[TR_ERRLEN];
    struct http_listener listeners[2 * CONFIG_MAX_LIST];
    size_t nl = 0;
    struct buf cert = {0}, key = {0};
    struct store *st = NULL;
    struct writer *w = NULL;
    struct maildir_watch *mw = NULL;
    struct ratelimit *rl = NULL;
    struct http_server *hs = NULL;
    int exit_code = EXIT_TEMPFAIL;

    /* signals: blocked everywhere (threads inherit the mask), taken below */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (size_t i = 0; i < cfg.listen.n; i++, nl++)
        if (http_bind(cfg.listen.items[i], false, &listeners[nl], err) != TR_OK)
            goto fail;
    for (size_t i = 0; i < cfg.listen_tls.n; i++, nl++)
        if (http_bind(cfg.listen_tls.items[i], true, &listeners[nl], err) != TR_OK)
            goto fail;
    if (cfg.listen_tls.n && !read_pem(&cfg, &cert, &key, err))
        goto fail;
    if (!drop_privileges(cfg.user, err))
        goto fail;

    struct store_options sopt;
    cli_config_store_options(&cfg, &sopt);
    tr_err orc = store_open(cfg.db, &sopt, &st, err);
    if (orc != TR_OK) {
        if (orc == TR_EUSAGE) /* e.g. a file the service may not write */
            exit_code = EXIT_CONFIG;
        goto fail;
    }
    /* a database the service cannot write is a configuration problem: say
     * who owns it now, rather than answer 503 to every sender */
    tr_err wrc = store_check_writable(st, err);
    if (wrc == TR_EUSAGE) {
        exit_code = EXIT_CONFIG;
        goto fail;
    }
    if (wrc != TR_OK)
        tr_warn("%s", err);
    struct ingest_limits lim;
    cli_config_limits(&cfg, &lim);
    if ((w = writer_start(st, &lim, cfg.commit_max, err)) == NULL)
        goto fail;
    char spool[4096];
    if (cli_spool_dir(&cfg, spool, sizeof spool) &&
        writer_set_spool(w, spool, cfg.spool_max, err) != TR_OK) {
        exit_code = EXIT_CONFIG;
        goto fail;
    }
    if (cfg.maildir.n) {
        struct maildir_options mopt = {cfg.maildir_quarantine, (unsigned)cfg.maildir_rescan, 0,
                                       lim};
        if ((mw = maildir_watch_start(cfg.maildir.items, cfg.maildir.n, w, &mopt, err)) == NULL)
            goto fail;
    }
    rl = ratelimit_new(cfg.rate_limit);
    hs = http_start(&cfg, w, rl, listeners, nl, (const char *)cert.data, (const char *)key.data,
                    err);
    if (hs == NULL)
        goto fail;
    tr_info("tlsrptd %s serving; database %s", TLSRPTD_VERSION, store_name(st));

    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGHUP) {
            cli_setup_log(&cfg, "serve");
            tr_info("SIGHUP: log reopened");
            if (cfg.listen_tls.n) {
                struct buf ncert, nkey;
                if (!read_pem(&cfg, &ncert, &nkey, err)) {
                    tr_err_log("SIGHUP: keeping the old certificate: %s", err);
                } else if (http_reload_tls(hs, (const char *)ncert.data, (const char *)nkey.data,
                                           err) != TR_OK) {
                    tr_err_log("SIGHUP: %s", err);
                    buf_free(&ncert);
                    buf_free(&nkey);
                } else {
                    /* the new daemons hold pointers into ncert/nkey: keep them */
                    buf_free(&cert);
                    buf_free(&key);
                    cert = ncert;
                    key = nkey;
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
    writer_stop(w); /* stores and answers whatever is still queued */
    w = NULL;
    deadline = time(NULL) + 2; /* let the last answers go out */
    while (http_in_flight(hs) > 0 && time(NULL) < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    http_stop(hs);
    hs = NULL;
    exit_code = 0;
    tr_info("stopped");
    goto done;
fail:
    tr_err_log("%s", err);
    fprintf(stderr, "tlsrptd serve: %s\n", err);
done:
    http_stop(hs);
    maildir_watch_stop(mw, NULL);
    writer_stop(w);
    ratelimit_free(rl);
    store_close(st);
    buf_free(&cert);
    buf_free(&key);
    config_free(&cfg);
    return exit_code;
}
