/*
 * test_config.c - unit tests of config/: cg_config_load() values, defaults, every error
 * class with its exact "FILE: PATH: REASON" text, and reference counting.
 *
 * DESIGN: set_up makes a fresh mkdtemp directory holding a real EC P-256 CA key (mode 600)
 * with its self-signed certificate, a second unrelated key, a chain file and an external CA
 * under vendor/; each test writes its JSON into that directory (relative paths resolve
 * there) and tear_down removes it. Single-threaded.
 */
#include "cg_config.h"
#include "cg_err.h"
#include "cg_log.h"
#include "cg_test.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static char cfg_path[512];
static char err[1024];
static struct cg_config *cfg;

#define CAS "\"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.pem\", \"key_file\": \"ca.key\"}}"

static void write_text(const char *name, const char *text)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL) {
        perror(path);
        abort();
    }
    fputs(text, fp);
    fclose(fp);
}

static void write_pem_key(const char *name, EVP_PKEY *key)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || !PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(fp);
    chmod(path, 0600);
}

static void write_pem_cert(const char *name, X509 *x)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || !PEM_write_X509(fp, x))
        abort();
    fclose(fp);
}

static X509 *make_self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    if (x == NULL || name == NULL)
        abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    if (!X509_sign(x, key, EVP_sha256()))
        abort();
    X509_NAME_free(name);
    return x;
}

static void set_up(void)
{
    EVP_PKEY *key, *other;
    X509 *cert, *vendor;
    char sub[512];

    snprintf(dir, sizeof(dir), "/tmp/cg_config_test.XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(cfg_path, sizeof(cfg_path), "%s/c.json", dir);
    snprintf(sub, sizeof(sub), "%s/vendor", dir);
    mkdir(sub, 0700);
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL || other == NULL)
        abort();
    cert = make_self_signed(key, "ManagementCA");
    vendor = make_self_signed(other, "VendorRootCA");
    write_pem_key("ca.key", key);
    write_pem_key("other.key", other);
    write_pem_cert("ca.pem", cert);
    write_pem_cert("chain.pem", cert);
    write_pem_cert("vendor/VendorRootCA.pem", vendor);
    X509_free(cert);
    X509_free(vendor);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    cfg = NULL;
    err[0] = '\0';
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tear_down(void)
{
    cg_config_unref(cfg);
    cfg = NULL;
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Write text as c.json and load it. */
static int load_text(const char *text)
{
    write_text("c.json", text);
    cg_config_unref(cfg);
    cfg = NULL;
    return cg_config_load(cfg_path, &cfg, err, sizeof(err));
}

/* Load text; it must fail with CG_ECONFIG and err "CFG_PATH: want". */
#define EXPECT_ERR(text, want)                                                                     \
    do {                                                                                           \
        char want_[2048];                                                                          \
        if (snprintf(want_, sizeof(want_), "%s: %s", cfg_path, (want)) < 0)                        \
            want_[0] = '\0';                                                                       \
        TEST_RC(load_text(text), CG_ECONFIG);                                                      \
        TEST_TRUE(cfg == NULL);                                                                    \
        TEST_STREQ(err, want_);                                                                    \
    } while (0)

static const char full_json[] =
    "{\n"
    " \"listen\": {\"http\": [\"127.0.0.1:8080\", \"[::1]:80\"], \"tcp\": [\"127.0.0.1:8829\"],"
    "   \"admin\": [\"127.0.0.1:8081\"]},\n"
    " \"workers\": 4, \"queue_depth\": 2048,\n"
    " \"limits\": {\"max_body_bytes\": 2097152, \"max_header_bytes\": 8192,"
    "   \"idle_timeout_s\": 61, \"read_timeout_s\": 31, \"max_connections\": 100,"
    "   \"max_pbm_iterations\": 5000},\n"
    " \"store\": {\"path\": \"/var/lib/cg\", \"map_size_mb\": 64, \"sync\": false,"
    "   \"commit_delay_us\": 500},\n"
    " \"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.pem\", \"key_file\": \"ca.key\","
    "   \"chain_file\": \"chain.pem\", \"cmp_ra_secret\": \"s3cret\"}},\n"
    " \"external_cas\": {\"VendorRootCA\": {\"cert_file\": \"vendor/VendorRootCA.pem\"}},\n"
    " \"certificate_profiles\": {\"SERVER\": {\"validity\": \"1y6mo\","
    "   \"key_usage\": [\"digitalSignature\", \"contentCommitment\", \"keyAgreement\"],"
    "   \"key_usage_critical\": false,"
    "   \"extended_key_usage\": [\"serverAuth\", \"OCSPSigning\", \"1.3.6.1.5.5.7.3.17\","
    "     \"1.2.3.4.5.6.7.8.9.99\"],"
    "   \"extended_key_usage_critical\": true, \"key_algorithms\": [\"EC\", \"Ed448\"],"
    "   \"rsa_key_sizes\": [3072], \"ec_curves\": [\"secp384r1\", \"P-256\"],"
    "   \"allow_validity_override\": true, \"allow_key_usage_override\": true,"
    "   \"allow_extension_override\": true, \"available_cas\": [\"ManagementCA\"]}},\n"
    " \"end_entity_profiles\": {\"DEV\": {\"required_dn_attributes\": [\"CN\", \"O\"],"
    "   \"allowed_dn_attributes\": [\"CN\", \"O\", \"OU\", \"C\"],"
    "   \"available_cas\": \"*\", \"available_certificate_profiles\": [\"SERVER\", \"ENDUSER\"],"
    "   \"default_ca\": \"ManagementCA\", \"default_certificate_profile\": \"SERVER\"}},\n"
    " \"aliases\": {\"opensslra\": {\"mode\": \"ra\", \"authentication_modules\": [\"HMAC\","
    "     \"EndEntityCertificate\"], \"authentication_parameters\": [\"password\", \"\"],"
    "   \"extract_username_component\": \"CN\", \"response_protection\": \"pbe\","
    "   \"allow_ra_verify_popo\": true, \"ra_name_generation_scheme\": \"FIXED\","
    "   \"ra_name_generation_parameters\": \"dev1\", \"ra_name_generation_prefix\": \"pre-\","
    "   \"ra_end_entity_profile\": \"DEV\", \"ra_certificate_profile\": \"KeyId\","
    "   \"ra_ca_name\": \"ManagementCA\", \"vendor_certificate_mode\": true,"
    "   \"vendor_cas\": [\"VendorRootCA\"], \"response_capubs\": [\"VendorRootCA\"],"
    "   \"response_extracerts\": [\"ManagementCA\", \"VendorRootCA\"],"
    "   \"certificate_confirmation_default_ca\": \"ManagementCA\","
    "   \"allow_automatic_key_update\": true, \"allow_update_with_same_key\": true,"
    "   \"allow_server_generated_keys\": true,"
    "   \"nested_message_trusted_certs_path\": \"trusted\","
    "   \"revoke_unconfirmed\": true, \"confirm_timeout_s\": 120},\n"
    "   \"3gpp\": {}, \"tcp\": {\"mode\": \"client\"}},\n"
    " \"http\": {\"root_alias\": \"3gpp\"}, \"tcp\": {\"alias\": \"tcp\"},\n"
    " \"log\": {\"level\": \"debug\", \"format\": \"json\"},\n"
    " \"administrators\": [{\"subject\": \"CN=RA Admin,O=Example\","
    "   \"fingerprint_sha256\": \"00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\", \"ca\": \"ManagementCA\","
    "   \"end_entity_profiles\": [\"*\"], \"operations\": [\"ir\", \"kur\", \"rr\"]}]\n"
    "}\n";

static void test_full(void)
{
    const struct cg_cert_profile *p;
    const struct cg_ee_profile *e;
    const struct cg_alias *a;
    const struct cg_ca *ca;
    char want[600];
    static const uint8_t fp[32] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
                                   0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                                   0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

    TEST_OK(load_text(full_json));
    TEST_NOTNULL(cfg);
    TEST_STREQ(cfg->file, cfg_path);
    TEST_STREQ(cfg->dir, dir);
    TEST_EQ(cfg->n_listen_http, 2);
    TEST_STREQ(cfg->listen_http[1], "[::1]:80");
    TEST_EQ(cfg->n_listen_tcp, 1);
    TEST_STREQ(cfg->listen_tcp[0], "127.0.0.1:8829");
    TEST_EQ(cfg->n_listen_admin, 1);
    TEST_EQ(cfg->workers, 4);
    TEST_EQ(cfg->queue_depth, 2048);
    TEST_EQ(cfg->max_body_bytes, 2097152);
    TEST_EQ(cfg->max_header_bytes, 8192);
    TEST_EQ(cfg->idle_timeout_s, 61);
    TEST_EQ(cfg->read_timeout_s, 31);
    TEST_EQ(cfg->max_connections, 100);
    TEST_EQ(cfg->max_pbm_iterations, 5000);
    TEST_STREQ(cfg->store_path, "/var/lib/cg");
    TEST_EQ(cfg->store_map_size_mb, 64);
    TEST_EQ(cfg->store_sync, 0);
    TEST_EQ(cfg->store_commit_delay_us, 500);

    TEST_EQ(cfg->n_cas, 1);
    ca = cg_config_ca(cfg, "ManagementCA");
    TEST_NOTNULL(ca);
    TEST_NOTNULL(ca->cert);
    TEST_NOTNULL(ca->key);
    TEST_EQ(sk_X509_num(ca->chain), 1);
    TEST_STREQ(ca->cmp_ra_secret, "s3cret");
    snprintf(want, sizeof(want), "%s/ca.key", dir);
    TEST_STREQ(ca->key_file, want);
    TEST_NOTNULL(cg_config_external_ca(cfg, "VendorRootCA"));
    TEST_NOTNULL(cg_config_external_ca(cfg, "VendorRootCA")->cert);
    TEST_TRUE(cg_config_external_ca(cfg, "ManagementCA") == NULL);

    TEST_EQ(cfg->n_cert_profiles, 2); /* SERVER + built-in ENDUSER */
    p = cg_config_cert_profile(cfg, "SERVER");
    TEST_NOTNULL(p);
    TEST_EQ(p->validity_s, (365 + 180) * 86400LL);
    TEST_EQ(p->key_usage, CG_KU_DIGITAL_SIGNATURE | CG_KU_NON_REPUDIATION | CG_KU_KEY_AGREEMENT);
    TEST_EQ(p->key_usage_critical, 0);
    TEST_EQ(p->n_eku, 4);
    TEST_EQ(p->eku_nids[0], NID_server_auth);
    TEST_EQ(p->eku_nids[1], NID_OCSP_sign);
    TEST_EQ(p->eku_nids[2], OBJ_txt2nid("1.3.6.1.5.5.7.3.17"));
    TEST_TRUE(p->eku_nids[3] != NID_undef);
    TEST_EQ(p->eku_nids[3], OBJ_txt2nid("1.2.3.4.5.6.7.8.9.99"));
    TEST_EQ(p->eku_critical, 1);
    TEST_EQ(p->key_algorithms, CG_KEYALG_EC | CG_KEYALG_ED448);
    TEST_EQ(p->n_rsa_key_sizes, 1);
    TEST_EQ(p->rsa_key_sizes[0], 3072);
    TEST_EQ(p->n_ec_curves, 2);
    TEST_EQ(p->ec_curve_nids[0], NID_secp384r1);
    TEST_EQ(p->ec_curve_nids[1], NID_X9_62_prime256v1);
    TEST_EQ(p->allow_validity_override, 1);
    TEST_EQ(p->allow_key_usage_override, 1);
    TEST_EQ(p->allow_extension_override, 1);
    TEST_EQ(p->n_available_cas, 1);
    TEST_STREQ(p->available_cas[0], "ManagementCA");

    e = cg_config_ee_profile(cfg, "DEV");
    TEST_NOTNULL(e);
    TEST_EQ(e->n_required_dn, 2);
    TEST_STREQ(e->required_dn[1], "O");
    TEST_EQ(e->n_allowed_dn, 4);
    TEST_TRUE(e->available_cas == NULL);
    TEST_EQ(e->n_available_cert_profiles, 2);
    TEST_STREQ(e->default_ca, "ManagementCA");
    TEST_STREQ(e->default_cert_profile, "SERVER");
    TEST_NOTNULL(cg_config_ee_profile(cfg, "EMPTY"));

    TEST_EQ(cfg->n_aliases, 3);
    a = cg_config_alias(cfg, "opensslra");
    TEST_NOTNULL(a);
    TEST_EQ(a->mode, CG_MODE_RA);
    TEST_EQ(a->n_auth, 2);
    TEST_EQ(a->auth_modules[0], CG_AUTH_HMAC);
    TEST_EQ(a->auth_modules[1], CG_AUTH_EEC);
    TEST_STREQ(a->auth_params[0], "password");
    TEST_TRUE(a->auth_params[1] == NULL);
    TEST_STREQ(a->extract_username_component, "CN");
    TEST_EQ(a->response_protection, CG_PROT_PBE);
    TEST_EQ(a->allow_ra_verify_popo, 1);
    TEST_EQ(a->ra_name_scheme, CG_RANAME_FIXED);
    TEST_STREQ(a->ra_name_params, "dev1");
    TEST_STREQ(a->ra_name_prefix, "pre-");
    TEST_STREQ(a->ra_ee_profile, "DEV");
    TEST_STREQ(a->ra_cert_profile, CG_KEYID);
    TEST_STREQ(a->ra_ca_name, "ManagementCA");
    TEST_EQ(a->vendor_certificate_mode, 1);
    TEST_EQ(a->n_vendor_cas, 1);
    TEST_EQ(a->n_response_capubs, 1);
    TEST_EQ(a->n_response_extracerts, 2);
    TEST_STREQ(a->response_extracerts[1], "VendorRootCA");
    TEST_STREQ(a->certificate_confirmation_default_ca, "ManagementCA");
    TEST_EQ(a->allow_automatic_key_update, 1);
    TEST_EQ(a->allow_update_with_same_key, 1);
    TEST_EQ(a->allow_server_generated_keys, 1);
    snprintf(want, sizeof(want), "%s/trusted", dir);
    TEST_STREQ(a->nested_message_trusted_certs_path, want);
    TEST_EQ(a->revoke_unconfirmed, 1);
    TEST_EQ(a->confirm_timeout_s, 120);
    TEST_EQ(cg_config_alias(cfg, "tcp")->mode, CG_MODE_CLIENT);
    TEST_TRUE(cg_config_alias(cfg, "nope") == NULL);

    TEST_STREQ(cfg->http_root_alias, "3gpp");
    TEST_STREQ(cfg->tcp_alias, "tcp");
    TEST_EQ(cfg->log_level, CG_LOG_DEBUG);
    TEST_EQ(cfg->log_json, 1);
    TEST_EQ(cfg->n_administrators, 1);
    TEST_STREQ(cfg->administrators[0].subject, "CN=RA Admin,O=Example");
    TEST_EQ(cfg->administrators[0].has_fingerprint, 1);
    TEST_MEMEQ(cfg->administrators[0].fingerprint, fp, 32);
    TEST_STREQ(cfg->administrators[0].ca, "ManagementCA");
    TEST_EQ(cfg->administrators[0].n_ee_profiles, 1);
    TEST_STREQ(cfg->administrators[0].ee_profiles[0], "*");
    TEST_EQ(cfg->administrators[0].n_operations, 3);
    TEST_STREQ(cfg->administrators[0].operations[1], "kur");
}

static void test_defaults(void)
{
    const struct cg_cert_profile *p;
    const struct cg_ee_profile *e;
    const struct cg_alias *a;
    char want[600];

    TEST_OK(load_text("{" CAS ", \"aliases\": {\"ra\": {\"mode\": \"ra\"}}}"));
    TEST_EQ(cfg->n_listen_http, 1);
    TEST_STREQ(cfg->listen_http[0], "127.0.0.1:8080");
    TEST_EQ(cfg->n_listen_tcp, 0);
    TEST_EQ(cfg->n_listen_admin, 0);
    TEST_EQ(cfg->workers, 0);
    TEST_EQ(cfg->queue_depth, 1024);
    TEST_EQ(cfg->max_body_bytes, 1048576);
    TEST_EQ(cfg->max_header_bytes, 16384);
    TEST_EQ(cfg->idle_timeout_s, 60);
    TEST_EQ(cfg->read_timeout_s, 30);
    TEST_EQ(cfg->max_connections, 4096);
    TEST_EQ(cfg->max_pbm_iterations, 100000);
    snprintf(want, sizeof(want), "%s/store", dir);
    TEST_STREQ(cfg->store_path, want);
    TEST_EQ(cfg->store_map_size_mb, 1024);
    TEST_EQ(cfg->store_sync, 1);
    TEST_EQ(cfg->store_commit_delay_us, 2000);
    TEST_EQ(sk_X509_num(cfg->cas[0].chain), 0);
    TEST_TRUE(cfg->cas[0].cmp_ra_secret == NULL);
    TEST_EQ(cfg->n_external_cas, 0);
    TEST_TRUE(cfg->http_root_alias == NULL);
    TEST_STREQ(cfg->tcp_alias, "tcp"); /* no alias "tcp", but listen.tcp is empty */
    TEST_EQ(cfg->log_level, CG_LOG_INFO);
    TEST_EQ(cfg->log_json, 0);
    TEST_EQ(cfg->n_administrators, 0);

    TEST_EQ(cfg->n_cert_profiles, 1);
    p = cg_config_cert_profile(cfg, "ENDUSER");
    TEST_NOTNULL(p);
    TEST_EQ(p->validity_s, 730 * 86400LL);
    TEST_EQ(p->key_usage, CG_KU_DIGITAL_SIGNATURE | CG_KU_KEY_ENCIPHERMENT);
    TEST_EQ(p->key_usage_critical, 1);
    TEST_EQ(p->n_eku, 2);
    TEST_EQ(p->eku_nids[0], NID_client_auth);
    TEST_EQ(p->eku_nids[1], NID_email_protect);
    TEST_EQ(p->eku_critical, 0);
    TEST_EQ(p->key_algorithms, CG_KEYALG_RSA | CG_KEYALG_EC | CG_KEYALG_ED25519);
    TEST_EQ(p->n_rsa_key_sizes, 3);
    TEST_EQ(p->rsa_key_sizes[2], 4096);
    TEST_EQ(p->n_ec_curves, 3);
    TEST_EQ(p->ec_curve_nids[2], NID_secp521r1);
    TEST_EQ(p->allow_validity_override + p->allow_key_usage_override + p->allow_extension_override,
            0);
    TEST_TRUE(p->available_cas == NULL);

    TEST_EQ(cfg->n_ee_profiles, 1);
    e = cg_config_ee_profile(cfg, "EMPTY");
    TEST_NOTNULL(e);
    TEST_EQ(e->n_required_dn, 1);
    TEST_STREQ(e->required_dn[0], "CN");
    TEST_TRUE(e->allowed_dn == NULL);
    TEST_TRUE(e->available_cas == NULL);
    TEST_TRUE(e->available_cert_profiles == NULL);
    TEST_STREQ(e->default_ca, "ManagementCA");
    TEST_STREQ(e->default_cert_profile, "ENDUSER");

    a = cg_config_alias(cfg, "ra");
    TEST_NOTNULL(a);
    TEST_EQ(a->n_auth, 1);
    TEST_EQ(a->auth_modules[0], CG_AUTH_HMAC);
    TEST_TRUE(a->auth_params[0] == NULL);
    TEST_STREQ(a->extract_username_component, "DN");
    TEST_EQ(a->response_protection, CG_PROT_SIGNATURE);
    TEST_EQ(a->ra_name_scheme, CG_RANAME_DN);
    TEST_STREQ(a->ra_name_params, "CN");
    TEST_TRUE(a->ra_name_prefix == NULL);
    TEST_STREQ(a->ra_ee_profile, "EMPTY");
    TEST_STREQ(a->ra_cert_profile, "ENDUSER");
    TEST_STREQ(a->ra_ca_name, "ManagementCA");
    TEST_EQ(a->n_vendor_cas + a->n_response_capubs + a->n_response_extracerts, 0);
    TEST_TRUE(a->certificate_confirmation_default_ca == NULL);
    TEST_TRUE(a->nested_message_trusted_certs_path == NULL);
    TEST_EQ(a->revoke_unconfirmed, 0);
    TEST_EQ(a->confirm_timeout_s, 300);
}

static void test_only_cas(void)
{
    TEST_OK(load_text("{" CAS "}"));
    TEST_EQ(cfg->n_aliases, 0);
    TEST_NOTNULL(cg_config_cert_profile(cfg, "ENDUSER"));
    TEST_NOTNULL(cg_config_ee_profile(cfg, "EMPTY"));
    /* a user ENDUSER replaces the built-in one; omitted fields take their defaults */
    TEST_OK(
        load_text("{" CAS ", \"certificate_profiles\": {\"ENDUSER\": {\"validity\": \"1d\"}}}"));
    TEST_EQ(cfg->n_cert_profiles, 1);
    TEST_EQ(cfg->cert_profiles[0].validity_s, 86400);
    TEST_EQ(cfg->cert_profiles[0].n_eku, 0);
    TEST_EQ(cfg->cert_profiles[0].key_usage, CG_KU_DIGITAL_SIGNATURE | CG_KU_KEY_ENCIPHERMENT);
}

static void test_unknown_key(void)
{
    EXPECT_ERR("{" CAS ", \"wokers\": 2}", "wokers: unknown key");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"mode\": \"ra\", \"ra_caname\": \"x\"}}}",
               "aliases.a.ra_caname: unknown key");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validty\": \"1d\"}}}",
               "certificate_profiles.P.validty: unknown key");
    EXPECT_ERR("{\"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.pem\", \"key_file\": "
               "\"ca.key\", \"secret\": \"x\"}}}",
               "cas.ManagementCA.secret: unknown key");
    EXPECT_ERR("{" CAS ", \"limits\": {\"max_body\": 1}}", "limits.max_body: unknown key");
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\", \"ca\": "
               "\"ManagementCA\", \"op\": []}]}",
               "administrators[0].op: unknown key");
}

static void test_wrong_type(void)
{
    EXPECT_ERR("{" CAS ", \"workers\": \"4\"}", "workers: must be an integer");
    EXPECT_ERR("{" CAS ", \"workers\": 1.5}", "workers: must be an integer");
    EXPECT_ERR("{" CAS ", \"store\": {\"sync\": 1}}", "store.sync: must be a boolean");
    EXPECT_ERR("{" CAS ", \"limits\": []}", "limits: must be an object");
    EXPECT_ERR("{" CAS ", \"listen\": {\"http\": \"127.0.0.1:80\"}}",
               "listen.http: must be a list of strings");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"vendor_cas\": [1]}}}",
               "aliases.a.vendor_cas: must be a list of strings");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"ra_ca_name\": 7}}}",
               "aliases.a.ra_ca_name: must be a string");
    EXPECT_ERR("{" CAS ", \"end_entity_profiles\": {\"E\": {\"available_cas\": \"all\"}}}",
               "end_entity_profiles.E.available_cas: must be \"*\" or a list of strings");
    EXPECT_ERR("{" CAS ", \"administrators\": {}}", "administrators: must be a list of objects");
    EXPECT_ERR("[1]", "(root): must be an object");
}

static void test_ranges(void)
{
    EXPECT_ERR("{" CAS ", \"workers\": 257}", "workers: must be between 0 and 256");
    EXPECT_ERR("{" CAS ", \"queue_depth\": 0}", "queue_depth: must be between 1 and 1000000");
    EXPECT_ERR("{" CAS ", \"limits\": {\"max_body_bytes\": 100}}",
               "limits.max_body_bytes: must be between 256 and 67108864");
    EXPECT_ERR("{" CAS ", \"limits\": {\"idle_timeout_s\": 0}}",
               "limits.idle_timeout_s: must be between 1 and 86400");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"confirm_timeout_s\": 86401}}}",
               "aliases.a.confirm_timeout_s: must be between 1 and 86400");
    EXPECT_ERR("{" CAS ", \"store\": {\"commit_delay_us\": -1}}",
               "store.commit_delay_us: must be between 0 and 1000000");
    EXPECT_ERR("{" CAS ", \"listen\": {\"tcp\": [\"127.0.0.1:65536\"]}}",
               "listen.tcp[0]: must be host:port (port 0..65535)");
    EXPECT_ERR("{" CAS ", \"listen\": {\"admin\": [\"::1:80\"]}}",
               "listen.admin[0]: must be host:port (port 0..65535)");
    TEST_OK(load_text("{" CAS ", \"listen\": {\"http\": [\"[::1]:0\", \"localhost:65535\"]}}"));
}

static void test_bad_enum(void)
{
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"mode\": \"server\"}}}",
               "aliases.a.mode: must be one of client, ra");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"response_protection\": \"mac\"}}}",
               "aliases.a.response_protection: must be one of signature, pbe");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"ra_name_generation_scheme\": \"dn\"}}}",
               "aliases.a.ra_name_generation_scheme: must be one of DN, RANDOM, FIXED, USERNAME");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": [\"HMAC\", "
               "\"hmac\"]}}}",
               "aliases.a.authentication_modules[1]: must be one of RegTokenPwd, DnPartPwd, "
               "HMAC, EndEntityCertificate");
    EXPECT_ERR("{" CAS ", \"log\": {\"level\": \"trace\"}}",
               "log.level: must be one of error, warn, info, debug");
    EXPECT_ERR("{" CAS ", \"log\": {\"format\": \"xml\"}}",
               "log.format: must be one of text, json");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"key_usage\": [\"digitalSignature\", "
               "\"sign\"]}}}",
               "certificate_profiles.P.key_usage[1]: must be one of digitalSignature, "
               "nonRepudiation, contentCommitment, keyEncipherment, dataEncipherment, "
               "keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"extended_key_usage\": "
               "[\"anyEKU\"]}}}",
               "certificate_profiles.P.extended_key_usage[0]: must be one of serverAuth, "
               "clientAuth, codeSigning, emailProtection, timeStamping, OCSPSigning or a dotted "
               "OID");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"key_algorithms\": [\"DSA\"]}}}",
               "certificate_profiles.P.key_algorithms[0]: must be one of RSA, EC, Ed25519, Ed448");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"ec_curves\": [\"P-192\"]}}}",
               "certificate_profiles.P.ec_curves[0]: must be one of P-256, P-384, P-521, "
               "prime256v1, secp256r1, secp384r1, secp521r1");
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\", \"ca\": \"ManagementCA\", "
               "\"operations\": [\"genm\"]}]}",
               "administrators[0].operations[0]: must be one of ir, cr, p10cr, kur, rr");
}

static void test_files(void)
{
    char want[1024];

    snprintf(want, sizeof(want),
             "cas.ManagementCA.cert_file: cannot read %s/nope.pem: No such "
             "file or directory",
             dir);
    EXPECT_ERR("{\"cas\": {\"ManagementCA\": {\"cert_file\": \"nope.pem\", \"key_file\": "
               "\"ca.key\"}}}",
               want);
    EXPECT_ERR("{\"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.pem\", \"key_file\": "
               "\"/nonexistent/ca.key\"}}}",
               "cas.ManagementCA.key_file: cannot read /nonexistent/ca.key: No such file or "
               "directory");
    EXPECT_ERR("{\"cas\": {\"ManagementCA\": {\"key_file\": \"ca.key\"}}}",
               "cas.ManagementCA.cert_file: is required");
    EXPECT_ERR("{\"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.pem\", \"key_file\": "
               "\"other.key\"}}}",
               "cas.ManagementCA.key_file: key does not match certificate");
    snprintf(want, sizeof(want),
             "cas.ManagementCA.chain_file: cannot read %s/no-chain.pem: No "
             "such file or directory",
             dir);
    EXPECT_ERR("{\"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.pem\", \"key_file\": "
               "\"ca.key\", \"chain_file\": \"no-chain.pem\"}}}",
               want);
    snprintf(want, sizeof(want),
             "external_cas.V.cert_file: cannot read %s/v.pem: No such file "
             "or directory",
             dir);
    EXPECT_ERR("{" CAS ", \"external_cas\": {\"V\": {\"cert_file\": \"v.pem\"}}}", want);
    /* a key file in place of a certificate */
    TEST_RC(load_text("{\"cas\": {\"ManagementCA\": {\"cert_file\": \"ca.key\", \"key_file\": "
                      "\"ca.key\"}}}"),
            CG_ECONFIG);
    TEST_TRUE(strstr(err, "cas.ManagementCA.cert_file: no PEM certificate in ") != NULL);
    EXPECT_ERR("{\"cas\": {}}", "cas: at least one CA is required in \"cas\"");
    EXPECT_ERR("{}", "(root): at least one CA is required in \"cas\"");
}

static void test_key_permissions(void)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/ca.key", dir);
    TEST_OK(chmod(path, 0644));
    EXPECT_ERR("{" CAS "}", "cas.ManagementCA.key_file: key file is readable by group or others "
                            "(chmod 600)");
    TEST_OK(chmod(path, 0640));
    EXPECT_ERR("{" CAS "}", "cas.ManagementCA.key_file: key file is readable by group or others "
                            "(chmod 600)");
    TEST_OK(chmod(path, 0400));
    TEST_OK(load_text("{" CAS "}"));
}

static void test_unknown_reference(void)
{
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"ra_certificate_profile\": \"NOPE\"}}}",
               "aliases.a.ra_certificate_profile: unknown certificate profile \"NOPE\"");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"ra_end_entity_profile\": \"NOPE\"}}}",
               "aliases.a.ra_end_entity_profile: unknown end entity profile \"NOPE\"");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"ra_ca_name\": \"OtherCA\"}}}",
               "aliases.a.ra_ca_name: unknown CA \"OtherCA\"");
    TEST_OK(load_text("{" CAS ", \"aliases\": {\"a\": {\"ra_ca_name\": \"KeyId\", "
                      "\"ra_end_entity_profile\": \"KeyId\"}}}"));
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"vendor_cas\": [\"ManagementCA\"]}}}",
               "aliases.a.vendor_cas[0]: unknown external CA \"ManagementCA\"");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"response_capubs\": [\"ManagementCA\", "
               "\"X\"]}}}",
               "aliases.a.response_capubs[1]: unknown CA \"X\"");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"certificate_confirmation_default_ca\": "
               "\"X\"}}}",
               "aliases.a.certificate_confirmation_default_ca: unknown CA \"X\"");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"available_cas\": [\"X\"]}}}",
               "certificate_profiles.P.available_cas[0]: unknown CA \"X\"");
    EXPECT_ERR("{" CAS ", \"end_entity_profiles\": {\"E\": {\"default_certificate_profile\": "
               "\"P\"}}}",
               "end_entity_profiles.E.default_certificate_profile: unknown certificate profile "
               "\"P\"");
    EXPECT_ERR("{" CAS ", \"end_entity_profiles\": {\"E\": {\"available_certificate_profiles\": "
               "[\"ENDUSER\", \"P\"]}}}",
               "end_entity_profiles.E.available_certificate_profiles[1]: unknown certificate "
               "profile \"P\"");
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\", \"ca\": \"X\"}]}",
               "administrators[0].ca: unknown CA \"X\"");
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\", \"ca\": \"ManagementCA\", "
               "\"end_entity_profiles\": [\"*\", \"E\"]}]}",
               "administrators[0].end_entity_profiles[1]: unknown end entity profile \"E\"");
    EXPECT_ERR("{" CAS ", \"http\": {\"root_alias\": \"3gpp\"}}",
               "http.root_alias: unknown alias \"3gpp\"");
    /* tcp.alias may be missing only while nothing listens on TCP */
    TEST_OK(load_text("{" CAS ", \"tcp\": {\"alias\": \"cmp\"}}"));
    EXPECT_ERR("{" CAS ", \"listen\": {\"tcp\": [\"127.0.0.1:8829\"]}}",
               "tcp.alias: unknown alias \"tcp\"");
    TEST_OK(load_text("{" CAS ", \"listen\": {\"tcp\": [\"127.0.0.1:8829\"]}, \"aliases\": "
                      "{\"tcp\": {}}}"));
}

static void test_alias_name(void)
{
    EXPECT_ERR("{" CAS ", \"aliases\": {\"bad name\": {}}}",
               "aliases.bad name: invalid alias name (1..64 characters of A-Z a-z 0-9 _ . -)");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"\": {}}}",
               "aliases.: invalid alias name (1..64 characters of A-Z a-z 0-9 _ . -)");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a/b\": {}}}",
               "aliases.a/b: invalid alias name (1..64 characters of A-Z a-z 0-9 _ . -)");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a123456789012345678901234567890123456789012345678901234"
               "5678901234\": {}}}",
               "aliases.a1234567890123456789012345678901234567890123456789012345678901234: "
               "invalid alias name (1..64 characters of A-Z a-z 0-9 _ . -)");
    TEST_OK(load_text("{" CAS ", \"aliases\": {\"a12345678901234567890123456789012345678901234567"
                      "8901234567890.-_\": {}}}"));
}

static void test_auth_modules(void)
{
    const struct cg_alias *a;

    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": [\"HMAC\", "
               "\"EndEntityCertificate\"], \"authentication_parameters\": [\"pw\"]}}}",
               "aliases.a.authentication_parameters: must have one entry per authentication "
               "module (2 modules, 1 parameters)");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"authentication_parameters\": \"a;b\"}}}",
               "aliases.a.authentication_parameters: must have one entry per authentication "
               "module (1 modules, 2 parameters)");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": []}}}",
               "aliases.a.authentication_modules: must name at least one module");
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": 1}}}",
               "aliases.a.authentication_modules: must be a string or a list of strings");

    /* EJBCA style: one string separated by ';' */
    TEST_OK(load_text("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": "
                      "\"RegTokenPwd;HMAC; EndEntityCertificate\", "
                      "\"authentication_parameters\": \"-;foo123;ManagementCA\"}}}"));
    a = cg_config_alias(cfg, "a");
    TEST_NOTNULL(a);
    TEST_EQ(a->n_auth, 3);
    TEST_EQ(a->auth_modules[0], CG_AUTH_REGTOKENPWD);
    TEST_EQ(a->auth_modules[1], CG_AUTH_HMAC);
    TEST_EQ(a->auth_modules[2], CG_AUTH_EEC);
    TEST_TRUE(a->auth_params[0] == NULL);
    TEST_STREQ(a->auth_params[1], "foo123");
    TEST_STREQ(a->auth_params[2], "ManagementCA");

    /* modules without parameters → all NULL */
    TEST_OK(load_text("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": "
                      "\"DnPartPwd;HMAC\"}}}"));
    a = cg_config_alias(cfg, "a");
    TEST_EQ(a->n_auth, 2);
    TEST_EQ(a->auth_modules[0], CG_AUTH_DNPARTPWD);
    TEST_TRUE(a->auth_params[0] == NULL && a->auth_params[1] == NULL);
    EXPECT_ERR("{" CAS ", \"aliases\": {\"a\": {\"authentication_modules\": \"HMAC;Foo\"}}}",
               "aliases.a.authentication_modules[1]: must be one of RegTokenPwd, DnPartPwd, "
               "HMAC, EndEntityCertificate");
}

static void test_json_syntax(void)
{
    char missing[600];
    int rc;

    EXPECT_ERR("{\n  \"cas\": {,\n}", "(root): line 2 column 11: string or '}' expected near ','");
    EXPECT_ERR("{" CAS ", \"cas\": {}}",
               "(root): line 1 column 78: duplicate object key near '\"cas\"'");
    snprintf(missing, sizeof(missing), "%s/none.json", dir);
    rc = cg_config_load(missing, &cfg, err, sizeof(err));
    TEST_RC(rc, CG_EIO);
    TEST_TRUE(cfg == NULL);
    TEST_TRUE(strstr(err, ": (root): cannot read ") != NULL);
    TEST_TRUE(strstr(err, "No such file or directory") != NULL);
}

static void test_validity(void)
{
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"\"}}}",
               "certificate_profiles.P.validity: invalid duration \"\" (use <n>y|mo|d|h|m|s, "
               "e.g. 730d, 1y6mo)");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"12\"}}}",
               "certificate_profiles.P.validity: invalid duration \"12\" (use <n>y|mo|d|h|m|s, "
               "e.g. 730d, 1y6mo)");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"5w\"}}}",
               "certificate_profiles.P.validity: invalid duration \"5w\" (use <n>y|mo|d|h|m|s, "
               "e.g. 730d, 1y6mo)");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"d\"}}}",
               "certificate_profiles.P.validity: invalid duration \"d\" (use <n>y|mo|d|h|m|s, "
               "e.g. 730d, 1y6mo)");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"1y 6mo\"}}}",
               "certificate_profiles.P.validity: invalid duration \"1y 6mo\" (use "
               "<n>y|mo|d|h|m|s, e.g. 730d, 1y6mo)");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"0d0h\"}}}",
               "certificate_profiles.P.validity: must be greater than 0");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": "
               "\"99999999999999999999y\"}}}",
               "certificate_profiles.P.validity: \"99999999999999999999y\" is too long (at "
               "most 1000y)");
    EXPECT_ERR("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": 730}}}",
               "certificate_profiles.P.validity: must be a string");
    TEST_OK(load_text("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": "
                      "\"1y2mo3d4h5m6s\"}}}"));
    TEST_EQ(cg_config_cert_profile(cfg, "P")->validity_s,
            365 * 86400LL + 60 * 86400LL + 3 * 86400LL + 4 * 3600 + 5 * 60 + 6);
    TEST_OK(load_text("{" CAS ", \"certificate_profiles\": {\"P\": {\"validity\": \"90m\"}}}"));
    TEST_EQ(cg_config_cert_profile(cfg, "P")->validity_s, 5400);
}

static void test_admin(void)
{
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"ca\": \"ManagementCA\"}]}",
               "administrators[0].subject: is required");
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\"}]}",
               "administrators[0].ca: is required");
    EXPECT_ERR("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\", \"ca\": \"ManagementCA\", "
               "\"fingerprint_sha256\": \"abcd\"}]}",
               "administrators[0].fingerprint_sha256: must be 64 hex digits (colons allowed)");
    EXPECT_ERR("{" CAS ", \"administrators\": [7]}", "administrators[0]: must be an object");
    TEST_OK(load_text("{" CAS ", \"administrators\": [{\"subject\": \"CN=a\", \"ca\": "
                      "\"ManagementCA\"}]}"));
    TEST_EQ(cfg->administrators[0].has_fingerprint, 0);
    TEST_EQ(cfg->administrators[0].n_operations, 5);
    TEST_STREQ(cfg->administrators[0].ee_profiles[0], "*");
}

static void test_refcount(void)
{
    struct cg_config *c2;

    TEST_OK(load_text("{" CAS "}"));
    c2 = cg_config_ref(cfg);
    TEST_TRUE(c2 == cfg);
    cg_config_unref(cfg); /* still held by c2 */
    TEST_STREQ(c2->cas[0].name, "ManagementCA");
    cfg = c2; /* tear_down drops the last reference (ASan checks it is freed once) */
    cg_config_unref(NULL);
    TEST_TRUE(cg_config_ref(NULL) == NULL);
}

CG_TESTS = {
    CG_TEST("config/full", test_full),
    CG_TEST("config/defaults", test_defaults),
    CG_TEST("config/only_cas", test_only_cas),
    CG_TEST("config/unknown_key", test_unknown_key),
    CG_TEST("config/wrong_type", test_wrong_type),
    CG_TEST("config/ranges", test_ranges),
    CG_TEST("config/bad_enum", test_bad_enum),
    CG_TEST("config/files", test_files),
    CG_TEST("config/key_permissions", test_key_permissions),
    CG_TEST("config/unknown_reference", test_unknown_reference),
    CG_TEST("config/alias_name", test_alias_name),
    CG_TEST("config/auth_modules", test_auth_modules),
    CG_TEST("config/json_syntax", test_json_syntax),
    CG_TEST("config/validity", test_validity),
    CG_TEST("config/admin", test_admin),
    CG_TEST("config/refcount", test_refcount),
};

/* The harness's main() keeps counters across setjmp; gcc -O2 warns they "might be
 * clobbered", which is harmless there (they are not modified between setjmp and longjmp). */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning */
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
CG_TEST_MAIN(set_up, tear_down)
