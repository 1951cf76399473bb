/* log.h: the one logging function of tlsrptd (stderr text or JSON lines, or syslog).
 * tr_debug() tests the level before formatting. */
#ifndef TLSRPTD_LOG_H
#define TLSRPTD_LOG_H

#include <syslog.h>

enum tr_log_target { TR_LOG_STDERR, TR_LOG_JSON, TR_LOG_SYSLOG };

void tr_log_setup(enum tr_log_target target, int max_level, const char *ident);
int tr_log_level(void);
void tr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A structured record (a jansson object, stolen): with the JSON target its keys
 * join "time" and "level" in one object; otherwise it is written as compact
 * JSON text. */
struct json_t;
void tr_log_fields(int level, struct json_t *fields);

#define tr_err_log(...) tr_log(LOG_ERR, __VA_ARGS__)
#define tr_warn(...)    tr_log(LOG_WARNING, __VA_ARGS__)
#define tr_info(...)    tr_log(LOG_INFO, __VA_ARGS__)
#define tr_debug(...)                                                                              \
    do {                                                                                           \
        if (tr_log_level() >= LOG_DEBUG)                                                           \
            tr_log(LOG_DEBUG, __VA_ARGS__);                                                        \
    } while (0)

#endif
