/*
 * fuzz_core.c - fuzz target: the whole core path, request bytes to response bytes.
 *
 * DESIGN: LLVMFuzzerTestOneInput (1) decodes the input with d2i_CG_PKIMESSAGE and, when it
 * decodes, re-encodes it with i2d, decodes that again and checks that the second encoding is
 * byte-identical to the first (the templates round-trip), and checks that whatever fastdec.c's
 * hand decoder takes the templates take too, field for field the same (cg_testmsg.h); (2)
 * asks cg_core_is_der and reads
 * the input's PBM parameters in place (cg_core_pbm_hint: a hint within its bounds); (3) hands
 * the raw input to cg_core_process on each of a fixed set of aliases: "opensslra" (RA mode,
 * HMAC "password", nested messages trusted from the RA root), "opensslclient" (client mode,
 * HMAC with the end entity's code) and "openssleec" (client mode, EndEntityCertificate), and
 * checks the result's invariants (CG_OK or an allocation/internal failure; a 200 carries a
 * response that decodes as a PKIMessage; a non-200 carries no DER; the text fields are
 * NUL-terminated).
 * The configuration, the CA (the fixed test CA of test/fuzz/ca, so that the seed corpus made
 * by gen_corpus.sh against the same CA passes signature checks and reaches deep code) and
 * the store are created once, in a mkdtemp directory, with one pre-registered end entity
 * "fuzzuser" (code "fuzzcode") and two issued certificates of gen_corpus.sh (seed-ir, the
 * signer of the kur seed; seed-ed, the subject of the rr seed). CG_FUZZ_VERBOSE=1 prints each
 * answer (to check the seeds). State accumulates in the store across inputs; that is accepted
 * (transactions in use, issued certificates): the target looks for crashes, leaks and sanitizer
 * reports, not for outcomes. The directory is removed at exit.
 */
#include "cg_config.h"
#include "cg_core.h"
#include "cg_err.h"
#include "cg_log.h"
#include "cg_store.h"
#include "cmp_asn.h"
#include "core_local.h"
#include "cg_testdir.h"
#include "cg_testmsg.h"

#include <openssl/pem.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef CG_FUZZ_CA_DIR
#error "CG_FUZZ_CA_DIR must name test/fuzz/ca"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[256];
static struct cg_config *g_cfg;
static struct cg_store *g_store;
static struct cg_core *g_core;

static int g_verbose; /* CG_FUZZ_VERBOSE=1: one line per answer on stderr */
static const char *const g_aliases[] = {"opensslra", "opensslclient", "openssleec"};

static const char cfg_text[] =
    "{\n"
    "  \"listen\": {\"http\": [\"127.0.0.1:0\"], \"admin\": [\"127.0.0.1:0\"]},\n"
    "  \"workers\": 1,\n"
    "  \"queue_depth\": 16,\n"
    "  \"limits\": {\"max_body_bytes\": 1048576, \"max_header_bytes\": 16384,\n"
    "             \"idle_timeout_s\": 60, \"read_timeout_s\": 30,\n"
    "             \"max_connections\": 64, \"max_pbm_iterations\": 10000},\n"
    "  \"store\": {\"path\": \"store\", \"map_size_mb\": 2048, \"sync\": false},\n"
    "  \"cas\": {\"ManagementCA\": {\"cert_file\": \"ManagementCA.cacert.pem\",\n"
    "                             \"key_file\": \"ca/ManagementCA.key.pem\"}},\n"
    "  \"certificate_profiles\": {\n"
    "    \"ENDUSER\": {\"validity\": \"730d\", \"key_usage\": [\"digitalSignature\", "
    "\"keyEncipherment\"],\n"
    "                \"extended_key_usage\": [\"clientAuth\", \"emailProtection\"],\n"
    "                \"key_algorithms\": [\"RSA\", \"EC\", \"Ed25519\"],\n"
    "                \"rsa_key_sizes\": [2048, 3072, 4096],\n"
    "                \"ec_curves\": [\"P-256\", \"P-384\", \"P-521\"]}\n"
    "  },\n"
    "  \"end_entity_profiles\": {\n"
    "    \"EMPTY\": {\"required_dn_attributes\": [\"CN\"], \"allowed_dn_attributes\": \"*\",\n"
    "              \"available_cas\": [\"ManagementCA\"],\n"
    "              \"available_certificate_profiles\": [\"ENDUSER\"],\n"
    "              \"default_ca\": \"ManagementCA\", \"default_certificate_profile\": "
    "\"ENDUSER\"}\n"
    "  },\n"
    "  \"aliases\": {\n"
    "    \"opensslra\": {\"mode\": \"ra\", \"authentication_modules\": [\"HMAC\"],\n"
    "      \"authentication_parameters\": [\"password\"], \"response_protection\": \"pbe\",\n"
    "      \"allow_ra_verify_popo\": true, \"ra_name_generation_scheme\": \"DN\",\n"
    "      \"ra_name_generation_parameters\": \"CN\", \"ra_end_entity_profile\": \"EMPTY\",\n"
    "      \"ra_certificate_profile\": \"ENDUSER\", \"ra_ca_name\": \"ManagementCA\",\n"
    "      \"nested_message_trusted_certs_path\": \"raroot.pem\"},\n"
    "    \"opensslclient\": {\"mode\": \"client\", \"authentication_modules\": [\"HMAC\"],\n"
    "      \"authentication_parameters\": [\"\"], \"extract_username_component\": \"CN\",\n"
    "      \"response_protection\": \"signature\"},\n"
    "    \"openssleec\": {\"mode\": \"client\", \"authentication_modules\": "
    "[\"EndEntityCertificate\"],\n"
    "      \"authentication_parameters\": [\"ManagementCA\"], \"extract_username_component\": "
    "\"CN\",\n"
    "      \"response_protection\": \"signature\", \"allow_automatic_key_update\": true}\n"
    "  },\n"
    "  \"log\": {\"level\": \"error\", \"format\": \"text\"}\n"
    "}\n";

static void die(const char *what)
{
    fprintf(stderr, "fuzz_core setup: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[8192];
    size_t n;
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    if (in == NULL || out == NULL)
        die(in == NULL ? from : to);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            die(to);
    fclose(in);
    if (fclose(out) != 0 || chmod(to, mode) != 0)
        die(to);
}

static void tear_down(void)
{
    cg_core_free(g_core);
    g_core = NULL;
    cg_store_close(g_store);
    g_store = NULL;
    cg_config_unref(g_cfg);
    g_cfg = NULL;
    if (g_dir[0] != '\0')
        cg_test_rmtree(g_dir);
    g_dir[0] = '\0';
}

static void add_entity(const char *user, const char *code, const char *dn_text, int status,
                       const char *cert_file)
{
    char dn[256];
    struct cg_entity *e = cg_entity_new();
    struct cg_store_batch *b = cg_store_batch_new();
    if (e == NULL || b == NULL)
        die("entity");
    if (dn_text != NULL)
        snprintf(dn, sizeof(dn), "%s", dn_text);
    else
        snprintf(dn, sizeof(dn), "CN=%s,O=EJBCA Sample,C=SE", user);
    e->username = strdup(user);
    e->subject_dn = strdup(dn);
    e->ca = strdup("ManagementCA");
    e->ee_profile = strdup("EMPTY");
    e->cert_profile = strdup("ENDUSER");
    e->password = code != NULL ? strdup(code) : NULL;
    e->token_type = strdup("USERGENERATED");
    e->status = status;
    e->created = e->modified = time(NULL);
    if (cg_store_batch_put_entity(b, e, CG_VERSION_NONE) != CG_OK)
        die("register entity");
    if (cert_file != NULL) {
        /* a certificate issued by gen_corpus.sh with the same CA: the signer of the kur and
         * signature-protected cr seeds, and the subject of the rr seed */
        FILE *f = fopen(cert_file, "r");
        X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        struct cg_cert_rec *c = cg_cert_rec_new();
        if (f != NULL)
            fclose(f);
        if (x == NULL || c == NULL || ca_cert_rec_fill_(x, "ManagementCA", user, c) != CG_OK ||
            cg_store_batch_add_cert(b, c) != CG_OK)
            die(cert_file);
        cg_cert_rec_free(c);
        X509_free(x);
    }
    if (cg_store_commit(g_store, b) != CG_OK)
        die("commit entity");
    cg_store_batch_free(b);
    cg_entity_free(e);
}

static void set_up(void)
{
    char path[512], err[1024];
    cg_log_setup(-1, 0); /* silent: a fuzzer provokes millions of rejections */
    snprintf(g_dir, sizeof(g_dir), "%s/cg_fuzz_core.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g_dir) == NULL)
        die("mkdtemp");
    snprintf(path, sizeof(path), "%s/ca", g_dir);
    if (mkdir(path, 0700) != 0)
        die("mkdir ca");
    snprintf(path, sizeof(path), "%s/ca/ManagementCA.key.pem", g_dir);
    copy_file(CG_FUZZ_CA_DIR "/ManagementCA.key.pem", path, 0600);
    snprintf(path, sizeof(path), "%s/ManagementCA.cacert.pem", g_dir);
    copy_file(CG_FUZZ_CA_DIR "/ManagementCA.cacert.pem", path, 0644);
    snprintf(path, sizeof(path), "%s/raroot.pem", g_dir);
    copy_file(CG_FUZZ_CA_DIR "/raroot.pem", path, 0644);
    snprintf(path, sizeof(path), "%s/cmpgate.json", g_dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(cfg_text, f) < 0 || fclose(f) != 0 || chmod(path, 0600) != 0)
        die(path);
    if (cg_config_load(path, &g_cfg, err, sizeof(err)) != CG_OK)
        die(err);
    cg_log_setup(-1, 0);
    struct cg_store_opts so = {g_cfg->store_path, g_cfg->store_map_size_mb, g_cfg->store_sync, 0};
    if (cg_store_open(&so, &g_store) != CG_OK)
        die("cg_store_open");
    if (cg_core_new(g_cfg, g_store, &g_core) != CG_OK)
        die("cg_core_new");
    add_entity("fuzzuser", "fuzzcode", NULL, CG_EE_NEW, NULL);
    add_entity("seed-ir", NULL, "CN=seed-ir,O=Fuzz", CG_EE_GENERATED,
               CG_FUZZ_CA_DIR "/seed-ir.cert.pem");
    add_entity("seed-ed", NULL, "CN=seed-ed,O=Fuzz", CG_EE_GENERATED,
               CG_FUZZ_CA_DIR "/seed-ed.cert.pem");
    atexit(tear_down);
    g_verbose = getenv("CG_FUZZ_VERBOSE") != NULL;
    ERR_clear_error();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_core == NULL)
        set_up();
    return 0;
}

static void check_text(const char *s, size_t n)
{
    if (memchr(s, '\0', n) == NULL)
        abort(); /* a result text field is not NUL-terminated */
}

/* d2i, i2d, d2i, i2d: the two encodings must be identical. */
static void round_trip(const uint8_t *data, size_t size)
{
    const unsigned char *p = data;
    CG_PKIMESSAGE *m = d2i_CG_PKIMESSAGE(NULL, &p, (long)size);
    if (m == NULL)
        return;
    if (p < data || p > data + size)
        abort(); /* d2i consumed more than it was given */
    unsigned char *der1 = NULL, *der2 = NULL;
    int n1 = i2d_CG_PKIMESSAGE(m, &der1);
    if (n1 > 0) {
        const unsigned char *q = der1;
        CG_PKIMESSAGE *m2 = d2i_CG_PKIMESSAGE(NULL, &q, n1);
        /* a re-encoding that no longer decodes is a template bug */
        if (m2 == NULL || q != der1 + n1)
            abort();
        int n2 = i2d_CG_PKIMESSAGE(m2, &der2);
        if (n2 != n1 || memcmp(der1, der2, (size_t)n1) != 0)
            abort();
        CG_PKIMESSAGE_free(m2);
    }
    OPENSSL_free(der1);
    OPENSSL_free(der2);
    CG_PKIMESSAGE_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_core == NULL)
        set_up();
    round_trip(data, size);
    if (fastdec_agrees(data, size) < 0)
        abort(); /* the hand decoder took bytes otherwise than the templates */
    (void)cg_core_is_der(data, size);
    struct cg_pbm_hint h;
    if (cg_core_pbm_hint(g_core, "opensslra", data, size, &h) &&
        (h.saltlen > sizeof(h.salt) || h.iter < 1 || memchr(h.secret, 0, sizeof(h.secret)) == NULL))
        abort();
    for (size_t i = 0; i < sizeof(g_aliases) / sizeof(g_aliases[0]); i++) {
        struct cg_core_result res;
        memset(&res, 0xa5, sizeof(res)); /* the engine must fill what it reports */
        int rc = cg_core_process(g_core, g_aliases[i], NULL, data, size, &res);
        if (rc == CG_OK) {
            if (res.http_status == 200) {
                const unsigned char *p = res.der;
                if (res.der == NULL || res.der_len == 0)
                    abort();
                CG_PKIMESSAGE *m = d2i_CG_PKIMESSAGE(NULL, &p, (long)res.der_len);
                if (m == NULL || p != res.der + res.der_len)
                    abort(); /* the engine answered bytes that are not one PKIMessage */
                CG_PKIMESSAGE_free(m);
            } else if (res.http_status < 400 || res.http_status > 599 || res.der != NULL) {
                abort();
            }
            check_text(res.body_type, sizeof(res.body_type));
            check_text(res.txid, sizeof(res.txid));
            check_text(res.outcome, sizeof(res.outcome));
            check_text(res.username, sizeof(res.username));
            check_text(res.serial, sizeof(res.serial));
            check_text(res.detail, sizeof(res.detail));
            if (g_verbose)
                fprintf(stderr, "  %s: %d body=%s outcome=%s user=%s detail=%s\n", g_aliases[i],
                        res.http_status, res.body_type, res.outcome, res.username, res.detail);
            cg_core_result_clear(&res);
        } else if (rc != CG_ENOMEM && rc != CG_EINTERNAL) {
            abort(); /* outside the documented return values */
        }
    }
    ERR_clear_error();
    return 0;
}
