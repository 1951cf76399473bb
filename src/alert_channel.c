/* alert_channel.c: the channels of alert_channel.h: parsing a configured
 * value, routing by domain, and sending: a webhook POST and SMTP with
 * libcurl, or a sendmail command run without a shell.
 *
 * Every transfer is bounded in time (connect 10 s, the whole 30 s; sendmail
 * 60 s) and in what is read back (an answer is read for its first bytes, to
 * say why it failed), follows no redirects and speaks only the protocols its
 * URL needs. A stop flag cuts short a transfer that has not begun to send,
 * so `serve` stops promptly without sending an alert twice. */
#define _GNU_SOURCE /* pipe2, syscall, strcasecmp */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tlsrptd/alert_channel.h"

#define CONNECT_TIMEOUT  10L
#define TRANSFER_TIMEOUT 30L
#define SENDMAIL_TIMEOUT 60
#define ANSWER_KEEP      200 /* bytes of an answer kept for the error message */
#define SENDMAIL_ARGS    32

/* ---- parsing -------------------------------------------------------------------------------- */

static uint32_t fnv1a32(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static bool domain_pattern_ok(const char *d)
{
    if (strncmp(d, "*.", 2) == 0)
        d += 2;
    size_t n = strlen(d);
    if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.')
        return false;
    for (; *d; d++)
        if (!isalnum((unsigned char)*d) && *d != '-' && *d != '.' && *d != '_')
            return false;
    return true;
}

static bool address_ok(const char *a)
{
    const char *at = strchr(a, '@');
    size_t n = strlen(a);
    if (at == NULL || at == a || at[1] == 0 || strchr(at + 1, '@') || n > 254)
        return false;
    for (; *a; a++)
        if ((unsigned char)*a <= ' ' || *a == '<' || *a == '>' || *a == ',' || *a == ';' ||
            *a == '"' || *a == '\\' || (unsigned char)*a == 0x7f)
            return false;
    return true;
}

tr_err alert_channel_parse(enum alert_channel_kind kind, const char *value,
                           struct alert_channel *out, char *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    const char *key = kind == ALERT_CHANNEL_WEBHOOK ? "alert_webhook" : "alert_email";
    char *copy = strdup(value);
    if (copy == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    char *save = NULL, *tok = strtok_r(copy, " \t", &save);
    tr_err rc = TR_OK;
    if (tok == NULL) {
        rc = tr_fail(err, TR_EUSAGE, "%s: empty", key);
        goto done;
    }
    char name[600];
    if (kind == ALERT_CHANNEL_WEBHOOK) {
        bool https = strncasecmp(tok, "https://", 8) == 0;
        if (!https && strncasecmp(tok, "http://", 7) != 0) {
            rc =
                tr_fail(err, TR_EUSAGE, "%s: '%.100s' is not an http:// or https:// URL", key, tok);
            goto done;
        }
        const char *host = tok + (https ? 8 : 7);
        size_t hl = strcspn(host, "/?#");
        const char *at = memchr(host, '@', hl); /* no user:password in names */
        if (at) {
            hl -= (size_t)(at + 1 - host);
            host = at + 1;
        }
        if (hl == 0 || hl > 255) {
            rc = tr_fail(err, TR_EUSAGE, "%s: '%.100s' has no host", key, tok);
            goto done;
        }
        snprintf(name, sizeof name, "webhook %.*s #%08x", (int)hl, host, fnv1a32(tok));
    } else {
        if (!address_ok(tok)) {
            rc = tr_fail(err, TR_EUSAGE, "%s: '%.100s' is not a mail address", key, tok);
            goto done;
        }
        snprintf(name, sizeof name, "email %s", tok);
    }
    out->target = strdup(tok);
    out->name = strdup(name);
    if (out->target == NULL || out->name == NULL) {
        rc = tr_fail(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    while ((tok = strtok_r(NULL, " \t,", &save)) != NULL) {
        for (char *p = tok; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        size_t n = strlen(tok);
        if (n && tok[n - 1] == '.')
            tok[n - 1] = 0;
        if (!domain_pattern_ok(tok)) {
            rc = tr_fail(err, TR_EUSAGE, "%s: '%.100s' is not a domain or *.domain", key, tok);
            goto done;
        }
        if (out->ndomains == ALERT_CHANNEL_MAX_DOMAINS) {
            rc = tr_fail(err, TR_EUSAGE, "%s: at most %d domains per channel", key,
                         ALERT_CHANNEL_MAX_DOMAINS);
            goto done;
        }
        if ((out->domains[out->ndomains] = strdup(tok)) == NULL) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            goto done;
        }
        out->ndomains++;
    }
done:
    free(copy);
    if (rc != TR_OK)
        alert_channel_free(out);
    return rc;
}

void alert_channel_free(struct alert_channel *c)
{
    free(c->target);
    free(c->name);
    for (size_t i = 0; i < c->ndomains; i++)
        free(c->domains[i]);
    memset(c, 0, sizeof *c);
}

bool alert_channel_wants(const struct alert_channel *c, const char *domain)
{
    if (c->ndomains == 0)
        return true;
    size_t dl = strlen(domain);
    for (size_t i = 0; i < c->ndomains && dl; i++) {
        const char *p = c->domains[i];
        if (strncmp(p, "*.", 2) == 0) {
            size_t pl = strlen(p + 1); /* ".example.org" */
            if (dl > pl && strcasecmp(domain + dl - pl, p + 1) == 0)
                return true;
        } else if (strcasecmp(domain, p) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- libcurl -------------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct transfer {
    const volatile int *stop;
    const unsigned char *body; /* SMTP: the message being uploaded */
    size_t len, off;
    char answer[ANSWER_KEEP + 1];
    size_t answer_len;
};

static size_t keep_answer(char *p, size_t size, size_t n, void *cls)
{
    struct transfer *t = cls;
    size_t bytes = size * n, room = ANSWER_KEEP - t->answer_len;
    memcpy(t->answer + t->answer_len, p, bytes < room ? bytes : room);
    t->answer_len += bytes < room ? bytes : room;
    t->answer[t->answer_len] = 0;
    return bytes;
}

static size_t give_body(char *p, size_t size, size_t n, void *cls)
{
    struct transfer *t = cls;
    size_t room = size * n, left = t->len - t->off;
    size_t k = left < room ? left : room;
    memcpy(p, t->body + t->off, k);
    t->off += k;
    return k;
}

/* Stop cuts short only a transfer that has sent nothing yet (still
 * connecting): one that has begun may already have been taken, and cutting
 * it would send the alert again at the next start. It ends within its
 * timeout. */
static int check_stop(void *cls, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                      curl_off_t ulnow)
{
    (void)dltotal, (void)ultotal;
    const struct transfer *t = cls;
    return t->stop && *t->stop && ulnow == 0 && dlnow == 0 ? 1 : 0;
}

/* A handle with the options every transfer shares. */
static CURL *easy(struct transfer *t, char *errbuf)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return NULL;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, TRANSFER_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, check_stop);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_answer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tlsrptd/" TLSRPTD_VERSION);
    return h;
}

/* The answer's first line, printable, for an error message. */
static const char *answer_line(struct transfer *t)
{
    for (size_t i = 0; i < t->answer_len; i++)
        if (t->answer[i] == '\n' || t->answer[i] == '\r') {
            t->answer[i] = 0;
            break;
        } else if ((unsigned char)t->answer[i] < 0x20 || (unsigned char)t->answer[i] >= 0x7f) {
            t->answer[i] = '?';
        }
    return t->answer;
}

static tr_err post_webhook(const char *url, const char *json, const volatile int *stop, char *err)
{
    struct transfer t = {stop, NULL, 0, 0, "", 0};
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = easy(&t, errbuf);
    if (h == NULL)
        return tr_fail(err, TR_EIO, "libcurl could not start");
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdr)
        hdr = curl_slist_append(hdr, "Expect:"); /* no 1 s wait for a 100 Continue */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    tr_err rc = TR_OK;
    if (cc != CURLE_OK)
        rc = tr_fail(err, TR_EIO, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
    else if (status < 200 || status > 299)
        rc =
            tr_fail(err, TR_EIO, "HTTP %ld%s%s", status, t.answer_len ? ": " : "", answer_line(&t));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

static tr_err send_smtp(const char *relay, const char *from, const char *to,
                        const struct buf *message, const volatile int *stop, char *err)
{
    struct transfer t = {stop, message->data, message->len, 0, "", 0};
    char errbuf[CURL_ERROR_SIZE], url[600], mfrom[300], rcpt[300];
    CURL *h = easy(&t, errbuf);
    if (h == NULL)
        return tr_fail(err, TR_EIO, "libcurl could not start");
    bool has_scheme =
        strncasecmp(relay, "smtp://", 7) == 0 || strncasecmp(relay, "smtps://", 8) == 0;
    snprintf(url, sizeof url, "%s%s", has_scheme ? "" : "smtp://", relay);
    snprintf(mfrom, sizeof mfrom, "<%s>", from);
    snprintf(rcpt, sizeof rcpt, "<%s>", to);
    struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, mfrom);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, give_body);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)message->len);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    tr_err rc = TR_OK;
    if (cc != CURLE_OK && code >= 400)
        rc = tr_fail(err, TR_EIO, "SMTP %ld from %s: %s", code, relay,
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
    else if (cc != CURLE_OK)
        rc = tr_fail(err, TR_EIO, "SMTP to %s: %s", relay,
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
    curl_slist_free_all(rcpts);
    curl_easy_cleanup(h);
    return rc;
}

/* ---- sendmail ------------------------------------------------------------------------------- */

/* The absolute path of a command (looked up in PATH when it has no '/'). */
static bool find_command(const char *cmd, char *out, size_t n)
{
    if (strchr(cmd, '/')) {
        snprintf(out, n, "%s", cmd);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/sbin:/usr/bin:/sbin:/bin";
    while (*path) {
        size_t dl = strcspn(path, ":");
        if (dl && (size_t)snprintf(out, n, "%.*s/%s", (int)dl, path, cmd) < n &&
            access(out, X_OK) == 0)
            return true;
        path += dl + (path[dl] == ':');
    }
    return false;
}

/* In the child: standard input from in, output to out, nothing else open,
 * default signals; then the command. Async-signal-safe calls only. */
static void exec_child(int in, int out, const char *path, char *const argv[])
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(71);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
        for (int fd = 3; fd < 65536; fd++)
            close(fd);
    execv(path, argv);
    _exit(127);
}

static tr_err run_sendmail(const char *command, const struct buf *message, const volatile int *stop,
                           char *err)
{
    char copy[1024], path[1024];
    char *argv[SENDMAIL_ARGS + 1];
    size_t argc = 0;
    snprintf(copy, sizeof copy, "%s", command);
    char *save = NULL;
    for (char *tok = strtok_r(copy, " \t", &save); tok && argc < SENDMAIL_ARGS;
         tok = strtok_r(NULL, " \t", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    if (argc == 0)
        return tr_fail(err, TR_EUSAGE, "alert_sendmail is empty");
    if (!find_command(argv[0], path, sizeof path))
        return tr_fail(err, TR_EIO, "sendmail command %s: not found or not executable", argv[0]);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return tr_fail(err, TR_EIO, "pipe: %s", strerror(errno));
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]);
        return tr_fail(err, TR_EIO, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0)
        exec_child(in[0], out[1], path, argv);
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return tr_fail(err, TR_EIO, "fork: %s", strerror(errno));
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    char answer[ANSWER_KEEP + 1];
    size_t alen = 0, off = 0;
    time_t deadline = time(NULL) + SENDMAIL_TIMEOUT;
    int wfd = in[1], rfd = out[0];
    bool timed_out = false;
    while (rfd >= 0) {
        if (wfd >= 0 && off == message->len) {
            close(wfd);
            wfd = -1;
        }
        struct pollfd p[2] = {{rfd, POLLIN, 0}, {wfd, POLLOUT, 0}};
        int left = (int)(deadline - time(NULL));
        if (left <= 0 || (stop && *stop && off == 0)) { /* a message begun is let finish */
            timed_out = true;
            break;
        }
        if (poll(p, wfd >= 0 ? 2 : 1, left > 1 ? 1000 : left * 1000) < 0 && errno != EINTR)
            break;
        if (wfd >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(wfd, message->data + off, message->len - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                close(wfd); /* it stopped reading: its exit status says why */
                wfd = -1;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[512];
            ssize_t r = read(rfd, chunk, sizeof chunk);
            if (r <= 0) {
                close(rfd);
                rfd = -1;
            } else if (alen < ANSWER_KEEP) {
                size_t k = (size_t)r < ANSWER_KEEP - alen ? (size_t)r : ANSWER_KEEP - alen;
                memcpy(answer + alen, chunk, k);
                alen += k;
            }
        }
    }
    if (wfd >= 0)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    answer[alen] = 0;
    for (size_t i = 0; i < alen; i++)
        if (answer[i] == '\n' || answer[i] == '\r')
            answer[i] = i + 1 < alen ? ' ' : 0;
        else if ((unsigned char)answer[i] < 0x20)
            answer[i] = '?';
    if (timed_out)
        return tr_fail(err, TR_EIO, "%s did not finish within %d s", argv[0], SENDMAIL_TIMEOUT);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && off == message->len)
        return TR_OK;
    if (WIFSIGNALED(status))
        return tr_fail(err, TR_EIO, "%s died of signal %d%s%s", argv[0], WTERMSIG(status),
                       alen ? ": " : "", answer);
    return tr_fail(err, TR_EIO, "%s exited %d%s%s", argv[0], WEXITSTATUS(status), alen ? ": " : "",
                   answer);
}

/* ---- sending -------------------------------------------------------------------------------- */

tr_err alert_channel_send(const struct alert_channel *c, const struct alert_mailer *m,
                          const struct alert_msg *msgs, size_t n, const volatile int *stop,
                          char *err)
{
    if (c->kind == ALERT_CHANNEL_WEBHOOK) {
        json_t *body = alert_message_webhook(msgs, n, m->host);
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (text == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        tr_err rc = post_webhook(c->target, text, stop, err);
        free(text);
        return rc;
    }
    bool smtp = m->smtp && m->smtp[0];
    struct buf mail;
    buf_init(&mail, (size_t)16 << 20);
    tr_err rc = alert_message_mail(msgs, n, m->from, c->target, m->host, (int64_t)time(NULL),
                                   smtp ? "\r\n" : "\n", &mail);
    if (rc != TR_OK)
        rc = tr_fail(err, rc, "the message is too large");
    else if (smtp)
        rc = send_smtp(m->smtp, m->from, c->target, &mail, stop, err);
    else
        rc = run_sendmail(m->sendmail, &mail, stop, err);
    buf_free(&mail);
    return rc;
}
