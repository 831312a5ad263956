/*
 * transport.c - struct cg_request: the one object a transport hands to the gateway.
 *
 * DESIGN: the request owns its strings and body; it borrows its connection through a
 * pointer plus an ops table, so HTTP and TCP share the object and cg_request_reply() only
 * dispatches. When the connection closes it calls cg_request_detach_(), after which the
 * request is orphaned and a reply is dropped. Everything runs on the loop thread.
 */
#include "transport_local.h"

#include <stdlib.h>
#include <string.h>

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

static int dup_string(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = strdup(s);
    return *out == NULL ? -1 : 0;
}

struct cg_request *cg_request_new_(int kind, const char *method, const char *path,
                                   const char *alias, const char *op, const char *peer,
                                   uint8_t *body, size_t len, const struct cg_conn_ops *ops,
                                   void *conn)
{
    struct cg_request *req = calloc(1, sizeof(*req));

    if (req == NULL) {
        free(body);
        goto out;
    }
    req->kind = kind;
    req->body = body;
    req->len = len;
    req->ops = ops;
    req->conn = conn;
    if (dup_string(method ? method : "", &req->method) != 0 ||
        dup_string(path ? path : "", &req->path) != 0 || dup_string(alias, &req->alias) != 0 ||
        dup_string(op, &req->op) != 0 || dup_string(peer ? peer : "", &req->peer) != 0) {
        cg_request_free_(req);
        req = NULL;
    }
out:
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
    free(req->method);
    free(req->path);
    free(req->alias);
    free(req->op);
    free(req->peer);
    free(req->body);
    free(req);
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
