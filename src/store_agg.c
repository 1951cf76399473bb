/* store_agg.c: a GROUP BY in memory (store_agg.h): groups and distinct names
 * in two open-addressing hash tables, the groups sorted once at the end.
 * Every key is copied (row text lives only during its callback); everything
 * is freed with the table. Knows nothing of SQL or of what the sums mean. */
#include "store_agg.h"

#include <stdlib.h>
#include <string.h>

struct distinct_name { /* one name seen for one group */
    const struct agg_group *group;
    char name[];
};

struct slots { /* open addressing, linear probing, at most half full */
    void **item;
    uint64_t *hash;
    size_t cap, n;
};

struct agg {
    struct slots groups, names;
    struct agg_group **list; /* the groups, in the order they were made */
    size_t nlist, caplist;
    struct distinct_name **seen;
    size_t nseen, capseen;
    struct agg_group *last; /* the group found last: rows in key order find it again */
    bool oom;
};

/* A hash of n bytes, eight at a time (multiply and shift: well spread in the
 * low bits, which pick the slot). */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15u;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    h = (h ^ w ^ (uint64_t)n << 56) * 0xBF58476D1CE4E5B9u;
    return h ^ (h >> 31);
}

#define HASH_START 0x243F6A8885A308D3u

static bool slots_grow(struct slots *s)
{
    size_t cap = s->cap ? 2 * s->cap : 256;
    void **item = calloc(cap, sizeof *item);
    uint64_t *hash = calloc(cap, sizeof *hash);
    if (item == NULL || hash == NULL) {
        free(item);
        free(hash);
        return false;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->item[i] == NULL)
            continue;
        size_t j = s->hash[i] & (cap - 1);
        while (item[j] != NULL)
            j = (j + 1) & (cap - 1);
        item[j] = s->item[i];
        hash[j] = s->hash[i];
    }
    free(s->item);
    free(s->hash);
    s->item = item;
    s->hash = hash;
    s->cap = cap;
    return true;
}

/* The slot of the item equal to what eq says, or of the empty slot where it
 * would go. The table must have room (slots_room). */
static size_t slots_find(const struct slots *s, uint64_t h, bool (*eq)(const void *, const void *),
                         const void *want)
{
    size_t j = h & (s->cap - 1);
    while (s->item[j] != NULL && !(s->hash[j] == h && eq(s->item[j], want)))
        j = (j + 1) & (s->cap - 1);
    return j;
}

static bool slots_room(struct slots *s)
{
    return 2 * (s->n + 1) <= s->cap || slots_grow(s);
}

static bool push(void ***v, size_t *n, size_t *cap, void *item)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        void **nv = realloc(*v, c * sizeof *nv);
        if (nv == NULL)
            return false;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = item;
    return true;
}

struct agg *agg_new(void)
{
    return calloc(1, sizeof(struct agg));
}

void agg_free(struct agg *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nlist; i++)
        free(a->list[i]);
    for (size_t i = 0; i < a->nseen; i++)
        free(a->seen[i]);
    free(a->list);
    free(a->seen);
    free(a->groups.item);
    free(a->groups.hash);
    free(a->names.item);
    free(a->names.hash);
    free(a);
}

bool agg_failed(const struct agg *a)
{
    return a->oom;
}

static bool same_sub(const char *x, const char *y)
{
    return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static bool group_eq(const void *item, const void *want)
{
    const struct agg_group *g = item, *w = want;
    return g->day == w->day && strcmp(g->key, w->key) == 0 && same_sub(g->sub, w->sub);
}

struct agg_group *agg_group(struct agg *a, const char *key, int64_t day, const char *sub,
                            bool create)
{
    if (key == NULL)
        key = "";
    struct agg_group want = {.key = key, .day = day, .sub = sub};
    if (a->last != NULL && group_eq(a->last, &want))
        return a->last;
    uint64_t h = hash_bytes(HASH_START, key, strlen(key) + 1);
    h = hash_bytes(h, &day, sizeof day);
    if (sub != NULL)
        h = hash_bytes(h, sub, strlen(sub) + 1);
    if (!slots_room(&a->groups)) {
        a->oom = true;
        return NULL;
    }
    size_t j = slots_find(&a->groups, h, group_eq, &want);
    if (a->groups.item[j] != NULL || !create)
        return a->groups.item[j] ? (a->last = a->groups.item[j]) : NULL;
    size_t klen = strlen(key) + 1, slen = sub ? strlen(sub) + 1 : 0;
    struct agg_group *g = malloc(sizeof *g + klen + slen);
    if (g == NULL || !push((void ***)&a->list, &a->nlist, &a->caplist, g)) {
        free(g);
        a->oom = true;
        return NULL;
    }
    memset(g, 0, sizeof *g);
    char *text = (char *)(g + 1);
    memcpy(text, key, klen);
    g->key = text;
    g->day = day;
    if (sub != NULL) {
        memcpy(text + klen, sub, slen);
        g->sub = text + klen;
    }
    a->groups.item[j] = g;
    a->groups.hash[j] = h;
    a->groups.n++;
    return a->last = g;
}

void agg_add(struct agg_group *g, int which, int64_t v)
{
    int64_t *s = &g->sum[which];
    if (__builtin_add_overflow(*s, v, s))
        *s = v > 0 ? INT64_MAX : INT64_MIN;
}

void agg_max(struct agg_group *g, int64_t v)
{
    if (v > g->last)
        g->last = v;
}

struct name_key {
    const struct agg_group *group;
    const char *name;
};

static bool name_eq(const void *item, const void *want)
{
    const struct distinct_name *n = item;
    const struct name_key *w = want;
    return n->group == w->group && strcmp(n->name, w->name) == 0;
}

void agg_distinct(struct agg *a, struct agg_group *g, const char *name)
{
    if (name == NULL)
        return;
    size_t len = strlen(name) + 1;
    uint64_t h = hash_bytes(hash_bytes(HASH_START, &g, sizeof g), name, len);
    if (!slots_room(&a->names)) {
        a->oom = true;
        return;
    }
    struct name_key want = {g, name};
    size_t j = slots_find(&a->names, h, name_eq, &want);
    if (a->names.item[j] != NULL)
        return;
    struct distinct_name *n = malloc(sizeof *n + len);
    if (n == NULL || !push((void ***)&a->seen, &a->nseen, &a->capseen, n)) {
        free(n);
        a->oom = true;
        return;
    }
    n->group = g;
    memcpy(n->name, name, len);
    a->names.item[j] = n;
    a->names.hash[j] = h;
    a->names.n++;
    g->distinct++;
}

/* by day, or by key with "" last, then by sub */
static int group_cmp(const void *pa, const void *pb)
{
    const struct agg_group *x = *(struct agg_group *const *)pa;
    const struct agg_group *y = *(struct agg_group *const *)pb;
    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    bool xnone = x->key[0] == 0, ynone = y->key[0] == 0;
    if (xnone != ynone)
        return xnone ? 1 : -1;
    int c = strcmp(x->key, y->key);
    if (c != 0 || x->sub == NULL || y->sub == NULL)
        return c;
    return strcmp(x->sub, y->sub);
}

/* most failed sessions first, then as group_cmp */
static int group_cmp_ranked(const void *pa, const void *pb)
{
    const struct agg_group *x = *(struct agg_group *const *)pa;
    const struct agg_group *y = *(struct agg_group *const *)pb;
    if (x->sum[AGG_FAILED] != y->sum[AGG_FAILED])
        return x->sum[AGG_FAILED] > y->sum[AGG_FAILED] ? -1 : 1;
    return group_cmp(pa, pb);
}

struct agg_group **agg_sorted(struct agg *a, bool ranked, size_t *n)
{
    *n = a->nlist;
    if (a->oom)
        return NULL;
    if (a->nlist > 1)
        qsort(a->list, a->nlist, sizeof *a->list, ranked ? group_cmp_ranked : group_cmp);
    return a->list;
}
