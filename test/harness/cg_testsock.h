/*
 * cg_testsock.h - the socket client of the transport tests (test_http.c, test_tcp.c):
 * connect to the listener on 127.0.0.1, send while the server's event loop runs, collect
 * what arrives, wait for the server's close.
 *
 * DESIGN: header-only, like cg_test.h. The including file declares `static int port;` (the
 * listener's port) before it includes this header, and defines pump(), which runs its event
 * loop for about ms milliseconds. Four clients, closed again by the file's tear_down.
 */
#ifndef CG_TEST_HARNESS_CG_TESTSOCK_H
#define CG_TEST_HARNESS_CG_TESTSOCK_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct client {
    int fd;
    char buf[200000]; /* what has arrived and is not yet consumed */
    size_t len;
    int eof; /* the server closed (or the connection failed) */
};

static struct client clients[4];

static void pump(int ms);

static inline long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* (Re)connect client i (closing its previous connection). @return it, or NULL */
static inline struct client *client_open(int i)
{
    struct client *cl = &clients[i];
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = socket(AF_INET, SOCK_STREAM, 0);
    cl->len = 0;
    cl->eof = 0;
    if (cl->fd < 0 || connect(cl->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        return NULL;
    fcntl(cl->fd, F_SETFL, fcntl(cl->fd, F_GETFL) | O_NONBLOCK);
    return cl;
}

static inline void client_close(struct client *cl)
{
    close(cl->fd);
    cl->fd = -1;
}

/* Read what is there without waiting; sets eof when the server has closed. */
static inline void client_fill(struct client *cl)
{
    for (;;) {
        ssize_t n;
        if (cl->len == sizeof(cl->buf))
            return;
        n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, MSG_DONTWAIT);
        if (n > 0) {
            cl->len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            cl->eof = 1;
        return;
    }
}

/* Send all of data within 3 s, running the event loop while the socket is full.
 * @return 0, or -1 on error or timeout */
static inline int client_send(struct client *cl, const void *data, size_t len)
{
    const char *p = data;
    long end = now_ms() + 3000;

    while (len > 0 && now_ms() < end) {
        ssize_t n = send(cl->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;
        } else {
            pump(1);
        }
    }
    return len == 0 ? 0 : -1;
}

/* @return 0 when the server closed the connection within timeout_ms */
static inline int wait_closed(struct client *cl, int timeout_ms)
{
    long end = now_ms() + timeout_ms;

    for (;;) {
        client_fill(cl);
        if (cl->eof)
            return 0;
        if (now_ms() > end)
            return -1;
        pump(2);
    }
}

#endif
