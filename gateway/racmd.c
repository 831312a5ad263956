/*
 * racmd.c - `cmpgate ra addendentity|setclearpwd|setendentitystatus|show|list|delendentity`:
 * the end entity admin commands, in the EJBCA command shapes of the reference documents.
 *
 * DESIGN: like certcmd.c, they open the same LMDB environment as a running `serve` and write
 * through the store API. Every write runs under cg_store_lock_entity() (serializes with
 * threads of this process) and is a compare-and-set on the entity version (serializes with
 * the other process): create with CG_VERSION_NONE, update as read-modify-write with the
 * version read, retried a few times on CG_ECONFLICT. Argument and configuration problems are
 * found before the store is touched (exit 2); store outcomes are runtime failures (exit 1).
 * The DN is parsed here (RFC 4514 text), checked against OpenSSL's attribute table and the
 * string size/type rules, and stored in the text form core prints for issued subjects
 * (short names, "," separator, RFC 2253 escaping, UTF-8 kept), so both sides agree.
 */
#include "cg_config.h"
#include "cg_core.h"
#include "cg_err.h"
#include "cg_store.h"
#include "gateway_local.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_RETRIES 3
#define MAX_USERNAME 255

static const struct {
    const char *name;
    int code;
} statuses[] = {
    {"NEW", CG_EE_NEW},
    {"FAILED", CG_EE_FAILED},
    {"INITIALIZED", CG_EE_INITIALIZED},
    {"INPROCESS", CG_EE_INPROCESS},
    {"GENERATED", CG_EE_GENERATED},
    {"REVOKED", CG_EE_REVOKED},
    {"HISTORICAL", CG_EE_HISTORICAL},
    {"KEYRECOVERY", CG_EE_KEYRECOVERY},
};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

static const char *const token_types[] = {"USERGENERATED", "P12", "JKS", "PEM"};

static const char subcommands[] =
    "addendentity, setclearpwd, setendentitystatus, show, list, delendentity";

/* ------------------------------------------------------------------ small helpers */

/** @return the status code for "10" / "new" / "NEW", or -1. */
static int parse_status(const char *s)
{
    for (size_t i = 0; i < N_STATUSES; i++) {
        char num[8];
        snprintf(num, sizeof(num), "%d", statuses[i].code);
        if (strcasecmp(s, statuses[i].name) == 0 || strcmp(s, num) == 0)
            return statuses[i].code;
    }
    return -1;
}

static const char *status_name(int code)
{
    for (size_t i = 0; i < N_STATUSES; i++)
        if (statuses[i].code == code)
            return statuses[i].name;
    return "UNKNOWN";
}

/** @return the canonical token type name (static) for a case-insensitive match, or NULL. */
static const char *parse_token(const char *s)
{
    for (size_t i = 0; i < sizeof(token_types) / sizeof(token_types[0]); i++)
        if (strcasecmp(s, token_types[i]) == 0)
            return token_types[i];
    return NULL;
}

static int check_username(const char *sub, const char *u)
{
    size_t n = strlen(u);
    if (n == 0 || n > MAX_USERNAME) {
        gw_err("ra %s: USERNAME must be 1 to %d bytes long", sub, MAX_USERNAME);
        return EXIT_USAGE;
    }
    for (const unsigned char *p = (const unsigned char *)u; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            gw_err("ra %s: USERNAME must not contain control characters", sub);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static int in_list(char **list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ DN parsing */

/* Attribute names matched case-insensitively when OBJ_txt2nid() (case-sensitive) fails. */
static const int dn_nids[] = {
    NID_commonName,      NID_organizationName,    NID_organizationalUnitName,
    NID_countryName,     NID_localityName,        NID_stateOrProvinceName,
    NID_userId,          NID_serialNumber,        NID_pkcs9_emailAddress,
    NID_domainComponent, NID_streetAddress,       NID_title,
    NID_surname,         NID_givenName,           NID_initials,
    NID_pseudonym,       NID_generationQualifier, NID_dnQualifier,
    NID_postalCode,      NID_businessCategory,    NID_organizationIdentifier,
};

static int attr_nid(const char *name)
{
    if (strcasecmp(name, "E") == 0 || strcasecmp(name, "EMAIL") == 0)
        return NID_pkcs9_emailAddress;
    int nid = OBJ_txt2nid(name);
    if (nid != NID_undef)
        return nid;
    for (size_t i = 0; i < sizeof(dn_nids) / sizeof(dn_nids[0]); i++) {
        if (strcasecmp(name, OBJ_nid2sn(dn_nids[i])) == 0 ||
            strcasecmp(name, OBJ_nid2ln(dn_nids[i])) == 0)
            return dn_nids[i];
    }
    return NID_undef;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* 1 when p starts "ATTR=" with an attribute name attr_nid() knows (blanks around it allowed):
 * a '+' before it joins that pair to the RDN before (a multi-valued RDN, RFC 4514). */
static int starts_pair(const char *p)
{
    char attr[64];
    size_t n = 0;
    while (isspace((unsigned char)*p))
        p++;
    for (; *p != '\0' && *p != '='; p++) {
        if (*p == ',' || *p == '+' || *p == '\\' || n + 1 >= sizeof(attr))
            return 0;
        attr[n++] = *p;
    }
    while (n > 0 && isspace((unsigned char)attr[n - 1]))
        n--;
    attr[n] = '\0';
    return *p == '=' && n > 0 && attr_nid(attr) != NID_undef;
}

/**
 * @brief Parse "ATTR=value,ATTR=value" (RFC 4514 style: backslash escapes "\," and "\XX",
 * whitespace around ATTR and "=" trimmed; "+ATTR=value" adds to the RDN before, while any other
 * '+' is part of the value) into an X509_NAME in the given order.
 * @param[out] why reason on failure.
 * @return new name or NULL.
 */
static X509_NAME *parse_dn(const char *dn, char *why, size_t whylen)
{
    X509_NAME *name = X509_NAME_new();
    size_t len = strlen(dn);
    char *attr = malloc(len + 1), *val = malloc(len + 1);
    const char *p = dn;
    if (name == NULL || attr == NULL || val == NULL) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0') {
        snprintf(why, whylen, "the DN is empty");
        goto fail;
    }
    for (int join = 0;;) {
        /* attribute type */
        size_t an = 0;
        while (isspace((unsigned char)*p))
            p++;
        while (*p != '\0' && *p != '=' && *p != ',')
            attr[an++] = *p++;
        while (an > 0 && isspace((unsigned char)attr[an - 1]))
            an--;
        attr[an] = '\0';
        if (*p != '=') {
            snprintf(why, whylen, "\"%s\" is not of the form ATTR=value", an ? attr : "");
            goto fail;
        }
        p++;
        if (an == 0) {
            snprintf(why, whylen, "missing attribute name before \"=\"");
            goto fail;
        }
        int nid = attr_nid(attr);
        if (nid == NID_undef) {
            snprintf(why, whylen, "unknown attribute %s", attr);
            goto fail;
        }
        /* value: up to the next unescaped comma, or '+' and another pair */
        size_t vn = 0, keep = 0; /* keep: length that must survive trailing-space trimming */
        while (isspace((unsigned char)*p))
            p++;
        while (*p != '\0' && *p != ',' && !(*p == '+' && starts_pair(p + 1))) {
            if (*p == '\\') {
                int h1 = p[1] ? hexval(p[1]) : -1, h2 = h1 >= 0 && p[2] ? hexval(p[2]) : -1;
                if (p[1] == '\0') {
                    snprintf(why, whylen, "value of %s ends with a lone backslash", attr);
                    goto fail;
                } else if (h1 >= 0 && h2 >= 0) {
                    val[vn++] = (char)(h1 * 16 + h2);
                    p += 3;
                } else {
                    val[vn++] = p[1];
                    p += 2;
                }
                keep = vn;
            } else {
                val[vn++] = *p++;
            }
        }
        while (vn > keep && isspace((unsigned char)val[vn - 1]))
            vn--;
        val[vn] = '\0';
        if (vn == 0) {
            snprintf(why, whylen, "empty value for %s", attr);
            goto fail;
        }
        /* core reads the stored text back (core/dn.c): it trims blanks around values and
         * knows no \XX escapes, so refuse what would not survive the round trip */
        for (size_t k = 0; k < vn; k++) {
            if ((unsigned char)val[k] < 0x20 || val[k] == 0x7f) {
                snprintf(why, whylen, "value of %s contains a control character", attr);
                goto fail;
            }
        }
        if (isspace((unsigned char)val[0]) || isspace((unsigned char)val[vn - 1])) {
            snprintf(why, whylen, "value of %s begins or ends with a blank", attr);
            goto fail;
        }
        if (!X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8, (const unsigned char *)val,
                                        (int)vn, -1, join ? -1 : 0)) {
            ERR_clear_error();
            snprintf(why, whylen, "invalid value for %s (wrong length or characters)",
                     OBJ_nid2sn(nid));
            goto fail;
        }
        if (*p == '\0')
            break;
        join = *p == '+';
        p++; /* the comma or plus */
        const char *q = p;
        while (isspace((unsigned char)*q))
            q++;
        if (*q == '\0') {
            snprintf(why, whylen, "trailing comma");
            goto fail;
        }
    }
    free(attr);
    free(val);
    return name;
fail:
    free(attr);
    free(val);
    X509_NAME_free(name);
    return NULL;
}

static int name_has_attr(const X509_NAME *name, const char *attr)
{
    int nid = attr_nid(attr);
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        int n = OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, i)));
        if (nid != NID_undef ? n == nid : strcasecmp(OBJ_nid2sn(n), attr) == 0)
            return 1;
    }
    return 0;
}

/** @brief required_dn present and every attribute in allowed_dn (when set). */
static int check_dn_profile(const char *sub, const X509_NAME *name, const struct cg_ee_profile *ep)
{
    for (size_t i = 0; i < ep->n_required_dn; i++) {
        if (!name_has_attr(name, ep->required_dn[i])) {
            gw_err("ra %s: the DN lacks %s, required by end entity profile %s", sub,
                   ep->required_dn[i], ep->name);
            return EXIT_USAGE;
        }
    }
    if (ep->allowed_dn == NULL)
        return 0;
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, i)));
        int ok = 0;
        for (size_t k = 0; k < ep->n_allowed_dn && !ok; k++) {
            if (strcmp(ep->allowed_dn[k], "*") == 0)
                ok = 1;
            else {
                int a = attr_nid(ep->allowed_dn[k]);
                ok =
                    a != NID_undef ? a == nid : strcasecmp(ep->allowed_dn[k], OBJ_nid2sn(nid)) == 0;
            }
        }
        if (!ok) {
            gw_err("ra %s: attribute %s is not allowed by end entity profile %s", sub,
                   OBJ_nid2sn(nid), ep->name);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ JSON output */

static void print_json(json_t *o, size_t flags)
{
    char *s = o ? json_dumps(o, flags | JSON_PRESERVE_ORDER) : NULL;
    if (s)
        puts(s);
    free(s);
}

static int add_cert(const struct cg_cert_rec *c, void *arg)
{
    char serial[65], na[32];
    gw_hex(c->serial, c->serial_len, serial);
    gw_iso_time(c->not_after, na, sizeof(na));
    json_array_append_new((json_t *)arg,
                          json_pack("{s:s, s:s, s:s}", "serial", serial, "status",
                                    c->status == CG_CERT_REVOKED ? "revoked" : "active", "notAfter",
                                    na));
    return 0;
}

static int list_line(const struct cg_entity *e, void *arg)
{
    (void)arg;
    json_t *o =
        json_pack("{s:s, s:s?, s:s?, s:s, s:i}", "username", e->username, "dn", e->subject_dn, "ca",
                  e->ca, "status", status_name(e->status), "status_code", e->status);
    print_json(o, JSON_COMPACT);
    json_decref(o);
    return 0;
}

/* ------------------------------------------------------------------ commands */

struct add_args {
    const char *username, *dn, *password, *ca, *eeprofile, *certprofile, *altname;
    int status;
    const char *token;
};

static int ra_add(struct cg_config *cfg, struct cg_store *st, const struct add_args *a)
{
    const char *sub = "addendentity";
    char why[256];
    int status = EXIT_RUNTIME, rc;
    X509_NAME *name = NULL;
    char *dn = NULL;
    struct cg_entity *old = NULL;
    struct cg_store_batch *b = NULL;

    const char *epname = a->eeprofile ? a->eeprofile : "EMPTY";
    const struct cg_ee_profile *ep = cg_config_ee_profile(cfg, epname);
    if (ep == NULL) {
        gw_err("ra %s: unknown end entity profile %s", sub, epname);
        return EXIT_USAGE;
    }
    const char *caname = a->ca ? a->ca : ep->default_ca ? ep->default_ca : cfg->cas[0].name;
    if (cg_config_ca(cfg, caname) == NULL) {
        gw_err("ra %s: unknown CA %s", sub, caname);
        return EXIT_USAGE;
    }
    if (ep->available_cas != NULL && !in_list(ep->available_cas, ep->n_available_cas, caname)) {
        gw_err("ra %s: CA %s is not available in end entity profile %s", sub, caname, ep->name);
        return EXIT_USAGE;
    }
    const char *cpname = a->certprofile             ? a->certprofile
                         : ep->default_cert_profile ? ep->default_cert_profile
                                                    : "ENDUSER";
    const struct cg_cert_profile *cp = cg_config_cert_profile(cfg, cpname);
    if (cp == NULL) {
        gw_err("ra %s: unknown certificate profile %s", sub, cpname);
        return EXIT_USAGE;
    }
    if (ep->available_cert_profiles != NULL &&
        !in_list(ep->available_cert_profiles, ep->n_available_cert_profiles, cpname)) {
        gw_err("ra %s: certificate profile %s is not available in end entity profile %s", sub,
               cpname, ep->name);
        return EXIT_USAGE;
    }
    if (cp->available_cas != NULL && !in_list(cp->available_cas, cp->n_available_cas, caname)) {
        gw_err("ra %s: CA %s is not available in certificate profile %s", sub, caname, cpname);
        return EXIT_USAGE;
    }
    if ((name = parse_dn(a->dn, why, sizeof(why))) == NULL) {
        gw_err("ra %s: invalid DN \"%s\": %s", sub, a->dn, why);
        return EXIT_USAGE;
    }
    if ((status = check_dn_profile(sub, name, ep)) != 0)
        goto out;
    status = EXIT_RUNTIME;
    if ((dn = cg_core_dn_text(name)) == NULL) {
        gw_err("ra %s: out of memory", sub);
        goto out;
    }

    int64_t now = time(NULL);
    struct cg_entity e = {
        .username = (char *)a->username,
        .subject_dn = dn,
        .subject_alt = (char *)a->altname,
        .ca = (char *)caname,
        .ee_profile = (char *)ep->name,
        .cert_profile = (char *)cp->name,
        .password = (char *)a->password,
        .token_type = (char *)(a->token ? a->token : "USERGENERATED"),
        .status = a->status,
        .flags = 0,
        .created = now,
        .modified = now,
    };
    if ((b = cg_store_batch_new()) == NULL || cg_store_batch_put_entity(b, &e, CG_VERSION_NONE)) {
        gw_err("ra %s: out of memory", sub);
        goto out;
    }
    cg_store_lock_entity(st, a->username);
    rc = cg_store_get_entity(st, a->username, &old);
    if (rc == CG_OK)
        rc = CG_EEXIST;
    else if (rc == CG_ENOTFOUND)
        rc = cg_store_commit(st, b);
    cg_store_unlock_entity(st, a->username);
    if (rc == CG_EEXIST) {
        gw_err("ra %s: user %s already exists", sub, a->username);
        goto out;
    } else if (rc != CG_OK) {
        gw_err("ra %s: %s: %s", sub, a->username, cg_strerror(rc));
        goto out;
    }
    printf("added end entity %s\n", a->username);
    status = 0;
out:
    cg_entity_free(old);
    cg_store_batch_free(b);
    OPENSSL_free(dn);
    X509_NAME_free(name);
    return status;
}

/* Read-modify-write of one entity: password (when non-NULL) or status (when >= 0). */
static int ra_update(struct cg_store *st, const char *sub, const char *user, const char *password,
                     int new_status)
{
    int rc = CG_ECONFLICT;
    for (int attempt = 0; attempt < MAX_RETRIES && rc == CG_ECONFLICT; attempt++) {
        struct cg_entity *e = NULL;
        struct cg_store_batch *b = NULL;
        cg_store_lock_entity(st, user);
        rc = cg_store_get_entity(st, user, &e);
        if (rc == CG_OK) {
            char *pw = password ? strdup(password) : NULL;
            if (password != NULL && pw == NULL)
                rc = CG_ENOMEM;
            else {
                if (pw != NULL) {
                    free(e->password);
                    e->password = pw;
                }
                if (new_status >= 0)
                    e->status = new_status;
                e->modified = time(NULL);
                if ((b = cg_store_batch_new()) == NULL)
                    rc = CG_ENOMEM;
                else if ((rc = cg_store_batch_put_entity(b, e, e->version)) == CG_OK)
                    rc = cg_store_commit(st, b);
            }
        }
        cg_store_unlock_entity(st, user);
        cg_store_batch_free(b);
        cg_entity_free(e);
    }
    if (rc == CG_ENOTFOUND) {
        gw_err("ra %s: no such end entity %s", sub, user);
        return EXIT_RUNTIME;
    } else if (rc != CG_OK) {
        gw_err("ra %s: %s: %s", sub, user, cg_strerror(rc));
        return EXIT_RUNTIME;
    }
    if (password != NULL)
        printf("set password of %s\n", user);
    else
        printf("set status of %s to %s (%d)\n", user, status_name(new_status), new_status);
    return 0;
}

static int ra_show(struct cg_store *st, const char *user)
{
    struct cg_entity *e = NULL;
    int rc = cg_store_get_entity(st, user, &e);
    if (rc != CG_OK) {
        if (rc == CG_ENOTFOUND)
            gw_err("ra show: no such end entity %s", user);
        else
            gw_err("ra show: %s: %s", user, cg_strerror(rc));
        return EXIT_RUNTIME;
    }
    char created[32], modified[32];
    gw_iso_time(e->created, created, sizeof(created));
    gw_iso_time(e->modified, modified, sizeof(modified));
    json_t *certs = json_array();
    json_t *o = json_pack("{s:s, s:s?}", "username", e->username, "dn", e->subject_dn);
    if (o == NULL || certs == NULL) {
        json_decref(o);
        json_decref(certs);
        cg_entity_free(e);
        gw_err("ra show: out of memory");
        return EXIT_RUNTIME;
    }
    if (e->subject_alt != NULL)
        json_object_set_new(o, "altname", json_string(e->subject_alt));
    json_object_set_new(o, "ca", e->ca ? json_string(e->ca) : json_null());
    json_object_set_new(o, "eeprofile", e->ee_profile ? json_string(e->ee_profile) : json_null());
    json_object_set_new(o, "certprofile",
                        e->cert_profile ? json_string(e->cert_profile) : json_null());
    json_object_set_new(o, "status", json_string(status_name(e->status)));
    json_object_set_new(o, "status_code", json_integer(e->status));
    json_object_set_new(o, "token", e->token_type ? json_string(e->token_type) : json_null());
    json_object_set_new(o, "has_password", json_boolean(e->password != NULL));
    json_object_set_new(o, "created", json_string(created));
    json_object_set_new(o, "modified", json_string(modified));
    json_object_set_new(o, "version", json_integer((json_int_t)e->version));
    json_object_set_new(o, "ra_created", json_boolean(e->flags & CG_ENTITY_RA_CREATED));
    rc = cg_store_list_certs(st, user, add_cert, certs);
    json_object_set_new(o, "certificates", certs);
    if (rc != CG_OK) {
        gw_err("ra show: %s: certificates: %s", user, cg_strerror(rc));
        json_decref(o);
        cg_entity_free(e);
        return EXIT_RUNTIME;
    }
    print_json(o, JSON_INDENT(2));
    json_decref(o);
    cg_entity_free(e);
    return 0;
}

static int ra_del(struct cg_store *st, const char *user)
{
    struct cg_store_batch *b = cg_store_batch_new();
    size_t n = 0;
    int rc = b ? cg_store_batch_del_entity(b, user) : CG_ENOMEM;
    if (rc == CG_OK) {
        cg_store_lock_entity(st, user);
        rc = cg_store_commit(st, b);
        cg_store_unlock_entity(st, user);
    }
    cg_store_batch_free(b);
    if (rc == CG_ENOTFOUND) {
        gw_err("ra delendentity: no such end entity %s", user);
        return EXIT_RUNTIME;
    } else if (rc != CG_OK) {
        gw_err("ra delendentity: %s: %s", user, cg_strerror(rc));
        return EXIT_RUNTIME;
    }
    if (cg_store_count_certs(st, user, &n) != CG_OK)
        n = 0;
    printf("deleted %s (%zu certificates kept)\n", user, n);
    return 0;
}

/* ------------------------------------------------------------------ argument parsing */

/* "--name VALUE" or "--name=VALUE" at argv[*i]: @return 1 and sets *val (advancing *i),
 * 0 if argv[*i] is not this option, -1 if the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

static int parse_add(int argc, char **argv, struct add_args *a)
{
    static const char *const opts[] = {"--dn",        "--password",    "--ca",
                                       "--eeprofile", "--certprofile", "--status",
                                       "--altname",   "--token",       NULL};
    const char *sub = "addendentity";
    const char *vals[8] = {NULL};
    const char *pos[5] = {NULL};
    int npos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && strncmp(arg, "--", 2) == 0) {
            int k, r = 0;
            for (k = 0; opts[k] != NULL; k++)
                if ((r = opt_value(argc, argv, &i, opts[k], &vals[k])) != 0)
                    break;
            if (opts[k] == NULL) {
                gw_err("ra %s: unknown option %s", sub, arg);
                return EXIT_USAGE;
            }
            if (r < 0) {
                gw_err("ra %s: option %s needs a value", sub, opts[k]);
                return EXIT_USAGE;
            }
            continue;
        }
        if (npos >= 5) {
            gw_err("ra %s: unexpected argument %s", sub, arg);
            return EXIT_USAGE;
        }
        pos[npos++] = arg;
    }
    /* positionals: USERNAME [DN [CA [TYPE [TOKEN]]]] (the EJBCA form) */
    if (npos < 1) {
        gw_err("ra %s: missing USERNAME", sub);
        return EXIT_USAGE;
    }
    a->username = pos[0];
    if (check_username(sub, a->username) != 0)
        return EXIT_USAGE;
    if (npos > 1 && vals[0] != NULL) {
        gw_err("ra %s: the DN is given both with --dn and as an argument", sub);
        return EXIT_USAGE;
    }
    a->dn = npos > 1 ? pos[1] : vals[0];
    if (a->dn == NULL) {
        gw_err("ra %s: missing DN (--dn DN)", sub);
        return EXIT_USAGE;
    }
    if (npos > 2 && vals[2] != NULL) {
        gw_err("ra %s: the CA is given both with --ca and as an argument", sub);
        return EXIT_USAGE;
    }
    a->ca = npos > 2 ? pos[2] : vals[2];
    if (a->ca != NULL && a->ca[0] == '\0') {
        gw_err("ra %s: the CA name is empty", sub);
        return EXIT_USAGE;
    }
    if (npos > 3) {
        char *end = NULL;
        errno = 0;
        long t = strtol(pos[3], &end, 10);
        if (!isdigit((unsigned char)pos[3][0]) || *end != '\0' || errno != 0 || t <= 0) {
            gw_err("ra %s: end entity type %s must be a positive integer (1 = end user)", sub,
                   pos[3]);
            return EXIT_USAGE;
        }
    }
    if (npos > 4 && vals[7] != NULL) {
        gw_err("ra %s: the token type is given both with --token and as an argument", sub);
        return EXIT_USAGE;
    }
    const char *tok = npos > 4 ? pos[4] : vals[7];
    if (tok != NULL && (a->token = parse_token(tok)) == NULL) {
        gw_err("ra %s: unknown token type %s (USERGENERATED, P12, JKS, PEM)", sub, tok);
        return EXIT_USAGE;
    }
    a->password = vals[1];
    if (a->password != NULL && a->password[0] == '\0') {
        gw_err("ra %s: the password is empty", sub);
        return EXIT_USAGE;
    }
    a->eeprofile = vals[3];
    a->certprofile = vals[4];
    a->status = CG_EE_NEW;
    if (vals[5] != NULL && (a->status = parse_status(vals[5])) < 0) {
        gw_err("ra %s: unknown status %s (NEW 10, FAILED 11, INITIALIZED 20, INPROCESS 30, "
               "GENERATED 40, REVOKED 50, HISTORICAL 60, KEYRECOVERY 70)",
               sub, vals[5]);
        return EXIT_USAGE;
    }
    a->altname = vals[6];
    if (a->altname != NULL && a->altname[0] == '\0')
        a->altname = NULL;
    return 0;
}

/* Positional arguments of the simple subcommands; options are refused. */
static int parse_plain(const char *sub, int argc, char **argv, const char **pos, int want,
                       const char *const *names)
{
    int npos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!only_pos && strcmp(argv[i], "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && strncmp(argv[i], "--", 2) == 0) {
            gw_err("ra %s: unknown option %s", sub, argv[i]);
            return EXIT_USAGE;
        }
        if (npos >= want) {
            gw_err("ra %s: unexpected argument %s", sub, argv[i]);
            return EXIT_USAGE;
        }
        pos[npos++] = argv[i];
    }
    if (npos < want) {
        gw_err("ra %s: missing %s", sub, names[npos]);
        return EXIT_USAGE;
    }
    if (want > 0 && check_username(sub, pos[0]) != 0)
        return EXIT_USAGE;
    return 0;
}

int gw_ra(int argc, char **argv, const char *config_path)
{
    static const char *const names[] = {"USERNAME", NULL, NULL};
    static const char *const pw_names[] = {"USERNAME", "PASSWORD"};
    static const char *const st_names[] = {"USERNAME", "STATUS"};
    struct cg_config *cfg = NULL;
    struct cg_store *st = NULL;
    struct add_args add = {0};
    const char *pos[2] = {NULL, NULL};
    int status, new_status = -1;

    if (argc < 1) {
        gw_err("ra: missing subcommand (%s)", subcommands);
        return EXIT_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "addendentity") == 0)
        status = parse_add(argc, argv, &add);
    else if (strcmp(sub, "setclearpwd") == 0) {
        status = parse_plain(sub, argc, argv, pos, 2, pw_names);
        if (status == 0 && pos[1][0] == '\0') {
            gw_err("ra %s: the password is empty", sub);
            status = EXIT_USAGE;
        }
    } else if (strcmp(sub, "setendentitystatus") == 0) {
        status = parse_plain(sub, argc, argv, pos, 2, st_names);
        if (status == 0 && (new_status = parse_status(pos[1])) < 0) {
            gw_err("ra %s: unknown status %s (NEW 10, FAILED 11, INITIALIZED 20, INPROCESS 30, "
                   "GENERATED 40, REVOKED 50, HISTORICAL 60, KEYRECOVERY 70)",
                   sub, pos[1]);
            status = EXIT_USAGE;
        }
    } else if (strcmp(sub, "show") == 0 || strcmp(sub, "delendentity") == 0)
        status = parse_plain(sub, argc, argv, pos, 1, names);
    else if (strcmp(sub, "list") == 0)
        status = parse_plain(sub, argc, argv, pos, 0, names);
    else {
        gw_err("ra %s: unknown subcommand (%s)", sub, subcommands);
        return EXIT_USAGE;
    }
    if (status != 0)
        return status;
    char what[64];
    snprintf(what, sizeof(what), "ra %s", sub);
    if ((status = gw_open_store(what, config_path, &cfg, &st)) != 0)
        goto out;
    if (strcmp(sub, "addendentity") == 0)
        status = ra_add(cfg, st, &add);
    else if (strcmp(sub, "setclearpwd") == 0)
        status = ra_update(st, sub, pos[0], pos[1], -1);
    else if (strcmp(sub, "setendentitystatus") == 0)
        status = ra_update(st, sub, pos[0], NULL, new_status);
    else if (strcmp(sub, "show") == 0)
        status = ra_show(st, pos[0]);
    else if (strcmp(sub, "delendentity") == 0)
        status = ra_del(st, pos[0]);
    else {
        int rc = cg_store_list_entities(st, list_line, NULL);
        if (rc != CG_OK) {
            gw_err("ra list: %s", cg_strerror(rc));
            status = EXIT_RUNTIME;
        }
    }
out:
    cg_store_close(st);
    cg_config_unref(cfg);
    return status;
}
