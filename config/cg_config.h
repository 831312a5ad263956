/*
 * cg_config.h - the configuration: parsed and validated JSON, as an immutable snapshot.
 *
 * DESIGN: cg_config_load() reads one JSON file with jansson, validates every key (unknown
 * keys are errors, so typos never pass silently), applies defaults, loads CA certificates and
 * keys with OpenSSL, and returns a snapshot nobody modifies afterwards; any number of threads
 * may read it. json_t never leaves config.c. A reload builds a new snapshot; the old one is
 * freed by its owner when no worker holds it any more (reference count).
 * Relative file paths in the JSON are resolved against the directory of the file.
 * Error messages have the form "FILE: PATH: REASON", PATH in dotted form with [i] for
 * array indexes, e.g. "var/demo/cmpgate.json: aliases.opensslra.mode: must be one of client, ra".
 */
#ifndef CG_CONFIG_CG_CONFIG_H
#define CG_CONFIG_CG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>

/* Key-usage bits, as in X509v3 (KU_* of <openssl/x509v3.h>). */
#define CG_KU_DIGITAL_SIGNATURE 0x0080
#define CG_KU_NON_REPUDIATION 0x0040
#define CG_KU_KEY_ENCIPHERMENT 0x0020
#define CG_KU_DATA_ENCIPHERMENT 0x0010
#define CG_KU_KEY_AGREEMENT 0x0008
#define CG_KU_KEY_CERT_SIGN 0x0004
#define CG_KU_CRL_SIGN 0x0002
#define CG_KU_ENCIPHER_ONLY 0x0001
#define CG_KU_DECIPHER_ONLY 0x8000

/* Key algorithm flags for certificate profiles. */
#define CG_KEYALG_RSA 0x1
#define CG_KEYALG_EC 0x2
#define CG_KEYALG_ED25519 0x4
#define CG_KEYALG_ED448 0x8

struct cg_ca {
    char *name;
    char *cert_file;
    char *key_file;
    X509 *cert;             /* the CA certificate */
    EVP_PKEY *key;          /* its private key */
    STACK_OF(X509) * chain; /* issuers above cert (from "chain_file"), may be empty, never NULL */
    char *cmp_ra_secret;    /* NULL when not set */
};

struct cg_external_ca {
    char *name;
    char *cert_file;
    X509 *cert;
};

struct cg_cert_profile {
    char *name;
    int64_t validity_s;     /* "validity": "730d" | "2y" | "12h" | "90m" | "3600s" | "1y6mo" */
    unsigned key_usage;     /* CG_KU_* bits; 0 → no keyUsage extension */
    int key_usage_critical; /* default 1 */
    int *eku_nids;          /* extended_key_usage: names (serverAuth, clientAuth, codeSigning,
                               emailProtection, timeStamping, OCSPSigning) or dotted OIDs */
    size_t n_eku;
    int eku_critical;        /* default 0 */
    unsigned key_algorithms; /* CG_KEYALG_*; default RSA|EC|ED25519 */
    int *rsa_key_sizes;      /* allowed RSA modulus sizes; default 2048, 3072, 4096 */
    size_t n_rsa_key_sizes;
    int *ec_curve_nids; /* allowed EC curves ("P-256"/"prime256v1", "P-384"/"secp384r1",
                           "P-521"/"secp521r1"); default P-256, P-384, P-521 */
    size_t n_ec_curves;
    int allow_validity_override;  /* default 0 */
    int allow_key_usage_override; /* default 0 */
    int allow_extension_override; /* default 0 */
    char **available_cas;         /* names, or NULL = any */
    size_t n_available_cas;
};

struct cg_ee_profile {
    char *name;
    char **required_dn; /* short names ("CN", "O", ...) that must be present */
    size_t n_required_dn;
    char **allowed_dn; /* short names allowed; NULL = any */
    size_t n_allowed_dn;
    char **available_cas; /* NULL = any */
    size_t n_available_cas;
    char **available_cert_profiles; /* NULL = any */
    size_t n_available_cert_profiles;
    char *default_ca;           /* may be NULL */
    char *default_cert_profile; /* may be NULL */
};

enum cg_alias_mode { CG_MODE_CLIENT = 0, CG_MODE_RA = 1 };
enum cg_auth_module { CG_AUTH_REGTOKENPWD = 0, CG_AUTH_DNPARTPWD, CG_AUTH_HMAC, CG_AUTH_EEC };
enum cg_protection { CG_PROT_SIGNATURE = 0, CG_PROT_PBE = 1 };
enum cg_ra_name_scheme { CG_RANAME_DN = 0, CG_RANAME_RANDOM, CG_RANAME_FIXED, CG_RANAME_USERNAME };

#define CG_KEYID "KeyId" /* ra_* value meaning "take it from senderKID" */

struct cg_alias {
    char *name;
    int mode;           /* enum cg_alias_mode; default client */
    int *auth_modules;  /* enum cg_auth_module, in order; default [HMAC] */
    char **auth_params; /* one per module, NULL entries when empty */
    size_t n_auth;
    char *extract_username_component; /* "DN" (default), "CN", "UID", or any DN attribute */
    int response_protection;          /* enum cg_protection; default signature */
    int allow_ra_verify_popo;         /* default 0 */
    int ra_name_scheme;               /* enum cg_ra_name_scheme; default DN */
    char *ra_name_params;   /* DN: attribute(s) "CN" / "UID;CN"; FIXED: the name; default "CN" */
    char *ra_name_prefix;   /* may be NULL */
    char *ra_ee_profile;    /* name or "KeyId"; default "EMPTY" */
    char *ra_cert_profile;  /* name or "KeyId"; default "ENDUSER" */
    char *ra_ca_name;       /* name or "KeyId"; default: the first CA */
    char **response_capubs; /* CA names (cas or external_cas) added after the issuing CA */
    size_t n_response_capubs;
    char **response_extracerts; /* CA names added after the signing chain */
    size_t n_response_extracerts;
    int allow_automatic_key_update;
    int allow_update_with_same_key;
    int allow_server_generated_keys;
    int vendor_certificate_mode;
    char **vendor_cas;
    size_t n_vendor_cas;
    char *certificate_confirmation_default_ca;
    char *nested_message_trusted_certs_path;
    int revoke_unconfirmed; /* default 0 */
    int proxy;              /* 1 when a "proxy" object is given (proxy mode, refused) */
    int confirm_timeout_s;  /* default 300 */
};

struct cg_admin {
    char *subject;
    uint8_t fingerprint[32];
    int has_fingerprint;
    char *ca;
    char **ee_profiles; /* "*" allowed */
    size_t n_ee_profiles;
    char **operations;
    size_t n_operations;
};

struct cg_config {
    char *file; /* path as given */
    char *dir;  /* directory of file */
    char **listen_http;
    size_t n_listen_http;
    char **listen_tcp;
    size_t n_listen_tcp;
    char **listen_admin;
    size_t n_listen_admin;
    int workers;             /* 0 → number of online CPUs */
    int queue_depth;         /* default 1024 */
    size_t max_body_bytes;   /* limits.max_body_bytes, default 1048576 */
    size_t max_header_bytes; /* limits.max_header_bytes, default 16384 */
    int idle_timeout_s;      /* default 60 */
    int read_timeout_s;      /* default 30 */
    int max_connections;     /* default 4096 */
    long max_pbm_iterations; /* default 100000 */
    int max_der_depth;       /* limits.max_der_depth: constructed nesting, default 32 */
    int max_extra_certs;     /* limits.max_extra_certs: certificates in extraCerts, default 10 */
    size_t max_cert_bytes;   /* limits.max_cert_bytes: one extraCerts certificate, default 16384 */
    int64_t transaction_ttl_s; /* limits.transaction_ttl_s: closed transactions kept, default 7 d */
    int nonce_window_s;        /* limits.nonce_window_s: senderNonce replay window, default 600 */
    char *store_path;          /* resolved; default DIR/store */
    size_t store_map_size_mb;  /* default 1024 */
    int store_sync;            /* default 1 */
    long store_commit_delay_us; /* default 2000: how long a commit group may wait to grow */
    struct cg_ca *cas;
    size_t n_cas;
    struct cg_external_ca *external_cas;
    size_t n_external_cas;
    struct cg_cert_profile *cert_profiles;
    size_t n_cert_profiles;
    struct cg_ee_profile *ee_profiles;
    size_t n_ee_profiles;
    struct cg_alias *aliases;
    size_t n_aliases;
    struct cg_admin *administrators;
    size_t n_administrators;
    char *http_root_alias; /* NULL when unset */
    char *tcp_alias;       /* default "tcp" */
    int log_level;         /* cg_log levels; default info */
    int log_json;          /* log.format "json" → 1, "text" (default) → 0 */
};

/** @brief Load and validate path. @param[out] out new snapshot (refcount 1), NULL on error.
 *  @param[out] err one-line message "FILE: PATH: REASON" on failure.
 *  @return CG_OK, CG_ECONFIG (invalid), CG_EIO (unreadable file), CG_ENOMEM. */
int cg_config_load(const char *path, struct cg_config **out, char *err, size_t errlen);
/** @brief Take a reference (thread-safe). @return cfg. */
struct cg_config *cg_config_ref(struct cg_config *cfg);
/** @brief Drop a reference; frees at zero. NULL is a no-op. Thread-safe. */
void cg_config_unref(struct cg_config *cfg);

/* Lookups by name; borrowed pointers valid as long as the snapshot. NULL when absent. */
const struct cg_alias *cg_config_alias(const struct cg_config *cfg, const char *name);
const struct cg_ca *cg_config_ca(const struct cg_config *cfg, const char *name);
const struct cg_external_ca *cg_config_external_ca(const struct cg_config *cfg, const char *name);
const struct cg_cert_profile *cg_config_cert_profile(const struct cg_config *cfg, const char *name);
const struct cg_ee_profile *cg_config_ee_profile(const struct cg_config *cfg, const char *name);

#endif
