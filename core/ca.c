/*
 * ca.c - the embedded CA: builds and signs X.509 certificates from a validated request and a
 * certificate profile.
 *
 * DESIGN: pure functions over borrowed inputs; thread-safe (the CA key is only read, and
 * OpenSSL 3 EVP_PKEY signing is safe on a shared key). Policy: subject and public key come
 * from the request; validity, key usage and extended key usage from the profile, with the
 * template's validity honoured only under allow_validity_override (and never beyond the
 * profile's validity) and its key usage only under allow_key_usage_override. A requested
 * subjectAltName is always copied (it is part of the identity, as the subject is); other
 * requested extensions only under allow_extension_override. Serials are 16 random bytes,
 * positive, unique in the store (checked by the caller on insert).
 */
#include "cg_err.h"
#include "core_local.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/params.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* 16 bytes: 7 of time (microseconds since 1970, below 2^54; 0x40 set in the first byte so
 * the INTEGER is positive and always 16 bytes long), then 9 random bytes (72 bits, above the 64
 * the CA/Browser Forum asks for). A CA's certificates are keyed by serial in the store, so
 * time-ordered serials put a group commit's new certificates on the same few pages instead of
 * one random page each. */
int ca_random_serial_(uint8_t serial[16])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    for (int i = 6; i >= 0; i--, us >>= 8)
        serial[i] = (uint8_t)us;
    serial[0] = (uint8_t)((serial[0] & 0x3f) | 0x40);
    return RAND_bytes(serial + 7, 9) == 1 ? CG_OK : CG_ECRYPTO;
}

int ca_name_key_(const X509_NAME *name, uint8_t key[32])
{
    const unsigned char *der = NULL;
    size_t len = 0;
    if (X509_NAME_get0_der((X509_NAME *)name, &der, &len) != 1)
        return CG_ECRYPTO;
    if (EVP_Digest(der, len, key, NULL, core_md_(NID_sha256), NULL) != 1)
        return CG_ECRYPTO;
    return CG_OK;
}

char *ca_name_text_(const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b == NULL)
        return NULL;
    unsigned long flags = XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_FN_SN | ASN1_STRFLGS_RFC2253;
    flags &= ~(unsigned long)ASN1_STRFLGS_ESC_MSB;
    if (X509_NAME_print_ex(b, name, 0, flags) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        out = OPENSSL_malloc((size_t)n + 1);
        if (out != NULL) {
            memcpy(out, p, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(b);
    return out;
}

/* EVP_PKEY ex_data of an EC key that ca_spki_key_ imported from the uncompressed form onto a
 * named curve's template: the curve's NID. Such a point is on its curve (the import checks)
 * and is not the point at infinity (which has no uncompressed form), so ca_check_key_ need not
 * validate it again (8 µs through EVP_PKEY_public_check_quick). */
static int curve_index = -1;
static pthread_once_t curve_once = PTHREAD_ONCE_INIT;

static void curve_index_new(void)
{
    curve_index = EVP_PKEY_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void mark_imported(EVP_PKEY *key, int curve_nid)
{
    pthread_once(&curve_once, curve_index_new);
    if (curve_index >= 0)
        EVP_PKEY_set_ex_data(key, curve_index, (void *)(intptr_t)curve_nid); /* else: checked */
}

static int imported_curve(const EVP_PKEY *key)
{
    pthread_once(&curve_once, curve_index_new);
    return curve_index >= 0 ? (int)(intptr_t)EVP_PKEY_get_ex_data(key, curve_index) : NID_undef;
}

int ca_check_key_(const struct cg_cert_profile *cp, EVP_PKEY *key, char *detail, size_t dlen)
{
    int id = EVP_PKEY_get_base_id(key);
    switch (id) {
    case EVP_PKEY_RSA: {
        if (!(cp->key_algorithms & CG_KEYALG_RSA))
            goto bad_alg;
        int bits = EVP_PKEY_get_bits(key);
        for (size_t i = 0; i < cp->n_rsa_key_sizes; i++)
            if (cp->rsa_key_sizes[i] == bits)
                return CG_OK;
        snprintf(detail, dlen, "RSA key size %d not allowed by certificate profile %s", bits,
                 cp->name);
        return CG_ECMP_BADCERTTEMPLATE;
    }
    case EVP_PKEY_EC: {
        if (!(cp->key_algorithms & CG_KEYALG_EC))
            goto bad_alg;
        char group[64] = "";
        int nid = imported_curve(key);
        if (nid == NID_undef) {
            /* on the curve and not the point at infinity (whatever the request's form:
             * template, POPOSigningKeyInput or PKCS#10), unless ca_spki_key_ made sure */
            EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
            int valid = vc != NULL && EVP_PKEY_public_check_quick(vc) == 1;
            EVP_PKEY_CTX_free(vc);
            if (!valid) {
                snprintf(detail, dlen, "the EC public key is not a valid point of its curve");
                return CG_ECMP_BADCERTTEMPLATE;
            }
            size_t glen = 0;
            EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &glen);
            nid = OBJ_txt2nid(group);
            if (nid == NID_undef)
                nid = EC_curve_nist2nid(group);
        } else {
            snprintf(group, sizeof(group), "%s", OBJ_nid2sn(nid));
        }
        for (size_t i = 0; i < cp->n_ec_curves; i++)
            if (cp->ec_curve_nids[i] == nid)
                return CG_OK;
        snprintf(detail, dlen, "EC curve %s not allowed by certificate profile %s",
                 group[0] ? group : "(unnamed)", cp->name);
        return CG_ECMP_BADCERTTEMPLATE;
    }
    case EVP_PKEY_ED25519:
        if (cp->key_algorithms & CG_KEYALG_ED25519)
            return CG_OK;
        goto bad_alg;
    case EVP_PKEY_ED448:
        if (cp->key_algorithms & CG_KEYALG_ED448)
            return CG_OK;
        goto bad_alg;
    default:
        break;
    }
bad_alg:
    snprintf(detail, dlen, "key algorithm %s not allowed by certificate profile %s", OBJ_nid2sn(id),
             cp->name);
    return CG_ECMP_BADCERTTEMPLATE;
}

static int add_ext_nid(X509 *x, int nid, int crit, void *value)
{
    X509_EXTENSION *ex = X509V3_EXT_i2d(nid, crit, value);
    int ok = ex != NULL && X509_add_ext(x, ex, -1) == 1;
    X509_EXTENSION_free(ex);
    return ok ? CG_OK : CG_ECRYPTO;
}

static int add_key_ids(X509 *x, X509 *issuer)
{
    int rc = CG_ECRYPTO;
    ASN1_OCTET_STRING *ski = ASN1_OCTET_STRING_new();
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (ski == NULL || akid == NULL)
        goto out;
    if (X509_pubkey_digest(x, core_md_(NID_sha1), md, &mdlen) != 1 ||
        ASN1_OCTET_STRING_set(ski, md, (int)mdlen) != 1)
        goto out;
    if (add_ext_nid(x, NID_subject_key_identifier, 0, ski) != CG_OK)
        goto out;
    const ASN1_OCTET_STRING *issuer_ski = X509_get0_subject_key_id(issuer);
    if (issuer_ski != NULL) {
        akid->keyid = ASN1_OCTET_STRING_dup(issuer_ski);
    } else {
        akid->keyid = ASN1_OCTET_STRING_new();
        if (akid->keyid == NULL ||
            X509_pubkey_digest(issuer, core_md_(NID_sha1), md, &mdlen) != 1 ||
            ASN1_OCTET_STRING_set(akid->keyid, md, (int)mdlen) != 1)
            goto out;
    }
    if (akid->keyid == NULL || add_ext_nid(x, NID_authority_key_identifier, 0, akid) != CG_OK)
        goto out;
    rc = CG_OK;
out:
    ASN1_OCTET_STRING_free(ski);
    AUTHORITY_KEYID_free(akid);
    return rc;
}

static int add_key_usage(X509 *x, unsigned bits, int crit)
{
    if (bits == 0)
        return CG_OK;
    int rc = CG_ECRYPTO;
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    if (ku == NULL)
        goto out;
    /* X.509 bit n is bit (7 - n % 8) of byte n / 8; the KU_* masks are that layout. */
    for (int n = 0; n < 9; n++) {
        unsigned mask = n < 8 ? (0x80u >> n) : 0x8000u;
        if ((bits & mask) && ASN1_BIT_STRING_set_bit(ku, n, 1) != 1)
            goto out;
    }
    rc = add_ext_nid(x, NID_key_usage, crit, ku);
out:
    ASN1_BIT_STRING_free(ku);
    return rc;
}

static int add_eku(X509 *x, const struct cg_cert_profile *cp)
{
    if (cp->n_eku == 0)
        return CG_OK;
    int rc = CG_ECRYPTO;
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    if (eku == NULL)
        goto out;
    for (size_t i = 0; i < cp->n_eku; i++) {
        ASN1_OBJECT *o = OBJ_nid2obj(cp->eku_nids[i]);
        if (o == NULL || sk_ASN1_OBJECT_push(eku, OBJ_dup(o)) <= 0)
            goto out;
    }
    rc = add_ext_nid(x, NID_ext_key_usage, cp->eku_critical, eku);
out:
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

/* Copies the requested extensions the profile lets through. Extensions the CA sets itself
 * (key identifiers, basic constraints, and key usage / EKU unless overridden) are skipped. */
static int add_requested_exts(X509 *x, const struct cg_cert_profile *cp,
                              STACK_OF(X509_EXTENSION) * exts, int *ku_done)
{
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *ex = sk_X509_EXTENSION_value(exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ex));
        int take;
        switch (nid) {
        case NID_subject_alt_name:
            take = 1;
            break;
        case NID_key_usage:
            take = cp->allow_key_usage_override;
            if (take)
                *ku_done = 1;
            break;
        case NID_subject_key_identifier:
        case NID_authority_key_identifier:
        case NID_basic_constraints:
        case NID_ext_key_usage:
            take = 0;
            break;
        default:
            take = cp->allow_extension_override;
            break;
        }
        if (take && X509_add_ext(x, ex, -1) != 1)
            return CG_ECRYPTO;
    }
    return CG_OK;
}

static int set_validity(X509 *x, const struct cg_cert_profile *cp, const CG_OPTVALIDITY *v)
{
    time_t now = time(NULL);
    time_t nb = now - 60; /* tolerate clients with slightly slow clocks */
    time_t max_na = now + (time_t)cp->validity_s;
    time_t na = max_na;
    if (cp->allow_validity_override && v != NULL) {
        struct tm tm;
        if (v->notBefore != NULL && ASN1_TIME_to_tm(v->notBefore, &tm) == 1)
            nb = timegm(&tm);
        if (v->notAfter != NULL && ASN1_TIME_to_tm(v->notAfter, &tm) == 1)
            na = timegm(&tm);
        if (na > nb + (time_t)cp->validity_s)
            na = nb + (time_t)cp->validity_s;
        if (na <= nb)
            return CG_ECMP_BADCERTTEMPLATE;
    }
    if (X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na) == NULL)
        return CG_ECRYPTO;
    return CG_OK;
}

/* Puts the requested SubjectPublicKeyInfo into x as it was received. X509_set_pubkey() would
 * encode the key and decode it again through OpenSSL 3.0's decoder framework, which profiles
 * showed to be a third of the CPU time of an enrollment. */
static int set_pubkey(X509 *x, const struct ca_request *rq)
{
    int ptype = 0;
    const ASN1_OBJECT *aobj = NULL;
    const void *pval = NULL;
    void *pcopy = NULL;
    if (rq->spki == NULL)
        return X509_set_pubkey(x, rq->pubkey) == 1 ? CG_OK : CG_ECRYPTO;
    int pklen = ASN1_STRING_length(rq->spki->public_key);
    X509_ALGOR_get0(&aobj, &ptype, &pval, rq->spki->algor);
    if (ptype == V_ASN1_OBJECT)
        pcopy = OBJ_dup(pval);
    else if (ptype == V_ASN1_SEQUENCE)
        pcopy = ASN1_STRING_dup(pval);
    else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
        return X509_set_pubkey(x, rq->pubkey) == 1 ? CG_OK : CG_ECRYPTO;
    unsigned char *enc =
        pklen > 0 ? OPENSSL_memdup(ASN1_STRING_get0_data(rq->spki->public_key), (size_t)pklen)
                  : NULL;
    ASN1_OBJECT *obj = OBJ_dup(aobj);
    if (enc == NULL || obj == NULL || (pval != NULL && pcopy == NULL) ||
        X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), obj, ptype, pcopy, enc, pklen) != 1) {
        OPENSSL_free(enc);
        ASN1_OBJECT_free(obj);
        if (ptype == V_ASN1_OBJECT)
            ASN1_OBJECT_free(pcopy);
        else
            ASN1_STRING_free(pcopy);
        return CG_ECRYPTO;
    }
    return CG_OK;
}

/* Parameters-only keys of the common named curves, each built on first use. Only these
 * curves are kept (clients cannot fill the table with curves of their choosing); a key on
 * another curve goes through the generic decoder, and the profile decides whether it is
 * allowed. */
static const int ec_template_nids[] = {
    NID_X9_62_prime256v1, NID_secp384r1,       NID_secp521r1,      NID_secp256k1,
    NID_brainpoolP256r1,  NID_brainpoolP384r1, NID_brainpoolP512r1};
#define EC_TEMPLATES (sizeof(ec_template_nids) / sizeof(ec_template_nids[0]))
static EVP_PKEY *ec_templates[EC_TEMPLATES];
static pthread_mutex_t ec_templates_mu = PTHREAD_MUTEX_INITIALIZER;

/* The template for the curve nid, or NULL (not a kept curve, or it cannot be built). */
static const EVP_PKEY *ec_template(int nid)
{
    size_t i = 0;
    while (i < EC_TEMPLATES && ec_template_nids[i] != nid)
        i++;
    if (i == EC_TEMPLATES)
        return NULL;
    pthread_mutex_lock(&ec_templates_mu);
    if (ec_templates[i] == NULL) {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        OSSL_PARAM params[2];
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                     (char *)OBJ_nid2sn(nid), 0);
        params[1] = OSSL_PARAM_construct_end();
        if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
            EVP_PKEY_fromdata(pctx, &ec_templates[i], EVP_PKEY_KEY_PARAMETERS, params) != 1)
            ec_templates[i] = NULL;
        EVP_PKEY_CTX_free(pctx);
    }
    const EVP_PKEY *found = ec_templates[i];
    pthread_mutex_unlock(&ec_templates_mu);
    return found;
}

EVP_PKEY *ca_spki_key_(const CG_SPKI *spki)
{
    const ASN1_OBJECT *aobj = NULL;
    int ptype = 0;
    const void *pval = NULL;
    EVP_PKEY *key = NULL;
    const unsigned char *bits = ASN1_STRING_get0_data(spki->public_key);
    int nbits = ASN1_STRING_length(spki->public_key);
    X509_ALGOR_get0(&aobj, &ptype, &pval, spki->algor);
    int nid = OBJ_obj2nid(aobj);
    if (nbits <= 0 || (spki->public_key->flags & 0x07) != 0)
        return NULL; /* a key is a whole number of bytes */
    /* EC points: the uncompressed form only (RFC 5480 2.2). This refuses the point at
     * infinity (the single byte 00), with which anybody could sign a proof of possession,
     * and the compressed and hybrid forms, which would be issued as sent. */
    if (nid == NID_X9_62_id_ecPublicKey && (bits[0] != 0x04 || nbits < 3 || nbits % 2 == 0))
        return NULL;
    if (nid == NID_X9_62_id_ecPublicKey && ptype == V_ASN1_OBJECT) {
        /* named curve: the curve's parameters copied from a template, then the point (no
         * decoder, no group construction: 8 µs instead of 38 µs for P-256) */
        int curve = OBJ_obj2nid(pval);
        const EVP_PKEY *tmpl = ec_template(curve);
        if (tmpl != NULL) {
            if ((key = EVP_PKEY_new()) == NULL || EVP_PKEY_copy_parameters(key, tmpl) != 1 ||
                EVP_PKEY_set1_encoded_public_key(key, bits, (size_t)nbits) != 1) {
                EVP_PKEY_free(key);
                return NULL;
            }
            mark_imported(key, curve);
            return key;
        }
    }
    if ((nid == NID_ED25519 || nid == NID_ED448) && ptype == V_ASN1_UNDEF)
        return EVP_PKEY_new_raw_public_key_ex(NULL, nid == NID_ED25519 ? "ED25519" : "ED448", NULL,
                                              bits, (size_t)nbits);
    /* anything else (RSA, explicit curves, a ninth named curve): the generic decoder */
    unsigned char *der = NULL;
    int len = i2d_CG_SPKI(spki, &der);
    const unsigned char *p = der;
    key = len > 0 ? d2i_PUBKEY(NULL, &p, len) : NULL;
    OPENSSL_free(der);
    return key;
}

/* The SubjectPublicKeyInfo DER in der[0..len) as a CG_SPKI (new); frees der. */
static CG_SPKI *spki_from_der(unsigned char *der, int len)
{
    const unsigned char *p = der;
    CG_SPKI *spki = len > 0 ? d2i_CG_SPKI(NULL, &p, len) : NULL;
    OPENSSL_free(der);
    return spki;
}

CG_SPKI *ca_spki_from_pkey_(const EVP_PKEY *key)
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(key, &der);
    return spki_from_der(der, len);
}

CG_SPKI *ca_spki_from_x509_pubkey_(const X509_PUBKEY *xpk)
{
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(xpk, &der);
    return spki_from_der(der, len);
}

EVP_MD_CTX *ca_signer_new_(const struct cg_ca *ca)
{
    EVP_MD_CTX *signer = EVP_MD_CTX_new(), *probe = EVP_MD_CTX_new();
    const EVP_MD *md = protect_default_md_(ca->key);
    int ok = signer != NULL && probe != NULL &&
             EVP_DigestSignInit_ex(signer, NULL, md ? EVP_MD_get0_name(md) : NULL, NULL, NULL,
                                   ca->key, NULL) == 1 &&
             EVP_MD_CTX_copy_ex(probe, signer) == 1;
    EVP_MD_CTX_free(probe);
    if (!ok) {
        EVP_MD_CTX_free(signer);
        signer = NULL;
        ERR_clear_error();
    }
    return signer;
}

/* Sign x with a copy of signer, or with X509_sign() when there is none. */
static int sign_cert(X509 *x, const struct cg_ca *ca, const EVP_MD_CTX *signer)
{
    if (signer == NULL)
        return X509_sign(x, ca->key, protect_default_md_(ca->key)) > 0;
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    int ok = mc != NULL && EVP_MD_CTX_copy_ex(mc, signer) == 1 && X509_sign_ctx(x, mc) > 0;
    EVP_MD_CTX_free(mc);
    return ok;
}

int ca_issue_(const struct cg_ca *ca, const EVP_MD_CTX *signer, const struct cg_cert_profile *cp,
              const struct ca_request *rq, const uint8_t serial[16], X509 **out, char *detail,
              size_t dlen)
{
    int rc = CG_ECRYPTO;
    X509 *x = X509_new();
    BIGNUM *bn = NULL;
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    int ku_done = 0;
    *out = NULL;
    if (x == NULL || bc == NULL)
        goto out;
    if (X509_set_version(x, X509_VERSION_3) != 1)
        goto out;
    bn = BN_bin2bn(serial, 16, NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto out;
    if (X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        X509_set_subject_name(x, rq->subject) != 1 || set_pubkey(x, rq) != CG_OK)
        goto out;
    rc = set_validity(x, cp, rq->validity);
    if (rc != CG_OK) {
        snprintf(detail, dlen, "requested validity is empty");
        goto out;
    }
    rc = CG_ECRYPTO;
    bc->ca = 0;
    if (add_ext_nid(x, NID_basic_constraints, 1, bc) != CG_OK)
        goto out;
    if (add_key_ids(x, ca->cert) != CG_OK)
        goto out;
    if (add_requested_exts(x, cp, rq->exts, &ku_done) != CG_OK)
        goto out;
    if (!ku_done && add_key_usage(x, cp->key_usage, cp->key_usage_critical) != CG_OK)
        goto out;
    if (add_eku(x, cp) != CG_OK)
        goto out;
    const unsigned char *der = NULL;
    size_t der_len = 0;
    if (!sign_cert(x, ca, signer) || core_cert_set_der_(x, &der, &der_len) != CG_OK)
        goto out;
    *out = x;
    x = NULL;
    rc = CG_OK;
out:
    X509_free(x);
    BN_free(bn);
    BASIC_CONSTRAINTS_free(bc);
    return rc;
}

int ca_cert_rec_fill_(X509 *cert, const char *ca_name, const char *issuer_text,
                      const char *username, struct cg_cert_rec *rec)
{
    int rc = CG_ECRYPTO;
    unsigned char *encoded = NULL;
    size_t len = 0;
    const unsigned char *der = core_cert_der_(cert, &len); /* as ca_issue_ encoded it */
    BIGNUM *bn = NULL;
    if (der == NULL) {
        int n = i2d_X509(cert, &encoded);
        if (n <= 0)
            goto out;
        der = encoded;
        len = (size_t)n;
    }
    rec->der = malloc(len);
    if (rec->der == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    memcpy(rec->der, der, len);
    rec->der_len = len;
    if (EVP_Digest(der, len, rec->fingerprint, NULL, core_md_(NID_sha256), NULL) != 1)
        goto out;
    if (ca_name_key_(X509_get_issuer_name(cert), rec->issuer_key) != CG_OK)
        goto out;
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    if (bn == NULL || BN_num_bytes(bn) > 32 || BN_is_negative(bn))
        goto out;
    rec->serial_len = (size_t)BN_bn2bin(bn, rec->serial);
    char *s = ca_name_text_(X509_get_subject_name(cert));
    char *i = issuer_text == NULL ? ca_name_text_(X509_get_issuer_name(cert)) : NULL;
    rec->subject = s ? strdup(s) : NULL;
    rec->issuer = issuer_text ? strdup(issuer_text) : i ? strdup(i) : NULL;
    OPENSSL_free(s);
    OPENSSL_free(i);
    rec->ca = ca_name ? strdup(ca_name) : NULL;
    rec->username = username ? strdup(username) : NULL;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
        goto out;
    rec->not_after = timegm(&tm);
    rec->issued_at = time(NULL);
    rec->status = CG_CERT_ACTIVE;
    rec->reason = -1;
    if (rec->subject == NULL || rec->issuer == NULL || rec->ca == NULL ||
        (username && rec->username == NULL)) {
        rc = CG_ENOMEM;
        goto out;
    }
    rc = CG_OK;
out:
    OPENSSL_free(encoded);
    BN_free(bn);
    return rc;
}
