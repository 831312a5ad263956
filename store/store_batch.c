/*
 * store_batch.c - write batches: building them (copies of the caller's records) and applying
 * them to an LMDB write transaction, keeping the secondary indexes in step.
 *
 * DESIGN: a batch is an ordered list of operations, each owning deep copies of its
 * arguments, so the caller may free its records right after the add. apply_batch_() runs
 * on the committer thread only, inside the nested transaction of that batch: operations are
 * applied in order and see each other's effects; the first failure stops the batch and its
 * code is returned (the caller aborts the nested transaction, so nothing of it remains).
 * A batch is owned by one thread at a time; cg_store_commit() only reads it.
 *
 * Indexes: certs_by_user values are seq(8, big-endian) || issuer_key || serial, where seq is
 * a counter kept in meta["cert_seq"] and bumped per added certificate, so the DUPSORT order
 * of one username is the order of issue.
 */
#include "store_local.h"

#include "cg_buf.h"
#include "cg_err.h"

#include <stdlib.h>
#include <string.h>

enum op_kind {
    OP_PUT_ENTITY,
    OP_DEL_ENTITY,
    OP_ADD_CERT,
    OP_REVOKE_CERT,
    OP_PUT_TXN,
    OP_SET_TXN_STATE,
    OP_DEL_TXN,
    OP_TOUCH,
};

struct op {
    enum op_kind kind;
    struct cg_entity *entity;           /* OP_PUT_ENTITY */
    struct cg_cert_rec *cert;           /* OP_ADD_CERT */
    struct cg_txn_rec *txn;             /* OP_PUT_TXN */
    char *username;                     /* OP_DEL_ENTITY */
    uint64_t expect_version;            /* OP_PUT_ENTITY */
    uint8_t key[CG_STORE_CERT_KEY_MAX]; /* cert key (OP_REVOKE_CERT) or txid (OP_SET_TXN_STATE) */
    size_t key_len;
    int arg1; /* reason | from_state | must_be_new */
    int arg2; /* to_state */
    int64_t when;
};

struct cg_store_batch {
    struct op *ops;
    size_t n;
    size_t cap;
};

static const char KEY_CERT_SEQ[] = "cert_seq";
static const char KEY_TXN_SEQ[] = "txn_seq";
static const char KEY_HEALTH[] = "health";

/* --- building --------------------------------------------------------------------------- */

struct cg_store_batch *cg_store_batch_new(void)
{
    return calloc(1, sizeof(struct cg_store_batch));
}

void cg_store_batch_free(struct cg_store_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        cg_entity_free(b->ops[i].entity);
        cg_cert_rec_free(b->ops[i].cert);
        cg_txn_rec_free(b->ops[i].txn);
        free(b->ops[i].username);
    }
    free(b->ops);
    free(b);
}

/* Reserve the next op slot (zeroed). @return it, or NULL on allocation failure. */
static struct op *append_op(struct cg_store_batch *b, enum op_kind kind)
{
    struct op *o = NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        struct op *ops = realloc(b->ops, cap * sizeof(*ops));
        if (ops == NULL)
            goto out;
        b->ops = ops;
        b->cap = cap;
    }
    o = &b->ops[b->n];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
out:
    return o;
}

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= CG_STORE_NAME_MAX;
}

int cg_store_batch_put_entity(struct cg_store_batch *b, const struct cg_entity *e,
                              uint64_t expect_version)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || e == NULL || !valid_name(e->username)) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_PUT_ENTITY);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->entity = cg_entity_dup(e);
    if (o->entity == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->expect_version = expect_version;
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int cg_store_batch_del_entity(struct cg_store_batch *b, const char *username)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || !valid_name(username)) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_DEL_ENTITY);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->username = strdup(username);
    if (o->username == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int cg_store_batch_add_cert(struct cg_store_batch *b, const struct cg_cert_rec *c)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || c == NULL || c->serial_len < 1 || c->serial_len > sizeof(c->serial) ||
        (c->username != NULL && !valid_name(c->username)) || (c->der == NULL && c->der_len != 0)) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_ADD_CERT);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->cert = cert_rec_dup_(c);
    if (o->cert == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int cg_store_batch_revoke_cert(struct cg_store_batch *b, const uint8_t issuer_key[32],
                               const uint8_t *serial, size_t serial_len, int reason, int64_t when)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || issuer_key == NULL || serial == NULL || serial_len < 1 || serial_len > 32) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_REVOKE_CERT);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->key_len = make_cert_key_(issuer_key, serial, serial_len, o->key);
    o->arg1 = reason;
    o->when = when;
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int cg_store_batch_put_txn(struct cg_store_batch *b, const struct cg_txn_rec *t, int must_be_new)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || t == NULL || t->txid_len < 1 || t->txid_len > sizeof(t->txid) ||
        t->nonce_len > sizeof(t->nonce) || t->serial_len > sizeof(t->serial) ||
        t->cert_hash_len > sizeof(t->cert_hash)) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_PUT_TXN);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->txn = txn_rec_dup_(t);
    if (o->txn == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->arg1 = must_be_new;
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int cg_store_batch_set_txn_state(struct cg_store_batch *b, const uint8_t *txid, size_t txid_len,
                                 int from_state, int to_state, int64_t when)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || txid == NULL || txid_len < 1 || txid_len > 64) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_SET_TXN_STATE);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    memcpy(o->key, txid, txid_len);
    o->key_len = txid_len;
    o->arg1 = from_state;
    o->arg2 = to_state;
    o->when = when;
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int cg_store_batch_del_txn(struct cg_store_batch *b, const uint8_t *txid, size_t txid_len)
{
    int rc = CG_EINTERNAL;
    struct op *o = NULL;
    if (b == NULL || txid == NULL || txid_len < 1 || txid_len > 64) {
        rc = CG_EINVAL;
        goto out;
    }
    o = append_op(b, OP_DEL_TXN);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    memcpy(o->key, txid, txid_len);
    o->key_len = txid_len;
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

int batch_add_touch_(struct cg_store_batch *b, int64_t when)
{
    int rc = CG_EINTERNAL;
    struct op *o = append_op(b, OP_TOUCH);
    if (o == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    o->when = when;
    b->n++;
    rc = CG_OK;
out:
    return rc;
}

/* --- applying --------------------------------------------------------------------------- */

/* LMDB put/get/del error → cg_err (MDB_KEYEXIST means the NOOVERWRITE check failed). */
static int map_write_err(int mrc)
{
    int rc = CG_ESTORE;
    if (mrc == 0)
        rc = CG_OK;
    else if (mrc == MDB_KEYEXIST)
        rc = CG_EEXIST;
    else if (mrc == MDB_NOTFOUND)
        rc = CG_ENOTFOUND;
    else if (mrc == MDB_BAD_VALSIZE)
        rc = CG_EINVAL;
    else
        rc = map_mdb_err_(mrc);
    return rc;
}

/* Encode with fn and put at key in dbi. */
static int put_encoded(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len,
                       struct cg_buf *buf, unsigned flags)
{
    MDB_val k = {key_len, (void *)key};
    MDB_val v = {buf->len, buf->data};
    return map_write_err(mdb_put(txn, dbi, &k, &v, flags));
}

/* Take the next number of the counter meta[name] (starts at 1). */
static int next_seq(struct cg_store *s, MDB_txn *txn, const char *name, uint64_t *seq)
{
    int rc = CG_EINTERNAL;
    uint8_t raw[8];
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v;
    uint64_t cur = 0;
    int mrc = mdb_get(txn, s->dbi_meta, &k, &v);
    if (mrc == 0) {
        if (v.mv_size != 8) {
            rc = CG_ESTORE;
            goto out;
        }
        cur = get_u64_be_(v.mv_data);
    } else if (mrc != MDB_NOTFOUND) {
        rc = map_write_err(mrc);
        goto out;
    }
    cur++;
    set_u64_be_(raw, cur);
    v.mv_size = sizeof(raw);
    v.mv_data = raw;
    rc = map_write_err(mdb_put(txn, s->dbi_meta, &k, &v, 0));
    if (rc == CG_OK)
        *seq = cur;
out:
    return rc;
}

static int apply_put_entity(struct cg_store *s, MDB_txn *txn, const struct op *o,
                            struct cg_buf *buf)
{
    int rc = CG_EINTERNAL;
    const char *name = o->entity->username;
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v;
    struct cg_entity *old = NULL;
    struct cg_entity rec = *o->entity; /* shallow: strings stay the op's */
    int mrc = mdb_get(txn, s->dbi_entities, &k, &v);
    if (mrc == 0) {
        rc = decode_entity_(v.mv_data, v.mv_size, &old);
        if (rc != CG_OK)
            goto out;
    } else if (mrc != MDB_NOTFOUND) {
        rc = map_write_err(mrc);
        goto out;
    }
    if (o->expect_version == CG_VERSION_NONE && old != NULL) {
        rc = CG_EEXIST;
        goto out;
    }
    if (o->expect_version != CG_VERSION_NONE && o->expect_version != CG_VERSION_ANY &&
        (old == NULL || old->version != o->expect_version)) {
        rc = CG_ECONFLICT;
        goto out;
    }
    rec.version = old ? old->version + 1 : 1;
    if (old != NULL)
        rec.created = old->created;
    rc = encode_entity_(&rec, buf);
    if (rc != CG_OK)
        goto out;
    rc = put_encoded(txn, s->dbi_entities, name, strlen(name), buf, 0);
out:
    cg_entity_free(old);
    return rc;
}

static int apply_del_entity(struct cg_store *s, MDB_txn *txn, const struct op *o)
{
    MDB_val k = {strlen(o->username), o->username};
    return map_write_err(mdb_del(txn, s->dbi_entities, &k, NULL));
}

static int apply_add_cert(struct cg_store *s, MDB_txn *txn, const struct op *o, struct cg_buf *buf)
{
    int rc = CG_EINTERNAL;
    const struct cg_cert_rec *c = o->cert;
    uint8_t key[CG_STORE_CERT_KEY_MAX];
    uint8_t dup[CG_STORE_SEQ_LEN + CG_STORE_CERT_KEY_MAX];
    size_t key_len = make_cert_key_(c->issuer_key, c->serial, c->serial_len, key);
    uint64_t seq = 0;
    MDB_val k, v;
    rc = encode_cert_(c, buf);
    if (rc != CG_OK)
        goto out;
    rc = put_encoded(txn, s->dbi_certs, key, key_len, buf, MDB_NOOVERWRITE);
    if (rc != CG_OK || c->username == NULL)
        goto out;
    rc = next_seq(s, txn, KEY_CERT_SEQ, &seq);
    if (rc != CG_OK)
        goto out;
    set_u64_be_(dup, seq);
    memcpy(dup + CG_STORE_SEQ_LEN, key, key_len);
    k.mv_size = strlen(c->username);
    k.mv_data = c->username;
    v.mv_size = CG_STORE_SEQ_LEN + key_len;
    v.mv_data = dup;
    rc = map_write_err(mdb_put(txn, s->dbi_by_user, &k, &v, 0));
out:
    return rc;
}

static int apply_revoke_cert(struct cg_store *s, MDB_txn *txn, const struct op *o,
                             struct cg_buf *buf)
{
    int rc = CG_EINTERNAL;
    MDB_val k = {o->key_len, (void *)o->key};
    MDB_val v;
    struct cg_cert_rec *c = NULL;
    rc = map_write_err(mdb_get(txn, s->dbi_certs, &k, &v));
    if (rc != CG_OK)
        goto out;
    rc = decode_cert_(v.mv_data, v.mv_size, &c);
    if (rc != CG_OK)
        goto out;
    if (c->status == CG_CERT_REVOKED) {
        rc = CG_EALREADY;
        goto out;
    }
    c->status = CG_CERT_REVOKED;
    c->reason = o->arg1;
    c->revoked_at = o->when;
    rc = encode_cert_(c, buf);
    if (rc != CG_OK)
        goto out;
    rc = put_encoded(txn, s->dbi_certs, o->key, o->key_len, buf, 0);
out:
    cg_cert_rec_free(c);
    return rc;
}

/* The log key of transaction txid, in the committer's write transaction: CG_OK,
 * CG_ENOTFOUND, CG_ESTORE. */
static int txn_seq_of(struct cg_store *s, MDB_txn *txn, const uint8_t *txid, size_t txid_len,
                      uint8_t seq[CG_STORE_SEQ_LEN], MDB_val *rec)
{
    uint64_t n = 0;
    MDB_val v;
    int rc = txnidx_find_(s, txn, 1, txid, txid_len, &n, rec != NULL ? rec : &v);
    if (rc == CG_OK)
        set_u64_be_(seq, n);
    return rc;
}

/* A transaction new to the store gets the next log key (appended: the log only grows at its
 * end) and its index entry; a known one is rewritten in place unless it must be new. */
static int apply_put_txn(struct cg_store *s, MDB_txn *txn, const struct op *o, struct cg_buf *buf)
{
    const struct cg_txn_rec *t = o->txn;
    uint8_t seq[CG_STORE_SEQ_LEN];
    unsigned flags = 0;
    int rc = txn_seq_of(s, txn, t->txid, t->txid_len, seq, NULL);
    if (rc == CG_OK && o->arg1) {
        rc = CG_EEXIST;
    } else if (rc == CG_ENOTFOUND) {
        uint64_t n = 0;
        if ((rc = next_seq(s, txn, KEY_TXN_SEQ, &n)) != CG_OK ||
            (rc = txnidx_appended_(s, t->txid, t->txid_len, n)) != CG_OK)
            goto out;
        set_u64_be_(seq, n);
        flags = MDB_APPEND;
    }
    if (rc != CG_OK)
        goto out;
    if ((rc = encode_txn_(t, buf)) != CG_OK)
        goto out;
    rc = put_encoded(txn, s->dbi_txn_log, seq, sizeof(seq), buf, flags);
    if (rc == CG_EEXIST) /* MDB_APPEND below the log's end: the counter went back */
        rc = CG_ESTORE;
out:
    return rc;
}

int txn_record_(struct cg_store *s, MDB_txn *txn, const uint8_t *txid, size_t txid_len,
                uint8_t seq[CG_STORE_SEQ_LEN], MDB_val *rec)
{
    uint64_t n = 0;
    int rc = txnidx_follow_(s, txn);
    if (rc == CG_OK && (rc = txnidx_find_(s, txn, 0, txid, txid_len, &n, rec)) == CG_OK)
        set_u64_be_(seq, n);
    return rc;
}

/* The transaction of op o's key, decoded (new), and its log key: CG_ENOTFOUND, CG_ESTORE. */
static int load_txn(struct cg_store *s, MDB_txn *txn, const struct op *o, struct cg_txn_rec **t,
                    uint8_t seq[CG_STORE_SEQ_LEN])
{
    MDB_val v;
    *t = NULL;
    int rc = txn_seq_of(s, txn, o->key, o->key_len, seq, &v);
    return rc == CG_OK ? decode_txn_(v.mv_data, v.mv_size, t) : rc;
}

static int apply_set_txn_state(struct cg_store *s, MDB_txn *txn, const struct op *o,
                               struct cg_buf *buf)
{
    struct cg_txn_rec *t = NULL;
    uint8_t seq[CG_STORE_SEQ_LEN];
    int rc = load_txn(s, txn, o, &t, seq);
    if (rc != CG_OK)
        goto out;
    if (t->state != o->arg1) {
        rc = CG_ECONFLICT;
        goto out;
    }
    t->state = o->arg2;
    t->updated = o->when;
    if (t->state != CG_TXN_OPEN && t->secret != NULL) { /* a closed transaction keeps no secret */
        explicit_bzero(t->secret, strlen(t->secret));
        free(t->secret);
        t->secret = NULL;
    }
    rc = encode_txn_(t, buf);
    if (rc != CG_OK)
        goto out;
    rc = put_encoded(txn, s->dbi_txn_log, seq, sizeof(seq), buf, 0);
out:
    cg_txn_rec_free(t);
    return rc;
}

/* A transaction that is still waiting for its certConf is never deleted. */
static int apply_del_txn(struct cg_store *s, MDB_txn *txn, const struct op *o)
{
    struct cg_txn_rec *t = NULL;
    uint8_t seq[CG_STORE_SEQ_LEN];
    MDB_val sk = {sizeof(seq), seq};
    int rc = load_txn(s, txn, o, &t, seq);
    if (rc != CG_OK)
        goto out;
    if (t->state == CG_TXN_OPEN) {
        rc = CG_ECONFLICT;
        goto out;
    }
    rc = map_write_err(mdb_del(txn, s->dbi_txn_log, &sk, NULL));
    if (rc == CG_OK)
        rc = txnidx_deleted_(s, o->key, o->key_len, get_u64_be_(seq));
out:
    cg_txn_rec_free(t);
    return rc;
}

static int apply_touch(struct cg_store *s, MDB_txn *txn, const struct op *o)
{
    uint8_t raw[8];
    MDB_val k = {sizeof(KEY_HEALTH) - 1, (void *)KEY_HEALTH};
    MDB_val v = {sizeof(raw), raw};
    set_u64_be_(raw, (uint64_t)o->when);
    return map_write_err(mdb_put(txn, s->dbi_meta, &k, &v, 0));
}

int migrate_txns_(struct cg_store *s, MDB_txn *txn)
{
    int rc = CG_ESTORE;
    MDB_dbi old;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc = mdb_dbi_open(txn, "txns", 0, &old);
    if (mrc == MDB_NOTFOUND)
        return CG_OK; /* a store made before it held transactions */
    if (mrc != 0 || mdb_cursor_open(txn, old, &cur) != 0)
        goto out;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t n = 0;
        uint8_t seq[CG_STORE_SEQ_LEN];
        MDB_val sv = {sizeof(seq), seq};
        if ((rc = next_seq(s, txn, KEY_TXN_SEQ, &n)) != CG_OK)
            goto out;
        set_u64_be_(seq, n);
        rc = CG_ESTORE;
        if (mdb_put(txn, s->dbi_txn_log, &sv, &v, MDB_APPEND) != 0)
            goto out;
    }
    if (mrc != MDB_NOTFOUND)
        goto out;
    mdb_cursor_close(cur);
    cur = NULL;
    rc = mdb_drop(txn, old, 1) == 0 ? CG_OK : CG_ESTORE;
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc;
}

int apply_batch_(struct cg_store *s, MDB_txn *txn, const struct cg_store_batch *b)
{
    int rc = CG_OK;
    struct cg_buf *buf = cg_buf_new();
    if (buf == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < b->n && rc == CG_OK; i++) {
        const struct op *o = &b->ops[i];
        cg_buf_reset(buf);
        switch (o->kind) {
        case OP_PUT_ENTITY:
            rc = apply_put_entity(s, txn, o, buf);
            break;
        case OP_DEL_ENTITY:
            rc = apply_del_entity(s, txn, o);
            break;
        case OP_ADD_CERT:
            rc = apply_add_cert(s, txn, o, buf);
            break;
        case OP_REVOKE_CERT:
            rc = apply_revoke_cert(s, txn, o, buf);
            break;
        case OP_PUT_TXN:
            rc = apply_put_txn(s, txn, o, buf);
            break;
        case OP_SET_TXN_STATE:
            rc = apply_set_txn_state(s, txn, o, buf);
            break;
        case OP_DEL_TXN:
            rc = apply_del_txn(s, txn, o);
            break;
        case OP_TOUCH:
            rc = apply_touch(s, txn, o);
            break;
        default:
            rc = CG_EINTERNAL;
            break;
        }
    }
out:
    cg_buf_free(buf);
    return rc;
}
