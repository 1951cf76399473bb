/* spool.c: the durable queue of inputs of `tlsrptd serve` (see spool.h).
 *
 * An entry file: one line of JSON with the source ({"v":1,"kind":…,"name":…,
 * "received_at":…}, "rejected": the reason when the input is already known to
 * be unacceptable, "commit": the ticket of a commit whose outcome is unknown),
 * a newline, then the input's bytes as received. Its name
 * is the time of arrival in microseconds and a sequence number, both in fixed
 * width, so a sorted listing is arrival order, then a random tag drawn when
 * the spool is opened and the process id: names do not repeat across
 * collectors that share a database (the writer records drained names there).
 * The file "id" beside new/ and tmp/ names the spool for good (spool_id()). */
#define _DEFAULT_SOURCE /* DT_REG */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/log.h"
#include "tlsrptd/spool.h"

#define ENTRY_MAX ((size_t)1 << 30) /* no entry is bigger than the largest body */

struct spool {
    char *dir;
    int dirfd, newfd, tmpfd;
    size_t max_bytes, bytes, count;
    unsigned seq;
    uint32_t tag; /* random, per spool_open() */
    char id[17];  /* spool_id() */
    /* new/ as last listed, sorted; names before next were removed. Listed
     * again only when all are gone: a drain of N entries reads the directory
     * N / batch times fewer than a listing per peek would. */
    char **names;
    size_t nnames, next;
};

static const char *const source_keys[7] = {"kind",          "name",      "client", "message_id",
                                           "report_domain", "submitter", "subject"};

static int open_subdir(int dirfd, const char *name, char *err, const char *dir)
{
    if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST) {
        tr_fail(err, TR_EIO, "spool %s: cannot create %s/: %s", dir, name, strerror(errno));
        return -1;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        tr_fail(err, TR_EIO, "spool %s: cannot open %s/: %s", dir, name, strerror(errno));
    return fd;
}

/* Read the spool's id from dir/id, or draw one and write it there (synced). */
static bool load_id(struct spool *sp, char *err)
{
    int fd = openat(sp->dirfd, "id", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        char text[sizeof sp->id];
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        bool ok = n == (ssize_t)sizeof text - 1;
        for (ssize_t i = 0; ok && i < n; i++)
            ok = (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f');
        if (ok) {
            memcpy(sp->id, text, sizeof text - 1);
            sp->id[sizeof text - 1] = '\0';
            return true;
        }
        tr_warn("spool %s: its file id is damaged; drawing a new id", sp->dir);
    }
    uint64_t v;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        tr_fail(err, TR_EIO, "spool %s: no random bytes for its id: %s", sp->dir, strerror(errno));
        return false;
    }
    snprintf(sp->id, sizeof sp->id, "%016llx", (unsigned long long)v);
    fd = openat(sp->dirfd, "id.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    bool ok =
        fd >= 0 && write(fd, sp->id, strlen(sp->id)) == (ssize_t)strlen(sp->id) && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (ok && (renameat(sp->dirfd, "id.tmp", sp->dirfd, "id") != 0 || fsync(sp->dirfd) != 0)) {
        ok = false;
        saved = errno;
    }
    if (!ok)
        tr_fail(err, TR_EIO, "spool %s: cannot write its file id: %s", sp->dir, strerror(saved));
    return ok;
}

const char *spool_id(const struct spool *sp)
{
    return sp->id;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entry names in new/, sorted (arrival order). *n gets how many. */
static char **list_entries(struct spool *sp, size_t *n, size_t *bytes)
{
    *n = 0;
    if (bytes)
        *bytes = 0;
    int fd = dup(sp->newfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    rewinddir(d);
    char **v = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL)
                break;
            v = nv;
        }
        if ((v[*n] = strdup(e->d_name)) == NULL)
            break;
        struct stat sb;
        if (bytes && fstatat(sp->newfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            *bytes += (size_t)sb.st_size;
        (*n)++;
    }
    closedir(d);
    if (*n > 1) /* readdir's order is the file system's (a hash on ext4) */
        qsort(v, *n, sizeof *v, by_name);
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* List new/ again: the names, and the count and bytes (the directory is the truth). */
static void relist(struct spool *sp)
{
    free_list(sp->names, sp->nnames);
    sp->names = list_entries(sp, &sp->nnames, &sp->bytes);
    sp->count = sp->nnames;
    sp->next = 0;
}

struct spool *spool_open(const char *dir, size_t max_bytes, char *err)
{
    struct spool *sp = calloc(1, sizeof *sp);
    if (sp == NULL || (sp->dir = strdup(dir)) == NULL) {
        free(sp);
        tr_fail(err, TR_ENOMEM, "out of memory");
        return NULL;
    }
    sp->dirfd = sp->newfd = sp->tmpfd = -1;
    sp->max_bytes = max_bytes;
    if (getrandom(&sp->tag, sizeof sp->tag, GRND_NONBLOCK) != (ssize_t)sizeof sp->tag) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        sp->tag = (uint32_t)now.tv_nsec ^ ((uint32_t)getpid() << 16);
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        tr_fail(err, TR_EIO, "spool %s: cannot create it: %s", dir, strerror(errno));
        goto fail;
    }
    if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        tr_fail(err, TR_EIO, "spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((sp->newfd = open_subdir(sp->dirfd, "new", err, dir)) < 0 ||
        (sp->tmpfd = open_subdir(sp->dirfd, "tmp", err, dir)) < 0 || !load_id(sp, err))
        goto fail;
    /* tmp/ holds only entries a crash cut short: never acknowledged */
    size_t n = 0;
    int fd = dup(sp->tmpfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && unlinkat(sp->tmpfd, e->d_name, 0) == 0)
            n++;
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    if (n)
        tr_info("spool %s: removed %zu unfinished entries from tmp/", dir, n);
    relist(sp);
    if (sp->count)
        tr_info("spool %s: %zu entries (%zu bytes) wait to be stored", dir, sp->count, sp->bytes);
    return sp;
fail:
    spool_close(sp);
    return NULL;
}

void spool_close(struct spool *sp)
{
    if (sp == NULL)
        return;
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    if (sp->newfd >= 0)
        close(sp->newfd);
    if (sp->tmpfd >= 0)
        close(sp->tmpfd);
    free_list(sp->names, sp->nnames);
    free(sp->dir);
    free(sp);
}

size_t spool_count(const struct spool *sp)
{
    return sp->count;
}

size_t spool_bytes(const struct spool *sp)
{
    return sp->bytes;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

tr_err spool_put(struct spool *sp, const void *data, size_t len, const struct store_source *src,
                 const char *rejected, int64_t commit, char *err)
{
    json_t *head = json_pack("{s:i, s:I}", "v", 1, "received_at",
                             (json_int_t)(src->received_at ? src->received_at : time(NULL)));
    const char *values[7] = {src->kind,       src->name,          src->client,
                             src->message_id, src->report_domain, src->report_submitter,
                             src->subject};
    for (int i = 0; i < 7; i++)
        if (values[i])
            json_object_set_new(head, source_keys[i], json_string(values[i]));
    if (rejected)
        json_object_set_new(head, "rejected", json_string(rejected));
    if (commit)
        json_object_set_new(head, "commit", json_integer((json_int_t)commit));
    char *line = json_dumps(head, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(head);
    if (line == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    size_t total = strlen(line) + 1 + len;
    if (sp->bytes + total > sp->max_bytes) {
        free(line);
        return tr_fail(err, TR_ETOOBIG, "spool %s is full (%zu of %zu bytes)", sp->dir, sp->bytes,
                       sp->max_bytes);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char name[64];
    snprintf(name, sizeof name, "%016llx.%08x.%08x.%d",
             (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000,
             sp->seq++, (unsigned)sp->tag, (int)getpid());
    int fd = openat(sp->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, line, strlen(line)) && write_all(fd, "\n", 1) &&
              write_all(fd, data, len) && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    free(line);
    if (ok && renameat(sp->tmpfd, name, sp->newfd, name) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlinkat(sp->tmpfd, name, 0);
        return tr_fail(err, TR_EIO, "spool %s: cannot write an entry: %s", sp->dir,
                       strerror(saved));
    }
    if (fsync(sp->newfd) != 0)
        return tr_fail(err, TR_EIO, "spool %s: cannot sync new/: %s", sp->dir, strerror(errno));
    sp->bytes += total;
    sp->count++;
    return TR_OK;
}

void spool_entry_free(struct spool_entry *e)
{
    free(e->name);
    free(e->data);
    free(e->rejected);
    for (int i = 0; i < 7; i++)
        free(e->strings[i]);
    memset(e, 0, sizeof *e);
}

enum entry_read { ENTRY_OK, ENTRY_GONE, ENTRY_BAD, ENTRY_LATER };

/* Parse one entry file: ENTRY_GONE when it was removed meanwhile, ENTRY_BAD
 * when it is not one of ours, ENTRY_LATER when memory ran out. */
static enum entry_read read_entry(struct spool *sp, const char *name, struct spool_entry *e)
{
    memset(e, 0, sizeof *e);
    int fd = openat(sp->newfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? ENTRY_GONE : ENTRY_BAD;
    struct buf b;
    buf_init(&b, ENTRY_MAX);
    char err[TR_ERRLEN];
    struct stat sb;
    bool ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && buf_read_fd(&b, fd, name, err) == TR_OK;
    close(fd);
    unsigned char *nl = ok ? memchr(b.data, '\n', b.len) : NULL;
    json_t *head = nl ? json_loadb((const char *)b.data, (size_t)(nl - b.data), 0, NULL) : NULL;
    if (head == NULL || json_integer_value(json_object_get(head, "v")) != 1 ||
        !json_is_string(json_object_get(head, "kind"))) {
        json_decref(head);
        buf_free(&b);
        return ENTRY_BAD;
    }
    const char **fields[7] = {&e->src.kind,       &e->src.name,          &e->src.client,
                              &e->src.message_id, &e->src.report_domain, &e->src.report_submitter,
                              &e->src.subject};
    for (int i = 0; i < 7; i++) {
        const char *v = json_string_value(json_object_get(head, source_keys[i]));
        e->strings[i] = v ? strdup(v) : NULL;
        *fields[i] = e->strings[i];
    }
    e->src.received_at = json_integer_value(json_object_get(head, "received_at"));
    e->commit = json_integer_value(json_object_get(head, "commit"));
    const char *rejected = json_string_value(json_object_get(head, "rejected"));
    e->rejected = rejected ? strdup(rejected) : NULL;
    bool lost = rejected && e->rejected == NULL;
    json_decref(head);
    size_t off = (size_t)(nl - b.data) + 1;
    e->len = b.len - off;
    e->data = malloc(e->len ? e->len : 1);
    e->name = strdup(name);
    if (e->data)
        memcpy(e->data, b.data + off, e->len);
    buf_free(&b);
    if (e->data == NULL || e->name == NULL || e->src.kind == NULL || lost) {
        spool_entry_free(e);
        return ENTRY_LATER;
    }
    return ENTRY_OK;
}

size_t spool_peek(struct spool *sp, struct spool_entry *out, size_t max)
{
    size_t got = 0;
    /* from the names listed last; once all are gone, from a new listing */
    for (int pass = 0; pass < 2 && got == 0; pass++) {
        if (sp->next >= sp->nnames)
            relist(sp);
        for (size_t i = sp->next; i < sp->nnames && got < max; i++) {
            const char *name = sp->names[i];
            enum entry_read r = read_entry(sp, name, &out[got]);
            if (r == ENTRY_OK) {
                got++;
                continue;
            }
            if (r == ENTRY_LATER)
                return got;
            if (r == ENTRY_BAD) {
                int badfd = open_subdir(sp->dirfd, "bad", NULL, sp->dir);
                if (badfd >= 0 && renameat(sp->newfd, name, badfd, name) == 0) {
                    tr_warn("spool %s: %s is not a readable entry; moved to bad/", sp->dir, name);
                    sp->count = sp->count ? sp->count - 1 : 0;
                }
                if (badfd >= 0)
                    close(badfd);
            }
            if (got == 0) /* gone (drained) or set aside: never to be read again */
                sp->next = i + 1;
        }
    }
    return got;
}

tr_err spool_remove(struct spool *sp, const struct spool_entry *e, char *err)
{
    struct stat sb;
    size_t size = fstatat(sp->newfd, e->name, &sb, 0) == 0 ? (size_t)sb.st_size : 0;
    if (unlinkat(sp->newfd, e->name, 0) != 0 && errno != ENOENT)
        return tr_fail(err, TR_EIO, "spool %s: cannot remove %s: %s", sp->dir, e->name,
                       strerror(errno));
    sp->bytes = sp->bytes > size ? sp->bytes - size : 0;
    sp->count = sp->count ? sp->count - 1 : 0;
    return TR_OK;
}
