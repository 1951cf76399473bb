/* conntrack.c: the open connections of `tlsrptd serve` (see conntrack.h).
 *
 * A list under one mutex; every new connection counts its listener, address
 * and network in one pass (hundreds of connections at most: cheaper than
 * keeping tables in step). Log lines about refusals and cuts are limited to
 * LOG_PER_SECOND, the rest summed up by conntrack_tick, so a flood cannot
 * flood the log. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/conntrack.h"
#include "tlsrptd/log.h"

#define LOG_PER_SECOND 10

struct conntrack_conn {
    int fd;
    long listener;
    int family;             /* AF_INET (IPv4-mapped IPv6 too) or AF_INET6 */
    unsigned char addr[16]; /* 4 or 16 bytes */
    enum conntrack_phase phase;
    time_t since;         /* the phase began */
    time_t request_start; /* the current request began (connect or last answer) */
    time_t deadline;      /* 0: none */
    bool cut;             /* shut down: on its way out, not counted */
    char client[INET6_ADDRSTRLEN];
    struct conntrack_conn *prev, *next;
};

struct conntrack {
    struct conntrack_limits lim;
    pthread_mutex_t mu;
    struct conntrack_conn *conns;
    size_t count; /* not cut */
    time_t log_second;
    unsigned logged; /* lines in log_second */
    size_t unlogged; /* refusals and cuts not logged one by one */
};

/* A log line about one connection, within the budget (under ct->mu). */
#define CT_LOG(ct, now, ...)                                                                       \
    do {                                                                                           \
        if ((ct)->log_second != (now)) {                                                           \
            (ct)->log_second = (now);                                                              \
            (ct)->logged = 0;                                                                      \
        }                                                                                          \
        if ((ct)->logged < LOG_PER_SECOND) {                                                       \
            (ct)->logged++;                                                                        \
            tr_info(__VA_ARGS__);                                                                  \
        } else {                                                                                   \
            (ct)->unlogged++;                                                                      \
        }                                                                                          \
    } while (0)

struct conntrack *conntrack_new(const struct conntrack_limits *lim)
{
    struct conntrack *ct = calloc(1, sizeof *ct);
    if (ct == NULL)
        return NULL;
    ct->lim = *lim;
    if (ct->lim.per_prefix < ct->lim.per_ip)
        ct->lim.per_prefix = ct->lim.per_ip;
    if (ct->lim.header_timeout > ct->lim.request_timeout)
        ct->lim.header_timeout = ct->lim.request_timeout;
    pthread_mutex_init(&ct->mu, NULL);
    return ct;
}

void conntrack_free(struct conntrack *ct)
{
    if (ct == NULL)
        return;
    for (struct conntrack_conn *c = ct->conns, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_mutex_destroy(&ct->mu);
    free(ct);
}

/* ---- addresses ------------------------------------------------------------------------------ */

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_addr(struct conntrack_conn *c, const struct sockaddr *sa)
{
    c->family = AF_UNSPEC;
    if (sa && sa->sa_family == AF_INET) {
        c->family = AF_INET;
        memcpy(c->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(a, v4_mapped, sizeof v4_mapped) == 0) { /* a dual-stack listener */
            c->family = AF_INET;
            memcpy(c->addr, a + 12, 4);
        } else {
            c->family = AF_INET6;
            memcpy(c->addr, a, 16);
        }
    }
    if (c->family == AF_UNSPEC ||
        inet_ntop(c->family, c->addr, c->client, sizeof c->client) == NULL)
        snprintf(c->client, sizeof c->client, "-");
}

static bool same_ip(const struct conntrack_conn *a, const struct conntrack_conn *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

/* The same IPv4 /24 or IPv6 /64. */
static bool same_prefix(const struct conntrack_conn *a, const struct conntrack_conn *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, a->family == AF_INET ? 3 : 8) == 0;
}

static void prefix_of(const struct conntrack_conn *c, char *out, size_t n)
{
    unsigned char net[16] = {0};
    char text[INET6_ADDRSTRLEN];
    if (c->family != AF_INET && c->family != AF_INET6) {
        snprintf(out, n, "-");
        return;
    }
    memcpy(net, c->addr, c->family == AF_INET ? 3 : 8);
    if (inet_ntop(c->family, net, text, sizeof text) == NULL)
        snprintf(text, sizeof text, "-");
    snprintf(out, n, "%s/%d", text, c->family == AF_INET ? 24 : 64);
}

void conntrack_prefix_text(const struct sockaddr *sa, char *out, size_t n)
{
    struct conntrack_conn c;
    set_addr(&c, sa);
    prefix_of(&c, out, n);
}

const char *conntrack_client(const struct conntrack_conn *c)
{
    return c->client;
}

/* ---- deadlines and cuts --------------------------------------------------------------------- */

static time_t phase_deadline(const struct conntrack *ct, const struct conntrack_conn *c)
{
    const struct conntrack_limits *l = &ct->lim;
    switch (c->phase) {
    case CT_HEAD:
        return c->request_start + (time_t)l->header_timeout;
    case CT_BODY:
        return c->request_start + (time_t)l->request_timeout;
    case CT_IDLE:
        return c->since + (time_t)(l->idle_timeout < l->request_timeout ? l->idle_timeout
                                                                        : l->request_timeout);
    default:
        return 0;
    }
}

static void cut(struct conntrack *ct, struct conntrack_conn *c)
{
    c->cut = true;
    ct->count--;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
}

enum scope { SCOPE_LISTENER, SCOPE_IP, SCOPE_PREFIX };

static bool in_scope(const struct conntrack_conn *a, const struct conntrack_conn *b, enum scope s)
{
    switch (s) {
    case SCOPE_IP:
        return same_ip(a, b);
    case SCOPE_PREFIX:
        return same_prefix(a, b);
    default:
        return a->listener == b->listener;
    }
}

/* The connection of new's scope that gives way: the longest idle keep-alive
 * one, else (heads too) the one sending its request head the longest, if
 * for HEAD_GRACE seconds. NULL when none may. */
static struct conntrack_conn *give_way(struct conntrack *ct, const struct conntrack_conn *new,
                                       enum scope s, bool heads, time_t now)
{
    struct conntrack_conn *idle = NULL, *head = NULL;
    for (struct conntrack_conn *c = ct->conns; c; c = c->next) {
        if (c == new || c->cut || !in_scope(c, new, s))
            continue;
        if (c->phase == CT_IDLE && (idle == NULL || c->since < idle->since))
            idle = c;
        else if (heads && c->phase == CT_HEAD && now - c->since >= CONNTRACK_HEAD_GRACE &&
                 (head == NULL || c->since < head->since))
            head = c;
    }
    return idle ? idle : head;
}

static size_t count_scope(const struct conntrack *ct, const struct conntrack_conn *new,
                          enum scope s)
{
    size_t n = 0;
    for (const struct conntrack_conn *c = ct->conns; c; c = c->next)
        n += c != new && !c->cut &&in_scope(c, new, s);
    return n;
}

/* ---- the API -------------------------------------------------------------------------------- */

struct conntrack_conn *conntrack_open(struct conntrack *ct, int fd, const struct sockaddr *peer,
                                      long listener, time_t now, enum conntrack_verdict *verdict)
{
    struct conntrack_conn *c = calloc(1, sizeof *c);
    *verdict = CT_REFUSED_FULL;
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->listener = listener;
    set_addr(c, peer);
    c->phase = CT_HEAD;
    c->since = c->request_start = now;

    static const struct {
        enum scope scope;
        enum conntrack_verdict refusal;
        const char *what;
    } checks[] = {{SCOPE_IP, CT_REFUSED_IP, "its address"},
                  {SCOPE_PREFIX, CT_REFUSED_PREFIX, "its network"},
                  {SCOPE_LISTENER, CT_REFUSED_FULL, "the listener"}};
    pthread_mutex_lock(&ct->mu);
    const size_t limits[] = {ct->lim.per_ip, ct->lim.per_prefix, ct->lim.max_conns};
    *verdict = CT_ACCEPTED;
    for (size_t i = 0; i < 3 && *verdict == CT_ACCEPTED; i++) {
        if (count_scope(ct, c, checks[i].scope) < limits[i])
            continue;
        struct conntrack_conn *v =
            give_way(ct, c, checks[i].scope, checks[i].scope == SCOPE_LISTENER, now);
        if (v) {
            CT_LOG(ct, now, "%s: closed to make room for %s (%s: %zu connections): %s", v->client,
                   c->client, checks[i].what, limits[i],
                   v->phase == CT_IDLE ? "idle keep-alive" : "request head still unfinished");
            cut(ct, v);
            continue;
        }
        *verdict = checks[i].refusal;
    }
    c->next = ct->conns;
    if (ct->conns)
        ct->conns->prev = c;
    ct->conns = c;
    if (*verdict == CT_ACCEPTED) {
        ct->count++;
        c->deadline = phase_deadline(ct, c);
    } else {
        c->cut = true;
        char net[INET6_ADDRSTRLEN + 8];
        prefix_of(c, net, sizeof net);
        if (*verdict == CT_REFUSED_IP)
            CT_LOG(ct, now, "%s: refused: more than %zu connections from one address", c->client,
                   ct->lim.per_ip);
        else if (*verdict == CT_REFUSED_PREFIX)
            CT_LOG(ct, now, "%s: refused: more than %zu connections from %s", c->client,
                   ct->lim.per_prefix, net);
        else
            CT_LOG(ct, now, "%s: refused: all %zu connections are taken", c->client,
                   ct->lim.max_conns);
    }
    pthread_mutex_unlock(&ct->mu);
    return c;
}

void conntrack_phase(struct conntrack *ct, struct conntrack_conn *c, enum conntrack_phase ph,
                     time_t now)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&ct->mu);
    if (ph == CT_IDLE || (ph == CT_HEAD && c->phase != CT_HEAD))
        c->request_start = now; /* the next request starts from here */
    c->phase = ph;
    c->since = now;
    c->deadline = phase_deadline(ct, c);
    pthread_mutex_unlock(&ct->mu);
}

void conntrack_close(struct conntrack *ct, struct conntrack_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&ct->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        ct->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->cut)
        ct->count--;
    pthread_mutex_unlock(&ct->mu);
    free(c);
}

size_t conntrack_tick(struct conntrack *ct, time_t now)
{
    size_t n = 0;
    pthread_mutex_lock(&ct->mu);
    for (struct conntrack_conn *c = ct->conns; c; c = c->next) {
        if (c->cut || c->deadline == 0 || c->deadline > now)
            continue;
        const struct conntrack_limits *l = &ct->lim;
        if (c->phase == CT_HEAD)
            CT_LOG(ct, now, "%s: cut off: no complete request head within %u s", c->client,
                   l->header_timeout);
        else if (c->phase == CT_BODY)
            CT_LOG(ct, now, "%s: cut off: no complete request within %u s", c->client,
                   l->request_timeout);
        else
            CT_LOG(ct, now, "%s: closed: idle keep-alive connection for %u s", c->client,
                   l->idle_timeout < l->request_timeout ? l->idle_timeout : l->request_timeout);
        cut(ct, c);
        n++;
    }
    if (ct->unlogged && ct->log_second != now) {
        tr_info("%zu more connections refused, cut off or closed (not logged one by one)",
                ct->unlogged);
        ct->unlogged = 0;
    }
    pthread_mutex_unlock(&ct->mu);
    return n;
}

size_t conntrack_open_count(struct conntrack *ct)
{
    pthread_mutex_lock(&ct->mu);
    size_t n = ct->count;
    pthread_mutex_unlock(&ct->mu);
    return n;
}
