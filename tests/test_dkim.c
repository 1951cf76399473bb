/* test_dkim.c: the parts of DKIM verification that need no DNS: the option
 * and result names, which domains cover which (alignment), which key records
 * serve TLS-RPT (RFC 8460 §3) and what libopendkim is given of them, how
 * signature outcomes make a verdict, messages without signatures or with
 * broken ones, and what ingest makes of a verdict under dkim = record and
 * require. Real signatures, keys in DNS and DNS failures are the integration
 * test's (tests/integration/test_dkim.py). */
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tlsrptd/dkim.h"
#include "tlsrptd/ingest.h"

static void test_names(void)
{
    enum dkim_policy p = DKIM_POLICY_OFF;
    CHECK(dkim_policy_parse("require", &p));
    CHECK_INT(p, DKIM_POLICY_REQUIRE);
    CHECK(dkim_policy_parse("record", &p));
    CHECK_INT(p, DKIM_POLICY_RECORD);
    CHECK(dkim_policy_parse("off", &p));
    CHECK_INT(p, DKIM_POLICY_OFF);
    CHECK(!dkim_policy_parse("Require", &p));
    CHECK(!dkim_policy_parse("", &p));
    CHECK(!dkim_policy_parse("yes", &p));
    CHECK_STR(dkim_result_name(DKIM_RESULT_PASS), "pass");
    CHECK_STR(dkim_result_name(DKIM_RESULT_FAIL), "fail");
    CHECK_STR(dkim_result_name(DKIM_RESULT_NONE), "none");
    CHECK_STR(dkim_result_name(DKIM_RESULT_TEMPERROR), "temperror");
}

static void test_covers(void)
{
    CHECK(dkim_domain_covers("sender.example", "sender.example"));
    CHECK(dkim_domain_covers("Sender.Example", "sender.example."));
    CHECK(dkim_domain_covers("sender.example.", " reports.SENDER.example "));
    CHECK(dkim_domain_covers("example", "a.b.example"));
    CHECK(!dkim_domain_covers("sender.example", "badsender.example"));
    CHECK(!dkim_domain_covers("reports.sender.example", "sender.example"));
    CHECK(!dkim_domain_covers("sender.example", "sender.example.net"));
    CHECK(!dkim_domain_covers("sender.example", NULL));
    CHECK(!dkim_domain_covers(NULL, "sender.example"));
    CHECK(!dkim_domain_covers("", "sender.example"));
    CHECK(!dkim_domain_covers(".", "sender.example"));
    CHECK(!dkim_domain_covers("sender.example", ""));
}

static void key_ok(const char *record, const char *expect)
{
    char out[256], why[TR_ERRLEN] = "";
    tr_err rc = dkim_key_for_tlsrpt(record, out, sizeof out, why);
    CHECK_INT(rc, TR_OK);
    if (rc == TR_OK)
        CHECK_STR(out, expect);
    else
        fprintf(stderr, "  %s: %s\n", record, why);
}

static void key_refused(const char *record, const char *why_has)
{
    char out[256], why[TR_ERRLEN] = "";
    CHECK_INT(dkim_key_for_tlsrpt(record, out, sizeof out, why), TR_EINVAL);
    CHECK_HAS(why, why_has);
}

static void test_key_service(void)
{
    /* RFC 8460 §3: tlsrpt or * (RFC 6376's default when s= is absent) */
    key_ok("v=DKIM1; k=rsa; s=tlsrpt; p=AAAA", "v=DKIM1; k=rsa; p=AAAA");
    key_ok("v=DKIM1; k=rsa; s=*; p=AAAA", "v=DKIM1; k=rsa; p=AAAA");
    key_ok("v=DKIM1; k=rsa; p=AAAA", "v=DKIM1; k=rsa; p=AAAA");
    key_ok("v=DKIM1;s=email:tlsrpt;p=AAAA;", "v=DKIM1; p=AAAA");
    key_ok("v=DKIM1; s = email : TLSRPT ; p=AAAA", "v=DKIM1; p=AAAA");
    key_ok(" p=AAAA ;\r\n\tk=rsa ", "p=AAAA; k=rsa");
    key_ok("p=", "p="); /* a revoked key: libopendkim says so */
    key_refused("v=DKIM1; k=rsa; s=email; p=AAAA", "key is for s=email, not tlsrpt");
    key_refused("v=DKIM1; s=email:other; p=AAAA", "s=email:other");
    key_refused("v=DKIM1; s=; p=AAAA", "key is for s=, not tlsrpt");
    key_refused("v=DKIM1; s=tlsrptx; p=AAAA", "not tlsrpt");
    key_refused("v=DKIM1; s=*; s=tlsrpt; p=AAAA", "two s= tags");
    /* the tag name is "s" exactly: "ss=" is another tag */
    key_ok("ss=email; p=AAAA", "ss=email; p=AAAA");

    char small[8], why[TR_ERRLEN];
    CHECK_INT(dkim_key_for_tlsrpt("v=DKIM1; p=AAAAAAAA", small, sizeof small, why), TR_ETOOBIG);
}

static void test_combine(void)
{
    struct dkim_verdict v;
    dkim_combine(NULL, 0, "sender.example", "sender.example", &v);
    CHECK_INT(v.result, DKIM_RESULT_NONE);
    CHECK_STR(v.domain, "");
    CHECK(!v.aligned);

    /* the first passing signature whose domain is aligned wins */
    struct dkim_sig_outcome s1[] = {
        {DKIM_SIG_FAIL, "sender.example", "body hash did not verify"},
        {DKIM_SIG_PASS, "esp.example", NULL},
        {DKIM_SIG_PASS, "sender.example", NULL},
    };
    dkim_combine(s1, 3, "reports.sender.example", "sender.example", &v);
    CHECK_INT(v.result, DKIM_RESULT_PASS);
    CHECK_STR(v.domain, "sender.example");
    CHECK(v.aligned);
    CHECK_STR(v.reason, "");
    /* none aligned: the first passing one, not aligned */
    dkim_combine(s1, 3, "other.example", "sender.example", &v);
    CHECK_INT(v.result, DKIM_RESULT_PASS);
    CHECK_STR(v.domain, "esp.example");
    CHECK(!v.aligned);
    /* aligned needs both the submitter and From */
    dkim_combine(s1 + 2, 1, "sender.example", "other.example", &v);
    CHECK(!v.aligned);
    dkim_combine(s1 + 2, 1, NULL, "sender.example", &v);
    CHECK(!v.aligned);

    /* nothing passed: a temperror beats a fail (the key may be found later) */
    struct dkim_sig_outcome s2[] = {
        {DKIM_SIG_FAIL, "a.example", "signature did not verify"},
        {DKIM_SIG_TEMPERROR, "b.example", "key lookup failed: timeout"},
    };
    dkim_combine(s2, 2, "b.example", "b.example", &v);
    CHECK_INT(v.result, DKIM_RESULT_TEMPERROR);
    CHECK_STR(v.domain, "b.example");
    CHECK_STR(v.reason, "key lookup failed: timeout");
    CHECK(v.aligned);
    /* only failures: the first signature's domain and reason */
    dkim_combine(s2, 1, "a.example", "a.example", &v);
    CHECK_INT(v.result, DKIM_RESULT_FAIL);
    CHECK_STR(v.domain, "a.example");
    CHECK_STR(v.reason, "signature did not verify");
    struct dkim_sig_outcome s3[] = {{DKIM_SIG_FAIL, NULL, NULL}};
    dkim_combine(s3, 1, "a.example", "a.example", &v);
    CHECK_INT(v.result, DKIM_RESULT_FAIL);
    CHECK_STR(v.domain, "");
    CHECK_STR(v.reason, "not verified");
    CHECK(!v.aligned);
}

#define HEAD                                                                                       \
    "From: TLS Reporting <noreply@sender.example>\n"                                               \
    "To: tlsrpt@mail.example\n"                                                                    \
    "Subject: Report Domain: mail.example Submitter: sender.example Report-ID: <r1>\n"             \
    "TLS-Report-Domain: mail.example\n"                                                            \
    "TLS-Report-Submitter: sender.example\n"                                                       \
    "MIME-Version: 1.0\n"                                                                          \
    "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\n"
#define BODY                                                                                       \
    "\n--b1\nContent-Type: text/plain\n\nA report.\n\n--b1\n"                                      \
    "Content-Type: application/tlsrpt+json\n\n"                                                    \
    "{\"organization-name\":\"Sender\",\"date-range\":{\"start-datetime\":"                        \
    "\"2026-11-03T00:00:00Z\",\"end-datetime\":\"2026-11-03T23:59:59Z\"},"                         \
    "\"contact-info\":\"tlsrpt@sender.example\",\"report-id\":\"r1\",\"policies\":[{\"policy\":"   \
    "{\"policy-type\":\"no-policy-found\",\"policy-domain\":\"mail.example\"},\"summary\":"        \
    "{\"total-successful-session-count\":5,\"total-failure-session-count\":0}}]}\n--b1--\n"

static void test_messages_without_dns(void)
{
    struct dkim_config cfg = {DKIM_POLICY_RECORD, 1};
    struct dkim_verdict v;
    const char unsigned_msg[] = HEAD BODY;
    dkim_verify_message(unsigned_msg, strlen(unsigned_msg), "sender.example", &cfg, &v);
    CHECK_INT(v.result, DKIM_RESULT_NONE);
    CHECK_STR(v.domain, "");

    /* a signature that cannot be parsed (b= empty) fails without a key lookup */
    const char broken[] = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=sender.example;"
                          " s=sel; h=from:to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
                          " b=\n" HEAD BODY;
    dkim_verify_message(broken, strlen(broken), "sender.example", &cfg, &v);
    CHECK_INT(v.result, DKIM_RESULT_FAIL);
    CHECK(v.reason[0] != 0);

    /* CRLF line ends too */
    const char crlf[] = "From: a@sender.example\r\nSubject: x\r\n\r\nbody\r\n";
    dkim_verify_message(crlf, strlen(crlf), NULL, &cfg, &v);
    CHECK_INT(v.result, DKIM_RESULT_NONE);
    /* not a message at all */
    dkim_verify_message("", 0, NULL, &cfg, &v);
    CHECK_INT(v.result, DKIM_RESULT_NONE);
}

/* What ingest makes of the verdict of an unsigned mail (no DNS needed). */
static void test_ingest_policy(void)
{
    const char msg[] = HEAD BODY;
    struct store_source src = {.kind = "file", .name = "unsigned.eml"};
    struct ingest_limits lim = INGEST_DEFAULT_LIMITS;
    const char *reason = NULL;

    /* off (the default of the limits): no verdict */
    struct ingest_job *job = ingest_prepare((void *)msg, strlen(msg), false, &src, &lim);
    const struct store_source *jsrc;
    size_t len;
    CHECK(job != NULL);
    ingest_job_input(job, &len, &jsrc);
    CHECK(jsrc->dkim_result == NULL);
    CHECK(!ingest_job_rejected(job, &reason));
    ingest_job_free(job);

    /* record: stored with "none" */
    lim.dkim = (struct dkim_config){DKIM_POLICY_RECORD, 1};
    job = ingest_prepare((void *)msg, strlen(msg), false, &src, &lim);
    ingest_job_input(job, &len, &jsrc);
    CHECK_STR(jsrc->dkim_result, "none");
    CHECK(jsrc->dkim_domain == NULL);
    CHECK(!ingest_job_rejected(job, &reason));
    ingest_job_free(job);

    /* require: it can only be quarantined, with the reason */
    lim.dkim.policy = DKIM_POLICY_REQUIRE;
    job = ingest_prepare((void *)msg, strlen(msg), false, &src, &lim);
    CHECK(ingest_job_rejected(job, &reason));
    CHECK_STR(reason, "DKIM: no valid signature (none: the message is not signed)");
    ingest_job_free(job);

    /* a body POSTed over HTTP is not mail: no verdict, not refused */
    struct store_source http = {.kind = "http", .name = "/tlsrpt"};
    job = ingest_prepare((void *)msg, strlen(msg), false, &http, &lim);
    ingest_job_input(job, &len, &jsrc);
    CHECK(jsrc->dkim_result == NULL);
    CHECK(!ingest_job_rejected(job, &reason));
    ingest_job_free(job);

    /* a mail that holds no acceptable report is quarantined for that, not for DKIM */
    const char noreport[] = "From: a@sender.example\nSubject: hello\n\nno report here\n";
    job = ingest_prepare((void *)noreport, strlen(noreport), false, &src, &lim);
    CHECK(ingest_job_rejected(job, &reason));
    CHECK(strstr(reason, "DKIM") == NULL);
    ingest_job_free(job);
}

int main(void)
{
    test_names();
    test_covers();
    test_key_service();
    test_combine();
    test_messages_without_dns();
    test_ingest_policy();
    return check_done("dkim");
}
