/*
 * auth.c - the CMP message authentication modules: RegTokenPwd, DnPartPwd, HMAC and
 * EndEntityCertificate, as constant ops tables tried in the alias's order.
 *
 * DESIGN: each module looks for its input (a regToken control, a DN part, PBM protection,
 * signature protection). A module that finds no input is "not applicable"; one that finds
 * input and rejects it is "relevant", and the error of the first relevant module is the one
 * reported (a wrong enrollment code in a PBM-protected request reports NOT_AUTHORIZED even
 * if EndEntityCertificate follows in the list). Password extractors (RegTokenPwd, DnPartPwd)
 * exist in client mode only (refused in RA mode by cg_core_check_config); they do not look at
 * message protection, as in the reference system.
 * Client mode: a wrong or missing enrollment code, an unknown user or a signer certificate
 * belonging to someone else is NOT_AUTHORIZED; a MAC or signature that does not verify in RA
 * mode is BAD_MESSAGE_CHECK; a revoked or expired signer certificate is BAD_REQUEST.
 * Thread-safe: reads the configuration and the store only.
 */
#include "cg_err.h"
#include "core_local.h"

#include <openssl/crypto.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct auth_module {
    const char *name;
    /* @return CG_OK or CG_ECMP_*; *relevant = 1 when the module found its input. */
    int (*verify)(struct msgctx *ctx, const char *param, int *relevant);
};

void auth_clear_(struct auth_state *a)
{
    if (a->code != NULL) {
        OPENSSL_cleanse(a->code, strlen(a->code));
        free(a->code);
    }
    cg_cert_rec_free(a->signer_rec);
    OPENSSL_cleanse(a->pbm.key, sizeof(a->pbm.key));
    memset(a, 0, sizeof(*a));
    a->module = -1;
}

int auth_extract_username_(const struct dn_ref *subject, const char *component, char *out, size_t n)
{
    if (!dn_present_(subject))
        return 0;
    if (component == NULL || strcmp(component, "DN") == 0) {
        char *t = ca_dn_text_(subject);
        int ok = t != NULL && strlen(t) < n;
        if (ok)
            strcpy(out, t);
        OPENSSL_free(t);
        return ok;
    }
    return dn_value_(subject, component, out, n);
}

static int is_cert_request(int type)
{
    return type == CG_BODY_IR || type == CG_BODY_CR || type == CG_BODY_KUR || type == CG_BODY_P10CR;
}

/* The subject the request asks for into *ref (X509_NAME_free *owned after). @return 1 when it
 * names one. */
static int requested_subject(const struct msgctx *ctx, struct dn_ref *ref, X509_NAME **owned)
{
    const CG_PKIBODY *b = ctx->req->body;
    memset(ref, 0, sizeof(*ref));
    *owned = NULL;
    if (b->type == CG_BODY_P10CR)
        ref->name = X509_REQ_get_subject_name(b->value.p10cr);
    if (b->type == CG_BODY_IR || b->type == CG_BODY_CR || b->type == CG_BODY_KUR) {
        CG_CERTREQMSG *m = sk_CG_CERTREQMSG_value(b->value.ir, 0);
        if (m != NULL)
            dn_ref_raw_(m->certReq->certTemplate->subject, ref, owned);
    }
    return dn_present_(ref);
}

/* Client mode: the registered end entity's clear-text code for user (new copy) or NULL with
 * the reason in ctx->detail. */
static char *entity_code(struct msgctx *ctx, const char *user)
{
    struct cg_entity *e = NULL;
    char *code = NULL;
    int rc = cg_store_get_entity(ctx->core->store, user, &e);
    if (rc == CG_ENOTFOUND)
        set_detail_(ctx, "unknown end entity %s", user);
    else if (rc != CG_OK)
        set_detail_(ctx, "store: %s", cg_strerror(rc));
    else if (e->password == NULL)
        set_detail_(ctx, "end entity %s has no enrollment code", user);
    else if ((code = strdup(e->password)) == NULL)
        set_detail_(ctx, "out of memory", NULL);
    cg_entity_free(e);
    return code;
}

static int same_code(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

/* certConf of a client-mode transaction opened by a password extractor: the extractors ignore
 * message protection, so the confirmation is accepted protected or not; the recipNonce
 * (checked by the handler against our nonce) proves it comes from the client that received
 * our response. */
static int unprotected_confirm(struct msgctx *ctx, int *relevant)
{
    if (ctx->req->body->type != CG_BODY_CERTCONF || ctx->txn == NULL || ctx->txn->secret != NULL ||
        ctx->txn->body_type == CG_BODY_RR)
        return CG_ECMP_NOTAUTHORIZED;
    *relevant = 1;
    snprintf(ctx->auth.user, sizeof(ctx->auth.user), "%s",
             ctx->txn->username ? ctx->txn->username : "");
    return CG_OK;
}

static int password_check(struct msgctx *ctx, const char *pwd)
{
    if (ctx->extracted[0] == '\0') {
        set_detail_(ctx, "no username in the requested subject", NULL);
        return CG_ECMP_NOTAUTHORIZED;
    }
    char *code = entity_code(ctx, ctx->extracted);
    if (code == NULL)
        return CG_ECMP_NOTAUTHORIZED;
    if (!same_code(code, pwd)) {
        OPENSSL_cleanse(code, strlen(code));
        free(code);
        set_detail_(ctx, "wrong enrollment code for end entity %s", ctx->extracted);
        return CG_ECMP_NOTAUTHORIZED;
    }
    snprintf(ctx->auth.user, sizeof(ctx->auth.user), "%s", ctx->extracted);
    ctx->auth.code = code;
    return CG_OK;
}

/* RegTokenPwd: the password in the id-regCtrl-regToken control of the CRMF request. */
static int verify_regtoken(struct msgctx *ctx, const char *param, int *relevant)
{
    (void)param;
    const CG_PKIBODY *b = ctx->req->body;
    if (unprotected_confirm(ctx, relevant) == CG_OK)
        return CG_OK;
    set_detail_(ctx, "RegTokenPwd: no regToken control in the request", NULL);
    if (b->type != CG_BODY_IR && b->type != CG_BODY_CR && b->type != CG_BODY_KUR)
        return CG_ECMP_NOTAUTHORIZED;
    CG_CERTREQMSG *m = sk_CG_CERTREQMSG_value(b->value.ir, 0);
    STACK_OF(CG_ATAV) *controls = m ? m->certReq->controls : NULL;
    for (int i = 0; i < sk_CG_ATAV_num(controls); i++) {
        CG_ATAV *a = sk_CG_ATAV_value(controls, i);
        if (OBJ_obj2nid(a->type) != NID_id_regCtrl_regToken)
            continue;
        *relevant = 1;
        if (a->value->type != V_ASN1_UTF8STRING) {
            set_detail_(ctx, "RegTokenPwd: the regToken is not a UTF8String", NULL);
            return CG_ECMP_NOTAUTHORIZED;
        }
        const ASN1_STRING *s = a->value->value.utf8string;
        char pwd[256];
        if (ASN1_STRING_length(s) <= 0 || (size_t)ASN1_STRING_length(s) >= sizeof(pwd))
            return CG_ECMP_NOTAUTHORIZED;
        memcpy(pwd, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        pwd[ASN1_STRING_length(s)] = '\0';
        int rc = password_check(ctx, pwd);
        OPENSSL_cleanse(pwd, sizeof(pwd));
        return rc;
    }
    return CG_ECMP_NOTAUTHORIZED;
}

/* DnPartPwd: the password in the DN attribute named by the parameter. */
static int verify_dnpart(struct msgctx *ctx, const char *param, int *relevant)
{
    char pwd[256];
    if (unprotected_confirm(ctx, relevant) == CG_OK)
        return CG_OK;
    struct dn_ref subject;
    X509_NAME *owned = NULL;
    int found = requested_subject(ctx, &subject, &owned) && param != NULL &&
                dn_value_(&subject, param, pwd, sizeof(pwd));
    X509_NAME_free(owned);
    set_detail_(ctx, "DnPartPwd: no %s attribute in the requested subject", param ? param : "?");
    if (!found)
        return CG_ECMP_NOTAUTHORIZED;
    *relevant = 1;
    int rc = password_check(ctx, pwd);
    OPENSSL_cleanse(pwd, sizeof(pwd));
    if (rc == CG_OK)
        ctx->auth.dn_pwd_attr = param;
    return rc;
}

static int verify_hmac(struct msgctx *ctx, const char *param, int *relevant)
{
    const char *secret = NULL;
    char *code = NULL;
    char kid[256];
    int client = ctx->alias->mode == CG_MODE_CLIENT, rc;
    if (ctx->req->protection == NULL || !protect_is_pbm_(ctx->req->header->protectionAlg)) {
        set_detail_(ctx, "HMAC: the message is not protected with a password-based MAC", NULL);
        return CG_ECMP_BADMSGCHECK;
    }
    *relevant = 1;
    if (!client) {
        secret = param != NULL ? param : ctx->ca != NULL ? ctx->ca->cmp_ra_secret : NULL;
        if (secret == NULL) {
            set_detail_(ctx,
                        "HMAC: no shared secret configured (alias parameter or CA cmp_ra_secret)",
                        NULL);
            return CG_ECMP_BADMSGCHECK;
        }
    } else if (ctx->req->body->type == CG_BODY_CERTCONF && ctx->txn != NULL) {
        if (ctx->txn->secret == NULL) {
            set_detail_(ctx, "HMAC: the transaction was not opened with an enrollment code", NULL);
            return CG_ECMP_NOTAUTHORIZED;
        }
        secret = ctx->txn->secret;
        snprintf(ctx->auth.user, sizeof(ctx->auth.user), "%s",
                 ctx->txn->username ? ctx->txn->username : "");
    } else {
        const char *user = sender_kid_text_(ctx, kid, sizeof(kid)) ? kid : ctx->extracted;
        if (*user == '\0') {
            set_detail_(ctx, "HMAC: no username (senderKID or requested subject)", NULL);
            return CG_ECMP_NOTAUTHORIZED;
        }
        if ((code = entity_code(ctx, user)) == NULL)
            return CG_ECMP_NOTAUTHORIZED;
        secret = code;
        snprintf(ctx->auth.user, sizeof(ctx->auth.user), "%s", user);
    }
    rc = protect_verify_pbm_part_(ctx->req, ctx->part, ctx->part_len, secret,
                                  ctx->cfg->max_pbm_iterations, &ctx->auth.pbm);
    if (rc == CG_ECMP_BADALG) {
        set_detail_(ctx, "HMAC: unsupported PBM parameters or iteration count over the limit",
                    NULL);
    } else if (rc != CG_OK) {
        set_detail_(ctx,
                    client ? "HMAC: wrong enrollment code"
                           : "HMAC: wrong MAC (shared secret mismatch)",
                    NULL);
        rc = client ? CG_ECMP_NOTAUTHORIZED : CG_ECMP_BADMSGCHECK;
    } else {
        ctx->auth.code = code;
        code = NULL;
        ctx->auth.mac_secret = ctx->auth.code ? ctx->auth.code : secret;
    }
    if (code != NULL) {
        OPENSSL_cleanse(code, strlen(code));
        free(code);
    }
    return rc;
}

static int eec_find_admin(struct msgctx *ctx, const char *ca_name)
{
    for (size_t i = 0; i < ctx->cfg->n_administrators; i++) {
        const struct cg_admin *a = &ctx->cfg->administrators[i];
        if (strcmp(a->ca, ca_name) != 0)
            continue;
        if (a->has_fingerprint &&
            memcmp(a->fingerprint, ctx->auth.signer_rec->fingerprint, 32) != 0)
            continue;
        X509_NAME *subj = dn_parse_(a->subject);
        int match =
            subj != NULL && X509_NAME_cmp(subj, X509_get_subject_name(ctx->auth.signer)) == 0;
        X509_NAME_free(subj);
        if (match) {
            ctx->auth.admin = a;
            return CG_OK;
        }
    }
    set_detail_(ctx, "EndEntityCertificate: the signer is not a registered administrator", NULL);
    return CG_ECMP_NOTAUTHORIZED;
}

static int verify_message_signature(struct msgctx *ctx, X509 *signer)
{
    CG_PROTECTEDPART part = {ctx->req->header, ctx->req->body};
    if (!protect_verify_item_(ASN1_ITEM_rptr(CG_PROTECTEDPART), ctx->req->header->protectionAlg,
                              ctx->req->protection, &part, X509_get0_pubkey(signer))) {
        set_detail_(ctx, "EndEntityCertificate: the message signature does not verify", NULL);
        return CG_ECMP_BADMSGCHECK;
    }
    return CG_OK;
}

/* Vendor certificate mode (3GPP): a device's initial request signed with a certificate of
 * a vendor CA (external_cas named in vendor_cas); the end entity is the one named by the
 * requested subject's username component. certConf is signed with the same certificate. */
static int verify_vendor(struct msgctx *ctx, X509 *signer)
{
    char why[160];
    X509_STORE *st = ctx->core->vendor_stores[core_alias_index_(ctx->core, ctx->alias)];
    if (st == NULL || !core_verify_chain_(st, signer, ctx->req->extraCerts, why, sizeof(why))) {
        set_detail_(ctx,
                    "EndEntityCertificate: the signer certificate is neither issued here nor by a "
                    "vendor CA (%s)",
                    why);
        return CG_ECMP_NOTAUTHORIZED;
    }
    int rc = verify_message_signature(ctx, signer);
    if (rc != CG_OK)
        return rc;
    const char *user = ctx->req->body->type == CG_BODY_CERTCONF && ctx->txn && ctx->txn->username
                           ? ctx->txn->username
                           : ctx->extracted;
    if (*user == '\0') {
        set_detail_(ctx, "vendor certificate mode: no username in the requested subject", NULL);
        return CG_ECMP_NOTAUTHORIZED;
    }
    snprintf(ctx->auth.user, sizeof(ctx->auth.user), "%s", user);
    ctx->auth.signer = signer;
    ctx->auth.vendor = 1;
    return CG_OK;
}

/* RA mode without a CA parameter inside a verified nested message: the outer signature
 * vouches for the RA; the reference system performs no further checks, we still verify the
 * inner signature with the certificate it carries. */
static int verify_signature_only(struct msgctx *ctx, X509 *signer)
{
    int rc = verify_message_signature(ctx, signer);
    if (rc == CG_OK)
        ctx->auth.signer = signer;
    return rc;
}

/* The store's record of signer (found by issuer and serial, then matched by fingerprint fp)
 * into ctx->auth.signer_rec. @return CG_OK, CG_ENOTFOUND, or a store error. */
static int signer_record(struct msgctx *ctx, X509 *signer, const uint8_t fp[32])
{
    uint8_t ikey[32], serial[32];
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(signer), NULL);
    int ok = bn != NULL && !BN_is_negative(bn) && BN_num_bytes(bn) <= (int)sizeof(serial);
    size_t slen = ok ? (size_t)BN_bn2bin(bn, serial) : 0;
    BN_free(bn);
    if (!ok)
        return CG_ENOTFOUND; /* not a serial number this gateway issues */
    if (ca_name_key_(X509_get_issuer_name(signer), ikey) != CG_OK)
        return CG_ECRYPTO;
    return cg_store_get_cert_fp(ctx->core->store, ikey, serial, slen, fp, &ctx->auth.signer_rec);
}
static int verify_eec(struct msgctx *ctx, const char *param, int *relevant)
{
    int client = ctx->alias->mode == CG_MODE_CLIENT, rc;
    uint8_t fp[32];
    unsigned char *der = NULL;
    if (ctx->req->protection == NULL || ctx->req->header->protectionAlg == NULL ||
        protect_is_pbm_(ctx->req->header->protectionAlg)) {
        set_detail_(ctx, "EndEntityCertificate: the message is not signature-protected", NULL);
        return CG_ECMP_BADMSGCHECK;
    }
    *relevant = 1;
    X509 *signer = sk_X509_value(ctx->req->extraCerts, 0);
    if (signer == NULL) {
        set_detail_(ctx, "EndEntityCertificate: no signer certificate in extraCerts", NULL);
        return CG_ECMP_BADREQUEST;
    }
    int len = i2d_X509(signer, &der);
    if (len <= 0 || EVP_Digest(der, (size_t)len, fp, NULL, core_md_(NID_sha256), NULL) != 1) {
        OPENSSL_free(der);
        return CG_ECRYPTO;
    }
    OPENSSL_free(der);
    rc = signer_record(ctx, signer, fp);
    if (rc == CG_ENOTFOUND && client && ctx->alias->vendor_certificate_mode &&
        (ctx->req->body->type == CG_BODY_IR || ctx->req->body->type == CG_BODY_CR ||
         ctx->req->body->type == CG_BODY_P10CR || ctx->req->body->type == CG_BODY_CERTCONF))
        return verify_vendor(ctx, signer);
    if (rc == CG_ENOTFOUND && !client && param == NULL && ctx->nested_ok)
        return verify_signature_only(ctx, signer);
    if (rc == CG_ENOTFOUND) {
        set_detail_(ctx, "EndEntityCertificate: the signer certificate was not issued here", NULL);
        return CG_ECMP_NOTAUTHORIZED;
    } else if (rc != CG_OK) {
        set_detail_(ctx, "store: %s", cg_strerror(rc));
        return CG_ECMP_SYSTEMUNAVAIL;
    }
    ctx->auth.signer = signer;
    const struct cg_cert_rec *rec = ctx->auth.signer_rec;
    if (rec->status == CG_CERT_REVOKED) {
        set_detail_(ctx, "EndEntityCertificate: the signer certificate is revoked", NULL);
        return CG_ECMP_BADREQUEST;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(signer)) <= 0 ||
        X509_cmp_current_time(X509_get0_notBefore(signer)) >= 0) {
        set_detail_(ctx, "EndEntityCertificate: the signer certificate is expired or not yet valid",
                    NULL);
        return CG_ECMP_BADREQUEST;
    }
    const struct cg_ca *ca = rec->ca ? cg_config_ca(ctx->cfg, rec->ca) : NULL;
    if (ca == NULL || !core_cert_verify_(signer, ca->cert)) {
        set_detail_(ctx, "EndEntityCertificate: the signer certificate's CA is not configured",
                    NULL);
        return CG_ECMP_NOTAUTHORIZED;
    }
    if (param != NULL && strcmp(param, ca->name) != 0) {
        set_detail_(ctx, "EndEntityCertificate: the signer certificate is not issued by %s", param);
        return CG_ECMP_NOTAUTHORIZED;
    }
    if ((rc = verify_message_signature(ctx, signer)) != CG_OK)
        return rc;
    if (!client) {
        if (param == NULL && ctx->nested_ok)
            return CG_OK;
        if (param == NULL) {
            set_detail_(ctx, "EndEntityCertificate without a CA parameter needs a nested message",
                        NULL);
            return CG_ECMP_NOTAUTHORIZED;
        }
        return eec_find_admin(ctx, ca->name);
    }
    const char *owner = rec->username ? rec->username : "";
    const char *about = ctx->req->body->type == CG_BODY_CERTCONF && ctx->txn && ctx->txn->username
                            ? ctx->txn->username
                            : ctx->extracted;
    if (is_cert_request(ctx->req->body->type) || ctx->req->body->type == CG_BODY_CERTCONF) {
        if (strcmp(owner, about) != 0) {
            snprintf(ctx->detail, sizeof(ctx->detail),
                     "EndEntityCertificate: the signer certificate belongs to %.80s, not to %.80s",
                     owner, about);
            return CG_ECMP_NOTAUTHORIZED;
        }
    }
    snprintf(ctx->auth.user, sizeof(ctx->auth.user), "%s", owner);
    return CG_OK;
}

static const struct auth_module modules[] = {
    [CG_AUTH_REGTOKENPWD] = {"RegTokenPwd", verify_regtoken},
    [CG_AUTH_DNPARTPWD] = {"DnPartPwd", verify_dnpart},
    [CG_AUTH_HMAC] = {"HMAC", verify_hmac},
    [CG_AUTH_EEC] = {"EndEntityCertificate", verify_eec},
};

int auth_authenticate_(struct msgctx *ctx)
{
    int rc = CG_ECMP_BADMSGCHECK, first_rc = CG_OK;
    char first_detail[sizeof(ctx->detail)] = "";
    struct dn_ref subject;
    X509_NAME *owned = NULL;
    if (requested_subject(ctx, &subject, &owned))
        auth_extract_username_(&subject, ctx->alias->extract_username_component, ctx->extracted,
                               sizeof(ctx->extracted));
    X509_NAME_free(owned);
    set_detail_(ctx, "no authentication module is configured", NULL);
    for (size_t i = 0; i < ctx->alias->n_auth; i++) {
        int m = ctx->alias->auth_modules[i], relevant = 0;
        if (m < 0 || m > CG_AUTH_EEC)
            continue;
        auth_clear_(&ctx->auth);
        rc = modules[m].verify(ctx, ctx->alias->auth_params[i], &relevant);
        if (rc == CG_OK) {
            ctx->auth.module = m;
            ctx->detail[0] = '\0';
            return CG_OK;
        }
        if (relevant && first_rc == CG_OK) {
            first_rc = rc;
            snprintf(first_detail, sizeof(first_detail), "%s", ctx->detail);
        }
    }
    auth_clear_(&ctx->auth);
    if (first_rc != CG_OK) {
        snprintf(ctx->detail, sizeof(ctx->detail), "%s", first_detail);
        return first_rc;
    }
    /* no module found its input: an unauthenticated message */
    return ctx->alias->mode == CG_MODE_CLIENT ? CG_ECMP_NOTAUTHORIZED : rc;
}

int auth_admin_allows_(const struct msgctx *ctx, const char *op, const char *ep)
{
    const struct cg_admin *a = ctx->auth.admin;
    if (ctx->auth.module != CG_AUTH_EEC || a == NULL)
        return 1;
    int op_ok = 0, ep_ok = 0;
    for (size_t i = 0; i < a->n_operations; i++)
        op_ok |= strcmp(a->operations[i], op) == 0;
    for (size_t i = 0; i < a->n_ee_profiles; i++)
        ep_ok |= strcmp(a->ee_profiles[i], "*") == 0 || (ep && strcmp(a->ee_profiles[i], ep) == 0);
    return op_ok && ep_ok;
}
