/* pool.c: forking, draining, reaping and replacing worker processes. */
#include "service/pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "service/log.h"
#include "service/metrics.h"
#include "service/worker.h"
#include "util/text.h"
#include "vision/pipeline.h"

#define YOUNG_MS 2000.0      /* a worker dying younger than this counts towards the restart pause */
#define MAX_PAUSE_MS 30000.0 /* longest pause before replacing workers that keep dying young */

struct member {
    pid_t pid;
    int draining;
    double started, term_sent; /* now_ms */
};

struct pool {
    const struct config *cfg;
    volatile sig_atomic_t *stop;
    struct recognizer *rec; /* the template's, when workers are forked */
    struct member *m;
    int n, cap;
    double grace_ms;
    int young_deaths;     /* in a row */
    double no_start_until; /* now_ms */
};

int pool_open(const struct config *c, volatile sig_atomic_t *stop, struct pool **out,
              char err[FR_ERR_LEN])
{
    *out = NULL;
    struct pool *p = calloc(1, sizeof *p);
    if (!p) return fr_fail(err, FR_ENOMEM, "out of memory");
    p->cfg = c;
    p->stop = stop;
    p->grace_ms = (c->job_timeout_seconds + c->sqs_wait_time_seconds + 5) * 1000.0;
    if (c->worker_threads == 1) {
        double t0 = now_ms();
        int rc = worker_recognizer(c, &p->rec, err);
        if (rc) {
            free(p);
            return rc;
        }
        log_info(NULL, "pool: models loaded and warmed in %.0f ms; workers fork from here", now_ms() - t0);
    }
    *out = p;
    return 0;
}

/* A forked worker: runs jobs with the template's recognizer until asked to stop. */
static void run_forked(struct pool *p)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* drain when the pool's process dies */
    if (getppid() == 1) _exit(0);     /* it died already */
    char err[FR_ERR_LEN];
    log_info(NULL, "worker started");
    int rc = worker_loop(p->cfg, p->rec, p->stop, err);
    if (rc) log_error(NULL, "worker cannot run: %s", err);
    else log_info(NULL, "worker stopped");
    _exit(rc ? 1 : 0);
}

pid_t pool_spawn_self(const char *command)
{
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid != 0) return pid; /* parent, or -1 */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    char *args[] = {"facerec", (char *)command, NULL};
    execv("/proc/self/exe", args);
    log_error(NULL, "cannot start 'facerec %s': exec failed: %s", command, strerror(errno));
    _exit(127);
}

static pid_t start_one(struct pool *p)
{
    if (!p->rec) /* a fresh program: it loads the models with the configured thread pool */
        return pool_spawn_self("worker");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) run_forked(p);
    return pid;
}

void pool_reap(struct pool *p)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = 0;
        while (i < p->n && p->m[i].pid != pid)
            i++;
        if (i == p->n) continue; /* not ours (a command the caller ran) */
        struct member w = p->m[i];
        memmove(&p->m[i], &p->m[i + 1], (size_t)(p->n - i - 1) * sizeof *p->m); /* keep age order */
        p->n--;
        double age = now_ms() - w.started;
        if (w.draining) {
            metrics_worker_event(MW_STOPS);
            continue;
        }
        metrics_worker_event(MW_CRASHES);
        if (WIFSIGNALED(status))
            log_error(NULL, "pool: worker %ld killed by signal %d after %.1f s; it will be replaced",
                      (long)pid, WTERMSIG(status), age / 1000);
        else
            log_error(NULL, "pool: worker %ld exited with status %d after %.1f s; it will be replaced",
                      (long)pid, WEXITSTATUS(status), age / 1000);
        if (age < YOUNG_MS) {
            double pause = 250.0 * (1 << (p->young_deaths < 7 ? p->young_deaths : 7));
            p->young_deaths++;
            p->no_start_until = now_ms() + (pause < MAX_PAUSE_MS ? pause : MAX_PAUSE_MS);
        } else {
            p->young_deaths = 0;
        }
    }
    if (pid < 0 && errno == ECHILD) p->n = 0; /* nothing left to wait for */
}

int pool_running(const struct pool *p)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += !p->m[i].draining;
    return n;
}

static void kill_overdue(struct pool *p)
{
    double now = now_ms();
    for (int i = 0; i < p->n; i++)
        if (p->m[i].draining && p->m[i].term_sent > 0 && now - p->m[i].term_sent > p->grace_ms) {
            log_warn(NULL, "pool: worker %ld still busy after its grace period; killing it",
                     (long)p->m[i].pid);
            kill(p->m[i].pid, SIGKILL);
            p->m[i].term_sent = -1; /* killed; reaped later */
        }
}

int pool_resize(struct pool *p, int n)
{
    kill_overdue(p);
    int running = pool_running(p);
    while (running < n && now_ms() >= p->no_start_until) {
        if (p->n == p->cap) {
            int cap = p->cap ? 2 * p->cap : 16;
            struct member *m = realloc(p->m, (size_t)cap * sizeof *m);
            if (!m) break;
            p->m = m;
            p->cap = cap;
        }
        pid_t pid = start_one(p);
        if (pid < 0) {
            log_error(NULL, "pool: cannot start a worker: %s", strerror(errno));
            break;
        }
        p->m[p->n++] = (struct member){pid, 0, now_ms(), 0};
        metrics_worker_event(MW_STARTS);
        running++;
    }
    for (int i = p->n - 1; i >= 0 && running > n; i--) /* the newest first */
        if (!p->m[i].draining) {
            kill(p->m[i].pid, SIGTERM);
            p->m[i].draining = 1;
            p->m[i].term_sent = now_ms();
            running--;
        }
    return running;
}

void pool_close(struct pool *p)
{
    if (!p) return;
    pool_resize(p, 0);
    while (p->n > 0) {
        pool_reap(p);
        kill_overdue(p);
        if (p->n == 0) break;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    recognizer_close(p->rec);
    free(p->m);
    free(p);
}
