/* arena.c: pieces of memory given back all at once (arena.h). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "tlsrptd/arena.h"

#define FIRST_BLOCK  ((size_t)8 << 10)
#define LARGEST_STEP ((size_t)1 << 20)   /* blocks stop doubling here */
#define MAPPED_BLOCK ((size_t)128 << 10) /* blocks this large are mapped */

struct arena_block {
    struct arena_block *next;
    size_t cap, used;
    bool mapped;
    alignas(max_align_t) unsigned char data[];
};

static struct arena_block *block_new(size_t cap)
{
    struct arena_block *b;
    if (sizeof *b + cap >= MAPPED_BLOCK) {
        void *m =
            mmap(NULL, sizeof *b + cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        b = m;
        b->mapped = true;
    } else {
        if ((b = malloc(sizeof *b + cap)) == NULL)
            return NULL;
        b->mapped = false;
    }
    b->cap = cap;
    b->used = 0;
    b->next = NULL;
    return b;
}

void *arena_alloc(struct arena *a, size_t n)
{
    if (n > SIZE_MAX - 8)
        return NULL;
    n = (n + 7) & ~(size_t)7;
    struct arena_block *b = a->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = b ? b->cap * 2 : FIRST_BLOCK;
        if (cap > LARGEST_STEP)
            cap = LARGEST_STEP;
        if (cap < n)
            cap = n;
        struct arena_block *nb = block_new(cap);
        if (nb == NULL)
            return NULL;
        nb->next = b;
        a->blocks = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *out = arena_alloc(a, n);
    if (out != NULL)
        memcpy(out, s, n);
    return out;
}

void arena_clear(struct arena *a)
{
    for (struct arena_block *b = a->blocks, *next; b; b = next) {
        next = b->next;
        if (b->mapped)
            munmap(b, sizeof *b + b->cap);
        else
            free(b);
    }
    a->blocks = NULL;
}
