/*
 * tcp.c - the CMP-over-TCP listener: accept, cut one frame, hand it over, write the answer.
 *
 * DESIGN: libevent core only (bufferevent, evbuffer, one timer per connection), the same
 * shape as http.c. Listening, accepting within max_connections (over the cap, or after
 * stop-accepting, a connection is closed without a frame: its form is not known yet), the
 * connection list, the timer, the lingering close and the free are transport.c's (struct
 * cg_server, struct cg_conn); this file is the frame state machine. Each connection is
 * driven by the bufferevent's input buffer:
 *   READ  bytes are left in the input buffer until tcp_frame.h says a frame is complete; the
 *         header (at most 7 bytes) is copied out and parsed first, so the length is checked
 *         against max_body_bytes before any payload is waited for;
 *   WAIT  the request was handed to the gateway: reading is disabled and no timer runs
 *         until cg_request_reply() writes the answer;
 *   DRAIN a keep-open answer is large and unread: resume only when it has been sent;
 *   CLOSING the last answer (or error frame) is queued: when the output has drained, the
 *         write side is shut down and the connection lingers (LINGER, input discarded, at
 *         most LINGER_S of transport.c) until the peer closes, so unread bytes do not turn
 *         the close into a reset that destroys the answer before the client reads it.
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define MAX_PORT_DIGITS 5 /* "host:000080" is refused */

enum conn_state { ST_READ = 0, ST_WAIT, ST_DRAIN, ST_CLOSING, ST_LINGER };

struct conn {
    struct cg_conn io; /* first: socket, timer, list, request, peer */
    struct cg_tcp *t;
    enum conn_state state;
    int form;               /* CG_TCP_FORM_* of the request in progress */
    unsigned close_bit : 1; /* version-10 request asked to close after the answer */
    unsigned started : 1;   /* first byte of the current frame seen */
};

struct cg_tcp {
    struct cg_server srv; /* first: listeners, limits, connections */
    char *alias;
    cg_request_cb cb;
    void *arg;
};

static void reply_conn(void *conn, struct cg_request *req, int status, const char *content_type,
                       const uint8_t *body, size_t len);

static const struct cg_conn_ops tcp_ops = {reply_conn};

/* ---------------------------------------------------------------------------------------- */
/* connections                                                                              */

static void init_conn(struct cg_conn *io)
{
    struct conn *c = (struct conn *)io;

    c->t = (struct cg_tcp *)io->srv;
    c->state = ST_READ;
    c->form = CG_TCP_FORM_UNKNOWN;
}

/* The answer (or error frame) is queued: close once it has been sent, bounded by a timer. */
static void begin_close(struct conn *c)
{
    c->state = ST_CLOSING;
    bufferevent_disable(c->io.bev, EV_READ);
    transport_arm_timer_(&c->io, c->t->srv.lim.read_timeout_s);
    /* with nothing left to send, nothing would call on_write */
    if (evbuffer_get_length(bufferevent_get_output(c->io.bev)) == 0)
        bufferevent_trigger(c->io.bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Queue one frame: header of form/type/flags, then len bytes of body. */
static void write_frame(struct conn *c, int form, int type, int flags, const uint8_t *body,
                        size_t len)
{
    struct evbuffer *out = bufferevent_get_output(c->io.bev);
    uint8_t hdr[CG_TCP_MAX_HEADER];
    int n = cg_tcp_frame_header(hdr, form, type, flags, len);

    if (n <= 0)
        return;
    evbuffer_add(out, hdr, (size_t)n);
    if (len > 0)
        evbuffer_add(out, body, len);
    transport_send_(&c->io);
}

/* The error frame of form (finRep for version 10 and an unknown form, errorMsgRep for RFC
 * 2510), one-byte payload 0x00, then close. */
static void fail_conn(struct conn *c, int form, const char *why)
{
    static const uint8_t zero = 0;

    cg_log(CG_LOG_DEBUG, "tcp %s: %s, closing", c->io.peer, why);
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
    transport_arm_timer_(&c->io, c->t->srv.lim.idle_timeout_s);
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
    int keep = !c->close_bit && !c->t->srv.stopping;

    (void)req;
    (void)content_type;
    c->io.req = NULL;
    if (status != 200) {
        char why[48];
        snprintf(why, sizeof(why), "gateway status %d", status);
        fail_conn(c, c->form, why);
        return;
    }
    if (c->io.peer_eof && evbuffer_get_length(bufferevent_get_input(c->io.bev)) == 0)
        keep = 0; /* nothing more can come */
    if (c->form == CG_TCP_FORM_2510)
        write_frame(c, CG_TCP_FORM_2510, CG_TCP_2510_FINALMSGREP, 0, body, len);
    else
        write_frame(c, CG_TCP_FORM_V10, CG_TCP_V10_PKIREP, keep ? 0 : CG_TCP_FLAG_CLOSE, body, len);
    if (!keep) {
        begin_close(c);
        return;
    }
    if (transport_check_output_(&c->io) == CG_EFULL) {
        c->state = ST_DRAIN;
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
    req = cg_request_new_(CG_TRANSPORT_TCP, "TCP", "", t->alias, NULL, c->io.peer, body,
                          f->payload_len, &tcp_ops, c);
    if (req == NULL) {
        fail_conn(c, f->form, "out of memory");
        return;
    }
    c->state = ST_WAIT;
    transport_hand_over_(&c->io, req, t->cb, t->arg); /* may reply at once */
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
    rc = cg_tcp_frame_parse(hdr, (size_t)n, c->t->srv.lim.max_body_bytes, &f);
    if (rc > 0 || (rc == CG_EINCOMPLETE && f.frame_len > 0 && have >= f.frame_len)) {
        /* the whole frame is buffered: parse it again in one piece */
        uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)f.frame_len);
        if (p == NULL) {
            fail_conn(c, f.form, "input buffer error");
            return 0;
        }
        rc = cg_tcp_frame_parse(p, f.frame_len, c->t->srv.lim.max_body_bytes, &f);
    }
    if (rc == CG_EINCOMPLETE) {
        if (c->io.peer_eof) {
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
    struct evbuffer *in = bufferevent_get_input(c->io.bev);

    while (c->state == ST_READ && evbuffer_get_length(in) > 0) {
        if (!c->started) {
            c->started = 1;
            transport_arm_timer_(&c->io, c->t->srv.lim.read_timeout_s);
        }
        if (!step_frame(c, in))
            break;
    }
    if (c->state == ST_READ && c->io.peer_eof && evbuffer_get_length(in) == 0) {
        /* the peer is done and nothing is pending: close once the output is sent */
        begin_close(c);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if (c->state == ST_READ)
        process_input(c);
    else if (c->state == ST_LINGER)
        transport_discard_input_(&c->io);
    else
        transport_read_busy_(&c->io); /* the next frame, early: read after the answer */
}

/* The closing answer has been sent: half-close and discard input until the peer closes. */
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

    if (transport_eof_(&c->io, what, c->state == ST_LINGER) != CG_OK)
        return;
    /* EOF: answer the complete frames that are buffered, then close */
    if (c->state == ST_READ) {
        process_input(c);
        return;
    }
    if (c->state == ST_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        transport_conn_free_(&c->io);
}

/* Stop accepting: an idle connection goes now, a draining one closes once its answer is sent. */
static void stop_conn(struct cg_conn *io)
{
    struct conn *c = (struct conn *)io;

    if (c->state == ST_READ && !c->started &&
        evbuffer_get_length(bufferevent_get_input(io->bev)) == 0)
        transport_conn_free_(io);
    else if (c->state == ST_DRAIN)
        begin_close(c);
}

static const struct cg_conn_class tcp_class = {
    .name = "tcp",
    .size = sizeof(struct conn),
    .busy = NULL, /* no busy answer: the client's form is not known yet */
    .init = init_conn,
    .release = NULL,
    .stop = stop_conn,
    .on_read = on_read,
    .on_write = on_write,
    .on_event = on_event,
};

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
    transport_server_init_(&t->srv, base, &tcp_class, limits);
    t->cb = cb;
    t->arg = arg;
    t->alias = strdup(alias);
    if (t->alias == NULL) {
        cg_tcp_free(t);
        t = NULL;
    }
out:
    return t;
}

int cg_tcp_bind(struct cg_tcp *t, const char *hostport, char *bound, size_t boundlen)
{
    int rc = CG_EINVAL;

    if (t == NULL)
        goto out;
    rc = transport_listen_(&t->srv, hostport, MAX_PORT_DIGITS, bound, boundlen);
out:
    return rc;
}

void cg_tcp_stop_accepting(struct cg_tcp *t)
{
    if (t != NULL)
        transport_stop_accepting_(&t->srv);
}

int cg_tcp_connections(const struct cg_tcp *t)
{
    return t != NULL ? t->srv.nconns : 0;
}

void cg_tcp_free(struct cg_tcp *t)
{
    if (t == NULL)
        return;
    transport_server_clear_(&t->srv);
    free(t->alias);
    free(t);
}
