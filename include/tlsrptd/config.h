/* config.h: the configuration of every tlsrptd command: one struct, filled
 * from one table of options (name, type, default, bounds) by the config file
 * (`key = value` lines; /etc/tlsrptd/tlsrptd.conf by default) and then by
 * command-line flags (`--key-name value`, dashes for underscores), which
 * override the file. Read-only after startup. */
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
    char *db;                      /* a SQLite path (or sqlite:PATH) or a postgresql:// URI */
    char *db_password_file;        /* PostgreSQL: libpq's passfile */
    char *spool_dir;               /* serve: the spool; NULL: derived from db; "off": none */
    size_t spool_max;              /* bytes the spool may hold */
    size_t metrics_domains;        /* domains with /metrics series of their own */
    char *path;                    /* POST path prefix, default /tlsrpt */
    char *user;                    /* drop privileges to this user after binding */
    char *log_format;              /* text | json */
    char *log_target;              /* stderr | syslog | a file path */
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
    /* IMAP mailboxes (tlsrptd imap, serve --imap) */
    struct config_list imap;      /* mailbox URLs to poll */
    size_t imap_poll;             /* seconds between polls */
    char *imap_done_folder;       /* processed reports are moved here */
    char *imap_quarantine_folder; /* messages without an acceptable report are moved here */
    char *imap_password_file, *imap_oauth2_token_file, *imap_ca_file;
    bool imap_insecure; /* imap:// without STARTTLS allowed */
    /* trust and scope (docs/trust.md) */
    char *domains;              /* own domains: "example.com, *.example.org"; NULL: every one */
    char *domains_file;         /* own domains, one or more a line (re-read on SIGHUP) */
    char *tokens_file;          /* API tokens: "TOKEN DOMAIN..." lines (re-read on SIGHUP) */
    char *retention;            /* reports older than this are pruned ("400d"); NULL: kept */
    char *rollup_retention;     /* daily totals older than this are pruned; NULL: kept */
    char *quarantine_retention; /* quarantine entries older than this are pruned; NULL: kept */
    char *prune_interval;       /* serve: how often it prunes (default 1d) */
    /* bounds of one report (jsonscan.h, docs/limits.md) */
    size_t max_json_string, max_json_values, max_policies, max_failure_details;
    size_t max_policy_strings, max_policy_domains;
    /* uploads being decoded and validated (prepool.h) */
    size_t parse_memory, parse_wait, prepare_threads;
    /* connections (conntrack.h) */
    size_t header_timeout, idle_timeout, max_connections_per_prefix;
    /* alerts (alert.h) */
    struct config_list alert_webhook, alert_email; /* URL or ADDRESS, then DOMAINs */
    char *alert_sendmail, *alert_smtp, *alert_from;
    char *alert_rules;                                        /* "all", "none" or a comma list */
    char *alert_failure_rate, *alert_jump, *alert_jump_floor; /* 5%, 3, 1% */
    size_t alert_cooldown, alert_interval;                    /* seconds */
    size_t alert_clean_days, alert_min_sessions, alert_silence, alert_quarantine, alert_digest;
    char *dkim;          /* mailed reports: off | record | require (dkim.h) */
    size_t dkim_timeout; /* seconds the DKIM key lookups of one mail may take */
};

/* The file every command reads when no -c FILE is given (and it exists);
 * TLSRPTD_CONFIG in the environment names another ("" for none). */
#ifndef TLSRPTD_CONFIG_FILE
#define TLSRPTD_CONFIG_FILE "/etc/tlsrptd/tlsrptd.conf"
#endif

/* Defaults of every option. */
void config_init(struct config *c);
void config_free(struct config *c);

/* Read a config file. Errors (TR_ECONFIG) name the file and line. Errors of
 * config_set are TR_EUSAGE: a bad flag is a usage error, the same value in
 * the file a configuration error. */
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
/* "10M", "32MiB", "512k", "1048576" -> bytes (k, M, G binary); false when
 * malformed. The one size parser of tlsrptd. */
bool config_parse_size(const char *s, size_t *out);
/* The file a key names (tls_cert, tls_key): a path as it is, or
 * credential:NAME, the file NAME in $CREDENTIALS_DIRECTORY (systemd's
 * LoadCredential=NAME:/path). TR_ECONFIG naming the key when it cannot be. */
tr_err config_resolve_file(const char *key, const char *value, char *out, size_t outlen, char *err);
/* Print every option with its default, for --help. */
void config_print_help(void *file);

#endif
