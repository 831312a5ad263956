/*
 * modinv.c - the inverse of a public number modulo an odd prime, in variable time: the s^-1 of
 * an ECDSA verification (ecfast.c).
 *
 * DESIGN: OpenSSL inverts modulo a curve's order with its own code (a fixed exponentiation
 * for P-256), which it does not export; BN_mod_inverse, the public one, takes 10-17 µs at
 * 256 bits. This is the binary GCD of Bernstein and Yang ("Fast constant-time gcd computation
 * and modular inversion", 2019) in its variable-time form, which is safe here because nothing
 * inverted is secret (a signature's s): 1.7 µs at 256 bits, conversions included.
 *
 * Numbers are held in signed limbs of 62 bits (the top limb carries the sign), enough limbs
 * for the modulus and six bits more. Each round takes 62 "divsteps" on the low 62 bits of f
 * and g alone (they decide the steps), collected in a 2x2 matrix scaled by 2^62, then applies
 * it to the whole f, g (divided exactly by 2^62) and to d, e, the cofactors (with the multiple
 * of the modulus that makes them divisible by 2^62). Invariants: d*a = f, e*a = g (mod m);
 * f stays odd; the matrix's rows have |u|+|v| <= 2^62, so |d| and |e| grow by at most m per
 * round. When g reaches 0, f is +-1 (m prime, a not 0) and a^-1 = d*f.
 *
 * The result is checked (a * r = 1 mod m, one BN_mod_mul) before it is returned, and the
 * rounds are bounded: a fault here can cost the caller its fast path, never a wrong inverse.
 */
#include "core_local.h"

#include <openssl/bn.h>
#include <string.h>

#define LIMB_BITS 62
#define LIMB_MASK ((((uint64_t)1) << LIMB_BITS) - 1)
#define MAX_LIMBS 10 /* moduli to 10 * 62 - 6 = 614 bits (P-521's order has 521) */
/* 256 bits take 9 or 10 rounds, 521 bits 17-19; after k rounds |d|, |e| < (k+1) m, within the
 * 5 spare bits of the top limb for k < 31 */
#define MAX_ROUNDS 30

#ifndef __SIZEOF_INT128__
#error "modinv.c needs the 128-bit integers of gcc or clang on a 64-bit target"
#endif
__extension__ typedef __int128 i128;

/* 62 divsteps on the low 62 bits of f (odd) and g: t = the matrix (u v; q r), scaled by
 * 2^62, such that 2^62 (f', g') = t (f, g). A run of zero bits of g is skipped at once, and
 * without a swap up to six steps cancel low bits of g together (g += w*f with w = -g/f
 * mod 2^k, k limited by eta+1 so that no swap falls inside). @return the new eta. */
static int64_t divsteps(int64_t eta, uint64_t f, uint64_t g, int64_t t[4])
{
    uint64_t u = 1, v = 0, q = 0, r = 1; /* two's complement */
    int i = LIMB_BITS;
    for (;;) {
        int zeros = g == 0 ? i : __builtin_ctzll(g);
        if (zeros > i)
            zeros = i;
        eta -= zeros;
        i -= zeros;
        g >>= zeros;
        u <<= zeros;
        v <<= zeros;
        if (i == 0)
            break;
        if (eta < 0) { /* (f, g) = (g, -f) */
            uint64_t tf = f, tu = u, tv = v;
            eta = -eta;
            f = g;
            u = q;
            v = r;
            g = -tf;
            q = -tu;
            r = -tv;
        }
        int k = eta + 1 < i ? (int)eta + 1 : i;
        if (k > 6)
            k = 6;
        uint64_t finv = f * (2 - f * f); /* f^-1 mod 64: f*f = 1 mod 8 for odd f */
        uint64_t w = (0 - g * finv) & (UINT64_MAX >> (64 - k));
        g += w * f;
        q += w * u;
        r += w * v;
    }
    t[0] = (int64_t)u;
    t[1] = (int64_t)v;
    t[2] = (int64_t)q;
    t[3] = (int64_t)r;
    return eta;
}

/* (a, b) = (t (a, b) + (ma, mb) m) / 2^62 over n limbs; ma, mb are 0 for f and g (exact). */
static void apply(int n, int64_t *a, int64_t *b, const int64_t t[4], int64_t ma, int64_t mb,
                  const int64_t *m)
{
    i128 ca = (i128)t[0] * a[0] + (i128)t[1] * b[0] + (i128)ma * m[0];
    i128 cb = (i128)t[2] * a[0] + (i128)t[3] * b[0] + (i128)mb * m[0];
    ca >>= LIMB_BITS;
    cb >>= LIMB_BITS;
    for (int i = 1; i < n; i++) {
        ca += (i128)t[0] * a[i] + (i128)t[1] * b[i] + (i128)ma * m[i];
        cb += (i128)t[2] * a[i] + (i128)t[3] * b[i] + (i128)mb * m[i];
        a[i - 1] = (int64_t)((uint64_t)ca & LIMB_MASK);
        b[i - 1] = (int64_t)((uint64_t)cb & LIMB_MASK);
        ca >>= LIMB_BITS;
        cb >>= LIMB_BITS;
    }
    a[n - 1] = (int64_t)ca;
    b[n - 1] = (int64_t)cb;
}

/* A non-negative BIGNUM below 2^(62n - 1) as n limbs. */
static int to_limbs(const BIGNUM *a, int n, int64_t *l)
{
    uint64_t w[MAX_LIMBS + 1] = {0};
    unsigned char b[sizeof(w)];
    if (BN_bn2lebinpad(a, b, n * 8) < 0)
        return 0;
    for (int i = 0; i < n; i++) /* byte order of the host's words not assumed */
        for (int j = 7; j >= 0; j--)
            w[i] = w[i] << 8 | b[8 * i + j];
    for (int i = 0; i < n; i++) {
        int bit = LIMB_BITS * i, k = bit / 64, o = bit % 64;
        uint64_t x = w[k] >> o;
        if (o > 64 - LIMB_BITS)
            x |= w[k + 1] << (64 - o);
        l[i] = (int64_t)(x & LIMB_MASK);
    }
    return 1;
}

/* n limbs (any sign) as a BIGNUM. */
static int from_limbs(BIGNUM *a, int n, const int64_t *l)
{
    int64_t t[MAX_LIMBS];
    uint64_t w[MAX_LIMBS + 1] = {0};
    unsigned char b[sizeof(w)];
    int neg = l[n - 1] < 0;
    memcpy(t, l, (size_t)n * sizeof(*t));
    if (neg) { /* two's complement over the limbs */
        uint64_t c = 1;
        for (int i = 0; i < n - 1; i++) {
            uint64_t x = ((uint64_t)~t[i] & LIMB_MASK) + c;
            t[i] = (int64_t)(x & LIMB_MASK);
            c = x >> LIMB_BITS;
        }
        t[n - 1] = (int64_t)(~(uint64_t)t[n - 1] + c);
    }
    for (int i = 0; i < n; i++) {
        int bit = LIMB_BITS * i, k = bit / 64, o = bit % 64;
        w[k] |= (uint64_t)t[i] << o;
        if (o > 64 - LIMB_BITS)
            w[k + 1] |= (uint64_t)t[i] >> (64 - o);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 8; j++)
            b[8 * i + j] = (unsigned char)(w[i] >> (8 * j));
    if (BN_lebin2bn(b, n * 8, a) == NULL)
        return 0;
    BN_set_negative(a, neg);
    return 1;
}

static int is_zero(int n, const int64_t *a)
{
    for (int i = 0; i < n; i++)
        if (a[i] != 0)
            return 0;
    return 1;
}

int modinv_vartime_(BIGNUM *r, const BIGNUM *a, const BIGNUM *m, BN_CTX *ctx)
{
    int n = (BN_num_bits(m) + 6 + LIMB_BITS - 1) / LIMB_BITS;
    if (!BN_is_odd(m) || BN_is_negative(m) || BN_is_one(m) || n > MAX_LIMBS || BN_is_negative(a) ||
        BN_ucmp(a, m) >= 0 || BN_is_zero(a))
        return 0;
    int64_t f[MAX_LIMBS], g[MAX_LIMBS], d[MAX_LIMBS] = {0}, e[MAX_LIMBS] = {0}, mod[MAX_LIMBS];
    int64_t t[4], eta = -1; /* eta = -delta, delta 1 at the start */
    if (!to_limbs(m, n, mod) || !to_limbs(a, n, g))
        return 0;
    memcpy(f, mod, (size_t)n * sizeof(*f));
    e[0] = 1;
    uint64_t minv = (uint64_t)mod[0]; /* m^-1 mod 2^64 by Newton: right to 3, 6, 12... bits */
    for (int i = 0; i < 5; i++)
        minv *= 2 - (uint64_t)mod[0] * minv;
    for (int round = 0; !is_zero(n, g); round++) {
        if (round == MAX_ROUNDS)
            return 0;
        eta = divsteps(eta, (uint64_t)f[0], (uint64_t)g[0], t);
        apply(n, f, g, t, 0, 0, mod);
        /* the multiples of m that make t (d, e) divisible by 2^62 */
        uint64_t ld = (uint64_t)t[0] * (uint64_t)d[0] + (uint64_t)t[1] * (uint64_t)e[0];
        uint64_t le = (uint64_t)t[2] * (uint64_t)d[0] + (uint64_t)t[3] * (uint64_t)e[0];
        apply(n, d, e, t, (int64_t)((0 - ld * minv) & LIMB_MASK),
              (int64_t)((0 - le * minv) & LIMB_MASK), mod);
    }
    BN_CTX_start(ctx);
    BIGNUM *one = BN_CTX_get(ctx);
    int ok = one != NULL && from_limbs(r, n, d) == 1;
    if (ok && f[n - 1] < 0) /* f = -1 */
        BN_set_negative(r, !BN_is_negative(r));
    ok = ok && BN_nnmod(r, r, m, ctx) == 1 && BN_mod_mul(one, a, r, m, ctx) == 1 && BN_is_one(one);
    BN_CTX_end(ctx);
    return ok;
}
