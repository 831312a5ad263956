/*
 * protect.c - message protection: password-based MAC (RFC 4211 4.4 / RFC 4210 5.1.3.1) and
 * signatures over ProtectedPart.
 *
 * DESIGN: stateless and thread-safe. The PBM iteration count is checked against the
 * configured maximum before any hashing, so a hostile count costs nothing. MACs are compared
 * in constant time. The PBM key derivation is done here (pbm.c) rather than with
 * OSSL_CRMF_pbm_new() so that the key is derived once per request and reused for the response,
 * and once per transaction for a client that keeps its PBM parameters.
 */
#include "cg_buf.h"
#include "cg_err.h"
#include "core_local.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* An optional [tag] EXPLICIT OCTET STRING of the header. */
static int header_octets(struct cg_buf *b, int tag, const ASN1_OCTET_STRING *s)
{
    size_t at = b->len;
    int rc = CG_OK;
    if (s != NULL && (rc = core_der_put_(b, V_ASN1_OCTET_STRING, ASN1_STRING_get0_data(s),
                                         (size_t)ASN1_STRING_length(s))) == CG_OK)
        rc = core_der_wrap_(b, at, (uint8_t)(0xa0 | tag));
    return rc;
}

/* A non-negative INTEGER as i2d writes it: the magnitude, with a zero octet before a first
 * octet whose high bit is set. Any other (negative, empty, padded) through i2d. */
static int der_integer(struct cg_buf *b, const ASN1_INTEGER *a)
{
    const uint8_t *d = ASN1_STRING_get0_data(a);
    int n = ASN1_STRING_length(a);
    if (ASN1_STRING_type(a) != V_ASN1_INTEGER || n < 1 || (n > 1 && d[0] == 0) || n > 64)
        return DER_I2D(b, i2d_ASN1_INTEGER, a);
    uint8_t v[65] = {0};
    int pad = d[0] & 0x80 ? 1 : 0;
    memcpy(v + pad, d, (size_t)n);
    return core_der_put_(b, V_ASN1_INTEGER, v, (size_t)(n + pad));
}

/* An ANY holding NULL, an OBJECT IDENTIFIER or a SEQUENCE (kept whole) as i2d writes it;
 * any other through i2d_ASN1_TYPE. */
static int der_any(struct cg_buf *b, const ASN1_TYPE *t)
{
    static const uint8_t null_der[] = {V_ASN1_NULL, 0};
    if (t->type == V_ASN1_NULL)
        return cg_buf_append(b, null_der, sizeof(null_der));
    if (t->type == V_ASN1_OBJECT && OBJ_length(t->value.object) > 0)
        return core_der_put_(b, V_ASN1_OBJECT, OBJ_get0_data(t->value.object),
                             OBJ_length(t->value.object));
    if (t->type == V_ASN1_SEQUENCE && ASN1_STRING_length(t->value.sequence) > 0)
        return cg_buf_append(b, ASN1_STRING_get0_data(t->value.sequence),
                             (size_t)ASN1_STRING_length(t->value.sequence));
    return DER_I2D(b, i2d_ASN1_TYPE, t);
}

/* SEQUENCE { OBJECT IDENTIFIER, ANY OPTIONAL }, the shape of an AlgorithmIdentifier and of
 * an InfoTypeAndValue, as i2d writes it (oid not empty). */
static int der_oid_any(struct cg_buf *b, const ASN1_OBJECT *oid, const ASN1_TYPE *any)
{
    size_t at = b->len;
    int rc;
    if ((rc = core_der_put_(b, V_ASN1_OBJECT, OBJ_get0_data(oid), OBJ_length(oid))) != CG_OK ||
        (any != NULL && (rc = der_any(b, any)) != CG_OK))
        return rc;
    return core_der_wrap_(b, at, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED);
}

static int der_algor(struct cg_buf *b, const X509_ALGOR *a)
{
    return OBJ_length(a->algorithm) > 0 ? der_oid_any(b, a->algorithm, a->parameter)
                                        : DER_I2D(b, i2d_X509_ALGOR, a);
}

static int der_itav(struct cg_buf *b, const CG_ITAV *it)
{
    return OBJ_length(it->type) > 0 ? der_oid_any(b, it->type, it->value)
                                    : DER_I2D(b, i2d_CG_ITAV, it);
}

/* The body as i2d_CG_PKIBODY writes it: a body already encoded (CG_BODY_DER) and pkiConf
 * directly, any other through the template. */
static int der_body(struct cg_buf *b, const CG_PKIBODY *body)
{
    static const uint8_t pkiconf[] = {0xa0 | CG_BODY_PKICONF, 2, V_ASN1_NULL, 0};
    if (body->type == CG_BODY_DER && ASN1_STRING_length(body->value.der) > 0)
        return cg_buf_append(b, ASN1_STRING_get0_data(body->value.der),
                             (size_t)ASN1_STRING_length(body->value.der));
    if (body->type == CG_BODY_PKICONF)
        return cg_buf_append(b, pkiconf, sizeof(pkiconf));
    return DER_I2D(b, i2d_CG_PKIBODY, body);
}

/* The header as i2d_CG_PKIHEADER writes it (the unit test compares them), without the
 * template encoder, which encodes every field twice at each level to learn the lengths. A
 * header with freeText is left to the template (the caller falls back). */
static int header_der(struct cg_buf *b, const CG_PKIHEADER *h)
{
    size_t at = b->len, at2;
    int rc;
    if (h->freeText != NULL || ASN1_STRING_length(h->sender) <= 0 ||
        ASN1_STRING_length(h->recipient) <= 0)
        return CG_EINVAL;
    if ((rc = der_integer(b, h->pvno)) != CG_OK ||
        (rc = cg_buf_append(b, ASN1_STRING_get0_data(h->sender),
                            (size_t)ASN1_STRING_length(h->sender))) != CG_OK ||
        (rc = cg_buf_append(b, ASN1_STRING_get0_data(h->recipient),
                            (size_t)ASN1_STRING_length(h->recipient))) != CG_OK)
        return rc;
    at2 = b->len;
    if (h->messageTime != NULL &&
        ((rc = ASN1_STRING_type(h->messageTime) == V_ASN1_GENERALIZEDTIME
                   ? core_der_put_(b, V_ASN1_GENERALIZEDTIME, ASN1_STRING_get0_data(h->messageTime),
                                   (size_t)ASN1_STRING_length(h->messageTime))
                   : DER_I2D(b, i2d_ASN1_GENERALIZEDTIME, h->messageTime)) != CG_OK ||
         (rc = core_der_wrap_(b, at2, 0xa0)) != CG_OK))
        return rc;
    at2 = b->len;
    if (h->protectionAlg != NULL && ((rc = der_algor(b, h->protectionAlg)) != CG_OK ||
                                     (rc = core_der_wrap_(b, at2, 0xa1)) != CG_OK))
        return rc;
    if ((rc = header_octets(b, 2, h->senderKID)) != CG_OK ||
        (rc = header_octets(b, 3, h->recipKID)) != CG_OK ||
        (rc = header_octets(b, 4, h->transactionID)) != CG_OK ||
        (rc = header_octets(b, 5, h->senderNonce)) != CG_OK ||
        (rc = header_octets(b, 6, h->recipNonce)) != CG_OK)
        return rc;
    if (h->generalInfo != NULL) {
        at2 = b->len;
        for (int i = 0; i < sk_CG_ITAV_num(h->generalInfo); i++)
            if ((rc = der_itav(b, sk_CG_ITAV_value(h->generalInfo, i))) != CG_OK)
                return rc;
        if ((rc = core_der_wrap_(b, at2, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK ||
            (rc = core_der_wrap_(b, at2, 0xa8)) != CG_OK)
            return rc;
    }
    return core_der_wrap_(b, at, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED);
}

int protect_part_der_(const CG_PKIMESSAGE *msg, unsigned char **der, int *len)
{
    struct cg_buf b = {0};
    int rc = CG_ECRYPTO;
    *der = NULL;
    *len = 0;
    if (cg_buf_reserve(&b, 2048) != CG_OK) /* the usual ProtectedPart at once */
        return CG_ENOMEM;
    if (header_der(&b, msg->header) != CG_OK) {
        CG_PROTECTEDPART part = {msg->header, msg->body};
        *len = i2d_CG_PROTECTEDPART(&part, der);
        rc = *len > 0 ? CG_OK : CG_ECRYPTO;
        goto out;
    }
    if ((rc = der_body(&b, msg->body)) != CG_OK ||
        (rc = core_der_wrap_(&b, 0, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) != CG_OK)
        goto out;
    rc = CG_ENOMEM;
    if (b.len > INT_MAX || (*der = OPENSSL_malloc(b.len)) == NULL)
        goto out;
    memcpy(*der, b.data, b.len);
    *len = (int)b.len;
    rc = CG_OK;
out:
    free(b.data);
    return rc;
}

/* Length of the TLV at p (at most n bytes): header + content, or 0 if malformed; the header's
 * length in *hdr. */
static size_t tlv_len(const uint8_t *p, size_t n, size_t *hdr_out)
{
    if (n < 2)
        return 0;
    size_t hdr = 2, len = p[1];
    if (len & 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 4 || n < 2 + k)
            return 0;
        len = 0;
        for (size_t i = 0; i < k; i++)
            len = (len << 8) | p[2 + i];
        hdr = 2 + k;
    }
    *hdr_out = hdr;
    return hdr + len <= n ? hdr + len : 0;
}

int protect_part_from_der_(const uint8_t *der, size_t len, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    size_t hdr = 0, ignored = 0;
    size_t total = tlv_len(der, len, &hdr);
    if (total == 0 || der[0] != 0x30)
        return CG_EPARSE;
    size_t off = total - hdr;
    const uint8_t *content = der + hdr;
    size_t hlen = tlv_len(content, off, &ignored);
    size_t blen = hlen ? tlv_len(content + hlen, off - hlen, &ignored) : 0;
    if (hlen == 0 || blen == 0)
        return CG_EPARSE;
    size_t inner = hlen + blen;
    uint8_t *buf = malloc(inner + 6);
    if (buf == NULL)
        return CG_ENOMEM;
    size_t k = core_der_head_(0x30, inner, buf);
    memcpy(buf + k, content, inner);
    *out = buf;
    *outlen = k + inner;
    return CG_OK;
}

int protect_is_pbm_(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *obj = NULL;
    if (alg == NULL)
        return 0;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    return OBJ_obj2nid(obj) == NID_id_PasswordBasedMAC; /* 1.2.840.113533.7.66.13 */
}

/* The digest named by an AlgorithmIdentifier (a one-way function or an HMAC), or NULL. */
static int alg_nid(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *obj = NULL;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    return OBJ_obj2nid(obj);
}

static CG_PBMPARAMETER *pbm_params(const X509_ALGOR *alg)
{
    int ptype = 0;
    const void *pval = NULL;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE || pval == NULL)
        return NULL;
    const ASN1_STRING *seq = pval;
    const unsigned char *p = ASN1_STRING_get0_data(seq);
    return d2i_CG_PBMPARAMETER(NULL, &p, ASN1_STRING_length(seq));
}

/* What pbm_mac needs of a PBMParameter. */
struct pbm_fields {
    const uint8_t *salt;
    size_t saltlen;
    int owf, mac; /* NIDs */
    int64_t iter;
};

/* The TLV at *p (n bytes left) with tag `tag` and a DER length below 256 (the short form,
 * or 0x81 for 128-255): its contents in *c, *clen; *p moves past it. @return 1, or 0 when it
 * is not that. */
static int der_take(const uint8_t **p, size_t *n, uint8_t tag, const uint8_t **c, size_t *clen)
{
    size_t hdr = 0, total = *n >= 2 && (*p)[0] == tag ? tlv_len(*p, *n, &hdr) : 0;
    if (total == 0 || hdr > 3 || (hdr == 3 && ((*p)[1] != 0x81 || (*p)[2] < 0x80)))
        return 0;
    *c = *p + hdr;
    *clen = total - hdr;
    *p += total;
    *n -= total;
    return 1;
}

/* An AlgorithmIdentifier of one of the five SHA digests or their HMACs, with absent or NULL
 * parameters: its NID, or NID_undef. */
static int known_alg(const uint8_t *c, size_t n)
{
    static const int nids[] = {NID_sha1,           NID_sha224,         NID_sha256,
                               NID_sha384,         NID_sha512,         NID_hmac_sha1,
                               NID_hmacWithSHA224, NID_hmacWithSHA256, NID_hmacWithSHA384,
                               NID_hmacWithSHA512};
    const uint8_t *oid = NULL;
    size_t oidlen = 0;
    if (!der_take(&c, &n, V_ASN1_OBJECT, &oid, &oidlen) ||
        !(n == 0 || (n == 2 && c[0] == V_ASN1_NULL && c[1] == 0)))
        return NID_undef;
    for (size_t i = 0; i < sizeof(nids) / sizeof(nids[0]); i++) {
        const ASN1_OBJECT *o = OBJ_nid2obj(nids[i]);
        if (o != NULL && (size_t)OBJ_length(o) == oidlen &&
            memcmp(OBJ_get0_data(o), oid, oidlen) == 0)
            return nids[i];
    }
    return NID_undef;
}

/* The contents of a PBMParameter SEQUENCE TLV (p, n: the whole TLV) in its common DER form.
 * @return 1, or 0 for anything else. */
static int pbm_fields_der(const uint8_t *p, size_t vlen, struct pbm_fields *f)
{
    const uint8_t *c, *v;
    size_t n;
    if (!der_take(&p, &vlen, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &c, &n) || vlen != 0)
        return 0; /* c, n: the SEQUENCE's contents */
    if (!der_take(&c, &n, V_ASN1_OCTET_STRING, &f->salt, &f->saltlen) ||
        !der_take(&c, &n, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, &vlen) ||
        (f->owf = known_alg(v, vlen)) == NID_undef ||
        !der_take(&c, &n, V_ASN1_INTEGER, &v, &vlen) || vlen < 1 || vlen > 7 || (v[0] & 0x80) ||
        (vlen > 1 && v[0] == 0 && !(v[1] & 0x80)))
        return 0;
    f->iter = 0;
    for (size_t i = 0; i < vlen; i++)
        f->iter = f->iter << 8 | v[i];
    if (!der_take(&c, &n, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, &vlen) ||
        (f->mac = known_alg(v, vlen)) == NID_undef || n != 0)
        return 0;
    return 1;
}

/* The parameters of a PBM AlgorithmIdentifier in their common DER form, read in place
 * (decoding them through the template cost 8k instructions per message). @return 1, or 0 for
 * anything else, which pbm_mac then decodes. */
static int pbm_fields_fast(const X509_ALGOR *alg, struct pbm_fields *f)
{
    int ptype = 0;
    const void *pval = NULL;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE || pval == NULL)
        return 0;
    return pbm_fields_der(ASN1_STRING_get0_data(pval), (size_t)ASN1_STRING_length(pval), f);
}

/* The TLV at *p (n bytes left), any tag and length: its tag in *tag, contents in *c, *clen;
 * *p moves past it. @return 1, or 0 if it overruns. */
static int der_next(const uint8_t **p, size_t *n, uint8_t *tag, const uint8_t **c, size_t *clen)
{
    size_t hdr = 0, total = tlv_len(*p, *n, &hdr);
    if (total == 0)
        return 0;
    *tag = (*p)[0];
    *c = *p + hdr;
    *clen = total - hdr;
    *p += total;
    *n -= total;
    return 1;
}

int protect_pbm_peek_(const uint8_t *der, size_t len, int *body_tag, int *owf, const uint8_t **salt,
                      size_t *saltlen, int64_t *iter)
{
    /* id-PasswordBasedMAC, 1.2.840.113533.7.66.13 */
    static const uint8_t pbm_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                      0xf6, 0x7d, 0x07, 0x42, 0x0d};
    const uint8_t *msg, *hdr, *c, *alg;
    size_t mlen, hlen, clen, alen;
    uint8_t tag;
    struct pbm_fields f;
    /* PKIMessage { header PKIHeader { pvno, sender, recipient, [0] messageTime OPTIONAL,
     * [1] protectionAlg OPTIONAL, ... }, body [n] ... } */
    if (!der_next(&der, &len, &tag, &msg, &mlen) || tag != 0x30 ||
        !der_next(&msg, &mlen, &tag, &hdr, &hlen) || tag != 0x30 ||
        !der_next(&msg, &mlen, &tag, &c, &clen) || (tag & 0xe0) != 0xa0 || (tag & 0x1f) == 0x1f)
        return 0;
    *body_tag = tag & 0x1f;
    for (int i = 0; i < 3; i++) /* pvno, sender, recipient */
        if (!der_next(&hdr, &hlen, &tag, &c, &clen))
            return 0;
    if (hlen > 0 && hdr[0] == 0xa0 && !der_next(&hdr, &hlen, &tag, &c, &clen))
        return 0;
    if (!der_next(&hdr, &hlen, &tag, &alg, &alen) || tag != 0xa1 ||
        !der_next(&alg, &alen, &tag, &c, &clen) || tag != 0x30 || alen != 0 ||
        clen < sizeof(pbm_oid) || memcmp(c, pbm_oid, sizeof(pbm_oid)) != 0 ||
        !pbm_fields_der(c + sizeof(pbm_oid), clen - sizeof(pbm_oid), &f))
        return 0;
    *owf = f.owf;
    *salt = f.salt;
    *saltlen = f.saltlen;
    *iter = f.iter;
    return 1;
}

/* The PBM base key: OWF applied iterationCount times to secret || salt (RFC 4211 4.4), from
 * the process-wide cache (pbm.c) or derived; kept in the request's cache with the MAC
 * algorithm, for the response that reuses the request's parameters (pbm_mac). */
static int pbm_key(const struct pbm_fields *f, const X509_ALGOR *alg, const char *secret,
                   struct pbm_cache *cache, unsigned char *key, unsigned *keylen)
{
    int rc = pbm_key_(f->owf, secret, f->salt, f->saltlen, f->iter, key, keylen);
    if (rc == CG_OK && cache != NULL) {
        memcpy(cache->key, key, *keylen);
        cache->keylen = *keylen;
        cache->mac_nid = f->mac;
        cache->alg = alg;
        cache->secret = secret;
        cache->valid = 1;
    }
    return rc;
}

/* Computes the PBM MAC of data[0..len) into mac (EVP_MAX_MD_SIZE bytes). */
static int pbm_mac(const X509_ALGOR *alg, const char *secret, long max_iter,
                   const unsigned char *data, int len, unsigned char *mac, unsigned *maclen,
                   struct pbm_cache *cache)
{
    int rc = CG_ECMP_BADALG;
    unsigned char key[EVP_MAX_MD_SIZE];
    unsigned keylen = 0;
    if (cache != NULL && cache->valid && cache->alg == alg && cache->secret == secret)
        /* the same parameters again (the response to a request): checked and derived then */
        return pbm_hmac_(cache->mac_nid, cache->key, cache->keylen, data, (size_t)len, mac, maclen);
    struct pbm_fields f;
    CG_PBMPARAMETER *pbm = NULL;
    if (!pbm_fields_fast(alg, &f)) {
        if ((pbm = pbm_params(alg)) == NULL)
            goto out;
        f.owf = alg_nid(pbm->owf);
        f.mac = alg_nid(pbm->mac);
        f.salt = ASN1_STRING_get0_data(pbm->salt);
        f.saltlen = (size_t)ASN1_STRING_length(pbm->salt);
        if (ASN1_INTEGER_get_int64(&f.iter, pbm->iterationCount) != 1)
            goto out;
    }
    if (core_md_(f.owf) == NULL || core_md_(f.mac) == NULL)
        goto out;
    if (f.iter < 1 || f.iter > max_iter || f.saltlen > 1024)
        goto out;
    if ((rc = pbm_key(&f, alg, secret, cache, key, &keylen)) != CG_OK)
        goto out;
    rc = pbm_hmac_(f.mac, key, keylen, data, (size_t)len, mac, maclen);
out:
    OPENSSL_cleanse(key, sizeof(key));
    CG_PBMPARAMETER_free(pbm);
    return rc;
}

int protect_verify_pbm_(const CG_PKIMESSAGE *msg, const char *secret, long max_iter)
{
    return protect_verify_pbm_cached_(msg, secret, max_iter, NULL);
}

int protect_verify_pbm_cached_(const CG_PKIMESSAGE *msg, const char *secret, long max_iter,
                               struct pbm_cache *cache)
{
    return protect_verify_pbm_part_(msg, NULL, 0, secret, max_iter, cache);
}

int protect_verify_pbm_part_(const CG_PKIMESSAGE *msg, const uint8_t *part, size_t partlen,
                             const char *secret, long max_iter, struct pbm_cache *cache)
{
    int rc = CG_ECMP_BADMSGCHECK;
    unsigned char *der = NULL;
    int len = 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (msg->protection == NULL || !protect_is_pbm_(msg->header->protectionAlg))
        goto out;
    if (part == NULL) {
        if ((rc = protect_part_der_(msg, &der, &len)) != CG_OK)
            goto out;
        part = der;
        partlen = (size_t)len;
    }
    rc = pbm_mac(msg->header->protectionAlg, secret, max_iter, part, (int)partlen, mac, &maclen,
                 cache);
    if (rc != CG_OK)
        goto out;
    rc = CG_ECMP_BADMSGCHECK;
    if ((int)maclen != ASN1_STRING_length(msg->protection) ||
        CRYPTO_memcmp(mac, ASN1_STRING_get0_data(msg->protection), maclen) != 0)
        goto out;
    rc = CG_OK;
out:
    OPENSSL_free(der);
    return rc;
}

static int set_protection(CG_PKIMESSAGE *msg, const unsigned char *p, size_t n)
{
    if (msg->protection == NULL && (msg->protection = ASN1_BIT_STRING_new()) == NULL)
        return CG_ENOMEM;
    if (ASN1_BIT_STRING_set(msg->protection, (unsigned char *)p, (int)n) != 1)
        return CG_ENOMEM;
    /* a MAC has no unused bits; without this flag the encoder would trim trailing zeros */
    msg->protection->flags &= ~(long)(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    msg->protection->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    return CG_OK;
}

int protect_apply_pbm_(CG_PKIMESSAGE *msg, const X509_ALGOR *alg, const char *secret, long max_iter)
{
    return protect_apply_pbm_cached_(msg, alg, secret, max_iter, NULL);
}

int protect_apply_pbm_cached_(CG_PKIMESSAGE *msg, const X509_ALGOR *alg, const char *secret,
                              long max_iter, struct pbm_cache *cache)
{
    return protect_apply_pbm_part_(msg, alg, secret, max_iter, cache, NULL, NULL);
}

/* A copy of alg: its OID (a table object is shared, not copied) and its parameters, which a
 * decoded PBM algorithm holds as the SEQUENCE's bytes, without X509_ALGOR_dup's encode and
 * decode. Other parameter types take the generic copy. */
static X509_ALGOR *algor_copy(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *obj = NULL;
    const void *pval = NULL;
    int ptype = 0;
    X509_ALGOR_get0(&obj, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE && ptype != V_ASN1_UNDEF)
        return X509_ALGOR_dup(alg);
    X509_ALGOR *copy = X509_ALGOR_new();
    ASN1_OBJECT *o = copy != NULL ? OBJ_dup(obj) : NULL;
    ASN1_STRING *params = o != NULL && ptype == V_ASN1_SEQUENCE ? ASN1_STRING_dup(pval) : NULL;
    if (o == NULL || (ptype == V_ASN1_SEQUENCE && params == NULL) ||
        X509_ALGOR_set0(copy, o, ptype, params) != 1) {
        ASN1_STRING_free(params);
        ASN1_OBJECT_free(o);
        X509_ALGOR_free(copy);
        return NULL;
    }
    return copy;
}

int protect_apply_pbm_part_(CG_PKIMESSAGE *msg, const X509_ALGOR *alg, const char *secret,
                            long max_iter, struct pbm_cache *cache, unsigned char **part,
                            int *partlen)
{
    int rc = CG_ENOMEM;
    unsigned char *der = NULL;
    int len = 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    int own = alg == msg->header->protectionAlg; /* re-protecting with its own parameters */
    X509_ALGOR *copy = algor_copy(alg);
    if (copy == NULL)
        goto out;
    X509_ALGOR_free(msg->header->protectionAlg);
    msg->header->protectionAlg = copy;
    if ((rc = protect_part_der_(msg, &der, &len)) != CG_OK)
        goto out;
    /* the cache is keyed by the request's algorithm object (alg), not the header's copy */
    rc = pbm_mac(own ? copy : alg, secret, max_iter, der, len, mac, &maclen, own ? NULL : cache);
    if (rc != CG_OK)
        goto out;
    rc = set_protection(msg, mac, maclen);
    if (rc == CG_OK && part != NULL) {
        *part = der; /* the caller's now */
        *partlen = len;
        der = NULL;
    }
out:
    OPENSSL_free(der);
    return rc;
}

size_t core_der_head_(uint8_t tag, size_t len, uint8_t *p)
{
    size_t n = 0;
    p[n++] = tag;
    if (len < 0x80) {
        p[n++] = (uint8_t)len;
        return n;
    }
    size_t k = len < 0x100 ? 1 : len < 0x10000 ? 2 : len < 0x1000000 ? 3 : 4;
    p[n++] = (uint8_t)(0x80 | k);
    for (size_t i = k; i > 0; i--)
        p[n++] = (uint8_t)(len >> (8 * (i - 1)));
    return n;
}

int core_der_tlv_(const unsigned char **p, const unsigned char *end, const unsigned char **val,
                  size_t *len)
{
    const unsigned char *q = *p;
    if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
        return -1;
    int id = q[0];
    size_t n = q[1];
    q += 2;
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - q) < k || q[0] == 0 || (k == 1 && q[0] < 0x80))
            return -1;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = n << 8 | q[i];
        q += k;
    }
    if (n > (size_t)(end - q))
        return -1;
    *val = q;
    *len = n;
    *p = q + n;
    return id;
}

int core_der_put_(struct cg_buf *b, uint8_t tag, const void *p, size_t len)
{
    uint8_t h[6];
    int rc = cg_buf_append(b, h, core_der_head_(tag, len, h));
    return rc == CG_OK ? cg_buf_append(b, p, len) : rc;
}

int core_der_wrap_(struct cg_buf *b, size_t from, uint8_t tag)
{
    uint8_t h[6];
    size_t len = b->len - from, n = core_der_head_(tag, len, h);
    int rc = cg_buf_reserve(b, n);
    if (rc != CG_OK)
        return rc;
    memmove(b->data + from + n, b->data + from, len);
    memcpy(b->data + from, h, n);
    b->len += n;
    return CG_OK;
}

static uint8_t *put(uint8_t *w, const void *p, size_t n)
{
    memcpy(w, p, n);
    return w + n;
}

int protect_encode_with_part_(const CG_PKIMESSAGE *msg, const uint8_t *part, size_t partlen,
                              uint8_t **out, size_t *outlen)
{
    int rc = CG_EPARSE;
    uint8_t *prot = NULL, *buf = NULL;
    struct cg_buf certs = {0};
    size_t plen = 0, hlen = 0;
    uint8_t h[6], ph[6], ch[6], csh[6];
    *out = NULL;
    /* the content of ProtectedPart is header || body, exactly as they go into PKIMessage */
    size_t total = partlen, k = 2;
    if (partlen < 2 || part[0] != 0x30)
        goto out;
    if (part[1] & 0x80)
        k += part[1] & 0x7f;
    if (k > partlen)
        goto out;
    const uint8_t *content = part + k;
    size_t content_len = partlen - k;
    rc = CG_ENOMEM;
    int n = msg->protection != NULL ? i2d_ASN1_BIT_STRING(msg->protection, &prot) : 0;
    if (n < 0)
        goto out;
    plen = (size_t)n;
    for (int i = 0; i < sk_X509_num(msg->extraCerts); i++)
        if (core_cert_der_put_(&certs, sk_X509_value(msg->extraCerts, i)) != CG_OK)
            goto out;
    size_t clen = certs.len;
    int has_certs = msg->extraCerts != NULL; /* even empty, as i2d writes it */
    size_t phl = plen ? core_der_head_(0xa0, plen, ph) : 0;
    size_t csl = has_certs ? core_der_head_(0x30, clen, csh) : 0;
    size_t chl = has_certs ? core_der_head_(0xa1, csl + clen, ch) : 0;
    total = content_len + phl + plen + chl + csl + clen;
    hlen = core_der_head_(0x30, total, h);
    if ((buf = malloc(hlen + total)) == NULL)
        goto out;
    uint8_t *w = buf;
    w = put(w, h, hlen);
    w = put(w, content, content_len);
    if (plen) {
        w = put(w, ph, phl);
        w = put(w, prot, plen);
    }
    if (has_certs) {
        w = put(w, ch, chl);
        w = put(w, csh, csl);
        if (clen)
            w = put(w, certs.data, clen);
    }
    *out = buf;
    *outlen = (size_t)(w - buf);
    buf = NULL;
    rc = CG_OK;
out:
    OPENSSL_free(prot);
    free(certs.data);
    free(buf);
    return rc;
}

int protect_apply_sig_(CG_PKIMESSAGE *msg, EVP_PKEY *key, const EVP_MD *md)
{
    return protect_apply_sig_with_(msg, key, md, NULL);
}

int protect_apply_sig_with_(CG_PKIMESSAGE *msg, EVP_PKEY *key, const EVP_MD *md,
                            const EVP_MD_CTX *signer)
{
    CG_PROTECTEDPART part;
    if (msg->header->protectionAlg == NULL &&
        (msg->header->protectionAlg = X509_ALGOR_new()) == NULL)
        return CG_ENOMEM;
    if (msg->protection == NULL && (msg->protection = ASN1_BIT_STRING_new()) == NULL)
        return CG_ENOMEM;
    part.header = msg->header;
    part.body = msg->body;
    /* ASN1_item_sign sets protectionAlg (inside the signed header) before encoding. */
    if (signer != NULL) {
        EVP_MD_CTX *mc = EVP_MD_CTX_new();
        int ok = mc != NULL && EVP_MD_CTX_copy_ex(mc, signer) == 1 &&
                 ASN1_item_sign_ctx(ASN1_ITEM_rptr(CG_PROTECTEDPART), msg->header->protectionAlg,
                                    NULL, msg->protection, &part, mc) > 0;
        EVP_MD_CTX_free(mc);
        return ok ? CG_OK : CG_ECRYPTO;
    }
    if (ASN1_item_sign(ASN1_ITEM_rptr(CG_PROTECTEDPART), msg->header->protectionAlg, NULL,
                       msg->protection, &part, key, md) <= 0)
        return CG_ECRYPTO;
    return CG_OK;
}

const EVP_MD *protect_default_md_(EVP_PKEY *key)
{
    switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_ED25519:
    case EVP_PKEY_ED448:
        return NULL;
    case EVP_PKEY_EC: {
        int bits = EVP_PKEY_get_bits(key);
        return core_md_(bits > 384 ? NID_sha512 : bits > 256 ? NID_sha384 : NID_sha256);
    }
    default:
        return core_md_(NID_sha256);
    }
}

int protect_verify_item_(const ASN1_ITEM *it, const X509_ALGOR *alg, const ASN1_BIT_STRING *sig,
                         const void *data, EVP_PKEY *key)
{
    const ASN1_OBJECT *obj = NULL;
    int md_nid = NID_undef, pk_nid = NID_undef;
    if (key == NULL) /* a certificate whose key OpenSSL could not decode (or had no memory to) */
        return 0;
    X509_ALGOR_get0(&obj, NULL, NULL, alg);
    if (!OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md_nid, &pk_nid))
        return 0;
    const EVP_MD *md = md_nid == NID_undef ? NULL : core_md_(md_nid);
    if ((md_nid != NID_undef && md == NULL) || pk_nid == NID_rsassaPss)
        /* parameters (RSA-PSS) or an unusual digest: OpenSSL's general path */
        return ASN1_item_verify(it, (X509_ALGOR *)alg, (ASN1_BIT_STRING *)sig, (void *)data, key) ==
               1;
    if (EVP_PKEY_type(pk_nid) != EVP_PKEY_get_base_id(key) || (sig->flags & 0x07) != 0)
        return 0; /* the wrong key type, or a signature that is not whole bytes */
    unsigned char *der = NULL;
    int len = ASN1_item_i2d((const ASN1_VALUE *)data, &der, it);
    if (len <= 0)
        return 0;
    int ok = ecfast_verify_(key, md, sig->data, (size_t)sig->length, der, (size_t)len);
    if (ok < 0) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        ok = c != NULL && EVP_DigestVerifyInit(c, NULL, md, NULL, key) == 1 &&
             EVP_DigestVerify(c, sig->data, (size_t)sig->length, der, (size_t)len) == 1;
        EVP_MD_CTX_free(c);
    }
    OPENSSL_free(der);
    return ok;
}

const EVP_MD *protect_choose_md_(EVP_PKEY *ca_key, const X509_ALGOR *req_alg)
{
    int kid = EVP_PKEY_get_base_id(ca_key);
    if (kid == EVP_PKEY_ED25519 || kid == EVP_PKEY_ED448)
        return NULL;
    if (req_alg != NULL && !protect_is_pbm_(req_alg)) {
        const ASN1_OBJECT *obj = NULL;
        int md_nid = NID_undef, pk_nid = NID_undef;
        X509_ALGOR_get0(&obj, NULL, NULL, req_alg);
        if (OBJ_find_sigid_algs(OBJ_obj2nid(obj), &md_nid, &pk_nid) && md_nid != NID_undef) {
            const EVP_MD *md = core_md_(md_nid);
            if (md == NULL)
                md = EVP_get_digestbynid(md_nid); /* SHA-3 and others: not pre-fetched */
            /* the request's digest, with the CA's key type (the reference rule); SHA-1
             * and weaker fall back to the default, as does anything unknown */
            if (md != NULL && EVP_MD_get_size(md) >= 28)
                return md;
        }
    }
    return protect_default_md_(ca_key);
}
