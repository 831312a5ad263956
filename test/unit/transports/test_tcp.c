/*
 * test_tcp.c - unit tests of the CMP-over-TCP framer and listener.
 *
 * DESIGN: the framer is pure, so "frame/" tests feed it every prefix of every valid frame
 * (the picohttpparser contract: a caller re-parses the buffered bytes after each read, so
 * every prefix is one possible split of the reads) and every bad input. The "tcp/" tests
 * run a cg_tcp on 127.0.0.1:0 of a fresh event_base on the test thread; clients are
 * non-blocking sockets, and every wait pumps the loop with EVLOOP_NONBLOCK until the expected
 * bytes (or the close) arrive or a deadline passes. The request callback echoes
 * "ok:<alias>:<payload>" with status 200; a payload starting with "bad" gets 400, one
 * starting with "defer" is kept for the test to answer later.
 */
#include "cg_tcp.h"
#include "cg_test.h"
#include "tcp_frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define CG_TESTOOM_LIBEVENT
#include "cg_testoom.h"

#define MAX_HELD 8
#define ALIAS "tcpalias"

static struct event_base *base;
static struct cg_tcp *srv;
static int port;
static struct cg_request *held[MAX_HELD];
static int nheld;
static int ncalls;
static int bad_meta; /* a request arrived with the wrong kind, method, path or op */

#include "cg_testsock.h" /* the socket client: after `port` */

static const uint8_t FINREP[] = {0, 0, 0, 4, 10, 1, 3, 0};
static const uint8_t ERRMSGREP[] = {0, 0, 0, 2, 6, 0};

static void on_request(struct cg_request *req, void *arg)
{
    size_t len = 0;
    const uint8_t *b = cg_request_body(req, &len);
    const char *alias = cg_request_alias(req);
    uint8_t *out;
    size_t n;

    (void)arg;
    ncalls++;
    if (cg_request_kind(req) != CG_TRANSPORT_TCP || strcmp(cg_request_method(req), "TCP") != 0 ||
        strcmp(cg_request_path(req), "") != 0 || cg_request_op(req) != NULL ||
        cg_request_peer(req)[0] == '\0' || alias == NULL)
        bad_meta = 1;
    if (len >= 5 && memcmp(b, "defer", 5) == 0 && nheld < MAX_HELD) {
        held[nheld++] = req;
        return;
    }
    if (len >= 3 && memcmp(b, "bad", 3) == 0) {
        cg_request_reply(req, 400, "text/plain", (const uint8_t *)"no\n", 3);
        return;
    }
    out = malloc(len + 128);
    if (out == NULL) { /* the allocation-failure sweep reached the handler */
        cg_request_reply(req, 500, NULL, NULL, 0);
        return;
    }
    n = (size_t)snprintf((char *)out, 128, "ok:%s:", alias ? alias : "-");
    memcpy(out + n, b, len);
    cg_request_reply(req, 200, NULL, out, n + len);
    free(out);
}

static void set_up(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    srv = NULL;
    nheld = 0;
    ncalls = 0;
    bad_meta = 0;
    for (int i = 0; i < 4; i++) {
        clients[i].fd = -1;
        clients[i].len = 0;
        clients[i].eof = 0;
    }
}

static void tear_down(void)
{
    for (int i = 0; i < 4; i++)
        if (clients[i].fd >= 0)
            close(clients[i].fd);
    cg_tcp_free(srv);
    srv = NULL;
    for (int i = 0; i < nheld; i++)
        if (held[i] != NULL)
            cg_request_reply(held[i], 500, NULL, NULL, 0);
    nheld = 0;
    event_base_free(base);
    base = NULL;
}

static void start_lim(size_t max_body, int idle, int rd, int cap)
{
    struct cg_transport_limits lim = {max_body, 0, idle, rd, cap};
    char bound[64];

    srv = cg_tcp_new(base, &lim, ALIAS, on_request, NULL);
    TEST_NOTNULL(srv);
    TEST_OK(cg_tcp_bind(srv, "127.0.0.1:0", bound, sizeof(bound)));
    TEST_TRUE(strncmp(bound, "127.0.0.1:", 10) == 0);
    port = atoi(strrchr(bound, ':') + 1);
    TEST_TRUE(port > 0);
}

static void start(void)
{
    start_lim(1024, 5, 5, 16);
}

static void pump(int ms)
{
    long end = now_ms() + ms;

    do {
        event_base_loop(base, EVLOOP_NONBLOCK);
        poll(NULL, 0, 1);
    } while (now_ms() < end);
}

/* Wait for one complete answer frame; copy it to out (frame bytes) and remove it.
 * @return frame length, or -1 on timeout / EOF first / malformed answer */
static int read_frame(struct client *cl, uint8_t *out, size_t outlen, struct cg_tcp_frame *f)
{
    long end = now_ms() + 3000;

    for (;;) {
        int rc;
        client_fill(cl);
        rc = cg_tcp_frame_parse((const uint8_t *)cl->buf, cl->len, sizeof(cl->buf), f);
        if (rc > 0) {
            if ((size_t)rc > outlen)
                return -1;
            memcpy(out, cl->buf, (size_t)rc);
            memmove(cl->buf, cl->buf + rc, cl->len - (size_t)rc);
            cl->len -= (size_t)rc;
            f->payload = out + f->header_len;
            return rc;
        }
        if (rc != CG_EINCOMPLETE || cl->eof || now_ms() > end)
            return -1;
        pump(2);
    }
}

/* Build a frame of form/type/flags around payload into out. @return its length */
static size_t make_frame(uint8_t *out, int form, int type, int flags, const void *payload,
                         size_t len)
{
    int n = cg_tcp_frame_header(out, form, type, flags, len);

    if (n <= 0)
        return 0;
    if (len > 0)
        memcpy(out + n, payload, len);
    return (size_t)n + len;
}

/* Expect the pkiRep / finalMsgRep echo of payload in form with flags. */
static void expect_echo(struct client *cl, int form, int flags, const char *payload)
{
    uint8_t fr[4096];
    struct cg_tcp_frame f;
    char want[1024];
    int n = read_frame(cl, fr, sizeof(fr), &f);
    size_t wl = (size_t)snprintf(want, sizeof(want), "ok:%s:%s", ALIAS, payload);

    TEST_TRUE(n > 0);
    TEST_EQ(f.form, form);
    TEST_EQ(f.type, form == CG_TCP_FORM_V10 ? CG_TCP_V10_PKIREP : CG_TCP_2510_FINALMSGREP);
    TEST_EQ(f.flags, flags);
    TEST_EQ(f.payload_len, wl);
    TEST_MEMEQ(f.payload, want, wl);
}

/* Expect exactly the error frame bytes, then the close. */
static void expect_error_close(struct client *cl, const uint8_t *want, size_t wl)
{
    TEST_OK(wait_closed(cl, 3000));
    TEST_EQ(cl->len, wl);
    TEST_MEMEQ(cl->buf, want, wl);
}

/* ---------------------------------------------------------------------------------------- */
/* framer                                                                                   */

struct valid_case {
    int form, type, flags;
    size_t len;
};

static void test_frame_splits(void)
{
    static const struct valid_case cases[] = {
        {CG_TCP_FORM_V10, CG_TCP_V10_PKIREQ, 0, 40},
        {CG_TCP_FORM_V10, CG_TCP_V10_PKIREQ, 1, 1},
        {CG_TCP_FORM_V10, CG_TCP_V10_PKIREQ, 0, 0},
        {CG_TCP_FORM_V10, CG_TCP_V10_POLLREQ, 0, 8},
        {CG_TCP_FORM_V10, CG_TCP_V10_POLLREP, 0, 8},
        {CG_TCP_FORM_V10, CG_TCP_V10_FINREP, 1, 1},
        {CG_TCP_FORM_V10, CG_TCP_V10_PKIREP, 1, 300},
        {CG_TCP_FORM_V10, CG_TCP_V10_ERRORMSGREP, 0, 3},
        {CG_TCP_FORM_V10, CG_TCP_V10_PKIREQ, 0, 1000}, /* exactly the limit */
        {CG_TCP_FORM_2510, CG_TCP_2510_PKIMSG, 0, 40},
        {CG_TCP_FORM_2510, CG_TCP_2510_PKIMSG, 0, 0},
        {CG_TCP_FORM_2510, CG_TCP_2510_POLLREQ, 0, 4},
        {CG_TCP_FORM_2510, CG_TCP_2510_FINALMSGREP, 0, 77},
        {CG_TCP_FORM_2510, CG_TCP_2510_ERRORMSGREP, 0, 1},
        {CG_TCP_FORM_2510, CG_TCP_2510_PARTIALMSGREP, 0, 2},
        {CG_TCP_FORM_2510, CG_TCP_2510_NEGPOLLREP, 0, 0},
        {CG_TCP_FORM_2510, CG_TCP_2510_POLLREP, 0, 8},
        {CG_TCP_FORM_2510, CG_TCP_2510_PKIMSG, 0, 1000},
    };
    static uint8_t buf[2100], payload[1000];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct valid_case *vc = &cases[c];
        size_t hl = vc->form == CG_TCP_FORM_V10 ? 7 : 5;
        size_t total = make_frame(buf, vc->form, vc->type, vc->flags, payload, vc->len);
        size_t both;
        struct cg_tcp_frame f;

        TEST_EQ(total, hl + vc->len);
        /* every split: the prefix is incomplete, never an error */
        for (size_t k = 0; k < total; k++) {
            TEST_RC(cg_tcp_frame_parse(buf, k, 1000, &f), CG_EINCOMPLETE);
            if (k >= hl) {
                TEST_EQ(f.frame_len, total); /* known once the header is in */
                TEST_EQ(f.form, vc->form);
                TEST_EQ(f.type, vc->type);
            } else {
                TEST_EQ(f.frame_len, 0);
            }
            TEST_TRUE(f.payload == NULL);
        }
        TEST_EQ(cg_tcp_frame_parse(buf, total, 1000, &f), (long long)total);
        TEST_EQ(f.form, vc->form);
        TEST_EQ(f.type, vc->type);
        TEST_EQ(f.flags, vc->form == CG_TCP_FORM_V10 ? vc->flags : 0);
        TEST_EQ(f.header_len, hl);
        TEST_EQ(f.payload_len, vc->len);
        TEST_TRUE(f.payload == buf + hl);
        TEST_MEMEQ(f.payload, payload, vc->len);
        /* two frames back to back: the first is cut, the second follows */
        both = total + make_frame(buf + total, vc->form, vc->type, vc->flags, payload, vc->len);
        for (size_t k = total; k <= both; k++)
            TEST_EQ(cg_tcp_frame_parse(buf, k, 1000, &f), (long long)total);
        TEST_EQ(cg_tcp_frame_parse(buf + total, both - total, 1000, &f), (long long)total);
    }
}

static void test_frame_bad(void)
{
    static const struct {
        const char *name;
        uint8_t bytes[8];
        size_t len;
        int rc;
        int form;
    } cases[] = {
        {"byte 4 is 11", {0, 0, 0, 3, 11, 0, 0}, 7, CG_EPARSE, CG_TCP_FORM_UNKNOWN},
        {"byte 4 is 255", {0, 0, 0, 3, 255}, 5, CG_EPARSE, CG_TCP_FORM_UNKNOWN},
        {"v10 length 2", {0, 0, 0, 2, 10, 0, 0}, 7, CG_EPARSE, CG_TCP_FORM_V10},
        {"v10 length 0", {0, 0, 0, 0, 10}, 5, CG_EPARSE, CG_TCP_FORM_V10},
        {"2510 length 0", {0, 0, 0, 0, 0}, 5, CG_EPARSE, CG_TCP_FORM_2510},
        {"v10 type 4", {0, 0, 0, 3, 10, 0, 4}, 7, CG_EPARSE, CG_TCP_FORM_V10},
        {"v10 type 7", {0, 0, 0, 3, 10, 0, 7}, 7, CG_EPARSE, CG_TCP_FORM_V10},
        {"v10 type 255", {0, 0, 0, 3, 10, 1, 255}, 7, CG_EPARSE, CG_TCP_FORM_V10},
        {"2510 type 7", {0, 0, 0, 1, 7}, 5, CG_EPARSE, CG_TCP_FORM_2510},
        {"2510 type 9", {0, 0, 0, 9, 9}, 5, CG_EPARSE, CG_TCP_FORM_2510},
        {"v10 pollReq of 4", {0, 0, 0, 7, 10, 0, 2}, 7, CG_EPARSE, CG_TCP_FORM_V10},
        {"v10 pollRep of 0", {0, 0, 0, 3, 10, 0, 1}, 7, CG_EPARSE, CG_TCP_FORM_V10},
        {"v10 absurd length", {255, 255, 255, 255, 10, 0, 0}, 7, CG_ETOOBIG, CG_TCP_FORM_V10},
        {"2510 absurd length", {255, 255, 255, 255, 0}, 5, CG_ETOOBIG, CG_TCP_FORM_2510},
        {"v10 limit + 1", {0, 0, 0x03, 0xEC, 10, 0, 0}, 7, CG_ETOOBIG, CG_TCP_FORM_V10},
        {"2510 limit + 1", {0, 0, 0x03, 0xEA, 0}, 5, CG_ETOOBIG, CG_TCP_FORM_2510},
    };
    struct cg_tcp_frame f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = cg_tcp_frame_parse(cases[i].bytes, cases[i].len, 1000, &f);
        if (rc != cases[i].rc || f.form != cases[i].form)
            TEST_FAIL_("%s: rc %d form %d, want %d form %d", cases[i].name, rc, f.form, cases[i].rc,
                       cases[i].form);
        TEST_TRUE(f.payload == NULL);
    }
    /* the limit is checked on the header alone, before any payload is buffered */
    TEST_RC(cg_tcp_frame_parse((const uint8_t *)"\x00\x00\x03\xeb\x0a\x00\x00", 7, 1000, &f),
            CG_EINCOMPLETE);
    TEST_EQ(f.frame_len, 1007);
    TEST_RC(cg_tcp_frame_parse((const uint8_t *)"\x00\x00\x03\xe9\x00", 5, 1000, &f),
            CG_EINCOMPLETE);
    TEST_EQ(f.frame_len, 1005);
    TEST_RC(cg_tcp_frame_parse(NULL, 0, 1000, &f), CG_EINCOMPLETE);
    TEST_RC(cg_tcp_frame_parse(NULL, 3, 1000, &f), CG_EINVAL);
    TEST_RC(cg_tcp_frame_parse((const uint8_t *)"x", 1, 1000, NULL), CG_EINVAL);
}

static void test_frame_header(void)
{
    uint8_t h[CG_TCP_MAX_HEADER];

    TEST_EQ(cg_tcp_frame_header(h, CG_TCP_FORM_V10, CG_TCP_V10_PKIREP, 1, 0x010203), 7);
    TEST_MEMEQ(h, "\x00\x01\x02\x06\x0a\x01\x05", 7);
    TEST_EQ(cg_tcp_frame_header(h, CG_TCP_FORM_2510, CG_TCP_2510_FINALMSGREP, 1, 0x010203), 5);
    TEST_MEMEQ(h, "\x00\x01\x02\x04\x05", 5);
    TEST_RC(cg_tcp_frame_header(h, CG_TCP_FORM_V10, 4, 0, 0), CG_EINVAL);
    TEST_RC(cg_tcp_frame_header(h, CG_TCP_FORM_2510, 7, 0, 0), CG_EINVAL);
    TEST_RC(cg_tcp_frame_header(h, 3, 0, 0, 0), CG_EINVAL);
    TEST_RC(cg_tcp_frame_header(NULL, CG_TCP_FORM_V10, 0, 0, 0), CG_EINVAL);
    TEST_RC(cg_tcp_frame_header(h, CG_TCP_FORM_V10, 0, 0, (size_t)UINT32_MAX), CG_ETOOBIG);
}

/* ---------------------------------------------------------------------------------------- */
/* listener                                                                                 */

static void test_v10_keep_open(void)
{
    uint8_t fr[256];
    struct client *cl;
    size_t n;

    start();
    cl = client_open(0);
    TEST_NOTNULL(cl);
    /* two requests on one connection (ir, then certConf) */
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "\x30\x03\x02\x01\x01", 5);
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_V10, 0, "\x30\x03\x02\x01\x01");
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "second", 6);
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_V10, 0, "second");
    pump(20);
    client_fill(cl);
    TEST_FALSE(cl->eof);
    TEST_EQ(cg_tcp_connections(srv), 1);
    /* the close bit is echoed and closes */
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 1, "last", 4);
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_V10, 1, "last");
    TEST_OK(wait_closed(cl, 3000));
    TEST_EQ(cl->len, 0);
    TEST_EQ(ncalls, 3);
    TEST_FALSE(bad_meta);
}

static void test_2510_keep_open(void)
{
    uint8_t fr[256];
    struct client *cl;
    size_t n;

    start();
    cl = client_open(0);
    n = make_frame(fr, CG_TCP_FORM_2510, 0, 0, "one", 3);
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_2510, 0, "one");
    n = make_frame(fr, CG_TCP_FORM_2510, 0, 0, "", 0);
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_2510, 0, "");
    /* a client that mixes the forms on one connection is answered in each frame's form */
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "ten", 3);
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_V10, 0, "ten");
    pump(20);
    client_fill(cl);
    TEST_FALSE(cl->eof);
    TEST_EQ(ncalls, 3);
    TEST_FALSE(bad_meta);
}

/* Every valid frame split in two writes at every byte offset, on one kept-open connection. */
static void test_split_every_offset(void)
{
    static const char payload[] = "\x30\x0c\x02\x01\x05\x04\x07payload";
    const int forms[] = {CG_TCP_FORM_V10, CG_TCP_FORM_2510};
    uint8_t fr[256];

    start();
    for (int fi = 0; fi < 2; fi++) {
        struct client *cl = client_open(fi);
        size_t n = make_frame(fr, forms[fi], 0, 0, payload, sizeof(payload) - 1);
        for (size_t k = 1; k < n; k++) {
            TEST_OK(client_send(cl, fr, k));
            pump(3);
            client_fill(cl);
            TEST_EQ(cl->len, 0); /* nothing answered before the frame is complete */
            TEST_OK(client_send(cl, fr + k, n - k));
            expect_echo(cl, forms[fi], 0, payload);
        }
    }
    TEST_FALSE(bad_meta);
}

/* One byte at a time, with the loop running between the bytes. */
static void test_bytewise(void)
{
    const int forms[] = {CG_TCP_FORM_V10, CG_TCP_FORM_2510};
    uint8_t fr[256];

    start();
    for (int fi = 0; fi < 2; fi++) {
        struct client *cl = client_open(fi);
        size_t n = make_frame(fr, forms[fi], 0, 0, "bytewise-payload", 16);
        for (size_t k = 0; k < n; k++) {
            TEST_OK(client_send(cl, fr + k, 1));
            pump(2);
        }
        expect_echo(cl, forms[fi], 0, "bytewise-payload");
    }
}

/* Several frames in one write are answered in order, one at a time. */
static void test_several_in_one_read(void)
{
    uint8_t fr[512];
    size_t n = 0;
    struct client *cl;

    start();
    cl = client_open(0);
    n += make_frame(fr + n, CG_TCP_FORM_V10, 0, 0, "a1", 2);
    n += make_frame(fr + n, CG_TCP_FORM_2510, 0, 0, "b22", 3);
    n += make_frame(fr + n, CG_TCP_FORM_V10, 0, 0, "c333", 4);
    n += make_frame(fr + n, CG_TCP_FORM_V10, 0, 1, "d", 1);
    n += make_frame(fr + n, CG_TCP_FORM_V10, 0, 0, "never", 5); /* after the close bit */
    TEST_OK(client_send(cl, fr, n));
    expect_echo(cl, CG_TCP_FORM_V10, 0, "a1");
    expect_echo(cl, CG_TCP_FORM_2510, 0, "b22");
    expect_echo(cl, CG_TCP_FORM_V10, 0, "c333");
    expect_echo(cl, CG_TCP_FORM_V10, 1, "d");
    TEST_OK(wait_closed(cl, 3000));
    TEST_EQ(cl->len, 0);
    TEST_EQ(ncalls, 4);
}

/* Frames followed by the client's EOF are still all answered, then the server closes. */
static void test_eof_after_frames(void)
{
    uint8_t fr[512];
    size_t n = 0;
    struct client *cl;

    start();
    cl = client_open(0);
    n += make_frame(fr + n, CG_TCP_FORM_2510, 0, 0, "x", 1);
    n += make_frame(fr + n, CG_TCP_FORM_2510, 0, 0, "y", 1);
    TEST_OK(client_send(cl, fr, n));
    shutdown(cl->fd, SHUT_WR);
    expect_echo(cl, CG_TCP_FORM_2510, 0, "x");
    expect_echo(cl, CG_TCP_FORM_2510, 0, "y");
    TEST_OK(wait_closed(cl, 3000));
    TEST_EQ(cl->len, 0);
    pump(20);
    TEST_EQ(cg_tcp_connections(srv), 0);
}

static void test_bad_inputs(void)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
        int eof;  /* half-close after sending */
        int form; /* answer expected: V10 → finRep, 2510 → errorMsgRep */
    } cases[] = {
        {"truncated header 3", "\x00\x00\x03", 3, 1, CG_TCP_FORM_V10},
        {"truncated header 1", "\x00", 1, 1, CG_TCP_FORM_V10},
        {"truncated v10 header", "\x00\x00\x00\x05\x0a\x00", 6, 1, CG_TCP_FORM_V10},
        {"truncated v10 payload", "\x00\x00\x00\x08\x0a\x00\x00\x30\x03", 9, 1, CG_TCP_FORM_V10},
        {"truncated 2510 payload", "\x00\x00\x00\x08\x00\x30\x03", 7, 1, CG_TCP_FORM_2510},
        {"v10 absurd length", "\x7f\xff\xff\xff\x0a\x00\x00", 7, 0, CG_TCP_FORM_V10},
        {"2510 absurd length", "\xff\xff\xff\xff\x00", 5, 0, CG_TCP_FORM_2510},
        {"v10 over limit", "\x00\x00\x04\x04\x0a\x00\x00", 7, 0, CG_TCP_FORM_V10},
        {"2510 over limit", "\x00\x00\x04\x02\x00", 5, 0, CG_TCP_FORM_2510},
        {"v10 length below header", "\x00\x00\x00\x02\x0a\x00\x00", 7, 0, CG_TCP_FORM_V10},
        {"2510 length 0", "\x00\x00\x00\x00\x00", 5, 0, CG_TCP_FORM_2510},
        {"version 11", "\x00\x00\x00\x03\x0b\x00\x00", 7, 0, CG_TCP_FORM_V10},
        {"HTTP request", "POST / HTTP/1.1\r\n\r\n", 19, 0, CG_TCP_FORM_V10},
        {"v10 type 4", "\x00\x00\x00\x03\x0a\x00\x04", 7, 0, CG_TCP_FORM_V10},
        {"v10 type 9", "\x00\x00\x00\x03\x0a\x00\x09", 7, 0, CG_TCP_FORM_V10},
        {"2510 type 7", "\x00\x00\x00\x01\x07", 5, 0, CG_TCP_FORM_2510},
        {"v10 pollReq (no polling)", "\x00\x00\x00\x0b\x0a\x00\x02\x00\x00\x00\x01\x00\x00\x00\x3c",
         15, 0, CG_TCP_FORM_V10},
        {"v10 pollReq short", "\x00\x00\x00\x07\x0a\x00\x02\x00\x00\x00\x01", 11, 0,
         CG_TCP_FORM_V10},
        {"v10 finRep from client", "\x00\x00\x00\x04\x0a\x00\x03\x00", 8, 0, CG_TCP_FORM_V10},
        {"2510 pollReq", "\x00\x00\x00\x05\x02\x00\x00\x00\x01", 9, 0, CG_TCP_FORM_2510},
        {"2510 finalMsgRep from client", "\x00\x00\x00\x02\x05\x30", 6, 0, CG_TCP_FORM_2510},
        {"v10 gateway 400",
         "\x00\x00\x00\x06\x0a\x00\x00"
         "bad",
         10, 0, CG_TCP_FORM_V10},
        {"2510 gateway 400",
         "\x00\x00\x00\x04\x00"
         "bad",
         8, 0, CG_TCP_FORM_2510},
    };

    start();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct client *cl = client_open(0);
        TEST_NOTNULL(cl);
        TEST_OK(client_send(cl, cases[i].bytes, cases[i].len));
        if (cases[i].eof)
            shutdown(cl->fd, SHUT_WR);
        if (wait_closed(cl, 3000) != 0)
            TEST_FAIL_("%s: not closed", cases[i].name);
        if (cases[i].form == CG_TCP_FORM_V10 &&
            (cl->len != sizeof(FINREP) || memcmp(cl->buf, FINREP, sizeof(FINREP)) != 0))
            TEST_FAIL_("%s: no finRep (%zu bytes)", cases[i].name, cl->len);
        if (cases[i].form == CG_TCP_FORM_2510 &&
            (cl->len != sizeof(ERRMSGREP) || memcmp(cl->buf, ERRMSGREP, sizeof(ERRMSGREP)) != 0))
            TEST_FAIL_("%s: no errorMsgRep (%zu bytes)", cases[i].name, cl->len);
    }
    TEST_EQ(ncalls, 2); /* only the two "bad" payloads reached the gateway */
    close(clients[0].fd);
    clients[0].fd = -1;
    pump(50);
    TEST_EQ(cg_tcp_connections(srv), 0);
    /* after the burst, the listener still serves */
    {
        uint8_t fr[64];
        struct client *cl = client_open(1);
        size_t n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "fine", 4);
        TEST_OK(client_send(cl, fr, n));
        expect_echo(cl, CG_TCP_FORM_V10, 0, "fine");
    }
}

/* A payload of exactly max_body_bytes passes; one byte more is refused on the header alone. */
static void test_max_body(void)
{
    static uint8_t fr[2200], payload[1100];
    struct client *cl;
    size_t n;

    start();
    memset(payload, 'z', sizeof(payload));
    cl = client_open(0);
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, payload, 1024);
    TEST_OK(client_send(cl, fr, n));
    {
        uint8_t ans[2100];
        struct cg_tcp_frame f;
        TEST_TRUE(read_frame(cl, ans, sizeof(ans), &f) > 0);
        TEST_EQ(f.payload_len, 1024 + strlen("ok:" ALIAS ":"));
    }
    cl = client_open(1);
    n = make_frame(fr, CG_TCP_FORM_2510, 0, 0, payload, 1025);
    TEST_OK(client_send(cl, fr, 5)); /* the header only */
    expect_error_close(cl, ERRMSGREP, sizeof(ERRMSGREP));
    TEST_EQ(ncalls, 1);
}

static void test_idle_timeout(void)
{
    struct client *cl;
    long t0;

    start_lim(1024, 1, 5, 16);
    cl = client_open(0);
    pump(20);
    TEST_EQ(cg_tcp_connections(srv), 1);
    t0 = now_ms();
    TEST_OK(wait_closed(cl, 3000));
    TEST_TRUE(now_ms() - t0 >= 800);
    TEST_EQ(cl->len, 0);
    TEST_EQ(cg_tcp_connections(srv), 0);
}

/* A frame that started must be complete within read_timeout_s, even if bytes trickle in. */
static void test_read_timeout(void)
{
    struct client *cl;
    long t0;

    start_lim(1024, 10, 1, 16);
    cl = client_open(0);
    TEST_OK(client_send(cl, "\x00\x00\x00\x20\x0a\x00\x00", 7));
    t0 = now_ms();
    for (int i = 0; i < 10 && !cl->eof; i++) {
        TEST_OK(client_send(cl, "x", 1));
        pump(150);
        client_fill(cl);
    }
    TEST_OK(wait_closed(cl, 3000));
    TEST_TRUE(now_ms() - t0 < 2500);
    TEST_EQ(ncalls, 0);
}

static void test_conn_cap(void)
{
    struct client *a, *b, *c;
    uint8_t fr[64];
    size_t n;

    start_lim(1024, 5, 5, 2);
    a = client_open(0);
    b = client_open(1);
    pump(30);
    TEST_EQ(cg_tcp_connections(srv), 2);
    c = client_open(2);
    TEST_NOTNULL(c);
    TEST_OK(wait_closed(c, 3000));
    TEST_EQ(c->len, 0);
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "a", 1);
    TEST_OK(client_send(a, fr, n));
    expect_echo(a, CG_TCP_FORM_V10, 0, "a");
    TEST_OK(client_send(b, fr, n));
    expect_echo(b, CG_TCP_FORM_V10, 0, "a");
}

/* A deferred reply; a connection that dies while its request is held orphans it. */
static void test_deferred_and_orphan(void)
{
    uint8_t fr[64];
    struct client *cl;
    size_t n;

    start();
    cl = client_open(0);
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "defer1", 6);
    TEST_OK(client_send(cl, fr, n));
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "after", 5); /* waits for the held reply */
    TEST_OK(client_send(cl, fr, n));
    pump(50);
    TEST_EQ(nheld, 1);
    TEST_EQ(ncalls, 1);
    TEST_FALSE(cg_request_orphaned(held[0]));
    cg_request_reply(held[0], 200, NULL, (const uint8_t *)"late", 4);
    held[0] = NULL;
    {
        uint8_t ans[64];
        struct cg_tcp_frame f;
        TEST_TRUE(read_frame(cl, ans, sizeof(ans), &f) > 0);
        TEST_EQ(f.type, CG_TCP_V10_PKIREP);
        TEST_MEMEQ(f.payload, "late", 4);
    }
    expect_echo(cl, CG_TCP_FORM_V10, 0, "after");
    nheld = 0;
    cl = client_open(1);
    n = make_frame(fr, CG_TCP_FORM_2510, 0, 0, "defer2", 6);
    TEST_OK(client_send(cl, fr, n));
    pump(50);
    TEST_EQ(nheld, 1);
    close(cl->fd);
    cl->fd = -1;
    pump(50);
    /* reading is off while a request is held, so the close is seen when the answer fails */
    cg_request_reply(held[0], 200, NULL, (const uint8_t *)"dropped", 7);
    held[0] = NULL;
    {
        long end = now_ms() + 3000;
        while (cg_tcp_connections(srv) > 1 && now_ms() < end)
            pump(2);
        TEST_EQ(cg_tcp_connections(srv), 1); /* the first client's */
    }
    /* a held request survives cg_tcp_free, orphaned (tear_down replies to it after the free) */
    cl = client_open(2);
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "defer3", 6);
    TEST_OK(client_send(cl, fr, n));
    pump(50);
    TEST_EQ(nheld, 2);
    cg_tcp_free(srv);
    srv = NULL;
    TEST_TRUE(cg_request_orphaned(held[1]));
}

static void test_stop_accepting(void)
{
    uint8_t fr[64];
    struct client *idle, *busy, *late;
    size_t n;

    start();
    idle = client_open(0);
    busy = client_open(1);
    n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "defer", 5);
    TEST_OK(client_send(busy, fr, n));
    pump(50);
    TEST_EQ(nheld, 1);
    cg_tcp_stop_accepting(srv);
    TEST_OK(wait_closed(idle, 3000));
    late = client_open(2);
    if (late != NULL) {
        /* the listening socket stays open (backlog) but nothing is served */
        n = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "late", 4);
        client_send(late, fr, n);
        pump(100);
        client_fill(late);
        TEST_EQ(late->len, 0);
    }
    /* the request in flight is answered, with the close bit, then the connection closes */
    cg_request_reply(held[0], 200, NULL, (const uint8_t *)"bye", 3);
    held[0] = NULL;
    nheld = 0;
    {
        uint8_t ans[64];
        struct cg_tcp_frame f;
        TEST_TRUE(read_frame(busy, ans, sizeof(ans), &f) > 0);
        TEST_EQ(f.flags, CG_TCP_FLAG_CLOSE);
        TEST_MEMEQ(f.payload, "bye", 3);
    }
    TEST_OK(wait_closed(busy, 3000));
}

/* Every allocation of a framed exchange on a new connection, libevent's and ours, fails once
 * in turn: the client gets the echo, an error frame or a closed connection (nothing within
 * 200 ms counts as refused), never a crash or a leak; the server then still serves a new
 * connection. */
static void test_alloc_failures(void)
{
    uint8_t fr[256], in[4096];
    struct cg_tcp_frame f;
    struct oom_tally tally = {0, 0};
    long n;
    size_t len = make_frame(fr, CG_TCP_FORM_V10, 0, 0, "hello", 5);
    start();
    for (n = 1; n < 10000; n++) {
        struct client *cl = client_open(0);
        TEST_NOTNULL(cl);
        oom_start(n);
        oom_arm(1);
        int ok = client_send(cl, fr, len) == 0;
        long end = now_ms() + 200;
        int got = -1;
        while (ok && got < 0 && !cl->eof && now_ms() < end) {
            pump(2);
            client_fill(cl);
            if (cg_tcp_frame_parse((const uint8_t *)cl->buf, cl->len, sizeof(cl->buf), &f) > 0)
                got = read_frame(cl, in, sizeof(in), &f);
        }
        oom_stop();
        ok = ok && got > 0 && f.type == CG_TCP_V10_PKIREP;
        if (ok) {
            static const char want[] = "ok:" ALIAS ":hello";
            TEST_EQ(f.payload_len, sizeof(want) - 1);
            TEST_MEMEQ(f.payload, want, sizeof(want) - 1);
        }
        client_close(cl);
        if (oom_done(&tally, ok)) {
            TEST_TRUE(ok);
            break;
        }
        cl = client_open(1); /* the server is unharmed */
        TEST_NOTNULL(cl);
        TEST_OK(client_send(cl, fr, len));
        expect_echo(cl, CG_TCP_FORM_V10, 0, "hello");
        client_close(cl);
    }
    oom_report("TCP exchange", &tally);
    TEST_TRUE(n > 5);
    TEST_TRUE(tally.refused > 0);
}

static void test_bind(void)
{
    char bound[64];
    int rc;

    start();
    TEST_RC(cg_tcp_bind(srv, "nope", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_tcp_bind(srv, "127.0.0.1:99999", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_tcp_bind(srv, "127.0.0.1:", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_tcp_bind(srv, "::1:80", bound, sizeof(bound)), CG_EINVAL);
    rc = cg_tcp_bind(srv, "[::1]:0", bound, sizeof(bound));
    TEST_TRUE(rc == CG_OK || rc == CG_EIO || rc == CG_EINVAL); /* no IPv6 in some sandboxes */
    TEST_TRUE(cg_tcp_new(NULL, NULL, "x", on_request, NULL) == NULL);
    TEST_TRUE(cg_tcp_new(base, NULL, NULL, on_request, NULL) == NULL);
    cg_tcp_free(NULL);
}

CG_TESTS = {
    CG_TEST("frame/splits", test_frame_splits),
    CG_TEST("frame/bad", test_frame_bad),
    CG_TEST("frame/header", test_frame_header),
    CG_TEST("tcp/v10_keep_open", test_v10_keep_open),
    CG_TEST("tcp/2510_keep_open", test_2510_keep_open),
    CG_TEST("tcp/split_every_offset", test_split_every_offset),
    CG_TEST("tcp/bytewise", test_bytewise),
    CG_TEST("tcp/several_in_one_read", test_several_in_one_read),
    CG_TEST("tcp/eof_after_frames", test_eof_after_frames),
    CG_TEST("tcp/bad_inputs", test_bad_inputs),
    CG_TEST("tcp/max_body", test_max_body),
    CG_TEST("tcp/idle_timeout", test_idle_timeout),
    CG_TEST("tcp/read_timeout", test_read_timeout),
    CG_TEST("tcp/conn_cap", test_conn_cap),
    CG_TEST("tcp/deferred_and_orphan", test_deferred_and_orphan),
    CG_TEST("tcp/stop_accepting", test_stop_accepting),
    CG_TEST("tcp/alloc_failures", test_alloc_failures),
    CG_TEST("tcp/bind", test_bind),
};

/* the harness's main keeps loop counters across setjmp; they are not modified between
 * setjmp and longjmp, so the -O2 warning is a false positive */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning */
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
CG_TEST_MAIN(set_up, tear_down)
