/*
 * cmpmutate.c - test tool: hostile variants of DER PKIMessages for test/integration/cases/
 * hostile.sh.
 *   cmpmutate mutate SEED N OUTDIR IN...   N variants of the INs (taken in turn), written to
 *       OUTDIR/m<i>.der; one line per variant on stdout: "m<i>.der KIND IN". KIND is flip (1 to
 *       3 random bit flips), trunc (cut at a random point), len (one DER length field of a
 *       random TLV replaced: +1, -1, 0, 0x7f, 0x80 indefinite, 0x81 0xff, 0x84 7fffffff,
 *       0x84 ffffffff) or ins (a random byte inserted). Deterministic for one SEED; a variant
 *       is never identical to its input.
 *   cmpmutate pbm IN OUT [ITER]   the PBMParameter iterationCount of IN's protectionAlg set to
 *       ITER (default 2147483647); the old protection is kept (the gateway must refuse on the
 *       parameter alone, before deriving any key).
 *   cmpmutate nest LEVELS IN OUT  IN wrapped in LEVELS SEQUENCE headers of the long form
 *       30 84 LLLLLLLL with correct lengths.
 *   cmpmutate genm N IN OUT SECRET  the genm IN with its body replaced by N id-it-caCerts
 *       InfoTypeAndValues, protected again with PBM and SECRET (amplification check).
 *   cmpmutate txid FROM IN OUT SECRET  IN with the transactionID of FROM, protected again with
 *       PBM and SECRET (two transactions racing for one transactionID).
 * Exit 0 on success, 1 otherwise.
 */
#include "cmp_asn.h"
#include "cg_err.h"
#include "core_local.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *p = realloc(buf, cap);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int write_all(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n) {
        perror(path);
        if (f != NULL)
            fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

static uint64_t g_rng;
static uint32_t rnd(uint32_t n)
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)(g_rng >> 33) % n : 0;
}

/* Offsets of the length fields of every TLV (walking into constructed ones). */
static size_t g_lenoff[4096], g_lensz[4096], g_nlen;
static void walk(const uint8_t *p, size_t start, size_t end, int depth)
{
    size_t i = start;
    while (i + 2 <= end && g_nlen < 4096 && depth < 64) {
        uint8_t tag = p[i];
        size_t lo = i + 1, l, hl;
        if ((tag & 0x1f) == 0x1f)
            return; /* high tag numbers do not occur in CMP */
        if (p[lo] < 0x80) {
            l = p[lo];
            hl = 1;
        } else {
            size_t k = p[lo] & 0x7f;
            if (k == 0 || k > 4 || lo + 1 + k > end)
                return;
            l = 0;
            for (size_t j = 0; j < k; j++)
                l = l << 8 | p[lo + 1 + j];
            hl = 1 + k;
        }
        g_lenoff[g_nlen] = lo;
        g_lensz[g_nlen] = hl;
        g_nlen++;
        size_t body = lo + hl;
        if (body + l > end)
            return;
        if (tag & 0x20)
            walk(p, body, body + l, depth + 1);
        i = body + l;
    }
}

static int mutate(int argc, char **argv)
{
    if (argc < 6)
        return 1;
    g_rng = strtoull(argv[2], NULL, 10) * 2654435761ULL + 1;
    int n = atoi(argv[3]);
    const char *outdir = argv[4];
    int nin = argc - 5;
    for (int i = 0; i < n; i++) {
        const char *in = argv[5 + i % nin];
        size_t len;
        uint8_t *src = read_all(in, &len);
        if (src == NULL || len < 8)
            return 1;
        uint8_t *out = malloc(len + 16);
        size_t olen = len;
        const char *kind;
        memcpy(out, src, len);
        switch (i % 4) {
        case 0: {
            kind = "flip";
            int k = 1 + (int)rnd(3);
            for (int j = 0; j < k; j++) {
                size_t at = rnd((uint32_t)len);
                out[at] ^= (uint8_t)(1u << rnd(8));
            }
            break;
        }
        case 1:
            kind = "trunc";
            olen = 1 + rnd((uint32_t)len - 1);
            break;
        case 2: {
            kind = "len";
            g_nlen = 0;
            walk(src, 0, len, 0);
            size_t t = rnd((uint32_t)g_nlen);
            size_t off = g_lenoff[t], sz = g_lensz[t];
            uint8_t repl[5];
            size_t rl;
            uint32_t cur = 0;
            if (sz == 1)
                cur = src[off];
            else
                for (size_t j = 1; j < sz; j++)
                    cur = cur << 8 | src[off + j];
            switch (rnd(8)) {
            case 0:
                cur++;
                goto enc;
            case 1:
                cur = cur ? cur - 1 : 1;
                goto enc;
            case 2:
                cur = 0;
                goto enc;
            case 3:
                cur = 0x7f;
                goto enc;
            enc:
                if (cur < 0x80) {
                    repl[0] = (uint8_t)cur;
                    rl = 1;
                } else {
                    repl[0] = 0x84;
                    repl[1] = (uint8_t)(cur >> 24);
                    repl[2] = (uint8_t)(cur >> 16);
                    repl[3] = (uint8_t)(cur >> 8);
                    repl[4] = (uint8_t)cur;
                    rl = 5;
                }
                break;
            case 4:
                repl[0] = 0x80;
                rl = 1;
                break;
            case 5:
                repl[0] = 0x81;
                repl[1] = 0xff;
                rl = 2;
                break;
            case 6:
                memcpy(repl, "\x84\x7f\xff\xff\xff", 5);
                rl = 5;
                break;
            default:
                memcpy(repl, "\x84\xff\xff\xff\xff", 5);
                rl = 5;
                break;
            }
            memcpy(out, src, off);
            memcpy(out + off, repl, rl);
            memcpy(out + off + rl, src + off + sz, len - off - sz);
            olen = len - sz + rl;
            break;
        }
        default: {
            kind = "ins";
            size_t at = rnd((uint32_t)len + 1);
            memcpy(out, src, at);
            out[at] = (uint8_t)rnd(256);
            memcpy(out + at + 1, src + at, len - at);
            olen = len + 1;
            break;
        }
        }
        if (olen == len && memcmp(out, src, len) == 0)
            out[rnd((uint32_t)len)] ^= 0x01; /* never the original */
        char path[4096];
        snprintf(path, sizeof(path), "%s/m%d.der", outdir, i);
        if (write_all(path, out, olen) != 0)
            return 1;
        printf("m%d.der %s %s\n", i, kind, in);
        free(out);
        free(src);
    }
    return 0;
}

static int pbm(int argc, char **argv)
{
    size_t len;
    if (argc < 4)
        return 1;
    uint8_t *der = read_all(argv[2], &len);
    const unsigned char *p = der;
    long iter = argc > 4 ? strtol(argv[4], NULL, 10) : 2147483647L;
    CG_PKIMESSAGE *m = der ? d2i_CG_PKIMESSAGE(NULL, &p, (long)len) : NULL;
    X509_ALGOR *alg = m ? m->header->protectionAlg : NULL;
    if (alg == NULL || alg->parameter == NULL || alg->parameter->type != V_ASN1_SEQUENCE) {
        fprintf(stderr, "cmpmutate pbm: %s has no PBM protectionAlg\n", argv[2]);
        return 1;
    }
    ASN1_STRING *seq = alg->parameter->value.sequence;
    const unsigned char *q = ASN1_STRING_get0_data(seq);
    CG_PBMPARAMETER *pp = d2i_CG_PBMPARAMETER(NULL, &q, ASN1_STRING_length(seq));
    unsigned char *pder = NULL, *out = NULL;
    int plen, olen;
    if (pp == NULL || ASN1_INTEGER_set_int64(pp->iterationCount, iter) != 1 ||
        (plen = i2d_CG_PBMPARAMETER(pp, &pder)) <= 0 || ASN1_STRING_set(seq, pder, plen) != 1 ||
        (olen = i2d_CG_PKIMESSAGE(m, &out)) <= 0)
        return 1;
    int rc = write_all(argv[3], out, (size_t)olen);
    OPENSSL_free(pder);
    OPENSSL_free(out);
    CG_PBMPARAMETER_free(pp);
    CG_PKIMESSAGE_free(m);
    free(der);
    return rc;
}

static int genm(int argc, char **argv)
{
    size_t len;
    if (argc < 6)
        return 1;
    long n = strtol(argv[2], NULL, 10);
    uint8_t *der = read_all(argv[3], &len);
    const unsigned char *p = der;
    CG_PKIMESSAGE *m = der ? d2i_CG_PKIMESSAGE(NULL, &p, (long)len) : NULL;
    if (m == NULL || m->body->type != CG_BODY_GENM || m->header->protectionAlg == NULL) {
        fprintf(stderr, "cmpmutate genm: %s is no PBM-protected genm\n", argv[3]);
        return 1;
    }
    sk_CG_ITAV_pop_free(m->body->value.genm, CG_ITAV_free);
    m->body->value.genm = sk_CG_ITAV_new_null();
    for (long i = 0; i < n; i++) {
        CG_ITAV *it = CG_ITAV_new();
        ASN1_OBJECT_free(it->type);
        it->type = OBJ_txt2obj("1.3.6.1.5.5.7.4.17", 1);
        if (it->type == NULL || sk_CG_ITAV_push(m->body->value.genm, it) <= 0)
            return 1;
    }
    X509_ALGOR *alg = X509_ALGOR_dup(m->header->protectionAlg);
    unsigned char *out = NULL;
    int olen;
    if (alg == NULL || protect_apply_pbm_(m, alg, argv[5], 1000000) != CG_OK ||
        (olen = i2d_CG_PKIMESSAGE(m, &out)) <= 0) {
        fprintf(stderr, "cmpmutate genm: cannot protect\n");
        return 1;
    }
    int rc = write_all(argv[4], out, (size_t)olen);
    X509_ALGOR_free(alg);
    OPENSSL_free(out);
    CG_PKIMESSAGE_free(m);
    free(der);
    return rc;
}

static CG_PKIMESSAGE *read_msg(const char *path)
{
    size_t len;
    uint8_t *der = read_all(path, &len);
    const unsigned char *p = der;
    CG_PKIMESSAGE *m = der ? d2i_CG_PKIMESSAGE(NULL, &p, (long)len) : NULL;
    free(der);
    return m;
}

static int txid(int argc, char **argv)
{
    if (argc < 6)
        return 1;
    CG_PKIMESSAGE *from = read_msg(argv[2]), *m = read_msg(argv[3]);
    X509_ALGOR *alg = m != NULL ? X509_ALGOR_dup(m->header->protectionAlg) : NULL;
    unsigned char *out = NULL;
    int olen = 0, rc = 1;
    if (from == NULL || m == NULL || from->header->transactionID == NULL || alg == NULL) {
        fprintf(stderr,
                "cmpmutate txid: %s or %s is no PBM-protected message with a "
                "transactionID\n",
                argv[2], argv[3]);
        goto out;
    }
    ASN1_OCTET_STRING_free(m->header->transactionID);
    if ((m->header->transactionID = ASN1_OCTET_STRING_dup(from->header->transactionID)) == NULL ||
        protect_apply_pbm_(m, alg, argv[5], 1000000) != CG_OK ||
        (olen = i2d_CG_PKIMESSAGE(m, &out)) <= 0) {
        fprintf(stderr, "cmpmutate txid: cannot protect\n");
        goto out;
    }
    rc = write_all(argv[4], out, (size_t)olen);
out:
    X509_ALGOR_free(alg);
    OPENSSL_free(out);
    CG_PKIMESSAGE_free(m);
    CG_PKIMESSAGE_free(from);
    return rc;
}

static int nest(int argc, char **argv)
{
    size_t len;
    if (argc < 5)
        return 1;
    long levels = strtol(argv[2], NULL, 10);
    uint8_t *der = read_all(argv[3], &len);
    if (der == NULL || levels < 0 || levels > 1000000)
        return 1;
    size_t total = len + (size_t)levels * 6;
    uint8_t *out = malloc(total);
    if (out == NULL)
        return 1;
    memcpy(out + (size_t)levels * 6, der, len);
    for (long i = levels - 1; i >= 0; i--) {
        uint8_t *h = out + (size_t)i * 6;
        size_t inner = total - (size_t)i * 6 - 6;
        h[0] = 0x30;
        h[1] = 0x84;
        h[2] = (uint8_t)(inner >> 24);
        h[3] = (uint8_t)(inner >> 16);
        h[4] = (uint8_t)(inner >> 8);
        h[5] = (uint8_t)inner;
    }
    int rc = write_all(argv[4], out, total);
    free(out);
    free(der);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "mutate") == 0)
        return mutate(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "pbm") == 0)
        return pbm(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "genm") == 0)
        return genm(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "nest") == 0)
        return nest(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "txid") == 0)
        return txid(argc, argv);
    fprintf(stderr, "usage: cmpmutate mutate SEED N OUTDIR IN... | pbm IN OUT [ITER] | "
                    "nest LEVELS IN OUT | genm N IN OUT SECRET | txid FROM IN OUT SECRET\n");
    return 1;
}
