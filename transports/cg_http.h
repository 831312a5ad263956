/*
 * cg_http.h - HTTP/1.0 and 1.1 listener for CMP (and the admin endpoints).
 *
 * DESIGN: a small HTTP server on libevent bufferevents (not evhttp, which in 2.1 has no
 * connection cap and ties replies to its own request lifetime). One loop thread; per
 * connection one request at a time; keep-alive honoured; Content-Length and chunked
 * request bodies; every limit of struct cg_transport_limits enforced before buffering.
 *
 * CMP listeners (kind CG_TRANSPORT_HTTP) route:
 *   POST /ejbca/publicweb/cmp/<alias>[/<op>]   POST /.well-known/cmp/p/<alias>[/<op>]
 *   POST /ejbca/publicweb/cmp                  POST /.well-known/cmp[/<op>]     → alias "cmp"
 *   POST /  → root_alias when set
 * Paths are case-sensitive, repeated slashes collapse, a query string is ignored. <op> must
 * be one of the RFC 9811 segments (initialization, certification, keyupdate, pkcs10,
 * revocation, getcacerts, getrootupdate, getcertreqtemplate, getcrls, nested), else 404.
 * The transport answers by itself: 404 for a path that is no CMP path, 405 (with
 * "Allow: POST") for another method on a CMP path, 413 over max_body_bytes, 400 for a
 * malformed HTTP request, 411 for a POST with neither length nor chunking. Everything else
 * goes to the callback, which decides 200 / 400 / 404 (unknown alias) / 503.
 * Admin listeners (kind CG_TRANSPORT_ADMIN) hand every request, any method, to the callback.
 */
#ifndef CG_TRANSPORTS_CG_HTTP_H
#define CG_TRANSPORTS_CG_HTTP_H

#include "cg_transport.h"

struct event_base;
struct cg_http;

/** @brief New listener set on base (borrowed, must outlive it). root_alias may be NULL
 *  (copied). @return new or NULL. */
struct cg_http *cg_http_new(struct event_base *base, int kind,
                            const struct cg_transport_limits *limits, const char *root_alias,
                            cg_request_cb cb, void *arg);
/** @brief Listen on "host:port" ("[::1]:port" for IPv6; port 0 picks a free port).
 *  SO_REUSEADDR and SO_REUSEPORT are set. The bound address is written to bound.
 *  @return CG_OK, CG_EINVAL (bad address), CG_EIO (bind/listen failed). */
int cg_http_bind(struct cg_http *h, const char *hostport, char *bound, size_t boundlen);
/** @brief Stop accepting; connections with no request in progress are closed. */
void cg_http_stop_accepting(struct cg_http *h);
/** @brief Number of open connections. */
int cg_http_connections(const struct cg_http *h);
/** @brief Close listeners and all connections, free. Requests already handed to the gateway
 *  stay valid (orphaned) until replied. NULL is a no-op. */
void cg_http_free(struct cg_http *h);

#endif
