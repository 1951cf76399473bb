/* store_redact.c: a stored report with some of its policies taken out (see
 * store_redact.h). Works on the JSON as stored: the raw bytes are inflated
 * (capped), parsed, the "policies" array rebuilt without the dropped
 * entries, and written back compact. Every other member stays as it was. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_redact.h"
#include "tlsrptd/domains.h"
#include "tlsrptd/gz.h"

#define REDACT_MAX_JSON ((size_t)64 << 20) /* the largest report JSON taken apart */

void store_redacted_free(struct store_redacted *r)
{
    buf_free(&r->json);
    free(r->dropped);
    memset(r, 0, sizeof *r);
}

/* The domain of a policy entry as the validator stores it, into out. */
static void policy_domain_of(json_t *item, const char *fallback, char *out)
{
    json_t *pol = json_object_get(item, "policy");
    const char *d = json_string_value(json_object_get(pol, "policy-domain"));
    if (d == NULL || d[0] == 0)
        d = fallback;
    if (d == NULL || !domain_normalize(d, out))
        out[0] = 0;
}

static int dump_to_buf(const char *text, size_t n, void *cls)
{
    return buf_append(cls, text, n) == TR_OK ? 0 : -1;
}

tr_err store_redact_report(const char *encoding, const void *raw, size_t len, const char *fallback,
                           store_keep_fn keep, void *cls, struct store_redacted *out, char *err)
{
    memset(out, 0, sizeof *out);
    buf_init(&out->json, REDACT_MAX_JSON);
    struct buf plain;
    buf_init(&plain, REDACT_MAX_JSON);
    const void *text = raw;
    size_t tlen = len;
    tr_err rc = TR_OK;
    if (encoding && strcmp(encoding, "identity") != 0) {
        if ((rc = gz_inflate(raw, len, &plain, err)) != TR_OK) {
            buf_free(&plain);
            return rc == TR_ENOMEM ? rc : TR_EPARSE;
        }
        text = plain.data;
        tlen = plain.len;
    }
    json_error_t je;
    json_t *root = json_loadb(text, tlen, 0, &je);
    buf_free(&plain);
    json_t *policies = json_object_get(root, "policies");
    if (!json_is_array(policies)) {
        json_decref(root);
        return tr_fail(err, TR_EPARSE, "the stored report is not a report's JSON");
    }
    size_t n = json_array_size(policies);
    out->npolicies = n;
    out->dropped = calloc(n ? n : 1, sizeof *out->dropped);
    json_t *kept = json_array();
    if (out->dropped == NULL || kept == NULL) {
        json_decref(kept);
        json_decref(root);
        return tr_fail(err, TR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(policies, i);
        char d[DOMAIN_MAX_LEN + 1];
        policy_domain_of(item, fallback, d);
        if (keep(cls, d)) {
            json_array_append(kept, item);
        } else {
            out->dropped[i] = true;
            out->ndropped++;
        }
    }
    if (out->ndropped) {
        json_object_set_new(root, "policies", kept);
        kept = NULL;
        if (json_dump_callback(root, dump_to_buf, &out->json, JSON_COMPACT | JSON_PRESERVE_ORDER) !=
            0)
            rc = tr_fail(err, TR_ENOMEM, "out of memory");
    }
    json_decref(kept);
    json_decref(root);
    return rc;
}

/* The policy index a diagnostic's path starts with, or -1. */
static long policy_index(const char *path)
{
    if (path == NULL || strncmp(path, "policies[", 9) != 0 || !isdigit((unsigned char)path[9]))
        return -1;
    char *end = NULL;
    long i = strtol(path + 9, &end, 10);
    return end && *end == ']' ? i : -1;
}

char *store_redact_diagnostics(const char *text, const struct store_redacted *r, bool policies_only,
                               bool (*mention)(void *cls, const char *msg), void *cls)
{
    if (text == NULL)
        return NULL;
    json_t *all = json_loads(text, 0, NULL);
    if (!json_is_array(all)) {
        json_decref(all);
        return strdup("[]");
    }
    json_t *kept = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(all, i, item)
    {
        long k = policy_index(json_string_value(json_object_get(item, "path")));
        bool about_dropped = k >= 0 && (size_t)k < r->npolicies && r->dropped[k];
        if (about_dropped || (policies_only && k < 0))
            continue;
        const char *msg = json_string_value(json_object_get(item, "message"));
        if (mention && msg && mention(cls, msg))
            continue;
        json_array_append(kept, item);
    }
    char *out = json_dumps(kept, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(kept);
    json_decref(all);
    return out;
}
