/* A minimal test harness: each tests/test_*.c is one suite of named cases.
 *
 *   TEST(name) { CHECK(x == 1, "x is %d", x); if (!have_data) SKIP("no data"); }
 *   int main(void) { RUN(name); return test_summary(); }
 *
 * Every case prints one line, "ok NAME", "FAIL NAME: why" or "skip NAME: why";
 * tests/run_tests.sh counts those lines over all suites. */
#ifndef DIFFSCOPE_TEST_H
#define DIFFSCOPE_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failed_now, test_skipped_now;
static int test_n_ok, test_n_fail, test_n_skip;
static const char *test_name_now;

#define TEST(name) static void name(void)

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("FAIL %s: %s:%d: ", test_name_now, __FILE__, __LINE__);      \
            printf(__VA_ARGS__);                                                 \
            printf("\n");                                                        \
            test_failed_now = 1;                                                 \
        }                                                                        \
    } while (0)

/* Stop the case at once when a precondition fails. */
#define REQUIRE(cond, ...)                                                       \
    do {                                                                         \
        CHECK(cond, __VA_ARGS__);                                                \
        if (test_failed_now) return;                                             \
    } while (0)

#define SKIP(...)                                                                \
    do {                                                                         \
        printf("skip %s: ", test_name_now);                                      \
        printf(__VA_ARGS__);                                                     \
        printf("\n");                                                            \
        test_skipped_now = 1;                                                    \
        return;                                                                  \
    } while (0)

#define RUN(fn) test_run(#fn, fn)

static inline void test_run(const char *name, void (*fn)(void)) {
    test_name_now = name;
    test_failed_now = test_skipped_now = 0;
    fn();
    fflush(stdout);
    if (test_failed_now) test_n_fail++;
    else if (test_skipped_now) test_n_skip++;
    else { test_n_ok++; printf("ok %s\n", name); }
    fflush(stdout);
}

static inline int test_summary(void) { return test_n_fail ? 1 : 0; }

/* Path of ../shared (or $DIFFSCOPE_SHARED) when it exists, else NULL. */
static inline const char *test_shared_dir(void) {
    static char buf[4096];
    const char *env = getenv("DIFFSCOPE_SHARED");
    snprintf(buf, sizeof buf, "%s", env ? env : "../shared");
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? buf : NULL;
}

static inline int test_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
#endif
