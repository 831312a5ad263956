/*
 * cmpdump.c - test tool: prints one line describing a DER PKIMessage, so integration tests
 * can assert on exactly what the gateway answered:
 *   body=ip status=accepted failInfo=- protection=pbm|signature|none certs=1 caPubs=1
 *   extraCerts=1 implicitConfirm=0 text="..."
 * Usage: cmpdump FILE (or - for stdin). Exit 0 when the file decodes, 1 otherwise.
 */
#include "cmp_asn.h"

#include <openssl/objects.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const body_names[] = {
    "ir",     "ip",      "cr",     "cp",   "p10cr", "popdecc", "popdecr",  "kur",     "kup",
    "krr",    "krp",     "rr",     "rp",   "ccr",   "ccp",     "ckuann",   "cann",    "rann",
    "crlann", "pkiconf", "nested", "genm", "genp",  "error",   "certConf", "pollReq", "pollRep"};
static const char *const fail_names[] = {"badAlg",
                                         "badMessageCheck",
                                         "badRequest",
                                         "badTime",
                                         "badCertId",
                                         "badDataFormat",
                                         "wrongAuthority",
                                         "incorrectData",
                                         "missingTimeStamp",
                                         "badPOP",
                                         "certRevoked",
                                         "certConfirmed",
                                         "wrongIntegrity",
                                         "badRecipientNonce",
                                         "timeNotAvailable",
                                         "unacceptedPolicy",
                                         "unacceptedExtension",
                                         "addInfoNotAvailable",
                                         "badSenderNonce",
                                         "badCertTemplate",
                                         "signerNotTrusted",
                                         "transactionIdInUse",
                                         "unsupportedVersion",
                                         "notAuthorized",
                                         "systemUnavail",
                                         "systemFailure",
                                         "duplicateCertReq"};
static const char *const status_names[] = {
    "accepted",          "grantedWithMods",        "rejection",       "waiting",
    "revocationWarning", "revocationNotification", "keyUpdateWarning"};

static void print_si(const CG_PKISI *si)
{
    long st = ASN1_INTEGER_get(si->status);
    printf(" status=%s failInfo=", st >= 0 && st <= 6 ? status_names[st] : "?");
    int any = 0;
    for (int b = 0; b <= 26; b++)
        if (si->failInfo && ASN1_BIT_STRING_get_bit(si->failInfo, b)) {
            printf("%s%s", any ? "," : "", fail_names[b]);
            any = 1;
        }
    if (!any)
        printf("-");
    if (sk_ASN1_UTF8STRING_num(si->statusString) > 0) {
        ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(si->statusString, 0);
        printf(" text=\"%.*s\"", ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
    }
}

int main(int argc, char **argv)
{
    static unsigned char buf[1 << 20];
    FILE *f = argc > 1 && strcmp(argv[1], "-") != 0 ? fopen(argv[1], "rb") : stdin;
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    const unsigned char *p = buf;
    CG_PKIMESSAGE *m = d2i_CG_PKIMESSAGE(NULL, &p, (long)n);
    if (m == NULL) {
        printf("undecodable\n");
        return 1;
    }
    int t = m->body->type;
    printf("body=%s", t >= 0 && t <= 26 ? body_names[t] : "?");
    const char *prot = "none";
    if (m->protection != NULL) {
        const ASN1_OBJECT *o = NULL;
        X509_ALGOR_get0(&o, NULL, NULL, m->header->protectionAlg);
        char txt[64];
        OBJ_obj2txt(txt, sizeof(txt), o, 1);
        prot = strcmp(txt, "1.2.840.113533.7.66.13") == 0 ? "pbm" : "signature";
    }
    if (t == CG_BODY_IP || t == CG_BODY_CP || t == CG_BODY_KUP) {
        CG_CERTRESPONSE *r = sk_CG_CERTRESPONSE_value(m->body->value.ip->response, 0);
        if (r != NULL) {
            print_si(r->status);
            printf(" certReqId=%ld", ASN1_INTEGER_get(r->certReqId));
        }
        printf(" caPubs=%d", sk_X509_num(m->body->value.ip->caPubs));
    } else if (t == CG_BODY_RP) {
        print_si(sk_CG_PKISI_value(m->body->value.rp->status, 0));
    } else if (t == CG_BODY_ERROR) {
        print_si(m->body->value.error->pKIStatusInfo);
    }
    int ic = 0;
    for (int i = 0; i < sk_CG_ITAV_num(m->header->generalInfo); i++)
        if (OBJ_obj2nid(sk_CG_ITAV_value(m->header->generalInfo, i)->type) ==
            NID_id_it_implicitConfirm)
            ic = 1;
    printf(" protection=%s extraCerts=%d implicitConfirm=%d\n", prot,
           m->extraCerts ? sk_X509_num(m->extraCerts) : 0, ic);
    CG_PKIMESSAGE_free(m);
    return 0;
}
