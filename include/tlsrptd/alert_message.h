/* alert_message.h: the words of an alert: the plain-text mail, and the JSON
 * of a webhook whose `text` reads well in Slack and Mattermost, for one alert
 * or a digest of many. Made from the alert as stored (its rule, domain and
 * details JSON), so a message sent a day late reads as one sent at once.
 *
 * Values that come from reports (domains, result types, MX hosts, IP
 * addresses, reporter names) are untrusted: they are cut to a sane length,
 * stripped of control characters, kept out of mail headers but for the
 * domain, and in chat text quoted so that they cannot format the message,
 * mention anyone or make a link. Pure functions; no I/O. */
#ifndef TLSRPTD_ALERT_MESSAGE_H
#define TLSRPTD_ALERT_MESSAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/buf.h"
#include "tlsrptd/err.h"

/* An alert to put into words. details: the JSON the rule stored (borrowed). */
struct alert_msg {
    int64_t id, created_at, suppressed;
    const char *rule, *domain, *subject, *title;
    const json_t *details;
};

/* Digests list at most this many alerts (the rest are counted). */
#define ALERT_DIGEST_MAX 1000

/* The alert's one-line title in plain text ("example.com: 12.5% of TLS
 * sessions failed on 2026-03-14 (40 of 320)"), as listings show it. */
void alert_message_title(const struct alert_msg *m, char *out, size_t len);
/* The subject line of a mail for msgs (n == 1: that alert; else a digest). */
void alert_message_subject(const struct alert_msg *msgs, size_t n, char *out, size_t len);
/* The plain-text body. */
tr_err alert_message_text(const struct alert_msg *msgs, size_t n, const char *host,
                          struct buf *out);
/* A whole RFC 5322 message from `from` to `to`, dated now, its lines ended
 * by eol ("\r\n" for SMTP, "\n" for a sendmail command). */
tr_err alert_message_mail(const struct alert_msg *msgs, size_t n, const char *from, const char *to,
                          const char *host, int64_t now, const char *eol, struct buf *out);
/* The webhook body: {"text": ..., "rule", "domain", "result_types", "reports",
 * ...} for one alert; {"text", "rule": "digest", "count", "domains",
 * "alerts": [...]} for a digest. A NEW reference; NULL when out of memory. */
json_t *alert_message_webhook(const struct alert_msg *msgs, size_t n, const char *host);

#endif
