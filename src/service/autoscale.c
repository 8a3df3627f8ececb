/* autoscale.c: the control loop and the command driver. */
#include "service/autoscale.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/pool.h"
#include "service/scaler.h"
#include "util/text.h"

#define COMMAND_TIMEOUT_MS 60000.0
#define COMMAND_RETRY_MS 5000.0

/* Runs the command driver's command with n as $1; returns its exit status, or -1. */
static int run_command(const char *cmd, int n, volatile sig_atomic_t *stop)
{
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setenv("FACEREC_DESIRED_WORKERS", num, 1);
        execl("/bin/sh", "sh", "-c", cmd, "facerec-autoscale", num, (char *)NULL);
        _exit(127);
    }
    double deadline = now_ms() + COMMAND_TIMEOUT_MS;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return -1;
        if (now_ms() > deadline || *stop) {
            log_error(NULL, "autoscale: the command did not finish in %.0f s; killed",
                      (now_ms() - deadline + COMMAND_TIMEOUT_MS) / 1000);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int autoscale_run(const struct config *c, volatile sig_atomic_t *stop, char err[FR_ERR_LEN])
{
    struct scaler_policy sp = {c->min_workers, c->max_workers, c->backlog_per_worker,
                               c->scale_down_seconds * 1000.0};
    int by_command = !strcmp(c->autoscale_driver, "command");
    int interval_ms = c->scale_interval_ms ? c->scale_interval_ms
                                           : !strcmp(c->backend, "embedded") ? 100 : 1000;
    if (sp.max == 0) { /* on one machine, more workers than cores only share them (README) */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        sp.max = by_command ? 15 : cores > c->worker_threads ? (int)(cores / c->worker_threads) : 1;
        if (sp.min > sp.max) sp.max = sp.min;
    }
    if (c->workers > 0) sp.min = sp.max = c->workers;
    char why[FR_ERR_LEN];
    if (metrics_attach(why)) log_warn(NULL, "%s", why);
    struct scaler *s = NULL;
    struct queue *q = NULL;
    struct pool *pool = NULL;
    int rc = scaler_new(&sp, &s, err);
    if (!rc) rc = queue_open(c, &q, err);
    if (!rc && !by_command) {
        metrics_workers(0, 0); /* none yet, while the models load */
        rc = pool_open(c, stop, &pool, err);
    }
    if (rc) goto done;
    log_info(NULL, "autoscale: %s driver, %d..%d workers, %d job%s per worker, scale down after %d s",
             c->autoscale_driver, sp.min, sp.max, sp.backlog, sp.backlog == 1 ? "" : "s",
             c->scale_down_seconds);
    int current = by_command ? -1 : 0; /* -1: unknown until the command first succeeds */
    int last_desired = -1, queue_ok = 1;
    double command_retry_at = 0;
    while (!*stop) {
        if (pool) {
            pool_reap(pool);
            current = pool_running(pool);
        }
        struct queue_counts qc;
        if (queue_counts(q, &qc, why)) {
            if (queue_ok) log_error(NULL, "autoscale: cannot read the queue (%s); workers left as they are", why);
            queue_ok = 0;
            if (pool) pool_resize(pool, last_desired >= 0 ? last_desired : current); /* replace crashes */
        } else {
            if (!queue_ok) log_info(NULL, "autoscale: the queue is readable again");
            queue_ok = 1;
            char reason[SCALER_REASON_MAX];
            int desired = scaler_decide(s, qc.waiting, qc.in_flight, current < 0 ? 0 : current,
                                        now_ms(), reason);
            if (desired != last_desired)
                log_info(NULL, "autoscale: waiting=%ld in_flight=%ld current=%d desired=%d: %s",
                             qc.waiting, qc.in_flight, current, desired, reason);
            last_desired = desired;
            if (pool) {
                current = pool_resize(pool, desired);
            } else if (desired != current && now_ms() >= command_retry_at) {
                int status = run_command(c->autoscale_command, desired, stop);
                if (status == 0) {
                    current = desired;
                } else {
                    log_error(NULL, "autoscale: the command for %d worker%s failed (status %d); again in %.0f s",
                              desired, desired == 1 ? "" : "s", status, COMMAND_RETRY_MS / 1000);
                    command_retry_at = now_ms() + COMMAND_RETRY_MS;
                }
            }
            metrics_workers(current, desired);
        }
        /* below the most workers, a new job may need one at once: wake on the queue's change */
        if (current < sp.max) {
            queue_wait_change(q, interval_ms);
        } else {
            struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    log_info(NULL, "autoscale: stopping%s", pool ? "; workers finish their current job" : "");
done:
    pool_close(pool);
    queue_close(q);
    scaler_free(s);
    return rc;
}
