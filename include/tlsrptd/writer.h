/* writer.h: the one database writer of `tlsrptd serve`, with group commit.
 * Request threads prepare their input (ingest_prepare) and submit it; the
 * writer thread stores everything queued in one transaction, commits, and only
 * then calls each request's done() with its result. Throughput is therefore
 * not bounded by one fsync per report. */
#ifndef TLSRPTD_WRITER_H
#define TLSRPTD_WRITER_H

#include <stddef.h>
#include "tlsrptd/ingest.h"

struct writer_request {
    struct ingest_job *job;   /* in: prepared input; the caller frees it after done() */
    struct ingest_result res; /* out: valid when done() runs (caller frees) */
    void (*done)(struct writer_request *req); /* called on the writer thread after commit */
    void *cls;                                /* for the caller */
    struct writer_request *next;
};

struct writer;

/* Start the writer thread on st (which it then owns until writer_stop). */
struct writer *writer_start(struct store *st, const struct ingest_limits *lim, size_t commit_max,
                            char *err);
/* Queue a request; never blocks on the database. */
void writer_submit(struct writer *w, struct writer_request *req);
/* Requests queued and not yet answered. */
size_t writer_pending(struct writer *w);
/* Store and answer everything queued, then stop the thread. */
void writer_stop(struct writer *w);

#endif
