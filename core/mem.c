/*
 * mem.c - OpenSSL's allocations through a cache of free blocks per thread
 * (CRYPTO_set_mem_functions).
 *
 * DESIGN: an enrollment makes about 230 allocations inside OpenSSL (ASN.1 strings, BIGNUMs,
 * points, digest and signature contexts), nearly all of a few dozen bytes, and frees them
 * before the reply leaves. glibc's own per-thread cache keeps seven blocks of a size; the rest
 * go through its arena (a lock, bins, consolidation when a larger block is asked for), which
 * made malloc and free 5% of the server's CPU in the profiles. Here each block has a 16-byte
 * header naming its size class (16-byte steps to 256 bytes, 64-byte steps to 1 KB; larger
 * blocks go straight to malloc), and a freed block goes onto the freeing thread's list for
 * its class, up to CACHE_BYTES per class; the next allocation of that class on that thread
 * pops it. A block freed on another thread than the one that allocated it simply joins that
 * thread's lists. When a thread ends, its lists go back to free() (a destructor of a
 * pthread key; frees after it go to free() directly).
 *
 * Everything OpenSSL allocates must be freed by OpenSSL (OPENSSL_free and the *_free
 * functions) and nothing it frees may come from malloc: with the header, a mismatch is an
 * invalid pointer to glibc and to the sanitizers, not a silent leak. Under AddressSanitizer
 * the cache is off (cg_mem_install's caller passes cache 0), so that a use after free of an
 * OpenSSL object is still reported; the header stays.
 */
#include "core_local.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16
#define LARGE 255
#define SMALL_MAX 256
#define MEDIUM_MAX 1024
#define CLASSES (SMALL_MAX / 16 + (MEDIUM_MAX - SMALL_MAX) / 64)
#define CACHE_BYTES 32768

struct free_block {
    struct free_block *next;
};

struct thread_cache {
    struct free_block *head[CLASSES];
    uint32_t count[CLASSES];
    int state; /* 0: not yet used, 1: caching, 2: ended (destructor ran) */
};

static __thread struct thread_cache tc;
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static int key_ok;
static int caching; /* set once, before any other thread starts */

static unsigned size_class(size_t n)
{
    if (n <= SMALL_MAX)
        return n == 0 ? 0 : (unsigned)((n - 1) >> 4);
    if (n <= MEDIUM_MAX)
        return SMALL_MAX / 16 + (unsigned)((n - SMALL_MAX - 1) >> 6);
    return LARGE;
}

static size_t class_size(unsigned c)
{
    return c < SMALL_MAX / 16 ? (size_t)(c + 1) * 16
                              : SMALL_MAX + (size_t)(c - SMALL_MAX / 16 + 1) * 64;
}

static void flush_cache(void *arg)
{
    (void)arg;
    for (unsigned c = 0; c < CLASSES; c++) {
        struct free_block *b = tc.head[c];
        while (b != NULL) {
            struct free_block *next = b->next;
            free((unsigned char *)b - HDR);
            b = next;
        }
        tc.head[c] = NULL;
        tc.count[c] = 0;
    }
    tc.state = 2;
}

static void make_key(void)
{
    key_ok = pthread_key_create(&tc_key, flush_cache) == 0;
}

/* The calling thread's cache, or NULL when it must not cache (off, ended, no key). */
static struct thread_cache *cache(void)
{
    if (tc.state == 1 && caching)
        return &tc;
    if (tc.state != 0 || !caching)
        return NULL;
    pthread_once(&tc_once, make_key);
    if (!key_ok || pthread_setspecific(tc_key, &tc) != 0)
        return NULL;
    tc.state = 1;
    return &tc;
}

void *cg_mem_malloc_(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (n == 0 || n > SIZE_MAX - HDR)
        return NULL;
    unsigned c = size_class(n);
    unsigned char *p;
    struct thread_cache *t = c != LARGE ? cache() : NULL;
    if (t != NULL && t->head[c] != NULL) {
        struct free_block *b = t->head[c];
        t->head[c] = b->next;
        t->count[c]--;
        return b;
    }
    p = malloc(HDR + (c == LARGE ? n : class_size(c)));
    if (p == NULL)
        return NULL;
    p[0] = (unsigned char)c;
    return p + HDR;
}

void cg_mem_free_(void *ptr, const char *file, int line)
{
    (void)file;
    (void)line;
    if (ptr == NULL)
        return;
    unsigned char *p = (unsigned char *)ptr - HDR;
    unsigned c = p[0];
    struct thread_cache *t = c != LARGE ? cache() : NULL;
    /* below the cap of CACHE_BYTES / class_size(c) blocks, without dividing on every free */
    if (t != NULL && (t->count[c] + 1) * class_size(c) <= CACHE_BYTES) {
        struct free_block *b = ptr;
        b->next = t->head[c];
        t->head[c] = b;
        t->count[c]++;
        return;
    }
    free(p);
}

void *cg_mem_realloc_(void *ptr, size_t n, const char *file, int line)
{
    if (ptr == NULL)
        return cg_mem_malloc_(n, file, line);
    if (n == 0) {
        cg_mem_free_(ptr, file, line);
        return NULL;
    }
    unsigned char *p = (unsigned char *)ptr - HDR;
    unsigned c = p[0];
    if (c == LARGE) {
        if (size_class(n) != LARGE)
            return ptr; /* shrinks into a class: the large block is kept */
        if (n > SIZE_MAX - HDR)
            return NULL;
        unsigned char *q = realloc(p, HDR + n);
        return q == NULL ? NULL : q + HDR;
    }
    if (n <= class_size(c))
        return ptr;
    void *q = cg_mem_malloc_(n, file, line);
    if (q == NULL)
        return NULL;
    memcpy(q, ptr, class_size(c));
    cg_mem_free_(ptr, file, line);
    return q;
}

void cg_mem_cache_(int on)
{
    caching = on;
}

size_t cg_mem_cached_(size_t n)
{
    unsigned c = size_class(n);
    return c == LARGE || tc.state != 1 ? 0 : tc.count[c];
}

size_t cg_mem_cache_cap_(size_t n)
{
    unsigned c = size_class(n);
    return c == LARGE ? 0 : CACHE_BYTES / class_size(c);
}

int cg_mem_install(int cache)
{
    cg_mem_cache_(cache);
    return CRYPTO_set_mem_functions(cg_mem_malloc_, cg_mem_realloc_, cg_mem_free_) ? 0 : -1;
}
