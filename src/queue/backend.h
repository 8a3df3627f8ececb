/* backend.h: what a queue backend provides (internal to src/queue). */
#ifndef FR_QUEUE_BACKEND_H
#define FR_QUEUE_BACKEND_H

#include "queue/queue.h"

struct queue_ops {
    int (*send)(void *impl, const char *body, int delay_s, char *err);
    /* n >= 1 bodies, no delay; fills rcs[i]; returns 0 or the first error */
    int (*send_batch)(void *impl, const char *const *bodies, int n, int *rcs, char *err);
    int (*receive)(void *impl, int wait_s, int visibility_s, struct queue_msg *m, char *err);
    int (*del)(void *impl, const char *receipt, char *err);
    int (*retry)(void *impl, const char *receipt, int delay_s, char *err);
    int (*dead_letter)(void *impl, const struct queue_msg *m, char *err);
    int (*counts)(void *impl, struct queue_counts *counts, char *err);
    /* optional: returns within timeout_ms, early on a change; NULL: queue.c sleeps */
    void (*wait_change)(void *impl, int timeout_ms);
    void (*close)(void *impl);
};

int queue_sqlite_open(const struct config *c, const struct queue_ops **ops, void **impl,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

int queue_sqs_open(const struct config *c, const struct queue_ops **ops, void **impl,
                   char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
