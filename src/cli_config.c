/* cli_config.c: what the commands that read tlsrptd.conf share (serve,
 * maildir): `-c FILE` first, then every `--key value` flag on top of it
 * (dashes for underscores; the first flag of a repeatable key replaces the
 * file's list), and the log set-up those keys describe. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "tlsrptd/log.h"

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
    lim->json.max_depth = cfg->max_json_depth;
    lim->json.max_string = cfg->max_json_string;
    lim->json.max_values = cfg->max_json_values;
    lim->json.max_policies = cfg->max_policies;
    lim->json.max_failure_details = cfg->max_failure_details;
    lim->json.max_policy_strings = cfg->max_policy_strings;
    lim->json.max_policy_domains = cfg->max_policy_domains;
}

void cli_config_store_options(const struct config *cfg, struct store_options *sopt)
{
    *sopt = (struct store_options)STORE_DEFAULT_OPTIONS;
    sopt->busy_timeout_ms = (int)cfg->busy_timeout;
    sopt->quarantine_max_bytes = cfg->quarantine_bytes;
    sopt->quarantine_max_rows = cfg->quarantine_rows;
}
