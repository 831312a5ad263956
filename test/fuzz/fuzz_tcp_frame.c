/*
 * fuzz_tcp_frame.c - fuzz target: the stateless CMP-over-TCP framer (transports/tcp_frame.h).
 *
 * DESIGN: the input is a byte stream as a TCP connection would deliver it. The target cuts
 * it into frames the way the connection code does (parse the buffered prefix, consume a
 * complete frame, repeat) and checks, for every frame:
 *   - every prefix of the buffered bytes (every split point of the read) gives either
 *     CG_EINCOMPLETE or exactly the answer of the whole buffer (same return, form, type,
 *     flags, lengths), and a complete frame is reported as incomplete on every shorter
 *     prefix (the result does not depend on how the reads were split);
 *   - a complete frame: consumed bytes (the return) <= bytes buffered, frame_len ==
 *     header_len + payload_len, payload == buf + header_len, payload_len <= max_payload,
 *     and cg_tcp_frame_header() writes back exactly the header bytes that were parsed
 *     (v10 flags byte included);
 *   - CG_EINCOMPLETE after a complete header says how many bytes it needs (frame_len >
 *     buffered), an error is one of the documented codes.
 * Then the whole stream is re-cut after splitting it into two reads at every point (the
 * first read parsed alone, then the rest appended): the sequence of frames and the final
 * result must equal the unsplit sequence. Two limits are used (1 MiB and 64 bytes), chosen by
 * the low bit of the input length, so CG_ETOOBIG is reachable with short inputs.
 */
#include "cg_err.h"
#include "tcp_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 4096

static int same(const struct cg_tcp_frame *a, const struct cg_tcp_frame *b)
{
    return a->form == b->form && a->type == b->type && a->flags == b->flags &&
           a->header_len == b->header_len && a->payload_len == b->payload_len &&
           a->frame_len == b->frame_len && a->payload == b->payload;
}

static void check_one(const uint8_t *buf, size_t len, size_t max, int rc,
                      const struct cg_tcp_frame *f)
{
    if (rc > 0) {
        if ((size_t)rc > len || (size_t)rc != f->frame_len ||
            f->frame_len != f->header_len + f->payload_len || f->payload != buf + f->header_len ||
            f->payload_len > max || (f->header_len != 5 && f->header_len != 7))
            abort();
        uint8_t hdr[CG_TCP_MAX_HEADER];
        int hl = cg_tcp_frame_header(hdr, f->form, f->type, f->flags, f->payload_len);
        if (hl != (int)f->header_len || memcmp(hdr, buf, (size_t)hl) != 0)
            abort(); /* the writer does not reproduce what the parser accepted */
    } else if (rc == CG_EINCOMPLETE) {
        if (f->frame_len != 0 && f->frame_len <= len)
            abort();
        if (f->payload != NULL)
            abort();
    } else if (rc != CG_EPARSE && rc != CG_ETOOBIG) {
        abort();
    }
}

/* Cuts buf[0..len) into frames; records each frame length (and the final code) in out. */
static size_t cut(const uint8_t *buf, size_t len, size_t max, int *out, size_t nout)
{
    size_t off = 0, n = 0;
    while (n < nout) {
        struct cg_tcp_frame f;
        int rc = cg_tcp_frame_parse(buf + off, len - off, max, &f);
        check_one(buf + off, len - off, max, rc, &f);
        out[n++] = rc;
        if (rc <= 0)
            break;
        off += (size_t)rc;
        if (off > len)
            abort();
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int whole[MAX_FRAMES], split[MAX_FRAMES];
    size_t max = (size & 1) ? 64 : 1048576;
    struct cg_tcp_frame f, g;

    if (cg_tcp_frame_parse(NULL, 0, max, &f) != CG_EINCOMPLETE ||
        cg_tcp_frame_parse(data, size, max, NULL) != CG_EINVAL)
        abort();

    /* every prefix of each frame position against the whole rest */
    size_t off = 0;
    for (size_t nf = 0; nf < MAX_FRAMES; nf++) {
        const uint8_t *b = data + off;
        size_t len = size - off;
        int rc = cg_tcp_frame_parse(b, len, max, &f);
        check_one(b, len, max, rc, &f);
        /* past the header (7 bytes) an error cannot change; past a complete frame nothing can */
        size_t kmax = rc > 0 ? (size_t)rc + 8 : rc == CG_EINCOMPLETE ? len : 16;
        for (size_t k = 0; k < len && k <= kmax; k++) {
            int r = cg_tcp_frame_parse(b, k, max, &g);
            check_one(b, k, max, r, &g);
            if (r == CG_EINCOMPLETE) {
                if (rc > 0 && k >= (size_t)rc)
                    abort(); /* a complete frame reported incomplete */
                continue;
            }
            if (rc > 0 && k < (size_t)rc)
                abort(); /* a frame reported complete before all its bytes arrived */
            if (r != rc || !same(&f, &g))
                abort(); /* the answer depends on where the read was split */
        }
        if (rc <= 0)
            break;
        off += (size_t)rc;
    }

    /* two reads, split at every point, against one read */
    size_t nw = cut(data, size, max, whole, MAX_FRAMES);
    for (size_t s = 0; s <= size && size <= 8192; s++) {
        /* first read: data[0..s) alone; frames found there must be a prefix of `whole` */
        size_t n1 = cut(data, s, max, split, MAX_FRAMES);
        size_t done = 0, i;
        for (i = 0; i < n1; i++) {
            if (split[i] <= 0)
                break;
            if (i >= nw || split[i] != whole[i])
                abort();
            done += (size_t)split[i];
        }
        if (i < n1 && split[i] != CG_EINCOMPLETE && (i >= nw || split[i] != whole[i]))
            abort(); /* an error on the first read that the whole stream does not give */
        /* second read appended: continue from the frames already consumed */
        size_t n2 = cut(data + done, size - done, max, split + i, MAX_FRAMES - i);
        if (i + n2 != nw || memcmp(split, whole, nw * sizeof(int)) != 0)
            abort();
    }
    return 0;
}
