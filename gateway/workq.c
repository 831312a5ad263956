/*
 * workq.c - worker pool with a bounded queue and a completion list drained by the loop.
 *
 * DESIGN: see workq.h. Two locks: `mu` guards the pending FIFO and `out` (workers wait on
 * `cv`), `done_mu` guards the completion list. `inflight` is touched only on the loop thread
 * (incremented on push, decremented when done runs), so it needs no lock. `out` counts the
 * jobs running on a worker or handed elsewhere by CG_WORK_LATER: workers leave at stop only
 * when it is zero and the FIFO is empty, since a job out may still be requeued. The backlog
 * the committer asks for (cg_workq_backlog) is the queued jobs and those inside their work
 * function: a job being worked on queues its write before it returns, so a commit group
 * that waits for the backlog to end takes the writes of every request already read (in a
 * closed loop of 64 clients, half of them form each group instead of fewer). A worker that
 * waits for another thread (a busy entity's lock, released once the holder's write is
 * committed) leaves the backlog while it waits (cg_workq_wait_begin/_end, wired to the
 * store's wait hooks): the group it waits for must not wait for it.
 */
#include "workq.h"

#include "cg_err.h"

#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

struct cg_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cg_job *head, *tail;
    int depth;   /* written under mu, read by cg_workq_backlog() without it: atomic accesses */
    int working; /* jobs inside their work function: likewise */
    int max_depth, stop;
    void (*drained)(void *arg); /* under mu: called when the backlog (depth + working) ends */
    void *drained_arg;
    int out; /* atomic: jobs taken by a worker and not yet completed or requeued (see
              * cg_workq_complete for when mu is needed) */
    pthread_t *threads;
    int n;
    pthread_mutex_t done_mu;
    struct cg_job *done_head, *done_tail;
    struct event *done_ev;
    int inflight;
};

/* The queue whose worker this thread is (NULL on other threads). */
static __thread struct cg_workq *self;

static void drain_done(struct cg_workq *q)
{
    pthread_mutex_lock(&q->done_mu);
    struct cg_job *j = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&q->done_mu);
    while (j != NULL) {
        struct cg_job *next = j->next;
        q->inflight--;
        j->done(j, j->arg);
        j = next;
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain_done(arg);
}

/* Only a job that finds the list empty activates the loop's event: a job that finds others
 * is drained with them, since drain_done takes the whole list after their activation. (Every
 * event_active takes the event base's lock, which the loop holds while it runs: one per job
 * made the committer wait on the loop for each write of its group.) */
static void push_done(struct cg_workq *q, struct cg_job *j)
{
    pthread_mutex_lock(&q->done_mu);
    int first = q->done_head == NULL;
    if (q->done_tail)
        q->done_tail->next = j;
    else
        q->done_head = j;
    q->done_tail = j;
    pthread_mutex_unlock(&q->done_mu);
    if (first)
        event_active(q->done_ev, EV_READ, 0);
}

/* Under mu: one job fewer is out; the last one lets stopping workers leave. */
static void out_dec(struct cg_workq *q)
{
    if (__atomic_sub_fetch(&q->out, 1, __ATOMIC_ACQ_REL) == 0 && q->stop)
        pthread_cond_broadcast(&q->cv);
}

/* Under mu: when nothing is queued or being worked on, tell drained (the lock is released
 * around the call). */
static void call_drained(struct cg_workq *q)
{
    if (q->depth == 0 && q->working == 0 && q->drained != NULL) {
        void (*drained)(void *) = q->drained;
        void *drained_arg = q->drained_arg;
        pthread_mutex_unlock(&q->mu);
        drained(drained_arg);
        pthread_mutex_lock(&q->mu);
    }
}

void cg_workq_wait_begin(void *arg)
{
    struct cg_workq *q = arg;
    if (self != q)
        return; /* not one of q's workers: never counted */
    pthread_mutex_lock(&q->mu);
    __atomic_store_n(&q->working, q->working - 1, __ATOMIC_RELAXED);
    call_drained(q);
    pthread_mutex_unlock(&q->mu);
}

void cg_workq_wait_end(void *arg)
{
    struct cg_workq *q = arg;
    if (self != q)
        return;
    pthread_mutex_lock(&q->mu);
    __atomic_store_n(&q->working, q->working + 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&q->mu);
}

static void *worker_main(void *arg)
{
    struct cg_workq *q = arg;
    self = q;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->head == NULL && !(q->stop && __atomic_load_n(&q->out, __ATOMIC_ACQUIRE) == 0))
            pthread_cond_wait(&q->cv, &q->mu);
        struct cg_job *j = q->head;
        if (j == NULL)
            break;
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        /* working first: a lock-free reader of depth + working never sees the job in neither */
        __atomic_store_n(&q->working, q->working + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&q->depth, q->depth - 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&q->out, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&q->mu);
        j->next = NULL;
        int later = j->work(j, j->arg) == CG_WORK_LATER; /* then another thread finishes it */
        if (!later)
            push_done(q, j);
        pthread_mutex_lock(&q->mu);
        __atomic_store_n(&q->working, q->working - 1, __ATOMIC_RELAXED);
        if (!later)
            out_dec(q);
        call_drained(q); /* the last job's writes are queued: a group waiting for them can go */
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

void cg_workq_complete(struct cg_workq *q, struct cg_job *job)
{
    job->next = NULL;
    push_done(q, job);
    /* mu only for the last job out, which stopping workers may wait for: they test `out`
     * under mu, so the broadcast cannot fall between their test and their wait */
    if (__atomic_sub_fetch(&q->out, 1, __ATOMIC_ACQ_REL) == 0) {
        pthread_mutex_lock(&q->mu);
        if (q->stop)
            pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
}

void cg_workq_requeue(struct cg_workq *q, struct cg_job *job)
{
    pthread_mutex_lock(&q->mu);
    job->next = q->head;
    q->head = job;
    if (q->tail == NULL)
        q->tail = job;
    __atomic_store_n(&q->depth, q->depth + 1, __ATOMIC_RELAXED);
    out_dec(q);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int cg_workq_new(struct event_base *base, int n, int max_depth, struct cg_workq **out)
{
    int rc = CG_ENOMEM;
    struct cg_workq *q = calloc(1, sizeof(*q));
    sigset_t all, old;
    *out = NULL;
    if (q == NULL)
        return CG_ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    pthread_mutex_init(&q->done_mu, NULL);
    q->max_depth = max_depth;
    q->done_ev = event_new(base, -1, EV_PERSIST, on_done, q);
    q->threads = calloc((size_t)n, sizeof(pthread_t));
    if (q->done_ev == NULL || q->threads == NULL)
        goto fail;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0) {
            rc = CG_EINTERNAL;
            break;
        }
        char name[16];
        snprintf(name, sizeof(name), "cg/w%d", i);
        pthread_setname_np(q->threads[i], name);
        q->n++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (q->n != n)
        goto fail;
    *out = q;
    return CG_OK;
fail:
    cg_workq_free(q);
    return rc;
}

int cg_workq_push(struct cg_workq *q, struct cg_job *job)
{
    pthread_mutex_lock(&q->mu);
    if (q->depth >= q->max_depth) {
        pthread_mutex_unlock(&q->mu);
        return CG_EFULL;
    }
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    __atomic_store_n(&q->depth, q->depth + 1, __ATOMIC_RELAXED);
    q->inflight++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return CG_OK;
}

int cg_workq_inflight(const struct cg_workq *q)
{
    return q->inflight;
}

int cg_workq_backlog(void *q)
{
    struct cg_workq *w = q;
    return __atomic_load_n(&w->depth, __ATOMIC_RELAXED) +
           __atomic_load_n(&w->working, __ATOMIC_RELAXED);
}

void cg_workq_set_drained(struct cg_workq *q, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&q->mu);
    q->drained = fn;
    q->drained_arg = arg;
    pthread_mutex_unlock(&q->mu);
}

int cg_workq_peek(struct cg_workq *q, int skip, int max, int (*fn)(struct cg_job *job, void *arg),
                  void *arg)
{
    int rc = 0, i = 0;
    pthread_mutex_lock(&q->mu);
    for (struct cg_job *j = q->head; j != NULL && i < skip + max && rc == 0; j = j->next, i++)
        if (i >= skip)
            rc = fn(j, arg);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void cg_workq_free(struct cg_workq *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->n; i++)
        pthread_join(q->threads[i], NULL);
    drain_done(q);
    if (q->done_ev)
        event_free(q->done_ev);
    free(q->threads);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->done_mu);
    free(q);
}
