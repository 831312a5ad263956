/*
 * transport_local.h - the request object shared by the HTTP and TCP transports.
 *
 * DESIGN: a struct cg_request owns copies of everything the gateway reads (method, path,
 * alias, op, peer, body) and a borrowed pointer to the connection that produced it, plus
 * that connection's small ops table. The connection clears the pointer (cg_request_detach_)
 * when it closes; cg_request_reply() then only frees. Private to transports/.
 */
#ifndef CG_TRANSPORTS_TRANSPORT_LOCAL_H
#define CG_TRANSPORTS_TRANSPORT_LOCAL_H

#include "cg_transport.h"

#include <stddef.h>
#include <stdint.h>

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

#endif
