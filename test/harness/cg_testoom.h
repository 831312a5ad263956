/*
 * cg_testoom.h - allocation-failure injection for the unit tests: while a test has armed it
 * on its thread (or on every thread), the nth allocation fails.
 *
 * DESIGN: header-only, included by one file per test binary. The binary is linked with
 * -Wl,--wrap=malloc,calloc,realloc,strdup (test/meson.build), so the calls our objects make
 * come to the __wrap_ functions here while the shared libraries keep the real ones; a test
 * points a library's own allocator hooks (CRYPTO_set_mem_functions, event_set_mem_functions)
 * at oom_now() too, from a constructor, before the library's first allocation. A sweep sets
 * g_oom.nth = 1, 2, ... (oom_start), runs the same exchange armed each time, and stops when
 * g_oom.failed stayed 0: every allocation of the exchange has then failed once.
 */
#ifndef CG_TEST_HARNESS_CG_TESTOOM_H
#define CG_TEST_HARNESS_CG_TESTOOM_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static struct {
    pthread_t thread; /* the arming thread: allocations elsewhere never fail, unless armed all */
    int armed;        /* atomic: 0, OOM_THIS_THREAD or OOM_ALL_THREADS */
    long nth, count;  /* count: atomic */
    int failed;       /* atomic: the nth allocation was reached (and failed) */
} g_oom;

enum { OOM_THIS_THREAD = 1, OOM_ALL_THREADS = 2 };

/* Called by every hooked allocation: 1 when this one is to fail. */
static int oom_now(void)
{
    int armed = __atomic_load_n(&g_oom.armed, __ATOMIC_ACQUIRE);
    if (armed == 0 || (armed == OOM_THIS_THREAD && !pthread_equal(pthread_self(), g_oom.thread)))
        return 0;
    if (__atomic_add_fetch(&g_oom.count, 1, __ATOMIC_RELAXED) != g_oom.nth)
        return 0;
    __atomic_store_n(&g_oom.failed, 1, __ATOMIC_RELAXED);
    return 1;
}

/* The next exchange fails its nth allocation (0: none). */
static void oom_start(long nth)
{
    g_oom.nth = nth;
    __atomic_store_n(&g_oom.count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_oom.failed, 0, __ATOMIC_RELAXED);
}

/* Arm (on this thread) or disarm; arming does nothing without an nth. */
static void oom_arm(int on)
{
    if (on && g_oom.nth > 0)
        g_oom.thread = pthread_self();
    __atomic_store_n(&g_oom.armed, on && g_oom.nth > 0 ? OOM_THIS_THREAD : 0, __ATOMIC_RELEASE);
}

/* Arm for every thread (the exchange's threads must take turns, so that the count is the same
 * each time: a caller that waits while a helper thread works), or disarm. */
static inline void oom_arm_all(int on)
{
    __atomic_store_n(&g_oom.armed, on && g_oom.nth > 0 ? OOM_ALL_THREADS : 0, __ATOMIC_RELEASE);
}

/* No further exchange fails (g_oom.failed keeps what the last one did). */
static void oom_stop(void)
{
    oom_arm(0);
    g_oom.nth = 0;
}

/* A sweep's outcomes: exchanges that ended in a refusal, and that succeeded all the same. */
struct oom_tally {
    int refused, served;
};

/* After an armed exchange that ended ok or not: 1 when nothing failed (every allocation has
 * failed once: the sweep is over, and ok must hold), else it is counted and 0. */
static int oom_done(struct oom_tally *t, int ok)
{
    if (!__atomic_load_n(&g_oom.failed, __ATOMIC_RELAXED))
        return 1;
    if (ok)
        t->served++;
    else
        t->refused++;
    return 0;
}

static void oom_report(const char *what, const struct oom_tally *t)
{
    fprintf(stderr, "  %s: %d allocations failed in turn: %d refused, %d succeeded\n", what,
            t->refused + t->served, t->refused, t->served);
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
    return oom_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return oom_now() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return oom_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return oom_now() ? NULL : __real_strdup(s);
}

#ifdef CG_TESTOOM_LIBEVENT
/* libevent's allocations (defined before including this, after <event2/event.h>): its hooks
 * set before main, so before its first allocation. */
static void *oom_ev_malloc(size_t n)
{
    return oom_now() ? NULL : __real_malloc(n);
}

static void *oom_ev_realloc(void *p, size_t n)
{
    return oom_now() ? NULL : __real_realloc(p, n);
}

__attribute__((constructor)) static void oom_install_libevent(void)
{
    event_set_mem_functions(oom_ev_malloc, oom_ev_realloc, free);
}
#endif

#endif
