/* walk.c: expand files and directories into a sorted list of file paths.
 * Inside directories, hidden entries and *.conf files are skipped. */
#include <dirent.h>
#include <errno.h>
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

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static tr_err walk_dir(struct walk_list *wl, const char *dir, int depth, char *err)
{
    if (depth > 64)
        return tr_fail(err, TR_EIO, "%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return tr_fail(err, TR_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    tr_err rc = TR_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || (nl > 5 && strcmp(de->d_name + nl - 5, ".conf") == 0))
            continue; /* hidden entries; config files beside reports (samples/) */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (p == NULL) {
                rc = tr_fail(err, TR_ENOMEM, "out of memory");
                goto done;
            }
            names = p;
        }
        if ((names[n] = strdup(de->d_name)) == NULL) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            goto done;
        }
        n++;
    }
    if (n > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == TR_OK; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (path == NULL) {
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
            break;
        }
        snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
        struct stat sb;
        if (stat(path, &sb) != 0)
            rc = tr_fail(err, TR_EIO, "%s: %s", path, strerror(errno));
        else if (S_ISDIR(sb.st_mode))
            rc = walk_dir(wl, path, depth + 1, err);
        else if (S_ISREG(sb.st_mode))
            rc = push(wl, path, err);
        free(path);
    }
done:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
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
