/* ratelimit.c: token buckets per client IP in a fixed open-addressing table. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tlsrptd/ratelimit.h"

#define SLOTS 8192 /* power of two */
#define PROBE 16

struct bucket {
    char client[48]; /* "" = free */
    double tokens;
    double last; /* monotonic seconds */
};

struct ratelimit {
    pthread_mutex_t mu;
    double capacity, per_second;
    struct bucket slots[SLOTS];
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct ratelimit *ratelimit_new(size_t per_minute)
{
    if (per_minute == 0)
        return NULL;
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    pthread_mutex_init(&rl->mu, NULL);
    rl->capacity = (double)per_minute;
    rl->per_second = (double)per_minute / 60.0;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

bool ratelimit_allow(struct ratelimit *rl, const char *client, unsigned *retry_after)
{
    if (rl == NULL)
        return true;
    double now = now_seconds();
    uint32_t h = hash(client);
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = NULL, *oldest = NULL;
    for (uint32_t i = 0; i < PROBE; i++) {
        struct bucket *s = &rl->slots[(h + i) & (SLOTS - 1)];
        if (strcmp(s->client, client) == 0) {
            b = s;
            break;
        }
        if (oldest == NULL || s->client[0] == 0 || s->last < oldest->last)
            if (oldest == NULL || oldest->client[0] != 0)
                oldest = s;
    }
    if (b == NULL) {
        b = oldest; /* a free slot, or the least recently seen client here */
        size_t n = strlen(client);
        if (n >= sizeof b->client)
            n = sizeof b->client - 1;
        memcpy(b->client, client, n);
        b->client[n] = 0;
        b->tokens = rl->capacity;
        b->last = now;
    }
    b->tokens += (now - b->last) * rl->per_second;
    if (b->tokens > rl->capacity)
        b->tokens = rl->capacity;
    b->last = now;
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    else if (retry_after)
        *retry_after = (unsigned)((1.0 - b->tokens) / rl->per_second) + 1;
    pthread_mutex_unlock(&rl->mu);
    return ok;
}
