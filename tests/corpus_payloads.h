/* corpus_payloads.h: for unit tests, every JSON payload of samples/ and the
 * shared corpus (the directories on a test's command line), decoded as ingest
 * decodes it (mail, gzip, zlib or JSON), handed one at a time to a check. */
#ifndef TLSRPTD_CORPUS_PAYLOADS_H
#define TLSRPTD_CORPUS_PAYLOADS_H

#include <stdio.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/ingest.h"
#include "tlsrptd/walk.h"

typedef void corpus_payload_fn(const char *path, const unsigned char *json, size_t len, void *arg);

/* Calls fn on each payload that decodes; returns how many it was called on. */
static size_t each_corpus_payload(const char *const *dirs, int ndirs, corpus_payload_fn *fn,
                                  void *arg)
{
    struct walk_list wl = {0};
    char e[TR_ERRLEN];
    for (int i = 0; i < ndirs; i++)
        if (walk_add(&wl, dirs[i], e) != TR_OK)
            fprintf(stderr, "skipping %s: %s\n", dirs[i], e);
    size_t payloads = 0;
    for (size_t i = 0; i < wl.n; i++) {
        struct buf b;
        buf_init(&b, (size_t)64 << 20);
        if (buf_read_file(&b, wl.paths[i], e) == TR_OK) {
            struct ingest_decoded dec;
            if (ingest_decode(b.data, b.len, NULL, &dec, e) == TR_OK) {
                for (size_t k = 0; k < dec.npayloads; k++) {
                    if (dec.payloads[k].decode_err != TR_OK)
                        continue;
                    payloads++;
                    fn(wl.paths[i], dec.payloads[k].json, dec.payloads[k].jsonlen, arg);
                }
            }
            ingest_decoded_free(&dec);
        }
        buf_free(&b);
    }
    walk_free(&wl);
    return payloads;
}

#endif
