/*
 * http.c - the HTTP/1.0 and 1.1 listener: accept, frame one request, hand it over, write
 * the reply.
 *
 * DESIGN: libevent core only (bufferevent, evbuffer, one timer per connection); no evhttp.
 * Listening, accepting within max_connections (over the cap, or after stop-accepting, a
 * 503 is sent and the connection closed), the connection list, the timer, the lingering
 * close and the free are transport.c's (struct cg_server, struct cg_conn); this file is the
 * HTTP state machine. Each connection is driven by the bufferevent's input buffer:
 *   HEAD  request line and header lines, read line by line (only the few headers that matter
 *         are kept), at most max_header_bytes in all, else 431 and close;
 *   BODY  Content-Length bytes left in the input buffer until all have arrived (the length
 *         is checked against max_body_bytes before anything is buffered), or chunked data
 *         moved chunk by chunk into a body evbuffer (each chunk size checked first);
 *   WAIT  the request was handed to the gateway: reading is disabled and no timer runs
 *         until cg_request_reply() writes the answer;
 *   DRAIN a keep-alive reply is large and unread: resume only when it has been sent;
 *   CLOSING the last reply is queued: when the output has drained, the write side is shut
 *         down and the connection lingers (LINGER, input discarded, at most LINGER_S of
 *         transport.c) until the peer closes, so unread request bytes do not turn the close
 *         into a reset that would destroy the reply before the client reads it.
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

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#define MAX_CHUNK_LINE 1024 /* chunk-size line with extensions */
#define MAX_ALIAS 64
#define MAX_PORT_DIGITS 0 /* any: leading zeros are accepted */

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
    struct cg_conn io; /* first: socket, timer, list, request, peer */
    struct cg_http *h;
    struct evbuffer *chunks; /* chunked body so far (NULL otherwise) */
    char *method;            /* of the request being read */
    char *target;
    char *path, *alias, *op; /* its route (finish_head), handed to the request */
    size_t head_bytes;       /* request line + headers (+ trailers) consumed */
    size_t body_len;         /* Content-Length, or chunked bytes so far */
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
};

struct cg_http {
    struct cg_server srv; /* first: listeners, limits, connections */
    int kind;
    char *root_alias;
    cg_request_cb cb;
    void *arg;
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

static void reset_request(struct conn *c)
{
    free(c->method);
    free(c->target);
    free(c->path);
    free(c->alias);
    free(c->op);
    c->method = c->target = c->path = c->alias = c->op = NULL;
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

static void init_conn(struct cg_conn *io)
{
    struct conn *c = (struct conn *)io;

    c->h = (struct cg_http *)io->srv;
    reset_request(c);
}

static void release_conn(struct cg_conn *io)
{
    reset_request((struct conn *)io);
}

/* The reply (or error) is queued: close once it has been sent, bounded by a timer. */
static void begin_close(struct conn *c)
{
    c->state = ST_CLOSING;
    bufferevent_disable(c->io.bev, EV_READ);
    transport_arm_timer_(&c->io, c->h->srv.lim.read_timeout_s);
}

static int keep_alive(const struct conn *c)
{
    if (c->conn_close || c->h->srv.stopping)
        return 0;
    /* after the peer's EOF, requests it sent before are still answered */
    if (c->io.peer_eof && evbuffer_get_length(bufferevent_get_input(c->io.bev)) == 0)
        return 0;
    return c->minor >= 1 ? 1 : c->conn_keep;
}

/* A reply's header line by line (its parts are short constants and numbers). */
struct head {
    char buf[512];
    size_t n;
};

static void head_put(struct head *h, const char *s)
{
    size_t k = strlen(s);
    if (k < sizeof(h->buf) - h->n) { /* always, for the parts written here */
        memcpy(h->buf + h->n, s, k);
        h->n += k;
    }
}

static void head_num(struct head *h, size_t v)
{
    char num[24];
    size_t k = sizeof(num) - 1;
    num[k] = '\0';
    do {
        num[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    head_put(h, num + k);
}

static void write_reply(struct conn *c, int status, const char *content_type, const uint8_t *body,
                        size_t len, int close)
{
    struct evbuffer *out = bufferevent_get_output(c->io.bev);
    struct head h;
    h.n = 0;

    if (content_type == NULL)
        content_type = status == 200 ? "application/pkixcmp" : (len > 0 ? "text/plain" : NULL);
    /* written by hand: three evbuffer_add_printf calls were most of a reply's CPU here */
    head_put(&h, "HTTP/1.1 ");
    head_num(&h, (size_t)status);
    head_put(&h, " ");
    head_put(&h, reason_phrase(status));
    if (content_type != NULL) {
        head_put(&h, "\r\nContent-Type: ");
        head_put(&h, content_type);
    }
    head_put(&h, "\r\nContent-Length: ");
    head_num(&h, len);
    if (status == 405)
        head_put(&h, "\r\nAllow: POST");
    if (close)
        head_put(&h, "\r\nConnection: close");
    else if (c->minor == 0)
        head_put(&h, "\r\nConnection: keep-alive");
    head_put(&h, "\r\n\r\n");
    evbuffer_add(out, h.buf, h.n);
    if (len > 0 && body != NULL && !c->is_head)
        evbuffer_add(out, body, len);
    transport_send_(&c->io);
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

    cg_log(CG_LOG_DEBUG, "http %s: %d %s", c->io.peer, status, reason_phrase(status));
    write_reply(c, status, NULL, (const uint8_t *)text, strlen(text), 1);
    begin_close(c);
}

/* Ready for the next request: parse what is already buffered, on a deferred callback. */
static void resume_reading(struct conn *c)
{
    c->state = ST_HEAD;
    transport_arm_timer_(&c->io, c->h->srv.lim.idle_timeout_s);
    if (!c->io.peer_eof)
        bufferevent_enable(c->io.bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->io.bev)) > 0 || c->io.peer_eof)
        bufferevent_trigger(c->io.bev, EV_READ,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void reply_conn(void *conn, struct cg_request *req, int status, const char *content_type,
                       const uint8_t *body, size_t len)
{
    struct conn *c = conn;
    int keep = keep_alive(c);

    (void)req;
    c->io.req = NULL;
    write_reply(c, status, content_type, body, len, !keep);
    if (!keep) {
        begin_close(c);
        return;
    }
    reset_request(c);
    if (transport_check_output_(&c->io) == CG_EFULL) {
        c->state = ST_DRAIN;
        return;
    }
    resume_reading(c);
}

/* Hand the complete request (routed by finish_head) to the gateway; body (malloc'd) is
 * stolen. */
static int dispatch_request(struct conn *c, uint8_t *body, size_t len)
{
    int rc = 500;
    struct cg_http *h = c->h;
    struct cg_request *req = cg_request_new_(h->kind, c->method, c->path, c->alias, c->op,
                                             c->io.peer, body, len, &http_ops, c);

    if (req == NULL)
        goto out;
    c->state = ST_WAIT;
    rc = STEP_MORE;
    transport_hand_over_(&c->io, req, h->cb, h->arg); /* may reply at once */
out:
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
    int cmp;

    if (normalize_path(c->target, &c->path) != CG_OK)
        goto out;
    cmp = route_path(c->path, h->root_alias, &c->alias, &c->op);
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
        if (c->body_len > h->srv.lim.max_body_bytes) {
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
    if (c->expect && c->minor >= 1 && (c->chunked || c->body_len > 0)) {
        evbuffer_add_printf(bufferevent_get_output(c->io.bev), "HTTP/1.1 100 Continue\r\n\r\n");
        transport_send_(&c->io);
    }
    rc = STEP_NEXT;
out:
    return rc;
}

/* A line read by read_line: in small when it fits (most header lines do), else on the heap. */
struct line {
    char *s;
    char small[256];
};

static void line_free(struct line *l)
{
    if (l->s != l->small)
        free(l->s);
    l->s = NULL;
}

/* Read the next complete line within the header budget into l (l->s NULL: need more).
 * @return STEP_NEXT, STEP_MORE, 400 or 431 */
static int read_line(struct conn *c, struct evbuffer *in, size_t budget, int too_big,
                     struct line *l)
{
    int rc = too_big;
    size_t eol_len = 0, n;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

    l->s = NULL;
    if (p.pos < 0) {
        if (c->head_bytes + evbuffer_get_length(in) > budget)
            goto out;
        rc = STEP_MORE;
        goto out;
    }
    n = (size_t)p.pos;
    if (c->head_bytes + n + eol_len > budget)
        goto out;
    l->s = n < sizeof(l->small) ? l->small : malloc(n + 1);
    if (l->s == NULL) {
        rc = 500;
        goto out;
    }
    if (evbuffer_remove(in, l->s, n) != (int)n || evbuffer_drain(in, eol_len) != 0) {
        line_free(l);
        rc = 500;
        goto out;
    }
    l->s[n] = '\0';
    c->head_bytes += n + eol_len;
    rc = STEP_NEXT;
    if (memchr(l->s, '\0', n) != NULL) {
        line_free(l);
        rc = 400;
    }
out:
    return rc;
}

static int step_head(struct conn *c, struct evbuffer *in)
{
    int rc;
    struct line l;
    char *line;

    rc = read_line(c, in, c->h->srv.lim.max_header_bytes, 431, &l);
    if (rc != STEP_NEXT)
        goto out;
    line = l.s;
    if (!c->has_line) {
        if (line[0] == '\0') {
            /* empty lines before a request line are tolerated (RFC 9112 2.2) */
            if (evbuffer_get_length(in) == 0) {
                c->started = 0;
                transport_arm_timer_(&c->io, c->h->srv.lim.idle_timeout_s);
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
    line_free(&l);
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
    struct line l;
    char *p;
    size_t size = 0;
    size_t saved = c->head_bytes;

    /* the chunk-size line has its own small budget */
    c->head_bytes = 0;
    rc = read_line(c, in, MAX_CHUNK_LINE, 400, &l);
    c->head_bytes = saved;
    if (rc != STEP_NEXT)
        goto out;
    rc = 400;
    p = l.s;
    if (!isxdigit((unsigned char)*p))
        goto out;
    for (; isxdigit((unsigned char)*p); p++) {
        int d = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
        if (size > c->h->srv.lim.max_body_bytes) {
            rc = 413;
            goto out;
        }
        size = size * 16 + (size_t)d;
    }
    p += strspn(p, " \t");
    if (*p != '\0' && *p != ';')
        goto out;
    if (size > c->h->srv.lim.max_body_bytes - c->body_len) {
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
    line_free(&l);
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
    struct line l;
    uint8_t *body = NULL;
    size_t len = c->body_len;

    rc = read_line(c, in, c->h->srv.lim.max_header_bytes, 431, &l);
    if (rc != STEP_NEXT || l.s[0] != '\0')
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
    line_free(&l);
    return rc;
}

static void process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->io.bev);
    int rc = STEP_NEXT;

    while (rc == STEP_NEXT) {
        if (c->state == ST_HEAD && !c->started && evbuffer_get_length(in) > 0) {
            c->started = 1;
            transport_arm_timer_(&c->io, c->h->srv.lim.read_timeout_s);
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

/* The peer has closed its side: answer the complete requests that are buffered, send what
 * is queued, then close. */
static void finish_after_eof(struct conn *c)
{
    if (reading_request(c) && evbuffer_get_length(bufferevent_get_input(c->io.bev)) > 0)
        process_input(c);
    if (c->state == ST_WAIT)
        return; /* its reply closes or reads on (keep_alive) */
    if (c->state != ST_CLOSING) {
        c->state = ST_CLOSING;
        transport_arm_timer_(&c->io, c->h->srv.lim.read_timeout_s);
    }
    if (evbuffer_get_length(bufferevent_get_output(c->io.bev)) == 0)
        transport_conn_free_(&c->io);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (reading_request(c) && c->io.peer_eof)
        finish_after_eof(c); /* resumed after the peer's EOF (resume_reading) */
    else if (reading_request(c))
        process_input(c);
    else if (c->state == ST_LINGER)
        transport_discard_input_(&c->io);
    else
        transport_read_busy_(&c->io); /* pipelined bytes: read after the reply */
}

/* The close reply has been sent: half-close and discard input until the peer closes. */
static void linger_close(struct conn *c)
{
    if (transport_linger_(&c->io) == CG_OK)
        c->state = ST_LINGER;
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    transport_write_done_(&c->io);
    if (c->state == ST_CLOSING)
        linger_close(c);
    else if (c->state == ST_DRAIN)
        resume_reading(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (transport_eof_(&c->io, what, c->state == ST_LINGER) != CG_OK)
        return;
    finish_after_eof(c);
}

/* Stop accepting: a connection before its first request byte goes now, a draining one
 * closes once its reply is sent. */
static void stop_conn(struct cg_conn *io)
{
    struct conn *c = (struct conn *)io;

    if (c->state == ST_HEAD && !c->started)
        transport_conn_free_(io);
    else if (c->state == ST_DRAIN)
        begin_close(c);
}

static const struct cg_conn_class http_class = {
    .name = "http",
    .size = sizeof(struct conn),
    .busy = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    .init = init_conn,
    .release = release_conn,
    .stop = stop_conn,
    .on_read = on_read,
    .on_write = on_write,
    .on_event = on_event,
};

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
    transport_server_init_(&h->srv, base, &http_class, limits);
    h->kind = kind;
    h->cb = cb;
    h->arg = arg;
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

int cg_http_bind(struct cg_http *h, const char *hostport, char *bound, size_t boundlen)
{
    int rc = CG_EINVAL;

    if (h == NULL)
        goto out;
    rc = transport_listen_(&h->srv, hostport, MAX_PORT_DIGITS, bound, boundlen);
out:
    return rc;
}

void cg_http_stop_accepting(struct cg_http *h)
{
    if (h != NULL)
        transport_stop_accepting_(&h->srv);
}

int cg_http_connections(const struct cg_http *h)
{
    return h != NULL ? h->srv.nconns : 0;
}

void cg_http_free(struct cg_http *h)
{
    if (h == NULL)
        return;
    transport_server_clear_(&h->srv);
    free(h->root_alias);
    free(h);
}
