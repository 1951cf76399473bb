/* conntrack.h: the open connections of `tlsrptd serve` and what each is doing.
 *
 * Limits: connections per listener, per client address and per client
 * network (IPv4 /24, IPv6 /64: one attacker usually holds a whole network),
 * counted over every HTTP thread. Deadlines per phase: the request head
 * (header_timeout), the whole request (request_timeout, from its start), the
 * wait for the next request on a keep-alive connection (idle_timeout); none
 * while the server works on a request. When a new connection finds its limit
 * reached, a connection of the same scope gives way if one can: an idle
 * keep-alive connection first, then (for the listener's limit) one that has
 * been sending its request head for HEAD_GRACE seconds; otherwise the new
 * connection is refused at once, never left waiting in the kernel's queue.
 * Connections are cut with shutdown(2), so the HTTP server closes them in its
 * own thread. Thread-safe; no libmicrohttpd here. */
#ifndef TLSRPTD_CONNTRACK_H
#define TLSRPTD_CONNTRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#define CONNTRACK_HEAD_GRACE 2 /* seconds: an honest request head arrives in one packet */

enum conntrack_phase {
    CT_HEAD, /* connected, or between requests: the request head is coming */
    CT_BODY, /* the head is complete: the body is coming */
    CT_WAIT, /* the server works on the request (no deadline) */
    CT_IDLE  /* keep-alive, after an answer: waiting for the next request */
};

enum conntrack_verdict {
    CT_ACCEPTED,
    CT_REFUSED_FULL,   /* the listener's limit, and nobody gave way */
    CT_REFUSED_IP,     /* the client address's limit */
    CT_REFUSED_PREFIX, /* the client network's limit */
};

struct conntrack_limits {
    size_t max_conns;                                       /* per listener */
    size_t per_ip;                                          /* per client address */
    size_t per_prefix;                                      /* per /24 or /64; at least per_ip */
    unsigned header_timeout, request_timeout, idle_timeout; /* seconds */
};

struct conntrack;
struct conntrack_conn;

struct conntrack *conntrack_new(const struct conntrack_limits *lim);
void conntrack_free(struct conntrack *ct);

/* Register a new connection: its socket, its peer, the listener it came in on
 * (any number that tells listeners apart). Returns its handle, NULL only when
 * out of memory (then refuse it). *verdict says whether it may stay; a refused
 * connection is registered all the same (so that conntrack_close finds it) and
 * must be shut down by the caller, who may first write an answer on it. A
 * connection that gave way has been shut down already. */
struct conntrack_conn *conntrack_open(struct conntrack *ct, int fd, const struct sockaddr *peer,
                                      long listener, time_t now, enum conntrack_verdict *verdict);
/* The connection moved to phase ph (its deadline follows). */
void conntrack_phase(struct conntrack *ct, struct conntrack_conn *c, enum conntrack_phase ph,
                     time_t now);
/* The connection is closed: forget it (c is freed). */
void conntrack_close(struct conntrack *ct, struct conntrack_conn *c);
/* Shut down the connections past their deadline; returns how many. Also logs
 * how many refusals and cuts were not logged one by one. */
size_t conntrack_tick(struct conntrack *ct, time_t now);
/* Connections registered and not cut. */
size_t conntrack_open_count(struct conntrack *ct);
/* The client address of c as text. */
const char *conntrack_client(const struct conntrack_conn *c);
/* The network of an address as "192.0.2.0/24" or "2001:db8:1:2::/64". */
void conntrack_prefix_text(const struct sockaddr *sa, char *out, size_t n);

#endif
