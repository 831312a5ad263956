/*
 * cmpgate_bench.c - load generator: full CMP transactions over many connections, HTTP or
 * legacy TCP, with latency percentiles and a final JSON line (CONTRACT.md, "Load generator").
 *
 * DESIGN: one libevent loop drives `concurrency` connections; each runs one transaction at a
 * time (request → response → certConf → pkiConf unless implicitConfirm) on a keep-alive
 * connection. Messages are built with the gateway's own CMP templates (core/cmp_asn.h) and
 * protection code, with real proof of possession. With --prebuild every first message is built
 * and signed before the clock starts, so the figure is the server's. Every transaction has
 * fresh PBM parameters (a new salt) kept for its certConf, as Bouncy Castle's PKMACBuilder
 * does; the load generator derives each key once, before the clock starts.
 * Responses are read with a small DER walker rather than decoded into structures (decoding
 * the issued certificate costs OpenSSL 3 more than the server spends issuing it, and the two
 * share the machine): the transactionID and recipNonce must match, a PBM protection must
 * verify, and anything but an accepted certificate, pkiConf or an accepting rp counts as an
 * error. Signature-protected responses are not verified (that is client CPU, not server).
 * Keys: a pool of 64 key pairs is generated up front and reused across requests (distinct
 * subjects), since key generation is client work, not server work.
 */
#include "cg_err.h"
#include "cmp_asn.h"
#include "core_local.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEY_POOL 64
#define PBM_ITER 500

enum { CMD_IR, CMD_CR, CMD_P10CR, CMD_KUR, CMD_RR, CMD_GENM };

struct opts {
    char host[256];
    int port;
    const char *path;
    int tcp;
    int cmd;
    const char *secret; /* NULL: signature protection */
    const char *ref;
    const char *cert_file, *key_file;
    const char *recipient;
    const char *key_type;
    const char *subject_prefix;
    long requests;
    double duration;
    int concurrency;
    int prebuild;
    int implicit;
    long server_pid;
    int json;
    int same_subject; /* every request carries the same subject (one RA end entity) */
    double hold;      /* keep every connection open this long after the last request */
};

struct msgbuf {
    uint8_t *der;
    size_t len;
};

struct bench;

/* What the load generator keeps of a transaction: its IDs and its PBM parameters (a fresh
 * salt per transaction, PBM_ITER iterations of SHA-256, HMAC-SHA256) with their derived key. */
struct txmeta {
    uint8_t txid[NONCE_LEN];
    uint8_t nonce[NONCE_LEN]; /* our senderNonce in the last message sent */
    uint8_t salt[16];
    uint8_t key[EVP_MAX_MD_SIZE];
    unsigned keylen; /* 0 until the first message is protected */
    int mac_nid;     /* the MAC algorithm of those parameters */
    /* --prebuild: the certConf, built before the clock with placeholders for the server's
     * nonce and the certificate's hash (cc_prebuild, cc_fill); NULL when not prebuilt */
    const uint8_t *cc;
    size_t cc_len, cc_nonce_off, cc_hash_off;
    uint8_t cc_nonce[NONCE_LEN]; /* its senderNonce */
};

struct conn {
    struct bench *b;
    struct bufferevent *bev;
    int phase;          /* 0 idle, 1 request sent, 2 certConf sent */
    int closing;        /* the server announced it closes after its response: reconnect */
    int held;           /* --hold: connection still open */
    long answered;      /* responses received on the current connection */
    int got_bytes;      /* some of the response to the last message has arrived */
    int retried;        /* the last message was already resent once */
    struct msgbuf last; /* copy of the last message sent, for one resend on a stale connection */
    long index;         /* transaction number */
    double t0;          /* transaction start */
    struct txmeta tm;   /* the transaction in flight */
    X509 *rr_cert;      /* rr: the certificate being revoked */
};

struct bench {
    struct opts o;
    struct event_base *base;
    struct conn *conns;
    EVP_PKEY *keys[KEY_POOL];
    X509 *signer;
    EVP_PKEY *signer_key;
    STACK_OF(X509) * rr_certs; /* rr: certificates enrolled before the clock starts */
    struct msgbuf *prebuilt;
    struct txmeta *prebuilt_tm; /* and what the load generator keeps of each */
    long nprebuilt;
    long retries;
    int fresh_per_txn; /* the server closes after each transaction: open a new connection
                          for every transaction instead of finding out by a resend */
    int holding;       /* --hold phase: count closes, never reconnect */
    long open_conns;
    long next, done, ok, errors, target;
    double start, end_at;
    double *lat;
    size_t nlat, caplat;
    struct event *tick;
    long last_done;
    int setup; /* 1 while enrolling the certificates an rr run revokes */
    int active;
    char last_error[256];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg)
{
    fprintf(stderr, "cmpgate-bench: %s\n", msg);
    exit(2);
}

/* --- message building ------------------------------------------------------------------ */

static int set_octets(ASN1_OCTET_STRING **o, const uint8_t *p, size_t n)
{
    ASN1_OCTET_STRING_free(*o);
    *o = ASN1_OCTET_STRING_new();
    return *o && ASN1_OCTET_STRING_set(*o, p, (int)n) == 1;
}

/* The PBM AlgorithmIdentifier of a transaction: its salt, PBM_ITER × SHA-256, HMAC-SHA256. */
static X509_ALGOR *pbm_alg(const uint8_t salt[16])
{
    CG_PBMPARAMETER *p = CG_PBMPARAMETER_new();
    unsigned char *der = NULL;
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_STRING *seq = ASN1_STRING_new();
    ASN1_OCTET_STRING_set(p->salt, salt, 16);
    X509_ALGOR_set0(p->owf, OBJ_nid2obj(NID_sha256), V_ASN1_UNDEF, NULL);
    ASN1_INTEGER_set(p->iterationCount, PBM_ITER);
    X509_ALGOR_set0(p->mac, OBJ_nid2obj(NID_hmacWithSHA256), V_ASN1_UNDEF, NULL);
    int n = i2d_CG_PBMPARAMETER(p, &der);
    ASN1_STRING_set(seq, der, n);
    X509_ALGOR_set0(alg, OBJ_txt2obj("1.2.840.113533.7.66.13", 1), V_ASN1_SEQUENCE, seq);
    OPENSSL_free(der);
    CG_PBMPARAMETER_free(p);
    return alg;
}

/* A message of the transaction tm: its first (new transactionID) unless recip_nonce (the
 * server's last senderNonce) is given. Records our senderNonce in tm. */
static CG_PKIMESSAGE *header_new(struct bench *b, int body_type, struct txmeta *tm,
                                 const uint8_t *recip_nonce, size_t recip_len)
{
    CG_PKIMESSAGE *m = CG_PKIMESSAGE_new();
    CG_PKIHEADER *h = m->header;
    m->body->type = body_type;
    ASN1_INTEGER_set(h->pvno, 2);
    CG_GENNAME_RAW_set_dirname(h->sender, b->signer ? X509_get_subject_name(b->signer) : NULL);
    CG_GENNAME_RAW_set_dirname(h->recipient,
                               b->o.recipient != NULL ? dn_parse_(b->o.recipient) : NULL);
    h->messageTime = ASN1_GENERALIZEDTIME_set(NULL, time(NULL));
    if (recip_nonce == NULL) {
        memset(tm, 0, sizeof(*tm));
        RAND_bytes(tm->txid, sizeof(tm->txid));
    }
    set_octets(&h->transactionID, tm->txid, sizeof(tm->txid));
    RAND_bytes(tm->nonce, sizeof(tm->nonce));
    set_octets(&h->senderNonce, tm->nonce, sizeof(tm->nonce));
    if (recip_nonce != NULL)
        set_octets(&h->recipNonce, recip_nonce, recip_len);
    if (b->o.secret != NULL && b->o.ref != NULL)
        set_octets(&h->senderKID, (const uint8_t *)b->o.ref, strlen(b->o.ref));
    return m;
}

static void add_implicit_confirm(CG_PKIHEADER *h)
{
    CG_ITAV *itav = CG_ITAV_new();
    ASN1_OBJECT_free(itav->type);
    itav->type = OBJ_nid2obj(NID_id_it_implicitConfirm);
    itav->value = ASN1_TYPE_new();
    ASN1_TYPE_set(itav->value, V_ASN1_NULL, NULL);
    h->generalInfo = sk_CG_ITAV_new_null();
    sk_CG_ITAV_push(h->generalInfo, itav);
}

/* Protects m (PBM with the secret and the transaction's parameters, or the signer's
 * signature) and encodes it. The first message of a transaction gets a fresh salt and derives
 * its key; later ones reuse both. */
static int finish(struct bench *b, CG_PKIMESSAGE *m, struct txmeta *tm, struct msgbuf *out)
{
    int rc;
    if (b->o.secret != NULL) {
        struct pbm_cache pc = {0};
        if (tm->keylen == 0) {
            RAND_bytes(tm->salt, sizeof(tm->salt));
        } else {
            memcpy(pc.key, tm->key, tm->keylen);
            pc.keylen = tm->keylen;
            pc.mac_nid = tm->mac_nid;
            pc.valid = 1;
        }
        X509_ALGOR *alg = pbm_alg(tm->salt);
        pc.alg = alg;
        pc.secret = b->o.secret;
        rc = protect_apply_pbm_cached_(m, alg, b->o.secret, 10000000, &pc);
        if (rc == 0 && tm->keylen == 0) {
            memcpy(tm->key, pc.key, pc.keylen);
            tm->keylen = pc.keylen;
            tm->mac_nid = pc.mac_nid;
        }
        X509_ALGOR_free(alg);
    } else {
        m->extraCerts = sk_X509_new_null();
        X509_up_ref(b->signer);
        sk_X509_push(m->extraCerts, b->signer);
        const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(b->signer);
        if (ski)
            m->header->senderKID = ASN1_OCTET_STRING_dup(ski);
        rc = protect_apply_sig_(m, b->signer_key, protect_default_md_(b->signer_key));
    }
    if (rc != 0)
        return rc;
    unsigned char *der = NULL;
    int n = i2d_CG_PKIMESSAGE(m, &der);
    if (n <= 0)
        return -1;
    out->der = malloc((size_t)n);
    memcpy(out->der, der, (size_t)n);
    out->len = (size_t)n;
    OPENSSL_free(der);
    return 0;
}

static X509_NAME *subject_for(struct bench *b, long i)
{
    char buf[300];
    if (b->o.same_subject)
        snprintf(buf, sizeof(buf), "%s-same-%08lx", b->o.subject_prefix, (unsigned long)getpid());
    else
        snprintf(buf, sizeof(buf), "%s-%ld-%08lx", b->o.subject_prefix, i, (unsigned long)getpid());
    /* "/CN=bench" style prefix */
    X509_NAME *n = X509_NAME_new();
    char *p = buf;
    while (*p == '/')
        p++;
    char *eq = strchr(p, '=');
    if (eq == NULL)
        die("--subject-prefix must look like /CN=bench");
    *eq = '\0';
    if (X509_NAME_add_entry_by_txt(n, p, MBSTRING_UTF8, (unsigned char *)eq + 1, -1, -1, 0) != 1)
        die("bad --subject-prefix attribute");
    return n;
}

static CG_PKIMESSAGE *build_certreq(struct bench *b, struct txmeta *tm, long i, int body_type)
{
    CG_PKIMESSAGE *m = header_new(b, body_type, tm, NULL, 0);
    EVP_PKEY *key = b->keys[i % KEY_POOL];
    if (b->o.implicit)
        add_implicit_confirm(m->header);
    if (body_type == CG_BODY_P10CR) {
        X509_REQ *csr = X509_REQ_new();
        X509_REQ_set_version(csr, 0);
        X509_NAME *subj = subject_for(b, i);
        X509_REQ_set_subject_name(csr, subj);
        X509_NAME_free(subj);
        X509_REQ_set_pubkey(csr, key);
        X509_REQ_sign(csr, key, protect_default_md_(key));
        m->body->value.p10cr = csr;
        return m;
    }
    CG_CERTREQMSG *crm = CG_CERTREQMSG_new();
    CG_CERTTEMPLATE *t = crm->certReq->certTemplate;
    ASN1_INTEGER_set(crm->certReq->certReqId, 0);
    X509_NAME *subj = body_type == CG_BODY_KUR ? X509_NAME_dup(X509_get_subject_name(b->signer))
                                               : subject_for(b, i);
    t->subject = CG_NAME_RAW_new(subj);
    X509_NAME_free(subj);
    t->publicKey = ca_spki_from_pkey_(key);
    crm->popo = CG_POPO_new();
    crm->popo->type = CG_POPO_SIGNATURE;
    crm->popo->value.signature = CG_POPOSIGNINGKEY_new();
    CG_POPOSIGNINGKEY *sk = crm->popo->value.signature;
    ASN1_item_sign(ASN1_ITEM_rptr(CG_CERTREQUEST), sk->algorithmIdentifier, NULL, sk->signature,
                   crm->certReq, key, protect_default_md_(key));
    m->body->value.ir = sk_CG_CERTREQMSG_new_null();
    sk_CG_CERTREQMSG_push(m->body->value.ir, crm);
    return m;
}

static CG_PKIMESSAGE *build_rr(struct bench *b, struct txmeta *tm, X509 *cert)
{
    CG_PKIMESSAGE *m = header_new(b, CG_BODY_RR, tm, NULL, 0);
    CG_REVDETAILS *d = CG_REVDETAILS_new();
    d->certDetails->serialNumber = ASN1_INTEGER_dup(X509_get0_serialNumber(cert));
    d->certDetails->issuer = X509_NAME_dup(X509_get_issuer_name(cert));
    m->body->value.rr = sk_CG_REVDETAILS_new_null();
    sk_CG_REVDETAILS_push(m->body->value.rr, d);
    return m;
}

static CG_PKIMESSAGE *build_genm(struct bench *b, struct txmeta *tm)
{
    CG_PKIMESSAGE *m = header_new(b, CG_BODY_GENM, tm, NULL, 0);
    m->body->value.genm = sk_CG_ITAV_new_null();
    CG_ITAV *itav = CG_ITAV_new();
    ASN1_OBJECT_free(itav->type);
    itav->type = OBJ_txt2obj("1.3.6.1.5.5.7.4.17", 1); /* id-it-caCerts */
    sk_CG_ITAV_push(m->body->value.genm, itav);
    return m;
}

/* --- reading responses ------------------------------------------------------------------- */

/* One DER TLV at *p (before end): its tag byte and content [*v, *v + *n); *p moves past it.
 * 0 when malformed (CMP uses no high tag numbers). */
static int tlv(const uint8_t **p, const uint8_t *end, int *tag, const uint8_t **v, size_t *n)
{
    const uint8_t *q = *p;
    if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
        return 0;
    *tag = *q++;
    size_t len = *q++;
    if (len & 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 4 || (size_t)(end - q) < k)
            return 0;
        for (len = 0; k > 0; k--)
            len = len << 8 | *q++;
    }
    if ((size_t)(end - q) < len)
        return 0;
    *v = q;
    *n = len;
    *p = q + len;
    return 1;
}

/* A small INTEGER (at most 4 bytes, two's complement) into *x: 1, or 0 if it is not one. */
static int der_sint(int tag, const uint8_t *v, size_t n, long *x)
{
    if (tag != 0x02 || n == 0 || n > 4)
        return 0;
    *x = (v[0] & 0x80) ? -1 : 0;
    for (size_t i = 0; i < n; i++)
        *x = (long)((unsigned long)*x << 8 | v[i]);
    return 1;
}

/* A small non-negative INTEGER, or -1. */
static long der_int(int tag, const uint8_t *v, size_t n)
{
    long x;
    return der_sint(tag, v, n, &x) && x >= 0 ? x : -1;
}

/* What the load generator reads of a response. */
struct rsp {
    int body; /* body type (the context tag number) */
    const uint8_t *txid, *snonce, *rnonce;
    size_t txid_len, snonce_len, rnonce_len;
    const uint8_t *alg; /* protectionAlg: the AlgorithmIdentifier TLV */
    size_t alg_len;
    const uint8_t *prot; /* protection: BIT STRING content (unused-bits byte first) */
    size_t prot_len;
    long status;         /* ip/cp/kup: the first response's; rp: the first status */
    long rid;            /* ip/cp/kup: its certReqId */
    const uint8_t *cert; /* ip/cp/kup: the issued certificate's TLV */
    size_t cert_len;
};

/* The content of an [n] EXPLICIT OCTET STRING header field. */
static int octets(const uint8_t *v, size_t n, const uint8_t **out, size_t *outlen)
{
    int tag;
    return tlv(&v, v + n, &tag, out, outlen) && tag == 0x04;
}

static int read_certrep(const uint8_t *p, const uint8_t *end, struct rsp *r)
{
    const uint8_t *v, *cv;
    size_t n, cn;
    int tag;
    if (!tlv(&p, end, &tag, &v, &n) || tag != 0x30) /* CertRepMessage */
        return 0;
    p = v;
    end = v + n;
    if (!tlv(&p, end, &tag, &v, &n)) /* [1] caPubs OPTIONAL, then response */
        return 0;
    if (tag == 0xa1 && !tlv(&p, end, &tag, &v, &n))
        return 0;
    if (tag != 0x30 || !tlv(&v, v + n, &tag, &cv, &cn) || tag != 0x30) /* first CertResponse */
        return 0;
    p = cv;
    end = cv + cn;
    if (!tlv(&p, end, &tag, &v, &n) || !der_sint(tag, v, n, &r->rid)) /* -1 for p10cr */
        return 0;
    if (!tlv(&p, end, &tag, &v, &n) || tag != 0x30 || !tlv(&v, v + n, &tag, &cv, &cn) ||
        (r->status = der_int(tag, cv, cn)) < 0)
        return 0;
    /* CertifiedKeyPair { certOrEncCert [0] EXPLICIT CMPCertificate, ... } */
    if (p < end && tlv(&p, end, &tag, &v, &n) && tag == 0x30) {
        const uint8_t *q = v;
        if (tlv(&q, v + n, &tag, &cv, &cn) && tag == 0xa0) {
            const uint8_t *c = cv;
            if (tlv(&c, cv + cn, &tag, &v, &n) && tag == 0x30) {
                r->cert = cv;
                r->cert_len = (size_t)(c - cv);
            }
        }
    }
    return 1;
}

/* Walks a PKIMessage: 1 when it is well formed as far as read. */
static int read_rsp(const uint8_t *der, size_t len, struct rsp *r)
{
    const uint8_t *p = der, *end = der + len, *v, *fv;
    size_t n, fn;
    int tag, ft;
    memset(r, 0, sizeof(*r));
    r->status = -1;
    if (!tlv(&p, end, &tag, &v, &n) || tag != 0x30)
        return 0;
    p = v;
    end = v + n;
    if (!tlv(&p, end, &tag, &v, &n) || tag != 0x30) /* header */
        return 0;
    /* pvno, sender and recipient (GeneralNames: their [4] is not transactionID's), then the
     * optional [0]..[8] fields */
    const uint8_t *h = v, *hend = v + n;
    for (int i = 0; i < 3; i++)
        if (!tlv(&h, hend, &ft, &fv, &fn))
            return 0;
    while (h < hend) {
        if (!tlv(&h, hend, &ft, &fv, &fn))
            return 0;
        if (ft == 0xa1) {
            r->alg = fv;
            r->alg_len = fn;
        } else if (ft == 0xa4 && !octets(fv, fn, &r->txid, &r->txid_len)) {
            return 0;
        } else if (ft == 0xa5 && !octets(fv, fn, &r->snonce, &r->snonce_len)) {
            return 0;
        } else if (ft == 0xa6 && !octets(fv, fn, &r->rnonce, &r->rnonce_len)) {
            return 0;
        }
    }
    if (!tlv(&p, end, &tag, &v, &n) || (tag & 0xe0) != 0xa0) /* body */
        return 0;
    r->body = tag & 0x1f;
    if (r->body == CG_BODY_IP || r->body == CG_BODY_CP || r->body == CG_BODY_KUP) {
        if (!read_certrep(v, v + n, r))
            return 0;
    } else if (r->body == CG_BODY_RP) {
        const uint8_t *q = v, *sv, *iv;
        size_t sn, in;
        if (!tlv(&q, v + n, &tag, &sv, &sn) || tag != 0x30 ||    /* RevRepContent */
            !tlv(&sv, sv + sn, &tag, &iv, &in) || tag != 0x30 || /* status SEQUENCE OF */
            !tlv(&iv, iv + in, &tag, &sv, &sn) || tag != 0x30 || /* first PKIStatusInfo */
            !tlv(&sv, sv + sn, &tag, &iv, &in))
            return 0;
        r->status = der_int(tag, iv, in);
    }
    if (p < end && tlv(&p, end, &tag, &v, &n) && tag == 0xa0) { /* protection */
        if (!tlv(&v, v + n, &tag, &r->prot, &r->prot_len) || tag != 0x03 || r->prot_len < 1)
            return 0;
    }
    return 1;
}

/* The certHash of a certificate (RFC 4210 5.3.18: the hash of its signature algorithm). */
static int cert_hash(const uint8_t *cert, size_t len, uint8_t *md, unsigned *mdlen)
{
    const uint8_t *p = cert, *v, *q;
    size_t n;
    int tag, mdnid = NID_undef;
    if (!tlv(&p, cert + len, &tag, &v, &n) || tag != 0x30)
        return -1;
    p = v;
    if (!tlv(&p, v + n, &tag, &q, &n)) /* tbsCertificate */
        return -1;
    q = p; /* signatureAlgorithm */
    X509_ALGOR *sa = d2i_X509_ALGOR(NULL, &q, (long)(cert + len - p));
    if (sa != NULL)
        OBJ_find_sigid_algs(OBJ_obj2nid(sa->algorithm), &mdnid, NULL);
    X509_ALGOR_free(sa);
    const EVP_MD *dg = mdnid != NID_undef ? core_md_(mdnid) : NULL;
    if (dg == NULL) {
        /* no digest in the signature algorithm (EdDSA): let OpenSSL pick, as the server does */
        q = cert;
        X509 *x = d2i_X509(NULL, &q, (long)len);
        ASN1_OCTET_STRING *h = x ? X509_digest_sig(x, NULL, NULL) : NULL;
        int ok = h != NULL && (size_t)ASN1_STRING_length(h) <= EVP_MAX_MD_SIZE;
        if (ok) {
            *mdlen = (unsigned)ASN1_STRING_length(h);
            memcpy(md, ASN1_STRING_get0_data(h), *mdlen);
        }
        ASN1_OCTET_STRING_free(h);
        X509_free(x);
        return ok ? 0 : -1;
    }
    return EVP_Digest(cert, len, md, mdlen, dg, NULL) == 1 ? 0 : -1;
}

/* Checks a response against the transaction in flight: its IDs and, with PBM, its MAC (with
 * the transaction's key when the server reused its parameters). NULL when it holds. */
static const char *check_rsp(struct bench *b, struct conn *c, const uint8_t *der, size_t len,
                             struct rsp *r)
{
    if (!read_rsp(der, len, r))
        return "undecodable response";
    if (r->txid_len != NONCE_LEN || memcmp(r->txid, c->tm.txid, NONCE_LEN) != 0)
        return "transactionID does not match";
    if (r->rnonce_len != NONCE_LEN || memcmp(r->rnonce, c->tm.nonce, NONCE_LEN) != 0)
        return "recipNonce does not match our senderNonce";
    if (b->o.secret == NULL)
        return NULL;
    if (r->alg == NULL || r->prot == NULL)
        return "PBM response without protection";
    const uint8_t *q = r->alg;
    X509_ALGOR *alg = d2i_X509_ALGOR(NULL, &q, (long)r->alg_len);
    const ASN1_STRING *seq = NULL;
    CG_PBMPARAMETER *pp = NULL;
    if (alg != NULL && alg->parameter != NULL && alg->parameter->type == V_ASN1_SEQUENCE) {
        seq = alg->parameter->value.sequence;
        const unsigned char *sp = ASN1_STRING_get0_data(seq);
        pp = d2i_CG_PBMPARAMETER(NULL, &sp, ASN1_STRING_length(seq));
    }
    const char *why = "response protection is not a PBM";
    int64_t iter = 0;
    uint8_t key[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE], *part = NULL;
    unsigned keylen = 0, maclen = 0;
    size_t partlen = 0;
    if (pp == NULL || ASN1_INTEGER_get_int64(&iter, pp->iterationCount) != 1 || iter < 1 ||
        iter > 100000)
        goto out;
    const uint8_t *salt = ASN1_STRING_get0_data(pp->salt);
    size_t saltlen = (size_t)ASN1_STRING_length(pp->salt);
    int owf = OBJ_obj2nid(pp->owf->algorithm), hm = OBJ_obj2nid(pp->mac->algorithm);
    if (owf == NID_sha256 && iter == PBM_ITER && saltlen == sizeof(c->tm.salt) &&
        memcmp(salt, c->tm.salt, saltlen) == 0 && c->tm.keylen > 0) {
        memcpy(key, c->tm.key, c->tm.keylen);
        keylen = c->tm.keylen;
    } else if (pbm_derive_(owf, b->o.secret, salt, saltlen, iter, key, &keylen) != CG_OK) {
        goto out;
    }
    why = "response MAC does not verify";
    if (protect_part_from_der_(der, len, &part, &partlen) != CG_OK ||
        pbm_hmac_(hm, key, keylen, part, partlen, mac, &maclen) != CG_OK)
        goto out;
    if (r->prot_len - 1 == maclen && r->prot[0] == 0 && memcmp(r->prot + 1, mac, maclen) == 0)
        why = NULL;
out:
    free(part);
    CG_PBMPARAMETER_free(pp);
    X509_ALGOR_free(alg);
    return why;
}

/* The first message of transaction i (the request), encoded into out; tm gets its IDs and
 * PBM key. */
static void build_first(struct bench *b, struct conn *c, long i, struct txmeta *tm,
                        struct msgbuf *out)
{
    CG_PKIMESSAGE *m;
    switch (b->setup ? CMD_IR : b->o.cmd) {
    case CMD_CR:
        m = build_certreq(b, tm, i, CG_BODY_CR);
        break;
    case CMD_P10CR:
        m = build_certreq(b, tm, i, CG_BODY_P10CR);
        break;
    case CMD_KUR:
        m = build_certreq(b, tm, i, CG_BODY_KUR);
        break;
    case CMD_RR:
        m = build_rr(b, tm, c->rr_cert);
        break;
    case CMD_GENM:
        m = build_genm(b, tm);
        break;
    default:
        m = build_certreq(b, tm, i, CG_BODY_IR);
        break;
    }
    if (b->setup) {
        CG_PKIHEADER *h = m->header;
        if (h->generalInfo == NULL)
            add_implicit_confirm(h);
    }
    if (finish(b, m, tm, out) != 0)
        die("cannot build a request");
    CG_PKIMESSAGE_free(m);
}

/* certConf of transaction tm for a certificate hash md (recipNonce: the server's nonce). */
static int make_certconf(struct bench *b, struct txmeta *tm, const uint8_t *nonce, size_t nonce_len,
                         const uint8_t *md, unsigned mdlen, long rid, struct msgbuf *out)
{
    CG_PKIMESSAGE *m = header_new(b, CG_BODY_CERTCONF, tm, nonce, nonce_len);
    CG_CERTSTATUS *cs = CG_CERTSTATUS_new();
    ASN1_OCTET_STRING_set(cs->certHash, md, (int)mdlen);
    ASN1_INTEGER_set(cs->certReqId, rid);
    m->body->value.certConf = sk_CG_CERTSTATUS_new_null();
    sk_CG_CERTSTATUS_push(m->body->value.certConf, cs);
    int rc = finish(b, m, tm, out);
    CG_PKIMESSAGE_free(m);
    return rc;
}

/* certConf for the certificate cert (DER, with the hash algorithm of its signature) of the
 * transaction in flight on c; nonce is the server's senderNonce. */
static int build_certconf(struct bench *b, struct conn *c, const uint8_t *nonce, size_t nonce_len,
                          const uint8_t *cert, size_t cert_len, long rid, struct msgbuf *out)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (cert_hash(cert, cert_len, md, &mdlen) != 0)
        return -1;
    return make_certconf(b, &c->tm, nonce, nonce_len, md, mdlen, rid, out);
}

/* Placeholders of a prebuilt certConf, distinct enough to occur once in its DER. */
static const uint8_t CC_NONCE[NONCE_LEN] = {0xc3, 0x5a, 0x96, 0x0f, 0xe1, 0x2d, 0x78, 0xb4,
                                            0x4b, 0x87, 0x1e, 0xd2, 0x69, 0xa5, 0xf0, 0x3c};
static const uint8_t CC_HASH[32] = {
    0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15, 0xf3, 0x9c, 0xc0, 0x60, 0x5c, 0xed, 0xc8, 0x34,
    0x10, 0x82, 0x27, 0x6b, 0xf3, 0xa2, 0x72, 0x37, 0x0d, 0xa9, 0x6e, 0x54, 0xc1, 0x3b, 0x8e, 0x5f};
#define CC_TAIL 37 /* protection at the end: a0 23 03 21 00, then a 32-byte HMAC-SHA256 */

/* --prebuild, PBM: the certConf of transaction tm with placeholders, so that answering an ip
 * costs two copies, a hash and an HMAC. Left NULL when its shape is not the common one. */
static void cc_prebuild(struct bench *b, struct txmeta *tm)
{
    static const uint8_t tail[5] = {0xa0, 0x23, 0x03, 0x21, 0x00};
    uint8_t first[NONCE_LEN];
    struct msgbuf mb = {0};
    memcpy(first, tm->nonce, NONCE_LEN);
    if (make_certconf(b, tm, CC_NONCE, NONCE_LEN, CC_HASH, 32, 0, &mb) == 0) {
        const uint8_t *pn = memmem(mb.der, mb.len, CC_NONCE, NONCE_LEN);
        const uint8_t *ph = memmem(mb.der, mb.len, CC_HASH, 32);
        if (pn != NULL && ph != NULL && mb.len > CC_TAIL &&
            memcmp(mb.der + mb.len - CC_TAIL, tail, sizeof(tail)) == 0 &&
            memmem(pn + 1, mb.len - (size_t)(pn + 1 - mb.der), CC_NONCE, NONCE_LEN) == NULL) {
            tm->cc = mb.der;
            tm->cc_len = mb.len;
            tm->cc_nonce_off = (size_t)(pn - mb.der);
            tm->cc_hash_off = (size_t)(ph - mb.der);
            memcpy(tm->cc_nonce, tm->nonce, NONCE_LEN);
            mb.der = NULL;
        }
    }
    free(mb.der);
    memcpy(tm->nonce, first, NONCE_LEN); /* the request's, which the ip must echo */
}

/* The prebuilt certConf of the transaction on c, completed: -1 when there is none or the
 * answer does not fit it (the caller then builds one). */
static int cc_fill(struct conn *c, const uint8_t *nonce, size_t nonce_len, const uint8_t *cert,
                   size_t cert_len, long rid, struct msgbuf *out)
{
    struct txmeta *tm = &c->tm;
    uint8_t md[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE], *part = NULL;
    unsigned mdlen = 0, maclen = 0;
    size_t partlen = 0;
    if (tm->cc == NULL || nonce_len != NONCE_LEN || rid != 0 ||
        cert_hash(cert, cert_len, md, &mdlen) != 0 || mdlen != 32 ||
        (out->der = malloc(tm->cc_len)) == NULL)
        return -1;
    out->len = tm->cc_len;
    memcpy(out->der, tm->cc, tm->cc_len);
    memcpy(out->der + tm->cc_nonce_off, nonce, NONCE_LEN);
    memcpy(out->der + tm->cc_hash_off, md, 32);
    if (protect_part_from_der_(out->der, out->len, &part, &partlen) != CG_OK ||
        pbm_hmac_(NID_hmacWithSHA256, tm->key, tm->keylen, part, partlen, mac, &maclen) != CG_OK ||
        maclen != 32) {
        free(part);
        free(out->der);
        out->der = NULL;
        return -1;
    }
    free(part);
    memcpy(out->der + out->len - 32, mac, 32);
    memcpy(tm->nonce, tm->cc_nonce, NONCE_LEN); /* the pkiConf echoes the certConf's */
    return 0;
}

/* --- transport --------------------------------------------------------------------------- */

static void connect_conn(struct conn *c);

static void send_der(struct conn *c, const struct msgbuf *mb)
{
    /* A server that closes after each response (HTTP/1.0, "Connection: close", such as
     * OpenSSL's mock server) gets a fresh connection for the next message. */
    if (c->bev != NULL && c->closing) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->bev == NULL) {
        connect_conn(c);
        c->answered = 0;
    }
    if (mb != &c->last) {
        free(c->last.der);
        c->last.der = malloc(mb->len);
        memcpy(c->last.der, mb->der, mb->len);
        c->last.len = mb->len;
        c->retried = 0;
    }
    c->got_bytes = 0;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->b->o.tcp) {
        uint8_t hdr[7];
        uint32_t l = (uint32_t)mb->len + 3;
        hdr[0] = (uint8_t)(l >> 24);
        hdr[1] = (uint8_t)(l >> 16);
        hdr[2] = (uint8_t)(l >> 8);
        hdr[3] = (uint8_t)l;
        hdr[4] = 10;
        hdr[5] = 0;
        hdr[6] = 0;
        evbuffer_add(out, hdr, 7);
    } else {
        evbuffer_add_printf(
            out,
            "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/pkixcmp\r\n"
            "Content-Length: %zu\r\n\r\n",
            c->b->o.path, c->b->o.host, c->b->o.port, mb->len);
    }
    evbuffer_add(out, mb->der, mb->len);
}

static void start_next(struct conn *c);

static void record(struct bench *b, struct conn *c, int ok, const char *why)
{
    double t = now_s();
    if (b->setup) {
        if (!ok)
            die(why);
    } else {
        if (ok)
            b->ok++;
        else {
            b->errors++;
            snprintf(b->last_error, sizeof(b->last_error), "%s", why);
        }
        if (b->nlat == b->caplat) {
            b->caplat = b->caplat ? b->caplat * 2 : 4096;
            b->lat = realloc(b->lat, b->caplat * sizeof(double));
        }
        b->lat[b->nlat++] = (t - c->t0) * 1000.0;
    }
    b->done++;
    c->phase = 0;
    start_next(c);
}

static X509 *ip_cert(CG_PKIMESSAGE *m, long *rid, const char **why)
{
    if (m->body->type != CG_BODY_IP && m->body->type != CG_BODY_CP &&
        m->body->type != CG_BODY_KUP) {
        *why = m->body->type == CG_BODY_ERROR ? "error response" : "unexpected body";
        return NULL;
    }
    CG_CERTRESPONSE *r = sk_CG_CERTRESPONSE_value(m->body->value.ip->response, 0);
    if (r == NULL || ASN1_INTEGER_get(r->status->status) > 1 || r->certifiedKeyPair == NULL ||
        r->certifiedKeyPair->certOrEncCert->type != 0) {
        *why = "rejected certificate request";
        return NULL;
    }
    *rid = ASN1_INTEGER_get(r->certReqId);
    return r->certifiedKeyPair->certOrEncCert->value.certificate;
}

/* Setup (certificates an rr run revokes): the issued certificate is decoded and kept. */
static void on_setup_response(struct conn *c, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    CG_PKIMESSAGE *m = d2i_CG_PKIMESSAGE(NULL, &p, (long)len);
    const char *why = "undecodable response";
    long rid = 0;
    X509 *cert = m != NULL ? ip_cert(m, &rid, &why) : NULL;
    if (cert != NULL) {
        X509_up_ref(cert);
        sk_X509_push(c->b->rr_certs, cert);
    }
    record(c->b, c, cert != NULL, why);
    CG_PKIMESSAGE_free(m);
}

static void on_response(struct conn *c, const uint8_t *der, size_t len)
{
    struct bench *b = c->b;
    struct rsp r;
    if (b->setup) {
        on_setup_response(c, der, len);
        return;
    }
    const char *why = check_rsp(b, c, der, len, &r);
    if (why != NULL) {
        record(b, c, 0, why);
    } else if (c->phase == 2) {
        record(b, c, r.body == CG_BODY_PKICONF, "certConf not answered with pkiConf");
    } else if (b->o.cmd == CMD_RR) {
        record(b, c, r.body == CG_BODY_RP && r.status == 0, "revocation not accepted");
    } else if (b->o.cmd == CMD_GENM) {
        record(b, c, r.body == CG_BODY_GENP, "genm not answered with genp");
    } else if (r.body != CG_BODY_IP && r.body != CG_BODY_CP && r.body != CG_BODY_KUP) {
        record(b, c, 0, r.body == CG_BODY_ERROR ? "error response" : "unexpected body");
    } else if (r.status > 1 || r.cert == NULL) {
        record(b, c, 0, "rejected certificate request");
    } else if (b->o.implicit) {
        record(b, c, 1, NULL);
    } else {
        struct msgbuf mb;
        if (cc_fill(c, r.snonce, r.snonce_len, r.cert, r.cert_len, r.rid, &mb) != 0 &&
            build_certconf(b, c, r.snonce, r.snonce_len, r.cert, r.cert_len, r.rid, &mb) != 0) {
            record(b, c, 0, "cannot build certConf");
        } else {
            c->phase = 2;
            send_der(c, &mb);
            free(mb.der);
        }
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_get_length(in) > 0)
        c->got_bytes = 1;
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (c->b->o.tcp) {
            uint8_t hdr[7];
            if (avail < 7)
                return;
            evbuffer_copyout(in, hdr, 7);
            size_t l =
                ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) | ((size_t)hdr[2] << 8) | hdr[3];
            if (l < 3 || avail < 4 + l)
                return;
            uint8_t *buf = malloc(l + 4);
            evbuffer_remove(in, buf, l + 4);
            c->answered++;
            if (hdr[6] != 5)
                record(c->b, c, 0, "TCP error frame");
            else
                on_response(c, buf + 7, l - 3);
            free(buf);
            if (c->bev != bev)
                return;
        } else {
            struct evbuffer_ptr eoh = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (eoh.pos < 0)
                return;
            size_t hlen = (size_t)eoh.pos + 4;
            char *hdrs = malloc(hlen + 1);
            evbuffer_copyout(in, hdrs, hlen);
            hdrs[hlen] = '\0';
            int status = atoi(hdrs + 9);
            size_t clen = 0;
            /* HTTP/1.0 closes unless it says keep-alive; HTTP/1.1 keeps unless it says close */
            int closing = strncmp(hdrs, "HTTP/1.0", 8) == 0;
            for (char *h = strstr(hdrs, "\r\n"); h != NULL; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                    clen = (size_t)strtoul(h + 17, NULL, 10);
                if (strncasecmp(h + 2, "Connection:", 11) == 0) {
                    const char *v = h + 13;
                    while (*v == ' ')
                        v++;
                    if (strncasecmp(v, "close", 5) == 0)
                        closing = 1;
                    else if (strncasecmp(v, "keep-alive", 10) == 0)
                        closing = 0;
                }
            }
            free(hdrs);
            if (avail < hlen + clen)
                return;
            evbuffer_drain(in, hlen);
            uint8_t *body = malloc(clen + 1);
            evbuffer_remove(in, body, clen);
            c->closing = closing;
            c->answered++;
            if (status != 200) {
                char why[64];
                snprintf(why, sizeof(why), "HTTP %d", status);
                record(c->b, c, 0, why);
            } else {
                on_response(c, body, clen);
            }
            free(body);
        }
        if (c->bev != bev) /* the handler reconnected: bev and in are gone */
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    /* the server closed: count a transaction in flight as failed; the next message
     * reconnects (send_der) */
    bufferevent_free(c->bev);
    c->bev = NULL;
    c->closing = 0;
    if (c->b->holding) {
        if (c->held) {
            c->held = 0;
            c->b->open_conns--;
        }
        return;
    }
    if (c->phase == 0)
        return;
    /* A kept-alive connection the server closed before reading our next message (a server
     * that ends keep-alive after a transaction, like OpenSSL's mock): resend once on a new
     * connection, as HTTP clients do; nothing of a response arrived, so nothing was lost. */
    if (c->answered > 0 && !c->got_bytes && !c->retried) {
        c->retried = 1;
        c->b->retries++;
        if (c->phase == 1 && c->b->retries >= 3)
            c->b->fresh_per_txn = 1;
        send_der(c, &c->last);
        return;
    }
    record(c->b, c, 0, (what & BEV_EVENT_ERROR) ? "connection error" : "connection closed");
}

static void connect_conn(struct conn *c)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)c->b->o.port);
    if (inet_pton(AF_INET, c->b->o.host, &sin.sin_addr) != 1)
        die("--server must be IPv4 HOST:PORT");
    c->bev = bufferevent_socket_new(c->b->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        die("cannot connect");
}

static void start_next(struct conn *c)
{
    struct bench *b = c->b;
    int more = b->setup ? b->next < b->target
                        : (b->o.duration > 0 ? now_s() < b->end_at : b->next < b->target);
    if (!more) {
        if (--b->active == 0)
            event_base_loopexit(b->base, NULL);
        return;
    }
    long i = b->next++;
    if (!b->setup && b->o.cmd == CMD_RR)
        c->rr_cert = sk_X509_value(b->rr_certs, (int)(i % sk_X509_num(b->rr_certs)));
    c->index = i;
    if (b->fresh_per_txn)
        c->closing = 1;
    c->t0 = now_s();
    c->phase = 1;
    if (!b->setup && b->prebuilt != NULL && i < b->nprebuilt) {
        c->tm = b->prebuilt_tm[i];
        send_der(c, &b->prebuilt[i]);
    } else {
        struct msgbuf mb;
        build_first(b, c, i, &c->tm, &mb);
        send_der(c, &mb);
        free(mb.der);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    double el = now_s() - b->start;
    fprintf(stderr, "\r%s%ld done, %ld ok, %ld errors, %.0f req/s   ", b->setup ? "setup: " : "",
            b->done, b->ok, b->errors, (double)(b->done - b->last_done));
    b->last_done = b->done;
    (void)el;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(struct bench *b, double q)
{
    if (b->nlat == 0)
        return 0;
    size_t i = (size_t)(q * (double)(b->nlat - 1) + 0.5);
    return b->lat[i];
}

/* CPU seconds (user + system) this process has used. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of /proc/PID/stat, in clock ticks; -1 when unreadable. */
static long proc_cpu_ticks(long pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    long utime = 0, stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
        return -1;
    return utime + stime;
}

/* The CPU time (user + system, every thread, exited ones included) of process pid in
 * seconds: from its CPU-time clock, which counts nanoseconds, or from /proc/PID/stat, which
 * counts clock ticks (10 ms), when the clock cannot be read. -1 when neither can. */
static double proc_cpu_s(long pid)
{
    clockid_t clk;
    struct timespec ts;
    if (clock_getcpuclockid((pid_t)pid, &clk) == 0 && clock_gettime(clk, &ts) == 0)
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    long t = proc_cpu_ticks(pid);
    return t < 0 ? -1 : (double)t / (double)sysconf(_SC_CLK_TCK);
}

/* A "Name:   1234 kB" line of /proc/PID/status, in kB; -1 when unreadable. */
static long proc_status_kb(long pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(name);
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    fclose(f);
    return v;
}

/* Resets the peak RSS (VmHWM) of pid to its current RSS (Linux clear_refs "5"). */
static void reset_peak_rss(long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/clear_refs", pid);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs("5", f);
        fclose(f);
    }
}

static void on_hold_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopexit(((struct bench *)arg)->base, NULL);
}

/* --crypto-floor: the CPU cost of the cryptography one PBM-protected ir needs at least, on
 * this machine, one thread: ECDSA P-256 sign and verify (SHA-256 over a certificate-sized
 * input, as the CA and the POPO check do) and the PBM key derivation (PBM_ITER iterations of
 * SHA-256 over secret||salt, RFC 4210 5.1.3.1) plus the HMAC-SHA256 over a message. */
static void crypto_floor(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    uint8_t tbs[400], sig[128], md[EVP_MAX_MD_SIZE];
    size_t siglen = sizeof(sig);
    unsigned int mdlen;
    RAND_bytes(tbs, sizeof(tbs));
    double t, sign_us, verify_us, pbm_us, hmac_us;
    long n;
    for (t = now_s(), n = 0; now_s() - t < 1.0; n++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        siglen = sizeof(sig);
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k);
        EVP_DigestSign(ctx, sig, &siglen, tbs, sizeof(tbs));
        EVP_MD_CTX_free(ctx);
    }
    sign_us = (now_s() - t) * 1e6 / (double)n;
    for (t = now_s(), n = 0; now_s() - t < 1.0; n++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k);
        if (EVP_DigestVerify(ctx, sig, siglen, tbs, sizeof(tbs)) != 1)
            die("verify failed");
        EVP_MD_CTX_free(ctx);
    }
    verify_us = (now_s() - t) * 1e6 / (double)n;
    /* the derivation and HMAC the server uses (core/pbm.c, the fastest we know) */
    for (t = now_s(), n = 0; now_s() - t < 1.0; n++) {
        uint8_t salt[16];
        RAND_bytes(salt, sizeof(salt));
        pbm_derive_(NID_sha256, "password", salt, sizeof(salt), PBM_ITER, md, &mdlen);
    }
    pbm_us = (now_s() - t) * 1e6 / (double)n;
    for (t = now_s(), n = 0; now_s() - t < 1.0; n++)
        pbm_hmac_(NID_hmacWithSHA256, md, mdlen, tbs, sizeof(tbs), md, &mdlen);
    hmac_us = (now_s() - t) * 1e6 / (double)n;
    printf("{\"ecdsa_p256_sign_us\":%.2f,\"ecdsa_p256_verify_us\":%.2f,\"pbm_%d_sha256_us\":%.2f,"
           "\"hmac_sha256_400B_us\":%.2f}\n",
           sign_us, verify_us, PBM_ITER, pbm_us, hmac_us);
    EVP_PKEY_free(k);
    exit(0);
}

static void run(struct bench *b)
{
    b->active = b->o.concurrency;
    b->last_done = b->done;
    for (int i = 0; i < b->o.concurrency; i++) {
        struct conn *c = &b->conns[i];
        c->b = b;
        if (c->bev == NULL && !c->closing)
            connect_conn(c);
        start_next(c);
    }
    event_base_dispatch(b->base);
}

static void usage(void)
{
    fputs("usage: cmpgate-bench --server HOST:PORT [--path PATH | --tcp] --cmd "
          "ir|cr|p10cr|kur|rr|genm\n"
          "         [--secret pass:PW --ref REF | --cert FILE --key FILE] [--recipient DN]\n"
          "         [--key-type ec-p256|ec-p384|rsa2048|ed25519] [--subject-prefix /CN=bench]\n"
          "         [--requests N | --duration S] [--concurrency C] [--prebuild]\n"
          "         [--implicit-confirm] [--server-pid PID] [--json]\n"
          "         [--same-subject] [--hold SECONDS]\n"
          "       cmpgate-bench --crypto-floor\n",
          stderr);
    exit(2);
}

static EVP_PKEY *gen_key(const char *t)
{
    if (strcmp(t, "ec-p256") == 0)
        return EVP_EC_gen("P-256");
    if (strcmp(t, "ec-p384") == 0)
        return EVP_EC_gen("P-384");
    if (strcmp(t, "rsa2048") == 0)
        return EVP_RSA_gen(2048);
    if (strcmp(t, "ed25519") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    die("--key-type must be ec-p256, ec-p384, rsa2048 or ed25519");
    return NULL;
}

int main(int argc, char **argv)
{
    static struct bench B;
    struct bench *b = &B;
    struct opts *o = &b->o;
    static const struct option lo[] = {{"server", 1, 0, 's'},
                                       {"path", 1, 0, 'p'},
                                       {"tcp", 0, 0, 't'},
                                       {"cmd", 1, 0, 'c'},
                                       {"secret", 1, 0, 'S'},
                                       {"ref", 1, 0, 'r'},
                                       {"cert", 1, 0, 'C'},
                                       {"key", 1, 0, 'K'},
                                       {"recipient", 1, 0, 'R'},
                                       {"key-type", 1, 0, 'k'},
                                       {"subject-prefix", 1, 0, 'P'},
                                       {"requests", 1, 0, 'n'},
                                       {"duration", 1, 0, 'd'},
                                       {"concurrency", 1, 0, 'N'},
                                       {"prebuild", 0, 0, 'b'},
                                       {"implicit-confirm", 0, 0, 'i'},
                                       {"server-pid", 1, 0, 'x'},
                                       {"json", 0, 0, 'j'},
                                       {"help", 0, 0, 'h'},
                                       {"same-subject", 0, 0, 'Y'},
                                       {"hold", 1, 0, 'H'},
                                       {"crypto-floor", 0, 0, 'F'},
                                       {0, 0, 0, 0}};
    o->path = "/ejbca/publicweb/cmp/opensslra";
    o->key_type = "ec-p256";
    o->subject_prefix = "/CN=bench";
    o->requests = 1000;
    o->concurrency = 16;
    o->cmd = -1;
    const char *server = NULL, *cmd = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            server = optarg;
            break;
        case 'p':
            o->path = optarg;
            break;
        case 't':
            o->tcp = 1;
            break;
        case 'c':
            cmd = optarg;
            break;
        case 'S':
            o->secret = strncmp(optarg, "pass:", 5) == 0 ? optarg + 5 : optarg;
            break;
        case 'r':
            o->ref = optarg;
            break;
        case 'C':
            o->cert_file = optarg;
            break;
        case 'K':
            o->key_file = optarg;
            break;
        case 'R':
            o->recipient = optarg;
            break;
        case 'k':
            o->key_type = optarg;
            break;
        case 'P':
            o->subject_prefix = optarg;
            break;
        case 'n':
            o->requests = atol(optarg);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'N':
            o->concurrency = atoi(optarg);
            break;
        case 'b':
            o->prebuild = 1;
            break;
        case 'i':
            o->implicit = 1;
            break;
        case 'x':
            o->server_pid = atol(optarg);
            break;
        case 'j':
            o->json = 1;
            break;
        case 'Y':
            o->same_subject = 1;
            break;
        case 'H':
            o->hold = atof(optarg);
            break;
        case 'F':
            crypto_floor();
            break;
        default:
            usage();
        }
    }
    if (server == NULL || cmd == NULL || o->concurrency < 1 || o->requests < 1)
        usage();
    static const char *const cmds[] = {"ir", "cr", "p10cr", "kur", "rr", "genm"};
    for (int i = 0; i < 6; i++)
        if (strcmp(cmd, cmds[i]) == 0)
            o->cmd = i;
    if (o->cmd < 0)
        usage();
    const char *colon = strrchr(server, ':');
    if (colon == NULL || (size_t)(colon - server) >= sizeof(o->host))
        usage();
    memcpy(o->host, server, (size_t)(colon - server));
    o->host[colon - server] = '\0';
    if (strcmp(o->host, "localhost") == 0)
        strcpy(o->host, "127.0.0.1");
    o->port = atoi(colon + 1);
    if ((o->secret == NULL) == (o->cert_file == NULL))
        die("give either --secret pass:PW (with --ref) or --cert FILE --key FILE");
    if (o->cert_file != NULL) {
        FILE *f = fopen(o->cert_file, "r");
        FILE *k = o->key_file ? fopen(o->key_file, "r") : NULL;
        if (f == NULL || k == NULL)
            die("cannot read --cert / --key");
        b->signer = PEM_read_X509(f, NULL, NULL, NULL);
        b->signer_key = PEM_read_PrivateKey(k, NULL, NULL, NULL);
        fclose(f);
        fclose(k);
        if (b->signer == NULL || b->signer_key == NULL)
            die("cannot parse --cert / --key");
    } else if (o->ref == NULL) {
        o->ref = "bench";
    }
    if (o->cmd == CMD_KUR && b->signer == NULL)
        die("kur needs --cert and --key (the certificate to renew)");
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < KEY_POOL; i++)
        if ((b->keys[i] = gen_key(o->key_type)) == NULL)
            die("key generation failed");
    b->base = event_base_new();
    b->conns = calloc((size_t)o->concurrency, sizeof(struct conn));
    b->rr_certs = sk_X509_new_null();
    if (o->cmd == CMD_RR) {
        /* enroll the certificates to revoke before the clock starts */
        b->setup = 1;
        b->target = o->duration > 0 ? 20000 : o->requests;
        run(b);
        fprintf(stderr, "\n");
        b->setup = 0;
        b->done = b->next = 0;
    }
    b->target = o->duration > 0 ? 0x7fffffff : o->requests;
    if (o->prebuild) {
        long n = o->duration > 0 ? 200000 : o->requests;
        b->prebuilt = calloc((size_t)n, sizeof(struct msgbuf));
        b->prebuilt_tm = calloc((size_t)n, sizeof(struct txmeta));
        b->nprebuilt = n;
        struct conn tmp = {0};
        tmp.b = b;
        for (long i = 0; i < n; i++) {
            if (o->cmd == CMD_RR)
                tmp.rr_cert = sk_X509_value(b->rr_certs, (int)(i % sk_X509_num(b->rr_certs)));
            build_first(b, &tmp, i, &b->prebuilt_tm[i], &b->prebuilt[i]);
            if (o->secret != NULL && !o->implicit &&
                (o->cmd == CMD_IR || o->cmd == CMD_CR || o->cmd == CMD_KUR))
                cc_prebuild(b, &b->prebuilt_tm[i]);
        }
        if (o->duration > 0)
            b->target = n; /* then built on the fly */
        b->target = o->duration > 0 ? 0x7fffffff : o->requests;
    }
    b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    struct timeval one = {1, 0};
    event_add(b->tick, &one);
    if (o->server_pid)
        reset_peak_rss(o->server_pid);
    double cpu0 = o->server_pid ? proc_cpu_s(o->server_pid) : -1;
    double self0 = self_cpu_s();
    b->start = now_s();
    b->end_at = b->start + o->duration;
    run(b);
    double secs = now_s() - b->start;
    double self_cpu = self_cpu_s() - self0;
    double cpu1 = o->server_pid ? proc_cpu_s(o->server_pid) : -1;
    long hwm = o->server_pid ? proc_status_kb(o->server_pid, "VmHWM") : -1;
    long held_rss = -1;
    fprintf(stderr, "\n");
    if (o->hold > 0) {
        /* keep every connection open (the server may close idle ones: counted) */
        b->holding = 1;
        b->open_conns = 0;
        for (int i = 0; i < o->concurrency; i++)
            if ((b->conns[i].held = b->conns[i].bev != NULL))
                b->open_conns++;
        struct timeval hv = {(time_t)o->hold,
                             (suseconds_t)((o->hold - (double)(time_t)o->hold) * 1e6)};
        struct event *he = evtimer_new(b->base, on_hold_end, b);
        fprintf(stderr, "holding %ld connections for %.0f s\n", b->open_conns, o->hold);
        event_del(b->tick);
        evtimer_add(he, &hv);
        event_base_dispatch(b->base);
        event_free(he);
        if (o->server_pid)
            held_rss = proc_status_kb(o->server_pid, "VmRSS");
    }
    qsort(b->lat, b->nlat, sizeof(double), cmp_double);
    printf("{\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"rps\":%.1f,"
           "\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"p999_ms\":%.2f",
           b->done, b->ok, b->errors, secs, (double)b->done / secs, pct(b, 0.5), pct(b, 0.9),
           pct(b, 0.99), pct(b, 0.999));
    printf(",\"max_ms\":%.2f,\"resent\":%ld", b->nlat ? b->lat[b->nlat - 1] : 0.0, b->retries);
    if (b->done > 0)
        printf(",\"client_cpu_ms_per_req\":%.3f", self_cpu * 1000.0 / (double)b->done);
    if (hwm >= 0)
        printf(",\"server_peak_rss_kb\":%ld", hwm);
    if (o->hold > 0) {
        printf(",\"held_open\":%ld", b->open_conns);
        if (held_rss >= 0)
            printf(",\"server_rss_kb_held\":%ld", held_rss);
    }
    if (cpu0 >= 0 && cpu1 >= 0 && b->done > 0)
        printf(",\"server_cpu_ms_per_req\":%.4f", (cpu1 - cpu0) * 1000.0 / (double)b->done);
    printf("}\n");
    if (b->errors > 0)
        fprintf(stderr, "last error: %s\n", b->last_error);
    return b->errors > 0 ? 1 : 0;
}
