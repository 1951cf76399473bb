/* imap.c: IMAP mailboxes (see imap.h for the contract). libcurl does the
 * connection, TLS and login here (alert_channel.c uses it for webhooks and
 * SMTP).
 *
 * libcurl connects, does TLS and logs in (CURLOPT_CONNECT_ONLY); the
 * commands after the login are sent with curl_easy_send and their answers
 * read with curl_easy_recv: CAPABILITY, LIST, CREATE, SUBSCRIBE, SELECT,
 * UID SEARCH, UID FETCH (RFC822.SIZE, then BODY.PEEK[]), UID MOVE (or
 * UID COPY, UID STORE \Deleted, UID EXPUNGE), UID STORE \Seen, LOGOUT.
 * Every answer is bounded: a line (literals aside) by LINE_MAX_BYTES, a literal by
 * max_message (a larger one is read and dropped), the wait for any byte by
 * timeout_seconds.
 *
 * A pass over a mailbox works in rounds of at most ROUND_MAX messages and
 * ROUND_BYTES bytes: their sizes are asked first (a message over max_message
 * is not downloaded: it is quarantined with its size), then their bodies in
 * one FETCH; each body is prepared and submitted to the writer as it
 * arrives, so the writer commits while the rest still comes in. The next
 * round's bodies are fetched before the moves of a round are made: when the
 * writer has answered every message of the round (after its commit).
 * Mailbox names are quoted strings of printable ASCII; '/' in a configured
 * folder stands for the server's hierarchy delimiter. */
#define _GNU_SOURCE /* strcasestr */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include "tlsrptd/imap.h"
#include "tlsrptd/prom.h"
#include "tlsrptd/log.h"

#define LINE_MAX_BYTES  ((size_t)8 << 20)  /* a response line, literals aside (SEARCH) */
#define SMALL_LITERAL   ((size_t)64 << 10) /* a literal outside a message body */
#define MAX_LITERALS    8                  /* literals in one response */
#define ROUND_MAX       256                /* messages fetched and committed per round */
#define ROUND_BYTES     ((size_t)32 << 20) /* bytes of message bodies per round (two in flight) */
#define SET_MAX         4000               /* characters of a UID set in one command */
#define SECRET_MAX      16384              /* a password or bearer token */
#define RETRY_MIN       2                  /* seconds before the first retry after a failure */
#define TEMPFAIL_MAX    60                 /* most seconds between retries of a locked database */
#define FOLDER_NAME_MAX 1000
#define SYSTEM_CA_DIR   "/etc/ssl/certs" /* Debian's CA certificates */

/* ---- process-wide: libcurl, metrics --------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct mailbox_metric {
    char *label;
    unsigned long errors;
    long long last_success; /* Unix seconds, 0: never */
};

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mailbox_metric *metrics;
static size_t nmetrics, metrics_cap;

/* The metric slot of a mailbox (found or added); SIZE_MAX when out of memory. */
static size_t metric_slot(const char *label)
{
    size_t slot = SIZE_MAX;
    pthread_mutex_lock(&metrics_mu);
    for (size_t i = 0; i < nmetrics; i++)
        if (strcmp(metrics[i].label, label) == 0)
            slot = i;
    if (slot == SIZE_MAX) {
        if (nmetrics == metrics_cap) {
            size_t ncap = metrics_cap ? metrics_cap * 2 : 4;
            struct mailbox_metric *nm = realloc(metrics, ncap * sizeof *nm);
            if (nm) {
                metrics = nm;
                metrics_cap = ncap;
            }
        }
        if (nmetrics < metrics_cap && (metrics[nmetrics].label = strdup(label)) != NULL) {
            metrics[nmetrics].errors = 0;
            metrics[nmetrics].last_success = 0;
            slot = nmetrics++;
        }
    }
    pthread_mutex_unlock(&metrics_mu);
    return slot;
}

static void metric_record(size_t slot, bool ok)
{
    if (slot == SIZE_MAX)
        return;
    pthread_mutex_lock(&metrics_mu);
    if (ok)
        metrics[slot].last_success = (long long)time(NULL);
    else
        metrics[slot].errors++;
    pthread_mutex_unlock(&metrics_mu);
}

tr_err imap_metrics(struct buf *out)
{
    tr_err rc = TR_OK;
    pthread_mutex_lock(&metrics_mu);
    if (nmetrics)
        rc = prom_printf(out, "# HELP tlsrptd_imap_errors_total Failed polls of an IMAP mailbox "
                              "(unreachable, login refused, protocol error) since start.\n"
                              "# TYPE tlsrptd_imap_errors_total counter\n");
    char l[1024];
    for (size_t i = 0; rc == TR_OK && i < nmetrics; i++) {
        prom_label(metrics[i].label, l, sizeof l);
        rc = prom_printf(out, "tlsrptd_imap_errors_total{mailbox=\"%s\"} %lu\n", l,
                         metrics[i].errors);
    }
    if (rc == TR_OK && nmetrics)
        rc = prom_printf(out, "# HELP tlsrptd_imap_last_success_timestamp_seconds When a poll of "
                              "an IMAP mailbox last succeeded (0: not yet).\n"
                              "# TYPE tlsrptd_imap_last_success_timestamp_seconds gauge\n");
    for (size_t i = 0; rc == TR_OK && i < nmetrics; i++) {
        prom_label(metrics[i].label, l, sizeof l);
        rc = prom_printf(out, "tlsrptd_imap_last_success_timestamp_seconds{mailbox=\"%s\"} %lld\n",
                         l, metrics[i].last_success);
    }
    pthread_mutex_unlock(&metrics_mu);
    return rc;
}

/* ---- mailboxes and credentials -------------------------------------------------------------- */

struct mailbox {
    char *url;    /* as configured: the log and metric label */
    char *folder; /* the folder to read, decoded from the URL path (default INBOX) */
    bool starttls;
    size_t metric;
    /* watcher state */
    time_t next;       /* monotonic seconds of the next pass */
    unsigned backoff;  /* after a failure */
    unsigned tempfail; /* while storage is unavailable */
    bool logged_ok;    /* the last pass succeeded (log "polling again" once) */
};

static bool printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* A secret file's first line (CR and LF stripped), NUL-terminated in out. */
static tr_err read_secret(const char *path, const char *what, struct buf *out, char *err)
{
    buf_init(out, SECRET_MAX);
    char detail[TR_ERRLEN];
    tr_err e = buf_read_file(out, path, detail);
    if (e != TR_OK) {
        buf_free(out);
        return tr_fail(err, TR_EUSAGE, "%s %s: %s", what, path,
                       e == TR_ETOOBIG ? "larger than 16 KiB" : detail);
    }
    char *s = (char *)out->data;
    size_t n = strcspn(s ? s : "", "\r\n");
    if (n == 0) {
        buf_free(out);
        return tr_fail(err, TR_EUSAGE, "%s %s: empty first line", what, path);
    }
    s[n] = 0;
    out->len = n;
    return TR_OK;
}

static void mailbox_free(struct mailbox *mb)
{
    free(mb->url);
    free(mb->folder);
    memset(mb, 0, sizeof *mb);
}

static const char *done_folder(const struct imap_options *o)
{
    return o->done_folder && o->done_folder[0] ? o->done_folder : IMAP_DEFAULT_DONE_FOLDER;
}

static const char *quarantine_folder(const struct imap_options *o)
{
    return o->quarantine_folder && o->quarantine_folder[0] ? o->quarantine_folder
                                                           : IMAP_DEFAULT_QUARANTINE_FOLDER;
}

static bool same_folder(const char *a, const char *b)
{
    /* INBOX is case-insensitive (RFC 3501 §5.1) */
    if (strcasecmp(a, "INBOX") == 0)
        return strcasecmp(b, "INBOX") == 0;
    return strcmp(a, b) == 0;
}

static tr_err check_folder(const char *what, const char *name, char *err)
{
    if (name[0] == 0 || strlen(name) > FOLDER_NAME_MAX || !printable_ascii(name))
        return tr_fail(err, TR_EUSAGE,
                       "%s '%s': a folder name must be 1 to %d printable ASCII characters", what,
                       name, FOLDER_NAME_MAX);
    return TR_OK;
}

static tr_err mailbox_parse(const char *url, const struct imap_options *opt, struct mailbox *mb,
                            char *err)
{
    memset(mb, 0, sizeof *mb);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return tr_fail(err, TR_ENOMEM, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    CURLU *u = curl_url();
    char *scheme = NULL, *user = NULL, *password = NULL, *query = NULL, *path = NULL;
    tr_err rc = TR_EUSAGE;
    if (u == NULL) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        tr_fail(err, TR_EUSAGE, "%s: not a URL: %s", url, curl_url_strerror(uc));
        goto done;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (scheme == NULL || (strcmp(scheme, "imap") != 0 && strcmp(scheme, "imaps") != 0)) {
        tr_fail(err, TR_EUSAGE, "%s: not an imaps:// or imap:// URL", url);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) != CURLUE_OK || user == NULL ||
        user[0] == 0) {
        tr_fail(err, TR_EUSAGE, "%s: no user: write imaps://USER@host/FOLDER", url);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK && password) {
        tr_fail(err, TR_EUSAGE,
                "%s: a password in the URL would be visible to every local user; put it in "
                "imap_password_file",
                url);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
        tr_fail(err, TR_EUSAGE, "%s: URL queries (?...) are not supported", url);
        goto done;
    }
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    if (path && strchr(path, ';')) {
        tr_fail(err, TR_EUSAGE, "%s: URL options (;UID=, ;SECTION=) are not supported", url);
        goto done;
    }
    curl_free(path);
    path = NULL;
    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE);
    const char *folder = path ? path : "";
    while (*folder == '/')
        folder++;
    size_t fl = strlen(folder);
    while (fl && folder[fl - 1] == '/')
        fl--;
    mb->folder = fl ? strndup(folder, fl) : strdup("INBOX");
    mb->url = strdup(url);
    mb->starttls = strcmp(scheme, "imap") == 0;
    if (mb->folder == NULL || mb->url == NULL) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    char detail[TR_ERRLEN];
    if (check_folder("folder", mb->folder, detail) != TR_OK) {
        tr_fail(err, TR_EUSAGE, "%s: %s", url, detail);
        goto done;
    }
    if (check_folder("imap_done_folder", done_folder(opt), err) != TR_OK ||
        check_folder("imap_quarantine_folder", quarantine_folder(opt), err) != TR_OK)
        goto done;
    if (same_folder(mb->folder, done_folder(opt)) ||
        same_folder(mb->folder, quarantine_folder(opt))) {
        tr_fail(err, TR_EUSAGE,
                "%s: the folder read is also imap_done_folder or imap_quarantine_folder", url);
        goto done;
    }
    bool has_pw = opt->password_file && opt->password_file[0];
    bool has_token = opt->oauth2_token_file && opt->oauth2_token_file[0];
    if (has_pw == has_token) {
        tr_fail(err, TR_EUSAGE, "%s: set %s", url,
                has_pw ? "imap_password_file or imap_oauth2_token_file, not both"
                       : "imap_password_file (or imap_oauth2_token_file for OAuth2)");
        goto done;
    }
    rc = TR_OK;
done:
    curl_free(scheme);
    curl_free(user);
    curl_free(password);
    curl_free(query);
    curl_free(path);
    curl_url_cleanup(u);
    if (rc != TR_OK)
        mailbox_free(mb);
    return rc;
}

tr_err imap_check(const char *url, const struct imap_options *opt, char *err)
{
    struct mailbox mb;
    tr_err rc = mailbox_parse(url, opt, &mb, err);
    if (rc != TR_OK)
        return rc;
    mailbox_free(&mb);
    struct buf secret;
    bool token = opt->oauth2_token_file && opt->oauth2_token_file[0];
    rc = read_secret(token ? opt->oauth2_token_file : opt->password_file,
                     token ? "imap_oauth2_token_file" : "imap_password_file", &secret, err);
    if (rc == TR_OK)
        buf_free(&secret);
    if (rc == TR_OK && opt->ca_file && opt->ca_file[0]) {
        struct stat sb;
        if (stat(opt->ca_file, &sb) != 0)
            rc = tr_fail(err, TR_EUSAGE, "imap_ca_file %s: %s", opt->ca_file, strerror(errno));
    }
    return rc;
}

/* ---- the connection ------------------------------------------------------------------------- */

/* One answer of the server: its text (continuation lines joined, each
 * literal left as its {N} marker) and the literals in order. */
struct resp {
    struct buf text;
    struct buf lit[MAX_LITERALS];
    size_t lit_size[MAX_LITERALS]; /* announced size (the buf is empty when over its cap) */
    size_t nlit;
};

struct conn {
    CURL *curl;
    curl_socket_t sock;
    const char *label;
    int timeout_ms;
    unsigned tag;
    unsigned char in[65536];
    size_t in_pos, in_len;
    struct buf last; /* the last tagged answer's text, after the tag */
    struct resp r;
    char cmd[48]; /* the name of the command in progress, for messages */
    char curl_err[CURL_ERROR_SIZE];
    atomic_bool *stop;
};

enum status { ST_OK, ST_NO, ST_BAD };

static void resp_clear(struct resp *r)
{
    buf_reset(&r->text);
    for (size_t i = 0; i < r->nlit; i++)
        buf_free(&r->lit[i]);
    r->nlit = 0;
}

static int on_progress(void *cls, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    atomic_bool *stop = cls;
    return stop && atomic_load(stop) ? 1 : 0;
}

static void conn_close(struct conn *c)
{
    /* Shut the socket first: libcurl would otherwise send a LOGOUT of its own
     * and wait for its answer, behind whatever a failed command left unread. */
    if (c->sock != CURL_SOCKET_BAD)
        shutdown(c->sock, SHUT_RDWR);
    c->sock = CURL_SOCKET_BAD;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    c->curl = NULL;
    resp_clear(&c->r);
    buf_free(&c->r.text);
    buf_free(&c->last);
}

/* Connect, TLS, login. On failure err says why, from the mailbox's side. */
static enum imap_failure conn_open(struct conn *c, const struct mailbox *mb,
                                   const struct imap_options *opt, atomic_bool *stop, char *err)
{
    memset(c, 0, sizeof *c);
    c->sock = CURL_SOCKET_BAD;
    c->label = mb->url;
    c->stop = stop;
    unsigned timeout = opt->timeout_seconds ? opt->timeout_seconds : 60;
    c->timeout_ms = (int)timeout * 1000;
    buf_init(&c->last, LINE_MAX_BYTES);
    buf_init(&c->r.text, LINE_MAX_BYTES);

    bool token = opt->oauth2_token_file && opt->oauth2_token_file[0];
    struct buf secret;
    if (read_secret(token ? opt->oauth2_token_file : opt->password_file,
                    token ? "imap_oauth2_token_file" : "imap_password_file", &secret, err) != TR_OK)
        return IMAP_ECONFIG;
    if ((c->curl = curl_easy_init()) == NULL) {
        buf_free(&secret);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return IMAP_EUNAVAILABLE;
    }
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, mb->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "imap,imaps");
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)timeout);
    curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)timeout);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, stop);
    if (mb->starttls)
        curl_easy_setopt(h, CURLOPT_USE_SSL,
                         opt->insecure ? (long)CURLUSESSL_TRY : (long)CURLUSESSL_ALL);
    if (opt->ca_file && opt->ca_file[0]) {
        /* added to the system's CAs, which libcurl would not load beside a CAINFO */
        struct stat sb;
        curl_easy_setopt(h, CURLOPT_CAINFO, opt->ca_file);
        if (stat(SYSTEM_CA_DIR, &sb) == 0 && S_ISDIR(sb.st_mode))
            curl_easy_setopt(h, CURLOPT_CAPATH, SYSTEM_CA_DIR);
    }
    if (token)
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, (const char *)secret.data);
    else
        curl_easy_setopt(h, CURLOPT_PASSWORD, (const char *)secret.data);
    CURLcode rc = curl_easy_perform(h);
    /* libcurl copied the secret; do not keep it around */
    if (secret.data)
        memset(secret.data, 0, secret.len);
    buf_free(&secret);
    const char *detail = c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_OK:
        break;
    case CURLE_LOGIN_DENIED:
        tr_fail(err, TR_EIO, "login refused (%s): check the %s", detail,
                token ? "token in imap_oauth2_token_file" : "user and imap_password_file");
        return IMAP_ELOGIN;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        tr_fail(err, TR_EIO, "the server's certificate is not trusted (%s); imap_ca_file adds a CA",
                detail);
        return IMAP_ECONFIG;
    case CURLE_USE_SSL_FAILED:
        tr_fail(err, TR_EIO,
                "the server does not offer STARTTLS (%s); use imaps://, or imap_insecure = yes "
                "to allow plain text",
                detail);
        return IMAP_ECONFIG;
    case CURLE_UNSUPPORTED_PROTOCOL:
        tr_fail(err, TR_EUSAGE, "%s", detail);
        return IMAP_ECONFIG;
    case CURLE_ABORTED_BY_CALLBACK:
        tr_fail(err, TR_EIO, "stopping");
        return IMAP_EUNAVAILABLE;
    default:
        tr_fail(err, TR_EIO, "cannot reach the server: %s", detail);
        return IMAP_EUNAVAILABLE;
    }
    curl_socket_t s = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK || s == CURL_SOCKET_BAD) {
        tr_fail(err, TR_EIO, "libcurl kept no connection");
        return IMAP_EUNAVAILABLE;
    }
    c->sock = s;
    return IMAP_OK;
}

static tr_err wait_socket(struct conn *c, short events, char *err)
{
    struct pollfd p = {c->sock, events, 0};
    int r;
    do
        r = poll(&p, 1, c->timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return tr_fail(err, TR_EIO, "no answer from the server within %d s", c->timeout_ms / 1000);
    if (r < 0)
        return tr_fail(err, TR_EIO, "poll: %s", strerror(errno));
    return TR_OK;
}

static tr_err conn_send(struct conn *c, const char *data, size_t len, char *err)
{
    while (len > 0) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(c->curl, data, len, &n);
        if (rc == CURLE_AGAIN) {
            if (wait_socket(c, POLLOUT, err) != TR_OK)
                return TR_EIO;
            continue;
        }
        if (rc != CURLE_OK)
            return tr_fail(err, TR_EIO, "connection lost: %s", curl_easy_strerror(rc));
        data += n;
        len -= n;
    }
    return TR_OK;
}

static tr_err conn_fill(struct conn *c, char *err)
{
    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(c->curl, c->in, sizeof c->in, &n);
        if (rc == CURLE_OK) {
            if (n == 0)
                return tr_fail(err, TR_EIO, "the server closed the connection");
            c->in_pos = 0;
            c->in_len = n;
            return TR_OK;
        }
        if (rc != CURLE_AGAIN)
            return tr_fail(err, TR_EIO, "connection lost: %s", curl_easy_strerror(rc));
        if (wait_socket(c, POLLIN, err) != TR_OK)
            return TR_EIO;
    }
}

/* Append the next line to out (its CRLF dropped). */
static tr_err read_line(struct conn *c, struct buf *out, char *err)
{
    for (;;) {
        if (c->in_pos == c->in_len && conn_fill(c, err) != TR_OK)
            return TR_EIO;
        const unsigned char *s = c->in + c->in_pos;
        size_t avail = c->in_len - c->in_pos;
        const unsigned char *nl = memchr(s, '\n', avail);
        size_t take = nl ? (size_t)(nl - s) + 1 : avail;
        if (buf_append(out, s, take) != TR_OK)
            return tr_fail(err, TR_EIO, "an answer line longer than %zu bytes", out->max);
        c->in_pos += take;
        if (nl) {
            out->len--;
            if (out->len && out->data[out->len - 1] == '\r')
                out->len--;
            out->data[out->len] = 0;
            return TR_OK;
        }
    }
}

/* Read n literal bytes into out; past out's cap they are read and dropped. */
static tr_err read_literal(struct conn *c, struct buf *out, size_t n, char *err)
{
    bool keep = n <= out->max;
    if (keep && buf_reserve(out, n) != TR_OK)
        return tr_fail(err, TR_ENOMEM, "out of memory for a literal of %zu bytes", n);
    while (n > 0) {
        if (c->in_pos == c->in_len && conn_fill(c, err) != TR_OK)
            return TR_EIO;
        size_t avail = c->in_len - c->in_pos;
        size_t take = avail < n ? avail : n;
        if (keep)
            buf_append(out, c->in + c->in_pos, take);
        c->in_pos += take;
        n -= take;
    }
    return TR_OK;
}

/* When text ends with a literal marker {N} or {N+}, its N. */
static bool literal_at_end(const struct buf *t, size_t *n)
{
    if (t->len < 3 || t->data[t->len - 1] != '}')
        return false;
    size_t i = t->len - 1;
    if (i > 0 && t->data[i - 1] == '+')
        i--;
    size_t end = i;
    while (i > 0 && t->data[i - 1] >= '0' && t->data[i - 1] <= '9')
        i--;
    if (i == end || i == 0 || t->data[i - 1] != '{' || end - i > 12)
        return false;
    uint64_t v = 0;
    for (size_t k = i; k < end; k++)
        v = v * 10 + (uint64_t)(t->data[k] - '0');
    *n = (size_t)v;
    return true;
}

/* Read one whole answer (line, literals, continuation lines) into c->r. */
static tr_err read_resp(struct conn *c, size_t lit_max, char *err)
{
    resp_clear(&c->r);
    for (;;) {
        if (read_line(c, &c->r.text, err) != TR_OK)
            return TR_EIO;
        size_t n;
        if (!literal_at_end(&c->r.text, &n))
            return TR_OK;
        if (c->r.nlit == MAX_LITERALS)
            return tr_fail(err, TR_EIO, "an answer with more than %d literals", MAX_LITERALS);
        struct buf *lit = &c->r.lit[c->r.nlit];
        buf_init(lit, lit_max);
        c->r.lit_size[c->r.nlit++] = n;
        if (read_literal(c, lit, n, err) != TR_OK)
            return TR_EIO;
    }
}

/* Called for each untagged answer ("* ...") of a command, in c->r. */
typedef tr_err (*untagged_fn)(struct conn *c, void *ctx, char *err);

/* Send "TAG fmt\r\n" and read the answers up to the tagged one: untagged
 * ones go to fn (may be NULL), whose literals may be up to lit_max bytes;
 * *st is the tagged status, its text in c->last. TR_EIO when the connection
 * failed (or fn failed): the connection is then unusable. */
static tr_err conn_vcmd(struct conn *c, untagged_fn fn, void *ctx, size_t lit_max, enum status *st,
                        char *err, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
static tr_err conn_vcmd(struct conn *c, untagged_fn fn, void *ctx, size_t lit_max, enum status *st,
                        char *err, const char *fmt, va_list ap)
{
    char tag[16];
    int tl = snprintf(tag, sizeof tag, "t%u ", ++c->tag);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return tr_fail(err, TR_EIO, "cannot format a command");
    char *line = malloc((size_t)tl + (size_t)n + 3);
    if (line == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    memcpy(line, tag, (size_t)tl);
    vsnprintf(line + tl, (size_t)n + 1, fmt, ap);
    memcpy(line + tl + n, "\r\n", 3);
    /* the command's name, for messages: up to its first argument */
    size_t nl = strcspn(line + tl, "0123456789\"(\r");
    snprintf(c->cmd, sizeof c->cmd, "%.*s", (int)nl, line + tl);
    nl = strlen(c->cmd);
    while (nl && c->cmd[nl - 1] == ' ')
        c->cmd[--nl] = 0;
    tr_debug("imap %s: > %.*s", c->label, tl + n > 200 ? 200 : tl + n, line);
    tr_err e = conn_send(c, line, (size_t)tl + (size_t)n + 2, err);
    free(line);
    if (e != TR_OK)
        return e;
    for (;;) {
        if (read_resp(c, lit_max, err) != TR_OK)
            return TR_EIO;
        const char *t = (const char *)c->r.text.data;
        if (strncmp(t, "* ", 2) == 0) {
            if (strncasecmp(t + 2, "BYE", 3) == 0)
                return tr_fail(err, TR_EIO, "the server ended the session: %.200s", t + 2);
            if (fn && fn(c, ctx, err) != TR_OK)
                return TR_EIO;
            continue;
        }
        if (strncmp(t, tag, (size_t)tl) == 0) {
            const char *s = t + tl;
            *st = strncasecmp(s, "OK", 2) == 0   ? ST_OK
                  : strncasecmp(s, "NO", 2) == 0 ? ST_NO
                                                 : ST_BAD;
            buf_reset(&c->last);
            buf_append(&c->last, s, strlen(s));
            tr_debug("imap %s: < %.200s", c->label, t);
            return TR_OK;
        }
        if (t[0] == '+')
            return tr_fail(err, TR_EIO, "unexpected continuation request: %.200s", t);
        /* another tag: not ours; ignore it */
    }
}

static tr_err conn_cmd(struct conn *c, untagged_fn fn, void *ctx, size_t lit_max, enum status *st,
                       char *err, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static tr_err conn_cmd(struct conn *c, untagged_fn fn, void *ctx, size_t lit_max, enum status *st,
                       char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tr_err e = conn_vcmd(c, fn, ctx, lit_max, st, err, fmt, ap);
    va_end(ap);
    return e;
}

/* A command that must succeed: NO or BAD become TR_EPARSE, err naming the
 * command and the server's answer. TR_EIO: the connection failed. */
static tr_err cmd_ok(struct conn *c, untagged_fn fn, void *ctx, size_t lit_max, char *err,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static tr_err cmd_ok(struct conn *c, untagged_fn fn, void *ctx, size_t lit_max, char *err,
                     const char *fmt, ...)
{
    enum status st;
    va_list ap;
    va_start(ap, fmt);
    tr_err e = conn_vcmd(c, fn, ctx, lit_max, &st, err, fmt, ap);
    va_end(ap);
    if (e != TR_OK)
        return TR_EIO;
    if (st != ST_OK)
        return tr_fail(err, TR_EPARSE, "%s: the server answered %.200s", c->cmd,
                       (const char *)c->last.data);
    return TR_OK;
}

/* ---- parsing answers ------------------------------------------------------------------------ */

/* A cursor over an answer's text; {N} markers refer to c->r's literals in order. */
struct cur {
    const char *p;
    size_t lit;
};

static void skip_sp(struct cur *k)
{
    while (*k->p == ' ')
        k->p++;
}

static bool take_number(struct cur *k, uint64_t *v)
{
    skip_sp(k);
    if (*k->p < '0' || *k->p > '9')
        return false;
    uint64_t x = 0;
    while (*k->p >= '0' && *k->p <= '9') {
        if (x > UINT64_MAX / 10 - 10)
            return false;
        x = x * 10 + (uint64_t)(*k->p++ - '0');
    }
    *v = x;
    return true;
}

/* Skip one value: atom, number, NIL, quoted string, literal, parenthesized list. */
static bool skip_value(struct cur *k, int depth)
{
    skip_sp(k);
    if (depth > 20)
        return false;
    if (*k->p == '"') {
        for (k->p++; *k->p && *k->p != '"'; k->p++)
            if (*k->p == '\\' && k->p[1])
                k->p++;
        if (*k->p != '"')
            return false;
        k->p++;
        return true;
    }
    if (*k->p == '{') {
        const char *e = strchr(k->p, '}');
        if (e == NULL)
            return false;
        k->p = e + 1;
        k->lit++;
        return true;
    }
    if (*k->p == '(') {
        k->p++;
        for (;;) {
            skip_sp(k);
            if (*k->p == ')') {
                k->p++;
                return true;
            }
            if (*k->p == 0 || !skip_value(k, depth + 1))
                return false;
        }
    }
    const char *start = k->p;
    int brackets = 0;
    while (*k->p && ((*k->p != ' ' && *k->p != ')' && *k->p != '(') || brackets > 0)) {
        if (*k->p == '[')
            brackets++;
        else if (*k->p == ']')
            brackets--;
        k->p++;
    }
    return k->p != start;
}

static bool word_is(const char *p, const char *w)
{
    size_t n = strlen(w);
    return strncasecmp(p, w, n) == 0 && (p[n] == ' ' || p[n] == 0 || p[n] == '(');
}

/* "[COPYUID validity srcset dstset]" in text: dstset into out. */
static bool parse_copyuid(const char *text, char *out, size_t outlen)
{
    const char *p = strcasestr(text, "[COPYUID ");
    if (p == NULL)
        return false;
    struct cur k = {p + 9, 0};
    uint64_t v;
    if (!take_number(&k, &v) || !skip_value(&k, 0))
        return false;
    skip_sp(&k);
    size_t n = strspn(k.p, "0123456789:,");
    if (n == 0 || n >= outlen || k.p[n] != ']')
        return false;
    memcpy(out, k.p, n);
    out[n] = 0;
    return true;
}

/* ---- UID sets ------------------------------------------------------------------------------- */

struct uids {
    uint32_t *v;
    size_t n, cap;
};

static bool uids_add(struct uids *u, uint32_t x)
{
    if (u->n == u->cap) {
        size_t ncap = u->cap ? u->cap * 2 : 64;
        uint32_t *nv = realloc(u->v, ncap * sizeof *nv);
        if (nv == NULL)
            return false;
        u->v = nv;
        u->cap = ncap;
    }
    u->v[u->n++] = x;
    return true;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Write v[*from..n) as a UID set ("3:7,9") of at most SET_MAX characters into
 * out (ascending v); *from moves past what was written. */
static void uid_set(const uint32_t *v, size_t n, size_t *from, char *out)
{
    size_t k = 0, i = *from;
    out[0] = 0;
    while (i < n) {
        size_t j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        char part[32];
        int pl =
            j > i ? snprintf(part, sizeof part, "%s%" PRIu32 ":%" PRIu32, k ? "," : "", v[i], v[j])
                  : snprintf(part, sizeof part, "%s%" PRIu32, k ? "," : "", v[i]);
        if (k + (size_t)pl >= SET_MAX)
            break;
        memcpy(out + k, part, (size_t)pl + 1);
        k += (size_t)pl;
        i = j + 1;
    }
    *from = i;
}

/* ---- a session on one mailbox --------------------------------------------------------------- */

struct session {
    struct conn c;
    const struct mailbox *mb;
    const struct imap_options *opt;
    struct writer *w;
    struct imap_stats *st;
    bool has_move, has_uidplus;
    char delim;                  /* hierarchy delimiter, 0 when flat */
    char *done, *quarantine;     /* quoted folder names, delimiter applied */
    bool done_ok, quarantine_ok; /* known to exist */
    uint64_t uidvalidity;
    const char *selected; /* quoted name of the selected folder */
    struct buf done_uids; /* UID sets in the done folder, to mark seen */
    bool done_unknown;    /* moved to done without COPYUID */
};

static tr_err on_capability(struct conn *c, void *ctx, char *err)
{
    (void)err;
    struct session *s = ctx;
    const char *t = (const char *)c->r.text.data + 2;
    if (!word_is(t, "CAPABILITY"))
        return TR_OK;
    for (const char *p = t; (p = strchr(p, ' ')) != NULL;) {
        p++;
        if (word_is(p, "MOVE"))
            s->has_move = true;
        else if (word_is(p, "UIDPLUS"))
            s->has_uidplus = true;
    }
    return TR_OK;
}

static tr_err on_list_delim(struct conn *c, void *ctx, char *err)
{
    (void)err;
    struct session *s = ctx;
    const char *t = (const char *)c->r.text.data + 2;
    if (!word_is(t, "LIST"))
        return TR_OK;
    struct cur k = {t + 4, 0};
    if (!skip_value(&k, 0)) /* flags */
        return TR_OK;
    skip_sp(&k);
    if (k.p[0] == '"' && k.p[1] == '\\' && k.p[2] && k.p[3] == '"')
        s->delim = k.p[2];
    else if (k.p[0] == '"' && k.p[1] && k.p[2] == '"')
        s->delim = k.p[1];
    else
        s->delim = 0;
    return TR_OK;
}

/* A configured folder as a quoted IMAP string, '/' replaced by the delimiter. */
static char *quote_folder(const char *name, char delim, bool translate)
{
    size_t n = strlen(name);
    char *q = malloc(2 * n + 3);
    if (q == NULL)
        return NULL;
    size_t k = 0;
    q[k++] = '"';
    for (const char *p = name; *p; p++) {
        char ch = translate && *p == '/' && delim ? delim : *p;
        if (ch == '"' || ch == '\\')
            q[k++] = '\\';
        q[k++] = ch;
    }
    q[k++] = '"';
    q[k] = 0;
    return q;
}

struct exists_ctx {
    bool found;
};

static tr_err on_list_exists(struct conn *c, void *ctx, char *err)
{
    (void)err;
    struct exists_ctx *x = ctx;
    const char *t = (const char *)c->r.text.data + 2;
    if (!word_is(t, "LIST"))
        return TR_OK;
    const char *flags_end = strchr(t, ')');
    size_t fl = flags_end ? (size_t)(flags_end - t) : 0;
    char flags[512];
    snprintf(flags, sizeof flags, "%.*s", (int)(fl < sizeof flags ? fl : sizeof flags - 1), t);
    if (strcasestr(flags, "\\NonExistent") == NULL && strcasestr(flags, "\\Noselect") == NULL)
        x->found = true;
    return TR_OK;
}

/* Create (and subscribe) the folder when it does not exist yet. */
static tr_err ensure_folder(struct session *s, const char *quoted, bool *known, char *err)
{
    if (*known)
        return TR_OK;
    struct exists_ctx x = {false};
    if (cmd_ok(&s->c, on_list_exists, &x, SMALL_LITERAL, err, "LIST \"\" %s", quoted) != TR_OK)
        return TR_EIO;
    if (!x.found) {
        /* another client (a second collector on the same mailbox) may have created it
         * since the LIST: NO [ALREADYEXISTS] (RFC 5530) is as good as OK */
        enum status st;
        if (conn_cmd(&s->c, NULL, NULL, SMALL_LITERAL, &st, err, "CREATE %s", quoted) != TR_OK)
            return TR_EIO;
        bool existed =
            st != ST_OK && strcasestr((const char *)s->c.last.data, "[ALREADYEXISTS]") != NULL;
        if (st != ST_OK && !existed) {
            tr_fail(err, TR_EPARSE, "%s: the server answered %.200s", s->c.cmd,
                    (const char *)s->c.last.data);
            return TR_EIO;
        }
        if (conn_cmd(&s->c, NULL, NULL, SMALL_LITERAL, &st, err, "SUBSCRIBE %s", quoted) != TR_OK)
            return TR_EIO;
        if (!existed)
            tr_info("imap %s: created folder %s", s->mb->url, quoted);
    }
    *known = true;
    return TR_OK;
}

static tr_err on_select(struct conn *c, void *ctx, char *err)
{
    (void)err;
    struct session *s = ctx;
    const char *t = (const char *)c->r.text.data + 2;
    const char *p = strcasestr(t, "[UIDVALIDITY ");
    if (word_is(t, "OK") && p) {
        struct cur k = {p + 13, 0};
        uint64_t v;
        if (take_number(&k, &v))
            s->uidvalidity = v;
    }
    return TR_OK;
}

static tr_err select_folder(struct session *s, const char *quoted, char *err)
{
    if (s->selected == quoted)
        return TR_OK;
    s->selected = NULL;
    tr_err e = cmd_ok(&s->c, on_select, s, SMALL_LITERAL, err, "SELECT %s", quoted);
    if (e == TR_OK)
        s->selected = quoted;
    return e;
}

static tr_err on_search(struct conn *c, void *ctx, char *err)
{
    struct uids *u = ctx;
    const char *t = (const char *)c->r.text.data + 2;
    if (!word_is(t, "SEARCH"))
        return TR_OK;
    struct cur k = {t + 6, 0};
    uint64_t v;
    while (take_number(&k, &v)) {
        if (v == 0 || v > UINT32_MAX)
            return tr_fail(err, TR_EIO, "SEARCH answered the UID %" PRIu64, v);
        if (!uids_add(u, (uint32_t)v))
            return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    return TR_OK;
}

/* ---- a round: sizes, bodies, commit, moves -------------------------------------------------- */

struct round;

struct msg {
    struct writer_request wreq; /* first: done() gets &wreq */
    struct round *round;
    uint32_t uid;
    uint64_t size;  /* RFC822.SIZE */
    bool submitted; /* handed to the writer */
};

struct round {
    struct session *s;
    bool failed;      /* the connection failed while its bodies were fetched */
    struct msg *msgs; /* ascending uid */
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
};

static void msg_done(struct writer_request *req)
{
    struct msg *m = (struct msg *)(void *)req;
    struct round *r = m->round;
    pthread_mutex_lock(&r->mu);
    if (--r->pending == 0)
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static struct msg *find_msg(struct round *r, uint64_t uid)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->msgs[mid].uid == uid)
            return &r->msgs[mid];
        if (r->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The source of a message: an RFC 5092 IMAP URL. */
static void source_name(const struct session *s, const struct msg *m, char *out, size_t n)
{
    snprintf(out, n, "%s;UIDVALIDITY=%" PRIu64 "/;UID=%" PRIu32, s->mb->url, s->uidvalidity,
             m->uid);
}

static void submit(struct round *r, struct msg *m, struct ingest_job *job)
{
    if (job == NULL) { /* out of memory: left unseen, retried */
        memset(&m->wreq.res, 0, sizeof m->wreq.res);
        ingest_result_tempfail(&m->wreq.res, "out of memory");
        return;
    }
    m->wreq.job = job;
    m->wreq.done = msg_done;
    m->submitted = true;
    pthread_mutex_lock(&r->mu);
    r->pending++;
    pthread_mutex_unlock(&r->mu);
    writer_submit(r->s->w, &m->wreq);
}

static void submit_too_big(struct round *r, struct msg *m, uint64_t size)
{
    char name[2048], reason[TR_ERRLEN];
    source_name(r->s, m, name, sizeof name);
    struct store_source src = {.kind = "imap", .name = name};
    snprintf(reason, sizeof reason, "message of %" PRIu64 " bytes is larger than %zu bytes", size,
             r->s->opt->lim.max_input);
    submit(r, m, ingest_prepare_failed(&src, TR_ETOOBIG, reason, (size_t)size));
}

/* The items of "* n FETCH (UID u RFC822.SIZE z BODY[] {N} ...)" that matter here. */
struct fetched {
    uint64_t uid, size;
    bool have_size;
    long body_lit; /* index of the body's literal in c->r, or -1 */
    bool body_nil;
};

static bool parse_fetch(struct conn *c, struct fetched *f)
{
    struct cur k = {(const char *)c->r.text.data + 2, 0};
    uint64_t seq;
    memset(f, 0, sizeof *f);
    f->body_lit = -1;
    if (!take_number(&k, &seq))
        return false;
    skip_sp(&k);
    if (!word_is(k.p, "FETCH"))
        return false;
    k.p += 5;
    skip_sp(&k);
    if (*k.p != '(')
        return false;
    k.p++;
    for (;;) {
        skip_sp(&k);
        if (*k.p == ')' || *k.p == 0)
            break;
        if (word_is(k.p, "UID")) {
            k.p += 3;
            if (!take_number(&k, &f->uid))
                return false;
        } else if (word_is(k.p, "RFC822.SIZE")) {
            k.p += 11;
            if (!take_number(&k, &f->size))
                return false;
            f->have_size = true;
        } else if (strncasecmp(k.p, "BODY[] ", 7) == 0) {
            k.p += 7;
            skip_sp(&k);
            if (*k.p == '{')
                f->body_lit = (long)k.lit;
            else if (strncasecmp(k.p, "NIL", 3) == 0)
                f->body_nil = true;
            if (!skip_value(&k, 0))
                return false;
        } else if (!skip_value(&k, 0) || !skip_value(&k, 0)) {
            return false;
        }
    }
    return f->uid != 0;
}

/* Sizes of the unseen messages: todo->v[i] has sizes[i] (UINT64_MAX: gone). */
struct sizes_ctx {
    const struct uids *todo;
    uint64_t *sizes;
};

static tr_err on_size(struct conn *c, void *ctx, char *err)
{
    (void)err;
    struct sizes_ctx *x = ctx;
    struct fetched f;
    if (!parse_fetch(c, &f) || !f.have_size)
        return TR_OK;
    size_t lo = 0, hi = x->todo->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->todo->v[mid] == f.uid) {
            x->sizes[mid] = f.size;
            break;
        }
        if (x->todo->v[mid] < f.uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return TR_OK;
}

/* A body: prepared and submitted to the writer at once. */
static tr_err on_body(struct conn *c, void *ctx, char *err)
{
    (void)err;
    struct round *r = ctx;
    struct fetched f;
    if (!parse_fetch(c, &f))
        return TR_OK;
    struct msg *m = find_msg(r, f.uid);
    if (m == NULL || m->submitted || (f.body_lit < 0 && !f.body_nil))
        return TR_OK; /* not asked for, or an unsolicited FETCH (flags changed elsewhere) */
    unsigned char *data = NULL;
    size_t len = 0;
    if (f.body_lit >= 0 && (size_t)f.body_lit < c->r.nlit) {
        struct buf *lit = &c->r.lit[f.body_lit];
        if (c->r.lit_size[f.body_lit] > r->s->opt->lim.max_input) {
            submit_too_big(r, m, c->r.lit_size[f.body_lit]);
            return TR_OK;
        }
        data = lit->data; /* the job takes the bytes */
        len = lit->len;
        buf_init(lit, 0);
    }
    if (data == NULL && (data = malloc(1)) == NULL) {
        submit(r, m, NULL);
        return TR_OK;
    }
    char name[2048];
    source_name(r->s, m, name, sizeof name);
    struct store_source src = {.kind = "imap", .name = name};
    submit(r, m, ingest_prepare(data, len, true, &src, &r->s->opt->lim));
    return TR_OK;
}

static void round_wait(struct round *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->pending > 0)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

/* Move uids to the folder (quoted): UID MOVE, or COPY + \Deleted + EXPUNGE.
 * COPYUID sets of the done folder go to s->done_uids. */
struct move_ctx {
    struct session *s;
    bool to_done;
    bool got_copyuid;
};

static void note_copyuid(struct move_ctx *x, const char *text)
{
    char set[SET_MAX + 8];
    if (!x->to_done || x->got_copyuid || !parse_copyuid(text, set, sizeof set))
        return; /* a MOVE may answer it untagged and tagged: take it once */
    x->got_copyuid = true;
    if (x->s->done_uids.len)
        buf_append(&x->s->done_uids, ",", 1);
    buf_append(&x->s->done_uids, set, strlen(set));
}

static tr_err on_move(struct conn *c, void *ctx, char *err)
{
    (void)err;
    const char *t = (const char *)c->r.text.data + 2;
    if (word_is(t, "OK"))
        note_copyuid(ctx, t);
    return TR_OK;
}

static tr_err move_uids(struct session *s, const uint32_t *v, size_t n, const char *folder,
                        bool to_done, char *err)
{
    char set[SET_MAX + 8];
    for (size_t from = 0; from < n;) {
        uid_set(v, n, &from, set);
        struct move_ctx x = {s, to_done, false};
        if (s->has_move) {
            if (cmd_ok(&s->c, on_move, &x, SMALL_LITERAL, err, "UID MOVE %s %s", set, folder) !=
                TR_OK)
                return TR_EIO;
            note_copyuid(&x, (const char *)s->c.last.data);
        } else {
            if (cmd_ok(&s->c, NULL, NULL, SMALL_LITERAL, err, "UID COPY %s %s", set, folder) !=
                TR_OK)
                return TR_EIO;
            note_copyuid(&x, (const char *)s->c.last.data);
            if (cmd_ok(&s->c, NULL, NULL, SMALL_LITERAL, err, "UID STORE %s %s", set,
                       "+FLAGS.SILENT (\\Deleted)") != TR_OK ||
                cmd_ok(&s->c, NULL, NULL, SMALL_LITERAL, err, "%s%s",
                       s->has_uidplus ? "UID EXPUNGE " : "EXPUNGE",
                       s->has_uidplus ? set : "") != TR_OK)
                return TR_EIO;
        }
        if (to_done && !x.got_copyuid)
            s->done_unknown = true;
    }
    return TR_OK;
}

static void log_settled(const struct session *s, const struct msg *m, const char *folder)
{
    const struct ingest_result *res = &m->wreq.res;
    if (res->outcome == INGEST_REJECTED) {
        tr_warn("imap %s: UID %" PRIu32 ": quarantined to %s: %s", s->mb->url, m->uid, folder,
                res->reason);
        return;
    }
    for (size_t i = 0; i < res->nreports; i++) {
        const struct ingest_report *rep = &res->reports[i];
        if (rep->outcome == INGEST_STORED || rep->outcome == INGEST_DUPLICATE)
            tr_info("imap %s: UID %" PRIu32 ": %s report %s from %s (%" PRId64 " ok, %" PRId64
                    " failed sessions) -> %s",
                    s->mb->url, m->uid, rep->outcome == INGEST_STORED ? "stored" : "duplicate",
                    rep->report_id ? rep->report_id : "?",
                    rep->organization_name ? rep->organization_name : "?", rep->successful_sessions,
                    rep->failed_sessions, folder);
    }
}

/* After the writer answered: move each message by its outcome. *tempfail
 * when storage was unavailable (the rest of the pass is left for later). */
static tr_err settle_round(struct session *s, struct round *r, bool *tempfail, char *err)
{
    struct uids done = {0}, quar = {0};
    tr_err rc = TR_OK;
    size_t deferred = 0;
    for (size_t i = 0; i < r->n; i++) {
        struct msg *m = &r->msgs[i];
        if (!m->submitted && m->wreq.res.outcome != INGEST_TEMPFAIL)
            continue; /* gone before it was fetched */
        s->st->messages++;
        bool ok = true;
        switch (m->wreq.res.outcome) {
        case INGEST_STORED:
        case INGEST_DUPLICATE:
            ok = uids_add(&done, m->uid);
            break;
        case INGEST_REJECTED:
            ok = uids_add(&quar, m->uid);
            break;
        case INGEST_UNREADABLE:
            tr_err_log("imap %s: UID %" PRIu32 ": unreadable, left unseen: %s", s->mb->url, m->uid,
                       m->wreq.res.reason);
            deferred++;
            break;
        case INGEST_SPOOLED: /* not for IMAP requests (not spoolable): as storage unavailable */
        case INGEST_TEMPFAIL:
            if (m->wreq.res.input_tempfail) { /* this message only (a DKIM key lookup) */
                tr_warn("imap %s: UID %" PRIu32 ": %s; left unseen and retried", s->mb->url, m->uid,
                        m->wreq.res.reason);
                deferred++;
                break;
            }
            if (!*tempfail)
                tr_warn("imap %s: storage unavailable (%s); messages stay unseen in %s and are "
                        "retried",
                        s->mb->url, m->wreq.res.reason, s->mb->folder);
            *tempfail = true;
            deferred++;
            break;
        }
        if (!ok) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (done.n && (ensure_folder(s, s->done, &s->done_ok, err) != TR_OK ||
                   move_uids(s, done.v, done.n, s->done, true, err) != TR_OK)) {
        rc = TR_EIO;
        goto out;
    }
    if (quar.n && (ensure_folder(s, s->quarantine, &s->quarantine_ok, err) != TR_OK ||
                   move_uids(s, quar.v, quar.n, s->quarantine, false, err) != TR_OK)) {
        rc = TR_EIO;
        goto out;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct msg *m = &r->msgs[i];
        if (!m->submitted)
            continue;
        enum ingest_outcome o = m->wreq.res.outcome;
        if (o == INGEST_STORED)
            s->st->stored++;
        else if (o == INGEST_DUPLICATE)
            s->st->duplicates++;
        else if (o == INGEST_REJECTED)
            s->st->quarantined++;
        if (o <= INGEST_REJECTED)
            log_settled(s, m,
                        o == INGEST_REJECTED ? quarantine_folder(s->opt) : done_folder(s->opt));
    }
out:
    if (rc != TR_OK) /* not moved: still unseen in the folder, a duplicate next time */
        deferred += done.n + quar.n;
    s->st->deferred += deferred;
    free(done.v);
    free(quar.v);
    return rc;
}

static void round_free(struct round *r)
{
    for (size_t i = 0; i < r->n; i++) {
        ingest_job_free(r->msgs[i].wreq.job);
        ingest_result_free(&r->msgs[i].wreq.res);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->msgs);
}

/* Start a round over uids[0..n) (present, with their sizes): fetch the bodies,
 * each submitted to the writer as it arrives. The round is returned even when
 * the connection failed (r->failed): what was submitted must still be
 * answered. NULL when out of memory. */
static struct round *round_start(struct session *s, const uint32_t *uids, const uint64_t *sizes,
                                 size_t n, char *err)
{
    struct round *r = calloc(1, sizeof *r);
    if (r == NULL || (r->msgs = calloc(n, sizeof *r->msgs)) == NULL) {
        free(r);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    r->s = s;
    r->n = n;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    /* bodies of those within max_message; the others are quarantined by size */
    struct uids want = {0};
    for (size_t i = 0; i < n; i++) {
        struct msg *m = &r->msgs[i];
        m->round = r;
        m->uid = uids[i];
        m->size = sizes[i];
        if (m->size > s->opt->lim.max_input)
            submit_too_big(r, m, m->size);
        else if (!uids_add(&want, m->uid) && !r->failed)
            r->failed = tr_fail(err, TR_ENOMEM, "out of memory") != TR_OK;
    }
    char set[SET_MAX + 8];
    for (size_t f = 0; !r->failed && f < want.n;) {
        uid_set(want.v, want.n, &f, set);
        if (cmd_ok(&s->c, on_body, r, s->opt->lim.max_input, err, "UID FETCH %s %s", set,
                   "(UID BODY.PEEK[])") != TR_OK)
            r->failed = true;
    }
    free(want.v);
    return r;
}

/* Wait until the writer has answered every message of r (after its commit),
 * then move them (unless the round failed), and free r. TR_OK or an error of
 * the connection (err set); *tempfail when storage was unavailable. */
static tr_err round_finish(struct round *r, bool *tempfail, char *err)
{
    struct session *s = r->s;
    round_wait(r);
    tr_err rc = TR_EIO;
    if (!r->failed) {
        rc = settle_round(s, r, tempfail, err);
    } else {
        /* the connection failed: nothing is moved; all stay unseen */
        for (size_t i = 0; i < r->n; i++)
            if (r->msgs[i].submitted)
                s->st->deferred++;
    }
    round_free(r);
    free(r);
    return rc;
}

/* Mark the messages moved to the done folder \Seen there. */
static void mark_done_seen(struct session *s)
{
    char err[TR_ERRLEN];
    struct uids u = {0};
    if (s->done_uids.len == 0 && !s->done_unknown)
        return;
    if (select_folder(s, s->done, err) != TR_OK)
        goto fail;
    if (s->done_unknown) { /* no COPYUID: everything unseen there was put there by us */
        if (cmd_ok(&s->c, on_search, &u, SMALL_LITERAL, err, "UID SEARCH UNSEEN") != TR_OK)
            goto fail;
        if (u.n > 1)
            qsort(u.v, u.n, sizeof *u.v, cmp_u32);
    }
    const char *p = (const char *)s->done_uids.data;
    while (p && *p) {
        size_t len = 0, last = 0;
        while (p[len] && len < SET_MAX) { /* cut at a comma */
            if (p[len] == ',')
                last = len;
            len++;
        }
        if (p[len] && last)
            len = last;
        char set[SET_MAX + 8];
        snprintf(set, sizeof set, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        if (cmd_ok(&s->c, NULL, NULL, SMALL_LITERAL, err, "UID STORE %s %s", set,
                   "+FLAGS.SILENT (\\Seen)") != TR_OK)
            goto fail;
    }
    for (size_t from = 0; from < u.n;) {
        char set[SET_MAX + 8];
        uid_set(u.v, u.n, &from, set);
        if (cmd_ok(&s->c, NULL, NULL, SMALL_LITERAL, err, "UID STORE %s %s", set,
                   "+FLAGS.SILENT (\\Seen)") != TR_OK)
            goto fail;
    }
    free(u.v);
    return;
fail:
    free(u.v);
    tr_warn("imap %s: cannot mark the processed messages seen in %s: %s", s->mb->url,
            done_folder(s->opt), err);
}

/* One pass over a mailbox. *tempfail when storage was unavailable. */
static enum imap_failure mailbox_pass(const struct mailbox *mb, struct writer *w,
                                      const struct imap_options *opt, struct imap_stats *st,
                                      atomic_bool *stop, bool *tempfail, char *err)
{
    struct session s = {.mb = mb, .opt = opt, .w = w, .st = st};
    buf_init(&s.done_uids, LINE_MAX_BYTES);
    struct uids todo = {0};
    uint64_t *sizes = NULL;
    char *folder = NULL;
    *tempfail = false;
    enum imap_failure f = conn_open(&s.c, mb, opt, stop, err);
    if (f != IMAP_OK)
        goto out;
    f = IMAP_EUNAVAILABLE;
    if (cmd_ok(&s.c, on_capability, &s, SMALL_LITERAL, err, "CAPABILITY") != TR_OK ||
        cmd_ok(&s.c, on_list_delim, &s, SMALL_LITERAL, err, "LIST \"\" \"\"") != TR_OK)
        goto out;
    folder = quote_folder(mb->folder, 0, false);
    s.done = quote_folder(done_folder(opt), s.delim, true);
    s.quarantine = quote_folder(quarantine_folder(opt), s.delim, true);
    if (folder == NULL || s.done == NULL || s.quarantine == NULL) {
        tr_fail(err, TR_ENOMEM, "out of memory");
        goto out;
    }
    tr_err e = select_folder(&s, folder, err);
    if (e == TR_EPARSE) { /* NO: most likely there is no such folder */
        char detail[TR_ERRLEN];
        snprintf(detail, sizeof detail, "%s", err);
        tr_fail(err, TR_EUSAGE, "cannot open the folder %s (%s)", mb->folder, detail);
        f = IMAP_ECONFIG;
        goto out;
    }
    if (e != TR_OK ||
        cmd_ok(&s.c, on_search, &todo, SMALL_LITERAL, err, "UID SEARCH UNSEEN UNDELETED") != TR_OK)
        goto out;
    if (todo.n == 0)
        goto finish;
    qsort(todo.v, todo.n, sizeof *todo.v, cmp_u32);
    tr_debug("imap %s: %zu unseen messages in %s", mb->url, todo.n, mb->folder);
    if ((sizes = malloc(todo.n * sizeof *sizes)) == NULL) {
        tr_fail(err, TR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < todo.n; i++)
        sizes[i] = UINT64_MAX;
    struct sizes_ctx sx = {&todo, sizes};
    char set[SET_MAX + 8];
    for (size_t from = 0; from < todo.n;) {
        uid_set(todo.v, todo.n, &from, set);
        if (cmd_ok(&s.c, on_size, &sx, SMALL_LITERAL, err, "UID FETCH %s %s", set,
                   "(UID RFC822.SIZE)") != TR_OK)
            goto out;
    }
    /* drop the messages that are gone (expunged elsewhere meanwhile) */
    size_t kept = 0;
    for (size_t i = 0; i < todo.n; i++)
        if (sizes[i] != UINT64_MAX) {
            todo.v[kept] = todo.v[i];
            sizes[kept++] = sizes[i];
        }
    todo.n = kept;
    /* Two rounds overlap: the next one's bodies are fetched while the writer
     * commits the one before, which is then moved. */
    bool failed = false;
    struct round *prev = NULL;
    for (size_t i = 0; i < todo.n && !failed && !*tempfail;) {
        if (stop && atomic_load(stop))
            break;
        /* a round: at most ROUND_MAX messages and ROUND_BYTES of bodies (at least one) */
        size_t k = 0, bytes = 0;
        while (i + k < todo.n && k < ROUND_MAX) {
            uint64_t z = sizes[i + k] > opt->lim.max_input ? 0 : sizes[i + k];
            if (k > 0 && bytes + z > ROUND_BYTES)
                break;
            bytes += (size_t)z;
            k++;
        }
        struct round *r = round_start(&s, todo.v + i, sizes + i, k, err);
        i += k;
        if (r == NULL || r->failed)
            failed = true;
        if (prev) {
            prev->failed |= failed; /* no moves over a broken connection */
            if (round_finish(prev, tempfail, err) != TR_OK)
                failed = true;
        }
        prev = r;
    }
    if (prev) {
        prev->failed |= failed;
        if (round_finish(prev, tempfail, err) != TR_OK)
            failed = true;
    }
    if (failed)
        goto out;
    mark_done_seen(&s);
finish:
    f = IMAP_OK;
    {
        enum status ignored;
        (void)conn_cmd(&s.c, NULL, NULL, SMALL_LITERAL, &ignored, err, "LOGOUT");
    }
out:
    conn_close(&s.c);
    free(folder);
    free(s.done);
    free(s.quarantine);
    free(todo.v);
    free(sizes);
    buf_free(&s.done_uids);
    return f;
}

enum imap_failure imap_run_once(char *const *urls, size_t n, struct writer *w,
                                const struct imap_options *opt, struct imap_stats *stats, char *err)
{
    enum imap_failure worst = IMAP_OK;
    for (size_t i = 0; i < n; i++) {
        struct mailbox mb;
        char derr[TR_ERRLEN];
        enum imap_failure f = IMAP_ECONFIG;
        bool tempfail = false;
        if (mailbox_parse(urls[i], opt, &mb, derr) == TR_OK) {
            mb.metric = metric_slot(mb.url);
            f = mailbox_pass(&mb, w, opt, stats, NULL, &tempfail, derr);
            metric_record(mb.metric, f == IMAP_OK);
            mailbox_free(&mb);
        }
        if (f != IMAP_OK) {
            tr_err_log("imap %s: %s", urls[i], derr);
            if (worst == IMAP_OK)
                tr_fail(err, TR_EIO, "%s: %s", urls[i], derr);
            if (f > worst)
                worst = f;
        }
    }
    return worst;
}

/* ---- the watcher ---------------------------------------------------------------------------- */

struct imap_watch {
    struct mailbox *mbs;
    size_t n;
    struct writer *w;
    struct imap_options opt;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC: imap_watch_stop wakes the thread */
    pthread_t thread;
    struct imap_stats stats;
};

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void poll_mailbox(struct imap_watch *iw, struct mailbox *mb)
{
    char err[TR_ERRLEN];
    bool tempfail = false;
    unsigned poll_s = iw->opt.poll_seconds;
    enum imap_failure f = mailbox_pass(mb, iw->w, &iw->opt, &iw->stats, &iw->stop, &tempfail, err);
    if (atomic_load(&iw->stop))
        return;
    metric_record(mb->metric, f == IMAP_OK);
    if (f != IMAP_OK) {
        unsigned cap = poll_s > 60 ? poll_s : 60;
        mb->backoff = mb->backoff ? mb->backoff * 2 : RETRY_MIN;
        if (mb->backoff > cap)
            mb->backoff = cap;
        mb->next = now_s() + mb->backoff;
        mb->logged_ok = false;
        tr_err_log("imap %s: %s; retrying in %u s", mb->url, err, mb->backoff);
        return;
    }
    if (!mb->logged_ok) {
        tr_info("imap %s: polling %s every %u s", mb->url, mb->folder, poll_s);
        mb->logged_ok = true;
    }
    mb->backoff = 0;
    if (tempfail) {
        mb->tempfail = mb->tempfail ? mb->tempfail * 2 : 1;
        if (mb->tempfail > TEMPFAIL_MAX)
            mb->tempfail = TEMPFAIL_MAX;
        mb->next = now_s() + mb->tempfail;
        tr_debug("imap %s: retrying in %u s", mb->url, mb->tempfail);
    } else {
        mb->tempfail = 0;
        mb->next = now_s() + poll_s;
    }
}

static void *watch_main(void *arg)
{
    struct imap_watch *iw = arg;
    pthread_mutex_lock(&iw->mu);
    while (!atomic_load(&iw->stop)) {
        time_t now = now_s();
        for (size_t i = 0; i < iw->n && !atomic_load(&iw->stop); i++) {
            if (iw->mbs[i].next > now)
                continue;
            pthread_mutex_unlock(&iw->mu);
            poll_mailbox(iw, &iw->mbs[i]);
            pthread_mutex_lock(&iw->mu);
        }
        time_t until = 0;
        for (size_t i = 0; i < iw->n; i++)
            if (i == 0 || iw->mbs[i].next < until)
                until = iw->mbs[i].next;
        if (atomic_load(&iw->stop) || until <= now_s())
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += until - now_s();
        pthread_cond_timedwait(&iw->cv, &iw->mu, &ts);
    }
    pthread_mutex_unlock(&iw->mu);
    return NULL;
}

struct imap_watch *imap_watch_start(char *const *urls, size_t n, struct writer *w,
                                    const struct imap_options *opt, char *err)
{
    struct imap_watch *iw = calloc(1, sizeof *iw);
    if (iw == NULL || (iw->mbs = calloc(n ? n : 1, sizeof *iw->mbs)) == NULL) {
        free(iw);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    iw->w = w;
    iw->opt = *opt;
    if (iw->opt.poll_seconds == 0)
        iw->opt.poll_seconds = 300;
    atomic_init(&iw->stop, false);
    for (size_t i = 0; i < n; i++) {
        char detail[TR_ERRLEN];
        if (mailbox_parse(urls[i], &iw->opt, &iw->mbs[i], detail) != TR_OK) {
            tr_fail(err, TR_EUSAGE, "%s", detail);
            goto fail;
        }
        iw->n++;
        iw->mbs[i].metric = metric_slot(iw->mbs[i].url);
    }
    pthread_mutex_init(&iw->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&iw->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&iw->thread, NULL, watch_main, iw) != 0) {
        tr_fail(err, TR_ENOMEM, "imap: cannot start the polling thread");
        pthread_mutex_destroy(&iw->mu);
        pthread_cond_destroy(&iw->cv);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        tr_info("imap %s: watching %s every %u s (done folder %s, quarantine folder %s)",
                iw->mbs[i].url, iw->mbs[i].folder, iw->opt.poll_seconds, done_folder(&iw->opt),
                quarantine_folder(&iw->opt));
    return iw;
fail:
    for (size_t i = 0; i < iw->n; i++)
        mailbox_free(&iw->mbs[i]);
    free(iw->mbs);
    free(iw);
    return NULL;
}

void imap_watch_stop(struct imap_watch *iw, struct imap_stats *stats)
{
    if (iw == NULL)
        return;
    pthread_mutex_lock(&iw->mu);
    atomic_store(&iw->stop, true);
    pthread_cond_signal(&iw->cv);
    pthread_mutex_unlock(&iw->mu);
    pthread_join(iw->thread, NULL);
    if (stats)
        *stats = iw->stats;
    for (size_t i = 0; i < iw->n; i++)
        mailbox_free(&iw->mbs[i]);
    pthread_mutex_destroy(&iw->mu);
    pthread_cond_destroy(&iw->cv);
    free(iw->mbs);
    free(iw);
}
