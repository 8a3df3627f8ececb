/* test_queue: the queue: delivery, visibility timeouts, stale receipts, retries with delay, dead
 * letters, counts, long polling, and exactly-once claiming by concurrent processes. On the
 * embedded backend; with FACEREC_TEST_BACKEND=aws on the SQS backend the environment configures
 * (tests/test_queue_sqs.sh starts an emulator for that). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "queue/queue.h"

static struct config cfg;
/* SQS differs in three documented ways: deleting with a stale or unknown receipt may succeed;
 * a message made invisible by a retry counts as in flight, not delayed. */
static int sqs;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_basic(void)
{
    char err[FR_ERR_LEN];
    struct queue *q;
    int opened = queue_open(&cfg, &q, err);
    CHECK_MSG(opened == 0, "%s", err);
    if (opened) return;
    struct queue_msg m, m2;
    struct queue_counts c;
    CHECK(queue_send(q, "job-1_photo.jpg", 0, err) == 0);
    CHECK(queue_counts(q, &c, err) == 0 && c.waiting == 1 && c.in_flight == 0);
    CHECK(queue_receive(q, 0, 1, &m, err) == 0 && !strcmp(m.body, "job-1_photo.jpg"));
    CHECK(m.receive_count == 1);
    CHECK_MSG(m.sent_ms > (long long)time(NULL) * 1000 - 60000 && m.sent_ms <= (long long)time(NULL) * 1000 + 60000,
              "sent_ms %lld is not about now", m.sent_ms);
    CHECK(queue_counts(q, &c, err) == 0 && c.waiting == 0 && c.in_flight == 1);
    /* hidden while in flight */
    CHECK(queue_receive(q, 0, 1, &m2, err) == FR_ETIMEOUT);
    /* after the visibility timeout it comes back, with a new receipt; the old one is stale */
    usleep(1100 * 1000);
    CHECK(queue_receive(q, 0, 30, &m2, err) == 0 && m2.receive_count == 2);
    CHECK(strcmp(m.receipt, m2.receipt) != 0);
    if (!sqs) CHECK(queue_delete(q, m.receipt, err) == FR_ENOTFOUND);
    CHECK(queue_delete(q, m2.receipt, err) == 0);
    if (!sqs) CHECK(queue_delete(q, m2.receipt, err) == FR_ENOTFOUND);
    CHECK(queue_counts(q, &c, err) == 0 && c.waiting == 0 && c.in_flight == 0);

    /* retry with a delay: invisible for that long, then back */
    CHECK(queue_send(q, "job-2_a.png", 0, err) == 0);
    CHECK(queue_receive(q, 0, 60, &m, err) == 0);
    CHECK(queue_retry(q, m.receipt, 1, err) == 0);
    CHECK(queue_counts(q, &c, err) == 0 && (sqs ? c.in_flight : c.delayed) == 1);
    CHECK(queue_receive(q, 0, 60, &m2, err) == FR_ETIMEOUT);
    double t0 = now_s();
    CHECK(queue_receive(q, 3, 60, &m2, err) == 0 && m2.receive_count == 2);
    double waited = now_s() - t0;
    CHECK_MSG(waited > 0.5 && waited < 2.5, "long poll returned after %.2f s", waited);
    /* dead letter */
    CHECK(queue_dead_letter(q, &m2, err) == 0);
    CHECK(queue_counts(q, &c, err) == 0 && c.dead == 1 && c.waiting == 0 && c.in_flight == 0);
    CHECK(queue_receive(q, 0, 60, &m2, err) == FR_ETIMEOUT);

    /* delayed send */
    CHECK(queue_send(q, "job-3_b.webp", 1, err) == 0);
    CHECK(queue_receive(q, 0, 60, &m, err) == FR_ETIMEOUT);
    CHECK(queue_receive(q, 2, 60, &m, err) == 0 && !strcmp(m.body, "job-3_b.webp"));
    CHECK(queue_delete(q, m.receipt, err) == 0);

    /* bad arguments */
    CHECK(queue_send(q, "", 0, err) == FR_EINVAL);
    char big[QUEUE_BODY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(queue_send(q, big, 0, err) == FR_EINVAL);
    CHECK(queue_receive(q, 100, 60, &m, err) == FR_EINVAL);
    if (!sqs) CHECK(queue_delete(q, "123.not-a-receipt", err) == FR_ENOTFOUND);
    /* an empty wait times out on time */
    t0 = now_s();
    CHECK(queue_receive(q, 1, 60, &m, err) == FR_ETIMEOUT);
    waited = now_s() - t0;
    CHECK_MSG(waited > 0.9 && waited < 1.6, "empty long poll took %.2f s", waited);
    queue_close(q);
}

/* Batches: all bodies sent in order, a bad body refused alone; more than a backend call holds. */
static void test_batch(void)
{
    char err[FR_ERR_LEN];
    struct queue *q;
    int opened = queue_open(&cfg, &q, err);
    CHECK_MSG(opened == 0, "%s", err);
    if (opened) return;
    enum { N = QUEUE_SEND_BATCH_MAX + 7 };
    char bodies[N][16];
    const char *ptrs[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "b%d", i);
        ptrs[i] = bodies[i];
    }
    ptrs[3] = ""; /* refused, the others sent */
    CHECK(queue_send_batch(q, ptrs, N, rcs, err) == FR_EINVAL);
    int sent = 0;
    for (int i = 0; i < N; i++)
        sent += rcs[i] == 0;
    CHECK(rcs[3] == FR_EINVAL && sent == N - 1);
    struct queue_msg m;
    int got = 0, ordered = 1;
    while (queue_receive(q, 0, 60, &m, err) == 0) {
        int i = atoi(m.body + 1);
        if (!sqs) ordered &= i == got + (got >= 3); /* FIFO on SQLite; SQS does not promise it */
        got++;
        CHECK(queue_delete(q, m.receipt, err) == 0);
    }
    CHECK_MSG(got == N - 1 && ordered, "%d received of %d", got, N - 1);
    queue_close(q);
}

struct sender_arg {
    struct queue_sender *s;
    int from, n, failed;
};

static void *send_some(void *arg)
{
    struct sender_arg *a = arg;
    char body[32], err[FR_ERR_LEN];
    for (int i = a->from; i < a->from + a->n; i++) {
        snprintf(body, sizeof body, "s%d", i);
        a->failed += queue_sender_send(a->s, body, err) != 0;
    }
    return NULL;
}

/* Threads sending through one sender at once: every message arrives once. */
static void test_sender(void)
{
    enum { T = 8, EACH = 25 };
    char err[FR_ERR_LEN];
    struct queue_sender *s;
    int opened = queue_sender_open(&cfg, &s, err);
    CHECK_MSG(opened == 0, "%s", err);
    if (opened) return;
    pthread_t th[T];
    struct sender_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (struct sender_arg){s, t * EACH, EACH, 0};
        pthread_create(&th[t], NULL, send_some, &args[t]);
    }
    int failed = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        failed += args[t].failed;
    }
    queue_sender_close(s);
    CHECK(failed == 0);
    char bad[QUEUE_BODY_MAX + 2];
    memset(bad, 'x', sizeof bad - 1);
    bad[sizeof bad - 1] = 0;
    CHECK(queue_sender_open(&cfg, &s, err) == 0 && queue_sender_send(s, bad, err) == FR_EINVAL);
    queue_sender_close(s);
    struct queue *q;
    if (queue_open(&cfg, &q, err)) return;
    int seen[T * EACH] = {0}, got = 0, once = 1;
    struct queue_msg m;
    while (queue_receive(q, 0, 60, &m, err) == 0) {
        int i = atoi(m.body + 1);
        if (i >= 0 && i < T * EACH) seen[i]++;
        got++;
        CHECK(queue_delete(q, m.receipt, err) == 0);
    }
    for (int i = 0; i < T * EACH; i++)
        once &= seen[i] == 1;
    CHECK_MSG(once && got == T * EACH, "%d received of %d", got, T * EACH);
    queue_close(q);
}

/* A long poll wakes when another process's send is committed, not at the next 50 ms re-check
 * (under synchronous=FULL the WAL is written before the fsync and the commit: the send rings
 * queue.bell afterwards). Median delay of five tries. */
static void test_wake(void)
{
    char err[FR_ERR_LEN];
    struct queue *q;
    if (queue_open(&cfg, &q, err)) return;
    double delay[5];
    for (int t = 0; t < 5; t++) {
        pid_t pid = fork();
        if (pid == 0) {
            struct queue *cq;
            if (queue_open(&cfg, &cq, err)) _exit(2);
            usleep(100000);
            double sent = now_s();
            int rc = queue_send(cq, "wake", 0, err);
            queue_close(cq);
            FILE *f = fopen("/tmp/facerec-test-wake", "w");
            if (f) fprintf(f, "%.6f", sent), fclose(f);
            _exit(rc ? 3 : 0);
        }
        struct queue_msg m;
        int got = queue_receive(q, 2, 60, &m, err);
        double now = now_s(), sent = 0;
        int status;
        waitpid(pid, &status, 0);
        FILE *f = fopen("/tmp/facerec-test-wake", "r");
        if (f && fscanf(f, "%lf", &sent) != 1) sent = 0;
        if (f) fclose(f);
        delay[t] = got == 0 && sent > 0 ? now - sent : 9;
        if (got == 0) CHECK(queue_delete(q, m.receipt, err) == 0);
    }
    unlink("/tmp/facerec-test-wake");
    for (int i = 1; i < 5; i++) /* sort */
        for (int k = i; k > 0 && delay[k] < delay[k - 1]; k--) {
            double x = delay[k];
            delay[k] = delay[k - 1];
            delay[k - 1] = x;
        }
    CHECK_MSG(delay[2] < 0.030, "a long poll woke %.1f ms after the send (median of 5)", delay[2] * 1e3);
    queue_close(q);
}

/* N processes drain M messages: every message is received and deleted exactly once. */
static void test_concurrent(void)
{
    enum { M = 300, P = 4 };
    char err[FR_ERR_LEN];
    struct queue *q;
    int opened = queue_open(&cfg, &q, err);
    CHECK_MSG(opened == 0, "%s", err);
    if (opened) return;
    for (int i = 0; i < M; i++) {
        char body[32];
        snprintf(body, sizeof body, "%d", i);
        CHECK(queue_send(q, body, 0, err) == 0);
    }
    queue_close(q);
    int fds[P][2];
    for (int p = 0; p < P; p++) {
        if (pipe(fds[p]) != 0) abort();
        if (fork() == 0) {
            close(fds[p][0]);
            struct queue *cq;
            if (queue_open(&cfg, &cq, err)) _exit(2);
            struct queue_msg m;
            while (queue_receive(cq, 0, 60, &m, err) == 0) {
                int id = atoi(m.body);
                if (queue_delete(cq, m.receipt, err) != 0) _exit(3);
                if (write(fds[p][1], &id, sizeof id) != sizeof id) _exit(4);
            }
            queue_close(cq);
            _exit(0);
        }
        close(fds[p][1]);
    }
    int seen[M] = {0}, total = 0;
    for (int p = 0; p < P; p++) {
        int id;
        while (read(fds[p][0], &id, sizeof id) == sizeof id)
            if (id >= 0 && id < M) seen[id]++, total++;
        close(fds[p][0]);
    }
    int status, ok = 1;
    while (wait(&status) > 0)
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    CHECK(ok);
    int once = 1;
    for (int i = 0; i < M; i++)
        once &= seen[i] == 1;
    CHECK_MSG(once && total == M, "%d deliveries of %d messages", total, M);
}

int main(void)
{
    char dir[] = "/tmp/facerec-queue-XXXXXX", err[FR_ERR_LEN];
    if (!mkdtemp(dir)) return 1;
    const char *backend = getenv("FACEREC_TEST_BACKEND");
    if (backend && !strcmp(backend, "aws")) {
        sqs = 1;
        if (config_load(&cfg, err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    } else {
        config_defaults(&cfg);
    }
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    test_basic();
    test_batch();
    test_sender();
    if (!sqs) test_wake();
    test_concurrent();
    if (!sqs) { /* without fsyncs, the same behaviour */
        snprintf(cfg.durability, sizeof cfg.durability, "process");
        test_batch();
        test_sender();
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return check_done();
}
