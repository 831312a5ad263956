/*
 * tcp.c - the CMP-over-TCP listener: accept, cut one frame, hand it over, write the answer.
 *
 * DESIGN: libevent core only (evconnlistener, bufferevent, evbuffer, one timer per
 * connection), the same shape as http.c. Each connection is a small state machine driven by
 * the bufferevent's input buffer:
 *   READ  bytes are left in the input buffer until tcp_frame.h says a frame is complete; the
 *         header (at most 7 bytes) is copied out and parsed first, so the length is checked
 *         against max_body_bytes before any payload is waited for;
 *   WAIT  the request was handed to the gateway: reading is disabled and no timer runs
 *         until cg_request_reply() writes the answer;
 *   DRAIN a keep-open answer is large and unread: resume only when it has been sent;
 *   CLOSING the last answer (or error frame) is queued: when the output has drained, the
 *         write side is shut down and the connection lingers (LINGER, input discarded, at
 *         most LINGER_S) until the peer closes, so unread bytes do not turn the close into a
 *         reset that destroys the answer before the client reads it.
 * One frame at a time: frames that a client sends back to back stay in the input buffer and
 * are cut after the answer (through a deferred read callback, so a synchronous reply never
 * recurses), also after the peer's EOF. The timer is the idle timeout between frames, the
 * read timeout from the first byte of a frame until it is complete, and a drain limit while
 * closing. A connection never frees itself inside a call that the gateway made. Everything
 * runs on the loop thread of the event_base.
 */
#include "cg_tcp.h"

#include "cg_err.h"
#include "cg_log.h"
#include "tcp_frame.h"
#include "transport_local.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define DEFAULT_MAX_BODY 1048576
#define DEFAULT_IDLE_S 60
#define DEFAULT_READ_S 30
#define DEFAULT_MAX_CONN 4096
#define MAX_OUTPUT_PENDING 262144 /* unread answers before we stop reading frames */
#define LINGER_S 2                /* discard late input after a closing answer, at most this long */
#define PEER_LEN 64

enum conn_state { ST_READ = 0, ST_WAIT, ST_DRAIN, ST_CLOSING, ST_LINGER };

struct conn {
    struct cg_tcp *t;
    struct bufferevent *bev;
    struct event *timer;
    struct conn *prev, *next;
    struct cg_request *req; /* handed to the gateway, not yet replied */
    enum conn_state state;
    int form;               /* CG_TCP_FORM_* of the request in progress */
    unsigned close_bit : 1; /* version-10 request asked to close after the answer */
    unsigned started : 1;   /* first byte of the current frame seen */
    unsigned peer_eof : 1;
    char peer[PEER_LEN];
};

struct cg_tcp {
    struct event_base *base;
    struct cg_transport_limits lim;
    char *alias;
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

static const struct cg_conn_ops tcp_ops = {reply_conn};

/* ---------------------------------------------------------------------------------------- */
/* connections                                                                              */

static void arm_timer(struct conn *c, int seconds)
{
    struct timeval tv = {seconds, 0};

    evtimer_add(c->timer, &tv);
}

static void free_conn(struct conn *c)
{
    struct cg_tcp *t = c->t;

    if (c->req != NULL)
        cg_request_detach_(c->req);
    c->req = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    t->nconns--;
    bufferevent_free(c->bev);
    event_free(c->timer);
    free(c);
}

/* The answer (or error frame) is queued: close once it has been sent, bounded by a timer. */
static void begin_close(struct conn *c)
{
    c->state = ST_CLOSING;
    bufferevent_disable(c->bev, EV_READ);
    arm_timer(c, c->t->lim.read_timeout_s);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) /* nothing will call on_write */
        bufferevent_trigger(c->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Queue one frame: header of form/type/flags, then len bytes of body. */
static void write_frame(struct conn *c, int form, int type, int flags, const uint8_t *body,
                        size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint8_t hdr[CG_TCP_MAX_HEADER];
    int n = cg_tcp_frame_header(hdr, form, type, flags, len);

    if (n <= 0)
        return;
    evbuffer_add(out, hdr, (size_t)n);
    if (len > 0)
        evbuffer_add(out, body, len);
}

/* The error frame of form (finRep for version 10 and an unknown form, errorMsgRep for RFC
 * 2510), one-byte payload 0x00, then close. */
static void fail_conn(struct conn *c, int form, const char *why)
{
    static const uint8_t zero = 0;

    cg_log(CG_LOG_DEBUG, "tcp %s: %s, closing", c->peer, why);
    if (form == CG_TCP_FORM_2510)
        write_frame(c, CG_TCP_FORM_2510, CG_TCP_2510_ERRORMSGREP, 0, &zero, 1);
    else
        write_frame(c, CG_TCP_FORM_V10, CG_TCP_V10_FINREP, CG_TCP_FLAG_CLOSE, &zero, 1);
    begin_close(c);
}

/* Ready for the next frame: cut what is already buffered, on a deferred callback. */
static void resume_reading(struct conn *c)
{
    c->state = ST_READ;
    c->started = 0;
    c->close_bit = 0;
    c->form = CG_TCP_FORM_UNKNOWN;
    arm_timer(c, c->t->lim.idle_timeout_s);
    if (!c->peer_eof)
        bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 || c->peer_eof)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void reply_conn(void *conn, struct cg_request *req, int status, const char *content_type,
                       const uint8_t *body, size_t len)
{
    struct conn *c = conn;
    int keep = !c->close_bit && !c->t->stopping;

    (void)req;
    (void)content_type;
    c->req = NULL;
    if (status != 200) {
        char why[48];
        snprintf(why, sizeof(why), "gateway status %d", status);
        fail_conn(c, c->form, why);
        return;
    }
    if (c->peer_eof && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        keep = 0; /* nothing more can come */
    if (c->form == CG_TCP_FORM_2510)
        write_frame(c, CG_TCP_FORM_2510, CG_TCP_2510_FINALMSGREP, 0, body, len);
    else
        write_frame(c, CG_TCP_FORM_V10, CG_TCP_V10_PKIREP, keep ? 0 : CG_TCP_FLAG_CLOSE, body, len);
    if (!keep) {
        begin_close(c);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > MAX_OUTPUT_PENDING) {
        c->state = ST_DRAIN;
        arm_timer(c, c->t->lim.idle_timeout_s);
        return;
    }
    resume_reading(c);
}

/* A complete request frame: copy the payload, drain the frame, hand it to the gateway. */
static void dispatch_frame(struct conn *c, struct evbuffer *in, const struct cg_tcp_frame *f)
{
    struct cg_tcp *t = c->t;
    uint8_t *body = NULL;
    struct cg_request *req;

    if (f->payload_len > 0) {
        body = malloc(f->payload_len);
        if (body == NULL) {
            evbuffer_drain(in, f->frame_len);
            fail_conn(c, f->form, "out of memory");
            return;
        }
        memcpy(body, f->payload, f->payload_len);
    }
    evbuffer_drain(in, f->frame_len);
    c->form = f->form;
    c->close_bit = f->form == CG_TCP_FORM_V10 && (f->flags & CG_TCP_FLAG_CLOSE) != 0;
    req = cg_request_new_(CG_TRANSPORT_TCP, "TCP", "", t->alias, NULL, c->peer, body,
                          f->payload_len, &tcp_ops, c);
    if (req == NULL) {
        fail_conn(c, f->form, "out of memory");
        return;
    }
    c->state = ST_WAIT;
    c->req = req;
    bufferevent_disable(c->bev, EV_READ);
    evtimer_del(c->timer);
    t->cb(req, t->arg); /* may reply at once; c stays valid */
}

/* Cut the frame at the head of the input. @return 1 when the caller may go on, 0 to stop. */
static int step_frame(struct conn *c, struct evbuffer *in)
{
    uint8_t hdr[CG_TCP_MAX_HEADER];
    struct cg_tcp_frame f;
    size_t have = evbuffer_get_length(in);
    ev_ssize_t n = evbuffer_copyout(in, hdr, sizeof(hdr));
    int rc;

    if (n < 0) {
        fail_conn(c, CG_TCP_FORM_UNKNOWN, "input buffer error");
        return 0;
    }
    rc = cg_tcp_frame_parse(hdr, (size_t)n, c->t->lim.max_body_bytes, &f);
    if (rc > 0 || (rc == CG_EINCOMPLETE && f.frame_len > 0 && have >= f.frame_len)) {
        /* the whole frame is buffered: parse it again in one piece */
        uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)f.frame_len);
        if (p == NULL) {
            fail_conn(c, f.form, "input buffer error");
            return 0;
        }
        rc = cg_tcp_frame_parse(p, f.frame_len, c->t->lim.max_body_bytes, &f);
    }
    if (rc == CG_EINCOMPLETE) {
        if (c->peer_eof) {
            fail_conn(c, f.form, "truncated frame before EOF");
            return 0;
        }
        return 0;
    }
    if (rc < 0) {
        fail_conn(c, f.form, rc == CG_ETOOBIG ? "frame over max_body_bytes" : "malformed frame");
        return 0;
    }
    if ((f.form == CG_TCP_FORM_V10 && f.type == CG_TCP_V10_PKIREQ) ||
        (f.form == CG_TCP_FORM_2510 && f.type == CG_TCP_2510_PKIMSG)) {
        dispatch_frame(c, in, &f);
        return 0;
    }
    /* a well-formed frame that is no request we serve (pollReq: no polling yet) */
    evbuffer_drain(in, f.frame_len);
    fail_conn(c, f.form, "frame type not served");
    return 0;
}

static void process_input(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    while (c->state == ST_READ && evbuffer_get_length(in) > 0) {
        if (!c->started) {
            c->started = 1;
            arm_timer(c, c->t->lim.read_timeout_s);
        }
        if (!step_frame(c, in))
            break;
    }
    if (c->state == ST_READ && c->peer_eof && evbuffer_get_length(in) == 0) {
        /* the peer is done and nothing is pending: close once the output is sent */
        begin_close(c);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (c->state == ST_READ)
        process_input(c);
    else if (c->state == ST_LINGER)
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

/* The closing answer has been sent: half-close and discard input until the peer closes. */
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

    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
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
    /* EOF: answer the complete frames that are buffered, then close */
    c->peer_eof = 1;
    bufferevent_disable(bev, EV_READ);
    if (c->state == ST_READ) {
        process_input(c);
        return;
    }
    if (c->state == ST_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        free_conn(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    (void)what;
    cg_log(CG_LOG_DEBUG, "tcp %s: timeout", c->peer);
    free_conn(c);
}

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
    struct cg_tcp *t = arg;
    struct conn *c = NULL;
    int one = 1;

    (void)l;
    (void)salen;
    if (t->nconns >= t->lim.max_connections || t->stopping) {
        evutil_closesocket(fd); /* no frame: the client's form is not known yet */
        goto out;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        goto out;
    }
    c->t = t;
    c->bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        goto out;
    }
    c->timer = evtimer_new(t->base, on_timeout, c);
    if (c->timer == NULL) {
        bufferevent_free(c->bev);
        free(c);
        goto out;
    }
    format_addr(sa, c->peer, sizeof(c->peer));
    c->state = ST_READ;
    c->form = CG_TCP_FORM_UNKNOWN;
    c->next = t->conns;
    if (t->conns != NULL)
        t->conns->prev = c;
    t->conns = c;
    t->nconns++;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    arm_timer(c, t->lim.idle_timeout_s);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
out:
    return;
}

/* ---------------------------------------------------------------------------------------- */
/* public                                                                                   */

struct cg_tcp *cg_tcp_new(struct event_base *base, const struct cg_transport_limits *limits,
                          const char *alias, cg_request_cb cb, void *arg)
{
    struct cg_tcp *t = NULL;

    if (base == NULL || cb == NULL || alias == NULL)
        goto out;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        goto out;
    t->base = base;
    t->cb = cb;
    t->arg = arg;
    if (limits != NULL)
        t->lim = *limits;
    if (t->lim.max_body_bytes == 0)
        t->lim.max_body_bytes = DEFAULT_MAX_BODY;
    if (t->lim.idle_timeout_s <= 0)
        t->lim.idle_timeout_s = DEFAULT_IDLE_S;
    if (t->lim.read_timeout_s <= 0)
        t->lim.read_timeout_s = DEFAULT_READ_S;
    if (t->lim.max_connections <= 0)
        t->lim.max_connections = DEFAULT_MAX_CONN;
    t->alias = strdup(alias);
    if (t->alias == NULL) {
        cg_tcp_free(t);
        t = NULL;
    }
out:
    return t;
}

/* "host:port" or "[v6]:port" → resolved address (new). @return CG_OK or CG_EINVAL */
static int parse_hostport(const char *hostport, struct addrinfo **out)
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
    if (*port == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
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

int cg_tcp_bind(struct cg_tcp *t, const char *hostport, char *bound, size_t boundlen)
{
    int rc = CG_EINVAL;
    struct addrinfo *ai = NULL;
    struct evconnlistener *l = NULL, **grown;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    unsigned flags =
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    char name[PEER_LEN];

    if (t == NULL)
        goto out;
    rc = parse_hostport(hostport, &ai);
    if (rc != CG_OK)
        goto out;
    if (ai->ai_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    rc = CG_EIO;
    l = evconnlistener_new_bind(t->base, on_accept, t, flags, SOMAXCONN, ai->ai_addr,
                                (int)ai->ai_addrlen);
    if (l == NULL) {
        cg_log(CG_LOG_ERROR, "tcp: cannot listen on %s", hostport);
        goto out;
    }
    if (t->stopping)
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
    grown = realloc(t->listeners, sizeof(*grown) * (size_t)(t->nlisteners + 1));
    if (grown == NULL)
        goto out;
    t->listeners = grown;
    t->listeners[t->nlisteners++] = l;
    l = NULL;
    rc = CG_OK;
out:
    if (l != NULL)
        evconnlistener_free(l);
    if (ai != NULL)
        freeaddrinfo(ai);
    return rc;
}

void cg_tcp_stop_accepting(struct cg_tcp *t)
{
    struct conn *c, *next;

    if (t == NULL)
        return;
    t->stopping = 1;
    for (int i = 0; i < t->nlisteners; i++)
        evconnlistener_disable(t->listeners[i]);
    for (c = t->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == ST_READ && !c->started &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            free_conn(c);
        else if (c->state == ST_DRAIN)
            begin_close(c);
    }
}

int cg_tcp_connections(const struct cg_tcp *t)
{
    return t != NULL ? t->nconns : 0;
}

void cg_tcp_free(struct cg_tcp *t)
{
    if (t == NULL)
        return;
    for (int i = 0; i < t->nlisteners; i++)
        evconnlistener_free(t->listeners[i]);
    free(t->listeners);
    while (t->conns != NULL)
        free_conn(t->conns);
    free(t->alias);
    free(t);
}
