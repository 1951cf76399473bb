/* test_alert.c: the pure parts of alerting: channel values and domain
 * routing, the retry schedule, the alert_* settings, and the words of an
 * alert (titles, mail headers that report values cannot break, chat text
 * that report values cannot format, digests). The rules, the queue and the
 * transports run against real servers in tests/integration/test_alerts.py. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/alert.h"
#include "tlsrptd/alert_message.h"

static void test_channels(void)
{
    struct alert_channel c;
    char err[TR_ERRLEN];
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_WEBHOOK,
                                  "https://user:pw@hooks.slack.com/services/T0/B0/secret", &c, err),
              TR_OK);
    CHECK(strncmp(c.name, "webhook hooks.slack.com #", 25) == 0);
    CHECK(strstr(c.name, "secret") == NULL && strstr(c.name, "pw") == NULL);
    CHECK_INT(c.ndomains, 0);
    CHECK(alert_channel_wants(&c, "anything.example"));
    CHECK(alert_channel_wants(&c, ""));
    alert_channel_free(&c);

    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_EMAIL, "ops@example.net Example.COM. *.example.org",
                                  &c, err),
              TR_OK);
    CHECK_STR(c.name, "email ops@example.net");
    CHECK_INT(c.ndomains, 2);
    CHECK_STR(c.domains[0], "example.com");
    CHECK(alert_channel_wants(&c, "example.com"));
    CHECK(alert_channel_wants(&c, "mx.a.example.org"));
    CHECK(!alert_channel_wants(&c, "example.org")); /* *.example.org: below it only */
    CHECK(!alert_channel_wants(&c, "badexample.org"));
    CHECK(!alert_channel_wants(&c, "sub.example.com"));
    CHECK(!alert_channel_wants(&c, "")); /* quarantine spikes go to unrestricted channels */
    alert_channel_free(&c);

    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_WEBHOOK, "ftp://x.example/", &c, err), TR_EUSAGE);
    CHECK_HAS(err, "not an http:// or https:// URL");
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_WEBHOOK, "https:///path", &c, err), TR_EUSAGE);
    CHECK_HAS(err, "no host");
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_EMAIL, "ops", &c, err), TR_EUSAGE);
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_EMAIL, "Ops <ops@x.example>", &c, err), TR_EUSAGE);
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_EMAIL, "a@b@c", &c, err), TR_EUSAGE);
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_EMAIL, "ops@x.example bad/domain", &c, err),
              TR_EUSAGE);
    CHECK_HAS(err, "is not a domain");
    CHECK_INT(alert_channel_parse(ALERT_CHANNEL_EMAIL, "   ", &c, err), TR_EUSAGE);
}

static void test_backoff(void)
{
    CHECK_INT(alert_backoff(1), 5);
    CHECK_INT(alert_backoff(2), 10);
    CHECK_INT(alert_backoff(3), 20);
    CHECK_INT(alert_backoff(8), 640);
    CHECK_INT(alert_backoff(9), 900);
    CHECK_INT(alert_backoff(1000000), 900);
}

static void test_settings(void)
{
    struct config cfg;
    config_init(&cfg);
    struct alert_config ac;
    char err[TR_ERRLEN];
    CHECK_INT(alert_config_init(&ac, &cfg, err), TR_OK);
    CHECK(ac.failure_rate > 0.0499 && ac.failure_rate < 0.0501);
    CHECK(ac.jump > 2.99 && ac.jump < 3.01);
    CHECK(ac.jump_floor > 0.0099 && ac.jump_floor < 0.0101);
    CHECK_INT(ac.cooldown, 86400);
    CHECK_INT(ac.clean_days, 14);
    CHECK_INT(ac.silence_days, 3);
    CHECK_INT(ac.rules, (1u << ALERT_NRULES) - 1);
    CHECK_STR(ac.mailer.sendmail, "/usr/sbin/sendmail -i -t");
    CHECK(strncmp(ac.mailer.from, "tlsrptd@", 8) == 0);
    alert_config_free(&ac);

    CHECK_INT(config_set(&cfg, "alert_failure_rate", "0.2", err), TR_OK);
    CHECK_INT(config_set(&cfg, "alert_rules", "rate-jump, silent-reporter", err), TR_OK);
    CHECK_INT(config_set(&cfg, "alert_webhook", "https://a.example/x", err), TR_OK);
    CHECK_INT(config_set(&cfg, "alert_email", "ops@a.example a.example", err), TR_OK);
    CHECK_INT(alert_config_init(&ac, &cfg, err), TR_OK);
    CHECK(ac.failure_rate > 0.199 && ac.failure_rate < 0.201);
    CHECK_INT(ac.rules, (1u << ALERT_RATE_JUMP) | (1u << ALERT_SILENT_REPORTER));
    CHECK_INT(ac.nchannels, 2);
    alert_config_free(&ac);

    const char *bad[][3] = {
        {"alert_failure_rate", "0", "alert_failure_rate"},
        {"alert_failure_rate", "101%", "alert_failure_rate"},
        {"alert_failure_rate", "nan", "alert_failure_rate"},
        {"alert_failure_rate", "5%%", "alert_failure_rate"},
        {"alert_jump", "0.9", "alert_jump"},
        {"alert_jump_floor", "2", "alert_jump_floor"},
        {"alert_rules", "new-failure,bogus", "'bogus' is not a rule"},
        {"alert_from", "not an address", "alert_from"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct config c2;
        config_init(&c2);
        CHECK_INT(config_set(&c2, bad[i][0], bad[i][1], err), TR_OK);
        CHECK_INT(alert_config_init(&ac, &c2, err), TR_EUSAGE);
        CHECK_HAS(err, bad[i][2]);
        config_free(&c2);
    }
    /* the same webhook twice would share its deliveries */
    CHECK_INT(config_set(&cfg, "alert_webhook", "https://a.example/x", err), TR_OK);
    CHECK_INT(alert_config_init(&ac, &cfg, err), TR_EUSAGE);
    CHECK_HAS(err, "configured twice");
    config_free(&cfg);
}

/* An alert as a rule stores it. */
static json_t *details_of(const char *json)
{
    json_error_t e;
    json_t *d = json_loads(json, 0, &e);
    CHECK(d != NULL);
    return d;
}

static void test_words(void)
{
    json_t *d = details_of(
        "{\"day\": \"2026-03-14\", \"why\": \"w\", \"reporters\": [\"Google LLC\"],"
        " \"sessions\": {\"successful\": 280, \"failed\": 40}, \"failure_rate\": 0.125,"
        " \"result_types\": {\"certificate-expired\": {\"failed\": 40, \"meaning\": \"the MX "
        "presented an expired certificate\", \"fix\": \"renew it\", \"mx_hosts\": [{\"name\": "
        "\"mx1.example.com\", \"failed\": 40}], \"sending_ips\": [{\"name\": \"192.0.2.1\", "
        "\"failed\": 40}]}}, \"reports\": [12, 13], \"reports_total\": 2}");
    struct alert_msg m = {7, 1773554400, 0, "failure-rate", "example.com", "", "", d};
    char title[512], subject[512];
    alert_message_title(&m, title, sizeof title);
    CHECK_STR(title, "example.com: 12.5% of TLS sessions failed on 2026-03-14 (40 of 320)");
    alert_message_subject(&m, 1, subject, sizeof subject);
    CHECK_STR(subject,
              "[tlsrptd] example.com: 12.5% of TLS sessions failed on 2026-03-14 (40 of 320)");

    struct buf mail;
    buf_init(&mail, 1 << 20);
    CHECK_INT(alert_message_mail(&m, 1, "tlsrptd@c.example", "ops@example.com", "c.example",
                                 1773554400, "\r\n", &mail),
              TR_OK);
    CHECK(buf_append(&mail, "", 1) == TR_OK);
    const char *text = (const char *)mail.data;
    CHECK_HAS(text, "Subject: [tlsrptd] example.com: 12.5%");
    CHECK_HAS(text, "Auto-Submitted: auto-generated\r\n");
    CHECK_HAS(text, "\r\n\r\nexample.com: 12.5% of TLS sessions failed");
    CHECK_HAS(text, "    What to do:    renew it\r\n");
    CHECK_HAS(text, "Evidence: reports 12, 13\r\n  see one with: tlsrptd show 12\r\n");
    CHECK(strstr(text, "\n\n") == NULL); /* every line ends in CRLF */
    buf_free(&mail);

    json_t *hook = alert_message_webhook(&m, 1, "c.example");
    CHECK(hook != NULL);
    CHECK_STR(json_string_value(json_object_get(hook, "rule")), "failure-rate");
    CHECK_STR(json_string_value(json_object_get(hook, "domain")), "example.com");
    CHECK(json_object_get(json_object_get(hook, "result_types"), "certificate-expired") != NULL);
    CHECK_HAS(json_string_value(json_object_get(hook, "text")),
              "• `certificate-expired`: 40 failed sessions. The MX presented an expired "
              "certificate: renew it.");
    json_decref(hook);
    json_decref(d);

    /* values from reports cannot break a header or format the chat */
    d = details_of("{\"day\": \"2026-03-14\", \"reporters\": [\"<!channel> & `x`\"],"
                   " \"result_types\": {\"a\\r\\nBcc: victim@example.net\": {\"failed\": 1, "
                   "\"meaning\": \"m\", \"fix\": \"f\", \"mx_hosts\": [{\"name\": "
                   "\"<https://evil.example|click>\", \"failed\": 1}], \"sending_ips\": []}},"
                   " \"reports\": [1], \"reports_total\": 1}");
    struct alert_msg h = {8,
                          1773554400,
                          0,
                          "new-failure",
                          "évil.example\r\nBcc: x@y",
                          "a\r\nBcc: victim@example.net",
                          "",
                          d};
    buf_init(&mail, 1 << 20);
    CHECK_INT(alert_message_mail(&h, 1, "t@c.example", "ops@example.com", "c.example", 1773554400,
                                 "\n", &mail),
              TR_OK);
    CHECK(buf_append(&mail, "", 1) == TR_OK);
    const char *body = strstr((const char *)mail.data, "\n\n");
    CHECK(body != NULL);
    size_t header_len = body ? (size_t)(body - (const char *)mail.data) : 0;
    char *headers = strndup((const char *)mail.data, header_len);
    CHECK(strstr(headers, "\nBcc:") == NULL);
    CHECK_HAS(headers, "X-Tlsrptd-Domain: ??vil.example  Bcc: x@y");
    free(headers);
    buf_free(&mail);
    hook = alert_message_webhook(&h, 1, "c.example");
    const char *chat = json_string_value(json_object_get(hook, "text"));
    CHECK(strstr(chat, "<!channel>") == NULL);
    CHECK(strstr(chat, "<https://") == NULL);
    CHECK_HAS(chat, "`?!channel? ? ?x?`");
    CHECK_HAS(chat, "`?https://evil.example|click?`");
    json_decref(hook);
    json_decref(d);
}

static void test_digest(void)
{
    enum { N = 40 };
    struct alert_msg v[N];
    json_t *d[N];
    char domains[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(domains[i], sizeof domains[i], "d%02d.example", i / 2);
        d[i] = details_of(i % 2 ? "{\"day\": \"2026-03-14\", \"failure_rate\": 0.3}"
                                : "{\"day\": \"2026-03-14\", \"result_types\": "
                                  "{\"tlsa-invalid\": {\"failed\": 3}}}");
        v[i] = (struct alert_msg){i + 1,      1773554400,
                                  0,          i % 2 ? "failure-rate" : "new-failure",
                                  domains[i], i % 2 ? "" : "tlsa-invalid",
                                  "",         d[i]};
    }
    char subject[512];
    alert_message_subject(v, N, subject, sizeof subject);
    CHECK_STR(subject, "[tlsrptd] 40 alerts for 20 domains");
    struct buf text;
    buf_init(&text, 1 << 20);
    CHECK_INT(alert_message_text(v, N, "c.example", &text), TR_OK);
    CHECK(buf_append(&text, "", 1) == TR_OK);
    CHECK_HAS((const char *)text.data, "  d07.example: 30.0% of sessions failed on 2026-03-14; "
                                       "new failure tlsa-invalid (3)\n");
    CHECK_HAS((const char *)text.data, "(alerts 1 to 40):\n  tlsrptd alerts --format json\n");
    buf_free(&text);
    json_t *hook = alert_message_webhook(v, N, "c.example");
    CHECK_INT(json_integer_value(json_object_get(hook, "count")), N);
    CHECK_INT(json_array_size(json_object_get(hook, "domains")), 20);
    CHECK_INT(json_array_size(json_object_get(hook, "alerts")), N);
    CHECK_HAS(json_string_value(json_object_get(hook, "text")),
              "• `d19.example`: 30.0% of sessions failed on 2026-03-14 · new failure "
              "`tlsa-invalid` (3)");
    json_decref(hook);
    for (int i = 0; i < N; i++)
        json_decref(d[i]);
}

int main(void)
{
    test_channels();
    test_backoff();
    test_settings();
    test_words();
    test_digest();
    return check_done("alert");
}
