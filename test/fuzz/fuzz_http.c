/*
 * fuzz_http.c - fuzz target: the HTTP request path of a real cg_http listener, in process.
 *
 * DESIGN: one event_base and two listeners bound once on 127.0.0.1:0: a CMP listener
 * (kind CG_TRANSPORT_HTTP, root alias "root", small limits: body 65536, header 2048, timeouts
 * 1 s, 32 connections) and an admin listener. Per input, the first byte picks the listener
 * (bit 0) and whether the callback answers at once or from a zero timer later, as the
 * gateway does from its workers (bit 1); the rest is written raw to a fresh loopback
 * connection, which is then half-closed (the server must finish what is buffered, answer,
 * and close). The loop runs until the server closes the connection, with a 5 s deadline.
 * Checks: every callback sees a consistent request (CMP requests have an alias, a path and a
 * method; the body is within max_body_bytes), the answer bytes start with an HTTP/1.x status
 * line, the server closes the connection, and no connection is left open afterwards. A
 * missed deadline (a hang) or a leaked connection aborts.
 */
#include "cg_err.h"
#include "cg_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 65536

static struct event_base *g_base;
static struct cg_http *g_srv[2];
static struct sockaddr_in g_addr[2];
static int g_defer;
static int g_pending; /* deferred replies not sent yet */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s (%s)\n", what, strerror(errno));
    abort();
}

static void reply(struct cg_request *req)
{
    size_t len = 0;
    const uint8_t *body = cg_request_body(req, &len);
    const char *alias = cg_request_alias(req);
    /* exercise several statuses and an echoed body */
    int status = 200;
    if (alias != NULL && strcmp(alias, "busy") == 0)
        status = 503;
    else if (alias != NULL && strcmp(alias, "nope") == 0)
        status = 404;
    else if (len > 0 && body[0] != 0x30)
        status = 400;
    cg_request_reply(req, status, NULL, body, len);
}

static void deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    g_pending--;
    reply(arg);
}

static void on_request(struct cg_request *req, void *arg)
{
    int kind = (int)(intptr_t)arg;
    size_t len = 0;
    const uint8_t *body = cg_request_body(req, &len);
    const char *method = cg_request_method(req), *path = cg_request_path(req);
    if (cg_request_kind(req) != kind || method == NULL || path == NULL ||
        cg_request_peer(req) == NULL || (len > 0 && body == NULL) || len > MAX_BODY)
        abort();
    if (kind == CG_TRANSPORT_HTTP) {
        if (cg_request_alias(req) == NULL || strcmp(method, "POST") != 0)
            abort(); /* the transport answers non-CMP paths and other methods itself */
    }
    if (cg_request_orphaned(req))
        abort(); /* a fresh request cannot be orphaned yet */
    if (g_defer) {
        g_pending++;
        if (event_base_once(g_base, -1, EV_TIMEOUT, deferred, req, NULL) != 0)
            die("event_base_once");
        return;
    }
    reply(req);
}

static void bind_one(int i, int kind)
{
    struct cg_transport_limits lim = {MAX_BODY, 2048, 1, 1, 32};
    char bound[64];
    g_srv[i] = cg_http_new(g_base, kind, &lim, "root", on_request, (void *)(intptr_t)kind);
    if (g_srv[i] == NULL || cg_http_bind(g_srv[i], "127.0.0.1:0", bound, sizeof(bound)) != CG_OK)
        die("cg_http_bind");
    memset(&g_addr[i], 0, sizeof(g_addr[i]));
    g_addr[i].sin_family = AF_INET;
    g_addr[i].sin_port = htons((uint16_t)atoi(strrchr(bound, ':') + 1));
    g_addr[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void tear_down(void)
{
    for (int i = 0; i < 2; i++)
        cg_http_free(g_srv[i]);
    event_base_free(g_base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_base != NULL)
        return 0;
    signal(SIGPIPE, SIG_IGN);
    if ((g_base = event_base_new()) == NULL)
        die("event_base_new");
    bind_one(0, CG_TRANSPORT_HTTP);
    bind_one(1, CG_TRANSPORT_ADMIN);
    atexit(tear_down);
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char got[1 << 20];
    size_t ngot = 0;
    if (g_base == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    if (size == 0)
        return 0;
    int which = data[0] & 1;
    g_defer = (data[0] >> 1) & 1;
    data++;
    size--;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    /* non-blocking connect: libFuzzer's SIGALRM (-timeout) interrupts a blocking one */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&g_addr[which], sizeof(g_addr[which])) != 0) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t elen = sizeof(err);
        if (errno != EINPROGRESS && errno != EINTR)
            die("connect");
        while (poll(&pfd, 1, 5000) < 0)
            if (errno != EINTR)
                die("poll");
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            errno = err;
            die("connect (completion)");
        }
    }
    size_t sent = 0;
    int eof = 0, shut = 0;
    long deadline = now_ms() + 5000;
    while (!eof) {
        if (now_ms() > deadline) {
            fprintf(stderr,
                    "fuzz_http: the server did not close a half-closed connection "
                    "within 5 s (%zu of %zu bytes sent)\n",
                    sent, size);
            abort();
        }
        if (sent < size) {
            ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                sent = size; /* reset by the server (a limit): stop sending */
        }
        if (sent == size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        event_base_loop(g_base, EVLOOP_NONBLOCK);
        for (;;) {
            char tmp[65536];
            ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
            if (r > 0) {
                size_t n = (size_t)r;
                if (n > sizeof(got) - ngot)
                    n = sizeof(got) - ngot;
                memcpy(got + ngot, tmp, n);
                ngot += n;
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                eof = 1;
            break;
        }
        if (!eof)
            event_base_loop(g_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    close(fd);
    if (ngot > 0 &&
        (ngot < 12 || (memcmp(got, "HTTP/1.1 ", 9) != 0 && memcmp(got, "HTTP/1.0 ", 9) != 0)))
        abort(); /* answer bytes that are not an HTTP response */
    /* the server side must be gone, and every deferred reply sent (dropped if orphaned) */
    deadline = now_ms() + 5000;
    while (cg_http_connections(g_srv[which]) > 0 || g_pending > 0) {
        if (now_ms() > deadline) {
            fprintf(stderr, "fuzz_http: %d connection(s) still open, %d reply(ies) pending\n",
                    cg_http_connections(g_srv[which]), g_pending);
            abort();
        }
        event_base_loop(g_base, EVLOOP_NONBLOCK);
    }
    return 0;
}
