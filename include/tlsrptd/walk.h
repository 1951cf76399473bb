/* walk.h: expand command-line inputs (files and directories, walked
 * recursively) into a sorted list of file paths. Hidden entries (".name")
 * and config files ("*.conf", as samples/ holds beside its reports) inside
 * directories are skipped; a file named on its own is always taken. */
#ifndef TLSRPTD_WALK_H
#define TLSRPTD_WALK_H

#include <stddef.h>
#include "tlsrptd/err.h"

struct walk_list {
    char **paths;
    size_t n, cap;
};

/* Append path (a file) or every regular file below it (a directory), sorted
 * byte-wise per directory. Returns TR_EIO with err set when path cannot be read. */
tr_err walk_add(struct walk_list *wl, const char *path, char *err);
void walk_free(struct walk_list *wl);

#endif
