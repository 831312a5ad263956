/*
 * ecfast.c - requested EC public keys on named curves, and the ECDSA check of their proof of
 * possession, through OpenSSL's EC_KEY (a legacy key inside the EVP_PKEY).
 *
 * DESIGN: every enrollment brings a new key, which is imported once and verified once. Through
 * the provider interface that costs a key import into the provider (parameters copied from a
 * template, the point set through OSSL_PARAMs, the key management looked up by name) and a
 * verification context (EVP_DigestVerifyInit fetches the signature implementation and builds
 * a provider context): 10 µs + 6 µs beyond the ECDSA arithmetic at P-256, more under four
 * workers, since the name lookups share locks. An EC_KEY on a group built once per curve costs
 * 3 µs to import, and ECDSA_do_verify over the digest is what the provider itself calls. In a
 * micro-benchmark of 4 threads on the 2 cores, import + verify took 94-101 µs instead of
 * 110-118 µs. The EC_KEY functions are deprecated in OpenSSL 3.0 and still built by every 3.x;
 * this file and pbm.c are the only users of deprecated APIs.
 *
 * The result is an ordinary EVP_PKEY (EVP_PKEY_get_base_id, EVP_PKEY_eq, i2d_PUBKEY and
 * EVP_PKEY_get_bits work on it; OpenSSL exports it to a provider when an operation needs
 * one). ecfast_verify_() recognises it by its lack of a provider. Only the curves of
 * ecfast_nids are kept: a client cannot make the table grow.
 *
 * Each thread keeps one key per curve that it lends again and again: while it is not lent, a
 * new point is all that changes (EC_KEY_set_public_key, which OpenSSL counts as a change of
 * the key, so a provider export is made again). A new EC_KEY and EVP_PKEY per request cost
 * 4.0 µs with their frees (the EC_KEY takes the engine table's lock, copies the group; the
 * EVP_PKEY makes a lock), a new point 1.4 µs. The borrower gives the key back with
 * ecfast_key_free_(); a key freed with EVP_PKEY_free instead stays lent, and that thread
 * makes new keys from then on. A key is lent to one borrower at a time: a second import
 * while it is out gets a new key. Keys never leave the request that imported them (the
 * certificate is written from the request's SubjectPublicKeyInfo, not from the key).
 *
 * The check itself (ecdsa_check) is ECDSA's (SEC 1 4.1.4) over OpenSSL's point arithmetic, not
 * ECDSA_do_verify, which spends two inversions beyond the multiplication u1 G + u2 Q: s^-1
 * modulo the order, and Z^-1 to make the sum affine. s is public, so modinv.c inverts it in
 * variable time (1.7 µs); and x(R) = r is tested as X = r Z^2 on R's Jacobian coordinates (or
 * (r + n) Z^2 when r + n is below the field's prime: x(R) mod n = r has those two solutions).
 * Together 8-11 µs less per verification at P-256 (65 against 72-77 µs, alternating runs of a
 * micro-benchmark). Anything the check cannot decide (out of memory, an inverse not found)
 * goes to ECDSA_do_verify, counted (ecfast_fallbacks_).
 *
 * The signature's DER is read here (sig_parse) rather than by ECDSA_verify, which decodes it
 * through the template engine, encodes it again and compares, to refuse anything but DER:
 * 0.58-0.77 µs against 0.16 µs in a micro-benchmark. The rules are the same (test
 * core/ecfast_sig_der compares the verdicts with the provider's on variants of valid
 * signatures).
 */
#undef OPENSSL_NO_DEPRECATED /* EC_KEY and ECDSA_do_verify (see DESIGN) */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "core_local.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <pthread.h>
#include <stdlib.h>

static const int ecfast_nids[] = {NID_X9_62_prime256v1, NID_secp384r1,       NID_secp521r1,
                                  NID_secp256k1,        NID_brainpoolP256r1, NID_brainpoolP384r1,
                                  NID_brainpoolP512r1};
#define ECFAST_CURVES (sizeof(ecfast_nids) / sizeof(ecfast_nids[0]))
static EC_GROUP *groups[ECFAST_CURVES];
static BIGNUM *primes[ECFAST_CURVES]; /* each group's field prime */
static pthread_once_t groups_once = PTHREAD_ONCE_INIT;

/* A thread's key for one curve (see DESIGN), with the point it decodes into. */
struct lender {
    EVP_PKEY *key; /* one reference is the lender's */
    EC_POINT *point;
    int lent;
};
static pthread_key_t lenders_key;
static int lenders_ok;
static unsigned long lends;     /* keys lent again (atomic), for the tests */
static unsigned long fallbacks; /* checks left to ECDSA_do_verify (atomic) */

static void lenders_free(void *p)
{
    struct lender *l = p;
    for (size_t i = 0; i < ECFAST_CURVES; i++) {
        EVP_PKEY_free(l[i].key);
        EC_POINT_free(l[i].point);
    }
    free(l);
}

/* Every group at once: after that the table is only read (a group that cannot be built stays
 * NULL, and its keys take the generic path). */
static void build_groups(void)
{
    for (size_t i = 0; i < ECFAST_CURVES; i++) {
        groups[i] = EC_GROUP_new_by_curve_name(ecfast_nids[i]);
        if (groups[i] != NULL &&
            ((primes[i] = BN_new()) == NULL ||
             EC_GROUP_get_curve(groups[i], primes[i], NULL, NULL, NULL) != 1)) {
            EC_GROUP_free(groups[i]);
            groups[i] = NULL;
            BN_free(primes[i]);
            primes[i] = NULL;
        }
    }
    lenders_ok = pthread_key_create(&lenders_key, lenders_free) == 0;
}

/* The group of curve_nid and its index in the table, or NULL (a group that could not be
 * built). */
static const EC_GROUP *group_of(int curve_nid, size_t *index)
{
    pthread_once(&groups_once, build_groups);
    for (size_t i = 0; i < ECFAST_CURVES; i++)
        if (ecfast_nids[i] == curve_nid) {
            *index = i;
            return groups[i];
        }
    return NULL;
}

/* This thread's lenders (made on first use), or NULL without memory. */
static struct lender *lenders(int create)
{
    struct lender *l;
    pthread_once(&groups_once, build_groups); /* lenders_key and lenders_ok, set there */
    if (!lenders_ok)
        return NULL;
    if ((l = pthread_getspecific(lenders_key)) == NULL && create) {
        if ((l = calloc(ECFAST_CURVES, sizeof(*l))) != NULL &&
            pthread_setspecific(lenders_key, l) != 0) {
            free(l);
            l = NULL;
        }
    }
    return l;
}

/* The lender's key with the point set, or NULL (not a point of the curve, or the identity; the
 * key stays the lender's, unchanged in use). */
static EVP_PKEY *lend(struct lender *l, const EC_GROUP *group, const unsigned char *point,
                      size_t len)
{
    EC_KEY *ec = (EC_KEY *)EVP_PKEY_get0_EC_KEY(l->key);
    if (ec == NULL || EC_POINT_oct2point(group, l->point, point, len, NULL) != 1 ||
        EC_POINT_is_at_infinity(group, l->point) || EC_KEY_set_public_key(ec, l->point) != 1 ||
        EVP_PKEY_up_ref(l->key) != 1)
        return NULL;
    l->lent = 1;
    __atomic_add_fetch(&lends, 1, __ATOMIC_RELAXED);
    return l->key;
}

void ecfast_init_(void)
{
    pthread_once(&groups_once, build_groups);
}

int ecfast_curve_(int curve_nid)
{
    size_t i;
    return group_of(curve_nid, &i) != NULL;
}

/* A new EVP_PKEY holding an EC_KEY with the point. */
static EVP_PKEY *key_new(const EC_GROUP *group, const unsigned char *point, size_t len)
{
    EC_KEY *ec = NULL;
    EC_POINT *pt = NULL;
    EVP_PKEY *key = NULL;
    if (group == NULL || (ec = EC_KEY_new()) == NULL || EC_KEY_set_group(ec, group) != 1 ||
        (pt = EC_POINT_new(group)) == NULL)
        goto fail;
    /* the encoding checks the coordinates are below the field prime and the point is on
     * the curve (EC_POINT_set_affine_coordinates); the identity (encoded 00) is no key */
    if (EC_POINT_oct2point(group, pt, point, len, NULL) != 1 ||
        EC_POINT_is_at_infinity(group, pt) || EC_KEY_set_public_key(ec, pt) != 1)
        goto fail;
    if ((key = EVP_PKEY_new()) == NULL || EVP_PKEY_assign_EC_KEY(key, ec) != 1)
        goto fail;
    EC_POINT_free(pt);
    return key; /* owns ec */
fail:
    EVP_PKEY_free(key);
    EC_POINT_free(pt);
    EC_KEY_free(ec);
    return NULL;
}

EVP_PKEY *ecfast_key_(int curve_nid, const unsigned char *point, size_t len)
{
    size_t i = 0;
    const EC_GROUP *group = group_of(curve_nid, &i);
    struct lender *l = group != NULL ? lenders(1) : NULL;
    if (group == NULL)
        return NULL;
    if (l != NULL && l[i].key != NULL && !l[i].lent)
        return lend(&l[i], group, point, len);
    EVP_PKEY *key = key_new(group, point, len);
    if (key != NULL && l != NULL && l[i].key == NULL) { /* this thread's key from now on */
        if ((l[i].point = EC_POINT_new(group)) != NULL && EVP_PKEY_up_ref(key) == 1) {
            l[i].key = key;
            l[i].lent = 1;
        } else {
            EC_POINT_free(l[i].point);
            l[i].point = NULL;
        }
    }
    return key;
}

void ecfast_key_free_(EVP_PKEY *key)
{
    struct lender *l = key != NULL ? lenders(0) : NULL;
    for (size_t i = 0; l != NULL && i < ECFAST_CURVES; i++)
        if (l[i].key == key && l[i].lent) {
            l[i].lent = 0; /* the lender's reference stays */
            break;
        }
    EVP_PKEY_free(key);
}

unsigned long ecfast_lends_(void)
{
    return __atomic_load_n(&lends, __ATOMIC_RELAXED);
}

/* One DER length at *p (short form, or 0x81 with one byte: an ECDSA signature is under 256
 * bytes), within end; *p moved past it. @return the length, or -1. */
static long der_len(const unsigned char **p, const unsigned char *end)
{
    long n = -1;
    if (*p < end && **p < 0x80)
        n = *(*p)++;
    else if (end - *p >= 2 && **p == 0x81 && (*p)[1] >= 0x80) {
        n = (*p)[1];
        *p += 2;
    }
    return n <= end - *p ? n : -1;
}

/* One positive INTEGER in its minimal encoding at *p, as a new BIGNUM; *p moved past it. */
static BIGNUM *der_uint(const unsigned char **p, const unsigned char *end)
{
    long n;
    if (*p >= end || *(*p)++ != 0x02 || (n = der_len(p, end)) <= 0)
        return NULL;
    const unsigned char *v = *p;
    if ((v[0] & 0x80) != 0 || (n > 1 && v[0] == 0 && (v[1] & 0x80) == 0))
        return NULL; /* negative, or a leading zero it does not need */
    *p += n;
    return BN_bin2bn(v, (int)n, NULL);
}

/* ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, in DER and nothing after it: what
 * ECDSA_verify accepts (it decodes, encodes again and compares), without the second
 * encoding. r and s are checked against the order by ECDSA_do_verify. */
static ECDSA_SIG *sig_parse(const unsigned char *sig, size_t siglen)
{
    const unsigned char *p = sig, *end = sig + siglen;
    BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG *rs = NULL;
    long n;
    if (siglen < 2 || *p++ != 0x30 || (n = der_len(&p, end)) != end - p ||
        (r = der_uint(&p, end)) == NULL || (s = der_uint(&p, end)) == NULL || p != end ||
        (rs = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(rs, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(rs);
        return NULL;
    }
    return rs;
}

unsigned long ecfast_fallbacks_(void)
{
    return __atomic_load_n(&fallbacks, __ATOMIC_RELAXED);
}

/* ECDSA's check of (r, s) over the digest with the public point q of group (field prime p),
 * without ECDSA_do_verify's two inversions (see DESIGN). @return 1 valid, 0 invalid, -1 not
 * decided (no memory, no inverse found). */
static int ecdsa_check(const EC_GROUP *group, const BIGNUM *p, const EC_POINT *q,
                       const unsigned char *dgst, int dlen, const BIGNUM *r, const BIGNUM *s)
{
    const BIGNUM *n = EC_GROUP_get0_order(group);
    if (BN_is_zero(r) || BN_is_negative(r) || BN_ucmp(r, n) >= 0 || BN_is_zero(s) ||
        BN_is_negative(s) || BN_ucmp(s, n) >= 0 || EC_POINT_is_at_infinity(group, q))
        return 0;
    /* e: the digest's leftmost bits, as many as the order has */
    int bits = BN_num_bits(n);
    if (8 * dlen > bits)
        dlen = (bits + 7) / 8;
    BN_CTX *ctx = BN_CTX_new();
    EC_POINT *pt = EC_POINT_new(group);
    BIGNUM *w, *e, *u1, *u2, *x, *z, *t;
    int ok = -1;
    if (ctx == NULL || pt == NULL)
        goto done;
    BN_CTX_start(ctx);
    w = BN_CTX_get(ctx), e = BN_CTX_get(ctx), u1 = BN_CTX_get(ctx), u2 = BN_CTX_get(ctx);
    x = BN_CTX_get(ctx), z = BN_CTX_get(ctx), t = BN_CTX_get(ctx);
    if (t == NULL || BN_bin2bn(dgst, dlen, e) == NULL ||
        (8 * dlen > bits && BN_rshift(e, e, 8 - (bits & 7)) != 1) ||
        modinv_vartime_(w, s, n, ctx) != 1 || BN_mod_mul(u1, e, w, n, ctx) != 1 ||
        BN_mod_mul(u2, r, w, n, ctx) != 1 || EC_POINT_mul(group, pt, u1, q, u2, ctx) != 1)
        goto end;
    if (EC_POINT_is_at_infinity(group, pt)) {
        ok = 0;
        goto end;
    }
    /* R = (X / Z^2, Y / Z^3); x(R) is r, or r + n when that is below p */
    if (EC_POINT_get_Jprojective_coordinates_GFp(group, pt, x, NULL, z, ctx) != 1 ||
        BN_nnmod(x, x, p, ctx) != 1 || BN_mod_sqr(z, z, p, ctx) != 1 ||
        BN_mod_mul(t, r, z, p, ctx) != 1)
        goto end;
    ok = BN_cmp(t, x) == 0;
    if (!ok) { /* the other solution, r + n, when it is below p */
        if (BN_add(t, r, n) != 1)
            ok = -1;
        else if (BN_cmp(t, p) < 0)
            ok = BN_mod_mul(t, t, z, p, ctx) != 1 ? -1 : BN_cmp(t, x) == 0;
    }
end:
    BN_CTX_end(ctx);
done:
    EC_POINT_free(pt);
    BN_CTX_free(ctx);
    return ok;
}

int ecfast_verify_(EVP_PKEY *key, const EVP_MD *md, const unsigned char *sig, size_t siglen,
                   const unsigned char *data, size_t len)
{
    unsigned char dgst[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    size_t i = 0;
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get0_provider(key) != NULL ||
        md == NULL)
        return -1; /* not one of ecfast_key_'s */
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
    const EC_GROUP *group = ec != NULL ? EC_KEY_get0_group(ec) : NULL;
    const EC_POINT *q = ec != NULL ? EC_KEY_get0_public_key(ec) : NULL;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG *rs = NULL;
    int ok = 0;
    if (group == NULL || q == NULL || (rs = sig_parse(sig, siglen)) == NULL ||
        EVP_Digest(data, len, dgst, &dlen, md, NULL) != 1)
        goto done;
    ECDSA_SIG_get0(rs, &r, &s);
    if (group_of(EC_GROUP_get_curve_name(group), &i) != NULL) /* a copy of the table's */
        ok = ecdsa_check(group, primes[i], q, dgst, (int)dlen, r, s);
    else
        ok = -1;
    if (ok < 0) {
        __atomic_add_fetch(&fallbacks, 1, __ATOMIC_RELAXED);
        ok = ECDSA_do_verify(dgst, (int)dlen, rs, (EC_KEY *)ec) == 1;
    }
done:
    ECDSA_SIG_free(rs);
    return ok;
}
