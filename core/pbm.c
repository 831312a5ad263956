/*
 * pbm.c - the primitives of the password-based MAC (RFC 4211 4.4, RFC 4210 5.1.3.1): the key
 * derivation, HMAC, and a process-wide cache of derived keys.
 *
 * DESIGN: the derivation hashes secret || salt, then hashes the result iterationCount - 1
 * more times. OpenSSL 3's EVP digest calls cost about as much per call as the SHA-256
 * compression itself on a 32-byte input, so the loop uses the low-level SHA functions
 * (deprecated in 3.0, still built by every 3.x): 38 µs instead of 74 µs for 500 iterations
 * of SHA-256 on the reference machine, and for SHA-256 the compression alone
 * (sha256_iterate). Only this file and ecfast.c use deprecated APIs.
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

/* SHA-256 applied n more times to key (32 bytes, in place). A 32-byte message is one padded
 * block, so each hash is one compression (SHA256_Transform) from the initial value, without
 * Init/Update/Final, which buffer the input, pad it and clear their buffer on every call:
 * 23 µs instead of 26 µs for 500 iterations on the reference machine. The digest goes back
 * into the block as whole big-endian words (byte stores there made the next compression's
 * loads wait, and the loop slower than the generic one). */
static void sha256_iterate(uint8_t key[SHA256_DIGEST_LENGTH], int64_t n)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    SHA256_CTX c;
    uint8_t block[SHA256_CBLOCK] = {0};
    memcpy(block, key, SHA256_DIGEST_LENGTH);
    block[SHA256_DIGEST_LENGTH] = 0x80;
    block[SHA256_CBLOCK - 2] = 0x01; /* the message length in bits: 256 */
    for (int64_t k = 0; k < n; k++) {
        memcpy(c.h, iv, sizeof(iv));
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

int pbm_key_(int owf_nid, const char *secret, const uint8_t *salt, size_t saltlen, int64_t iter,
             uint8_t *key, unsigned *keylen)
{
    uint8_t id[SHA256_DIGEST_LENGTH];
    cache_id(owf_nid, secret, salt, saltlen, iter, id);
    unsigned s = ((unsigned)id[0] | (unsigned)id[1] << 8) & (PBM_SLOTS - 1);
    pthread_mutex_t *mu = &locks[s % PBM_LOCKS];
    pthread_once(&locks_once, init_locks);
    pthread_mutex_lock(mu);
    if (slots[s].keylen != 0 && memcmp(slots[s].id, id, sizeof(id)) == 0) {
        memcpy(key, slots[s].key, slots[s].keylen);
        *keylen = slots[s].keylen;
        pthread_mutex_unlock(mu);
        return CG_OK;
    }
    pthread_mutex_unlock(mu);
    int rc = pbm_derive_(owf_nid, secret, salt, saltlen, iter, key, keylen);
    if (rc != CG_OK)
        return rc;
    pthread_mutex_lock(mu);
    memcpy(slots[s].id, id, sizeof(id));
    memcpy(slots[s].key, key, *keylen);
    slots[s].keylen = *keylen;
    pthread_mutex_unlock(mu);
    return CG_OK;
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
