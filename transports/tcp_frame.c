/*
 * tcp_frame.c - the CMP-over-TCP framer (see tcp_frame.h).
 *
 * DESIGN: stateless parsing of the buffered prefix, in the order the bytes arrive: the
 * 4-byte length, byte 4 (version 10 or an RFC 2510 type), the rest of the header, then the
 * payload size against the limit, and only then whether the payload is all there. No
 * allocation, no I/O; the payload pointer borrows from the caller's buffer.
 */
#include "tcp_frame.h"

#include "cg_err.h"

#define V10_OVERHEAD 3   /* version, flags, type counted in the length field */
#define R2510_OVERHEAD 1 /* type counted in the length field */
#define POLL_PAYLOAD 8
#define MAX_2510_TYPE 6

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int v10_type_known(int type)
{
    return type == CG_TCP_V10_PKIREQ || type == CG_TCP_V10_POLLREP || type == CG_TCP_V10_POLLREQ ||
           type == CG_TCP_V10_FINREP || type == CG_TCP_V10_PKIREP || type == CG_TCP_V10_ERRORMSGREP;
}

int cg_tcp_frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct cg_tcp_frame *out)
{
    int rc = CG_EINVAL;
    uint32_t length;
    size_t overhead;

    if (out == NULL)
        goto out;
    out->form = CG_TCP_FORM_UNKNOWN;
    out->type = -1;
    out->flags = 0;
    out->header_len = 0;
    out->payload_len = 0;
    out->frame_len = 0;
    out->payload = NULL;
    if (buf == NULL && len > 0)
        goto out;
    rc = CG_EINCOMPLETE;
    if (len < 5)
        goto out;
    length = get_be32(buf);
    rc = CG_EPARSE;
    if (buf[4] == 10) {
        out->form = CG_TCP_FORM_V10;
        out->header_len = CG_TCP_V10_HEADER;
        overhead = V10_OVERHEAD;
    } else if (buf[4] < 10) {
        out->form = CG_TCP_FORM_2510;
        out->header_len = CG_TCP_2510_HEADER;
        overhead = R2510_OVERHEAD;
        out->type = buf[4];
    } else {
        goto out;
    }
    if (length < overhead)
        goto out; /* the length does not even cover the header's own bytes */
    if (out->form == CG_TCP_FORM_V10) {
        rc = CG_EINCOMPLETE;
        if (len < CG_TCP_V10_HEADER)
            goto out;
        rc = CG_EPARSE;
        out->flags = buf[5];
        out->type = buf[6];
        if (!v10_type_known(out->type))
            goto out;
    } else if (out->type > MAX_2510_TYPE) {
        goto out;
    }
    out->payload_len = (size_t)length - overhead;
    if (out->form == CG_TCP_FORM_V10 &&
        (out->type == CG_TCP_V10_POLLREQ || out->type == CG_TCP_V10_POLLREP)) {
        /* polling reference (4) and time to check back (4) */
        if (out->payload_len != POLL_PAYLOAD)
            goto out;
    }
    rc = CG_ETOOBIG;
    if (out->payload_len > max_payload)
        goto out;
    out->frame_len = out->header_len + out->payload_len;
    rc = CG_EINCOMPLETE;
    if (len < out->frame_len)
        goto out;
    out->payload = buf + out->header_len;
    rc = (int)out->frame_len;
    if ((size_t)rc != out->frame_len || rc <= 0)
        rc = CG_ETOOBIG; /* a frame larger than INT_MAX cannot be reported */
out:
    return rc;
}

int cg_tcp_frame_header(uint8_t *hdr, int form, int type, int flags, size_t payload_len)
{
    int rc = CG_EINVAL;
    size_t length;

    if (hdr == NULL || type < 0)
        goto out;
    if (form == CG_TCP_FORM_V10) {
        if (!v10_type_known(type))
            goto out;
        length = payload_len + V10_OVERHEAD;
    } else if (form == CG_TCP_FORM_2510) {
        if (type > MAX_2510_TYPE)
            goto out;
        length = payload_len + R2510_OVERHEAD;
    } else {
        goto out;
    }
    rc = CG_ETOOBIG;
    if (payload_len > UINT32_MAX - V10_OVERHEAD)
        goto out;
    hdr[0] = (uint8_t)(length >> 24);
    hdr[1] = (uint8_t)(length >> 16);
    hdr[2] = (uint8_t)(length >> 8);
    hdr[3] = (uint8_t)length;
    if (form == CG_TCP_FORM_V10) {
        hdr[4] = 10;
        hdr[5] = (uint8_t)flags;
        hdr[6] = (uint8_t)type;
        rc = CG_TCP_V10_HEADER;
    } else {
        hdr[4] = (uint8_t)type;
        rc = CG_TCP_2510_HEADER;
    }
out:
    return rc;
}
