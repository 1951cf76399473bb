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

void tr_log(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    if (level > log_max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    if (log_target == TR_LOG_SYSLOG) {
        syslog(level, "%s", msg);
        return;
    }

    char stamp[32];
    format_stamp(stamp, sizeof stamp);

    char line[4096];
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
