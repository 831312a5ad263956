/*
 * test_store.c - unit tests of store/: records, every batch operation and its error codes,
 * group commit with failing batches, asynchronous commits, per-entity serialization (and a
 * lock released by another thread), listings, corrupt records, durability across
 * close/reopen.
 *
 * DESIGN: each test runs against a fresh store in a mkdtemp directory (set_up / tear_down).
 * TEST_* checks longjmp, so worker threads never use them: they count failures in their own
 * structs and the main thread checks after joining. Corrupt records are written with the
 * raw mdb_* API while the store is closed (the store exposes nothing for it).
 */
#include "cg_store.h"
#include "cg_test.h"
#include "cg_testdir.h"
#include "cg_testoom.h"

#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_dir[64];
static char g_path[96];
static struct cg_store *g_store;

/* --- fixtures --------------------------------------------------------------------------- */

static int open_store(int sync)
{
    struct cg_store_opts o = {g_path, 64, sync, 0};
    return cg_store_open(&o, &g_store);
}

static void set_up(void)
{
    int rc = 0;
    strcpy(g_dir, "/tmp/cg_store_test.XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(g_path, sizeof(g_path), "%s/db", g_dir); /* the store creates it */
    rc = open_store(1);
    if (rc != CG_OK) {
        fprintf(stderr, "cg_store_open: %s\n", cg_strerror(rc));
        exit(2);
    }
}

static void tear_down(void)
{
    cg_store_close(g_store);
    g_store = NULL;
    cg_test_rmtree(g_dir);
}

static void reopen(void)
{
    cg_store_close(g_store);
    g_store = NULL;
    TEST_OK(open_store(1));
}

/* --- record helpers --------------------------------------------------------------------- */

static struct cg_entity *make_entity(const char *name)
{
    struct cg_entity *e = cg_entity_new();
    if (e == NULL)
        abort();
    e->username = strdup(name);
    e->subject_dn = strdup("CN=test,O=cmpgate");
    e->subject_alt = NULL;
    e->ca = strdup("ManagementCA");
    e->ee_profile = strdup("EMPTY");
    e->cert_profile = strdup("ENDUSER");
    e->password = strdup("foo123");
    e->token_type = strdup("USERGENERATED");
    e->status = CG_EE_NEW;
    e->flags = CG_ENTITY_RA_CREATED;
    e->created = 1000;
    e->modified = 1001;
    return e;
}

/* Serial as 1..4 big-endian bytes without a leading zero. */
static size_t serial_bytes(uint32_t v, uint8_t *out)
{
    uint8_t tmp[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    size_t skip = 0;
    while (skip < 3 && tmp[skip] == 0)
        skip++;
    memcpy(out, tmp + skip, 4 - skip);
    return 4 - skip;
}

static struct cg_cert_rec *make_cert(uint8_t issuer, uint32_t serial, const char *user)
{
    struct cg_cert_rec *c = cg_cert_rec_new();
    if (c == NULL)
        abort();
    memset(c->issuer_key, issuer, 32);
    c->serial_len = serial_bytes(serial, c->serial);
    memset(c->fingerprint, 0xAB, 32);
    c->fingerprint[0] = issuer;
    memcpy(c->fingerprint + 1, &serial, sizeof(serial));
    c->username = user ? strdup(user) : NULL;
    c->ca = strdup("ManagementCA");
    c->subject = strdup("CN=test");
    c->issuer = strdup("CN=ManagementCA");
    c->der_len = 5 + serial % 7;
    c->der = malloc(c->der_len);
    memset(c->der, 0x30, c->der_len);
    c->status = CG_CERT_ACTIVE;
    c->reason = -1;
    c->issued_at = 2000 + serial;
    c->not_after = 9000;
    return c;
}

static struct cg_txn_rec *make_txn(uint8_t id)
{
    struct cg_txn_rec *t = cg_txn_rec_new();
    if (t == NULL)
        abort();
    memset(t->txid, id, 16);
    t->txid_len = 16;
    t->state = CG_TXN_OPEN;
    t->created = 3000;
    t->updated = 3000;
    t->alias = strdup("cmp");
    t->username = strdup("alice");
    memset(t->nonce, 0x55, 16);
    t->nonce_len = 16;
    t->body_type = 0;
    t->cert_req_id = 7;
    memset(t->issuer_key, 0x11, 32);
    t->serial[0] = 0x42;
    t->serial_len = 1;
    memset(t->cert_hash, 0x77, 32);
    t->cert_hash_len = 32;
    return t;
}

/* One-operation commits. */
static int put_entity(const struct cg_entity *e, uint64_t ver)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_put_entity(b, e, ver);
    if (rc == CG_OK)
        rc = cg_store_commit(g_store, b);
    cg_store_batch_free(b);
    return rc;
}

static int del_entity(const char *name)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_del_entity(b, name);
    if (rc == CG_OK)
        rc = cg_store_commit(g_store, b);
    cg_store_batch_free(b);
    return rc;
}

static int add_cert(const struct cg_cert_rec *c)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_add_cert(b, c);
    if (rc == CG_OK)
        rc = cg_store_commit(g_store, b);
    cg_store_batch_free(b);
    return rc;
}

static int revoke_cert(const struct cg_cert_rec *c, int reason, int64_t when)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_revoke_cert(b, c->issuer_key, c->serial, c->serial_len, reason, when);
    if (rc == CG_OK)
        rc = cg_store_commit(g_store, b);
    cg_store_batch_free(b);
    return rc;
}

static int put_txn_in(struct cg_store *st, const struct cg_txn_rec *t, int must_be_new)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_put_txn(b, t, must_be_new);
    if (rc == CG_OK)
        rc = cg_store_commit(st, b);
    cg_store_batch_free(b);
    return rc;
}

static int put_txn(const struct cg_txn_rec *t, int must_be_new)
{
    return put_txn_in(g_store, t, must_be_new);
}

static int set_txn_state(const struct cg_txn_rec *t, int from, int to, int64_t when)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_set_txn_state(b, t->txid, t->txid_len, from, to, when);
    if (rc == CG_OK)
        rc = cg_store_commit(g_store, b);
    cg_store_batch_free(b);
    return rc;
}

/* --- open / close ----------------------------------------------------------------------- */

static void test_open_reopen(void)
{
    struct stat st;
    char file[160];
    struct cg_entity *e = make_entity("alice"), *got = NULL;
    TEST_EQ(stat(g_path, &st), 0);
    TEST_TRUE(S_ISDIR(st.st_mode));
    TEST_EQ(st.st_mode & 0777, 0700);
    snprintf(file, sizeof(file), "%s/data.mdb", g_path);
    TEST_EQ(stat(file, &st), 0);
    TEST_EQ(st.st_mode & 0777, 0600);
    TEST_OK(put_entity(e, CG_VERSION_NONE));
    reopen();
    TEST_OK(cg_store_get_entity(g_store, "alice", &got));
    TEST_STREQ(got->subject_dn, "CN=test,O=cmpgate");
    TEST_EQ(got->version, 1);
    cg_entity_free(got);
    got = NULL;
    reopen(); /* reopening an existing store twice checks the stored schema version */
    TEST_OK(cg_store_get_entity(g_store, "alice", &got));
    cg_entity_free(got);
    cg_entity_free(e);
}

static void test_open_errors(void)
{
    struct cg_store *s = (struct cg_store *)1;
    char file[160];
    struct cg_store_opts o = {NULL, 0, 1, 0};
    FILE *f = NULL;
    TEST_RC(cg_store_open(NULL, &s), CG_EINVAL);
    TEST_TRUE(s == NULL);
    TEST_RC(cg_store_open(&o, &s), CG_EINVAL);
    snprintf(file, sizeof(file), "%s/plainfile", g_dir);
    f = fopen(file, "w");
    TEST_NOTNULL(f);
    fclose(f);
    o.path = file;
    TEST_RC(cg_store_open(&o, &s), CG_EIO);
    snprintf(file, sizeof(file), "%s/no/such/parent", g_dir);
    TEST_RC(cg_store_open(&o, &s), CG_EIO);
    TEST_TRUE(s == NULL);
    cg_store_close(NULL);
}

static void test_check_writable(void)
{
    TEST_OK(cg_store_check_writable(g_store));
    TEST_OK(cg_store_check_writable(g_store));
    TEST_RC(cg_store_commit(g_store, NULL), CG_EINVAL);
}

/* --- entities --------------------------------------------------------------------------- */

static void test_entity_ops(void)
{
    struct cg_entity *e = make_entity("alice"), *got = NULL;
    TEST_RC(cg_store_get_entity(g_store, "alice", &got), CG_ENOTFOUND);
    TEST_TRUE(got == NULL);
    TEST_OK(put_entity(e, CG_VERSION_NONE));
    TEST_OK(cg_store_get_entity(g_store, "alice", &got));
    TEST_STREQ(got->username, "alice");
    TEST_STREQ(got->subject_dn, "CN=test,O=cmpgate");
    TEST_TRUE(got->subject_alt == NULL);
    TEST_STREQ(got->ca, "ManagementCA");
    TEST_STREQ(got->ee_profile, "EMPTY");
    TEST_STREQ(got->cert_profile, "ENDUSER");
    TEST_STREQ(got->password, "foo123");
    TEST_STREQ(got->token_type, "USERGENERATED");
    TEST_EQ(got->status, CG_EE_NEW);
    TEST_EQ(got->flags, CG_ENTITY_RA_CREATED);
    TEST_EQ(got->created, 1000);
    TEST_EQ(got->modified, 1001);
    TEST_EQ(got->version, 1);
    cg_entity_free(got);
    got = NULL;

    TEST_RC(put_entity(e, CG_VERSION_NONE), CG_EEXIST);

    /* update with the version read: bumps it, keeps created */
    e->created = 5555;
    e->modified = 2002;
    e->status = CG_EE_GENERATED;
    free(e->password);
    e->password = NULL;
    e->subject_alt = strdup("dNSName=a.example");
    TEST_OK(put_entity(e, 1));
    TEST_OK(cg_store_get_entity(g_store, "alice", &got));
    TEST_EQ(got->version, 2);
    TEST_EQ(got->created, 1000);
    TEST_EQ(got->modified, 2002);
    TEST_EQ(got->status, CG_EE_GENERATED);
    TEST_TRUE(got->password == NULL);
    TEST_STREQ(got->subject_alt, "dNSName=a.example");
    cg_entity_free(got);
    got = NULL;

    TEST_RC(put_entity(e, 1), CG_ECONFLICT); /* stale version */
    TEST_RC(put_entity(e, 3), CG_ECONFLICT); /* future version */
    TEST_OK(put_entity(e, CG_VERSION_ANY));
    TEST_OK(cg_store_get_entity(g_store, "alice", &got));
    TEST_EQ(got->version, 3);
    cg_entity_free(got);
    got = NULL;

    /* an expected version on a missing record is a conflict, not a creation */
    free(e->username);
    e->username = strdup("bob");
    TEST_RC(put_entity(e, 1), CG_ECONFLICT);
    TEST_RC(cg_store_get_entity(g_store, "bob", &got), CG_ENOTFOUND);
    TEST_OK(put_entity(e, CG_VERSION_ANY)); /* ANY creates too */
    TEST_OK(cg_store_get_entity(g_store, "bob", &got));
    TEST_EQ(got->version, 1);
    TEST_EQ(got->created, 5555);
    cg_entity_free(got);
    got = NULL;

    /* delete */
    TEST_OK(del_entity("alice"));
    TEST_RC(cg_store_get_entity(g_store, "alice", &got), CG_ENOTFOUND);
    TEST_RC(del_entity("alice"), CG_ENOTFOUND);
    free(e->username);
    e->username = strdup("alice");
    TEST_OK(put_entity(e, CG_VERSION_NONE));
    TEST_OK(cg_store_get_entity(g_store, "alice", &got));
    TEST_EQ(got->version, 1);
    cg_entity_free(got);
    cg_entity_free(e);
}

static void test_entity_dup(void)
{
    struct cg_entity *e = make_entity("dupme"), *d = NULL;
    d = cg_entity_dup(e);
    TEST_NOTNULL(d);
    TEST_TRUE(d->username != e->username);
    TEST_STREQ(d->username, "dupme");
    TEST_STREQ(d->password, "foo123");
    TEST_TRUE(d->subject_alt == NULL);
    TEST_EQ(d->created, 1000);
    TEST_TRUE(cg_entity_dup(NULL) == NULL);
    cg_entity_free(d);
    cg_entity_free(e);
    cg_entity_free(NULL);
    cg_cert_rec_free(NULL);
    cg_txn_rec_free(NULL);
    cg_store_batch_free(NULL);
}

static void test_batch_invalid(void)
{
    struct cg_store_batch *b = cg_store_batch_new();
    struct cg_entity *e = make_entity("x");
    struct cg_cert_rec *c = make_cert(1, 1, NULL);
    struct cg_txn_rec *t = make_txn(1);
    char longname[600];
    uint8_t ik[32] = {0}, ser[33] = {1};
    TEST_NOTNULL(b);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    free(e->username);
    e->username = NULL;
    TEST_RC(cg_store_batch_put_entity(b, e, CG_VERSION_ANY), CG_EINVAL);
    e->username = strdup("");
    TEST_RC(cg_store_batch_put_entity(b, e, CG_VERSION_ANY), CG_EINVAL);
    free(e->username);
    e->username = strdup(longname);
    TEST_RC(cg_store_batch_put_entity(b, e, CG_VERSION_ANY), CG_EINVAL);
    TEST_RC(cg_store_batch_put_entity(b, NULL, CG_VERSION_ANY), CG_EINVAL);
    TEST_RC(cg_store_batch_del_entity(b, NULL), CG_EINVAL);
    c->serial_len = 0;
    TEST_RC(cg_store_batch_add_cert(b, c), CG_EINVAL);
    c->serial_len = 33;
    TEST_RC(cg_store_batch_add_cert(b, c), CG_EINVAL);
    TEST_RC(cg_store_batch_revoke_cert(b, ik, ser, 0, 0, 0), CG_EINVAL);
    TEST_RC(cg_store_batch_revoke_cert(b, ik, ser, 33, 0, 0), CG_EINVAL);
    t->txid_len = 0;
    TEST_RC(cg_store_batch_put_txn(b, t, 1), CG_EINVAL);
    t->txid_len = 65;
    TEST_RC(cg_store_batch_put_txn(b, t, 1), CG_EINVAL);
    t->txid_len = 16;
    t->nonce_len = 17;
    TEST_RC(cg_store_batch_put_txn(b, t, 1), CG_EINVAL);
    TEST_RC(cg_store_batch_set_txn_state(b, t->txid, 0, 1, 2, 0), CG_EINVAL);
    /* nothing was added: the batch commits as a no-op */
    TEST_OK(cg_store_commit(g_store, b));
    /* reads reject bad keys too */
    {
        struct cg_entity *got = NULL;
        struct cg_cert_rec *gc = NULL;
        TEST_RC(cg_store_get_entity(g_store, longname, &got), CG_ENOTFOUND);
        TEST_RC(cg_store_get_entity(g_store, "", &got), CG_EINVAL);
        TEST_RC(cg_store_get_cert(g_store, ik, ser, 0, &gc), CG_EINVAL);
    }
    cg_store_batch_free(b);
    cg_entity_free(e);
    cg_cert_rec_free(c);
    cg_txn_rec_free(t);
}

/* --- certificates ----------------------------------------------------------------------- */

static void test_cert_ops(void)
{
    struct cg_cert_rec *c = make_cert(1, 0x1234, "alice"), *c2 = make_cert(2, 0x1234, "bob");
    struct cg_cert_rec *c3 = make_cert(1, 77, NULL), *got = NULL;
    uint8_t nofp[32] = {0};
    size_t n = 99;
    TEST_OK(add_cert(c));
    TEST_OK(cg_store_get_cert(g_store, c->issuer_key, c->serial, c->serial_len, &got));
    TEST_MEMEQ(got->issuer_key, c->issuer_key, 32);
    TEST_EQ(got->serial_len, 2);
    TEST_MEMEQ(got->serial, c->serial, 2);
    TEST_MEMEQ(got->fingerprint, c->fingerprint, 32);
    TEST_STREQ(got->username, "alice");
    TEST_STREQ(got->ca, "ManagementCA");
    TEST_STREQ(got->subject, "CN=test");
    TEST_STREQ(got->issuer, "CN=ManagementCA");
    TEST_EQ(got->der_len, c->der_len);
    TEST_MEMEQ(got->der, c->der, c->der_len);
    TEST_EQ(got->status, CG_CERT_ACTIVE);
    TEST_EQ(got->reason, -1);
    TEST_EQ(got->issued_at, c->issued_at);
    TEST_EQ(got->not_after, 9000);
    TEST_EQ(got->revoked_at, 0);
    cg_cert_rec_free(got);
    got = NULL;

    TEST_OK(cg_store_get_cert_fp(g_store, c->issuer_key, c->serial, c->serial_len, c->fingerprint,
                                 &got));
    TEST_MEMEQ(got->serial, c->serial, c->serial_len);
    cg_cert_rec_free(got);
    got = NULL;
    TEST_OK(cg_store_find_cert_by_serial(g_store, c->serial, c->serial_len, &got));
    TEST_STREQ(got->username, "alice");
    cg_cert_rec_free(got);
    got = NULL;
    TEST_OK(cg_store_count_certs(g_store, "alice", &n));
    TEST_EQ(n, 1);

    TEST_RC(add_cert(c), CG_EEXIST);
    TEST_OK(cg_store_count_certs(g_store, "alice", &n));
    TEST_EQ(n, 1);

    /* same serial from another issuer: a different certificate, an ambiguous serial */
    TEST_OK(add_cert(c2));
    TEST_RC(cg_store_find_cert_by_serial(g_store, c->serial, c->serial_len, &got), CG_EEXIST);
    TEST_TRUE(got == NULL);
    TEST_OK(cg_store_get_cert(g_store, c2->issuer_key, c2->serial, c2->serial_len, &got));
    TEST_STREQ(got->username, "bob");
    cg_cert_rec_free(got);
    got = NULL;

    /* no username, no DER */
    free(c3->der);
    c3->der = NULL;
    c3->der_len = 0;
    TEST_OK(add_cert(c3));
    TEST_OK(cg_store_find_cert_by_serial(g_store, c3->serial, c3->serial_len, &got));
    TEST_TRUE(got->username == NULL);
    TEST_TRUE(got->der == NULL);
    TEST_EQ(got->der_len, 0);
    cg_cert_rec_free(got);
    got = NULL;
    TEST_OK(cg_store_count_certs(g_store, NULL, &n));
    TEST_EQ(n, 3);
    TEST_OK(cg_store_count_certs(g_store, "nobody", &n));
    TEST_EQ(n, 0);

    /* misses */
    c3->serial[0] = 99;
    TEST_RC(cg_store_get_cert(g_store, c3->issuer_key, c3->serial, c3->serial_len, &got),
            CG_ENOTFOUND);
    TEST_RC(cg_store_find_cert_by_serial(g_store, c3->serial, c3->serial_len, &got), CG_ENOTFOUND);
    /* the right issuer and serial with another certificate's fingerprint: not ours */
    TEST_RC(cg_store_get_cert_fp(g_store, c->issuer_key, c->serial, c->serial_len, nofp, &got),
            CG_ENOTFOUND);
    TEST_TRUE(got == NULL);
    cg_cert_rec_free(c);
    cg_cert_rec_free(c2);
    cg_cert_rec_free(c3);
}

static void test_cert_revoke(void)
{
    struct cg_cert_rec *c = make_cert(3, 500, "alice"), *missing = make_cert(3, 501, NULL);
    struct cg_cert_rec *got = NULL;
    TEST_OK(add_cert(c));
    TEST_OK(revoke_cert(c, 1, 4242));
    TEST_OK(cg_store_get_cert(g_store, c->issuer_key, c->serial, c->serial_len, &got));
    TEST_EQ(got->status, CG_CERT_REVOKED);
    TEST_EQ(got->reason, 1);
    TEST_EQ(got->revoked_at, 4242);
    TEST_MEMEQ(got->der, c->der, c->der_len);
    cg_cert_rec_free(got);
    got = NULL;
    TEST_RC(revoke_cert(c, 4, 5000), CG_EALREADY);
    TEST_OK(cg_store_get_cert(g_store, c->issuer_key, c->serial, c->serial_len, &got));
    TEST_EQ(got->reason, 1); /* the failed second revocation changed nothing */
    TEST_EQ(got->revoked_at, 4242);
    cg_cert_rec_free(got);
    TEST_RC(revoke_cert(missing, 1, 1), CG_ENOTFOUND);
    cg_cert_rec_free(c);
    cg_cert_rec_free(missing);
}

/* --- transactions ----------------------------------------------------------------------- */

static void test_txn_ops(void)
{
    struct cg_txn_rec *t = make_txn(9), *got = NULL, *other = make_txn(10);
    TEST_RC(cg_store_get_txn(g_store, t->txid, t->txid_len, &got), CG_ENOTFOUND);
    TEST_OK(put_txn(t, 1));
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
    TEST_EQ(got->txid_len, 16);
    TEST_MEMEQ(got->txid, t->txid, 16);
    TEST_EQ(got->state, CG_TXN_OPEN);
    TEST_EQ(got->created, 3000);
    TEST_STREQ(got->alias, "cmp");
    TEST_STREQ(got->username, "alice");
    TEST_EQ(got->nonce_len, 16);
    TEST_MEMEQ(got->nonce, t->nonce, 16);
    TEST_EQ(got->cert_req_id, 7);
    TEST_MEMEQ(got->issuer_key, t->issuer_key, 32);
    TEST_EQ(got->serial_len, 1);
    TEST_EQ(got->serial[0], 0x42);
    TEST_EQ(got->cert_hash_len, 32);
    TEST_MEMEQ(got->cert_hash, t->cert_hash, 32);
    cg_txn_rec_free(got);
    got = NULL;

    TEST_RC(put_txn(t, 1), CG_EEXIST);
    t->cert_req_id = 8;
    free(t->username);
    t->username = NULL;
    TEST_OK(put_txn(t, 0)); /* overwrite allowed */
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
    TEST_EQ(got->cert_req_id, 8);
    TEST_TRUE(got->username == NULL);
    cg_txn_rec_free(got);
    got = NULL;

    /* compare-and-set of the state */
    TEST_OK(set_txn_state(t, CG_TXN_OPEN, CG_TXN_CONFIRMED, 3100));
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
    TEST_EQ(got->state, CG_TXN_CONFIRMED);
    TEST_EQ(got->updated, 3100);
    TEST_EQ(got->created, 3000);
    cg_txn_rec_free(got);
    got = NULL;
    TEST_RC(set_txn_state(t, CG_TXN_OPEN, CG_TXN_REJECTED, 3200), CG_ECONFLICT);
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
    TEST_EQ(got->state, CG_TXN_CONFIRMED);
    TEST_EQ(got->updated, 3100);
    cg_txn_rec_free(got);
    TEST_RC(set_txn_state(other, CG_TXN_OPEN, CG_TXN_CLOSED, 1), CG_ENOTFOUND);
    cg_txn_rec_free(t);
    cg_txn_rec_free(other);
}

/* The log is walked in the order transactions began, from any key on; keys increase. */
struct walk_seen {
    uint64_t keys[8];
    uint8_t first_byte[8];
    int n, stop_after;
};

static int walk_cb(const struct cg_txn_rec *t, uint64_t key, void *arg)
{
    struct walk_seen *w = arg;
    if (w->n < 8) {
        w->keys[w->n] = key;
        w->first_byte[w->n] = t->txid[0];
    }
    w->n++;
    return w->stop_after > 0 && w->n >= w->stop_after;
}

static void test_walk_txns(void)
{
    struct walk_seen w;
    uint8_t ids[3] = {0x90, 0x10, 0x50}; /* begun in this order, whatever their IDs */
    for (int i = 0; i < 3; i++) {
        struct cg_txn_rec *t = make_txn(ids[i]);
        TEST_OK(put_txn(t, 1));
        cg_txn_rec_free(t);
    }
    memset(&w, 0, sizeof(w));
    TEST_OK(cg_store_walk_txns(g_store, 0, walk_cb, &w));
    TEST_EQ(w.n, 3);
    for (int i = 0; i < 3; i++)
        TEST_EQ(w.first_byte[i], ids[i]);
    TEST_TRUE(w.keys[0] < w.keys[1] && w.keys[1] < w.keys[2]);
    uint64_t k1 = w.keys[1], k2 = w.keys[2];
    memset(&w, 0, sizeof(w));
    TEST_OK(cg_store_walk_txns(g_store, k1, walk_cb, &w));
    TEST_EQ(w.n, 2);
    TEST_EQ(w.first_byte[0], 0x10);
    memset(&w, 0, sizeof(w));
    TEST_OK(cg_store_walk_txns(g_store, k2 + 1, walk_cb, &w));
    TEST_EQ(w.n, 0);
    memset(&w, 0, sizeof(w));
    w.stop_after = 1;
    TEST_OK(cg_store_walk_txns(g_store, 0, walk_cb, &w));
    TEST_EQ(w.n, 1);
    /* a deleted record is skipped; a new one comes after every other */
    {
        struct cg_txn_rec *t = make_txn(0x10), *n = make_txn(0x01);
        struct cg_store_batch *b = cg_store_batch_new();
        TEST_OK(set_txn_state(t, CG_TXN_OPEN, CG_TXN_CLOSED, 3500));
        TEST_OK(cg_store_batch_del_txn(b, t->txid, t->txid_len));
        TEST_OK(cg_store_commit(g_store, b));
        cg_store_batch_free(b);
        TEST_OK(put_txn(n, 1));
        cg_txn_rec_free(t);
        cg_txn_rec_free(n);
    }
    memset(&w, 0, sizeof(w));
    TEST_OK(cg_store_walk_txns(g_store, 0, walk_cb, &w));
    TEST_EQ(w.n, 3);
    TEST_EQ(w.first_byte[1], 0x50);
    TEST_EQ(w.first_byte[2], 0x01);
    TEST_TRUE(w.keys[2] > k2);
    TEST_RC(cg_store_walk_txns(g_store, 0, NULL, NULL), CG_EINVAL);
}

/* --- batches ---------------------------------------------------------------------------- */

static void test_batch_sees_own_writes(void)
{
    struct cg_store_batch *b = cg_store_batch_new();
    struct cg_entity *e = make_entity("bob"), *got = NULL;
    struct cg_cert_rec *c = make_cert(4, 10, "bob"), *gc = NULL;
    struct cg_txn_rec *t = make_txn(4), *gt = NULL;
    TEST_OK(cg_store_batch_put_entity(b, e, CG_VERSION_NONE));
    e->status = CG_EE_GENERATED;
    TEST_OK(cg_store_batch_put_entity(b, e, 1)); /* sees the first put */
    TEST_OK(cg_store_batch_add_cert(b, c));
    TEST_OK(cg_store_batch_revoke_cert(b, c->issuer_key, c->serial, c->serial_len, 0, 77));
    TEST_OK(cg_store_batch_put_txn(b, t, 1));
    TEST_OK(cg_store_batch_set_txn_state(b, t->txid, t->txid_len, CG_TXN_OPEN, CG_TXN_CLOSED, 78));
    /* the batch keeps copies: the caller's records may change or go */
    e->status = CG_EE_FAILED;
    c->serial[0] = 0xEE;
    TEST_OK(cg_store_commit(g_store, b));
    cg_store_batch_free(b);
    c->serial[0] = 10;

    TEST_OK(cg_store_get_entity(g_store, "bob", &got));
    TEST_EQ(got->version, 2);
    TEST_EQ(got->status, CG_EE_GENERATED);
    cg_entity_free(got);
    TEST_OK(cg_store_get_cert(g_store, c->issuer_key, c->serial, c->serial_len, &gc));
    TEST_EQ(gc->status, CG_CERT_REVOKED);
    TEST_EQ(gc->revoked_at, 77);
    cg_cert_rec_free(gc);
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &gt));
    TEST_EQ(gt->state, CG_TXN_CLOSED);
    cg_txn_rec_free(gt);
    cg_entity_free(e);
    cg_cert_rec_free(c);
    cg_txn_rec_free(t);
}

static void test_batch_atomic(void)
{
    struct cg_store_batch *b = cg_store_batch_new();
    struct cg_entity *e = make_entity("carol"), *got = NULL;
    struct cg_cert_rec *c = make_cert(5, 1, "carol"), *c2 = make_cert(5, 2, "carol"), *gc = NULL;
    struct cg_txn_rec *t = make_txn(5), *gt = NULL;
    size_t n = 0;
    TEST_OK(add_cert(c));
    /* entity + new cert + txn, then a duplicate cert: nothing of it may land */
    TEST_OK(cg_store_batch_put_entity(b, e, CG_VERSION_NONE));
    TEST_OK(cg_store_batch_add_cert(b, c2));
    TEST_OK(cg_store_batch_put_txn(b, t, 1));
    TEST_OK(cg_store_batch_add_cert(b, c));
    TEST_RC(cg_store_commit(g_store, b), CG_EEXIST);
    TEST_RC(cg_store_get_entity(g_store, "carol", &got), CG_ENOTFOUND);
    TEST_RC(cg_store_get_txn(g_store, t->txid, t->txid_len, &gt), CG_ENOTFOUND);
    TEST_OK(cg_store_count_certs(g_store, "carol", &n));
    TEST_EQ(n, 1);
    TEST_RC(cg_store_get_cert_fp(g_store, c2->issuer_key, c2->serial, c2->serial_len,
                                 c2->fingerprint, &gc),
            CG_ENOTFOUND);
    /* the same batch again fails the same way: a batch is not consumed by commit */
    TEST_RC(cg_store_commit(g_store, b), CG_EEXIST);
    cg_store_batch_free(b);
    cg_entity_free(e);
    cg_cert_rec_free(c);
    cg_cert_rec_free(c2);
    cg_txn_rec_free(t);
}

/* Concurrent batches, one of which fails: the committer groups them, the bad one must not
 * spoil the others and must leave no trace. */
#define GROUP_THREADS 16
#define GROUP_ROUNDS 20

struct group_arg {
    pthread_barrier_t *barrier;
    int idx;
    int round;
    int rc;
};

static void *group_worker(void *p)
{
    struct group_arg *a = p;
    char name[64];
    struct cg_store_batch *b = cg_store_batch_new();
    struct cg_entity *e = NULL;
    struct cg_cert_rec *c = NULL;
    snprintf(name, sizeof(name), "%s-%d-%d", a->idx == 0 ? "bad" : "good", a->round, a->idx);
    e = make_entity(name);
    /* the bad batch reuses the pre-added cert (7, 1); good ones add fresh serials */
    c = make_cert(7, a->idx == 0 ? 1u : (uint32_t)(1000 + a->round * 100 + a->idx), name);
    a->rc = cg_store_batch_put_entity(b, e, CG_VERSION_NONE);
    if (a->rc == CG_OK)
        a->rc = cg_store_batch_add_cert(b, c);
    pthread_barrier_wait(a->barrier);
    if (a->rc == CG_OK)
        a->rc = cg_store_commit(g_store, b);
    cg_store_batch_free(b);
    cg_entity_free(e);
    cg_cert_rec_free(c);
    return NULL;
}

static void test_group_commit_mixed(void)
{
    pthread_t th[GROUP_THREADS];
    struct group_arg args[GROUP_THREADS];
    pthread_barrier_t barrier;
    struct cg_cert_rec *seed = make_cert(7, 1, "seed");
    size_t n = 0;
    TEST_OK(add_cert(seed));
    for (int round = 0; round < GROUP_ROUNDS; round++) {
        pthread_barrier_init(&barrier, NULL, GROUP_THREADS);
        for (int i = 0; i < GROUP_THREADS; i++) {
            args[i] = (struct group_arg){&barrier, i, round, CG_EINTERNAL};
            TEST_EQ(pthread_create(&th[i], NULL, group_worker, &args[i]), 0);
        }
        for (int i = 0; i < GROUP_THREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < GROUP_THREADS; i++) {
            char name[64];
            struct cg_entity *got = NULL;
            snprintf(name, sizeof(name), "%s-%d-%d", i == 0 ? "bad" : "good", round, i);
            if (i == 0) {
                TEST_RC(args[i].rc, CG_EEXIST);
                TEST_RC(cg_store_get_entity(g_store, name, &got), CG_ENOTFOUND);
            } else {
                TEST_OK(args[i].rc);
                TEST_OK(cg_store_get_entity(g_store, name, &got));
                cg_entity_free(got);
                TEST_OK(cg_store_count_certs(g_store, name, &n));
                TEST_EQ(n, 1);
            }
        }
    }
    TEST_OK(cg_store_count_certs(g_store, NULL, &n));
    TEST_EQ(n, 1 + GROUP_ROUNDS * (GROUP_THREADS - 1));
    TEST_OK(cg_store_count_certs(g_store, "seed", &n));
    TEST_EQ(n, 1);
    cg_cert_rec_free(seed);
}

/* --- listings --------------------------------------------------------------------------- */

struct collect {
    char names[16][32];
    uint32_t serials[16];
    uint8_t first_byte[16]; /* of each transactionID */
    int state[16];          /* of each transaction */
    int n;
    int stop_after;
};

static int collect_txn(const struct cg_txn_rec *t, void *arg)
{
    struct collect *c = arg;
    if (c->n < 16) {
        c->first_byte[c->n] = t->txid[0];
        c->state[c->n] = t->state;
    }
    c->n++;
    return 0;
}

static int collect_entity(const struct cg_entity *e, void *arg)
{
    struct collect *c = arg;
    if (c->n < 16)
        snprintf(c->names[c->n], sizeof(c->names[0]), "%s", e->username);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static int collect_cert(const struct cg_cert_rec *cr, void *arg)
{
    struct collect *c = arg;
    uint32_t v = 0;
    for (size_t i = 0; i < cr->serial_len; i++)
        v = v << 8 | cr->serial[i];
    if (c->n < 16)
        c->serials[c->n] = v;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_list_order(void)
{
    const char *names[] = {"delta", "alpha", "charlie", "bravo"};
    const uint32_t useq[] = {5, 300, 9, 1, 70000};
    struct collect col;
    struct cg_store_batch *b = NULL;
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        struct cg_entity *e = make_entity(names[i]);
        TEST_OK(put_entity(e, CG_VERSION_NONE));
        cg_entity_free(e);
    }
    memset(&col, 0, sizeof(col));
    TEST_OK(cg_store_list_entities(g_store, collect_entity, &col));
    TEST_EQ(col.n, 4);
    TEST_STREQ(col.names[0], "alpha");
    TEST_STREQ(col.names[1], "bravo");
    TEST_STREQ(col.names[2], "charlie");
    TEST_STREQ(col.names[3], "delta");
    memset(&col, 0, sizeof(col));
    col.stop_after = 2;
    TEST_OK(cg_store_list_entities(g_store, collect_entity, &col));
    TEST_EQ(col.n, 2);

    /* certs of "u": three single commits, then two in one batch; "v" interleaved */
    for (int i = 0; i < 3; i++) {
        struct cg_cert_rec *c = make_cert(8, useq[i], "u"), *v = make_cert(8, 100 + i, "v");
        TEST_OK(add_cert(c));
        TEST_OK(add_cert(v));
        cg_cert_rec_free(c);
        cg_cert_rec_free(v);
    }
    b = cg_store_batch_new();
    for (int i = 3; i < 5; i++) {
        struct cg_cert_rec *c = make_cert(8, useq[i], "u");
        TEST_OK(cg_store_batch_add_cert(b, c));
        cg_cert_rec_free(c);
    }
    TEST_OK(cg_store_commit(g_store, b));
    cg_store_batch_free(b);

    memset(&col, 0, sizeof(col));
    TEST_OK(cg_store_list_certs(g_store, "u", collect_cert, &col));
    TEST_EQ(col.n, 5);
    for (int i = 0; i < 5; i++)
        TEST_EQ(col.serials[i], useq[i]); /* issue order, not key order */
    TEST_OK(cg_store_count_certs(g_store, "u", &n));
    TEST_EQ(n, 5);
    TEST_OK(cg_store_count_certs(g_store, "v", &n));
    TEST_EQ(n, 3);

    /* all certificates: key order (issuer, then serial bytes) */
    memset(&col, 0, sizeof(col));
    TEST_OK(cg_store_list_certs(g_store, NULL, collect_cert, &col));
    TEST_EQ(col.n, 8);
    memset(&col, 0, sizeof(col));
    col.stop_after = 3;
    TEST_OK(cg_store_list_certs(g_store, "u", collect_cert, &col));
    TEST_EQ(col.n, 3);
    memset(&col, 0, sizeof(col));
    TEST_OK(cg_store_list_certs(g_store, "nobody", collect_cert, &col));
    TEST_EQ(col.n, 0);

    /* the issue counter survives a restart: a new cert of u comes last */
    reopen();
    {
        struct cg_cert_rec *c = make_cert(8, 2, "u");
        TEST_OK(add_cert(c));
        cg_cert_rec_free(c);
    }
    memset(&col, 0, sizeof(col));
    TEST_OK(cg_store_list_certs(g_store, "u", collect_cert, &col));
    TEST_EQ(col.n, 6);
    TEST_EQ(col.serials[0], 5);
    TEST_EQ(col.serials[5], 2);
}

/* --- corrupt records -------------------------------------------------------------------- */

/* Open the closed store's environment directly. */
static void raw_open(MDB_env **env, MDB_txn **txn)
{
    TEST_EQ(mdb_env_create(env), 0);
    TEST_EQ(mdb_env_set_maxdbs(*env, 8), 0);
    TEST_EQ(mdb_env_set_mapsize(*env, 64u * 1024 * 1024), 0);
    TEST_EQ(mdb_env_open(*env, g_path, 0, 0600), 0);
    TEST_EQ(mdb_txn_begin(*env, NULL, 0, txn), 0);
}

static void raw_put(MDB_txn *txn, const char *db, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    TEST_EQ(mdb_dbi_open(txn, db, 0, &dbi), 0);
    TEST_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
}

#define SCHEMA_NOW 4 /* store_local.h's CG_STORE_SCHEMA */

/* The schema version the raw environment's meta records. */
static void expect_schema(MDB_txn *txn, uint8_t version)
{
    MDB_dbi dbi;
    MDB_val k = {6, "schema"}, v;
    TEST_EQ(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    TEST_EQ(mdb_get(txn, dbi, &k, &v), 0);
    TEST_EQ(v.mv_size, 4);
    TEST_EQ(((const uint8_t *)v.mv_data)[3], version);
}

/* A schema-1 store (with the certs_by_fp index): opening drops the index, keeps every
 * certificate (found by issuer, serial and fingerprint) and records the current schema; a
 * schema this version does not know is refused. */
static void test_old_fp_index_dropped(void)
{
    struct cg_cert_rec *c = make_cert(1, 7, "olduser"), *got = NULL;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    TEST_OK(add_cert(c));
    cg_store_close(g_store);
    g_store = NULL;
    raw_open(&env, &txn);
    TEST_EQ(mdb_dbi_open(txn, "certs_by_fp", MDB_CREATE, &dbi), 0);
    raw_put(txn, "certs_by_fp", c->fingerprint, 32, "stale", 5);
    raw_put(txn, "meta", "schema", 6, "\0\0\0\1", 4);
    TEST_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    TEST_OK(open_store(0));
    TEST_OK(cg_store_get_cert_fp(g_store, c->issuer_key, c->serial, c->serial_len, c->fingerprint,
                                 &got));
    TEST_MEMEQ(got->der, c->der, c->der_len);
    cg_cert_rec_free(got);
    cg_store_close(g_store);
    g_store = NULL;
    raw_open(&env, &txn);
    TEST_EQ(mdb_dbi_open(txn, "certs_by_fp", 0, &dbi), MDB_NOTFOUND);
    expect_schema(txn, SCHEMA_NOW);
    raw_put(txn, "meta", "schema", 6, "\0\0\0\5", 4);
    TEST_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    TEST_RC(open_store(0), CG_ESTORE);
    g_store = NULL;
    /* back to the current schema so that tear_down finds a store it can open and remove */
    raw_open(&env, &txn);
    raw_put(txn, "meta", "schema", 6, "\0\0\0\4", 4);
    TEST_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    TEST_OK(open_store(0));
    cg_cert_rec_free(c);
}

#define TRUNC_MAX 256

/* In a raw environment: the log record of transaction t (a record starts with its format byte
 * and its txid as a blob), its log key into key (8 bytes, when not NULL). @return 1 if found. */
static int raw_txn_record(MDB_txn *txn, const struct cg_txn_rec *t, uint8_t *key, MDB_val *rec)
{
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val k;
    int found = 0;
    TEST_EQ(mdb_dbi_open(txn, "txn_log", 0, &dbi), 0);
    TEST_EQ(mdb_cursor_open(txn, dbi, &cur), 0);
    for (int mrc = mdb_cursor_get(cur, &k, rec, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, rec, MDB_NEXT)) {
        const uint8_t *r = rec->mv_data;
        found = rec->mv_size >= 5 + t->txid_len && r[1] == 0 && r[2] == 0 && r[3] == 0 &&
                r[4] == t->txid_len && memcmp(r + 5, t->txid, t->txid_len) == 0;
        if (found) {
            if (key != NULL)
                memcpy(key, k.mv_data, 8);
            break;
        }
    }
    mdb_cursor_close(cur);
    return found;
}

/* Rewrite the closed store's environment as schema 2 wrote it: the encoded records of the
 * transactions t[0..n) under their txids in "txns", no log, no counter. */
static void to_schema2(struct cg_txn_rec *const *t, int n)
{
    uint8_t rec[4][TRUNC_MAX];
    size_t rec_len[4];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    TEST_TRUE(n <= 4);
    raw_open(&env, &txn);
    for (int i = 0; i < n; i++) {
        MDB_val v;
        TEST_TRUE(raw_txn_record(txn, t[i], NULL, &v));
        TEST_TRUE(v.mv_size < TRUNC_MAX);
        rec_len[i] = v.mv_size;
        memcpy(rec[i], v.mv_data, v.mv_size);
    }
    TEST_EQ(mdb_dbi_open(txn, "txn_log", 0, &dbi), 0);
    TEST_EQ(mdb_drop(txn, dbi, 1), 0);
    TEST_EQ(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    {
        MDB_val k = {7, "txn_seq"};
        TEST_EQ(mdb_del(txn, dbi, &k, NULL), 0);
    }
    TEST_EQ(mdb_dbi_open(txn, "txns", MDB_CREATE, &dbi), 0);
    for (int i = 0; i < n; i++)
        raw_put(txn, "txns", t[i]->txid, t[i]->txid_len, rec[i], rec_len[i]);
    raw_put(txn, "meta", "schema", 6, "\0\0\0\2", 4);
    TEST_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A schema-2 store kept its transactions in "txns", keyed by transactionID. Opening it moves
 * them into the log (in txid order), drops "txns" and records the current schema: every
 * transaction is found, listed and updated as before, its transactionID stays taken, and a new
 * one is logged after them. */
static void test_txns_migrated(void)
{
    struct cg_txn_rec *t[3] = {make_txn(0x30), make_txn(0x10), make_txn(0x20)}, *got = NULL;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    struct collect col;
    for (int i = 0; i < 3; i++) {
        t[i]->cert_req_id = 100 + i;
        TEST_OK(put_txn(t[i], 1));
    }
    cg_store_close(g_store);
    g_store = NULL;
    to_schema2(t, 3);

    TEST_OK(open_store(0));
    for (int i = 0; i < 3; i++) {
        TEST_OK(cg_store_get_txn(g_store, t[i]->txid, t[i]->txid_len, &got));
        TEST_EQ(got->cert_req_id, 100 + i);
        TEST_STREQ(got->username, "alice");
        cg_txn_rec_free(got);
        got = NULL;
        TEST_RC(put_txn(t[i], 1), CG_EEXIST);
    }
    TEST_OK(set_txn_state(t[0], CG_TXN_OPEN, CG_TXN_CONFIRMED, 3100));
    {
        struct cg_txn_rec *n = make_txn(0x05);
        TEST_OK(put_txn(n, 1));
        cg_txn_rec_free(n);
    }
    /* the log order: the migrated ones by txid, then the new one */
    memset(&col, 0, sizeof(col));
    TEST_OK(cg_store_list_txns(g_store, collect_txn, &col));
    TEST_EQ(col.n, 4);
    TEST_EQ(col.first_byte[0], 0x10);
    TEST_EQ(col.first_byte[1], 0x20);
    TEST_EQ(col.first_byte[2], 0x30);
    TEST_EQ(col.first_byte[3], 0x05);
    TEST_EQ(col.state[2], CG_TXN_CONFIRMED);
    cg_store_close(g_store);
    g_store = NULL;
    raw_open(&env, &txn);
    TEST_EQ(mdb_dbi_open(txn, "txns", 0, &dbi), MDB_NOTFOUND);
    TEST_EQ(mdb_dbi_open(txn, "txn_ids", 0, &dbi), MDB_NOTFOUND);
    expect_schema(txn, SCHEMA_NOW);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    TEST_OK(open_store(0));
    for (int i = 0; i < 3; i++)
        cg_txn_rec_free(t[i]);
}

static void test_corrupt_records(void)
{
    struct cg_entity *e = make_entity("good"), *got = NULL;
    struct cg_cert_rec *c = make_cert(9, 9, "good"), *gc = NULL;
    struct cg_txn_rec *t = make_txn(9), *gt = NULL;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val k = {4, "good"}, v;
    uint8_t rec[TRUNC_MAX], ckey[64];
    size_t rec_len = 0, ckey_len = 0;
    char key[32];
    static const uint8_t garbage[] = {0xff, 0x00, 'j', 'u', 'n', 'k'};
    static const uint8_t huge_len[] = {1, 0xff, 0xff, 0xff, 0xff, 'a'};
    struct collect col;
    TEST_OK(put_entity(e, CG_VERSION_NONE));
    TEST_OK(add_cert(c));
    TEST_OK(put_txn(t, 1));
    cg_store_close(g_store);
    g_store = NULL;

    raw_open(&env, &txn);
    TEST_EQ(mdb_dbi_open(txn, "entities", 0, &dbi), 0);
    TEST_EQ(mdb_get(txn, dbi, &k, &v), 0);
    TEST_TRUE(v.mv_size < TRUNC_MAX);
    rec_len = v.mv_size;
    memcpy(rec, v.mv_data, rec_len);
    raw_put(txn, "entities", "garbage", 7, garbage, sizeof(garbage));
    raw_put(txn, "entities", "hugelen", 7, huge_len, sizeof(huge_len));
    raw_put(txn, "entities", "empty", 5, "", 0);
    for (size_t len = 0; len < rec_len; len++) {
        snprintf(key, sizeof(key), "trunc%03zu", len);
        raw_put(txn, "entities", key, strlen(key), rec, len);
    }
    {
        uint8_t longer[TRUNC_MAX + 1];
        memcpy(longer, rec, rec_len);
        longer[rec_len] = 0;
        raw_put(txn, "entities", "trailing", 8, longer, rec_len + 1);
    }
    for (size_t i = 0; i < rec_len; i++) {
        uint8_t flipped[TRUNC_MAX];
        memcpy(flipped, rec, rec_len);
        flipped[i] ^= 0xA5;
        snprintf(key, sizeof(key), "flip%03zu", i);
        raw_put(txn, "entities", key, strlen(key), flipped, rec_len);
    }
    ckey_len = 32 + c->serial_len;
    memcpy(ckey, c->issuer_key, 32);
    memcpy(ckey + 32, c->serial, c->serial_len);
    raw_put(txn, "certs", ckey, ckey_len, garbage, sizeof(garbage));
    {
        /* t's log record overwritten: its txid can no longer be read */
        uint8_t seq[8];
        MDB_val rec;
        TEST_TRUE(raw_txn_record(txn, t, seq, &rec));
        raw_put(txn, "txn_log", seq, sizeof(seq), garbage, 3);
    }
    TEST_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    TEST_OK(open_store(1));
    TEST_OK(cg_store_get_entity(g_store, "good", &got));
    cg_entity_free(got);
    got = NULL;
    TEST_RC(cg_store_get_entity(g_store, "garbage", &got), CG_ESTORE);
    TEST_TRUE(got == NULL);
    TEST_RC(cg_store_get_entity(g_store, "hugelen", &got), CG_ESTORE);
    TEST_RC(cg_store_get_entity(g_store, "empty", &got), CG_ESTORE);
    TEST_RC(cg_store_get_entity(g_store, "trailing", &got), CG_ESTORE);
    for (size_t len = 0; len < rec_len; len++) {
        snprintf(key, sizeof(key), "trunc%03zu", len);
        TEST_RC(cg_store_get_entity(g_store, key, &got), CG_ESTORE);
    }
    for (size_t i = 0; i < rec_len; i++) {
        int rc = 0;
        snprintf(key, sizeof(key), "flip%03zu", i);
        rc = cg_store_get_entity(g_store, key, &got);
        TEST_TRUE(rc == CG_OK || rc == CG_ESTORE);
        cg_entity_free(got);
        got = NULL;
    }
    memset(&col, 0, sizeof(col));
    TEST_RC(cg_store_list_entities(g_store, collect_entity, &col), CG_ESTORE);
    /* writes that must read the corrupt record fail too, and leave it as it was */
    free(e->username);
    e->username = strdup("garbage");
    TEST_RC(put_entity(e, CG_VERSION_ANY), CG_ESTORE);

    TEST_RC(cg_store_get_cert(g_store, c->issuer_key, c->serial, c->serial_len, &gc), CG_ESTORE);
    TEST_RC(
        cg_store_get_cert_fp(g_store, c->issuer_key, c->serial, c->serial_len, c->fingerprint, &gc),
        CG_ESTORE);
    TEST_RC(cg_store_find_cert_by_serial(g_store, c->serial, c->serial_len, &gc), CG_ESTORE);
    TEST_RC(cg_store_list_certs(g_store, "good", collect_cert, &col), CG_ESTORE);
    TEST_RC(cg_store_list_certs(g_store, NULL, collect_cert, &col), CG_ESTORE);
    TEST_RC(revoke_cert(c, 1, 1), CG_ESTORE);
    /* a transaction whose record is damaged is unknown; the others are not affected: a new
     * one is logged after it and found */
    TEST_RC(cg_store_get_txn(g_store, t->txid, t->txid_len, &gt), CG_ENOTFOUND);
    TEST_TRUE(gt == NULL);
    TEST_RC(set_txn_state(t, CG_TXN_OPEN, CG_TXN_CLOSED, 1), CG_ENOTFOUND);
    {
        struct cg_txn_rec *after = make_txn(0xb2);
        TEST_OK(put_txn(after, 1));
        TEST_OK(cg_store_get_txn(g_store, after->txid, after->txid_len, &gt));
        TEST_EQ(gt->cert_req_id, 7);
        cg_txn_rec_free(gt);
        gt = NULL;
        TEST_RC(put_txn(after, 1), CG_EEXIST);
        cg_txn_rec_free(after);
    }
    TEST_OK(cg_store_check_writable(g_store)); /* the store itself still works */
    cg_entity_free(e);
    cg_cert_rec_free(c);
    cg_txn_rec_free(t);
}

/* --- per-entity serialization ----------------------------------------------------------- */

#define LOCK_THREADS 32
#define LOCK_ITERS 50

struct lock_arg {
    int failures;
    int first_error;
};

static void *lock_worker(void *p)
{
    struct lock_arg *a = p;
    for (int i = 0; i < LOCK_ITERS; i++) {
        struct cg_entity *e = NULL;
        uint64_t ver = CG_VERSION_NONE;
        int rc = 0;
        cg_store_lock_entity(g_store, "shared");
        rc = cg_store_get_entity(g_store, "shared", &e);
        if (rc == CG_ENOTFOUND) {
            e = make_entity("shared");
            rc = CG_OK;
        } else if (rc == CG_OK) {
            ver = e->version;
            e->modified++;
        }
        if (rc == CG_OK)
            rc = put_entity(e, ver);
        cg_store_unlock_entity(g_store, "shared");
        cg_entity_free(e);
        if (rc != CG_OK) {
            if (a->failures++ == 0)
                a->first_error = rc;
        }
    }
    return NULL;
}

/* Other entities run alongside, under their own locks. */
static void *other_worker(void *p)
{
    struct lock_arg *a = p;
    char name[32];
    snprintf(name, sizeof(name), "other-%p", p);
    for (int i = 0; i < LOCK_ITERS; i++) {
        struct cg_entity *e = make_entity(name);
        int rc = 0;
        cg_store_lock_entity(g_store, name);
        rc = put_entity(e, CG_VERSION_ANY);
        cg_store_unlock_entity(g_store, name);
        cg_entity_free(e);
        if (rc != CG_OK && a->failures++ == 0)
            a->first_error = rc;
    }
    return NULL;
}

static void test_lock_entity_stress(void)
{
    pthread_t th[LOCK_THREADS + 4];
    struct lock_arg args[LOCK_THREADS + 4];
    struct cg_entity *got = NULL;
    memset(args, 0, sizeof(args));
    for (int i = 0; i < LOCK_THREADS + 4; i++)
        TEST_EQ(
            pthread_create(&th[i], NULL, i < LOCK_THREADS ? lock_worker : other_worker, &args[i]),
            0);
    for (int i = 0; i < LOCK_THREADS + 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < LOCK_THREADS + 4; i++) {
        if (args[i].failures != 0)
            TEST_FAIL_("thread %d: %d failed commits, first %s", i, args[i].failures,
                       cg_strerror(args[i].first_error));
    }
    TEST_OK(cg_store_get_entity(g_store, "shared", &got));
    TEST_EQ(got->version, LOCK_THREADS * LOCK_ITERS);
    TEST_EQ(got->modified, 1001 + LOCK_THREADS * LOCK_ITERS - 1);
    cg_entity_free(got);
}

/* --- asynchronous commits --------------------------------------------------------------- */

struct written {
    sem_t sem;
    int rc;
    int calls;
    pthread_t thread;
    struct cg_store_batch *batch;
};

/* The committer thread: record the result, free the batch (allowed from the callback). */
static void on_written(void *arg, int rc)
{
    struct written *w = arg;
    w->rc = rc;
    w->calls++;
    w->thread = pthread_self();
    cg_store_batch_free(w->batch);
    w->batch = NULL;
    sem_post(&w->sem);
}

#define ASYNC_N 40

/* Many asynchronous commits queued from one thread: each callback runs once, on another
 * thread, after its write is readable and durable; a failing batch (a duplicate transaction)
 * gets its own code and the others of its group are written. */
static void test_commit_async(void)
{
    static struct written w[ASYNC_N + 1];
    struct cg_txn_rec *t = NULL, *got = NULL;
    for (int i = 0; i < ASYNC_N; i++) {
        TEST_EQ(sem_init(&w[i].sem, 0, 0), 0);
        w[i].rc = CG_EINTERNAL;
        w[i].batch = cg_store_batch_new();
        t = make_txn((uint8_t)(i % 20)); /* 20..39 repeat 0..19: CG_EEXIST */
        TEST_OK(cg_store_batch_put_txn(w[i].batch, t, 1));
        cg_txn_rec_free(t);
        TEST_OK(cg_store_commit_async(g_store, w[i].batch, on_written, &w[i]));
    }
    for (int i = 0; i < ASYNC_N; i++) {
        TEST_EQ(sem_wait(&w[i].sem), 0);
        TEST_EQ(w[i].calls, 1);
        TEST_FALSE(pthread_equal(w[i].thread, pthread_self()));
        TEST_RC(w[i].rc, i < 20 ? CG_OK : CG_EEXIST);
        TEST_TRUE(w[i].batch == NULL);
        sem_destroy(&w[i].sem);
    }
    t = make_txn(7);
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
    TEST_EQ(got->created, t->created);
    cg_txn_rec_free(got);
    cg_txn_rec_free(t);
    /* durable: still there after a reopen */
    reopen();
    t = make_txn(19);
    TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
    cg_txn_rec_free(got);
    /* bad arguments: refused, and the callback never runs */
    struct written *c = &w[ASYNC_N];
    c->batch = cg_store_batch_new();
    TEST_OK(cg_store_batch_put_txn(c->batch, t, 0));
    TEST_RC(cg_store_commit_async(g_store, c->batch, NULL, c), CG_EINVAL);
    TEST_RC(cg_store_commit_async(NULL, c->batch, on_written, c), CG_EINVAL);
    TEST_RC(cg_store_commit_async(g_store, NULL, on_written, c), CG_EINVAL);
    TEST_EQ(c->calls, 0);
    cg_store_batch_free(c->batch);
    cg_txn_rec_free(t);
}

/* --- letting a commit group grow ------------------------------------------------------- */

static int g_backlog; /* what backlog_fn reports: requests waiting for a worker */

static int backlog_fn(void *arg)
{
    return __atomic_load_n((int *)arg, __ATOMIC_RELAXED);
}

/* The id of the environment's last committed write transaction (store closed). */
static size_t last_txnid(void)
{
    MDB_env *env = NULL;
    MDB_envinfo info;
    TEST_EQ(mdb_env_create(&env), 0);
    TEST_EQ(mdb_env_set_maxdbs(env, 8), 0);
    TEST_EQ(mdb_env_open(env, g_path, MDB_RDONLY, 0600), 0);
    TEST_EQ(mdb_env_info(env, &info), 0);
    mdb_env_close(env);
    return info.me_last_txnid;
}

static void reopen_with_delay(long delay_us)
{
    struct cg_store_opts o = {g_path, 64, 1, delay_us};
    cg_store_close(g_store);
    g_store = NULL;
    TEST_OK(cg_store_open(&o, &g_store));
}

/* Queue an asynchronous put of transaction id into w. */
static void queue_txn(struct written *w, uint8_t id)
{
    struct cg_txn_rec *t = make_txn(id);
    TEST_EQ(sem_init(&w->sem, 0, 0), 0);
    w->rc = CG_EINTERNAL;
    w->calls = 0;
    w->batch = cg_store_batch_new();
    TEST_OK(cg_store_batch_put_txn(w->batch, t, 1));
    cg_txn_rec_free(t);
    TEST_OK(cg_store_commit_async(g_store, w->batch, on_written, w));
}

/* @return 0 when w's callback ran within ms milliseconds, -1 otherwise. */
static int wait_written(struct written *w, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    return sem_timedwait(&w->sem, &ts);
}

/* While requests wait for a worker, the committer holds its group open (an hour's delay
 * here): batches queued meanwhile are written by one LMDB commit once the backlog drains.
 * With an empty backlog it commits at once; a blocking commit ends the wait; a short delay
 * bounds it; closing the store commits a growing group. */
static void test_group_grows(void)
{
    static struct written w[6];
    size_t before, after;
    reopen_with_delay(3600L * 1000000);
    cg_store_close(g_store); /* the id before this test's commits */
    g_store = NULL;
    before = last_txnid();
    reopen_with_delay(3600L * 1000000);
    __atomic_store_n(&g_backlog, 1, __ATOMIC_RELAXED);
    cg_store_set_backlog(g_store, backlog_fn, &g_backlog);
    for (int i = 0; i < 3; i++)
        queue_txn(&w[i], (uint8_t)(100 + i));
    TEST_EQ(wait_written(&w[0], 200), -1); /* held: the backlog may add to the group */
    queue_txn(&w[3], 103);
    __atomic_store_n(&g_backlog, 0, __ATOMIC_RELAXED);
    cg_store_backlog_drained(g_store);
    for (int i = 0; i < 4; i++) {
        TEST_EQ(wait_written(&w[i], 10000), 0);
        TEST_OK(w[i].rc);
        sem_destroy(&w[i].sem);
    }
    /* an empty backlog: no wait, even with an hour's delay */
    queue_txn(&w[4], 104);
    TEST_EQ(wait_written(&w[4], 10000), 0);
    TEST_OK(w[4].rc);
    sem_destroy(&w[4].sem);
    /* closing wakes a growing group and writes it */
    __atomic_store_n(&g_backlog, 1, __ATOMIC_RELAXED);
    queue_txn(&w[5], 105);
    cg_store_close(g_store);
    g_store = NULL;
    TEST_EQ(w[5].calls, 1);
    TEST_OK(w[5].rc);
    sem_destroy(&w[5].sem);
    after = last_txnid();
    TEST_EQ(after - before, 3); /* 100..103 in one commit, then 104, then 105 */
    /* the delay bounds the wait when the backlog never drains */
    reopen_with_delay(50000);
    cg_store_set_backlog(g_store, backlog_fn, &g_backlog);
    queue_txn(&w[0], 106);
    TEST_EQ(wait_written(&w[0], 10000), 0);
    TEST_OK(w[0].rc);
    sem_destroy(&w[0].sem);
    /* a blocking commit is not held (its thread cannot take a request meanwhile): with a
     * 10 s delay and a backlog that never drains, it returns at once, with the group it
     * joined */
    reopen_with_delay(10L * 1000000);
    cg_store_set_backlog(g_store, backlog_fn, &g_backlog);
    queue_txn(&w[1], 110);
    struct cg_store_batch *sync_b = cg_store_batch_new();
    struct cg_txn_rec *sync_t = make_txn(111);
    struct timespec t0, t1;
    TEST_OK(cg_store_batch_put_txn(sync_b, sync_t, 1));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    TEST_OK(cg_store_commit(g_store, sync_b));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    TEST_TRUE(t1.tv_sec - t0.tv_sec < 5); /* not the 10 s delay */
    TEST_EQ(wait_written(&w[1], 10000), 0);
    TEST_OK(w[1].rc);
    sem_destroy(&w[1].sem);
    cg_store_batch_free(sync_b);
    cg_txn_rec_free(sync_t);
    __atomic_store_n(&g_backlog, 0, __ATOMIC_RELAXED);
}

struct locker {
    sem_t done;
};

/* Another thread: take and release entity "held" (blocks until the holder's write is done). */
static void *take_held(void *arg)
{
    struct locker *l = arg;
    cg_store_lock_entity(g_store, "held");
    cg_store_unlock_entity(g_store, "held");
    sem_post(&l->done);
    return NULL;
}

/* The callback of the holder's write: release the entity, as a deferred write does. */
static void release_held(void *arg, int rc)
{
    struct written *w = arg;
    cg_store_unlock_entity(g_store, "held");
    on_written(w, rc);
}

/* A growing group (an hour's delay, a backlog that never drains) is committed at once when a
 * thread blocks on an entity lock a write of the group holds, and when the backlog function
 * is withdrawn. */
static void test_group_growth_ends(void)
{
    static struct written w[2];
    struct locker l;
    pthread_t th;
    struct timespec ts;
    reopen_with_delay(3600L * 1000000);
    __atomic_store_n(&g_backlog, 1, __ATOMIC_RELAXED);
    cg_store_set_backlog(g_store, backlog_fn, &g_backlog);
    cg_store_lock_entity(g_store, "held");
    struct cg_txn_rec *t = make_txn(120);
    TEST_EQ(sem_init(&w[0].sem, 0, 0), 0);
    w[0].rc = CG_EINTERNAL;
    w[0].batch = cg_store_batch_new();
    TEST_OK(cg_store_batch_put_txn(w[0].batch, t, 1));
    cg_txn_rec_free(t);
    TEST_OK(cg_store_commit_async(g_store, w[0].batch, release_held, &w[0]));
    TEST_EQ(sem_init(&l.done, 0, 0), 0);
    TEST_EQ(pthread_create(&th, NULL, take_held, &l), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    int got = sem_timedwait(&l.done, &ts);
    TEST_EQ(got, 0); /* the waiter got the entity: the holder's write was committed */
    pthread_join(th, NULL);
    sem_destroy(&l.done);
    TEST_EQ(wait_written(&w[0], 10000), 0);
    TEST_OK(w[0].rc);
    sem_destroy(&w[0].sem);
    /* withdrawing the backlog function ends the wait too */
    queue_txn(&w[1], 121);
    TEST_EQ(wait_written(&w[1], 200), -1);
    cg_store_set_backlog(g_store, NULL, NULL);
    TEST_EQ(wait_written(&w[1], 10000), 0);
    TEST_OK(w[1].rc);
    sem_destroy(&w[1].sem);
    __atomic_store_n(&g_backlog, 0, __ATOMIC_RELAXED);
}

/* One group holding a failing batch between two good ones (held together by the backlog):
 * written as one transaction without the failing batch, whose error it keeps; the good ones
 * are readable and durable. */
static void test_group_with_failure(void)
{
    static struct written w[3];
    struct cg_txn_rec *got = NULL, *t = NULL;
    reopen_with_delay(3600L * 1000000);
    cg_store_close(g_store);
    g_store = NULL;
    size_t before = last_txnid();
    reopen_with_delay(3600L * 1000000);
    __atomic_store_n(&g_backlog, 1, __ATOMIC_RELAXED);
    cg_store_set_backlog(g_store, backlog_fn, &g_backlog);
    queue_txn(&w[0], 200);
    queue_txn(&w[1], 200); /* must be new: CG_EEXIST once the first is applied */
    queue_txn(&w[2], 201);
    __atomic_store_n(&g_backlog, 0, __ATOMIC_RELAXED);
    cg_store_backlog_drained(g_store);
    for (int i = 0; i < 3; i++) {
        TEST_EQ(wait_written(&w[i], 10000), 0);
        TEST_RC(w[i].rc, i == 1 ? CG_EEXIST : CG_OK);
        sem_destroy(&w[i].sem);
    }
    cg_store_close(g_store);
    g_store = NULL;
    TEST_EQ(last_txnid() - before, 1);
    TEST_OK(open_store(1));
    for (uint8_t id = 200; id <= 201; id++) {
        t = make_txn(id);
        TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
        cg_txn_rec_free(got);
        cg_txn_rec_free(t);
    }
}

struct unlock_arg {
    const char *name;
    int locked; /* set by the locker thread once it holds the lock */
};

static void *lock_then_leave(void *p)
{
    struct unlock_arg *a = p;
    cg_store_lock_entity(g_store, a->name);
    __atomic_store_n(&a->locked, 1, __ATOMIC_SEQ_CST);
    return NULL; /* exits holding the lock */
}

static void *unlock_other(void *p)
{
    cg_store_unlock_entity(g_store, ((struct unlock_arg *)p)->name);
    return NULL;
}

/* An entity lock taken by one thread and released by another (as the committer releases the
 * lock of an asynchronous write); a third thread then gets it. */
static void test_lock_released_elsewhere(void)
{
    struct unlock_arg a = {"handed-over", 0};
    pthread_t t1, t2;
    TEST_EQ(pthread_create(&t1, NULL, lock_then_leave, &a), 0);
    pthread_join(t1, NULL);
    TEST_EQ(a.locked, 1);
    TEST_EQ(pthread_create(&t2, NULL, unlock_other, &a), 0);
    pthread_join(t2, NULL);
    cg_store_lock_entity(g_store, a.name); /* would block forever if still held */
    cg_store_unlock_entity(g_store, a.name);
}

static void count_call(void *arg, int rc)
{
    int *calls = arg;
    if (rc == CG_OK)
        (*calls)++;
}

/* A request that finds an entity busy waits without a thread: the callback runs once, after
 * the holder releases; on a free stripe nothing is registered. */
static void test_wait_entity(void)
{
    int calls = 0, other = 0;
    TEST_RC(cg_store_wait_entity(g_store, "parked", count_call, &calls), CG_EALREADY);
    TEST_EQ(cg_store_trylock_entity(g_store, "parked"), 1);
    TEST_EQ(cg_store_trylock_entity(g_store, "parked"), 0);
    TEST_OK(cg_store_wait_entity(g_store, "parked", count_call, &calls));
    TEST_OK(cg_store_wait_entity(g_store, "parked", count_call, &other));
    TEST_EQ(calls, 0);
    cg_store_unlock_entity(g_store, "parked"); /* the oldest waiter tries again */
    TEST_EQ(calls, 1);
    TEST_EQ(other, 0);
    TEST_EQ(cg_store_trylock_entity(g_store, "parked"), 1); /* as the woken request would */
    cg_store_unlock_entity(g_store, "parked");
    TEST_EQ(other, 1);
    cg_store_unlock_entity(g_store, "parked"); /* nothing left: no callback */
    TEST_EQ(calls, 1);
    TEST_EQ(other, 1);
    /* a woken request that ends without taking the lock passes the turn on (kick); a kick
     * while the stripe is busy does nothing */
    TEST_EQ(cg_store_trylock_entity(g_store, "parked"), 1);
    TEST_OK(cg_store_wait_entity(g_store, "parked", count_call, &calls));
    TEST_OK(cg_store_wait_entity(g_store, "parked", count_call, &other));
    cg_store_kick_entity(g_store, "parked");
    TEST_EQ(calls, 1);
    cg_store_unlock_entity(g_store, "parked");
    TEST_EQ(calls, 2);
    TEST_EQ(other, 1);
    cg_store_kick_entity(g_store, "parked"); /* the woken one failed before the lock */
    TEST_EQ(other, 2);
    cg_store_kick_entity(g_store, "parked");
    TEST_EQ(other, 2);
}

/* --- durability ------------------------------------------------------------------------- */

#define DUR_THREADS 8
#define DUR_PER 25

static void *dur_worker(void *p)
{
    struct lock_arg *a = p;
    for (int i = 0; i < DUR_PER; i++) {
        char name[32];
        struct cg_store_batch *b = cg_store_batch_new();
        struct cg_entity *e = NULL;
        struct cg_cert_rec *c = NULL;
        struct cg_txn_rec *t = NULL;
        int rc = 0;
        snprintf(name, sizeof(name), "dur-%d-%d", a->first_error, i);
        e = make_entity(name);
        c = make_cert(0x20, (uint32_t)(a->first_error * 1000 + i + 1), name);
        t = make_txn(0);
        memcpy(t->txid, name, strlen(name));
        rc = cg_store_batch_put_entity(b, e, CG_VERSION_NONE);
        if (rc == CG_OK)
            rc = cg_store_batch_add_cert(b, c);
        if (rc == CG_OK)
            rc = cg_store_batch_put_txn(b, t, 1);
        if (rc == CG_OK)
            rc = cg_store_commit(g_store, b);
        if (rc != CG_OK)
            a->failures++;
        cg_store_batch_free(b);
        cg_entity_free(e);
        cg_cert_rec_free(c);
        cg_txn_rec_free(t);
    }
    return NULL;
}

static void test_durability(void)
{
    pthread_t th[DUR_THREADS];
    struct lock_arg args[DUR_THREADS];
    size_t n = 0;
    for (int i = 0; i < DUR_THREADS; i++) {
        args[i] = (struct lock_arg){0, i}; /* first_error carries the thread index here */
        TEST_EQ(pthread_create(&th[i], NULL, dur_worker, &args[i]), 0);
    }
    for (int i = 0; i < DUR_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < DUR_THREADS; i++)
        TEST_EQ(args[i].failures, 0);
    reopen();
    for (int i = 0; i < DUR_THREADS; i++) {
        for (int j = 0; j < DUR_PER; j++) {
            char name[32];
            struct cg_entity *e = NULL;
            struct cg_txn_rec *t = make_txn(0), *gt = NULL;
            snprintf(name, sizeof(name), "dur-%d-%d", i, j);
            memcpy(t->txid, name, strlen(name));
            TEST_OK(cg_store_get_entity(g_store, name, &e));
            TEST_EQ(e->version, 1);
            cg_entity_free(e);
            TEST_OK(cg_store_count_certs(g_store, name, &n));
            TEST_EQ(n, 1);
            TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &gt));
            cg_txn_rec_free(gt);
            cg_txn_rec_free(t);
        }
    }
    TEST_OK(cg_store_count_certs(g_store, NULL, &n));
    TEST_EQ(n, DUR_THREADS * DUR_PER);
}

/* --- map full ------------------------------------------------------------------------- */

static void test_map_full(void)
{
    char path[128];
    struct cg_store_opts o = {path, 1, 0, 0}; /* 1 MB map, no sync */
    struct cg_store *s = NULL;
    struct cg_store_batch *b = NULL;
    struct cg_cert_rec *c = make_cert(0x30, 1, "big"), *got = NULL;
    struct cg_entity *e = make_entity("small");
    int rc = CG_OK, added = 0;
    snprintf(path, sizeof(path), "%s/small", g_dir);
    TEST_OK(cg_store_open(&o, &s));
    free(c->der);
    c->der_len = 96 * 1024;
    c->der = calloc(1, c->der_len);
    TEST_NOTNULL(c->der);
    for (uint32_t i = 1; i < 64 && rc == CG_OK; i++) {
        c->serial_len = serial_bytes(i, c->serial);
        memcpy(c->fingerprint + 1, &i, sizeof(i));
        b = cg_store_batch_new();
        TEST_OK(cg_store_batch_add_cert(b, c));
        rc = cg_store_commit(s, b);
        cg_store_batch_free(b);
        if (rc == CG_OK)
            added++;
    }
    TEST_RC(rc, CG_EFULL);
    TEST_TRUE(added > 0);
    /* the failed batch left the store usable: small writes and reads still work */
    b = cg_store_batch_new();
    TEST_OK(cg_store_batch_put_entity(b, e, CG_VERSION_NONE));
    TEST_OK(cg_store_commit(s, b));
    cg_store_batch_free(b);
    c->serial_len = serial_bytes(1, c->serial);
    TEST_OK(cg_store_get_cert(s, c->issuer_key, c->serial, c->serial_len, &got));
    TEST_EQ(got->der_len, 96 * 1024);
    cg_cert_rec_free(got);
    cg_store_close(s);
    cg_cert_rec_free(c);
    cg_entity_free(e);
}

/* Size of the store's data file under dir. */
static off_t data_size(const char *dir)
{
    char f[192];
    struct stat st;
    snprintf(f, sizeof(f), "%s/data.mdb", dir);
    return stat(f, &st) == 0 ? st.st_size : -1;
}

/* A synced store keeps zeros written ahead of its pages (half a step or more beyond what is
 * used after every commit, so that a commit overwrites blocks instead of extending the file),
 * also once the data outgrow the first reserve, which it tops up a step per commit (no commit
 * writes much more than its data and one step); the reserve reaches half its size; it stays
 * within the map; the records read back after a reopen. A store without sync reserves
 * nothing. */
static void test_space_reserved(void)
{
    char path[128];
    struct cg_store_opts o = {path, 64, 0, 0};
    struct cg_store *s = NULL;
    struct cg_store_batch *b = NULL;
    struct cg_cert_rec *c = make_cert(0x31, 1, "reserve"), *got = NULL;
    const off_t half = CG_STORE_RESERVE / 2;
    snprintf(path, sizeof(path), "%s/nosync", g_dir);
    TEST_OK(cg_store_open(&o, &s));
    b = cg_store_batch_new();
    TEST_OK(cg_store_batch_add_cert(b, c));
    TEST_OK(cg_store_commit(s, b));
    cg_store_batch_free(b);
    cg_store_close(s);
    TEST_TRUE(data_size(path) > 0 && data_size(path) < half);
    /* g_store: synced, 64 MB map */
    free(c->der);
    c->der_len = 96 * 1024;
    TEST_NOTNULL(c->der = calloc(1, c->der_len));
    off_t written = 0, before = data_size(g_path), most_ahead = 0;
    for (uint32_t i = 1; i <= 120; i++) {
        c->serial_len = serial_bytes(i, c->serial);
        memcpy(c->fingerprint + 1, &i, sizeof(i));
        c->der[0] = (uint8_t)i;
        b = cg_store_batch_new();
        TEST_OK(cg_store_batch_add_cert(b, c));
        TEST_OK(cg_store_commit(g_store, b));
        cg_store_batch_free(b);
        written += (off_t)c->der_len;
        off_t size = data_size(g_path);
        TEST_TRUE(size >= written + CG_STORE_RESERVE_STEP / 2);
        TEST_TRUE(size - before <= CG_STORE_RESERVE_STEP + 4 * (off_t)c->der_len);
        if (size - written > most_ahead)
            most_ahead = size - written;
        before = size;
    }
    TEST_TRUE(most_ahead >= half);
    TEST_TRUE(data_size(g_path) <= (off_t)64 << 20);
    reopen();
    for (uint32_t i = 1; i <= 120; i += 17) {
        c->serial_len = serial_bytes(i, c->serial);
        TEST_OK(cg_store_get_cert(g_store, c->issuer_key, c->serial, c->serial_len, &got));
        TEST_EQ(got->der_len, 96 * 1024);
        TEST_EQ(got->der[0], (uint8_t)i);
        cg_cert_rec_free(got);
        got = NULL;
    }
    cg_cert_rec_free(c);
}

/* Bytes LMDB uses in the store at dir (its last page's end), read with the store closed. */
static off_t used_size(const char *dir)
{
    MDB_env *env = NULL;
    MDB_envinfo info;
    MDB_stat st;
    TEST_EQ(mdb_env_create(&env), 0);
    TEST_EQ(mdb_env_set_maxdbs(env, 8), 0);
    TEST_EQ(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    TEST_EQ(mdb_env_info(env, &info), 0);
    TEST_EQ(mdb_env_stat(env, &st), 0);
    mdb_env_close(env);
    return (off_t)(info.me_last_pgno + 1) * st.ms_psize;
}

/* The reserve has the same size in a large store: 100 MB written without sync, then reopened
 * with sync, the zeros ahead reach CG_STORE_RESERVE within a step and go no further (they
 * once grew to an eighth of the store, and the first hundred groups after opening a store of
 * a million entities wrote zeros). */
static void test_reserve_bounded(void)
{
    char path[128];
    struct cg_store_opts o = {path, 256, 0, 0};
    struct cg_store *s = NULL;
    struct cg_cert_rec *c = make_cert(0x32, 1, "bounded");
    uint32_t serial = 1;
    snprintf(path, sizeof(path), "%s/bounded", g_dir);
    free(c->der);
    c->der_len = 96 * 1024;
    TEST_NOTNULL(c->der = calloc(1, c->der_len));
    for (int sync = 0; sync <= 1; sync++) {
        o.sync = sync;
        TEST_OK(cg_store_open(&o, &s));
        for (int i = 0; i < (sync ? 24 : 100); i++) {
            struct cg_store_batch *b = cg_store_batch_new();
            for (int k = 0; k < (sync ? 1 : 11); k++, serial++) {
                c->serial_len = serial_bytes(serial, c->serial);
                memcpy(c->fingerprint + 1, &serial, sizeof(serial));
                TEST_OK(cg_store_batch_add_cert(b, c));
            }
            TEST_OK(cg_store_commit(s, b));
            cg_store_batch_free(b);
        }
        cg_store_close(s);
        s = NULL;
    }
    off_t used = used_size(path), ahead = data_size(path) - used;
    TEST_TRUE(used > (off_t)100 << 20);
    TEST_TRUE(ahead >= CG_STORE_RESERVE / 2);
    TEST_TRUE(ahead <= CG_STORE_RESERVE + CG_STORE_RESERVE_STEP);
    cg_cert_rec_free(c);
}

/* --- allocation failures ----------------------------------------------------------------- */

struct oom_async {
    sem_t done;
    int rc;
};

static void oom_async_done(void *arg, int rc)
{
    struct oom_async *a = arg;
    a->rc = rc;
    sem_post(&a->done);
}

/* An enrollment's batch for name (entity, certificate, transaction whose txid is the name),
 * committed by cg_store_commit or, with async, cg_store_commit_async; with arm, allocations
 * fail as oom_start() set (the records are made before). */
static int oom_enroll(const char *name, uint32_t serial, int async, int arm)
{
    struct cg_entity *e = make_entity(name);
    struct cg_cert_rec *c = make_cert(0x40, serial, name);
    struct cg_txn_rec *t = make_txn(0);
    struct oom_async a;
    memcpy(t->txid, name, strlen(name));
    /* a certificate's size: its record outgrows the entity's, so applying the batch allocates
     * again after the entity is written */
    free(c->der);
    c->der_len = 700;
    if ((c->der = calloc(1, c->der_len)) == NULL)
        abort();
    oom_arm_all(arm);
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = b != NULL ? CG_OK : CG_ENOMEM;
    if (rc == CG_OK)
        rc = cg_store_batch_put_entity(b, e, CG_VERSION_NONE);
    if (rc == CG_OK)
        rc = cg_store_batch_add_cert(b, c);
    if (rc == CG_OK)
        rc = cg_store_batch_put_txn(b, t, 1);
    if (rc == CG_OK && !async) {
        rc = cg_store_commit(g_store, b);
    } else if (rc == CG_OK) {
        sem_init(&a.done, 0, 0);
        rc = cg_store_commit_async(g_store, b, oom_async_done, &a);
        if (rc == CG_OK) {
            while (sem_wait(&a.done) != 0)
                ;
            rc = a.rc;
        }
        sem_destroy(&a.done);
    }
    oom_arm_all(0);
    cg_store_batch_free(b);
    cg_entity_free(e);
    cg_cert_rec_free(c);
    cg_txn_rec_free(t);
    return rc;
}

/* The store after an enrollment that returned rc: all of it (OK) or none of it. */
static void check_all_or_nothing(const char *name, int rc)
{
    struct cg_entity *e = NULL;
    struct cg_txn_rec *t = make_txn(0), *got = NULL;
    size_t n = 99;
    memcpy(t->txid, name, strlen(name));
    int re = cg_store_get_entity(g_store, name, &e);
    int rt = cg_store_get_txn(g_store, t->txid, t->txid_len, &got);
    int rn = cg_store_count_certs(g_store, name, &n);
    cg_entity_free(e);
    cg_txn_rec_free(got);
    cg_txn_rec_free(t);
    TEST_OK(rn);
    if (rc == CG_OK) {
        TEST_OK(re);
        TEST_OK(rt);
        TEST_EQ(n, 1);
    } else {
        TEST_RC(re, CG_ENOTFOUND);
        TEST_RC(rt, CG_ENOTFOUND);
        TEST_EQ(n, 0);
    }
}

/* Each allocation of an enrollment's commit fails in turn, on the test thread (the batch) or
 * the committer (applying it, the group's bookkeeping), synchronous and asynchronous: the
 * commit succeeds whole or leaves nothing, and the store goes on (ASan: no leak). */
static void test_alloc_failures_commit(void)
{
    for (int async = 0; async <= 1; async++) {
        struct oom_tally tally = {0, 0};
        for (long n = 1;; n++) {
            char name[32];
            snprintf(name, sizeof(name), "oom-%d-%ld", async, n);
            oom_start(n);
            int rc = oom_enroll(name, (uint32_t)(async * 100000 + n), async, 1);
            check_all_or_nothing(name, rc);
            if (oom_done(&tally, rc == CG_OK))
                break;
        }
        oom_stop();
        oom_report(async ? "asynchronous enrollment commit" : "enrollment commit", &tally);
        TEST_TRUE(tally.refused + tally.served > 10);
        TEST_TRUE(tally.refused > 0);
    }
    TEST_OK(oom_enroll("after", 999999, 0, 0)); /* the store still works */
    check_all_or_nothing("after", CG_OK);
}

/* certConf's state change with each allocation failing in turn: the state moved, or stayed. */
static void test_alloc_failures_txn_state(void)
{
    struct oom_tally tally = {0, 0};
    for (long n = 1;; n++) {
        struct cg_txn_rec *t = make_txn(0), *got = NULL;
        char name[32];
        snprintf(name, sizeof(name), "conf-%ld", n);
        memcpy(t->txid, name, strlen(name));
        TEST_OK(put_txn(t, 1));
        oom_start(n);
        oom_arm_all(1);
        int rc = set_txn_state(t, CG_TXN_OPEN, CG_TXN_CONFIRMED, 4000);
        oom_arm_all(0);
        TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
        TEST_EQ(got->state, rc == CG_OK ? CG_TXN_CONFIRMED : CG_TXN_OPEN);
        cg_txn_rec_free(got);
        cg_txn_rec_free(t);
        if (oom_done(&tally, rc == CG_OK))
            break;
    }
    oom_stop();
    oom_report("transaction state change", &tally);
    TEST_TRUE(tally.refused > 0);
}

/* Opening a schema-2 store (which moves its transactions) with each allocation failing in
 * turn: the open fails cleanly and the next one migrates, or it succeeds; either way every
 * transaction is there once, in the log. */
static void test_alloc_failures_migration(void)
{
    struct oom_tally tally = {0, 0};
    struct cg_txn_rec *t[3] = {make_txn(0x61), make_txn(0x62), make_txn(0x63)};
    for (long n = 1;; n++) {
        struct collect col;
        tear_down();
        set_up();
        for (int i = 0; i < 3; i++)
            TEST_OK(put_txn(t[i], 1));
        cg_store_close(g_store);
        g_store = NULL;
        to_schema2(t, 3);
        oom_start(n);
        oom_arm_all(1);
        int rc = open_store(0);
        oom_arm_all(0);
        if (rc != CG_OK) {
            TEST_TRUE(g_store == NULL);
            TEST_OK(open_store(0));
        }
        memset(&col, 0, sizeof(col));
        TEST_OK(cg_store_list_txns(g_store, collect_txn, &col));
        TEST_EQ(col.n, 3);
        for (int i = 0; i < 3; i++) {
            struct cg_txn_rec *got = NULL;
            TEST_OK(cg_store_get_txn(g_store, t[i]->txid, t[i]->txid_len, &got));
            cg_txn_rec_free(got);
        }
        if (oom_done(&tally, rc == CG_OK))
            break;
    }
    oom_stop();
    oom_report("open with migration", &tally);
    TEST_TRUE(tally.refused > 0);
    for (int i = 0; i < 3; i++)
        cg_txn_rec_free(t[i]);
}

/* Reads with each allocation failing in turn: a record, or an error; never a partial one. */
static void test_alloc_failures_reads(void)
{
    struct oom_tally tally = {0, 0};
    TEST_OK(oom_enroll("reader", 7, 0, 0));
    for (long n = 1;; n++) {
        struct cg_entity *e = NULL;
        struct cg_txn_rec *t = make_txn(0), *got = NULL;
        struct collect col;
        memcpy(t->txid, "reader", 6);
        memset(&col, 0, sizeof(col));
        oom_start(n);
        oom_arm_all(1);
        int re = cg_store_get_entity(g_store, "reader", &e);
        int rt = cg_store_get_txn(g_store, t->txid, t->txid_len, &got);
        int rl = cg_store_list_certs(g_store, "reader", collect_cert, &col);
        oom_arm_all(0);
        TEST_TRUE(re == CG_OK ? e != NULL && strcmp(e->username, "reader") == 0 : e == NULL);
        TEST_TRUE(rt == CG_OK ? got != NULL && got->cert_req_id == 7 : got == NULL);
        TEST_TRUE(rl == CG_OK ? col.n == 1 : 1);
        cg_entity_free(e);
        cg_txn_rec_free(got);
        cg_txn_rec_free(t);
        if (oom_done(&tally, re == CG_OK && rt == CG_OK && rl == CG_OK))
            break;
    }
    oom_stop();
    oom_report("reads", &tally);
    TEST_TRUE(tally.refused > 0);
}

/* --- the transactionID index (store/txnidx.c) ------------------------------------------- */

uint64_t txnidx_siphash_(uint64_t k0, uint64_t k1, const uint8_t *in, size_t n); /* store_local.h */

/* SipHash-2-4 against the reference vectors of its paper (key 00..0f, inputs 00..n-1). */
static void test_txnidx_siphash(void)
{
    uint8_t in[64];
    uint64_t k0 = 0, k1 = 0;
    for (int i = 0; i < 64; i++)
        in[i] = (uint8_t)i;
    for (int i = 7; i >= 0; i--) {
        k0 = k0 << 8 | (uint64_t)i;
        k1 = k1 << 8 | (uint64_t)(8 + i);
    }
    TEST_TRUE(txnidx_siphash_(k0, k1, in, 0) == 0x726fdb47dd0e0e31ULL);
    TEST_TRUE(txnidx_siphash_(k0, k1, in, 1) == 0x74f839c593dc67fdULL);
    TEST_TRUE(txnidx_siphash_(k0, k1, in, 8) == 0x93f5f5799a932462ULL);
    TEST_TRUE(txnidx_siphash_(k0, k1, in, 15) == 0xa129ca6149be45e5ULL);
    TEST_TRUE(txnidx_siphash_(k0, k1, in, 63) == 0x958a324ceb064572ULL);
}

/* Put transaction t in store st (new). */
static int put_new_txn_in(struct cg_store *st, const struct cg_txn_rec *t)
{
    return put_txn_in(st, t, 1);
}

/* Delete transaction t's record (finished) in store st. */
static int del_txn_in(struct cg_store *st, const struct cg_txn_rec *t)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = cg_store_batch_del_txn(b, t->txid, t->txid_len);
    if (rc == CG_OK)
        rc = cg_store_commit(st, b);
    cg_store_batch_free(b);
    return rc;
}

/* In a child process with a store of its own: op on transaction id. @return the child's
 * status: 0 done, 3 CG_EEXIST, 1 another failure, -1 the child did not end normally. */
static int in_other_process(int (*op)(struct cg_store *, const struct cg_txn_rec *), uint8_t id)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct cg_store *other = NULL;
        struct cg_store_opts o = {g_path, 64, 1, 0};
        struct cg_txn_rec *t = make_txn(id);
        int rc = cg_store_open(&o, &other);
        if (rc == CG_OK)
            rc = op(other, t);
        cg_store_close(other);
        _exit(rc == CG_OK ? 0 : rc == CG_EEXIST ? 3 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Several processes share one store: each keeps the transactionID index in memory, read from
 * the log. A transaction another process logged after this one last read the log is found by
 * a reader, and its transactionID is in use for the committer; one this process logged is in
 * use for the other; and after a reopen every one is found again (the log is the truth). */
static void test_txn_index_processes(void)
{
#ifdef __SANITIZE_THREAD__
    /* ThreadSanitizer refuses a child that starts threads (the store's committer) after a fork
     * of a threaded process; the release and AddressSanitizer builds run this test */
    printf("  skipped under ThreadSanitizer\n");
    return;
#endif
    struct cg_txn_rec *got = NULL, *a = make_txn(0xa1), *b = make_txn(0xb1), *c = make_txn(0xc1);
    TEST_OK(put_txn(a, 1));
    TEST_OK(cg_store_get_txn(g_store, a->txid, a->txid_len, &got)); /* the log read up to a */
    cg_txn_rec_free(got);
    got = NULL;
    TEST_EQ(in_other_process(put_new_txn_in, 0xb1), 0);
    TEST_OK(cg_store_get_txn(g_store, b->txid, b->txid_len, &got));
    TEST_EQ(got->cert_req_id, 7);
    cg_txn_rec_free(got);
    got = NULL;
    TEST_EQ(in_other_process(put_new_txn_in, 0xc1), 0);
    TEST_RC(put_txn(c, 1), CG_EEXIST); /* the committer's check reads the log first */
    TEST_EQ(in_other_process(put_new_txn_in, 0xa1), 3);
    TEST_OK(set_txn_state(b, CG_TXN_OPEN, CG_TXN_CONFIRMED, 4000));
    reopen();
    struct cg_txn_rec *all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        TEST_OK(cg_store_get_txn(g_store, all[i]->txid, all[i]->txid_len, &got));
        TEST_EQ(got->state, i == 1 ? CG_TXN_CONFIRMED : CG_TXN_OPEN);
        cg_txn_rec_free(got);
        got = NULL;
    }
    cg_txn_rec_free(a);
    cg_txn_rec_free(b);
    cg_txn_rec_free(c);
}

/* A client may use one transactionID again once its record is gone: twenty rounds of a
 * transaction logged, finished and deleted, here and (outside ThreadSanitizer) by another
 * process, whose deletions this process's table only learns of when the log's start moves on.
 * Every round's transaction is logged, found, and in use while it lasts. */
static void test_txn_index_reused(void)
{
    struct cg_txn_rec *t = make_txn(0xe1), *got = NULL;
    for (int round = 0; round < 40; round++) {
        int elsewhere = round >= 20;
#ifdef __SANITIZE_THREAD__
        elsewhere = 0; /* no fork of a threaded process under ThreadSanitizer */
#endif
        t->cert_req_id = 100 + round;
        TEST_OK(put_txn(t, 1));
        TEST_RC(put_txn(t, 1), CG_EEXIST);
        TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
        TEST_EQ(got->cert_req_id, 100 + round);
        cg_txn_rec_free(got);
        got = NULL;
        TEST_OK(set_txn_state(t, CG_TXN_OPEN, CG_TXN_CLOSED, 5000));
        if (elsewhere)
            TEST_EQ(in_other_process(del_txn_in, 0xe1), 0);
        else
            TEST_OK(del_txn_in(g_store, t));
        TEST_RC(cg_store_get_txn(g_store, t->txid, t->txid_len, &got), CG_ENOTFOUND);
    }
    cg_txn_rec_free(t);
}

/* One group, committed transaction by transaction (a batch fails): the third batch logs a new
 * transaction X, then fails on a duplicate, so its nested transaction aborts and the log key X
 * had is given to the fourth batch's; each transactionID then finds its own record and X none. */
static void test_txn_index_group_undo(void)
{
    static struct written w[4];
    struct cg_txn_rec *got = NULL, *x = make_txn(0xde);
    uint8_t ids[4] = {0xd1, 0xd2, 0xd1, 0xd3}; /* the third is the first's duplicate */
    reopen_with_delay(10 * 1000000L);          /* the group waits while the backlog lasts */
    g_backlog = 1;
    cg_store_set_backlog(g_store, backlog_fn, &g_backlog);
    for (int i = 0; i < 4; i++) {
        struct cg_txn_rec *t = make_txn(ids[i]);
        t->cert_req_id = 10 + i;
        TEST_EQ(sem_init(&w[i].sem, 0, 0), 0);
        w[i].batch = cg_store_batch_new();
        if (i == 2)
            TEST_OK(cg_store_batch_put_txn(w[i].batch, x, 1));
        TEST_OK(cg_store_batch_put_txn(w[i].batch, t, 1));
        cg_txn_rec_free(t);
        TEST_OK(cg_store_commit_async(g_store, w[i].batch, on_written, &w[i]));
    }
    __atomic_store_n(&g_backlog, 0, __ATOMIC_RELAXED);
    cg_store_backlog_drained(g_store);
    for (int i = 0; i < 4; i++) {
        TEST_EQ(sem_wait(&w[i].sem), 0);
        TEST_RC(w[i].rc, i == 2 ? CG_EEXIST : CG_OK);
        sem_destroy(&w[i].sem);
    }
    cg_store_set_backlog(g_store, NULL, NULL);
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        struct cg_txn_rec *t = make_txn(ids[i]);
        TEST_OK(cg_store_get_txn(g_store, t->txid, t->txid_len, &got));
        TEST_EQ(got->cert_req_id, 10 + i);
        cg_txn_rec_free(got);
        got = NULL;
        cg_txn_rec_free(t);
    }
    TEST_RC(cg_store_get_txn(g_store, x->txid, x->txid_len, &got), CG_ENOTFOUND);
    TEST_OK(put_txn(x, 1)); /* its transactionID is free */
    cg_txn_rec_free(x);
}

CG_TESTS = {
    CG_TEST("store/open_reopen", test_open_reopen),
    CG_TEST("store/open_errors", test_open_errors),
    CG_TEST("store/old_fp_index_dropped", test_old_fp_index_dropped),
    CG_TEST("store/txns_migrated", test_txns_migrated),
    CG_TEST("store/walk_txns", test_walk_txns),
    CG_TEST("store/alloc_failures_commit", test_alloc_failures_commit),
    CG_TEST("store/alloc_failures_txn_state", test_alloc_failures_txn_state),
    CG_TEST("store/alloc_failures_migration", test_alloc_failures_migration),
    CG_TEST("store/alloc_failures_reads", test_alloc_failures_reads),
    CG_TEST("store/check_writable", test_check_writable),
    CG_TEST("store/entity_ops", test_entity_ops),
    CG_TEST("store/entity_dup", test_entity_dup),
    CG_TEST("store/batch_invalid", test_batch_invalid),
    CG_TEST("store/cert_ops", test_cert_ops),
    CG_TEST("store/cert_revoke", test_cert_revoke),
    CG_TEST("store/txn_ops", test_txn_ops),
    CG_TEST("store/batch_sees_own_writes", test_batch_sees_own_writes),
    CG_TEST("store/batch_atomic", test_batch_atomic),
    CG_TEST("store/group_commit_mixed", test_group_commit_mixed),
    CG_TEST("store/list_order", test_list_order),
    CG_TEST("store/corrupt_records", test_corrupt_records),
    CG_TEST("store/lock_entity_stress", test_lock_entity_stress),
    CG_TEST("store/commit_async", test_commit_async),
    CG_TEST("store/txnidx_siphash", test_txnidx_siphash),
    CG_TEST("store/txn_index_processes", test_txn_index_processes),
    CG_TEST("store/txn_index_group_undo", test_txn_index_group_undo),
    CG_TEST("store/txn_index_reused", test_txn_index_reused),
    CG_TEST("store/group_grows", test_group_grows),
    CG_TEST("store/group_with_failure", test_group_with_failure),
    CG_TEST("store/group_growth_ends", test_group_growth_ends),
    CG_TEST("store/lock_released_elsewhere", test_lock_released_elsewhere),
    CG_TEST("store/wait_entity", test_wait_entity),
    CG_TEST("store/durability", test_durability),
    CG_TEST("store/map_full", test_map_full),
    CG_TEST("store/space_reserved", test_space_reserved),
    CG_TEST("store/reserve_bounded", test_reserve_bounded),
};

CG_TEST_MAIN(set_up, tear_down)
