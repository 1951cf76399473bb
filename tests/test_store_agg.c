/* test_store_agg.c: the in-memory GROUP BY of the summaries (store_agg.h):
 * groups found again through table growth, distinct names per group,
 * saturating sums, and the order the SQL it replaces gave. */
#include <stdio.h>
#include <string.h>
#include "check.h"
#include "store_agg.h"

static void test_many_groups(void)
{
    struct agg *a = agg_new();
    CHECK(a != NULL);
    char key[32];
    for (int round = 0; round < 3; round++) /* the table grows many times in round 0 */
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof key, "d%04d.example", i);
            struct agg_group *g = agg_group(a, key, 0, NULL, true);
            CHECK(g != NULL);
            agg_add(g, AGG_FAILED, i);
            agg_max(g, 100 + round);
        }
    CHECK(agg_group(a, "d5000.example", 0, NULL, false) == NULL);
    struct agg_group *g = agg_group(a, "d0042.example", 0, NULL, false);
    CHECK(g != NULL && g->sum[AGG_FAILED] == 3 * 42 && g->last == 102);
    CHECK_STR(g->key, "d0042.example");
    /* the same name with a day or a second name is another group */
    CHECK(agg_group(a, "d0042.example", 86400, NULL, false) == NULL);
    CHECK(agg_group(a, "d0042.example", 0, "starttls-not-supported", false) == NULL);
    size_t n = 0;
    struct agg_group **v = agg_sorted(a, false, &n);
    CHECK_INT(n, 5000);
    CHECK(!agg_failed(a));
    for (size_t i = 1; i < n; i++)
        CHECK(strcmp(v[i - 1]->key, v[i]->key) < 0);
    agg_free(a);
}

static void test_distinct(void)
{
    struct agg *a = agg_new();
    struct agg_group *x = agg_group(a, "a.example", 0, NULL, true);
    struct agg_group *y = agg_group(a, "b.example", 0, NULL, true);
    const char *names[] = {"Google Inc.", "Mail.ru", "Google Inc.", "Microsoft Corporation",
                           "Mail.ru"};
    for (size_t i = 0; i < 5; i++)
        agg_distinct(a, x, names[i]);
    agg_distinct(a, y, "Google Inc.");
    agg_distinct(a, y, NULL); /* no name: not counted */
    char name[32];
    for (int i = 0; i < 3000; i++) { /* the name table grows */
        snprintf(name, sizeof name, "reporter %d", i % 1000);
        agg_distinct(a, y, name);
    }
    CHECK_INT(x->distinct, 3);
    CHECK_INT(y->distinct, 1001);
    CHECK(!agg_failed(a));
    agg_free(a);
}

static void test_saturation(void)
{
    struct agg *a = agg_new();
    struct agg_group *g = agg_group(a, NULL, 0, NULL, true);
    CHECK_STR(g->key, "");
    agg_add(g, AGG_SUCCESSFUL, INT64_MAX - 1);
    agg_add(g, AGG_SUCCESSFUL, 5);
    CHECK(g->sum[AGG_SUCCESSFUL] == INT64_MAX);
    agg_add(g, AGG_FAILED, INT64_MIN + 1);
    agg_add(g, AGG_FAILED, -5);
    CHECK(g->sum[AGG_FAILED] == INT64_MIN);
    agg_free(a);
}

static void test_order(void)
{
    struct agg *a = agg_new();
    struct {
        const char *key;
        int64_t day;
        const char *sub;
        int64_t failed;
    } rows[] = {
        {"b.example", 0, "validation-failure", 1},  {"", 0, "starttls-not-supported", 9},
        {"a.example", 0, "validation-failure", 2},  {"b.example", 0, "certificate-expired", 5},
        {"B.example", 0, "certificate-expired", 5},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        agg_add(agg_group(a, rows[i].key, rows[i].day, rows[i].sub, true), AGG_FAILED,
                rows[i].failed);
    size_t n = 0;
    struct agg_group **v = agg_sorted(a, false, &n);
    CHECK_INT(n, 5); /* bytewise: upper case first, "" (no domain) last */
    CHECK_STR(v[0]->key, "B.example");
    CHECK_STR(v[1]->key, "a.example");
    CHECK_STR(v[2]->sub, "certificate-expired");
    CHECK_STR(v[3]->sub, "validation-failure");
    CHECK_STR(v[4]->key, "");
    v = agg_sorted(a, true, &n); /* ranked: most failed first, ties by key */
    CHECK_STR(v[0]->key, "");
    CHECK_STR(v[1]->key, "B.example");
    CHECK_STR(v[2]->key, "b.example");
    CHECK_STR(v[3]->key, "a.example");
    agg_free(a);

    a = agg_new(); /* days in order */
    int64_t days[] = {3 * 86400, 86400, 2 * 86400};
    for (size_t i = 0; i < 3; i++)
        agg_group(a, "", days[i], NULL, true);
    v = agg_sorted(a, false, &n);
    CHECK(n == 3 && v[0]->day == 86400 && v[2]->day == 3 * 86400);
    agg_free(a);

    a = agg_new(); /* no groups: none, and no failure */
    v = agg_sorted(a, false, &n);
    CHECK(n == 0 && !agg_failed(a));
    agg_free(a);
}

int main(void)
{
    test_many_groups();
    test_distinct();
    test_saturation();
    test_order();
    return check_done("store_agg");
}
