/*
 * cg_testmsg.h - the tests' comparison of two decoded PKIMessages (cmp_asn.h), field by field:
 * fastdec.c's hand decoder against d2i_CG_PKIMESSAGE, in test_core and fuzz_core.
 *
 * DESIGN: header-only, static functions. fastdec_agrees() runs both decoders over the same
 * bytes; msg_same() compares every field the hand decoder sets (the types, contents and flags
 * of the strings, the objects, the ANY parameters, the CertRequest's saved encoding, the
 * absent fields) and refuses a body the hand decoder never makes.
 */
#ifndef CG_TEST_HARNESS_CG_TESTMSG_H
#define CG_TEST_HARNESS_CG_TESTMSG_H

#include "cmp_asn.h"
#include "core_local.h"

#include <string.h>

static int str_same(const ASN1_STRING *a, const ASN1_STRING *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a->type == b->type && a->flags == b->flags && a->length == b->length &&
           (a->length == 0 || memcmp(a->data, b->data, (size_t)a->length) == 0);
}

static int strs_same(const STACK_OF(ASN1_UTF8STRING) * a, const STACK_OF(ASN1_UTF8STRING) * b)
{
    if (sk_ASN1_UTF8STRING_num(a) != sk_ASN1_UTF8STRING_num(b))
        return 0;
    for (int i = 0; i < sk_ASN1_UTF8STRING_num(a); i++)
        if (!str_same(sk_ASN1_UTF8STRING_value(a, i), sk_ASN1_UTF8STRING_value(b, i)))
            return 0;
    return 1;
}

static int obj_same(const ASN1_OBJECT *a, const ASN1_OBJECT *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return OBJ_cmp(a, b) == 0 && OBJ_obj2nid(a) == OBJ_obj2nid(b);
}

static int type_same(const ASN1_TYPE *a, const ASN1_TYPE *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->type != b->type)
        return 0;
    if (a->type == V_ASN1_NULL)
        return a->value.ptr == NULL && b->value.ptr == NULL;
    if (a->type == V_ASN1_OBJECT)
        return obj_same(a->value.object, b->value.object);
    if (a->type == V_ASN1_BOOLEAN)
        return a->value.boolean == b->value.boolean;
    return str_same(a->value.asn1_string, b->value.asn1_string);
}

static int alg_same(const X509_ALGOR *a, const X509_ALGOR *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return obj_same(a->algorithm, b->algorithm) && type_same(a->parameter, b->parameter);
}

static int template_same(const CG_CERTTEMPLATE *a, const CG_CERTTEMPLATE *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if ((a->issuer == NULL) != (b->issuer == NULL) ||
        (a->validity == NULL) != (b->validity == NULL) ||
        (a->publicKey == NULL) != (b->publicKey == NULL) ||
        sk_X509_EXTENSION_num(a->extensions) != sk_X509_EXTENSION_num(b->extensions))
        return 0;
    if (a->issuer != NULL && X509_NAME_cmp(a->issuer, b->issuer) != 0)
        return 0;
    if (a->validity != NULL && (!str_same(a->validity->notBefore, b->validity->notBefore) ||
                                !str_same(a->validity->notAfter, b->validity->notAfter)))
        return 0;
    if (a->publicKey != NULL && (!alg_same(a->publicKey->algor, b->publicKey->algor) ||
                                 !str_same(a->publicKey->public_key, b->publicKey->public_key)))
        return 0;
    return str_same(a->version, b->version) && str_same(a->serialNumber, b->serialNumber) &&
           alg_same(a->signingAlg, b->signingAlg) && str_same(a->subject, b->subject) &&
           str_same(a->issuerUID, b->issuerUID) && str_same(a->subjectUID, b->subjectUID);
}

static int reqmsg_same(const CG_CERTREQMSG *a, const CG_CERTREQMSG *b)
{
    const CG_CERTREQUEST *ra = a->certReq, *rb = b->certReq;
    if (ra == NULL || rb == NULL)
        return ra == rb;
    if (!str_same(ra->certReqId, rb->certReqId) ||
        !template_same(ra->certTemplate, rb->certTemplate) ||
        sk_CG_ATAV_num(ra->controls) != sk_CG_ATAV_num(rb->controls) ||
        sk_CG_ATAV_num(a->regInfo) != sk_CG_ATAV_num(b->regInfo))
        return 0;
    /* the saved encoding the POP signature is checked over */
    if (ra->enc.len != rb->enc.len || ra->enc.modified != rb->enc.modified ||
        (ra->enc.len > 0 && memcmp(ra->enc.enc, rb->enc.enc, (size_t)ra->enc.len) != 0))
        return 0;
    if (a->popo == NULL || b->popo == NULL)
        return a->popo == b->popo;
    if (a->popo->type != b->popo->type)
        return 0;
    if (a->popo->type != CG_POPO_SIGNATURE)
        return 1; /* not made by the hand decoder: the encodings compared are equal */
    const CG_POPOSIGNINGKEY *sa = a->popo->value.signature, *sb = b->popo->value.signature;
    return (sa->poposkInput == NULL) == (sb->poposkInput == NULL) &&
           alg_same(sa->algorithmIdentifier, sb->algorithmIdentifier) &&
           str_same(sa->signature, sb->signature);
}

static int status_same(const CG_CERTSTATUS *a, const CG_CERTSTATUS *b)
{
    if (!str_same(a->certHash, b->certHash) || !str_same(a->certReqId, b->certReqId) ||
        !alg_same(a->hashAlg, b->hashAlg))
        return 0;
    if (a->statusInfo == NULL || b->statusInfo == NULL)
        return a->statusInfo == b->statusInfo;
    return str_same(a->statusInfo->status, b->statusInfo->status) &&
           strs_same(a->statusInfo->statusString, b->statusInfo->statusString) &&
           str_same(a->statusInfo->failInfo, b->statusInfo->failInfo);
}

/* Every field the hand decoder sets, compared with the template decoder's: the same types,
 * contents and flags, the same absent fields. */
static int msg_same(const CG_PKIMESSAGE *a, const CG_PKIMESSAGE *b)
{
    const CG_PKIHEADER *ha = a->header, *hb = b->header;
    if (!str_same(ha->pvno, hb->pvno) || !str_same(ha->sender, hb->sender) ||
        !str_same(ha->recipient, hb->recipient) || !str_same(ha->messageTime, hb->messageTime) ||
        !alg_same(ha->protectionAlg, hb->protectionAlg) ||
        !str_same(ha->senderKID, hb->senderKID) || !str_same(ha->recipKID, hb->recipKID) ||
        !str_same(ha->transactionID, hb->transactionID) ||
        !str_same(ha->senderNonce, hb->senderNonce) || !str_same(ha->recipNonce, hb->recipNonce) ||
        !strs_same(ha->freeText, hb->freeText) ||
        sk_CG_ITAV_num(ha->generalInfo) != sk_CG_ITAV_num(hb->generalInfo))
        return 0;
    for (int i = 0; i < sk_CG_ITAV_num(ha->generalInfo); i++) {
        const CG_ITAV *x = sk_CG_ITAV_value(ha->generalInfo, i),
                      *y = sk_CG_ITAV_value(hb->generalInfo, i);
        if (!obj_same(x->type, y->type) || !type_same(x->value, y->value))
            return 0;
    }
    if (!str_same(a->protection, b->protection) ||
        sk_X509_num(a->extraCerts) != sk_X509_num(b->extraCerts) || a->body->type != b->body->type)
        return 0;
    switch (a->body->type) {
    case CG_BODY_IR:
    case CG_BODY_CR:
    case CG_BODY_KUR:
        if (sk_CG_CERTREQMSG_num(a->body->value.ir) != sk_CG_CERTREQMSG_num(b->body->value.ir))
            return 0;
        for (int i = 0; i < sk_CG_CERTREQMSG_num(a->body->value.ir); i++)
            if (!reqmsg_same(sk_CG_CERTREQMSG_value(a->body->value.ir, i),
                             sk_CG_CERTREQMSG_value(b->body->value.ir, i)))
                return 0;
        return 1;
    case CG_BODY_CERTCONF:
        if (sk_CG_CERTSTATUS_num(a->body->value.certConf) !=
            sk_CG_CERTSTATUS_num(b->body->value.certConf))
            return 0;
        for (int i = 0; i < sk_CG_CERTSTATUS_num(a->body->value.certConf); i++)
            if (!status_same(sk_CG_CERTSTATUS_value(a->body->value.certConf, i),
                             sk_CG_CERTSTATUS_value(b->body->value.certConf, i)))
                return 0;
        return 1;
    default:
        return 0; /* the hand decoder makes no other body */
    }
}

/* der[0..len) through both decoders. @return 1 when the hand decoder took it (and then the
 * templates took it too, field for field the same, and both encode to the same bytes: der
 * itself unless a raw GeneralName in BER was kept in DER), 0 when it left it to the
 * templates, -1 when they disagree. */
static int fastdec_agrees(const uint8_t *der, size_t len)
{
    CG_PKIMESSAGE *fast = core_msg_d2i_fast_(der, len);
    if (fast == NULL)
        return 0;
    const unsigned char *p = der;
    CG_PKIMESSAGE *full = d2i_CG_PKIMESSAGE(NULL, &p, (long)len);
    unsigned char *e1 = NULL, *e2 = NULL;
    int n1 = i2d_CG_PKIMESSAGE(fast, &e1);
    int n2 = full != NULL ? i2d_CG_PKIMESSAGE(full, &e2) : -1;
    int ok = full != NULL && p == der + len && msg_same(fast, full) && n1 > 0 && n1 == n2 &&
             memcmp(e1, e2, (size_t)n1) == 0;
    OPENSSL_free(e1);
    OPENSSL_free(e2);
    CG_PKIMESSAGE_free(fast);
    CG_PKIMESSAGE_free(full);
    return ok ? 1 : -1;
}

#endif
