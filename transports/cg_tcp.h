/*
 * cg_tcp.h - the legacy CMP-over-TCP listener (RFC 2510 section 5.2, draft-ietf-pkix-cmp-tcp).
 *
 * DESIGN: a first-class transport on the gateway's libevent loop, built like cg_http:
 * evconnlistener, one bufferevent and one timer per connection, one request at a time per
 * connection, the limits of struct cg_transport_limits, a lingering close. Frames are cut by
 * tcp_frame.h (both header forms: version 10 with a 7-byte header, RFC 2510 with a 5-byte
 * header; byte 4 tells them apart); every request gets the alias given to cg_tcp_new(),
 * method "TCP", path "" and kind CG_TRANSPORT_TCP.
 *
 * Answers (on the form of the request):
 *   version 10, pkiReq (type 0) → the reply of the gateway: status 200 → pkiRep (type 5) with
 *     the response PKIMessage and the close bit echoed from the request (also set when the
 *     server closes after this answer: shutdown, or the peer already sent EOF); the
 *     connection stays open for the next frame unless the close bit is set.
 *     Any other status → finRep.
 *   RFC 2510, pkiMsg (type 0) → status 200 → finalMsgRep (type 5); the connection stays
 *     open. Any other status → errorMsgRep.
 *   The error frames are finRep (version 10: type 3, close bit set) and errorMsgRep (RFC
 *   2510: type 6); both always carry the one-byte payload 0x00, and the connection is closed
 *   after them.
 * A frame that cannot be cut (a header or payload cut short by the peer's EOF, a
 * length shorter than the header's own fields, byte 4 above 10, an unknown type, a payload
 * over max_body_bytes, checked before it is buffered) gets the error frame of its form
 * (finRep when the form is not known) and a close. A well-formed frame of another type
 * (version-10 pollReq included: there is no polling yet, so there is no pollRep either;
 * RFC 2510 types other than pkiMsg) gets the error frame and a close. A payload that is not
 * DER or not CMP is the gateway's to judge: not DER → a non-200 status → the error frame;
 * DER but not a valid PKIMessage → the same unprotected CMP error an HTTP client gets, in a
 * pkiRep / finalMsgRep.
 * Timers: idle_timeout_s between frames, read_timeout_s from the first byte of a frame until
 * it is complete; on expiry the connection is closed without an answer. Connections beyond
 * max_connections are accepted and closed at once (no frame: the form is not known yet).
 * Everything runs on the loop thread of the event_base.
 */
#ifndef CG_TRANSPORTS_CG_TCP_H
#define CG_TRANSPORTS_CG_TCP_H

#include "cg_transport.h"

#include <stddef.h>

struct event_base;
struct cg_tcp;

/** @brief New listener set on base (borrowed, must outlive it). alias (copied) is the CMP
 *  alias of every request (tcp.alias); cb runs on the loop thread with arg.
 *  @return new or NULL (bad argument, no memory). */
struct cg_tcp *cg_tcp_new(struct event_base *base, const struct cg_transport_limits *limits,
                          const char *alias, cg_request_cb cb, void *arg);
/** @brief Listen on "host:port" ("[::1]:port" for IPv6; port 0 picks a free port).
 *  SO_REUSEADDR and SO_REUSEPORT are set. The bound address is written to bound.
 *  @return CG_OK, CG_EINVAL (bad address), CG_EIO (bind/listen failed), CG_ENOMEM. */
int cg_tcp_bind(struct cg_tcp *t, const char *hostport, char *bound, size_t boundlen);
/** @brief Stop accepting; connections with no frame in progress are closed, the others close
 *  after their answer. */
void cg_tcp_stop_accepting(struct cg_tcp *t);
/** @brief Number of open connections. */
int cg_tcp_connections(const struct cg_tcp *t);
/** @brief Close listeners and all connections, free. Requests already handed to the gateway
 *  stay valid (orphaned) until replied. NULL is a no-op. */
void cg_tcp_free(struct cg_tcp *t);

#endif
