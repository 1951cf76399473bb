/* config.c: the option table of `tlsrptd serve`, the config file parser and
 * flag handling. Every option is one row: file name, type, offset in struct
 * config, default, bounds, help. Flags are the file names with dashes. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/config.h"
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
    {"tls_cert", OPT_STR, OFF(tls_cert), NULL, 0, 0, "certificate chain (PEM) for listen_tls"},
    {"tls_key", OPT_STR, OFF(tls_key), NULL, 0, 0, "private key (PEM) for listen_tls"},
    {"tls_priorities", OPT_STR, OFF(tls_priorities),
     "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE", 0, 0,
     "GnuTLS priority string (TLS 1.2 and 1.3 only)"},
    {"db", OPT_STR, OFF(db), "./tlsrptd.db", 0, 0, "database file"},
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
    {"threads", OPT_UINT, OFF(threads), "2", 1, 64, "HTTP worker threads per listener"},
    {"commit_max", OPT_UINT, OFF(commit_max), "1024", 1, 100000, "most reports committed together"},
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
    {"max_message", OPT_SIZE, OFF(max_message), "16M", 1, (size_t)1 << 30,
     "largest mail message read from a Maildir"},
    {"public_url", OPT_STR, OFF(public_url), NULL, 0, 0,
     "https URL senders POST reports to (rua=https:...; tlsrptd record)"},
    {"report_mailbox", OPT_STR, OFF(report_mailbox), NULL, 0, 0,
     "address reports are mailed to (rua=mailto:...; tlsrptd record)"},
    {"dns", OPT_STR, OFF(dns), NULL, 0, 0,
     "DNS server (IPv4 HOST:PORT) that record --check and the console's check ask "
     "(default: the system resolver)"},
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
    return o && o->type == OPT_LIST ? (int)(o - opts) : -1;
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

static bool parse_size(const char *s, size_t *out)
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
            return tr_fail(err, TR_EUSAGE, "%s: at most %d entries", o->name, CONFIG_MAX_LIST);
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
            return tr_fail(err, TR_EUSAGE, "%s: '%s' is not yes or no", o->name, value);
        return TR_OK;
    }
    case OPT_SIZE:
    case OPT_UINT:
        /* plain numbers take no size suffix */
        if (!parse_size(value, &v) || (o->type == OPT_UINT && strpbrk(value, "kKmMgG")))
            return tr_fail(err, TR_EUSAGE, "%s: '%s' is not a %s", o->name, value,
                           o->type == OPT_SIZE ? "size (like 10M)" : "number");
        if (v < o->min || v > o->max)
            return tr_fail(err, TR_EUSAGE, "%s: %s is outside [%zu, %zu]", o->name, value, o->min,
                           o->max);
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
        return tr_fail(err, TR_EUSAGE, "unknown option '%s'", name);
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
    if (f == NULL)
        return tr_fail(err, TR_EUSAGE, "%s: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0;
    tr_err rc = TR_OK;
    while (rc == TR_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = tr_fail(err, TR_EUSAGE, "%s:%d: line too long", path, lineno);
            break;
        }
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            rc = tr_fail(err, TR_EUSAGE, "%s:%d: expected 'key = value'", path, lineno);
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
            rc = tr_fail(err, TR_EUSAGE, "%s:%d: %s", path, lineno, detail);
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
        return tr_fail(err, TR_EUSAGE, "listen_tls needs tls_cert and tls_key");
    if (strcmp(c->log_format, "text") != 0 && strcmp(c->log_format, "json") != 0)
        return tr_fail(err, TR_EUSAGE, "log_format: '%s' is not text or json", c->log_format);
    if (c->path[0] != '/')
        return tr_fail(err, TR_EUSAGE, "path: '%s' does not start with /", c->path);
    size_t pl = strlen(c->path);
    if (pl > 1 && c->path[pl - 1] == '/')
        c->path[pl - 1] = 0;
    struct dns_server srv;
    if (c->dns && dns_server_parse(c->dns, &srv, err) != TR_OK)
        return TR_EUSAGE;
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
