/*
 * tcp_frame.h - the CMP-over-TCP framer: parse one frame header, write one frame header.
 *
 * DESIGN: the picohttpparser contract (STYLE.md rule 32). cg_tcp_frame_parse() looks at the
 * bytes buffered so far and returns the size of the first complete frame, CG_EINCOMPLETE
 * when more bytes are needed, or an error; it keeps no state between calls, allocates
 * nothing and does no I/O, so a caller just calls it again when more bytes arrive (any split
 * of the reads, one byte at a time included). The length field is checked against the
 * payload limit as soon as the header is complete, before the caller buffers the payload.
 * Two header forms, told apart by byte 4:
 *   version 10 (draft-ietf-pkix-cmp-tcp as deployed), 7-byte header:
 *     length(4, big-endian) = payload + 3 | version(1) = 10 | flags(1), bit 0 = close | type(1)
 *     types: 0 pkiReq, 1 pollRep, 2 pollReq, 3 finRep, 5 pkiRep, 6 errorMsgRep;
 *     version-10 pollReq and pollRep carry exactly 8 bytes (polling reference, time to
 *     check back);
 *   RFC 2510 section 5.2 original, 5-byte header:
 *     length(4, big-endian) = payload + 1 | type(1) < 10
 *     types: 0 pkiMsg, 1 pollRep, 2 pollReq, 3 negPollRep, 4 partialMsgRep, 5 finalMsgRep,
 *     6 errorMsgRep.
 * Byte 4 above 10 is not CMP over TCP. Thread-safe (pure functions).
 */
#ifndef CG_TRANSPORTS_TCP_FRAME_H
#define CG_TRANSPORTS_TCP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define CG_TCP_FORM_UNKNOWN 0 /* fewer than 5 bytes seen, or byte 4 is not a CMP-over-TCP form */
#define CG_TCP_FORM_V10 10    /* 7-byte header with version 10 */
#define CG_TCP_FORM_2510 2510 /* 5-byte header of RFC 2510 */

#define CG_TCP_V10_HEADER 7
#define CG_TCP_2510_HEADER 5
#define CG_TCP_MAX_HEADER 7
#define CG_TCP_FLAG_CLOSE 0x01

/* version-10 message types */
#define CG_TCP_V10_PKIREQ 0
#define CG_TCP_V10_POLLREP 1
#define CG_TCP_V10_POLLREQ 2
#define CG_TCP_V10_FINREP 3
#define CG_TCP_V10_PKIREP 5
#define CG_TCP_V10_ERRORMSGREP 6

/* RFC 2510 message types */
#define CG_TCP_2510_PKIMSG 0
#define CG_TCP_2510_POLLREP 1
#define CG_TCP_2510_POLLREQ 2
#define CG_TCP_2510_NEGPOLLREP 3
#define CG_TCP_2510_PARTIALMSGREP 4
#define CG_TCP_2510_FINALMSGREP 5
#define CG_TCP_2510_ERRORMSGREP 6

/** What cg_tcp_frame_parse() learned; filled as far as the bytes allow, on every return. */
struct cg_tcp_frame {
    int form;               /* CG_TCP_FORM_* (UNKNOWN until byte 4 is seen) */
    int type;               /* message type, -1 until known */
    int flags;              /* version-10 flags byte; 0 for RFC 2510 */
    size_t header_len;      /* 7 or 5; 0 until the form is known */
    size_t payload_len;     /* valid once the header is complete */
    size_t frame_len;       /* header_len + payload_len; 0 until the header is complete */
    const uint8_t *payload; /* borrowed from buf; set only when the frame is complete */
};

/** @brief Parse the frame at the start of buf.
 *  @param[in] buf bytes received so far (borrowed); may hold more than one frame.
 *  @param[in] len number of bytes in buf.
 *  @param[in] max_payload largest payload accepted (limits.max_body_bytes).
 *  @param[out] out what is known about the frame (never NULL).
 *  @return the size of the complete first frame (> 0), CG_EINCOMPLETE (need more bytes;
 *  out->frame_len says how many once the header is complete), CG_ETOOBIG (payload over
 *  max_payload), CG_EPARSE (byte 4 above 10, a length smaller than the header's own bytes,
 *  an unknown type, a poll frame whose payload is not 8 bytes), CG_EINVAL (NULL argument). */
int cg_tcp_frame_parse(const uint8_t *buf, size_t len, size_t max_payload,
                       struct cg_tcp_frame *out);

/** @brief Write the header of a frame of form (CG_TCP_FORM_V10 or CG_TCP_FORM_2510).
 *  @param[out] hdr at least CG_TCP_MAX_HEADER bytes.
 *  @param[in] flags version-10 flags (ignored for RFC 2510).
 *  @return the header length (7 or 5), CG_EINVAL (bad form or type), CG_ETOOBIG (payload
 *  does not fit the 32-bit length field). */
int cg_tcp_frame_header(uint8_t *hdr, int form, int type, int flags, size_t payload_len);

#endif
