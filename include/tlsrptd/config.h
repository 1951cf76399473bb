/* config.h: the configuration of `tlsrptd serve`: one struct, filled from a
 * table of options (name, type, default, bounds) by the config file
 * (`key = value` lines) and then by command-line flags (`--key-name value`,
 * dashes for underscores), which override the file. Read-only after startup. */
#ifndef TLSRPTD_CONFIG_H
#define TLSRPTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"

#define CONFIG_MAX_LIST 16 /* entries of a repeatable key (listen, listen_tls, maildir) */

struct config_list {
    char *items[CONFIG_MAX_LIST];
    size_t n;
};

struct config {
    struct config_list listen;     /* ADDR:PORT, plain HTTP */
    struct config_list listen_tls; /* ADDR:PORT, HTTPS */
    char *tls_cert, *tls_key;      /* PEM files */
    char *tls_priorities;          /* GnuTLS priority string */
    char *db;
    char *path;       /* POST path prefix, default /tlsrpt */
    char *user;       /* drop privileges to this user after binding */
    char *log_format; /* text | json */
    char *log_target; /* stderr | syslog | a file path */
    bool verbose;
    size_t max_body, max_inflated, max_json_depth, max_parts;
    size_t max_connections, max_connections_per_ip;
    size_t connection_timeout; /* seconds */
    size_t rate_limit;         /* requests per client IP per minute; 0 = off */
    size_t threads;            /* HTTP worker threads per listener */
    size_t commit_max;         /* most reports in one group commit */
    size_t busy_timeout;       /* ms */
    size_t quarantine_bytes, quarantine_rows;
    size_t shutdown_timeout;    /* seconds to finish in-flight requests on SIGTERM */
    char *api_token;            /* Bearer token for /api/ and /metrics; NULL: loopback only */
    struct config_list maildir; /* Maildirs to watch */
    char *maildir_quarantine;   /* quarantine folder; NULL: <maildir>/.Quarantine */
    size_t maildir_rescan;      /* seconds between full rescans of new/ */
    size_t max_message;         /* largest mail message read from a Maildir */
    char *public_url;           /* this collector's https rua URL (tlsrptd record) */
    char *report_mailbox;       /* this collector's rua mailbox (tlsrptd record) */
    char *dns;                  /* DNS server of record checks; NULL: the system resolver */
};

/* Defaults of every option. */
void config_init(struct config *c);
void config_free(struct config *c);

/* Read a config file. Errors name the file and line. */
tr_err config_load_file(struct config *c, const char *path, char *err);
/* Set one option by its file name (listen_tls) or flag name (listen-tls). */
tr_err config_set(struct config *c, const char *name, const char *value, char *err);
/* True when name (with dashes or underscores) is an option; *takes_value for flags. */
bool config_is_option(const char *name, bool *takes_value);
/* Repeatable keys: flags replace what the file gave, so the first flag for a
 * list clears it. config_list_index: a number < 32 for list options, else -1. */
int config_list_index(const char *name);
void config_clear_list(struct config *c, const char *name);
/* Check cross-option rules (TLS needs cert and key, ...) and fill defaults
 * that depend on others (no listener at all: 127.0.0.1:8080). */
tr_err config_finish(struct config *c, char *err);
/* Print every option with its default, for --help. */
void config_print_help(void *file);

#endif
