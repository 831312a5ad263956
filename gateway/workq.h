/*
 * workq.h - the worker pool between the loop thread and core (after Redis bio.c).
 *
 * DESIGN: N worker threads take jobs from one bounded FIFO (mutex + condition variable),
 * run the job's work function, and put the job on a completion list; event_active() on a
 * completion event wakes the loop thread, which drains the list and runs each job's done
 * function there. Jobs are created and freed only on the loop thread; workers never touch
 * sockets. Workers are named cg/wN and block all signals.
 */
#ifndef CG_GATEWAY_WORKQ_H
#define CG_GATEWAY_WORKQ_H

#include <stddef.h>

struct event_base;
struct cg_workq;

struct cg_job {
    void (*work)(struct cg_job *job, void *arg); /* on a worker thread */
    void (*done)(struct cg_job *job, void *arg); /* on the loop thread; frees the job */
    void *arg;
    struct cg_job *next;
};

/** @brief Start n workers; max_depth bounds the queued (not yet running) jobs.
 *  @return CG_OK, CG_ENOMEM, CG_EINTERNAL. */
int cg_workq_new(struct event_base *base, int n, int max_depth, struct cg_workq **out);
/** @brief Queue a job (loop thread). @return CG_OK or CG_EFULL (the caller answers 503). */
int cg_workq_push(struct cg_workq *q, struct cg_job *job);
/** @brief Jobs queued or running, not yet done (loop thread). */
int cg_workq_inflight(const struct cg_workq *q);
/** @brief Stop the workers after the queue is empty, join them, run the done functions of
 *  finished jobs, free. NULL is a no-op. Loop thread, with the loop no longer running. */
void cg_workq_free(struct cg_workq *q);

#endif
