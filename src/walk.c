/* walk.c: expand files and directories into a sorted list of file paths.
 * Inside directories, hidden entries and *.conf files are skipped. */
#define _DEFAULT_SOURCE /* DT_DIR, DT_REG */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tlsrptd/walk.h"

static tr_err push(struct walk_list *wl, const char *path, char *err)
{
    if (wl->n == wl->cap) {
        size_t ncap = wl->cap ? wl->cap * 2 : 64;
        char **p = realloc(wl->paths, ncap * sizeof *p);
        if (p == NULL)
            return tr_fail(err, TR_ENOMEM, "out of memory");
        wl->paths = p;
        wl->cap = ncap;
    }
    if ((wl->paths[wl->n] = strdup(path)) == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    wl->n++;
    return TR_OK;
}

/* A directory entry: its name, and its type as readdir gave it (DT_UNKNOWN
 * when the file system does not say). */
struct entry {
    char *name;
    unsigned char type;
};

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static tr_err walk_dir(struct walk_list *wl, const char *dir, int depth, char *err)
{
    if (depth > 64)
        return tr_fail(err, TR_EIO, "%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return tr_fail(err, TR_EIO, "%s: %s", dir, strerror(errno));
    struct entry *ents = NULL;
    size_t n = 0, cap = 0;
    tr_err rc = TR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || (nl > 5 && strcmp(de->d_name + nl - 5, ".conf") == 0))
            continue; /* hidden entries; config files beside reports (samples/) */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            struct entry *p = realloc(ents, cap * sizeof *p);
            if (p == NULL) {
                rc = tr_fail(err, TR_ENOMEM, "out of memory");
                goto done;
            }
            ents = p;
        }
        if ((ents[n].name = strdup(de->d_name)) == NULL) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            goto done;
        }
        ents[n++].type = de->d_type;
    }
    if (n > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(ents, n, sizeof *ents, cmp_entries);
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        size_t len = strlen(dir) + strlen(ents[i].name) + 2;
        char *path = malloc(len);
        if (path == NULL) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            break;
        }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", ents[i].name);
        /* readdir's type saves a stat per file; a link, or a file system that
         * does not say, is looked at (stat follows links) */
        struct stat sb;
        bool is_dir = ents[i].type == DT_DIR, is_file = ents[i].type == DT_REG;
        if (!is_dir && !is_file) {
            if (stat(path, &sb) != 0)
                rc = tr_fail(err, TR_EIO, "%s: %s", path, strerror(errno));
            is_dir = rc == TR_OK && S_ISDIR(sb.st_mode);
            is_file = rc == TR_OK && S_ISREG(sb.st_mode);
        }
        if (is_dir)
            rc = walk_dir(wl, path, depth + 1, err);
        else if (is_file)
            rc = push(wl, path, err);
        free(path);
    }
done:
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    closedir(d);
    return rc;
}

tr_err walk_add(struct walk_list *wl, const char *path, char *err)
{
    struct stat sb;
    if (strcmp(path, "-") != 0 && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return walk_dir(wl, path, 0, err);
    return push(wl, path, err); /* files, "-" and unreadable paths: reported when read */
}

void walk_free(struct walk_list *wl)
{
    for (size_t i = 0; i < wl->n; i++)
        free(wl->paths[i]);
    free(wl->paths);
    memset(wl, 0, sizeof *wl);
}
