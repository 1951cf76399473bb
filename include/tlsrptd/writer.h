/* writer.h: the one database writer of `tlsrptd serve` (and of `maildir
 * --watch`), with group commit. Request threads prepare their input
 * (ingest_prepare) and submit it; the writer thread stores everything queued
 * in one transaction, commits, and only once the commit is on disk (syncer.h)
 * calls each request's done() with its result. Throughput is therefore not
 * bounded by one fsync per report, and the writer stores the next batch while
 * the disk syncs the last.
 *
 * The writer also knows whether storage takes writes (for /healthz), opens
 * the database again when it went away or became writable, runs a batch again
 * when it lost a race with another collector, and, with a spool, keeps the
 * inputs of HTTP requests durably on local disk while storage is down (202)
 * and stores them, in arrival order, once it is back. */
#ifndef TLSRPTD_WRITER_H
#define TLSRPTD_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/ingest.h"

struct writer_request {
    struct ingest_job *job;   /* in: prepared input; the caller frees it after done() */
    bool spoolable;           /* in: may be spooled while storage is down (HTTP) */
    struct ingest_result res; /* out: valid when done() runs (caller frees) */
    void (*done)(struct writer_request *req); /* called once the commit is on disk, on
                                               * the writer's syncer thread */
    void *cls;                                /* for the caller */
    struct writer_request *next;
};

struct writer;

/* Start the writer thread on st (which it then owns until writer_stop). */
struct writer *writer_start(struct store *st, const struct ingest_limits *lim, size_t commit_max,
                            char *err);
/* Spool spoolable requests into dir (at most max_bytes) while storage is down;
 * what dir already holds is stored first. Call before submitting. */
tr_err writer_set_spool(struct writer *w, const char *dir, size_t max_bytes, char *err);
/* Call fn(cls) on the writer thread after each successful commit (one hook;
 * fn NULL removes it). fn must return at once: it runs before the requests
 * of the batch are answered. */
void writer_on_commit(struct writer *w, void (*fn)(void *cls), void *cls);
/* Queue a request; never blocks on the database. */
void writer_submit(struct writer *w, struct writer_request *req);
/* Requests queued and not yet answered. */
size_t writer_pending(struct writer *w);
/* Whether storage takes writes now; why (n bytes) says what is wrong when not. */
bool writer_healthy(struct writer *w, char *why, size_t n);
/* Inputs waiting in the spool (0 without one). */
size_t writer_spooled(struct writer *w);
/* Store and answer everything queued, then stop the thread. */
void writer_stop(struct writer *w);

#endif
