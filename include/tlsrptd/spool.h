/* spool.h: a durable queue of inputs on local disk, for `tlsrptd serve` while
 * the database cannot take them (locked, read-only, PostgreSQL down). Senders
 * that treat any HTTP answer as delivered (the Postfix reporter posts with
 * curl without --fail) would lose every report answered 503; spooled, a
 * report is answered 202 and stored once storage is back.
 *
 * A directory with tmp/ and new/, as a Maildir: an entry is written to tmp/,
 * fsync'd, renamed into new/ and the directory fsync'd before spool_put()
 * returns, so an acknowledged entry survives a crash. Names sort in arrival
 * order. An entry is removed only after what it held is committed; a crash
 * in between drains it again, and the store finds it a duplicate (or the
 * same quarantine entry). Bounded in bytes. Not thread-safe: one writer. */
#ifndef TLSRPTD_SPOOL_H
#define TLSRPTD_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/err.h"
#include "tlsrptd/store.h"

struct spool;

/* Open (creating) dir, 0700, and count what is already in it. max_bytes: what
 * spool_put() accepts in all. NULL with err set on failure. */
struct spool *spool_open(const char *dir, size_t max_bytes, char *err);
void spool_close(struct spool *sp);

/* What names this spool among every spool that shares a database: 16 hex
 * digits drawn when the directory was first opened and kept in its file "id". */
const char *spool_id(const struct spool *sp);

/* Durably add one input with its source. rejected: NULL, or why the input is
 * already known to be unacceptable (a body whose Content-Encoding does not
 * decode): it is then quarantined with that reason when drained, as it was
 * answered. commit: 0, or the ticket of a commit that held this input and
 * whose outcome is unknown (its answer was lost; writer.c). TR_ETOOBIG when it
 * would pass max_bytes, TR_EIO when it cannot be written (err says why). */
tr_err spool_put(struct spool *sp, const void *data, size_t len, const struct store_source *src,
                 const char *rejected, int64_t commit, char *err);

/* Entries and bytes waiting. */
size_t spool_count(const struct spool *sp);
size_t spool_bytes(const struct spool *sp);

/* One entry read back: the input and its source (owned by the entry). name
 * is unique among the entries of every spool (it holds the time of arrival,
 * a sequence number, a random tag of the spool and the process id). */
struct spool_entry {
    char *name;
    unsigned char *data;
    size_t len;
    struct store_source src;
    char *rejected; /* NULL, or the reason given to spool_put() */
    int64_t commit; /* 0, or the ticket given to spool_put() */
    char *strings[7];
};

/* Read the oldest entries (at most max) into out; returns how many. Entries
 * that cannot be read (not ours, damaged) are moved to dir/bad and logged.
 * The entries stay in the spool until spool_remove(). */
size_t spool_peek(struct spool *sp, struct spool_entry *out, size_t max);
/* Remove an entry whose input is committed (stored, duplicate, quarantined). */
tr_err spool_remove(struct spool *sp, const struct spool_entry *e, char *err);
void spool_entry_free(struct spool_entry *e);

#endif
