/* test_conntrack.c: connection limits per listener, address, IPv4 /24 and
 * IPv6 /64 (IPv4-mapped addresses count as IPv4); who gives way when a limit
 * is reached (idle keep-alive first, then old request heads); the deadline of
 * each phase. Sockets are real socket pairs, so a cut shows as end of file on
 * the other end; time is passed in. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"
#include "tlsrptd/conntrack.h"

struct peer {
    int ours, theirs; /* a socket pair: the server's end and the client's */
    struct sockaddr_storage sa;
};

static void make_peer(struct peer *p, const char *addr)
{
    int sv[2];
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->ours = sv[0];
    p->theirs = sv[1];
    fcntl(p->theirs, F_SETFL, O_NONBLOCK);
    memset(&p->sa, 0, sizeof p->sa);
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->sa;
        s6->sin6_family = AF_INET6;
        CHECK_INT(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&p->sa;
        s4->sin_family = AF_INET;
        CHECK_INT(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
    }
}

/* True when the server's end was shut down (the client reads end of file). */
static bool was_cut(const struct peer *p)
{
    char c;
    return read(p->theirs, &c, 1) == 0;
}

static void drop_peer(struct peer *p)
{
    close(p->ours);
    close(p->theirs);
}

static struct conntrack_conn *open_peer(struct conntrack *ct, struct peer *p, long listener,
                                        time_t now, enum conntrack_verdict *v)
{
    return conntrack_open(ct, p->ours, (const struct sockaddr *)&p->sa, listener, now, v);
}

static void test_prefixes(void)
{
    char out[64];
    struct peer p;
    make_peer(&p, "192.0.2.77");
    conntrack_prefix_text((const struct sockaddr *)&p.sa, out, sizeof out);
    CHECK_STR(out, "192.0.2.0/24");
    drop_peer(&p);
    make_peer(&p, "2001:db8:1:2:3:4:5:6");
    conntrack_prefix_text((const struct sockaddr *)&p.sa, out, sizeof out);
    CHECK_STR(out, "2001:db8:1:2::/64");
    drop_peer(&p);
    make_peer(&p, "::ffff:198.51.100.9");
    conntrack_prefix_text((const struct sockaddr *)&p.sa, out, sizeof out);
    CHECK_STR(out, "198.51.100.0/24");
    drop_peer(&p);
}

static void test_limits(void)
{
    struct conntrack_limits lim = {100, 2, 3, 10, 30, 15};
    struct conntrack *ct = conntrack_new(&lim);
    struct peer p[12];
    struct conntrack_conn *c[12];
    enum conntrack_verdict v;
    const char *addrs[] = {"192.0.2.1",         "192.0.2.1",       "192.0.2.1",
                           "192.0.2.2",         "192.0.2.3",       "192.0.3.1",
                           "2001:db8:1:2::1",   "2001:db8:1:2::1", "2001:db8:1:2::99",
                           "2001:db8:1:2:ff::", "2001:db8:1:3::1", "::ffff:192.0.2.9"};
    const enum conntrack_verdict want[] = {
        CT_ACCEPTED,       CT_ACCEPTED,       CT_REFUSED_IP, /* a third from one address */
        CT_ACCEPTED,       CT_REFUSED_PREFIX,                /* a fourth in 192.0.2.0/24 */
        CT_ACCEPTED,                                         /* another /24 */
        CT_ACCEPTED,       CT_ACCEPTED,       CT_ACCEPTED,   /* three in 2001:db8:1:2::/64 */
        CT_REFUSED_PREFIX, CT_ACCEPTED,                      /* a fourth; another /64 */
        CT_REFUSED_PREFIX,                                   /* IPv4-mapped: 192.0.2.0/24 again */
    };
    for (int i = 0; i < 12; i++) {
        make_peer(&p[i], addrs[i]);
        c[i] = open_peer(ct, &p[i], 1, 100, &v);
        CHECK(c[i] != NULL);
        if (v != want[i])
            fprintf(stderr, "connection %d from %s\n", i, addrs[i]);
        CHECK_INT(v, want[i]);
    }
    CHECK_INT(conntrack_open_count(ct), 8);
    CHECK_STR(conntrack_client(c[11]), "192.0.2.9");
    /* the limits hold for the not refused only: closing one makes room */
    conntrack_close(ct, c[0]);
    c[0] = open_peer(ct, &p[2], 1, 100, &v);
    CHECK_INT(v, CT_ACCEPTED);
    for (int i = 0; i < 12; i++) {
        conntrack_close(ct, c[i]);
        drop_peer(&p[i]);
    }
    CHECK_INT(conntrack_open_count(ct), 0);
    conntrack_free(ct);

    /* per_prefix is at least per_ip */
    struct conntrack_limits low = {100, 3, 1, 10, 30, 15};
    ct = conntrack_new(&low);
    for (int i = 0; i < 3; i++) {
        make_peer(&p[i], "192.0.2.1");
        c[i] = open_peer(ct, &p[i], 1, 100, &v);
        CHECK_INT(v, CT_ACCEPTED);
    }
    for (int i = 0; i < 3; i++) {
        conntrack_close(ct, c[i]);
        drop_peer(&p[i]);
    }
    conntrack_free(ct);
}

static void test_giving_way(void)
{
    struct conntrack_limits lim = {3, 10, 10, 10, 30, 15};
    struct conntrack *ct = conntrack_new(&lim);
    struct peer p[8];
    struct conntrack_conn *c[8] = {0};
    enum conntrack_verdict v;
    for (int i = 0; i < 8; i++)
        make_peer(&p[i], i < 6 ? "192.0.2.1" : "198.51.100.1");
    /* three busy: a fourth is refused at once */
    for (int i = 0; i < 3; i++) {
        c[i] = open_peer(ct, &p[i], 7, 100, &v);
        CHECK_INT(v, CT_ACCEPTED);
        conntrack_phase(ct, c[i], CT_BODY, 100);
    }
    c[3] = open_peer(ct, &p[3], 7, 101, &v);
    CHECK_INT(v, CT_REFUSED_FULL);
    /* another listener has its own limit */
    c[4] = open_peer(ct, &p[4], 8, 101, &v);
    CHECK_INT(v, CT_ACCEPTED);
    conntrack_close(ct, c[3]);
    /* an idle keep-alive connection gives way, the longest idle first */
    conntrack_phase(ct, c[1], CT_IDLE, 102);
    conntrack_phase(ct, c[2], CT_IDLE, 103);
    c[3] = open_peer(ct, &p[3], 7, 104, &v);
    CHECK_INT(v, CT_ACCEPTED);
    CHECK(was_cut(&p[1]));
    CHECK(!was_cut(&p[2]));
    CHECK(!was_cut(&p[0]));
    /* a request head unfinished for CONNTRACK_HEAD_GRACE gives way, a younger one not */
    conntrack_phase(ct, c[2], CT_BODY, 104);
    conntrack_close(ct, c[1]);
    conntrack_phase(ct, c[0], CT_HEAD, 104); /* c[3] is in its head since 104 too */
    c[1] = open_peer(ct, &p[5], 7, 105, &v);
    CHECK_INT(v, CT_REFUSED_FULL);
    conntrack_close(ct, c[1]);
    c[1] = open_peer(ct, &p[6], 7, 104 + CONNTRACK_HEAD_GRACE, &v);
    CHECK_INT(v, CT_ACCEPTED);
    CHECK(was_cut(&p[0]) || was_cut(&p[3]));
    /* waiting for the server: never cut for room */
    for (int i = 0; i < 8; i++)
        if (c[i] && i != 4)
            conntrack_phase(ct, c[i], CT_WAIT, 110);
    for (int i = 0; i < 8; i++) {
        if (c[i])
            conntrack_close(ct, c[i]);
        c[i] = NULL;
    }
    for (int i = 0; i < 8; i++)
        drop_peer(&p[i]);
    conntrack_free(ct);
}

static void test_deadlines(void)
{
    /* head 5 s, whole request 20 s, idle 8 s */
    struct conntrack_limits lim = {100, 10, 10, 5, 20, 8};
    struct conntrack *ct = conntrack_new(&lim);
    struct peer head, body, wait, idle;
    make_peer(&head, "192.0.2.1");
    make_peer(&body, "192.0.2.2");
    make_peer(&wait, "192.0.2.3");
    make_peer(&idle, "192.0.2.4");
    enum conntrack_verdict v;
    struct conntrack_conn *ch = open_peer(ct, &head, 1, 1000, &v);
    struct conntrack_conn *cb = open_peer(ct, &body, 1, 1000, &v);
    struct conntrack_conn *cw = open_peer(ct, &wait, 1, 1000, &v);
    struct conntrack_conn *ci = open_peer(ct, &idle, 1, 1000, &v);
    conntrack_phase(ct, cb, CT_BODY, 1001);
    conntrack_phase(ct, cw, CT_WAIT, 1001);
    conntrack_phase(ct, ci, CT_IDLE, 1002);
    CHECK_INT(conntrack_tick(ct, 1004), 0);
    CHECK_INT(conntrack_tick(ct, 1005), 1); /* the head: 5 s */
    CHECK(was_cut(&head));
    CHECK_INT(conntrack_tick(ct, 1009), 0);
    CHECK_INT(conntrack_tick(ct, 1010), 1); /* idle: 8 s after its answer */
    CHECK(was_cut(&idle));
    CHECK_INT(conntrack_tick(ct, 1019), 0);
    CHECK_INT(conntrack_tick(ct, 1020), 1); /* the body: 20 s from the start */
    CHECK(was_cut(&body));
    CHECK_INT(conntrack_tick(ct, 5000), 0); /* the server's turn: no deadline */
    CHECK(!was_cut(&wait));
    /* after the answer, the next request has its own 20 s */
    conntrack_phase(ct, cw, CT_IDLE, 5000);
    conntrack_phase(ct, cw, CT_BODY, 5003);
    CHECK_INT(conntrack_tick(ct, 5019), 0);
    CHECK_INT(conntrack_tick(ct, 5020), 1);
    conntrack_close(ct, ch);
    conntrack_close(ct, cb);
    conntrack_close(ct, cw);
    conntrack_close(ct, ci);
    drop_peer(&head);
    drop_peer(&body);
    drop_peer(&wait);
    drop_peer(&idle);
    /* the head deadline is at most the whole request's */
    struct conntrack_limits lim2 = {100, 10, 10, 50, 3, 8};
    struct conntrack *ct2 = conntrack_new(&lim2);
    make_peer(&head, "192.0.2.1");
    ch = open_peer(ct2, &head, 1, 0, &v);
    CHECK_INT(conntrack_tick(ct2, 3), 1);
    conntrack_close(ct2, ch);
    drop_peer(&head);
    conntrack_free(ct2);
    conntrack_free(ct);
}

int main(void)
{
    test_prefixes();
    test_limits();
    test_giving_way();
    test_deadlines();
    return check_done("conntrack");
}
