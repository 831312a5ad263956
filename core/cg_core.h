/*
 * cg_core.h - the CMP engine: request bytes in, response bytes out.
 *
 * DESIGN: cg_core_process() is a pure function of (configuration snapshot, store, request
 * DER) → response DER; it has no sockets and no libevent, so unit tests and fuzzers call it
 * directly. Any number of worker threads may call it at once on one struct cg_core: the
 * configuration is immutable, the store serializes per end entity, and all per-message state
 * lives on the stack or in the store (keyed by transactionID), never in the core object.
 * A CMP rejection is a result (an error message or a rejecting ip/cp/rp), not a failure:
 * cg_core_process returns CG_OK whenever it produced response bytes.
 */
#ifndef CG_CORE_CG_CORE_H
#define CG_CORE_CG_CORE_H

#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

struct cg_config;
struct cg_store;
struct cg_core;
struct cg_core_pending;

/* What one processed message produced, for the response and the log line. */
struct cg_core_result {
    int http_status; /* 200 for every CMP answer; 400 for a body that is not DER */
    uint8_t *der;    /* new (free()), the response PKIMessage; NULL when http_status != 200 */
    size_t der_len;
    char body_type[16];              /* request body type name ("ir", "certConf", ...) or "-" */
    char txid[80];                   /* hex transactionID or "-" */
    char outcome[48];                /* "accepted", "pkiConf", "revoked", or the failInfo name */
    char username[256];              /* end entity, or "" */
    char serial[80];                 /* hex serial of the certificate issued or revoked, or "" */
    char detail[256];                /* human-readable reason of a rejection, or "" */
    struct cg_core_pending *pending; /* CG_CORE_DEFER: the write to commit before sending */
    /* CG_CORE_DEFER: the message was not processed because its end entity's lock was busy
     * (no answer); run it again with CG_CORE_DEFER | CG_CORE_REDO once cg_core_wait_entity()
     * calls back. "" otherwise. */
    char wait_entity[256];
};

/** @brief Route OpenSSL's allocations through per-thread caches of free blocks (mem.c); call
 *  before anything of OpenSSL runs. @p cache 0 keeps the block headers but caches nothing (for
 *  AddressSanitizer builds). @return 0, or -1 when OpenSSL has already allocated (it then
 *  keeps its own malloc and free). */
int cg_mem_install(int cache);

/** @brief New engine over cfg and store (both borrowed; they must outlive the engine).
 *  @return CG_OK, CG_ENOMEM. */
int cg_core_new(const struct cg_config *cfg, struct cg_store *store, struct cg_core **out);
void cg_core_free(struct cg_core *core);

/** @brief Process one CMP request received on alias (which must exist in the config).
 *  @param op RFC 9811 operation segment or NULL (a body contradicting it → badRequest).
 *  @param[out] res filled in; res->der is new.
 *  @return CG_OK when res holds an answer (CMP success or rejection, or http_status 400);
 *  CG_ENOMEM / CG_EINTERNAL when no answer could be built (the transport then answers 500).
 *  Thread-safe. */
int cg_core_process(struct cg_core *core, const char *alias, const char *op, const uint8_t *der,
                    size_t len, struct cg_core_result *res);

/* Flags of cg_core_process_ex(). */
#define CG_CORE_DEFER 1u /* the durable write may be left to the caller in res->pending */
/* the same bytes again (after their deferred write failed, or after waiting for a busy
 * entity): the first run already recorded the senderNonce (no replay check) */
#define CG_CORE_REDO 2u

/** @brief cg_core_process() with flags. With CG_CORE_DEFER, an ir/cr/p10cr/kur or certConf
 *  does not wait for its store write: res->pending holds the write (and the end entity's
 *  lock), and res->der is the answer to send once cg_core_commit() reports it durable.
 *  Without the flag, res->pending is always NULL. */
int cg_core_process_ex(struct cg_core *core, const char *alias, const char *op, const uint8_t *der,
                       size_t len, unsigned flags, struct cg_core_result *res);
/** @brief Called on the store's committer thread: rc CG_OK means the write is durable and
 *  res->der may be sent; any other rc means nothing was written and res->der must not be
 *  sent: process the same bytes again with CG_CORE_REDO (synchronously), which answers as
 *  the store's state now requires. The entity lock is already released. Must not block. */
typedef void (*cg_core_done_fn)(void *arg, int rc);
/** @brief Hand res->pending to the store's committer (res->pending becomes NULL).
 *  @return CG_OK (done will run once) or the store's refusal (CG_ECLOSED, CG_ENOMEM: done
 *  will not run; nothing was written; process again with CG_CORE_REDO). */
int cg_core_commit(struct cg_core_result *res, cg_core_done_fn done, void *arg);
/** @brief res->wait_entity: have done(arg, CG_OK) called (on the thread that releases the
 *  lock, which must not block in it) once the entity's lock is released.
 *  @return CG_OK (registered), CG_EALREADY (free now: run again at once), CG_ENOMEM. */
int cg_core_wait_entity(struct cg_core *core, const struct cg_core_result *res,
                        void (*done)(void *arg, int rc), void *arg);
/** @brief After a run that followed a wait for username's lock and did not wait again:
 *  let the next waiter try (the run may have ended before taking the lock, and then no
 *  release would ever wake it). */
void cg_core_waited(struct cg_core *core, const char *username);
/** @brief Release res->der, and res->pending unwritten (its entity lock too). */
void cg_core_result_clear(struct cg_core_result *res);

/** @brief Revoke the certificates whose certConf did not arrive within the alias's
 *  confirm_timeout_s (aliases with revoke_unconfirmed; on others the transaction closes), and
 *  delete finished transaction records older than limits.transaction_ttl_s. Reads only the
 *  transactions begun since the oldest one this core has seen open (see core.c). Called
 *  periodically by the daemon from a worker thread. @param[out] revoked how many were revoked.
 *  @return CG_OK or a store error. Thread-safe. */
int cg_core_sweep(struct cg_core *core, int64_t now, int *revoked);
/** @brief How many transaction records the last sweep looked at (the sweep reads what began
 *  since the oldest transaction still open, and the expired ones). */
size_t cg_core_sweep_examined(const struct cg_core *core);
/** @brief What deriving a request's PBM key needs, read from its DER without processing it
 *  (cg_core_pbm_hint); a copy, valid after the request is gone. */
struct cg_pbm_hint {
    int owf_nid;
    int64_t iter;
    size_t saltlen;
    uint8_t salt[64];
    char secret[256];
};
/** @brief For a request to an RA-mode alias that authenticates with HMAC: its PBM parameters
 *  and the shared secret its check will use, when the request opens a transaction (not a
 *  certConf or pollReq, which reuse the key of the message before). Cheap: the DER is walked,
 *  not decoded. @return 1 and *h filled, or 0. Thread-safe. */
int cg_core_pbm_hint(const struct cg_core *core, const char *alias, const uint8_t *der, size_t len,
                     struct cg_pbm_hint *h);
/** @brief Derive the keys of two hints side by side into the process-wide key cache, where
 *  their requests' checks find them (two keys on the CPU's SHA extensions cost about 1.35
 *  one). Nothing happens unless both keys are missing and SHA-256. @return keys derived (0 or 2).
 */
int cg_core_pbm_prefetch(const struct cg_pbm_hint *a, const struct cg_pbm_hint *b);
/** @brief Keys derived in pairs by cg_core_pbm_prefetch since the start (process-wide). */
unsigned long cg_core_pbm_paired(void);
/** @brief Seconds between sweeps (always > 0). */
int cg_core_sweep_interval(const struct cg_core *core);

/** @brief Refuse configurations that ask for what this version of the engine does not do
 *  (so nothing is silently ignored). @param[out] err "FILE: PATH: REASON".
 *  @return CG_OK or CG_ECONFIG. */
int cg_core_check_config(const struct cg_config *cfg, char *err, size_t errlen);

/** @brief name as the CA stores and prints subjects: "CN=a,O=b,C=c" in DER order, short
 *  attribute names, RFC 2253 escaping, UTF-8 kept. @return new (OPENSSL_free) or NULL. */
char *cg_core_dn_text(const X509_NAME *name);

/** @brief 1 if der[0..len) is exactly one well-formed DER TLV (tag, definite length, no
 *  trailing bytes). Cheap; used by the gateway to answer 400 before queueing. */
int cg_core_is_der(const uint8_t *der, size_t len);

#endif
