/*
 * core.c - the CMP engine: decode, header checks, authentication, dispatch by body type,
 * issuance and revocation through the store, response protection, and the one exit that
 * turns a failure into an unprotected CMP error message.
 *
 * DESIGN: cg_core_process() follows the shape of a CMP server dispatch: header checks, then
 * the operation segment, then authentication by the alias's modules, then a switch on the
 * body type. Handlers either build a response (ctx->resp, protected at the single exit) or
 * return a CG_ECMP_* code, which the exit maps to a PKIFailureInfo bit through one table.
 * Transaction state (our nonce, the issued certificate and its hash) is written to the
 * store with the certificate in one durable batch, keyed by transactionID, so a certConf can
 * land on any worker, process or node, and a replayed transactionID is refused.
 * Every read-check-issue-write sequence for an end entity holds that entity's store lock;
 * signing happens under the lock but outside any LMDB transaction.
 * Threading: any number of workers call cg_core_process() concurrently; nothing here is
 * shared and mutable. The OpenSSL error queue is cleared before returning.
 */
#include "cg_core.h"
#include "cg_err.h"
#include "cg_log.h"
#include "core_local.h"

#include <ctype.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RETRIES 3
#define MAX_GENM_ITAVS 16
#define CG_REASON_UNCONFIRMED 0 /* CRL reason for a certificate never confirmed: unspecified */

/* --- small helpers ----------------------------------------------------------------------- */

void hex_(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    static const char digits[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < outlen; i++) {
        out[k++] = digits[p[i] >> 4];
        out[k++] = digits[p[i] & 15];
    }
    out[k] = '\0';
}

void set_detail_(struct msgctx *ctx, const char *fmt, const char *arg)
{
    snprintf(ctx->detail, sizeof(ctx->detail), fmt, arg ? arg : "");
}

const char *body_name_(int type)
{
    static const char *const names[] = {
        "ir",   "ip",     "cr",    "cp",       "p10cr",   "popdecc", "popdecr",
        "kur",  "kup",    "krr",   "krp",      "rr",      "rp",      "ccr",
        "ccp",  "ckuann", "cann",  "rann",     "crlann",  "pkiconf", "nested",
        "genm", "genp",   "error", "certConf", "pollReq", "pollRep"};
    return type >= 0 && type <= 26 ? names[type] : "unknown";
}

/* The value of senderKID as a C string (for KeyId), or NULL. */
int sender_kid_text_(const struct msgctx *ctx, char *out, size_t n)
{
    const ASN1_OCTET_STRING *kid = ctx->req->header->senderKID;
    if (kid == NULL || ASN1_STRING_length(kid) <= 0 || (size_t)ASN1_STRING_length(kid) >= n)
        return 0;
    memcpy(out, ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid));
    out[ASN1_STRING_length(kid)] = '\0';
    return memchr(out, '\0', (size_t)ASN1_STRING_length(kid)) == NULL;
}

/* Resolves an ra_* setting that may be "KeyId" into a name (borrowed or copied into buf). */
static const char *keyid_or(const struct msgctx *ctx, const char *setting, char *buf, size_t n)
{
    if (setting != NULL && strcmp(setting, CG_KEYID) == 0)
        return sender_kid_text_(ctx, buf, n) ? buf : NULL;
    return setting;
}

/* --- failure table ------------------------------------------------------------------------ */

static int fail_bit(int err)
{
    switch (err) {
    case CG_ECMP_BADMSGCHECK:
        return CG_FI_BADMESSAGECHECK;
    case CG_ECMP_BADPOP:
        return CG_FI_BADPOP;
    case CG_ECMP_WRONGAUTHORITY:
        return CG_FI_WRONGAUTHORITY;
    case CG_ECMP_NOTAUTHORIZED:
        return CG_FI_NOTAUTHORIZED;
    case CG_ECMP_BADCERTID:
        return CG_FI_BADCERTID;
    case CG_ECMP_CERTREVOKED:
        return CG_FI_CERTREVOKED;
    case CG_ECMP_INCORRECTDATA:
        return CG_FI_INCORRECTDATA;
    case CG_ECMP_TXIDINUSE:
        return CG_FI_TRANSACTIONIDINUSE;
    case CG_ECMP_BADRECIPNONCE:
        return CG_FI_BADRECIPIENTNONCE;
    case CG_ECMP_BADSENDERNONCE:
        return CG_FI_BADSENDERNONCE;
    case CG_ECMP_UNSUPPORTEDVERSION:
        return CG_FI_UNSUPPORTEDVERSION;
    case CG_ECMP_BADCERTTEMPLATE:
        return CG_FI_BADCERTTEMPLATE;
    case CG_ECMP_BADALG:
        return CG_FI_BADALG;
    case CG_ECMP_BADDATAFORMAT:
        return CG_FI_BADDATAFORMAT;
    case CG_ECMP_SYSTEMUNAVAIL:
        return CG_FI_SYSTEMUNAVAIL;
    case CG_ECMP_BADTIME:
        return CG_FI_BADTIME;
    case CG_ECMP_SIGNERNOTTRUSTED:
        return CG_FI_SIGNERNOTTRUSTED;
    case CG_ECMP_CERTCONFIRMED:
        return CG_FI_CERTCONFIRMED;
    case CG_ECMP_WRONGINTEGRITY:
        return CG_FI_WRONGINTEGRITY;
    case CG_ECMP_BADREQUEST:
        return CG_FI_BADREQUEST;
    default:
        return CG_FI_SYSTEMFAILURE;
    }
}

static const char *fail_name(int err)
{
    if (err <= CG_ECMP_BADREQUEST && err >= CG_ECMP_WRONGINTEGRITY)
        return cg_strerror(err);
    return "systemFailure";
}

static CG_PKISI *status_new(int status, int err, const char *text)
{
    CG_PKISI *si = CG_PKISI_new();
    if (si == NULL || ASN1_INTEGER_set(si->status, status) != 1)
        goto fail;
    if (err != CG_OK) {
        si->failInfo = ASN1_BIT_STRING_new();
        if (si->failInfo == NULL || ASN1_BIT_STRING_set_bit(si->failInfo, fail_bit(err), 1) != 1)
            goto fail;
    }
    if (text != NULL && *text != '\0') {
        ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();
        if (s == NULL)
            goto fail;
        if (ASN1_STRING_set(s, text, -1) != 1 ||
            (si->statusString = sk_ASN1_UTF8STRING_new_null()) == NULL ||
            sk_ASN1_UTF8STRING_push(si->statusString, s) <= 0) {
            ASN1_UTF8STRING_free(s);
            goto fail;
        }
    }
    return si;
fail:
    CG_PKISI_free(si);
    return NULL;
}

/* --- responses ---------------------------------------------------------------------------- */

/* A directoryName (NULL-DN for NULL) as an encoded GeneralName (new), or NULL. */
static ASN1_STRING *dirname_new(const X509_NAME *name)
{
    ASN1_STRING *raw = ASN1_STRING_new();
    if (raw != NULL && !CG_GENNAME_RAW_set_dirname(raw, name)) {
        ASN1_STRING_free(raw);
        raw = NULL;
    }
    return raw;
}

static int octets_set(ASN1_OCTET_STRING **dst, const uint8_t *p, size_t n)
{
    ASN1_OCTET_STRING_free(*dst);
    *dst = ASN1_OCTET_STRING_new();
    return *dst != NULL && ASN1_OCTET_STRING_set(*dst, p, (int)n) == 1 ? CG_OK : CG_ENOMEM;
}

static int add_implicit_confirm(CG_PKIHEADER *h)
{
    CG_ITAV *itav = CG_ITAV_new();
    if (itav == NULL)
        return CG_ENOMEM;
    ASN1_OBJECT_free(itav->type);
    itav->type = OBJ_nid2obj(NID_id_it_implicitConfirm);
    itav->value = ASN1_TYPE_new();
    if (itav->value == NULL ||
        (h->generalInfo == NULL && (h->generalInfo = sk_CG_ITAV_new_null()) == NULL)) {
        CG_ITAV_free(itav);
        return CG_ENOMEM;
    }
    ASN1_TYPE_set(itav->value, V_ASN1_NULL, NULL);
    if (sk_CG_ITAV_push(h->generalInfo, itav) <= 0) {
        CG_ITAV_free(itav);
        return CG_ENOMEM;
    }
    return CG_OK;
}

static int has_implicit_confirm(const CG_PKIHEADER *h)
{
    for (int i = 0; i < sk_CG_ITAV_num(h->generalInfo); i++)
        if (OBJ_obj2nid(sk_CG_ITAV_value(h->generalInfo, i)->type) == NID_id_it_implicitConfirm)
            return 1;
    return 0;
}

/* A response's header names are lent, not copied: the sender is the core's encoded name of
 * the CA, the recipient the request's own sender, as it was encoded. Every response_new()
 * message is freed with response_free(), which takes the loans back first. */
static void response_free(CG_PKIMESSAGE *m)
{
    if (m == NULL)
        return;
    m->header->sender = NULL;
    m->header->recipient = NULL;
    CG_PKIMESSAGE_free(m);
}

/* The answering CA's index in cfg->cas, or -1. */
static int ca_index(const struct msgctx *ctx)
{
    for (size_t i = 0; ctx->ca != NULL && i < ctx->cfg->n_cas; i++)
        if (ctx->ca == &ctx->cfg->cas[i])
            return (int)i;
    return -1;
}

static ASN1_STRING *ca_name(const struct msgctx *ctx)
{
    int i = ca_index(ctx);
    return i >= 0 ? ctx->core->ca_names[i] : ctx->core->no_name;
}

/* The encoded extensions of certificate profile cp, or NULL. */
static const struct ca_exts *profile_exts(const struct msgctx *ctx,
                                          const struct cg_cert_profile *cp)
{
    const struct cg_config *cfg = ctx->cfg;
    if (cp < cfg->cert_profiles || cp >= cfg->cert_profiles + cfg->n_cert_profiles)
        return NULL;
    return ctx->core->profile_exts[cp - cfg->cert_profiles];
}

/* The answering CA's signing set-up, or NULL. */
static const struct ca_signer *ca_signer(const struct msgctx *ctx)
{
    int i = ca_index(ctx);
    return i >= 0 ? ctx->core->ca_signers[i] : NULL;
}

/* The current time as a GeneralizedTime, its digits written here rather than through
 * ASN1_GENERALIZEDTIME_set (gmtime, then BIO_snprintf). */
static ASN1_GENERALIZEDTIME *message_time(void)
{
    char s[16];
    int tag = 0;
    size_t n = core_time_text_(time(NULL), 1, s, &tag);
    ASN1_GENERALIZEDTIME *t = n > 0 ? ASN1_GENERALIZEDTIME_new() : NULL;
    if (t != NULL && ASN1_STRING_set(t, s, (int)n) != 1) {
        ASN1_GENERALIZEDTIME_free(t);
        t = NULL;
    }
    return t;
}

/* A response header answering ctx->req (which may be NULL when it did not parse). */
static CG_PKIMESSAGE *response_new(struct msgctx *ctx, int body_type)
{
    /* zeroed and filled as CG_PKIMESSAGE_new() fills them, without its walk through the
     * templates and without making the names this response borrows */
    CG_PKIMESSAGE *m = OPENSSL_zalloc(sizeof(*m));
    CG_PKIHEADER *h;
    const CG_PKIHEADER *rh = ctx->req ? ctx->req->header : NULL;
    if (m == NULL)
        return NULL;
    if ((m->header = h = OPENSSL_zalloc(sizeof(*h))) == NULL ||
        (m->body = OPENSSL_zalloc(sizeof(*m->body))) == NULL) {
        CG_PKIMESSAGE_free(m);
        return NULL;
    }
    m->body->type = body_type;
    /* the names first: from here on response_free() takes them back as loans */
    h->sender = ca_name(ctx);
    h->recipient = rh && rh->sender ? rh->sender : ctx->core->no_name;
    if ((h->pvno = ASN1_INTEGER_new()) == NULL || ASN1_INTEGER_set(h->pvno, 2) != 1)
        goto fail;
    h->messageTime = message_time();
    if (h->sender == NULL || h->recipient == NULL || h->messageTime == NULL)
        goto fail;
    if (octets_set(&h->senderNonce, ctx->nonce, NONCE_LEN) != CG_OK)
        goto fail;
    if (rh && rh->transactionID &&
        (h->transactionID = ASN1_OCTET_STRING_dup(rh->transactionID)) == NULL)
        goto fail;
    if (rh && rh->senderNonce && (h->recipNonce = ASN1_OCTET_STRING_dup(rh->senderNonce)) == NULL)
        goto fail;
    return m;
fail:
    response_free(m);
    return NULL;
}

static int push_cert(STACK_OF(X509) * *sk, X509 *x)
{
    if (*sk == NULL && (*sk = sk_X509_new_null()) == NULL)
        return CG_ENOMEM;
    if (!X509_up_ref(x))
        return CG_ECRYPTO;
    if (sk_X509_push(*sk, x) <= 0) {
        X509_free(x);
        return CG_ENOMEM;
    }
    return CG_OK;
}

static X509 *named_ca_cert(const struct cg_config *cfg, const char *name)
{
    const struct cg_ca *ca = cg_config_ca(cfg, name);
    const struct cg_external_ca *ext = ca ? NULL : cg_config_external_ca(cfg, name);
    return ca ? ca->cert : ext ? ext->cert : NULL;
}

/* Protects ctx->resp (pbe when configured and the request was MAC-authenticated, else the
 * CA's signature) and adds the signing chain and configured certificates to extraCerts. */
static int protect_response(struct msgctx *ctx)
{
    CG_PKIMESSAGE *m = ctx->resp;
    CG_PKIHEADER *rh = ctx->req->header;
    int rc;
    if ((rc = push_cert(&m->extraCerts, ctx->ca->cert)) != CG_OK)
        return rc;
    for (int i = 0; i < sk_X509_num(ctx->ca->chain); i++)
        if ((rc = push_cert(&m->extraCerts, sk_X509_value(ctx->ca->chain, i))) != CG_OK)
            return rc;
    for (size_t i = 0; i < ctx->alias->n_response_extracerts; i++) {
        X509 *x = named_ca_cert(ctx->cfg, ctx->alias->response_extracerts[i]);
        if (x != NULL && (rc = push_cert(&m->extraCerts, x)) != CG_OK)
            return rc;
    }
    if (ctx->alias->response_protection == CG_PROT_PBE && ctx->auth.mac_secret != NULL) {
        if (rh->senderKID && (m->header->senderKID = ASN1_OCTET_STRING_dup(rh->senderKID)) == NULL)
            return CG_ENOMEM;
        return protect_apply_pbm_part_(m, rh->protectionAlg, ctx->auth.mac_secret,
                                       ctx->cfg->max_pbm_iterations, &ctx->auth.pbm,
                                       &ctx->resp_part, &ctx->resp_part_len);
    }
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ctx->ca->cert);
    if (ski != NULL && (m->header->senderKID = ASN1_OCTET_STRING_dup(ski)) == NULL)
        return CG_ENOMEM;
    const EVP_MD *md = protect_choose_md_(ctx->ca->key, rh->protectionAlg);
    const EVP_MD *usual = protect_default_md_(ctx->ca->key);
    /* the CA's prepared context signs with its key's default digest */
    int prepared =
        md == usual || (md != NULL && usual != NULL && EVP_MD_is_a(md, EVP_MD_get0_name(usual)));
    const struct ca_signer *s = prepared ? ca_signer(ctx) : NULL;
    return protect_apply_sig_with_(m, ctx->ca->key, md, s != NULL ? s->ctx : NULL);
}

/* The unprotected error message of the reference system's error table. */
static CG_PKIMESSAGE *error_response(struct msgctx *ctx, int err)
{
    CG_PKIMESSAGE *m = response_new(ctx, CG_BODY_ERROR);
    CG_ERRORMSGCONTENT *e = CG_ERRORMSGCONTENT_new();
    if (m == NULL || e == NULL)
        goto fail;
    CG_PKISI_free(e->pKIStatusInfo);
    e->pKIStatusInfo =
        status_new(CG_STATUS_REJECTION, err, ctx->detail[0] ? ctx->detail : cg_strerror(err));
    if (e->pKIStatusInfo == NULL)
        goto fail;
    m->body->value.error = e;
    return m;
fail:
    CG_ERRORMSGCONTENT_free(e);
    response_free(m);
    return NULL;
}

/* --- header, operation, authentication ---------------------------------------------------- */

static int check_header(struct msgctx *ctx)
{
    const CG_PKIHEADER *h = ctx->req->header;
    long pvno = ASN1_INTEGER_get(h->pvno);
    if (pvno != 2 && pvno != 3) {
        set_detail_(ctx, "unsupported pvno", NULL);
        return CG_ECMP_UNSUPPORTEDVERSION;
    }
    if (h->transactionID == NULL || ASN1_STRING_length(h->transactionID) < 1 ||
        ASN1_STRING_length(h->transactionID) > 64) {
        set_detail_(ctx, "transactionID missing or longer than 64 bytes", NULL);
        return CG_ECMP_BADREQUEST;
    }
    if (h->senderNonce == NULL || ASN1_STRING_length(h->senderNonce) < 1 ||
        ASN1_STRING_length(h->senderNonce) > 64) {
        set_detail_(ctx, "senderNonce missing or longer than 64 bytes", NULL);
        return CG_ECMP_BADSENDERNONCE;
    }
    return CG_OK;
}

/* RFC 9811: the operation segment of the path must agree with the body. */
static int check_op(struct msgctx *ctx)
{
    static const struct {
        const char *op;
        int body;
    } ops[] = {{"initialization", CG_BODY_IR},       {"certification", CG_BODY_CR},
               {"keyupdate", CG_BODY_KUR},           {"pkcs10", CG_BODY_P10CR},
               {"revocation", CG_BODY_RR},           {"nested", CG_BODY_NESTED},
               {"getcacerts", CG_BODY_GENM},         {"getrootupdate", CG_BODY_GENM},
               {"getcertreqtemplate", CG_BODY_GENM}, {"getcrls", CG_BODY_GENM}};
    int body = ctx->req->body->type;
    if (ctx->op == NULL || body == CG_BODY_CERTCONF || body == CG_BODY_POLLREQ ||
        body == CG_BODY_ERROR)
        return CG_OK;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].op, ctx->op) == 0 && ops[i].body == body)
            return CG_OK;
    snprintf(ctx->detail, sizeof(ctx->detail), "a %s message does not belong on the %s path",
             body_name_(body), ctx->op);
    return CG_ECMP_BADREQUEST;
}

/* --- certificate requests ----------------------------------------------------------------- */

static int name_has_only_allowed(struct msgctx *ctx, const struct cg_ee_profile *ep,
                                 const struct dn_ref *subject)
{
    struct dn_iter it;
    struct dn_attr a;
    dn_iter_init_(&it, subject);
    if (dn_iter_next_(&it, &a) != 1) {
        set_detail_(ctx, "the request has no subject DN", NULL);
        return CG_ECMP_BADCERTTEMPLATE;
    }
    for (int r = 1; ep->allowed_dn != NULL && r == 1; r = dn_iter_next_(&it, &a)) {
        const char *sn = a.nid != NID_undef ? OBJ_nid2sn(a.nid) : "?";
        size_t j;
        for (j = 0; j < ep->n_allowed_dn; j++)
            if (strcasecmp(ep->allowed_dn[j], sn) == 0)
                break;
        if (j == ep->n_allowed_dn) {
            snprintf(ctx->detail, sizeof(ctx->detail),
                     "DN attribute %s is not allowed by end entity profile %s", sn, ep->name);
            return CG_ECMP_BADREQUEST;
        }
    }
    for (size_t j = 0; j < ep->n_required_dn; j++) {
        /* a short name ("CN") is found without OBJ_txt2nid's allocation of an object */
        int nid = OBJ_sn2nid(ep->required_dn[j]);
        if (nid == NID_undef)
            nid = OBJ_txt2nid(ep->required_dn[j]);
        if (nid == NID_undef || !dn_find_(subject, nid, &a)) {
            snprintf(ctx->detail, sizeof(ctx->detail),
                     "DN attribute %s is required by end entity profile %s", ep->required_dn[j],
                     ep->name);
            return CG_ECMP_BADREQUEST;
        }
    }
    return CG_OK;
}

static int in_list(char **list, size_t n, const char *name)
{
    if (list == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], "*") == 0 || strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static int random_name(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[16];
    if (n < 17 || core_rand_(r, sizeof(r)) != CG_OK)
        return CG_ECRYPTO;
    for (size_t i = 0; i < 16; i++)
        out[i] = alphabet[r[i] % 36];
    out[16] = '\0';
    return CG_OK;
}

/* RA mode: the end entity's username, by ra_name_generation_scheme (DN falls back to RANDOM
 * when none of the named attributes is present, as the reference system does). */
static int ra_username(struct msgctx *ctx, const struct dn_ref *subject, char *out, size_t n)
{
    const struct cg_alias *a = ctx->alias;
    char base[128] = "";
    int rc = CG_OK;
    switch (a->ra_name_scheme) {
    case CG_RANAME_FIXED:
        snprintf(base, sizeof(base), "%s", a->ra_name_params ? a->ra_name_params : "");
        break;
    case CG_RANAME_USERNAME:
        if (!dn_value_(subject,
                       a->extract_username_component &&
                               strcmp(a->extract_username_component, "DN") != 0
                           ? a->extract_username_component
                           : "CN",
                       base, sizeof(base)))
            base[0] = '\0';
        break;
    case CG_RANAME_DN: {
        char params[128];
        snprintf(params, sizeof(params), "%s", a->ra_name_params ? a->ra_name_params : "CN");
        char *save = NULL;
        for (char *t = strtok_r(params, ";, ", &save); t != NULL; t = strtok_r(NULL, ";, ", &save))
            if (dn_value_(subject, t, base, sizeof(base)))
                break;
        break;
    }
    default:
        break;
    }
    if (base[0] == '\0' && (rc = random_name(base, sizeof(base))) != CG_OK)
        return rc;
    snprintf(out, n, "%s%s", a->ra_name_prefix ? a->ra_name_prefix : "", base);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '_';
    return CG_OK;
}

static int verify_popo(struct msgctx *ctx, CG_CERTREQMSG *m, EVP_PKEY **key, struct dn_ref *subject)
{
    CG_CERTTEMPLATE *t = m->certReq->certTemplate;
    CG_POPO *popo = m->popo;
    if (popo == NULL) {
        set_detail_(ctx, "the request has no proof of possession", NULL);
        return CG_ECMP_BADPOP;
    }
    switch (popo->type) {
    case CG_POPO_RAVERIFIED:
        if (ctx->alias->mode == CG_MODE_RA && ctx->alias->allow_ra_verify_popo)
            return CG_OK;
        set_detail_(ctx, "raVerified proof of possession is not allowed on this alias", NULL);
        return CG_ECMP_BADPOP;
    case CG_POPO_SIGNATURE: {
        CG_POPOSIGNINGKEY *sk = popo->value.signature;
        int ok;
        if (sk->poposkInput != NULL) {
            EVP_PKEY *pk = ca_spki_key_(sk->poposkInput->publicKey);
            if (pk == NULL || (*key != NULL && EVP_PKEY_eq(pk, *key) != 1)) {
                ecfast_key_free_(pk);
                set_detail_(ctx, "POPOSigningKeyInput public key differs from the template", NULL);
                return CG_ECMP_BADPOP;
            }
            if (sk->poposkInput->authInfo->type != 0) {
                ecfast_key_free_(pk);
                set_detail_(ctx, "publicKeyMAC in POPOSigningKeyInput is not supported", NULL);
                return CG_ECMP_BADPOP;
            }
            GENERAL_NAME *snd = sk->poposkInput->authInfo->value.sender;
            X509_NAME *tn = NULL;
            if (t->subject != NULL && snd->type == GEN_DIRNAME &&
                (tn = CG_NAME_RAW_get(t->subject)) == NULL) {
                ecfast_key_free_(pk);
                return CG_ENOMEM; /* the template's decoding took the name */
            }
            int differs = tn != NULL && X509_NAME_cmp(snd->d.directoryName, tn) != 0;
            X509_NAME_free(tn);
            if (differs) {
                ecfast_key_free_(pk);
                set_detail_(ctx, "POPOSigningKeyInput sender differs from the template subject",
                            NULL);
                return CG_ECMP_BADPOP;
            }
            ok = protect_verify_item_(ASN1_ITEM_rptr(CG_POPOSKINPUT), sk->algorithmIdentifier,
                                      sk->signature, sk->poposkInput, pk);
            if (ok && *key == NULL)
                *key = pk; /* steals */
            else
                ecfast_key_free_(pk);
            /* the subject may be given only as the POPOSigningKeyInput sender */
            if (ok && t->subject == NULL && snd->type == GEN_DIRNAME)
                subject->name = snd->d.directoryName;
        } else {
            if (*key == NULL || t->subject == NULL) {
                set_detail_(
                    ctx,
                    "signature POP without POPOSigningKeyInput needs subject and public key "
                    "in the template",
                    NULL);
                return CG_ECMP_BADPOP;
            }
            ok = protect_verify_item_(ASN1_ITEM_rptr(CG_CERTREQUEST), sk->algorithmIdentifier,
                                      sk->signature, m->certReq, *key);
        }
        if (!ok) {
            set_detail_(ctx, "proof of possession signature does not verify", NULL);
            return CG_ECMP_BADPOP;
        }
        return CG_OK;
    }
    default:
        set_detail_(ctx, "only signature and raVerified proof of possession are supported", NULL);
        return CG_ECMP_BADPOP;
    }
}

/* What an enrollment asks for, whatever its body type. */
struct enroll {
    struct dn_ref subject; /* the requested subject (a template's in its DER) */
    X509_NAME *decoded;    /* subject decoded, when needed as an X509_NAME (enroll_name) */
    EVP_PKEY *key;         /* new: the requested public key */
    const CG_SPKI *spki;   /* the received SubjectPublicKeyInfo of key, when known */
    CG_SPKI *own_spki;     /* new, p10cr: spki converted from the CSR */
    const CG_OPTVALIDITY *validity;
    STACK_OF(X509_EXTENSION) * exts; /* borrowed or owned (p10cr) */
    int own_exts;
    X509_NAME *own_subject; /* the subject without the DnPartPwd attribute, when stripped */
    char *subject_text;     /* subject_text()'s, of the name subject_text_of */
    struct dn_ref subject_text_of;
    int64_t cert_req_id;
    const struct cg_ee_profile *ep;
    const struct cg_cert_profile *cp;
    char username[256];
};

static void enroll_clear(struct enroll *en)
{
    if (en->own_exts)
        sk_X509_EXTENSION_pop_free(en->exts, X509_EXTENSION_free);
    OPENSSL_free(en->subject_text);
    X509_NAME_free(en->own_subject);
    X509_NAME_free(en->decoded);
    ecfast_key_free_(en->key);
    CG_SPKI_free(en->own_spki);
}

/* The text of en->subject, formatted once for the end entity and the certificate records
 * (NULL when out of memory). */
static const char *subject_text(struct enroll *en)
{
    if (en->subject_text == NULL || !dn_same_(&en->subject_text_of, &en->subject)) {
        OPENSSL_free(en->subject_text);
        en->subject_text = ca_dn_text_(&en->subject);
        en->subject_text_of = en->subject;
    }
    return en->subject_text;
}

/* en->subject as an X509_NAME (decoded once, NULL when out of memory). */
static const X509_NAME *enroll_name(struct enroll *en)
{
    if (en->subject.name == NULL && en->decoded == NULL)
        dn_decoded_(&en->subject, &en->decoded);
    return en->subject.name != NULL ? en->subject.name : en->decoded;
}

static int check_profiles(struct msgctx *ctx, struct enroll *en)
{
    if (!in_list(en->ep->available_cert_profiles, en->ep->n_available_cert_profiles,
                 en->cp->name)) {
        set_detail_(ctx, "certificate profile %s is not available in the end entity profile",
                    en->cp->name);
        return CG_ECMP_BADREQUEST;
    }
    if (!in_list(en->ep->available_cas, en->ep->n_available_cas, ctx->ca->name) ||
        !in_list(en->cp->available_cas, en->cp->n_available_cas, ctx->ca->name)) {
        set_detail_(ctx, "CA %s is not available in the profiles of this end entity",
                    ctx->ca->name);
        return CG_ECMP_WRONGAUTHORITY;
    }
    return CG_OK;
}

/* RA mode: profiles from the alias (ra_end_entity_profile, ra_certificate_profile, KeyId). */
static int resolve_profiles(struct msgctx *ctx, struct enroll *en)
{
    char buf[128];
    const char *epn = keyid_or(ctx, ctx->alias->ra_ee_profile, buf, sizeof(buf));
    en->ep = epn ? cg_config_ee_profile(ctx->cfg, epn) : NULL;
    if (en->ep == NULL) {
        set_detail_(ctx, "unknown end entity profile %s", epn ? epn : "(senderKID)");
        return CG_ECMP_BADREQUEST;
    }
    const char *cpn = keyid_or(ctx, ctx->alias->ra_cert_profile, buf, sizeof(buf));
    en->cp = cpn ? cg_config_cert_profile(ctx->cfg, cpn) : NULL;
    if (en->cp == NULL) {
        set_detail_(ctx, "unknown certificate profile %s", cpn ? cpn : "(senderKID)");
        return CG_ECMP_BADREQUEST;
    }
    return check_profiles(ctx, en);
}

static int read_request(struct msgctx *ctx, struct enroll *en)
{
    CG_PKIBODY *b = ctx->req->body;
    if (b->type == CG_BODY_P10CR) {
        X509_REQ *csr = b->value.p10cr;
        en->subject.name = X509_REQ_get_subject_name(csr);
        en->key = X509_REQ_get_pubkey(csr);
        en->own_spki = ca_spki_from_x509_pubkey_(X509_REQ_get_X509_PUBKEY(csr));
        en->spki = en->own_spki;
        if (en->key == NULL || X509_REQ_verify(csr, en->key) != 1) {
            set_detail_(ctx, "the PKCS#10 request's signature does not verify", NULL);
            return CG_ECMP_BADPOP;
        }
        en->exts = X509_REQ_get_extensions(csr);
        en->own_exts = 1;
        en->cert_req_id = -1;
        return CG_OK;
    }
    if (sk_CG_CERTREQMSG_num(b->value.ir) != 1) {
        set_detail_(ctx, "exactly one certificate request per message is supported", NULL);
        return CG_ECMP_BADREQUEST;
    }
    CG_CERTREQMSG *m = sk_CG_CERTREQMSG_value(b->value.ir, 0);
    CG_CERTTEMPLATE *t = m->certReq->certTemplate;
    if (ASN1_INTEGER_get_int64(&en->cert_req_id, m->certReq->certReqId) != 1 ||
        en->cert_req_id < 0 || en->cert_req_id > 0x7fffffff) {
        set_detail_(ctx, "certReqId out of range", NULL);
        return CG_ECMP_BADREQUEST;
    }
    if (!dn_ref_raw_(t->subject, &en->subject, &en->decoded))
        return CG_ENOMEM; /* the template's decoding took the name */
    en->key = t->publicKey ? ca_spki_key_(t->publicKey) : NULL;
    en->spki = t->publicKey;
    /* verify_popo may fill the subject and key from POPOSigningKeyInput */
    if (t->publicKey != NULL && en->key == NULL) {
        set_detail_(ctx, "the template's public key cannot be decoded", NULL);
        return CG_ECMP_BADCERTTEMPLATE;
    }
    if (t->publicKey == NULL && m->popo == NULL) {
        set_detail_(ctx, "server-generated keys are not enabled on this alias", NULL);
        return CG_ECMP_BADREQUEST;
    }
    int rc = verify_popo(ctx, m, &en->key, &en->subject);
    if (rc != CG_OK)
        return rc;
    if (en->key == NULL) {
        set_detail_(ctx, "server-generated keys are not enabled on this alias", NULL);
        return CG_ECMP_BADREQUEST;
    }
    if (!dn_present_(&en->subject)) {
        set_detail_(ctx, "the request has no subject DN", NULL);
        return CG_ECMP_BADCERTTEMPLATE;
    }
    en->validity = t->validity;
    en->exts = t->extensions;
    return CG_OK;
}

/* kur: the request's key, POP and validity; a missing template subject is the old one's. */
static int read_request_kur(struct msgctx *ctx, struct enroll *en, X509 *old)
{
    if (sk_CG_CERTREQMSG_num(ctx->req->body->value.ir) != 1) {
        set_detail_(ctx, "exactly one certificate request per message is supported", NULL);
        return CG_ECMP_BADREQUEST;
    }
    CG_CERTTEMPLATE *t = sk_CG_CERTREQMSG_value(ctx->req->body->value.ir, 0)->certReq->certTemplate;
    if (t->subject == NULL && old == NULL) {
        set_detail_(ctx, "a key update request must name the subject DN of the certificate", NULL);
        return CG_ECMP_BADREQUEST;
    }
    int rc = read_request(ctx, en);
    if (rc == CG_ECMP_BADCERTTEMPLATE && t->subject == NULL && old != NULL && en->key != NULL) {
        en->subject = (struct dn_ref){X509_get_subject_name(old), NULL, 0};
        ctx->detail[0] = '\0';
        rc = CG_OK;
    }
    return rc;
}

/* certHash of the certificate c (RFC 9810 5.3.18: the digest of its signature algorithm, SHA-256
 * for MD5 and SHA-1) into t. ECDSA and RSA PKCS#1 signatures name their digest: SHA-256 is c's
 * fingerprint, another is computed over c's DER at once; other algorithms (EdDSA, RSA-PSS) take
 * X509_digest_sig() on the certificate decoded from c's DER. */
static int cert_hash(const struct cg_cert_rec *c, int sig_nid, struct cg_txn_rec *t)
{
    int md_nid = NID_undef, pk_nid = NID_undef;
    unsigned n = 0;
    if (OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid) &&
        (pk_nid == NID_X9_62_id_ecPublicKey || pk_nid == NID_rsaEncryption)) {
        if (md_nid == NID_md5 || md_nid == NID_sha1)
            md_nid = NID_sha256;
        if (md_nid == NID_sha256) { /* the record's fingerprint is that digest already */
            memcpy(t->cert_hash, c->fingerprint, sizeof(c->fingerprint));
            t->cert_hash_len = sizeof(c->fingerprint);
            return CG_OK;
        }
        const EVP_MD *md = core_md_(md_nid);
        if (md != NULL && (size_t)EVP_MD_get_size(md) <= sizeof(t->cert_hash) &&
            EVP_Digest(c->der, c->der_len, t->cert_hash, &n, md, NULL) == 1) {
            t->cert_hash_len = n;
            return CG_OK;
        }
    }
    /* EdDSA, RSA-PSS: OpenSSL's rules, from the decoded certificate (rare CA keys) */
    const unsigned char *p = c->der;
    X509 *cert = d2i_X509(NULL, &p, (long)c->der_len);
    ASN1_OCTET_STRING *hash = cert != NULL ? X509_digest_sig(cert, NULL, NULL) : NULL;
    X509_free(cert);
    if (hash == NULL || ASN1_STRING_length(hash) > (int)sizeof(t->cert_hash)) {
        ASN1_OCTET_STRING_free(hash);
        return CG_ECRYPTO;
    }
    t->cert_hash_len = (size_t)ASN1_STRING_length(hash);
    memcpy(t->cert_hash, ASN1_STRING_get0_data(hash), t->cert_hash_len);
    ASN1_OCTET_STRING_free(hash);
    return CG_OK;
}

static int fill_txn(struct msgctx *ctx, struct cg_txn_rec *t, const struct cg_cert_rec *c,
                    const struct ca_cert *cert, const struct enroll *en)
{
    const ASN1_OCTET_STRING *txid = ctx->req->header->transactionID;
    if (cert_hash(c, cert->signer->sig_nid, t) != CG_OK)
        return CG_ECRYPTO;
    t->txid_len = (size_t)ASN1_STRING_length(txid);
    memcpy(t->txid, ASN1_STRING_get0_data(txid), t->txid_len);
    t->state = ctx->implicit_confirm ? CG_TXN_CONFIRMED : CG_TXN_OPEN;
    t->created = t->updated = time(NULL);
    free(t->alias);
    free(t->username);
    t->alias = strdup(ctx->alias->name);
    t->username = strdup(en->username);
    memcpy(t->nonce, ctx->nonce, NONCE_LEN);
    t->nonce_len = NONCE_LEN;
    t->body_type = ctx->req->body->type;
    t->cert_req_id = en->cert_req_id;
    memcpy(t->issuer_key, c->issuer_key, 32);
    memcpy(t->serial, c->serial, c->serial_len);
    t->serial_len = c->serial_len;
    free(t->secret);
    t->secret = NULL;
    /* client mode HMAC: certConf is MAC'd with the code the entity no longer holds */
    if (ctx->alias->mode == CG_MODE_CLIENT && ctx->auth.module == CG_AUTH_HMAC &&
        !ctx->implicit_confirm && (t->secret = strdup(ctx->auth.mac_secret)) == NULL)
        return CG_ENOMEM;
    return t->alias && t->username ? CG_OK : CG_ENOMEM;
}

static int txid_in_use(struct msgctx *ctx)
{
    const ASN1_OCTET_STRING *txid = ctx->req->header->transactionID;
    struct cg_txn_rec *t = NULL;
    int rc = cg_store_get_txn(ctx->core->store, ASN1_STRING_get0_data(txid),
                              (size_t)ASN1_STRING_length(txid), &t);
    cg_txn_rec_free(t);
    if (rc == CG_OK) {
        set_detail_(ctx, "transactionID already in use", NULL);
        return CG_ECMP_TXIDINUSE;
    }
    return rc == CG_ENOTFOUND ? CG_OK : CG_ECMP_SYSTEMUNAVAIL;
}

/* Under the entity lock: upsert the entity, issue, and commit entity + certificate +
 * transaction durably in one batch. */
/* RA mode, under the entity lock: the entity to write (created, or updated with the request's
 * DN and the alias's profiles, as the reference system does) and the version it must have. */
static int ra_prepare(struct msgctx *ctx, struct enroll *en, struct cg_entity **out,
                      uint64_t *expect)
{
    struct cg_entity *e = NULL;
    int64_t now = time(NULL);
    int rc = cg_store_get_entity(ctx->core->store, en->username, &e);
    *expect = CG_VERSION_NONE;
    if (rc == CG_OK) {
        *expect = e->version;
    } else if (rc == CG_ENOTFOUND) {
        if ((e = cg_entity_new()) == NULL || (e->username = strdup(en->username)) == NULL) {
            cg_entity_free(e);
            return CG_ENOMEM;
        }
        e->created = now;
    } else {
        return rc;
    }
    const char *subj = subject_text(en);
    free(e->subject_dn);
    free(e->ca);
    free(e->ee_profile);
    free(e->cert_profile);
    free(e->token_type);
    free(e->password);
    e->subject_dn = subj ? strdup(subj) : NULL;
    e->ca = strdup(ctx->ca->name);
    e->ee_profile = strdup(en->ep->name);
    e->cert_profile = strdup(en->cp->name);
    e->token_type = strdup("USERGENERATED");
    e->password = NULL;
    e->status = CG_EE_GENERATED;
    e->flags |= CG_ENTITY_RA_CREATED;
    e->modified = now;
    if (!e->subject_dn || !e->ca || !e->ee_profile || !e->cert_profile || !e->token_type) {
        cg_entity_free(e);
        return CG_ENOMEM;
    }
    *out = e;
    return CG_OK;
}

/* Client mode: requested extensions must be ones the certificate profile lets through. */
static int check_client_extensions(struct msgctx *ctx, const struct enroll *en)
{
    for (int i = 0; i < sk_X509_EXTENSION_num(en->exts); i++) {
        X509_EXTENSION *ex = sk_X509_EXTENSION_value(en->exts, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ex));
        void *v = X509V3_EXT_d2i(ex);
        int known = X509V3_EXT_get(ex) != NULL;
        if (known && v == NULL) {
            set_detail_(ctx, "invalid %s extension in the request", OBJ_nid2sn(nid));
            return CG_ECMP_BADREQUEST;
        }
        if (v != NULL) {
            const X509V3_EXT_METHOD *m = X509V3_EXT_get(ex);
            if (m->it != NULL)
                ASN1_item_free(v, ASN1_ITEM_ptr(m->it));
        }
        int ok = nid == NID_subject_alt_name ||
                 (nid == NID_key_usage && en->cp->allow_key_usage_override) ||
                 en->cp->allow_extension_override;
        if (!ok) {
            set_detail_(ctx, "the certificate profile does not allow the requested %s extension",
                        nid != NID_undef ? OBJ_nid2sn(nid) : "unknown");
            return CG_ECMP_BADREQUEST;
        }
    }
    return CG_OK;
}

static int check_profiles(struct msgctx *ctx, struct enroll *en);

/* A registered entity's CA (→ ctx->ca) and profiles (→ en), checked against each other. */
static int entity_ca_profiles(struct msgctx *ctx, const struct cg_entity *e, struct enroll *en)
{
    const struct cg_ca *ca = e->ca ? cg_config_ca(ctx->cfg, e->ca) : NULL;
    if (ca == NULL) {
        set_detail_(ctx, "the CA of end entity %s does not exist", en->username);
        return CG_ECMP_WRONGAUTHORITY;
    }
    ctx->ca = ca;
    en->ep = e->ee_profile ? cg_config_ee_profile(ctx->cfg, e->ee_profile) : NULL;
    en->cp = e->cert_profile ? cg_config_cert_profile(ctx->cfg, e->cert_profile) : NULL;
    if (en->ep == NULL || en->cp == NULL) {
        set_detail_(ctx, "the profiles of end entity %s do not exist", en->username);
        return CG_ECMP_BADREQUEST;
    }
    return check_profiles(ctx, en);
}

/* The registered end entity of en (client mode, kur), new in *e; one that is not registered
 * is refused with missing_rc and the detail fmt (one %s: the username). */
static int registered_entity(struct msgctx *ctx, const struct enroll *en, int missing_rc,
                             const char *fmt, struct cg_entity **e)
{
    int rc = cg_store_get_entity(ctx->core->store, en->username, e);
    if (rc == CG_ENOTFOUND) {
        set_detail_(ctx, fmt, en->username);
        rc = missing_rc;
    }
    return rc;
}

/* Client mode, under the entity lock: the registered entity must be NEW, still hold the code
 * that authenticated the request, and have the requested DN; it becomes GENERATED and its
 * code is consumed in the same durable batch as the certificate. */
static int client_prepare(struct msgctx *ctx, struct enroll *en, struct cg_entity **out,
                          uint64_t *expect)
{
    struct cg_entity *e = NULL;
    X509_NAME *reg = NULL;
    int rc = registered_entity(ctx, en, CG_ECMP_NOTAUTHORIZED, "unknown end entity %s", &e);
    if (rc != CG_OK)
        goto out;
    rc = CG_ECMP_NOTAUTHORIZED;
    if (e->status != CG_EE_NEW) {
        set_detail_(ctx, "end entity %s is not in status NEW (enrollment code already used?)",
                    en->username);
        goto out;
    }
    if (ctx->auth.code != NULL &&
        (e->password == NULL || strcmp(e->password, ctx->auth.code) != 0)) {
        set_detail_(ctx, "the enrollment code of %s was used or changed meanwhile", en->username);
        goto out;
    }
    if ((rc = entity_ca_profiles(ctx, e, en)) != CG_OK)
        goto out;
    reg = e->subject_dn ? dn_parse_(e->subject_dn) : NULL;
    int skip = ctx->auth.dn_pwd_attr ? OBJ_txt2nid(ctx->auth.dn_pwd_attr) : 0;
    const X509_NAME *req = enroll_name(en);
    if (reg == NULL || req == NULL || !dn_equal_unordered_(reg, req, skip)) {
        set_detail_(ctx, "the requested subject does not match the registered DN of %s",
                    en->username);
        rc = CG_ECMP_BADREQUEST;
        goto out;
    }
    if ((rc = name_has_only_allowed(ctx, en->ep, &en->subject)) != CG_OK ||
        (rc = ca_check_key_(en->cp, en->key, ctx->detail, sizeof(ctx->detail))) != CG_OK ||
        (rc = check_client_extensions(ctx, en)) != CG_OK)
        goto out;
    *expect = e->version;
    e->status = CG_EE_GENERATED;
    if (e->password != NULL) {
        OPENSSL_cleanse(e->password, strlen(e->password));
        free(e->password);
        e->password = NULL;
    }
    e->modified = time(NULL);
    *out = e;
    e = NULL;
    rc = CG_OK;
out:
    X509_NAME_free(reg);
    cg_entity_free(e);
    return rc;
}

/* --- deferred writes (CG_CORE_DEFER) ---------------------------------------------------- */

struct cg_core_pending {
    struct cg_store *store;
    struct cg_store_batch *batch;
    char *locked; /* the username whose entity lock this write holds, or NULL */
    cg_core_done_fn done;
    void *arg;
};

/* Keep *b (taken) for the caller's cg_core_commit() instead of committing it here; locked
 * names the entity lock the caller holds, which then stays held until the write is done. */
static int defer_write(struct msgctx *ctx, struct cg_store_batch **b, const char *locked)
{
    struct cg_core_pending *p = NULL;
    if (ctx->pending != NULL) /* one deferred write per message */
        return cg_store_commit(ctx->core->store, *b);
    if ((p = calloc(1, sizeof(*p))) == NULL ||
        (locked != NULL && (p->locked = strdup(locked)) == NULL)) {
        free(p);
        return CG_ENOMEM;
    }
    p->store = ctx->core->store;
    p->batch = *b;
    *b = NULL;
    ctx->pending = p;
    return CG_OK;
}

/* Drop a deferred write unwritten (or after it was written), releasing its entity lock. */
static void pending_release(struct cg_core_pending *p)
{
    if (p == NULL)
        return;
    if (p->locked != NULL)
        cg_store_unlock_entity(p->store, p->locked);
    free(p->locked);
    cg_store_batch_free(p->batch);
    free(p);
}

/* The committer thread: the deferred write is durable (or failed). */
static void pending_written(void *arg, int rc)
{
    struct cg_core_pending *p = arg;
    cg_core_done_fn done = p->done;
    void *done_arg = p->arg;
    pending_release(p);
    done(done_arg, rc);
}

int cg_core_commit(struct cg_core_result *res, cg_core_done_fn done, void *arg)
{
    struct cg_core_pending *p = res != NULL ? res->pending : NULL;
    if (p == NULL || done == NULL)
        return CG_EINVAL;
    res->pending = NULL;
    p->done = done;
    p->arg = arg;
    int rc = cg_store_commit_async(p->store, p->batch, pending_written, p);
    if (rc != CG_OK)
        pending_release(p);
    return rc;
}

/* Take the entity lock. A deferring run does not wait for it: when another request's write
 * holds it, the message is left unprocessed (CG_EBUSY, res->wait_entity) and the caller runs
 * it again once the lock is released, so no worker sleeps on an entity (many parallel
 * requests for one entity would otherwise hold every worker). */
static int lock_entity(struct msgctx *ctx, const char *username)
{
    if (!ctx->defer) {
        cg_store_lock_entity(ctx->core->store, username);
        return CG_OK;
    }
    if (cg_store_trylock_entity(ctx->core->store, username))
        return CG_OK;
    snprintf(ctx->res->wait_entity, sizeof(ctx->res->wait_entity), "%s", username);
    return CG_EBUSY;
}

int cg_core_wait_entity(struct cg_core *core, const struct cg_core_result *res,
                        void (*done)(void *arg, int rc), void *arg)
{
    return cg_store_wait_entity(core->store, res->wait_entity, done, arg);
}

void cg_core_waited(struct cg_core *core, const char *username)
{
    cg_store_kick_entity(core->store, username);
}

/* Under the entity lock: prepare the entity, issue, and commit entity + certificate +
 * transaction durably in one batch (or leave the batch and the lock to a deferred write). */
typedef int (*prepare_fn)(struct msgctx *ctx, struct enroll *en, struct cg_entity **out,
                          uint64_t *expect);

static int issue_locked(struct msgctx *ctx, struct enroll *en, prepare_fn prepare,
                        struct ca_cert *out)
{
    int rc = CG_EINTERNAL;
    for (int attempt = 0; attempt < MAX_RETRIES; attempt++) {
        struct cg_entity *e = NULL;
        struct cg_cert_rec *c = cg_cert_rec_new();
        struct cg_txn_rec *t = cg_txn_rec_new();
        struct cg_store_batch *b = cg_store_batch_new();
        struct ca_cert cert = {0};
        uint8_t serial[16];
        uint64_t expect = CG_VERSION_NONE;
        if (c == NULL || t == NULL || b == NULL) {
            rc = CG_ENOMEM;
            goto next;
        }
        rc = prepare(ctx, en, &e, &expect);
        if (rc != CG_OK)
            goto next;
        struct ca_request rq = {en->subject, en->key, en->spki, en->validity, en->exts};
        if ((rc = ca_random_serial_(serial)) != CG_OK ||
            (rc = ca_issue_(ca_signer(ctx), en->cp, profile_exts(ctx, en->cp), &rq, serial, &cert,
                            ctx->detail, sizeof(ctx->detail))) != CG_OK)
            goto next;
        /* the certificate's subject is rq's, en->subject */
        if ((rc = ca_issued_rec_fill_(&cert, ctx->ca->name, en->username, subject_text(en), c)) !=
                CG_OK ||
            (rc = fill_txn(ctx, t, c, &cert, en)) != CG_OK)
            goto next;
        if ((rc = cg_store_batch_put_entity(b, e, expect)) != CG_OK ||
            (rc = cg_store_batch_add_cert(b, c)) != CG_OK ||
            (rc = cg_store_batch_put_txn(b, t, 1)) != CG_OK)
            goto next;
        rc = ctx->defer ? defer_write(ctx, &b, en->username) : cg_store_commit(ctx->core->store, b);
        if (rc == CG_OK) {
            hex_(c->serial, c->serial_len, ctx->res->serial, sizeof(ctx->res->serial));
            *out = cert;
            memset(&cert, 0, sizeof(cert));
        } else if (rc == CG_EEXIST && txid_in_use(ctx) != CG_OK) {
            rc = CG_ECMP_TXIDINUSE;
        }
    next:
        ca_cert_clear_(&cert);
        cg_entity_free(e);
        cg_cert_rec_free(c);
        cg_txn_rec_free(t);
        cg_store_batch_free(b);
        if (rc != CG_ECONFLICT && rc != CG_EEXIST)
            break;
    }
    if (rc == CG_ECONFLICT || rc == CG_EEXIST || rc == CG_ESTORE || rc == CG_EFULL ||
        rc == CG_ECLOSED) {
        set_detail_(ctx, "the store could not record the certificate: %s", cg_strerror(rc));
        rc = CG_ECMP_SYSTEMUNAVAIL;
    }
    return rc;
}

static int certrep_response(struct msgctx *ctx, const struct ca_cert *cert, int64_t cert_req_id)
{
    int rep_type = ctx->req->body->type == CG_BODY_IR    ? CG_BODY_IP
                   : ctx->req->body->type == CG_BODY_KUR ? CG_BODY_KUP
                                                         : CG_BODY_CP;
    /* caPubs: the CA's certificate, then the alias's response_capubs */
    X509 **capubs = calloc(1 + ctx->alias->n_response_capubs, sizeof(X509 *));
    size_t n = 0;
    ASN1_STRING *body = ASN1_STRING_new();
    int rc = CG_ENOMEM;
    if (capubs == NULL || body == NULL)
        goto out;
    capubs[n++] = ctx->ca->cert;
    for (size_t i = 0; i < ctx->alias->n_response_capubs; i++) {
        X509 *x = named_ca_cert(ctx->cfg, ctx->alias->response_capubs[i]);
        if (x != NULL)
            capubs[n++] = x;
    }
    /* the body is written as DER at once (an OpenSSL encoding of its five nested levels
     * computes each inner length again at every level) */
    if ((rc = ca_certrep_der_(rep_type, capubs, n, cert_req_id, cert, body)) != CG_OK)
        goto out;
    rc = CG_ENOMEM;
    if ((ctx->resp = response_new(ctx, CG_BODY_DER)) == NULL)
        goto out;
    if (ctx->implicit_confirm && (rc = add_implicit_confirm(ctx->resp->header)) != CG_OK)
        goto out;
    ctx->resp->body->value.der = body;
    body = NULL;
    rc = CG_OK;
out:
    ASN1_STRING_free(body);
    free(capubs);
    return rc;
}

static int handle_kur(struct msgctx *ctx);

/* The requested subject without the attribute that carried the DnPartPwd password. */
static int strip_dn_password(struct msgctx *ctx, struct enroll *en)
{
    int nid = OBJ_txt2nid(ctx->auth.dn_pwd_attr);
    const X509_NAME *req = enroll_name(en);
    if (req == NULL || (en->own_subject = X509_NAME_dup(req)) == NULL)
        return CG_ENOMEM;
    for (int i = X509_NAME_entry_count(en->own_subject) - 1; i >= 0; i--)
        if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(en->own_subject, i))) == nid)
            X509_NAME_ENTRY_free(X509_NAME_delete_entry(en->own_subject, i));
    /* Encoded and decoded once: the encoding sorts a multi-valued RDN's entries (DER SET OF),
     * and the certificate's subject text in the store must list them as the certificate does
     * (the entries of a name decoded from the request already are in its encoding's order). */
    unsigned char *der = NULL;
    int n = i2d_X509_NAME(en->own_subject, &der);
    const unsigned char *p = der;
    X509_NAME *canon = n > 0 ? d2i_X509_NAME(NULL, &p, n) : NULL;
    OPENSSL_free(der);
    if (canon == NULL)
        return CG_ENOMEM;
    X509_NAME_free(en->own_subject);
    en->own_subject = canon;
    en->subject = (struct dn_ref){canon, NULL, 0};
    return CG_OK;
}

static int handle_cert_request(struct msgctx *ctx)
{
    struct enroll en;
    struct ca_cert cert = {0};
    int rc;
    memset(&en, 0, sizeof(en));
    if (ctx->req->body->type == CG_BODY_KUR)
        return handle_kur(ctx);
    if ((rc = read_request(ctx, &en)) != CG_OK)
        goto out;
    if (ctx->alias->mode == CG_MODE_RA) {
        if ((rc = resolve_profiles(ctx, &en)) != CG_OK ||
            (rc = name_has_only_allowed(ctx, en.ep, &en.subject)) != CG_OK ||
            (rc = ca_check_key_(en.cp, en.key, ctx->detail, sizeof(ctx->detail))) != CG_OK ||
            (rc = ra_username(ctx, &en.subject, en.username, sizeof(en.username))) != CG_OK)
            goto out;
        if (!auth_admin_allows_(ctx, body_name_(ctx->req->body->type), en.ep->name)) {
            set_detail_(ctx, "the administrator may not do this for end entity profile %s",
                        en.ep->name);
            rc = CG_ECMP_NOTAUTHORIZED;
            goto out;
        }
    } else {
        snprintf(en.username, sizeof(en.username), "%s", ctx->auth.user);
        if (ctx->auth.dn_pwd_attr != NULL && (rc = strip_dn_password(ctx, &en)) != CG_OK)
            goto out;
    }
    snprintf(ctx->res->username, sizeof(ctx->res->username), "%s", en.username);
    ctx->implicit_confirm = has_implicit_confirm(ctx->req->header);
    if ((rc = lock_entity(ctx, en.username)) != CG_OK)
        goto out;
    rc =
        issue_locked(ctx, &en, ctx->alias->mode == CG_MODE_RA ? ra_prepare : client_prepare, &cert);
    if (ctx->pending == NULL) /* else the deferred write releases it */
        cg_store_unlock_entity(ctx->core->store, en.username);
    if (rc != CG_OK)
        goto out;
    rc = certrep_response(ctx, &cert, en.cert_req_id);
    snprintf(ctx->res->outcome, sizeof(ctx->res->outcome), "accepted");
out:
    enroll_clear(&en);
    ca_cert_clear_(&cert);
    return rc;
}

/* --- key update ------------------------------------------------------------------------------ */

/* kur, under the entity lock: the entity must exist (else BAD_MESSAGE_CHECK, the reference
 * row) and be NEW unless allow_automatic_key_update; it stays registered with its CA and
 * profiles and becomes GENERATED again. */
static int kur_prepare(struct msgctx *ctx, struct enroll *en, struct cg_entity **out,
                       uint64_t *expect)
{
    struct cg_entity *e = NULL;
    int rc = registered_entity(ctx, en, CG_ECMP_BADMSGCHECK,
                               "key update for an end entity that is not registered: %s", &e);
    if (rc != CG_OK)
        goto out;
    rc = CG_ECMP_BADMSGCHECK;
    if (e->status != CG_EE_NEW && !ctx->alias->allow_automatic_key_update) {
        set_detail_(ctx, "end entity %s is not NEW and automatic key update is off", en->username);
        goto out;
    }
    if ((rc = entity_ca_profiles(ctx, e, en)) != CG_OK ||
        (rc = ca_check_key_(en->cp, en->key, ctx->detail, sizeof(ctx->detail))) != CG_OK)
        goto out;
    *expect = e->version;
    e->status = CG_EE_GENERATED;
    e->modified = time(NULL);
    *out = e;
    e = NULL;
    rc = CG_OK;
out:
    cg_entity_free(e);
    return rc;
}

struct find_old {
    const X509_NAME *subject;
    const X509_NAME *issuer; /* may be NULL */
    X509 *found;             /* new: the newest active match */
};

static int find_old_cb(const struct cg_cert_rec *c, void *arg)
{
    struct find_old *f = arg;
    const unsigned char *p = c->der;
    if (c->status != CG_CERT_ACTIVE)
        return 0;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    if (x == NULL)
        return 0;
    if (dn_equal_unordered_(X509_get_subject_name(x), f->subject, 0) &&
        (f->issuer == NULL || X509_NAME_cmp(X509_get_issuer_name(x), f->issuer) == 0) &&
        X509_cmp_current_time(X509_get0_notAfter(x)) > 0) {
        X509_free(f->found); /* listing is in issue order: keep the newest */
        f->found = x;
        return 0;
    }
    X509_free(x);
    return 0;
}

static int handle_kur(struct msgctx *ctx)
{
    struct enroll en;
    struct ca_cert cert = {0};
    X509 *old = NULL;
    int rc;
    memset(&en, 0, sizeof(en));
    if (ctx->auth.module != CG_AUTH_EEC) {
        set_detail_(ctx,
                    "a key update request must be signed with a certificate (EndEntityCertificate)",
                    NULL);
        return CG_ECMP_BADREQUEST;
    }
    CG_CERTREQMSG *m = sk_CG_CERTREQMSG_value(ctx->req->body->value.ir, 0);
    CG_CERTTEMPLATE *t = m ? m->certReq->certTemplate : NULL;
    if (t != NULL && t->subject == NULL && ctx->alias->mode == CG_MODE_RA) {
        set_detail_(ctx, "a key update request must name the subject DN of the certificate", NULL);
        return CG_ECMP_BADREQUEST;
    }
    if (ctx->alias->mode == CG_MODE_CLIENT) {
        if (ctx->auth.signer_rec == NULL) {
            set_detail_(ctx, "the signer certificate was not issued here and cannot be renewed",
                        NULL);
            return CG_ECMP_BADMSGCHECK;
        }
        if (!X509_up_ref(ctx->auth.signer))
            return CG_ECRYPTO;
        old = ctx->auth.signer; /* the CA renews the certificate in extraCerts */
        snprintf(en.username, sizeof(en.username), "%s", ctx->auth.user);
        X509_NAME *tn = t != NULL ? CG_NAME_RAW_get(t->subject) : NULL;
        int differs = t != NULL && t->subject != NULL &&
                      (tn == NULL || !dn_equal_unordered_(tn, X509_get_subject_name(old), 0));
        X509_NAME_free(tn);
        if (differs) {
            set_detail_(ctx, "the requested subject differs from the certificate to renew", NULL);
            rc = CG_ECMP_BADREQUEST;
            goto out;
        }
    }
    if ((rc = read_request_kur(ctx, &en, old)) != CG_OK)
        goto out;
    if (ctx->alias->mode == CG_MODE_RA) {
        if ((rc = ra_username(ctx, &en.subject, en.username, sizeof(en.username))) != CG_OK)
            goto out;
        struct find_old f = {enroll_name(&en), t ? t->issuer : NULL, NULL};
        if (f.subject == NULL) {
            rc = CG_ENOMEM;
            goto out;
        }
        rc = cg_store_list_certs(ctx->core->store, en.username, find_old_cb, &f);
        old = f.found;
        if (rc != CG_OK || old == NULL) {
            set_detail_(ctx, "no valid certificate of %s with that subject to renew", en.username);
            rc = CG_ECMP_BADMSGCHECK;
            goto out;
        }
        struct cg_entity *owner = NULL;
        cg_store_get_entity(ctx->core->store, en.username, &owner);
        int allowed = auth_admin_allows_(ctx, "kur", owner ? owner->ee_profile : NULL);
        cg_entity_free(owner);
        if (!allowed) {
            set_detail_(ctx, "the administrator may not update keys of %s", en.username);
            rc = CG_ECMP_NOTAUTHORIZED;
            goto out;
        }
    }
    if (EVP_PKEY_eq(en.key, X509_get0_pubkey(old)) == 1 &&
        !ctx->alias->allow_update_with_same_key) {
        set_detail_(ctx, "key update with the same key pair is not allowed on this alias", NULL);
        rc = CG_ECMP_BADMSGCHECK;
        goto out;
    }
    en.subject = (struct dn_ref){X509_get_subject_name(old), NULL, 0};
    snprintf(ctx->res->username, sizeof(ctx->res->username), "%s", en.username);
    ctx->implicit_confirm = has_implicit_confirm(ctx->req->header);
    if ((rc = lock_entity(ctx, en.username)) != CG_OK)
        goto out;
    rc = issue_locked(ctx, &en, kur_prepare, &cert);
    if (ctx->pending == NULL) /* else the deferred write releases it */
        cg_store_unlock_entity(ctx->core->store, en.username);
    if (rc != CG_OK)
        goto out;
    rc = certrep_response(ctx, &cert, en.cert_req_id);
    snprintf(ctx->res->outcome, sizeof(ctx->res->outcome), "accepted");
out:
    enroll_clear(&en);
    core_cert_release_(old); /* the signer's from extraCerts, or one decoded here */
    ca_cert_clear_(&cert);
    return rc;
}

/* --- certConf ------------------------------------------------------------------------------ */

/* Move an OPEN transaction to state `to` in a batch of its own (a sweep closing it, or when
 * the batch that also revoked its certificate failed because an administrator had revoked
 * it first). */
static int set_txn_state_alone(struct cg_core *core, const uint8_t *txid, size_t txid_len, int to,
                               int64_t now)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int rc = b ? cg_store_batch_set_txn_state(b, txid, txid_len, CG_TXN_OPEN, to, now) : CG_ENOMEM;
    if (rc == CG_OK)
        rc = cg_store_commit(core->store, b);
    cg_store_batch_free(b);
    return rc;
}

static int handle_certconf(struct msgctx *ctx)
{
    const CG_PKIHEADER *h = ctx->req->header;
    struct cg_txn_rec *t = NULL;
    struct cg_cert_rec *c = NULL;
    struct cg_store_batch *b = NULL;
    ASN1_OCTET_STRING *hash = NULL;
    X509 *cert = NULL;
    int rc = ctx->txn != NULL ? CG_OK : CG_ENOTFOUND; /* loaded before authentication */
    t = ctx->txn;
    ctx->txn = NULL;
    if (rc == CG_ENOTFOUND) {
        set_detail_(ctx, "certConf for an unknown transaction", NULL);
        rc = CG_ECMP_BADREQUEST;
        goto out;
    } else if (rc != CG_OK) {
        rc = CG_ECMP_SYSTEMUNAVAIL;
        goto out;
    }
    snprintf(ctx->res->username, sizeof(ctx->res->username), "%s", t->username ? t->username : "");
    hex_(t->serial, t->serial_len, ctx->res->serial, sizeof(ctx->res->serial));
    if (t->alias == NULL || strcmp(t->alias, ctx->alias->name) != 0) {
        set_detail_(ctx, "certConf on another alias than the request it confirms", NULL);
        rc = CG_ECMP_BADREQUEST;
        goto out;
    }
    if (t->state != CG_TXN_OPEN || t->serial_len == 0) {
        set_detail_(ctx, "the transaction is not waiting for a certConf", NULL);
        rc = t->state == CG_TXN_CONFIRMED ? CG_ECMP_CERTCONFIRMED : CG_ECMP_BADREQUEST;
        goto out;
    }
    if (h->recipNonce == NULL || ASN1_STRING_length(h->recipNonce) != (int)t->nonce_len ||
        memcmp(ASN1_STRING_get0_data(h->recipNonce), t->nonce, t->nonce_len) != 0) {
        set_detail_(ctx, "recipNonce does not match the senderNonce of our response", NULL);
        rc = CG_ECMP_BADRECIPNONCE;
        goto out;
    }
    STACK_OF(CG_CERTSTATUS) *list = ctx->req->body->value.certConf;
    if (sk_CG_CERTSTATUS_num(list) != 1) {
        set_detail_(ctx, "certConf must confirm exactly the one certificate issued", NULL);
        rc = CG_ECMP_BADREQUEST;
        goto out;
    }
    CG_CERTSTATUS *cs = sk_CG_CERTSTATUS_value(list, 0);
    int64_t rid = 0;
    if (ASN1_INTEGER_get_int64(&rid, cs->certReqId) != 1 || rid != t->cert_req_id) {
        set_detail_(ctx, "certReqId does not match the issued certificate", NULL);
        rc = CG_ECMP_BADREQUEST;
        goto out;
    }
    const uint8_t *want = t->cert_hash;
    size_t want_len = t->cert_hash_len;
    if (cs->hashAlg != NULL) {
        const ASN1_OBJECT *obj = NULL;
        X509_ALGOR_get0(&obj, NULL, NULL, cs->hashAlg);
        const EVP_MD *md = EVP_get_digestbyobj(obj);
        unsigned char buf[EVP_MAX_MD_SIZE];
        unsigned blen = 0;
        if (md == NULL) {
            set_detail_(ctx, "unsupported hashAlg in certConf", NULL);
            rc = CG_ECMP_BADALG;
            goto out;
        }
        if ((rc = cg_store_get_cert(ctx->core->store, t->issuer_key, t->serial, t->serial_len,
                                    &c)) != CG_OK ||
            EVP_Digest(c->der, c->der_len, buf, &blen, md, NULL) != 1) {
            rc = CG_ECMP_SYSTEMUNAVAIL;
            goto out;
        }
        hash = ASN1_OCTET_STRING_new();
        if (hash == NULL || ASN1_OCTET_STRING_set(hash, buf, (int)blen) != 1) {
            rc = CG_ENOMEM;
            goto out;
        }
        want = ASN1_STRING_get0_data(hash);
        want_len = blen;
    }
    if ((size_t)ASN1_STRING_length(cs->certHash) != want_len ||
        memcmp(ASN1_STRING_get0_data(cs->certHash), want, want_len) != 0) {
        set_detail_(ctx, "certHash does not match the issued certificate", NULL);
        rc = CG_ECMP_BADCERTID;
        goto out;
    }
    long status = cs->statusInfo ? ASN1_INTEGER_get(cs->statusInfo->status) : CG_STATUS_ACCEPTED;
    int to = status == CG_STATUS_REJECTION ? CG_TXN_REJECTED : CG_TXN_CONFIRMED;
    if ((b = cg_store_batch_new()) == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    rc = cg_store_batch_set_txn_state(b, t->txid, t->txid_len, CG_TXN_OPEN, to, time(NULL));
    /* RFC 4210: a certificate the client rejects is revoked (revoke_unconfirmed) */
    int revoke = to == CG_TXN_REJECTED && ctx->alias->revoke_unconfirmed;
    if (rc == CG_OK && revoke)
        rc = cg_store_batch_revoke_cert(b, t->issuer_key, t->serial, t->serial_len,
                                        CG_REASON_UNCONFIRMED, time(NULL));
    if (rc == CG_OK)
        rc = ctx->defer ? defer_write(ctx, &b, NULL) : cg_store_commit(ctx->core->store, b);
    if (rc == CG_EALREADY) /* revoked meanwhile by an administrator: just close */
        rc = set_txn_state_alone(ctx->core, t->txid, t->txid_len, to, time(NULL));
    if (rc == CG_ECONFLICT) {
        set_detail_(ctx, "the certificate was already confirmed", NULL);
        rc = CG_ECMP_CERTCONFIRMED;
        goto out;
    } else if (rc != CG_OK) {
        rc = CG_ECMP_SYSTEMUNAVAIL;
        goto out;
    }
    if ((ctx->resp = response_new(ctx, CG_BODY_PKICONF)) == NULL ||
        (ctx->resp->body->value.pkiconf = ASN1_NULL_new()) == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    snprintf(ctx->res->outcome, sizeof(ctx->res->outcome), "%s",
             to == CG_TXN_CONFIRMED ? "pkiConf"
             : revoke               ? "pkiConf(rejected-by-client,revoked)"
                                    : "pkiConf(rejected-by-client)");
    rc = CG_OK;
out:
    (void)cert;
    ASN1_OCTET_STRING_free(hash);
    cg_cert_rec_free(c);
    cg_txn_rec_free(t);
    cg_store_batch_free(b);
    return rc;
}

/* --- revocation ------------------------------------------------------------------------------ */

/* rp with one status: accepted, or a rejection that the reference system signs. */
static int rp_response(struct msgctx *ctx, int err, const char *text)
{
    CG_REVREPCONTENT *rp = CG_REVREPCONTENT_new();
    CG_PKISI *si = status_new(err == CG_OK ? CG_STATUS_ACCEPTED : CG_STATUS_REJECTION, err, text);
    if (rp == NULL || si == NULL || sk_CG_PKISI_push(rp->status, si) <= 0)
        goto fail;
    si = NULL;
    if ((ctx->resp = response_new(ctx, CG_BODY_RP)) == NULL)
        goto fail;
    ctx->resp->body->value.rp = rp;
    snprintf(ctx->res->outcome, sizeof(ctx->res->outcome), "%s",
             err == CG_OK ? "revoked" : fail_name(err));
    if (err != CG_OK)
        snprintf(ctx->res->detail, sizeof(ctx->res->detail), "%s", text);
    return CG_OK;
fail:
    CG_PKISI_free(si);
    CG_REVREPCONTENT_free(rp);
    return CG_ENOMEM;
}

static int crl_reason(struct msgctx *ctx, STACK_OF(X509_EXTENSION) * exts, int *reason)
{
    int crit = 0;
    *reason = 0; /* unspecified */
    ASN1_ENUMERATED *e = X509V3_get_d2i(exts, NID_crl_reason, &crit, NULL);
    if (e == NULL) {
        if (crit == -1)
            return CG_OK; /* absent */
        set_detail_(ctx, "the revocation reason could not be parsed", NULL);
        return CG_ECMP_INCORRECTDATA;
    }
    long r = ASN1_ENUMERATED_get(e);
    ASN1_ENUMERATED_free(e);
    if (r < 0 || r > 10 || r == 7) {
        set_detail_(ctx, "the revocation reason is not a CRL reason code", NULL);
        return CG_ECMP_INCORRECTDATA;
    }
    *reason = (int)r;
    return CG_OK;
}

static int handle_rr(struct msgctx *ctx)
{
    STACK_OF(CG_REVDETAILS) *list = ctx->req->body->value.rr;
    struct cg_cert_rec *c = NULL;
    struct cg_store_batch *b = NULL;
    struct cg_txn_rec *t = NULL;
    BIGNUM *bn = NULL;
    uint8_t serial[32], ikey[32];
    int reason = 0, rc;
    if (sk_CG_REVDETAILS_num(list) != 1) {
        set_detail_(ctx, "exactly one revocation request per message is supported", NULL);
        return CG_ECMP_BADREQUEST;
    }
    CG_REVDETAILS *d = sk_CG_REVDETAILS_value(list, 0);
    CG_CERTTEMPLATE *tmpl = d->certDetails;
    if (tmpl->serialNumber == NULL || tmpl->issuer == NULL)
        return rp_response(ctx, CG_ECMP_BADCERTID,
                           "serial number or issuer missing in the request");
    const struct cg_ca *ca = NULL;
    for (size_t i = 0; i < ctx->cfg->n_cas && ca == NULL; i++)
        if (X509_NAME_cmp(X509_get_subject_name(ctx->cfg->cas[i].cert), tmpl->issuer) == 0)
            ca = &ctx->cfg->cas[i];
    if (ca == NULL) {
        set_detail_(ctx, "the issuer of the certificate to revoke is not a CA of this gateway",
                    NULL);
        return CG_ECMP_BADREQUEST;
    }
    ctx->ca = ca;
    if ((rc = crl_reason(ctx, d->crlEntryDetails, &reason)) != CG_OK)
        return rc;
    bn = ASN1_INTEGER_to_BN(tmpl->serialNumber, NULL);
    if (bn == NULL || BN_is_negative(bn) || BN_num_bytes(bn) > 32 || BN_is_zero(bn)) {
        BN_free(bn);
        return rp_response(ctx, CG_ECMP_BADCERTID, "serial number out of range");
    }
    size_t slen = (size_t)BN_bn2bin(bn, serial);
    BN_free(bn);
    hex_(serial, slen, ctx->res->serial, sizeof(ctx->res->serial));
    if (ca_name_key_(X509_get_subject_name(ca->cert), ikey) != CG_OK)
        return CG_ECRYPTO;
    rc = cg_store_get_cert(ctx->core->store, ikey, serial, slen, &c);
    if (rc == CG_ENOTFOUND)
        return rp_response(ctx, CG_ECMP_BADCERTID, "no such certificate");
    if (rc != CG_OK) {
        set_detail_(ctx, "store: %s", cg_strerror(rc));
        return CG_ECMP_SYSTEMUNAVAIL;
    }
    const char *user = c->username ? c->username : "";
    snprintf(ctx->res->username, sizeof(ctx->res->username), "%s", user);
    if (ctx->alias->mode == CG_MODE_CLIENT && strcmp(ctx->auth.user, user) != 0) {
        set_detail_(ctx, "an end entity may only revoke its own certificates", NULL);
        rc = CG_ECMP_NOTAUTHORIZED;
        goto out;
    }
    if (ctx->auth.admin != NULL) {
        struct cg_entity *owner = NULL;
        cg_store_get_entity(ctx->core->store, user, &owner);
        int ok = auth_admin_allows_(ctx, "rr", owner ? owner->ee_profile : NULL);
        cg_entity_free(owner);
        if (!ok) {
            set_detail_(ctx, "the administrator may not revoke certificates of %s", user);
            rc = CG_ECMP_NOTAUTHORIZED;
            goto out;
        }
    }
    t = cg_txn_rec_new();
    b = cg_store_batch_new();
    if (t == NULL || b == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    const ASN1_OCTET_STRING *txid = ctx->req->header->transactionID;
    t->txid_len = (size_t)ASN1_STRING_length(txid);
    memcpy(t->txid, ASN1_STRING_get0_data(txid), t->txid_len);
    t->state = CG_TXN_CLOSED;
    t->created = t->updated = time(NULL);
    t->alias = strdup(ctx->alias->name);
    t->username = strdup(user);
    memcpy(t->nonce, ctx->nonce, NONCE_LEN);
    t->nonce_len = NONCE_LEN;
    t->body_type = CG_BODY_RR;
    memcpy(t->issuer_key, ikey, 32);
    memcpy(t->serial, serial, slen);
    t->serial_len = slen;
    if (t->alias == NULL || t->username == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    if ((rc = lock_entity(ctx, user)) != CG_OK)
        goto out;
    if ((rc = cg_store_batch_put_txn(b, t, 1)) == CG_OK &&
        (rc = cg_store_batch_revoke_cert(b, ikey, serial, slen, reason, time(NULL))) == CG_OK)
        rc = ctx->defer ? defer_write(ctx, &b, user) : cg_store_commit(ctx->core->store, b);
    if (ctx->pending == NULL) /* else the deferred write releases it */
        cg_store_unlock_entity(ctx->core->store, user);
    if (rc == CG_EALREADY)
        rc = rp_response(ctx, CG_ECMP_CERTREVOKED, "the certificate is already revoked");
    else if (rc == CG_EEXIST) {
        set_detail_(ctx, "transactionID already in use", NULL);
        rc = CG_ECMP_TXIDINUSE;
    } else if (rc == CG_ENOTFOUND)
        rc = rp_response(ctx, CG_ECMP_BADCERTID, "no such certificate");
    else if (rc == CG_OK)
        rc = rp_response(ctx, CG_OK, NULL);
    else {
        set_detail_(ctx, "store: %s", cg_strerror(rc));
        rc = CG_ECMP_SYSTEMUNAVAIL;
    }
out:
    cg_cert_rec_free(c);
    cg_txn_rec_free(t);
    cg_store_batch_free(b);
    return rc;
}

/* --- general messages ---------------------------------------------------------------------- */

/* genm → genp: answers id-it-caCerts (RFC 9483 4.3.1) with the CA certificate and its chain;
 * other info types are left out of the answer, as RFC 4210 5.3.19 allows. */
static int handle_genm(struct msgctx *ctx)
{
    STACK_OF(CG_ITAV) *in = ctx->req->body->value.genm, *out = NULL;
    int answered = 0;
    if (sk_CG_ITAV_num(in) > MAX_GENM_ITAVS) {
        /* each answer may carry certificates: a long list would amplify the request */
        set_detail_(ctx, "a genm may ask for at most 16 info types", NULL);
        return CG_ECMP_BADREQUEST;
    }
    if ((out = sk_CG_ITAV_new_null()) == NULL)
        return CG_ENOMEM;
    for (int i = 0; i < sk_CG_ITAV_num(in); i++) {
        const ASN1_OBJECT *type = sk_CG_ITAV_value(in, i)->type;
        char oid[64];
        OBJ_obj2txt(oid, sizeof(oid), type, 1);
        if (strcmp(oid, "1.3.6.1.5.5.7.4.17") != 0 || answered++ > 0)
            continue; /* unknown types are left out; caCerts is answered once */
        STACK_OF(X509) *certs = NULL;
        unsigned char *der = NULL;
        if (push_cert(&certs, ctx->ca->cert) != CG_OK)
            goto fail;
        for (int k = 0; k < sk_X509_num(ctx->ca->chain); k++)
            if (push_cert(&certs, sk_X509_value(ctx->ca->chain, k)) != CG_OK) {
                sk_X509_pop_free(certs, X509_free);
                goto fail;
            }
        /* SEQUENCE OF Certificate, as an ANY value */
        ASN1_SEQUENCE_ANY *seq = sk_ASN1_TYPE_new_null();
        for (int k = 0; seq != NULL && k < sk_X509_num(certs); k++) {
            unsigned char *cder = NULL;
            int clen = i2d_X509(sk_X509_value(certs, k), &cder);
            const unsigned char *cp = cder;
            ASN1_TYPE *t = clen > 0 ? d2i_ASN1_TYPE(NULL, &cp, clen) : NULL;
            OPENSSL_free(cder);
            if (t == NULL || sk_ASN1_TYPE_push(seq, t) <= 0) {
                ASN1_TYPE_free(t);
                break;
            }
        }
        sk_X509_pop_free(certs, X509_free);
        int len = seq ? i2d_ASN1_SEQUENCE_ANY(seq, &der) : -1;
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
        CG_ITAV *itav = CG_ITAV_new();
        ASN1_STRING *str = ASN1_STRING_new();
        if (len <= 0 || itav == NULL || str == NULL || ASN1_STRING_set(str, der, len) != 1 ||
            (itav->value = ASN1_TYPE_new()) == NULL) {
            OPENSSL_free(der);
            ASN1_STRING_free(str);
            CG_ITAV_free(itav);
            goto fail;
        }
        OPENSSL_free(der);
        ASN1_OBJECT_free(itav->type);
        itav->type = OBJ_dup(type);
        ASN1_TYPE_set(itav->value, V_ASN1_SEQUENCE, str);
        if (sk_CG_ITAV_push(out, itav) <= 0) {
            CG_ITAV_free(itav);
            goto fail;
        }
    }
    if ((ctx->resp = response_new(ctx, CG_BODY_GENP)) == NULL)
        goto fail;
    ctx->resp->body->value.genm = out;
    snprintf(ctx->res->outcome, sizeof(ctx->res->outcome), "genp");
    return CG_OK;
fail:
    sk_CG_ITAV_pop_free(out, CG_ITAV_free);
    return CG_ENOMEM;
}

/* --- nested messages ---------------------------------------------------------------------- */

#define MAX_NESTED 16

static int process_der(struct cg_core *core, const char *alias, const char *op, const uint8_t *der,
                       size_t len, unsigned flags, struct cg_core_result *res, int depth);

/* RFC 4210 5.1.3.4 / RFC 9483 5.2.2: an RA's signed wrapper around one or more requests. The
 * outer signature must verify with a certificate chaining to nested_message_trusted_certs_path
 * (else BAD_REQUEST, the reference row); each inner message is then processed on this alias
 * with its own protection, and the answers go back in a nested response signed by the CA. */
static int handle_nested(struct msgctx *ctx)
{
    X509_STORE *st = ctx->core->nested_stores[core_alias_index_(ctx->core, ctx->alias)];
    STACK_OF(CG_PKIMESSAGE) *inner = ctx->req->body->value.nested;
    STACK_OF(CG_PKIMESSAGE) *answers = NULL;
    char why[160];
    int rc = CG_ECMP_BADREQUEST;
    if (ctx->nested_ok) {
        set_detail_(ctx, "a nested message inside a nested message is not accepted", NULL);
        return rc;
    }
    if (st == NULL) {
        set_detail_(ctx,
                    "this alias accepts no nested messages (no nested_message_trusted_certs_path)",
                    NULL);
        return rc;
    }
    X509 *signer = sk_X509_value(ctx->req->extraCerts, 0);
    if (ctx->req->protection == NULL || protect_is_pbm_(ctx->req->header->protectionAlg) ||
        signer == NULL) {
        set_detail_(ctx,
                    "a nested message must be signed, with the signer certificate in extraCerts",
                    NULL);
        return rc;
    }
    if (!core_verify_chain_(st, signer, ctx->req->extraCerts, why, sizeof(why))) {
        set_detail_(ctx, "the nested message signer is not trusted: %s", why);
        return rc;
    }
    CG_PROTECTEDPART part = {ctx->req->header, ctx->req->body};
    if (!protect_verify_item_(ASN1_ITEM_rptr(CG_PROTECTEDPART), ctx->req->header->protectionAlg,
                              ctx->req->protection, &part, X509_get0_pubkey(signer))) {
        set_detail_(ctx, "signature verification on the nested message failed", NULL);
        return rc;
    }
    if (sk_CG_PKIMESSAGE_num(inner) < 1 || sk_CG_PKIMESSAGE_num(inner) > MAX_NESTED) {
        set_detail_(ctx, "a nested message must carry 1 to 16 messages", NULL);
        return rc;
    }
    if ((answers = sk_CG_PKIMESSAGE_new_null()) == NULL)
        return CG_ENOMEM;
    for (int i = 0; i < sk_CG_PKIMESSAGE_num(inner); i++) {
        unsigned char *der = NULL;
        struct cg_core_result r;
        int n = i2d_CG_PKIMESSAGE(sk_CG_PKIMESSAGE_value(inner, i), &der);
        rc = n > 0 ? process_der(ctx->core, ctx->alias->name, NULL, der, (size_t)n, 0, &r, 1)
                   : CG_ENOMEM;
        OPENSSL_free(der);
        if (rc != CG_OK)
            goto fail;
        const unsigned char *p = r.der;
        CG_PKIMESSAGE *ans = d2i_CG_PKIMESSAGE(NULL, &p, (long)r.der_len);
        if (i == 0) {
            snprintf(ctx->res->username, sizeof(ctx->res->username), "%s", r.username);
            snprintf(ctx->res->serial, sizeof(ctx->res->serial), "%s", r.serial);
            snprintf(ctx->res->detail, sizeof(ctx->res->detail), "inner %s: %s%s%.160s",
                     r.body_type, r.outcome, r.detail[0] ? ": " : "", r.detail);
        }
        cg_core_result_clear(&r);
        if (ans == NULL || sk_CG_PKIMESSAGE_push(answers, ans) <= 0) {
            CG_PKIMESSAGE_free(ans);
            rc = CG_ENOMEM;
            goto fail;
        }
    }
    if ((ctx->resp = response_new(ctx, CG_BODY_NESTED)) == NULL) {
        rc = CG_ENOMEM;
        goto fail;
    }
    ctx->resp->body->value.nested = answers;
    snprintf(ctx->res->outcome, sizeof(ctx->res->outcome), "nested(%d)",
             sk_CG_PKIMESSAGE_num(answers));
    return CG_OK;
fail:
    sk_CG_PKIMESSAGE_pop_free(answers, CG_PKIMESSAGE_free);
    return rc;
}

/* --- hostile input: nesting depth, senderNonce replay ------------------------------------- */

/* 1 when every constructed TLV of der nests at most max deep (and all lengths are definite and
 * consistent); checked before OpenSSL decodes anything, in one linear pass with no recursion. */
static int der_depth_ok(const uint8_t *der, size_t len, int max)
{
    size_t end[257];
    int depth = 0;
    size_t pos = 0;
    end[0] = len;
    while (pos < len) {
        while (depth > 0 && pos == end[depth])
            depth--;
        if (pos >= end[depth])
            return 0;
        uint8_t tag = der[pos];
        if ((tag & 0x1f) == 0x1f || pos + 2 > end[depth])
            return 0; /* multi-byte tags do not occur in CMP */
        size_t n = der[pos + 1], hdr = 2;
        if (n & 0x80) {
            size_t k = n & 0x7f;
            if (k == 0 || k > 4 || pos + 2 + k > end[depth])
                return 0;
            n = 0;
            for (size_t i = 0; i < k; i++)
                n = (n << 8) | der[pos + 2 + i];
            hdr = 2 + k;
        }
        if (n > end[depth] - pos - hdr)
            return 0;
        if (tag & 0x20) { /* constructed: descend */
            if (depth + 1 > max || depth + 1 > 256)
                return 0;
            end[++depth] = pos + hdr + n;
            pos += hdr;
        } else {
            pos += hdr + n;
        }
        while (depth > 0 && pos == end[depth])
            depth--;
    }
    return 1;
}

/* senderNonces seen within limits.nonce_window_s, per process: open addressing over 2^18
 * slots of (keyed 64-bit hash, time seen); a full probe window overwrites its oldest slot. */
#define NONCE_SLOTS (1u << 18)
#define NONCE_PROBES 16

struct nonce_slot {
    uint64_t h;
    int64_t t;
};

struct nonce_cache {
    pthread_mutex_t mu;
    uint64_t key;
    struct nonce_slot slots[NONCE_SLOTS];
};

static uint64_t nonce_hash(uint64_t key, const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ key;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h | 1; /* 0 marks an empty slot */
}

/* 1 if the nonce was already seen within window seconds; records it otherwise. */
static int nonce_seen(struct nonce_cache *nc, const uint8_t *p, size_t n, int64_t now, int window)
{
    uint64_t h = nonce_hash(nc->key, p, n);
    int seen = 0;
    pthread_mutex_lock(&nc->mu);
    struct nonce_slot *victim = NULL;
    for (unsigned i = 0; i < NONCE_PROBES; i++) {
        struct nonce_slot *s = &nc->slots[(h + i) & (NONCE_SLOTS - 1)];
        if (s->h == h && now - s->t < window) {
            seen = 1;
            break;
        }
        if (s->h == 0 || now - s->t >= window) {
            victim = s;
            break;
        }
        if (victim == NULL || s->t < victim->t)
            victim = s;
    }
    if (!seen) {
        victim->h = h;
        victim->t = now;
    }
    pthread_mutex_unlock(&nc->mu);
    return seen;
}

/* --- the dispatch -------------------------------------------------------------------------- */

/* The CA a message goes to when its alias names none (and the sender of errors when the
 * named one is unknown): the first configured, or NULL. */
static const struct cg_ca *first_ca(const struct cg_config *cfg)
{
    return cfg->n_cas ? &cfg->cas[0] : NULL;
}

static const struct cg_ca *alias_ca(struct msgctx *ctx)
{
    char buf[128];
    const char *name = keyid_or(ctx, ctx->alias->ra_ca_name, buf, sizeof(buf));
    if (ctx->alias->ra_ca_name != NULL && strcmp(ctx->alias->ra_ca_name, CG_KEYID) == 0 &&
        name == NULL)
        return NULL;
    if (name == NULL)
        return first_ca(ctx->cfg);
    return cg_config_ca(ctx->cfg, name);
}

/* extraCerts within limits, and a senderNonce not seen within the replay window. */
static int check_limits(struct msgctx *ctx)
{
    const struct cg_config *cfg = ctx->cfg;
    int n = sk_X509_num(ctx->req->extraCerts);
    if (n > cfg->max_extra_certs) {
        snprintf(ctx->detail, sizeof(ctx->detail),
                 "more than %d extraCerts (limits.max_extra_certs)", cfg->max_extra_certs);
        return CG_ECMP_BADREQUEST;
    }
    for (int i = 0; i < n; i++) {
        int len = i2d_X509(sk_X509_value(ctx->req->extraCerts, i), NULL);
        if (len <= 0 || (size_t)len > cfg->max_cert_bytes) {
            set_detail_(ctx, "an extraCerts certificate is larger than limits.max_cert_bytes",
                        NULL);
            return CG_ECMP_BADREQUEST;
        }
    }
    return CG_OK;
}

/* A message opening a transaction: its transactionID must be new (store, all processes) and
 * its senderNonce unseen within limits.nonce_window_s (this process). Checked after
 * authentication, so unauthenticated traffic cannot fill the nonce cache. */
static int check_fresh(struct msgctx *ctx)
{
    int rc = txid_in_use(ctx);
    if (rc != CG_OK)
        return rc;
    const ASN1_OCTET_STRING *sn = ctx->req->header->senderNonce;
    if (ctx->core->nonces != NULL && !ctx->redo &&
        nonce_seen(ctx->core->nonces, ASN1_STRING_get0_data(sn), (size_t)ASN1_STRING_length(sn),
                   (int64_t)time(NULL), ctx->cfg->nonce_window_s)) {
        set_detail_(ctx, "senderNonce already seen (replayed message)", NULL);
        return CG_ECMP_BADSENDERNONCE;
    }
    return CG_OK;
}

static int alias_has_module(const struct cg_alias *a, int module)
{
    for (size_t i = 0; i < a->n_auth; i++)
        if (a->auth_modules[i] == module)
            return 1;
    return 0;
}

static int dispatch(struct msgctx *ctx)
{
    int rc;
    int type = ctx->req->body->type;
    const struct cg_ca *ca = alias_ca(ctx);
    /* errors name the alias's CA as sender, or the first CA when that one is unknown */
    ctx->ca = ca ? ca : first_ca(ctx->cfg);
    if ((rc = check_header(ctx)) != CG_OK || (rc = check_op(ctx)) != CG_OK ||
        (rc = check_limits(ctx)) != CG_OK)
        return rc;
    if (ca == NULL) {
        set_detail_(ctx, "the CA named for this alias does not exist", NULL);
        return CG_ECMP_WRONGAUTHORITY;
    }
    if (type == CG_BODY_NESTED)
        return handle_nested(ctx);
    if (type == CG_BODY_CERTCONF) {
        const ASN1_OCTET_STRING *txid = ctx->req->header->transactionID;
        rc = cg_store_get_txn(ctx->core->store, ASN1_STRING_get0_data(txid),
                              (size_t)ASN1_STRING_length(txid), &ctx->txn);
        if (rc != CG_OK && rc != CG_ENOTFOUND) {
            set_detail_(ctx, "store: %s", cg_strerror(rc));
            return CG_ECMP_SYSTEMUNAVAIL;
        }
    }
    if (type == CG_BODY_KUR && !alias_has_module(ctx->alias, CG_AUTH_EEC)) {
        /* the reference row, answered before authentication can fail for another reason */
        set_detail_(ctx, "key update requires the EndEntityCertificate authentication module",
                    NULL);
        return CG_ECMP_BADREQUEST;
    }
    if ((rc = auth_authenticate_(ctx)) != CG_OK)
        return rc;
    switch (type) {
    case CG_BODY_IR:
    case CG_BODY_CR:
    case CG_BODY_P10CR:
    case CG_BODY_KUR:
        if ((rc = check_fresh(ctx)) != CG_OK)
            return rc;
        return handle_cert_request(ctx);
    case CG_BODY_CERTCONF:
        return handle_certconf(ctx);
    case CG_BODY_GENM:
        return handle_genm(ctx);
    case CG_BODY_RR:
        if ((rc = check_fresh(ctx)) != CG_OK)
            return rc;
        return handle_rr(ctx);
    default:
        snprintf(ctx->detail, sizeof(ctx->detail), "%s messages are not supported",
                 body_name_(type));
        return CG_ECMP_BADREQUEST;
    }
}

int cg_core_is_der(const uint8_t *der, size_t len)
{
    size_t i = 1, n;
    if (len < 2 || (der[0] & 0x1f) == 0x1f)
        return 0;
    if (der[1] < 0x80) {
        n = der[1];
        i = 2;
    } else {
        size_t k = der[1] & 0x7f;
        if (k == 0 || k > sizeof(size_t) || len < 2 + k)
            return 0;
        n = 0;
        for (size_t j = 0; j < k; j++)
            n = (n << 8) | der[2 + j];
        i = 2 + k;
    }
    return n == len - i;
}

char *cg_core_dn_text(const X509_NAME *name)
{
    return ca_name_text_(name);
}

void cg_core_result_clear(struct cg_core_result *res)
{
    pending_release(res->pending);
    res->pending = NULL;
    free(res->der);
    res->der = NULL;
    res->der_len = 0;
}

/* One message, at nesting depth `depth` (0 = received from the transport; 1 = inside a nested
 * message whose outer signature verified). */
static int process_der(struct cg_core *core, const char *alias, const char *op, const uint8_t *der,
                       size_t len, unsigned flags, struct cg_core_result *res, int depth)
{
    struct msgctx ctx;
    int rc, out_rc = CG_ENOMEM;
    unsigned char *out = NULL;
    memset(res, 0, sizeof(*res));
    memset(&ctx, 0, sizeof(ctx));
    res->http_status = 200;
    strcpy(res->body_type, "-");
    strcpy(res->txid, "-");
    ctx.core = core;
    ctx.cfg = core->cfg;
    ctx.res = res;
    ctx.op = op;
    ctx.auth.module = -1;
    ctx.nested_ok = depth > 0;
    ctx.defer = depth == 0 && (flags & CG_CORE_DEFER) != 0;
    ctx.redo = (flags & CG_CORE_REDO) != 0;
    ctx.alias = cg_config_alias(core->cfg, alias);
    if (ctx.alias == NULL) {
        res->http_status = 404;
        return CG_OK;
    }
    if (!cg_core_is_der(der, len)) {
        res->http_status = 400;
        return CG_OK;
    }
    if (core_rand_(ctx.nonce, NONCE_LEN) != CG_OK)
        goto out;
    const unsigned char *p = der;
    if (!der_depth_ok(der, len, core->cfg->max_der_depth)) {
        ctx.ca = first_ca(ctx.cfg);
        snprintf(ctx.detail, sizeof(ctx.detail),
                 "the DER object nests deeper than %d levels (limits.max_der_depth)",
                 core->cfg->max_der_depth);
        rc = CG_ECMP_BADREQUEST;
        goto answer;
    }
    /* the commonest shapes by hand (fastdec.c), every other one by the templates */
    if ((ctx.req = core_msg_d2i_fast_(der, len)) != NULL)
        p = der + len;
    else
        ctx.req = d2i_CG_PKIMESSAGE(NULL, &p, (long)len);
    if (ctx.req == NULL || p != der + len) {
        CG_PKIMESSAGE_free(ctx.req);
        ctx.req = NULL;
        ctx.ca = first_ca(ctx.cfg);
        set_detail_(&ctx, "the DER object could not be parsed as a CMP message", NULL);
        rc = CG_ECMP_BADREQUEST;
    } else {
        snprintf(res->body_type, sizeof(res->body_type), "%s", body_name_(ctx.req->body->type));
        const ASN1_OCTET_STRING *txid = ctx.req->header->transactionID;
        if (txid != NULL)
            hex_(ASN1_STRING_get0_data(txid), (size_t)ASN1_STRING_length(txid), res->txid,
                 sizeof(res->txid));
        /* the bytes a MAC covers, as received; only PBM-protected messages need them */
        if (ctx.req->protection != NULL && protect_is_pbm_(ctx.req->header->protectionAlg) &&
            protect_part_from_der_(der, len, &ctx.part, &ctx.part_len) != CG_OK)
            ctx.part = NULL; /* re-encoded on demand */
        rc = dispatch(&ctx);
        if (rc == CG_EBUSY && res->wait_entity[0] != '\0') {
            out_rc = CG_OK; /* not processed: the caller runs it again (CG_CORE_DEFER) */
            goto out;
        }
        if (rc == CG_OK && ctx.resp != NULL)
            rc = protect_response(&ctx);
    }
answer:
    if (rc != CG_OK) {
        response_free(ctx.resp);
        if (rc > CG_ECMP_BADREQUEST || rc < CG_ECMP_WRONGINTEGRITY) {
            /* not a CMP outcome: an internal failure, still answered in CMP */
            unsigned long e = ERR_peek_last_error();
            cg_log(CG_LOG_ERROR, "internal error: %s%s%s", cg_strerror(rc), e ? ": " : "",
                   e ? ERR_reason_error_string(e) : "");
            set_detail_(&ctx, "internal error: %s", cg_strerror(rc));
        }
        ctx.resp = error_response(&ctx, rc);
        snprintf(res->outcome, sizeof(res->outcome), "%s", fail_name(rc));
        snprintf(res->detail, sizeof(res->detail), "%s", ctx.detail);
        if (ctx.resp == NULL)
            goto out;
    }
    if (rc == CG_OK && ctx.resp_part != NULL) {
        /* PBM: header and body were encoded once, for the MAC; reuse them */
        if (protect_encode_with_part_(ctx.resp, ctx.resp_part, (size_t)ctx.resp_part_len, &res->der,
                                      &res->der_len) == CG_OK)
            out_rc = CG_OK;
        goto out;
    }
    int n = i2d_CG_PKIMESSAGE(ctx.resp, &out);
    if (n <= 0 || (res->der = malloc((size_t)n)) == NULL)
        goto out;
    memcpy(res->der, out, (size_t)n);
    res->der_len = (size_t)n;
    out_rc = CG_OK;
out:
    if (out_rc == CG_OK)
        res->pending = ctx.pending;
    else
        pending_release(ctx.pending);
    OPENSSL_free(out);
    OPENSSL_free(ctx.resp_part);
    response_free(ctx.resp); /* before the request, whose sender it borrows */
    CG_PKIMESSAGE_free(ctx.req);
    cg_txn_rec_free(ctx.txn);
    free(ctx.part);
    auth_clear_(&ctx.auth);
    ERR_clear_error();
    return out_rc;
}

int cg_core_process(struct cg_core *core, const char *alias, const char *op, const uint8_t *der,
                    size_t len, struct cg_core_result *res)
{
    return process_der(core, alias, op, der, len, 0, res, 0);
}

int cg_core_process_ex(struct cg_core *core, const char *alias, const char *op, const uint8_t *der,
                       size_t len, unsigned flags, struct cg_core_result *res)
{
    return process_der(core, alias, op, der, len, flags, res, 0);
}

/* --- unconfirmed certificates and expired transactions --------------------------------------- */

/* DESIGN: a sweep reads the transaction log, which is in the order transactions began, in two
 * walks that each stop at the first record too young to act on: finished records last changed
 * more than limits.transaction_ttl_s ago are deleted, from the start of the log; records still
 * OPEN past their alias's confirm_timeout_s are revoked or closed, from core->sweep_from, the
 * log key of the oldest transaction that may still be open. Everything before that key has
 * finished (no record becomes OPEN again, and new ones get higher keys), so in the steady state
 * a sweep reads what began since the one before, not the whole log. A record left open or not
 * handled keeps the key at or before it. (Seconds on the clock at each start, so a record may
 * be a little older than the one before it: it is then handled by the next sweep.) */

struct sweep {
    const struct cg_config *cfg;
    int64_t now;
    int64_t min_timeout;     /* the shortest confirm timeout: younger records are not looked at */
    struct cg_txn_rec **due; /* copies without username and secret */
    size_t n, cap;
    int rc;              /* CG_ENOMEM when a due record could not be kept */
    uint64_t first_open; /* key of the first record left OPEN (UINT64_MAX: none) */
    uint64_t next;       /* key after the last record looked at */
    size_t examined;
};

/* Keep a copy of t for after the walk. @return 0 (walk on), or 1 with sw->rc set. */
static int keep_due(struct sweep *sw, const struct cg_txn_rec *t)
{
    struct cg_txn_rec *copy = NULL;
    if (sw->n == sw->cap) {
        size_t cap = sw->cap ? sw->cap * 2 : 16;
        struct cg_txn_rec **p = realloc(sw->due, cap * sizeof(*p));
        if (p == NULL)
            goto fail;
        sw->due = p;
        sw->cap = cap;
    }
    if ((copy = cg_txn_rec_new()) == NULL)
        goto fail;
    *copy = *t;
    copy->username = copy->secret = NULL; /* not needed; t's strings are borrowed */
    copy->alias = NULL;
    if (t->alias != NULL && (copy->alias = strdup(t->alias)) == NULL)
        goto fail;
    sw->due[sw->n++] = copy;
    return 0;
fail:
    cg_txn_rec_free(copy);
    sw->rc = CG_ENOMEM;
    return 1;
}

static int expired_cb(const struct cg_txn_rec *t, uint64_t key, void *arg)
{
    struct sweep *sw = arg;
    (void)key;
    sw->examined++;
    if (sw->now - t->created < sw->cfg->transaction_ttl_s)
        return 1; /* so is every later one (updated is never before created) */
    if (t->state == CG_TXN_OPEN || sw->now - t->updated < sw->cfg->transaction_ttl_s)
        return 0;
    return keep_due(sw, t);
}

static int unconfirmed_cb(const struct cg_txn_rec *t, uint64_t key, void *arg)
{
    struct sweep *sw = arg;
    if (sw->now - t->created <= sw->min_timeout)
        return 1; /* not looked at: the next sweep starts here at the latest */
    sw->examined++;
    sw->next = key + 1;
    if (t->state != CG_TXN_OPEN)
        return 0;
    /* past confirm_timeout_s: revoked (revoke_unconfirmed) or closed, which also drops a
     * client's enrollment code kept for its certConf */
    const struct cg_alias *a = t->alias ? cg_config_alias(sw->cfg, t->alias) : NULL;
    int timeout = a != NULL ? a->confirm_timeout_s : 300;
    /* whole seconds on both sides: "more than timeout" makes sure the full timeout has
     * passed (created 10.9 and now 12.0 differ by 2 but only 1.1 s apart) */
    if (sw->now - t->created > timeout && keep_due(sw, t) == 0)
        return 0;
    if (key < sw->first_open)
        sw->first_open = key;
    return sw->rc != CG_OK;
}

/* An unconfirmed certificate past its alias's confirm_timeout_s: revoke it and close. */
static int revoke_unconfirmed(struct cg_core *core, const struct cg_txn_rec *t, int64_t now)
{
    struct cg_store_batch *b = cg_store_batch_new();
    int r =
        b ? cg_store_batch_set_txn_state(b, t->txid, t->txid_len, CG_TXN_OPEN, CG_TXN_REJECTED, now)
          : CG_ENOMEM;
    if (r == CG_OK)
        r = cg_store_batch_revoke_cert(b, t->issuer_key, t->serial, t->serial_len,
                                       CG_REASON_UNCONFIRMED, now);
    if (r == CG_OK)
        r = cg_store_commit(core->store, b);
    if (r == CG_OK) {
        char serial[80];
        hex_(t->serial, t->serial_len, serial, sizeof(serial));
        cg_log(CG_LOG_INFO, "event=unconfirmed serial=%s outcome=revoked", serial);
    } else if (r == CG_EALREADY) {
        /* revoked meanwhile by an administrator: the transaction still closes (else every
         * sweep would find it again) */
        int closed = set_txn_state_alone(core, t->txid, t->txid_len, CG_TXN_REJECTED, now);
        r = closed == CG_OK ? CG_EALREADY : closed;
    }
    cg_store_batch_free(b);
    return r;
}

/* An unconfirmed certificate on an alias that does not revoke: the transaction closes (the
 * reference system's behaviour: the certificate stays valid). */
static int close_unconfirmed(struct cg_core *core, const struct cg_txn_rec *t, int64_t now)
{
    return set_txn_state_alone(core, t->txid, t->txid_len, CG_TXN_CLOSED, now);
}

static const struct cg_alias *sw_alias(const struct cg_config *cfg, const struct cg_txn_rec *t)
{
    return t->alias ? cg_config_alias(cfg, t->alias) : NULL;
}

int cg_core_sweep(struct cg_core *core, int64_t now, int *revoked)
{
    struct sweep sw = {core->cfg, now, 300, NULL, 0, 0, CG_OK, UINT64_MAX, 0, 0};
    struct cg_store_batch *expired = cg_store_batch_new();
    uint64_t from = __atomic_load_n(&core->sweep_from, __ATOMIC_RELAXED);
    size_t n_expired = 0;
    *revoked = 0;
    for (size_t i = 0; i < core->cfg->n_aliases; i++)
        if (core->cfg->aliases[i].confirm_timeout_s < sw.min_timeout)
            sw.min_timeout = core->cfg->aliases[i].confirm_timeout_s;
    int rc = expired ? cg_store_walk_txns(core->store, 0, expired_cb, &sw) : CG_ENOMEM;
    if (rc == CG_OK)
        rc = sw.rc;
    for (size_t i = 0; rc == CG_OK && i < sw.n; i++, n_expired++)
        rc = cg_store_batch_del_txn(expired, sw.due[i]->txid, sw.due[i]->txid_len);
    size_t first_due = sw.n;
    sw.next = from;
    if (rc == CG_OK)
        rc = cg_store_walk_txns(core->store, from, unconfirmed_cb, &sw);
    if (rc == CG_OK)
        rc = sw.rc;
    for (size_t i = first_due; rc == CG_OK && i < sw.n; i++) {
        const struct cg_txn_rec *t = sw.due[i];
        const struct cg_alias *a = sw_alias(core->cfg, t);
        int revoke = a != NULL && a->revoke_unconfirmed && t->serial_len > 0;
        int r = revoke ? revoke_unconfirmed(core, t, now) : close_unconfirmed(core, t, now);
        if (r == CG_ECONFLICT || r == CG_EALREADY)
            continue; /* confirmed or revoked meanwhile: done */
        if (r != CG_OK)
            rc = r;
        else if (revoke)
            (*revoked)++;
    }
    /* on any failure the next sweep starts where this one did */
    if (rc == CG_OK)
        __atomic_store_n(&core->sweep_from, sw.first_open < sw.next ? sw.first_open : sw.next,
                         __ATOMIC_RELAXED);
    __atomic_store_n(&core->sweep_examined, sw.examined, __ATOMIC_RELAXED);
    /* expired transactions go in one batch: a certConf or replay for them is "unknown" now */
    if (rc == CG_OK && n_expired > 0 && (rc = cg_store_commit(core->store, expired)) == CG_OK)
        cg_log(CG_LOG_INFO, "event=expired transactions=%zu", n_expired);
    for (size_t i = 0; i < sw.n; i++)
        cg_txn_rec_free(sw.due[i]);
    free(sw.due);
    cg_store_batch_free(expired);
    return rc;
}

int cg_core_pbm_hint(const struct cg_core *core, const char *alias, const uint8_t *der, size_t len,
                     struct cg_pbm_hint *h)
{
    const struct cg_config *cfg = core->cfg;
    const struct cg_alias *a = alias != NULL ? cg_config_alias(cfg, alias) : NULL;
    const char *secret = NULL;
    const uint8_t *salt = NULL;
    int body = -1, hmac = 0;
    if (a == NULL || a->mode != CG_MODE_RA)
        return 0; /* client mode: the secret is the entity's, read from the store */
    for (size_t i = 0; i < a->n_auth && !hmac; i++)
        if (a->auth_modules[i] == CG_AUTH_HMAC) {
            hmac = 1;
            secret = a->auth_params[i];
        }
    if (!hmac)
        return 0;
    if (secret == NULL) { /* verify_hmac's rule: the CA's cmp_ra_secret (dispatch's CA) */
        const struct cg_ca *ca = NULL;
        if (a->ra_ca_name != NULL && strcmp(a->ra_ca_name, CG_KEYID) == 0)
            return 0; /* the CA named by senderKID: left to the check itself */
        if (a->ra_ca_name != NULL)
            ca = cg_config_ca(cfg, a->ra_ca_name);
        if (ca == NULL)
            ca = first_ca(cfg);
        secret = ca != NULL ? ca->cmp_ra_secret : NULL;
    }
    if (secret == NULL || strlen(secret) >= sizeof(h->secret) ||
        !protect_pbm_peek_(der, len, &body, &h->owf_nid, &salt, &h->saltlen, &h->iter) ||
        body == CG_BODY_CERTCONF || body == CG_BODY_POLLREQ || h->saltlen > sizeof(h->salt) ||
        h->iter < 1 || h->iter > cfg->max_pbm_iterations)
        return 0;
    memcpy(h->salt, salt, h->saltlen);
    snprintf(h->secret, sizeof(h->secret), "%s", secret);
    return 1;
}

int cg_core_pbm_prefetch(const struct cg_pbm_hint *a, const struct cg_pbm_hint *b)
{
    struct pbm_params pa = {a->owf_nid, a->secret, a->salt, a->saltlen, a->iter};
    struct pbm_params pb = {b->owf_nid, b->secret, b->salt, b->saltlen, b->iter};
    return pbm_prefetch2_(&pa, &pb);
}

unsigned long cg_core_pbm_paired(void)
{
    return pbm_paired_keys_();
}

size_t cg_core_sweep_examined(const struct cg_core *core)
{
    return __atomic_load_n(&core->sweep_examined, __ATOMIC_RELAXED);
}

int cg_core_sweep_interval(const struct cg_core *core)
{
    /* expiry of finished transactions: a tenth of their lifetime, between 10 s and 5 min */
    int64_t ttl = core->cfg->transaction_ttl_s / 10;
    int best = ttl < 10 ? 10 : ttl > 300 ? 300 : (int)ttl;
    for (size_t i = 0; i < core->cfg->n_aliases; i++) {
        const struct cg_alias *a = &core->cfg->aliases[i];
        int every = a->confirm_timeout_s / 4 > 0 ? a->confirm_timeout_s / 4 : 1;
        if (a->revoke_unconfirmed && every < best)
            best = every;
    }
    return best;
}

size_t core_alias_index_(const struct cg_core *core, const struct cg_alias *alias)
{
    return (size_t)(alias - core->cfg->aliases);
}

int core_verify_chain_(X509_STORE *store, X509 *cert, STACK_OF(X509) * untrusted, char *why,
                       size_t n)
{
    X509_STORE_CTX *vc = X509_STORE_CTX_new();
    int ok = 0;
    snprintf(why, n, "out of memory");
    if (vc != NULL && X509_STORE_CTX_init(vc, store, cert, untrusted) == 1) {
        X509_STORE_CTX_set_flags(vc, X509_V_FLAG_PARTIAL_CHAIN);
        ok = X509_verify_cert(vc) == 1;
        if (!ok)
            snprintf(why, n, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
    }
    X509_STORE_CTX_free(vc);
    return ok;
}

/* A CA certificate that responses carry (caPubs): its extension cache filled and its DER
 * attached (each response writes it as it is), before workers share it. A failure only costs
 * encoding it per response. */
static void warm_ca_cert(X509 *x)
{
    const unsigned char *der = NULL;
    size_t len = 0;
    X509_check_purpose(x, -1, 0);
    if (core_cert_der_(x, &len) == NULL && core_cert_set_der_(x, &der, &len) != CG_OK)
        ERR_clear_error();
}

/* OpenSSL computes a certificate's extension caches (key identifiers, flags) lazily on first
 * use, and 3.0 races when several threads do it at once (ThreadSanitizer showed a worker
 * copying a CA's SKI while another was still caching it). Computing them here, before any
 * worker starts, leaves the workers only reads. */
static void warm_caches(const struct cg_config *cfg)
{
    /* the EC groups of requested keys, built now rather than by the first request, which
     * might meet a failed allocation and leave the fast path off for the process's life */
    ecfast_init_();
    for (size_t i = 0; i < cfg->n_cas; i++) {
        warm_ca_cert(cfg->cas[i].cert);
        for (int k = 0; k < sk_X509_num(cfg->cas[i].chain); k++)
            X509_check_purpose(sk_X509_value(cfg->cas[i].chain, k), -1, 0);
    }
    for (size_t i = 0; i < cfg->n_external_cas; i++)
        warm_ca_cert(cfg->external_cas[i].cert);
}

/* Adds every certificate of a PEM file to st. @return number added, -1 if unreadable. */
static int add_pem_file(X509_STORE *st, const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0;
    if (f == NULL)
        return -1;
    for (X509 *x; (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL; X509_free(x)) {
        X509_check_purpose(x, -1, 0); /* caches computed before workers share it */
        if (X509_STORE_add_cert(st, x) == 1)
            n++;
    }
    ERR_clear_error();
    fclose(f);
    return n;
}

/* Trust anchors from a PEM file or a directory of PEM files; NULL with why on failure. */
static X509_STORE *load_trust_path(const char *path, char *why, size_t n)
{
    X509_STORE *st = X509_STORE_new();
    struct stat sb;
    int count = 0;
    if (st == NULL || stat(path, &sb) != 0) {
        snprintf(why, n, "cannot read %s", path);
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            char file[4096];
            if (de->d_name[0] == '.')
                continue;
            snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
            int k = add_pem_file(st, file);
            count += k > 0 ? k : 0;
        }
        if (d != NULL)
            closedir(d);
    } else {
        count = add_pem_file(st, path);
    }
    if (count <= 0) {
        snprintf(why, n, "no certificate in %s", path);
        goto fail;
    }
    return st;
fail:
    X509_STORE_free(st);
    return NULL;
}

/* The per-alias trust stores (vendor CAs, nested signers). */
static int build_stores(struct cg_core *c, char *why, size_t n)
{
    const struct cg_config *cfg = c->cfg;
    c->vendor_stores = calloc(cfg->n_aliases + 1, sizeof(X509_STORE *));
    c->nested_stores = calloc(cfg->n_aliases + 1, sizeof(X509_STORE *));
    if (c->vendor_stores == NULL || c->nested_stores == NULL)
        return CG_ENOMEM;
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        const struct cg_alias *a = &cfg->aliases[i];
        if (a->vendor_certificate_mode && a->n_vendor_cas > 0) {
            if ((c->vendor_stores[i] = X509_STORE_new()) == NULL)
                return CG_ENOMEM;
            for (size_t k = 0; k < a->n_vendor_cas; k++) {
                const struct cg_external_ca *ext = cg_config_external_ca(cfg, a->vendor_cas[k]);
                if (ext != NULL && X509_STORE_add_cert(c->vendor_stores[i], ext->cert) != 1)
                    return CG_ECRYPTO;
            }
        }
        const char *np = a->nested_message_trusted_certs_path;
        if (np != NULL && *np != '\0') {
            char reason[256];
            if ((c->nested_stores[i] = load_trust_path(np, reason, sizeof(reason))) == NULL) {
                snprintf(why, n, "%s: aliases.%s.nested_message_trusted_certs_path: %s", cfg->file,
                         a->name, reason);
                return CG_ECONFIG;
            }
        }
    }
    return CG_OK;
}

/* The names response_new() lends: encoded once here, so that concurrent encodings of a
 * response only read them; each CA's signing set-up; each certificate profile's extensions. */
static int build_names(struct cg_core *c)
{
    const struct cg_config *cfg = c->cfg;
    if ((c->ca_names = calloc(cfg->n_cas + 1, sizeof(ASN1_STRING *))) == NULL ||
        (c->ca_signers = calloc(cfg->n_cas + 1, sizeof(struct ca_signer *))) == NULL ||
        (c->profile_exts = calloc(cfg->n_cert_profiles + 1, sizeof(struct ca_exts *))) == NULL ||
        (c->no_name = dirname_new(NULL)) == NULL)
        return CG_ENOMEM;
    for (size_t i = 0; i < cfg->n_cas; i++)
        if ((c->ca_signers[i] = ca_signer_new_(&cfg->cas[i])) == NULL)
            cg_log(CG_LOG_ERROR, "CA %s: its key cannot sign a certificate; it will not issue",
                   cfg->cas[i].name);
    for (size_t i = 0; i < cfg->n_cert_profiles; i++)
        c->profile_exts[i] = ca_exts_new_(&cfg->cert_profiles[i]); /* NULL: per certificate */
    for (size_t i = 0; i < cfg->n_cas; i++)
        if ((c->ca_names[i] = dirname_new(X509_get_subject_name(cfg->cas[i].cert))) == NULL)
            return CG_ENOMEM;
    return CG_OK;
}

int cg_core_new(const struct cg_config *cfg, struct cg_store *store, struct cg_core **out)
{
    char why[512];
    struct cg_core *c = calloc(1, sizeof(*c));
    int rc;
    *out = NULL;
    if (c == NULL)
        return CG_ENOMEM;
    c->cfg = cfg;
    c->store = store;
    /* written through now, while one thread runs: the table's pages are then present, not
     * first-touched by workers (a write fault on a page read before costs a TLB flush on
     * every CPU; in profiles of a fresh server, 2% of its CPU). explicit_bzero, because the
     * compiler folds malloc + memset into calloc, which leaves fresh pages untouched. */
    if ((c->nonces = malloc(sizeof(*c->nonces))) == NULL) {
        cg_core_free(c);
        return CG_ENOMEM;
    }
    explicit_bzero(c->nonces, sizeof(*c->nonces));
    pthread_mutex_init(&c->nonces->mu, NULL);
    if (RAND_bytes((unsigned char *)&c->nonces->key, sizeof(c->nonces->key)) != 1) {
        cg_core_free(c);
        return CG_ECRYPTO;
    }
    warm_caches(cfg);
    if ((rc = build_names(c)) != CG_OK || (rc = build_stores(c, why, sizeof(why))) != CG_OK) {
        if (rc == CG_ECONFIG)
            cg_log(CG_LOG_ERROR, "%s", why);
        cg_core_free(c);
        return rc;
    }
    *out = c;
    return CG_OK;
}

void cg_core_free(struct cg_core *core)
{
    if (core == NULL)
        return;
    for (size_t i = 0; core->vendor_stores && i < core->cfg->n_aliases; i++)
        X509_STORE_free(core->vendor_stores[i]);
    for (size_t i = 0; core->nested_stores && i < core->cfg->n_aliases; i++)
        X509_STORE_free(core->nested_stores[i]);
    free(core->vendor_stores);
    free(core->nested_stores);
    for (size_t i = 0; core->ca_names && i < core->cfg->n_cas; i++)
        ASN1_STRING_free(core->ca_names[i]);
    free(core->ca_names);
    for (size_t i = 0; core->ca_signers && i < core->cfg->n_cas; i++)
        ca_signer_free_(core->ca_signers[i]);
    free(core->ca_signers);
    for (size_t i = 0; core->profile_exts && i < core->cfg->n_cert_profiles; i++)
        ca_exts_free_(core->profile_exts[i]);
    free(core->profile_exts);
    ASN1_STRING_free(core->no_name);
    if (core->nonces != NULL)
        pthread_mutex_destroy(&core->nonces->mu);
    free(core->nonces);
    free(core);
    pbm_cache_clear_(); /* wipe the derived keys (a later generation re-derives what it needs) */
    core_cert_cache_clear_();
}

int cg_core_check_config(const struct cg_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        const struct cg_alias *a = &cfg->aliases[i];
        const char *why = NULL, *key = NULL;
        if (a->vendor_certificate_mode && a->n_vendor_cas == 0) {
            key = "vendor_cas";
            why = "vendor certificate mode needs at least one vendor CA (external_cas)";
        } else if (a->proxy) {
            key = "proxy";
            why = "proxy mode (forwarding to an upstream CMP server) is not available in this "
                  "version";
        } else if (a->allow_server_generated_keys) {
            key = "allow_server_generated_keys";
            why = "server-generated keys are not available in this version";
        } else if (a->nested_message_trusted_certs_path != NULL &&
                   a->nested_message_trusted_certs_path[0] != '\0') {
            char reason[256];
            X509_STORE *st =
                load_trust_path(a->nested_message_trusted_certs_path, reason, sizeof(reason));
            if (st == NULL) {
                snprintf(err, errlen, "%s: aliases.%s.nested_message_trusted_certs_path: %s",
                         cfg->file, a->name, reason);
                return CG_ECONFIG;
            }
            X509_STORE_free(st);
        }
        for (size_t m = 0; why == NULL && m < a->n_auth; m++) {
            int mod = a->auth_modules[m];
            key = "authentication_modules";
            if (a->mode == CG_MODE_RA && (mod == CG_AUTH_REGTOKENPWD || mod == CG_AUTH_DNPARTPWD))
                why =
                    "RegTokenPwd and DnPartPwd extract an end entity's password: client mode only";
            else if (mod == CG_AUTH_DNPARTPWD && a->auth_params[m] == NULL)
                why = "DnPartPwd needs the DN attribute holding the password as its parameter";
            else if (a->mode == CG_MODE_RA && mod == CG_AUTH_EEC && a->auth_params[m] == NULL &&
                     (a->nested_message_trusted_certs_path == NULL ||
                      a->nested_message_trusted_certs_path[0] == '\0'))
                why = "EndEntityCertificate in RA mode without a CA parameter trusts the outer "
                      "signature of nested messages: set nested_message_trusted_certs_path";
        }
        if (why != NULL) {
            snprintf(err, errlen, "%s: aliases.%s.%s: %s", cfg->file, a->name, key, why);
            return CG_ECONFIG;
        }
    }
    return CG_OK;
}
