/* scaler.c: the target from the backlog, and the stabilisation window for scaling down. */
#include "service/scaler.h"

#include <stdio.h>
#include <stdlib.h>

struct scaler {
    struct scaler_policy p;
    double *needed_at; /* [k]: the last time a target of at least k workers was seen */
};

int scaler_new(const struct scaler_policy *p, struct scaler **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    if (p->min < 0 || p->max < p->min || p->max > 100000 || p->backlog < 1 || !(p->down_window_ms >= 0))
        return fr_fail(err, FR_EINVAL, "autoscaler: need 0 <= MIN_WORKERS <= MAX_WORKERS, BACKLOG_PER_WORKER >= 1");
    struct scaler *s = calloc(1, sizeof *s);
    if (s) s->needed_at = calloc((size_t)p->max + 1, sizeof *s->needed_at);
    if (!s || !s->needed_at) {
        scaler_free(s);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    s->p = *p;
    for (int k = 0; k <= p->max; k++)
        s->needed_at[k] = -1e300; /* never */
    *out = s;
    return 0;
}

void scaler_free(struct scaler *s)
{
    if (!s) return;
    free(s->needed_at);
    free(s);
}

int scaler_decide(struct scaler *s, long waiting, long in_flight, int current, double now_ms,
                  char reason[SCALER_REASON_MAX])
{
    const struct scaler_policy *p = &s->p;
    long backlog = (waiting > 0 ? waiting : 0) + (in_flight > 0 ? in_flight : 0);
    long want = (backlog + p->backlog - 1) / p->backlog;
    int target = want < p->min ? p->min : want > p->max ? p->max : (int)want;
    for (int k = 0; k <= target; k++)
        s->needed_at[k] = now_ms;
    /* the highest target within the window */
    int held = target;
    while (held < p->max && now_ms - s->needed_at[held + 1] < p->down_window_ms)
        held++;
    const char *jobs = backlog == 1 ? "" : "s", *workers = target == 1 ? "" : "s";
    if (held > current && target > current)
        snprintf(reason, SCALER_REASON_MAX, "%ld job%s need %d worker%s%s", backlog, jobs, target,
                 workers, want > p->max ? " (capped by MAX_WORKERS)" : "");
    else if (held > current) /* fewer running than the window holds, e.g. after a crash */
        snprintf(reason, SCALER_REASON_MAX, "holding %d worker%s for the stabilisation window",
                 held, held == 1 ? "" : "s");
    else if (held < current)
        snprintf(reason, SCALER_REASON_MAX, "%ld job%s need %d worker%s, none more for %.0f s",
                 backlog, jobs, target, workers, p->down_window_ms / 1000);
    else
        snprintf(reason, SCALER_REASON_MAX, "steady");
    return held;
}
