/*
 * certcmd.c - `cmpgate cert list|show|revoke`: the certificate admin commands.
 *
 * DESIGN: they open the same LMDB environment as a running `serve` (LMDB is multi-process
 * safe) and write through the same store API, so a revocation here and one over CMP never
 * overwrite each other: the store's revoke operation is a compare-and-set on the status.
 * Output is JSON (one object per line for list), built with jansson.
 */
#include "cg_config.h"
#include "cg_err.h"
#include "cg_store.h"
#include "gateway_local.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "0A:1b..." or "0a1b..." → bytes without leading zeros. @return length or -1. */
static int parse_serial(const char *s, uint8_t out[32])
{
    char digits[130];
    size_t n = 0;
    if (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0)
        s += 2;
    for (; *s; s++) {
        if (*s == ':')
            continue;
        if (!isxdigit((unsigned char)*s) || n >= 128)
            return -1;
        digits[n++] = (char)tolower((unsigned char)*s);
    }
    digits[n] = '\0';
    size_t start = 0;
    while (start + 1 < n && digits[start] == '0')
        start++;
    size_t len = n - start;
    if (len == 0 || (len + 1) / 2 > 32)
        return -1;
    size_t bytes = (len + 1) / 2;
    for (size_t i = 0; i < bytes; i++) {
        size_t hi = start + 2 * i - (len % 2);
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            size_t pos = hi + k;
            if (len % 2 && i == 0 && k == 0)
                continue;
            char c = digits[pos];
            v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10);
        }
        out[i] = (uint8_t)v;
    }
    if (out[0] == 0 && bytes == 1)
        return -1;
    return (int)bytes;
}

static json_t *cert_json(const struct cg_cert_rec *c)
{
    char serial[65], na[32];
    gw_hex(c->serial, c->serial_len, serial);
    gw_iso_time(c->not_after, na, sizeof(na));
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s?}", "serial", serial, "subject",
                          c->subject, "issuer", c->issuer, "status",
                          c->status == CG_CERT_REVOKED ? "revoked" : "active", "notAfter", na,
                          "user", c->username);
    return o;
}

static int print_line(const struct cg_cert_rec *c, void *arg)
{
    (void)arg;
    json_t *o = cert_json(c);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s)
        puts(s);
    free(s);
    json_decref(o);
    return 0;
}

static int cert_show(struct cg_store *st, const char *serial_text)
{
    uint8_t serial[32];
    struct cg_cert_rec *c = NULL;
    int n = parse_serial(serial_text, serial);
    if (n < 0) {
        gw_err("cert show: %s is not a hexadecimal serial number", serial_text);
        return EXIT_USAGE;
    }
    int rc = cg_store_find_cert_by_serial(st, serial, (size_t)n, &c);
    if (rc != CG_OK) {
        gw_err("cert show: %s: %s", serial_text,
               rc == CG_ENOTFOUND ? "no such certificate" : cg_strerror(rc));
        return EXIT_RUNTIME;
    }
    json_t *o = cert_json(c);
    char fp[65], when[32];
    gw_hex(c->fingerprint, 32, fp);
    json_object_set_new(o, "fingerprint_sha256", json_string(fp));
    json_object_set_new(o, "ca", json_string(c->ca ? c->ca : ""));
    gw_iso_time(c->issued_at, when, sizeof(when));
    json_object_set_new(o, "issuedAt", json_string(when));
    if (c->status == CG_CERT_REVOKED) {
        gw_iso_time(c->revoked_at, when, sizeof(when));
        json_object_set_new(o, "revokedAt", json_string(when));
        json_object_set_new(o, "reason", json_integer(c->reason));
    }
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    BIO *b = BIO_new(BIO_s_mem());
    if (x != NULL && b != NULL && PEM_write_bio_X509(b, x) == 1) {
        char *pem = NULL;
        long len = BIO_get_mem_data(b, &pem);
        json_object_set_new(o, "pem", json_stringn(pem, (size_t)len));
    }
    X509_free(x);
    BIO_free(b);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(o);
    cg_cert_rec_free(c);
    return 0;
}

static int cert_revoke(struct cg_store *st, const char *serial_text, int reason)
{
    uint8_t serial[32];
    struct cg_cert_rec *c = NULL;
    struct cg_store_batch *b = NULL;
    int status = EXIT_RUNTIME;
    int n = parse_serial(serial_text, serial);
    if (n < 0) {
        gw_err("cert revoke: %s is not a hexadecimal serial number", serial_text);
        return EXIT_USAGE;
    }
    int rc = cg_store_find_cert_by_serial(st, serial, (size_t)n, &c);
    if (rc != CG_OK) {
        gw_err("cert revoke: %s: %s", serial_text,
               rc == CG_ENOTFOUND ? "no such certificate" : cg_strerror(rc));
        goto out;
    }
    if ((b = cg_store_batch_new()) == NULL)
        goto out;
    const char *user = c->username ? c->username : "";
    cg_store_lock_entity(st, user);
    rc = cg_store_batch_revoke_cert(b, c->issuer_key, c->serial, c->serial_len, reason, time(NULL));
    if (rc == CG_OK)
        rc = cg_store_commit(st, b);
    cg_store_unlock_entity(st, user);
    if (rc == CG_EALREADY) {
        gw_err("cert revoke: %s is already revoked", serial_text);
        goto out;
    } else if (rc != CG_OK) {
        gw_err("cert revoke: %s: %s", serial_text, cg_strerror(rc));
        goto out;
    }
    char hexs[65];
    gw_hex(c->serial, c->serial_len, hexs);
    printf("revoked %s (reason %d)\n", hexs, reason);
    status = 0;
out:
    cg_cert_rec_free(c);
    cg_store_batch_free(b);
    return status;
}

int gw_cert(int argc, char **argv, const char *config_path)
{
    struct cg_config *cfg = NULL;
    struct cg_store *st = NULL;
    const char *user = NULL, *serial = NULL;
    int reason = 0, status;
    if (argc < 1) {
        gw_err("cert: missing subcommand (list, show, revoke)");
        return EXIT_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "revoke")) {
        gw_err("cert: unknown subcommand %s (list, show, revoke)", sub);
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--user") == 0 && i + 1 < argc && strcmp(sub, "list") == 0)
            user = argv[++i];
        else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc && strcmp(sub, "revoke") == 0) {
            char *end = NULL;
            long r = strtol(argv[++i], &end, 10);
            if (*end != '\0' || r < 0 || r > 10 || r == 7) {
                gw_err("cert revoke: --reason must be a CRL reason code 0..10 other than 7");
                return EXIT_USAGE;
            }
            reason = (int)r;
        } else if (argv[i][0] != '-' && serial == NULL && strcmp(sub, "list") != 0)
            serial = argv[i];
        else {
            gw_err("cert %s: unexpected argument %s", sub, argv[i]);
            return EXIT_USAGE;
        }
    }
    if (strcmp(sub, "list") != 0 && serial == NULL) {
        gw_err("cert %s: missing SERIAL", sub);
        return EXIT_USAGE;
    }
    if ((status = gw_open_store("cert", config_path, &cfg, &st)) != 0)
        goto out;
    if (strcmp(sub, "list") == 0) {
        int rc = cg_store_list_certs(st, user, print_line, NULL);
        if (rc != CG_OK) {
            gw_err("cert list: %s", cg_strerror(rc));
            status = EXIT_RUNTIME;
        }
    } else if (strcmp(sub, "show") == 0) {
        status = cert_show(st, serial);
    } else {
        status = cert_revoke(st, serial, reason);
    }
out:
    cg_store_close(st);
    cg_config_unref(cfg);
    return status;
}
