/* test_scaler: the autoscaler's decisions: the target from the backlog, up at once, down only
 * after the stabilisation window, the bounds, and the policy checks. */
#include <string.h>

#include "check.h"
#include "service/scaler.h"

static struct scaler *make(int min, int max, int backlog, double window_ms)
{
    struct scaler_policy p = {min, max, backlog, window_ms};
    struct scaler *s = NULL;
    char err[FR_ERR_LEN];
    int rc = scaler_new(&p, &s, err);
    CHECK_MSG(rc == 0, "%s", err);
    return s;
}

static void test_policy(void)
{
    char err[FR_ERR_LEN];
    struct scaler *s = NULL;
    struct scaler_policy bad[] = {{3, 2, 1, 0}, {-1, 2, 1, 0}, {0, 2, 0, 0}, {0, 2, 1, -5}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(scaler_new(&bad[i], &s, err) == FR_EINVAL && s == NULL);
    }
    s = make(0, 0, 1, 0); /* a scaler that may start nothing is allowed, and starts nothing */
    char why[SCALER_REASON_MAX];
    if (s) CHECK(scaler_decide(s, 50, 0, 0, 0, why) == 0);
    scaler_free(s);
    scaler_free(NULL);
}

static void test_up_and_down(void)
{
    struct scaler *s = make(0, 15, 1, 30000);
    if (!s) return;
    char why[SCALER_REASON_MAX];
    double t = 1000;
    CHECK(scaler_decide(s, 0, 0, 0, t, why) == 0 && !strcmp(why, "steady"));
    /* one worker per message waiting or in flight, at once */
    CHECK(scaler_decide(s, 3, 0, 0, t += 100, why) == 3);
    CHECK_MSG(strstr(why, "3 jobs need 3 workers") != NULL, "reason: %s", why);
    CHECK(scaler_decide(s, 1, 4, 3, t += 100, why) == 5);
    /* capped at MAX_WORKERS, and the reason says so */
    CHECK(scaler_decide(s, 40, 5, 5, t += 100, why) == 15 && strstr(why, "MAX_WORKERS"));
    /* the queue empties: held for the window, then straight to the highest target since */
    double peak = t;
    CHECK(scaler_decide(s, 2, 0, 15, t += 100, why) == 15);
    CHECK(scaler_decide(s, 2, 0, 15, peak + 29999, why) == 15);
    int d = scaler_decide(s, 2, 0, 15, peak + 30050, why);
    CHECK_MSG(d == 2, "after the window: %d (%s)", d, why);
    CHECK(strstr(why, "none more for 30 s") != NULL);
    /* idle: to zero once the window has passed since the last job */
    CHECK(scaler_decide(s, 0, 0, 2, peak + 40000, why) == 2);
    CHECK(scaler_decide(s, 0, 0, 2, peak + 60200, why) == 0);
    /* a crash below the held level is replaced */
    t = peak + 70000;
    CHECK(scaler_decide(s, 4, 0, 0, t, why) == 4);
    CHECK(scaler_decide(s, 0, 1, 3, t += 100, why) == 4 && strstr(why, "holding") != NULL);
    scaler_free(s);
}

static void test_backlog_and_min(void)
{
    struct scaler *s = make(2, 6, 5, 0);
    if (!s) return;
    char why[SCALER_REASON_MAX];
    CHECK(scaler_decide(s, 0, 0, 0, 0, why) == 2);   /* MIN_WORKERS even when idle */
    CHECK(scaler_decide(s, 11, 0, 2, 1, why) == 3);  /* ceil(11 / 5) */
    CHECK(scaler_decide(s, 10, 0, 3, 2, why) == 2);  /* no window: down at once */
    CHECK(scaler_decide(s, 1000, 0, 2, 3, why) == 6);
    CHECK(scaler_decide(s, -5, -1, 6, 4, why) == 2); /* nonsense counts count as none */
    scaler_free(s);
}

int main(void)
{
    test_policy();
    test_up_and_down();
    test_backlog_and_min();
    return check_done();
}
