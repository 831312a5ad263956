/*
 * fastdec.c - the commonest requests decoded by hand into the structures of cmp_asn.h.
 *
 * DESIGN: OpenSSL's template decoder walks the item tables for every field of every message,
 * and its constructors walk them again for every structure; for the bench's ir that walking
 * is most of 4.2 µs of decoding (3.7 µs for its certConf). core_msg_d2i_fast_() reads the
 * shapes clients send all day (the header's usual fields; an ir, cr or kur whose requests
 * carry a subject, a public key and a signature POP; a certConf; a protection without
 * extraCerts) in strict DER, in 1.5 µs (1.3 µs), and builds what d2i_CG_PKIMESSAGE builds
 * from the same bytes: the same types, string contents and flags, the CertRequest's saved
 * encoding, the raw names checked by the same functions (core_gn_raw_set_, dn_der_check_),
 * structures allocated as the templates allocate them (zeroed, fields set), so that
 * CG_PKIMESSAGE_free frees them. Anything else (another field or body, a BER length, a
 * negative integer, unused bits, a parameter other than NULL, an OID or a SEQUENCE) makes it
 * return NULL, and the caller's d2i_CG_PKIMESSAGE decides: this decoder never refuses a
 * message and never takes one the templates refuse, nor takes one otherwise. The unit test
 * core/fastdec_matches_templates and fuzz_core hold it to that (cg_testmsg.h compares).
 */
#include "cg_err.h"
#include "core_local.h"

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <string.h>

/* A DER reader over [p, end). */
struct rd {
    const unsigned char *p, *end;
};

/* The next element when its tag octet is t, in strict DER (core_der_tlv_), inside r: its
 * contents in *v and, when tlv is not NULL, the whole element in *tlv. @return 1 or 0. */
static int next(struct rd *r, unsigned char t, struct rd *v, struct rd *tlv)
{
    const unsigned char *start = r->p, *val = NULL;
    size_t len = 0;
    if (r->p >= r->end || r->p[0] != t || core_der_tlv_(&r->p, r->end, &val, &len) < 0)
        return 0;
    v->p = val;
    v->end = val + len;
    if (tlv != NULL) {
        tlv->p = start;
        tlv->end = v->end;
    }
    return 1;
}

static int at(const struct rd *r, unsigned char t)
{
    return r->p < r->end && r->p[0] == t;
}

static int empty(const struct rd *r)
{
    return r->p == r->end;
}

/* A [n] EXPLICIT wrapper: its contents in *v, which must then hold one element exactly
 * (checked by the caller with empty()). */
static int explicit_(struct rd *r, unsigned n, struct rd *v)
{
    return next(r, (unsigned char)(0xa0 | n), v, NULL);
}

static int set_bytes(ASN1_STRING *s, const struct rd *v)
{
    return ASN1_STRING_set(s, v->p, (int)(v->end - v->p)) == 1;
}

/* INTEGER into a (made here when *a is NULL): a non-negative value in its fewest octets, as
 * c2i_ASN1_INTEGER keeps it (the magnitude, without the sign octet). */
static int integer(struct rd *r, ASN1_INTEGER **a)
{
    struct rd v;
    if (!next(r, V_ASN1_INTEGER, &v, NULL) || empty(&v) || (v.p[0] & 0x80))
        return 0;
    if (v.end - v.p > 1 && v.p[0] == 0) {
        if (!(v.p[1] & 0x80))
            return 0; /* a superfluous leading zero: d2i refuses it */
        v.p++;
    }
    if (*a == NULL && (*a = ASN1_INTEGER_new()) == NULL)
        return 0;
    return set_bytes(*a, &v);
}

/* OCTET STRING, primitive. */
static int octets(struct rd *r, ASN1_OCTET_STRING **a)
{
    struct rd v;
    if (!next(r, V_ASN1_OCTET_STRING, &v, NULL))
        return 0;
    if (*a == NULL && (*a = ASN1_OCTET_STRING_new()) == NULL)
        return 0;
    return set_bytes(*a, &v);
}

/* [n] EXPLICIT OCTET STRING holding nothing else. */
static int tagged_octets(struct rd *r, unsigned n, ASN1_OCTET_STRING **a)
{
    struct rd w;
    return explicit_(r, n, &w) && octets(&w, a) && empty(&w);
}

/* BIT STRING with no unused bits and at least one octet: as c2i_ASN1_BIT_STRING keeps it
 * (the octets after the count, ASN1_STRING_FLAG_BITS_LEFT set with a count of 0). */
static int bits(struct rd *r, ASN1_BIT_STRING **a)
{
    struct rd v;
    if (!next(r, V_ASN1_BIT_STRING, &v, NULL) || v.end - v.p < 2 || v.p[0] != 0)
        return 0;
    v.p++;
    if (*a == NULL && (*a = ASN1_BIT_STRING_new()) == NULL)
        return 0;
    (*a)->flags &= ~0x07L;
    (*a)->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    return set_bytes(*a, &v);
}

/* GeneralizedTime of the form YYYYMMDDHHMMSSZ (what every client sends; d2i takes it). */
static int gtime(struct rd *r, ASN1_GENERALIZEDTIME **a)
{
    struct rd v;
    if (!next(r, V_ASN1_GENERALIZEDTIME, &v, NULL) || v.end - v.p != 15 || v.p[14] != 'Z')
        return 0;
    for (int i = 0; i < 14; i++)
        if (v.p[i] < '0' || v.p[i] > '9')
            return 0;
    if (*a == NULL && (*a = ASN1_GENERALIZEDTIME_new()) == NULL)
        return 0;
    return set_bytes(*a, &v);
}

/* OBJECT IDENTIFIER through d2i_ASN1_OBJECT (the table's static object for a known one). */
static int object(struct rd *r, ASN1_OBJECT **a)
{
    struct rd v, tlv;
    if (!next(r, V_ASN1_OBJECT, &v, &tlv))
        return 0;
    const unsigned char *q = tlv.p;
    return d2i_ASN1_OBJECT(a, &q, (long)(tlv.end - tlv.p)) != NULL && q == tlv.end;
}

/* An ANY holding NULL or an OBJECT IDENTIFIER (ASN1_TYPE as the template makes it), or a
 * SEQUENCE (kept whole, tag and length included, unread: as the template keeps one). */
static int any(struct rd *r, ASN1_TYPE **a)
{
    struct rd v, tlv;
    ASN1_TYPE *t = OPENSSL_zalloc(sizeof(*t));
    if (t == NULL)
        return 0;
    t->type = -1; /* as ASN1_TYPE_new() leaves it */
    *a = t;       /* freed by the caller's structure from here */
    if (at(r, V_ASN1_NULL)) {
        if (!next(r, V_ASN1_NULL, &v, NULL) || !empty(&v))
            return 0;
        ASN1_TYPE_set(t, V_ASN1_NULL, NULL);
        return 1;
    }
    if (at(r, V_ASN1_OBJECT)) {
        ASN1_OBJECT *o = NULL;
        if (!object(r, &o))
            return 0;
        ASN1_TYPE_set(t, V_ASN1_OBJECT, o);
        return 1;
    }
    ASN1_STRING *seq = NULL;
    if (!next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, &tlv) ||
        (seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE)) == NULL)
        return 0;
    ASN1_TYPE_set(t, V_ASN1_SEQUENCE, seq);
    return set_bytes(seq, &tlv);
}

/* AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }
 * into *a (made here when NULL). */
static int algor(struct rd *r, X509_ALGOR **a)
{
    struct rd v;
    if (!next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) ||
        (*a == NULL && (*a = OPENSSL_zalloc(sizeof(**a))) == NULL) || !object(&v, &(*a)->algorithm))
        return 0;
    if (!empty(&v) && !any(&v, &(*a)->parameter))
        return 0;
    return empty(&v);
}

/* GeneralName (a context-specific tag [0]..[8], explicit) kept raw, checked as gn_d2i does. */
static int gen_name(struct rd *r, ASN1_STRING **a)
{
    struct rd v, tlv;
    if (r->p >= r->end || (r->p[0] & 0xc0) != 0x80 || (r->p[0] & 0x1f) > GEN_RID ||
        !next(r, r->p[0], &v, &tlv))
        return 0;
    if (*a == NULL && (*a = ASN1_STRING_new()) == NULL)
        return 0;
    return core_gn_raw_set_(*a, tlv.p, (size_t)(tlv.end - tlv.p));
}

/* --- the header -------------------------------------------------------------------------- */

/* InfoTypeAndValue with an absent or NULL value (implicitConfirm is one). */
static int itav(struct rd *r, STACK_OF(CG_ITAV) * sk)
{
    struct rd v;
    CG_ITAV *it = NULL;
    if (!next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) ||
        (it = OPENSSL_zalloc(sizeof(*it))) == NULL)
        return 0;
    if (!sk_CG_ITAV_push(sk, it)) {
        OPENSSL_free(it);
        return 0;
    }
    if (!object(&v, &it->type))
        return 0;
    if (!empty(&v) && (!at(&v, V_ASN1_NULL) || !any(&v, &it->value)))
        return 0;
    return empty(&v);
}

static int header(struct rd *r, CG_PKIHEADER *h)
{
    struct rd v, w;
    if (!next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) || !integer(&v, &h->pvno) ||
        !gen_name(&v, &h->sender) || !gen_name(&v, &h->recipient))
        return 0;
    if (at(&v, 0xa0) && !(explicit_(&v, 0, &w) && gtime(&w, &h->messageTime) && empty(&w)))
        return 0;
    if (at(&v, 0xa1) && !(explicit_(&v, 1, &w) && algor(&w, &h->protectionAlg) && empty(&w)))
        return 0;
    if (at(&v, 0xa2) && !tagged_octets(&v, 2, &h->senderKID))
        return 0;
    if (at(&v, 0xa3) && !tagged_octets(&v, 3, &h->recipKID))
        return 0;
    if (at(&v, 0xa4) && !tagged_octets(&v, 4, &h->transactionID))
        return 0;
    if (at(&v, 0xa5) && !tagged_octets(&v, 5, &h->senderNonce))
        return 0;
    if (at(&v, 0xa6) && !tagged_octets(&v, 6, &h->recipNonce))
        return 0;
    if (at(&v, 0xa8)) { /* freeText [7] is left to the template decoder */
        struct rd seq;
        if (!explicit_(&v, 8, &w) || !next(&w, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &seq, NULL) ||
            !empty(&w) || empty(&seq) || (h->generalInfo = sk_CG_ITAV_new_null()) == NULL)
            return 0;
        while (!empty(&seq))
            if (!itav(&seq, h->generalInfo))
                return 0;
    }
    return empty(&v);
}

/* --- the bodies -------------------------------------------------------------------------- */

/* CertTemplate with a subject ([5] Name, DER that dn_der_check_ reads) and a public key
 * ([6] IMPLICIT SubjectPublicKeyInfo), either optional; any other field: NULL. */
static int cert_template(struct rd *r, CG_CERTTEMPLATE **a)
{
    struct rd v, w, name;
    if (!next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) ||
        (*a = OPENSSL_zalloc(sizeof(**a))) == NULL)
        return 0;
    if (at(&v, 0xa5)) {
        struct rd tlv;
        if (!explicit_(&v, 5, &w) || !next(&w, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &name, &tlv) ||
            !empty(&w) || !dn_der_check_(tlv.p, (size_t)(tlv.end - tlv.p)) ||
            ((*a)->subject = ASN1_STRING_new()) == NULL || !set_bytes((*a)->subject, &tlv))
            return 0;
        (*a)->subject->type = V_ASN1_SEQUENCE; /* checked: what dn_d2i records */
    }
    if (at(&v, 0xa6)) {
        if (!next(&v, 0xa6, &w, NULL) ||
            ((*a)->publicKey = OPENSSL_zalloc(sizeof(CG_SPKI))) == NULL ||
            !algor(&w, &(*a)->publicKey->algor) || !bits(&w, &(*a)->publicKey->public_key) ||
            !empty(&w))
            return 0;
    }
    return empty(&v);
}

/* CertReqMsg: a CertRequest without controls, a signature POP without poposkInput (or
 * none), no regInfo. The CertRequest's encoding is saved as its template saves it (the POP
 * signs those bytes). */
static int cert_req_msg(struct rd *r, STACK_OF(CG_CERTREQMSG) * sk)
{
    struct rd v, rq, rqtlv, w;
    CG_CERTREQMSG *m = OPENSSL_zalloc(sizeof(*m));
    if (m == NULL)
        return 0;
    if (!sk_CG_CERTREQMSG_push(sk, m)) {
        OPENSSL_free(m);
        return 0;
    }
    if ((m->certReq = OPENSSL_zalloc(sizeof(*m->certReq))) == NULL ||
        !next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) ||
        !next(&v, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &rq, &rqtlv) ||
        !integer(&rq, &m->certReq->certReqId) || !cert_template(&rq, &m->certReq->certTemplate) ||
        !empty(&rq))
        return 0;
    ASN1_ENCODING *enc = &m->certReq->enc;
    size_t n = (size_t)(rqtlv.end - rqtlv.p);
    if ((enc->enc = OPENSSL_malloc(n)) == NULL)
        return 0;
    memcpy(enc->enc, rqtlv.p, n);
    enc->len = (long)n;
    enc->modified = 0;
    if (at(&v, 0xa1)) {
        CG_POPOSIGNINGKEY *sk_ = NULL;
        if (!next(&v, 0xa1, &w, NULL) || (m->popo = OPENSSL_zalloc(sizeof(CG_POPO))) == NULL)
            return 0;
        m->popo->type = -1; /* no alternative chosen yet */
        if ((sk_ = OPENSSL_zalloc(sizeof(*sk_))) == NULL)
            return 0;
        m->popo->type = CG_POPO_SIGNATURE;
        m->popo->value.signature = sk_;
        if (!algor(&w, &sk_->algorithmIdentifier) || !bits(&w, &sk_->signature) || !empty(&w))
            return 0;
    }
    return empty(&v);
}

/* CertStatus with certHash and certReqId only (statusInfo and hashAlg: NULL). */
static int cert_status(struct rd *r, STACK_OF(CG_CERTSTATUS) * sk)
{
    struct rd v;
    CG_CERTSTATUS *cs = OPENSSL_zalloc(sizeof(*cs));
    if (cs == NULL)
        return 0;
    if (!sk_CG_CERTSTATUS_push(sk, cs)) {
        OPENSSL_free(cs);
        return 0;
    }
    if (!next(r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) || !octets(&v, &cs->certHash) ||
        !integer(&v, &cs->certReqId))
        return 0;
    if (at(&v, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED)) { /* statusInfo: its status alone */
        struct rd si;
        if (!next(&v, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &si, NULL) ||
            (cs->statusInfo = OPENSSL_zalloc(sizeof(*cs->statusInfo))) == NULL ||
            !integer(&si, &cs->statusInfo->status) || !empty(&si))
            return 0;
    }
    return empty(&v);
}

static int body(struct rd *r, CG_PKIBODY *b)
{
    struct rd w, seq;
    if (r->p >= r->end)
        return 0;
    int type = r->p[0] == 0xb8 ? CG_BODY_CERTCONF : r->p[0] - 0xa0;
    if (type != CG_BODY_IR && type != CG_BODY_CR && type != CG_BODY_KUR && type != CG_BODY_CERTCONF)
        return 0;
    if (!next(r, r->p[0], &w, NULL) ||
        !next(&w, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &seq, NULL) || !empty(&w))
        return 0;
    if (type == CG_BODY_CERTCONF) {
        if ((b->value.certConf = sk_CG_CERTSTATUS_new_null()) == NULL)
            return 0;
        b->type = type;
        while (!empty(&seq))
            if (!cert_status(&seq, b->value.certConf))
                return 0;
        return 1;
    }
    if ((b->value.ir = sk_CG_CERTREQMSG_new_null()) == NULL)
        return 0;
    b->type = type;
    while (!empty(&seq))
        if (!cert_req_msg(&seq, b->value.ir))
            return 0;
    return 1;
}

CG_PKIMESSAGE *core_msg_d2i_fast_(const unsigned char *der, size_t len)
{
    struct rd r = {der, der + len}, v, w;
    CG_PKIMESSAGE *m = NULL;
    ERR_set_mark(); /* what a declined message leaves (a refused OID, a name) is dropped */
    if (der == NULL || !next(&r, V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, &v, NULL) || !empty(&r) ||
        (m = OPENSSL_zalloc(sizeof(*m))) == NULL ||
        (m->header = OPENSSL_zalloc(sizeof(*m->header))) == NULL ||
        (m->body = OPENSSL_zalloc(sizeof(*m->body))) == NULL)
        goto fail;
    m->body->type = -1; /* no alternative chosen yet */
    if (!header(&v, m->header) || !body(&v, m->body))
        goto fail;
    if (at(&v, 0xa0) && !(explicit_(&v, 0, &w) && bits(&w, &m->protection) && empty(&w)))
        goto fail;
    if (!empty(&v)) /* extraCerts [1], or anything else: the template decoder's */
        goto fail;
    ERR_clear_last_mark();
    return m;
fail:
    CG_PKIMESSAGE_free(m);
    ERR_pop_to_mark();
    return NULL;
}
