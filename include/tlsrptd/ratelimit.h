/* ratelimit.h: requests per client IP per minute (token buckets), for 429.
 * A fixed-size table: memory does not grow with the number of clients;
 * the least recently seen client is forgotten first. Thread-safe. */
#ifndef TLSRPTD_RATELIMIT_H
#define TLSRPTD_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct ratelimit;

/* per_minute 0 disables the limit (ratelimit_allow always says yes). */
struct ratelimit *ratelimit_new(size_t per_minute);
void ratelimit_free(struct ratelimit *rl);
/* Take one request for client; false when it is over its rate. *retry_after
 * is then the seconds until the next request would be allowed. */
bool ratelimit_allow(struct ratelimit *rl, const char *client, unsigned *retry_after);

#endif
