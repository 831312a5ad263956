/*
 * cmpnest.c - test tool: wraps DER PKIMessages into a nested message signed by an RA
 * (RFC 4210 5.1.3.4), and unwraps the inner answers of a nested response.
 *   cmpnest --in inner.der[,inner2.der...] --cert ra.pem --key ra.key --out nested.der
 *   cmpnest --unwrap nested_response.der --out-prefix rsp     (writes rsp1.der, rsp2.der...)
 * The nested message: pvno 2, sender = the RA certificate's subject, recipient = the first
 * inner message's recipient, fresh transactionID and senderNonce (16 random bytes each),
 * extraCerts = [RA certificate], signed with SHA-256 (no digest for EdDSA keys).
 * --unwrap prints the number of inner messages. Exit 0 on success, 1 otherwise.
 */
#include "cmp_asn.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(void)
{
    fprintf(stderr,
            "usage: cmpnest --in A.der[,B.der...] --cert RA.pem --key RA.key --out OUT.der\n"
            "       cmpnest --unwrap RESPONSE.der --out-prefix PREFIX\n");
    return 1;
}

static unsigned char *read_all(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            unsigned char *p = realloc(buf, cap);
            if (p == NULL)
                break;
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    *len = (long)n;
    return buf;
}

static CG_PKIMESSAGE *read_msg(const char *path)
{
    long len = 0;
    unsigned char *der = read_all(path, &len);
    const unsigned char *p = der;
    CG_PKIMESSAGE *m = der ? d2i_CG_PKIMESSAGE(NULL, &p, len) : NULL;
    if (der != NULL && m == NULL)
        fprintf(stderr, "%s: not a PKIMessage\n", path);
    free(der);
    return m;
}

static int write_msg(const char *path, const CG_PKIMESSAGE *m)
{
    unsigned char *der = NULL;
    int len = i2d_CG_PKIMESSAGE(m, &der);
    FILE *f = len > 0 ? fopen(path, "wb") : NULL;
    int ok = f != NULL && fwrite(der, 1, (size_t)len, f) == (size_t)len;
    if (f != NULL && fclose(f) != 0)
        ok = 0;
    OPENSSL_free(der);
    if (!ok)
        fprintf(stderr, "%s: cannot write\n", path);
    return ok;
}

static ASN1_OCTET_STRING *random_octets(void)
{
    unsigned char b[16];
    ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
    if (s == NULL || RAND_bytes(b, sizeof(b)) != 1 || ASN1_OCTET_STRING_set(s, b, sizeof(b)) != 1) {
        ASN1_OCTET_STRING_free(s);
        return NULL;
    }
    return s;
}

static int wrap(char *in, const char *cert_path, const char *key_path, const char *out)
{
    int ok = 0;
    FILE *f;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    CG_PKIMESSAGE *m = CG_PKIMESSAGE_new();
    if ((f = fopen(cert_path, "r")) != NULL) {
        cert = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    if ((f = fopen(key_path, "r")) != NULL) {
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (m == NULL || cert == NULL || key == NULL) {
        fprintf(stderr, "cannot read the RA certificate or key\n");
        goto out;
    }
    CG_PKIHEADER *h = m->header;
    m->body->type = CG_BODY_NESTED;
    if ((m->body->value.nested = sk_CG_PKIMESSAGE_new_null()) == NULL)
        goto out;
    for (char *save = NULL, *path = strtok_r(in, ",", &save); path != NULL;
         path = strtok_r(NULL, ",", &save)) {
        CG_PKIMESSAGE *im = read_msg(path);
        if (im == NULL)
            goto out;
        if (sk_CG_PKIMESSAGE_push(m->body->value.nested, im) <= 0) {
            CG_PKIMESSAGE_free(im);
            goto out;
        }
    }
    const CG_PKIMESSAGE *first = sk_CG_PKIMESSAGE_value(m->body->value.nested, 0);
    if (first == NULL)
        goto out;
    if (!CG_GENNAME_RAW_set_dirname(h->sender, X509_get_subject_name(cert)) ||
        ASN1_STRING_copy(h->recipient, first->header->recipient) != 1)
        goto out;
    if (ASN1_INTEGER_set(h->pvno, 2) != 1 || (h->transactionID = random_octets()) == NULL ||
        (h->senderNonce = random_octets()) == NULL ||
        (h->messageTime = ASN1_GENERALIZEDTIME_set(NULL, time(NULL))) == NULL)
        goto out;
    if ((m->extraCerts = sk_X509_new_null()) == NULL || !X509_up_ref(cert))
        goto out;
    if (sk_X509_push(m->extraCerts, cert) <= 0) {
        X509_free(cert);
        goto out;
    }
    int kid = EVP_PKEY_get_base_id(key);
    const EVP_MD *md = kid == EVP_PKEY_ED25519 || kid == EVP_PKEY_ED448 ? NULL : EVP_sha256();
    CG_PROTECTEDPART part = {h, m->body};
    if ((h->protectionAlg = X509_ALGOR_new()) == NULL ||
        (m->protection = ASN1_BIT_STRING_new()) == NULL ||
        ASN1_item_sign(ASN1_ITEM_rptr(CG_PROTECTEDPART), h->protectionAlg, NULL, m->protection,
                       &part, key, md) <= 0)
        goto out;
    ok = write_msg(out, m);
out:
    if (!ok)
        ERR_print_errors_fp(stderr);
    CG_PKIMESSAGE_free(m);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok ? 0 : 1;
}

static int unwrap(const char *in, const char *prefix)
{
    CG_PKIMESSAGE *m = read_msg(in);
    int ok = m != NULL && m->body->type == CG_BODY_NESTED;
    if (m != NULL && !ok)
        fprintf(stderr, "%s: not a nested message (body %d)\n", in, m->body->type);
    for (int i = 0; ok && i < sk_CG_PKIMESSAGE_num(m->body->value.nested); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s%d.der", prefix, i + 1);
        ok = write_msg(path, sk_CG_PKIMESSAGE_value(m->body->value.nested, i));
    }
    if (ok)
        printf("%d\n", sk_CG_PKIMESSAGE_num(m->body->value.nested));
    CG_PKIMESSAGE_free(m);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    char *in = NULL;
    const char *cert = NULL, *key = NULL, *out = NULL, *unwrap_in = NULL, *prefix = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--in") == 0)
            in = argv[i + 1];
        else if (strcmp(argv[i], "--cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--unwrap") == 0)
            unwrap_in = argv[i + 1];
        else if (strcmp(argv[i], "--out-prefix") == 0)
            prefix = argv[i + 1];
        else
            return usage();
    }
    if (argc % 2 != 1)
        return usage();
    if (unwrap_in != NULL && prefix != NULL && in == NULL)
        return unwrap(unwrap_in, prefix);
    if (in != NULL && cert != NULL && key != NULL && out != NULL && unwrap_in == NULL)
        return wrap(in, cert, key, out);
    return usage();
}
