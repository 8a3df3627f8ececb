/* backend.h: what a store backend provides (internal to src/store). */
#ifndef FR_STORE_BACKEND_H
#define FR_STORE_BACKEND_H

#include "store/store.h"

/* The backend behind the interface; each backend fills one of these. */
struct store_ops {
    /* if_ver NULL: unconditional; else only while the object is at that version ("" absent),
     * else FR_ECONFLICT. new_ver (may be NULL) receives the written object's version. */
    int (*put)(void *impl, const char *bucket, const char *key, const void *data, size_t len,
               const char *if_ver, char *new_ver, char *err);
    int (*get)(void *impl, const char *bucket, const char *key, size_t max, uint8_t **data,
               size_t *len, char *err);
    int (*del)(void *impl, const char *bucket, const char *key, char *err);
    int (*version)(void *impl, const char *bucket, const char *key, char ver[64], char *err);
    /* optional: wait for key to appear; NULL means store.c polls version() */
    int (*wait)(void *impl, const char *bucket, const char *key, int timeout_ms, char *err);
    /* optional: report arrivals in a bucket; NULL means store_watch_open is FR_EUNSUPPORTED */
    int (*watch_open)(void *impl, const char *bucket, void **w, char *err);
    int (*watch_next)(void *w, int timeout_ms, char *key, char *err);
    void (*watch_close)(void *w);
    int (*check)(void *impl, char *err);
    void (*close)(void *impl);
};

/* Backends (store_fs.c, store_s3.c). */
int store_fs_open(const struct config *c, const struct store_ops **ops, void **impl,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

int store_s3_open(const struct config *c, const struct store_ops **ops, void **impl,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
