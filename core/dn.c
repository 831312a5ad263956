/*
 * dn.c - distinguished names as text: parsing the registered DN of an end entity and
 * comparing names without regard to attribute order (client-mode subject matching).
 *
 * DESIGN: pure functions. The text form is the one the admin commands store: ATTR=value
 * pairs separated by commas, a backslash escaping the next character; attribute names are
 * anything OpenSSL knows (CN, O, OU, C, UID, serialNumber, emailAddress, ...). A '+' followed
 * by such a name and '=' joins the next pair to the same RDN (a multi-valued RDN, as RFC 4514
 * writes it); any other '+' is part of the value, as before.
 */
#include "core_local.h"

#include <stdlib.h>
#include <string.h>

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
