/*
 * store.c - the LMDB environment, the group-commit thread, the entity lock stripes and the
 * read side of the store (gets, lookups, iterations).
 *
 * DESIGN: one MDB_env with five named databases (entities, certs, certs_by_user, txn_log,
 * meta; see store_local.h), opened MDB_NOTLS so a read transaction is not tied to a thread
 * slot and any number of threads (maxreaders 256) read in parallel; several processes may
 * share the environment (LMDB's lock file arbitrates, no MDB_NOLOCK / MDB_WRITEMAP).
 * Transaction records follow, in txn_log, the order transactions began; a transaction is found
 * by its transactionID through an index each process keeps in memory and reads from the log
 * (txnidx.c). Every read runs in its own short MDB_RDONLY transaction and copies the record
 * out of the map before ending it.
 *
 * Writes: cg_store_commit() puts a `struct pending` (on the caller's stack) on a FIFO guarded
 * by `mu`, signals `work_cv` and waits on its own semaphore until the committer posts it;
 * cg_store_commit_async() queues an allocated one carrying a callback instead. The
 * committer takes every pending batch at once (after letting the group grow while requests
 * wait for a worker, see let_group_grow), opens one write transaction, applies every batch
 * in it and commits once (one fsync for the group); when a batch fails, that transaction is
 * aborted and the group applied again with each batch in its own nested transaction (the
 * failing batch aborts only its child and keeps its error). Then, without holding `mu`,
 * wakes exactly its waiters and runs the callbacks. If the
 * parent cannot begin or commit, every batch of the group that had succeeded gets CG_ESTORE
 * (CG_EFULL for MDB_MAP_FULL). cg_store_close() sets `stopping`: later commits get
 * CG_ECLOSED, the committer drains what is queued, then exits and is joined.
 *
 * Entity locks: CG_STORE_STRIPES lock stripes indexed by FNV-1a(username). Two usernames may
 * share a stripe, so a thread must hold at most one entity lock at a time. A stripe is a
 * busy flag under a mutex, so the committer may release the lock of an asynchronous commit.
 *
 * cg_store_find_cert_by_serial() scans the whole certs database (O(n)); fine at our sizes,
 * an index serial → key can be added to the schema later.
 */
#include "store_local.h"

#include "cg_err.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char KEY_SCHEMA[] = "schema";

int map_mdb_err_(int mrc)
{
    int rc = CG_ESTORE;
    if (mrc == 0)
        rc = CG_OK;
    else if (mrc == MDB_MAP_FULL)
        rc = CG_EFULL;
    return rc;
}

/* --- the committer ---------------------------------------------------------------------- */

/* Zeros written ahead of the pages LMDB uses, so that a commit overwrites blocks the file
 * already has. When a commit's pages extend the file instead, its fdatasync must also write
 * the file system's metadata (the new size, the block map: synchronous writes on ext4 without
 * a journal) after the data. When fewer than half of the reserve are left, each group writes
 * at most CG_STORE_RESERVE_STEP more until it is whole again, so that no group waits long for
 * it. The reserve has a fixed size: a group's new pages do not depend on the store's size,
 * and a reserve growing with the store (an eighth of it, once) kept the first hundred groups
 * after opening a store of a million entities busy writing zeros. Called inside a write
 * transaction: no other writer, in this process or another, is between writing its pages and its
 * meta page. Best effort: a failed write leaves zeros past the last page, which nothing reads. */
static void reserve_space(struct cg_store *s)
{
    static const unsigned char zeros[1 << 16];
    MDB_envinfo info;
    MDB_stat st;
    struct stat fs;
    mdb_filehandle_t fd;
    if (!s->sync || mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0 ||
        mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &fs) != 0)
        return;
    off_t used = (off_t)(info.me_last_pgno + 1) * st.ms_psize, map = (off_t)info.me_mapsize;
    off_t have = fs.st_size > used ? fs.st_size : used; /* zeros from used to have */
    if (s->reserve_end <= have) {                       /* not topping up */
        s->reserve_end = 0;
        if (have - used >= CG_STORE_RESERVE / 2)
            return;
        s->reserve_end = used + CG_STORE_RESERVE < map ? used + CG_STORE_RESERVE : map;
    }
    off_t end = have + CG_STORE_RESERVE_STEP < s->reserve_end ? have + CG_STORE_RESERVE_STEP
                                                              : s->reserve_end;
    for (off_t at = have; at < end;) {
        size_t n = end - at < (off_t)sizeof(zeros) ? (size_t)(end - at) : sizeof(zeros);
        ssize_t w = pwrite(fd, zeros, n, at);
        if (w <= 0) {
            s->reserve_end = 0; /* a full disk, say: tried again at the next group */
            return;
        }
        at += w;
    }
    fdatasync(fd);
}

/* The common case: every batch of the group applies. All in the one write transaction,
 * without a nested transaction each (a child copies every page its parent has dirtied before
 * changing it). @return 1 when committed (each batch's rc set), 0 when a batch failed or the
 * transaction could not begin: nothing was written, the caller applies them one by one. */
static int commit_flat(struct cg_store *s, struct pending *group)
{
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return 0;
    reserve_space(s);
    if (txnidx_write_begin_(s, txn) != CG_OK) {
        mdb_txn_abort(txn);
        return 0;
    }
    for (struct pending *p = group; p != NULL; p = p->next)
        if (apply_batch_(s, txn, p->batch) != CG_OK) {
            mdb_txn_abort(txn);
            return 0;
        }
    int rc = map_mdb_err_(mdb_txn_commit(txn));
    if (rc == CG_OK)
        txnidx_write_committed_(s);
    for (struct pending *p = group; p != NULL; p = p->next)
        p->rc = rc;
    return 1;
}

/* Apply one group of batches (list linked by next) and set each one's rc: all at once when
 * they all apply (commit_flat), else each in its own nested transaction, so that a failing
 * batch aborts only its child and keeps its error. */
static void commit_group(struct cg_store *s, struct pending *group)
{
    MDB_txn *parent = NULL;
    int applied = 0;
    if (commit_flat(s, group))
        return;
    int mrc = mdb_txn_begin(s->env, NULL, 0, &parent);
    int rc = mrc != 0 ? map_mdb_err_(mrc) : txnidx_write_begin_(s, parent);
    if (rc != CG_OK) {
        for (struct pending *p = group; p != NULL; p = p->next)
            p->rc = rc;
        if (parent != NULL)
            mdb_txn_abort(parent);
        goto out;
    }
    for (struct pending *p = group; p != NULL; p = p->next) {
        MDB_txn *child = NULL;
        size_t mark = txnidx_write_mark_(s);
        mrc = mdb_txn_begin(s->env, parent, 0, &child);
        if (mrc != 0) {
            p->rc = map_mdb_err_(mrc);
            continue;
        }
        p->rc = apply_batch_(s, child, p->batch);
        if (p->rc != CG_OK) {
            mdb_txn_abort(child);
            txnidx_write_undo_(s, mark);
            continue;
        }
        mrc = mdb_txn_commit(child);
        if (mrc != 0) {
            p->rc = map_mdb_err_(mrc);
            txnidx_write_undo_(s, mark);
            continue;
        }
        applied++;
    }
    if (applied == 0) {
        mdb_txn_abort(parent); /* nothing to write: spare the fsync */
        goto out;
    }
    mrc = mdb_txn_commit(parent);
    if (mrc != 0) {
        for (struct pending *p = group; p != NULL; p = p->next)
            if (p->rc == CG_OK)
                p->rc = map_mdb_err_(mrc);
    } else {
        txnidx_write_committed_(s);
    }
out:
    return;
}

/* Tell every batch of a committed group its result (committer thread, without `mu`). */
static void complete_group(struct pending *group)
{
    while (group != NULL) {
        struct pending *next = group->next; /* read first: a woken waiter's frame goes away */
        if (group->fn != NULL) {
            group->fn(group->arg, group->rc);
            free(group);
        } else {
            sem_post(&group->sem);
        }
        group = next;
    }
}

/* Under mu, with work queued: while requests wait for a worker (each may add a batch soon),
 * let the group grow, up to commit_delay_us from now. Enqueues do not wake the committer
 * meanwhile; the deadline, cg_store_backlog_drained(), a blocking cg_store_commit() or a
 * wait for a busy entity lock (the waiting thread takes no request meanwhile), a change of
 * the backlog function or stopping do. */
static void let_group_grow(struct cg_store *s)
{
    struct timespec deadline;
    if (s->commit_delay_us <= 0 || s->backlog == NULL || s->backlog(s->backlog_arg) <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += (s->commit_delay_us % 1000000) * 1000;
    deadline.tv_sec += s->commit_delay_us / 1000000 + deadline.tv_nsec / 1000000000;
    deadline.tv_nsec %= 1000000000;
    s->growing = 1;
    while (!s->stopping && !s->blocked && s->backlog != NULL && s->backlog(s->backlog_arg) > 0)
        if (pthread_cond_timedwait(&s->work_cv, &s->mu, &deadline) == ETIMEDOUT)
            break;
    s->growing = 0;
}

static void *run_committer(void *arg)
{
    struct cg_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct pending *group = NULL;
        while (s->head == NULL && !s->stopping)
            pthread_cond_wait(&s->work_cv, &s->mu);
        if (s->head == NULL)
            break; /* stopping and drained */
        let_group_grow(s);
        group = s->head;
        s->head = s->tail = NULL;
        s->blocked = 0;
        pthread_mutex_unlock(&s->mu);
        commit_group(s, group);
        complete_group(group);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Append p to the committer's FIFO. @return CG_OK or CG_ECLOSED (not queued). */
static int enqueue(struct cg_store *s, struct pending *p)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping || !s->thread_started) {
        pthread_mutex_unlock(&s->mu);
        return CG_ECLOSED;
    }
    if (s->tail != NULL)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    if (p->fn == NULL)
        s->blocked = 1; /* a cg_store_commit() caller waits */
    if (!s->growing || p->fn == NULL)
        pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    return CG_OK;
}

/* Under mu: wake a committer letting its group grow, to look again at why it waits. */
static void wake_growing(struct cg_store *s)
{
    if (s->growing)
        pthread_cond_signal(&s->work_cv);
}

void cg_store_set_backlog(struct cg_store *s, int (*backlog)(void *arg), void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->backlog = backlog;
    s->backlog_arg = arg;
    wake_growing(s); /* it asks the new function, or stops waiting on none */
    pthread_mutex_unlock(&s->mu);
}

void cg_store_set_wait_hooks(struct cg_store *s, void (*begin)(void *arg), void (*end)(void *arg),
                             void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->wait_begin = begin;
    s->wait_end = end;
    s->wait_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

void cg_store_backlog_drained(struct cg_store *s)
{
    pthread_mutex_lock(&s->mu);
    wake_growing(s);
    pthread_mutex_unlock(&s->mu);
}

int cg_store_commit(struct cg_store *s, struct cg_store_batch *b)
{
    int rc = CG_EINTERNAL;
    struct pending p = {.batch = b, .rc = CG_EINTERNAL, .fn = NULL, .next = NULL};
    if (s == NULL || b == NULL) {
        rc = CG_EINVAL;
        goto out;
    }
    if (sem_init(&p.sem, 0, 0) != 0)
        goto out;
    rc = enqueue(s, &p);
    if (rc == CG_OK) {
        while (sem_wait(&p.sem) != 0)
            ; /* EINTR */
        rc = p.rc;
    }
    sem_destroy(&p.sem);
out:
    return rc;
}

int cg_store_commit_async(struct cg_store *s, struct cg_store_batch *b, cg_store_done_fn done,
                          void *arg)
{
    int rc = CG_EINTERNAL;
    struct pending *p = NULL;
    if (s == NULL || b == NULL || done == NULL) {
        rc = CG_EINVAL;
        goto out;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    p->batch = b;
    p->rc = CG_EINTERNAL;
    p->fn = done;
    p->arg = arg;
    if ((rc = enqueue(s, p)) != CG_OK)
        goto out;
    p = NULL; /* the committer frees it */
out:
    free(p);
    return rc;
}

int cg_store_check_writable(struct cg_store *s)
{
    int rc = CG_EINTERNAL;
    struct cg_store_batch *b = cg_store_batch_new();
    if (b == NULL || batch_add_touch_(b, (int64_t)time(NULL)) != CG_OK ||
        cg_store_commit(s, b) != CG_OK) {
        rc = CG_ESTORE;
        goto out;
    }
    rc = CG_OK;
out:
    cg_store_batch_free(b);
    return rc;
}

/* --- open / close ----------------------------------------------------------------------- */

static int make_dir(const char *path)
{
    int rc = CG_EIO;
    struct stat st;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        goto out;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        goto out;
    rc = CG_OK;
out:
    return rc;
}

/* Open (create) the named databases and check or write the schema version. */
static int open_dbs(struct cg_store *s)
{
    int rc = CG_ESTORE;
    MDB_txn *txn = NULL;
    MDB_val k = {sizeof(KEY_SCHEMA) - 1, (void *)KEY_SCHEMA};
    MDB_val v;
    uint8_t ver[4] = {0, 0, 0, CG_STORE_SCHEMA};
    int mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (mrc != 0)
        goto out;
    if (mdb_dbi_open(txn, "entities", MDB_CREATE, &s->dbi_entities) != 0 ||
        mdb_dbi_open(txn, "certs", MDB_CREATE, &s->dbi_certs) != 0 ||
        mdb_dbi_open(txn, "certs_by_user", MDB_CREATE | MDB_DUPSORT, &s->dbi_by_user) != 0 ||
        mdb_dbi_open(txn, "txn_log", MDB_CREATE, &s->dbi_txn_log) != 0 ||
        mdb_dbi_open(txn, "meta", MDB_CREATE, &s->dbi_meta) != 0)
        goto out;
    mrc = mdb_get(txn, s->dbi_meta, &k, &v);
    uint8_t old_ver = mrc == 0 && v.mv_size == sizeof(ver) && memcmp(v.mv_data, ver, 3) == 0
                          ? ((const uint8_t *)v.mv_data)[3]
                          : 0;
    if (old_ver >= 1 && old_ver <= 3) {
        /* One way: an older binary refuses the store afterwards instead of finding records
         * missing. Schema 1 → 2: drop the fingerprint → certificate index (a random-key insert
         * per certificate; lookups by issuer and serial replaced it). 2 → 3: transactions move
         * from one database keyed by their random transactionID to a log in the order they
         * began, so that a group of commits rewrites a few log pages instead of a page per
         * transaction. 3 → 4: the txid → log key index ("txn_ids", a page at a random place
         * per transaction) is no longer stored: each process reads it from the log
         * (txnidx.c; docs/decisions.md). */
        MDB_dbi old_db;
        if (old_ver == 1 && mdb_dbi_open(txn, "certs_by_fp", 0, &old_db) == 0 &&
            mdb_drop(txn, old_db, 1) != 0)
            goto out;
        if (old_ver < 3 && migrate_txns_(s, txn) != CG_OK)
            goto out;
        if (old_ver == 3 && mdb_dbi_open(txn, "txn_ids", 0, &old_db) == 0 &&
            mdb_drop(txn, old_db, 1) != 0)
            goto out;
        mrc = MDB_NOTFOUND; /* write the current schema below */
    }
    if (mrc == MDB_NOTFOUND) {
        v.mv_size = sizeof(ver);
        v.mv_data = ver;
        if (mdb_put(txn, s->dbi_meta, &k, &v, 0) != 0)
            goto out;
    } else if (mrc != 0 || v.mv_size != sizeof(ver) || memcmp(v.mv_data, ver, sizeof(ver)) != 0) {
        goto out; /* unreadable or a schema we do not know */
    }
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto out;
    rc = CG_OK;
out:
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc;
}

/* Start the committer with every signal blocked (signals belong to the loop thread). */
static int start_committer(struct cg_store *s)
{
    int rc = CG_EINTERNAL;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&s->committer, NULL, run_committer, s) == 0) {
        s->thread_started = 1;
        pthread_setname_np(s->committer, "cg/store");
        rc = CG_OK;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int cg_store_open(const struct cg_store_opts *opts, struct cg_store **out)
{
    int rc = CG_EINTERNAL;
    struct cg_store *s = NULL;
    size_t mb = 0;
    int dead = 0;
    if (out != NULL)
        *out = NULL;
    if (opts == NULL || opts->path == NULL || out == NULL) {
        rc = CG_EINVAL;
        goto out;
    }
    mb = opts->map_size_mb ? opts->map_size_mb : 1024;
    rc = make_dir(opts->path);
    if (rc != CG_OK)
        goto out;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    rc = CG_ESTORE;
    if (mdb_env_create(&s->env) != 0) {
        s->env = NULL;
        goto out;
    }
    if (mdb_env_set_maxdbs(s->env, 8) != 0 || mdb_env_set_maxreaders(s->env, 256) != 0 ||
        mdb_env_set_mapsize(s->env, mb * 1024 * 1024) != 0 ||
        mdb_env_open(s->env, opts->path, MDB_NOTLS | (opts->sync ? 0 : MDB_NOSYNC), 0600) != 0)
        goto out;
    mdb_reader_check(s->env, &dead); /* clear slots of crashed processes */
    rc = open_dbs(s);
    if (rc == CG_OK)
        rc = txnidx_init_(&s->idx);
    if (rc != CG_OK)
        goto out;
    /* the transactionID index read from the whole log now, not under the committer's write
     * lock at the first commit (a failure leaves it to the next follow) */
    MDB_txn *rtxn = NULL;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rtxn) == 0) {
        txnidx_follow_(s, rtxn);
        mdb_txn_abort(rtxn);
    }
    rc = CG_EINTERNAL;
    for (int i = 0; i < CG_STORE_STRIPES; i++) {
        pthread_mutex_init(&s->stripes[i].mu, NULL);
        pthread_cond_init(&s->stripes[i].cv, NULL);
    }
    s->stripes_init = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* let_group_grow's deadline */
    pthread_cond_init(&s->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->commit_delay_us = opts->commit_delay_us;
    s->sync = opts->sync;
    s->sync_init = 1;
    rc = start_committer(s);
    if (rc != CG_OK)
        goto out;
    *out = s;
    s = NULL;
    rc = CG_OK;
out:
    cg_store_close(s);
    return rc;
}

void cg_store_close(struct cg_store *s)
{
    if (s == NULL)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_signal(&s->work_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->committer, NULL);
    }
    if (s->sync_init) {
        pthread_cond_destroy(&s->work_cv);
        pthread_mutex_destroy(&s->mu);
    }
    if (s->stripes_init)
        for (int i = 0; i < CG_STORE_STRIPES; i++) {
            pthread_mutex_destroy(&s->stripes[i].mu);
            pthread_cond_destroy(&s->stripes[i].cv);
            for (struct stripe_waiter *w = s->stripes[i].park, *next; w != NULL; w = next) {
                next = w->next; /* never called: nobody releases the stripe any more */
                free(w);
            }
        }
    txnidx_free_(&s->idx);
    if (s->env != NULL)
        mdb_env_close(s->env); /* also closes the DBI handles */
    free(s);
}

/* --- entity locks ----------------------------------------------------------------------- */

static struct stripe *stripe_of(struct cg_store *s, const char *username)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)username; p && *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return &s->stripes[h % CG_STORE_STRIPES];
}

void cg_store_lock_entity(struct cg_store *s, const char *username)
{
    struct stripe *st = stripe_of(s, username);
    void (*wait_end)(void *) = NULL;
    void *wait_arg = NULL;
    pthread_mutex_lock(&st->mu);
    if (st->busy) {
        /* this thread takes no request while it waits, perhaps for a write in the group the
         * committer lets grow: commit it now, and let later groups not wait for this thread
         * (stripe, then store lock; the committer never takes a stripe's lock while holding
         * mu; wait_begin may take the work queue's lock and then mu) */
        pthread_mutex_lock(&s->mu);
        s->blocked = 1;
        wake_growing(s);
        void (*wait_begin)(void *) = s->wait_begin;
        wait_end = s->wait_end;
        wait_arg = s->wait_arg;
        pthread_mutex_unlock(&s->mu);
        if (wait_begin != NULL)
            wait_begin(wait_arg);
    }
    while (st->busy) {
        st->waiters++;
        pthread_cond_wait(&st->cv, &st->mu);
        st->waiters--;
    }
    st->busy = 1;
    pthread_mutex_unlock(&st->mu);
    if (wait_end != NULL)
        wait_end(wait_arg);
}

/* Under st->mu: take the oldest parked waiter off the stripe, or NULL. */
static struct stripe_waiter *unpark(struct stripe *st)
{
    struct stripe_waiter *w = st->park;
    if (w != NULL && (st->park = w->next) == NULL)
        st->last = NULL;
    return w;
}

static void call_waiter(struct stripe_waiter *w)
{
    if (w != NULL) {
        w->done(w->arg, CG_OK);
        free(w);
    }
}

void cg_store_unlock_entity(struct cg_store *s, const char *username)
{
    struct stripe *st = stripe_of(s, username);
    pthread_mutex_lock(&st->mu);
    st->busy = 0;
    if (st->waiters > 0)
        pthread_cond_signal(&st->cv);
    struct stripe_waiter *w = unpark(st); /* the oldest parked request tries again */
    pthread_mutex_unlock(&st->mu);
    call_waiter(w);
}

void cg_store_kick_entity(struct cg_store *s, const char *username)
{
    struct stripe *st = stripe_of(s, username);
    pthread_mutex_lock(&st->mu);
    struct stripe_waiter *w = st->busy ? NULL : unpark(st);
    pthread_mutex_unlock(&st->mu);
    call_waiter(w);
}

int cg_store_trylock_entity(struct cg_store *s, const char *username)
{
    struct stripe *st = stripe_of(s, username);
    int taken = 0;
    pthread_mutex_lock(&st->mu);
    if (!st->busy)
        st->busy = taken = 1;
    pthread_mutex_unlock(&st->mu);
    return taken;
}

int cg_store_wait_entity(struct cg_store *s, const char *username, void (*done)(void *, int),
                         void *arg)
{
    struct stripe *st = stripe_of(s, username);
    struct stripe_waiter *w = malloc(sizeof(*w));
    if (w == NULL)
        return CG_ENOMEM;
    w->done = done;
    w->arg = arg;
    w->next = NULL;
    pthread_mutex_lock(&st->mu);
    if (!st->busy) {
        pthread_mutex_unlock(&st->mu);
        free(w);
        return CG_EALREADY;
    }
    if (st->last != NULL)
        st->last->next = w;
    else
        st->park = w;
    st->last = w;
    pthread_mutex_unlock(&st->mu);
    return CG_OK;
}

/* --- reads ------------------------------------------------------------------------------ */

static int begin_read(struct cg_store *s, MDB_txn **txn)
{
    int rc = CG_ESTORE;
    *txn = NULL;
    if (s == NULL) {
        rc = CG_EINVAL;
        goto out;
    }
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn) != 0) {
        *txn = NULL;
        goto out;
    }
    rc = CG_OK;
out:
    return rc;
}

/* mdb_get → CG_OK / CG_ENOTFOUND / CG_ESTORE. */
static int get_raw(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, MDB_val *v)
{
    int rc = CG_ESTORE;
    MDB_val k = {key_len, (void *)key};
    int mrc = mdb_get(txn, dbi, &k, v);
    if (mrc == 0)
        rc = CG_OK;
    else if (mrc == MDB_NOTFOUND || mrc == MDB_BAD_VALSIZE) /* too long a key: never stored */
        rc = CG_ENOTFOUND;
    return rc;
}

static void end_read(MDB_txn *txn)
{
    if (txn != NULL)
        mdb_txn_abort(txn);
}

int cg_store_get_entity(struct cg_store *s, const char *username, struct cg_entity **out)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    MDB_val v;
    *out = NULL;
    if (username == NULL || username[0] == '\0') {
        rc = CG_EINVAL;
        goto out;
    }
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = get_raw(txn, s->dbi_entities, username, strlen(username), &v);
    if (rc != CG_OK)
        goto out;
    rc = decode_entity_(v.mv_data, v.mv_size, out);
out:
    end_read(txn);
    return rc;
}

/* Fetch and decode the certificate at key (issuer_key || serial) inside txn. */
static int read_cert(struct cg_store *s, MDB_txn *txn, const void *key, size_t key_len,
                     struct cg_cert_rec **out)
{
    MDB_val v;
    int rc = get_raw(txn, s->dbi_certs, key, key_len, &v);
    if (rc == CG_OK)
        rc = decode_cert_(v.mv_data, v.mv_size, out);
    return rc;
}

int cg_store_get_cert(struct cg_store *s, const uint8_t issuer_key[32], const uint8_t *serial,
                      size_t serial_len, struct cg_cert_rec **out)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    uint8_t key[CG_STORE_CERT_KEY_MAX];
    size_t key_len = 0;
    *out = NULL;
    if (issuer_key == NULL || serial == NULL || serial_len < 1 || serial_len > 32) {
        rc = CG_EINVAL;
        goto out;
    }
    key_len = make_cert_key_(issuer_key, serial, serial_len, key);
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = read_cert(s, txn, key, key_len, out);
out:
    end_read(txn);
    return rc;
}

int cg_store_find_cert_by_serial(struct cg_store *s, const uint8_t *serial, size_t serial_len,
                                 struct cg_cert_rec **out)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v, found_v = {0, NULL};
    int mrc = 0, matches = 0;
    *out = NULL;
    if (serial == NULL || serial_len < 1 || serial_len > 32) {
        rc = CG_EINVAL;
        goto out;
    }
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = CG_ESTORE;
    if (mdb_cursor_open(txn, s->dbi_certs, &cur) != 0) {
        cur = NULL;
        goto out;
    }
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 32 + serial_len &&
            memcmp((const uint8_t *)k.mv_data + 32, serial, serial_len) == 0) {
            if (++matches > 1)
                break;
            found_v = v;
        }
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        goto out;
    if (matches > 1)
        rc = CG_EEXIST;
    else if (matches == 0)
        rc = CG_ENOTFOUND;
    else
        rc = decode_cert_(found_v.mv_data, found_v.mv_size, out);
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    end_read(txn);
    return rc;
}

int cg_store_get_cert_fp(struct cg_store *s, const uint8_t issuer_key[32], const uint8_t *serial,
                         size_t serial_len, const uint8_t fp[32], struct cg_cert_rec **out)
{
    *out = NULL;
    if (fp == NULL)
        return CG_EINVAL;
    int rc = cg_store_get_cert(s, issuer_key, serial, serial_len, out);
    if (rc == CG_OK && memcmp((*out)->fingerprint, fp, 32) != 0) {
        cg_cert_rec_free(*out); /* another certificate under that issuer and serial */
        *out = NULL;
        rc = CG_ENOTFOUND;
    }
    return rc;
}

int cg_store_get_txn(struct cg_store *s, const uint8_t *txid, size_t txid_len,
                     struct cg_txn_rec **out)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    MDB_val v;
    uint8_t seq[CG_STORE_SEQ_LEN];
    *out = NULL;
    if (txid == NULL || txid_len < 1 || txid_len > 64) {
        rc = CG_EINVAL;
        goto out;
    }
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = txn_record_(s, txn, txid, txid_len, seq, &v);
    if (rc != CG_OK)
        goto out;
    rc = decode_txn_(v.mv_data, v.mv_size, out);
out:
    end_read(txn);
    return rc;
}

/* Walks the records of dbi in key order from `from` (NULL: the first) in one read transaction,
 * handing each key and value to visit (which decodes the value and calls the caller's callback;
 * *stop ends the walk). */
struct walk_cbs {
    cg_store_entity_cb entity;
    cg_store_txn_cb txn;
    cg_store_txn_key_cb txn_key;
    void *arg;
};

static int walk_db(struct cg_store *s, MDB_dbi dbi, MDB_val *from,
                   int (*visit)(const MDB_val *k, const MDB_val *v, const struct walk_cbs *cbs,
                                int *stop),
                   const struct walk_cbs *cbs)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k = from != NULL ? *from : (MDB_val){0, NULL}, v;
    int mrc = 0;
    if (cbs->entity == NULL && cbs->txn == NULL && cbs->txn_key == NULL) {
        rc = CG_EINVAL;
        goto out;
    }
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = CG_ESTORE;
    if (mdb_cursor_open(txn, dbi, &cur) != 0) {
        cur = NULL;
        goto out;
    }
    for (mrc = mdb_cursor_get(cur, &k, &v, from != NULL ? MDB_SET_RANGE : MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        int stop = 0;
        rc = visit(&k, &v, cbs, &stop);
        if (rc != CG_OK)
            goto out;
        if (stop)
            break;
    }
    rc = (mrc == 0 || mrc == MDB_NOTFOUND) ? CG_OK : CG_ESTORE;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    end_read(txn);
    return rc;
}

static int visit_entity(const MDB_val *k, const MDB_val *v, const struct walk_cbs *cbs, int *stop)
{
    (void)k;
    struct cg_entity *e = NULL;
    int rc = decode_entity_(v->mv_data, v->mv_size, &e);
    if (rc == CG_OK)
        *stop = cbs->entity(e, cbs->arg);
    cg_entity_free(e);
    return rc;
}

static int visit_txn(const MDB_val *k, const MDB_val *v, const struct walk_cbs *cbs, int *stop)
{
    struct cg_txn_rec *t = NULL;
    if (k->mv_size != CG_STORE_SEQ_LEN)
        return CG_ESTORE;
    int rc = decode_txn_(v->mv_data, v->mv_size, &t);
    if (rc == CG_OK)
        *stop = cbs->txn_key != NULL ? cbs->txn_key(t, get_u64_be_(k->mv_data), cbs->arg)
                                     : cbs->txn(t, cbs->arg);
    cg_txn_rec_free(t);
    return rc;
}

int cg_store_list_entities(struct cg_store *s, cg_store_entity_cb cb, void *arg)
{
    struct walk_cbs cbs = {cb, NULL, NULL, arg};
    return walk_db(s, s->dbi_entities, NULL, visit_entity, &cbs);
}

int cg_store_list_txns(struct cg_store *s, cg_store_txn_cb cb, void *arg)
{
    struct walk_cbs cbs = {NULL, cb, NULL, arg};
    return walk_db(s, s->dbi_txn_log, NULL, visit_txn, &cbs);
}

int cg_store_walk_txns(struct cg_store *s, uint64_t from, cg_store_txn_key_cb cb, void *arg)
{
    struct walk_cbs cbs = {NULL, NULL, cb, arg};
    uint8_t start[CG_STORE_SEQ_LEN];
    MDB_val k = {sizeof(start), start};
    set_u64_be_(start, from);
    return walk_db(s, s->dbi_txn_log, &k, visit_txn, &cbs);
}

/* Decode one certificate, hand it to cb. @return CG_OK or the decode error; *stop from cb. */
static int visit_cert(const MDB_val *v, cg_store_cert_cb cb, void *arg, int *stop)
{
    struct cg_cert_rec *c = NULL;
    int rc = decode_cert_(v->mv_data, v->mv_size, &c);
    if (rc == CG_OK)
        *stop = cb(c, arg);
    cg_cert_rec_free(c);
    return rc;
}

int cg_store_list_certs(struct cg_store *s, const char *username, cg_store_cert_cb cb, void *arg)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v, cv;
    int mrc = 0, stop = 0;
    if (cb == NULL || (username != NULL && username[0] == '\0')) {
        rc = CG_EINVAL;
        goto out;
    }
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = CG_ESTORE;
    if (mdb_cursor_open(txn, username ? s->dbi_by_user : s->dbi_certs, &cur) != 0) {
        cur = NULL;
        goto out;
    }
    if (username == NULL) {
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !stop;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            rc = visit_cert(&v, cb, arg, &stop);
            if (rc != CG_OK)
                goto out;
        }
    } else {
        k.mv_size = strlen(username);
        k.mv_data = (void *)username;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); mrc == 0 && !stop;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
            if (v.mv_size <= CG_STORE_SEQ_LEN) {
                rc = CG_ESTORE;
                goto out;
            }
            rc = get_raw(txn, s->dbi_certs, (const uint8_t *)v.mv_data + CG_STORE_SEQ_LEN,
                         v.mv_size - CG_STORE_SEQ_LEN, &cv);
            if (rc == CG_OK)
                rc = visit_cert(&cv, cb, arg, &stop);
            if (rc != CG_OK) {
                rc = CG_ESTORE; /* a dangling index entry is corruption too */
                goto out;
            }
        }
    }
    rc = (stop || mrc == 0 || mrc == MDB_NOTFOUND) ? CG_OK : CG_ESTORE;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    end_read(txn);
    return rc;
}

int cg_store_count_certs(struct cg_store *s, const char *username, size_t *count)
{
    int rc = CG_EINTERNAL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_stat st;
    MDB_val k, v;
    size_t n = 0;
    int mrc = 0;
    if (count == NULL || (username != NULL && username[0] == '\0')) {
        rc = CG_EINVAL;
        goto out;
    }
    *count = 0;
    rc = begin_read(s, &txn);
    if (rc != CG_OK)
        goto out;
    rc = CG_ESTORE;
    if (username == NULL) { /* all certificates, like cg_store_list_certs(NULL) */
        if (mdb_stat(txn, s->dbi_certs, &st) != 0)
            goto out;
        *count = st.ms_entries;
        rc = CG_OK;
        goto out;
    }
    if (mdb_cursor_open(txn, s->dbi_by_user, &cur) != 0) {
        cur = NULL;
        goto out;
    }
    k.mv_size = strlen(username);
    k.mv_data = (void *)username;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (mrc == MDB_NOTFOUND) {
        rc = CG_OK;
        goto out;
    }
    if (mrc != 0 || mdb_cursor_count(cur, &n) != 0)
        goto out;
    *count = n;
    rc = CG_OK;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    end_read(txn);
    return rc;
}
