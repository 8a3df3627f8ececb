/* cli_service.c: `facerec serve`, `api`, `worker`, `autoscale`, `queue`.
 *
 * serve runs the API in this process and the autoscaler as a child process, which starts the
 * workers (autoscale.h); an autoscaler that dies is restarted. SIGTERM or SIGINT stops the API,
 * then the autoscaler, which lets its workers finish their current job. */
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
#include "service/autoscale.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/pool.h"
#include "service/worker.h"
#include "util/config.h"

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
    if (argc >= 2)
        return cli_usage(cmd, "takes no arguments, got '%s' (settings come from the environment)", argv[1]);
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
    if (c.metrics_port) {
        if (metrics_attach(err) || metrics_listen(c.host, c.metrics_port, err))
            return cli_error("%s", err);
        log_info(NULL, "metrics on http://%s:%d/metrics", c.host, c.metrics_port);
    }
    int rc = worker_run(&c, &stop_requested, err);
    metrics_unlisten();
    if (rc) {
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

int cli_autoscale(int argc, char **argv)
{
    int u = usage("autoscale", argc, argv);
    if (u >= 0) return u;
    struct config c;
    if (load_config(&c)) return 1;
    install_handlers();
    char err[FR_ERR_LEN];
    if (autoscale_run(&c, &stop_requested, err)) {
        log_error(NULL, "autoscaler cannot run: %s", err);
        return 1;
    }
    return 0;
}

/* The autoscaler is a fresh exec, not a fork: the API's threads are running, and the autoscaler
 * forks workers from itself, which only a single-threaded process may do. */
static pid_t spawn_autoscaler(void)
{
    return pool_spawn_self("autoscale");
}

int cli_serve(int argc, char **argv)
{
    int u = usage("serve", argc, argv);
    if (u >= 0) return u;
    struct config c;
    if (load_config(&c)) return 1;
    install_handlers();
    char err[FR_ERR_LEN];
    if (metrics_create(err)) return cli_error("%s", err);
    pid_t scaler = spawn_autoscaler();
    if (scaler < 0) return cli_error("cannot start the autoscaler");
    struct api *a;
    if (api_start(&c, &a, err)) {
        kill(scaler, SIGTERM);
        while (wait(NULL) > 0) {}
        return cli_error("%s", err);
    }
    if (c.workers > 0)
        log_info(NULL, "serving on http://%s:%d with %d worker%s (%s backend, data in %s)", c.host,
                 c.port, c.workers, c.workers == 1 ? "" : "s", c.backend, c.data_dir);
    else
        log_info(NULL, "serving on http://%s:%d with workers on demand (%s backend, data in %s)",
                 c.host, c.port, c.backend, c.data_dir);
    int pause_s = 1;
    while (!stop_requested) {
        int status;
        if (waitpid(scaler, &status, WNOHANG) == scaler) {
            log_error(NULL, "the autoscaler stopped (%s %d); restarting it in %d s",
                      WIFSIGNALED(status) ? "signal" : "status",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), pause_s);
            for (int i = 0; i < pause_s * 10 && !stop_requested; i++)
                usleep(100 * 1000);
            if (pause_s < 30) pause_s *= 2;
            scaler = spawn_autoscaler();
            continue;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    log_info(NULL, "stopping: API first, then workers after their current job");
    api_stop(a);
    if (scaler > 0) kill(scaler, SIGTERM);
    /* the autoscaler drains its workers within their grace period; a little more for it */
    time_t grace_end = time(NULL) + c.job_timeout_seconds + c.sqs_wait_time_seconds + 10;
    while (scaler > 0 && time(NULL) < grace_end && waitpid(scaler, NULL, WNOHANG) == 0)
        usleep(50 * 1000);
    if (scaler > 0 && waitpid(scaler, NULL, WNOHANG) == 0) {
        kill(scaler, SIGKILL); /* its workers get SIGTERM from their parent-death signal */
        waitpid(scaler, NULL, 0);
    }
    log_info(NULL, "stopped");
    return 0;
}

/* `facerec queue send BODY | counts`: the configured queue by hand, for operators and tests. */
int cli_queue(int argc, char **argv)
{
    static const char usage_text[] = "usage: facerec queue send BODY [--delay S]\n"
                                     "       facerec queue counts\n";
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage_text, stdout);
        return 0;
    }
    int send = argc >= 2 && !strcmp(argv[1], "send") &&
               (argc == 3 || (argc == 5 && !strcmp(argv[3], "--delay")));
    int counts = argc == 2 && !strcmp(argv[1], "counts");
    if (!send && !counts) /* checked before the queue is opened (and created) */
        return cli_usage("queue", "expected 'send BODY [--delay S]' or 'counts'");
    struct config c;
    if (load_config(&c)) return 1;
    char err[FR_ERR_LEN];
    struct queue *q;
    if (queue_open(&c, &q, err)) return cli_error("%s", err);
    int rc = 0;
    if (send) {
        if (queue_send(q, argv[2], argc == 5 ? atoi(argv[4]) : 0, err)) rc = cli_error("%s", err);
    } else {
        struct queue_counts qc;
        if (queue_counts(q, &qc, err)) rc = cli_error("%s", err);
        else
            printf("{\"waiting\":%ld,\"in_flight\":%ld,\"delayed\":%ld,\"dead\":%ld}\n", qc.waiting,
                   qc.in_flight, qc.delayed, qc.dead);
    }
    queue_close(q);
    return rc;
}
