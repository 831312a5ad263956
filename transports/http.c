/*
 * http.c - the HTTP/1.0 and 1.1 listener: accept, frame one request, hand it over, write
 * the reply.
 *
 * DESIGN: libevent core only (evconnlistener, bufferevent, evbuffer, one timer per
 * connection); no evhttp. Each connection is a small state machine driven by the
 * bufferevent's input buffer:
 *   HEAD  request line and header lines, read line by line (only the few headers that matter
 *         are kept), at most max_header_bytes in all, else 431 and close;
 *   BODY  Content-Length bytes left in the input buffer until all have arrived (the length
 *         is checked against max_body_bytes before anything is buffered), or chunked data
 *         moved chunk by chunk into a body evbuffer (each chunk size checked first);
 *   WAIT  the request was handed to the gateway: reading is disabled and no timer runs
 *         until cg_request_reply() writes the answer;
 *   DRAIN a keep-alive reply is large and unread: resume only when it has been sent;
 *   CLOSING the last reply is queued: when the output has drained, the write side is shut
 *         down and the connection lingers (LINGER, input discarded, at most LINGER_S) until
 *         the peer closes, so unread request bytes do not turn the close into a reset that
 *         would destroy the reply before the client reads it.
 * One request at a time: bytes that a client pipelines stay in the input buffer and are
 * parsed after the reply (through a deferred read callback, so a synchronous reply never
 * recurses). The timer is the idle timeout while waiting for a request, the read timeout
 * from the first byte of a request until it is complete, and a drain limit while closing.
 * Errors found by the transport (400, 404, 405, 411, 413, 431) are answered and close the
 * connection, so an unread body never has to be skipped. A connection never frees itself
 * inside a call that the gateway made, so a reply from the request callback is safe.
 * Everything runs on the loop thread of the event_base.
 */
#include "cg_http.h"

#include "cg_err.h"
#include "cg_log.h"
#include "transport_local.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define DEFAULT_MAX_BODY 1048576
#define DEFAULT_MAX_HEADER 16384
#define DEFAULT_IDLE_S 60
#define DEFAULT_READ_S 30
#define DEFAULT_MAX_CONN 4096
#define MAX_CHUNK_LINE 1024       /* chunk-size line with extensions */
#define MAX_OUTPUT_PENDING 262144 /* unread replies before we stop reading requests */
#define LINGER_S 2                /* discard late input after a close reply, at most this long */
#define MAX_ALIAS 64
#define PEER_LEN 64

enum conn_state {
    ST_HEAD = 0,
    ST_BODY_LENGTH,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_END,
    ST_TRAILER,
    ST_WAIT,
    ST_DRAIN,
    ST_CLOSING,
    ST_LINGER,
};

/* process steps: need more input, go on, or an HTTP error status (>= 400) */
#define STEP_MORE 0
#define STEP_NEXT 1

struct conn {
    struct cg_http *h;
    struct bufferevent *bev;
    struct event *timer;
    struct conn *prev, *next;
    struct cg_request *req;  /* handed to the gateway, not yet replied */
    struct evbuffer *chunks; /* chunked body so far (NULL otherwise) */
    char *method;            /* of the request being read */
    char *target;
    size_t head_bytes; /* request line + headers (+ trailers) consumed */
    size_t body_len;   /* Content-Length, or chunked bytes so far */
    size_t chunk_left;
    enum conn_state state;
    unsigned minor : 1;    /* HTTP/1.minor */
    unsigned started : 1;  /* first byte of the current request seen */
    unsigned has_line : 1; /* request line parsed */
    unsigned has_length : 1;
    unsigned chunked : 1;
    unsigned expect : 1; /* Expect: 100-continue */
    unsigned conn_close : 1;
    unsigned conn_keep : 1;
    unsigned is_head : 1; /* HEAD request: no body in the reply */
    unsigned peer_eof : 1;
    char peer[PEER_LEN];
};

struct cg_http {
    struct event_base *base;
    int kind;
    struct cg_transport_limits lim;
    char *root_alias;
    cg_request_cb cb;
    void *arg;
    struct evconnlistener **listeners;
    int nlisteners;
    struct conn *conns;
    int nconns;
    int stopping;
};

static void reply_conn(void *conn, struct cg_request *req, int status, const char *content_type,
                       const uint8_t *body, size_t len);

static const struct cg_conn_ops http_ops = {reply_conn};

static const char *const rfc9811_ops[] = {
    "initialization", "certification", "keyupdate",          "pkcs10",  "revocation",
    "getcacerts",     "getrootupdate", "getcertreqtemplate", "getcrls", "nested",
};

/* ---------------------------------------------------------------------------------------- */
/* routing                                                                                  */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

static int valid_alias(const char *s, size_t n)
{
    int ok = n >= 1 && n <= MAX_ALIAS;

    for (size_t i = 0; ok && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        ok = isalnum(ch) || ch == '_' || ch == '.' || ch == '-';
    }
    /* "." and ".." are path syntax, never names */
    if (ok && (n == 1 || n == 2) && strspn(s, ".") == n)
        ok = 0;
    return ok;
}

static int valid_op(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(rfc9811_ops) / sizeof(rfc9811_ops[0]); i++)
        if (strlen(rfc9811_ops[i]) == n && memcmp(rfc9811_ops[i], s, n) == 0)
            return 1;
    return 0;
}

/* target → normalized path (new): absolute-form authority dropped, query and fragment
 * removed, repeated slashes collapsed, a trailing slash dropped (except for "/").
 * @return CG_OK, CG_EPARSE (not origin- or absolute-form), CG_ENOMEM. */
static int normalize_path(const char *target, char **out)
{
    int rc = CG_EPARSE;
    const char *p = target;
    size_t n, j = 0;
    char *path = NULL;

    *out = NULL;
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strstr(p, "://") + 3;
        p += strcspn(p, "/?#");
        if (*p != '/') {
            p = "/";
        }
    }
    if (*p != '/')
        goto out;
    n = strcspn(p, "?#");
    path = malloc(n + 1);
    if (path == NULL) {
        rc = CG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/' && j > 0 && path[j - 1] == '/')
            continue;
        path[j++] = p[i];
    }
    if (j > 1 && path[j - 1] == '/')
        j--;
    path[j] = '\0';
    *out = path;
    path = NULL;
    rc = CG_OK;
out:
    free(path);
    return rc;
}

/* Split a normalized path into at most 6 segments. @return number, or -1 if more. */
static int split_path(const char *path, const char **seg, size_t *len, int max)
{
    int n = 0;
    const char *p = path;

    while (*p == '/')
        p++;
    while (*p != '\0') {
        size_t l = strcspn(p, "/");
        if (n == max)
            return -1;
        seg[n] = p;
        len[n] = l;
        n++;
        p += l;
        while (*p == '/')
            p++;
    }
    return n;
}

static int seg_is(const char *seg, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(seg, word, len) == 0;
}

/* Route a normalized path. On a CMP path *alias (new) is set, and *op (new) when there is
 * an operation segment. @return 1 CMP path, 0 not a CMP path, CG_ENOMEM. */
static int route_path(const char *path, const char *root_alias, char **alias, char **op)
{
    int rc = 0;
    const char *seg[6];
    size_t len[6];
    const char *a = NULL, *o = NULL;
    size_t alen = 0, olen = 0;
    int n = split_path(path, seg, len, 6);

    *alias = NULL;
    *op = NULL;
    if (n == 0) {
        if (root_alias == NULL)
            goto out;
        a = root_alias;
        alen = strlen(root_alias);
    } else if (n >= 3 && seg_is(seg[0], len[0], "ejbca") && seg_is(seg[1], len[1], "publicweb") &&
               seg_is(seg[2], len[2], "cmp")) {
        if (n > 5)
            goto out;
        a = "cmp";
        alen = 3;
        if (n >= 4) {
            a = seg[3];
            alen = len[3];
        }
        if (n == 5) {
            o = seg[4];
            olen = len[4];
        }
    } else if (n >= 2 && seg_is(seg[0], len[0], ".well-known") && seg_is(seg[1], len[1], "cmp")) {
        a = "cmp";
        alen = 3;
        if (n >= 3 && seg_is(seg[2], len[2], "p")) {
            if (n < 4 || n > 5)
                goto out;
            a = seg[3];
            alen = len[3];
            if (n == 5) {
                o = seg[4];
                olen = len[4];
            }
        } else if (n == 3) {
            o = seg[2];
            olen = len[2];
        } else if (n > 3) {
            goto out;
        }
    } else {
        goto out;
    }
    if (!valid_alias(a, alen) || (o != NULL && !valid_op(o, olen)))
        goto out;
    *alias = strndup(a, alen);
    if (o != NULL)
        *op = strndup(o, olen);
    if (*alias == NULL || (o != NULL && *op == NULL)) {
        free(*alias);
        free(*op);
        *alias = NULL;
        *op = NULL;
        rc = CG_ENOMEM;
        goto out;
    }
    rc = 1;
out:
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* connections                                                                              */

static void arm_timer(struct conn *c, int seconds)
{
    struct timeval tv = {seconds, 0};

    evtimer_add(c->timer, &tv);
}

static void reset_request(struct conn *c)
{
    free(c->method);
    free(c->target);
    c->method = NULL;
    c->target = NULL;
    if (c->chunks != NULL)
        evbuffer_free(c->chunks);
    c->chunks = NULL;
    c->head_bytes = 0;
    c->body_len = 0;
    c->chunk_left = 0;
    c->state = ST_HEAD;
    c->minor = 1;
    c->started = 0;
    c->has_line = 0;
    c->has_length = 0;
    c->chunked = 0;
    c->expect = 0;
    c->conn_close = 0;
    c->conn_keep = 0;
    c->is_head = 0;
}

static void free_conn(struct conn *c)
{
    struct cg_http *h = c->h;

    if (c->req != NULL)
        cg_request_detach_(c->req);
    c->req = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->nconns--;
    reset_request(c);
    bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
}

/* The reply (or error) is queued: close once it has been sent, bounded by a timer. */
static void begin_close(struct conn *c)
{
    c->state = ST_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    arm_timer(c, c->h->lim.read_timeout_s);
}

static int keep_alive(const struct conn *c)
{
    if (c->conn_close || c->peer_eof || c->h->stopping)
        return 0;
    return c->minor >= 1 ? 1 : c->conn_keep;
}

static void write_reply(struct conn *c, int status, const char *content_type, const uint8_t *body,
                        size_t len, int close)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (content_type == NULL)
        content_type = status == 200 ? "application/pkixcmp" : (len > 0 ? "text/plain" : NULL);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (content_type != NULL)
        evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
    if (status == 405)
        evbuffer_add_printf(out, "Allow: POST\r\n");
    if (close)
        evbuffer_add_printf(out, "Connection: close\r\n");
    else if (c->minor == 0)
        evbuffer_add_printf(out, "Connection: keep-alive\r\n");
    evbuffer_add(out, "\r\n", 2);
    if (len > 0 && body != NULL && !c->is_head)
        evbuffer_add(out, body, len);
}

/* A transport-generated error: answer and close. */
static void fail_request(struct conn *c, int status)
{
    static const char *const texts[] = {"bad request\n",          "not a CMP path\n",
                                        "only POST is allowed\n", "length required\n",
                                        "body too large\n",       "headers too large\n"};
    const char *text = status == 400   ? texts[0]
                       : status == 404 ? texts[1]
                       : status == 405 ? texts[2]
                       : status == 411 ? texts[3]
                       : status == 413 ? texts[4]
                       : status == 431 ? texts[5]
                                       : "";

    cg_log(CG_LOG_DEBUG, "http %s: %d %s", c->peer, status, reason_phrase(status));
    write_reply(c, status, NULL, (const uint8_t *)text, strlen(text), 1);
    begin_close(c);
}

/* Ready for the next request: parse what is already buffered, on a deferred callback. */
static void resume_reading(struct conn *c)
{
    c->state = ST_HEAD;
    arm_timer(c, c->h->lim.idle_timeout_s);
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void reply_conn(void *conn, struct cg_request *req, int status, const char *content_type,
                       const uint8_t *body, size_t len)
{
    struct conn *c = conn;
    int keep = keep_alive(c);

    (void)req;
    c->req = NULL;
    write_reply(c, status, content_type, body, len, !keep);
    if (!keep) {
        begin_close(c);
        return;
    }
    reset_request(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > MAX_OUTPUT_PENDING) {
        c->state = ST_DRAIN;
        arm_timer(c, c->h->lim.idle_timeout_s);
        return;
    }
    resume_reading(c);
}

/* Hand the complete request to the gateway; body (malloc'd) is stolen. */
static int dispatch_request(struct conn *c, uint8_t *body, size_t len)
{
    int rc = 500;
    struct cg_http *h = c->h;
    char *path = NULL, *alias = NULL, *op = NULL;
    struct cg_request *req = NULL;

    if (normalize_path(c->target, &path) != CG_OK ||
        route_path(path, h->root_alias, &alias, &op) < 0)
        goto out;
    req = cg_request_new_(h->kind, c->method, path, alias, op, c->peer, body, len, &http_ops, c);
    body = NULL;
    if (req == NULL)
        goto out;
    c->state = ST_WAIT;
    c->req = req;
    bufferevent_disable(c->bev, EV_READ);
    evtimer_del(c->timer);
    rc = STEP_MORE;
    h->cb(req, h->arg); /* may reply at once; c stays valid */
out:
    free(body);
    free(path);
    free(alias);
    free(op);
    return rc;
}

static int is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* "METHOD SP target SP HTTP/1.x" @return STEP_NEXT or 400 */
static int parse_request_line(struct conn *c, const char *line)
{
    int rc = 400;
    const char *sp1 = strchr(line, ' '), *sp2;
    const char *version;

    if (sp1 == NULL || sp1 == line)
        goto out;
    for (const char *p = line; p < sp1; p++)
        if (!is_tchar((unsigned char)*p))
            goto out;
    sp2 = strchr(sp1 + 1, ' ');
    if (sp2 == NULL || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ') != NULL)
        goto out;
    for (const char *p = sp1 + 1; p < sp2; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
            goto out;
    version = sp2 + 1;
    if (strncmp(version, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)version[7]) ||
        version[8] != '\0')
        goto out;
    c->minor = version[7] != '0';
    c->method = strndup(line, (size_t)(sp1 - line));
    c->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (c->method == NULL || c->target == NULL) {
        rc = 500;
        goto out;
    }
    c->is_head = strcmp(c->method, "HEAD") == 0;
    c->has_line = 1;
    rc = STEP_NEXT;
out:
    return rc;
}

/* Does the comma-separated list value hold token (case-insensitive)? */
static int list_has(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;

    while (*p != '\0') {
        size_t n;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

/* "name: value" @return STEP_NEXT, 400 or 413 */
static int parse_header(struct conn *c, char *line)
{
    int rc = 400;
    char *colon = strchr(line, ':');
    char *value, *end;

    if (colon == NULL || colon == line)
        goto out;
    for (char *p = line; p < colon; p++)
        if (!is_tchar((unsigned char)*p))
            goto out;
    *colon = '\0';
    value = colon + 1;
    value += strspn(value, " \t");
    end = value + strlen(value);
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    if (strcasecmp(line, "Content-Length") == 0) {
        size_t v = 0;
        int over = 0;
        if (*value == '\0' || strspn(value, "0123456789") != strlen(value))
            goto out;
        for (const char *p = value; *p != '\0'; p++) {
            if (v > (SIZE_MAX - 9) / 10)
                over = 1;
            else
                v = v * 10 + (size_t)(*p - '0');
        }
        if (over)
            v = SIZE_MAX;
        if (c->has_length && c->body_len != v)
            goto out;
        c->has_length = 1;
        c->body_len = v;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
        if (strcasecmp(value, "chunked") != 0 || c->chunked)
            goto out;
        c->chunked = 1;
    } else if (strcasecmp(line, "Connection") == 0) {
        if (list_has(value, "close"))
            c->conn_close = 1;
        if (list_has(value, "keep-alive"))
            c->conn_keep = 1;
    } else if (strcasecmp(line, "Expect") == 0) {
        if (strcasecmp(value, "100-continue") == 0)
            c->expect = 1;
    }
    rc = STEP_NEXT;
out:
    return rc;
}

/* Headers complete: route, check the framing, choose the body state. */
static int finish_head(struct conn *c)
{
    int rc = 400;
    struct cg_http *h = c->h;
    char *path = NULL, *alias = NULL, *op = NULL;
    int cmp;

    if (normalize_path(c->target, &path) != CG_OK)
        goto out;
    cmp = route_path(path, h->root_alias, &alias, &op);
    if (cmp < 0) {
        rc = 500;
        goto out;
    }
    if (c->chunked && c->has_length)
        goto out;
    if (h->kind != CG_TRANSPORT_ADMIN) {
        if (cmp == 0) {
            rc = 404;
            goto out;
        }
        if (strcmp(c->method, "POST") != 0) {
            rc = 405;
            goto out;
        }
    }
    if (c->chunked) {
        c->body_len = 0;
        c->state = ST_CHUNK_SIZE;
    } else if (c->has_length) {
        if (c->body_len > h->lim.max_body_bytes) {
            rc = 413;
            goto out;
        }
        c->state = ST_BODY_LENGTH;
    } else if (strcmp(c->method, "POST") == 0) {
        rc = 411;
        goto out;
    } else {
        c->body_len = 0;
        c->state = ST_BODY_LENGTH;
    }
    if (c->expect && c->minor >= 1 && (c->chunked || c->body_len > 0))
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
    rc = STEP_NEXT;
out:
    free(path);
    free(alias);
    free(op);
    return rc;
}

/* Read the next complete line within the header budget. *line is new (NULL: need more).
 * @return STEP_NEXT, STEP_MORE, 400 or 431 */
static int read_line(struct conn *c, struct evbuffer *in, size_t budget, int too_big, char **line)
{
    int rc = too_big;
    size_t eol_len = 0, n = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

    *line = NULL;
    if (p.pos < 0) {
        if (c->head_bytes + evbuffer_get_length(in) > budget)
            goto out;
        rc = STEP_MORE;
        goto out;
    }
    if (c->head_bytes + (size_t)p.pos + eol_len > budget)
        goto out;
    *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
    if (*line == NULL) {
        rc = 500;
        goto out;
    }
    c->head_bytes += (size_t)p.pos + eol_len;
    rc = STEP_NEXT;
    if (strlen(*line) != n) {
        free(*line);
        *line = NULL;
        rc = 400;
    }
out:
    return rc;
}

static int step_head(struct conn *c, struct evbuffer *in)
{
    int rc;
    char *line = NULL;

    rc = read_line(c, in, c->h->lim.max_header_bytes, 431, &line);
    if (rc != STEP_NEXT)
        goto out;
    if (!c->has_line) {
        if (line[0] == '\0') {
            /* empty lines before a request line are tolerated (RFC 9112 2.2) */
            if (evbuffer_get_length(in) == 0) {
                c->started = 0;
                arm_timer(c, c->h->lim.idle_timeout_s);
            }
            goto out;
        }
        rc = parse_request_line(c, line);
    } else if (line[0] == '\0') {
        rc = finish_head(c);
    } else if (line[0] == ' ' || line[0] == '\t') {
        rc = 400; /* obsolete line folding */
    } else {
        rc = parse_header(c, line);
    }
out:
    free(line);
    return rc;
}

static int step_body_length(struct conn *c, struct evbuffer *in)
{
    int rc = STEP_MORE;
    uint8_t *body = NULL;

    if (evbuffer_get_length(in) < c->body_len)
        goto out;
    if (c->body_len > 0) {
        body = malloc(c->body_len);
        if (body == NULL) {
            rc = 500;
            goto out;
        }
        evbuffer_remove(in, body, c->body_len);
    }
    rc = dispatch_request(c, body, c->body_len);
out:
    return rc;
}

static int step_chunk_size(struct conn *c, struct evbuffer *in)
{
    int rc;
    char *line = NULL, *p;
    size_t size = 0;
    size_t saved = c->head_bytes;

    /* the chunk-size line has its own small budget */
    c->head_bytes = 0;
    rc = read_line(c, in, MAX_CHUNK_LINE, 400, &line);
    c->head_bytes = saved;
    if (rc != STEP_NEXT)
        goto out;
    rc = 400;
    p = line;
    if (!isxdigit((unsigned char)*p))
        goto out;
    for (; isxdigit((unsigned char)*p); p++) {
        int d = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
        if (size > c->h->lim.max_body_bytes) {
            rc = 413;
            goto out;
        }
        size = size * 16 + (size_t)d;
    }
    p += strspn(p, " \t");
    if (*p != '\0' && *p != ';')
        goto out;
    if (size > c->h->lim.max_body_bytes - c->body_len) {
        rc = 413;
        goto out;
    }
    if (size == 0) {
        c->state = ST_TRAILER;
    } else {
        if (c->chunks == NULL)
            c->chunks = evbuffer_new();
        if (c->chunks == NULL) {
            rc = 500;
            goto out;
        }
        c->chunk_left = size;
        c->state = ST_CHUNK_DATA;
    }
    rc = STEP_NEXT;
out:
    free(line);
    return rc;
}

static int step_chunk_data(struct conn *c, struct evbuffer *in)
{
    int rc = STEP_MORE;
    size_t n = evbuffer_get_length(in);

    if (n > c->chunk_left)
        n = c->chunk_left;
    if (n == 0)
        goto out;
    if (evbuffer_remove_buffer(in, c->chunks, n) != (int)n) {
        rc = 500;
        goto out;
    }
    c->chunk_left -= n;
    c->body_len += n;
    if (c->chunk_left == 0)
        c->state = ST_CHUNK_END;
    rc = STEP_NEXT;
out:
    return rc;
}

static int step_chunk_end(struct conn *c, struct evbuffer *in)
{
    int rc = STEP_MORE;
    unsigned char b[2];
    ev_ssize_t n = evbuffer_copyout(in, b, 2);

    if (n < 1)
        goto out;
    if (b[0] == '\n') {
        evbuffer_drain(in, 1);
    } else if (b[0] != '\r') {
        rc = 400;
        goto out;
    } else if (n < 2) {
        goto out;
    } else if (b[1] != '\n') {
        rc = 400;
        goto out;
    } else {
        evbuffer_drain(in, 2);
    }
    c->state = ST_CHUNK_SIZE;
    rc = STEP_NEXT;
out:
    return rc;
}

static int step_trailer(struct conn *c, struct evbuffer *in)
{
    int rc;
    char *line = NULL;
    uint8_t *body = NULL;
    size_t len = c->body_len;

    rc = read_line(c, in, c->h->lim.max_header_bytes, 431, &line);
    if (rc != STEP_NEXT || line[0] != '\0')
        goto out; /* trailer fields are read and ignored */
    if (len > 0) {
        body = malloc(len);
        if (body == NULL) {
            rc = 500;
            goto out;
        }
        evbuffer_remove(c->chunks, body, len);
    }
    if (c->chunks != NULL)
        evbuffer_free(c->chunks);
    c->chunks = NULL;
    rc = dispatch_request(c, body, len);
out:
    free(line);
    return rc;
}

static void process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    int rc = STEP_NEXT;

    while (rc == STEP_NEXT) {
        if (c->state == ST_HEAD && !c->started && evbuffer_get_length(in) > 0) {
            c->started = 1;
            arm_timer(c, c->h->lim.read_timeout_s);
        }
        switch (c->state) {
        case ST_HEAD:
            rc = step_head(c, in);
            break;
        case ST_BODY_LENGTH:
            rc = step_body_length(c, in);
            break;
        case ST_CHUNK_SIZE:
            rc = step_chunk_size(c, in);
            break;
        case ST_CHUNK_DATA:
            rc = step_chunk_data(c, in);
            break;
        case ST_CHUNK_END:
            rc = step_chunk_end(c, in);
            break;
        case ST_TRAILER:
            rc = step_trailer(c, in);
            break;
        default:
            rc = STEP_MORE;
            break;
        }
    }
    if (rc >= 400)
        fail_request(c, rc);
}

static int reading_request(const struct conn *c)
{
    return c->state <= ST_TRAILER;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (reading_request(c))
        process_input(c);
    else if (c->state == ST_LINGER)
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

/* The close reply has been sent: half-close and discard input until the peer closes. */
static void linger_close(struct conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);

    if (c->peer_eof || shutdown(fd, SHUT_WR) != 0) {
        free_conn(c);
        return;
    }
    c->state = ST_LINGER;
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    arm_timer(c, LINGER_S);
    bufferevent_enable(c->bev, EV_READ);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->state == ST_CLOSING)
        linger_close(c);
    else if (c->state == ST_DRAIN)
        resume_reading(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    if (!(what & BEV_EVENT_EOF) || (what & BEV_EVENT_ERROR) || c->state == ST_LINGER) {
        free_conn(c);
        return;
    }
    /* EOF: finish what is buffered, send what is queued, then close */
    c->peer_eof = 1;
    bufferevent_disable(bev, EV_READ);
    if (reading_request(c) && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        process_input(c);
    if (c->state == ST_WAIT)
        return;
    if (c->state != ST_CLOSING) {
        c->state = ST_CLOSING;
        arm_timer(c, c->h->lim.read_timeout_s);
    }
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        free_conn(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    cg_log(CG_LOG_DEBUG, "http %s: timeout", c->peer);
    free_conn(c);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
        snprintf(out, n, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
        snprintf(out, n, "[%s]:%u", ip, port);
    } else {
        snprintf(out, n, "?:0");
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    struct cg_http *h = arg;
    struct conn *c = NULL;
    int one = 1;

    (void)l;
    (void)salen;
    if (h->nconns >= h->lim.max_connections || h->stopping) {
        ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        evutil_closesocket(fd);
        goto out;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        goto out;
    }
    c->h = h;
    c->bev = bufferevent_socket_new(h->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        goto out;
    }
    c->timer = evtimer_new(h->base, on_timeout, c);
    if (c->timer == NULL) {
        bufferevent_free(c->bev);
        free(c);
        goto out;
    }
    format_addr(sa, c->peer, sizeof(c->peer));
    reset_request(c);
    c->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    arm_timer(c, h->lim.idle_timeout_s);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
out:
    return;
}

/* ---------------------------------------------------------------------------------------- */
/* public                                                                                   */

struct cg_http *cg_http_new(struct event_base *base, int kind,
                            const struct cg_transport_limits *limits, const char *root_alias,
                            cg_request_cb cb, void *arg)
{
    struct cg_http *h = NULL;

    if (base == NULL || cb == NULL)
        goto out;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        goto out;
    h->base = base;
    h->kind = kind;
    h->cb = cb;
    h->arg = arg;
    if (limits != NULL)
        h->lim = *limits;
    if (h->lim.max_body_bytes == 0)
        h->lim.max_body_bytes = DEFAULT_MAX_BODY;
    if (h->lim.max_header_bytes == 0)
        h->lim.max_header_bytes = DEFAULT_MAX_HEADER;
    if (h->lim.idle_timeout_s <= 0)
        h->lim.idle_timeout_s = DEFAULT_IDLE_S;
    if (h->lim.read_timeout_s <= 0)
        h->lim.read_timeout_s = DEFAULT_READ_S;
    if (h->lim.max_connections <= 0)
        h->lim.max_connections = DEFAULT_MAX_CONN;
    if (root_alias != NULL) {
        h->root_alias = strdup(root_alias);
        if (h->root_alias == NULL) {
            cg_http_free(h);
            h = NULL;
        }
    }
out:
    return h;
}

/* "host:port" or "[v6]:port" → resolved address (new). @return CG_OK or CG_EINVAL */
static int parse_hostport(const char *hostport, struct addrinfo **out)
{
    int rc = CG_EINVAL;
    char host[256];
    const char *port, *colon;
    size_t hl;
    struct addrinfo hints;
    char *end = NULL;
    long pn;

    *out = NULL;
    if (hostport == NULL)
        goto out;
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        if (close == NULL || close[1] != ':')
            goto out;
        hl = (size_t)(close - hostport - 1);
        if (hl == 0 || hl >= sizeof(host))
            goto out;
        memcpy(host, hostport + 1, hl);
        port = close + 2;
    } else {
        colon = strrchr(hostport, ':');
        if (colon == NULL)
            goto out;
        hl = (size_t)(colon - hostport);
        if (hl >= sizeof(host) || memchr(hostport, ':', hl) != NULL)
            goto out;
        memcpy(host, hostport, hl);
        port = colon + 1;
    }
    host[hl] = '\0';
    if (hl == 0 || strcmp(host, "*") == 0)
        snprintf(host, sizeof(host), "0.0.0.0");
    if (*port == '\0' || strspn(port, "0123456789") != strlen(port))
        goto out;
    pn = strtol(port, &end, 10);
    if (pn < 0 || pn > 65535)
        goto out;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, out) != 0) {
        *out = NULL;
        goto out;
    }
    rc = CG_OK;
out:
    return rc;
}

int cg_http_bind(struct cg_http *h, const char *hostport, char *bound, size_t boundlen)
{
    int rc = CG_EINVAL;
    struct addrinfo *ai = NULL;
    struct evconnlistener *l = NULL, **grown;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    unsigned flags =
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    char name[PEER_LEN];

    if (h == NULL)
        goto out;
    rc = parse_hostport(hostport, &ai);
    if (rc != CG_OK)
        goto out;
    if (ai->ai_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    rc = CG_EIO;
    l = evconnlistener_new_bind(h->base, on_accept, h, flags, SOMAXCONN, ai->ai_addr,
                                (int)ai->ai_addrlen);
    if (l == NULL) {
        cg_log(CG_LOG_ERROR, "http: cannot listen on %s", hostport);
        goto out;
    }
    if (h->stopping)
        evconnlistener_disable(l);
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &sl) != 0)
        goto out;
    format_addr((const struct sockaddr *)&ss, name, sizeof(name));
    if (bound != NULL && boundlen > 0) {
        rc = CG_EINVAL;
        if ((size_t)snprintf(bound, boundlen, "%s", name) >= boundlen)
            goto out;
    }
    rc = CG_ENOMEM;
    grown = realloc(h->listeners, sizeof(*grown) * (size_t)(h->nlisteners + 1));
    if (grown == NULL)
        goto out;
    h->listeners = grown;
    h->listeners[h->nlisteners++] = l;
    l = NULL;
    rc = CG_OK;
out:
    if (l != NULL)
        evconnlistener_free(l);
    if (ai != NULL)
        freeaddrinfo(ai);
    return rc;
}

void cg_http_stop_accepting(struct cg_http *h)
{
    struct conn *c, *next;

    if (h == NULL)
        return;
    h->stopping = 1;
    for (int i = 0; i < h->nlisteners; i++)
        evconnlistener_disable(h->listeners[i]);
    for (c = h->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == ST_HEAD && !c->started)
            free_conn(c);
        else if (c->state == ST_DRAIN)
            begin_close(c);
    }
}

int cg_http_connections(const struct cg_http *h)
{
    return h != NULL ? h->nconns : 0;
}

void cg_http_free(struct cg_http *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < h->nlisteners; i++)
        evconnlistener_free(h->listeners[i]);
    free(h->listeners);
    while (h->conns != NULL)
        free_conn(h->conns);
    free(h->root_alias);
    free(h);
}
