/* cli_config.c: the configuration every command reads, and the log set-up
 * its keys describe. `-c FILE` (else $TLSRPTD_CONFIG, else
 * /etc/tlsrptd/tlsrptd.conf when it exists) first, then every `--key value`
 * flag on top of it (dashes for underscores; the first flag of a repeatable
 * key replaces the file's list), then the command's own flags and
 * arguments. A bad file exits 78 (EX_CONFIG), a bad flag 64 (EX_USAGE). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/log.h"
#include "tlsrptd/trust.h"
#include "tlsrptd/writer.h"

/* Point fd 2 at the log file. The new file is opened before the old one is
 * let go, so a failure (a rotated file whose directory the service user may
 * not write, say) leaves the old one in place, and says so in it: fd 2 is
 * never closed, so it never becomes the next client's socket. */
static bool open_log_file(const char *path, const char *cmd, bool again)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        if (again)
            tr_err_log("cannot reopen the log file %s: %s; still writing to the file it was", path,
                       strerror(errno));
        else
            fprintf(stderr, "tlsrptd %s: cannot open the log file %s: %s\n", cmd, path,
                    strerror(errno));
        return false;
    }
    fflush(stderr);
    if (fd != STDERR_FILENO) {
        bool ok = dup2(fd, STDERR_FILENO) >= 0;
        if (!ok)
            tr_err_log("cannot write to the log file %s: %s", path, strerror(errno));
        close(fd);
        return ok;
    }
    return true;
}

bool cli_setup_log(const struct config *cfg, const char *cmd)
{
    static bool opened; /* the file was opened once: this is a reopen (SIGHUP) */
    int level = cfg->verbose ? LOG_DEBUG : LOG_INFO;
    bool json = strcmp(cfg->log_format, "json") == 0;
    if (strcmp(cfg->log_target, "syslog") == 0) {
        tr_log_setup(TR_LOG_SYSLOG, level, "tlsrptd");
        return true;
    }
    bool ok = true;
    if (strcmp(cfg->log_target, "stderr") != 0) {
        /* a file: stderr is pointed at it, and re-pointed on SIGHUP (logrotate) */
        ok = open_log_file(cfg->log_target, cmd, opened);
        opened = true;
    }
    tr_log_setup(json ? TR_LOG_JSON : TR_LOG_STDERR, level, "tlsrptd");
    return ok;
}

int cli_config_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "tlsrptd %s: %s\n", cmd, msg);
    return EXIT_CONFIG;
}

static bool is_config_flag(const char *a)
{
    return strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0;
}

/* Old spellings of keys, named in the error so nobody has to guess. */
static const char *renamed(const char *flag)
{
    static const char *const pairs[][2] = {
        {"batch", "--commit-max"},
        {"max-depth", "--max-json-depth"},
        {"max-input", "--max-message"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        if (strcmp(flag, pairs[i][0]) == 0)
            return pairs[i][1];
    return NULL;
}

/* The config file: -c FILE, else $TLSRPTD_CONFIG ("" for none), else the
 * default file when it exists. */
static int load_config(const char *cmd, int argc, char **argv, struct config *cfg)
{
    char err[TR_ERRLEN];
    const char *file = NULL;
    bool given = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (is_config_flag(argv[i])) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "%s needs a file", argv[i]);
            file = argv[++i];
            given = true;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
            given = true;
        }
    }
    if (!given) {
        const char *env = getenv("TLSRPTD_CONFIG");
        struct stat sb;
        if (env != NULL)
            file = env[0] ? env : NULL;
        else if (stat(TLSRPTD_CONFIG_FILE, &sb) == 0)
            file = TLSRPTD_CONFIG_FILE;
    }
    if (file && config_load_file(cfg, file, err) != TR_OK)
        return cli_config_error(cmd, err);
    return 0;
}

int cli_args(const char *cmd, int argc, char **argv, struct config *cfg, void (*help)(void),
             const struct cli_flag *flags, cli_arg_fn take, void *ctx)
{
    int rc = load_config(cmd, argc, argv, cfg);
    if (rc != 0)
        return rc;
    char err[TR_ERRLEN];
    unsigned cleared = 0; /* list options a flag has already reset, by index */
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
            if (take == NULL)
                return cli_usage_error(cmd, "unexpected argument '%s'", a);
            if ((rc = take(ctx, -1, a)) != 0)
                return rc;
            continue;
        }
        if (is_config_flag(a)) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help();
            return -1;
        }
        /* -x or --name[=value] */
        char name[64];
        const char *value = NULL;
        const char *start = a[1] == '-' ? a + 2 : a + 1;
        const char *eq = a[1] == '-' ? strchr(start, '=') : NULL;
        size_t nl = eq ? (size_t)(eq - start) : strlen(start);
        if (nl == 0 || nl >= sizeof name)
            return cli_usage_error(cmd, "unknown option '%s'", a);
        memcpy(name, start, nl);
        name[nl] = 0;
        int fi = -1;
        for (int k = 0; flags && flags[k].name; k++) {
            bool is_short = flags[k].name[1] == 0;
            if (is_short == (a[1] != '-') && strcmp(flags[k].name, name) == 0) {
                fi = k;
                break;
            }
        }
        bool takes_value;
        if (fi >= 0) {
            takes_value = flags[fi].value;
        } else if (a[1] != '-' || !config_is_option(name, &takes_value)) {
            const char *now = a[1] == '-' ? renamed(name) : NULL;
            if (now)
                return cli_usage_error(cmd, "%s is now called %s", a, now);
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
        if (eq && !takes_value)
            return cli_usage_error(cmd, "--%s takes no value", name);
        if (eq)
            value = eq + 1;
        else if (!takes_value)
            value = fi >= 0 ? NULL : "yes";
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return cli_usage_error(cmd, "%s needs a value", a);
        if (fi >= 0) {
            if ((rc = take(ctx, fi, value)) != 0)
                return rc;
            continue;
        }
        int li = config_list_index(name);
        if (li >= 0 && !(cleared & (1u << li))) {
            config_clear_list(cfg, name); /* the first --listen replaces the file's */
            cleared |= 1u << li;
        }
        if (config_set(cfg, name, value, err) != TR_OK)
            return cli_usage_error(cmd, "--%s", err);
    }
    if (config_finish(cfg, err) != TR_OK)
        return cli_config_error(cmd, err);
    return 0;
}

/* cli_config_args' extra callback, behind cli_args: it sees every argument
 * (flags included) before they are parsed. */
struct extra_shim {
    int (*extra)(void *ctx, const char *arg);
    void *ctx;
};

int cli_config_args(const char *cmd, int argc, char **argv, struct config *cfg, void (*help)(void),
                    int (*extra)(void *ctx, const char *arg), void *ctx)
{
    if (extra == NULL)
        return cli_args(cmd, argc, argv, cfg, help, NULL, NULL, NULL);
    /* hand extra each argument first; what it leaves goes to cli_args */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (rest == NULL)
        return cli_config_error(cmd, "out of memory");
    int n = 0;
    rest[n++] = argv[0];
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (is_config_flag(argv[i]) && i + 1 < argc) {
            rest[n++] = argv[i++];
            rest[n++] = argv[i];
            continue;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            rest[n++] = argv[i];
            continue;
        }
        int r = extra(ctx, argv[i]);
        if (r < 0) {
            rc = EXIT_USAGE;
        } else if (r == 0) {
            rest[n++] = argv[i];
            /* a config flag's value is the flag's, not extra's */
            bool takes_value = false;
            if (strncmp(argv[i], "--", 2) == 0 && strchr(argv[i], '=') == NULL &&
                config_is_option(argv[i] + 2, &takes_value) && takes_value && i + 1 < argc)
                rest[n++] = argv[++i];
        }
    }
    if (rc == 0)
        rc = cli_args(cmd, n, rest, cfg, help, NULL, NULL, NULL);
    free(rest);
    return rc;
}

void cli_config_limits(const struct config *cfg, struct ingest_limits *lim)
{
    ingest_limits_from_config(cfg, false, lim);
}

void cli_config_store_options(const struct config *cfg, struct store_options *sopt)
{
    *sopt = (struct store_options)STORE_DEFAULT_OPTIONS;
    sopt->busy_timeout_ms = (int)cfg->busy_timeout;
    sopt->quarantine_max_bytes = cfg->quarantine_bytes;
    sopt->quarantine_max_rows = cfg->quarantine_rows;
    sopt->password_file = cfg->db_password_file;
}

bool cli_spool_dir(const struct config *cfg, char *out, size_t n)
{
    if (cfg->spool_dir && strcmp(cfg->spool_dir, "off") == 0)
        return false;
    if (cfg->spool_dir && cfg->spool_dir[0])
        snprintf(out, n, "%s", cfg->spool_dir);
    else if (store_is_postgresql(cfg->db))
        snprintf(out, n, "tlsrptd.spool");
    else
        snprintf(out, n, "%s.spool", store_sqlite_path(cfg->db));
    return true;
}

int cli_need_db(const char *cmd, const char *db)
{
    if (store_is_postgresql(db))
        return 0; /* a server: its answer to the connection tells */
    const char *file = store_sqlite_path(db);
    struct stat sb;
    if (stat(file, &sb) == 0)
        return 0;
    if (errno == ENOENT)
        fprintf(stderr, "tlsrptd %s: no database at %s (set db = ... in the config file or --db)\n",
                cmd, file);
    else
        fprintf(stderr, "tlsrptd %s: database %s: %s\n", cmd, file, strerror(errno));
    return EXIT_NOINPUT;
}

int cli_watch_extra(void *ctx, const char *arg)
{
    struct cli_watch_args *a = ctx;
    if (strcmp(arg, "--watch") == 0) {
        a->watch = true;
        return 1;
    }
    if (arg[0] == '-' && arg[1] != 0)
        return 0; /* a config flag */
    if (!a->given) {
        config_clear_list(a->cfg, a->list);
        a->given = true;
    }
    char err[TR_ERRLEN];
    if (config_set(a->cfg, a->list, arg, err) != TR_OK) {
        cli_usage_error(a->cmd, "%s", err);
        return -1;
    }
    return 1;
}

void cli_block_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

void cli_wait_for_stop(const struct config *cfg, const char *cmd, const sigset_t *sigs,
                       const char *stopping)
{
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig == SIGHUP) {
            cli_setup_log(cfg, cmd);
            tr_info("SIGHUP: log reopened");
            cli_reload_trust(cfg);
        } else if (sig == SIGTERM || sig == SIGINT) {
            tr_info("%s: %s", sig == SIGTERM ? "SIGTERM" : "SIGINT", stopping);
            return;
        }
    }
}

bool cli_start_writer(const struct config *cfg, const struct ingest_limits *lim, const char *cmd,
                      struct store **st, struct writer **w)
{
    char err[TR_ERRLEN];
    struct store_options sopt;
    cli_config_store_options(cfg, &sopt);
    sopt.defer_sync = true; /* the writer answers after syncing (syncer.h) */
    *st = NULL;
    *w = NULL;
    if (store_open(cfg->db, &sopt, st, err) == TR_OK &&
        (*w = writer_start(*st, lim, cfg->commit_max, err)) != NULL)
        return true;
    fprintf(stderr, "tlsrptd %s: %s\n", cmd, err);
    store_close(*st);
    *st = NULL;
    return false;
}

int cli_config_trust(const struct config *cfg, const char *cmd)
{
    struct trust_settings ts = {cfg->domains, cfg->domains_file, cfg->tokens_file};
    char err[TR_ERRLEN];
    if (trust_configure(&ts, err) != TR_OK) {
        fprintf(stderr, "tlsrptd %s: %s\n", cmd, err);
        return EXIT_CONFIG;
    }
    return 0;
}

void cli_reload_trust(const struct config *cfg)
{
    struct trust_settings ts = {cfg->domains, cfg->domains_file, cfg->tokens_file};
    char err[TR_ERRLEN], what[128];
    if (trust_configure(&ts, err) != TR_OK) {
        tr_err_log("SIGHUP: keeping the own domains and tokens as they were: %s", err);
        return;
    }
    struct trust *t = trust_get();
    trust_describe(t, what, sizeof what);
    trust_put(t);
    tr_info("SIGHUP: own domains and tokens reloaded: %s", what);
}

int cli_open_existing(const struct config *cfg, const char *cmd, struct store **st)
{
    *st = NULL;
    int rc = cli_need_db(cmd, cfg->db);
    if (rc != 0)
        return rc;
    struct store_options sopt;
    cli_config_store_options(cfg, &sopt);
    char err[TR_ERRLEN];
    if (store_open(cfg->db, &sopt, st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd %s: %s\n", cmd, err);
        return EXIT_TEMPFAIL;
    }
    return 0;
}
