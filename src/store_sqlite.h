/* store_sqlite.h: what the files of the SQLite backend share (store_sqlite.c,
 * store_sqlite_checkpoint.c, store_sqlite_walbuf.c). Internal to the backend. */
#ifndef TLSRPTD_STORE_SQLITE_H
#define TLSRPTD_STORE_SQLITE_H

#include <sqlite3.h>
#include "tlsrptd/err.h"

/* WAL pages after which a commit checkpoints (32 MiB of 4 KiB pages), unless a
 * checkpointer does it in the background. */
#define SQLITE_CHECKPOINT_PAGES 8192

struct checkpointer;

/* The VFS of store_sqlite_walbuf.c: the default one, except that a
 * transaction's WAL frames are written with one call at its commit. */
#define SQLITE_WALBUF_VFS "tlsrptd-walbuf"
/* Register it (not as the default); SQLITE_OK or SQLite's error code. Call
 * once, before the first connection that names it. */
int sqlite_walbuf_register(void);

/* Take over the checkpoints of writer (a connection to path): whenever a
 * commit on it leaves at least `pages` pages in the WAL, the checkpointer
 * thread copies them into the database on a connection of its own (PASSIVE:
 * the writer keeps committing meanwhile), then what was committed during
 * that pass, until few pages are left: those the committing thread copies
 * itself, so that its next transaction starts the WAL over. A cycle of the
 * WAL takes a few passes, not one per commit. Past twice `pages` the
 * committing thread copies whatever is left; the WAL file stays below about
 * 2 x pages.
 * Call before the writer starts committing; NULL with err set on failure. */
struct checkpointer *checkpointer_start(sqlite3 *writer, const char *path, unsigned pages,
                                        char *err);
/* Stop the thread and give the writer its automatic checkpoints back. Call
 * when no other thread uses the writer's connection. NULL is a no-op. */
void checkpointer_stop(struct checkpointer *c);
/* Checkpoints run so far (by the thread and by the writer). */
unsigned long checkpointer_runs(struct checkpointer *c);
/* Syncs of the database file by the thread, one after each pass that copied
 * pages, so that the committing thread's pass syncs only its own few. */
unsigned long checkpointer_db_syncs(struct checkpointer *c);

#endif
