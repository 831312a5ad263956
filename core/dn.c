/*
 * dn.c - distinguished names as text: parsing the registered DN of an end entity and
 * comparing names without regard to attribute order (client-mode subject matching); and
 * reading a name's attributes from an X509_NAME or straight from its DER (struct dn_ref).
 *
 * A requested subject stays in its DER (CG_NAME_RAW): d2i_X509_NAME makes 40 allocations for
 * a name of three attributes, also building a canonical form that only X509_NAME_cmp uses,
 * and the RA path reads no more than a few attribute values and the text. dn_der_check_()
 * accepts a subset of what d2i_X509_NAME accepts (strict DER, the string types it reads,
 * text that converts to UTF-8); a name outside it is decoded as before (dn_ref_raw_), and a
 * path that needs an X509_NAME decodes one (dn_decoded_).
 *
 * DESIGN: pure functions. The text form is the one the admin commands store: ATTR=value
 * pairs separated by commas, a backslash escaping the next character; attribute names are
 * anything OpenSSL knows (CN, O, OU, C, UID, serialNumber, emailAddress, ...). A '+' followed
 * by such a name and '=' joins the next pair to the same RDN (a multi-valued RDN, as RFC 4514
 * writes it); any other '+' is part of the value, as before.
 */
#include "core_local.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* the longest name d2i_X509_NAME decodes (its X509_NAME_MAX) */
#define DN_DER_MAX (1024 * 1024)

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* 1 when p starts "ATTR=" with an attribute name OpenSSL knows (spaces around it allowed). */
static int starts_pair(const char *p)
{
    char attr[64];
    size_t n = 0;
    for (; *p != '\0' && *p != '='; p++) {
        if (*p == ',' || *p == '+' || *p == '\\' || n + 1 >= sizeof(attr))
            return 0;
        attr[n++] = *p;
    }
    attr[n] = '\0';
    return *p == '=' && OBJ_txt2nid(trim(attr)) != NID_undef;
}

X509_NAME *dn_parse_(const char *text)
{
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    X509_NAME *name = X509_NAME_new();
    if (buf == NULL || name == NULL)
        goto fail;
    const char *p = text;
    int join = 0; /* this pair follows a '+': it joins the RDN before */
    while (*p != '\0') {
        size_t k = 0;
        char *eq = NULL;
        /* one ATTR=value pair, unescaping the value */
        for (; *p != '\0' && *p != ','; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '=' && eq == NULL) {
                buf[k++] = '\0';
                eq = buf + k;
                continue;
            } else if (*p == '+' && eq != NULL && starts_pair(p + 1))
                break;
            buf[k++] = *p;
        }
        buf[k] = '\0';
        int next_joins = *p == '+';
        if (*p == ',' || *p == '+')
            p++;
        if (eq == NULL)
            goto fail;
        char *attr = trim(buf), *value = trim(eq);
        if (*attr == '\0' || *value == '\0' || OBJ_txt2nid(attr) == NID_undef)
            goto fail;
        if (X509_NAME_add_entry_by_txt(name, attr, MBSTRING_UTF8, (unsigned char *)value, -1, -1,
                                       join ? -1 : 0) != 1)
            goto fail;
        join = next_joins;
    }
    if (X509_NAME_entry_count(name) == 0)
        goto fail;
    free(buf);
    return name;
fail:
    free(buf);
    X509_NAME_free(name);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted "nid=utf8value" strings of name (skipping skip_nid); *n set. NULL on failure. */
static char **entries(const X509_NAME *name, int skip_nid, int *n)
{
    int total = X509_NAME_entry_count(name), k = 0;
    char **v = calloc((size_t)total + 1, sizeof(char *));
    if (v == NULL)
        return NULL;
    for (int i = 0; i < total; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        if (skip_nid != 0 && nid == skip_nid)
            continue;
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        if (len < 0)
            goto fail;
        v[k] = malloc((size_t)len + 16);
        if (v[k] == NULL) {
            OPENSSL_free(utf8);
            goto fail;
        }
        snprintf(v[k], (size_t)len + 16, "%d=%.*s", nid, len, (const char *)utf8);
        OPENSSL_free(utf8);
        k++;
    }
    qsort(v, (size_t)k, sizeof(char *), cmp_str);
    *n = k;
    return v;
fail:
    for (int i = 0; i < k; i++)
        free(v[i]);
    free(v);
    return NULL;
}

int dn_equal_unordered_(const X509_NAME *a, const X509_NAME *b, int skip_nid)
{
    int na = 0, nb = 0, eq = 0;
    char **va = entries(a, skip_nid, &na), **vb = entries(b, skip_nid, &nb);
    if (va != NULL && vb != NULL && na == nb) {
        eq = 1;
        for (int i = 0; i < na && eq; i++)
            eq = strcmp(va[i], vb[i]) == 0;
    }
    for (int i = 0; va && i < na; i++)
        free(va[i]);
    for (int i = 0; vb && i < nb; i++)
        free(vb[i]);
    free(va);
    free(vb);
    return eq;
}

/* --- a name's attributes, decoded or in DER ------------------------------------------------ */

int dn_present_(const struct dn_ref *ref)
{
    return ref->name != NULL || ref->der != NULL;
}

int dn_same_(const struct dn_ref *a, const struct dn_ref *b)
{
    return a->name == b->name && a->der == b->der && a->len == b->len;
}

void dn_iter_init_(struct dn_iter *it, const struct dn_ref *ref)
{
    const unsigned char *val = NULL;
    size_t len = 0;
    memset(it, 0, sizeof(*it));
    it->ref = *ref;
    it->set = -1;
    if (ref->name != NULL || ref->der == NULL)
        return;
    it->p = ref->der;
    if (core_der_tlv_(&it->p, ref->der + ref->len, &val, &len) !=
            (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED) ||
        it->p != ref->der + ref->len) {
        it->bad = 1;
        return;
    }
    it->p = it->set_end = val;
    it->end = val + len;
}

/* The universal string types an X509_NAME value may have that dn_iter reads. */
static int string_type(int id)
{
    switch (id) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
    case V_ASN1_NUMERICSTRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_UNIVERSALSTRING:
        return 1;
    default:
        return 0;
    }
}

/* The NIDs of the attribute types 2.5.4.n (id-at, the OID 55 04 n), n < 128: most of any
 * name. Filled once with the OIDs OpenSSL has built in, whose NIDs do not change; one it does
 * not know yet (the configuration may OBJ_create one later) is looked up each time. */
static int at_nids[128];
static pthread_once_t at_once = PTHREAD_ONCE_INIT;

static void at_fill(void)
{
    for (int n = 0; n < 128; n++) {
        const unsigned char der[] = {V_ASN1_OBJECT, 3, 0x55, 0x04, (unsigned char)n}, *p = der;
        ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &p, sizeof(der));
        int nid = obj != NULL ? OBJ_obj2nid(obj) : NID_undef;
        at_nids[n] = nid != NID_undef ? nid : -2; /* -2: look it up each time */
        ASN1_OBJECT_free(obj);
    }
}

/* The NID of the OBJECT IDENTIFIER TLV oid[0..len): OpenSSL's own reading (d2i_ASN1_OBJECT:
 * the same refusals as the X509_NAME decoding, no allocation for an OID it knows), or the
 * table for id-at. @return the NID (NID_undef when unknown), -1 when malformed. */
static int oid_nid(const unsigned char *oid, size_t len)
{
    if (len == 5 && oid[2] == 0x55 && oid[3] == 0x04 && oid[4] < 128) {
        pthread_once(&at_once, at_fill);
        if (at_nids[oid[4]] != -2)
            return at_nids[oid[4]];
    }
    const unsigned char *o = oid;
    ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &o, (long)len);
    int nid = obj != NULL && o == oid + len ? OBJ_obj2nid(obj) : -1;
    ASN1_OBJECT_free(obj);
    return nid;
}

static int der_next(struct dn_iter *it, struct dn_attr *a)
{
    const unsigned char *val, *seq, *q, *oid;
    size_t len, seq_len;
    while (it->p == it->set_end) { /* the next RDN (one may be empty) */
        if (it->p == it->end)
            return 0;
        if (core_der_tlv_(&it->p, it->end, &val, &len) != (V_ASN1_SET | V_ASN1_CONSTRUCTED))
            return -1;
        it->p = val;
        it->set_end = val + len;
        it->set++;
    }
    if (core_der_tlv_(&it->p, it->set_end, &seq, &seq_len) !=
        (V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED))
        return -1;
    q = oid = seq;
    if (core_der_tlv_(&q, seq + seq_len, &val, &len) != V_ASN1_OBJECT)
        return -1;
    if ((a->nid = oid_nid(oid, (size_t)(q - oid))) == -1)
        return -1;
    int id = core_der_tlv_(&q, seq + seq_len, &val, &len);
    if (!string_type(id) || q != seq + seq_len || len > INT_MAX)
        return -1;
    a->set = it->set;
    a->type = id;
    a->val = val;
    a->len = (int)len;
    return 1;
}

int dn_iter_next_(struct dn_iter *it, struct dn_attr *a)
{
    if (it->ref.name != NULL) {
        if (it->i >= X509_NAME_entry_count(it->ref.name))
            return 0;
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(it->ref.name, it->i++);
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
        a->nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        a->set = X509_NAME_ENTRY_set(e);
        a->type = ASN1_STRING_type(v);
        a->val = ASN1_STRING_get0_data(v);
        a->len = ASN1_STRING_length(v);
        return 1;
    }
    if (it->ref.der == NULL)
        return 0;
    int r = it->bad ? -1 : der_next(it, a);
    if (r < 0)
        it->bad = 1;
    return r;
}

/* A code point ASN1_STRING_to_UTF8 writes (its is_unicode_valid). */
static int unicode_ok(unsigned long v)
{
    return v <= 0x10ffff && (v < 0xd800 || v > 0xdfff);
}

/* 1 when ASN1_STRING_to_UTF8 converts the value (as d2i_X509_NAME does for its canonical
 * form): UTF-8 that UTF8_getc reads, a BMPString or UniversalString of whole characters, every
 * code point valid. The other types it reads convert byte by byte. */
static int text_converts(const struct dn_attr *a)
{
    const unsigned char *p = a->val;
    int n = a->len;
    unsigned long v;
    switch (a->type) {
    case V_ASN1_UTF8STRING:
        while (n > 0) {
            int k = UTF8_getc(p, n, &v); /* refuses surrogates and values above U+10FFFF */
            if (k <= 0)
                return 0;
            p += k;
            n -= k;
        }
        return 1;
    case V_ASN1_BMPSTRING:
        if (n & 1)
            return 0;
        for (; n > 0; p += 2, n -= 2)
            if (!unicode_ok((unsigned long)p[0] << 8 | p[1]))
                return 0;
        return 1;
    case V_ASN1_UNIVERSALSTRING:
        if (n & 3)
            return 0;
        for (; n > 0; p += 4, n -= 4)
            if (!unicode_ok((unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 |
                            (unsigned long)p[2] << 8 | p[3]))
                return 0;
        return 1;
    default:
        return 1;
    }
}

/* The value as UTF-8 (new, OPENSSL_free), as ASN1_STRING_to_UTF8 converts it. @return its
 * length or -1. */
static int attr_utf8(const struct dn_attr *a, unsigned char **out)
{
    ASN1_STRING v = {a->len, a->type, (unsigned char *)a->val, 0};
    *out = NULL;
    return ASN1_STRING_to_UTF8(out, &v);
}

int dn_der_check_(const unsigned char *der, size_t len)
{
    struct dn_ref ref = {NULL, der, len};
    struct dn_iter it;
    struct dn_attr a;
    int r;
    if (der == NULL || len > DN_DER_MAX)
        return 0;
    dn_iter_init_(&it, &ref);
    while ((r = dn_iter_next_(&it, &a)) == 1)
        if (!text_converts(&a))
            return 0;
    return r == 0;
}

int dn_find_(const struct dn_ref *ref, int nid, struct dn_attr *a)
{
    struct dn_iter it;
    dn_iter_init_(&it, ref);
    while (dn_iter_next_(&it, a) == 1)
        if (a->nid == nid)
            return 1;
    return 0;
}

int dn_value_(const struct dn_ref *subject, const char *sn, char *out, size_t n)
{
    struct dn_attr a;
    unsigned char *utf8 = NULL;
    int nid = OBJ_txt2nid(sn);
    if (nid == NID_undef || !dn_find_(subject, nid, &a))
        return 0;
    int len = attr_utf8(&a, &utf8);
    int ok = len > 0 && (size_t)len < n && memchr(utf8, '\0', (size_t)len) == NULL;
    if (ok) {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

int dn_ref_raw_(const ASN1_STRING *raw, struct dn_ref *ref, X509_NAME **owned)
{
    const unsigned char *der = raw != NULL ? ASN1_STRING_get0_data(raw) : NULL;
    size_t len = raw != NULL ? (size_t)ASN1_STRING_length(raw) : 0;
    memset(ref, 0, sizeof(*ref));
    *owned = NULL;
    if (der == NULL)
        return 1;
    if (ASN1_STRING_type(raw) == V_ASN1_SEQUENCE || dn_der_check_(der, len)) {
        ref->der = der;
        ref->len = len;
        return 1;
    }
    ref->name = *owned = d2i_X509_NAME(NULL, &der, (long)len);
    return ref->name != NULL;
}

const X509_NAME *dn_decoded_(const struct dn_ref *ref, X509_NAME **owned)
{
    const unsigned char *p = ref->der;
    *owned = NULL;
    if (ref->name != NULL || p == NULL)
        return ref->name;
    return *owned = d2i_X509_NAME(NULL, &p, (long)ref->len);
}
