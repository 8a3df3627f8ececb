/* metrics.h: counters and latency histograms, shared by the processes of one service, printed
 * in the Prometheus text format (0.0.4) by GET /metrics.
 *
 * The counters live in one fixed-layout region of shared memory. `facerec serve` creates it
 * (metrics_create) before starting workers; a worker it starts finds it through the inherited
 * descriptor named by $FACEREC_METRICS_FD (metrics_attach), so the API's /metrics shows the
 * workers' jobs too. A process started any other way counts into a private region: a standalone
 * `facerec worker` serves its own on METRICS_PORT (metrics_listen). Updates are lock-free atomic adds, safe from
 * any thread of any process sharing the region; a reader sees each value whole. */
#ifndef FR_SERVICE_METRICS_H
#define FR_SERVICE_METRICS_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define METRICS_FD_ENV "FACEREC_METRICS_FD"
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metrics_route { MR_UPLOAD, MR_STATUS, MR_HEALTH, MR_PEOPLE, MR_METRICS, MR_PAGE, MR_OTHER, MR_COUNT };

enum metrics_job { MJ_DONE, MJ_FAILED, MJ_TIMED_OUT, MJ_DEAD_LETTERED, MJ_POISON, MJ_RETRIED, MJ_COUNT };

/* Latency histograms, in seconds. */
enum metrics_hist {
    MH_ANSWER,  /* API: upload received to result answered (uploads answered in time) */
    MH_ACCEPT,  /* API: upload received to job queued (input stored, message committed) */
    MH_JOB_E2E, /* worker: message sent to result written */
    MH_FETCH,   /* worker stages: fetch and decode the photo */
    MH_DETECT,
    MH_EMBED, /* align and embed every face */
    MH_MATCH,
    MH_STORE, /* write the result */
    MH_COUNT
};

enum metrics_worker { MW_STARTS, MW_STOPS, MW_CRASHES, MW_COUNT };

/* Opens this process's region: the inherited one when $FACEREC_METRICS_FD names a valid one,
 * else a new private one. Returns 0 or FR_ENOMEM. Idempotent. */
int metrics_attach(char err[FR_ERR_LEN]) FR_MUST_USE;

/* Makes a new region to share with child processes and publishes its descriptor in
 * $FACEREC_METRICS_FD (inherited across exec). Returns 0 or FR_EIO. */
int metrics_create(char err[FR_ERR_LEN]) FR_MUST_USE;

/* Updates. Before metrics_attach/create they do nothing. code: the HTTP status. */
void metrics_request(enum metrics_route route, int code);
void metrics_job(enum metrics_job outcome);
void metrics_observe(enum metrics_hist h, double seconds);
void metrics_worker_event(enum metrics_worker event);
void metrics_workers(int current, int desired); /* gauges, set by the autoscaler */

/* Appends every metric in the text format to b; the queue gauges (waiting, in_flight, delayed,
 * dead) come from the caller, negative when unknown (then they are left out). */
void metrics_print(struct buf *b, const long queue[4]);

/* Serves GET /metrics (this process's region, no queue gauges) on host:port from a thread of
 * its own, for a process without the API. Returns 0, or FR_EIO when it cannot listen. */
int metrics_listen(const char *host, int port, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Stops serving. Does nothing when not serving. */
void metrics_unlisten(void);

#endif
