/*
 * config.c - cg_config_load(): one JSON file → a validated, immutable struct cg_config.
 *
 * DESIGN: the loader walks the JSON tree section by section in a fixed order (listen, workers,
 * queue_depth, limits, store, cas, external_cas, certificate_profiles, end_entity_profiles,
 * aliases, http, tcp, log, administrators), then adds the built-in ENDUSER/EMPTY profiles when
 * absent, then checks every cross-reference by name. Each object's keys are checked against
 * a fixed list first, so a typo is reported as "unknown key" before anything else in that
 * object. The first problem ends the load with "FILE: PATH: REASON" in err (fail()); nothing
 * is logged. The built-in profiles are parsed from constant JSON by the same code as user
 * profiles, so their defaults cannot drift. Defaults of an omitted field in a user-defined
 * certificate profile: validity 730d, key_usage digitalSignature+keyEncipherment (critical),
 * no extendedKeyUsage, algorithms RSA|EC|Ed25519, RSA 2048/3072/4096, curves P-256/384/521,
 * any CA; in an end entity profile: required CN, anything else allowed, no default CA or
 * certificate profile. A list of names may be empty (non-NULL pointer, count 0: nothing
 * allowed); "*" or a list containing "*" means any (NULL pointer).
 * The snapshot lives inside a private box holding an atomic reference count, so only
 * snapshots made by cg_config_load() may be passed to cg_config_ref/unref. After load the
 * snapshot is never written; readers on any thread need no lock. json_t never leaves this
 * file. Loading may call OBJ_create() for unknown EKU OIDs (process-global, locked by
 * OpenSSL); the OpenSSL error queue is cleared before returning.
 */
#include "cg_config.h"
#include "cg_err.h"
#include "cg_log.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATHLEN 512

/* Strings: how get_str treats "". */
#define STR_KEEP 0       /* "" stays "" */
#define STR_EMPTY_NULL 1 /* "" → NULL */
#define STR_NONEMPTY 2   /* "" is an error */

struct config_box {
    struct cg_config cfg; /* first member: a cg_config pointer is a box pointer */
    atomic_int refs;
};

struct loader {
    const char *file; /* path as given, for messages */
    char *err;
    size_t errlen;
    struct cg_config *cfg;
};

struct name_value {
    const char *name;
    int value;
};

/* ---------------------------------------------------------------- messages and paths */

static int fail(struct loader *ld, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *ld, const char *path, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (ld->err != NULL && ld->errlen > 0)
        snprintf(ld->err, ld->errlen, "%s: %s: %s", ld->file,
                 path != NULL && path[0] != '\0' ? path : "(root)", reason);
    return CG_ECONFIG;
}

static int fail_nomem(struct loader *ld)
{
    fail(ld, "", "out of memory");
    return CG_ENOMEM;
}

/* The reason text of the last OpenSSL error; clears the queue. */
static const char *take_ossl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, n, "%s", r != NULL ? r : "unknown error");
    ERR_clear_error();
    return buf;
}

/* Paths longer than the buffer are cut (messages only). */
static void join_key(char *buf, size_t n, const char *parent, const char *key)
{
    int w;

    if (parent == NULL || parent[0] == '\0')
        w = snprintf(buf, n, "%s", key);
    else
        w = snprintf(buf, n, "%s.%s", parent, key);
    if (w < 0)
        buf[0] = '\0';
}

static void join_index(char *buf, size_t n, const char *parent, size_t i)
{
    if (snprintf(buf, n, "%s[%zu]", parent, i) < 0)
        buf[0] = '\0';
}

static void join_names(char *buf, size_t n, const char *const *names)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && used < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i > 0 ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* ---------------------------------------------------------------- small helpers */

static int dup_into(struct loader *ld, const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return CG_OK;
    *out = strdup(s);
    return *out != NULL ? CG_OK : fail_nomem(ld);
}

static void free_strv(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* p relative → "DIR/p"; absolute → copy. */
static int resolve_path(struct loader *ld, const char *p, char **out)
{
    *out = NULL;
    if (p[0] == '/')
        return dup_into(ld, p, out);
    if (asprintf(out, "%s/%s", ld->cfg->dir, p) < 0) {
        *out = NULL;
        return fail_nomem(ld);
    }
    return CG_OK;
}

static int lookup_value(const struct name_value *t, const char *name, int *out)
{
    for (size_t i = 0; t[i].name != NULL; i++) {
        if (strcmp(t[i].name, name) == 0) {
            *out = t[i].value;
            return 1;
        }
    }
    return 0;
}

static int fail_enum(struct loader *ld, const char *path, const struct name_value *t,
                     const char *extra)
{
    char buf[512];
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; t[i].name != NULL && used < sizeof(buf); i++) {
        int w = snprintf(buf + used, sizeof(buf) - used, "%s%s", i > 0 ? ", " : "", t[i].name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return fail(ld, path, "must be one of %s%s", buf, extra != NULL ? extra : "");
}

/* ---------------------------------------------------------------- typed getters */

static int check_keys(struct loader *ld, json_t *obj, const char *parent,
                      const char *const *allowed)
{
    const char *key;
    json_t *v;
    char path[PATHLEN];

    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL) {
            join_key(path, sizeof(path), parent, key);
            return fail(ld, path, "unknown key");
        }
    }
    return CG_OK;
}

/* Member key of obj that must be an object; absent → *out = NULL. */
static int get_obj(struct loader *ld, json_t *obj, const char *parent, const char *key,
                   json_t **out)
{
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL)
        return CG_OK;
    if (!json_is_object(v)) {
        join_key(path, sizeof(path), parent, key);
        return fail(ld, path, "must be an object");
    }
    *out = v;
    return CG_OK;
}

static int get_str(struct loader *ld, json_t *obj, const char *parent, const char *key,
                   const char *def, int empty, char **out)
{
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key);
    const char *s = def;

    *out = NULL;
    join_key(path, sizeof(path), parent, key);
    if (v != NULL) {
        if (!json_is_string(v))
            return fail(ld, path, "must be a string");
        s = json_string_value(v);
    }
    if (s != NULL && s[0] == '\0') {
        if (empty == STR_NONEMPTY)
            return fail(ld, path, "must not be empty");
        if (empty == STR_EMPTY_NULL)
            s = NULL;
    }
    return dup_into(ld, s, out);
}

static int get_int(struct loader *ld, json_t *obj, const char *parent, const char *key,
                   long long lo, long long hi, long long def, long long *out)
{
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key);
    long long x;

    *out = def;
    if (v == NULL)
        return CG_OK;
    join_key(path, sizeof(path), parent, key);
    if (!json_is_integer(v))
        return fail(ld, path, "must be an integer");
    x = (long long)json_integer_value(v);
    if (x < lo || x > hi)
        return fail(ld, path, "must be between %lld and %lld", lo, hi);
    *out = x;
    return CG_OK;
}

static int get_bool(struct loader *ld, json_t *obj, const char *parent, const char *key, int def,
                    int *out)
{
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key);

    *out = def;
    if (v == NULL)
        return CG_OK;
    if (!json_is_boolean(v)) {
        join_key(path, sizeof(path), parent, key);
        return fail(ld, path, "must be a boolean");
    }
    *out = json_is_true(v) ? 1 : 0;
    return CG_OK;
}

static int get_enum(struct loader *ld, json_t *obj, const char *parent, const char *key,
                    const struct name_value *t, int def, int *out)
{
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key);

    *out = def;
    if (v == NULL)
        return CG_OK;
    join_key(path, sizeof(path), parent, key);
    if (!json_is_string(v))
        return fail(ld, path, "must be a string");
    if (!lookup_value(t, json_string_value(v), out))
        return fail_enum(ld, path, t, NULL);
    return CG_OK;
}

/* A NULL-terminated copy of the strings of arr (always non-NULL on success). */
static int strv_from_array(struct loader *ld, const char *path, json_t *arr, const char *tmsg,
                           char ***out, size_t *n)
{
    int rc = CG_EINTERNAL;
    size_t len = json_array_size(arr), i;
    char **v = calloc(len + 1, sizeof(*v));
    json_t *e;

    if (v == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    json_array_foreach(arr, i, e)
    {
        if (!json_is_string(e)) {
            rc = fail(ld, path, "%s", tmsg);
            goto out;
        }
        if ((v[i] = strdup(json_string_value(e))) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
    }
    *out = v;
    *n = len;
    v = NULL;
    rc = CG_OK;
out:
    free_strv(v, len);
    return rc;
}

/*
 * A list of strings. With star, the string "*" or a list containing "*" means any:
 * *out = NULL, *n = 0. *present tells whether the key was given at all.
 */
static int get_strlist(struct loader *ld, json_t *obj, const char *parent, const char *key,
                       int star, char ***out, size_t *n, int *present)
{
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key), *e;
    const char *tmsg = star ? "must be \"*\" or a list of strings" : "must be a list of strings";
    size_t i;

    *out = NULL;
    *n = 0;
    *present = v != NULL;
    if (v == NULL)
        return CG_OK;
    join_key(path, sizeof(path), parent, key);
    if (star && json_is_string(v) && strcmp(json_string_value(v), "*") == 0)
        return CG_OK;
    if (!json_is_array(v))
        return fail(ld, path, "%s", tmsg);
    if (star) {
        json_array_foreach(v, i, e)
        {
            if (json_is_string(e) && strcmp(json_string_value(e), "*") == 0)
                return CG_OK;
        }
    }
    return strv_from_array(ld, path, v, tmsg, out, n);
}

/* A list of strings, or one string whose items are separated by ';' (EJBCA style). */
static int get_semilist(struct loader *ld, json_t *obj, const char *parent, const char *key,
                        char ***out, size_t *n, int *present)
{
    int rc = CG_EINTERNAL;
    char path[PATHLEN];
    json_t *v = json_object_get(obj, key);
    char **items = NULL, *copy = NULL;
    size_t count = 1, k = 0;

    *out = NULL;
    *n = 0;
    *present = v != NULL;
    if (v == NULL)
        return CG_OK;
    join_key(path, sizeof(path), parent, key);
    if (json_is_array(v))
        return strv_from_array(ld, path, v, "must be a string or a list of strings", out, n);
    if (!json_is_string(v))
        return fail(ld, path, "must be a string or a list of strings");
    if ((copy = strdup(json_string_value(v))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    for (const char *p = copy; *p != '\0'; p++)
        count += *p == ';';
    if ((items = calloc(count + 1, sizeof(*items))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    for (char *p = copy, *next; p != NULL; p = next) {
        char *end;
        next = strchr(p, ';');
        if (next != NULL)
            *next++ = '\0';
        while (isspace((unsigned char)*p))
            p++;
        end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if ((items[k++] = strdup(p)) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
    }
    *out = items;
    *n = count;
    items = NULL;
    rc = CG_OK;
out:
    free_strv(items, count);
    free(copy);
    return rc;
}

static int get_intlist(struct loader *ld, json_t *obj, const char *parent, const char *key,
                       long long lo, long long hi, int **out, size_t *n, int *present)
{
    int rc = CG_EINTERNAL;
    char path[PATHLEN], epath[PATHLEN];
    json_t *v = json_object_get(obj, key), *e;
    int *vals = NULL;
    size_t i;

    *out = NULL;
    *n = 0;
    *present = v != NULL;
    if (v == NULL)
        return CG_OK;
    join_key(path, sizeof(path), parent, key);
    if (!json_is_array(v))
        return fail(ld, path, "must be a list of integers");
    if ((vals = calloc(json_array_size(v) + 1, sizeof(*vals))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    json_array_foreach(v, i, e)
    {
        long long x;
        if (!json_is_integer(e)) {
            rc = fail(ld, path, "must be a list of integers");
            goto out;
        }
        x = (long long)json_integer_value(e);
        if (x < lo || x > hi) {
            join_index(epath, sizeof(epath), path, i);
            rc = fail(ld, epath, "must be between %lld and %lld", lo, hi);
            goto out;
        }
        vals[i] = (int)x;
    }
    *out = vals;
    *n = json_array_size(v);
    vals = NULL;
    rc = CG_OK;
out:
    free(vals);
    return rc;
}

/* ---------------------------------------------------------------- files */

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Open file for PEM reading; key files must not be accessible by group or others. */
static int open_pem(struct loader *ld, const char *path, const char *file, int is_key, BIO **out)
{
    int rc = CG_EINTERNAL;
    FILE *fp = fopen(file, "r");
    struct stat st;

    *out = NULL;
    if (fp == NULL) {
        rc = fail(ld, path, "cannot read %s: %s", file, strerror(errno));
        goto out;
    }
    if (is_key && fstat(fileno(fp), &st) == 0 && (st.st_mode & 077) != 0) {
        rc = fail(ld, path, "key file is readable by group or others (chmod 600)");
        goto out;
    }
    if ((*out = BIO_new_fp(fp, BIO_CLOSE)) == NULL) {
        ERR_clear_error();
        rc = fail_nomem(ld);
        goto out;
    }
    fp = NULL; /* owned by the BIO */
    rc = CG_OK;
out:
    if (fp != NULL)
        fclose(fp);
    return rc;
}

static int load_cert(struct loader *ld, const char *path, const char *file, X509 **out)
{
    int rc = CG_EINTERNAL;
    BIO *bio = NULL;
    char why[256];

    *out = NULL;
    if ((rc = open_pem(ld, path, file, 0, &bio)) != CG_OK)
        goto out;
    if ((*out = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) == NULL) {
        rc = fail(ld, path, "no PEM certificate in %s: %s", file,
                  take_ossl_reason(why, sizeof(why)));
        goto out;
    }
    rc = CG_OK;
out:
    BIO_free(bio);
    return rc;
}

static int load_key(struct loader *ld, const char *path, const char *file, EVP_PKEY **out)
{
    int rc = CG_EINTERNAL;
    BIO *bio = NULL;
    char why[256];

    *out = NULL;
    if ((rc = open_pem(ld, path, file, 1, &bio)) != CG_OK)
        goto out;
    if ((*out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
        rc = fail(ld, path, "no unencrypted PEM private key in %s: %s", file,
                  take_ossl_reason(why, sizeof(why)));
        goto out;
    }
    rc = CG_OK;
out:
    BIO_free(bio);
    return rc;
}

/* Every certificate of a PEM file, appended to chain (at least one). */
static int load_chain(struct loader *ld, const char *path, const char *file, STACK_OF(X509) * chain)
{
    int rc = CG_EINTERNAL;
    BIO *bio = NULL;
    X509 *x = NULL;
    char why[256];
    int count = 0;

    if ((rc = open_pem(ld, path, file, 0, &bio)) != CG_OK)
        goto out;
    for (;;) {
        unsigned long e;
        if ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) == NULL) {
            e = ERR_peek_last_error();
            if (count > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
                ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            rc = fail(ld, path, "no PEM certificate in %s: %s", file,
                      take_ossl_reason(why, sizeof(why)));
            goto out;
        }
        if (!sk_X509_push(chain, x)) {
            rc = fail_nomem(ld);
            goto out;
        }
        x = NULL;
        count++;
    }
    rc = CG_OK;
out:
    X509_free(x);
    BIO_free(bio);
    return rc;
}

/* ---------------------------------------------------------------- listen, limits, store */

static int valid_hostport(const char *s)
{
    const char *colon, *p;
    long port = 0;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb == s + 1 || rb[1] != ':')
            return 0;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || colon == s || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return 0;
    }
    p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return 0;
    for (; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return 0;
        port = port * 10 + (*p - '0');
    }
    return port <= 65535;
}

static int get_listen(struct loader *ld, json_t *obj, const char *key, const char *def, char ***out,
                      size_t *n)
{
    int rc = CG_EINTERNAL, present;
    char path[PATHLEN], epath[PATHLEN];

    join_key(path, sizeof(path), "listen", key);
    if (obj != NULL && (rc = get_strlist(ld, obj, "listen", key, 0, out, n, &present)) != CG_OK)
        goto out;
    if (obj == NULL || !present) {
        if ((*out = calloc(2, sizeof(**out))) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        *n = 0;
        if (def != NULL) {
            if ((rc = dup_into(ld, def, &(*out)[0])) != CG_OK)
                goto out;
            *n = 1;
        }
    }
    for (size_t i = 0; i < *n; i++) {
        if (!valid_hostport((*out)[i])) {
            join_index(epath, sizeof(epath), path, i);
            rc = fail(ld, epath, "must be host:port (port 0..65535)");
            goto out;
        }
    }
    rc = CG_OK;
out:
    return rc;
}

static int parse_listen(struct loader *ld, json_t *root)
{
    static const char *const keys[] = {"http", "tcp", "admin", NULL};
    struct cg_config *cfg = ld->cfg;
    json_t *o;
    int rc;

    if ((rc = get_obj(ld, root, "", "listen", &o)) != CG_OK ||
        (o != NULL && (rc = check_keys(ld, o, "listen", keys)) != CG_OK) ||
        (rc = get_listen(ld, o, "http", "127.0.0.1:8080", &cfg->listen_http,
                         &cfg->n_listen_http)) != CG_OK ||
        (rc = get_listen(ld, o, "tcp", NULL, &cfg->listen_tcp, &cfg->n_listen_tcp)) != CG_OK)
        goto out;
    rc = get_listen(ld, o, "admin", NULL, &cfg->listen_admin, &cfg->n_listen_admin);
out:
    return rc;
}

static int parse_limits(struct loader *ld, json_t *root)
{
    static const char *const keys[] = {
        "max_body_bytes",  "max_header_bytes",   "idle_timeout_s", "read_timeout_s",
        "max_connections", "max_pbm_iterations", "max_der_depth",  "max_extra_certs",
        "max_cert_bytes",  "transaction_ttl_s",  "nonce_window_s", NULL};
    struct cg_config *cfg = ld->cfg;
    json_t *o;
    long long v;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "limits", &o)) != CG_OK)
        goto out;
    if (o == NULL)
        o = json_object(); /* absent: all defaults */
    else
        json_incref(o);
    if (o == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if ((rc = check_keys(ld, o, "limits", keys)) != CG_OK)
        goto out;
    if ((rc = get_int(ld, o, "limits", "max_body_bytes", 256, 64LL << 20, 1048576, &v)) != CG_OK)
        goto out;
    cfg->max_body_bytes = (size_t)v;
    if ((rc = get_int(ld, o, "limits", "max_header_bytes", 256, 1LL << 20, 16384, &v)) != CG_OK)
        goto out;
    cfg->max_header_bytes = (size_t)v;
    if ((rc = get_int(ld, o, "limits", "idle_timeout_s", 1, 86400, 60, &v)) != CG_OK)
        goto out;
    cfg->idle_timeout_s = (int)v;
    if ((rc = get_int(ld, o, "limits", "read_timeout_s", 1, 86400, 30, &v)) != CG_OK)
        goto out;
    cfg->read_timeout_s = (int)v;
    if ((rc = get_int(ld, o, "limits", "max_connections", 1, 1000000, 4096, &v)) != CG_OK)
        goto out;
    cfg->max_connections = (int)v;
    if ((rc = get_int(ld, o, "limits", "max_pbm_iterations", 1, 10000000, 100000, &v)) != CG_OK)
        goto out;
    cfg->max_pbm_iterations = (long)v;
    if ((rc = get_int(ld, o, "limits", "max_der_depth", 16, 256, 32, &v)) != CG_OK)
        goto out;
    cfg->max_der_depth = (int)v;
    if ((rc = get_int(ld, o, "limits", "max_extra_certs", 0, 100, 10, &v)) != CG_OK)
        goto out;
    cfg->max_extra_certs = (int)v;
    if ((rc = get_int(ld, o, "limits", "max_cert_bytes", 512, 1LL << 20, 16384, &v)) != CG_OK)
        goto out;
    cfg->max_cert_bytes = (size_t)v;
    if ((rc = get_int(ld, o, "limits", "transaction_ttl_s", 60, 365LL * 86400, 7LL * 86400, &v)) !=
        CG_OK)
        goto out;
    cfg->transaction_ttl_s = (int64_t)v;
    if ((rc = get_int(ld, o, "limits", "nonce_window_s", 1, 86400, 600, &v)) != CG_OK)
        goto out;
    cfg->nonce_window_s = (int)v;
    rc = CG_OK;
out:
    json_decref(o);
    return rc;
}

static int parse_store(struct loader *ld, json_t *root)
{
    static const char *const keys[] = {"path", "map_size_mb", "sync", "commit_delay_us", NULL};
    struct cg_config *cfg = ld->cfg;
    json_t *o, *empty = NULL;
    char *p = NULL;
    long long v;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "store", &o)) != CG_OK)
        goto out;
    if (o == NULL && (o = empty = json_object()) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if ((rc = check_keys(ld, o, "store", keys)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, "store", "path", "store", STR_NONEMPTY, &p)) != CG_OK)
        goto out;
    if ((rc = resolve_path(ld, p, &cfg->store_path)) != CG_OK)
        goto out;
    if ((rc = get_int(ld, o, "store", "map_size_mb", 1, 1048576, 1024, &v)) != CG_OK)
        goto out;
    cfg->store_map_size_mb = (size_t)v;
    if ((rc = get_bool(ld, o, "store", "sync", 1, &cfg->store_sync)) != CG_OK)
        goto out;
    if ((rc = get_int(ld, o, "store", "commit_delay_us", 0, 1000000, 2000, &v)) != CG_OK)
        goto out;
    cfg->store_commit_delay_us = (long)v;
out:
    free(p);
    json_decref(empty);
    return rc;
}

/* ---------------------------------------------------------------- CAs */

static int get_file(struct loader *ld, json_t *o, const char *parent, const char *key, int required,
                    char **out)
{
    char path[PATHLEN];
    char *raw = NULL;
    int rc;

    *out = NULL;
    if ((rc = get_str(ld, o, parent, key, NULL, STR_NONEMPTY, &raw)) != CG_OK)
        return rc;
    if (raw == NULL) {
        join_key(path, sizeof(path), parent, key);
        return required ? fail(ld, path, "is required") : CG_OK;
    }
    rc = resolve_path(ld, raw, out);
    free(raw);
    return rc;
}

static int parse_ca(struct loader *ld, const char *path, const char *name, json_t *o,
                    struct cg_ca *ca)
{
    static const char *const keys[] = {"cert_file", "key_file", "chain_file", "cmp_ra_secret",
                                       NULL};
    char sub[PATHLEN];
    char *chain_file = NULL;
    int rc = CG_EINTERNAL;

    if ((rc = dup_into(ld, name, &ca->name)) != CG_OK)
        goto out;
    if ((ca->chain = sk_X509_new_null()) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if (!json_is_object(o)) {
        rc = fail(ld, path, "must be an object");
        goto out;
    }
    if ((rc = check_keys(ld, o, path, keys)) != CG_OK)
        goto out;
    if ((rc = get_file(ld, o, path, "cert_file", 1, &ca->cert_file)) != CG_OK)
        goto out;
    if ((rc = get_file(ld, o, path, "key_file", 1, &ca->key_file)) != CG_OK)
        goto out;
    if ((rc = get_file(ld, o, path, "chain_file", 0, &chain_file)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "cmp_ra_secret", NULL, STR_EMPTY_NULL, &ca->cmp_ra_secret)) !=
        CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "cert_file");
    if ((rc = load_cert(ld, sub, ca->cert_file, &ca->cert)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "key_file");
    if ((rc = load_key(ld, sub, ca->key_file, &ca->key)) != CG_OK)
        goto out;
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        ERR_clear_error();
        rc = fail(ld, sub, "key does not match certificate");
        goto out;
    }
    join_key(sub, sizeof(sub), path, "chain_file");
    if (chain_file != NULL && (rc = load_chain(ld, sub, chain_file, ca->chain)) != CG_OK)
        goto out;
    rc = CG_OK;
out:
    free(chain_file);
    return rc;
}

static int parse_cas(struct loader *ld, json_t *root)
{
    struct cg_config *cfg = ld->cfg;
    char path[PATHLEN];
    const char *name;
    json_t *o, *v;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "cas", &o)) != CG_OK)
        goto out;
    if (o == NULL || json_object_size(o) == 0) {
        rc = fail(ld, o == NULL ? "" : "cas", "at least one CA is required in \"cas\"");
        goto out;
    }
    if ((cfg->cas = calloc(json_object_size(o), sizeof(*cfg->cas))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    json_object_foreach(o, name, v)
    {
        join_key(path, sizeof(path), "cas", name);
        if (name[0] == '\0') {
            rc = fail(ld, path, "name must not be empty");
            goto out;
        }
        if ((rc = parse_ca(ld, path, name, v, &cfg->cas[cfg->n_cas++])) != CG_OK)
            goto out;
    }
    rc = CG_OK;
out:
    return rc;
}

static int parse_external_cas(struct loader *ld, json_t *root)
{
    static const char *const keys[] = {"cert_file", NULL};
    struct cg_config *cfg = ld->cfg;
    char path[PATHLEN], sub[PATHLEN];
    const char *name;
    json_t *o, *v;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "external_cas", &o)) != CG_OK || o == NULL)
        goto out;
    if ((cfg->external_cas = calloc(json_object_size(o) + 1, sizeof(*cfg->external_cas))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    json_object_foreach(o, name, v)
    {
        struct cg_external_ca *x = &cfg->external_cas[cfg->n_external_cas++];
        join_key(path, sizeof(path), "external_cas", name);
        if ((rc = dup_into(ld, name, &x->name)) != CG_OK)
            goto out;
        if (name[0] == '\0') {
            rc = fail(ld, path, "name must not be empty");
            goto out;
        }
        if (cg_config_ca(cfg, name) != NULL) {
            rc = fail(ld, path, "name already used in \"cas\"");
            goto out;
        }
        if (!json_is_object(v)) {
            rc = fail(ld, path, "must be an object");
            goto out;
        }
        if ((rc = check_keys(ld, v, path, keys)) != CG_OK)
            goto out;
        if ((rc = get_file(ld, v, path, "cert_file", 1, &x->cert_file)) != CG_OK)
            goto out;
        join_key(sub, sizeof(sub), path, "cert_file");
        if ((rc = load_cert(ld, sub, x->cert_file, &x->cert)) != CG_OK)
            goto out;
    }
    rc = CG_OK;
out:
    return rc;
}

/* ---------------------------------------------------------------- certificate profiles */

static const struct name_value key_usage_names[] = {{"digitalSignature", CG_KU_DIGITAL_SIGNATURE},
                                                    {"nonRepudiation", CG_KU_NON_REPUDIATION},
                                                    {"contentCommitment", CG_KU_NON_REPUDIATION},
                                                    {"keyEncipherment", CG_KU_KEY_ENCIPHERMENT},
                                                    {"dataEncipherment", CG_KU_DATA_ENCIPHERMENT},
                                                    {"keyAgreement", CG_KU_KEY_AGREEMENT},
                                                    {"keyCertSign", CG_KU_KEY_CERT_SIGN},
                                                    {"cRLSign", CG_KU_CRL_SIGN},
                                                    {"encipherOnly", CG_KU_ENCIPHER_ONLY},
                                                    {"decipherOnly", CG_KU_DECIPHER_ONLY},
                                                    {NULL, 0}};

static const struct name_value eku_names[] = {{"serverAuth", NID_server_auth},
                                              {"clientAuth", NID_client_auth},
                                              {"codeSigning", NID_code_sign},
                                              {"emailProtection", NID_email_protect},
                                              {"timeStamping", NID_time_stamp},
                                              {"OCSPSigning", NID_OCSP_sign},
                                              {NULL, 0}};

static const struct name_value key_alg_names[] = {{"RSA", CG_KEYALG_RSA},
                                                  {"EC", CG_KEYALG_EC},
                                                  {"Ed25519", CG_KEYALG_ED25519},
                                                  {"Ed448", CG_KEYALG_ED448},
                                                  {NULL, 0}};

static const struct name_value curve_names[] = {{"P-256", NID_X9_62_prime256v1},
                                                {"P-384", NID_secp384r1},
                                                {"P-521", NID_secp521r1},
                                                {"prime256v1", NID_X9_62_prime256v1},
                                                {"secp256r1", NID_X9_62_prime256v1},
                                                {"secp384r1", NID_secp384r1},
                                                {"secp521r1", NID_secp521r1},
                                                {NULL, 0}};

/*
 * "<n><unit>..." with units y (365 d), mo (30 d), d, h, m, s → seconds. 0: ok, -1: syntax,
 * -2: zero, -3: too long (over 1000 years).
 */
static int parse_validity(const char *s, int64_t *out)
{
    const int64_t max = 1000LL * 365 * 86400;
    int64_t total = 0;
    const char *p = s;

    *out = 0;
    if (*p == '\0')
        return -1;
    while (*p != '\0') {
        int64_t v = 0, unit;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p++ - '0');
            if (v > max)
                return -3;
        }
        if (strncmp(p, "mo", 2) == 0) {
            unit = 30LL * 86400;
            p += 2;
        } else {
            switch (*p) {
            case 'y':
                unit = 365LL * 86400;
                break;
            case 'd':
                unit = 86400;
                break;
            case 'h':
                unit = 3600;
                break;
            case 'm':
                unit = 60;
                break;
            case 's':
                unit = 1;
                break;
            default:
                return -1;
            }
            p++;
        }
        if (v > (max - total) / unit)
            return -3;
        total += v * unit;
    }
    if (total <= 0)
        return -2;
    *out = total;
    return 0;
}

/* Name from eku_names or a dotted OID (registered with OBJ_create when unknown) → NID. */
static int eku_nid(const char *s)
{
    ASN1_OBJECT *obj;
    int nid = NID_undef;
    const char *p;

    if (lookup_value(eku_names, s, &nid))
        return nid;
    for (p = s; *p != '\0' && (isdigit((unsigned char)*p) || *p == '.'); p++)
        ;
    if (*p != '\0' || strchr(s, '.') == NULL)
        return NID_undef;
    if ((obj = OBJ_txt2obj(s, 1)) == NULL) {
        ERR_clear_error();
        return NID_undef;
    }
    nid = OBJ_obj2nid(obj);
    ASN1_OBJECT_free(obj);
    if (nid == NID_undef)
        nid = OBJ_create(s, s, s);
    ERR_clear_error();
    return nid;
}

/* Map each name of a string list through t, or-ing (bits) or storing (nids) values. */
static int map_names(struct loader *ld, const char *path, char **v, size_t n,
                     const struct name_value *t, unsigned *bits, int *vals)
{
    char epath[PATHLEN];

    for (size_t i = 0; i < n; i++) {
        int x;
        if (!lookup_value(t, v[i], &x)) {
            join_index(epath, sizeof(epath), path, i);
            return fail_enum(ld, epath, t, NULL);
        }
        if (bits != NULL)
            *bits |= (unsigned)x;
        if (vals != NULL)
            vals[i] = x;
    }
    return CG_OK;
}

static int parse_cert_profile(struct loader *ld, const char *path, const char *name, json_t *o,
                              struct cg_cert_profile *p)
{
    static const char *const keys[] = {"validity",
                                       "key_usage",
                                       "key_usage_critical",
                                       "extended_key_usage",
                                       "extended_key_usage_critical",
                                       "key_algorithms",
                                       "rsa_key_sizes",
                                       "ec_curves",
                                       "allow_validity_override",
                                       "allow_key_usage_override",
                                       "allow_extension_override",
                                       "available_cas",
                                       NULL};
    static const int def_rsa[] = {2048, 3072, 4096};
    static const int def_curves[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
    char sub[PATHLEN], epath[PATHLEN];
    char *validity = NULL, **v = NULL;
    size_t n = 0;
    int rc = CG_EINTERNAL, present, vr;

    if ((rc = dup_into(ld, name, &p->name)) != CG_OK)
        goto out;
    if (!json_is_object(o)) {
        rc = fail(ld, path, "must be an object");
        goto out;
    }
    if ((rc = check_keys(ld, o, path, keys)) != CG_OK)
        goto out;

    if ((rc = get_str(ld, o, path, "validity", "730d", STR_KEEP, &validity)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "validity");
    if ((vr = parse_validity(validity, &p->validity_s)) != 0) {
        if (vr == -2)
            rc = fail(ld, sub, "must be greater than 0");
        else if (vr == -3)
            rc = fail(ld, sub, "\"%s\" is too long (at most 1000y)", validity);
        else
            rc = fail(ld, sub, "invalid duration \"%s\" (use <n>y|mo|d|h|m|s, e.g. 730d, 1y6mo)",
                      validity);
        goto out;
    }

    if ((rc = get_strlist(ld, o, path, "key_usage", 0, &v, &n, &present)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "key_usage");
    if (!present)
        p->key_usage = CG_KU_DIGITAL_SIGNATURE | CG_KU_KEY_ENCIPHERMENT;
    else if ((rc = map_names(ld, sub, v, n, key_usage_names, &p->key_usage, NULL)) != CG_OK)
        goto out;
    free_strv(v, n);
    v = NULL;
    if ((rc = get_bool(ld, o, path, "key_usage_critical", 1, &p->key_usage_critical)) != CG_OK)
        goto out;

    if ((rc = get_strlist(ld, o, path, "extended_key_usage", 0, &v, &n, &present)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "extended_key_usage");
    if ((p->eku_nids = calloc(n + 1, sizeof(int))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((p->eku_nids[i] = eku_nid(v[i])) == NID_undef) {
            join_index(epath, sizeof(epath), sub, i);
            rc = fail_enum(ld, epath, eku_names, " or a dotted OID");
            goto out;
        }
    }
    p->n_eku = n;
    free_strv(v, n);
    v = NULL;
    if ((rc = get_bool(ld, o, path, "extended_key_usage_critical", 0, &p->eku_critical)) != CG_OK)
        goto out;

    if ((rc = get_strlist(ld, o, path, "key_algorithms", 0, &v, &n, &present)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "key_algorithms");
    if (!present)
        p->key_algorithms = CG_KEYALG_RSA | CG_KEYALG_EC | CG_KEYALG_ED25519;
    else if ((rc = map_names(ld, sub, v, n, key_alg_names, &p->key_algorithms, NULL)) != CG_OK)
        goto out;
    if (present && n == 0) {
        rc = fail(ld, sub, "must name at least one algorithm");
        goto out;
    }
    free_strv(v, n);
    v = NULL;

    if ((rc = get_intlist(ld, o, path, "rsa_key_sizes", 1024, 16384, &p->rsa_key_sizes,
                          &p->n_rsa_key_sizes, &present)) != CG_OK)
        goto out;
    if (!present) {
        if ((p->rsa_key_sizes = malloc(sizeof(def_rsa))) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        memcpy(p->rsa_key_sizes, def_rsa, sizeof(def_rsa));
        p->n_rsa_key_sizes = 3;
    }

    if ((rc = get_strlist(ld, o, path, "ec_curves", 0, &v, &n, &present)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "ec_curves");
    if ((p->ec_curve_nids = calloc(present ? n + 1 : 3, sizeof(int))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if (!present) {
        memcpy(p->ec_curve_nids, def_curves, sizeof(def_curves));
        p->n_ec_curves = 3;
    } else if ((rc = map_names(ld, sub, v, n, curve_names, NULL, p->ec_curve_nids)) != CG_OK) {
        goto out;
    } else {
        p->n_ec_curves = n;
    }
    free_strv(v, n);
    v = NULL;

    if ((rc = get_bool(ld, o, path, "allow_validity_override", 0, &p->allow_validity_override)) !=
        CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "allow_key_usage_override", 0, &p->allow_key_usage_override)) !=
        CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "allow_extension_override", 0, &p->allow_extension_override)) !=
        CG_OK)
        goto out;
    rc = get_strlist(ld, o, path, "available_cas", 1, &p->available_cas, &p->n_available_cas,
                     &present);
out:
    free_strv(v, n);
    free(validity);
    return rc;
}

static int parse_cert_profiles(struct loader *ld, json_t *root)
{
    static const char builtin[] = "{\"validity\": \"730d\","
                                  " \"key_usage\": [\"digitalSignature\", \"keyEncipherment\"],"
                                  " \"extended_key_usage\": [\"clientAuth\", \"emailProtection\"]}";
    struct cg_config *cfg = ld->cfg;
    char path[PATHLEN];
    const char *name;
    json_t *o, *v, *def = NULL;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "certificate_profiles", &o)) != CG_OK)
        goto out;
    cfg->cert_profiles =
        calloc((o != NULL ? json_object_size(o) : 0) + 1, sizeof(*cfg->cert_profiles));
    if (cfg->cert_profiles == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if (o != NULL) {
        json_object_foreach(o, name, v)
        {
            join_key(path, sizeof(path), "certificate_profiles", name);
            if (name[0] == '\0') {
                rc = fail(ld, path, "name must not be empty");
                goto out;
            }
            rc = parse_cert_profile(ld, path, name, v, &cfg->cert_profiles[cfg->n_cert_profiles++]);
            if (rc != CG_OK)
                goto out;
        }
    }
    if (cg_config_cert_profile(cfg, "ENDUSER") == NULL) {
        if ((def = json_loads(builtin, 0, NULL)) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        rc = parse_cert_profile(ld, "certificate_profiles.ENDUSER", "ENDUSER", def,
                                &cfg->cert_profiles[cfg->n_cert_profiles++]);
        if (rc != CG_OK)
            goto out;
    }
    rc = CG_OK;
out:
    json_decref(def);
    return rc;
}

/* ---------------------------------------------------------------- end entity profiles */

static int parse_ee_profile(struct loader *ld, const char *path, const char *name, json_t *o,
                            struct cg_ee_profile *p)
{
    static const char *const keys[] = {"required_dn_attributes",
                                       "allowed_dn_attributes",
                                       "available_cas",
                                       "available_certificate_profiles",
                                       "default_ca",
                                       "default_certificate_profile",
                                       NULL};
    int rc = CG_EINTERNAL, present;

    if ((rc = dup_into(ld, name, &p->name)) != CG_OK)
        goto out;
    if (!json_is_object(o)) {
        rc = fail(ld, path, "must be an object");
        goto out;
    }
    if ((rc = check_keys(ld, o, path, keys)) != CG_OK)
        goto out;
    if ((rc = get_strlist(ld, o, path, "required_dn_attributes", 0, &p->required_dn,
                          &p->n_required_dn, &present)) != CG_OK)
        goto out;
    if (!present) {
        if ((p->required_dn = calloc(2, sizeof(char *))) == NULL ||
            (p->required_dn[0] = strdup("CN")) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        p->n_required_dn = 1;
    }
    if ((rc = get_strlist(ld, o, path, "allowed_dn_attributes", 1, &p->allowed_dn, &p->n_allowed_dn,
                          &present)) != CG_OK)
        goto out;
    if ((rc = get_strlist(ld, o, path, "available_cas", 1, &p->available_cas, &p->n_available_cas,
                          &present)) != CG_OK)
        goto out;
    if ((rc = get_strlist(ld, o, path, "available_certificate_profiles", 1,
                          &p->available_cert_profiles, &p->n_available_cert_profiles, &present)) !=
        CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "default_ca", NULL, STR_EMPTY_NULL, &p->default_ca)) != CG_OK)
        goto out;
    rc = get_str(ld, o, path, "default_certificate_profile", NULL, STR_EMPTY_NULL,
                 &p->default_cert_profile);
out:
    return rc;
}

static int parse_ee_profiles(struct loader *ld, json_t *root)
{
    struct cg_config *cfg = ld->cfg;
    char path[PATHLEN];
    const char *name;
    json_t *o, *v, *def = NULL;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "end_entity_profiles", &o)) != CG_OK)
        goto out;
    cfg->ee_profiles = calloc((o != NULL ? json_object_size(o) : 0) + 1, sizeof(*cfg->ee_profiles));
    if (cfg->ee_profiles == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if (o != NULL) {
        json_object_foreach(o, name, v)
        {
            join_key(path, sizeof(path), "end_entity_profiles", name);
            if (name[0] == '\0') {
                rc = fail(ld, path, "name must not be empty");
                goto out;
            }
            rc = parse_ee_profile(ld, path, name, v, &cfg->ee_profiles[cfg->n_ee_profiles++]);
            if (rc != CG_OK)
                goto out;
        }
    }
    if (cg_config_ee_profile(cfg, "EMPTY") == NULL) {
        def = json_pack("{s:[s], s:s, s:s}", "required_dn_attributes", "CN", "default_ca",
                        cfg->cas[0].name, "default_certificate_profile", "ENDUSER");
        if (def == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        rc = parse_ee_profile(ld, "end_entity_profiles.EMPTY", "EMPTY", def,
                              &cfg->ee_profiles[cfg->n_ee_profiles++]);
        if (rc != CG_OK)
            goto out;
    }
    rc = CG_OK;
out:
    json_decref(def);
    return rc;
}

/* ---------------------------------------------------------------- aliases */

static const struct name_value mode_names[] = {
    {"client", CG_MODE_CLIENT}, {"ra", CG_MODE_RA}, {NULL, 0}};
static const struct name_value auth_names[] = {{"RegTokenPwd", CG_AUTH_REGTOKENPWD},
                                               {"DnPartPwd", CG_AUTH_DNPARTPWD},
                                               {"HMAC", CG_AUTH_HMAC},
                                               {"EndEntityCertificate", CG_AUTH_EEC},
                                               {NULL, 0}};
static const struct name_value protection_names[] = {
    {"signature", CG_PROT_SIGNATURE}, {"pbe", CG_PROT_PBE}, {NULL, 0}};
static const struct name_value scheme_names[] = {{"DN", CG_RANAME_DN},
                                                 {"RANDOM", CG_RANAME_RANDOM},
                                                 {"FIXED", CG_RANAME_FIXED},
                                                 {"USERNAME", CG_RANAME_USERNAME},
                                                 {NULL, 0}};

static int valid_alias_name(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 64)
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

static int parse_auth(struct loader *ld, const char *path, json_t *o, struct cg_alias *a)
{
    char sub[PATHLEN];
    char **mods = NULL, **params = NULL;
    size_t n_mods = 0, n_params = 0;
    int rc = CG_EINTERNAL, present, pparams;

    if ((rc = get_semilist(ld, o, path, "authentication_modules", &mods, &n_mods, &present)) !=
        CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "authentication_modules");
    if (!present) {
        if ((mods = calloc(2, sizeof(char *))) == NULL || (mods[0] = strdup("HMAC")) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        n_mods = 1;
    }
    if (n_mods == 0) {
        rc = fail(ld, sub, "must name at least one module");
        goto out;
    }
    if ((a->auth_modules = calloc(n_mods, sizeof(int))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if ((rc = map_names(ld, sub, mods, n_mods, auth_names, NULL, a->auth_modules)) != CG_OK)
        goto out;
    if ((rc = get_semilist(ld, o, path, "authentication_parameters", &params, &n_params,
                           &pparams)) != CG_OK)
        goto out;
    join_key(sub, sizeof(sub), path, "authentication_parameters");
    if (pparams && n_params != n_mods) {
        rc = fail(ld, sub,
                  "must have one entry per authentication module (%zu modules, %zu "
                  "parameters)",
                  n_mods, n_params);
        goto out;
    }
    if ((a->auth_params = calloc(n_mods, sizeof(char *))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    a->n_auth = n_mods;
    for (size_t i = 0; pparams && i < n_mods; i++) {
        if (params[i][0] == '\0' || strcmp(params[i], "-") == 0)
            continue;
        a->auth_params[i] = params[i];
        params[i] = NULL;
    }
    rc = CG_OK;
out:
    free_strv(mods, n_mods);
    free_strv(params, n_params);
    return rc;
}

static int parse_alias(struct loader *ld, const char *path, const char *name, json_t *o,
                       struct cg_alias *a)
{
    static const char *const keys[] = {"mode",
                                       "authentication_modules",
                                       "authentication_parameters",
                                       "extract_username_component",
                                       "response_protection",
                                       "allow_ra_verify_popo",
                                       "ra_name_generation_scheme",
                                       "ra_name_generation_parameters",
                                       "ra_name_generation_prefix",
                                       "ra_end_entity_profile",
                                       "ra_certificate_profile",
                                       "ra_ca_name",
                                       "vendor_certificate_mode",
                                       "vendor_cas",
                                       "response_capubs",
                                       "response_extracerts",
                                       "certificate_confirmation_default_ca",
                                       "allow_automatic_key_update",
                                       "allow_update_with_same_key",
                                       "allow_server_generated_keys",
                                       "nested_message_trusted_certs_path",
                                       "revoke_unconfirmed",
                                       "confirm_timeout_s",
                                       "proxy",
                                       NULL};
    char *nested = NULL;
    long long v;
    int rc = CG_EINTERNAL, present;

    if ((rc = dup_into(ld, name, &a->name)) != CG_OK)
        goto out;
    if (!valid_alias_name(name)) {
        rc = fail(ld, path, "invalid alias name (1..64 characters of A-Z a-z 0-9 _ . -)");
        goto out;
    }
    if (!json_is_object(o)) {
        rc = fail(ld, path, "must be an object");
        goto out;
    }
    if ((rc = check_keys(ld, o, path, keys)) != CG_OK)
        goto out;
    if ((rc = get_enum(ld, o, path, "mode", mode_names, CG_MODE_CLIENT, &a->mode)) != CG_OK)
        goto out;
    if ((rc = parse_auth(ld, path, o, a)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "extract_username_component", "DN", STR_NONEMPTY,
                      &a->extract_username_component)) != CG_OK)
        goto out;
    if ((rc = get_enum(ld, o, path, "response_protection", protection_names, CG_PROT_SIGNATURE,
                       &a->response_protection)) != CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "allow_ra_verify_popo", 0, &a->allow_ra_verify_popo)) != CG_OK)
        goto out;
    if ((rc = get_enum(ld, o, path, "ra_name_generation_scheme", scheme_names, CG_RANAME_DN,
                       &a->ra_name_scheme)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "ra_name_generation_parameters", "CN", STR_KEEP,
                      &a->ra_name_params)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "ra_name_generation_prefix", NULL, STR_EMPTY_NULL,
                      &a->ra_name_prefix)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "ra_end_entity_profile", "EMPTY", STR_NONEMPTY,
                      &a->ra_ee_profile)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "ra_certificate_profile", "ENDUSER", STR_NONEMPTY,
                      &a->ra_cert_profile)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "ra_ca_name", ld->cfg->cas[0].name, STR_NONEMPTY,
                      &a->ra_ca_name)) != CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "vendor_certificate_mode", 0, &a->vendor_certificate_mode)) !=
        CG_OK)
        goto out;
    if ((rc = get_strlist(ld, o, path, "vendor_cas", 0, &a->vendor_cas, &a->n_vendor_cas,
                          &present)) != CG_OK)
        goto out;
    if ((rc = get_strlist(ld, o, path, "response_capubs", 0, &a->response_capubs,
                          &a->n_response_capubs, &present)) != CG_OK)
        goto out;
    if ((rc = get_strlist(ld, o, path, "response_extracerts", 0, &a->response_extracerts,
                          &a->n_response_extracerts, &present)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "certificate_confirmation_default_ca", NULL, STR_EMPTY_NULL,
                      &a->certificate_confirmation_default_ca)) != CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "allow_automatic_key_update", 0,
                       &a->allow_automatic_key_update)) != CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "allow_update_with_same_key", 0,
                       &a->allow_update_with_same_key)) != CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "allow_server_generated_keys", 0,
                       &a->allow_server_generated_keys)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "nested_message_trusted_certs_path", NULL, STR_EMPTY_NULL,
                      &nested)) != CG_OK)
        goto out;
    if (nested != NULL &&
        (rc = resolve_path(ld, nested, &a->nested_message_trusted_certs_path)) != CG_OK)
        goto out;
    if ((rc = get_bool(ld, o, path, "revoke_unconfirmed", 0, &a->revoke_unconfirmed)) != CG_OK)
        goto out;
    /* proxy mode (CONTRACT.md): its settings are an object; the engine refuses the alias */
    json_t *proxy = NULL;
    if ((rc = get_obj(ld, o, path, "proxy", &proxy)) != CG_OK)
        goto out;
    a->proxy = proxy != NULL;
    if ((rc = get_int(ld, o, path, "confirm_timeout_s", 1, 86400, 300, &v)) != CG_OK)
        goto out;
    a->confirm_timeout_s = (int)v;
    rc = CG_OK;
out:
    free(nested);
    return rc;
}

static int parse_aliases(struct loader *ld, json_t *root)
{
    struct cg_config *cfg = ld->cfg;
    char path[PATHLEN];
    const char *name;
    json_t *o, *v;
    int rc = CG_EINTERNAL;

    if ((rc = get_obj(ld, root, "", "aliases", &o)) != CG_OK || o == NULL)
        goto out;
    if ((cfg->aliases = calloc(json_object_size(o) + 1, sizeof(*cfg->aliases))) == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    json_object_foreach(o, name, v)
    {
        join_key(path, sizeof(path), "aliases", name);
        if ((rc = parse_alias(ld, path, name, v, &cfg->aliases[cfg->n_aliases++])) != CG_OK)
            goto out;
    }
    rc = CG_OK;
out:
    return rc;
}

/* ---------------------------------------------------------------- http, tcp, log */

static int parse_frontends(struct loader *ld, json_t *root)
{
    static const char *const http_keys[] = {"root_alias", NULL};
    static const char *const tcp_keys[] = {"alias", NULL};
    static const char *const log_keys[] = {"level", "format", NULL};
    static const struct name_value formats[] = {{"text", 0}, {"json", 1}, {NULL, 0}};
    struct cg_config *cfg = ld->cfg;
    json_t *o, *empty = json_object();
    char *level = NULL;
    int rc = CG_EINTERNAL;

    if (empty == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    if ((rc = get_obj(ld, root, "", "http", &o)) != CG_OK)
        goto out;
    if (o != NULL && (rc = check_keys(ld, o, "http", http_keys)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o != NULL ? o : empty, "http", "root_alias", NULL, STR_EMPTY_NULL,
                      &cfg->http_root_alias)) != CG_OK)
        goto out;

    if ((rc = get_obj(ld, root, "", "tcp", &o)) != CG_OK)
        goto out;
    if (o != NULL && (rc = check_keys(ld, o, "tcp", tcp_keys)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o != NULL ? o : empty, "tcp", "alias", "tcp", STR_NONEMPTY,
                      &cfg->tcp_alias)) != CG_OK)
        goto out;

    if ((rc = get_obj(ld, root, "", "log", &o)) != CG_OK)
        goto out;
    if (o == NULL)
        o = empty;
    if ((rc = check_keys(ld, o, "log", log_keys)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, "log", "level", "info", STR_KEEP, &level)) != CG_OK)
        goto out;
    if ((cfg->log_level = cg_log_level_from_name(level)) < 0) {
        rc = fail(ld, "log.level", "must be one of error, warn, info, debug");
        goto out;
    }
    rc = get_enum(ld, o, "log", "format", formats, 0, &cfg->log_json);
out:
    free(level);
    json_decref(empty);
    return rc;
}

/* ---------------------------------------------------------------- administrators */

static int parse_fingerprint(const char *s, uint8_t out[32])
{
    size_t n = 0;
    int hi = -1;

    for (; *s != '\0'; s++) {
        int d;
        if (*s == ':')
            continue;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            return 0;
        if (hi < 0) {
            hi = d;
            continue;
        }
        if (n >= 32)
            return 0;
        out[n++] = (uint8_t)(hi << 4 | d);
        hi = -1;
    }
    return n == 32 && hi < 0;
}

static int parse_admin(struct loader *ld, const char *path, json_t *o, struct cg_admin *a)
{
    static const char *const keys[] = {
        "subject", "fingerprint_sha256", "ca", "end_entity_profiles", "operations", NULL};
    static const char *const ops[] = {"ir", "cr", "p10cr", "kur", "rr", NULL};
    char sub[PATHLEN], epath[PATHLEN], list[128];
    char *fp = NULL;
    int rc = CG_EINTERNAL, present;

    if (!json_is_object(o)) {
        rc = fail(ld, path, "must be an object");
        goto out;
    }
    if ((rc = check_keys(ld, o, path, keys)) != CG_OK)
        goto out;
    if ((rc = get_str(ld, o, path, "subject", NULL, STR_NONEMPTY, &a->subject)) != CG_OK)
        goto out;
    if (a->subject == NULL) {
        join_key(sub, sizeof(sub), path, "subject");
        rc = fail(ld, sub, "is required");
        goto out;
    }
    if ((rc = get_str(ld, o, path, "fingerprint_sha256", NULL, STR_EMPTY_NULL, &fp)) != CG_OK)
        goto out;
    if (fp != NULL) {
        if (!parse_fingerprint(fp, a->fingerprint)) {
            join_key(sub, sizeof(sub), path, "fingerprint_sha256");
            rc = fail(ld, sub, "must be 64 hex digits (colons allowed)");
            goto out;
        }
        a->has_fingerprint = 1;
    }
    if ((rc = get_str(ld, o, path, "ca", NULL, STR_NONEMPTY, &a->ca)) != CG_OK)
        goto out;
    if (a->ca == NULL) {
        join_key(sub, sizeof(sub), path, "ca");
        rc = fail(ld, sub, "is required");
        goto out;
    }
    if ((rc = get_strlist(ld, o, path, "end_entity_profiles", 0, &a->ee_profiles, &a->n_ee_profiles,
                          &present)) != CG_OK)
        goto out;
    if (!present) {
        if ((a->ee_profiles = calloc(2, sizeof(char *))) == NULL ||
            (a->ee_profiles[0] = strdup("*")) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        a->n_ee_profiles = 1;
    }
    if ((rc = get_strlist(ld, o, path, "operations", 0, &a->operations, &a->n_operations,
                          &present)) != CG_OK)
        goto out;
    if (!present) {
        if ((a->operations = calloc(6, sizeof(char *))) == NULL) {
            rc = fail_nomem(ld);
            goto out;
        }
        for (size_t i = 0; ops[i] != NULL; i++) {
            if ((a->operations[i] = strdup(ops[i])) == NULL) {
                rc = fail_nomem(ld);
                goto out;
            }
            a->n_operations++;
        }
    }
    join_key(sub, sizeof(sub), path, "operations");
    for (size_t i = 0; i < a->n_operations; i++) {
        size_t k = 0;
        while (ops[k] != NULL && strcmp(ops[k], a->operations[i]) != 0)
            k++;
        if (ops[k] == NULL) {
            join_index(epath, sizeof(epath), sub, i);
            join_names(list, sizeof(list), ops);
            rc = fail(ld, epath, "must be one of %s", list);
            goto out;
        }
    }
    rc = CG_OK;
out:
    free(fp);
    return rc;
}

static int parse_admins(struct loader *ld, json_t *root)
{
    struct cg_config *cfg = ld->cfg;
    char path[PATHLEN];
    json_t *arr = json_object_get(root, "administrators"), *v;
    size_t i;
    int rc = CG_EINTERNAL;

    if (arr == NULL) {
        rc = CG_OK;
        goto out;
    }
    if (!json_is_array(arr)) {
        rc = fail(ld, "administrators", "must be a list of objects");
        goto out;
    }
    cfg->administrators = calloc(json_array_size(arr) + 1, sizeof(*cfg->administrators));
    if (cfg->administrators == NULL) {
        rc = fail_nomem(ld);
        goto out;
    }
    json_array_foreach(arr, i, v)
    {
        join_index(path, sizeof(path), "administrators", i);
        rc = parse_admin(ld, path, v, &cfg->administrators[cfg->n_administrators++]);
        if (rc != CG_OK)
            goto out;
    }
    rc = CG_OK;
out:
    return rc;
}

/* ---------------------------------------------------------------- cross-references */

enum ref_kind { REF_CA, REF_EXTERNAL_CA, REF_ANY_CA, REF_CERT_PROFILE, REF_EE_PROFILE, REF_ALIAS };

static int check_ref(struct loader *ld, const char *path, enum ref_kind kind, const char *name)
{
    const struct cg_config *cfg = ld->cfg;

    if (name == NULL)
        return CG_OK;
    switch (kind) {
    case REF_CA:
        if (cg_config_ca(cfg, name) == NULL)
            return fail(ld, path, "unknown CA \"%s\"", name);
        break;
    case REF_EXTERNAL_CA:
        if (cg_config_external_ca(cfg, name) == NULL)
            return fail(ld, path, "unknown external CA \"%s\"", name);
        break;
    case REF_ANY_CA:
        if (cg_config_ca(cfg, name) == NULL && cg_config_external_ca(cfg, name) == NULL)
            return fail(ld, path, "unknown CA \"%s\"", name);
        break;
    case REF_CERT_PROFILE:
        if (cg_config_cert_profile(cfg, name) == NULL)
            return fail(ld, path, "unknown certificate profile \"%s\"", name);
        break;
    case REF_EE_PROFILE:
        if (cg_config_ee_profile(cfg, name) == NULL)
            return fail(ld, path, "unknown end entity profile \"%s\"", name);
        break;
    case REF_ALIAS:
        if (cg_config_alias(cfg, name) == NULL)
            return fail(ld, path, "unknown alias \"%s\"", name);
        break;
    }
    return CG_OK;
}

/* Each name of v (path PARENT.KEY[i]); "*" skipped when star. */
static int check_refs(struct loader *ld, const char *parent, const char *key, enum ref_kind kind,
                      char **v, size_t n, int star)
{
    char path[PATHLEN], epath[PATHLEN];
    int rc;

    join_key(path, sizeof(path), parent, key);
    for (size_t i = 0; i < n; i++) {
        if (star && strcmp(v[i], "*") == 0)
            continue;
        join_index(epath, sizeof(epath), path, i);
        if ((rc = check_ref(ld, epath, kind, v[i])) != CG_OK)
            return rc;
    }
    return CG_OK;
}

static int check_ref_key(struct loader *ld, const char *parent, const char *key, enum ref_kind kind,
                         const char *name, int keyid)
{
    char path[PATHLEN];

    if (name == NULL || (keyid && strcmp(name, CG_KEYID) == 0))
        return CG_OK;
    join_key(path, sizeof(path), parent, key);
    return check_ref(ld, path, kind, name);
}

static int check_alias_refs(struct loader *ld, const struct cg_alias *a)
{
    char path[PATHLEN];
    int rc;

    join_key(path, sizeof(path), "aliases", a->name);
    if ((rc = check_ref_key(ld, path, "ra_end_entity_profile", REF_EE_PROFILE, a->ra_ee_profile,
                            1)) != CG_OK ||
        (rc = check_ref_key(ld, path, "ra_certificate_profile", REF_CERT_PROFILE,
                            a->ra_cert_profile, 1)) != CG_OK ||
        (rc = check_ref_key(ld, path, "ra_ca_name", REF_CA, a->ra_ca_name, 1)) != CG_OK ||
        (rc = check_refs(ld, path, "vendor_cas", REF_EXTERNAL_CA, a->vendor_cas, a->n_vendor_cas,
                         0)) != CG_OK ||
        (rc = check_refs(ld, path, "response_capubs", REF_ANY_CA, a->response_capubs,
                         a->n_response_capubs, 0)) != CG_OK ||
        (rc = check_refs(ld, path, "response_extracerts", REF_ANY_CA, a->response_extracerts,
                         a->n_response_extracerts, 0)) != CG_OK)
        return rc;
    return check_ref_key(ld, path, "certificate_confirmation_default_ca", REF_CA,
                         a->certificate_confirmation_default_ca, 0);
}

static int check_all_refs(struct loader *ld)
{
    const struct cg_config *cfg = ld->cfg;
    char path[PATHLEN];
    int rc;

    for (size_t i = 0; i < cfg->n_cert_profiles; i++) {
        const struct cg_cert_profile *p = &cfg->cert_profiles[i];
        join_key(path, sizeof(path), "certificate_profiles", p->name);
        if ((rc = check_refs(ld, path, "available_cas", REF_CA, p->available_cas,
                             p->n_available_cas, 0)) != CG_OK)
            return rc;
    }
    for (size_t i = 0; i < cfg->n_ee_profiles; i++) {
        const struct cg_ee_profile *p = &cfg->ee_profiles[i];
        join_key(path, sizeof(path), "end_entity_profiles", p->name);
        if ((rc = check_refs(ld, path, "available_cas", REF_CA, p->available_cas,
                             p->n_available_cas, 0)) != CG_OK ||
            (rc = check_refs(ld, path, "available_certificate_profiles", REF_CERT_PROFILE,
                             p->available_cert_profiles, p->n_available_cert_profiles, 0)) !=
                CG_OK ||
            (rc = check_ref_key(ld, path, "default_ca", REF_CA, p->default_ca, 0)) != CG_OK ||
            (rc = check_ref_key(ld, path, "default_certificate_profile", REF_CERT_PROFILE,
                                p->default_cert_profile, 0)) != CG_OK)
            return rc;
    }
    for (size_t i = 0; i < cfg->n_aliases; i++)
        if ((rc = check_alias_refs(ld, &cfg->aliases[i])) != CG_OK)
            return rc;
    if ((rc = check_ref_key(ld, "http", "root_alias", REF_ALIAS, cfg->http_root_alias, 0)) != CG_OK)
        return rc;
    if (cfg->n_listen_tcp > 0 &&
        (rc = check_ref_key(ld, "tcp", "alias", REF_ALIAS, cfg->tcp_alias, 0)) != CG_OK)
        return rc;
    for (size_t i = 0; i < cfg->n_administrators; i++) {
        const struct cg_admin *a = &cfg->administrators[i];
        join_index(path, sizeof(path), "administrators", i);
        if ((rc = check_ref_key(ld, path, "ca", REF_CA, a->ca, 0)) != CG_OK ||
            (rc = check_refs(ld, path, "end_entity_profiles", REF_EE_PROFILE, a->ee_profiles,
                             a->n_ee_profiles, 1)) != CG_OK)
            return rc;
    }
    return CG_OK;
}

/* ---------------------------------------------------------------- free */

static void free_config(struct cg_config *cfg)
{
    free(cfg->file);
    free(cfg->dir);
    free_strv(cfg->listen_http, cfg->n_listen_http);
    free_strv(cfg->listen_tcp, cfg->n_listen_tcp);
    free_strv(cfg->listen_admin, cfg->n_listen_admin);
    free(cfg->store_path);
    for (size_t i = 0; i < cfg->n_cas; i++) {
        struct cg_ca *ca = &cfg->cas[i];
        free(ca->name);
        free(ca->cert_file);
        free(ca->key_file);
        X509_free(ca->cert);
        EVP_PKEY_free(ca->key);
        sk_X509_pop_free(ca->chain, X509_free);
        if (ca->cmp_ra_secret != NULL)
            OPENSSL_cleanse(ca->cmp_ra_secret, strlen(ca->cmp_ra_secret));
        free(ca->cmp_ra_secret);
    }
    free(cfg->cas);
    for (size_t i = 0; i < cfg->n_external_cas; i++) {
        free(cfg->external_cas[i].name);
        free(cfg->external_cas[i].cert_file);
        X509_free(cfg->external_cas[i].cert);
    }
    free(cfg->external_cas);
    for (size_t i = 0; i < cfg->n_cert_profiles; i++) {
        struct cg_cert_profile *p = &cfg->cert_profiles[i];
        free(p->name);
        free(p->eku_nids);
        free(p->rsa_key_sizes);
        free(p->ec_curve_nids);
        free_strv(p->available_cas, p->n_available_cas);
    }
    free(cfg->cert_profiles);
    for (size_t i = 0; i < cfg->n_ee_profiles; i++) {
        struct cg_ee_profile *p = &cfg->ee_profiles[i];
        free(p->name);
        free_strv(p->required_dn, p->n_required_dn);
        free_strv(p->allowed_dn, p->n_allowed_dn);
        free_strv(p->available_cas, p->n_available_cas);
        free_strv(p->available_cert_profiles, p->n_available_cert_profiles);
        free(p->default_ca);
        free(p->default_cert_profile);
    }
    free(cfg->ee_profiles);
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        struct cg_alias *a = &cfg->aliases[i];
        free(a->name);
        free(a->auth_modules);
        free_strv(a->auth_params, a->n_auth);
        free(a->extract_username_component);
        free(a->ra_name_params);
        free(a->ra_name_prefix);
        free(a->ra_ee_profile);
        free(a->ra_cert_profile);
        free(a->ra_ca_name);
        free_strv(a->response_capubs, a->n_response_capubs);
        free_strv(a->response_extracerts, a->n_response_extracerts);
        free_strv(a->vendor_cas, a->n_vendor_cas);
        free(a->certificate_confirmation_default_ca);
        free(a->nested_message_trusted_certs_path);
    }
    free(cfg->aliases);
    for (size_t i = 0; i < cfg->n_administrators; i++) {
        struct cg_admin *a = &cfg->administrators[i];
        free(a->subject);
        free(a->ca);
        free_strv(a->ee_profiles, a->n_ee_profiles);
        free_strv(a->operations, a->n_operations);
    }
    free(cfg->administrators);
    free(cfg->http_root_alias);
    free(cfg->tcp_alias);
}

/* ---------------------------------------------------------------- load */

/* The whole file, NUL-terminated. */
static int read_whole(struct loader *ld, const char *path, char **out, size_t *len)
{
    int rc = CG_EINTERNAL;
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    *out = NULL;
    if (fp == NULL) {
        fail(ld, "", "cannot read %s: %s", path, strerror(errno));
        rc = CG_EIO;
        goto out;
    }
    for (;;) {
        size_t got;
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap == 0 ? 8192 : cap * 2);
            if (nb == NULL) {
                rc = fail_nomem(ld);
                goto out;
            }
            buf = nb;
            cap = cap == 0 ? 8192 : cap * 2;
        }
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        fail(ld, "", "cannot read %s: %s", path, strerror(errno));
        rc = CG_EIO;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = CG_OK;
out:
    free(buf);
    if (fp != NULL)
        fclose(fp);
    return rc;
}

static int split_dir(const char *path, char **out)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        *out = strdup(".");
    else if (slash == path)
        *out = strdup("/");
    else
        *out = strndup(path, (size_t)(slash - path));
    return *out != NULL ? CG_OK : CG_ENOMEM;
}

int cg_config_load(const char *path, struct cg_config **out, char *err, size_t errlen)
{
    static const char *const root_keys[] = {"listen",
                                            "workers",
                                            "queue_depth",
                                            "limits",
                                            "store",
                                            "cas",
                                            "external_cas",
                                            "certificate_profiles",
                                            "end_entity_profiles",
                                            "aliases",
                                            "http",
                                            "tcp",
                                            "log",
                                            "administrators",
                                            NULL};
    struct loader ld = {path != NULL ? path : "(null)", err, errlen, NULL};
    struct config_box *box = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    char *text = NULL;
    size_t len = 0;
    long long v;
    int rc = CG_EINTERNAL;

    if (out != NULL)
        *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || out == NULL) {
        rc = CG_EINVAL;
        goto out;
    }
    if ((box = calloc(1, sizeof(*box))) == NULL) {
        rc = fail_nomem(&ld);
        goto out;
    }
    atomic_init(&box->refs, 1);
    ld.cfg = &box->cfg;
    if ((ld.cfg->file = strdup(path)) == NULL || split_dir(path, &ld.cfg->dir) != CG_OK) {
        rc = fail_nomem(&ld);
        goto out;
    }
    if ((rc = read_whole(&ld, path, &text, &len)) != CG_OK)
        goto out;
    if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        rc = fail(&ld, "", "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = fail(&ld, "", "must be an object");
        goto out;
    }
    if ((rc = check_keys(&ld, root, "", root_keys)) != CG_OK)
        goto out;
    if ((rc = parse_listen(&ld, root)) != CG_OK)
        goto out;
    if ((rc = get_int(&ld, root, "", "workers", 0, 256, 0, &v)) != CG_OK)
        goto out;
    ld.cfg->workers = (int)v;
    if ((rc = get_int(&ld, root, "", "queue_depth", 1, 1000000, 1024, &v)) != CG_OK)
        goto out;
    ld.cfg->queue_depth = (int)v;
    if ((rc = parse_limits(&ld, root)) != CG_OK || (rc = parse_store(&ld, root)) != CG_OK ||
        (rc = parse_cas(&ld, root)) != CG_OK || (rc = parse_external_cas(&ld, root)) != CG_OK ||
        (rc = parse_cert_profiles(&ld, root)) != CG_OK ||
        (rc = parse_ee_profiles(&ld, root)) != CG_OK || (rc = parse_aliases(&ld, root)) != CG_OK ||
        (rc = parse_frontends(&ld, root)) != CG_OK || (rc = parse_admins(&ld, root)) != CG_OK ||
        (rc = check_all_refs(&ld)) != CG_OK)
        goto out;
    *out = &box->cfg;
    box = NULL;
    rc = CG_OK;
out:
    if (box != NULL) {
        free_config(&box->cfg);
        free(box);
    }
    json_decref(root);
    free(text);
    ERR_clear_error();
    return rc;
}

struct cg_config *cg_config_ref(struct cg_config *cfg)
{
    if (cfg != NULL)
        atomic_fetch_add_explicit(&((struct config_box *)cfg)->refs, 1, memory_order_relaxed);
    return cfg;
}

void cg_config_unref(struct cg_config *cfg)
{
    struct config_box *box = (struct config_box *)cfg;

    if (box == NULL)
        return;
    if (atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel) == 1) {
        free_config(&box->cfg);
        free(box);
    }
}

/* ---------------------------------------------------------------- lookups */

const struct cg_alias *cg_config_alias(const struct cg_config *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->n_aliases; i++)
        if (strcmp(cfg->aliases[i].name, name) == 0)
            return &cfg->aliases[i];
    return NULL;
}

const struct cg_ca *cg_config_ca(const struct cg_config *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->n_cas; i++)
        if (strcmp(cfg->cas[i].name, name) == 0)
            return &cfg->cas[i];
    return NULL;
}

const struct cg_external_ca *cg_config_external_ca(const struct cg_config *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->n_external_cas; i++)
        if (strcmp(cfg->external_cas[i].name, name) == 0)
            return &cfg->external_cas[i];
    return NULL;
}

const struct cg_cert_profile *cg_config_cert_profile(const struct cg_config *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->n_cert_profiles; i++)
        if (strcmp(cfg->cert_profiles[i].name, name) == 0)
            return &cfg->cert_profiles[i];
    return NULL;
}

const struct cg_ee_profile *cg_config_ee_profile(const struct cg_config *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->n_ee_profiles; i++)
        if (strcmp(cfg->ee_profiles[i].name, name) == 0)
            return &cfg->ee_profiles[i];
    return NULL;
}
