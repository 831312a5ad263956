/*
 * transport_local.h - what the HTTP and TCP transports share: the request object, and the
 * listening and connection plumbing under their protocol state machines.
 *
 * DESIGN: a struct cg_request owns copies of everything the gateway reads (method, path,
 * alias, op, peer, body) and a borrowed pointer to the connection that produced it, plus
 * that connection's small ops table. The connection clears the pointer (cg_request_detach_)
 * when it closes; cg_request_reply() then only frees.
 * A struct cg_server is the first member of struct cg_http / struct cg_tcp, and a struct
 * cg_conn the first member of each transport's struct conn, so the pointers convert both
 * ways. The server owns its listeners and the list of its connections; a struct
 * cg_conn_class tells it how large a connection is and which protocol callbacks drive it.
 * The protocol state (HEAD/BODY/READ, WAIT, DRAIN, CLOSING, LINGER) stays in each
 * transport. Everything runs on the loop thread. Private to transports/.
 */
#ifndef CG_TRANSPORTS_TRANSPORT_LOCAL_H
#define CG_TRANSPORTS_TRANSPORT_LOCAL_H

#include "cg_transport.h"

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;

#define CG_PEER_LEN 64 /* "[v6]:port" */

/** What a connection does with a reply. reply() is called on the loop thread while req is
 *  still attached; it must forget req (the caller frees it right after). */
struct cg_conn_ops {
    void (*reply)(void *conn, struct cg_request *req, int status, const char *content_type,
                  const uint8_t *body, size_t len);
};

/** @brief New request. method, path, alias, op, peer are copied (alias and op may be NULL);
 *  body is stolen (malloc'd, may be NULL when len is 0). ops and conn are borrowed until
 *  cg_request_detach_. On failure body is freed. @return new or NULL. */
struct cg_request *cg_request_new_(int kind, const char *method, const char *path,
                                   const char *alias, const char *op, const char *peer,
                                   uint8_t *body, size_t len, const struct cg_conn_ops *ops,
                                   void *conn);
/** @brief The connection went away: the request becomes orphaned. */
void cg_request_detach_(struct cg_request *req);
/** @brief Free without replying. NULL is a no-op. */
void cg_request_free_(struct cg_request *req);

/* --- listening and connections ----------------------------------------------------------- */

struct cg_conn;
struct cg_server;

/** How a transport's connections are made, driven and dropped. Constant, one per transport. */
struct cg_conn_class {
    const char *name; /* "http", "tcp": log prefix */
    size_t size;      /* of the transport's struct conn, whose first member is a cg_conn */
    const char *busy; /* sent (best effort) before closing a connection over the cap; NULL:
                       * close without a word */
    void (*init)(struct cg_conn *c);    /* a new connection, before it is read */
    void (*release)(struct cg_conn *c); /* may be NULL: drop protocol state before the free */
    void (*stop)(struct cg_conn *c);    /* stop accepting: free c when idle, close when draining */
    void (*on_read)(struct bufferevent *bev, void *c);
    void (*on_write)(struct bufferevent *bev, void *c);
    void (*on_event)(struct bufferevent *bev, short what, void *c);
};

/** The transport-independent part of one connection. */
struct cg_conn {
    struct cg_server *srv;
    struct bufferevent *bev;
    struct event *timer; /* idle, read or drain limit: its expiry frees the connection */
    struct cg_conn *prev, *next;
    struct cg_request *req; /* handed to the gateway, not yet replied */
    unsigned peer_eof : 1;
    char peer[CG_PEER_LEN];
};

/** The listeners of one transport object and its open connections. */
struct cg_server {
    struct event_base *base;
    const struct cg_conn_class *cls;
    struct cg_transport_limits lim;
    struct evconnlistener **listeners;
    int nlisteners;
    struct cg_conn *conns;
    int nconns;
    int stopping;
};

/** @brief Set up s: base and cls borrowed for the life of s; limits copied (may be NULL),
 *  with the defaults of cg_transport.h for every zero field. */
void transport_server_init_(struct cg_server *s, struct event_base *base,
                            const struct cg_conn_class *cls,
                            const struct cg_transport_limits *limits);
/** @brief Free the listeners and every connection; s itself stays (the caller's). */
void transport_server_clear_(struct cg_server *s);
/** @brief Listen on hostport, "host:port" or "[v6]:port" ("" or "*" as host: 0.0.0.0; a port
 *  string longer than max_port_digits is refused, 0: any length), and keep the listener;
 *  bound (may be NULL) receives the actual address as "ip:port" or "[v6]:port". Disabled at
 *  once when s is stopping.
 *  @return CG_OK, CG_EINVAL (bad address, bound too small), CG_EIO, CG_ENOMEM. */
int transport_listen_(struct cg_server *s, const char *hostport, size_t max_port_digits,
                      char *bound, size_t boundlen);
/** @brief No new connections; cls->stop is called on each open one (it may free it). */
void transport_stop_accepting_(struct cg_server *s);
/** @brief (Re)start c's timer: it frees c after seconds. */
void transport_arm_timer_(struct cg_conn *c, int seconds);
/** @brief A complete request: c->req = req (borrowed until the reply or the free), the timer
 *  stops, and cb(req, arg) runs. A reply from cb is safe: c stays valid. Reading goes on
 *  until bytes arrive before the reply: on_read then calls transport_read_busy_ and leaves
 *  them buffered for after the reply. */
void transport_hand_over_(struct cg_conn *c, struct cg_request *req, cg_request_cb cb, void *arg);
/** @brief After a keep-alive reply. @return CG_OK: read on; CG_EFULL: more than the pending
 *  limit is unsent, the idle timer is armed, and the caller waits for its write callback. */
int transport_check_output_(struct cg_conn *c);
/** @brief The bufferevent event callback's common part. @return CG_OK: a clean EOF while not
 *  lingering, peer_eof is set and reading stops; CG_ECLOSED: an error, or the end of a
 *  lingering close, and c has been freed. */
int transport_eof_(struct cg_conn *c, short what, int lingering);
/** @brief The final reply has been sent: shut the write side down and discard input until the
 *  peer closes, for a short while at most. @return CG_OK: c lingers (the caller records it);
 *  CG_ECLOSED: the peer is gone or shutdown failed, and c has been freed. */
int transport_linger_(struct cg_conn *c);
/** @brief Send what is queued in c's output now. A connection's bufferevent has writing
 *  disabled while its output is empty, so queueing costs no epoll_ctl; what the socket takes
 *  at once is written here, and only a remainder (or an error) enables writing. The class's
 *  on_write then runs (deferred) as for a drained buffer, and should call
 *  transport_write_done_() when the output is empty. */
void transport_send_(struct cg_conn *c);
/** @brief In on_read while c is not reading a request: stop reading (the bytes stay
 *  buffered; resuming reads them). */
void transport_read_busy_(struct cg_conn *c);
/** @brief In on_write with an empty output: writing back to disabled (see transport_send_). */
void transport_write_done_(struct cg_conn *c);
/** @brief Discard everything in c's input buffer. */
void transport_discard_input_(struct cg_conn *c);
/** @brief Unlink and free c: its request becomes orphaned, cls->release runs, the socket
 *  closes. */
void transport_conn_free_(struct cg_conn *c);

#endif
