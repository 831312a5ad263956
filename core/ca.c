/*
 * ca.c - the embedded CA's policy and inputs: serials, names, the keys a profile accepts, and
 * requested public keys loaded without OpenSSL's decoder. issue.c writes and signs the
 * certificates.
 *
 * DESIGN: pure functions over borrowed inputs; thread-safe. Certificate policy: subject and public
 * key come from the request; validity, key usage and extended key usage from the profile, with the
 * template's validity honoured only under allow_validity_override (and never beyond the
 * profile's validity) and its key usage only under allow_key_usage_override. A requested
 * subjectAltName is always copied (it is part of the identity, as the subject is); other
 * requested extensions only under allow_extension_override. Serials are 16 random bytes,
 * positive, unique in the store (checked by the caller on insert).
 */
#include "cg_err.h"
#include "core_local.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Random bytes for nonces, serials and names, handed out from a per-thread block of OpenSSL's
 * public DRBG output. Each RAND_bytes call costs a DRBG generate and update (about 5 µs,
 * whatever the length): three per enrollment, 2.6% of the server's CPU in the profile. The
 * block is as random as the calls it replaces; no process forks after the workers start. */
#define RAND_BLOCK 1024

int core_rand_(void *out, size_t n)
{
    static _Thread_local unsigned char block[RAND_BLOCK];
    static _Thread_local size_t used = RAND_BLOCK;
    if (n > RAND_BLOCK / 4)
        return RAND_bytes(out, (int)n) == 1 ? CG_OK : CG_ECRYPTO;
    if (RAND_BLOCK - used < n) {
        if (RAND_bytes(block, RAND_BLOCK) != 1)
            return CG_ECRYPTO;
        used = 0;
    }
    memcpy(out, block + used, n);
    OPENSSL_cleanse(block + used, n); /* handed out once */
    used += n;
    return CG_OK;
}

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
    return core_rand_(serial + 7, 9);
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

/* 1 for the bytes of a value that RFC 2253 printing writes as they are: letters, digits,
 * inner spaces and -._:/@()' (none of the characters OpenSSL escapes: ,+"\<>;# and controls,
 * nor a first or last space). */
static int plain_value(const unsigned char *p, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char c = p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c == ' ' && i > 0 && i < n - 1) || (c != 0 && strchr("-._:/@()'", c) != NULL))
            continue;
        return 0;
    }
    return 1;
}

/* The text of a name whose every attribute has a short name and a plain PrintableString,
 * UTF8String or IA5String value: what X509_NAME_print_ex writes with ca_name_text_'s flags
 * (the unit test compares them), at a fraction of the cost. NULL for any other name. */
static char *plain_name_text(const struct dn_ref *ref)
{
    size_t len = 0;
    char *out = NULL;
    for (int pass = 0; pass < 2; pass++) { /* measure, then write */
        struct dn_iter it;
        struct dn_attr a;
        size_t at = 0;
        int prev_set = -1, i = 0, r;
        dn_iter_init_(&it, ref);
        for (; (r = dn_iter_next_(&it, &a)) == 1; i++) {
            const char *sn = a.nid != NID_undef ? OBJ_nid2sn(a.nid) : NULL;
            if (sn == NULL ||
                (a.type != V_ASN1_PRINTABLESTRING && a.type != V_ASN1_UTF8STRING &&
                 a.type != V_ASN1_IA5STRING) ||
                !plain_value(a.val, a.len))
                break;
            size_t snlen = strlen(sn);
            if (out != NULL) {
                if (i > 0)
                    out[at] = a.set == prev_set ? '+' : ',';
                memcpy(out + at + (i > 0), sn, snlen);
                out[at + (i > 0) + snlen] = '=';
                if (a.len > 0) /* an empty value may have no data */
                    memcpy(out + at + (i > 0) + snlen + 1, a.val, (size_t)a.len);
            }
            at += (i > 0) + snlen + 1 + (size_t)a.len;
            prev_set = a.set;
        }
        if (r != 0) {
            OPENSSL_free(out);
            return NULL;
        }
        if (out != NULL) {
            out[at] = '\0';
            break;
        }
        len = at;
        if ((out = OPENSSL_malloc(len + 1)) == NULL)
            return NULL;
    }
    return out;
}

char *ca_dn_text_(const struct dn_ref *ref)
{
    char *plain = plain_name_text(ref);
    X509_NAME *owned = NULL;
    if (plain != NULL)
        return plain;
    const X509_NAME *name = dn_decoded_(ref, &owned);
    BIO *b = name != NULL ? BIO_new(BIO_s_mem()) : NULL;
    char *out = NULL;
    if (b == NULL)
        goto done;
    unsigned long flags = XN_FLAG_SEP_COMMA_PLUS | XN_FLAG_FN_SN | ASN1_STRFLGS_RFC2253;
    flags &= ~(unsigned long)ASN1_STRFLGS_ESC_MSB;
    if (X509_NAME_print_ex(b, name, 0, flags) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        out = OPENSSL_malloc((size_t)n + 1);
        if (out != NULL) {
            if (n > 0)
                memcpy(out, p, (size_t)n); /* an empty name prints nothing (p may be NULL) */
            out[n] = '\0';
        }
    }
done:
    BIO_free(b);
    X509_NAME_free(owned);
    return out;
}

char *ca_name_text_(const X509_NAME *name)
{
    struct dn_ref ref = {name, NULL, 0};
    return ca_dn_text_(&ref);
}

/* EVP_PKEY ex_data of an EC key that ca_spki_key_ imported from the uncompressed form onto a
 * named curve (ecfast_key_): the curve's NID. Such a point is on its curve (the import checks)
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
        }
        for (size_t i = 0; i < cp->n_ec_curves; i++)
            if (cp->ec_curve_nids[i] == nid)
                return CG_OK;
        if (group[0] == '\0' && nid != NID_undef) /* the name only for the refusal */
            snprintf(group, sizeof(group), "%s", OBJ_nid2sn(nid));
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
        /* a common named curve: the point on a group built once (ecfast.c; no decoder, no
         * group construction: 3 µs instead of 38 µs for P-256) */
        int curve = OBJ_obj2nid(pval);
        if (ecfast_curve_(curve)) {
            if ((key = ecfast_key_(curve, bits, (size_t)nbits)) != NULL)
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
