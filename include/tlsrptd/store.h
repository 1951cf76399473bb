/* store.h: the SQLite database of tlsrptd (WAL): schema migrations, prepared
 * statements, transactions, reports and the quarantine of rejected inputs.
 * Only store.c and query.c speak SQL (checkpoint.c only runs checkpoints). */
#ifndef TLSRPTD_STORE_H
#define TLSRPTD_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"
#include "tlsrptd/report.h"

/* Where an input came from; every field may be NULL except kind. Borrowed. */
struct store_source {
    const char *kind;   /* "file", "stdin", "http", "maildir" */
    const char *name;   /* file path, Maildir file name or request path */
    const char *client; /* HTTP client address */
    const char *message_id;
    const char *report_domain; /* TLS-Report-Domain */
    const char *report_submitter;
    const char *subject;
};

struct store_options {
    int busy_timeout_ms;         /* wait this long for a lock before TR_EDB */
    size_t quarantine_max_bytes; /* raw bytes kept in quarantine in total */
    size_t quarantine_max_rows;  /* quarantine rows kept; oldest evicted (logged) */
    bool read_only;              /* open for queries only; no migrations */
};
#define STORE_DEFAULT_OPTIONS                                                                      \
    {                                                                                              \
        5000, (size_t)256 << 20, 100000, false                                                     \
    }

struct store;

/* Open (creating if needed) and migrate the database. *out is NULL on failure. */
tr_err store_open(const char *path, const struct store_options *opt, struct store **out, char *err);
void store_close(struct store *st);
sqlite3 *store_db(struct store *st); /* borrowed, for query.c and checkpoint.c */
const char *store_path(const struct store *st);

/* WAL pages after which a commit checkpoints (32 MiB of 4 KiB pages), unless a
 * checkpointer (checkpoint.h) does it in the background. */
#define STORE_CHECKPOINT_PAGES 8192

tr_err store_begin(struct store *st, char *err);
tr_err store_commit(struct store *st, char *err);
void store_rollback(struct store *st);
bool store_in_transaction(const struct store *st);

/* JSON reports up to this size are stored as received ("identity"); larger
 * ones are gzipped. Deflating a 1.5 KiB report costs about as much CPU as
 * parsing it, to save under 1 KiB. */
#define STORE_PLAIN_MAX 4096

/* A validated report serialized for storage: the raw bytes as they will be
 * stored (gzip and zlib bodies as received, JSON over STORE_PLAIN_MAX gzipped,
 * smaller JSON as is), the diagnostics and
 * policy lists as JSON text. Made by store_serialize() on any thread, so the
 * one writer thread only writes rows. */
struct store_blob {
    const char *encoding; /* "gzip", "zlib" or "identity" */
    const void *data;     /* the raw bytes as stored: borrowed raw, or owned.data */
    size_t len;
    size_t json_size;                  /* bytes of the report JSON */
    struct buf owned;                  /* compressed JSON, when the input was not compressed */
    char *diagnostics;                 /* JSON array of warnings and notes, or NULL */
    char **policy_strings, **mx_hosts; /* per policy: JSON arrays or NULL */
    size_t npolicies;
};

/* raw/rawlen: the bytes received for this report (gzip, zlib or JSON); they
 * must outlive the blob. json_size: the size of the report JSON. */
tr_err store_serialize(const struct report *r, const struct diag_list *diags, const void *raw,
                       size_t rawlen, size_t json_size, struct store_blob *out, char *err);
void store_blob_free(struct store_blob *b);

/* Insert a validated report inside a transaction. *duplicate is set when the
 * (organization, report-id, start, end) key is already stored; *id is then the
 * stored report's id. TR_EDB when storage fails (the transaction must be rolled
 * back). */
tr_err store_add_report(struct store *st, const struct report *r, const struct diag_list *diags,
                        const struct store_source *src, const struct store_blob *blob, int64_t *id,
                        bool *duplicate, char *err);

/* Keep a rejected input with its reason. Raw bytes beyond the quarantine's byte
 * budget are not kept (the row says so, and a warning is logged); rows beyond
 * the row budget evict the oldest (logged). */
tr_err store_add_quarantine(struct store *st, const struct store_source *src, const char *reason,
                            const void *raw, size_t rawlen, int64_t *id, char *err);

#endif
