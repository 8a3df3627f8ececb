/* queue.c: argument checks and dispatch to the configured backend. */
#include <stdlib.h>
#include <string.h>

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

int queue_send(struct queue *q, const char *body, int delay_s, char err[FR_ERR_LEN])
{
    size_t n = strlen(body);
    if (n == 0 || n > QUEUE_BODY_MAX)
        return fr_fail(err, FR_EINVAL, "message body of %zu bytes (1..%d allowed)", n,
                       QUEUE_BODY_MAX);
    if (delay_s < 0 || delay_s > 900) return fr_fail(err, FR_EINVAL, "delay %d s out of range", delay_s);
    return q->ops->send(q->impl, body, delay_s, err);
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

int queue_counts(struct queue *q, struct queue_counts *counts, char err[FR_ERR_LEN])
{
    memset(counts, 0, sizeof *counts);
    return q->ops->counts(q->impl, counts, err);
}
