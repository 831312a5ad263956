/*
 * pbm.c - the primitives of the password-based MAC (RFC 4211 4.4, RFC 4210 5.1.3.1): the key
 * derivation, HMAC, and a process-wide cache of derived keys.
 *
 * DESIGN: the derivation hashes secret || salt, then hashes the result iterationCount - 1
 * more times. OpenSSL 3's EVP digest calls cost about as much per call as the SHA-256
 * compression itself on a 32-byte input, so the loop uses the low-level SHA functions
 * (deprecated in 3.0, still built by every 3.x): 38 µs instead of 74 µs for 500 iterations
 * of SHA-256 on the reference machine, and for SHA-256 the compression alone
 * (sha256_iterate), on the CPU's SHA extensions where it has them (20 µs). Only this file and
 * ecfast.c use deprecated APIs.
 * HMAC is RFC 2104 written over the same low-level functions: EVP_Q_mac fetches the MAC and
 * the digest by name on every call, and even over fetched EVP digests each of the four MACs
 * of a transaction allocated a context and went through the provider three times.
 *
 * The cache maps (one-way function, iteration count, salt, secret) to the derived key: a
 * client that keeps its PBM parameters for a whole transaction (Bouncy Castle's PKMACBuilder
 * does) has its certConf checked without a second derivation. It is direct-mapped (a newer
 * entry replaces an older one), sized for a few thousand transactions in flight, and keyed
 * by a SHA-256 over all four inputs, so an entry is only ever found by the same secret with
 * the same parameters. It holds no more than the secrets the process already holds.
 */
#undef OPENSSL_NO_DEPRECATED /* SHA*_Init/Update/Final for the derivation loop (see DESIGN) */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "cg_err.h"
#include "core_local.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <string.h>

/* --- digests ------------------------------------------------------------------------------ */

/* Digests fetched once: an implicit fetch (EVP_sha256() in EVP_Digest) takes a lock and a
 * name lookup on every call. */
static EVP_MD *fetched[5];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_digests(void)
{
    static const char *const names[5] = {"SHA1", "SHA224", "SHA256", "SHA384", "SHA512"};
    for (int i = 0; i < 5; i++)
        fetched[i] = EVP_MD_fetch(NULL, names[i], NULL);
}

/* index into fetched[] for a digest or HMAC algorithm NID, -1 if unsupported */
static int digest_index(int nid)
{
    switch (nid) {
    case NID_sha1:
    case NID_hmac_sha1:
        return 0;
    case NID_sha224:
    case NID_hmacWithSHA224:
        return 1;
    case NID_sha256:
    case NID_hmacWithSHA256:
        return 2;
    case NID_sha384:
    case NID_hmacWithSHA384:
        return 3;
    case NID_sha512:
    case NID_hmacWithSHA512:
        return 4;
    default:
        return -1;
    }
}

const EVP_MD *core_md_(int nid)
{
    int i = digest_index(nid);
    pthread_once(&fetch_once, fetch_digests);
    return i >= 0 ? fetched[i] : NULL;
}

/* --- derivation ----------------------------------------------------------------------------- */

/* One hash of a[0..alen) || b[0..blen) into out with the digest at index i. */
static unsigned hash2(int i, const void *a, size_t alen, const void *b, size_t blen, uint8_t *out)
{
    switch (i) {
    case 0: {
        SHA_CTX c;
        SHA1_Init(&c);
        SHA1_Update(&c, a, alen);
        SHA1_Update(&c, b, blen);
        SHA1_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof(c));
        return SHA_DIGEST_LENGTH;
    }
    case 1:
    case 2: {
        SHA256_CTX c;
        i == 1 ? SHA224_Init(&c) : SHA256_Init(&c);
        SHA256_Update(&c, a, alen);
        SHA256_Update(&c, b, blen);
        i == 1 ? SHA224_Final(out, &c) : SHA256_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof(c));
        return i == 1 ? SHA224_DIGEST_LENGTH : SHA256_DIGEST_LENGTH;
    }
    default: {
        SHA512_CTX c;
        i == 3 ? SHA384_Init(&c) : SHA512_Init(&c);
        SHA512_Update(&c, a, alen);
        SHA512_Update(&c, b, blen);
        i == 3 ? SHA384_Final(out, &c) : SHA512_Final(out, &c);
        OPENSSL_cleanse(&c, sizeof(c));
        return i == 3 ? SHA384_DIGEST_LENGTH : SHA512_DIGEST_LENGTH;
    }
    }
}

static const uint32_t sha256_iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* SHA-256 applied n more times to key (32 bytes, in place). A 32-byte message is one padded
 * block, so each hash is one compression (SHA256_Transform) from the initial value, without
 * Init/Update/Final, which buffer the input, pad it and clear their buffer on every call:
 * 23 µs instead of 26 µs for 500 iterations on the reference machine. The digest goes back
 * into the block as whole big-endian words (byte stores there made the next compression's
 * loads wait, and the loop slower than the generic one). */
static void sha256_iterate_generic(uint8_t key[SHA256_DIGEST_LENGTH], int64_t n)
{
    SHA256_CTX c;
    uint8_t block[SHA256_CBLOCK] = {0};
    memcpy(block, key, SHA256_DIGEST_LENGTH);
    block[SHA256_DIGEST_LENGTH] = 0x80;
    block[SHA256_CBLOCK - 2] = 0x01; /* the message length in bits: 256 */
    for (int64_t k = 0; k < n; k++) {
        memcpy(c.h, sha256_iv, sizeof(sha256_iv));
        SHA256_Transform(&c, block);
        for (int j = 0; j < 8; j++) {
            uint32_t w = __builtin_bswap32(c.h[j]);
            memcpy(block + 4 * j, &w, sizeof(w));
        }
    }
    memcpy(key, block, SHA256_DIGEST_LENGTH);
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(&c, sizeof(c));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same iteration on the x86 SHA extensions, the state kept in registers from one hash to
 * the next: 20 µs instead of 25 µs for 500 iterations on the reference machine (the generic
 * loop stores the state, reloads it as the next block and pays OpenSSL's call each time).
 * The rounds (SHA256RNDS2) take the state as the words ABEF and CDGH and the message schedule
 * (SHA256MSG1/MSG2) four words at a time, as the Intel SHA extensions describe; the round
 * constants are FIPS 180-4's. The next block's message words are the digest's words
 * themselves (a digest is written big-endian and a block read big-endian), followed by the
 * constant padding of a 256-bit message: 0x80000000, six zero words, and the length 256. */
#include <cpuid.h>
#include <immintrin.h>

#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

/* four rounds: message words w (word t in lane t % 4) plus their constants, quad i */
#define SHANI_ROUNDS(s0, s1, w, i)                                                                 \
    do {                                                                                           \
        __m128i m_ = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)&sha256_k[4 * (i)]));     \
        (s1) = _mm_sha256rnds2_epu32((s1), (s0), m_);                                              \
        (s0) = _mm_sha256rnds2_epu32((s0), (s1), _mm_shuffle_epi32(m_, 0x0E));                     \
    } while (0)
/* the next four message words from the previous sixteen (a oldest, d newest) */
#define SHANI_SCHEDULE(a, b, c, d)                                                                 \
    _mm_sha256msg2_epu32(                                                                          \
        _mm_add_epi32(_mm_sha256msg1_epu32((a), (b)), _mm_alignr_epi8((d), (c), 4)), (d))

/* words H0..H3, H4..H7 (lane 0 first) to the rounds' ABEF, CDGH */
SHANI static void shani_pack(__m128i h0, __m128i h1, __m128i *abef, __m128i *cdgh)
{
    __m128i badc = _mm_shuffle_epi32(h0, 0xB1), hgfe = _mm_shuffle_epi32(h1, 0x1B);
    *abef = _mm_alignr_epi8(badc, hgfe, 8);
    *cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);
}

/* ABEF, CDGH back to words H0..H3, H4..H7 */
SHANI static void shani_unpack(__m128i abef, __m128i cdgh, __m128i *h0, __m128i *h1)
{
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B), dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    *h0 = _mm_blend_epi16(feba, dchg, 0xF0);
    *h1 = _mm_alignr_epi8(dchg, feba, 8);
}

/* One more hash of the digest in w0, w1 (words H0..H7): its 64 rounds on one padded block. */
SHANI __attribute__((always_inline)) static inline void shani_rehash(__m128i *w0, __m128i *w1,
                                                                     __m128i iv0, __m128i iv1)
{
    __m128i s0 = iv0, s1 = iv1, a = *w0, b = *w1;
    __m128i c = _mm_set_epi32(0, 0, 0, (int)0x80000000), d = _mm_set_epi32(256, 0, 0, 0);
    SHANI_ROUNDS(s0, s1, a, 0);
    SHANI_ROUNDS(s0, s1, b, 1);
    SHANI_ROUNDS(s0, s1, c, 2);
    SHANI_ROUNDS(s0, s1, d, 3);
    for (int i = 4; i < 16; i += 4) {
        a = SHANI_SCHEDULE(a, b, c, d);
        SHANI_ROUNDS(s0, s1, a, i);
        b = SHANI_SCHEDULE(b, c, d, a);
        SHANI_ROUNDS(s0, s1, b, i + 1);
        c = SHANI_SCHEDULE(c, d, a, b);
        SHANI_ROUNDS(s0, s1, c, i + 2);
        d = SHANI_SCHEDULE(d, a, b, c);
        SHANI_ROUNDS(s0, s1, d, i + 3);
    }
    shani_unpack(_mm_add_epi32(s0, iv0), _mm_add_epi32(s1, iv1), w0, w1);
}

#define SHANI_BSWAP _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3)

SHANI static void shani_load(const uint8_t key[SHA256_DIGEST_LENGTH], __m128i *w0, __m128i *w1)
{
    *w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)key), SHANI_BSWAP);
    *w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(key + 16)), SHANI_BSWAP);
}

SHANI static void shani_store(uint8_t key[SHA256_DIGEST_LENGTH], __m128i w0, __m128i w1)
{
    _mm_storeu_si128((__m128i *)key, _mm_shuffle_epi8(w0, SHANI_BSWAP));
    _mm_storeu_si128((__m128i *)(key + 16), _mm_shuffle_epi8(w1, SHANI_BSWAP));
}

SHANI static void shani_iv(__m128i *iv0, __m128i *iv1)
{
    shani_pack(_mm_loadu_si128((const __m128i *)sha256_iv),
               _mm_loadu_si128((const __m128i *)(sha256_iv + 4)), iv0, iv1);
}

SHANI static void sha256_iterate_shani(uint8_t key[SHA256_DIGEST_LENGTH], int64_t n)
{
    __m128i iv0, iv1, w0, w1;
    shani_iv(&iv0, &iv1);
    shani_load(key, &w0, &w1);
    for (int64_t k = 0; k < n; k++)
        shani_rehash(&w0, &w1, iv0, iv1);
    shani_store(key, w0, w1);
}

/* Two independent iterations side by side: one chain waits on each round's result (the
 * rounds are latency-bound), so the other's rounds fill the gaps; two keys take about 1.35
 * times one key's time instead of twice. */
SHANI static void sha256_iterate2_shani(uint8_t ka[SHA256_DIGEST_LENGTH], int64_t na,
                                        uint8_t kb[SHA256_DIGEST_LENGTH], int64_t nb)
{
    __m128i iv0, iv1, a0, a1, b0, b1;
    int64_t k = 0;
    shani_iv(&iv0, &iv1);
    shani_load(ka, &a0, &a1);
    shani_load(kb, &b0, &b1);
    for (; k < na && k < nb; k++) {
        shani_rehash(&a0, &a1, iv0, iv1);
        shani_rehash(&b0, &b1, iv0, iv1);
    }
    for (int64_t j = k; j < na; j++)
        shani_rehash(&a0, &a1, iv0, iv1);
    for (int64_t j = k; j < nb; j++)
        shani_rehash(&b0, &b1, iv0, iv1);
    shani_store(ka, a0, a1);
    shani_store(kb, b0, b1);
}

static int cpu_has_shani(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA) != 0;
}
#else
static void sha256_iterate_shani(uint8_t key[SHA256_DIGEST_LENGTH], int64_t n)
{
    sha256_iterate_generic(key, n);
}

static void sha256_iterate2_shani(uint8_t ka[SHA256_DIGEST_LENGTH], int64_t na,
                                  uint8_t kb[SHA256_DIGEST_LENGTH], int64_t nb)
{
    sha256_iterate_generic(ka, na);
    sha256_iterate_generic(kb, nb);
}

static int cpu_has_shani(void)
{
    return 0;
}
#endif

/* -1 until first asked; then whether the SHA extensions are used (pbm_shani_ can turn them
 * off, for the tests of the generic loop) */
static int shani_state = -1;

int pbm_shani_(int enable)
{
    int on = enable && cpu_has_shani();
    __atomic_store_n(&shani_state, on, __ATOMIC_RELAXED);
    return on;
}

/* Whether the SHA extensions are in use (asked of the CPU the first time). */
static int shani_on(void)
{
    int on = __atomic_load_n(&shani_state, __ATOMIC_RELAXED);
    return on < 0 ? pbm_shani_(1) : on;
}

static void sha256_iterate(uint8_t key[SHA256_DIGEST_LENGTH], int64_t n)
{
    if (shani_on())
        sha256_iterate_shani(key, n);
    else
        sha256_iterate_generic(key, n);
}

int pbm_derive_(int owf_nid, const char *secret, const uint8_t *salt, size_t saltlen, int64_t iter,
                uint8_t *key, unsigned *keylen)
{
    int i = digest_index(owf_nid);
    if (i < 0 || iter < 1)
        return CG_ECMP_BADALG;
    unsigned n = hash2(i, secret, strlen(secret), salt, saltlen, key);
    if (i == 2) { /* SHA-256 */
        sha256_iterate(key, iter - 1);
    } else {
        for (int64_t k = 1; k < iter; k++)
            hash2(i, key, n, NULL, 0, key);
    }
    *keylen = n;
    return CG_OK;
}

/* --- cache ---------------------------------------------------------------------------------- */

#define PBM_SLOTS 4096 /* power of two */
#define PBM_LOCKS 64

struct pbm_slot {
    uint8_t id[SHA256_DIGEST_LENGTH]; /* SHA-256 of the inputs (cache_id) */
    uint8_t key[EVP_MAX_MD_SIZE];
    unsigned keylen; /* 0: empty */
};

static struct pbm_slot slots[PBM_SLOTS];
static pthread_mutex_t locks[PBM_LOCKS];
static pthread_once_t locks_once = PTHREAD_ONCE_INIT;

static void init_locks(void)
{
    for (int i = 0; i < PBM_LOCKS; i++)
        pthread_mutex_init(&locks[i], NULL);
}

/* The cache key: every input with its length, so no two input sets collide by framing. */
static void cache_id(int owf_nid, const char *secret, const uint8_t *salt, size_t saltlen,
                     int64_t iter, uint8_t id[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX c;
    uint64_t f[4] = {(uint64_t)owf_nid, (uint64_t)iter, (uint64_t)saltlen, strlen(secret)};
    SHA256_Init(&c);
    SHA256_Update(&c, f, sizeof(f));
    SHA256_Update(&c, salt, saltlen);
    SHA256_Update(&c, secret, f[3]);
    SHA256_Final(id, &c);
    OPENSSL_cleanse(&c, sizeof(c));
}

/* The slot of id, with its lock taken: unlock *mu after. */
static struct pbm_slot *slot_locked(const uint8_t id[SHA256_DIGEST_LENGTH], pthread_mutex_t **mu)
{
    unsigned s = ((unsigned)id[0] | (unsigned)id[1] << 8) & (PBM_SLOTS - 1);
    *mu = &locks[s % PBM_LOCKS];
    pthread_once(&locks_once, init_locks);
    pthread_mutex_lock(*mu);
    return &slots[s];
}

/* The cached key for id into key (EVP_MAX_MD_SIZE bytes). @return its length, 0 if none. */
static unsigned cache_get(const uint8_t id[SHA256_DIGEST_LENGTH], uint8_t *key)
{
    pthread_mutex_t *mu;
    struct pbm_slot *slot = slot_locked(id, &mu);
    unsigned n = 0;
    if (slot->keylen != 0 && memcmp(slot->id, id, SHA256_DIGEST_LENGTH) == 0) {
        n = slot->keylen;
        if (key != NULL)
            memcpy(key, slot->key, n);
    }
    pthread_mutex_unlock(mu);
    return n;
}

static void cache_put(const uint8_t id[SHA256_DIGEST_LENGTH], const uint8_t *key, unsigned n)
{
    pthread_mutex_t *mu;
    struct pbm_slot *slot = slot_locked(id, &mu);
    memcpy(slot->id, id, SHA256_DIGEST_LENGTH);
    memcpy(slot->key, key, n);
    slot->keylen = n;
    pthread_mutex_unlock(mu);
}

int pbm_key_(int owf_nid, const char *secret, const uint8_t *salt, size_t saltlen, int64_t iter,
             uint8_t *key, unsigned *keylen)
{
    uint8_t id[SHA256_DIGEST_LENGTH];
    cache_id(owf_nid, secret, salt, saltlen, iter, id);
    if ((*keylen = cache_get(id, key)) != 0)
        return CG_OK;
    int rc = pbm_derive_(owf_nid, secret, salt, saltlen, iter, key, keylen);
    if (rc == CG_OK)
        cache_put(id, key, *keylen);
    return rc;
}

static unsigned long paired_keys; /* derived by pbm_prefetch2_ (atomic) */

int pbm_prefetch2_(const struct pbm_params *a, const struct pbm_params *b)
{
    uint8_t ida[SHA256_DIGEST_LENGTH], idb[SHA256_DIGEST_LENGTH];
    uint8_t ka[SHA256_DIGEST_LENGTH], kb[SHA256_DIGEST_LENGTH];
    /* only a pair gains: one key alone is derived when its message needs it */
    if (!shani_on() || a->owf_nid != NID_sha256 || b->owf_nid != NID_sha256 || a->iter < 1 ||
        b->iter < 1 || a->iter > PBM_PREFETCH_MAX_ITER || b->iter > PBM_PREFETCH_MAX_ITER)
        return 0;
    cache_id(NID_sha256, a->secret, a->salt, a->saltlen, a->iter, ida);
    cache_id(NID_sha256, b->secret, b->salt, b->saltlen, b->iter, idb);
    if (memcmp(ida, idb, sizeof(ida)) == 0 || cache_get(ida, NULL) != 0 ||
        cache_get(idb, NULL) != 0)
        return 0;
    hash2(2, a->secret, strlen(a->secret), a->salt, a->saltlen, ka);
    hash2(2, b->secret, strlen(b->secret), b->salt, b->saltlen, kb);
    sha256_iterate2_shani(ka, a->iter - 1, kb, b->iter - 1);
    cache_put(ida, ka, sizeof(ka));
    cache_put(idb, kb, sizeof(kb));
    OPENSSL_cleanse(ka, sizeof(ka));
    OPENSSL_cleanse(kb, sizeof(kb));
    __atomic_add_fetch(&paired_keys, 2, __ATOMIC_RELAXED);
    return 2;
}

unsigned long pbm_paired_keys_(void)
{
    return __atomic_load_n(&paired_keys, __ATOMIC_RELAXED);
}

void pbm_cache_clear_(void)
{
    pthread_once(&locks_once, init_locks);
    for (int i = 0; i < PBM_SLOTS; i++) {
        pthread_mutex_t *mu = &locks[i % PBM_LOCKS];
        pthread_mutex_lock(mu);
        OPENSSL_cleanse(&slots[i], sizeof(slots[i]));
        pthread_mutex_unlock(mu);
    }
}

/* --- HMAC (RFC 2104) --------------------------------------------------------------------- */

int pbm_hmac_(int mac_nid, const uint8_t *key, size_t keylen, const uint8_t *data, size_t len,
              uint8_t *out, unsigned *outlen)
{
    int i = digest_index(mac_nid);
    if (i < 0)
        return CG_ECMP_BADALG;
    size_t bs = i >= 3 ? 128 : 64; /* SHA-384 and SHA-512 take 128-byte blocks */
    uint8_t k[128], pad[128], inner[SHA512_DIGEST_LENGTH];
    memset(k, 0, sizeof(k));
    if (keylen > bs)
        hash2(i, key, keylen, NULL, 0, k);
    else
        memcpy(k, key, keylen);
    for (size_t j = 0; j < bs; j++)
        pad[j] = k[j] ^ 0x36;
    unsigned ilen = hash2(i, pad, bs, data, len, inner);
    for (size_t j = 0; j < bs; j++)
        pad[j] = k[j] ^ 0x5c;
    *outlen = hash2(i, pad, bs, inner, ilen, out);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    return CG_OK;
}
