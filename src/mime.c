/* mime.c: find TLS-RPT report parts in a MIME message (GMime), docs/architecture.md.
 *
 * A part is a report when its media type is application/tlsrpt+gzip,
 * application/tlsrpt+json or application/tlsrpt (any letter case), or when a
 * generic type (application/gzip, application/x-gzip, application/json,
 * application/octet-stream, text/plain) carries a .json or .json.gz file name.
 * Multiparts and message/rfc822 parts (forwarded reports) are walked, bounded in
 * part count and depth. Bodies are transfer-decoded (base64, quoted-printable)
 * but not gunzipped. For `validate --strict` it also records the message's own
 * Content-Type with its parameters and, per report part, whether the bytes are
 * gzip; nothing here judges them (mailcheck.c does). Knows nothing of JSON,
 * HTTP or SQLite. Exports mime_*. */
#include <ctype.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "tlsrptd/mime.h"

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_setup(void)
{
    g_mime_init();
}

struct walk {
    const struct mime_limits *lim;
    struct mime_message *out;
    size_t parts_seen;
    tr_err rc;
    char *err;
};

static bool ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && g_ascii_strcasecmp(s + n - m, suffix) == 0;
}

static bool is_report_type(const char *mt)
{
    return g_ascii_strcasecmp(mt, "application/tlsrpt+gzip") == 0 ||
           g_ascii_strcasecmp(mt, "application/tlsrpt+json") == 0 ||
           g_ascii_strcasecmp(mt, "application/tlsrpt") == 0;
}

static bool is_generic_type(const char *mt)
{
    static const char *const generic[] = {"application/gzip",
                                          "application/x-gzip",
                                          "application/json",
                                          "application/octet-stream",
                                          "application/x-gzip-compressed",
                                          "text/plain",
                                          NULL};
    for (const char *const *g = generic; *g; g++)
        if (g_ascii_strcasecmp(mt, *g) == 0)
            return true;
    return false;
}

static bool has_report_name(const char *name)
{
    return name && (ends_with_ci(name, ".json") || ends_with_ci(name, ".json.gz") ||
                    ends_with_ci(name, ".json.gzip"));
}

static char *header_copy(GMimeObject *obj, const char *name)
{
    const char *v = g_mime_object_get_header(obj, name);
    if (v == NULL)
        return NULL;
    /* unfold and trim: header values may span lines */
    char *s = g_mime_utils_header_unfold(v);
    if (s == NULL)
        return NULL;
    g_strstrip(s);
    char *out = strdup(s);
    g_free(s);
    return out;
}

static void take_headers(GMimeMessage *msg, struct mime_message *out)
{
    GMimeObject *obj = GMIME_OBJECT(msg);
    if (out->report_domain == NULL)
        out->report_domain = header_copy(obj, "TLS-Report-Domain");
    if (out->report_submitter == NULL)
        out->report_submitter = header_copy(obj, "TLS-Report-Submitter");
    if (out->subject == NULL) {
        const char *subj = g_mime_message_get_subject(msg); /* decoded, borrowed */
        if (subj) {
            char *s = g_mime_utils_header_unfold(subj);
            out->subject = s ? strdup(g_strstrip(s)) : NULL;
            g_free(s);
        }
    }
    if (out->message_id == NULL) {
        const char *mid = g_mime_message_get_message_id(msg); /* without <>, borrowed */
        if (mid)
            out->message_id = strdup(mid);
    }
}

/* A copy in malloc'd memory of g_ascii_strdown(s); NULL on ENOMEM. */
static char *lower_copy(const char *s)
{
    char *g = g_ascii_strdown(s, -1);
    char *out = g ? strdup(g) : NULL;
    g_free(g);
    return out;
}

static void add_part(struct walk *w, GMimePart *part, const char *media_type)
{
    struct mime_message *out = w->out;
    if (out->nparts >= w->lim->max_reports) {
        w->rc =
            tr_fail(w->err, TR_ETOOBIG, "mime: more than %zu report parts", w->lim->max_reports);
        return;
    }
    GMimeDataWrapper *content = g_mime_part_get_content(part); /* borrowed */
    if (content == NULL)
        return; /* an empty part holds no report */

    GByteArray *bytes = g_byte_array_new();
    GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(bytes); /* owns bytes */
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), TRUE);
    if (g_mime_data_wrapper_write_to_stream(content, mem) < 0) {
        g_object_unref(mem);
        w->rc = tr_fail(w->err, TR_EPARSE, "mime: cannot decode the %s part", media_type);
        return;
    }

    struct mime_report_part *np = realloc(out->parts, (out->nparts + 1) * sizeof *np);
    if (np == NULL) {
        g_object_unref(mem);
        w->rc = tr_fail(w->err, TR_ENOMEM, "mime: out of memory");
        return;
    }
    out->parts = np;
    struct mime_report_part *rp = &out->parts[out->nparts];
    memset(rp, 0, sizeof *rp);
    buf_init(&rp->body, w->lim->max_message);
    if (buf_append(&rp->body, bytes->data, bytes->len) != TR_OK) {
        g_object_unref(mem);
        buf_free(&rp->body);
        w->rc = tr_fail(w->err, TR_ETOOBIG, "mime: report part too large");
        return;
    }
    g_object_unref(mem);
    rp->is_gzip = rp->body.len >= 2 && rp->body.data[0] == 0x1f && rp->body.data[1] == 0x8b;
    rp->media_type = lower_copy(media_type);
    const char *fn = g_mime_part_get_filename(part);
    rp->filename = fn ? strdup(fn) : NULL;
    out->nparts++;
}

/* The message's own Content-Type and its first MIME_MAX_PARAMS parameters. */
static tr_err take_content_type(GMimeMessage *msg, struct mime_message *out, char *err)
{
    GMimeObject *top = g_mime_message_get_mime_part(msg); /* borrowed */
    GMimeContentType *ct = top ? g_mime_object_get_content_type(top) : NULL;
    char *mt = ct ? g_mime_content_type_get_mime_type(ct) : NULL; /* g_free */
    out->media_type = lower_copy(mt ? mt : "text/plain");
    g_free(mt);
    GMimeParamList *list = ct ? g_mime_content_type_get_parameters(ct) : NULL; /* borrowed */
    int n = list ? g_mime_param_list_length(list) : 0;
    if (n > MIME_MAX_PARAMS)
        n = MIME_MAX_PARAMS;
    out->params = n > 0 ? calloc((size_t)n, sizeof *out->params) : NULL;
    if (out->media_type == NULL || (n > 0 && out->params == NULL))
        return tr_fail(err, TR_ENOMEM, "mime: out of memory");
    for (int i = 0; i < n; i++) {
        GMimeParam *p = g_mime_param_list_get_parameter_at(list, i); /* borrowed */
        const char *name = g_mime_param_get_name(p), *value = g_mime_param_get_value(p);
        struct mime_param *mp = &out->params[out->nparams];
        mp->name = lower_copy(name ? name : "");
        mp->value = strdup(value ? value : "");
        if (mp->name == NULL || mp->value == NULL) {
            free(mp->name);
            free(mp->value);
            return tr_fail(err, TR_ENOMEM, "mime: out of memory");
        }
        out->nparams++;
    }
    return TR_OK;
}

static void walk_object(struct walk *w, GMimeObject *obj, size_t depth)
{
    if (w->rc != TR_OK || obj == NULL)
        return;
    if (++w->parts_seen > w->lim->max_parts) {
        w->rc = tr_fail(w->err, TR_ETOOBIG, "mime: more than %zu parts", w->lim->max_parts);
        return;
    }
    if (depth > w->lim->max_depth) {
        w->rc =
            tr_fail(w->err, TR_ETOOBIG, "mime: nested deeper than %zu levels", w->lim->max_depth);
        return;
    }
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && w->rc == TR_OK; i++)
            walk_object(w, g_mime_multipart_get_part(mp, i), depth + 1);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner) {
            size_t before = w->out->nparts;
            walk_object(w, g_mime_message_get_mime_part(inner), depth + 1);
            if (w->out->nparts > before)
                take_headers(inner, w->out); /* fill what the outer message lacked */
        }
        return;
    }
    if (!GMIME_IS_PART(obj))
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *mt = ct ? g_mime_content_type_get_mime_type(ct) : NULL; /* caller frees */
    if (mt == NULL)
        return;
    GMimePart *part = GMIME_PART(obj);
    if (is_report_type(mt) ||
        (is_generic_type(mt) && has_report_name(g_mime_part_get_filename(part))))
        add_part(w, part, mt);
    g_free(mt);
}

bool mime_looks_like_message(const void *buf, size_t len)
{
    const unsigned char *s = buf;
    size_t i = 0;
    if (len >= 5 && memcmp(s, "From ", 5) == 0)
        return true; /* mbox separator line */
    /* a header field name as real mail has them (letters, digits, '-', '_'), then ':' */
    while (i < len && i < 128 && (isalnum(s[i]) || s[i] == '-' || s[i] == '_'))
        i++;
    return i > 0 && i < len && s[i] == ':';
}

void mime_message_free(struct mime_message *m)
{
    for (size_t i = 0; i < m->nparts; i++) {
        buf_free(&m->parts[i].body);
        free(m->parts[i].media_type);
        free(m->parts[i].filename);
    }
    free(m->parts);
    for (size_t i = 0; i < m->nparams; i++) {
        free(m->params[i].name);
        free(m->params[i].value);
    }
    free(m->params);
    free(m->media_type);
    free(m->report_domain);
    free(m->report_submitter);
    free(m->subject);
    free(m->message_id);
    memset(m, 0, sizeof *m);
}

const char *mime_param(const struct mime_message *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (g_ascii_strcasecmp(m->params[i].name, name) == 0)
            return m->params[i].value;
    return NULL;
}

tr_err mime_extract(const void *buf, size_t len, const struct mime_limits *lim,
                    struct mime_message *out, char *err)
{
    static const struct mime_limits defaults = MIME_DEFAULT_LIMITS;
    memset(out, 0, sizeof *out);
    if (lim == NULL)
        lim = &defaults;
    if (len > lim->max_message)
        return tr_fail(err, TR_ETOOBIG, "mime: message larger than %zu bytes", lim->max_message);
    pthread_once(&gmime_once, gmime_setup);

    /* the stream borrows buf; GMime never writes to it */
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)buf, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    g_object_unref(stream);
    if (msg == NULL)
        return tr_fail(err, TR_EPARSE, "mime: not a mail message");

    struct walk w = {lim, out, 0, TR_OK, err};
    take_headers(msg, out);
    w.rc = take_content_type(msg, out, err);
    walk_object(&w, g_mime_message_get_mime_part(msg), 0);
    g_object_unref(msg);
    if (w.rc != TR_OK)
        return w.rc;
    if (out->nparts == 0)
        return tr_fail(err, TR_ENOREPORT, "no TLS-RPT report part in message");
    return TR_OK;
}
