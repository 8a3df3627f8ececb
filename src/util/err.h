/* err.h: the project-wide error codes and the caller-owned error message buffer.
 *
 * Every function that can fail returns an int: 0 on success or one of the negative FR_E* codes
 * below. Where a sentence helps the user, the function also fills a caller-provided
 * char err[FR_ERR_LEN] (never NULL-checked by callers; pass a buffer). */
#ifndef FR_ERR_H
#define FR_ERR_H

#include <stddef.h>

#define FR_ERR_LEN 256

#if defined(__GNUC__)
#define FR_MUST_USE __attribute__((warn_unused_result))
#define FR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FR_MUST_USE
#define FR_PRINTF(a, b)
#endif

enum fr_err {
    FR_OK = 0,
    FR_ENOMEM = -1,       /* allocation failed */
    FR_EINVAL = -2,       /* bad argument or request */
    FR_EIO = -3,          /* file or socket error */
    FR_EFORMAT = -4,      /* malformed input bytes */
    FR_EUNSUPPORTED = -5, /* well-formed but not something we handle */
    FR_ETOOBIG = -6,      /* over a configured cap */
    FR_EBACKEND = -7,     /* a library or remote service failed */
    FR_ENOTFOUND = -8,    /* no such object, key or id */
    FR_ETIMEOUT = -9,     /* gave up waiting */
    FR_EINTEGRITY = -10,  /* checksum or hash mismatch */
    FR_ECONFLICT = -11,   /* changed by someone else since it was read */
};

/* Returns a static, never-NULL description of code. */
const char *fr_strerror(int code);

/* Formats a message into err (FR_ERR_LEN bytes, may be NULL) and returns code, so that
 * callers can write `return fr_fail(err, FR_EFORMAT, "...", ...);`. */
int fr_fail(char *err, int code, const char *fmt, ...) FR_PRINTF(3, 4);

#endif
