/*
 * base.c - the leaf helpers every module may use: errors, byte buffers, logging.
 *
 * DESIGN: libc only. The log level and format are set once before threads start; after
 * that every function here is thread-safe (cg_buf objects have a single owner).
 */
#include "cg_buf.h"
#include "cg_err.h"
#include "cg_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *cg_strerror(int err)
{
    switch (err) {
    case CG_OK:
        return "success";
    case CG_EINTERNAL:
        return "internal error";
    case CG_ENOMEM:
        return "out of memory";
    case CG_EINVAL:
        return "invalid argument";
    case CG_ENOTFOUND:
        return "not found";
    case CG_EEXIST:
        return "already exists";
    case CG_ECONFLICT:
        return "record changed concurrently";
    case CG_EIO:
        return "I/O error";
    case CG_EFULL:
        return "full";
    case CG_ETOOBIG:
        return "over the size limit";
    case CG_EPARSE:
        return "malformed input";
    case CG_ESTORE:
        return "store error";
    case CG_ECRYPTO:
        return "cryptographic library error";
    case CG_ECLOSED:
        return "closed";
    case CG_EALREADY:
        return "already done";
    case CG_ECONFIG:
        return "configuration error";
    case CG_EINCOMPLETE:
        return "incomplete input";
    case CG_EBUSY:
        return "busy";
    case CG_ECMP_BADREQUEST:
        return "badRequest";
    case CG_ECMP_BADMSGCHECK:
        return "badMessageCheck";
    case CG_ECMP_BADPOP:
        return "badPOP";
    case CG_ECMP_WRONGAUTHORITY:
        return "wrongAuthority";
    case CG_ECMP_NOTAUTHORIZED:
        return "notAuthorized";
    case CG_ECMP_BADCERTID:
        return "badCertId";
    case CG_ECMP_CERTREVOKED:
        return "certRevoked";
    case CG_ECMP_INCORRECTDATA:
        return "incorrectData";
    case CG_ECMP_TXIDINUSE:
        return "transactionIdInUse";
    case CG_ECMP_BADRECIPNONCE:
        return "badRecipientNonce";
    case CG_ECMP_BADSENDERNONCE:
        return "badSenderNonce";
    case CG_ECMP_UNSUPPORTEDVERSION:
        return "unsupportedVersion";
    case CG_ECMP_BADCERTTEMPLATE:
        return "badCertTemplate";
    case CG_ECMP_BADALG:
        return "badAlg";
    case CG_ECMP_BADDATAFORMAT:
        return "badDataFormat";
    case CG_ECMP_SYSTEMUNAVAIL:
        return "systemUnavail";
    case CG_ECMP_BADTIME:
        return "badTime";
    case CG_ECMP_SIGNERNOTTRUSTED:
        return "signerNotTrusted";
    case CG_ECMP_CERTCONFIRMED:
        return "certConfirmed";
    case CG_ECMP_WRONGINTEGRITY:
        return "wrongIntegrity";
    default:
        return "unknown error";
    }
}

struct cg_buf *cg_buf_new(void)
{
    return calloc(1, sizeof(struct cg_buf));
}

void cg_buf_free(struct cg_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    free(b);
}

int cg_buf_reserve(struct cg_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return CG_OK;
    size_t need = b->len + extra;
    if (need < b->len)
        return CG_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return CG_ENOMEM;
    b->data = p;
    b->cap = cap;
    return CG_OK;
}

int cg_buf_append(struct cg_buf *b, const void *p, size_t len)
{
    int rc = cg_buf_reserve(b, len);
    if (rc != CG_OK)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, p, len);
    b->len += len;
    return CG_OK;
}

void cg_buf_reset(struct cg_buf *b)
{
    b->len = 0;
}

uint8_t *cg_buf_steal(struct cg_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* Set by the loop thread (start, SIGHUP), read by every thread: atomics. */
static _Atomic int log_level = CG_LOG_INFO;
static _Atomic int log_json;

void cg_log_setup(int level, int json)
{
    log_level = level;
    log_json = json;
}

int cg_log_level_from_name(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int cg_log_enabled(int level)
{
    return level <= log_level;
}

static const char *level_name(int level)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    return level >= 0 && level <= 3 ? names[level] : "info";
}

static size_t format_time(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    k += (size_t)snprintf(out + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
    return k;
}

/* Appends s to line as a JSON string body (without quotes), bounded by n. */
static size_t json_escape(char *line, size_t pos, size_t n, const char *s)
{
    for (; *s != '\0' && pos + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            line[pos++] = '\\';
            line[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(line + pos, n - pos, "\\u%04x", c);
        } else {
            line[pos++] = (char)c;
        }
    }
    line[pos] = '\0';
    return pos;
}

void cg_log(int level, const char *fmt, ...)
{
    if (!cg_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[4200];
    char ts[40];
    format_time(ts, sizeof(ts));
    if (log_json) {
        size_t pos =
            (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                             level_name(level));
        pos = json_escape(line, pos, sizeof(line) - 3, msg);
        snprintf(line + pos, sizeof(line) - pos, "\"}\n");
    } else {
        snprintf(line, sizeof(line), "%s %s %s\n", ts, level_name(level), msg);
    }
    fputs(line, stderr);
}

void cg_log_kv(int level, const char *const *kv, int nkv)
{
    if (!cg_log_enabled(level))
        return;
    char line[4200];
    char ts[40];
    format_time(ts, sizeof(ts));
    size_t n = sizeof(line) - 4;
    size_t pos;
    if (log_json) {
        pos = (size_t)snprintf(line, n, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_name(level));
        for (int i = 0; i + 1 < nkv && pos + 8 < n; i += 2) {
            pos += (size_t)snprintf(line + pos, n - pos, ",\"%s\":\"", kv[i]);
            pos = json_escape(line, pos, n - 2, kv[i + 1] ? kv[i + 1] : "");
            line[pos++] = '"';
        }
        line[pos++] = '}';
    } else {
        pos = (size_t)snprintf(line, n, "%s %s", ts, level_name(level));
        for (int i = 0; i + 1 < nkv && pos + 4 < n; i += 2) {
            const char *v = kv[i + 1] && *kv[i + 1] ? kv[i + 1] : "-";
            pos += (size_t)snprintf(line + pos, n - pos, " %s=%s", kv[i], v);
        }
    }
    if (pos > n)
        pos = n;
    line[pos++] = '\n';
    line[pos] = '\0';
    fputs(line, stderr);
}
