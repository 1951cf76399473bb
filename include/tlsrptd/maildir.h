/* maildir.h: the Maildir reader (docs/architecture.md), used by `tlsrptd maildir` and by
 * `tlsrptd serve --maildir DIR`.
 *
 * A pass takes every message in DIR/new, prepares it (ingest_prepare: MIME,
 * gunzip, validation) on a few threads, and hands it to the database writer
 * (writer.h), which commits many together. Only after the commit is the file
 * moved: a stored or duplicate report to DIR/cur/<name>:2,S; a message with
 * no acceptable report to the quarantine folder's new/ (default
 * DIR/.Quarantine, itself a Maildir), its reason logged and kept in the
 * database's quarantine. When storage is unavailable the file stays in new/
 * and is retried with backoff. Nothing is deleted. A crash between the
 * commit and the move leaves the file in new/; the next pass reads it again
 * and finds a duplicate, so nothing is lost and nothing counted twice.
 *
 * The watcher runs passes on a thread: on inotify events for new/, on a
 * periodic rescan (for events missed or overflowed), and after a backoff
 * when storage was unavailable. */
#ifndef TLSRPTD_MAILDIR_H
#define TLSRPTD_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/err.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/writer.h"

struct maildir_options {
    const char *quarantine;  /* quarantine folder for every DIR; NULL: DIR/.Quarantine */
    unsigned rescan_seconds; /* watcher: rescan new/ this often (0: 60) */
    unsigned threads;        /* threads preparing messages in a pass (0: one per core, <= 4) */
    struct ingest_limits lim;
};

struct maildir_stats {
    size_t messages;    /* files taken from new/ */
    size_t stored;      /* moved to cur/ with at least one report stored */
    size_t duplicates;  /* moved to cur/: every report was already stored */
    size_t quarantined; /* moved to the quarantine folder */
    size_t deferred;    /* left in new/: storage unavailable, unreadable, or not movable */
    size_t vanished;    /* gone from new/ before they were read (another reader took them) */
};

/* Check that dir is a Maildir (new/, cur/ and tmp/ exist) and create its
 * quarantine folder (a Maildir, with a maildirfolder marker) if needed. The
 * quarantine must be on the same file system, since messages are renamed. */
tr_err maildir_prepare_dir(const char *dir, const char *quarantine, char *err);

/* One pass over every dir: process what is in new/ now, then return. The
 * counts of this pass are added to *stats. TR_OK, or TR_EIO when a dir
 * could not be listed (err says which). */
tr_err maildir_run_once(char *const *dirs, size_t ndirs, struct writer *w,
                        const struct maildir_options *opt, struct maildir_stats *stats, char *err);

struct maildir_watch;

/* Start watching dirs on a thread of its own (one pass over each at once).
 * NULL with err set when a dir is not a Maildir or inotify fails. */
struct maildir_watch *maildir_watch_start(char *const *dirs, size_t ndirs, struct writer *w,
                                          const struct maildir_options *opt, char *err);
/* Finish the round in progress (its messages are committed and moved), then
 * stop. *stats (may be NULL) gets the totals. NULL is a no-op. */
void maildir_watch_stop(struct maildir_watch *mw, struct maildir_stats *stats);

/* Append tlsrptd_maildir_backlog{maildir=...} (messages waiting in each
 * Maildir's new/) in the Prometheus text format; nothing for n == 0. */
tr_err maildir_backlog_metrics(char *const *dirs, size_t n, struct buf *out);

#endif
