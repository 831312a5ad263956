/*
 * cg_store.h - the durable store: end entities, certificates, open CMP transactions.
 *
 * DESIGN: one LMDB environment per process (several processes may open the same path:
 * `serve` and the admin commands). Reads run in short read-only transactions, one per call.
 * Writes are collected into a batch by the caller and handed to cg_store_commit(), which
 * blocks until a single committer thread has applied the batch (inside a nested LMDB
 * transaction, so one failing batch never spoils the others) and the enclosing write
 * transaction has been committed and synced: group commit, one fsync for many batches.
 * No caller reports a write to a client before cg_store_commit() returned CG_OK.
 * cg_store_commit_async() queues the same way without blocking and calls back from the
 * committer thread once the group is durable (or failed), so a worker thread can go on with
 * the next request while the disk syncs.
 *
 * Per-entity serialization: cg_store_lock_entity() takes a lock stripe hashed from the
 * username, so every read-check-issue-write sequence for one end entity runs alone while
 * other entities proceed in parallel. Any thread may release a stripe (the committer
 * releases the stripe of an asynchronous commit after it is durable). Entity records carry a
 * version bumped by every write; a put with an expected version fails with CG_ECONFLICT if the
 * record changed.
 *
 * The store knows records, not CMP: keys such as the issuer hash and the fingerprint are
 * computed by the caller. Only LMDB and libc are used here.
 *
 * Thread-safety: every function may be called from any thread, except cg_store_close().
 */
#ifndef CG_STORE_CG_STORE_H
#define CG_STORE_CG_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cg_store;
struct cg_store_batch;

/* A synced store keeps this many bytes of zeros written ahead of its last page (within the
 * map), and tops them up when fewer than half are left, at most CG_STORE_RESERVE_STEP per
 * commit group: a commit then overwrites blocks the file has and its sync writes no
 * file-system metadata beyond the inode's times. */
#define CG_STORE_RESERVE ((off_t)8 << 20)
#define CG_STORE_RESERVE_STEP ((off_t)1 << 20)

struct cg_store_opts {
    const char *path;     /* directory; created 0700 if missing */
    size_t map_size_mb;   /* LMDB map size; 0 → 1024 */
    int sync;             /* 1: fsync every commit (durable, default); 0: no sync */
    long commit_delay_us; /* while requests wait for or run on a worker (cg_store_set_backlog), a
                           * commit group may wait this long for their writes; 0: commit at once */
};

/* EJBCA end entity status numbers. */
enum cg_entity_status {
    CG_EE_NEW = 10,
    CG_EE_FAILED = 11,
    CG_EE_INITIALIZED = 20,
    CG_EE_INPROCESS = 30,
    CG_EE_GENERATED = 40,
    CG_EE_REVOKED = 50,
    CG_EE_HISTORICAL = 60,
    CG_EE_KEYRECOVERY = 70,
};

#define CG_ENTITY_RA_CREATED 0x1u /* created by an RA-mode request */

/* An end entity. All strings are NUL-terminated heap copies owned by the record, or NULL. */
struct cg_entity {
    char *username;
    char *subject_dn;  /* RFC 4514-ish text, as printed by the CA */
    char *subject_alt; /* comma-separated GeneralNames text, or NULL */
    char *ca;          /* CA name */
    char *ee_profile;
    char *cert_profile;
    char *password;   /* clear-text enrollment code, NULL when none */
    char *token_type; /* "USERGENERATED", ... */
    int status;       /* enum cg_entity_status */
    uint32_t flags;   /* CG_ENTITY_* */
    int64_t created;  /* unix seconds */
    int64_t modified;
    uint64_t version; /* set by the store: 1 on creation, +1 on each write */
};

#define CG_CERT_ACTIVE 0
#define CG_CERT_REVOKED 1

/* A certificate. Primary key: issuer_key || serial. */
struct cg_cert_rec {
    uint8_t issuer_key[32];  /* SHA-256 of the DER issuer name */
    uint8_t serial[32];      /* big-endian magnitude, no leading zero byte */
    size_t serial_len;       /* 1..32 */
    uint8_t fingerprint[32]; /* SHA-256 of the DER certificate */
    char *username;
    char *ca;      /* CA name */
    char *subject; /* text */
    char *issuer;  /* text */
    uint8_t *der;  /* the certificate */
    size_t der_len;
    int status; /* CG_CERT_ACTIVE | CG_CERT_REVOKED */
    int reason; /* CRL reason code when revoked, -1 unspecified */
    int64_t issued_at;
    int64_t not_after;
    int64_t revoked_at; /* 0 while active */
};

/* Transaction states. */
#define CG_TXN_OPEN 1      /* response sent, certConf awaited */
#define CG_TXN_CONFIRMED 2 /* certConf accepted (or implicitConfirm) */
#define CG_TXN_REJECTED 3  /* certConf rejected the certificate */
#define CG_TXN_CLOSED 4    /* finished without certificate (rr, error) */

/* An open or finished CMP transaction, keyed by transactionID. */
struct cg_txn_rec {
    uint8_t txid[64];
    size_t txid_len; /* 1..64 */
    int state;       /* CG_TXN_* */
    int64_t created; /* unix seconds */
    int64_t updated;
    char *alias;
    char *username;    /* NULL when none */
    uint8_t nonce[16]; /* our senderNonce in the last response */
    size_t nonce_len;
    int body_type;          /* body type of the request that opened it */
    int64_t cert_req_id;    /* of the issued certificate, when any */
    uint8_t issuer_key[32]; /* of the issued certificate, when any */
    uint8_t serial[32];
    size_t serial_len;     /* 0 when no certificate */
    uint8_t cert_hash[64]; /* hash of the issued certificate (digest of its sig alg) */
    size_t cert_hash_len;
    char *secret; /* client mode: the enrollment code that authenticated the request, kept only
                     until the transaction closes (certConf is MAC'd with it after the
                     entity's copy was consumed); NULL otherwise */
};

/** @brief Open (creating if needed) the store and start its committer thread.
 *  @param[out] out new store, NULL on failure.
 *  @return CG_OK, CG_EIO (directory), CG_ESTORE (LMDB). */
int cg_store_open(const struct cg_store_opts *opts, struct cg_store **out);
/** @brief Wait for queued commits to finish, stop the committer, close LMDB. NULL is a no-op.
 *  Must not race with other calls on the same store. */
void cg_store_close(struct cg_store *s);
/** @brief Cheap check that a write transaction can be opened and committed (for /healthz).
 *  @return CG_OK or CG_ESTORE. */
int cg_store_check_writable(struct cg_store *s);
/** @brief Tell the committer where to learn how many requests wait to be processed (each
 *  may write soon). While backlog(arg) > 0, a commit group waits up to the commit delay for
 *  more batches: one fsync then serves more of them. backlog runs on the committer thread
 *  and must not call into the store. Call cg_store_backlog_drained() when it drops to 0. */
void cg_store_set_backlog(struct cg_store *s, int (*backlog)(void *arg), void *arg);
/** @brief Have begin(arg) called when a thread starts to wait in cg_store_lock_entity() for a
 *  busy entity, and end(arg) when it has the lock: such a thread writes nothing until a
 *  commit releases the entity, so the backlog should not count it meanwhile. begin runs
 *  with the entity's stripe locked and may call cg_store_backlog_drained(). NULLs: none. */
void cg_store_set_wait_hooks(struct cg_store *s, void (*begin)(void *arg), void (*end)(void *arg),
                             void *arg);
/** @brief The backlog has run dry: a group waiting to grow is committed now. Any thread. */
void cg_store_backlog_drained(struct cg_store *s);

/* --- per-entity serialization --------------------------------------------------------- */
/** @brief Lock the stripe of username (blocking). Never fails. Not recursive. */
void cg_store_lock_entity(struct cg_store *s, const char *username);
/** @brief Release the stripe of username; any thread may call it, not only the locker. */
void cg_store_unlock_entity(struct cg_store *s, const char *username);
/** @brief Take the stripe of username if it is free. @return 1 when taken, 0 when busy. */
int cg_store_trylock_entity(struct cg_store *s, const char *username);
/** @brief When the stripe of username is busy, have done(arg, CG_OK) called once after it is
 *  next released (on the releasing thread, after the release; done must not block).
 *  @return CG_OK (registered), CG_EALREADY (the stripe is free now: nothing registered, try
 *  again at once), CG_ENOMEM. */
int cg_store_wait_entity(struct cg_store *s, const char *username, void (*done)(void *, int),
                         void *arg);
/** @brief A request woken by cg_store_wait_entity() that ended without taking the lock (it
 *  failed before, say) passes the turn on: when the stripe is free, its oldest waiter is
 *  called as a release would. Harmless when the stripe is busy or nobody waits. */
void cg_store_kick_entity(struct cg_store *s, const char *username);

/* --- records ----------------------------------------------------------------------------- */
struct cg_entity *cg_entity_new(void);
void cg_entity_free(struct cg_entity *e);
/** @return new deep copy or NULL. */
struct cg_entity *cg_entity_dup(const struct cg_entity *e);
struct cg_cert_rec *cg_cert_rec_new(void);
void cg_cert_rec_free(struct cg_cert_rec *c);
struct cg_txn_rec *cg_txn_rec_new(void);
void cg_txn_rec_free(struct cg_txn_rec *t);

/* --- reads (each in its own read transaction; results are new copies) --------------- */
/** @return CG_OK, CG_ENOTFOUND, CG_ESTORE, CG_ENOMEM. */
int cg_store_get_entity(struct cg_store *s, const char *username, struct cg_entity **out);
int cg_store_get_cert(struct cg_store *s, const uint8_t issuer_key[32], const uint8_t *serial,
                      size_t serial_len, struct cg_cert_rec **out);
/** @brief Find by serial alone (any issuer); CG_EEXIST if two issuers share it. */
int cg_store_find_cert_by_serial(struct cg_store *s, const uint8_t *serial, size_t serial_len,
                                 struct cg_cert_rec **out);
/** @brief The certificate issuer_key || serial if its SHA-256 fingerprint is fp: CG_ENOTFOUND
 *  when there is none or it is another certificate (same issuer name and serial). */
int cg_store_get_cert_fp(struct cg_store *s, const uint8_t issuer_key[32], const uint8_t *serial,
                         size_t serial_len, const uint8_t fp[32], struct cg_cert_rec **out);
int cg_store_get_txn(struct cg_store *s, const uint8_t *txid, size_t txid_len,
                     struct cg_txn_rec **out);

/** Iteration callbacks get a borrowed record valid only during the call; return nonzero
 *  to stop early (the iteration then returns CG_OK). */
typedef int (*cg_store_entity_cb)(const struct cg_entity *e, void *arg);
typedef int (*cg_store_cert_cb)(const struct cg_cert_rec *c, void *arg);
/** @brief All entities in username order. */
int cg_store_list_entities(struct cg_store *s, cg_store_entity_cb cb, void *arg);
/** @brief Certificates of username (issue order), or all certificates when username is NULL. */
int cg_store_list_certs(struct cg_store *s, const char *username, cg_store_cert_cb cb, void *arg);
typedef int (*cg_store_txn_cb)(const struct cg_txn_rec *t, void *arg);
/** @brief All transactions in the order they began (one read transaction: keep cb short and
 *  do not write from it; collect, then act). */
int cg_store_list_txns(struct cg_store *s, cg_store_txn_cb cb, void *arg);
typedef int (*cg_store_txn_key_cb)(const struct cg_txn_rec *t, uint64_t key, void *arg);
/** @brief The transactions whose log key is from or more, in the order they began; cb also gets
 *  each one's key (increasing; a new transaction's key is above every existing one) and ends
 *  the walk by returning nonzero. One read transaction, as cg_store_list_txns. */
int cg_store_walk_txns(struct cg_store *s, uint64_t from, cg_store_txn_key_cb cb, void *arg);
/** @brief Number of certificates of username (0 if none). */
int cg_store_count_certs(struct cg_store *s, const char *username, size_t *count);

/* --- writes ----------------------------------------------------------------------------- */
#define CG_VERSION_ANY UINT64_MAX /* put: overwrite whatever is there */
#define CG_VERSION_NONE 0         /* put: the record must not exist yet */

/** @brief New empty batch. @return new or NULL. */
struct cg_store_batch *cg_store_batch_new(void);
void cg_store_batch_free(struct cg_store_batch *b);
/** Each add copies its arguments into the batch; the record pointers stay the caller's.
 *  Adds only fail with CG_ENOMEM (or CG_EINVAL for bad arguments). */
/** @brief Insert or replace an entity. expect_version: CG_VERSION_NONE (must not exist →
 *  else CG_EEXIST), CG_VERSION_ANY, or the version read earlier (else CG_ECONFLICT).
 *  The stored version becomes old+1 (1 for a new record); created is kept from the old record. */
int cg_store_batch_put_entity(struct cg_store_batch *b, const struct cg_entity *e,
                              uint64_t expect_version);
/** @brief Delete an entity (CG_ENOTFOUND at commit if missing). Its certificates stay. */
int cg_store_batch_del_entity(struct cg_store_batch *b, const char *username);
/** @brief Insert a new certificate (CG_EEXIST at commit if issuer_key+serial is taken).
 *  Maintains the by-username index. */
int cg_store_batch_add_cert(struct cg_store_batch *b, const struct cg_cert_rec *c);
/** @brief Mark a certificate revoked: CG_ENOTFOUND if absent, CG_EALREADY if already revoked. */
int cg_store_batch_revoke_cert(struct cg_store_batch *b, const uint8_t issuer_key[32],
                               const uint8_t *serial, size_t serial_len, int reason, int64_t when);
/** @brief Insert a transaction; must_be_new → CG_EEXIST at commit if the txid exists. */
int cg_store_batch_put_txn(struct cg_store_batch *b, const struct cg_txn_rec *t, int must_be_new);
/** @brief Change a transaction's state only if it is currently from_state (else CG_ECONFLICT,
 *  CG_ENOTFOUND if absent); sets updated = when; leaving CG_TXN_OPEN drops the secret. */
int cg_store_batch_set_txn_state(struct cg_store_batch *b, const uint8_t *txid, size_t txid_len,
                                 int from_state, int to_state, int64_t when);

/** @brief Delete a finished transaction (expiry): CG_ECONFLICT while it is CG_TXN_OPEN,
 *  CG_ENOTFOUND if absent. */
int cg_store_batch_del_txn(struct cg_store_batch *b, const uint8_t *txid, size_t txid_len);

/** @brief Apply the batch atomically (all of it or none) and return once it is durable.
 *  @return CG_OK, or the first failing operation's code (CG_EEXIST, CG_ECONFLICT,
 *  CG_ENOTFOUND, CG_EALREADY), CG_EFULL (map full), CG_ESTORE, CG_ECLOSED.
 *  The batch is not consumed: free it afterwards. */
int cg_store_commit(struct cg_store *s, struct cg_store_batch *b);

/** @brief Called on the committer thread with what cg_store_commit() would have returned.
 *  It must not block on the store (no cg_store_commit(), no waiting for an entity lock). */
typedef void (*cg_store_done_fn)(void *arg, int rc);
/** @brief Queue the batch like cg_store_commit() and return at once; done(arg, rc) runs on
 *  the committer thread after the batch's group is durable or failed. The batch must stay
 *  alive and unchanged until then (done may free it).
 *  @return CG_OK (done will run exactly once), CG_EINVAL, CG_ENOMEM or CG_ECLOSED (done will
 *  not run). */
int cg_store_commit_async(struct cg_store *s, struct cg_store_batch *b, cg_store_done_fn done,
                          void *arg);

#endif
