/*
 * test_workq.c - the worker pool (gateway/workq.c): what the committer learns from it. A
 * commit group waits while the backlog lasts, so the backlog must count the jobs a worker is
 * running (each queues its write before it returns) and end, with one call of the drained
 * function, only when the last of them has returned.
 */
#include "workq.h"

#include "cg_err.h"
#include "cg_test.h"

#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>

static struct event_base *g_base;
static struct cg_workq *g_q;
static int g_drained; /* calls of drained(), atomic */

struct gate_job {
    struct cg_job job;
    sem_t started, go;
};

/* the jobs of the running test: tear_down lets any still held go (a failed check leaves the
 * test early), so that the workers can stop */
static struct gate_job *g_gates[4];
static int g_n_gates;

static int gate_work(struct cg_job *job, void *arg)
{
    struct gate_job *g = arg;
    (void)job;
    sem_post(&g->started);
    while (sem_wait(&g->go) != 0)
        ;
    return CG_WORK_DONE;
}

static void gate_done(struct cg_job *job, void *arg)
{
    (void)job;
    (void)arg;
}

static void drained(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&g_drained, 1, __ATOMIC_SEQ_CST);
}

static void set_up(void)
{
    g_base = event_base_new();
    if (g_base == NULL || cg_workq_new(g_base, 2, 16, &g_q) != CG_OK)
        exit(2);
    g_drained = 0;
    cg_workq_set_drained(g_q, drained, NULL);
}

static void tear_down(void)
{
    for (int i = 0; i < g_n_gates; i++)
        sem_post(&g_gates[i]->go);
    g_n_gates = 0;
    cg_workq_free(g_q);
    g_q = NULL;
    event_base_free(g_base);
    g_base = NULL;
}

static void gate_init(struct gate_job *g)
{
    memset(g, 0, sizeof(*g));
    g->job.work = gate_work;
    g->job.done = gate_done;
    g->job.arg = g;
    sem_init(&g->started, 0, 0);
    sem_init(&g->go, 0, 0);
    g_gates[g_n_gates++] = g;
}

/* until drained() was called n times in all, or about 2 s */
static int wait_drained(int n)
{
    for (int i = 0; i < 2000 && __atomic_load_n(&g_drained, __ATOMIC_SEQ_CST) < n; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return __atomic_load_n(&g_drained, __ATOMIC_SEQ_CST);
}

/* A job taken by a worker stays in the backlog until its work returns; then the backlog
 * ends, once. */
static void test_running_job_counts(void)
{
    static struct gate_job a;
    gate_init(&a);
    TEST_EQ(cg_workq_backlog(g_q), 0);
    TEST_OK(cg_workq_push(g_q, &a.job));
    while (sem_wait(&a.started) != 0)
        ;
    TEST_EQ(cg_workq_backlog(g_q), 1); /* none queued: the running one */
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    TEST_EQ(__atomic_load_n(&g_drained, __ATOMIC_SEQ_CST), 0);
    sem_post(&a.go);
    TEST_EQ(wait_drained(1), 1);
    TEST_EQ(cg_workq_backlog(g_q), 0);
    event_base_loop(g_base, EVLOOP_NONBLOCK); /* run done */
}

/* Three jobs on two workers: two run, one waits; the backlog counts all three and ends only
 * after the last one returns, not when the queue empties. */
static void test_backlog_ends_with_last_job(void)
{
    static struct gate_job j[3];
    for (int i = 0; i < 3; i++) {
        gate_init(&j[i]);
        TEST_OK(cg_workq_push(g_q, &j[i].job));
    }
    while (sem_wait(&j[0].started) != 0)
        ;
    while (sem_wait(&j[1].started) != 0)
        ;
    TEST_EQ(cg_workq_backlog(g_q), 3);
    sem_post(&j[0].go);
    while (sem_wait(&j[2].started) != 0)
        ; /* the third is taken: nothing queued, two running */
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    TEST_EQ(cg_workq_backlog(g_q), 2);
    TEST_EQ(__atomic_load_n(&g_drained, __ATOMIC_SEQ_CST), 0);
    sem_post(&j[1].go);
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    TEST_EQ(cg_workq_backlog(g_q), 1);
    TEST_EQ(__atomic_load_n(&g_drained, __ATOMIC_SEQ_CST), 0);
    sem_post(&j[2].go);
    TEST_EQ(wait_drained(1), 1);
    TEST_EQ(cg_workq_backlog(g_q), 0);
    event_base_loop(g_base, EVLOOP_NONBLOCK);
}

CG_TESTS = {
    CG_TEST("workq/running_job_counts", test_running_job_counts),
    CG_TEST("workq/backlog_ends_with_last_job", test_backlog_ends_with_last_job),
};

CG_TEST_MAIN(set_up, tear_down)
