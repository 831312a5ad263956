/*
 * tcprelay.c - test tool: an HTTP-to-CMP-over-TCP relay, and a raw TCP client.
 *
 * Relay:  tcprelay --listen HOST:PORT --to HOST:PORT --form 10|2510 [--per-message]
 *   prints "RELAY http=HOST:PORT" once listening, then serves one HTTP client at a time
 *   (`openssl cmp -server` points here). Each POST body (Content-Length) is wrapped into a
 *   request frame of the chosen form (version 10: pkiReq; RFC 2510: pkiMsg) and sent on ONE
 *   persistent TCP connection to the server (close bit 0), or on a new connection per
 *   message with --per-message (version 10: close bit 1). The answer frame's payload comes
 *   back as "200, application/pkixcmp"; a finRep / errorMsgRep / broken answer as 502 (and the
 *   TCP connection is dropped). Every new TCP connection prints "CONNECT n" on stdout, so a
 *   test can count them. HTTP responses carry "Connection: close".
 * Raw:    tcprelay --raw HOST:PORT [--eof] [--bytewise] [--wait MS] [--out FILE] ITEM...
 *   sends the ITEMs in order: HEX bytes, @FILE (file bytes), v10:TYPE:FLAGS:DATA or
 *   r2510:TYPE:DATA (a frame around DATA, which is HEX or @FILE; "-" for empty); --bytewise
 *   sends one byte at a time, --eof half-closes after sending. It then prints the hex of
 *   everything received and "CLOSED" (the server closed) or "OPEN" (still open after --wait
 *   ms, default 3000). --out writes the received bytes to FILE.
 * DESIGN: plain blocking POSIX sockets, one process, no threads; timeouts via SO_RCVTIMEO.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 16384
#define MAX_BODY (16 * 1024 * 1024)

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

static int upstream_count;

static void die(const char *msg)
{
    fprintf(stderr, "tcprelay: %s\n", msg);
    exit(2);
}

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 64;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            die("out of memory");
        b->p = q;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void split_hostport(const char *hp, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(hp, ':');

    if (colon == NULL || (size_t)(colon - hp) >= hl || strlen(colon + 1) >= pl)
        die("bad HOST:PORT");
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    snprintf(port, pl, "%s", colon + 1);
}

static void set_timeout(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_to(const char *hp)
{
    char host[256], port[16];
    struct addrinfo hints, *ai = NULL;
    int fd = -1, one = 1;

    split_hostport(hp, host, sizeof(host), port, sizeof(port));
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        set_timeout(fd, 30000);
    }
    return fd;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* @return 0, or -1 on EOF / error before n bytes */
static int recv_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static size_t frame_header(uint8_t *h, int form, int type, int flags, size_t len)
{
    uint32_t l = (uint32_t)(len + (form == 10 ? 3 : 1));

    h[0] = (uint8_t)(l >> 24);
    h[1] = (uint8_t)(l >> 16);
    h[2] = (uint8_t)(l >> 8);
    h[3] = (uint8_t)l;
    if (form == 10) {
        h[4] = 10;
        h[5] = (uint8_t)flags;
        h[6] = (uint8_t)type;
        return 7;
    }
    h[4] = (uint8_t)type;
    return 5;
}

/* ---------------------------------------------------------------------------------------- */
/* relay                                                                                    */

/* One exchange on fd. *type gets the answer type, *flags its flags.
 * @return 0 with the payload in ans, -1 when the connection failed before any answer byte,
 * -2 on a broken answer */
static int exchange(int fd, int form, int flags, const uint8_t *body, size_t len, struct bytes *ans,
                    int *type, int *aflags)
{
    uint8_t h[7];
    uint32_t l;
    size_t hl = frame_header(h, form, 0, flags, len), over;

    ans->len = 0;
    if (send_all(fd, h, hl) != 0 || send_all(fd, body, len) != 0)
        return -1;
    if (recv_all(fd, h, 5) != 0)
        return -1;
    l = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    *aflags = 0;
    if (h[4] == 10) {
        if (recv_all(fd, h + 5, 2) != 0)
            return -2;
        *aflags = h[5];
        *type = h[6];
        over = 3;
    } else if (h[4] < 10) {
        *type = h[4];
        over = 1;
    } else {
        return -2;
    }
    if (l < over || l - over > MAX_BODY)
        return -2;
    bytes_add(ans, NULL, 0);
    ans->len = 0;
    {
        size_t n = l - over;
        uint8_t *tmp = malloc(n + 1);
        if (tmp == NULL || recv_all(fd, tmp, n) != 0) {
            free(tmp);
            return -2;
        }
        bytes_add(ans, tmp, n);
        free(tmp);
    }
    return 0;
}

static void http_reply(int cfd, int status, const char *ctype, const uint8_t *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status,
                     status == 200   ? "OK"
                     : status == 502 ? "Bad Gateway"
                                     : "Bad Request",
                     ctype, len);

    send_all(cfd, (const uint8_t *)head, (size_t)n);
    send_all(cfd, body, len);
}

/* Read one HTTP request from cfd; body into b. @return 0 or -1 */
static int read_http(int cfd, struct bytes *b)
{
    char head[MAX_HEAD + 1];
    size_t hl = 0, clen = 0, have;
    char *end = NULL, *p;

    b->len = 0;
    while (end == NULL) {
        ssize_t r;
        if (hl == MAX_HEAD)
            return -1;
        r = recv(cfd, head + hl, MAX_HEAD - hl, 0);
        if (r <= 0)
            return -1;
        hl += (size_t)r;
        head[hl] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    *end = '\0';
    for (p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            clen = (size_t)strtoul(p + 17, NULL, 10);
    if (clen > MAX_BODY)
        return -1;
    have = hl - (size_t)(end + 4 - head);
    if (have > clen)
        have = clen;
    bytes_add(b, end + 4, have);
    if (clen > have) {
        uint8_t *tmp = malloc(clen - have);
        if (tmp == NULL || recv_all(cfd, tmp, clen - have) != 0) {
            free(tmp);
            return -1;
        }
        bytes_add(b, tmp, clen - have);
        free(tmp);
    }
    return 0;
}

static int upstream_connect(const char *to)
{
    int fd = connect_to(to);

    if (fd >= 0) {
        printf("CONNECT %d\n", ++upstream_count);
        fflush(stdout);
    }
    return fd;
}

static int run_relay(const char *listen_hp, const char *to, int form, int per_message)
{
    char host[256], port[16];
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int lfd, one = 1, up = -1;
    struct bytes req = {0}, ans = {0};

    split_hostport(listen_hp, host, sizeof(host), port, sizeof(port));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        die("--listen needs an IPv4 address");
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 16) != 0)
        die("cannot listen");
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    printf("RELAY http=%s:%d\n", host, ntohs(sin.sin_port));
    fflush(stdout);
    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        int rc = -1, type = -1, aflags = 0;
        if (cfd < 0)
            continue;
        set_timeout(cfd, 30000);
        if (read_http(cfd, &req) != 0) {
            close(cfd);
            continue;
        }
        for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
            int fresh = 0;
            if (up < 0) {
                up = upstream_connect(to);
                fresh = 1;
            }
            if (up < 0)
                break;
            rc = exchange(up, form, per_message && form == 10 ? 1 : 0, req.p, req.len, &ans, &type,
                          &aflags);
            if (rc != 0) {
                close(up);
                up = -1;
            }
            if (fresh && rc == -1)
                break; /* a new connection that fails is not retried */
        }
        if (rc == 0 && type == 5) {
            http_reply(cfd, 200, "application/pkixcmp", ans.p, ans.len);
            if (per_message || (form == 10 && (aflags & 1))) {
                close(up);
                up = -1;
            }
        } else {
            char msg[64];
            int n = snprintf(msg, sizeof(msg), "TCP answer: %s type %d\n",
                             rc == 0 ? "error frame" : "none", type);
            http_reply(cfd, 502, "text/plain", (const uint8_t *)msg, (size_t)n);
            if (up >= 0)
                close(up);
            up = -1;
        }
        close(cfd);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* raw                                                                                      */

static void add_hex(struct bytes *b, const char *hex)
{
    size_t n = strlen(hex);

    if (strcmp(hex, "-") == 0)
        return;
    if (n % 2 != 0)
        die("odd hex string");
    for (size_t i = 0; i < n; i += 2) {
        char two[3] = {hex[i], hex[i + 1], '\0'};
        char *end;
        uint8_t v = (uint8_t)strtoul(two, &end, 16);
        if (*end != '\0')
            die("bad hex");
        bytes_add(b, &v, 1);
    }
}

static void add_file(struct bytes *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t buf[4096];
    size_t n;

    if (f == NULL)
        die("cannot open file");
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        bytes_add(b, buf, n);
    fclose(f);
}

static void add_data(struct bytes *b, const char *data)
{
    if (data[0] == '@')
        add_file(b, data + 1);
    else
        add_hex(b, data);
}

static void add_item(struct bytes *b, const char *item)
{
    struct bytes pl = {0};
    uint8_t h[7];
    int type = 0, flags = 0, form;
    const char *data;

    if (strncmp(item, "v10:", 4) == 0 || strncmp(item, "r2510:", 6) == 0) {
        char *end;
        form = item[0] == 'v' ? 10 : 2510;
        data = item + (form == 10 ? 4 : 6);
        type = (int)strtol(data, &end, 10);
        if (*end != ':')
            die("bad frame item");
        data = end + 1;
        if (form == 10) {
            flags = (int)strtol(data, &end, 10);
            if (*end != ':')
                die("bad frame item");
            data = end + 1;
        }
        add_data(&pl, data);
        bytes_add(b, h, frame_header(h, form, type, flags, pl.len));
        bytes_add(b, pl.p, pl.len);
        free(pl.p);
    } else {
        add_data(b, item);
    }
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run_raw(const char *to, int eof, int bytewise, int wait_ms, const char *out,
                   char **items, int nitems)
{
    struct bytes b = {0}, got = {0};
    int fd = connect_to(to), closed = 0;
    long end;

    if (fd < 0)
        die("cannot connect");
    for (int i = 0; i < nitems; i++)
        add_item(&b, items[i]);
    if (bytewise) {
        for (size_t i = 0; i < b.len; i++) {
            if (send_all(fd, b.p + i, 1) != 0)
                break;
            poll(NULL, 0, 1);
        }
    } else {
        send_all(fd, b.p, b.len);
    }
    if (eof)
        shutdown(fd, SHUT_WR);
    end = now_ms() + wait_ms;
    while (!closed) {
        struct pollfd pfd = {fd, POLLIN, 0};
        long left = end - now_ms();
        uint8_t buf[4096];
        ssize_t r;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        r = recv(fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            closed = 1;
        else
            bytes_add(&got, buf, (size_t)r);
    }
    for (size_t i = 0; i < got.len; i++)
        printf("%02x", got.p[i]);
    printf("\n%s\n", closed ? "CLOSED" : "OPEN");
    if (out != NULL) {
        FILE *f = fopen(out, "wb");
        if (f == NULL || fwrite(got.p, 1, got.len, f) != got.len)
            die("cannot write --out");
        fclose(f);
    }
    close(fd);
    free(b.p);
    free(got.p);
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_hp = NULL, *to = NULL, *raw = NULL, *out = NULL;
    int form = 10, per_message = 0, eof = 0, bytewise = 0, wait_ms = 3000, i;

    signal(SIGPIPE, SIG_IGN);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_hp = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (strcmp(argv[i], "--form") == 0 && i + 1 < argc)
            form = atoi(argv[++i]);
        else if (strcmp(argv[i], "--per-message") == 0)
            per_message = 1;
        else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc)
            raw = argv[++i];
        else if (strcmp(argv[i], "--eof") == 0)
            eof = 1;
        else if (strcmp(argv[i], "--bytewise") == 0)
            bytewise = 1;
        else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc)
            wait_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] == '-')
            die("usage: tcprelay --listen H:P --to H:P --form 10|2510 [--per-message] | "
                "tcprelay --raw H:P [--eof] [--bytewise] [--wait MS] [--out FILE] ITEM...");
        else
            break;
    }
    if (raw != NULL)
        return run_raw(raw, eof, bytewise, wait_ms, out, argv + i, argc - i);
    if (listen_hp == NULL || to == NULL || (form != 10 && form != 2510) || i != argc)
        die("usage: tcprelay --listen H:P --to H:P --form 10|2510 [--per-message]");
    return run_relay(listen_hp, to, form, per_message);
}
