/*
 * cg_test.h - the unit-test harness: named tests, fixtures, and TEST_* checks that print
 * the expression, file:line and, for error codes, cg_strerror().
 *
 * DESIGN: header-only. A test file defines `static void test_x(void)` functions and a
 * table `CG_TESTS = { CG_TEST("store/open", test_open), ... }`, then `CG_TEST_MAIN(setup,
 * teardown)`. Each test runs between set_up and tear_down; a failed check ends the test.
 * The program prints one line per test and ends with "N passed, N failed" (exit 1 on any
 * failure). A name filter may be given as argv[1] (substring).
 */
#ifndef CG_TEST_HARNESS_CG_TEST_H
#define CG_TEST_HARNESS_CG_TEST_H

#include "cg_err.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cg_test_case {
    const char *name;
    void (*fn)(void);
};

static jmp_buf cg_test_jmp;
static int cg_test_failed_flag;

#define CG_TEST(name, fn)                                                                          \
    {                                                                                              \
        name, fn                                                                                   \
    }
#define CG_TESTS static const struct cg_test_case cg_test_cases[]

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                                     \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        cg_test_failed_flag = 1;                                                                   \
        longjmp(cg_test_jmp, 1);                                                                   \
    } while (0)

#define TEST_TRUE(e)                                                                               \
    do {                                                                                           \
        if (!(e))                                                                                  \
            TEST_FAIL_("expected true: %s", #e);                                                   \
    } while (0)
#define TEST_FALSE(e) TEST_TRUE(!(e))
#define TEST_OK(e)                                                                                 \
    do {                                                                                           \
        int rc_ = (e);                                                                             \
        if (rc_ != 0)                                                                              \
            TEST_FAIL_("%s returned %d (%s)", #e, rc_, cg_strerror(rc_));                          \
    } while (0)
#define TEST_RC(e, want)                                                                           \
    do {                                                                                           \
        int rc_ = (e), want_ = (want);                                                             \
        if (rc_ != want_)                                                                          \
            TEST_FAIL_("%s returned %d (%s), want %d (%s)", #e, rc_, cg_strerror(rc_), want_,      \
                       cg_strerror(want_));                                                        \
    } while (0)
#define TEST_EQ(a, b)                                                                              \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                  \
    } while (0)
#define TEST_STREQ(a, b)                                                                           \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                   \
                       b_ ? b_ : "(null)");                                                        \
    } while (0)
#define TEST_MEMEQ(a, b, n)                                                                        \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            TEST_FAIL_("%s == %s (%zu bytes) differ", #a, #b, (size_t)(n));                        \
    } while (0)
#define TEST_NOTNULL(p)                                                                            \
    do {                                                                                           \
        if ((p) == NULL)                                                                           \
            TEST_FAIL_("expected non-NULL: %s", #p);                                               \
    } while (0)

#define CG_TEST_MAIN(set_up, tear_down)                                                            \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        volatile int passed = 0, failed = 0;                                                       \
        void (*su_)(void) = (set_up), (*td_)(void) = (tear_down);                                  \
        for (volatile size_t i = 0; i < sizeof(cg_test_cases) / sizeof(cg_test_cases[0]); i++) {   \
            const struct cg_test_case *t = &cg_test_cases[i];                                      \
            if (argc > 1 && strstr(t->name, argv[1]) == NULL)                                      \
                continue;                                                                          \
            cg_test_failed_flag = 0;                                                               \
            if (su_)                                                                               \
                su_();                                                                             \
            if (setjmp(cg_test_jmp) == 0)                                                          \
                t->fn();                                                                           \
            if (td_)                                                                               \
                td_();                                                                             \
            printf("%s %s\n", cg_test_failed_flag ? "FAIL" : "ok  ", t->name);                     \
            if (cg_test_failed_flag)                                                               \
                failed++;                                                                          \
            else                                                                                   \
                passed++;                                                                          \
        }                                                                                          \
        printf("%d passed, %d failed\n", passed, failed);                                          \
        return failed ? 1 : 0;                                                                     \
    }

#endif
