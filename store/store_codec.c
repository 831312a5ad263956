/*
 * store_codec.c - record types (new/free/dup) and their compact, versioned binary encoding.
 *
 * DESIGN: a record is one format byte (the record kind's format version) followed by fixed
 * big-endian integers and length-prefixed fields:
 *   string: u32 n, then n-1 bytes when n > 0 (n == 0 is NULL; no NUL inside, none stored)
 *   blob:   u32 n, then n bytes (bounds per field are checked on decode)
 * Decoding is strict: every read is bounds-checked against the remaining length, the field
 * limits of cg_store.h are enforced, and trailing bytes are an error, so a truncated or
 * corrupt record gives CG_ESTORE and never an out-of-bounds read. Decoders copy everything
 * out of the input (which may point into the LMDB map). No state: thread-safe.
 */
#include "store_local.h"

#include "cg_buf.h"
#include "cg_err.h"

#include <stdlib.h>
#include <string.h>

#define FMT_ENTITY 1u
#define FMT_CERT 1u
#define FMT_TXN 1u

/* --- writer: a cg_buf with a sticky error ----------------------------------------------- */

struct writer {
    struct cg_buf *buf;
    int rc;
};

static void put_raw(struct writer *w, const void *p, size_t n)
{
    if (w->rc == CG_OK && n > 0)
        w->rc = cg_buf_append(w->buf, p, n);
}

static void put_u8(struct writer *w, uint8_t v)
{
    put_raw(w, &v, 1);
}

static void put_u32(struct writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put_raw(w, b, sizeof(b));
}

static void put_u64(struct writer *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    put_raw(w, b, sizeof(b));
}

static void put_i32(struct writer *w, int v)
{
    put_u32(w, (uint32_t)(int32_t)v);
}

static void put_i64(struct writer *w, int64_t v)
{
    put_u64(w, (uint64_t)v);
}

static void put_blob(struct writer *w, const void *p, size_t n)
{
    if (n > UINT32_MAX - 1) {
        w->rc = CG_EINVAL;
        return;
    }
    put_u32(w, (uint32_t)n);
    put_raw(w, p, n);
}

static void put_str(struct writer *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (s == NULL) {
        put_u32(w, 0);
        return;
    }
    if (n > UINT32_MAX - 2) {
        w->rc = CG_EINVAL;
        return;
    }
    put_u32(w, (uint32_t)(n + 1));
    put_raw(w, s, n);
}

/* --- reader: bounds-checked, sticky error ----------------------------------------------- */

struct reader {
    const uint8_t *p;
    size_t left;
    int rc;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    const uint8_t *p = NULL;
    if (r->rc != CG_OK || n > r->left) {
        r->rc = CG_ESTORE;
        goto out;
    }
    p = r->p;
    r->p += n;
    r->left -= n;
out:
    return p;
}

static uint8_t get_u8(struct reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

static uint32_t get_u32(struct reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) : 0;
}

static uint64_t get_u64(struct reader *r)
{
    const uint8_t *p = take(r, 8);
    uint64_t v = 0;
    for (int i = 0; p && i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int get_i32(struct reader *r)
{
    return (int)(int32_t)get_u32(r);
}

static int64_t get_i64(struct reader *r)
{
    return (int64_t)get_u64(r);
}

/* A blob into a fixed array: min <= n <= cap, else CG_ESTORE. */
static void get_fixed(struct reader *r, uint8_t *dst, size_t min, size_t cap, size_t *len)
{
    uint32_t n = get_u32(r);
    const uint8_t *p = NULL;
    if (r->rc == CG_OK && (n < min || n > cap))
        r->rc = CG_ESTORE;
    p = take(r, n);
    if (p != NULL) {
        if (n > 0)
            memcpy(dst, p, n);
        if (len != NULL)
            *len = n;
    }
}

/* A blob into new heap memory (NULL when empty). */
static uint8_t *get_heap_blob(struct reader *r, size_t *len)
{
    uint32_t n = get_u32(r);
    const uint8_t *p = take(r, n);
    uint8_t *out = NULL;
    *len = 0;
    if (p == NULL || n == 0)
        goto out;
    out = malloc(n);
    if (out == NULL) {
        r->rc = CG_ENOMEM;
        goto out;
    }
    memcpy(out, p, n);
    *len = n;
out:
    return out;
}

static char *get_str(struct reader *r)
{
    uint32_t n = get_u32(r);
    const uint8_t *p = NULL;
    char *s = NULL;
    if (r->rc != CG_OK || n == 0)
        goto out;
    p = take(r, n - 1);
    if (p == NULL)
        goto out;
    if (memchr(p, 0, n - 1) != NULL) {
        r->rc = CG_ESTORE;
        goto out;
    }
    s = malloc(n);
    if (s == NULL) {
        r->rc = CG_ENOMEM;
        goto out;
    }
    memcpy(s, p, n - 1);
    s[n - 1] = '\0';
out:
    return s;
}

static int finish_read(struct reader *r)
{
    if (r->rc == CG_OK && r->left != 0)
        r->rc = CG_ESTORE; /* trailing bytes: not a record we wrote */
    return r->rc;
}

static char *dup_str(const char *s, int *ok)
{
    char *d = NULL;
    if (s != NULL) {
        d = strdup(s);
        if (d == NULL)
            *ok = 0;
    }
    return d;
}

/* --- entities --------------------------------------------------------------------------- */

struct cg_entity *cg_entity_new(void)
{
    return calloc(1, sizeof(struct cg_entity));
}

void cg_entity_free(struct cg_entity *e)
{
    if (e == NULL)
        return;
    free(e->username);
    free(e->subject_dn);
    free(e->subject_alt);
    free(e->ca);
    free(e->ee_profile);
    free(e->cert_profile);
    if (e->password != NULL) {
        memset(e->password, 0, strlen(e->password));
        free(e->password);
    }
    free(e->token_type);
    free(e);
}

struct cg_entity *cg_entity_dup(const struct cg_entity *e)
{
    struct cg_entity *d = NULL;
    int ok = 1;
    if (e == NULL)
        goto out;
    d = cg_entity_new();
    if (d == NULL)
        goto out;
    *d = *e;
    d->username = dup_str(e->username, &ok);
    d->subject_dn = dup_str(e->subject_dn, &ok);
    d->subject_alt = dup_str(e->subject_alt, &ok);
    d->ca = dup_str(e->ca, &ok);
    d->ee_profile = dup_str(e->ee_profile, &ok);
    d->cert_profile = dup_str(e->cert_profile, &ok);
    d->password = dup_str(e->password, &ok);
    d->token_type = dup_str(e->token_type, &ok);
    if (!ok) {
        cg_entity_free(d);
        d = NULL;
    }
out:
    return d;
}

int encode_entity_(const struct cg_entity *e, struct cg_buf *out)
{
    struct writer w = {out, CG_OK};
    put_u8(&w, FMT_ENTITY);
    put_str(&w, e->username);
    put_str(&w, e->subject_dn);
    put_str(&w, e->subject_alt);
    put_str(&w, e->ca);
    put_str(&w, e->ee_profile);
    put_str(&w, e->cert_profile);
    put_str(&w, e->password);
    put_str(&w, e->token_type);
    put_i32(&w, e->status);
    put_u32(&w, e->flags);
    put_i64(&w, e->created);
    put_i64(&w, e->modified);
    put_u64(&w, e->version);
    return w.rc;
}

int decode_entity_(const void *data, size_t len, struct cg_entity **out)
{
    int rc = CG_EINTERNAL;
    struct reader r = {data, len, CG_OK};
    struct cg_entity *e = NULL;
    *out = NULL;
    e = cg_entity_new();
    if (e == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    if (get_u8(&r) != FMT_ENTITY && r.rc == CG_OK)
        r.rc = CG_ESTORE;
    e->username = get_str(&r);
    e->subject_dn = get_str(&r);
    e->subject_alt = get_str(&r);
    e->ca = get_str(&r);
    e->ee_profile = get_str(&r);
    e->cert_profile = get_str(&r);
    e->password = get_str(&r);
    e->token_type = get_str(&r);
    e->status = get_i32(&r);
    e->flags = get_u32(&r);
    e->created = get_i64(&r);
    e->modified = get_i64(&r);
    e->version = get_u64(&r);
    rc = finish_read(&r);
    if (rc == CG_OK && e->username == NULL)
        rc = CG_ESTORE;
    if (rc != CG_OK)
        goto out;
    *out = e;
    e = NULL;
out:
    cg_entity_free(e);
    return rc;
}

/* --- certificates ----------------------------------------------------------------------- */

struct cg_cert_rec *cg_cert_rec_new(void)
{
    struct cg_cert_rec *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->reason = -1;
    return c;
}

void cg_cert_rec_free(struct cg_cert_rec *c)
{
    if (c == NULL)
        return;
    free(c->username);
    free(c->ca);
    free(c->subject);
    free(c->issuer);
    free(c->der);
    free(c);
}

struct cg_cert_rec *cert_rec_dup_(const struct cg_cert_rec *c)
{
    struct cg_cert_rec *d = calloc(1, sizeof(*d));
    int ok = 1;
    if (d == NULL)
        goto out;
    *d = *c;
    d->username = dup_str(c->username, &ok);
    d->ca = dup_str(c->ca, &ok);
    d->subject = dup_str(c->subject, &ok);
    d->issuer = dup_str(c->issuer, &ok);
    d->der = NULL;
    d->der_len = 0;
    if (c->der != NULL && c->der_len > 0) {
        d->der = malloc(c->der_len);
        if (d->der == NULL) {
            ok = 0;
        } else {
            memcpy(d->der, c->der, c->der_len);
            d->der_len = c->der_len;
        }
    }
    if (!ok) {
        cg_cert_rec_free(d);
        d = NULL;
    }
out:
    return d;
}

size_t make_cert_key_(const uint8_t issuer_key[32], const uint8_t *serial, size_t serial_len,
                      uint8_t *key)
{
    memcpy(key, issuer_key, 32);
    memcpy(key + 32, serial, serial_len);
    return 32 + serial_len;
}

int encode_cert_(const struct cg_cert_rec *c, struct cg_buf *out)
{
    struct writer w = {out, CG_OK};
    put_u8(&w, FMT_CERT);
    put_blob(&w, c->issuer_key, 32);
    put_blob(&w, c->serial, c->serial_len);
    put_blob(&w, c->fingerprint, 32);
    put_str(&w, c->username);
    put_str(&w, c->ca);
    put_str(&w, c->subject);
    put_str(&w, c->issuer);
    put_blob(&w, c->der, c->der ? c->der_len : 0);
    put_i32(&w, c->status);
    put_i32(&w, c->reason);
    put_i64(&w, c->issued_at);
    put_i64(&w, c->not_after);
    put_i64(&w, c->revoked_at);
    return w.rc;
}

int decode_cert_(const void *data, size_t len, struct cg_cert_rec **out)
{
    int rc = CG_EINTERNAL;
    struct reader r = {data, len, CG_OK};
    struct cg_cert_rec *c = NULL;
    *out = NULL;
    c = cg_cert_rec_new();
    if (c == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    if (get_u8(&r) != FMT_CERT && r.rc == CG_OK)
        r.rc = CG_ESTORE;
    get_fixed(&r, c->issuer_key, 32, 32, NULL);
    get_fixed(&r, c->serial, 1, 32, &c->serial_len);
    get_fixed(&r, c->fingerprint, 32, 32, NULL);
    c->username = get_str(&r);
    c->ca = get_str(&r);
    c->subject = get_str(&r);
    c->issuer = get_str(&r);
    c->der = get_heap_blob(&r, &c->der_len);
    c->status = get_i32(&r);
    c->reason = get_i32(&r);
    c->issued_at = get_i64(&r);
    c->not_after = get_i64(&r);
    c->revoked_at = get_i64(&r);
    rc = finish_read(&r);
    if (rc != CG_OK)
        goto out;
    *out = c;
    c = NULL;
out:
    cg_cert_rec_free(c);
    return rc;
}

/* --- transactions ----------------------------------------------------------------------- */

struct cg_txn_rec *cg_txn_rec_new(void)
{
    return calloc(1, sizeof(struct cg_txn_rec));
}

void cg_txn_rec_free(struct cg_txn_rec *t)
{
    if (t == NULL)
        return;
    free(t->alias);
    free(t->username);
    if (t->secret != NULL)
        explicit_bzero(t->secret, strlen(t->secret));
    free(t->secret);
    free(t);
}

struct cg_txn_rec *txn_rec_dup_(const struct cg_txn_rec *t)
{
    struct cg_txn_rec *d = calloc(1, sizeof(*d));
    int ok = 1;
    if (d == NULL)
        goto out;
    *d = *t;
    d->alias = dup_str(t->alias, &ok);
    d->username = dup_str(t->username, &ok);
    d->secret = dup_str(t->secret, &ok);
    if (!ok) {
        cg_txn_rec_free(d);
        d = NULL;
    }
out:
    return d;
}

int encode_txn_(const struct cg_txn_rec *t, struct cg_buf *out)
{
    struct writer w = {out, CG_OK};
    put_u8(&w, FMT_TXN);
    put_blob(&w, t->txid, t->txid_len);
    put_i32(&w, t->state);
    put_i64(&w, t->created);
    put_i64(&w, t->updated);
    put_str(&w, t->alias);
    put_str(&w, t->username);
    put_blob(&w, t->nonce, t->nonce_len);
    put_i32(&w, t->body_type);
    put_i64(&w, t->cert_req_id);
    put_blob(&w, t->issuer_key, 32);
    put_blob(&w, t->serial, t->serial_len);
    put_blob(&w, t->cert_hash, t->cert_hash_len);
    put_str(&w, t->secret);
    return w.rc;
}

int txn_txid_peek_(const void *data, size_t len, const uint8_t **txid, size_t *txid_len)
{
    struct reader r = {data, len, CG_OK};
    if (get_u8(&r) != FMT_TXN)
        return -1;
    uint32_t n = get_u32(&r);
    const uint8_t *p = take(&r, n);
    if (p == NULL || n == 0 || n > sizeof(((struct cg_txn_rec *)0)->txid))
        return -1;
    *txid = p;
    *txid_len = n;
    return 0;
}

int decode_txn_(const void *data, size_t len, struct cg_txn_rec **out)
{
    int rc = CG_EINTERNAL;
    struct reader r = {data, len, CG_OK};
    struct cg_txn_rec *t = NULL;
    *out = NULL;
    t = cg_txn_rec_new();
    if (t == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    if (get_u8(&r) != FMT_TXN && r.rc == CG_OK)
        r.rc = CG_ESTORE;
    get_fixed(&r, t->txid, 1, sizeof(t->txid), &t->txid_len);
    t->state = get_i32(&r);
    t->created = get_i64(&r);
    t->updated = get_i64(&r);
    t->alias = get_str(&r);
    t->username = get_str(&r);
    get_fixed(&r, t->nonce, 0, sizeof(t->nonce), &t->nonce_len);
    t->body_type = get_i32(&r);
    t->cert_req_id = get_i64(&r);
    get_fixed(&r, t->issuer_key, 32, 32, NULL);
    get_fixed(&r, t->serial, 0, sizeof(t->serial), &t->serial_len);
    get_fixed(&r, t->cert_hash, 0, sizeof(t->cert_hash), &t->cert_hash_len);
    t->secret = get_str(&r);
    rc = finish_read(&r);
    if (rc != CG_OK)
        goto out;
    *out = t;
    t = NULL;
out:
    cg_txn_rec_free(t);
    return rc;
}
