/*
 * cg_transport.h - what every transport hands to the gateway: one request, one reply.
 *
 * DESIGN: transports only frame. They read a whole request (HTTP body or TCP frame) into
 * memory, within the configured limits, and call the gateway's cg_request_cb on the loop
 * thread. From then on the gateway owns the struct cg_request and must call
 * cg_request_reply() exactly once, on the loop thread. If the connection dies in between,
 * the request stays valid (marked orphaned) and the reply is simply dropped.
 * A connection handles one request at a time: it reads nothing more until the reply is sent.
 * Everything here runs on the loop thread; workers never touch these objects.
 */
#ifndef CG_TRANSPORTS_CG_TRANSPORT_H
#define CG_TRANSPORTS_CG_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct cg_request;

/** @brief Called on the loop thread for every complete request. The gateway takes
 *  ownership of req (see above). */
typedef void (*cg_request_cb)(struct cg_request *req, void *arg);

enum cg_transport_kind { CG_TRANSPORT_HTTP = 0, CG_TRANSPORT_TCP = 1, CG_TRANSPORT_ADMIN = 2 };

/** Limits shared by the listeners. Zero means "use the default" given in brackets. */
struct cg_transport_limits {
    size_t max_body_bytes;   /* [1048576] larger bodies: 413 / TCP error frame */
    size_t max_header_bytes; /* [16384] HTTP request line + headers; larger: 431 then close */
    int idle_timeout_s;      /* [60] keep-alive connection with no request in progress */
    int read_timeout_s;      /* [30] a request that started must be complete within this */
    int max_connections;     /* [4096] per transport object; beyond: accept and close at once */
};

/* --- accessors (borrowed; valid until cg_request_reply) ------------------------------- */
int cg_request_kind(const struct cg_request *req);
/** @brief "POST", "GET", ... (HTTP), "TCP" for TCP. */
const char *cg_request_method(const struct cg_request *req);
/** @brief Normalized request path (repeated slashes collapsed, query removed); "" for TCP. */
const char *cg_request_path(const struct cg_request *req);
/** @brief CMP alias from the path ("cmp" for the alias-less paths, http.root_alias for "/"),
 *  or the TCP alias; NULL when the path is not a CMP path. */
const char *cg_request_alias(const struct cg_request *req);
/** @brief RFC 9811 operation segment ("initialization", ...) or NULL. */
const char *cg_request_op(const struct cg_request *req);
/** @brief Peer address as "ip:port". */
const char *cg_request_peer(const struct cg_request *req);
const uint8_t *cg_request_body(const struct cg_request *req, size_t *len);
/** @brief 1 if the connection went away; the reply will be dropped. */
int cg_request_orphaned(const struct cg_request *req);

/** @brief Send the reply and free req. status is an HTTP status (200, 400, 404, 405, 413,
 *  503, 500). For HTTP, a 200 carries body with Content-Type application/pkixcmp; other
 *  statuses carry body as text/plain if given (may be NULL). content_type may be NULL for
 *  the default. For TCP, 200 sends a pkiRep frame; any other status sends the error frame
 *  of the framing (finRep / errorMsgRep) and closes. body is copied. */
void cg_request_reply(struct cg_request *req, int status, const char *content_type,
                      const uint8_t *body, size_t len);

#endif
