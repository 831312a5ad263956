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

struct cg_core {
    const struct cg_config *cfg;
    struct cg_store *store;
};

/* --- protect.c ------------------------------------------------------------------------ */
/** @brief DER of ProtectedPart{header, body} of msg. @param[out] der new (OPENSSL_free). */
int protect_part_der_(const CG_PKIMESSAGE *msg, unsigned char **der, int *len);
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
/** @brief The digest for a signature-protected response, per the reference rules: the
 *  request's signature digest when it fits the CA key, else a default for the key. Returns
 *  NULL for keys that take no digest (Ed25519, Ed448). */
const EVP_MD *protect_choose_md_(EVP_PKEY *ca_key, const X509_ALGOR *req_alg);
/** @brief Default digest for signing with key (certificates): SHA-256 for RSA and P-256,
 *  SHA-384 for P-384, SHA-512 for P-521, NULL for EdDSA. */
const EVP_MD *protect_default_md_(EVP_PKEY *key);

/* --- ca.c ----------------------------------------------------------------------------- */
struct ca_request {
    X509_NAME *subject;              /* borrowed */
    EVP_PKEY *pubkey;                /* borrowed */
    const CG_OPTVALIDITY *validity;  /* borrowed, may be NULL */
    STACK_OF(X509_EXTENSION) * exts; /* borrowed, requested extensions, may be NULL */
};
/** @brief Issue a certificate from ca under profile cp. serial: 16 bytes, positive.
 *  @param[out] out new certificate. @return CG_OK, CG_ECMP_BADCERTTEMPLATE / BADREQUEST
 *  (unusable request data), CG_ECRYPTO. detail gets a reason on rejection. */
int ca_issue_(const struct cg_ca *ca, const struct cg_cert_profile *cp, const struct ca_request *rq,
              const uint8_t serial[16], X509 **out, char *detail, size_t dlen);
/** @brief Random positive 16-byte serial (first byte in 0x40..0x7f). */
int ca_random_serial_(uint8_t serial[16]);
/** @brief SHA-256 of the DER encoding of name. */
int ca_name_key_(const X509_NAME *name, uint8_t key[32]);
/** @brief Fill rec from cert (der, fingerprint, issuer key, serial, texts, dates). */
int ca_cert_rec_fill_(X509 *cert, const char *ca_name, const char *username,
                      struct cg_cert_rec *rec);
/** @brief Name as "CN=a,O=b,C=c" (DER order) into a new string. */
char *ca_name_text_(const X509_NAME *name);
/** @brief Check the key against the profile's algorithms, sizes and curves.
 *  @return CG_OK or CG_ECMP_BADCERTTEMPLATE with detail. */
int ca_check_key_(const struct cg_cert_profile *cp, EVP_PKEY *key, char *detail, size_t dlen);

#endif
