/* autoscale.h: the autoscaler: reads the queue's counts every SCALE_INTERVAL_MS, decides how many
 * workers are needed (scaler.h) and makes it so with a driver:
 *
 *   process  worker processes on this machine (pool.h); crashed ones are replaced
 *   command  runs AUTOSCALE_COMMAND with the desired count whenever it changes (an EC2 Auto
 *            Scaling group, a Kubernetes deployment, systemd units...); a failed or hung (60 s)
 *            command is run again after a pause
 *
 * MAX_WORKERS 0 means one worker per core for the process driver (more only share the cores and
 * were measured slower), 15 for the command driver. WORKERS > 0 pins the count. Every change of the desired count is logged
 * with its inputs: waiting, in flight, current, desired and the reason; so is a queue that
 * cannot be read (the workers are then left as they are). The counts are published as metrics. */
#ifndef FR_SERVICE_AUTOSCALE_H
#define FR_SERVICE_AUTOSCALE_H

#include <signal.h>

#include "util/config.h"
#include "util/err.h"

/* Runs until *stop becomes non-zero, then stops the workers it started (process driver) and
 * returns 0; or returns an error when it cannot start (queue, models, settings). The calling
 * process must be single-threaded (workers are forked from it). */
int autoscale_run(const struct config *c, volatile sig_atomic_t *stop,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
