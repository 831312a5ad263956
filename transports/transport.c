/*
 * transport.c - what HTTP and TCP share: struct cg_request, the one object a transport hands
 * to the gateway, and the listeners and connection list below both protocols.
 *
 * DESIGN: the request owns its strings and body; it borrows its connection through a
 * pointer plus an ops table, so HTTP and TCP share the object and cg_request_reply() only
 * dispatches. When the connection closes it calls cg_request_detach_(), after which the
 * request is orphaned and a reply is dropped.
 * A struct cg_server binds listeners, accepts within max_connections (a connection over the
 * cap or after stop-accepting is closed at once, after the class's busy bytes), sets up each
 * connection's bufferevent, timer and peer address, and keeps the connections in a list
 * so that stop-accepting and free reach them all. What a connection reads and writes is the
 * transport's business, through its struct cg_conn_class; this file only arms the timer
 * (whose expiry frees the connection), does the lingering close after a final reply, and
 * frees. Everything runs on the loop thread.
 */
#include "transport_local.h"

#include "cg_err.h"
#include "cg_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define DEFAULT_MAX_BODY 1048576
#define DEFAULT_MAX_HEADER 16384
#define DEFAULT_IDLE_S 60
#define DEFAULT_READ_S 30
#define DEFAULT_MAX_CONN 4096
#define MAX_OUTPUT_PENDING 262144 /* unsent replies before a connection stops reading */
#define LINGER_S 2                /* discard late input after a final reply, at most this long */

struct cg_request {
    int kind;
    char *method;
    char *path;
    char *alias; /* NULL: not a CMP path */
    char *op;    /* NULL: no RFC 9811 operation segment */
    char *peer;
    uint8_t *body;
    size_t len;
    const struct cg_conn_ops *ops;
    void *conn; /* NULL once orphaned */
};

/* The request and its five strings in one allocation: the strings follow the struct. */
struct cg_request *cg_request_new_(int kind, const char *method, const char *path,
                                   const char *alias, const char *op, const char *peer,
                                   uint8_t *body, size_t len, const struct cg_conn_ops *ops,
                                   void *conn)
{
    const char *src[5] = {method ? method : "", path ? path : "", alias, op, peer ? peer : ""};
    size_t n[5], total = sizeof(struct cg_request);
    for (int i = 0; i < 5; i++) {
        n[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0;
        total += n[i];
    }
    struct cg_request *req = calloc(1, total);
    if (req == NULL) {
        free(body);
        return NULL;
    }
    char *dst[5], *p = (char *)(req + 1);
    for (int i = 0; i < 5; i++) {
        dst[i] = src[i] != NULL ? memcpy(p, src[i], n[i]) : NULL;
        p += n[i];
    }
    req->kind = kind;
    req->method = dst[0];
    req->path = dst[1];
    req->alias = dst[2];
    req->op = dst[3];
    req->peer = dst[4];
    req->body = body;
    req->len = len;
    req->ops = ops;
    req->conn = conn;
    return req;
}

void cg_request_detach_(struct cg_request *req)
{
    if (req != NULL)
        req->conn = NULL;
}

void cg_request_free_(struct cg_request *req)
{
    if (req == NULL)
        return;
    free(req->body);
    free(req); /* and its strings */
}

int cg_request_kind(const struct cg_request *req)
{
    return req->kind;
}

const char *cg_request_method(const struct cg_request *req)
{
    return req->method;
}

const char *cg_request_path(const struct cg_request *req)
{
    return req->path;
}

const char *cg_request_alias(const struct cg_request *req)
{
    return req->alias;
}

const char *cg_request_op(const struct cg_request *req)
{
    return req->op;
}

const char *cg_request_peer(const struct cg_request *req)
{
    return req->peer;
}

const uint8_t *cg_request_body(const struct cg_request *req, size_t *len)
{
    if (len != NULL)
        *len = req->len;
    return req->body != NULL ? req->body : (const uint8_t *)"";
}

int cg_request_orphaned(const struct cg_request *req)
{
    return req->conn == NULL;
}

void cg_request_reply(struct cg_request *req, int status, const char *content_type,
                      const uint8_t *body, size_t len)
{
    if (req == NULL)
        return;
    if (req->conn != NULL && req->ops != NULL && req->ops->reply != NULL)
        req->ops->reply(req->conn, req, status, content_type, body, len);
    cg_request_free_(req);
}

/* ---------------------------------------------------------------------------------------- */
/* connections                                                                              */

void transport_arm_timer_(struct cg_conn *c, int seconds)
{
    struct timeval tv = {seconds, 0};

    evtimer_add(c->timer, &tv);
}

void transport_send_(struct cg_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int n = 0;

    if (evbuffer_get_length(out) > 0) {
        /* a bufferevent keeps the front of its output frozen for its own writes */
        evbuffer_unfreeze(out, 1);
        errno = 0;
        n = evbuffer_write(out, bufferevent_getfd(c->bev));
        evbuffer_freeze(out, 1);
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        /* leave the error to the bufferevent: its write fails the same way and reports it */
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(c->bev, EV_WRITE);
    else
        bufferevent_trigger(c->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void transport_read_busy_(struct cg_conn *c)
{
    bufferevent_disable(c->bev, EV_READ);
}

void transport_write_done_(struct cg_conn *c)
{
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        bufferevent_disable(c->bev, EV_WRITE);
}

void transport_discard_input_(struct cg_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    evbuffer_drain(in, evbuffer_get_length(in));
}

void transport_conn_free_(struct cg_conn *c)
{
    struct cg_server *s = c->srv;

    if (c->req != NULL)
        cg_request_detach_(c->req);
    c->req = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    if (s->cls->release != NULL)
        s->cls->release(c);
    bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
}

void transport_hand_over_(struct cg_conn *c, struct cg_request *req, cg_request_cb cb, void *arg)
{
    c->req = req;
    /* reading stays enabled (no epoll_ctl per request): a class's on_read disables it when
     * bytes arrive before the reply (transport_read_busy_) */
    evtimer_del(c->timer);
    cb(req, arg);
}

int transport_check_output_(struct cg_conn *c)
{
    int rc = CG_OK;

    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > MAX_OUTPUT_PENDING) {
        transport_arm_timer_(c, c->srv->lim.idle_timeout_s);
        rc = CG_EFULL;
    }
    return rc;
}

int transport_eof_(struct cg_conn *c, short what, int lingering)
{
    int rc = CG_ECLOSED;

    if (!(what & BEV_EVENT_EOF) || (what & BEV_EVENT_ERROR) || lingering) {
        transport_conn_free_(c);
        goto out;
    }
    c->peer_eof = 1;
    bufferevent_disable(c->bev, EV_READ);
    rc = CG_OK;
out:
    return rc;
}

int transport_linger_(struct cg_conn *c)
{
    int rc = CG_ECLOSED;
    evutil_socket_t fd = bufferevent_getfd(c->bev);

    if (c->peer_eof || shutdown(fd, SHUT_WR) != 0) {
        transport_conn_free_(c);
        goto out;
    }
    transport_discard_input_(c);
    transport_arm_timer_(c, LINGER_S);
    bufferevent_enable(c->bev, EV_READ);
    rc = CG_OK;
out:
    return rc;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct cg_conn *c = arg;

    (void)fd;
    (void)what;
    cg_log(CG_LOG_DEBUG, "%s %s: timeout", c->srv->cls->name, c->peer);
    transport_conn_free_(c);
}

/* "ip:port" or "[v6]:port" of sa into out (n bytes, truncated); "?:0" if unknown. */
static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
    } else {
        snprintf(out, n, "?:0");
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct cg_server *s = arg;
    const struct cg_conn_class *cls = s->cls;
    struct cg_conn *c = NULL;
    int one = 1;

    (void)l;
    (void)salen;
    if (s->nconns >= s->lim.max_connections || s->stopping) {
        if (cls->busy != NULL) {
            ssize_t w = send(fd, cls->busy, strlen(cls->busy), MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
        }
        evutil_closesocket(fd);
        goto out;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, cls->size);
    if (c == NULL) {
        evutil_closesocket(fd);
        goto out;
    }
    c->srv = s;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        goto out;
    }
    c->timer = evtimer_new(s->base, on_timeout, c);
    if (c->timer == NULL) {
        bufferevent_free(c->bev);
        free(c);
        goto out;
    }
    format_addr(sa, c->peer, sizeof(c->peer));
    cls->init(c);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    bufferevent_setcb(c->bev, cls->on_read, cls->on_write, cls->on_event, c);
    transport_arm_timer_(c, s->lim.idle_timeout_s);
    bufferevent_enable(c->bev, EV_READ); /* writing: see transport_send_ */
out:
    return;
}

/* ---------------------------------------------------------------------------------------- */
/* listeners                                                                                */

void transport_server_init_(struct cg_server *s, struct event_base *base,
                            const struct cg_conn_class *cls,
                            const struct cg_transport_limits *limits)
{
    s->base = base;
    s->cls = cls;
    if (limits != NULL)
        s->lim = *limits;
    if (s->lim.max_body_bytes == 0)
        s->lim.max_body_bytes = DEFAULT_MAX_BODY;
    if (s->lim.max_header_bytes == 0)
        s->lim.max_header_bytes = DEFAULT_MAX_HEADER;
    if (s->lim.idle_timeout_s <= 0)
        s->lim.idle_timeout_s = DEFAULT_IDLE_S;
    if (s->lim.read_timeout_s <= 0)
        s->lim.read_timeout_s = DEFAULT_READ_S;
    if (s->lim.max_connections <= 0)
        s->lim.max_connections = DEFAULT_MAX_CONN;
}

void transport_server_clear_(struct cg_server *s)
{
    for (int i = 0; i < s->nlisteners; i++)
        evconnlistener_free(s->listeners[i]);
    free(s->listeners);
    s->listeners = NULL;
    s->nlisteners = 0;
    while (s->conns != NULL)
        transport_conn_free_(s->conns);
}

/* "host:port" or "[v6]:port" → resolved passive address (new). max_port_digits: longest
 * port string accepted, 0 for any. @return CG_OK or CG_EINVAL */
static int parse_hostport(const char *hostport, size_t max_port_digits, struct addrinfo **out)
{
    int rc = CG_EINVAL;
    char host[256];
    const char *port, *colon;
    size_t hl;
    struct addrinfo hints;
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
    if (*port == '\0' || (max_port_digits > 0 && strlen(port) > max_port_digits) ||
        strspn(port, "0123456789") != strlen(port))
        goto out;
    pn = strtol(port, NULL, 10);
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

int transport_listen_(struct cg_server *s, const char *hostport, size_t max_port_digits,
                      char *bound, size_t boundlen)
{
    int rc;
    struct addrinfo *ai = NULL;
    struct evconnlistener *l = NULL, **grown;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    unsigned flags =
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    char name[CG_PEER_LEN];

    rc = parse_hostport(hostport, max_port_digits, &ai);
    if (rc != CG_OK)
        goto out;
    if (ai->ai_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    rc = CG_EIO;
    l = evconnlistener_new_bind(s->base, on_accept, s, flags, SOMAXCONN, ai->ai_addr,
                                (int)ai->ai_addrlen);
    if (l == NULL) {
        cg_log(CG_LOG_ERROR, "%s: cannot listen on %s", s->cls->name, hostport);
        goto out;
    }
    if (s->stopping)
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
    grown = realloc(s->listeners, sizeof(*grown) * (size_t)(s->nlisteners + 1));
    if (grown == NULL)
        goto out;
    s->listeners = grown;
    s->listeners[s->nlisteners++] = l;
    l = NULL;
    rc = CG_OK;
out:
    if (l != NULL)
        evconnlistener_free(l);
    if (ai != NULL)
        freeaddrinfo(ai);
    return rc;
}

void transport_stop_accepting_(struct cg_server *s)
{
    struct cg_conn *c, *next;

    s->stopping = 1;
    for (int i = 0; i < s->nlisteners; i++)
        evconnlistener_disable(s->listeners[i]);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        s->cls->stop(c);
    }
}
