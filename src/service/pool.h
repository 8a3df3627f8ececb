/* pool.h: worker processes on this machine, for the autoscaler's process driver.
 *
 * With one inference thread per worker (WORKER_THREADS=1) the pool's own process loads and warms
 * the models once and forks each worker from itself: a new worker takes jobs within milliseconds
 * and shares the weights copy-on-write. Ahead of need it also forks spares (as many as workers may
 * run, at most one per core), which write their copy-on-write pages by running the warm-up again
 * and then wait, costing memory (~33 MB each) but no CPU: starting a worker wakes a spare, whose
 * first job then runs at full speed. Spares are made only while no more workers are wanted, so
 * never in a burst's way. With more threads (a thread pool does not survive fork)
 * each worker is a fresh `facerec worker` and loads the models itself, about a second.
 * A worker asked to stop (SIGTERM) finishes its current job first; one still running after the
 * grace period (JOB_TIMEOUT_SECONDS + SQS_WAIT_TIME_SECONDS + 5 s) is killed. A worker that exits
 * unasked is a crash: logged, counted, and left for the next pool_resize to replace (after a
 * pause that grows while workers keep dying young). Workers stop when the pool's process dies.
 * The pool's process must be single-threaded. */
#ifndef FR_SERVICE_POOL_H
#define FR_SERVICE_POOL_H

#include <signal.h>
#include <sys/types.h>

#include "util/config.h"
#include "util/err.h"

struct pool;

/* stop: the flag the workers' SIGTERM handler sets (forked workers inherit the handler). */
int pool_open(const struct config *c, volatile sig_atomic_t *stop, struct pool **out,
              char err[FR_ERR_LEN]) FR_MUST_USE;

/* Collects the workers that exited: drained ones are forgotten, crashes logged and counted. */
void pool_reap(struct pool *p);

/* Workers running and not asked to stop. */
int pool_running(const struct pool *p);

/* Starts or stops workers (newest first) to have n running; returns how many run now. Kills the
 * draining workers past their grace period. */
int pool_resize(struct pool *p, int n);

/* Starts `facerec COMMAND` as a child: a fork and an exec of this very binary (a new program
 * image, safe to start from a multithreaded process), which gets SIGTERM when its parent dies.
 * It reads the same environment. Returns its pid, or -1 when fork fails. */
pid_t pool_spawn_self(const char *command);

/* Stops every worker (draining, then killing after the grace period) and frees. NULL does nothing. */
void pool_close(struct pool *p);

#endif
