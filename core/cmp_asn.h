/*
 * cmp_asn.h - the CMP message structures (RFC 4210 / RFC 9810, CRMF RFC 4211) as OpenSSL
 * ASN.1 templates. Private to core/.
 *
 * DESIGN: OpenSSL 3.0's public API keeps OSSL_CMP_MSG's body opaque and cannot build
 * error, pkiConf, ip or rp messages (ARCHITECTURE.md, "Where OpenSSL 3.0 stops"), so the
 * messages are defined here, once, from the RFC ASN.1 modules. Public OpenSSL items are
 * reused for the leaves (X509, X509_REQ, X509_NAME, X509_PUBKEY, X509_ALGOR, GENERAL_NAME,
 * X509_EXTENSION). The CMP module uses EXPLICIT tags, CRMF uses IMPLICIT tags; a tag on a
 * CHOICE (Name, Time, GeneralName) is always explicit. Typedef names are required by the
 * asn1t.h macros, hence the CG_ upper-case type names (the one exception to STYLE.md).
 * Types whose contents the gateway never reads are kept as ASN1_ANY so that a message of
 * any body type still decodes and gets a precise answer.
 */
#ifndef CG_CORE_CMP_ASN_H
#define CG_CORE_CMP_ASN_H

#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Body types (PKIBody CHOICE tags). */
enum {
    CG_BODY_IR = 0,
    CG_BODY_IP = 1,
    CG_BODY_CR = 2,
    CG_BODY_CP = 3,
    CG_BODY_P10CR = 4,
    CG_BODY_POPDECC = 5,
    CG_BODY_POPDECR = 6,
    CG_BODY_KUR = 7,
    CG_BODY_KUP = 8,
    CG_BODY_KRR = 9,
    CG_BODY_KRP = 10,
    CG_BODY_RR = 11,
    CG_BODY_RP = 12,
    CG_BODY_CCR = 13,
    CG_BODY_CCP = 14,
    CG_BODY_CKUANN = 15,
    CG_BODY_CANN = 16,
    CG_BODY_RANN = 17,
    CG_BODY_CRLANN = 18,
    CG_BODY_PKICONF = 19,
    CG_BODY_NESTED = 20,
    CG_BODY_GENM = 21,
    CG_BODY_GENP = 22,
    CG_BODY_ERROR = 23,
    CG_BODY_CERTCONF = 24,
    CG_BODY_POLLREQ = 25,
    CG_BODY_POLLREP = 26,
    CG_BODY_DER = 27, /* encode only: a whole PKIBody written as value.der holds it */
};

/* PKIStatus */
enum {
    CG_STATUS_ACCEPTED = 0,
    CG_STATUS_GRANTED_WITH_MODS = 1,
    CG_STATUS_REJECTION = 2,
    CG_STATUS_WAITING = 3
};

/* PKIFailureInfo bit numbers */
enum {
    CG_FI_BADALG = 0,
    CG_FI_BADMESSAGECHECK = 1,
    CG_FI_BADREQUEST = 2,
    CG_FI_BADTIME = 3,
    CG_FI_BADCERTID = 4,
    CG_FI_BADDATAFORMAT = 5,
    CG_FI_WRONGAUTHORITY = 6,
    CG_FI_INCORRECTDATA = 7,
    CG_FI_MISSINGTIMESTAMP = 8,
    CG_FI_BADPOP = 9,
    CG_FI_CERTREVOKED = 10,
    CG_FI_CERTCONFIRMED = 11,
    CG_FI_WRONGINTEGRITY = 12,
    CG_FI_BADRECIPIENTNONCE = 13,
    CG_FI_TIMENOTAVAILABLE = 14,
    CG_FI_UNACCEPTEDPOLICY = 15,
    CG_FI_UNACCEPTEDEXTENSION = 16,
    CG_FI_ADDINFONOTAVAILABLE = 17,
    CG_FI_BADSENDERNONCE = 18,
    CG_FI_BADCERTTEMPLATE = 19,
    CG_FI_SIGNERNOTTRUSTED = 20,
    CG_FI_TRANSACTIONIDINUSE = 21,
    CG_FI_UNSUPPORTEDVERSION = 22,
    CG_FI_NOTAUTHORIZED = 23,
    CG_FI_SYSTEMUNAVAIL = 24,
    CG_FI_SYSTEMFAILURE = 25,
    CG_FI_DUPLICATECERTREQ = 26,
};

/* InfoTypeAndValue ::= SEQUENCE { infoType OBJECT IDENTIFIER, infoValue ANY OPTIONAL } */
typedef struct {
    ASN1_OBJECT *type;
    ASN1_TYPE *value;
} CG_ITAV;
/* A Certificate decoded into an X509 shared by every message carrying the same DER
 * (certcache.c); the type of PKIMessage.extraCerts. */
DECLARE_ASN1_ITEM(CG_X509_CACHED)
/* A GeneralName held as its encoding (ASN1_STRING): checked to be a GeneralName when decoded
 * (a name seen recently is recognised by its bytes instead), written as it is (certcache.c);
 * the type of PKIHeader.sender and .recipient. */
DECLARE_ASN1_ITEM(CG_GENNAME_RAW)
/* A Name held as its encoding (ASN1_STRING), as received; checked to be one when decoded
 * (certcache.c); the type of CertTemplate.subject. dn_ref_raw_() reads it. */
DECLARE_ASN1_ITEM(CG_NAME_RAW)
/** @brief A new CG_NAME_RAW holding the encoding of dn, or NULL. */
ASN1_STRING *CG_NAME_RAW_new(const X509_NAME *dn);
/** @brief The name raw holds, decoded (new), or NULL. */
X509_NAME *CG_NAME_RAW_get(const ASN1_STRING *raw);
/* A whole TLV held as its encoding (ASN1_STRING), written as it is; never decoded: as the last
 * alternative of a CHOICE it matches nothing (certcache.c). */
DECLARE_ASN1_ITEM(CG_TLV_RAW)
/** @brief Set raw to the encoding of gn. @return 1 or 0. */
int CG_GENNAME_RAW_set(ASN1_STRING *raw, const GENERAL_NAME *gn);
/** @brief Set raw to the encoding of directoryName dn (an empty name for NULL). @return 1 or 0. */
int CG_GENNAME_RAW_set_dirname(ASN1_STRING *raw, const X509_NAME *dn);
/** @brief The GeneralName raw holds, decoded (new), or NULL. */
GENERAL_NAME *CG_GENNAME_RAW_get(const ASN1_STRING *raw);

DECLARE_ASN1_FUNCTIONS(CG_ITAV)
DEFINE_STACK_OF(CG_ITAV)

/* AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY } (CRMF) */
typedef struct {
    ASN1_OBJECT *type;
    ASN1_TYPE *value;
} CG_ATAV;
DECLARE_ASN1_FUNCTIONS(CG_ATAV)
DEFINE_STACK_OF(CG_ATAV)

/*
 * PKIHeader ::= SEQUENCE {
 *     pvno            INTEGER { cmp1999(1), cmp2000(2), cmp2021(3) },
 *     sender          GeneralName,
 *     recipient       GeneralName,
 *     messageTime     [0] GeneralizedTime         OPTIONAL,
 *     protectionAlg   [1] AlgorithmIdentifier     OPTIONAL,
 *     senderKID       [2] KeyIdentifier           OPTIONAL,
 *     recipKID        [3] KeyIdentifier           OPTIONAL,
 *     transactionID   [4] OCTET STRING            OPTIONAL,
 *     senderNonce     [5] OCTET STRING            OPTIONAL,
 *     recipNonce      [6] OCTET STRING            OPTIONAL,
 *     freeText        [7] PKIFreeText             OPTIONAL,
 *     generalInfo     [8] SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue OPTIONAL }
 */
typedef struct {
    ASN1_INTEGER *pvno;
    ASN1_STRING *sender;    /* CG_GENNAME_RAW */
    ASN1_STRING *recipient; /* CG_GENNAME_RAW */
    ASN1_GENERALIZEDTIME *messageTime;
    X509_ALGOR *protectionAlg;
    ASN1_OCTET_STRING *senderKID;
    ASN1_OCTET_STRING *recipKID;
    ASN1_OCTET_STRING *transactionID;
    ASN1_OCTET_STRING *senderNonce;
    ASN1_OCTET_STRING *recipNonce;
    STACK_OF(ASN1_UTF8STRING) * freeText;
    STACK_OF(CG_ITAV) * generalInfo;
} CG_PKIHEADER;
DECLARE_ASN1_FUNCTIONS(CG_PKIHEADER)

/* PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
 *                              failInfo PKIFailureInfo OPTIONAL } */
typedef struct {
    ASN1_INTEGER *status;
    STACK_OF(ASN1_UTF8STRING) * statusString;
    ASN1_BIT_STRING *failInfo;
} CG_PKISI;
DECLARE_ASN1_FUNCTIONS(CG_PKISI)
DEFINE_STACK_OF(CG_PKISI)

/* SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
 * Kept as bytes: OpenSSL's X509_PUBKEY decodes the key eagerly through the 3.0 decoder
 * framework, which cost a fifth of an enrollment; core loads the key itself (spki_key_). */
typedef struct {
    X509_ALGOR *algor;
    ASN1_BIT_STRING *public_key;
} CG_SPKI;
DECLARE_ASN1_FUNCTIONS(CG_SPKI)

/* OptionalValidity ::= SEQUENCE { notBefore [0] Time OPTIONAL, notAfter [1] Time OPTIONAL } */
typedef struct {
    ASN1_TIME *notBefore;
    ASN1_TIME *notAfter;
} CG_OPTVALIDITY;
DECLARE_ASN1_FUNCTIONS(CG_OPTVALIDITY)

/*
 * CertTemplate ::= SEQUENCE {
 *     version      [0] Version               OPTIONAL,
 *     serialNumber [1] INTEGER               OPTIONAL,
 *     signingAlg   [2] AlgorithmIdentifier   OPTIONAL,
 *     issuer       [3] Name                  OPTIONAL,
 *     validity     [4] OptionalValidity      OPTIONAL,
 *     subject      [5] Name                  OPTIONAL,
 *     publicKey    [6] SubjectPublicKeyInfo  OPTIONAL,
 *     issuerUID    [7] UniqueIdentifier      OPTIONAL,
 *     subjectUID   [8] UniqueIdentifier      OPTIONAL,
 *     extensions   [9] Extensions            OPTIONAL }
 */
typedef struct {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serialNumber;
    X509_ALGOR *signingAlg;
    X509_NAME *issuer;
    CG_OPTVALIDITY *validity;
    ASN1_STRING *subject; /* CG_NAME_RAW: the Name as received */
    CG_SPKI *publicKey;
    ASN1_BIT_STRING *issuerUID;
    ASN1_BIT_STRING *subjectUID;
    STACK_OF(X509_EXTENSION) * extensions;
} CG_CERTTEMPLATE;
DECLARE_ASN1_FUNCTIONS(CG_CERTTEMPLATE)

/* CertRequest ::= SEQUENCE { certReqId INTEGER, certTemplate CertTemplate,
 *                            controls Controls OPTIONAL } */
typedef struct {
    ASN1_INTEGER *certReqId;
    CG_CERTTEMPLATE *certTemplate;
    STACK_OF(CG_ATAV) * controls;
    ASN1_ENCODING enc; /* as received: i2d writes it (set enc.modified after a change) */
} CG_CERTREQUEST;
DECLARE_ASN1_FUNCTIONS(CG_CERTREQUEST)

/* PKMACValue ::= SEQUENCE { algId AlgorithmIdentifier, value BIT STRING } */
typedef struct {
    X509_ALGOR *algId;
    ASN1_BIT_STRING *value;
} CG_PKMACVALUE;
DECLARE_ASN1_FUNCTIONS(CG_PKMACVALUE)

/* POPOSigningKeyInput ::= SEQUENCE {
 *     authInfo CHOICE { sender [0] GeneralName, publicKeyMAC PKMACValue },
 *     publicKey SubjectPublicKeyInfo } */
typedef struct {
    int type; /* 0 sender, 1 publicKeyMAC */
    union {
        GENERAL_NAME *sender;
        CG_PKMACVALUE *publicKeyMAC;
    } value;
} CG_POPOSKINPUT_AUTHINFO;
DECLARE_ASN1_FUNCTIONS(CG_POPOSKINPUT_AUTHINFO)

typedef struct {
    CG_POPOSKINPUT_AUTHINFO *authInfo;
    CG_SPKI *publicKey;
} CG_POPOSKINPUT;
DECLARE_ASN1_FUNCTIONS(CG_POPOSKINPUT)

/* POPOSigningKey ::= SEQUENCE { poposkInput [0] POPOSigningKeyInput OPTIONAL,
 *     algorithmIdentifier AlgorithmIdentifier, signature BIT STRING } */
typedef struct {
    CG_POPOSKINPUT *poposkInput;
    X509_ALGOR *algorithmIdentifier;
    ASN1_BIT_STRING *signature;
} CG_POPOSIGNINGKEY;
DECLARE_ASN1_FUNCTIONS(CG_POPOSIGNINGKEY)

/* ProofOfPossession ::= CHOICE { raVerified [0] NULL, signature [1] POPOSigningKey,
 *     keyEncipherment [2] POPOPrivKey, keyAgreement [3] POPOPrivKey } */
enum { CG_POPO_RAVERIFIED = 0, CG_POPO_SIGNATURE = 1, CG_POPO_KEYENC = 2, CG_POPO_KEYAGREE = 3 };
typedef struct {
    int type;
    union {
        ASN1_NULL *raVerified;
        CG_POPOSIGNINGKEY *signature;
        ASN1_TYPE *other;
    } value;
} CG_POPO;
DECLARE_ASN1_FUNCTIONS(CG_POPO)

/* CertReqMsg ::= SEQUENCE { certReq CertRequest, popo ProofOfPossession OPTIONAL,
 *     regInfo SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue OPTIONAL } */
typedef struct {
    CG_CERTREQUEST *certReq;
    CG_POPO *popo;
    STACK_OF(CG_ATAV) * regInfo;
} CG_CERTREQMSG;
DECLARE_ASN1_FUNCTIONS(CG_CERTREQMSG)
DEFINE_STACK_OF(CG_CERTREQMSG)

/* CertOrEncCert ::= CHOICE { certificate [0] CMPCertificate, encryptedCert [1] EncryptedKey }
 * (a certificate the CA has just issued is written as DER by ca_certrep_der_, not through
 * this type) */
typedef struct {
    int type;
    union {
        X509 *certificate;
        ASN1_TYPE *encryptedCert;
    } value;
} CG_CERTORENCCERT;
DECLARE_ASN1_FUNCTIONS(CG_CERTORENCCERT)

/* CertifiedKeyPair ::= SEQUENCE { certOrEncCert CertOrEncCert,
 *     privateKey [0] EncryptedKey OPTIONAL, publicationInfo [1] PKIPublicationInfo OPTIONAL } */
typedef struct {
    CG_CERTORENCCERT *certOrEncCert;
    ASN1_TYPE *privateKey;
    ASN1_TYPE *publicationInfo;
} CG_CERTIFIEDKEYPAIR;
DECLARE_ASN1_FUNCTIONS(CG_CERTIFIEDKEYPAIR)

/* CertResponse ::= SEQUENCE { certReqId INTEGER, status PKIStatusInfo,
 *     certifiedKeyPair CertifiedKeyPair OPTIONAL, rspInfo OCTET STRING OPTIONAL } */
typedef struct {
    ASN1_INTEGER *certReqId;
    CG_PKISI *status;
    CG_CERTIFIEDKEYPAIR *certifiedKeyPair;
    ASN1_OCTET_STRING *rspInfo;
} CG_CERTRESPONSE;
DECLARE_ASN1_FUNCTIONS(CG_CERTRESPONSE)
DEFINE_STACK_OF(CG_CERTRESPONSE)

/* CertRepMessage ::= SEQUENCE { caPubs [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL,
 *     response SEQUENCE OF CertResponse } */
typedef struct {
    STACK_OF(X509) * caPubs;
    STACK_OF(CG_CERTRESPONSE) * response;
} CG_CERTREPMESSAGE;
DECLARE_ASN1_FUNCTIONS(CG_CERTREPMESSAGE)

/* RevDetails ::= SEQUENCE { certDetails CertTemplate, crlEntryDetails Extensions OPTIONAL } */
typedef struct {
    CG_CERTTEMPLATE *certDetails;
    STACK_OF(X509_EXTENSION) * crlEntryDetails;
} CG_REVDETAILS;
DECLARE_ASN1_FUNCTIONS(CG_REVDETAILS)
DEFINE_STACK_OF(CG_REVDETAILS)

/* CertId ::= SEQUENCE { issuer GeneralName, serialNumber INTEGER } */
typedef struct {
    GENERAL_NAME *issuer;
    ASN1_INTEGER *serialNumber;
} CG_CERTID;
DECLARE_ASN1_FUNCTIONS(CG_CERTID)
DEFINE_STACK_OF(CG_CERTID)

/* RevRepContent ::= SEQUENCE { status SEQUENCE SIZE (1..MAX) OF PKIStatusInfo,
 *     revCerts [0] SEQUENCE SIZE (1..MAX) OF CertId OPTIONAL,
 *     crls     [1] SEQUENCE SIZE (1..MAX) OF CertificateList OPTIONAL } */
typedef struct {
    STACK_OF(CG_PKISI) * status;
    STACK_OF(CG_CERTID) * revCerts;
    STACK_OF(X509_CRL) * crls;
} CG_REVREPCONTENT;
DECLARE_ASN1_FUNCTIONS(CG_REVREPCONTENT)

/* CertStatus ::= SEQUENCE { certHash OCTET STRING, certReqId INTEGER,
 *     statusInfo PKIStatusInfo OPTIONAL, hashAlg [0] AlgorithmIdentifier OPTIONAL } */
typedef struct {
    ASN1_OCTET_STRING *certHash;
    ASN1_INTEGER *certReqId;
    CG_PKISI *statusInfo;
    X509_ALGOR *hashAlg;
} CG_CERTSTATUS;
DECLARE_ASN1_FUNCTIONS(CG_CERTSTATUS)
DEFINE_STACK_OF(CG_CERTSTATUS)

/* ErrorMsgContent ::= SEQUENCE { pKIStatusInfo PKIStatusInfo, errorCode INTEGER OPTIONAL,
 *     errorDetails PKIFreeText OPTIONAL } */
typedef struct {
    CG_PKISI *pKIStatusInfo;
    ASN1_INTEGER *errorCode;
    STACK_OF(ASN1_UTF8STRING) * errorDetails;
} CG_ERRORMSGCONTENT;
DECLARE_ASN1_FUNCTIONS(CG_ERRORMSGCONTENT)

/* PBMParameter ::= SEQUENCE { salt OCTET STRING, owf AlgorithmIdentifier,
 *     iterationCount INTEGER, mac AlgorithmIdentifier } */
typedef struct {
    ASN1_OCTET_STRING *salt;
    X509_ALGOR *owf;
    ASN1_INTEGER *iterationCount;
    X509_ALGOR *mac;
} CG_PBMPARAMETER;
DECLARE_ASN1_FUNCTIONS(CG_PBMPARAMETER)

struct CG_PKIMESSAGE_st;
typedef struct CG_PKIMESSAGE_st CG_PKIMESSAGE;
DEFINE_STACK_OF(CG_PKIMESSAGE)

/* PKIBody ::= CHOICE { ir [0] CertReqMessages, ip [1] CertRepMessage, ... } */
typedef struct {
    int type;
    union {
        STACK_OF(CG_CERTREQMSG) * ir; /* ir, cr, kur */
        CG_CERTREPMESSAGE *ip;        /* ip, cp, kup */
        X509_REQ *p10cr;
        STACK_OF(CG_REVDETAILS) * rr;
        CG_REVREPCONTENT *rp;
        ASN1_NULL *pkiconf;
        STACK_OF(CG_PKIMESSAGE) * nested;
        STACK_OF(CG_ITAV) * genm; /* genm, genp */
        CG_ERRORMSGCONTENT *error;
        STACK_OF(CG_CERTSTATUS) * certConf;
        ASN1_TYPE *other; /* every body type not read here */
        ASN1_STRING *der; /* CG_BODY_DER: the body's encoding (tag included) */
    } value;
} CG_PKIBODY;
DECLARE_ASN1_FUNCTIONS(CG_PKIBODY)

/* PKIMessage ::= SEQUENCE { header PKIHeader, body PKIBody,
 *     protection [0] PKIProtection OPTIONAL,
 *     extraCerts [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL } */
struct CG_PKIMESSAGE_st {
    CG_PKIHEADER *header;
    CG_PKIBODY *body;
    ASN1_BIT_STRING *protection;
    STACK_OF(X509) * extraCerts;
};
DECLARE_ASN1_FUNCTIONS(CG_PKIMESSAGE)

/* ProtectedPart ::= SEQUENCE { header PKIHeader, body PKIBody } */
typedef struct {
    CG_PKIHEADER *header;
    CG_PKIBODY *body;
} CG_PROTECTEDPART;
DECLARE_ASN1_FUNCTIONS(CG_PROTECTEDPART)

#endif
