#include "util/buf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

void buf_init(struct buf *b, size_t max)
{
    *b = (struct buf){NULL, 0, 0, max, 0};
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){NULL, 0, 0, b->max, 0};
}

static int reserve(struct buf *b, size_t n)
{
    if (b->err) return b->err;
    if (n > b->max - b->len || b->len + n + 1 > b->max + 1) return b->err = FR_ETOOBIG;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return b->err = FR_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int buf_reserve(struct buf *b, size_t n)
{
    if (b->err) return b->err;
    if (n > b->max - b->len) return FR_ETOOBIG;
    if (b->len + n + 1 <= b->cap) return 0;
    char *d = realloc(b->data, b->len + n + 1);
    if (!d) return FR_ENOMEM;
    b->data = d;
    b->cap = b->len + n + 1;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return b->err = FR_EINVAL;
    if ((size_t)n < sizeof small) return buf_append(b, small, (size_t)n);
    int rc = reserve(b, (size_t)n);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_json_str(struct buf *b, const char *s)
{
    buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            buf_append(b, e, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            buf_printf(b, "\\u%04x", *p);
            p++;
        } else {
            int n = utf8_len(p);
            if (n == 0) {
                buf_append(b, "\\ufffd", 6);
                p++;
            } else {
                buf_append(b, p, (size_t)n);
                p += n;
            }
        }
    }
    return buf_append(b, "\"", 1);
}

int buf_json_num(struct buf *b, double v)
{
    if (!isfinite(v)) return buf_append(b, "null", 4);
    return buf_printf(b, "%.6g", v);
}

int buf_read_file(struct buf *b, const char *path, char err[FR_ERR_LEN])
{
    if (b->err) return fr_fail(err, b->err, "buffer already failed");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fr_fail(err, errno == ENOENT ? FR_ENOTFOUND : FR_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    size_t start = b->len;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(b, chunk, n);
    if (!rc && ferror(f)) rc = fr_fail(err, FR_EIO, "cannot read %s", path);
    else if (rc) rc = fr_fail(err, FR_ETOOBIG, "%s is over the limit of %zu bytes", path, b->max);
    fclose(f);
    if (rc) { /* as it was */
        b->len = start;
        if (b->data) b->data[start] = 0;
        b->err = 0;
    }
    return rc;
}
