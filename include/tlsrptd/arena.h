/* arena.h: memory taken in pieces and given back all at once.
 *
 * For data that lives exactly as long as one thing (a parsed document, the
 * rollup keys of one commit): no free per piece, no header per piece, and
 * the pieces lie together. Blocks double from 8 KiB up to 1 MiB; those of
 * 128 KiB and more are mapped and unmapped on their own rather than taken
 * from malloc, whose heaps keep freed memory at their top (main.c), so the
 * memory of a large document goes back to the system when it is freed. */
#ifndef TLSRPTD_ARENA_H
#define TLSRPTD_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *blocks; /* the newest first; NULL: empty */
};

#define ARENA_EMPTY                                                                                \
    {                                                                                              \
        NULL                                                                                       \
    }

/* n bytes aligned to 8; NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
/* A copy of s; NULL when out of memory. */
char *arena_strdup(struct arena *a, const char *s);
/* Gives back every piece; the arena is empty and may be used again. */
void arena_clear(struct arena *a);

#endif
