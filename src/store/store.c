/* store.c: key validation and dispatch to the configured backend. */
#include "store/backend.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
    const struct store_ops *ops;
    void *impl;
};

int store_key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > STORE_KEY_MAX || key[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return 0;
    }
    return 1;
}

static int bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
              (b[i] == '.' && i > 0)))
            return 0;
    return 1;
}

static int check_names(const char *bucket, const char *key, char *err)
{
    if (!bucket_valid(bucket))
        return fr_fail(err, FR_EINVAL, "invalid bucket name '%.64s'", bucket);
    if (!store_key_valid(key)) return fr_fail(err, FR_EINVAL, "invalid object key");
    return 0;
}

int store_open(const struct config *c, struct store **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct store *s = calloc(1, sizeof *s);
    if (!s) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc;
    if (!strcmp(c->backend, "embedded"))
        rc = store_fs_open(c, &s->ops, &s->impl, err);
    else if (!strcmp(c->backend, "aws"))
        rc = store_s3_open(c, &s->ops, &s->impl, err);
    else
        rc = fr_fail(err, FR_EUNSUPPORTED, "store backend '%s' is not available", c->backend);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s) return;
    s->ops->close(s->impl);
    free(s);
}

int store_put(struct store *s, const char *bucket, const char *key, const void *data, size_t len,
              char err[FR_ERR_LEN])
{
    int rc = check_names(bucket, key, err);
    return rc ? rc : s->ops->put(s->impl, bucket, key, data, len, NULL, NULL, err);
}

int store_put_if(struct store *s, const char *bucket, const char *key, const void *data,
                 size_t len, const char *if_ver, char new_ver[64], char err[FR_ERR_LEN])
{
    if (new_ver) new_ver[0] = 0;
    int rc = check_names(bucket, key, err);
    return rc ? rc : s->ops->put(s->impl, bucket, key, data, len, if_ver, new_ver, err);
}

int store_get(struct store *s, const char *bucket, const char *key, size_t max, uint8_t **data,
              size_t *len, char err[FR_ERR_LEN])
{
    *data = NULL;
    *len = 0;
    int rc = check_names(bucket, key, err);
    return rc ? rc : s->ops->get(s->impl, bucket, key, max, data, len, err);
}

int store_delete(struct store *s, const char *bucket, const char *key, char err[FR_ERR_LEN])
{
    int rc = check_names(bucket, key, err);
    return rc ? rc : s->ops->del(s->impl, bucket, key, err);
}

int store_version(struct store *s, const char *bucket, const char *key, char ver[64],
                  char err[FR_ERR_LEN])
{
    ver[0] = 0;
    int rc = check_names(bucket, key, err);
    return rc ? rc : s->ops->version(s->impl, bucket, key, ver, err);
}

int store_wait(struct store *s, const char *bucket, const char *key, int timeout_ms,
               char err[FR_ERR_LEN])
{
    int rc = check_names(bucket, key, err);
    if (rc) return rc;
    if (s->ops->wait) return s->ops->wait(s->impl, bucket, key, timeout_ms, err);
    double deadline = now_ms() + timeout_ms;
    int nap_ms = 5;
    for (;;) {
        char ver[64];
        rc = s->ops->version(s->impl, bucket, key, ver, err);
        if (rc != FR_ENOTFOUND) return rc;
        double left = deadline - now_ms();
        if (left <= 0) return fr_fail(err, FR_ETIMEOUT, "no object %s/%s yet", bucket, key);
        int nap = nap_ms < left ? nap_ms : (int)left + 1;
        struct timespec ts = {nap / 1000, (nap % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (nap_ms < 100) nap_ms *= 2;
    }
}

struct store_watch {
    const struct store_ops *ops;
    void *impl;
};

int store_watch_open(struct store *s, const char *bucket, struct store_watch **out,
                     char err[FR_ERR_LEN])
{
    *out = NULL;
    if (!bucket_valid(bucket)) return fr_fail(err, FR_EINVAL, "invalid bucket name '%.64s'", bucket);
    if (!s->ops->watch_open)
        return fr_fail(err, FR_EUNSUPPORTED, "this store cannot report arrivals");
    struct store_watch *w = calloc(1, sizeof *w);
    if (!w) return fr_fail(err, FR_ENOMEM, "out of memory");
    w->ops = s->ops;
    int rc = s->ops->watch_open(s->impl, bucket, &w->impl, err);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void store_watch_close(struct store_watch *w)
{
    if (!w) return;
    w->ops->watch_close(w->impl);
    free(w);
}

int store_watch_next(struct store_watch *w, int timeout_ms, char key[STORE_KEY_MAX + 1],
                     char err[FR_ERR_LEN])
{
    key[0] = 0;
    return w->ops->watch_next(w->impl, timeout_ms < 0 ? 0 : timeout_ms, key, err);
}

int store_check(struct store *s, char err[FR_ERR_LEN])
{
    return s->ops->check(s->impl, err);
}
