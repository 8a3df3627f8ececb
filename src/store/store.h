/* store.h: object storage: buckets of keyed byte strings, on local files or on S3.
 *
 * One interface whatever the backend (chosen by configuration); the API and the workers do not
 * know which one they talk to. Keys are validated here (store_key_valid) before any backend sees
 * them. An object is written whole or not at all: readers never see half an object. On local
 * files, DURABILITY=power makes a written object survive power loss before store_put returns
 * (fsync of the file and its directory); DURABILITY=process skips the fsyncs (the object then
 * survives any process crash, not an OS crash). A store
 * handle may be used by one thread at a time; open one per thread. */
#ifndef FR_STORE_STORE_H
#define FR_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/config.h"
#include "util/err.h"

#define STORE_KEY_MAX 512

struct store;

/* Opens the backend the configuration names. Returns 0 or FR_EIO / FR_EBACKEND with err set. */
int store_open(const struct config *c, struct store **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void store_close(struct store *s);

/* 1 when key is usable: 1..STORE_KEY_MAX bytes, no '/', '\\' or control characters, and not
 * starting with '.' (names of that form are the store's own). */
int store_key_valid(const char *key);

/* Writes the object whole (replacing any object of that key). Returns 0, FR_EINVAL (bad key),
 * FR_EIO / FR_EBACKEND. */
int store_put(struct store *s, const char *bucket, const char *key, const void *data, size_t len,
              char err[FR_ERR_LEN]) FR_MUST_USE;

/* As store_put, but only while the object is still at version if_ver (as store_version gave
 * it; "" for "does not exist"): a compare-and-swap for read-modify-write of a shared object.
 * The written object's version goes to new_ver when not NULL. Returns FR_ECONFLICT when the
 * object changed since if_ver (nothing is written), or store_put's errors.
 * Local files: the conditional writes of a bucket exclude each other (a lock file), plain
 * store_put does not take part. S3: If-Match / If-None-Match, which AWS S3 honours; a service
 * that ignores them (fauxqs does) turns this into a plain put. */
int store_put_if(struct store *s, const char *bucket, const char *key, const void *data,
                 size_t len, const char *if_ver, char new_ver[64],
                 char err[FR_ERR_LEN]) FR_MUST_USE;

/* Reads the object into *data (caller frees; NUL-terminated for convenience, not counted in
 * *len). Returns 0, FR_ENOTFOUND, FR_ETOOBIG (over max bytes), FR_EINVAL, FR_EIO/FR_EBACKEND. */
int store_get(struct store *s, const char *bucket, const char *key, size_t max, uint8_t **data,
              size_t *len, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Deletes the object; deleting a missing object succeeds. */
int store_delete(struct store *s, const char *bucket, const char *key,
                 char err[FR_ERR_LEN]) FR_MUST_USE;

/* Waits until the object exists or timeout_ms pass. Returns 0 (it exists), FR_ETIMEOUT, or a
 * backend error. Local files are watched (inotify); other backends are polled. */
int store_wait(struct store *s, const char *bucket, const char *key, int timeout_ms,
               char err[FR_ERR_LEN]) FR_MUST_USE;

/* A short string that changes whenever the object is replaced (file time and size; an ETag on
 * S3), for cheap change checks. FR_ENOTFOUND when the object does not exist. */
int store_version(struct store *s, const char *bucket, const char *key, char ver[64],
                  char err[FR_ERR_LEN]) FR_MUST_USE;

/* Watching one bucket for many keys at once, so that one thread learns of the results many
 * requests wait for. */
struct store_watch;

/* Starts watching bucket for objects that arrive from now on (the caller looks for those already
 * there after it starts). Returns 0, FR_EUNSUPPORTED when the backend cannot report arrivals (S3:
 * poll store_version instead), or FR_EIO. The watch is used by one thread at a time. */
int store_watch_open(struct store *s, const char *bucket, struct store_watch **out,
                     char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void store_watch_close(struct store_watch *w);

/* Waits up to timeout_ms for an arrival. Returns 0 with the new object's key in key (that object
 * is there, whole), or 0 with key "" when arrivals may have been missed (then look again for
 * every key waited for); FR_ETIMEOUT; FR_EIO. */
int store_watch_next(struct store_watch *w, int timeout_ms, char key[STORE_KEY_MAX + 1],
                     char err[FR_ERR_LEN]) FR_MUST_USE;

/* Checks that the store and its buckets can be reached (for /health). */
int store_check(struct store *s, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
