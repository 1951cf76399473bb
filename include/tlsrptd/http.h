/* http.h: the https rua endpoint of `tlsrptd serve` (libmicrohttpd + GnuTLS),
 * docs/http.md. Only http.c includes microhttpd.h. */
#ifndef TLSRPTD_HTTP_H
#define TLSRPTD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "tlsrptd/config.h"
#include "tlsrptd/err.h"
#include "tlsrptd/ratelimit.h"
#include "tlsrptd/writer.h"

struct http_server;

/* A bound, listening socket for one listener. */
struct http_listener {
    int fd;
    bool tls;
    char name[80]; /* ADDR:PORT as configured */
};

/* Create and bind a listening socket for "ADDR:PORT" ("[v6]:PORT" too). err
 * says what is wrong and what to do, without the address (the caller names
 * the key and value); TR_ECONFIG unless the port is in use (TR_EIO). */
tr_err http_bind(const char *addr_port, bool tls, struct http_listener *out, char *err);

/* Start serving on already bound listeners. cert and key are PEM text (NULL
 * without TLS listeners). The server borrows cfg, w and rl, and owns the
 * listeners' sockets from now on (http_quiesce and http_stop close them);
 * libmicrohttpd only ever gets duplicates of them. */
struct http_server *http_start(const struct config *cfg, struct writer *w, struct ratelimit *rl,
                               struct http_listener *listeners, size_t n, const char *cert,
                               const char *key, char *err);
/* Replace the TLS certificate and key (check them first: tls_load): a new
 * daemon starts accepting on each TLS listener before the old one stops, so
 * the listener never goes away; connections already open finish on the old
 * certificate. On failure the old daemons keep serving as they were. */
tr_err http_reload_tls(struct http_server *hs, const char *cert, const char *key, char *err);
/* Housekeeping from the main loop, every second: cut off connections that did
 * not complete a request within connection_timeout, stop retired listeners. */
void http_tick(struct http_server *hs);
/* Stop accepting; new requests on open connections get 503. */
void http_quiesce(struct http_server *hs);
/* Requests in progress (accepted, not yet answered). */
size_t http_in_flight(struct http_server *hs);
/* Stop the prepare pool: uploads waiting for it are answered 503, those being
 * prepared are handed to the writer. Call before writer_stop(). */
void http_stop_preparing(struct http_server *hs);
/* Close everything. Call only after http_in_flight() is 0 or the wait gave up,
 * and after the writer answered everything (no suspended connection left). */
void http_stop(struct http_server *hs);

#endif
