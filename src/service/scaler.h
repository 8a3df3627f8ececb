/* scaler.h: how many workers a queue needs: the autoscaler's decision, without side effects.
 *
 * The target is one worker per BACKLOG_PER_WORKER messages waiting or in flight, within
 * MIN_WORKERS..MAX_WORKERS. Up is at once; down only to the highest target seen during the last
 * SCALE_DOWN_SECONDS (the stabilisation window), so a short lull does not stop workers that are
 * needed again a moment later; an idle queue reaches MIN_WORKERS (0: none) after the window. */
#ifndef FR_SERVICE_SCALER_H
#define FR_SERVICE_SCALER_H

#include "util/err.h"

#define SCALER_REASON_MAX 96

struct scaler_policy {
    int min, max;        /* workers; 0 <= min <= max */
    int backlog;         /* messages per worker, >= 1 */
    double down_window_ms;
};

struct scaler;

/* Returns 0, FR_EINVAL for a bad policy, FR_ENOMEM. */
int scaler_new(const struct scaler_policy *p, struct scaler **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void scaler_free(struct scaler *s);

/* The number of workers wanted now, given the queue and the workers running (current), at a
 * monotonic time now_ms that never decreases between calls. reason says why, in words. */
int scaler_decide(struct scaler *s, long waiting, long in_flight, int current, double now_ms,
                  char reason[SCALER_REASON_MAX]);

#endif
