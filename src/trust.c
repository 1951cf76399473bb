/* trust.c: the process's own domains and tenant tokens (see trust.h). One
 * mutex guards the pointer to the current snapshot and the snapshots'
 * reference counts; a snapshot itself never changes once made. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "tlsrptd/trust.h"

struct trust {
    struct domain_set *own;
    struct tokens *tokens;
    unsigned refs; /* under lock; the current snapshot holds one */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct trust initial = {NULL, NULL, 1}; /* never freed */
static struct trust *current = &initial;

static void trust_free(struct trust *t)
{
    domain_set_free(t->own);
    tokens_free(t->tokens);
    free(t);
}

tr_err trust_configure(const struct trust_settings *s, char *err)
{
    struct trust *t = calloc(1, sizeof *t);
    if (t == NULL)
        return tr_fail(err, TR_ENOMEM, "out of memory");
    t->refs = 1;
    tr_err rc = TR_OK;
    bool has_domains = (s->domains && s->domains[0]) || (s->domains_file && s->domains_file[0]);
    if (has_domains)
        rc = domain_set_parse(s->domains && s->domains[0] ? s->domains : NULL,
                              s->domains_file && s->domains_file[0] ? s->domains_file : NULL, false,
                              &t->own, err);
    if (rc == TR_OK && s->tokens_file && s->tokens_file[0])
        rc = tokens_load(s->tokens_file, &t->tokens, err);
    if (rc != TR_OK) {
        trust_free(t);
        return rc;
    }
    pthread_mutex_lock(&lock);
    struct trust *old = current;
    current = t;
    bool last = old != &initial && --old->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        trust_free(old);
    return TR_OK;
}

struct trust *trust_get(void)
{
    pthread_mutex_lock(&lock);
    struct trust *t = current;
    t->refs++;
    pthread_mutex_unlock(&lock);
    return t;
}

void trust_put(struct trust *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&lock);
    bool last = t != &initial && --t->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        trust_free(t);
}

const struct domain_set *trust_own_domains(const struct trust *t)
{
    return t->own;
}

const struct tokens *trust_tokens(const struct trust *t)
{
    return t->tokens;
}

void trust_describe(const struct trust *t, char *out, size_t n)
{
    size_t nd = 0;
    if (t->own)
        (void)domain_set_patterns(t->own, &nd);
    if (t->own)
        snprintf(out, n, "%zu own domain patterns, %zu tokens", nd,
                 t->tokens ? tokens_count(t->tokens) : 0);
    else
        snprintf(out, n, "every domain accepted (no domains set), %zu tokens",
                 t->tokens ? tokens_count(t->tokens) : 0);
}
