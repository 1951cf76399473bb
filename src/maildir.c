/* maildir.c: the Maildir reader (see maildir.h for the contract).
 *
 * A pass over one Maildir lists new/, sorts the names (delivery order for the
 * usual time-first names) and works through them in rounds of ROUND_MAX:
 * the messages of a round are read and prepared by up to opt->threads
 * threads and submitted to the writer as soon as each is ready; when the
 * writer has answered every one of them (after its commit), the pass moves
 * each file according to its outcome. Files are opened relative to a
 * directory descriptor and moved with renameat2(RENAME_NOREPLACE), so an
 * existing file is never replaced. A file is opened without following a
 * symbolic link and without blocking (a FIFO swapped into new/ must not hang
 * the reader), and read only when it is a regular file with one link (a hard
 * link to a file of someone else's is not read into the quarantine); anything
 * else is moved to the quarantine folder, unread, with the reason. */
#define _GNU_SOURCE /* renameat2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/log.h"
#include "tlsrptd/maildir.h"
#include "tlsrptd/prom.h"

#define ROUND_MAX     256 /* messages prepared and committed per round */
#define BACKOFF_MAX   60  /* seconds between retries while storage is unavailable */
#define THREADS_MAX   4
#define NAME_MAX_KEEP 255

/* ---- one Maildir ---------------------------------------------------------------------------- */

struct mdir {
    char *path;   /* as given */
    char *qpath;  /* quarantine folder */
    int new_fd;   /* DIR/new */
    int cur_fd;   /* DIR/cur */
    int qnew_fd;  /* quarantine/new */
    int wd;       /* inotify watch on new/, or -1 */
    bool dirty;   /* something arrived (or is to be retried) */
    time_t retry; /* not before this (monotonic seconds), after a deferral */
    unsigned backoff;
};

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p) {
        memcpy(p, a, la);
        p[la] = '/';
        memcpy(p + la + 1, b, lb + 1);
    }
    return p;
}

static char *quarantine_path(const char *dir, const char *quarantine)
{
    return quarantine ? strdup(quarantine) : path_join(dir, ".Quarantine");
}

/* mkdir that accepts an existing directory */
static bool ensure_dir(const char *path, char *err)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return true;
        tr_fail(err, TR_EIO, "%s: not a directory", path);
        return false;
    }
    tr_fail(err, TR_EIO, "%s: cannot create: %s", path, strerror(errno));
    return false;
}

static bool is_dir(const char *dir, const char *sub, dev_t *dev, char *err)
{
    char *p = path_join(dir, sub);
    struct stat sb;
    bool ok = p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!ok)
        tr_fail(err, TR_EIO, "%s is not a Maildir: %s/ %s", dir, sub,
                p == NULL         ? "out of memory"
                : errno == ENOENT ? "is missing"
                                  : strerror(errno));
    else if (dev)
        *dev = sb.st_dev;
    free(p);
    return ok;
}

tr_err maildir_prepare_dir(const char *dir, const char *quarantine, char *err)
{
    dev_t dev_new, dev_q;
    if (!is_dir(dir, "new", &dev_new, err) || !is_dir(dir, "cur", NULL, err) ||
        !is_dir(dir, "tmp", NULL, err))
        return TR_EIO;
    char *q = quarantine_path(dir, quarantine);
    if (q == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    bool ok = ensure_dir(q, err);
    static const char *const subs[] = {"tmp", "new", "cur"};
    for (size_t i = 0; ok && i < 3; i++) {
        char *p = path_join(q, subs[i]);
        ok = p && ensure_dir(p, err);
        free(p);
    }
    if (ok) {
        /* Maildir++ (Dovecot, Courier): a folder inside a Maildir carries this marker */
        char *marker = path_join(q, "maildirfolder");
        int fd = marker ? open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) : -1;
        if (fd >= 0)
            close(fd);
        free(marker);
        if (!is_dir(q, "new", &dev_q, err)) {
            ok = false;
        } else if (dev_q != dev_new) {
            tr_fail(err, TR_EUSAGE,
                    "quarantine folder %s is on another file system than %s: messages are moved "
                    "by rename, so it must be on the same one",
                    q, dir);
            ok = false;
        }
    }
    free(q);
    return ok ? TR_OK : TR_EIO;
}

static void mdir_close(struct mdir *d)
{
    if (d->new_fd >= 0)
        close(d->new_fd);
    if (d->cur_fd >= 0)
        close(d->cur_fd);
    if (d->qnew_fd >= 0)
        close(d->qnew_fd);
    free(d->path);
    free(d->qpath);
    memset(d, 0, sizeof *d);
    d->new_fd = d->cur_fd = d->qnew_fd = d->wd = -1;
}

static int open_dir(const char *dir, const char *sub)
{
    char *p = path_join(dir, sub);
    int fd = p ? open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(p);
    return fd;
}

static tr_err mdir_open(struct mdir *d, const char *dir, const char *quarantine, char *err)
{
    memset(d, 0, sizeof *d);
    d->new_fd = d->cur_fd = d->qnew_fd = d->wd = -1;
    tr_err rc = maildir_prepare_dir(dir, quarantine, err);
    if (rc != TR_OK)
        return rc;
    d->path = strdup(dir);
    d->qpath = quarantine_path(dir, quarantine);
    if (d->path == NULL || d->qpath == NULL) {
        mdir_close(d);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    d->new_fd = open_dir(dir, "new");
    d->cur_fd = open_dir(dir, "cur");
    d->qnew_fd = open_dir(d->qpath, "new");
    if (d->new_fd < 0 || d->cur_fd < 0 || d->qnew_fd < 0) {
        tr_fail(err, TR_EIO, "%s: cannot open new/, cur/ or the quarantine: %s", dir,
                strerror(errno));
        mdir_close(d);
        return TR_EIO;
    }
    d->dirty = true;
    return TR_OK;
}

/* ---- listing new/ --------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the entries of new/ but directories and dot files, sorted. */
static tr_err list_new(struct mdir *d, char ***out, size_t *n, char *err)
{
    *out = NULL;
    *n = 0;
    int fd = dup(d->new_fd);
    DIR *dh = fd >= 0 ? fdopendir(fd) : NULL;
    if (dh == NULL) {
        if (fd >= 0)
            close(fd);
        return tr_fail(err, TR_EIO, "%s/new: %s", d->path, strerror(errno));
    }
    rewinddir(dh);
    size_t cap = 0;
    char **names = NULL;
    struct dirent *e;
    tr_err rc = TR_OK;
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (e->d_type == DT_DIR)
            continue; /* anything else is a message, or goes to the quarantine */
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (nn == NULL) {
                rc = tr_fail(err, TR_ENOMEM, "out of memory");
                break;
            }
            names = nn;
            cap = ncap;
        }
        if ((names[*n] = strdup(e->d_name)) == NULL) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            break;
        }
        (*n)++;
    }
    closedir(dh);
    if (rc != TR_OK) {
        for (size_t i = 0; i < *n; i++)
            free(names[i]);
        free(names);
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort(names, *n, sizeof *names, cmp_names);
    *out = names;
    return TR_OK;
}

/* ---- a round: prepare, submit, wait for the commit ------------------------------------------ */

struct round;

struct msg {
    struct writer_request wreq; /* first: done() gets &wreq */
    struct round *round;
    const char *name;
    bool submitted;
    bool vanished; /* ENOENT when opened: another reader took it */
    bool read;     /* a regular file with one link, read: 0600 once quarantined */
    dev_t dev;     /* of the file read */
    ino_t ino;
};

struct round {
    struct mdir *d;
    struct writer *w;
    const struct maildir_options *opt;
    struct msg *msgs;
    size_t n;
    atomic_size_t next; /* next message to prepare */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending; /* submitted, not yet answered */
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

static const char *file_type(mode_t mode)
{
    return S_ISFIFO(mode)   ? "a FIFO"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISDIR(mode)  ? "a directory"
                            : "not a regular file";
}

/* Read new/<name> and prepare it. NULL job with m->vanished when the file is gone. */
static struct ingest_job *prepare_msg(struct round *r, struct msg *m)
{
    const struct ingest_limits *lim = &r->opt->lim;
    struct store_source src = {.kind = "maildir", .name = m->name};
    char reason[TR_ERRLEN];
    /* O_NONBLOCK: opening a FIFO must not wait for a writer */
    int fd =
        openat(r->d->new_fd, m->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) {
            m->vanished = true;
            return NULL;
        }
        if (errno == ELOOP) /* refused, unread: moved to the quarantine */
            return ingest_prepare_failed(&src, TR_EINVAL, "a symbolic link: not followed", 0);
        snprintf(reason, sizeof reason, "%s/new/%s: %s", r->d->path, m->name, strerror(errno));
        return ingest_prepare_failed(&src, TR_EIO, reason, 0);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        snprintf(reason, sizeof reason, "%s/new/%s: %s", r->d->path, m->name, strerror(errno));
        close(fd);
        return ingest_prepare_failed(&src, TR_EIO, reason, 0);
    }
    if (!S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
        if (S_ISREG(sb.st_mode))
            snprintf(reason, sizeof reason,
                     "has %ju links (a hard link to another file?): not read",
                     (uintmax_t)sb.st_nlink);
        else
            snprintf(reason, sizeof reason, "%s, not a regular file: not read",
                     file_type(sb.st_mode));
        close(fd);
        return ingest_prepare_failed(&src, TR_EINVAL, reason, 0);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    m->read = true;
    m->dev = sb.st_dev;
    m->ino = sb.st_ino;
    if ((size_t)sb.st_size > lim->max_input) {
        snprintf(reason, sizeof reason, "message of %lld bytes is larger than %zu bytes",
                 (long long)sb.st_size, lim->max_input);
        close(fd);
        return ingest_prepare_failed(&src, TR_ETOOBIG, reason, (size_t)sb.st_size);
    }
    struct buf b;
    buf_init(&b, lim->max_input);
    (void)buf_reserve(&b, (size_t)sb.st_size);
    tr_err e = buf_read_fd(&b, fd, m->name, reason);
    close(fd);
    if (e != TR_OK) {
        size_t size = b.len;
        buf_free(&b);
        return ingest_prepare_failed(&src, e == TR_ETOOBIG ? TR_ETOOBIG : e, reason, size);
    }
    return ingest_prepare(b.data, b.len, true, &src, lim); /* takes b.data */
}

static void *prepare_worker(void *arg)
{
    struct round *r = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->n)
            break;
        struct msg *m = &r->msgs[i];
        m->wreq.job = prepare_msg(r, m);
        if (m->wreq.job == NULL) {
            if (!m->vanished) {
                memset(&m->wreq.res, 0, sizeof m->wreq.res);
                ingest_result_tempfail(&m->wreq.res, "out of memory");
            }
            continue;
        }
        m->wreq.done = msg_done;
        m->submitted = true;
        pthread_mutex_lock(&r->mu);
        r->pending++;
        pthread_mutex_unlock(&r->mu);
        writer_submit(r->w, &m->wreq);
    }
    return NULL;
}

/* ---- moving files after the commit ---------------------------------------------------------- */

/* cur/ name: the info ":2,<flags>" with S added (flags stay sorted). */
static void seen_name(const char *name, char *out, size_t outlen)
{
    const char *info = strstr(name, ":2,");
    if (info == NULL) {
        snprintf(out, outlen, "%s:2,S", name);
        return;
    }
    const char *flags = info + 3;
    if (strchr(flags, 'S')) {
        snprintf(out, outlen, "%s", name);
        return;
    }
    size_t before = 0;
    while (flags[before] && flags[before] < 'S')
        before++;
    snprintf(out, outlen, "%.*s%.*sS%s", (int)(flags - name), name, (int)before, flags,
             flags + before);
}

/* Move from_fd/<name> to to_fd/<target> without replacing anything there
 * (renameat2 RENAME_NOREPLACE; link + unlink where the file system lacks it).
 * On a clash the target gets a unique suffix before its info part; used is
 * the name it got. Returns 0 or an errno. */
static int move_file(int from_fd, const char *name, int to_fd, const char *target, char *used,
                     size_t usedlen)
{
    snprintf(used, usedlen, "%s", target);
    for (unsigned attempt = 0; attempt < 100; attempt++) {
        int rc = renameat2(from_fd, name, to_fd, used, RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            rc = linkat(from_fd, name, to_fd, used, 0);
            if (rc == 0 && unlinkat(from_fd, name, 0) != 0)
                return errno;
        }
        if (rc == 0)
            return 0;
        if (errno != EEXIST)
            return errno;
        const char *info = strstr(target, ":2,");
        int base = info ? (int)(info - target) : (int)strlen(target);
        snprintf(used, usedlen, "%.*s.%ld_%u%s", base, target, (long)getpid(), attempt,
                 info ? info : "");
    }
    return EEXIST;
}

/* A quarantined message is readable by its owner only (it may hold anything).
 * Only the file that was read, checked again by identity, and without
 * following a link: the quarantine folder is no place to trust a name. */
static void restrict_mode(int dir_fd, const char *name, const struct msg *m)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    struct stat sb;
    if (fd < 0)
        return;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_nlink == 1 && sb.st_dev == m->dev &&
        sb.st_ino == m->ino && (sb.st_mode & 07777) != 0600)
        (void)fchmod(fd, 0600);
    close(fd);
}

static void settle(struct mdir *d, struct msg *m, struct maildir_stats *st, bool *deferred)
{
    const struct ingest_result *res = &m->wreq.res;
    char target[NAME_MAX_KEEP + 64], used[NAME_MAX_KEEP + 96];
    int e;
    if (m->vanished) {
        st->vanished++;
        tr_debug("maildir %s: %s is gone from new/ (taken by another reader)", d->path, m->name);
        return;
    }
    st->messages++;
    switch (res->outcome) {
    case INGEST_STORED:
    case INGEST_DUPLICATE:
        seen_name(m->name, target, sizeof target);
        if ((e = move_file(d->new_fd, m->name, d->cur_fd, target, used, sizeof used)) != 0) {
            tr_err_log("maildir %s: %s: %s, but cannot move it to cur/: %s (left in new/; it "
                       "will be a duplicate next time)",
                       d->path, m->name, res->outcome == INGEST_STORED ? "stored" : "duplicate",
                       strerror(e));
            st->deferred++;
            *deferred = true;
            return;
        }
        if (res->outcome == INGEST_STORED)
            st->stored++;
        else
            st->duplicates++;
        for (size_t i = 0; i < res->nreports; i++) {
            const struct ingest_report *rep = &res->reports[i];
            if (rep->outcome == INGEST_STORED || rep->outcome == INGEST_DUPLICATE)
                tr_info("maildir %s: %s: %s report %s from %s (%" PRId64 " ok, %" PRId64
                        " failed sessions) -> cur/%s",
                        d->path, m->name, rep->outcome == INGEST_STORED ? "stored" : "duplicate",
                        rep->report_id ? rep->report_id : "?",
                        rep->organization_name ? rep->organization_name : "?",
                        rep->successful_sessions, rep->failed_sessions, used);
        }
        return;
    case INGEST_REJECTED:
        if ((e = move_file(d->new_fd, m->name, d->qnew_fd, m->name, used, sizeof used)) != 0) {
            tr_err_log("maildir %s: %s: not a report (%s), but cannot move it to %s/new: %s",
                       d->path, m->name, res->reason, d->qpath, strerror(e));
            st->deferred++;
            *deferred = true;
            return;
        }
        st->quarantined++;
        if (m->read)
            restrict_mode(d->qnew_fd, used, m);
        tr_warn("maildir %s: %s: quarantined to %s/new/%s: %s", d->path, m->name, d->qpath, used,
                res->reason);
        return;
    case INGEST_UNREADABLE:
        tr_err_log("maildir %s: %s: unreadable, left in new/: %s", d->path, m->name, res->reason);
        st->deferred++;
        return;
    case INGEST_SPOOLED: /* not for Maildir requests: the file waits in new/ instead */
    case INGEST_TEMPFAIL:
        if (res->input_tempfail) /* this message only (a DKIM key lookup): the rest go on */
            tr_warn("maildir %s: %s: %s; left in new/ and retried", d->path, m->name, res->reason);
        st->deferred++;
        *deferred = true;
        return;
    }
}

/* Start a round over names[0..n): prepare every message (on up to
 * opt->threads threads) and submit it to the writer. NULL when out of memory. */
static struct round *round_start(struct mdir *d, char **names, size_t n, struct writer *w,
                                 const struct maildir_options *opt)
{
    struct round *r = calloc(1, sizeof *r);
    if (r == NULL || (r->msgs = calloc(n, sizeof *r->msgs)) == NULL) {
        free(r);
        return NULL;
    }
    r->d = d;
    r->w = w;
    r->opt = opt;
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        r->msgs[i].round = r;
        r->msgs[i].name = names[i];
    }
    atomic_init(&r->next, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);

    unsigned threads = opt->threads ? opt->threads : 1;
    if (threads > n / 8 + 1) /* a few messages: not worth a thread */
        threads = (unsigned)(n / 8 + 1);
    pthread_t tids[THREADS_MAX];
    unsigned started = 0;
    for (unsigned t = 1; t < threads && t < THREADS_MAX; t++)
        if (pthread_create(&tids[started], NULL, prepare_worker, r) == 0)
            started++;
    prepare_worker(r);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    return r;
}

/* Wait until the writer has answered every message of r (after its commit),
 * then move each file and free the round. */
static void round_finish(struct round *r, struct maildir_stats *st, bool *deferred,
                         char *tempfail_reason)
{
    pthread_mutex_lock(&r->mu);
    while (r->pending > 0)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        struct msg *m = &r->msgs[i];
        bool was = *deferred;
        settle(r->d, m, st, deferred);
        if (!was && *deferred && m->wreq.res.outcome == INGEST_TEMPFAIL &&
            !m->wreq.res.input_tempfail)
            snprintf(tempfail_reason, TR_ERRLEN, "%s", m->wreq.res.reason);
        ingest_job_free(m->wreq.job);
        ingest_result_free(&m->wreq.res);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->msgs);
    free(r);
}

static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > THREADS_MAX ? THREADS_MAX : (unsigned)n;
}

/* A pass over d. *deferred when something is to be retried later. stop: checked between rounds. */
static tr_err pass(struct mdir *d, struct writer *w, const struct maildir_options *opt,
                   struct maildir_stats *st, bool *deferred, atomic_bool *stop, char *err)
{
    char **names;
    size_t n;
    *deferred = false;
    tr_err rc = list_new(d, &names, &n, err);
    if (rc != TR_OK)
        return rc;
    char tempfail_reason[TR_ERRLEN] = "";
    /* Two rounds overlap: while the writer commits one, the next is prepared,
     * and then the first one's files are moved while the next commits. */
    struct round *prev = NULL;
    for (size_t i = 0; i < n; i += ROUND_MAX) {
        if (stop && atomic_load(stop)) {
            *deferred = true;
            break;
        }
        size_t k = n - i < ROUND_MAX ? n - i : ROUND_MAX;
        struct round *r = round_start(d, names + i, k, w, opt);
        if (r == NULL) {
            st->deferred += k;
            *deferred = true;
            snprintf(tempfail_reason, TR_ERRLEN, "out of memory");
            break;
        }
        if (prev)
            round_finish(prev, st, deferred, tempfail_reason);
        prev = r;
        if (*deferred && tempfail_reason[0]) /* storage is down: the rest would fail too */
            break;
    }
    if (prev)
        round_finish(prev, st, deferred, tempfail_reason);
    if (tempfail_reason[0])
        tr_warn("maildir %s: storage unavailable (%s); messages stay in new/ and are retried",
                d->path, tempfail_reason);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return TR_OK;
}

static struct maildir_options fill_defaults(const struct maildir_options *opt)
{
    struct maildir_options o = *opt;
    if (o.threads == 0)
        o.threads = default_threads();
    if (o.threads > THREADS_MAX)
        o.threads = THREADS_MAX;
    if (o.rescan_seconds == 0)
        o.rescan_seconds = 60;
    return o;
}

tr_err maildir_run_once(char *const *dirs, size_t ndirs, struct writer *w,
                        const struct maildir_options *opt, struct maildir_stats *stats, char *err)
{
    struct maildir_options o = fill_defaults(opt);
    tr_err rc = TR_OK;
    for (size_t i = 0; i < ndirs; i++) {
        struct mdir d;
        char derr[TR_ERRLEN];
        tr_err e = mdir_open(&d, dirs[i], o.quarantine, derr);
        bool deferred = false;
        if (e == TR_OK)
            e = pass(&d, w, &o, stats, &deferred, NULL, derr);
        mdir_close(&d);
        if (e != TR_OK) {
            tr_err_log("maildir: %s", derr);
            if (rc == TR_OK) {
                rc = e;
                tr_fail(err, e, "%s", derr);
            }
        }
    }
    return rc;
}

/* ---- the watcher ---------------------------------------------------------------------------- */

struct maildir_watch {
    struct mdir *dirs;
    size_t ndirs;
    struct writer *w;
    struct maildir_options opt;
    int ino_fd;
    int wake[2]; /* pipe: maildir_watch_stop writes to wake the thread */
    atomic_bool stop;
    pthread_t thread;
    struct maildir_stats stats;
};

static void add_watch(struct maildir_watch *mw, struct mdir *d)
{
    char *p = path_join(d->path, "new");
    d->wd = p ? inotify_add_watch(mw->ino_fd, p, IN_MOVED_TO | IN_CREATE | IN_ONLYDIR) : -1;
    if (d->wd < 0)
        tr_err_log("maildir %s: cannot watch new/: %s; relying on the rescan every %u s", d->path,
                   strerror(errno), mw->opt.rescan_seconds);
    free(p);
}

/* Drain inotify: mark the dirs that saw something. */
static void read_events(struct maildir_watch *mw)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t len = read(mw->ino_fd, buf, sizeof buf);
        if (len <= 0)
            return;
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            if (ev->mask & IN_Q_OVERFLOW) {
                for (size_t i = 0; i < mw->ndirs; i++)
                    mw->dirs[i].dirty = true;
            }
            for (size_t i = 0; i < mw->ndirs; i++) {
                if (mw->dirs[i].wd == ev->wd) {
                    mw->dirs[i].dirty = true;
                    if (ev->mask & IN_IGNORED) { /* new/ went away; re-added at the rescan */
                        tr_err_log("maildir %s: new/ is no longer watched", mw->dirs[i].path);
                        mw->dirs[i].wd = -1;
                    }
                }
            }
            p += sizeof *ev + ev->len;
        }
    }
}

static void *watch_main(void *arg)
{
    struct maildir_watch *mw = arg;
    time_t next_rescan = now_s() + mw->opt.rescan_seconds;
    while (!atomic_load(&mw->stop)) {
        time_t now = now_s();
        bool rescan = now >= next_rescan;
        if (rescan)
            next_rescan = now + mw->opt.rescan_seconds;
        for (size_t i = 0; i < mw->ndirs && !atomic_load(&mw->stop); i++) {
            struct mdir *d = &mw->dirs[i];
            if (rescan && d->wd < 0)
                add_watch(mw, d);
            if (!(d->dirty || rescan) || now < d->retry)
                continue;
            d->dirty = false;
            bool deferred = false;
            char err[TR_ERRLEN];
            if (pass(d, mw->w, &mw->opt, &mw->stats, &deferred, &mw->stop, err) != TR_OK) {
                tr_err_log("maildir: %s", err);
                deferred = true;
            }
            if (deferred && !atomic_load(&mw->stop)) {
                d->backoff = d->backoff ? d->backoff * 2 : 1;
                if (d->backoff > BACKOFF_MAX)
                    d->backoff = BACKOFF_MAX;
                d->retry = now_s() + d->backoff;
                d->dirty = true;
                tr_debug("maildir %s: retrying in %u s", d->path, d->backoff);
            } else {
                d->backoff = 0;
                d->retry = 0;
            }
        }
        /* sleep until an event, the next retry or the next rescan */
        now = now_s();
        time_t until = next_rescan;
        for (size_t i = 0; i < mw->ndirs; i++)
            if (mw->dirs[i].dirty && mw->dirs[i].retry < until)
                until = mw->dirs[i].retry;
        int timeout = until <= now ? 0 : (int)(until - now) * 1000;
        struct pollfd pfd[2] = {{mw->ino_fd, POLLIN, 0}, {mw->wake[0], POLLIN, 0}};
        if (poll(pfd, 2, timeout) > 0 && (pfd[0].revents & POLLIN))
            read_events(mw);
    }
    return NULL;
}

struct maildir_watch *maildir_watch_start(char *const *dirs, size_t ndirs, struct writer *w,
                                          const struct maildir_options *opt, char *err)
{
    struct maildir_watch *mw = calloc(1, sizeof *mw);
    if (mw == NULL || (mw->dirs = calloc(ndirs ? ndirs : 1, sizeof *mw->dirs)) == NULL) {
        free(mw);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    mw->w = w;
    mw->opt = fill_defaults(opt);
    mw->wake[0] = mw->wake[1] = -1;
    atomic_init(&mw->stop, false);
    mw->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (mw->ino_fd < 0 || pipe2(mw->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        tr_fail(err, TR_EIO, "maildir: %s: %s", mw->ino_fd < 0 ? "inotify" : "pipe",
                strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < ndirs; i++) {
        if (mdir_open(&mw->dirs[i], dirs[i], mw->opt.quarantine, err) != TR_OK)
            goto fail;
        mw->ndirs++;
        add_watch(mw, &mw->dirs[i]);
    }
    if (pthread_create(&mw->thread, NULL, watch_main, mw) != 0) {
        tr_fail(err, TR_ENOMEM, "maildir: cannot start the watcher thread");
        goto fail;
    }
    for (size_t i = 0; i < ndirs; i++)
        tr_info("maildir %s: watching new/ (rescan every %u s; quarantine %s)", mw->dirs[i].path,
                mw->opt.rescan_seconds, mw->dirs[i].qpath);
    return mw;
fail:
    for (size_t i = 0; i < mw->ndirs; i++)
        mdir_close(&mw->dirs[i]);
    if (mw->ino_fd >= 0)
        close(mw->ino_fd);
    if (mw->wake[0] >= 0) {
        close(mw->wake[0]);
        close(mw->wake[1]);
    }
    free(mw->dirs);
    free(mw);
    return NULL;
}

void maildir_watch_stop(struct maildir_watch *mw, struct maildir_stats *stats)
{
    if (mw == NULL)
        return;
    atomic_store(&mw->stop, true);
    ssize_t wr = write(mw->wake[1], "x", 1);
    (void)wr;
    pthread_join(mw->thread, NULL);
    if (stats)
        *stats = mw->stats;
    for (size_t i = 0; i < mw->ndirs; i++)
        mdir_close(&mw->dirs[i]);
    close(mw->ino_fd);
    close(mw->wake[0]);
    close(mw->wake[1]);
    free(mw->dirs);
    free(mw);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static size_t count_new(const char *maildir)
{
    size_t len = strlen(maildir);
    char *p = malloc(len + 5);
    if (p == NULL)
        return 0;
    memcpy(p, maildir, len);
    memcpy(p + len, "/new", 5);
    DIR *d = opendir(p);
    free(p);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

tr_err maildir_backlog_metrics(char *const *dirs, size_t n, struct buf *out)
{
    tr_err rc = TR_OK;
    if (n)
        rc = prom_printf(out, "# HELP tlsrptd_maildir_backlog Messages waiting in a Maildir's "
                              "new/.\n# TYPE tlsrptd_maildir_backlog gauge\n");
    for (size_t i = 0; rc == TR_OK && i < n; i++) {
        char l[600];
        prom_label(dirs[i], l, sizeof l);
        rc = prom_printf(out, "tlsrptd_maildir_backlog{maildir=\"%s\"} %zu\n", l,
                         count_new(dirs[i]));
    }
    return rc;
}
