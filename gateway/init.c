/*
 * init.c - `cmpgate init [--demo]`: a new instance directory with a CA and a configuration.
 *
 * DESIGN: generates the ManagementCA key (0600, under DIR/ca/, 0700) and its self-signed
 * certificate, then writes DIR/cmpgate.json. --demo uses the reference documents' example
 * secret "password" on every alias; without --demo each alias gets a random secret, printed
 * once. Everything binds to loopback. An existing configuration is kept unless --force.
 */
#include "cg_err.h"
#include "gateway_local.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static EVP_PKEY *gen_key(const char *spec)
{
    if (strcmp(spec, "ec-p256") == 0)
        return EVP_EC_gen("P-256");
    if (strcmp(spec, "ec-p384") == 0)
        return EVP_EC_gen("P-384");
    if (strcmp(spec, "rsa2048") == 0)
        return EVP_RSA_gen(2048);
    if (strcmp(spec, "rsa3072") == 0)
        return EVP_RSA_gen(3072);
    if (strcmp(spec, "ed25519") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return NULL;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    int ok = ex != NULL && X509_add_ext(cert, ex, -1) == 1;
    X509_EXTENSION_free(ex);
    return ok;
}

/* A certificate for key with subject CN/O/C, signed by issuer_key under issuer (NULL:
 * self-signed). A CA certificate when is_ca, else a device (end entity) certificate. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *o, const char *c, int years,
                       X509 *issuer, EVP_PKEY *issuer_key, int is_ca)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (x == NULL || name == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] = (unsigned char)((serial[0] & 0x3f) | 0x40);
    if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto fail;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)o, -1, -1,
                                    0) ||
        !X509_NAME_add_entry_by_txt(name, "C", MBSTRING_UTF8, (const unsigned char *)c, -1, -1, 0))
        goto fail;
    if (issuer == NULL) {
        issuer = x;
        issuer_key = key;
    }
    if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, issuer == x ? name : X509_get_subject_name(issuer)) != 1 ||
        X509_set_pubkey(x, key) != 1 || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)years * 365 * 86400) == NULL)
        goto fail;
    if (!add_ext(x, issuer, NID_basic_constraints,
                 is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") ||
        !add_ext(x, issuer, NID_key_usage,
                 is_ca ? "critical,digitalSignature,keyCertSign,cRLSign"
                       : "critical,digitalSignature") ||
        !add_ext(x, issuer, NID_subject_key_identifier, "hash") ||
        !add_ext(x, issuer, NID_authority_key_identifier, "keyid:always"))
        goto fail;
    int id = EVP_PKEY_get_base_id(issuer_key);
    const EVP_MD *md = id == EVP_PKEY_ED25519                                       ? NULL
                       : (id == EVP_PKEY_EC && EVP_PKEY_get_bits(issuer_key) > 256) ? EVP_sha384()
                                                                                    : EVP_sha256();
    if (X509_sign(x, issuer_key, md) <= 0)
        goto fail;
    X509_NAME_free(name);
    BN_free(bn);
    return x;
fail:
    X509_free(x);
    X509_NAME_free(name);
    BN_free(bn);
    return NULL;
}

static int write_file(const char *path, int mode, int (*writer)(FILE *, void *), void *arg)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return CG_EIO;
    if (fchmod(fd, (mode_t)mode) != 0) {
        close(fd);
        return CG_EIO;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return CG_EIO;
    }
    int ok = writer(f, arg);
    if (fclose(f) != 0)
        ok = 0;
    return ok ? CG_OK : CG_EIO;
}

static int write_key(FILE *f, void *key)
{
    return PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
}

static int write_cert(FILE *f, void *cert)
{
    return PEM_write_X509(f, cert) == 1;
}

struct json_args {
    int demo;
    char secrets[3][33];
};

static json_t *ra_alias(const char *secret)
{
    return json_pack("{s:s, s:[s], s:[s], s:s, s:b, s:s, s:s, s:s, s:s, s:s}", "mode", "ra",
                     "authentication_modules", "HMAC", "authentication_parameters", secret,
                     "response_protection", "pbe", "allow_ra_verify_popo", 1,
                     "ra_name_generation_scheme", "DN", "ra_name_generation_parameters", "CN",
                     "ra_end_entity_profile", "EMPTY", "ra_certificate_profile", "ENDUSER",
                     "ra_ca_name", "ManagementCA");
}

static json_t *client_alias(json_t *modules, json_t *params)
{
    return json_pack("{s:s, s:o, s:o, s:s, s:s}", "mode", "client", "authentication_modules",
                     modules, "authentication_parameters", params, "extract_username_component",
                     "CN", "response_protection", "signature");
}

/* The configuration: loopback listeners, the ManagementCA, the default profiles, and the
 * aliases of the reference documents (CONTRACT.md, "The demo instance"). */
static json_t *build_config(const struct json_args *a)
{
    const char *s0 = a->demo ? "password" : a->secrets[0];
    const char *s1 = a->demo ? "password" : a->secrets[1];
    const char *s2 = a->demo ? "password" : a->secrets[2];
    json_t *aliases = json_object();
    json_t *cmp = client_alias(json_pack("[s,s]", "HMAC", "EndEntityCertificate"),
                               json_pack("[s,s]", "", ""));
    /* the device workflow renews right after enrollment, without resetting the status */
    json_object_set_new(cmp, "allow_automatic_key_update", json_true());
    json_object_set_new(aliases, "cmp", cmp);
    json_object_set_new(aliases, "opensslra", ra_alias(s0));
    json_object_set_new(aliases, "cmpra", ra_alias(s1));
    json_object_set_new(aliases, "opensslclient",
                        client_alias(json_pack("[s]", "HMAC"), json_pack("[s]", "")));
    json_object_set_new(
        aliases, "openssleec",
        client_alias(json_pack("[s]", "EndEntityCertificate"), json_pack("[s]", "ManagementCA")));
    json_object_set_new(aliases, "tcp", ra_alias(s2));
    if (a->demo) {
        /* the reference "Huawei Pico 3GPP" alias settings */
        json_t *g = client_alias(json_pack("[s]", "EndEntityCertificate"), json_pack("[s]", ""));
        json_object_set_new(g, "vendor_certificate_mode", json_true());
        json_object_set_new(g, "vendor_cas", json_pack("[s]", "VendorRootCA"));
        json_object_set_new(g, "allow_automatic_key_update", json_true());
        json_object_set_new(g, "allow_update_with_same_key", json_true());
        json_object_set_new(aliases, "3gpp", g);
    }
    json_t *cfg = json_pack(
        "{s:{s:[s], s:[s], s:[s]}, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i},"
        " s:{s:s, s:i, s:b}, s:{s:{s:s, s:s}},"
        " s:{s:{s:s, s:[s,s], s:[s,s], s:[s,s,s], s:[i,i,i], s:[s,s,s], s:b, s:b}},"
        " s:{s:{s:[s], s:s, s:[s], s:[s], s:s, s:s}},"
        " s:o, s:{s:s}, s:{s:s, s:s}}",
        "listen", "http", "127.0.0.1:8080", "tcp", "127.0.0.1:8829", "admin", "127.0.0.1:8081",
        "workers", 0, "queue_depth", 1024, "limits", "max_body_bytes", 1048576, "max_header_bytes",
        16384, "idle_timeout_s", 60, "read_timeout_s", 30, "max_connections", 4096,
        "max_pbm_iterations", 100000, "store", "path", "store", "map_size_mb", 1024, "sync", 1,
        "cas", "ManagementCA", "cert_file", "ManagementCA.cacert.pem", "key_file",
        "ca/ManagementCA.key.pem", "certificate_profiles", "ENDUSER", "validity", "730d",
        "key_usage", "digitalSignature", "keyEncipherment", "extended_key_usage", "clientAuth",
        "emailProtection", "key_algorithms", "RSA", "EC", "Ed25519", "rsa_key_sizes", 2048, 3072,
        4096, "ec_curves", "P-256", "P-384", "P-521", "allow_validity_override", 0,
        "allow_key_usage_override", 0, "end_entity_profiles", "EMPTY", "required_dn_attributes",
        "CN", "allowed_dn_attributes", "*", "available_cas", "ManagementCA",
        "available_certificate_profiles", "ENDUSER", "default_ca", "ManagementCA",
        "default_certificate_profile", "ENDUSER", "aliases", aliases, "tcp", "alias", "tcp", "log",
        "level", "info", "format", "text");
    if (cfg != NULL && a->demo)
        json_object_set_new(
            cfg, "external_cas",
            json_pack("{s:{s:s}}", "VendorRootCA", "cert_file", "vendor/VendorRootCA.cacert.pem"));
    return cfg;
}

static int write_config(FILE *f, void *arg)
{
    json_t *cfg = build_config(arg);
    int ok = cfg != NULL && json_dumpf(cfg, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 &&
             fputc('\n', f) != EOF;
    json_decref(cfg);
    return ok && !ferror(f);
}

static int random_secret(char out[33])
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    unsigned char r[32];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return 0;
    for (int i = 0; i < 32; i++)
        out[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
    out[32] = '\0';
    return 1;
}

/* The demo's vendor PKI (3GPP flow): DIR/vendor/VendorRootCA.cacert.pem, configured as the
 * external CA VendorRootCA, and one device credential it signed (device.cert.pem and
 * device.key.pem, subject CN=device-0001,O=Example Vendor,C=SE). */
static int write_vendor(const char *dir)
{
    char vdir[4200], path[4300];
    EVP_PKEY *rkey = EVP_EC_gen("P-256"), *dkey = EVP_EC_gen("P-256");
    X509 *root = NULL, *dev = NULL;
    int rc = CG_EIO;
    snprintf(vdir, sizeof(vdir), "%s/vendor", dir);
    if ((mkdir(vdir, 0700) != 0 && errno != EEXIST) || rkey == NULL || dkey == NULL)
        goto out;
    root = make_cert(rkey, "VendorRootCA", "Example Vendor", "SE", 20, NULL, NULL, 1);
    dev = root ? make_cert(dkey, "device-0001", "Example Vendor", "SE", 15, root, rkey, 0) : NULL;
    if (dev == NULL)
        goto out;
    snprintf(path, sizeof(path), "%s/VendorRootCA.cacert.pem", vdir);
    if (write_file(path, 0644, write_cert, root) != CG_OK)
        goto out;
    snprintf(path, sizeof(path), "%s/device.cert.pem", vdir);
    if (write_file(path, 0644, write_cert, dev) != CG_OK)
        goto out;
    snprintf(path, sizeof(path), "%s/device.key.pem", vdir);
    if (write_file(path, 0600, write_key, dkey) != CG_OK)
        goto out;
    rc = CG_OK;
out:
    if (rc != CG_OK)
        gw_err("init: cannot create the vendor credentials in %s", vdir);
    EVP_PKEY_free(rkey);
    EVP_PKEY_free(dkey);
    X509_free(root);
    X509_free(dev);
    return rc;
}

int gw_init(const char *dir, int demo, int force, const char *ca_key)
{
    char path[4200], cadir[4100], cfgpath[4100];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    struct json_args args;
    int status = EXIT_RUNTIME;
    memset(&args, 0, sizeof(args));
    args.demo = demo;
    if (strcmp(ca_key, "ec-p256") && strcmp(ca_key, "ec-p384") && strcmp(ca_key, "rsa2048") &&
        strcmp(ca_key, "rsa3072") && strcmp(ca_key, "ed25519")) {
        gw_err("init: --ca-key must be one of ec-p256, ec-p384, rsa2048, rsa3072, ed25519");
        return EXIT_USAGE;
    }
    if (strlen(dir) > 4000) {
        gw_err("init: directory name too long");
        return EXIT_USAGE;
    }
    snprintf(cfgpath, sizeof(cfgpath), "%s/cmpgate.json", dir);
    if (!force && access(cfgpath, F_OK) == 0) {
        gw_err("init: %s exists (use --force to overwrite)", cfgpath);
        return EXIT_USAGE;
    }
    snprintf(cadir, sizeof(cadir), "%s/ca", dir);
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(cadir, 0700) != 0 && errno != EEXIST) || chmod(cadir, 0700) != 0) {
        gw_err("init: cannot create %s: %s", cadir, strerror(errno));
        return EXIT_RUNTIME;
    }
    if ((key = gen_key(ca_key)) == NULL ||
        (cert = make_cert(key, "ManagementCA", "EJBCA Sample", "SE", 10, NULL, NULL, 1)) == NULL) {
        gw_err("init: cannot generate the CA");
        goto out;
    }
    snprintf(path, sizeof(path), "%s/ManagementCA.key.pem", cadir);
    if (write_file(path, 0600, write_key, key) != CG_OK) {
        gw_err("init: cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/ManagementCA.cacert.pem", dir);
    if (write_file(path, 0644, write_cert, cert) != CG_OK) {
        gw_err("init: cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    if (demo && write_vendor(dir) != CG_OK)
        goto out;
    for (int i = 0; i < 3 && !demo; i++)
        if (!random_secret(args.secrets[i]))
            goto out;
    if (write_file(cfgpath, 0600, write_config, &args) != CG_OK) {
        gw_err("init: cannot write %s: %s", cfgpath, strerror(errno));
        goto out;
    }
    printf("created %s (CA key %s)\n", cfgpath, ca_key);
    if (!demo)
        printf("HMAC secrets (shown once): opensslra=%s cmpra=%s tcp=%s\n", args.secrets[0],
               args.secrets[1], args.secrets[2]);
    status = 0;
out:
    EVP_PKEY_free(key);
    X509_free(cert);
    return status;
}
