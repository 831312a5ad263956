/*
 * populate.c - cmpgate-populate: fill a gateway's store with N RA-style end entities (and one
 * small certificate record each) for the scale benchmarks (test/bench/run.sh --scale).
 *
 *   cmpgate-populate --config FILE --entities N [--start I] [--batch B]
 *
 * Entity i: username pop-<i>, DN "CN=pop-<i>", status GENERATED, flag CG_ENTITY_RA_CREATED,
 * the first CA / EE profile / certificate profile of the configuration. Its certificate record
 * has a random serial and fingerprint, the CA's issuer key and a ~500-byte dummy DER blob: the
 * records are for index size and throughput, not for verification. Writes go through the store
 * API in batches of B (default 10,000) per commit; run it while the gateway is stopped (or
 * not: LMDB allows it, but the figures are cleaner). The map size comes from the configuration
 * (store.map_size_mb): raise it for 1,000,000 entities (about 4096).
 */
#include "cg_config.h"
#include "cg_err.h"
#include "cg_store.h"

#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fputs("usage: cmpgate-populate --config FILE --entities N [--start I] [--batch B]\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"config", 1, 0, 'c'},
                                       {"entities", 1, 0, 'n'},
                                       {"start", 1, 0, 's'},
                                       {"batch", 1, 0, 'b'},
                                       {0, 0, 0, 0}};
    const char *cfgfile = NULL;
    long n = -1, start = 0, per = 10000;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cfgfile = optarg;
            break;
        case 'n':
            n = atol(optarg);
            break;
        case 's':
            start = atol(optarg);
            break;
        case 'b':
            per = atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (cfgfile == NULL || n < 0 || per < 1 || start < 0)
        usage();
    char err[512];
    struct cg_config *cfg = NULL;
    if (cg_config_load(cfgfile, &cfg, err, sizeof(err)) != CG_OK) {
        fprintf(stderr, "cmpgate-populate: %s\n", err);
        return 2;
    }
    if (cfg->n_cas == 0) {
        fprintf(stderr, "cmpgate-populate: no CA in the configuration\n");
        return 2;
    }
    const struct cg_ca *ca = &cfg->cas[0];
    const char *ee = cfg->n_ee_profiles ? cfg->ee_profiles[0].name : "EMPTY";
    const char *cp = cfg->n_cert_profiles ? cfg->cert_profiles[0].name : "ENDUSER";
    uint8_t issuer_key[32];
    unsigned char *ider = NULL;
    int ilen = i2d_X509_NAME(X509_get_subject_name(ca->cert), &ider);
    if (ilen <= 0 || EVP_Digest(ider, (size_t)ilen, issuer_key, NULL, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "cmpgate-populate: cannot hash the CA name\n");
        return 2;
    }
    OPENSSL_free(ider);
    /* "CN=ManagementCA,O=EJBCA Sample,C=SE": the gateway's text form, in certificate order */
    char issuer_txt[512] = "";
    const X509_NAME *iname = X509_get_subject_name(ca->cert);
    for (int k = 0; k < X509_NAME_entry_count(iname); k++) {
        const X509_NAME_ENTRY *ne = X509_NAME_get_entry(iname, k);
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(ne);
        size_t used = strlen(issuer_txt);
        snprintf(issuer_txt + used, sizeof(issuer_txt) - used, "%s%s=%.*s", k ? "," : "",
                 OBJ_nid2sn(OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne))), ASN1_STRING_length(v),
                 (const char *)ASN1_STRING_get0_data(v));
    }

    struct cg_store_opts so = {cfg->store_path, cfg->store_map_size_mb, cfg->store_sync, 0};
    struct cg_store *st = NULL;
    int rc = cg_store_open(&so, &st);
    if (rc != CG_OK) {
        fprintf(stderr, "cmpgate-populate: cannot open the store %s (%d)\n", cfg->store_path, rc);
        return 2;
    }
    uint8_t der[500];
    RAND_bytes(der, sizeof(der));
    der[0] = 0x30; /* looks like a SEQUENCE; nobody parses it */
    der[1] = 0x82;
    der[2] = (uint8_t)((sizeof(der) - 4) >> 8);
    der[3] = (uint8_t)((sizeof(der) - 4) & 0xff);

    double t0 = now_s();
    int64_t nowt = (int64_t)time(NULL);
    long done = 0;
    for (long i = start; i < start + n;) {
        struct cg_store_batch *b = cg_store_batch_new();
        if (b == NULL) {
            fprintf(stderr, "cmpgate-populate: out of memory\n");
            return 2;
        }
        long end = i + per < start + n ? i + per : start + n;
        for (; i < end; i++) {
            char user[64], dn[80];
            snprintf(user, sizeof(user), "pop-%ld", i);
            snprintf(dn, sizeof(dn), "CN=pop-%ld", i);
            struct cg_entity e = {0};
            e.username = user;
            e.subject_dn = dn;
            e.ca = ca->name;
            e.ee_profile = (char *)ee;
            e.cert_profile = (char *)cp;
            e.token_type = "USERGENERATED";
            e.status = CG_EE_GENERATED;
            e.flags = CG_ENTITY_RA_CREATED;
            e.created = e.modified = nowt;
            struct cg_cert_rec c = {0};
            memcpy(c.issuer_key, issuer_key, 32);
            c.serial_len = 16;
            RAND_bytes(c.serial, 16);
            c.serial[0] = (uint8_t)((c.serial[0] & 0x7f) | 0x01); /* positive, no leading zero */
            RAND_bytes(c.fingerprint, 32);
            c.username = user;
            c.ca = ca->name;
            c.subject = dn;
            c.issuer = issuer_txt;
            c.der = der;
            c.der_len = sizeof(der);
            c.status = CG_CERT_ACTIVE;
            c.reason = -1;
            c.issued_at = nowt;
            c.not_after = nowt + 730 * 86400;
            if (cg_store_batch_put_entity(b, &e, CG_VERSION_ANY) != CG_OK ||
                cg_store_batch_add_cert(b, &c) != CG_OK) {
                fprintf(stderr, "cmpgate-populate: batch add failed\n");
                return 2;
            }
        }
        rc = cg_store_commit(st, b);
        cg_store_batch_free(b);
        if (rc != CG_OK) {
            fprintf(stderr, "cmpgate-populate: commit failed at %ld (%d%s)\n", i, rc,
                    rc == CG_EFULL ? ": map full, raise store.map_size_mb" : "");
            return 1;
        }
        done = i - start;
        if (isatty(2))
            fprintf(stderr, "\r%ld entities", done);
    }
    double secs = now_s() - t0;
    if (isatty(2))
        fprintf(stderr, "\n");
    cg_store_close(st);
    cg_config_unref(cfg);
    printf("{\"entities\":%ld,\"seconds\":%.2f,\"per_second\":%.0f}\n", done, secs,
           secs > 0 ? (double)done / secs : 0.0);
    return 0;
}
