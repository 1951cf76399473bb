/* cli_config.c: what the commands that read tlsrptd.conf share (serve,
 * maildir): `-c FILE` first, then every `--key value` flag on top of it
 * (dashes for underscores; the first flag of a repeatable key replaces the
 * file's list), and the log set-up those keys describe. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/log.h"
#include "tlsrptd/trust.h"

void cli_setup_log(const struct config *cfg, const char *cmd)
{
    int level = cfg->verbose ? LOG_DEBUG : LOG_INFO;
    bool json = strcmp(cfg->log_format, "json") == 0;
    if (strcmp(cfg->log_target, "syslog") == 0) {
        tr_log_setup(TR_LOG_SYSLOG, level, "tlsrptd");
        return;
    }
    if (strcmp(cfg->log_target, "stderr") != 0) {
        /* a file: stderr is pointed at it, and re-pointed on SIGHUP (logrotate) */
        FILE *f = freopen(cfg->log_target, "a", stderr);
        if (f == NULL)
            fprintf(stdout, "tlsrptd %s: cannot open log file %s: %s\n", cmd, cfg->log_target,
                    strerror(errno));
    }
    tr_log_setup(json ? TR_LOG_JSON : TR_LOG_STDERR, level, "tlsrptd");
}

int cli_config_args(const char *cmd, int argc, char **argv, struct config *cfg, void (*help)(void),
                    int (*extra)(void *ctx, const char *arg), void *ctx)
{
    char err[TR_ERRLEN];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "%s needs a file", argv[i]);
            if (config_load_file(cfg, argv[++i], err) != TR_OK)
                return cli_usage_error(cmd, "%s", err);
        }
    }
    unsigned cleared = 0; /* list options a flag has already reset, by index */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help();
            return -1;
        }
        if (extra) {
            int r = extra(ctx, a);
            if (r > 0)
                continue;
            if (r < 0)
                return EXIT_USAGE;
        }
        if (strncmp(a, "--", 2) != 0)
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(a + 2, '=');
        size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (nl >= sizeof name)
            return cli_usage_error(cmd, "unknown option '%s'", a);
        memcpy(name, a + 2, nl);
        name[nl] = 0;
        bool takes_value;
        if (!config_is_option(name, &takes_value))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (eq)
            value = eq + 1;
        else if (!takes_value)
            value = "yes";
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return cli_usage_error(cmd, "%s needs a value", a);
        int li = config_list_index(name);
        if (li >= 0 && !(cleared & (1u << li))) {
            config_clear_list(cfg, name); /* the first --listen replaces the file's */
            cleared |= 1u << li;
        }
        if (config_set(cfg, name, value, err) != TR_OK)
            return cli_usage_error(cmd, "%s", err);
    }
    if (config_finish(cfg, err) != TR_OK)
        return cli_usage_error(cmd, "%s", err);
    return 0;
}

void cli_config_limits(const struct config *cfg, struct ingest_limits *lim)
{
    *lim = (struct ingest_limits)INGEST_DEFAULT_LIMITS;
    lim->max_input = cfg->max_message;
    lim->max_inflated = cfg->max_inflated;
    lim->max_depth = cfg->max_json_depth;
    lim->mime.max_message = cfg->max_message;
    lim->mime.max_parts = cfg->max_parts;
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
    if (!store_is_postgresql(cfg->db) && access(store_sqlite_path(cfg->db), F_OK) != 0) {
        fprintf(stderr, "tlsrptd %s: no database at %s (set db = ... or --db)\n", cmd,
                store_sqlite_path(cfg->db));
        return EXIT_NOINPUT;
    }
    struct store_options sopt;
    cli_config_store_options(cfg, &sopt);
    char err[TR_ERRLEN];
    if (store_open(cfg->db, &sopt, st, err) != TR_OK) {
        fprintf(stderr, "tlsrptd %s: %s\n", cmd, err);
        return EXIT_TEMPFAIL;
    }
    return 0;
}
