/* mhd_ceiling.c: the ceiling of the HTTP benchmark (bench/http.sh): a bare
 * libmicrohttpd server that reads each POST body and answers 201 with a tiny
 * JSON body, doing nothing else (no decoding, no validation, no storage).
 *
 *   mhd_ceiling [--listen ADDR:PORT] [--cert FILE --key FILE] [--threads N]
 *               [--max-connections N] [--epoll]
 *
 * Same libmicrohttpd setup as src/http.c: a listening socket bound by us
 * (SO_REUSEADDR, backlog 1024) handed over with MHD_OPTION_LISTEN_SOCKET,
 * internal polling threads with poll() in a thread pool (--threads, default 2,
 * as tlsrptd serve; --epoll uses epoll instead, as src/http.c did before
 * 14a7188), no MHD_USE_TURBO, a per-request context allocated on the first
 * call and freed in the completion callback, one response created per request.
 * No suspend/resume: the answer is queued on the last call. With --cert and
 * --key it serves HTTPS (GnuTLS) with tlsrptd's default priority string.
 * Default listen address 127.0.0.1:8081. Runs until SIGTERM/SIGINT, then
 * prints "requests=N bytes=B" (requests answered, body bytes read) on stderr
 * and exits 0. A benchmark tool, not part of tlsrptd. */
#define _POSIX_C_SOURCE 200809L /* getaddrinfo, sigwait, pthread_sigmask */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PRIORITIES "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

static const char answer[] = "{\"result\":\"stored\"}";

static atomic_ullong n_requests, n_bytes;

/* One request (libmicrohttpd's *con_cls). */
struct request {
    size_t bytes;
};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version;
    struct request *rq = *con_cls;
    if (rq == NULL) {
        rq = calloc(1, sizeof *rq);
        if (rq == NULL)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        (void)upload_data; /* read and dropped */
        rq->bytes += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof answer - 1, (void *)(uintptr_t)answer, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_CREATED, resp);
    MHD_destroy_response(resp);
    atomic_fetch_add(&n_requests, 1);
    atomic_fetch_add(&n_bytes, rq->bytes);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

/* Read a whole file into a NUL-terminated malloc'ed string. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "mhd_ceiling: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *t = realloc(s, cap * 2);
            if (t == NULL) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[len] = 0;
    return s;
}

static int listen_on(const char *addr_port)
{
    char host[256];
    const char *colon = strrchr(addr_port, ':');
    size_t hl = colon ? (size_t)(colon - addr_port) : 0;
    if (colon == NULL || hl == 0 || hl >= sizeof host || colon[1] == 0) {
        fprintf(stderr, "mhd_ceiling: '%s' is not ADDR:PORT\n", addr_port);
        return -1;
    }
    memcpy(host, addr_port, hl);
    host[hl] = 0;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "mhd_ceiling: %s: %s\n", addr_port, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        fprintf(stderr, "mhd_ceiling: cannot listen on %s: %s\n", addr_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int usage(void)
{
    fprintf(stderr, "usage: mhd_ceiling [--listen ADDR:PORT] [--cert FILE --key FILE] "
                    "[--threads N] [--max-connections N] [--epoll]\n");
    return 64;
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > 100000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_addr = "127.0.0.1:8081", *cert_path = NULL, *key_path = NULL;
    unsigned threads = 2, max_conns = 2048;
    bool epoll = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--epoll") == 0) {
            epoll = true;
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        const char *v = argv[++i];
        if (strcmp(a, "--listen") == 0)
            listen_addr = v;
        else if (strcmp(a, "--cert") == 0)
            cert_path = v;
        else if (strcmp(a, "--key") == 0)
            key_path = v;
        else if (strcmp(a, "--threads") == 0) {
            if (parse_uint(v, &threads) != 0)
                return usage();
        } else if (strcmp(a, "--max-connections") == 0) {
            if (parse_uint(v, &max_conns) != 0)
                return usage();
        } else
            return usage();
    }
    if ((cert_path == NULL) != (key_path == NULL))
        return usage();

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the MHD threads inherit the mask */
    signal(SIGPIPE, SIG_IGN);

    char *cert = NULL, *key = NULL;
    if (cert_path && ((cert = read_text(cert_path)) == NULL || (key = read_text(key_path)) == NULL))
        return 1;
    int fd = listen_on(listen_addr);
    if (fd < 0)
        return 1;

    unsigned flags =
        (epoll ? MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL : MHD_USE_POLL_INTERNAL_THREAD) |
        MHD_USE_ERROR_LOG | (cert ? MHD_USE_TLS : 0);
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_ARRAY, cert ? tls_opts : none, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mhd_ceiling: cannot start the server on %s\n", listen_addr);
        close(fd);
        free(cert);
        free(key);
        return 1;
    }
    fprintf(stderr, "mhd_ceiling: listening on %s (%s, %u threads, %s)\n", listen_addr,
            cert ? "https" : "http", threads, epoll ? "epoll" : "poll");

    int sig;
    while (sigwait(&sigs, &sig) != 0)
        ;
    MHD_stop_daemon(d); /* closes the listening socket too */
    free(cert);
    free(key);
    fprintf(stderr, "requests=%llu bytes=%llu\n", (unsigned long long)atomic_load(&n_requests),
            (unsigned long long)atomic_load(&n_bytes));
    return 0;
}
