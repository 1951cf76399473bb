/* checkpoint.h: WAL checkpoints on a background thread, for the daemon's one
 * writer. SQLite's automatic checkpoint runs inside the COMMIT that crosses
 * the threshold, so every few seconds under load one group commit (and every
 * request waiting on it) stalls while 32 MiB of WAL are copied and synced.
 * The checkpointer does that copy on its own connection instead. */
#ifndef TLSRPTD_CHECKPOINT_H
#define TLSRPTD_CHECKPOINT_H

#include "tlsrptd/err.h"
#include "tlsrptd/store.h"

struct checkpointer;

/* Take over st's checkpoints: whenever a commit on st leaves at least `pages`
 * pages in the WAL, the checkpointer thread copies them into the database
 * (PASSIVE: the writer keeps committing meanwhile). Past twice `pages`, the
 * committing thread copies the few pages written since the last pass itself,
 * so that its next transaction starts the WAL over; the WAL file stays near
 * 2 x pages. Call before the thread that uses st starts committing; NULL with
 * err set on failure. */
struct checkpointer *checkpointer_start(struct store *st, unsigned pages, char *err);
/* Stop the thread and give st its automatic checkpoints back. Call when no
 * other thread uses st any more. NULL is a no-op. */
void checkpointer_stop(struct checkpointer *c);
/* Checkpoints run so far (by the thread and by the writer), for tests and metrics. */
unsigned long checkpointer_runs(struct checkpointer *c);

#endif
