/* worker.h: the job loop: long-poll the queue, fetch the photo, recognise, write the result,
 * delete the message.
 *
 * What happens to each kind of job:
 *   malformed message body   deleted (poison), logged
 *   input object missing     error result written, message deleted
 *   photo cannot be decoded  error result written, message deleted
 *   time limit reached       message visible again after a backoff growing with its receives
 *   received MAX_RECEIVES+   error result written, message moved to the dead-letter queue
 *   storage/queue failure    message left to reappear after its visibility timeout
 * Writing a result that already exists is harmless: delivery is at least once. */
#ifndef FR_SERVICE_WORKER_H
#define FR_SERVICE_WORKER_H

#include <signal.h>

#include "util/config.h"
#include "util/err.h"
#include "vision/pipeline.h"

/* Runs jobs until *stop becomes non-zero (checked between jobs and receives: a job in progress
 * is finished first). Returns 0 after a stop, or an error when the worker cannot start (models,
 * backends). */
int worker_run(const struct config *c, volatile sig_atomic_t *stop,
               char err[FR_ERR_LEN]) FR_MUST_USE;

/* The same with a recognizer already opened and warmed (a worker forked by the pool uses the
 * template's); the recognizer stays the caller's. */
int worker_loop(const struct config *c, struct recognizer *rec, volatile sig_atomic_t *stop,
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* The recognizer settings of c (detection, quality, threads). */
struct recognizer_opts worker_recognizer_opts(const struct config *c);

/* Opens and warms the recognizer a worker runs with these settings. */
int worker_recognizer(const struct config *c, struct recognizer **out,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
