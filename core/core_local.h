/*
 * core_local.h - declarations shared between the files of core/. Never included from
 * outside core/.
 */
#ifndef CG_CORE_CORE_LOCAL_H
#define CG_CORE_CORE_LOCAL_H

#include "cg_config.h"
#include "cg_store.h"
#include "cmp_asn.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <time.h>

struct cg_buf;      /* cg_buf.h */
struct nonce_cache; /* core.c: recently seen senderNonces */

struct cg_core {
    const struct cg_config *cfg;
    struct cg_store *store;
    struct nonce_cache *nonces;
    /* per alias (same index as cfg->aliases), built once at start: trust anchors for vendor
     * certificates and for the signers of nested messages; NULL when the alias has none */
    X509_STORE **vendor_stores;
    X509_STORE **nested_stores;
    /* per CA (same index as cfg->cas), and an empty one: the sender names of responses,
     * encoded once and lent to every response (see response_new) */
    ASN1_STRING **ca_names; /* each CA's subject, an encoded GeneralName (CG_GENNAME_RAW) */
    ASN1_STRING *no_name;   /* NULL-DN, likewise */
    /* per CA: its signing set-up (issue.c): a context initialised once with its key, copied
     * for each signature (OpenSSL's per-signature set-up costs a third of an ECDSA signature),
     * and the encoded parts of its certificates; NULL when the key cannot sign */
    struct ca_signer **ca_signers;
    /* per certificate profile (same index as cfg->cert_profiles): its extensions, encoded */
    struct ca_exts **profile_exts;
    /* the sweep (core.c): the log key of the oldest transaction that may still be open, and how
     * many records the last sweep looked at; atomic accesses */
    uint64_t sweep_from;
    size_t sweep_examined;
};

/** @brief The alias's index in cfg->aliases. */
size_t core_alias_index_(const struct cg_core *core, const struct cg_alias *alias);
/** @brief Verify cert against store (anchors may be intermediates), with untrusted helpers.
 *  @return 1 when it chains and is valid now; else 0 with the reason in why. */
int core_verify_chain_(X509_STORE *store, X509 *cert, STACK_OF(X509) * untrusted, char *why,
                       size_t n);

#define NONCE_LEN 16

/* The PBM base key of one request, derived once and reused for the response (same salt,
 * iteration count, one-way function and secret). Keyed by the pointers given. */
struct pbm_cache {
    const X509_ALGOR *alg;
    const char *secret;
    unsigned char key[EVP_MAX_MD_SIZE];
    unsigned keylen;
    int mac_nid; /* the MAC algorithm of those parameters */
    int valid;
};

/* What authentication established about a message (auth.c). */
struct auth_state {
    int module;             /* enum cg_auth_module that accepted the message, or -1 */
    const char *mac_secret; /* the PBM secret that verified the message, or NULL */
    char user[256];         /* client mode: the end entity authenticated ("" in RA mode) */
    char *code;             /* client mode: the enrollment code presented (new), to be
                               consumed atomically on issuance; NULL for certificates */
    X509 *signer;           /* EndEntityCertificate: the signer (borrowed from extraCerts) */
    struct cg_cert_rec *signer_rec; /* its store record (new) */
    const struct cg_admin *admin;   /* RA mode EndEntityCertificate: the administrator */
    const char *dn_pwd_attr;        /* DnPartPwd: the DN attribute carrying the password */
    int vendor;                     /* the signer is a device certificate of a vendor CA */
    struct pbm_cache pbm;           /* the request's PBM key, reused for the response */
};

/* Everything about one message being processed. Lives on the worker's stack. */
struct msgctx {
    struct cg_core *core;
    const struct cg_config *cfg;
    const struct cg_alias *alias;
    const char *op;
    CG_PKIMESSAGE *req;
    CG_PKIMESSAGE *resp; /* response built by a handler, protected at the exit */
    struct cg_core_result *res;
    uint8_t *part; /* new: ProtectedPart bytes of the received message, or NULL */
    size_t part_len;
    unsigned char *resp_part; /* new: ProtectedPart DER of the PBM-protected response, or NULL */
    int resp_part_len;
    const struct cg_ca *ca;   /* the CA answering: issuing, revoking or default */
    uint8_t nonce[NONCE_LEN]; /* our senderNonce in the response */
    int implicit_confirm;     /* granted in this response */
    char extracted[256];      /* username from the requested subject (extract_username_component) */
    struct cg_txn_rec *txn;   /* certConf: the transaction it confirms (new), or NULL */
    struct auth_state auth;
    int nested_ok;                   /* inside a nested message whose outer signature verified */
    int defer;                       /* CG_CORE_DEFER at depth 0: leave the write in `pending` */
    int redo;                        /* CG_CORE_REDO: the senderNonce is already recorded */
    struct cg_core_pending *pending; /* the deferred write, or NULL */
    char detail[256];
};

/* --- core.c helpers shared with auth.c ------------------------------------------------- */
void hex_(const uint8_t *p, size_t n, char *out, size_t outlen);
/** @brief Set the rejection text (fmt has at most one %s, filled with arg). */
void set_detail_(struct msgctx *ctx, const char *fmt, const char *arg);
/** @brief senderKID as a C string into out. @return 1 if present and printable. */
int sender_kid_text_(const struct msgctx *ctx, char *out, size_t n);
const char *body_name_(int type);

/* --- auth.c ----------------------------------------------------------------------------- */
struct dn_ref; /* dn.c */
/** @brief Try the alias's modules in order until one accepts the message (ctx->auth filled).
 *  @return CG_OK or the CG_ECMP_* code of the most relevant failure, with ctx->detail. */
int auth_authenticate_(struct msgctx *ctx);
/** @brief Release what ctx->auth owns. */
void auth_clear_(struct auth_state *a);
/** @brief RA mode with EndEntityCertificate: may the administrator do op (body name) for
 *  end entity profile ep? 1 when no administrator is involved (HMAC) or it is allowed. */
int auth_admin_allows_(const struct msgctx *ctx, const char *op, const char *ep);
/** @brief Username of subject by component ("DN" → the whole DN text). */
int auth_extract_username_(const struct dn_ref *subject, const char *component, char *out,
                           size_t n);

/* --- dn.c ------------------------------------------------------------------------------- */
/* A distinguished name, borrowed: decoded (name), or as the DER of the whole Name (der, len)
 * that dn_der_check_() accepted. A requested subject stays in its DER: decoding it into an
 * X509_NAME (which also builds its canonical form) took 40 allocations and half the decoding
 * of an ir. Both read the same way through dn_iter. */
struct dn_ref {
    const X509_NAME *name;
    const unsigned char *der;
    size_t len;
};
/* One attribute of a name: its NID (NID_undef when OpenSSL does not know the OID), the index
 * of its RDN, and its value's ASN.1 string type and contents. */
struct dn_attr {
    int nid;
    int set;
    int type;
    const unsigned char *val;
    int len;
};
struct dn_iter {
    struct dn_ref ref;
    int i;                                  /* name: the next entry */
    const unsigned char *p, *set_end, *end; /* der: where the next attribute, its RDN and the
                                             * name end */
    int set;
    int bad;
};
/** @brief 1 when ref holds a name (either form). */
int dn_present_(const struct dn_ref *ref);
/** @brief 1 when a and b refer to the same name object or bytes. */
int dn_same_(const struct dn_ref *a, const struct dn_ref *b);
void dn_iter_init_(struct dn_iter *it, const struct dn_ref *ref);
/** @brief 1 with *a the next attribute, 0 after the last, -1 when the DER is not one
 *  dn_der_check_() accepts. */
int dn_iter_next_(struct dn_iter *it, struct dn_attr *a);
/** @brief 1 when der[0..len) is a Name in DER that dn_iter reads to its end: every value a
 *  universal string type an X509_NAME takes (UTF8String, PrintableString, IA5String,
 *  TeletexString, NumericString, BMPString, UniversalString) whose text converts to UTF-8
 *  (what d2i_X509_NAME requires for its canonical form). Such a name decodes as an X509_NAME;
 *  the converse does not hold (BER, other value types): those are decoded. */
int dn_der_check_(const unsigned char *der, size_t len);
/** @brief The first attribute with nid, into *a. @return 1 if found. */
int dn_find_(const struct dn_ref *ref, int nid, struct dn_attr *a);
/** @brief First value of DN attribute sn (short or long name) in subject, as UTF-8 into out.
 *  @return 1 if found. */
int dn_value_(const struct dn_ref *subject, const char *sn, char *out, size_t n);
/** @brief ref for a requested subject raw (CG_NAME_RAW): its DER when dn_der_check_() takes
 *  it (known from raw's type, V_ASN1_SEQUENCE, when the decoding checked), else decoded into
 *  *owned (free it). A NULL raw gives an empty ref. @return 1, 0 when it
 *  does not decode (out of memory: the template's decoding checked it). */
int dn_ref_raw_(const ASN1_STRING *raw, struct dn_ref *ref, X509_NAME **owned);
/** @brief The X509_NAME of ref: ref->name, or its DER decoded into *owned (free it). */
const X509_NAME *dn_decoded_(const struct dn_ref *ref, X509_NAME **owned);
/** @brief Parse "CN=a,O=b\,c,C=SE" into a new X509_NAME (order kept). NULL if malformed. */
X509_NAME *dn_parse_(const char *text);
/** @brief Same attributes and values, in any order, ignoring attribute skip_nid (0 = none). */
int dn_equal_unordered_(const X509_NAME *a, const X509_NAME *b, int skip_nid);

/* --- fastdec.c -------------------------------------------------------------------------- */
/** @brief The PKIMessage der[0..len) decoded by hand when it has the shape of the commonest
 *  requests (ir, cr, kur, certConf; see fastdec.c), as d2i_CG_PKIMESSAGE would decode it.
 *  @return the message, or NULL when it has another shape or is not DER: the caller then
 *  decodes it with d2i_CG_PKIMESSAGE, which decides. */
CG_PKIMESSAGE *core_msg_d2i_fast_(const unsigned char *der, size_t len);

/* --- certcache.c ------------------------------------------------------------------------ */
/** @brief X509_verify(x, issuer's key) == 1, remembered for a certificate of the extraCerts
 *  table (same DER, same issuer key): a second message of the same signer costs no
 *  verification. @return 1 when the signature verifies. */
int core_cert_verify_(X509 *x, X509 *issuer);
/** @brief Drop every certificate the extraCerts decoder keeps. */
void core_cert_cache_clear_(void);
/** @brief X509_free(x) for a reference to a certificate of a message's extraCerts, which
 *  other threads may hold too: ordered with every other such release, so that the thread
 *  that frees x has seen the others' last uses (certcache.c, Releases). NULL is ignored. */
void core_cert_release_(X509 *x);
/** @brief Encode x once and keep the DER with it (x must not change afterwards): CG_X509_CACHED
 *  then writes these bytes instead of encoding x again. @param[out] der, len the DER, owned
 *  by x. @return CG_OK, CG_ENOMEM, CG_ECRYPTO. */
int core_cert_set_der_(X509 *x, const unsigned char **der, size_t *len);
/** @brief The DER kept with x by core_cert_set_der_(), or NULL. */
const unsigned char *core_cert_der_(const X509 *x, size_t *len);
/** @brief Set raw (a CG_GENNAME_RAW) to the GeneralName der[0..len) as the item's decoder
 *  does: one GeneralName, kept in DER. @return 1, or 0 when it is not one (or no memory). */
int core_gn_raw_set_(ASN1_STRING *raw, const unsigned char *der, size_t len);
/** @brief Append x's DER to b: the attached one when there is one, else i2d_X509's.
 *  @return CG_OK, CG_ENOMEM, CG_ECRYPTO. */
int core_cert_der_put_(struct cg_buf *b, const X509 *x);

/** @brief t as the text of a Time, seconds and Zulu: UTCTime (YYMMDDHHMMSSZ) for 1950-2049
 *  unless generalized is set, else GeneralizedTime (YYYYMMDDHHMMSSZ); the ASN.1 tag in *tag.
 *  @return the text's length, 0 for a year outside 0-9999. */
size_t core_time_text_(time_t t, int generalized, char out[16], int *tag);

/* --- pbm.c ---------------------------------------------------------------------------- */
/** @brief The fetched digest for a digest or HMAC NID (SHA-1, SHA-224/256/384/512), or NULL.
 *  Use it instead of EVP_sha256() and friends, which OpenSSL 3 looks up on every use. */
const EVP_MD *core_md_(int nid);
/** @brief PBM key derivation: owf(secret || salt), then owf applied iter - 1 more times.
 *  key has room for EVP_MAX_MD_SIZE bytes. @return CG_OK or CG_ECMP_BADALG. */
int pbm_derive_(int owf_nid, const char *secret, const uint8_t *salt, size_t saltlen, int64_t iter,
                uint8_t *key, unsigned *keylen);
/** @brief Whether the SHA-256 derivation uses the CPU's SHA extensions: enable 0 turns them
 *  off (the tests of the generic loop), 1 on where the CPU has them. @return 1 if in use. */
int pbm_shani_(int enable);
/** @brief pbm_derive_ through the process-wide cache of derived keys. */
int pbm_key_(int owf_nid, const char *secret, const uint8_t *salt, size_t saltlen, int64_t iter,
             uint8_t *key, unsigned *keylen);
/** @brief The inputs of a PBM key derivation (secret NUL-terminated). */
struct pbm_params {
    int owf_nid;
    const char *secret;
    const uint8_t *salt;
    size_t saltlen;
    int64_t iter;
};
/** Iteration counts above this are not derived ahead (a client may ask for 100,000). */
#define PBM_PREFETCH_MAX_ITER 10000
/** @brief Derive two SHA-256 keys that the cache lacks side by side into the cache, so that
 *  their messages find them (pbm_key_). Only a pair of misses on a CPU with the SHA
 *  extensions gains; anything else is left to pbm_key_. @return the keys derived (0 or 2). */
int pbm_prefetch2_(const struct pbm_params *a, const struct pbm_params *b);
/** @brief Keys derived by pbm_prefetch2_ since the start. */
unsigned long pbm_paired_keys_(void);
/** @brief Forget (and wipe) every cached key. */
void pbm_cache_clear_(void);
/** @brief HMAC (RFC 2104) with the digest of mac_nid (an HMAC or digest NID) into out
 *  (EVP_MAX_MD_SIZE bytes). @return CG_OK, CG_ECMP_BADALG, CG_ECRYPTO. */
int pbm_hmac_(int mac_nid, const uint8_t *key, size_t keylen, const uint8_t *data, size_t len,
              uint8_t *out, unsigned *outlen);

/* --- protect.c ------------------------------------------------------------------------ */
/** @brief protect_verify_pbm_ / protect_apply_pbm_ with a key cache (may be NULL). */
int protect_verify_pbm_cached_(const CG_PKIMESSAGE *msg, const char *secret, long max_iter,
                               struct pbm_cache *cache);
int protect_apply_pbm_cached_(CG_PKIMESSAGE *msg, const X509_ALGOR *alg, const char *secret,
                              long max_iter, struct pbm_cache *cache);
/** @brief protect_apply_pbm_cached_ that also hands back the ProtectedPart DER it MACed
 *  (*part, OPENSSL_free) when part is not NULL, for protect_encode_with_part_. */
int protect_apply_pbm_part_(CG_PKIMESSAGE *msg, const X509_ALGOR *alg, const char *secret,
                            long max_iter, struct pbm_cache *cache, unsigned char **part,
                            int *partlen);
/** @brief The DER of msg from its ProtectedPart DER (header and body encoded once, for the MAC
 *  and the message), its protection and extraCerts: the same bytes as i2d_CG_PKIMESSAGE.
 *  @param[out] out new (free()). @return CG_OK, CG_EPARSE, CG_ENOMEM. */
int protect_encode_with_part_(const CG_PKIMESSAGE *msg, const uint8_t *part, size_t partlen,
                              uint8_t **out, size_t *outlen);
/** @brief DER of ProtectedPart{header, body} of msg. @param[out] der new (OPENSSL_free). */
int protect_part_der_(const CG_PKIMESSAGE *msg, unsigned char **der, int *len);
/** @brief ProtectedPart{header, body} taken from the received bytes of a PKIMessage (no
 *  re-encoding: the protection is checked over exactly what was sent). @param[out] out new
 *  (free()). @return CG_OK, CG_EPARSE, CG_ENOMEM. */
int protect_part_from_der_(const uint8_t *der, size_t len, uint8_t **out, size_t *outlen);
/** @brief Read a PKIMessage's DER in place, without decoding it: the body's CHOICE tag number
 *  and, when its header's protectionAlg is a PBM in the common DER form, the one-way function,
 *  salt (pointing into der) and iteration count. @return 1 for a PBM, else 0. */
int protect_pbm_peek_(const uint8_t *der, size_t len, int *body_tag, int *owf, const uint8_t **salt,
                      size_t *saltlen, int64_t *iter);
/** @brief protect_verify_pbm_cached_ over given ProtectedPart bytes (NULL: re-encode msg). */
int protect_verify_pbm_part_(const CG_PKIMESSAGE *msg, const uint8_t *part, size_t partlen,
                             const char *secret, long max_iter, struct pbm_cache *cache);
/** @brief Verify the signature (alg, sig) over the DER of data (an it) with key, as
 *  ASN1_item_verify does but with fetched digests. @return 1 when it verifies. */
int protect_verify_item_(const ASN1_ITEM *it, const X509_ALGOR *alg, const ASN1_BIT_STRING *sig,
                         const void *data, EVP_PKEY *key);
/** @brief 1 if alg is id-PasswordBasedMac. */
int protect_is_pbm_(const X509_ALGOR *alg);
/** @brief Verify the PBM protection of msg with secret. max_iter bounds iterationCount
 *  (checked before any hashing). @return CG_OK, CG_ECMP_BADMSGCHECK (wrong MAC),
 *  CG_ECMP_BADALG (unsupported or oversized parameters). */
int protect_verify_pbm_(const CG_PKIMESSAGE *msg, const char *secret, long max_iter);
/** @brief Protect msg with PBM using a copy of alg (the request's protectionAlg, whose
 *  parameters are reused). Sets header->protectionAlg and msg->protection. */
int protect_apply_pbm_(CG_PKIMESSAGE *msg, const X509_ALGOR *alg, const char *secret,
                       long max_iter);
/** @brief Sign msg with key and md (NULL for Ed25519/Ed448). Sets protectionAlg, protection. */
int protect_apply_sig_(CG_PKIMESSAGE *msg, EVP_PKEY *key, const EVP_MD *md);
/** @brief protect_apply_sig_(), signing with a copy of signer when it is not NULL (a context
 *  initialised with key and md: ca_signer_new_()). */
int protect_apply_sig_with_(CG_PKIMESSAGE *msg, EVP_PKEY *key, const EVP_MD *md,
                            const EVP_MD_CTX *signer);
/** @brief The digest for a signature-protected response, per the reference rules: the
 *  request's signature digest when it fits the CA key, else a default for the key. Returns
 *  NULL for keys that take no digest (Ed25519, Ed448). */
const EVP_MD *protect_choose_md_(EVP_PKEY *ca_key, const X509_ALGOR *req_alg);
/** @brief Default digest for signing with key (certificates): SHA-256 for RSA and P-256,
 *  SHA-384 for P-384, SHA-512 for P-521, NULL for EdDSA. */
const EVP_MD *protect_default_md_(EVP_PKEY *key);

/** @brief A DER tag and length for content of len bytes (below 4 GB) into p (room for 6).
 *  @return the header's size. */
size_t core_der_head_(uint8_t tag, size_t len, uint8_t *p);
/** @brief One TLV at *p in strict DER (a tag number below 31, a definite length in its
 *  shortest form) within end: *val and *len its contents, *p moved past it.
 *  @return its identifier octet, or -1. */
int core_der_tlv_(const unsigned char **p, const unsigned char *end, const unsigned char **val,
                  size_t *len);
/** @brief Append a whole TLV to b: tag, length, the len bytes at p. @return CG_OK, CG_ENOMEM. */
int core_der_put_(struct cg_buf *b, uint8_t tag, const void *p, size_t len);
/** @brief Make b's bytes from `from` on the contents of tag (its header is inserted before
 *  them). @return CG_OK, CG_ENOMEM. */
int core_der_wrap_(struct cg_buf *b, size_t from, uint8_t tag);
/* Append what an OpenSSL i2d function writes of obj to a struct cg_buf: CG_OK, CG_ENOMEM,
 * CG_ECRYPTO (the i2d failed). */
#define DER_I2D(b, i2d, obj)                                                                       \
    __extension__({                                                                                \
        unsigned char *enc_ = NULL;                                                                \
        int n_ = i2d((obj), &enc_);                                                                \
        int rc_ = n_ > 0 ? cg_buf_append((b), enc_, (size_t)n_) : CG_ECRYPTO;                      \
        OPENSSL_free(enc_);                                                                        \
        rc_;                                                                                       \
    })

/* --- ca.c ----------------------------------------------------------------------------- */
struct ca_request {
    struct dn_ref subject;           /* borrowed */
    EVP_PKEY *pubkey;                /* borrowed */
    const CG_SPKI *spki;             /* borrowed: the received SubjectPublicKeyInfo, or NULL */
    const CG_OPTVALIDITY *validity;  /* borrowed, may be NULL */
    STACK_OF(X509_EXTENSION) * exts; /* borrowed, requested extensions, may be NULL */
};
/* A CA's signing set-up (issue.c), made once per configuration generation and only read
 * afterwards: a signing context to copy, and the DER of what every certificate it signs
 * shares. */
struct ca_signer {
    EVP_MD_CTX *ctx;  /* initialised with the key; NULL when the provider cannot copy it */
    EVP_PKEY *key;    /* borrowed: the CA's key */
    const EVP_MD *md; /* its digest for certificates (NULL for EdDSA) */
    uint8_t *alg;     /* signature AlgorithmIdentifier, as OpenSSL writes it */
    size_t alg_len;
    int sig_nid;            /* that algorithm */
    X509_NAME *issuer_name; /* borrowed: the CA certificate's subject */
    uint8_t *issuer;        /* its DER */
    size_t issuer_len;
    uint8_t issuer_key[32]; /* ca_name_key_() of it */
    char *issuer_text;      /* ca_name_text_() of it: the issuer of every record it signs */
    uint8_t *akid;          /* the authorityKeyIdentifier extension, DER */
    size_t akid_len;
};
/** @brief The signing set-up of ca (new), or NULL when its key cannot sign a certificate. */
struct ca_signer *ca_signer_new_(const struct cg_ca *ca);
void ca_signer_free_(struct ca_signer *s);

/* A certificate ca_issue_() signed. */
struct ca_cert {
    uint8_t *der; /* the Certificate (malloc) */
    size_t der_len;
    uint8_t serial[16];
    time_t not_after;
    const struct ca_signer *signer; /* borrowed: its issuer */
    struct dn_ref subject;          /* borrowed from the request */
};
/* The extensions a certificate profile puts into every certificate, encoded once (issue.c). */
struct ca_exts {
    uint8_t *ku; /* keyUsage extension DER; ku_len 0 when the profile sets none */
    size_t ku_len;
    uint8_t *eku; /* extKeyUsage, likewise */
    size_t eku_len;
};
/** @brief The encoded extensions of cp (new), or NULL. */
struct ca_exts *ca_exts_new_(const struct cg_cert_profile *cp);
void ca_exts_free_(struct ca_exts *e);
/** @brief Issue a certificate signed by s under profile cp (written as DER, no X509 object).
 *  pe: cp's extensions from ca_exts_new_(), or NULL to encode them for this certificate.
 *  serial: 16 bytes, positive. @param[out] out the certificate; ca_cert_clear_() it.
 *  @return CG_OK, CG_ECMP_BADCERTTEMPLATE (unusable request data, detail says why),
 *  CG_ECRYPTO (also when s is NULL). */
int ca_issue_(const struct ca_signer *s, const struct cg_cert_profile *cp, const struct ca_exts *pe,
              const struct ca_request *rq, const uint8_t serial[16], struct ca_cert *out,
              char *detail, size_t dlen);
void ca_cert_clear_(struct ca_cert *c);
/** @brief out = the PKIBody [rep_type] CertRepMessage accepting c for certReqId cert_req_id,
 *  with caPubs capubs[0..n_capubs) (none: no caPubs), as DER. @return CG_OK, CG_ENOMEM,
 *  CG_EINVAL, CG_ECRYPTO. */
int ca_certrep_der_(int rep_type, X509 *const *capubs, size_t n_capubs, int64_t cert_req_id,
                    const struct ca_cert *c, ASN1_STRING *out);
/** @brief Fill rec from a certificate ca_issue_() made; subject_text is the text of
 *  c->subject when the caller has it (NULL: computed here). */
int ca_issued_rec_fill_(const struct ca_cert *c, const char *ca_name, const char *username,
                        const char *subject_text, struct cg_cert_rec *rec);
/** @brief The public key of spki, loaded without the decoder for EC named curves and
 *  EdDSA (free it with ecfast_key_free_: an EC key may be the thread's lent one). NULL if
 *  malformed. */
EVP_PKEY *ca_spki_key_(const CG_SPKI *spki);

/* --- ecfast.c: requested EC keys on common named curves --- */
/** @brief Build the groups of ecfast_key_'s curves (once per process; at start, by
 *  cg_core_new, so that no request builds them). */
void ecfast_init_(void);
/** @brief 1 when ecfast_key_ handles keys on the curve curve_nid. */
int ecfast_curve_(int curve_nid);
/** @brief The public key point (its X9.62 octet string) on curve curve_nid, as an
 *  EVP_PKEY holding an EC_KEY, or NULL: not a kept curve, not a point of the curve. Often the
 *  thread's lent key (ecfast.c): give it back with ecfast_key_free_, keep it no longer than
 *  the request, and hand it to no other thread. */
EVP_PKEY *ecfast_key_(int curve_nid, const unsigned char *point, size_t len);
/** @brief Free a key of ca_spki_key_ / ecfast_key_ (any EVP_PKEY; NULL is a no-op): a lent key
 *  goes back to its thread. */
void ecfast_key_free_(EVP_PKEY *key);
/** @brief Keys lent again since the start (process-wide), for the tests. */
unsigned long ecfast_lends_(void);
/** @brief Check an ECDSA signature over data (digest md) with a key of ecfast_key_.
 *  @return 1 valid, 0 invalid, -1 key is not one of ecfast_key_'s (use EVP). */
int ecfast_verify_(EVP_PKEY *key, const EVP_MD *md, const unsigned char *sig, size_t siglen,
                   const unsigned char *data, size_t len);
/** @brief Verifications ecfast_verify_ left to ECDSA_do_verify (process-wide), for the tests. */
unsigned long ecfast_fallbacks_(void);

/* --- modinv.c: inverses of public numbers --- */
/** @brief r = a^-1 mod m in variable time (see modinv.c: not for secrets), for m an odd prime
 *  of at most 614 bits and 0 < a < m; the result is checked before it is returned.
 *  @return 1, or 0 (out of range, no inverse, out of memory; r then undefined). */
int modinv_vartime_(BIGNUM *r, const BIGNUM *a, const BIGNUM *m, BN_CTX *ctx);
/** @brief The SubjectPublicKeyInfo of key (new). */
CG_SPKI *ca_spki_from_pkey_(const EVP_PKEY *key);
/** @brief A CG_SPKI copy of an X509_PUBKEY (new). */
CG_SPKI *ca_spki_from_x509_pubkey_(const X509_PUBKEY *xpk);
/** @brief n random bytes (nonces, serials, names) from a per-thread block of DRBG output.
 *  @return CG_OK or CG_ECRYPTO. */
int core_rand_(void *out, size_t n);
/** @brief Random positive 16-byte serial (first byte in 0x40..0x7f). */
int ca_random_serial_(uint8_t serial[16]);
/** @brief SHA-256 of the DER encoding of name. */
int ca_name_key_(const X509_NAME *name, uint8_t key[32]);
/** @brief Fill rec from cert (der, fingerprint, issuer key, serial, texts, dates). */
int ca_cert_rec_fill_(X509 *cert, const char *ca_name, const char *username,
                      struct cg_cert_rec *rec);
/** @brief Name as "CN=a,O=b,C=c" (DER order) into a new string. */
char *ca_name_text_(const X509_NAME *name);
/** @brief ca_name_text_() of either form. */
char *ca_dn_text_(const struct dn_ref *ref);
/** @brief Check the key against the profile's algorithms, sizes and curves.
 *  @return CG_OK or CG_ECMP_BADCERTTEMPLATE with detail. */
int ca_check_key_(const struct cg_cert_profile *cp, EVP_PKEY *key, char *detail, size_t dlen);

/* mem.c: the functions cg_mem_install() gives OpenSSL (CRYPTO_malloc_fn and friends) */
void *cg_mem_malloc_(size_t n, const char *file, int line);
void *cg_mem_realloc_(void *ptr, size_t n, const char *file, int line);
void cg_mem_free_(void *ptr, const char *file, int line);
/* tests: turn the caching on or off (cg_mem_install does it); the calling thread's cached
 * blocks of n bytes' class, and the most it keeps */
void cg_mem_cache_(int on);
size_t cg_mem_cached_(size_t n);
size_t cg_mem_cache_cap_(size_t n);

#endif
