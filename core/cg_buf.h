/*
 * cg_buf.h - growable byte buffer.
 *
 * DESIGN: owns its bytes; cg_buf_free(NULL) is a no-op. Not thread-safe: one owner at a time.
 * Leaf header: libc only.
 */
#ifndef CG_CORE_CG_BUF_H
#define CG_CORE_CG_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cg_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/** @brief New empty buffer. @return new, or NULL on allocation failure. */
struct cg_buf *cg_buf_new(void);
void cg_buf_free(struct cg_buf *b);
/** @brief Append len bytes (copied). @return CG_OK or CG_ENOMEM. */
int cg_buf_append(struct cg_buf *b, const void *p, size_t len);
/** @brief Ensure room for extra bytes beyond len. @return CG_OK or CG_ENOMEM. */
int cg_buf_reserve(struct cg_buf *b, size_t extra);
void cg_buf_reset(struct cg_buf *b);
/** @brief Detach the bytes (caller frees with free()); the buffer becomes empty. */
uint8_t *cg_buf_steal(struct cg_buf *b, size_t *len);

#endif
