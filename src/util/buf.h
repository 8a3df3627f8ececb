/* buf.h: a growable byte buffer with a maximum size, and JSON writing into it.
 *
 * Appends past the maximum fail with FR_ETOOBIG and leave the buffer as it was; the first failure
 * sticks (buf->err), so a sequence of appends can be checked once at the end. */
#ifndef FR_UTIL_BUF_H
#define FR_UTIL_BUF_H

#include <stddef.h>

#include "util/err.h"

struct buf {
    char *data; /* NUL-terminated while len > 0 */
    size_t len, cap, max;
    int err; /* first failure, or 0 */
};

/* An empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);

/* Makes room for n more bytes at once (no copy as they are appended). Returns 0, FR_ETOOBIG past
 * the maximum (nothing changes then, and the buffer stays usable), FR_ENOMEM. */
int buf_reserve(struct buf *b, size_t n);

int buf_append(struct buf *b, const void *p, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) FR_PRINTF(2, 3);

/* Appends the whole file at path. Returns 0, FR_ENOTFOUND / FR_EIO naming the path, or
 * FR_ETOOBIG when it does not fit under the maximum (the buffer is then as it was). */
int buf_read_file(struct buf *b, const char *path, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Appends s as a JSON string literal (quotes, escapes, invalid UTF-8 replaced by U+FFFD). */
int buf_json_str(struct buf *b, const char *s);

/* Appends a float with up to 6 significant digits, or null when not finite. */
int buf_json_num(struct buf *b, double v);

#endif
