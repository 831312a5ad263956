/*
 * issue.c - the embedded CA's certificates: the TBSCertificate written as DER from the request
 * and the profile, signed, and the store record of the result.
 *
 * DESIGN: policy (what goes into a certificate) is the one ca.c's header states; this file
 * only writes it. OpenSSL's way (X509_new, the setters, X509_sign_ctx, i2d_X509) copies each
 * name by encoding and decoding it, copies each extension the same way, encodes the TBS once
 * to sign it and the whole certificate again to send it: a tenth of the server's CPU per
 * enrollment in the profiles, three times the signature. The certificate is instead written
 * once, as bytes: the parts that never change for a CA (signature AlgorithmIdentifier,
 * issuer name, authorityKeyIdentifier) are encoded once per configuration generation in its
 * struct ca_signer, the request's subject and key are copied as the request encoded them (as
 * X509_set_subject_name and ca_spki_key_'s X509_PUBKEY_set0_param did), and the result is the
 * DER that is stored, hashed for certConf and sent. No X509 object is built for it.
 *
 * The AlgorithmIdentifier is taken from a certificate OpenSSL itself signs with the same
 * context when the signer is made, so RSA-PSS parameters and the like are exactly OpenSSL's.
 * Thread-safe: a ca_signer is read-only once made; each signature copies its context.
 */
#include "cg_buf.h"
#include "cg_err.h"
#include "core_local.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- DER writing --------------------------------------------------------------------------- */

/* A BIT STRING of whole bytes (no unused bits). */
static int der_bits(struct cg_buf *b, const uint8_t *p, size_t len)
{
    uint8_t h[7];
    size_t n = core_der_head_(V_ASN1_BIT_STRING, len + 1, h);
    h[n++] = 0; /* unused bits */
    int rc = cg_buf_append(b, h, n);
    return rc == CG_OK ? cg_buf_append(b, p, len) : rc;
}

/* A positive INTEGER from big-endian magnitude bytes (minimal: leading zeros dropped, a zero
 * prepended when the top bit is set). */
static int der_uint(struct cg_buf *b, const uint8_t *mag, size_t len)
{
    uint8_t v[33];
    while (len > 1 && mag[0] == 0) {
        mag++;
        len--;
    }
    if (len == 0 || len > 32)
        return CG_ECRYPTO;
    size_t pad = (mag[0] & 0x80) ? 1 : 0;
    v[0] = 0;
    memcpy(v + pad, mag, len);
    return core_der_put_(b, V_ASN1_INTEGER, v, len + pad);
}

/* An INTEGER in minimal two's complement (certReqId; -1 for p10cr). */
static int der_int64(struct cg_buf *b, int64_t v)
{
    uint8_t be[8];
    size_t skip = 0;
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    while (skip < 7 && ((be[skip] == 0x00 && !(be[skip + 1] & 0x80)) ||
                        (be[skip] == 0xff && (be[skip + 1] & 0x80))))
        skip++;
    return core_der_put_(b, V_ASN1_INTEGER, be + skip, sizeof(be) - skip);
}

size_t core_time_text_(time_t t, int generalized, char out[16], int *tag)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return 0;
    int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999)
        return 0;
    int utc = !generalized && year >= 1950 && year < 2050;
    const int fields[] = {year / 100, year % 100, tm.tm_mon + 1, tm.tm_mday,
                          tm.tm_hour, tm.tm_min,  tm.tm_sec};
    size_t n = 0;
    for (size_t i = utc ? 1 : 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        out[n++] = (char)('0' + fields[i] / 10); /* two digits each, no snprintf */
        out[n++] = (char)('0' + fields[i] % 10);
    }
    out[n++] = 'Z';
    *tag = utc ? V_ASN1_UTCTIME : V_ASN1_GENERALIZEDTIME;
    return n;
}

/* A Time as RFC 5280 4.1.2.5 and X509_time_adj_ex write it: UTCTime for 1950-2049, else
 * GeneralizedTime; seconds, Zulu. */
static int der_time(struct cg_buf *b, time_t t)
{
    char s[16];
    int tag = 0;
    size_t n = core_time_text_(t, 0, s, &tag);
    return n > 0 ? core_der_put_(b, (uint8_t)tag, s, n) : CG_ECRYPTO;
}

/* --- the signer ----------------------------------------------------------------------------- */

/* A signing context for s's key: a copy of the prepared one, or one initialised now when the
 * provider cannot copy contexts. */
static EVP_MD_CTX *signer_ctx(const struct ca_signer *s)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    int ok =
        mc != NULL &&
        (s->ctx != NULL ? EVP_MD_CTX_copy_ex(mc, s->ctx) == 1
                        : EVP_DigestSignInit_ex(mc, NULL, s->md ? EVP_MD_get0_name(s->md) : NULL,
                                                NULL, NULL, s->key, NULL) == 1);
    if (!ok) {
        EVP_MD_CTX_free(mc);
        mc = NULL;
    }
    return mc;
}

/* The authorityKeyIdentifier extension of certificates issued by ca_cert: its subject key
 * identifier, or the SHA-1 of its key when it has none (RFC 5280 4.2.1.2 method 1). */
static int akid_ext(X509 *ca_cert, struct cg_buf *b)
{
    int rc = CG_ECRYPTO;
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca_cert);
    X509_EXTENSION *ex = NULL;
    if (akid == NULL)
        goto out;
    if (ski != NULL) {
        akid->keyid = ASN1_OCTET_STRING_dup(ski);
    } else if ((akid->keyid = ASN1_OCTET_STRING_new()) == NULL ||
               X509_pubkey_digest(ca_cert, core_md_(NID_sha1), md, &mdlen) != 1 ||
               ASN1_OCTET_STRING_set(akid->keyid, md, (int)mdlen) != 1) {
        goto out;
    }
    if (akid->keyid == NULL || (ex = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid)) == NULL)
        goto out;
    rc = DER_I2D(b, i2d_X509_EXTENSION, ex);
out:
    X509_EXTENSION_free(ex);
    AUTHORITY_KEYID_free(akid);
    return rc;
}

/* Sign a minimal certificate with a context like the ones certificates will be signed with,
 * and keep what OpenSSL wrote as its signature AlgorithmIdentifier. */
static int learn_alg(struct ca_signer *s, X509 *ca_cert)
{
    X509 *x = X509_new();
    EVP_MD_CTX *mc = signer_ctx(s);
    struct cg_buf alg = {0};
    int rc = CG_ECRYPTO;
    if (x == NULL || mc == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca_cert)) != 1 ||
        X509_set_subject_name(x, X509_get_subject_name(ca_cert)) != 1 ||
        X509_set_pubkey(x, X509_get0_pubkey(ca_cert)) != 1 || X509_sign_ctx(x, mc) <= 0)
        goto out;
    if ((rc = DER_I2D(&alg, i2d_X509_ALGOR, X509_get0_tbs_sigalg(x))) != CG_OK)
        goto out;
    s->sig_nid = X509_get_signature_nid(x);
    s->alg = alg.data;
    s->alg_len = alg.len;
    alg.data = NULL;
out:
    free(alg.data);
    EVP_MD_CTX_free(mc);
    X509_free(x);
    return rc;
}

struct ca_signer *ca_signer_new_(const struct cg_ca *ca)
{
    struct ca_signer *s = calloc(1, sizeof(*s));
    struct cg_buf akid = {0};
    const unsigned char *issuer = NULL;
    size_t issuer_len = 0;
    if (s == NULL)
        return NULL;
    s->key = ca->key;
    s->md = protect_default_md_(ca->key);
    s->issuer_name = X509_get_subject_name(ca->cert);
    /* kept when the provider can copy it; else each signature initialises its own */
    EVP_MD_CTX *ctx = signer_ctx(s), *probe = EVP_MD_CTX_new();
    if (ctx != NULL && probe != NULL && EVP_MD_CTX_copy_ex(probe, ctx) == 1) {
        s->ctx = ctx;
        ctx = NULL;
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_CTX_free(probe);
    if (learn_alg(s, ca->cert) != CG_OK || akid_ext(ca->cert, &akid) != CG_OK ||
        X509_NAME_get0_der(s->issuer_name, &issuer, &issuer_len) != 1 ||
        (s->issuer = malloc(issuer_len)) == NULL ||
        ca_name_key_(s->issuer_name, s->issuer_key) != CG_OK ||
        (s->issuer_text = ca_name_text_(s->issuer_name)) == NULL) {
        free(akid.data);
        ca_signer_free_(s);
        ERR_clear_error();
        return NULL;
    }
    memcpy(s->issuer, issuer, issuer_len);
    s->issuer_len = issuer_len;
    s->akid = akid.data;
    s->akid_len = akid.len;
    ERR_clear_error(); /* a context the provider could not copy left its error */
    return s;
}

void ca_signer_free_(struct ca_signer *s)
{
    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->ctx);
    free(s->alg);
    free(s->issuer);
    OPENSSL_free(s->issuer_text);
    free(s->akid);
    free(s);
}

/* --- the certificate ------------------------------------------------------------------------ */

/* basicConstraints, critical, cA FALSE (an empty SEQUENCE: the DEFAULT is not encoded) */
static const uint8_t ext_bc_ee[] = {0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13,
                                    0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00};

/* Append an extension of nid with value (an OpenSSL X509V3 structure). */
static int put_ext(struct cg_buf *b, int nid, int crit, void *value)
{
    X509_EXTENSION *ex = X509V3_EXT_i2d(nid, crit, value);
    int rc = ex != NULL ? DER_I2D(b, i2d_X509_EXTENSION, ex) : CG_ECRYPTO;
    X509_EXTENSION_free(ex);
    return rc;
}

/* subjectKeyIdentifier, not critical, keyIdentifier id */
static int put_ski(struct cg_buf *b, const uint8_t id[20])
{
    static const uint8_t head[] = {0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d,
                                   0x0e, 0x04, 0x16, 0x04, 0x14};
    int rc = cg_buf_append(b, head, sizeof(head));
    return rc == CG_OK ? cg_buf_append(b, id, 20) : rc;
}

static int put_key_usage(struct cg_buf *b, unsigned bits, int crit)
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
    rc = put_ext(b, NID_key_usage, crit, ku);
out:
    ASN1_BIT_STRING_free(ku);
    return rc;
}

static int put_eku(struct cg_buf *b, const struct cg_cert_profile *cp)
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
    rc = put_ext(b, NID_ext_key_usage, cp->eku_critical, eku);
out:
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

struct ca_exts *ca_exts_new_(const struct cg_cert_profile *cp)
{
    struct ca_exts *e = calloc(1, sizeof(*e));
    struct cg_buf ku = {0}, eku = {0};
    if (e == NULL || put_key_usage(&ku, cp->key_usage, cp->key_usage_critical) != CG_OK ||
        put_eku(&eku, cp) != CG_OK) {
        free(ku.data);
        free(eku.data);
        free(e);
        ERR_clear_error();
        return NULL;
    }
    e->ku = ku.data;
    e->ku_len = ku.len;
    e->eku = eku.data;
    e->eku_len = eku.len;
    return e;
}

void ca_exts_free_(struct ca_exts *e)
{
    if (e == NULL)
        return;
    free(e->ku);
    free(e->eku);
    free(e);
}

/* Copies the requested extensions the profile lets through. Extensions the CA sets itself
 * (key identifiers, basic constraints, and key usage / EKU unless overridden) are skipped. */
static int put_requested_exts(struct cg_buf *b, const struct cg_cert_profile *cp,
                              STACK_OF(X509_EXTENSION) * exts, int *ku_done)
{
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *ex = sk_X509_EXTENSION_value(exts, i);
        int take;
        switch (OBJ_obj2nid(X509_EXTENSION_get_object(ex))) {
        case NID_subject_alt_name:
            take = 1;
            break;
        case NID_key_usage:
            take = cp->allow_key_usage_override;
            *ku_done |= take;
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
        int rc = take ? DER_I2D(b, i2d_X509_EXTENSION, ex) : CG_OK;
        if (rc != CG_OK)
            return rc;
    }
    return CG_OK;
}

/* notBefore a minute back (clients with slightly slow clocks), notAfter by the profile; a
 * requested validity only under allow_validity_override and never longer than the profile's. */
static int validity(const struct cg_cert_profile *cp, const CG_OPTVALIDITY *v, time_t *nb,
                    time_t *na)
{
    time_t now = time(NULL);
    *nb = now - 60;
    *na = now + (time_t)cp->validity_s;
    if (cp->allow_validity_override && v != NULL) {
        struct tm tm;
        if (v->notBefore != NULL && ASN1_TIME_to_tm(v->notBefore, &tm) == 1)
            *nb = timegm(&tm);
        if (v->notAfter != NULL && ASN1_TIME_to_tm(v->notAfter, &tm) == 1)
            *na = timegm(&tm);
        if (*na > *nb + (time_t)cp->validity_s)
            *na = *nb + (time_t)cp->validity_s;
        if (*na <= *nb)
            return CG_ECMP_BADCERTTEMPLATE;
    }
    return CG_OK;
}

/* SHA-1 of the subjectPublicKey bits: the subjectKeyIdentifier (RFC 5280 4.2.1.2 method 1). */
static int key_id(const uint8_t *bits, size_t nbits, uint8_t id[20])
{
    unsigned n = 0;
    return EVP_Digest(bits, nbits, id, &n, core_md_(NID_sha1), NULL) == 1 && n == 20 ? CG_OK
                                                                                     : CG_ECRYPTO;
}

/* The SubjectPublicKeyInfo as received: its AlgorithmIdentifier re-encoded and its key bits
 * copied with no unused bits, as X509_PUBKEY_set0_param puts them (a key whose parameters are
 * of another kind is written by OpenSSL from the decoded key); and the key's identifier. */
static int put_spki(struct cg_buf *b, const struct ca_request *rq, uint8_t id[20])
{
    int ptype = V_ASN1_UNDEF;
    if (rq->spki != NULL)
        X509_ALGOR_get0(NULL, &ptype, NULL, rq->spki->algor);
    if (rq->spki == NULL || (ptype != V_ASN1_OBJECT && ptype != V_ASN1_SEQUENCE &&
                             ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)) {
        X509_PUBKEY *xpk = NULL;
        const unsigned char *pk = NULL;
        int pklen = 0;
        int rc = X509_PUBKEY_set(&xpk, rq->pubkey) == 1 &&
                         X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, xpk) == 1 && pklen > 0
                     ? key_id(pk, (size_t)pklen, id)
                     : CG_ECRYPTO;
        if (rc == CG_OK)
            rc = DER_I2D(b, i2d_X509_PUBKEY, xpk);
        X509_PUBKEY_free(xpk);
        return rc;
    }
    const uint8_t *bits = ASN1_STRING_get0_data(rq->spki->public_key);
    int len = ASN1_STRING_length(rq->spki->public_key);
    size_t from = b->len;
    if (len <= 0)
        return CG_ECRYPTO;
    int rc = key_id(bits, (size_t)len, id);
    if (rc == CG_OK)
        rc = DER_I2D(b, i2d_X509_ALGOR, rq->spki->algor);
    if (rc == CG_OK && (rc = der_bits(b, bits, (size_t)len)) == CG_OK)
        rc = core_der_wrap_(b, from, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED);
    return rc;
}

/* The TBSCertificate into b. */
static int write_tbs(struct cg_buf *b, const struct ca_signer *s, const struct cg_cert_profile *cp,
                     const struct ca_exts *pe, const struct ca_request *rq,
                     const uint8_t serial[16], time_t nb, time_t na)
{
    static const uint8_t v3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
    const unsigned char *subject = NULL;
    size_t subject_len = 0;
    uint8_t id[20];
    size_t at;
    int ku_done = 0, rc;
    if (rq->subject.der != NULL) {
        subject = rq->subject.der;
        subject_len = rq->subject.len;
    } else if (rq->subject.name == NULL ||
               X509_NAME_get0_der(rq->subject.name, &subject, &subject_len) != 1) {
        return CG_ECRYPTO;
    }
    if ((rc = cg_buf_append(b, v3, sizeof(v3))) != CG_OK ||
        (rc = der_uint(b, serial, 16)) != CG_OK ||
        (rc = cg_buf_append(b, s->alg, s->alg_len)) != CG_OK ||
        (rc = cg_buf_append(b, s->issuer, s->issuer_len)) != CG_OK)
        return rc;
    at = b->len;
    if ((rc = der_time(b, nb)) != CG_OK || (rc = der_time(b, na)) != CG_OK ||
        (rc = core_der_wrap_(b, at, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK)
        return rc;
    if ((rc = cg_buf_append(b, subject, subject_len)) != CG_OK ||
        (rc = put_spki(b, rq, id)) != CG_OK)
        return rc;
    at = b->len;
    if ((rc = cg_buf_append(b, ext_bc_ee, sizeof(ext_bc_ee))) != CG_OK ||
        (rc = put_ski(b, id)) != CG_OK || (rc = cg_buf_append(b, s->akid, s->akid_len)) != CG_OK ||
        (rc = put_requested_exts(b, cp, rq->exts, &ku_done)) != CG_OK ||
        (!ku_done && (rc = cg_buf_append(b, pe->ku, pe->ku_len)) != CG_OK) ||
        (rc = cg_buf_append(b, pe->eku, pe->eku_len)) != CG_OK)
        return rc;
    if ((rc = core_der_wrap_(b, at, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK ||
        (rc = core_der_wrap_(b, at, 0xa3)) != CG_OK)
        return rc;
    return core_der_wrap_(b, 0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED);
}

int ca_issue_(const struct ca_signer *s, const struct cg_cert_profile *cp, const struct ca_exts *pe,
              const struct ca_request *rq, const uint8_t serial[16], struct ca_cert *out,
              char *detail, size_t dlen)
{
    struct ca_exts *own = NULL;
    struct cg_buf b = {0};
    uint8_t *sig = NULL;
    size_t siglen = 0;
    time_t nb, na;
    EVP_MD_CTX *mc = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return CG_ECRYPTO; /* the CA's key could not sign when the configuration was loaded */
    if ((rc = validity(cp, rq->validity, &nb, &na)) != CG_OK) {
        snprintf(detail, dlen, "requested validity is empty");
        return rc;
    }
    if (pe == NULL && (pe = own = ca_exts_new_(cp)) == NULL) {
        rc = CG_ECRYPTO;
        goto out;
    }
    /* room for a usual certificate at once (growing from nothing reallocated three times) */
    if ((rc = cg_buf_reserve(&b, 1024)) != CG_OK ||
        (rc = write_tbs(&b, s, cp, pe, rq, serial, nb, na)) != CG_OK)
        goto out;
    rc = CG_ECRYPTO;
    size_t max = (size_t)EVP_PKEY_get_size(s->key);
    siglen = max;
    /* the length is checked: OpenSSL 3.0's ECDSA reports success with (unsigned)-1 when
     * encoding the signature runs out of memory */
    if ((mc = signer_ctx(s)) == NULL || max == 0 || (sig = malloc(max)) == NULL ||
        EVP_DigestSign(mc, sig, &siglen, b.data, b.len) != 1 || siglen == 0 || siglen > max)
        goto out;
    /* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } */
    if ((rc = cg_buf_append(&b, s->alg, s->alg_len)) != CG_OK ||
        (rc = der_bits(&b, sig, siglen)) != CG_OK ||
        (rc = core_der_wrap_(&b, 0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK)
        goto out;
    out->der = cg_buf_steal(&b, &out->der_len);
    out->not_after = na;
    out->signer = s;
    out->subject = rq->subject;
    memcpy(out->serial, serial, sizeof(out->serial));
    rc = CG_OK;
out:
    ca_exts_free_(own);
    EVP_MD_CTX_free(mc);
    free(sig);
    free(b.data);
    return rc;
}

void ca_cert_clear_(struct ca_cert *c)
{
    free(c->der);
    memset(c, 0, sizeof(*c));
}

/* --- the response body ---------------------------------------------------------------------- */

int ca_certrep_der_(int rep_type, X509 *const *capubs, size_t n_capubs, int64_t cert_req_id,
                    const struct ca_cert *c, ASN1_STRING *out)
{
    static const uint8_t accepted[] = {0x30, 0x03, 0x02, 0x01, 0x00}; /* PKIStatusInfo {0} */
    struct cg_buf b = {0};
    size_t at, kp;
    int rc = CG_OK;
    if (rep_type < 0 || rep_type > 30)
        return CG_EINVAL;
    if ((rc = cg_buf_reserve(&b, 2048)) != CG_OK) /* the usual body at once */
        goto out;
    if (n_capubs > 0) { /* caPubs [1] SEQUENCE OF CMPCertificate */
        for (size_t i = 0; i < n_capubs && rc == CG_OK; i++)
            rc = core_cert_der_put_(&b, capubs[i]);
        if (rc != CG_OK ||
            (rc = core_der_wrap_(&b, 0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK ||
            (rc = core_der_wrap_(&b, 0, 0xa1)) != CG_OK)
            goto out;
    }
    /* response: SEQUENCE OF CertResponse (here one) { certReqId, status, certifiedKeyPair
     * { certOrEncCert: certificate [0] } }, each wrapped from the inside out */
    at = b.len;
    if ((rc = der_int64(&b, cert_req_id)) != CG_OK ||
        (rc = cg_buf_append(&b, accepted, sizeof(accepted))) != CG_OK)
        goto out;
    kp = b.len;
    if ((rc = cg_buf_append(&b, c->der, c->der_len)) != CG_OK ||
        (rc = core_der_wrap_(&b, kp, 0xa0)) != CG_OK ||
        (rc = core_der_wrap_(&b, kp, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK ||
        (rc = core_der_wrap_(&b, at, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK ||
        (rc = core_der_wrap_(&b, at, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK)
        goto out;
    /* CertRepMessage, then the body's [rep_type] */
    if ((rc = core_der_wrap_(&b, 0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK ||
        (rc = core_der_wrap_(&b, 0, (uint8_t)(0xa0 | rep_type))) != CG_OK)
        goto out;
    if (b.len > INT_MAX || ASN1_STRING_set(out, b.data, (int)b.len) != 1)
        rc = CG_ENOMEM;
out:
    free(b.data);
    return rc;
}

/* --- store records -------------------------------------------------------------------------- */

/* Fill rec from a certificate's DER and the parts read from it (the texts are copied). */
static int rec_fill(struct cg_cert_rec *rec, const uint8_t *der, size_t len,
                    const uint8_t issuer_key[32], const uint8_t *serial, size_t serial_len,
                    const char *subject_text, const char *issuer_text, time_t not_after,
                    const char *ca_name, const char *username)
{
    while (serial_len > 1 && serial[0] == 0) {
        serial++;
        serial_len--;
    }
    rec->subject = subject_text != NULL ? strdup(subject_text) : NULL;
    if (serial_len == 0 || serial_len > sizeof(rec->serial))
        return CG_ECRYPTO;
    if ((rec->der = malloc(len)) == NULL)
        return CG_ENOMEM;
    memcpy(rec->der, der, len);
    rec->der_len = len;
    if (EVP_Digest(der, len, rec->fingerprint, NULL, core_md_(NID_sha256), NULL) != 1)
        return CG_ECRYPTO;
    memcpy(rec->issuer_key, issuer_key, 32);
    memcpy(rec->serial, serial, serial_len);
    rec->serial_len = serial_len;
    rec->issuer = issuer_text ? strdup(issuer_text) : NULL;
    rec->ca = ca_name ? strdup(ca_name) : NULL;
    rec->username = username ? strdup(username) : NULL;
    rec->not_after = not_after;
    rec->issued_at = time(NULL);
    rec->status = CG_CERT_ACTIVE;
    rec->reason = -1;
    if (rec->subject == NULL || rec->issuer == NULL || rec->ca == NULL ||
        (username && rec->username == NULL))
        return CG_ENOMEM;
    return CG_OK;
}

int ca_issued_rec_fill_(const struct ca_cert *c, const char *ca_name, const char *username,
                        const char *subject_text, struct cg_cert_rec *rec)
{
    char *own = subject_text != NULL ? NULL : ca_dn_text_(&c->subject);
    int rc = rec_fill(rec, c->der, c->der_len, c->signer->issuer_key, c->serial, sizeof(c->serial),
                      subject_text != NULL ? subject_text : own, c->signer->issuer_text,
                      c->not_after, ca_name, username);
    OPENSSL_free(own);
    return rc;
}

int ca_cert_rec_fill_(X509 *cert, const char *ca_name, const char *username,
                      struct cg_cert_rec *rec)
{
    int rc = CG_ECRYPTO;
    unsigned char *der = NULL, serial[32];
    uint8_t issuer_key[32];
    int len = i2d_X509(cert, &der), serial_len = 0;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *issuer_text = ca_name_text_(X509_get_issuer_name(cert));
    char *subject_text = ca_name_text_(X509_get_subject_name(cert));
    struct tm tm;
    if (len <= 0 || bn == NULL || BN_is_negative(bn) || BN_num_bytes(bn) > 32 ||
        (serial_len = BN_bn2bin(bn, serial)) <= 0 ||
        ca_name_key_(X509_get_issuer_name(cert), issuer_key) != CG_OK ||
        ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
        goto out;
    rc = rec_fill(rec, der, (size_t)len, issuer_key, serial, (size_t)serial_len, subject_text,
                  issuer_text, timegm(&tm), ca_name, username);
out:
    OPENSSL_free(der);
    OPENSSL_free(subject_text);
    OPENSSL_free(issuer_text);
    BN_free(bn);
    return rc;
}
