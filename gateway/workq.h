/*
 * workq.h - the worker pool between the loop thread and core (after Redis bio.c).
 *
 * DESIGN: N worker threads take jobs from one bounded FIFO (mutex + condition variable),
 * run the job's work function, and put the job on a completion list; event_active() on a
 * completion event, by the job that finds the list empty, wakes the loop thread, which drains
 * the list and runs each job's done function there. Jobs are created and freed only on the loop
 * thread; workers never touch sockets. Workers are named cg/wN and block all signals.
 *
 * A work function may instead return CG_WORK_LATER, keeping the job out of the completion
 * list: it has handed the job to another thread (the store's committer), which later calls
 * cg_workq_complete() (the loop runs done) or cg_workq_requeue() (a worker runs work again).
 * Such jobs still count as in flight, and cg_workq_free() waits for them.
 */
#ifndef CG_GATEWAY_WORKQ_H
#define CG_GATEWAY_WORKQ_H

#include <stddef.h>

struct event_base;
struct cg_workq;

enum { CG_WORK_DONE = 0, CG_WORK_LATER = 1 };

struct cg_job {
    int (*work)(struct cg_job *job, void *arg);  /* on a worker thread: CG_WORK_DONE or _LATER */
    void (*done)(struct cg_job *job, void *arg); /* on the loop thread; frees the job */
    void *arg;
    struct cg_job *next;
};

/** @brief Start n workers; max_depth bounds the queued (not yet running) jobs.
 *  @return CG_OK, CG_ENOMEM, CG_EINTERNAL. */
int cg_workq_new(struct event_base *base, int n, int max_depth, struct cg_workq **out);
/** @brief Queue a job (loop thread). @return CG_OK or CG_EFULL (the caller answers 503). */
int cg_workq_push(struct cg_workq *q, struct cg_job *job);
/** @brief A job whose work returned CG_WORK_LATER is finished: the loop will run its done
 *  function. Any thread. */
void cg_workq_complete(struct cg_workq *q, struct cg_job *job);
/** @brief A job whose work returned CG_WORK_LATER goes back to the workers (ahead of the
 *  queue, ignoring max_depth: it is already in flight). Any thread. */
void cg_workq_requeue(struct cg_workq *q, struct cg_job *job);
/** @brief Jobs queued or running, not yet done (loop thread). */
int cg_workq_inflight(const struct cg_workq *q);
/** @brief Jobs queued or inside their work function, each of which may still queue a write
 *  (q is a struct cg_workq). Any thread, lock-free: a snapshot. */
int cg_workq_backlog(void *q);
/** @brief The calling worker waits for another thread and processes nothing meanwhile: it
 *  leaves the backlog (which may end) until cg_workq_wait_end(). No effect on a thread that
 *  is not one of q's workers. q is a struct cg_workq. */
void cg_workq_wait_begin(void *q);
void cg_workq_wait_end(void *q);
/** @brief Have fn(arg) called (on a worker, without the queue's lock) whenever a job's work
 *  returns leaving none queued or running: the backlog has ended. */
void cg_workq_set_drained(struct cg_workq *q, void (*fn)(void *arg), void *arg);
/** @brief Worker thread, with the queue locked: fn(job, arg) for the queued jobs from the
 *  skip-th (0: the next to be taken) to the (skip + max - 1)-th, until it returns nonzero.
 *  fn only reads the job and must be quick: the loop waits for the lock to queue.
 *  @return fn's nonzero result, or 0. */
int cg_workq_peek(struct cg_workq *q, int skip, int max, int (*fn)(struct cg_job *job, void *arg),
                  void *arg);
/** @brief Stop the workers after the queue is empty and no job is out (CG_WORK_LATER), join them,
 * run the done functions of finished jobs, free. NULL is a no-op. Loop thread, with the loop no
 * longer running. */
void cg_workq_free(struct cg_workq *q);

#endif
