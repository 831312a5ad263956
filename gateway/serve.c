/*
 * serve.c - the daemon: listeners on one libevent loop, the worker pool running core, the
 * per-message log line, /healthz and /metrics, and the signals.
 *
 * DESIGN: the loop thread accepts, frames (transports/) and queues one job per request; it
 * never does crypto or disk I/O. Workers run core (cg_core_process_ex with CG_CORE_DEFER):
 * a message without a store write is done there; one with a write leaves it to the store's
 * committer, which completes the job once the write is durable (or hands it back to a
 * worker to be processed again when the write failed). The loop thread then writes the
 * reply and logs the message (so no worker or committer waits on the log). A full queue
 * answers 503 at once. SIGTERM/SIGINT stop accepting, let the requests in flight
 * finish and be answered, then close the store. The mutable state of the daemon lives in
 * struct server, passed explicitly; nothing here is global.
 */
#include "cg_config.h"
#include "cg_core.h"
#include "cg_err.h"
#include "cg_http.h"
#include "cg_tcp.h"
#include "cg_log.h"
#include "cg_store.h"
#include "gateway_local.h"
#include "workq.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_LIMIT_S 30

/* A configuration and the engine built on it. SIGHUP builds a new generation; requests in
 * flight finish on the one they started with, which is freed when its last job is done.
 * Reference counts are touched only on the loop thread. */
struct generation {
    struct cg_config *cfg;
    struct cg_core *core;
    int refs; /* jobs holding it, plus one while it is current */
};

struct server {
    const char *config_path;
    struct generation *gen; /* current */
    struct cg_config *cfg;  /* gen->cfg, kept for brevity */
    struct cg_store *store;
    struct cg_core *core; /* gen->core */
    struct event_base *base;
    struct cg_workq *wq;
    struct cg_http **http;
    size_t n_http;
    struct cg_tcp *tcp; /* NULL when listen.tcp is empty */
    struct event *ev_term, *ev_int, *ev_hup, *ev_drain, *ev_sweep;
    int reload_running;
    int sweep_running; /* a sweep job is queued or running */
    int draining;
    int drain_quiet_ticks; /* ticks with nothing in flight, so replies had time to flush */
    time_t drain_start;
    /* metrics */
    atomic_ulong m_requests, m_accepted, m_rejected, m_busy, m_http_errors;
    atomic_ulong m_redone; /* deferred writes that failed: the message processed again */
    atomic_ulong m_ms_total;
};

enum job_kind { JOB_CMP, JOB_HEALTH, JOB_SWEEP, JOB_RELOAD };

struct cmp_job {
    struct cg_job base;
    struct server *srv;
    struct generation *gen;  /* the configuration this job runs on */
    struct generation *next; /* JOB_RELOAD: the generation built, or NULL */
    struct cg_request *req;
    int kind;
    struct cg_core_result res;
    int rc;
    int redo;   /* the deferred write failed: process again with CG_CORE_REDO */
    int waited; /* waited for a busy entity: process again with CG_CORE_DEFER | CG_CORE_REDO */
    char waited_for[256]; /* that entity */
    struct timespec start;
};

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void gen_drop(struct generation *g)
{
    if (g != NULL && --g->refs == 0) {
        cg_core_free(g->core);
        cg_config_unref(g->cfg);
        free(g);
    }
}

/* Worker thread, JOB_RELOAD: load and check the configuration file again, build an engine. */
static struct generation *gen_load(struct server *srv)
{
    struct generation *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    if (gw_load_config(srv->config_path, &g->cfg) != 0 ||
        cg_core_new(g->cfg, srv->store, &g->core) != CG_OK) {
        cg_config_unref(g->cfg);
        free(g);
        return NULL;
    }
    g->refs = 1;
    return g;
}

/* The request's log line (info level). */
static void job_log_line(struct cmp_job *job, double ms)
{
    char msbuf[32], status[8];
    snprintf(msbuf, sizeof(msbuf), "%.1f", ms);
    snprintf(status, sizeof(status), "%d", job->rc == CG_OK ? job->res.http_status : 500);
    const char *kv[] = {"event",     "cmp",
                        "alias",     cg_request_alias(job->req),
                        "transport", cg_request_kind(job->req) == CG_TRANSPORT_TCP ? "tcp" : "http",
                        "peer",      cg_request_peer(job->req),
                        "status",    status,
                        "body",      job->res.body_type,
                        "txid",      job->res.txid,
                        "outcome",   job->res.outcome,
                        "username",  job->res.username,
                        "serial",    job->res.serial,
                        "ms",        msbuf,
                        "detail",    job->res.detail};
    cg_log_kv(CG_LOG_INFO, kv, (int)(sizeof(kv) / sizeof(kv[0])));
}

/* Log one finished CMP request and count it (loop thread, before its reply). The line is only
 * formatted when info is logged. */
static void job_log(struct cmp_job *job)
{
    struct server *srv = job->srv;
    double ms = ms_since(&job->start);
    if (cg_log_enabled(CG_LOG_INFO))
        job_log_line(job, ms);
    atomic_fetch_add(&srv->m_ms_total, (unsigned long)ms);
    const char *o = job->res.outcome;
    if (job->rc == CG_OK && job->res.http_status == 200 &&
        (strcmp(o, "accepted") == 0 || strncmp(o, "pkiConf", 7) == 0 || strcmp(o, "revoked") == 0))
        atomic_fetch_add(&srv->m_accepted, 1);
    else
        atomic_fetch_add(&srv->m_rejected, 1);
}

/* The committer thread: the write of a deferred request is durable, or it failed. */
static void job_written(void *arg, int rc)
{
    struct cmp_job *job = arg;
    if (rc == CG_OK) {
        cg_workq_complete(job->srv->wq, &job->base);
        return;
    }
    /* nothing was written: the answer built for it must not go out; a worker processes the
     * message again, synchronously, and answers as the store now requires */
    cg_core_result_clear(&job->res);
    job->redo = 1;
    atomic_fetch_add(&job->srv->m_redone, 1);
    cg_workq_requeue(job->srv->wq, &job->base);
}

/* The thread that released an entity lock this job waited for: back to the workers. */
static void job_unparked(void *arg, int rc)
{
    struct cmp_job *job = arg;
    (void)rc;
    cg_workq_requeue(job->srv->wq, &job->base);
}

/* Process the job's CMP request with flags into job->res and job->rc. */
static void job_process(struct cmp_job *job, unsigned flags)
{
    size_t len = 0;
    const uint8_t *body = cg_request_body(job->req, &len);
    job->rc = cg_core_process_ex(job->gen->core, cg_request_alias(job->req),
                                 cg_request_op(job->req), body, len, flags, &job->res);
}

/* cg_workq_peek: a queued request whose PBM key can be derived now, beside this worker's */
static int pair_peek(struct cg_job *j, void *arg)
{
    struct cmp_job *job = (struct cmp_job *)j;
    size_t len = 0;
    if (job->kind != JOB_CMP || job->redo || job->waited)
        return 0;
    const uint8_t *body = cg_request_body(job->req, &len);
    return cg_core_pbm_hint(job->gen->core, cg_request_alias(job->req), body, len, arg);
}

/* A first run of a request that opens a transaction under a PBM shared secret: when a request
 * further back in the queue needs a key too, derive both side by side (the other worker
 * takes the next queued job, so the one after it is paired). */
static void pbm_pair(struct cmp_job *job)
{
    struct cg_pbm_hint own, other;
    size_t len = 0;
    const uint8_t *body = cg_request_body(job->req, &len);
    if (job->redo || job->waited ||
        !cg_core_pbm_hint(job->gen->core, cg_request_alias(job->req), body, len, &own))
        return;
    if (cg_workq_peek(job->srv->wq, 1, 4, pair_peek, &other))
        cg_core_pbm_prefetch(&own, &other);
    OPENSSL_cleanse(&own, sizeof(own));
    OPENSSL_cleanse(&other, sizeof(other));
}

/* Worker thread: the only place requests touch core and the store. */
static int job_work(struct cg_job *j, void *arg)
{
    struct cmp_job *job = (struct cmp_job *)j;
    struct server *srv = arg;
    if (job->kind == JOB_HEALTH) {
        job->rc = cg_store_check_writable(srv->store);
        return CG_WORK_DONE;
    }
    if (job->kind == JOB_RELOAD) {
        job->next = gen_load(srv);
        return CG_WORK_DONE;
    }
    if (job->kind == JOB_SWEEP) {
        int revoked = 0;
        job->rc = cg_core_sweep(job->gen->core, (int64_t)time(NULL), &revoked);
        if (job->rc != CG_OK)
            cg_log(CG_LOG_ERROR, "unconfirmed-certificate sweep failed: %s", cg_strerror(job->rc));
        return CG_WORK_DONE;
    }
    pbm_pair(job);
    /* a first run leaves its write to the committer and frees this worker for the next
     * request; the answer goes out from job_written() once the write is durable. A run that
     * meets a busy entity lock waits for it without holding the worker. */
    for (;;) {
        unsigned flags = job->redo     ? CG_CORE_REDO
                         : job->waited ? CG_CORE_DEFER | CG_CORE_REDO
                                       : CG_CORE_DEFER;
        job_process(job, flags);
        if (job->rc != CG_OK || job->res.wait_entity[0] == '\0')
            break;
        job->waited = 1; /* before the callback can run */
        snprintf(job->waited_for, sizeof(job->waited_for), "%s", job->res.wait_entity);
        int w = cg_core_wait_entity(job->gen->core, &job->res, job_unparked, job);
        if (w == CG_OK)
            return CG_WORK_LATER;
        if (w != CG_EALREADY) { /* no memory to wait: wait the blocking way */
            job_process(job, CG_CORE_REDO);
            break;
        }
    }
    if (job->waited)
        cg_core_waited(job->gen->core, job->waited_for); /* the next waiter's turn */
    if (job->rc == CG_OK && job->res.pending != NULL) {
        if (cg_core_commit(&job->res, job_written, job) == CG_OK)
            return CG_WORK_LATER;
        cg_core_result_clear(&job->res); /* the store refused it: nothing was written */
        atomic_fetch_add(&srv->m_redone, 1);
        job_process(job, CG_CORE_REDO);
    }
    return CG_WORK_DONE;
}

/* Loop thread: send the reply and free the job. */
static void job_done(struct cg_job *j, void *arg)
{
    struct cmp_job *job = (struct cmp_job *)j;
    struct server *srv = arg;
    if (job->kind == JOB_RELOAD) {
        srv->reload_running = 0;
        if (job->next == NULL) {
            cg_log(CG_LOG_ERROR, "SIGHUP: the configuration was not reloaded (see above); "
                                 "still serving the previous one");
        } else {
            const struct cg_config *o = srv->cfg, *n = job->next->cfg;
            if (n->n_listen_http != o->n_listen_http || n->n_listen_tcp != o->n_listen_tcp ||
                n->n_listen_admin != o->n_listen_admin || n->workers != o->workers ||
                n->queue_depth != o->queue_depth || strcmp(n->store_path, o->store_path) != 0 ||
                n->max_body_bytes != o->max_body_bytes || n->max_connections != o->max_connections)
                cg_log(CG_LOG_WARN, "SIGHUP: listeners, workers, queue, store and transport "
                                    "limits change only with a restart");
            gen_drop(srv->gen);
            srv->gen = job->next;
            srv->cfg = srv->gen->cfg;
            srv->core = srv->gen->core;
            cg_log_setup(srv->cfg->log_level, srv->cfg->log_json);
            cg_log(CG_LOG_INFO, "SIGHUP: configuration %s reloaded (%zu aliases)", srv->cfg->file,
                   srv->cfg->n_aliases);
        }
    } else if (job->kind == JOB_SWEEP) {
        srv->sweep_running = 0;
    } else if (job->kind == JOB_HEALTH) {
        const char *txt = job->rc == CG_OK ? "ok\n" : "store not writable\n";
        cg_request_reply(job->req, job->rc == CG_OK ? 200 : 503, "text/plain", (const uint8_t *)txt,
                         strlen(txt));
    } else {
        job_log(job); /* before the reply frees the request it names */
        if (job->rc != CG_OK)
            cg_request_reply(job->req, 500, NULL, NULL, 0);
        else if (job->res.http_status != 200)
            cg_request_reply(job->req, job->res.http_status, NULL, NULL, 0);
        else
            cg_request_reply(job->req, 200, NULL, job->res.der, job->res.der_len);
    }
    cg_core_result_clear(&job->res);
    gen_drop(job->gen);
    free(job);
}

static void reply_text(struct cg_request *req, int status, const char *text)
{
    cg_request_reply(req, status, "text/plain", (const uint8_t *)text, strlen(text));
}

static void metrics_reply(struct server *srv, struct cg_request *req)
{
    char buf[2048];
    int conns = 0;
    for (size_t i = 0; i < srv->n_http; i++)
        conns += cg_http_connections(srv->http[i]);
    snprintf(buf, sizeof(buf),
             "# TYPE cmpgate_requests_total counter\ncmpgate_requests_total %lu\n"
             "# TYPE cmpgate_cmp_success_total counter\ncmpgate_cmp_success_total %lu\n"
             "# TYPE cmpgate_cmp_rejected_total counter\ncmpgate_cmp_rejected_total %lu\n"
             "# TYPE cmpgate_busy_total counter\ncmpgate_busy_total %lu\n"
             "# TYPE cmpgate_http_errors_total counter\ncmpgate_http_errors_total %lu\n"
             "# TYPE cmpgate_processing_ms_total counter\ncmpgate_processing_ms_total %lu\n"
             "# TYPE cmpgate_redone_total counter\ncmpgate_redone_total %lu\n"
             "# TYPE cmpgate_inflight gauge\ncmpgate_inflight %d\n"
             "# TYPE cmpgate_connections gauge\ncmpgate_connections %d\n"
             "# TYPE cmpgate_sweep_examined gauge\ncmpgate_sweep_examined %zu\n"
             "# TYPE cmpgate_pbm_paired_total counter\ncmpgate_pbm_paired_total %lu\n",
             atomic_load(&srv->m_requests), atomic_load(&srv->m_accepted),
             atomic_load(&srv->m_rejected), atomic_load(&srv->m_busy),
             atomic_load(&srv->m_http_errors), atomic_load(&srv->m_ms_total),
             atomic_load(&srv->m_redone), cg_workq_inflight(srv->wq), conns,
             cg_core_sweep_examined(srv->gen->core), cg_core_pbm_paired());
    cg_request_reply(req, 200, "text/plain; version=0.0.4", (const uint8_t *)buf, strlen(buf));
}

static int queue_job(struct server *srv, struct cg_request *req, int kind)
{
    struct cmp_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return CG_ENOMEM;
    job->base.work = job_work;
    job->base.done = job_done;
    job->base.arg = srv;
    job->srv = srv;
    job->req = req;
    job->kind = kind;
    job->gen = srv->gen;
    clock_gettime(CLOCK_MONOTONIC, &job->start);
    int rc = cg_workq_push(srv->wq, &job->base);
    if (rc != CG_OK)
        free(job);
    else
        srv->gen->refs++;
    return rc;
}

/* Loop thread: every complete request from every transport. */
static void on_request(struct cg_request *req, void *arg)
{
    struct server *srv = arg;
    if (cg_request_kind(req) == CG_TRANSPORT_ADMIN) {
        const char *path = cg_request_path(req);
        if (strcmp(cg_request_method(req), "GET") != 0 &&
            strcmp(cg_request_method(req), "HEAD") != 0)
            reply_text(req, 405, "method not allowed\n");
        else if (strcmp(path, "/healthz") == 0) {
            if (queue_job(srv, req, JOB_HEALTH) != CG_OK)
                reply_text(req, 503, "busy\n");
        } else if (strcmp(path, "/metrics") == 0)
            metrics_reply(srv, req);
        else
            reply_text(req, 404, "not found\n");
        return;
    }
    atomic_fetch_add(&srv->m_requests, 1);
    const char *alias = cg_request_alias(req);
    size_t len = 0;
    const uint8_t *body = cg_request_body(req, &len);
    if (alias == NULL || cg_config_alias(srv->cfg, alias) == NULL) {
        atomic_fetch_add(&srv->m_http_errors, 1);
        reply_text(req, 404, "unknown CMP alias\n");
    } else if (!cg_core_is_der(body, len)) {
        atomic_fetch_add(&srv->m_http_errors, 1);
        reply_text(req, 400, "the request body is not a DER object\n");
    } else if (srv->draining) {
        atomic_fetch_add(&srv->m_busy, 1);
        reply_text(req, 503, "shutting down\n");
    } else if (queue_job(srv, req, JOB_CMP) != CG_OK) {
        atomic_fetch_add(&srv->m_busy, 1);
        reply_text(req, 503, "busy: the work queue is full\n");
    }
}

/* Loop thread: every few seconds, revoke certificates whose certConf never came (on a
 * worker: it writes to the store). */
static void on_sweep_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    (void)fd;
    (void)what;
    if (srv->sweep_running || srv->draining)
        return;
    if (queue_job(srv, NULL, JOB_SWEEP) == CG_OK)
        srv->sweep_running = 1;
}

/* Loop thread, SIGHUP: reload the configuration on a worker (it reads files and keys). */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    (void)sig;
    (void)what;
    if (srv->reload_running || srv->draining)
        return;
    if (queue_job(srv, NULL, JOB_RELOAD) == CG_OK)
        srv->reload_running = 1;
    else
        cg_log(CG_LOG_ERROR, "SIGHUP: the work queue is full; reload not started");
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    (void)fd;
    (void)what;
    srv->drain_quiet_ticks = cg_workq_inflight(srv->wq) == 0 ? srv->drain_quiet_ticks + 1 : 0;
    if (srv->drain_quiet_ticks >= 3 || time(NULL) - srv->drain_start > DRAIN_LIMIT_S)
        event_base_loopexit(srv->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    (void)what;
    if (srv->draining)
        return;
    cg_log(CG_LOG_INFO, "signal %d: finishing %d requests in flight, then stopping", (int)sig,
           cg_workq_inflight(srv->wq));
    srv->draining = 1;
    srv->drain_start = time(NULL);
    for (size_t i = 0; i < srv->n_http; i++)
        cg_http_stop_accepting(srv->http[i]);
    cg_tcp_stop_accepting(srv->tcp);
    struct timeval tv = {0, 20000};
    srv->ev_drain = event_new(srv->base, -1, EV_PERSIST, on_drain_tick, srv);
    if (srv->ev_drain == NULL || event_add(srv->ev_drain, &tv) != 0)
        event_base_loopexit(srv->base, NULL);
}

/* The transports' limits, from the configuration (fixed for the life of the listeners). */
static struct cg_transport_limits transport_limits(const struct cg_config *cfg)
{
    struct cg_transport_limits lim = {
        .max_body_bytes = cfg->max_body_bytes,
        .max_header_bytes = cfg->max_header_bytes,
        .idle_timeout_s = cfg->idle_timeout_s,
        .read_timeout_s = cfg->read_timeout_s,
        .max_connections = cfg->max_connections,
    };
    return lim;
}

static int bind_all(struct server *srv, char **addrs, size_t n, int kind, char *first,
                    size_t firstlen)
{
    struct cg_transport_limits lim = transport_limits(srv->cfg);
    if (n == 0)
        return CG_OK;
    struct cg_http *h =
        cg_http_new(srv->base, kind, &lim, srv->cfg->http_root_alias, on_request, srv);
    if (h == NULL)
        return CG_ENOMEM;
    struct cg_http **grown = realloc(srv->http, sizeof(*grown) * (srv->n_http + 1));
    if (grown == NULL) {
        cg_http_free(h);
        return CG_ENOMEM;
    }
    srv->http = grown;
    srv->http[srv->n_http++] = h;
    for (size_t i = 0; i < n; i++) {
        char bound[128];
        int rc = cg_http_bind(h, addrs[i], bound, sizeof(bound));
        if (rc != CG_OK) {
            gw_err("cannot listen on %s: %s", addrs[i], cg_strerror(rc));
            return rc;
        }
        if (i == 0)
            snprintf(first, firstlen, "%s", bound);
    }
    return CG_OK;
}

/* The CMP-over-TCP listener: every message uses the alias tcp.alias. */
static int bind_tcp(struct server *srv, char *first, size_t firstlen)
{
    struct cg_transport_limits lim = transport_limits(srv->cfg);
    if (srv->cfg->n_listen_tcp == 0)
        return CG_OK;
    srv->tcp = cg_tcp_new(srv->base, &lim, srv->cfg->tcp_alias ? srv->cfg->tcp_alias : "tcp",
                          on_request, srv);
    if (srv->tcp == NULL)
        return CG_ENOMEM;
    for (size_t i = 0; i < srv->cfg->n_listen_tcp; i++) {
        char bound[128];
        int rc = cg_tcp_bind(srv->tcp, srv->cfg->listen_tcp[i], bound, sizeof(bound));
        if (rc != CG_OK) {
            gw_err("cannot listen on %s: %s", srv->cfg->listen_tcp[i], cg_strerror(rc));
            return rc;
        }
        if (i == 0)
            snprintf(first, firstlen, "%s", bound);
    }
    return CG_OK;
}

/* Workers per CPU when the configuration says 0: an enrollment, certConf or rr leaves its
 * group commit to the committer (CG_CORE_DEFER) and a request for a busy entity parks
 * without its worker, so a worker waits for the disk only on the rarer synchronous paths (a
 * health check, a sweep, a redo after a failed write), and such a wait ends a commit group's
 * growth; one per core keeps the CPUs busy with the fewest wake-ups (docs/decisions.md,
 * "Worker count"). */
#define WORKERS_PER_CPU 1
#define MAX_DEFAULT_WORKERS 256 /* the most `workers` may say, too */

static int workers_for(const struct cg_config *cfg)
{
    if (cfg->workers > 0)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    long w = (n > 0 ? n : 1) * WORKERS_PER_CPU;
    return w > MAX_DEFAULT_WORKERS ? MAX_DEFAULT_WORKERS : (int)w;
}

/* No request is queued or being worked on: a commit group waiting for more is complete. */
static void store_backlog_drained(void *store)
{
    cg_store_backlog_drained(store);
}

int gw_serve(const char *config_path)
{
    struct server srv;
    int status = EXIT_RUNTIME, rc;
    char http_addr[128] = "", admin_addr[128] = "", tcp_addr[128] = "";
    memset(&srv, 0, sizeof(srv));
    if ((status = gw_load_config(config_path, &srv.cfg)) != 0)
        return status;
    status = EXIT_RUNTIME;
    cg_log_setup(srv.cfg->log_level, srv.cfg->log_json);
    signal(SIGPIPE, SIG_IGN);
    struct cg_store_opts so = {srv.cfg->store_path, srv.cfg->store_map_size_mb, srv.cfg->store_sync,
                               srv.cfg->store_commit_delay_us};
    if ((rc = cg_store_open(&so, &srv.store)) != CG_OK) {
        gw_err("cannot open the store at %s: %s", srv.cfg->store_path, cg_strerror(rc));
        goto out;
    }
    if ((rc = cg_core_new(srv.cfg, srv.store, &srv.core)) != CG_OK)
        goto out;
    if ((srv.gen = calloc(1, sizeof(*srv.gen))) == NULL)
        goto out;
    srv.gen->cfg = srv.cfg;
    srv.gen->core = srv.core;
    srv.gen->refs = 1;
    srv.config_path = config_path;
    if (evthread_use_pthreads() != 0 || (srv.base = event_base_new()) == NULL) {
        gw_err("cannot create the event loop");
        goto out;
    }
    if ((rc = cg_workq_new(srv.base, workers_for(srv.cfg), srv.cfg->queue_depth, &srv.wq)) !=
        CG_OK) {
        gw_err("cannot start workers: %s", cg_strerror(rc));
        goto out;
    }
    cg_store_set_backlog(srv.store, cg_workq_backlog, srv.wq);
    cg_store_set_wait_hooks(srv.store, cg_workq_wait_begin, cg_workq_wait_end, srv.wq);
    cg_workq_set_drained(srv.wq, store_backlog_drained, srv.store);
    if (bind_all(&srv, srv.cfg->listen_http, srv.cfg->n_listen_http, CG_TRANSPORT_HTTP, http_addr,
                 sizeof(http_addr)) != CG_OK ||
        bind_all(&srv, srv.cfg->listen_admin, srv.cfg->n_listen_admin, CG_TRANSPORT_ADMIN,
                 admin_addr, sizeof(admin_addr)) != CG_OK ||
        bind_tcp(&srv, tcp_addr, sizeof(tcp_addr)) != CG_OK)
        goto out;
    int every = cg_core_sweep_interval(srv.core);
    if (every > 0) {
        struct timeval tv = {every, 0};
        srv.ev_sweep = event_new(srv.base, -1, EV_PERSIST, on_sweep_tick, &srv);
        if (srv.ev_sweep == NULL || event_add(srv.ev_sweep, &tv) != 0)
            goto out;
    }
    srv.ev_hup = evsignal_new(srv.base, SIGHUP, on_hup, &srv);
    if (srv.ev_hup == NULL || evsignal_add(srv.ev_hup, NULL) != 0)
        goto out;
    srv.ev_term = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
    srv.ev_int = evsignal_new(srv.base, SIGINT, on_signal, &srv);
    if (!srv.ev_term || !srv.ev_int || evsignal_add(srv.ev_term, NULL) ||
        evsignal_add(srv.ev_int, NULL))
        goto out;
    printf("LISTEN http=%s tcp=%s admin=%s pid=%ld\n", http_addr[0] ? http_addr : "-",
           tcp_addr[0] ? tcp_addr : "-", admin_addr[0] ? admin_addr : "-", (long)getpid());
    fflush(stdout);
    cg_log(CG_LOG_INFO, "cmpgate serving %s (http %s, %d workers, store %s)", srv.cfg->file,
           http_addr[0] ? http_addr : "-", workers_for(srv.cfg), srv.cfg->store_path);
    event_base_dispatch(srv.base);
    status = 0;
    cg_log(CG_LOG_INFO, "cmpgate stopped");
out:
    for (size_t i = 0; i < srv.n_http; i++)
        cg_http_free(srv.http[i]);
    free(srv.http);
    cg_tcp_free(srv.tcp);
    if (srv.store != NULL) { /* the queue goes away first */
        cg_store_set_backlog(srv.store, NULL, NULL);
        cg_store_set_wait_hooks(srv.store, NULL, NULL, NULL);
    }
    cg_workq_free(srv.wq);
    if (srv.ev_term)
        event_free(srv.ev_term);
    if (srv.ev_int)
        event_free(srv.ev_int);
    if (srv.ev_drain)
        event_free(srv.ev_drain);
    if (srv.ev_sweep)
        event_free(srv.ev_sweep);
    if (srv.ev_hup)
        event_free(srv.ev_hup);
    if (srv.base)
        event_base_free(srv.base);
    if (srv.gen != NULL) {
        gen_drop(srv.gen); /* every job is done: this frees the current generation */
    } else {
        cg_core_free(srv.core);
        cg_config_unref(srv.cfg);
    }
    cg_store_close(srv.store);
    return status;
}
