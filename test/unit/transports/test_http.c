/*
 * test_http.c - unit tests of the HTTP transport against real loopback sockets.
 *
 * DESIGN: everything runs on the test thread. Each test binds a cg_http on 127.0.0.1:0 of a
 * fresh event_base; clients are non-blocking sockets, and every wait pumps the loop with
 * EVLOOP_NONBLOCK until the expected bytes (or the close) arrive or a deadline passes, so the
 * tests are deterministic and bounded in time. The request callback echoes alias, op,
 * method, path and body with status 200 (503 for alias "busy"); alias "defer" keeps the
 * request for the test to answer later.
 */
#include "cg_http.h"
#include "cg_test.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define CG_TESTOOM_LIBEVENT
#include "cg_testoom.h"

#define MAX_HELD 8

/* --- allocation failures ------------------------------------------------------------------ */

static struct event_base *base;
static struct cg_http *srv;
static int port;
static struct cg_request *held[MAX_HELD];
static int nheld;
static int ncalls;

struct resp {
    int status;
    char head[8192];
    char body[70000];
    size_t body_len;
};

#include "cg_testsock.h" /* the socket client: after `port` */

static void on_request(struct cg_request *req, void *arg)
{
    const char *alias = cg_request_alias(req), *op = cg_request_op(req);
    size_t len = 0;
    const uint8_t *b = cg_request_body(req, &len);
    char *out;
    int n;

    (void)arg;
    ncalls++;
    if (alias != NULL && strcmp(alias, "defer") == 0 && nheld < MAX_HELD) {
        held[nheld++] = req;
        return;
    }
    out = malloc(len + 1024);
    if (out == NULL) { /* the allocation-failure sweep reached the handler */
        cg_request_reply(req, 500, NULL, NULL, 0);
        return;
    }
    n = snprintf(out, 1024, "alias=%s op=%s method=%s path=%s peer=%s body=", alias ? alias : "-",
                 op ? op : "-", cg_request_method(req), cg_request_path(req),
                 cg_request_peer(req)[0] ? "yes" : "no");
    memcpy(out + n, b, len);
    cg_request_reply(req, alias != NULL && strcmp(alias, "busy") == 0 ? 503 : 200, NULL,
                     (const uint8_t *)out, (size_t)n + len);
    free(out);
}

static void set_up(void)
{
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    srv = NULL;
    nheld = 0;
    ncalls = 0;
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
    cg_http_free(srv);
    srv = NULL;
    for (int i = 0; i < nheld; i++)
        if (held[i] != NULL)
            cg_request_reply(held[i], 500, NULL, NULL, 0);
    nheld = 0;
    event_base_free(base);
    base = NULL;
}

static void start_kind(int kind, size_t max_body, size_t max_header, int idle, int rd, int cap,
                       const char *root)
{
    struct cg_transport_limits lim = {max_body, max_header, idle, rd, cap};
    char bound[64];

    srv = cg_http_new(base, kind, &lim, root, on_request, NULL);
    TEST_NOTNULL(srv);
    TEST_OK(cg_http_bind(srv, "127.0.0.1:0", bound, sizeof(bound)));
    TEST_TRUE(strncmp(bound, "127.0.0.1:", 10) == 0);
    port = atoi(strrchr(bound, ':') + 1);
    TEST_TRUE(port > 0);
}

static void start(void)
{
    start_kind(CG_TRANSPORT_HTTP, 1024, 4096, 5, 5, 16, NULL);
}

static void pump(int ms)
{
    long end = now_ms() + ms;

    do {
        event_base_loop(base, EVLOOP_NONBLOCK);
        poll(NULL, 0, 1);
    } while (now_ms() < end);
}

static int client_sends(struct client *cl, const char *s)
{
    return client_send(cl, s, strlen(s));
}

static const char *header_value(const char *head, const char *name, char *out, size_t n)
{
    const char *p = head;
    size_t nl = strlen(name);

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t l;
            v += strspn(v, " ");
            l = strcspn(v, "\r");
            if (l >= n)
                l = n - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

/* Parse one response from cl->buf (no body when head_only). @return 1 done, 0 need more */
static int parse_response(struct client *cl, struct resp *r, int head_only)
{
    char *end, cl_s[32];
    size_t hlen, blen = 0;

    end = memmem(cl->buf, cl->len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    hlen = (size_t)(end - cl->buf) + 4;
    if (hlen >= sizeof(r->head))
        return 0;
    memcpy(r->head, cl->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return 0;
    if (!head_only && r->status >= 200 && header_value(r->head, "Content-Length", cl_s, 32))
        blen = (size_t)atol(cl_s);
    if (cl->len < hlen + blen || blen >= sizeof(r->body))
        return 0;
    memcpy(r->body, cl->buf + hlen, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    memmove(cl->buf, cl->buf + hlen + blen, cl->len - hlen - blen);
    cl->len -= hlen + blen;
    return 1;
}

static int read_response_x(struct client *cl, struct resp *r, int head_only, int timeout_ms)
{
    long end = now_ms() + timeout_ms;

    memset(r, 0, sizeof(*r));
    for (;;) {
        client_fill(cl);
        if (parse_response(cl, r, head_only))
            return 0;
        if (cl->eof || now_ms() > end)
            return -1;
        pump(2);
    }
}

static int read_response(struct client *cl, struct resp *r)
{
    return read_response_x(cl, r, 0, 3000);
}

static void post(const char *path, const char *body, struct resp *r)
{
    struct client *cl = client_open(0);
    char req[2048];

    TEST_NOTNULL(cl);
    snprintf(req, sizeof(req),
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkixcmp\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             path, strlen(body), body);
    TEST_OK(client_sends(cl, req));
    TEST_OK(read_response(cl, r));
    client_close(cl);
}

/* ---------------------------------------------------------------------------------------- */

static void test_routing(void)
{
    static const struct {
        const char *path;
        int status;
        const char *echo; /* prefix of the echoed body */
    } cases[] = {
        {"/ejbca/publicweb/cmp/foo", 200,
         "alias=foo op=- method=POST path=/ejbca/publicweb/cmp/foo "},
        {"/ejbca/publicweb/cmp", 200, "alias=cmp op=- "},
        {"/ejbca/publicweb/cmp/foo/initialization", 200, "alias=foo op=initialization "},
        {"/ejbca/publicweb/cmp/foo/certification", 200, "alias=foo op=certification "},
        {"/ejbca/publicweb/cmp/foo/bogus", 404, NULL},
        {"/.well-known/cmp", 200, "alias=cmp op=- "},
        {"/.well-known/cmp/keyupdate", 200, "alias=cmp op=keyupdate "},
        {"/.well-known/cmp/p/bar", 200, "alias=bar op=- "},
        {"/.well-known/cmp/p/bar/getcacerts", 200, "alias=bar op=getcacerts "},
        {"/.well-known/cmp/p/bar/pkcs10", 200, "alias=bar op=pkcs10 "},
        {"/.well-known/cmp/p/bar/revocation", 200, "alias=bar op=revocation "},
        {"/.well-known/cmp/p/b-a_r.1/nested", 200, "alias=b-a_r.1 op=nested "},
        {"/.well-known/cmp/p/bar/getrootupdate", 200, "alias=bar op=getrootupdate "},
        {"/.well-known/cmp/p/bar/getcertreqtemplate", 200, "alias=bar op=getcertreqtemplate "},
        {"/.well-known/cmp/p/bar/getcrls", 200, "alias=bar op=getcrls "},
        {"/.well-known/cmp/p", 404, NULL},
        {"/.well-known/cmp/bogus", 404, NULL},
        {"/.well-known/cmp/p/bar/initialization/x", 404, NULL},
        {"/.well-known/cmp/p/bar/Initialization", 404, NULL},
        {"//ejbca///publicweb/cmp//foo", 200,
         "alias=foo op=- method=POST path=/ejbca/publicweb/cmp/foo "},
        {"/ejbca/publicweb/cmp/foo?x=1&y=/2", 200,
         "alias=foo op=- method=POST path=/ejbca/publicweb/cmp/foo "},
        {"/.well-known/cmp/p/bar/?q", 200, "alias=bar op=- "},
        {"/EJBCA/publicweb/cmp/foo", 404, NULL},
        {"/ejbca/publicweb/CMP", 404, NULL},
        {"/ejbca/publicweb/cmp/fo%6f", 404, NULL},
        {"/ejbca/publicweb/cmp/a+b", 404, NULL},
        {"/ejbca/publicweb/cmp/..", 404, NULL},
        {"/ejbca/publicweb/cmp/"
         "ab123456789012345678901234567890123456789012345678901234567890123",
         404, NULL},
        {"/ejbca/publicweb/cmp/"
         "123456789012345678901234567890123456789012345678901234567890123",
         200, "alias=123456789012345678901234567890123456789012345678901234567890123 "},
        {"/ejbca/publicweb/cmp/busy", 503, "alias=busy "},
        {"/", 404, NULL},
        {"/other", 404, NULL},
        {"/ejbca", 404, NULL},
    };
    struct resp r;

    start();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        post(cases[i].path, "xy", &r);
        if (r.status != cases[i].status)
            TEST_FAIL_("%s: status %d, want %d", cases[i].path, r.status, cases[i].status);
        if (cases[i].echo != NULL && strncmp(r.body, cases[i].echo, strlen(cases[i].echo)) != 0)
            TEST_FAIL_("%s: body \"%s\", want \"%s...\"", cases[i].path, r.body, cases[i].echo);
    }
    post("/ejbca/publicweb/cmp/foo", "xy", &r);
    TEST_TRUE(strstr(r.body, "peer=yes body=xy") != NULL);
    {
        char ct[64];
        TEST_STREQ(header_value(r.head, "Content-Type", ct, sizeof(ct)), "application/pkixcmp");
    }
}

static void test_root_alias(void)
{
    struct resp r;

    start_kind(CG_TRANSPORT_HTTP, 1024, 4096, 5, 5, 16, "rooty");
    post("/", "b", &r);
    TEST_EQ(r.status, 200);
    TEST_TRUE(strncmp(r.body, "alias=rooty op=- method=POST path=/ ", 36) == 0);
    post("//?x", "b", &r);
    TEST_EQ(r.status, 200);
    TEST_TRUE(strncmp(r.body, "alias=rooty ", 12) == 0);
    post("/initialization", "b", &r);
    TEST_EQ(r.status, 404);
    post("/ejbca/publicweb/cmp/foo", "b", &r);
    TEST_EQ(r.status, 200);
}

static void check_405(const char *method, int head_only)
{
    struct client *cl = client_open(0);
    struct resp r;
    char req[256], allow[32];

    TEST_NOTNULL(cl);
    snprintf(req, sizeof(req), "%s /.well-known/cmp/p/x HTTP/1.1\r\nHost: x\r\n\r\n", method);
    TEST_OK(client_sends(cl, req));
    TEST_OK(read_response_x(cl, &r, head_only, 3000));
    TEST_EQ(r.status, 405);
    TEST_STREQ(header_value(r.head, "Allow", allow, sizeof(allow)), "POST");
    TEST_OK(wait_closed(cl, 3000));
    if (head_only)
        TEST_EQ(cl->len, 0); /* no body after a HEAD response */
    client_close(cl);
}

static void test_405(void)
{
    struct client *cl;
    struct resp r;

    start();
    check_405("GET", 0);
    check_405("HEAD", 1);
    check_405("PUT", 0);
    check_405("DELETE", 0);
    TEST_EQ(ncalls, 0);
    cl = client_open(0);
    TEST_OK(client_sends(cl, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 404);
}

static void test_413_length(void)
{
    struct client *cl;
    struct resp r;

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 1025\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 413);
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\n"
                             "Content-Length: 99999999999999999999999999\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 413);
    TEST_EQ(ncalls, 0);
    client_close(cl);
    /* the body is already on its way: the 413 must still arrive (no reset), and the
     * lingering connection goes away by itself even if the client keeps it open */
    {
        static char body[5000];
        long end;
        memset(body, 'b', sizeof(body));
        cl = client_open(0);
        TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"));
        TEST_OK(client_send(cl, body, sizeof(body)));
        TEST_OK(read_response(cl, &r));
        TEST_EQ(r.status, 413);
        TEST_OK(wait_closed(cl, 3000));
        end = now_ms() + 4000;
        while (cg_http_connections(srv) > 0 && now_ms() < end)
            pump(5);
        TEST_EQ(cg_http_connections(srv), 0);
        client_close(cl);
    }
    /* exactly the limit passes */
    {
        char big[1100];
        memset(big, 'a', 1024);
        big[1024] = '\0';
        post("/.well-known/cmp", big, &r);
        TEST_EQ(r.status, 200);
    }
}

static void test_413_chunked(void)
{
    struct client *cl;
    struct resp r;
    char chunk[600];

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "200\r\n"));
    memset(chunk, 'a', 512);
    TEST_OK(client_send(cl, chunk, 512));
    TEST_OK(client_sends(cl, "\r\n200\r\n"));
    TEST_OK(client_send(cl, chunk, 512));
    TEST_OK(client_sends(cl, "\r\n1\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 413);
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    /* a huge chunk size is refused before anything is buffered */
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "fffffffffffffffffffffffff\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 413);
    TEST_EQ(ncalls, 0);
}

static void test_431(void)
{
    struct client *cl;
    struct resp r;
    static char big[20000];

    start();
    cl = client_open(0);
    memset(big, 'a', sizeof(big) - 1);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nX-Big: "));
    client_send(cl, big, sizeof(big) - 1); /* the server may close before all is sent */
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 431);
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    /* many small headers add up */
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\n"));
    for (int i = 0; i < 400; i++)
        if (client_sends(cl, "X-Small: 0123456789\r\n") != 0)
            break;
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 431);
    TEST_EQ(ncalls, 0);
}

static void check_400(const char *req)
{
    struct client *cl = client_open(0);
    struct resp r;

    TEST_NOTNULL(cl);
    TEST_OK(client_sends(cl, req));
    TEST_OK(read_response(cl, &r));
    if (r.status != 400)
        TEST_FAIL_("\"%s\": status %d, want 400", req, r.status);
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
}

static void test_400(void)
{
    struct client *cl;
    struct resp r;

    start();
    check_400("GARBAGE\r\n\r\n");
    check_400("\x01\x02\x03 / HTTP/1.1\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/2.0\r\n\r\n");
    check_400("POST /.well-known/cmp\r\n\r\n");
    check_400("POST  /.well-known/cmp HTTP/1.1\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nNoColon\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nBad Name: x\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 1x\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
              "Content-Length: 3\r\n\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "2\r\nabXY");
    check_400("POST /.well-known/cmp HTTP/1.1\r\nX: a\r\n folded\r\n\r\n");
    check_400("POST .well-known/cmp HTTP/1.1\r\n\r\n");
    TEST_EQ(ncalls, 0);
    /* 411: POST with neither length nor chunking */
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 411);
}

static void test_chunked(void)
{
    struct client *cl;
    struct resp r;

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp/p/ch HTTP/1.1\r\nHost: x\r\n"
                             "Transfer-Encoding: Chunked\r\n\r\n"
                             "5\r\nhello\r\n6;ext=1\r\n world\r\nA \r\n0123456789\r\n"
                             "0\r\nX-Trailer: t\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(strstr(r.body, "body="), "body=hello world0123456789");
    /* the connection stays usable: an empty chunked body with bare LFs */
    TEST_OK(client_sends(cl, "POST /.well-known/cmp/p/ch2 HTTP/1.1\n"
                             "Transfer-Encoding: chunked\n\n0\n\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_TRUE(strncmp(r.body, "alias=ch2 ", 10) == 0);
    TEST_STREQ(strstr(r.body, "body="), "body=");
}

static void test_continue(void)
{
    struct client *cl;
    struct resp r;

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\n"
                             "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 100);
    TEST_EQ(ncalls, 0);
    TEST_OK(client_sends(cl, "abcd"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(strstr(r.body, "body="), "body=abcd");
}

static void test_keepalive(void)
{
    struct client *cl;
    struct resp r;
    const char *req = "POST /ejbca/publicweb/cmp/ka HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 3\r\n\r\nabc";
    char v[32];

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, req));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_TRUE(header_value(r.head, "Connection", v, sizeof(v)) == NULL);
    /* the whole head, as written: status line, Content-Type, Content-Length, nothing else */
    char want[256];
    snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n\r\n", r.body_len);
    TEST_EQ(strncmp(r.head, "HTTP/1.1 200 OK\r\nContent-Type: ", 31), 0);
    TEST_STREQ(strstr(r.head, "\r\nContent-Length:"), want);
    TEST_TRUE(strchr(r.head + 31, ':') == strstr(r.head, "\r\nContent-Length:") + 16);
    TEST_OK(client_sends(cl, req));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(strstr(r.body, "body="), "body=abc");
    pump(20);
    TEST_EQ(cg_http_connections(srv), 1);
    TEST_FALSE(cl->eof);
    /* an error reply keeps nothing open */
    TEST_OK(client_sends(cl, "POST /nope HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 404);
    TEST_STREQ(header_value(r.head, "Connection", v, sizeof(v)), "close");
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    pump(20);
    TEST_EQ(cg_http_connections(srv), 0);
}

static void test_http10(void)
{
    struct client *cl;
    struct resp r;
    char v[32];

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(header_value(r.head, "Connection", v, sizeof(v)), "close");
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    /* HTTP/1.0 with keep-alive stays open */
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.0\r\nConnection: Keep-Alive\r\n"
                             "Content-Length: 2\r\n\r\nhi"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(header_value(r.head, "Connection", v, sizeof(v)), "keep-alive");
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.0\r\nContent-Length: 2\r\n\r\nho"));
    TEST_OK(read_response(cl, &r));
    TEST_STREQ(strstr(r.body, "body="), "body=ho");
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    /* HTTP/1.1 with Connection: close */
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nConnection: close\r\n"
                             "Content-Length: 2\r\n\r\nhi"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_OK(wait_closed(cl, 3000));
}

/* Two pipelined requests in one write: "defer" (held by the gateway) and "after". */
static int send_defer_then_after(struct client *cl)
{
    int rc =
        client_sends(cl, "POST /.well-known/cmp/p/defer HTTP/1.1\r\nContent-Length: 1\r\n\r\nd"
                         "POST /.well-known/cmp/p/after HTTP/1.1\r\nContent-Length: 1\r\n\r\na");
    pump(100);
    return rc;
}

/* Two pipelined requests, then the client's FIN while the first is with the gateway: both
 * are answered, then the connection closes. */
static void test_halfclose_pipeline(void)
{
    struct client *cl;
    struct resp r;

    start();
    ncalls = 0;
    cl = client_open(0);
    TEST_OK(send_defer_then_after(cl));
    shutdown(cl->fd, SHUT_WR);
    pump(100);
    TEST_EQ(nheld, 1);
    cg_request_reply(held[0], 200, "application/x-test", (const uint8_t *)"deferred", 8);
    held[0] = NULL;
    TEST_OK(read_response(cl, &r));
    TEST_STREQ(r.body, "deferred");
    TEST_OK(read_response(cl, &r));
    TEST_TRUE(strncmp(r.body, "alias=after ", 12) == 0);
    TEST_EQ(ncalls, 2);
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
}

static void test_pipeline(void)
{
    struct client *cl;
    struct resp r;

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp/p/one HTTP/1.1\r\nContent-Length: 1\r\n\r\n1"
                             "POST /.well-known/cmp/p/two HTTP/1.1\r\nTransfer-Encoding: "
                             "chunked\r\n\r\n1\r\n2\r\n0\r\n\r\n"
                             "POST /.well-known/cmp/p/three HTTP/1.1\r\nContent-Length: 1\r\n"
                             "Connection: close\r\n\r\n3"));
    TEST_OK(read_response(cl, &r));
    TEST_TRUE(strncmp(r.body, "alias=one ", 10) == 0);
    TEST_OK(read_response(cl, &r));
    TEST_TRUE(strncmp(r.body, "alias=two ", 10) == 0);
    TEST_STREQ(strstr(r.body, "body="), "body=2");
    TEST_OK(read_response(cl, &r));
    TEST_TRUE(strncmp(r.body, "alias=three ", 12) == 0);
    TEST_OK(wait_closed(cl, 3000));
    client_close(cl);
    /* while a request is with the gateway, the next one is not read */
    ncalls = 0;
    cl = client_open(0);
    TEST_OK(send_defer_then_after(cl));
    TEST_EQ(nheld, 1);
    TEST_EQ(ncalls, 1);
    cg_request_reply(held[0], 200, "application/x-test", (const uint8_t *)"deferred", 8);
    held[0] = NULL;
    TEST_OK(read_response(cl, &r));
    TEST_STREQ(r.body, "deferred");
    {
        char v[64];
        TEST_STREQ(header_value(r.head, "Content-Type", v, sizeof(v)), "application/x-test");
    }
    TEST_OK(read_response(cl, &r));
    TEST_TRUE(strncmp(r.body, "alias=after ", 12) == 0);
    TEST_EQ(ncalls, 2);
}

static void test_bytewise(void)
{
    struct client *cl;
    struct resp r;
    const char *req = "POST /.well-known/cmp/p/slow HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 10\r\n\r\n0123456789";
    const char *chunked = "POST /.well-known/cmp/p/slow2 HTTP/1.1\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;e=f\r\nde\r\n0\r\n\r\n";

    start();
    cl = client_open(0);
    for (const char *p = req; *p != '\0'; p++) {
        TEST_OK(client_send(cl, p, 1));
        pump(1);
    }
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(strstr(r.body, "body="), "body=0123456789");
    for (const char *p = chunked; *p != '\0'; p++) {
        TEST_OK(client_send(cl, p, 1));
        pump(1);
    }
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_STREQ(strstr(r.body, "body="), "body=abcde");
}

static void test_idle_timeout(void)
{
    struct client *cl;
    struct resp r;
    long t0;

    start_kind(CG_TRANSPORT_HTTP, 1024, 4096, 1, 5, 16, NULL);
    cl = client_open(0);
    t0 = now_ms();
    pump(20);
    TEST_EQ(cg_http_connections(srv), 1);
    TEST_OK(wait_closed(cl, 3000));
    TEST_TRUE(now_ms() - t0 >= 900);
    pump(10);
    TEST_EQ(cg_http_connections(srv), 0);
    client_close(cl);
    /* after a keep-alive reply, the idle timeout applies again */
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_OK(wait_closed(cl, 3000));
}

static void test_read_timeout(void)
{
    struct client *cl;
    const char *req =
        "POST /.well-known/cmp HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa";
    long t0;

    start_kind(CG_TRANSPORT_HTTP, 1024, 4096, 10, 1, 16, NULL);
    cl = client_open(0);
    t0 = now_ms();
    /* one byte every 100 ms: the connection is never idle, yet the request never ends */
    for (const char *p = req; *p != '\0' && !cl->eof && now_ms() - t0 < 4000; p++) {
        if (client_send(cl, p, 1) != 0)
            break;
        pump(100);
        client_fill(cl);
    }
    TEST_OK(wait_closed(cl, 3000));
    TEST_TRUE(now_ms() - t0 < 2500);
    TEST_TRUE(now_ms() - t0 >= 900);
    pump(10);
    TEST_EQ(cg_http_connections(srv), 0);
    /* a slow body too */
    client_close(cl);
    cl = client_open(0);
    t0 = now_ms();
    TEST_OK(client_sends(cl, "POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 100\r\n\r\n"));
    for (int i = 0; i < 40 && !cl->eof; i++) {
        if (client_sends(cl, "x") != 0)
            break;
        pump(100);
        client_fill(cl);
    }
    TEST_OK(wait_closed(cl, 3000));
    TEST_TRUE(now_ms() - t0 < 2500);
    TEST_EQ(ncalls, 0);
}

static void test_conn_cap(void)
{
    struct client *a, *b, *c;
    struct resp r;

    start_kind(CG_TRANSPORT_HTTP, 1024, 4096, 5, 5, 2, NULL);
    a = client_open(0);
    b = client_open(1);
    pump(50);
    TEST_EQ(cg_http_connections(srv), 2);
    c = client_open(2);
    TEST_NOTNULL(c);
    TEST_OK(wait_closed(c, 3000));
    TEST_TRUE(c->len == 0 || strncmp(c->buf, "HTTP/1.1 503", 12) == 0);
    TEST_EQ(cg_http_connections(srv), 2);
    TEST_OK(client_sends(a, "POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    TEST_OK(read_response(a, &r));
    TEST_EQ(r.status, 200);
    /* once one closes, a new connection is served */
    client_close(b);
    pump(50);
    TEST_EQ(cg_http_connections(srv), 1);
    client_close(c);
    c = client_open(2);
    TEST_OK(client_sends(c, "POST /.well-known/cmp HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    TEST_OK(read_response(c, &r));
    TEST_EQ(r.status, 200);
}

static void reply_later(evutil_socket_t fd, short what, void *arg)
{
    struct cg_request **slot = arg;

    (void)fd;
    (void)what;
    cg_request_reply(*slot, 200, NULL, (const uint8_t *)"late", 4);
    *slot = NULL;
}

static void test_orphan(void)
{
    struct client *cl;
    struct timeval tv = {0, 100000};
    long end;

    start();
    cl = client_open(0);
    TEST_OK(
        client_sends(cl, "POST /.well-known/cmp/p/defer HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"));
    end = now_ms() + 3000;
    while (nheld == 0 && now_ms() < end)
        pump(2);
    TEST_EQ(nheld, 1);
    TEST_STREQ(cg_request_alias(held[0]), "defer");
    TEST_EQ(cg_request_orphaned(held[0]), 0);
    client_close(cl);
    pump(20);
    TEST_OK(event_base_once(base, -1, EV_TIMEOUT, reply_later, &held[0], &tv));
    end = now_ms() + 3000;
    while ((held[0] != NULL || cg_http_connections(srv) > 0) && now_ms() < end)
        pump(2);
    TEST_TRUE(held[0] == NULL);
    TEST_EQ(cg_http_connections(srv), 0);
}

static void test_free_outstanding(void)
{
    struct client *cl;
    long end;
    size_t len;

    start();
    cl = client_open(0);
    TEST_OK(client_sends(cl, "POST /.well-known/cmp/p/defer/pkcs10 HTTP/1.1\r\n"
                             "Content-Length: 3\r\n\r\nxyz"));
    end = now_ms() + 3000;
    while (nheld == 0 && now_ms() < end)
        pump(2);
    TEST_EQ(nheld, 1);
    cg_http_free(srv);
    srv = NULL;
    TEST_EQ(cg_request_orphaned(held[0]), 1);
    TEST_STREQ(cg_request_op(held[0]), "pkcs10");
    TEST_TRUE(memcmp(cg_request_body(held[0], &len), "xyz", 3) == 0);
    TEST_EQ(len, 3);
    TEST_OK(wait_closed(cl, 3000));
    cg_request_reply(held[0], 200, NULL, (const uint8_t *)"gone", 4);
    held[0] = NULL;
}

static void test_stop_accepting(void)
{
    struct client *idle, *busy, *late;
    struct resp r;
    long end;

    start();
    idle = client_open(0);
    busy = client_open(1);
    TEST_OK(
        client_sends(busy, "POST /.well-known/cmp/p/defer HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    end = now_ms() + 3000;
    while (nheld == 0 && now_ms() < end)
        pump(2);
    TEST_EQ(nheld, 1);
    TEST_EQ(cg_http_connections(srv), 2);
    cg_http_stop_accepting(srv);
    TEST_OK(wait_closed(idle, 3000));
    TEST_EQ(cg_http_connections(srv), 1);
    late = client_open(2);
    pump(50);
    TEST_EQ(cg_http_connections(srv), 1);
    (void)late;
    cg_request_reply(held[0], 200, NULL, (const uint8_t *)"bye", 3);
    held[0] = NULL;
    TEST_OK(read_response(busy, &r));
    TEST_EQ(r.status, 200);
    TEST_OK(wait_closed(busy, 3000));
    client_close(busy);
    pump(10);
    TEST_EQ(cg_http_connections(srv), 0);
}

static void test_admin(void)
{
    struct client *cl;
    struct resp r;

    start_kind(CG_TRANSPORT_ADMIN, 1024, 4096, 5, 5, 16, NULL);
    cl = client_open(0);
    TEST_OK(client_sends(cl, "GET /healthz?x HTTP/1.1\r\nHost: x\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_EQ(r.status, 200);
    TEST_TRUE(strncmp(r.body, "alias=- op=- method=GET path=/healthz ", 38) == 0);
    TEST_OK(client_sends(cl, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    TEST_OK(read_response_x(cl, &r, 1, 3000));
    TEST_EQ(r.status, 200);
    TEST_OK(client_sends(cl, "GET /x HTTP/1.1\r\n\r\n"));
    TEST_OK(read_response(cl, &r));
    TEST_TRUE(strncmp(r.body, "alias=- op=- method=GET path=/x ", 32) == 0);
}

/* Every allocation of a keep-alive exchange on a new connection (accept, read, parse, hand
 * over, reply), libevent's and ours, fails once in turn: the client gets the right answer,
 * an error status or a closed connection (nothing within 200 ms counts as refused, the read
 * timeout ends it), never a crash or a leak (AddressSanitizer); the server then still serves
 * a new connection. */
static void test_alloc_failures(void)
{
    const char *req = "POST /ejbca/publicweb/cmp/oom HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 5\r\n\r\nhello";
    struct resp r;
    struct oom_tally tally = {0, 0};
    long n;
    start();
    for (n = 1; n < 10000; n++) {
        struct client *cl = client_open(0);
        TEST_NOTNULL(cl);
        oom_start(n);
        oom_arm(1);
        int ok =
            client_sends(cl, req) == 0 && read_response_x(cl, &r, 0, 200) == 0 && r.status == 200;
        oom_stop();
        if (ok)
            TEST_STREQ(strstr(r.body, "body="), "body=hello");
        client_close(cl);
        if (oom_done(&tally, ok)) {
            TEST_TRUE(ok);
            break;
        }
        /* the server is unharmed: a new connection is served */
        cl = client_open(1);
        TEST_NOTNULL(cl);
        TEST_OK(client_sends(cl, req));
        TEST_OK(read_response(cl, &r));
        TEST_EQ(r.status, 200);
        TEST_STREQ(strstr(r.body, "body="), "body=hello");
        client_close(cl);
    }
    oom_report("HTTP exchange", &tally);
    TEST_TRUE(n > 5);
    TEST_TRUE(tally.refused > 0);
}

static void test_bind(void)
{
    char bound[64];
    int rc;

    start();
    TEST_RC(cg_http_bind(srv, "nope", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_http_bind(srv, "127.0.0.1:99999", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_http_bind(srv, "127.0.0.1:", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_http_bind(srv, "::1:80", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_http_bind(srv, "[::1:80", bound, sizeof(bound)), CG_EINVAL);
    TEST_RC(cg_http_bind(srv, "127.0.0.1:x", bound, sizeof(bound)), CG_EINVAL);
    rc = cg_http_bind(srv, "[::1]:0", bound, sizeof(bound));
    TEST_TRUE(rc == CG_OK || rc == CG_EIO || rc == CG_EINVAL); /* no IPv6 in some sandboxes */
    if (rc == CG_OK)
        TEST_TRUE(strncmp(bound, "[::1]:", 6) == 0 && atoi(bound + 6) > 0);
}

CG_TESTS = {
    CG_TEST("http/routing", test_routing),
    CG_TEST("http/root_alias", test_root_alias),
    CG_TEST("http/405", test_405),
    CG_TEST("http/413_length", test_413_length),
    CG_TEST("http/413_chunked", test_413_chunked),
    CG_TEST("http/431", test_431),
    CG_TEST("http/400_411", test_400),
    CG_TEST("http/chunked", test_chunked),
    CG_TEST("http/continue", test_continue),
    CG_TEST("http/keepalive", test_keepalive),
    CG_TEST("http/http10", test_http10),
    CG_TEST("http/pipeline", test_pipeline),
    CG_TEST("http/halfclose_pipeline", test_halfclose_pipeline),
    CG_TEST("http/bytewise", test_bytewise),
    CG_TEST("http/idle_timeout", test_idle_timeout),
    CG_TEST("http/read_timeout", test_read_timeout),
    CG_TEST("http/conn_cap", test_conn_cap),
    CG_TEST("http/orphan", test_orphan),
    CG_TEST("http/alloc_failures", test_alloc_failures),
    CG_TEST("http/free_outstanding", test_free_outstanding),
    CG_TEST("http/stop_accepting", test_stop_accepting),
    CG_TEST("http/admin", test_admin),
    CG_TEST("http/bind", test_bind),
};

/* the harness's main keeps loop counters across setjmp; they are not modified between
 * setjmp and longjmp, so the -O2 warning is a false positive */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning */
#pragma GCC diagnostic ignored "-Wclobbered"
#endif
CG_TEST_MAIN(set_up, tear_down)
