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

static X509 *self_signed_ca(EVP_PKEY *key, const char *cn, const char *o, const char *c, int years)
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
    if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)years * 365 * 86400) == NULL)
        goto fail;
    if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(x, x, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign") ||
        !add_ext(x, x, NID_subject_key_identifier, "hash") ||
        !add_ext(x, x, NID_authority_key_identifier, "keyid:always"))
        goto fail;
    int id = EVP_PKEY_get_base_id(key);
    const EVP_MD *md = id == EVP_PKEY_ED25519                                ? NULL
                       : (id == EVP_PKEY_EC && EVP_PKEY_get_bits(key) > 256) ? EVP_sha384()
                                                                             : EVP_sha256();
    if (X509_sign(x, key, md) <= 0)
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

static int write_config(FILE *f, void *arg)
{
    struct json_args *a = arg;
    static const char *const ra_aliases[] = {"opensslra", "cmpra", "tcp"};
    fprintf(
        f,
        "{\n"
        "  \"listen\": {\"http\": [\"127.0.0.1:8080\"], \"tcp\": [\"127.0.0.1:8829\"],\n"
        "             \"admin\": [\"127.0.0.1:8081\"]},\n"
        "  \"workers\": 0,\n"
        "  \"queue_depth\": 1024,\n"
        "  \"limits\": {\"max_body_bytes\": 1048576, \"max_header_bytes\": 16384,\n"
        "             \"idle_timeout_s\": 60, \"read_timeout_s\": 30,\n"
        "             \"max_connections\": 4096, \"max_pbm_iterations\": 100000},\n"
        "  \"store\": {\"path\": \"store\", \"map_size_mb\": 1024, \"sync\": true},\n"
        "  \"cas\": {\n"
        "    \"ManagementCA\": {\"cert_file\": \"ManagementCA.cacert.pem\",\n"
        "                     \"key_file\": \"ca/ManagementCA.key.pem\"}\n"
        "  },\n"
        "  \"certificate_profiles\": {\n"
        "    \"ENDUSER\": {\"validity\": \"730d\",\n"
        "                \"key_usage\": [\"digitalSignature\", \"keyEncipherment\"],\n"
        "                \"extended_key_usage\": [\"clientAuth\", \"emailProtection\"],\n"
        "                \"key_algorithms\": [\"RSA\", \"EC\", \"Ed25519\"],\n"
        "                \"rsa_key_sizes\": [2048, 3072, 4096],\n"
        "                \"ec_curves\": [\"P-256\", \"P-384\", \"P-521\"],\n"
        "                \"allow_validity_override\": false,\n"
        "                \"allow_key_usage_override\": false}\n"
        "  },\n"
        "  \"end_entity_profiles\": {\n"
        "    \"EMPTY\": {\"required_dn_attributes\": [\"CN\"], \"allowed_dn_attributes\": \"*\",\n"
        "              \"available_cas\": [\"ManagementCA\"],\n"
        "              \"available_certificate_profiles\": [\"ENDUSER\"],\n"
        "              \"default_ca\": \"ManagementCA\", \"default_certificate_profile\": "
        "\"ENDUSER\"}\n"
        "  },\n"
        "  \"aliases\": {\n");
    for (int i = 0; i < 3; i++)
        fprintf(
            f,
            "    \"%s\": {\"mode\": \"ra\", \"authentication_modules\": [\"HMAC\"],\n"
            "      \"authentication_parameters\": [\"%s\"], \"response_protection\": \"pbe\",\n"
            "      \"allow_ra_verify_popo\": true, \"ra_name_generation_scheme\": \"DN\",\n"
            "      \"ra_name_generation_parameters\": \"CN\", \"ra_end_entity_profile\": "
            "\"EMPTY\",\n"
            "      \"ra_certificate_profile\": \"ENDUSER\", \"ra_ca_name\": \"ManagementCA\"}%s\n",
            ra_aliases[i], a->demo ? "password" : a->secrets[i], i < 2 ? "," : "");
    fprintf(f, "  },\n"
               "  \"tcp\": {\"alias\": \"tcp\"},\n"
               "  \"log\": {\"level\": \"info\", \"format\": \"text\"}\n"
               "}\n");
    return !ferror(f);
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
        (cert = self_signed_ca(key, "ManagementCA", "EJBCA Sample", "SE", 10)) == NULL) {
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
