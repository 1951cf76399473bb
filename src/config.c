/* config.c: the one option table of tlsrptd (every command reads the same
 * tlsrptd.conf), the config file parser, flag handling, the size parser and
 * credential:NAME files. Every option is one row: file name, type, offset in
 * struct config, default, bounds, help. Flags are the file names with dashes. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/config.h"
#include "tlsrptd/dkim.h"
#include "tlsrptd/dns.h"

enum opt_type { OPT_STR, OPT_LIST, OPT_SIZE, OPT_UINT, OPT_BOOL };

struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    const char *def; /* NULL: unset */
    size_t min, max; /* OPT_SIZE, OPT_UINT */
    const char *help;
};

#define OFF(f) offsetof(struct config, f)

static const struct opt opts[] = {
    {"listen", OPT_LIST, OFF(listen), NULL, 0, 0,
     "ADDR:PORT for plain HTTP; repeatable (default 127.0.0.1:8080 when no listener is set)"},
    {"listen_tls", OPT_LIST, OFF(listen_tls), NULL, 0, 0, "ADDR:PORT for HTTPS; repeatable"},
    {"tls_cert", OPT_STR, OFF(tls_cert), NULL, 0, 0,
     "certificate chain (PEM) for listen_tls: a path, or credential:NAME (systemd credential)"},
    {"tls_key", OPT_STR, OFF(tls_key), NULL, 0, 0,
     "private key (PEM) for listen_tls: a path, or credential:NAME (systemd credential)"},
    {"tls_priorities", OPT_STR, OFF(tls_priorities),
     "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE", 0, 0,
     "GnuTLS priority string (TLS 1.2 and 1.3 only)"},
    {"db", OPT_STR, OFF(db), "./tlsrptd.db", 0, 0,
     "database: a SQLite file (a path or sqlite:PATH) or a postgresql:// URI"},
    {"db_password_file", OPT_STR, OFF(db_password_file), NULL, 0, 0,
     "PostgreSQL: a password file in the ~/.pgpass format (never put a password in db)"},
    {"spool_dir", OPT_STR, OFF(spool_dir), NULL, 0, 0,
     "serve: where HTTP reports wait while the database is down (default: DB.spool beside a "
     "SQLite file, ./tlsrptd.spool for PostgreSQL; 'off' answers 503 instead)"},
    {"spool_max", OPT_SIZE, OFF(spool_max), "1G", 1, SIZE_MAX / 2,
     "bytes the spool may hold; past it: 503"},
    {"metrics_domains", OPT_UINT, OFF(metrics_domains), "1000", 1, 1000000,
     "policy domains with /metrics series of their own (the busiest; the rest are \"(other)\")"},
    {"path", OPT_STR, OFF(path), "/tlsrpt", 0, 0,
     "POST path for reports (PATH/anything is accepted too)"},
    {"user", OPT_STR, OFF(user), NULL, 0, 0,
     "when started as root: drop to this user after binding"},
    {"log_format", OPT_STR, OFF(log_format), "text", 0, 0, "text or json"},
    {"log_target", OPT_STR, OFF(log_target), "stderr", 0, 0,
     "stderr, syslog, or a file (reopened on SIGHUP)"},
    {"verbose", OPT_BOOL, OFF(verbose), "no", 0, 0, "log debug messages"},
    {"max_body", OPT_SIZE, OFF(max_body), "10M", 1, (size_t)1 << 30, "largest request body"},
    {"max_inflated", OPT_SIZE, OFF(max_inflated), "32M", 1, (size_t)1 << 31,
     "largest report after gunzip"},
    {"max_json_depth", OPT_UINT, OFF(max_json_depth), "32", 4, 1000, "deepest JSON nesting"},
    {"max_parts", OPT_UINT, OFF(max_parts), "1000", 1, 100000, "most MIME parts in a message"},
    {"max_connections", OPT_UINT, OFF(max_connections), "512", 1, 100000,
     "open connections in total, per listener"},
    {"max_connections_per_ip", OPT_UINT, OFF(max_connections_per_ip), "64", 1, 100000,
     "open connections per client IP"},
    {"connection_timeout", OPT_UINT, OFF(connection_timeout), "30", 1, 3600,
     "seconds a connection may stay idle or send nothing"},
    {"rate_limit", OPT_UINT, OFF(rate_limit), "600", 0, 10000000,
     "requests per client IP per minute (0: unlimited)"},
    {"threads", OPT_UINT, OFF(threads), "4", 1, 64,
     "HTTP worker threads per listener, and as many answering the API and /metrics"},
    {"commit_max", OPT_UINT, OFF(commit_max), "1024", 1, 100000,
     "most reports committed together (serve, maildir, ingest)"},
    {"busy_timeout", OPT_UINT, OFF(busy_timeout), "5000", 0, 3600000,
     "ms to wait for a locked database before answering 503"},
    {"quarantine_bytes", OPT_SIZE, OFF(quarantine_bytes), "256M", 1, SIZE_MAX / 2,
     "raw bytes kept in quarantine"},
    {"quarantine_rows", OPT_UINT, OFF(quarantine_rows), "100000", 1, 100000000,
     "quarantine entries kept"},
    {"shutdown_timeout", OPT_UINT, OFF(shutdown_timeout), "10", 0, 3600,
     "seconds to finish in-flight requests on SIGTERM"},
    {"api_token", OPT_STR, OFF(api_token), NULL, 0, 0,
     "bearer token for /api/ and /metrics (without it: loopback clients only)"},
    {"maildir", OPT_LIST, OFF(maildir), NULL, 0, 0,
     "Maildir to watch for mailed reports (new/ -> cur/); repeatable"},
    {"maildir_quarantine", OPT_STR, OFF(maildir_quarantine), NULL, 0, 0,
     "Maildir folder for messages that hold no report (default <maildir>/.Quarantine)"},
    {"maildir_rescan", OPT_UINT, OFF(maildir_rescan), "60", 1, 86400,
     "seconds between full rescans of new/ (besides inotify)"},
    {"max_message", OPT_SIZE, OFF(max_message), "32M", 1, (size_t)1 << 30,
     "largest input read from a file, stdin or a Maildir (a mail or a report)"},
    {"public_url", OPT_STR, OFF(public_url), NULL, 0, 0,
     "https URL senders POST reports to (rua=https:...; tlsrptd record)"},
    {"report_mailbox", OPT_STR, OFF(report_mailbox), NULL, 0, 0,
     "address reports are mailed to (rua=mailto:...; tlsrptd record)"},
    {"dns", OPT_STR, OFF(dns), NULL, 0, 0,
     "DNS server (IPv4 HOST:PORT) that record --check and the console's check ask "
     "(default: the system resolver)"},
    {"imap", OPT_LIST, OFF(imap), NULL, 0, 0,
     "IMAP mailbox to poll for mailed reports (imaps://user@host/FOLDER); repeatable"},
    {"imap_poll", OPT_UINT, OFF(imap_poll), "300", 1, 86400, "seconds between polls of a mailbox"},
    {"imap_done_folder", OPT_STR, OFF(imap_done_folder), "TLSRPT/Processed", 0, 0,
     "IMAP folder that processed reports are moved to (created if missing)"},
    {"imap_quarantine_folder", OPT_STR, OFF(imap_quarantine_folder), "TLSRPT/Quarantine", 0, 0,
     "IMAP folder for messages that hold no acceptable report (created if missing)"},
    {"imap_password_file", OPT_STR, OFF(imap_password_file), NULL, 0, 0,
     "file whose first line is the IMAP password"},
    {"imap_oauth2_token_file", OPT_STR, OFF(imap_oauth2_token_file), NULL, 0, 0,
     "file whose first line is an OAuth2 access token (XOAUTH2/OAUTHBEARER; read at every poll)"},
    {"imap_ca_file", OPT_STR, OFF(imap_ca_file), NULL, 0, 0,
     "PEM file of CAs trusted for IMAP servers, besides the system's"},
    {"imap_insecure", OPT_BOOL, OFF(imap_insecure), "no", 0, 0,
     "allow imap:// without STARTTLS (plain text)"},
    {"domains", OPT_STR, OFF(domains), NULL, 0, 0,
     "the policy domains reports are taken for: example.com, *.example.org (unset: every "
     "domain)"},
    {"domains_file", OPT_STR, OFF(domains_file), NULL, 0, 0,
     "a file of own domains, one or more a line (re-read on SIGHUP)"},
    {"tokens_file", OPT_STR, OFF(tokens_file), NULL, 0, 0,
     "API tokens and the domains each may see: TOKEN DOMAIN... lines (re-read on SIGHUP)"},
    {"retention", OPT_STR, OFF(retention), NULL, 0, 0,
     "prune reports (details, raw bytes) whose start is older than this, e.g. 400d; daily "
     "totals stay (unset: keep)"},
    {"rollup_retention", OPT_STR, OFF(rollup_retention), NULL, 0, 0,
     "prune the daily totals older than this, e.g. 1825d (unset: keep)"},
    {"quarantine_retention", OPT_STR, OFF(quarantine_retention), NULL, 0, 0,
     "prune quarantine entries received longer ago than this, e.g. 90d (unset: keep)"},
    {"prune_interval", OPT_STR, OFF(prune_interval), "1d", 0, 0,
     "serve: apply the retention settings this often"},
    {"max_json_string", OPT_SIZE, OFF(max_json_string), "16K", 256, (size_t)1 << 30,
     "longest string (or number) in a report, as written"},
    {"max_json_values", OPT_UINT, OFF(max_json_values), "250000", 1000, 100000000,
     "most JSON values in one report"},
    {"max_policies", OPT_UINT, OFF(max_policies), "1000", 1, 10000000,
     "most policies in one report"},
    {"max_failure_details", OPT_UINT, OFF(max_failure_details), "10000", 1, 10000000,
     "most failure-details of one policy"},
    {"max_policy_strings", OPT_UINT, OFF(max_policy_strings), "1000", 1, 10000000,
     "most policy-string, and most mx-host, entries of one policy"},
    {"max_policy_domains", OPT_UINT, OFF(max_policy_domains), "100", 1, 10000000,
     "most distinct policy domains in one report"},
    {"parse_memory", OPT_SIZE, OFF(parse_memory), "128M", (size_t)1 << 20, SIZE_MAX / 2,
     "bytes of all uploads being decoded and validated at once (more wait, then 503)"},
    {"parse_wait", OPT_UINT, OFF(parse_wait), "5", 0, 600,
     "seconds an upload may wait for parse_memory before 503 (0: no waiting)"},
    {"prepare_threads", OPT_UINT, OFF(prepare_threads), "2", 1, 64,
     "threads that decode and validate large uploads (the HTTP threads prepare small ones)"},
    {"header_timeout", OPT_UINT, OFF(header_timeout), "10", 1, 3600,
     "seconds a client has to send a request head (at most connection_timeout)"},
    {"idle_timeout", OPT_UINT, OFF(idle_timeout), "15", 1, 3600,
     "seconds a keep-alive connection may wait for its next request"},
    {"max_connections_per_prefix", OPT_UINT, OFF(max_connections_per_prefix), "128", 1, 100000,
     "open connections per IPv4 /24 or IPv6 /64 (at least max_connections_per_ip)"},
    {"alert_webhook", OPT_LIST, OFF(alert_webhook), NULL, 0, 0,
     "URL [DOMAIN...]: POST alerts there as JSON (Slack, Mattermost); with DOMAINs (or "
     "*.DOMAIN) only theirs; repeatable"},
    {"alert_email", OPT_LIST, OFF(alert_email), NULL, 0, 0,
     "ADDRESS [DOMAIN...]: mail alerts there; with DOMAINs only theirs; repeatable"},
    {"alert_sendmail", OPT_STR, OFF(alert_sendmail), "/usr/sbin/sendmail -i -t", 0, 0,
     "command that sends alert mail (the message on its standard input; no shell)"},
    {"alert_smtp", OPT_STR, OFF(alert_smtp), NULL, 0, 0,
     "HOST:PORT of an SMTP relay for alert mail instead of alert_sendmail (smtps://HOST:PORT: "
     "TLS)"},
    {"alert_from", OPT_STR, OFF(alert_from), NULL, 0, 0,
     "sender address of alert mail (default tlsrptd@HOSTNAME)"},
    {"alert_rules", OPT_STR, OFF(alert_rules), "all", 0, 0,
     "rules that alert: all, none, or a comma list of new-failure, failure-rate, rate-jump, "
     "silent-reporter, quarantine-spike"},
    {"alert_cooldown", OPT_UINT, OFF(alert_cooldown), "86400", 60, 31536000,
     "seconds before a rule alerts again for the same domain and result type or reporter"},
    {"alert_interval", OPT_UINT, OFF(alert_interval), "300", 10, 86400,
     "serve: seconds between timed runs of the rules (they also run after each commit)"},
    {"alert_clean_days", OPT_UINT, OFF(alert_clean_days), "14", 1, 3650,
     "new-failure: days without a result type after which it is new again"},
    {"alert_failure_rate", OPT_STR, OFF(alert_failure_rate), "5%", 0, 0,
     "failure-rate: the failure rate of a domain in a report that alerts"},
    {"alert_min_sessions", OPT_UINT, OFF(alert_min_sessions), "10", 1, 1000000000,
     "failure-rate, rate-jump: fewest sessions a rate is judged on"},
    {"alert_jump", OPT_STR, OFF(alert_jump), "3", 0, 0,
     "rate-jump: times the 28-day baseline that a day's failure rate must reach"},
    {"alert_jump_floor", OPT_STR, OFF(alert_jump_floor), "1%", 0, 0,
     "rate-jump: the lowest daily failure rate that alerts"},
    {"alert_silence", OPT_UINT, OFF(alert_silence), "3", 1, 365,
     "silent-reporter: days without a report from a reporter that reported most days"},
    {"alert_quarantine", OPT_UINT, OFF(alert_quarantine), "100", 1, 100000000,
     "quarantine-spike: rejected inputs in an hour above which it alerts"},
    {"alert_digest", OPT_UINT, OFF(alert_digest), "3", 1, 100000,
     "more alerts than this due at once for one channel go as one digest"},
    {"dkim", OPT_STR, OFF(dkim), "record", 0, 0,
     "DKIM of mailed reports: off, record (store the verdict) or require (quarantine mail "
     "without a passing signature)"},
    {"dkim_timeout", OPT_UINT, OFF(dkim_timeout), "5", 1, 60,
     "seconds the DKIM key lookups of one mail may take; a lookup that fails is temporary"},
};

#define NOPTS (sizeof opts / sizeof *opts)

/* "listen-tls" and "listen_tls" both find listen_tls. */
static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *a = opts[i].name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-')))
            a++, b++;
        if (*a == 0 && *b == 0)
            return &opts[i];
    }
    return NULL;
}

int config_list_index(const char *name)
{
    const struct opt *o = find_opt(name);
    if (o == NULL || o->type != OPT_LIST)
        return -1;
    int index = 0; /* among the list options, so it stays < 32 however long the table */
    for (const struct opt *p = opts; p < o; p++)
        index += p->type == OPT_LIST;
    return index;
}

void config_clear_list(struct config *c, const char *name)
{
    const struct opt *o = find_opt(name);
    if (o == NULL || o->type != OPT_LIST)
        return;
    struct config_list *l = (struct config_list *)(void *)((char *)c + o->offset);
    for (size_t k = 0; k < l->n; k++)
        free(l->items[k]);
    l->n = 0;
}

bool config_is_option(const char *name, bool *takes_value)
{
    const struct opt *o = find_opt(name);
    if (o && takes_value)
        *takes_value = o->type != OPT_BOOL;
    return o != NULL;
}

bool config_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned long long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1ull << 10, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1ull << 20, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1ull << 30, end++;
    if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
        end += strlen(end);
    if (*end || v > SIZE_MAX / mult)
        return false;
    *out = (size_t)(v * mult);
    return true;
}

static tr_err set_opt(struct config *c, const struct opt *o, const char *value, char *err)
{
    char *base = (char *)c + o->offset;
    size_t v;
    switch (o->type) {
    case OPT_STR: {
        char **p = (char **)(void *)base;
        char *copy = strdup(value);
        if (copy == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        free(*p);
        *p = copy;
        return TR_OK;
    }
    case OPT_LIST: {
        struct config_list *l = (struct config_list *)(void *)base;
        if (l->n == CONFIG_MAX_LIST)
            return tr_fail(err, TR_EUSAGE, "%s = %s: at most %d %s entries: drop some", o->name,
                           value, CONFIG_MAX_LIST, o->name);
        if ((l->items[l->n] = strdup(value)) == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        l->n++;
        return TR_OK;
    }
    case OPT_BOOL: {
        bool *p = (bool *)(void *)base;
        if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            *p = true;
        else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            *p = false;
        else
            return tr_fail(err, TR_EUSAGE, "%s = %s: not yes or no: write yes or no", o->name,
                           value);
        return TR_OK;
    }
    case OPT_SIZE:
    case OPT_UINT:
        /* plain numbers take no size suffix */
        if (!config_parse_size(value, &v) || (o->type == OPT_UINT && strpbrk(value, "kKmMgG")))
            return tr_fail(err, TR_EUSAGE, "%s = %s: not a %s", o->name, value,
                           o->type == OPT_SIZE
                               ? "size: write bytes, or a number with k, M or G (like 10M)"
                               : "number: write a whole number");
        if (v < o->min || v > o->max)
            return tr_fail(err, TR_EUSAGE, "%s = %s: outside [%zu, %zu]: write a value in range",
                           o->name, value, o->min, o->max);
        *(size_t *)(void *)base = v;
        return TR_OK;
    }
    return TR_EUSAGE;
}

void config_init(struct config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def && opts[i].type != OPT_LIST)
            (void)set_opt(c, &opts[i], opts[i].def, NULL);
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < NOPTS; i++) {
        char *base = (char *)c + opts[i].offset;
        if (opts[i].type == OPT_STR) {
            free(*(char **)(void *)base);
        } else if (opts[i].type == OPT_LIST) {
            struct config_list *l = (struct config_list *)(void *)base;
            for (size_t k = 0; k < l->n; k++)
                free(l->items[k]);
        }
    }
    memset(c, 0, sizeof *c);
}

tr_err config_set(struct config *c, const char *name, const char *value, char *err)
{
    const struct opt *o = find_opt(name);
    if (o == NULL)
        return tr_fail(err, TR_EUSAGE, "unknown key '%s': see tlsrptd.conf(5) for the keys", name);
    return set_opt(c, o, value, err);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

tr_err config_load_file(struct config *c, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        return tr_fail(err, TR_ECONFIG, "config file %s: %s%s", path, strerror(e),
                       e == EACCES ? ": run as root or as a member of its group (tlsrptd), or "
                                     "give another with -c FILE"
                                   : ": create it, or give another with -c FILE");
    }
    char line[4096];
    int lineno = 0;
    tr_err rc = TR_OK;
    while (rc == TR_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = tr_fail(err, TR_ECONFIG, "%s:%d: line too long: keep lines under 4096 bytes", path,
                         lineno);
            break;
        }
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            rc = tr_fail(err, TR_ECONFIG,
                         "%s:%d: not 'key = value': write one key = value per line", path, lineno);
            break;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = 0;
            value++;
        }
        char detail[TR_ERRLEN];
        if (config_set(c, key, value, detail) != TR_OK)
            rc = tr_fail(err, TR_ECONFIG, "%s:%d: %s", path, lineno, detail);
    }
    fclose(f);
    return rc;
}

tr_err config_finish(struct config *c, char *err)
{
    if (c->listen.n == 0 && c->listen_tls.n == 0) {
        char detail[TR_ERRLEN];
        if (config_set(c, "listen", "127.0.0.1:8080", detail) != TR_OK)
            return tr_fail(err, TR_ENOMEM, "%s", detail);
    }
    if (c->listen_tls.n && (c->tls_cert == NULL || c->tls_key == NULL))
        return tr_fail(err, TR_ECONFIG,
                       "listen_tls = %s needs tls_cert and tls_key: set both (PEM files, or "
                       "credential:NAME)",
                       c->listen_tls.items[0]);
    if (strcmp(c->log_format, "text") != 0 && strcmp(c->log_format, "json") != 0)
        return tr_fail(err, TR_ECONFIG, "log_format = %s: not text or json: write one of them",
                       c->log_format);
    enum dkim_policy dkim;
    if (!dkim_policy_parse(c->dkim, &dkim))
        return tr_fail(err, TR_ECONFIG, "dkim = %s: not off, record or require: write one of them",
                       c->dkim);
    if (c->path[0] != '/')
        return tr_fail(err, TR_ECONFIG, "path = %s: does not start with /: write it like /tlsrpt",
                       c->path);
    size_t pl = strlen(c->path);
    if (pl > 1 && c->path[pl - 1] == '/')
        c->path[pl - 1] = 0;
    struct dns_server srv;
    if (c->dns && dns_server_parse(c->dns, &srv, err) != TR_OK)
        return TR_EUSAGE;
    return TR_OK;
}

tr_err config_resolve_file(const char *key, const char *value, char *out, size_t outlen, char *err)
{
    static const char prefix[] = "credential:";
    size_t pl = sizeof prefix - 1;
    if (strncmp(value, prefix, pl) != 0) {
        if ((size_t)snprintf(out, outlen, "%s", value) >= outlen)
            return tr_fail(err, TR_ECONFIG, "%s = %.64s...: path too long", key, value);
        return TR_OK;
    }
    const char *name = value + pl;
    if (name[0] == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return tr_fail(err, TR_ECONFIG,
                       "%s = %s: not a credential name: write credential:NAME, NAME as in the "
                       "unit's LoadCredential=NAME:/path",
                       key, value);
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir == NULL || dir[0] == 0)
        return tr_fail(err, TR_ECONFIG,
                       "%s = %s: $CREDENTIALS_DIRECTORY is not set: start tlsrptd from its "
                       "systemd unit (LoadCredential=%s:/path/to/file), or give a path",
                       key, value, name);
    if ((size_t)snprintf(out, outlen, "%s/%s", dir, name) >= outlen)
        return tr_fail(err, TR_ECONFIG, "%s = %s: $CREDENTIALS_DIRECTORY is too long", key, value);
    return TR_OK;
}

void config_print_help(void *file)
{
    static const char *const metavar[] = {[OPT_STR] = "VALUE",
                                          [OPT_LIST] = "VALUE",
                                          [OPT_SIZE] = "SIZE",
                                          [OPT_UINT] = "N",
                                          [OPT_BOOL] = ""};
    FILE *out = file;
    for (size_t i = 0; i < NOPTS; i++) {
        char flag[64];
        size_t k = 0;
        for (const char *p = opts[i].name; *p && k < sizeof flag - 1; p++)
            flag[k++] = *p == '_' ? '-' : *p;
        flag[k] = 0;
        fprintf(out, "  --%s %s\n      %s", flag, metavar[opts[i].type], opts[i].help);
        if (opts[i].def && opts[i].type != OPT_BOOL)
            fprintf(out, " (default %s)", opts[i].def);
        fputc('\n', out);
    }
}
