/* alert_channel.h: where alerts go: a webhook (a JSON POST that
 * Slack and Mattermost incoming webhooks show as a message) or a mail
 * address (a plain-text mail through the local sendmail, or SMTP to a relay
 * with libcurl). A channel may be limited to some domains: the configured
 * value is the URL or address followed by domain patterns (`example.com`,
 * `*.example.org`); then only alerts for those domains go to it.
 *
 * Every channel has a stable name, stored with its deliveries: "webhook
 * HOST #HASH" (the URL's path may hold a secret, so only its host and a hash
 * are shown) or "email ADDRESS". Knows nothing of rules or storage. */
#ifndef TLSRPTD_ALERT_CHANNEL_H
#define TLSRPTD_ALERT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tlsrptd/alert_message.h"
#include "tlsrptd/err.h"

enum alert_channel_kind { ALERT_CHANNEL_WEBHOOK, ALERT_CHANNEL_EMAIL };

#define ALERT_CHANNEL_MAX_DOMAINS 64

struct alert_channel {
    enum alert_channel_kind kind;
    char *target; /* the URL or the address */
    char *name;   /* "webhook hooks.slack.com #1f2e3d4c", "email ops@example.com" */
    char *domains[ALERT_CHANNEL_MAX_DOMAINS]; /* lower case; none: every alert */
    size_t ndomains;
};

/* How mail is sent: SMTP to smtp (HOST:PORT, or smtp:// or smtps:// URL)
 * when set, else the sendmail command (split at spaces, no shell), which
 * reads the message with its To: header on standard input. Borrowed. */
struct alert_mailer {
    const char *sendmail;
    const char *smtp;
    const char *from; /* the envelope and From: address */
    const char *host; /* this host's name, for the text and Message-ID */
};

/* Parse a configured value ("URL [DOMAIN...]" or "ADDRESS [DOMAIN...]"): a
 * webhook needs an http:// or https:// URL, a mail address one '@' and no
 * spaces or angle brackets. TR_EUSAGE with err saying what is wrong. */
tr_err alert_channel_parse(enum alert_channel_kind kind, const char *value,
                           struct alert_channel *out, char *err);
void alert_channel_free(struct alert_channel *c);
/* Whether alerts for domain ("" for alerts about no domain) go to c: a
 * channel without domains takes everything, one with domains only theirs. */
bool alert_channel_wants(const struct alert_channel *c, const char *domain);

/* Send one alert (n == 1) or a digest of n through c. TR_OK once the
 * receiver took it (a 2xx answer, the relay's 250 after DATA, sendmail's exit
 * 0); TR_EIO otherwise, with err saying why ("HTTP 503", "SMTP 451 ...",
 * "connection refused", "sendmail exited 75: ..."). stop (may be NULL), once
 * non-zero, cuts short a transfer that has sent nothing yet. Any thread. */
tr_err alert_channel_send(const struct alert_channel *c, const struct alert_mailer *m,
                          const struct alert_msg *msgs, size_t n, const volatile int *stop,
                          char *err);

#endif
