/* queue.c: argument checks, dispatch to the configured backend, and the group-commit sender. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/backend.h"

struct queue {
    const struct queue_ops *ops;
    void *impl;
};

int queue_open(const struct config *c, struct queue **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct queue *q = calloc(1, sizeof *q);
    if (!q) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc;
    if (!strcmp(c->backend, "embedded"))
        rc = queue_sqlite_open(c, &q->ops, &q->impl, err);
    else if (!strcmp(c->backend, "aws"))
        rc = queue_sqs_open(c, &q->ops, &q->impl, err);
    else
        rc = fr_fail(err, FR_EUNSUPPORTED, "queue backend '%s' is not available", c->backend);
    if (rc) {
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void queue_close(struct queue *q)
{
    if (!q) return;
    q->ops->close(q->impl);
    free(q);
}

static int body_ok(const char *body, char *err)
{
    size_t n = strlen(body);
    if (n == 0 || n > QUEUE_BODY_MAX)
        return fr_fail(err, FR_EINVAL, "message body of %zu bytes (1..%d allowed)", n,
                       QUEUE_BODY_MAX);
    return 0;
}

int queue_send(struct queue *q, const char *body, int delay_s, char err[FR_ERR_LEN])
{
    int rc = body_ok(body, err);
    if (rc) return rc;
    if (delay_s < 0 || delay_s > 900) return fr_fail(err, FR_EINVAL, "delay %d s out of range", delay_s);
    return q->ops->send(q->impl, body, delay_s, err);
}

int queue_send_batch(struct queue *q, const char *const *bodies, int n, int *rcs,
                     char err[FR_ERR_LEN])
{
    int first = 0;
    const char *ok[QUEUE_SEND_BATCH_MAX];
    int at[QUEUE_SEND_BATCH_MAX], m = 0;
    for (int i = 0; i < n; i++) {
        rcs[i] = body_ok(bodies[i], err);
        if (rcs[i] && !first) first = rcs[i];
    }
    /* the valid ones go to the backend, QUEUE_SEND_BATCH_MAX at a time */
    char why[FR_ERR_LEN];
    for (int i = 0; i <= n; i++) {
        if (i < n && !rcs[i]) {
            ok[m] = bodies[i];
            at[m++] = i;
        }
        if (m == QUEUE_SEND_BATCH_MAX || (i == n && m > 0)) {
            int sub[QUEUE_SEND_BATCH_MAX];
            int rc = q->ops->send_batch(q->impl, ok, m, sub, why);
            for (int k = 0; k < m; k++)
                rcs[at[k]] = rc && !sub[k] ? rc : sub[k];
            if (rc && !first) {
                first = rc;
                snprintf(err, FR_ERR_LEN, "%s", why);
            }
            m = 0;
        }
    }
    return first;
}

int queue_receive(struct queue *q, int wait_s, int visibility_s, struct queue_msg *m,
                  char err[FR_ERR_LEN])
{
    if (wait_s < 0 || wait_s > 20 || visibility_s < 0 || visibility_s > 43200)
        return fr_fail(err, FR_EINVAL, "wait %d s or visibility %d s out of range", wait_s,
                       visibility_s);
    memset(m, 0, sizeof *m);
    return q->ops->receive(q->impl, wait_s, visibility_s, m, err);
}

int queue_delete(struct queue *q, const char *receipt, char err[FR_ERR_LEN])
{
    return q->ops->del(q->impl, receipt, err);
}

int queue_retry(struct queue *q, const char *receipt, int delay_s, char err[FR_ERR_LEN])
{
    if (delay_s < 0 || delay_s > 43200) return fr_fail(err, FR_EINVAL, "delay %d s out of range", delay_s);
    return q->ops->retry(q->impl, receipt, delay_s, err);
}

int queue_dead_letter(struct queue *q, const struct queue_msg *m, char err[FR_ERR_LEN])
{
    return q->ops->dead_letter(q->impl, m, err);
}

void queue_wait_change(struct queue *q, int timeout_ms)
{
    if (timeout_ms <= 0) return;
    if (q->ops->wait_change) {
        q->ops->wait_change(q->impl, timeout_ms);
        return;
    }
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int queue_counts(struct queue *q, struct queue_counts *counts, char err[FR_ERR_LEN])
{
    memset(counts, 0, sizeof *counts);
    return q->ops->counts(q->impl, counts, err);
}

/* ---- the group-commit sender ---- */

/* One thread's send, on its stack while it waits. */
struct send_req {
    const char *body;
    char *err;
    int rc, done;
    struct send_req *next;
};

struct queue_sender {
    struct queue *q;
    pthread_mutex_t lock; /* guards head, tail, committing and the requests' rc, err, done */
    pthread_cond_t cond;  /* a commit finished */
    struct send_req *head, *tail; /* waiting to be committed, oldest first */
    int committing;
};

int queue_sender_open(const struct config *c, struct queue_sender **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct queue_sender *s = calloc(1, sizeof *s);
    if (!s) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = queue_open(c, &s->q, err);
    if (rc) {
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    *out = s;
    return 0;
}

void queue_sender_close(struct queue_sender *s)
{
    if (!s) return;
    queue_close(s->q);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int queue_sender_send(struct queue_sender *s, const char *body, char err[FR_ERR_LEN])
{
    struct send_req me = {body, err, 0, 0, NULL};
    pthread_mutex_lock(&s->lock);
    if (s->tail) s->tail->next = &me;
    else s->head = &me;
    s->tail = &me;
    while (!me.done) {
        if (s->committing) {
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        /* no commit running: this thread commits everything that is waiting, itself included */
        s->committing = 1;
        struct send_req *batch[QUEUE_SEND_BATCH_MAX];
        int n = 0;
        while (s->head && n < QUEUE_SEND_BATCH_MAX) {
            batch[n++] = s->head;
            s->head = s->head->next;
        }
        if (!s->head) s->tail = NULL;
        pthread_mutex_unlock(&s->lock);
        const char *bodies[QUEUE_SEND_BATCH_MAX];
        int rcs[QUEUE_SEND_BATCH_MAX];
        char why[FR_ERR_LEN] = "";
        for (int i = 0; i < n; i++)
            bodies[i] = batch[i]->body;
        int rc = queue_send_batch(s->q, bodies, n, rcs, why);
        pthread_mutex_lock(&s->lock);
        for (int i = 0; i < n; i++) {
            batch[i]->rc = rcs[i];
            if (rcs[i]) snprintf(batch[i]->err, FR_ERR_LEN, "%s", rc ? why : "send failed");
            batch[i]->done = 1;
        }
        s->committing = 0;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return me.rc;
}
