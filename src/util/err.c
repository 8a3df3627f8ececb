#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *fr_strerror(int code)
{
    switch (code) {
    case FR_OK: return "success";
    case FR_ENOMEM: return "out of memory";
    case FR_EINVAL: return "invalid argument";
    case FR_EIO: return "input/output error";
    case FR_EFORMAT: return "malformed data";
    case FR_EUNSUPPORTED: return "unsupported";
    case FR_ETOOBIG: return "over the size limit";
    case FR_EBACKEND: return "backend failure";
    case FR_ENOTFOUND: return "not found";
    case FR_ETIMEOUT: return "timed out";
    case FR_EINTEGRITY: return "integrity check failed";
    case FR_ECONFLICT: return "changed by someone else";
    default: return "unknown error";
    }
}

int fr_fail(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, FR_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return code;
}
