/* pool.c: forking, draining, reaping and replacing worker processes. */
#include "service/pool.h"

#include <errno.h>
#include <fcntl.h>
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
    int spare;   /* forked, warmed and parked: not a worker until woken through wake_fd */
    int wake_fd; /* a spare's pipe: a byte starts it, end of file stops it; else -1 */
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
    int spares_max;       /* spares kept while running + spares is below it (forked mode) */
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
        /* as many spares as workers may run at once, at most one per core */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int most = c->workers > 0 ? c->workers : c->max_workers > 0 ? c->max_workers : (int)cores;
        p->spares_max = most < cores ? most : (int)cores;
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

/* A spare: forked ahead of need, it runs the warm-up again, which writes every page a job writes
 * (the template's warm buffers, shared copy-on-write since the fork: ~4,600 page faults, ~110 ms
 * on a VM, paid now rather than by the first job), then waits on its pipe: a byte makes it a
 * worker, end of file or SIGTERM ends it. */
static void run_spare(struct pool *p, int wake_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) _exit(0);
    char err[FR_ERR_LEN], b;
    if (recognizer_warm(p->rec, err)) log_warn(NULL, "spare worker: warm-up failed: %s", err);
    while (!*p->stop) {
        ssize_t n = read(wake_fd, &b, 1);
        if (n == 1) break;
        if (n == 0 || (n < 0 && errno != EINTR)) _exit(0);
    }
    if (*p->stop) _exit(0);
    close(wake_fd);
    run_forked(p);
}

static int spawn_spare(struct pool *p, struct member *m)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        run_spare(p, fds[0]);
    }
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return -1;
    }
    *m = (struct member){pid, 0, 1, fds[1], now_ms(), 0};
    return 0;
}

/* Ends a spare (it reads end of file, or gets SIGTERM while warming). */
static void retire_spare(struct member *m)
{
    close(m->wake_fd);
    m->wake_fd = -1;
    kill(m->pid, SIGTERM);
    m->draining = 1;
    m->term_sent = now_ms();
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
        if (w.wake_fd >= 0) close(w.wake_fd);
        memmove(&p->m[i], &p->m[i + 1], (size_t)(p->n - i - 1) * sizeof *p->m); /* keep age order */
        p->n--;
        double age = now_ms() - w.started;
        if (w.spare && w.draining) continue; /* retired: it was never a worker */
        if (w.draining) {
            metrics_worker_event(MW_STOPS);
            continue;
        }
        if (w.spare) {
            log_warn(NULL, "pool: spare worker %ld ended unasked (%s %d)", (long)pid,
                     WIFSIGNALED(status) ? "signal" : "status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            p->no_start_until = now_ms() + 1000; /* no new spare at once */
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
        n += !p->m[i].draining && !p->m[i].spare;
    return n;
}

static int spares(const struct pool *p)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        n += !p->m[i].draining && p->m[i].spare;
    return n;
}

/* Makes the oldest spare a worker; 0, or -1 when there is none or it is gone. */
static int wake_spare(struct pool *p)
{
    for (int i = 0; i < p->n; i++) {
        struct member *m = &p->m[i];
        if (!m->spare || m->draining) continue;
        int ok = write(m->wake_fd, "w", 1) == 1;
        close(m->wake_fd);
        m->wake_fd = -1;
        if (!ok) { /* it died: reaped later */
            m->draining = 1;
            continue;
        }
        m->spare = 0;
        m->started = now_ms();
        /* keep age order among workers: the newest is stopped first */
        struct member w = *m;
        memmove(&p->m[i], &p->m[i + 1], (size_t)(p->n - i - 1) * sizeof *p->m);
        p->m[p->n - 1] = w;
        return 0;
    }
    return -1;
}

static int grow(struct pool *p)
{
    if (p->n < p->cap) return 0;
    int cap = p->cap ? 2 * p->cap : 16;
    struct member *m = realloc(p->m, (size_t)cap * sizeof *m);
    if (!m) return -1;
    p->m = m;
    p->cap = cap;
    return 0;
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
        if (wake_spare(p) == 0) {
            metrics_worker_event(MW_STARTS);
            running++;
            continue;
        }
        if (grow(p)) break;
        pid_t pid = start_one(p);
        if (pid < 0) {
            log_error(NULL, "pool: cannot start a worker: %s", strerror(errno));
            break;
        }
        p->m[p->n++] = (struct member){pid, 0, 0, -1, now_ms(), 0};
        metrics_worker_event(MW_STARTS);
        running++;
    }
    for (int i = p->n - 1; i >= 0 && running > n; i--) /* the newest first */
        if (!p->m[i].draining && !p->m[i].spare) {
            kill(p->m[i].pid, SIGTERM);
            p->m[i].draining = 1;
            p->m[i].term_sent = now_ms();
            running--;
        }
    /* spares are made only while no more workers are wanted: never in a burst's way */
    if (p->rec && running >= n && running + spares(p) < p->spares_max && now_ms() >= p->no_start_until &&
        !*p->stop && grow(p) == 0) {
        if (spawn_spare(p, &p->m[p->n]) == 0) p->n++;
        else log_error(NULL, "pool: cannot start a spare worker: %s", strerror(errno));
    }
    return running;
}

void pool_close(struct pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++)
        if (p->m[i].spare && !p->m[i].draining) retire_spare(&p->m[i]);
    p->spares_max = 0;
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
