/* test_domains.c: domain patterns and sets (domains.c), mentions of a
 * domain in text, and the tenant tokens file (tokens.c). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include "check.h"
#include "tlsrptd/domains.h"
#include "tlsrptd/tokens.h"

static void test_patterns(void)
{
    CHECK(domain_pattern_match("example.com", "example.com"));
    CHECK(!domain_pattern_match("example.com", "mail.example.com"));
    CHECK(domain_pattern_match("*.example.org", "a.example.org"));
    CHECK(domain_pattern_match("*.example.org", "a.b.example.org"));
    CHECK(!domain_pattern_match("*.example.org", "example.org"));
    CHECK(!domain_pattern_match("*.example.org", "badexample.org"));
    CHECK(domain_pattern_match("*", "anything.test"));
    CHECK(domain_pattern_match("*", ""));
    CHECK(!domain_pattern_match("*.example.org", ""));
}

static void test_sets(void)
{
    char err[TR_ERRLEN];
    struct domain_set *s = NULL;
    CHECK_INT(domain_set_parse("Example.COM., *.example.org  other.test,example.com", NULL, false,
                               &s, err),
              TR_OK);
    size_t n = 0;
    const char *const *p = domain_set_patterns(s, &n);
    CHECK_INT(n, 3);
    CHECK_STR(p[0], "*.example.org");
    CHECK_STR(p[1], "example.com");
    CHECK(domain_set_match(s, "EXAMPLE.com."));
    CHECK(domain_set_match(s, "x.y.example.org"));
    CHECK(!domain_set_match(s, "example.org"));
    CHECK(!domain_set_match(s, "mail.example.com"));
    CHECK(!domain_set_match(s, ""));
    CHECK(!domain_set_all(s));
    domain_set_free(s);

    CHECK_INT(domain_set_parse("*", NULL, false, &s, err), TR_EUSAGE);
    CHECK_HAS(err, "tokens_file only");
    CHECK_INT(domain_set_parse("a..b", NULL, false, &s, err), TR_EUSAGE);
    CHECK_HAS(err, "empty label");
    CHECK_INT(domain_set_parse("bücher.example", NULL, false, &s, err), TR_EUSAGE);
    CHECK_HAS(err, "A-label");

    char path[] = "/tmp/tlsrptd-test-domains-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char text[] = "# ours\nfile.test   # a comment\n\n*.wild.test, two.test\nbad name!\n";
    CHECK_INT(write(fd, text, sizeof text - 1), (long long)(sizeof text - 1));
    close(fd);
    CHECK_INT(domain_set_parse(NULL, path, false, &s, err), TR_EUSAGE);
    CHECK_HAS(err, ":5: 'name!'");
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK_INT(write(fd, text, sizeof text - 7), (long long)(sizeof text - 7));
    close(fd);
    CHECK_INT(domain_set_parse("list.test", path, false, &s, err), TR_OK);
    CHECK(domain_set_match(s, "list.test") && domain_set_match(s, "file.test") &&
          domain_set_match(s, "a.wild.test") && domain_set_match(s, "two.test") &&
          domain_set_match(s, "bad"));
    domain_set_free(s);
    unlink(path);
}

static void test_mentions(void)
{
    const char *d = "example.com";
    CHECK(domain_mentioned("Report Domain: example.com Submitter", 36, d));
    CHECK(domain_mentioned("tlsrpt@EXAMPLE.COM", 18, d));
    CHECK(domain_mentioned("ends with example.com.", 22, d));
    CHECK(domain_mentioned("\"policy-domain\":\"example.com\"", 29, d));
    CHECK(domain_mentioned("2026-11-03T00:00:00Z_example.com", 32, d));
    CHECK(!domain_mentioned("mail.example.com", 16, d));
    CHECK(!domain_mentioned("my-example.com", 14, d));
    CHECK(!domain_mentioned("example.com.au", 14, d));
    CHECK(!domain_mentioned("myexample.com", 13, d));
    CHECK(!domain_mentioned("example.community", 17, d));
    CHECK(!domain_mentioned("", 0, d));
}

static void test_tokens(void)
{
    char path[] = "/tmp/tlsrptd-test-tokens-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char text[] = "# tenants\n"
                        "aaaaaaaaaaaaaaaa-one   a.test *.b.test\n"
                        "\n"
                        "bbbbbbbbbbbbbbbb-admin *\n";
    CHECK_INT(write(fd, text, sizeof text - 1), (long long)(sizeof text - 1));
    close(fd);
    char err[TR_ERRLEN];
    struct tokens *t = NULL;
    CHECK_INT(tokens_load(path, &t, err), TR_OK);
    CHECK_INT(tokens_count(t), 2);
    const struct domain_set *s = tokens_find(t, "aaaaaaaaaaaaaaaa-one");
    CHECK(s && domain_set_match(s, "x.b.test") && !domain_set_match(s, "c.test"));
    s = tokens_find(t, "bbbbbbbbbbbbbbbb-admin");
    CHECK(s && domain_set_all(s));
    CHECK(tokens_find(t, "bbbbbbbbbbbbbbbb-admi") == NULL);
    CHECK(tokens_find(t, "") == NULL);
    tokens_free(t);

    const char *bad[][2] = {
        {"short a.test\n", "printable characters"},
        {"cccccccccccccccc-one\n", "names no domain"},
        {"cccccccccccccccc-one a.test\ncccccccccccccccc-one b.test\n", ":2: the same token"},
        {"cccccccccccccccc-one a..test\n", "empty label"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fd = open(path, O_WRONLY | O_TRUNC);
        CHECK_INT(write(fd, bad[i][0], strlen(bad[i][0])), (long long)strlen(bad[i][0]));
        close(fd);
        CHECK_INT(tokens_load(path, &t, err), TR_EUSAGE);
        CHECK_HAS(err, bad[i][1]);
        CHECK(strstr(err, "cccccccccccccccc") == NULL); /* never the secret */
    }
    CHECK(tokens_same_secret("abc", "abc"));
    CHECK(!tokens_same_secret("abc", "abd"));
    CHECK(!tokens_same_secret("abc", "abcd"));
    CHECK(!tokens_same_secret("", ""));
    unlink(path);
}

int main(void)
{
    test_patterns();
    test_sets();
    test_mentions();
    test_tokens();
    return check_done("domains");
}
