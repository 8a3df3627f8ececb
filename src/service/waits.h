/* waits.h: the API's waits for job results.
 *
 * One thread watches the output bucket for the results that requests wait on, so that a waiting
 * request costs no thread and a result wakes only the request it belongs to: on local files it
 * reads the bucket's arrivals (store_watch); on S3 it polls each awaited key, less often as the
 * wait grows (every tenth of its age, 20 ms to 1 s). Each waiter is called back exactly once:
 * when its result is there, when its deadline passes, or when the waits are closed. */
#ifndef FR_SERVICE_WAITS_H
#define FR_SERVICE_WAITS_H

#include "store/store.h"
#include "util/config.h"
#include "util/err.h"

#define WAITS_MAX 1024      /* waiters at once; more are refused (FR_ETOOBIG) */
#define WAITS_KEY_MAX 127   /* bytes of an awaited key */

enum wait_outcome { WAIT_READY, WAIT_TIMEOUT, WAIT_STOPPED };

/* Called once per waiter, from the watching thread or from within waits_add. */
typedef void (*wait_fn)(void *arg, enum wait_outcome outcome);

struct waits;

/* Opens the store for S3_OUT_BUCKET and starts the watching thread. Returns 0, a store error, or
 * FR_EIO / FR_ENOMEM. */
int waits_open(const struct config *c, struct waits **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Calls back every remaining waiter with WAIT_STOPPED, stops the thread, frees. NULL does
 * nothing. */
void waits_close(struct waits *w);

/* Waits for object key in the output bucket until deadline (now_ms() clock); fn(arg, ...) is
 * called exactly once, possibly before this returns (the object was there already: s, the
 * caller's store handle, looks). Returns 0, or FR_ETOOBIG (WAITS_MAX waiters already) / FR_EINVAL
 * (key too long), and then fn is not called. Safe from any thread. */
int waits_add(struct waits *w, struct store *s, const char *key, double deadline, wait_fn fn,
              void *arg, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
