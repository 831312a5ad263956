/*
 * test_workq.c - the worker pool (gateway/workq.c): what the committer learns from it. A
 * commit group waits while the backlog lasts, so the backlog must count the jobs a worker is
 * running (each queues its write before it returns) and end, with one call of the drained
 * function, only when the last of them has returned; a worker waiting for a busy entity's
 * lock leaves it meanwhile.
 */
#include "workq.h"

#include "cg_err.h"
#include "cg_store.h"
#include "cg_test.h"
#include "cg_testdir.h"

#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

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

/* --- with the store: a worker waiting for a busy entity ----------------------------------- */

static struct cg_store *l_store;
static struct cg_workq *l_q;
static struct cg_job l_jobs[3];
static sem_t l_a_done;
static double l_blocked_ms, l_got_ms;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct cg_store_batch *entity_batch(const char *name)
{
    struct cg_store_batch *b = cg_store_batch_new();
    struct cg_entity *e = cg_entity_new();
    if (b == NULL || e == NULL || (e->username = strdup(name)) == NULL ||
        (e->subject_dn = strdup("CN=x")) == NULL || (e->ca = strdup("CA")) == NULL ||
        (e->ee_profile = strdup("E")) == NULL || (e->cert_profile = strdup("C")) == NULL ||
        (e->token_type = strdup("USERGENERATED")) == NULL ||
        cg_store_batch_put_entity(b, e, CG_VERSION_NONE) != CG_OK)
        abort();
    cg_entity_free(e);
    return b;
}

static void free_batch(void *arg, int rc)
{
    (void)rc;
    cg_store_batch_free(arg);
}

/* B's write is durable: X is released and B's job is finished */
static void release_x(void *arg, int rc)
{
    (void)rc;
    cg_store_batch_free(arg);
    cg_store_unlock_entity(l_store, "X");
    cg_workq_complete(l_q, &l_jobs[1]);
}

/* C: queues a write, then keeps working a while (the backlog lasts) */
static int work_c(struct cg_job *job, void *arg)
{
    struct cg_store_batch *b = entity_batch("Y");
    (void)job;
    (void)arg;
    if (cg_store_commit_async(l_store, b, free_batch, b) != CG_OK)
        abort();
    usleep(60000);
    return CG_WORK_DONE;
}

/* B: holds X, queues its write, leaves the job to the committer */
static int work_b(struct cg_job *job, void *arg)
{
    (void)job;
    (void)arg;
    if (!cg_store_trylock_entity(l_store, "X"))
        abort();
    usleep(30000);
    struct cg_store_batch *b = entity_batch("X");
    if (cg_store_commit_async(l_store, b, release_x, b) != CG_OK)
        abort();
    return CG_WORK_LATER;
}

/* A: waits for X */
static int work_a(struct cg_job *job, void *arg)
{
    (void)job;
    (void)arg;
    usleep(10000);
    l_blocked_ms = now_ms();
    cg_store_lock_entity(l_store, "X");
    l_got_ms = now_ms();
    cg_store_unlock_entity(l_store, "X");
    sem_post(&l_a_done);
    return CG_WORK_DONE;
}

static void store_drained(void *store)
{
    cg_store_backlog_drained(store);
}

/* B holds X and queues its write; A waits for X; C keeps working. The group with B's write
 * must not wait (for as long as the commit delay, 3 s here) for A, which writes nothing until
 * that group releases X: A has X once C is done and the group synced. */
static void test_lock_wait_leaves_backlog(void)
{
    char dir[] = "/tmp/cg_workq_test.XXXXXX", path[64];
    struct event_base *base = event_base_new();
    TEST_NOTNULL(base);
    TEST_NOTNULL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/db", dir);
    struct cg_store_opts o = {path, 64, 1, 3000000};
    TEST_OK(cg_store_open(&o, &l_store));
    TEST_OK(cg_workq_new(base, 3, 16, &l_q));
    cg_store_set_backlog(l_store, cg_workq_backlog, l_q);
    cg_store_set_wait_hooks(l_store, cg_workq_wait_begin, cg_workq_wait_end, l_q);
    cg_workq_set_drained(l_q, store_drained, l_store);
    sem_init(&l_a_done, 0, 0);
    int (*work[3])(struct cg_job *, void *) = {work_c, work_b, work_a};
    for (int i = 0; i < 3; i++) {
        memset(&l_jobs[i], 0, sizeof(l_jobs[i]));
        l_jobs[i].work = work[i];
        l_jobs[i].done = gate_done;
        TEST_OK(cg_workq_push(l_q, &l_jobs[i]));
    }
    while (sem_wait(&l_a_done) != 0)
        ; /* ends in any case: at worst when the commit delay runs out */
    double waited = l_got_ms - l_blocked_ms;
    cg_store_set_backlog(l_store, NULL, NULL);
    cg_store_set_wait_hooks(l_store, NULL, NULL, NULL);
    cg_workq_free(l_q);
    cg_store_close(l_store);
    event_base_free(base);
    cg_test_rmtree(dir);
    if (waited >= 1500)
        fprintf(stderr, "A waited %.0f ms for X\n", waited);
    TEST_TRUE(waited < 1500);
}

/* --- many jobs finished on another thread, in bursts, as by the committer ------------------ */

#define MANY 3000

static struct cg_job m_jobs[MANY];
static int m_done[MANY]; /* loop thread only */
static int m_done_count;
static pthread_mutex_t m_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t m_cv = PTHREAD_COND_INITIALIZER;
static struct cg_job *m_handed[MANY]; /* under m_mu */
static int m_n_handed, m_stop;

static int later_work(struct cg_job *job, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&m_mu);
    m_handed[m_n_handed++] = job;
    pthread_cond_signal(&m_cv);
    pthread_mutex_unlock(&m_mu);
    return CG_WORK_LATER;
}

static void later_done(struct cg_job *job, void *arg)
{
    (void)job;
    m_done[(struct cg_job *)arg - m_jobs]++;
    m_done_count++;
}

/* completes whatever was handed over since its last burst, sometimes after a pause */
static void *completer(void *arg)
{
    unsigned seed = 1;
    int next = 0;
    (void)arg;
    pthread_mutex_lock(&m_mu);
    for (;;) {
        while (next == m_n_handed && !m_stop)
            pthread_cond_wait(&m_cv, &m_mu);
        if (next == m_n_handed)
            break;
        int upto = m_n_handed;
        pthread_mutex_unlock(&m_mu);
        for (; next < upto; next++)
            cg_workq_complete(g_q, m_handed[next]);
        if (rand_r(&seed) % 4 == 0)
            usleep(100);
        pthread_mutex_lock(&m_mu);
    }
    pthread_mutex_unlock(&m_mu);
    return NULL;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Every job finished by another thread reaches its done function on the loop, once, though
 * only the completion that finds the done list empty wakes the loop: the loop here wakes only
 * for that (and a 20 ms tick that drains nothing), so a lost wake-up leaves jobs undone. */
static void test_later_jobs_all_done(void)
{
    pthread_t th;
    int pushed = 0;
    m_n_handed = m_stop = m_done_count = 0;
    memset(m_done, 0, sizeof(m_done));
    for (int i = 0; i < MANY; i++)
        m_jobs[i] = (struct cg_job){.work = later_work, .done = later_done, .arg = &m_jobs[i]};
    struct event *t = event_new(g_base, -1, EV_PERSIST, tick, NULL);
    TEST_NOTNULL(t);
    TEST_EQ(event_add(t, &(struct timeval){0, 20000}), 0);
    TEST_EQ(pthread_create(&th, NULL, completer, NULL), 0);
    double t0 = now_ms();
    while (m_done_count < MANY && now_ms() - t0 < 20000) {
        while (pushed < MANY && cg_workq_push(g_q, &m_jobs[pushed]) == CG_OK)
            pushed++;
        event_base_loop(g_base, EVLOOP_ONCE);
    }
    pthread_mutex_lock(&m_mu);
    m_stop = 1;
    pthread_cond_signal(&m_cv);
    pthread_mutex_unlock(&m_mu);
    pthread_join(th, NULL);
    event_free(t);
    TEST_EQ(pushed, MANY);
    TEST_EQ(m_done_count, MANY);
    for (int i = 0; i < MANY; i++)
        TEST_EQ(m_done[i], 1);
}

CG_TESTS = {
    CG_TEST("workq/running_job_counts", test_running_job_counts),
    CG_TEST("workq/backlog_ends_with_last_job", test_backlog_ends_with_last_job),
    CG_TEST("workq/lock_wait_leaves_backlog", test_lock_wait_leaves_backlog),
    CG_TEST("workq/later_jobs_all_done", test_later_jobs_all_done),
};

CG_TEST_MAIN(set_up, tear_down)
