/*
 * txnidx.c - the transactionID → log key index, kept in memory and read from the log.
 *
 * DESIGN: a transaction's record lives in txn_log under the key it got when it began; a
 * certConf and the transactionIdInUse check find it by its transactionID, which the client
 * chose at random. As an LMDB database (schema 3) that index cost a page at a random place
 * per transaction, about half of the pages a group commit wrote, and more as the store grew
 * (docs/decisions.md). The log itself is the durable truth, so the index is derived: each
 * process keeps a hash table of (SipHash-2-4 of the txid under a key of its own, log key) and
 * follows the log: txnidx_follow_ reads every record committed since it last looked (by any
 * process sharing the environment: log keys come from one counter and only grow), so a
 * reader's snapshot finds every transaction it can see. A match in the table is only a
 * candidate: the record it names is read and its txid compared, so a collision or an entry
 * whose record was deleted since costs a read, never a wrong answer. The committer drops the
 * entries of the records it deletes once the deletion is committed; entries of records another
 * process deleted stay until the log's first key has moved well past them (a sweep deletes
 * from the log's start), when the table is rebuilt without what lies below it.
 *
 * The committer follows the log when a write transaction begins (no record of its own yet,
 * and no other writer can commit while it holds LMDB's write lock), then notes each record it
 * appends or deletes (txnidx_appended_, txnidx_deleted_), so that a second transaction with the
 * same txid in the same group is found; an aborted nested transaction drops its notes
 * (txnidx_write_undo_), and a committed group applies them to the table. cg_store_open reads
 * the whole log once. Memory: 16 bytes per slot, at most half of the slots in use.
 */
#include "store_local.h"

#include "cg_err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MIN_SLOTS 1024

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-2-4 of in[0..n) under key (k0, k1) (Aumasson and Bernstein, 2012). */
uint64_t txnidx_siphash_(uint64_t k0, uint64_t k1, const uint8_t *in, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The table's hash of a txid: never 0, which marks an empty slot. */
static uint64_t hash_of(const struct txnidx *x, const uint8_t *txid, size_t len)
{
    return txnidx_siphash_(x->k0, x->k1, txid, len) | 1;
}

int txnidx_init_(struct txnidx *x)
{
    uint8_t key[16];
    memset(x, 0, sizeof(*x));
    if (pthread_mutex_init(&x->mu, NULL) != 0)
        return CG_EINTERNAL;
    x->mu_init = 1;
    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
        return CG_EINTERNAL;
    x->k0 = load_le64(key);
    x->k1 = load_le64(key + 8);
    return CG_OK;
}

void txnidx_free_(struct txnidx *x)
{
    if (x->mu_init)
        pthread_mutex_destroy(&x->mu);
    free(x->slots);
    free(x->notes);
    memset(x, 0, sizeof(*x));
}

/* Under mu: put (h, seq) in its probe run (the table has a free slot). */
static void put_slot(struct txnidx_ent *slots, size_t cap, uint64_t h, uint64_t seq)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].h != 0)
        i = (i + 1) & (cap - 1);
    slots[i].h = h;
    slots[i].seq = seq;
}

/* Under mu: a table of cap slots holding the entries at or above log key floor. */
static int rebuild(struct txnidx *x, size_t cap, uint64_t floor)
{
    struct txnidx_ent *slots = calloc(cap, sizeof(*slots));
    size_t n = 0;
    if (slots == NULL)
        return CG_ENOMEM;
    for (size_t i = 0; i < x->cap; i++)
        if (x->slots[i].h != 0 && x->slots[i].seq >= floor) {
            put_slot(slots, cap, x->slots[i].h, x->slots[i].seq);
            n++;
        }
    free(x->slots);
    x->slots = slots;
    x->cap = cap;
    x->n = n;
    x->floor = floor;
    return CG_OK;
}

/* Under mu: add (h, seq), growing the table past half full. */
static int add(struct txnidx *x, uint64_t h, uint64_t seq)
{
    if (2 * (x->n + 1) > x->cap) {
        int rc = rebuild(x, x->cap ? 2 * x->cap : MIN_SLOTS, x->floor);
        if (rc != CG_OK)
            return rc;
    }
    put_slot(x->slots, x->cap, h, seq);
    x->n++;
    return CG_OK;
}

/* Under mu: remove the entry (h, seq) if present; the entries of its probe run that follow it
 * move up into the hole unless their home slot lies cyclically after the hole. */
static void remove_ent(struct txnidx *x, uint64_t h, uint64_t seq)
{
    size_t mask = x->cap - 1, i;
    if (x->cap == 0)
        return;
    for (i = (size_t)h & mask; x->slots[i].h != 0; i = (i + 1) & mask)
        if (x->slots[i].h == h && x->slots[i].seq == seq)
            break;
    if (x->slots[i].h == 0)
        return;
    x->slots[i].h = 0;
    x->n--;
    for (size_t j = (i + 1) & mask; x->slots[j].h != 0; j = (j + 1) & mask) {
        size_t home = (size_t)x->slots[j].h & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            x->slots[i] = x->slots[j];
            x->slots[j].h = 0;
            i = j;
        }
    }
}

int txnidx_follow_(struct cg_store *s, MDB_txn *txn)
{
    struct txnidx *x = &s->idx;
    MDB_cursor *cur = NULL;
    uint8_t from[CG_STORE_SEQ_LEN];
    MDB_val k = {sizeof(from), from}, v;
    int rc = CG_ESTORE, mrc;
    if (mdb_cursor_open(txn, s->dbi_txn_log, &cur) != 0)
        return CG_ESTORE;
    pthread_mutex_lock(&x->mu);
    /* the log was swept past the table's floor: drop what lies below its first key */
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (mrc == 0 && k.mv_size == CG_STORE_SEQ_LEN) {
        uint64_t first = get_u64_be_(k.mv_data);
        if (first > x->floor && first - x->floor > 1024 + x->n / 8 &&
            (rc = rebuild(x, x->cap ? x->cap : MIN_SLOTS, first)) != CG_OK)
            goto out;
    }
    set_u64_be_(from, x->next);
    k.mv_size = sizeof(from);
    k.mv_data = from;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *txid;
        size_t len;
        if (k.mv_size != CG_STORE_SEQ_LEN)
            continue; /* no log key: damage, left to the readers of the log */
        uint64_t seq = get_u64_be_(k.mv_data);
        /* a record too damaged to name its txid cannot be found: its transaction is unknown,
         * the others are not affected */
        if (txn_txid_peek_(v.mv_data, v.mv_size, &txid, &len) == 0 &&
            (rc = add(x, hash_of(x, txid, len), seq)) != CG_OK)
            goto out;
        x->next = seq + 1;
    }
    rc = mrc == MDB_NOTFOUND ? CG_OK : CG_ESTORE;
out:
    pthread_mutex_unlock(&x->mu);
    mdb_cursor_close(cur);
    return rc;
}

/* The record at log key seq in txn if it is txid's: 1 (into *rec), 0 another's or none (an
 * entry whose record was deleted: a reader cannot tell that from a record its snapshot is too
 * old to see, so it leaves the entry), -1 a damaged record or a failed read. */
static int record_of(struct cg_store *s, MDB_txn *txn, uint64_t seq, const uint8_t *txid,
                     size_t len, MDB_val *rec)
{
    uint8_t key[CG_STORE_SEQ_LEN];
    MDB_val k = {sizeof(key), key};
    const uint8_t *got;
    size_t got_len;
    set_u64_be_(key, seq);
    int mrc = mdb_get(txn, s->dbi_txn_log, &k, rec);
    if (mrc != 0)
        return mrc == MDB_NOTFOUND ? 0 : -1;
    if (txn_txid_peek_(rec->mv_data, rec->mv_size, &got, &got_len) != 0)
        return -1;
    return got_len == len && memcmp(got, txid, len) == 0;
}

#define STACK_CANDIDATES 16

int txnidx_find_(struct cg_store *s, MDB_txn *txn, int writing, const uint8_t *txid, size_t len,
                 uint64_t *seq, MDB_val *rec)
{
    struct txnidx *x = &s->idx;
    uint64_t stack[STACK_CANDIDATES], *cand = stack;
    size_t nc = 0, want = 0;
    uint64_t h = hash_of(x, txid, len);
    int rc = CG_ENOTFOUND;
    /* the group's own records (writing), then the table's; more than a few entries of one hash
     * are a txid used again and again after its records were deleted elsewhere */
    for (size_t i = 0; writing && i < x->nnotes; i++)
        want += x->notes[i].h == h && !x->notes[i].deleted;
    pthread_mutex_lock(&x->mu);
    for (size_t i = (size_t)h & (x->cap - 1); x->cap != 0 && x->slots[i].h != 0;
         i = (i + 1) & (x->cap - 1))
        want += x->slots[i].h == h;
    if (want > STACK_CANDIDATES && (cand = malloc(want * sizeof(*cand))) == NULL) {
        pthread_mutex_unlock(&x->mu);
        return CG_ENOMEM;
    }
    for (size_t i = 0; writing && i < x->nnotes; i++)
        if (x->notes[i].h == h && !x->notes[i].deleted)
            cand[nc++] = x->notes[i].seq;
    for (size_t i = (size_t)h & (x->cap - 1); x->cap != 0 && x->slots[i].h != 0;
         i = (i + 1) & (x->cap - 1))
        if (x->slots[i].h == h)
            cand[nc++] = x->slots[i].seq;
    pthread_mutex_unlock(&x->mu);
    for (size_t i = 0; i < nc; i++) {
        int r = record_of(s, txn, cand[i], txid, len, rec);
        if (r == 1) {
            *seq = cand[i];
            rc = CG_OK;
            break;
        }
        if (r < 0) /* unless another candidate is the one */
            rc = CG_ESTORE;
    }
    if (cand != stack)
        free(cand);
    return rc;
}

int txnidx_write_begin_(struct cg_store *s, MDB_txn *txn)
{
    s->idx.nnotes = 0;
    return txnidx_follow_(s, txn);
}

/* Committer: note a record of the write transaction (appended, or deleted). */
static int note(struct cg_store *s, const uint8_t *txid, size_t len, uint64_t seq, int deleted)
{
    struct txnidx *x = &s->idx;
    if (x->nnotes == x->notes_cap) {
        size_t cap = x->notes_cap ? 2 * x->notes_cap : 64;
        struct txnidx_note *w = realloc(x->notes, cap * sizeof(*w));
        if (w == NULL)
            return CG_ENOMEM;
        x->notes = w;
        x->notes_cap = cap;
    }
    x->notes[x->nnotes].h = hash_of(x, txid, len);
    x->notes[x->nnotes].seq = seq;
    x->notes[x->nnotes].deleted = deleted;
    x->nnotes++;
    return CG_OK;
}

int txnidx_appended_(struct cg_store *s, const uint8_t *txid, size_t len, uint64_t seq)
{
    return note(s, txid, len, seq, 0);
}

int txnidx_deleted_(struct cg_store *s, const uint8_t *txid, size_t len, uint64_t seq)
{
    return note(s, txid, len, seq, 1);
}

size_t txnidx_write_mark_(struct cg_store *s)
{
    return s->idx.nnotes;
}

void txnidx_write_undo_(struct cg_store *s, size_t mark)
{
    s->idx.nnotes = mark;
}

void txnidx_write_committed_(struct cg_store *s)
{
    struct txnidx *x = &s->idx;
    pthread_mutex_lock(&x->mu);
    /* appended ones in log key order: the follow when the transaction began read every record
     * below them, and a reader may have followed the log past some of them since the commit */
    for (size_t i = 0; i < x->nnotes; i++) {
        if (x->notes[i].deleted) {
            remove_ent(x, x->notes[i].h, x->notes[i].seq);
            continue;
        }
        if (x->notes[i].seq < x->next)
            continue;
        if (add(x, x->notes[i].h, x->notes[i].seq) != CG_OK)
            break; /* no memory: the next follow reads the rest from the log */
        x->next = x->notes[i].seq + 1;
    }
    pthread_mutex_unlock(&x->mu);
    x->nnotes = 0;
}
