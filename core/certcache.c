/*
 * certcache.c - CG_X509_CACHED, the ASN.1 type of a PKIMessage's extraCerts: an X509 decoded
 * once per distinct DER and shared by every message that carries the same bytes.
 *
 * DESIGN: OpenSSL 3.0 decodes a certificate's public key through its decoder framework when
 * the certificate is decoded, about 0.3 ms per certificate on the reference machine: a
 * quarter of the CPU of a signature-protected enrollment, whose every message carries the
 * signer's certificate. A client sends the same certificate with each message, so the decoded
 * X509 is kept in a small direct-mapped table keyed by the SHA-256 of its DER and handed out
 * with a reference (X509_up_ref); a new entry replaces an old one. Only identical bytes find
 * an entry. The lazily filled parts of an X509 (its extension cache) are filled before it is
 * shared, so that threads only read it. The field stays a STACK_OF(X509): no caller changes.
 * A table entry also remembers that its certificate's signature verified under a given issuer
 * key (core_cert_verify_), so the signer of every message of a transaction is checked once.
 *
 * Encoding: OpenSSL keeps the encoding of a decoded certificate's TBS part but encodes the
 * rest again at each i2d. A certificate's DER can be attached once (core_cert_set_der_, X509
 * ex_data; the CA certificates sent in caPubs) and CG_X509_CACHED then writes it as it is.
 * A certificate the CA has just issued has no X509 at all: issue.c writes it as DER, into a
 * response body written as DER too (ca_certrep_der_, carried by CG_TLV_RAW below).
 *
 * Names: a message's header sender and recipient are GeneralNames that cmpgate only echoes
 * (the request's sender becomes the response's recipient), yet decoding a directoryName costs
 * 2-5 µs (OpenSSL builds its entries and a canonical form). CG_GENNAME_RAW keeps the encoding;
 * it is still checked to be a GeneralName, by decoding it unless the same bytes were checked
 * recently (a table of the last names, which repeat: the RA's name, the CA's, NULL-DN), and
 * a name received in BER is kept in its DER re-encoding (a response echoes it).
 *
 * Releases: OpenSSL counts an X509's references with relaxed atomics, which order nothing, so
 * the thread that drops a shared certificate's last reference and frees it would have no
 * happens-before edge with another thread's earlier reads of it (a data race by C11's rules,
 * reported by ThreadSanitizer; x86 hides it). Every reference the table or a message holds is
 * therefore dropped under release_mu (core_cert_release_), which orders all such drops. Each
 * thread's message reference is the last one it drops (other references it takes, such as
 * kur's, go before the message is freed), so a drop outside the mutex never frees, and the
 * one that frees comes after every other holder's last drop.
 */
#include "cg_buf.h"
#include "cg_err.h"
#include "cmp_asn.h"
#include "core_local.h"

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CERT_SLOTS 256 /* distinct certificates kept: signers in flight at once */

struct cert_slot {
    uint8_t id[32]; /* SHA-256 of the DER */
    X509 *x;        /* a reference of the table's own */
    int verified;   /* x's signature verified with the key below */
    uint8_t by[32]; /* SHA-256 of that public key */
};

static struct cert_slot slots[CERT_SLOTS];
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t release_mu = PTHREAD_MUTEX_INITIALIZER; /* see Releases above */

void core_cert_release_(X509 *x)
{
    if (x == NULL)
        return;
    pthread_mutex_lock(&release_mu);
    X509_free(x);
    pthread_mutex_unlock(&release_mu);
}

/* The certificate of der[0..len) (exactly), from the table or decoded; a new reference. */
static X509 *cert_decode(const unsigned char *der, long len)
{
    uint8_t id[32];
    if (EVP_Digest(der, (size_t)len, id, NULL, core_md_(NID_sha256), NULL) != 1)
        return NULL;
    struct cert_slot *s = &slots[(id[0] | (unsigned)id[1] << 8) % CERT_SLOTS];
    X509 *x = NULL;
    pthread_mutex_lock(&slots_mu);
    if (s->x != NULL && memcmp(s->id, id, sizeof(id)) == 0 && X509_up_ref(s->x))
        x = s->x;
    pthread_mutex_unlock(&slots_mu);
    if (x != NULL)
        return x;
    const unsigned char *p = der;
    if ((x = d2i_X509(NULL, &p, len)) == NULL || p != der + len) {
        X509_free(x);
        return NULL;
    }
    ERR_set_mark();
    X509_check_purpose(x, -1, 0); /* fill the extension cache before sharing */
    ERR_pop_to_mark();            /* an invalid extension is the verifier's business */
    /* Only a whole certificate is shared. OpenSSL keeps a key it could not decode as none, and
     * an extension it could not decode (for want of memory, too) as a mark that the
     * certificate is invalid, for the life of the X509: shared, one failed allocation would
     * refuse every later message carrying these bytes. */
    if (X509_get0_pubkey(x) == NULL ||
        (X509_get_extension_flags(x) & (EXFLAG_INVALID | EXFLAG_NO_FINGERPRINT)) != 0 ||
        !X509_up_ref(x))
        return x; /* not shared */
    pthread_mutex_lock(&slots_mu);
    X509 *old = s->x;
    s->x = x;
    s->verified = 0;
    memcpy(s->id, id, sizeof(id));
    pthread_mutex_unlock(&slots_mu);
    core_cert_release_(old);
    return x;
}

int core_cert_verify_(X509 *x, X509 *issuer)
{
    uint8_t id[32], by[32];
    unsigned n = 0;
    unsigned char *spki = NULL;
    /* the issuer's whole SubjectPublicKeyInfo (algorithm, parameters and key) */
    int slen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(issuer), &spki);
    int ok = slen > 0 && EVP_Digest(spki, (size_t)slen, by, NULL, core_md_(NID_sha256), NULL) &&
             X509_digest(x, core_md_(NID_sha256), id, &n) == 1;
    OPENSSL_free(spki);
    if (!ok)
        return 0;
    struct cert_slot *s = &slots[(id[0] | (unsigned)id[1] << 8) % CERT_SLOTS];
    int known;
    pthread_mutex_lock(&slots_mu);
    known = s->x == x && s->verified && memcmp(s->by, by, sizeof(by)) == 0;
    pthread_mutex_unlock(&slots_mu);
    if (known)
        return 1;
    if (X509_verify(x, X509_get0_pubkey(issuer)) != 1)
        return 0;
    pthread_mutex_lock(&slots_mu);
    if (s->x == x) {
        s->verified = 1;
        memcpy(s->by, by, sizeof(by));
    }
    pthread_mutex_unlock(&slots_mu);
    return 1;
}

void core_cert_cache_clear_(void)
{
    for (int i = 0; i < CERT_SLOTS; i++) {
        pthread_mutex_lock(&slots_mu);
        X509 *x = slots[i].x;
        slots[i].x = NULL;
        pthread_mutex_unlock(&slots_mu);
        core_cert_release_(x);
    }
}

/* --- DER attached to a certificate (the CA certificates responses carry) ---------------- */

struct der_blob {
    size_t len;
    unsigned char der[];
};

static int der_index = -1;
static pthread_once_t der_once = PTHREAD_ONCE_INIT;

static void der_blob_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static void der_index_new(void)
{
    der_index = X509_get_ex_new_index(0, NULL, NULL, NULL, der_blob_free);
}

int core_cert_set_der_(X509 *x, const unsigned char **der, size_t *len)
{
    unsigned char *buf = NULL;
    int n = i2d_X509(x, &buf);
    struct der_blob *b = n > 0 ? malloc(sizeof(*b) + (size_t)n) : NULL;
    pthread_once(&der_once, der_index_new);
    if (b == NULL || der_index < 0) {
        OPENSSL_free(buf);
        free(b);
        return n > 0 ? CG_ENOMEM : CG_ECRYPTO;
    }
    b->len = (size_t)n;
    memcpy(b->der, buf, (size_t)n);
    OPENSSL_free(buf);
    if (!X509_set_ex_data(x, der_index, b)) {
        free(b);
        return CG_ENOMEM;
    }
    *der = b->der;
    *len = b->len;
    return CG_OK;
}

const unsigned char *core_cert_der_(const X509 *x, size_t *len)
{
    const struct der_blob *b = NULL;
    pthread_once(&der_once, der_index_new);
    if (der_index >= 0)
        b = X509_get_ex_data(x, der_index);
    *len = b != NULL ? b->len : 0;
    return b != NULL ? b->der : NULL;
}

int core_cert_der_put_(struct cg_buf *b, const X509 *x)
{
    size_t len = 0;
    const unsigned char *der = core_cert_der_(x, &len);
    return der != NULL ? cg_buf_append(b, der, len) : DER_I2D(b, i2d_X509, x);
}

/* --- the ASN.1 type ------------------------------------------------------------------------ */

static int cert_new(ASN1_VALUE **pval, const ASN1_ITEM *it)
{
    (void)it;
    *pval = (ASN1_VALUE *)X509_new();
    return *pval != NULL;
}

static void cert_free(ASN1_VALUE **pval, const ASN1_ITEM *it)
{
    (void)it;
    core_cert_release_((X509 *)*pval);
    *pval = NULL;
}

/* The head of a universal SEQUENCE at in[0..len), for an ex_d2i function: 1 with *total its
 * whole length (0 when the length is indefinite), -1 when another type is there and opt
 * allows its absence, 0 on an error, a primitive encoding or implicit tagging. */
static int seq_head(const unsigned char *in, long len, int tag, char opt, long *total)
{
    const unsigned char *p = in;
    long plen = 0;
    int ptag = 0, pclass = 0;
    if (len <= 0)
        return opt ? -1 : 0;
    int r = ASN1_get_object(&p, &plen, &ptag, &pclass, len);
    if (r & 0x80)
        return 0;
    if (ptag != V_ASN1_SEQUENCE || pclass != V_ASN1_UNIVERSAL)
        return opt ? -1 : 0;
    if (tag >= 0 || !(r & V_ASN1_CONSTRUCTED))
        return 0;
    *total = r == 0x21 ? 0 : (long)(p - in) + plen; /* 0x21: constructed, indefinite length */
    return 1;
}

/* A Certificate (universal SEQUENCE, definite length; CMP never tags it implicitly): 1 when
 * decoded, -1 when optional and absent, 0 on error. */
static int cert_d2i(ASN1_VALUE **pval, const unsigned char **in, long len, const ASN1_ITEM *it,
                    int tag, int aclass, char opt, ASN1_TLC *ctx)
{
    long total = 0;
    (void)it;
    (void)aclass;
    (void)ctx;
    int r = seq_head(*in, len, tag, opt, &total);
    if (r <= 0 || total == 0)
        return r < 0 ? -1 : 0; /* absent, or an error or an indefinite length */
    X509 *x = cert_decode(*in, total);
    if (x == NULL)
        return 0;
    core_cert_release_((X509 *)*pval);
    *pval = (ASN1_VALUE *)x;
    *in += total;
    return 1;
}

/* An encoding written as it is, the way i2d functions write (into *out and past it, or into a
 * new buffer when *out is NULL, or just counted). */
static int write_der(const unsigned char *der, int len, unsigned char **out)
{
    if (out != NULL && *out == NULL) {
        if ((*out = OPENSSL_malloc((size_t)len)) == NULL)
            return -1;
        memcpy(*out, der, (size_t)len);
    } else if (out != NULL) {
        memcpy(*out, der, (size_t)len);
        *out += len;
    }
    return len;
}

static int cert_i2d(const ASN1_VALUE **pval, unsigned char **out, const ASN1_ITEM *it, int tag,
                    int aclass)
{
    (void)it;
    (void)aclass;
    size_t len = 0;
    const unsigned char *der;
    if (tag >= 0)
        return -1;
    if ((der = core_cert_der_((const X509 *)*pval, &len)) == NULL || len > INT_MAX)
        return i2d_X509((const X509 *)*pval, out);
    return write_der(der, (int)len, out);
}

static const ASN1_EXTERN_FUNCS cert_funcs = {
    .asn1_ex_new = cert_new,
    .asn1_ex_free = cert_free,
    .asn1_ex_d2i = cert_d2i,
    .asn1_ex_i2d = cert_i2d,
};

IMPLEMENT_EXTERN_ASN1(CG_X509_CACHED, V_ASN1_SEQUENCE, cert_funcs)

/* --- encodings held as ASN1_STRINGs ------------------------------------------------------ */

static int raw_new(ASN1_VALUE **pval, const ASN1_ITEM *it)
{
    (void)it;
    *pval = (ASN1_VALUE *)ASN1_STRING_new();
    return *pval != NULL;
}

static void raw_free(ASN1_VALUE **pval, const ASN1_ITEM *it)
{
    (void)it;
    ASN1_STRING_free((ASN1_STRING *)*pval);
    *pval = NULL;
}

/* Write the held encoding as it is (the raw items). */
static int raw_i2d(const ASN1_VALUE **pval, unsigned char **out, const ASN1_ITEM *it, int tag,
                   int aclass)
{
    const ASN1_STRING *s = (const ASN1_STRING *)*pval;
    (void)it;
    (void)aclass;
    int len = ASN1_STRING_length(s);
    if (tag >= 0 || len <= 0)
        return -1; /* never set (a message without a name is not encodable), or tagged */
    return write_der(ASN1_STRING_get0_data(s), len, out);
}

/* An item held as its encoding in an ASN1_STRING: made, freed and written as such; the raw
 * items differ only in how they read (d2i). */
#define RAW_ITEM(item, d2i)                                                                        \
    static const ASN1_EXTERN_FUNCS d2i##_funcs = {                                                 \
        .asn1_ex_new = raw_new,                                                                    \
        .asn1_ex_free = raw_free,                                                                  \
        .asn1_ex_d2i = d2i,                                                                        \
        .asn1_ex_i2d = raw_i2d,                                                                    \
    };                                                                                             \
    IMPLEMENT_EXTERN_ASN1(item, V_ASN1_SEQUENCE, d2i##_funcs)

/* --- CG_GENNAME_RAW: a GeneralName kept as its encoding ---------------------------------- */

#define NAME_SLOTS 64     /* distinct names remembered as valid */
#define NAME_MAX_DER 1024 /* longer names are checked every time */

struct name_slot {
    size_t len; /* 0: empty */
    unsigned char der[NAME_MAX_DER];
};

static struct name_slot names[NAME_SLOTS];
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;

static struct name_slot *name_slot(const unsigned char *der, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a: the table only saves work, it decides nothing */
    for (size_t i = 0; i < len; i++)
        h = (h ^ der[i]) * 16777619u;
    return &names[h % NAME_SLOTS];
}

/* Set raw to the GeneralName der[0..len) in DER: the bytes themselves when they are one
 * GeneralName in DER (known from the table, or decoded and encoded again to the same bytes),
 * its DER re-encoding when they are BER, so that a response echoing it stays DER. @return 1,
 * or 0 when the bytes are not one GeneralName (or out of memory). */
static int name_set(ASN1_STRING *raw, const unsigned char *der, size_t len)
{
    struct name_slot *s = name_slot(der, len);
    int known = 0;
    if (len <= NAME_MAX_DER) {
        pthread_mutex_lock(&names_mu);
        known = s->len == len && memcmp(s->der, der, len) == 0;
        pthread_mutex_unlock(&names_mu);
        if (known)
            return ASN1_STRING_set(raw, der, (int)len) == 1;
    }
    const unsigned char *p = der;
    unsigned char *again = NULL;
    GENERAL_NAME *gn = d2i_GENERAL_NAME(NULL, &p, (long)len);
    int n = gn != NULL && p == der + len ? i2d_GENERAL_NAME(gn, &again) : -1;
    int is_der = n > 0 && (size_t)n == len && memcmp(again, der, len) == 0;
    int ok = n > 0 && ASN1_STRING_set(raw, is_der ? der : again, is_der ? (int)len : n) == 1;
    GENERAL_NAME_free(gn);
    OPENSSL_free(again);
    if (ok && is_der && len <= NAME_MAX_DER) {
        pthread_mutex_lock(&names_mu);
        memcpy(s->der, der, len);
        s->len = len;
        pthread_mutex_unlock(&names_mu);
    }
    return ok;
}

int core_gn_raw_set_(ASN1_STRING *raw, const unsigned char *der, size_t len)
{
    return name_set(raw, der, len);
}

/* A GeneralName: one of its context-specific tags [0]..[8], definite length; 1 when decoded,
 * -1 when optional and absent, 0 on error. */
static int gn_d2i(ASN1_VALUE **pval, const unsigned char **in, long len, const ASN1_ITEM *it,
                  int tag, int aclass, char opt, ASN1_TLC *ctx)
{
    const unsigned char *p = *in;
    long plen = 0;
    int ptag = 0, pclass = 0;
    (void)it;
    (void)aclass;
    (void)ctx;
    if (len <= 0)
        return opt ? -1 : 0;
    int r = ASN1_get_object(&p, &plen, &ptag, &pclass, len);
    if (r & 0x80)
        return 0;
    if (pclass != V_ASN1_CONTEXT_SPECIFIC || ptag > GEN_RID)
        return opt ? -1 : 0;
    if (tag >= 0 || r == 0x21)
        return 0; /* implicit tagging, or an indefinite length */
    long total = (long)(p - *in) + plen;
    if (!name_set((ASN1_STRING *)*pval, *in, (size_t)total))
        return 0;
    *in += total;
    return 1;
}

RAW_ITEM(CG_GENNAME_RAW, gn_d2i)

int CG_GENNAME_RAW_set(ASN1_STRING *raw, const GENERAL_NAME *gn)
{
    unsigned char *der = NULL;
    int len = i2d_GENERAL_NAME(gn, &der);
    int ok = len > 0 && ASN1_STRING_set(raw, der, len) == 1;
    OPENSSL_free(der);
    return ok;
}

int CG_GENNAME_RAW_set_dirname(ASN1_STRING *raw, const X509_NAME *dn)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    X509_NAME *dup = dn != NULL ? X509_NAME_dup(dn) : X509_NAME_new();
    int ok = 0;
    if (gn != NULL && dup != NULL) {
        GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dup);
        dup = NULL;
        ok = CG_GENNAME_RAW_set(raw, gn);
    }
    X509_NAME_free(dup);
    GENERAL_NAME_free(gn);
    return ok;
}

GENERAL_NAME *CG_GENNAME_RAW_get(const ASN1_STRING *raw)
{
    const unsigned char *p = ASN1_STRING_get0_data(raw);
    int len = ASN1_STRING_length(raw);
    GENERAL_NAME *gn = len > 0 ? d2i_GENERAL_NAME(NULL, &p, len) : NULL;
    if (gn != NULL && p != ASN1_STRING_get0_data(raw) + len) {
        GENERAL_NAME_free(gn);
        gn = NULL;
    }
    return gn;
}

/* --- CG_NAME_RAW: a Name kept as its encoding -------------------------------------------- */
/* Its ASN1_STRING's type is V_ASN1_SEQUENCE when dn_der_check_() accepted the bytes. */

/* A Name (universal SEQUENCE): 1 when it is one, -1 when optional and absent, 0 on error. The
 * bytes are kept as received, as d2i_X509_NAME keeps them for re-encoding. A name in DER that
 * dn_der_check_() reads is taken as it is; any other is taken when d2i_X509_NAME takes it, so
 * the template refuses exactly the names an X509_NAME field refused. */
static int dn_d2i(ASN1_VALUE **pval, const unsigned char **in, long len, const ASN1_ITEM *it,
                  int tag, int aclass, char opt, ASN1_TLC *ctx)
{
    long total = 0;
    (void)it;
    (void)aclass;
    (void)ctx;
    int r = seq_head(*in, len, tag, opt, &total);
    if (r <= 0)
        return r;
    int checked = total > 0 && dn_der_check_(*in, (size_t)total);
    if (!checked) {
        /* BER (an indefinite length too), or a value type dn_iter does not read */
        long bound = total > 0 ? total : len;
        const unsigned char *p = *in;
        X509_NAME *dn = d2i_X509_NAME(NULL, &p, bound);
        X509_NAME_free(dn);
        if (dn == NULL || (total > 0 && p - *in != total))
            return 0;
        total = (long)(p - *in);
    }
    if (*pval == NULL && (*pval = (ASN1_VALUE *)ASN1_STRING_new()) == NULL)
        return 0;
    if (ASN1_STRING_set((ASN1_STRING *)*pval, *in, (int)total) != 1)
        return 0;
    /* the string's type records the check, for dn_ref_raw_() */
    ((ASN1_STRING *)*pval)->type = checked ? V_ASN1_SEQUENCE : V_ASN1_OCTET_STRING;
    *in += total;
    return 1;
}

RAW_ITEM(CG_NAME_RAW, dn_d2i)

ASN1_STRING *CG_NAME_RAW_new(const X509_NAME *dn)
{
    unsigned char *der = NULL;
    ASN1_STRING *raw = ASN1_STRING_new();
    int len = dn != NULL ? i2d_X509_NAME(dn, &der) : -1;
    if (raw == NULL || len <= 0 || ASN1_STRING_set(raw, der, len) != 1) {
        ASN1_STRING_free(raw);
        raw = NULL;
    }
    OPENSSL_free(der);
    return raw;
}

X509_NAME *CG_NAME_RAW_get(const ASN1_STRING *raw)
{
    const unsigned char *p = raw != NULL ? ASN1_STRING_get0_data(raw) : NULL;
    int len = raw != NULL ? ASN1_STRING_length(raw) : 0;
    X509_NAME *dn = len > 0 ? d2i_X509_NAME(NULL, &p, len) : NULL;
    if (dn != NULL && p != ASN1_STRING_get0_data(raw) + len) {
        X509_NAME_free(dn);
        dn = NULL;
    }
    return dn;
}

/* --- CG_TLV_RAW: a whole TLV written as it is, never decoded (a response body written as
 * DER) ------------------------------------------------------------------------------------ */

static int tlv_d2i(ASN1_VALUE **pval, const unsigned char **in, long len, const ASN1_ITEM *it,
                   int tag, int aclass, char opt, ASN1_TLC *ctx)
{
    (void)pval;
    (void)in;
    (void)len;
    (void)it;
    (void)tag;
    (void)aclass;
    (void)ctx;
    return opt ? -1 : 0; /* absent: in a CHOICE, the other alternatives decide */
}

RAW_ITEM(CG_TLV_RAW, tlv_d2i)
