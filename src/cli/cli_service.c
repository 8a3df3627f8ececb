/* cli_service.c: `facerec serve`, `facerec api`, `facerec worker`.
 *
 * serve runs the API in this process and WORKERS worker processes under it: a worker that dies
 * is replaced (and its death logged); SIGTERM or SIGINT stops the API, asks the workers to finish
 * their current job (SIGTERM) and kills those still running after the grace period. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "queue/queue.h"
#include "service/api.h"
#include "service/log.h"
#include "service/worker.h"
#include "util/config.h"

#define MAX_POOL 256

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_handlers(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int load_config(struct config *c)
{
    char err[FR_ERR_LEN];
    if (config_load(c, err)) return cli_error("configuration: %s", err);
    return 0;
}

static int usage(const char *cmd, int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: facerec %s\n\nSettings come from the environment: see 'facerec help config'.\n", cmd);
        return 0;
    }
    if (argc >= 2) {
        fprintf(stderr, "usage: facerec %s (settings come from the environment)\n", cmd);
        return 2;
    }
    return -1;
}

int cli_worker(int argc, char **argv)
{
    int u = usage("worker", argc, argv);
    if (u >= 0) return u;
    struct config c;
    if (load_config(&c)) return 1;
    install_handlers();
    char err[FR_ERR_LEN];
    log_info(NULL, "worker started (%s backend)", c.backend);
    if (worker_run(&c, &stop_requested, err)) {
        log_error(NULL, "worker cannot run: %s", err);
        return 1;
    }
    log_info(NULL, "worker stopped");
    return 0;
}

int cli_api(int argc, char **argv)
{
    int u = usage("api", argc, argv);
    if (u >= 0) return u;
    struct config c;
    if (load_config(&c)) return 1;
    install_handlers();
    char err[FR_ERR_LEN];
    struct api *a;
    if (api_start(&c, &a, err)) return cli_error("%s", err);
    log_info(NULL, "API listening on http://%s:%d (%s backend)", c.host, c.port, c.backend);
    while (!stop_requested)
        pause();
    api_stop(a);
    log_info(NULL, "API stopped");
    return 0;
}

/* Starts `facerec worker` as a child: a fresh exec rather than a bare fork, because replacements
 * are forked while the API's threads run, and only a new program image is safe from whatever
 * locks those threads held. The worker reads the same environment. */
static pid_t spawn_worker(void)
{
    pid_t pid = fork();
    if (pid != 0) return pid; /* parent, or -1 */
    char *args[] = {"facerec", "worker", NULL};
    execv("/proc/self/exe", args);
    log_error(NULL, "cannot start a worker: exec failed");
    _exit(127);
}

int cli_serve(int argc, char **argv)
{
    int u = usage("serve", argc, argv);
    if (u >= 0) return u;
    struct config c;
    if (load_config(&c)) return 1;
    install_handlers();
    char err[FR_ERR_LEN];
    int n = c.workers < MAX_POOL ? c.workers : MAX_POOL;
    pid_t pool[MAX_POOL] = {0};
    for (int i = 0; i < n; i++)
        pool[i] = spawn_worker();
    struct api *a;
    if (api_start(&c, &a, err)) {
        for (int i = 0; i < n; i++)
            if (pool[i] > 0) kill(pool[i], SIGTERM);
        while (wait(NULL) > 0) {}
        return cli_error("%s", err);
    }
    log_info(NULL, "serving on http://%s:%d with %d worker%s (%s backend, data in %s)", c.host,
             c.port, n, n == 1 ? "" : "s", c.backend, c.data_dir);
    int restarts_in_a_row = 0;
    while (!stop_requested) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            for (int i = 0; i < n; i++)
                if (pool[i] == pid) {
                    if (WIFSIGNALED(status))
                        log_error(NULL, "worker %ld killed by signal %d; replacing it", (long)pid,
                                  WTERMSIG(status));
                    else
                        log_error(NULL, "worker %ld exited with status %d; replacing it", (long)pid,
                                  WEXITSTATUS(status));
                    /* a worker that cannot start at all would loop: slow down */
                    if (++restarts_in_a_row > 3) sleep(1);
                    pool[i] = spawn_worker();
                }
            continue;
        }
        if (restarts_in_a_row > 0) restarts_in_a_row--;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    log_info(NULL, "stopping: API first, then workers after their current job");
    api_stop(a);
    for (int i = 0; i < n; i++)
        if (pool[i] > 0) kill(pool[i], SIGTERM);
    time_t grace_end = time(NULL) + c.job_timeout_seconds + c.sqs_wait_time_seconds + 5;
    int left = n;
    while (left > 0 && time(NULL) < grace_end) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid > 0) left--;
        else if (pid < 0 && errno == ECHILD) break;
        else usleep(50 * 1000);
    }
    for (int i = 0; i < n && left > 0; i++)
        if (pool[i] > 0) kill(pool[i], SIGKILL);
    while (wait(NULL) > 0) {}
    log_info(NULL, "stopped");
    return 0;
}

/* `facerec queue send BODY | counts`: the configured queue by hand, for operators and tests. */
int cli_queue(int argc, char **argv)
{
    static const char usage_text[] = "usage: facerec queue send BODY [--delay S]\n"
                                     "       facerec queue counts\n";
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct config c;
    if (load_config(&c)) return 1;
    char err[FR_ERR_LEN];
    struct queue *q;
    if (queue_open(&c, &q, err)) return cli_error("%s", err);
    int rc = 0;
    if (!strcmp(argv[1], "send") && (argc == 3 || (argc == 5 && !strcmp(argv[3], "--delay")))) {
        if (queue_send(q, argv[2], argc == 5 ? atoi(argv[4]) : 0, err)) rc = cli_error("%s", err);
    } else if (!strcmp(argv[1], "counts") && argc == 2) {
        struct queue_counts qc;
        if (queue_counts(q, &qc, err)) rc = cli_error("%s", err);
        else
            printf("{\"waiting\":%ld,\"in_flight\":%ld,\"delayed\":%ld,\"dead\":%ld}\n", qc.waiting,
                   qc.in_flight, qc.delayed, qc.dead);
    } else {
        fputs(usage_text, stderr);
        rc = 2;
    }
    queue_close(q);
    return rc;
}
