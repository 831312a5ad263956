/*
 * store_local.h - what the files of store/ share: the store struct, the record codec and
 * the batch applier. Never included from outside store/.
 *
 * DESIGN: store.c owns the environment, the committer thread, the lock stripes and the
 * reads; store_codec.c owns the record types and their binary encoding; store_batch.c owns
 * batches and applies them inside a (nested) write transaction. Functions shared between
 * these files end with '_'.
 */
#ifndef CG_STORE_STORE_LOCAL_H
#define CG_STORE_STORE_LOCAL_H

#include "cg_store.h"

#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

struct cg_buf;

#define CG_STORE_STRIPES 1024
#define CG_STORE_SCHEMA                                                                            \
    4u /* 2: no certs_by_fp index; 3: transactions in a log by start order;                        \
        * 4: no txn_ids database (the index is kept in memory, txnidx.c) */
#define CG_STORE_CERT_KEY_MAX (32 + 32) /* issuer_key || serial */
#define CG_STORE_SEQ_LEN 8              /* big-endian issue counter before a by-user value */
#define CG_STORE_NAME_MAX 511           /* LMDB's default maximum key size */

/* One batch waiting for the committer: a cg_store_commit() call (on the caller's stack; the
 * committer posts `sem`, waking exactly that caller) or a cg_store_commit_async() call
 * (allocated; the committer calls fn and frees it). */
struct pending {
    const struct cg_store_batch *batch;
    int rc;
    cg_store_done_fn fn; /* NULL: a blocked cg_store_commit() caller */
    void *arg;
    sem_t sem;
    struct pending *next;
};

/* A request parked on a busy stripe (cg_store_wait_entity): called when it is released. */
struct stripe_waiter {
    void (*done)(void *arg, int rc);
    void *arg;
    struct stripe_waiter *next;
};

/* An entity lock stripe. Not a bare mutex: the thread that releases it may not be the one
 * that took it (an asynchronous commit is released by the committer). */
struct stripe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy;
    int waiters;                       /* threads blocked in cg_store_lock_entity() */
    struct stripe_waiter *park, *last; /* callbacks of cg_store_wait_entity(), FIFO */
};

/* One entry of the transactionID index (txnidx.c): a keyed hash of the txid (0: empty slot)
 * and the log key of its record. */
struct txnidx_ent {
    uint64_t h;
    uint64_t seq;
};

/* A record the committer's write transaction appended or deleted (txnidx.c). */
struct txnidx_note {
    uint64_t h;
    uint64_t seq;
    int deleted;
};

struct txnidx {
    pthread_mutex_t mu; /* guards slots, cap, n, floor, next */
    int mu_init;
    struct txnidx_ent *slots; /* open addressing, linear probing; cap a power of two */
    size_t cap, n;
    uint64_t floor; /* entries below this log key were dropped (the log was swept past it) */
    uint64_t next;  /* the first log key not read yet */
    uint64_t k0, k1;
    /* committer only: records appended or deleted by the write transaction in progress */
    struct txnidx_note *notes;
    size_t nnotes, notes_cap;
};

struct cg_store {
    MDB_env *env;
    MDB_dbi dbi_entities; /* username → entity record */
    MDB_dbi dbi_certs;    /* issuer_key || serial → cert record */
    MDB_dbi dbi_by_user;  /* username → seq(8, BE) || cert key, DUPSORT */
    MDB_dbi dbi_txn_log;  /* seq(8, BE) → txn record, in the order transactions began */
    MDB_dbi dbi_meta;     /* "schema", "cert_seq", "txn_seq", "health" */
    struct txnidx idx;    /* txid → log key, read from the log (txnidx.c) */

    pthread_mutex_t mu; /* guards head, tail, stopping, backlog, backlog_arg, wait_*, growing,
                         * blocked */
    pthread_cond_t work_cv;
    struct pending *head, *tail;
    int stopping;
    int sync;                  /* commits are synced: space is reserved ahead (reserve_space) */
    off_t reserve_end;         /* committer only: where the reserve being topped up ends, or 0 */
    long commit_delay_us;      /* how long a group may wait to grow (0: never) */
    int (*backlog)(void *arg); /* requests waiting to be processed, or NULL */
    void *backlog_arg;
    void (*wait_begin)(void *arg); /* a thread starts or ends waiting for a busy entity */
    void (*wait_end)(void *arg);
    void *wait_arg;
    int growing;        /* the committer waits for its group to grow: enqueues do not wake it */
    int blocked;        /* a thread waits on the store (a blocking commit, a busy entity lock): the
                         * next group is committed without growing */
    int sync_init;      /* mu and the condvars were initialised */
    int thread_started; /* the committer runs */
    pthread_t committer;

    int stripes_init;
    struct stripe stripes[CG_STORE_STRIPES];
};

/* --- store.c --- */
/** @brief LMDB error → CG_EFULL (MDB_MAP_FULL) or CG_ESTORE; 0 → CG_OK. */
int map_mdb_err_(int mrc);

/* --- store_codec.c: records (decode copies; the input may be a pointer into the map) --- */
int encode_entity_(const struct cg_entity *e, struct cg_buf *out);
int decode_entity_(const void *data, size_t len, struct cg_entity **out);
int encode_cert_(const struct cg_cert_rec *c, struct cg_buf *out);
int decode_cert_(const void *data, size_t len, struct cg_cert_rec **out);
int encode_txn_(const struct cg_txn_rec *t, struct cg_buf *out);
int decode_txn_(const void *data, size_t len, struct cg_txn_rec **out);
/** @brief The txid of an encoded transaction record, pointing into data. @return 0, -1 when
 *  data is no transaction record. */
int txn_txid_peek_(const void *data, size_t len, const uint8_t **txid, size_t *txid_len);
struct cg_cert_rec *cert_rec_dup_(const struct cg_cert_rec *c);
struct cg_txn_rec *txn_rec_dup_(const struct cg_txn_rec *t);
/** @brief Build issuer_key || serial into key (CG_STORE_CERT_KEY_MAX bytes). @return length. */
size_t make_cert_key_(const uint8_t issuer_key[32], const uint8_t *serial, size_t serial_len,
                      uint8_t *key);

/* The big-endian 8-byte form of counters and log keys. */
static inline void set_u64_be_(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t get_u64_be_(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* --- txnidx.c: the transactionID index, in memory, read from the log --- */
int txnidx_init_(struct txnidx *x);
void txnidx_free_(struct txnidx *x);
/** @brief SipHash-2-4 of in[0..n) under the key (k0, k1). */
uint64_t txnidx_siphash_(uint64_t k0, uint64_t k1, const uint8_t *in, size_t n);
/** @brief Index every log record committed since the last call, as txn sees them (a read
 *  transaction, or a write transaction before it appends anything). @return CG_OK,
 *  CG_ENOMEM, CG_ESTORE. */
int txnidx_follow_(struct cg_store *s, MDB_txn *txn);
/** @brief The log key and record of transaction txid in txn, from the table (and, writing:
 *  txn is the committer's write transaction, from the records it appended). @return CG_OK,
 *  CG_ENOTFOUND, CG_ESTORE. */
int txnidx_find_(struct cg_store *s, MDB_txn *txn, int writing, const uint8_t *txid, size_t len,
                 uint64_t *seq, MDB_val *rec);
/** @brief Committer: write transaction txn begins, before it changes anything: the notes of
 *  the last one are forgotten and the log is followed, so that the table holds every committed
 *  record (no other writer can commit while txn holds LMDB's write lock). @return as
 *  txnidx_follow_; on failure txn must not apply transaction records. */
int txnidx_write_begin_(struct cg_store *s, MDB_txn *txn);
/** @brief Committer: the write transaction appended txid's record at log key seq. */
int txnidx_appended_(struct cg_store *s, const uint8_t *txid, size_t len, uint64_t seq);
/** @brief Committer: the write transaction deleted txid's record at log key seq. */
int txnidx_deleted_(struct cg_store *s, const uint8_t *txid, size_t len, uint64_t seq);
/** @brief Committer: how many records the write transaction has appended, to undo a nested
 *  transaction's with txnidx_write_undo_ when it aborts. */
size_t txnidx_write_mark_(struct cg_store *s);
void txnidx_write_undo_(struct cg_store *s, size_t mark);
/** @brief Committer: the write transaction committed; the table takes its appended records in
 *  and drops its deleted ones. */
void txnidx_write_committed_(struct cg_store *s);

/* --- store_batch.c --- */
/** @brief Apply every operation of b, in order, inside txn. @return CG_OK or the first
 *  failing operation's code; on failure the caller aborts txn. */
int apply_batch_(struct cg_store *s, MDB_txn *txn, const struct cg_store_batch *b);
/** @brief Schema 2 → 4, inside txn: move every record of the "txns" database (txid → record)
 *  into the transaction log, in txid order, then drop "txns". CG_OK when there is none;
 *  CG_ESTORE (the caller aborts txn). */
int migrate_txns_(struct cg_store *s, MDB_txn *txn);
/** @brief The record of transaction txid, read in txn (a read transaction): its log key into
 *  seq and its encoding into *rec (valid while txn lives). @return CG_OK, CG_ENOTFOUND,
 *  CG_ESTORE. */
int txn_record_(struct cg_store *s, MDB_txn *txn, const uint8_t *txid, size_t txid_len,
                uint8_t seq[CG_STORE_SEQ_LEN], MDB_val *rec);
/** @brief Append an internal "touch the health key" operation (cg_store_check_writable). */
int batch_add_touch_(struct cg_store_batch *b, int64_t when);

#endif
