/* syncer.h: the last step of a group commit, on a thread of its own. A writer
 * commits a batch to a store opened with defer_sync (store.h), hands the batch
 * and store_sync_fd() to the syncer and goes on with the next batch; the
 * syncer thread fdatasync()s the descriptor and only then calls done() for the
 * batch, which acknowledges it. While the disk writes one batch the writer
 * stores the next, so commits no longer wait for the disk in turn.
 *
 * Batches are done in the order they were submitted. One sync serves every
 * batch that waited for it (an fdatasync covers all that was written before
 * it). A batch submitted with fd -1 has nothing to wait for (it failed, or
 * its commit is durable already) and is done in its turn too. */
#ifndef TLSRPTD_SYNCER_H
#define TLSRPTD_SYNCER_H

#include <stddef.h>
#include "tlsrptd/err.h"

/* Called on the syncer thread: rc TR_OK when what was committed for batch is
 * durable; otherwise TR_EDB with err saying why (the disk failed to write it:
 * the batch must not be acknowledged). */
typedef void (*syncer_done_fn)(void *batch, tr_err rc, const char *err, void *cls);

struct syncer;

/* Start the thread. At most max_waiting batches wait to be synced; a submit
 * beyond that waits for room (the writer cannot run ahead of the disk without
 * bound). NULL when out of memory or threads. */
struct syncer *syncer_start(syncer_done_fn done, void *cls, size_t max_waiting);
/* Sync fd (taken over, closed by the syncer; -1: nothing to sync), then
 * done(batch). */
void syncer_submit(struct syncer *s, int fd, void *batch);
/* Wait until every batch submitted so far is done. */
void syncer_wait(struct syncer *s);
/* Finish every submitted batch, then stop the thread. NULL is a no-op. */
void syncer_stop(struct syncer *s);

#endif
