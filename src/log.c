/* log.c: tr_log to stderr (text or JSON lines) or syslog.
 * One line per call; lines are written with a single write() so concurrent
 * threads do not interleave. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tlsrptd/log.h"

static enum tr_log_target log_target = TR_LOG_STDERR;
static int log_max_level = LOG_INFO;

static const char *level_name(int level)
{
    switch (level) {
    case LOG_EMERG:
    case LOG_ALERT:
    case LOG_CRIT:
    case LOG_ERR:
        return "error";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
    case LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void tr_log_setup(enum tr_log_target target, int max_level, const char *ident)
{
    log_target = target;
    log_max_level = max_level;
    if (target == TR_LOG_SYSLOG)
        openlog(ident ? ident : "tlsrptd", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* The current UTC time as 2026-11-24T02:40:00Z. */
static void format_stamp(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int tr_log_level(void)
{
    return log_max_level;
}

/* Control characters as \n, \r, \t or \xHH: a line of the text log is one
 * line, whatever a client put into a URL (%0a) or a sender into a file name. */
static void escape_controls(const char *in, char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < n; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            out[o++] = (char)*p;
            continue;
        }
        out[o++] = '\\';
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            out[o++] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
        } else {
            out[o++] = 'x';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

void tr_log(int level, const char *fmt, ...)
{
    char raw[2048], msg[4 * sizeof raw];
    va_list ap;

    if (level > log_max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    if (log_target == TR_LOG_JSON)
        snprintf(msg, sizeof msg, "%s", raw); /* JSON escapes them itself */
    else
        escape_controls(raw, msg, sizeof msg);

    if (log_target == TR_LOG_SYSLOG) {
        syslog(level, "%s", msg);
        return;
    }

    char stamp[32];
    format_stamp(stamp, sizeof stamp);

    char line[sizeof msg + 128];
    int n;
    if (log_target == TR_LOG_JSON) {
        json_t *j =
            json_pack("{s:s, s:s, s:s}", "time", stamp, "level", level_name(level), "msg", msg);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        n = snprintf(line, sizeof line, "%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        n = snprintf(line, sizeof line, "%s tlsrptd[%s]: %s\n", stamp, level_name(level), msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1, line[n - 1] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void tr_log_fields(int level, json_t *fields)
{
    if (fields == NULL)
        return;
    if (level > log_max_level || log_target != TR_LOG_JSON) {
        char *text = level > log_max_level ? NULL : json_dumps(fields, JSON_COMPACT);
        if (text)
            tr_log(level, "%s", text);
        free(text);
        json_decref(fields);
        return;
    }
    char stamp[32];
    format_stamp(stamp, sizeof stamp);
    json_t *rec = json_pack("{s:s, s:s}", "time", stamp, "level", level_name(level));
    json_object_update(rec, fields);
    json_decref(fields);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    char *line = malloc(n + 2);
    if (line) {
        memcpy(line, text, n);
        line[n] = '\n';
        ssize_t w = write(STDERR_FILENO, line, n + 1);
        (void)w;
        free(line);
    }
    free(text);
}
