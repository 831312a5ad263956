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

/* What one processed message produced, for the response and the log line. */
struct cg_core_result {
    int http_status; /* 200 for every CMP answer; 400 for a body that is not DER */
    uint8_t *der;    /* new (free()), the response PKIMessage; NULL when http_status != 200 */
    size_t der_len;
    char body_type[16]; /* request body type name ("ir", "certConf", ...) or "-" */
    char txid[80];      /* hex transactionID or "-" */
    char outcome[48];   /* "accepted", "pkiConf", "revoked", or the failInfo name */
    char username[256]; /* end entity, or "" */
    char serial[80];    /* hex serial of the certificate issued or revoked, or "" */
    char detail[256];   /* human-readable reason of a rejection, or "" */
};

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
/** @brief Release res->der. */
void cg_core_result_clear(struct cg_core_result *res);

/** @brief Revoke the certificates whose certConf did not arrive within the alias's
 *  confirm_timeout_s (aliases with revoke_unconfirmed), and delete finished transaction
 *  records older than limits.transaction_ttl_s. Called periodically by the daemon from a
 *  worker thread. @param[out] revoked how many were revoked.
 *  @return CG_OK or a store error. Thread-safe. */
int cg_core_sweep(struct cg_core *core, int64_t now, int *revoked);
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
