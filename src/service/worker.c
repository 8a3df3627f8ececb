/* worker.c: one job at a time, with every outcome written where the client will look. */
#include "service/worker.h"
#include "util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue.h"
#include "service/job.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/people.h"
#include "store/store.h"
#include "util/buf.h"
#include "vision/pipeline.h"

struct worker {
    const struct config *cfg;
    struct store *store;
    struct queue *queue;
    struct recognizer *rec;
    struct people_cache people;
};

/* Writes {"job_id","status":"error","error"} as the job's output. */
static int write_error(struct worker *w, const char *id, const char *msg)
{
    char err[FR_ERR_LEN];
    struct buf b;
    buf_init(&b, 8192);
    buf_printf(&b, "{\"job_id\":\"%s\",\"status\":\"error\",\"error\":", id);
    buf_json_str(&b, msg);
    buf_append(&b, "}\n", 2);
    int rc = b.err ? b.err : store_put(w->store, w->cfg->s3_out_bucket, id, b.data, b.len, err);
    if (rc) log_error(id, "writing the error result failed: %s", err);
    buf_free(&b);
    return rc;
}

static void finish(struct worker *w, const char *id, const struct queue_msg *m)
{
    char err[FR_ERR_LEN];
    if (queue_delete(w->queue, m->receipt, err)) log_warn(id, "deleting the message: %s", err);
}

/* Writes the error result of a job that cannot succeed, then deletes its message. */
static void fail(struct worker *w, const char *id, const struct queue_msg *m, const char *msg)
{
    metrics_job(MJ_FAILED);
    if (write_error(w, id, msg) == 0) finish(w, id, m);
}

/* Gives the job back to the queue for a later try, or dead-letters it when it has had enough. */
static void give_back(struct worker *w, const char *id, const struct queue_msg *m, const char *why)
{
    char err[FR_ERR_LEN], msg[FR_ERR_LEN + 64];
    if (m->receive_count >= w->cfg->max_receives) {
        snprintf(msg, sizeof msg, "failed after %d attempts: %s", m->receive_count, why);
        if (write_error(w, id, msg) == 0 && queue_dead_letter(w->queue, m, err) != 0)
            log_warn(id, "dead-lettering: %s", err);
        metrics_job(MJ_DEAD_LETTERED);
        log_error(id, "dead-lettered after %d receives: %s", m->receive_count, why);
        return;
    }
    int backoff = 1 << (m->receive_count - 1 < 6 ? m->receive_count - 1 : 6); /* 1, 2, 4 .. 64 s */
    if (queue_retry(w->queue, m->receipt, backoff, err)) log_warn(id, "retry: %s", err);
    metrics_job(MJ_RETRIED);
    log_warn(id, "attempt %d failed (%s); again in %d s", m->receive_count, why, backoff);
}

static void run_job(struct worker *w, const struct queue_msg *m)
{
    char id[JOB_ID_LEN + 1], name[JOB_FILENAME_MAX + 1], err[FR_ERR_LEN], msg[FR_ERR_LEN + 64];
    if (job_parse_body(m->body, id, name)) {
        log_error(NULL, "poison message deleted: body is not {job_id}_{filename}");
        metrics_job(MJ_POISON);
        finish(w, NULL, m);
        return;
    }
    if (m->receive_count > w->cfg->max_receives) {
        give_back(w, id, m, "too many receives");
        return;
    }
    double t0 = now_ms();
    uint8_t *bytes = NULL;
    size_t len = 0;
    size_t cap = (size_t)w->cfg->max_file_mb << 20;
    int rc = store_get(w->store, w->cfg->s3_in_bucket, m->body, cap, &bytes, &len, err);
    if (rc == FR_ENOTFOUND || rc == FR_ETOOBIG) {
        snprintf(msg, sizeof msg, "input object %s", rc == FR_ENOTFOUND ? "is missing" : "is too large");
        fail(w, id, m, msg);
        log_error(id, "%s", msg);
        return;
    }
    if (rc) {
        give_back(w, id, m, err);
        return;
    }
    struct image img = {0};
    struct image_limits lim = image_limits_default();
    lim.max_bytes = cap;
    rc = recognizer_decode(w->rec, bytes, len, &lim, &img, err);
    free(bytes);
    if (rc) {
        snprintf(msg, sizeof msg, "cannot read the photo: %s", err);
        fail(w, id, m, msg);
        log_warn(id, "%s", msg);
        return;
    }
    double t1 = now_ms();
    struct recognition res;
    rc = recognizer_run(w->rec, &img, t0 + w->cfg->job_timeout_seconds * 1000.0, &res, err);
    int img_w, img_h; /* the stored photo's size: the space of the boxes */
    image_full_size(&img, &img_w, &img_h);
    image_free(&img);
    if (rc == FR_ETIMEOUT) {
        metrics_job(MJ_TIMED_OUT);
        give_back(w, id, m, "time limit reached");
        return;
    }
    if (rc) {
        snprintf(msg, sizeof msg, "recognition failed: %s", err);
        fail(w, id, m, msg);
        log_error(id, "%s", msg);
        return;
    }
    /* a local version check costs a stat(); a remote one a request: at most once a second */
    double max_age = strcmp(w->cfg->backend, "embedded") ? 1000 : 0;
    if (people_refresh(&w->people, w->store, w->cfg, max_age, err))
        log_warn(id, "gallery not refreshed: %s", err); /* matches against the last good one */
    recognition_match(&res, w->people.g, (float)w->cfg->match_threshold);
    double t2 = now_ms();
    struct buf b;
    buf_init(&b, (size_t)8 << 20);
    buf_printf(&b, "{\"job_id\":\"%s\",\"status\":\"done\",", id);
    recognition_json(&res, &b);
    buf_printf(&b, ",\"image\":{\"width\":%d,\"height\":%d}", img_w, img_h);
    buf_printf(&b, ",\"timing_ms\":{\"fetch_decode\":%.2f,\"detect\":%.2f,\"embed\":%.2f}}\n", t1 - t0,
               res.t.detect, res.t.align_embed);
    char answer[RECOGNIZER_NAME_MAX + 1];
    snprintf(answer, sizeof answer, "%s", recognition_result(&res));
    int faces = res.n;
    struct recognition_timing res_t = res.t;
    recognition_free(&res);
    rc = b.err ? fr_fail(err, b.err, "result too large")
               : store_put(w->store, w->cfg->s3_out_bucket, id, b.data, b.len, err);
    buf_free(&b);
    if (rc) {
        give_back(w, id, m, err);
        return;
    }
    finish(w, id, m);
    double t3 = now_ms();
    metrics_job(MJ_DONE);
    metrics_observe(MH_FETCH, (t1 - t0) / 1e3);
    metrics_observe(MH_DETECT, res_t.detect / 1e3);
    metrics_observe(MH_EMBED, res_t.align_embed / 1e3);
    metrics_observe(MH_MATCH, (t2 - t1 - res_t.detect - res_t.align_embed) / 1e3);
    metrics_observe(MH_STORE, (t3 - t2) / 1e3);
    if (m->sent_ms > 0) metrics_observe(MH_JOB_E2E, (double)(wall_ms() - m->sent_ms) / 1e3);
    log_info(id, "done: %d face%s, result %s, %.1f ms (recognition %.1f ms)", faces,
             faces == 1 ? "" : "s", answer, now_ms() - t0, t2 - t1);
}

struct recognizer_opts worker_recognizer_opts(const struct config *c)
{
    struct recognizer_opts ro = RECOGNIZER_OPTS_DEFAULT;
    ro.threads = c->worker_threads;
    ro.detect.min_face = c->min_face;
    ro.detect.max_side = c->detect_max_side;
    ro.min_quality = (float)c->min_face_quality;
    return ro;
}

int worker_recognizer(const struct config *c, struct recognizer **out, char err[FR_ERR_LEN])
{
    struct recognizer_opts ro = worker_recognizer_opts(c);
    int rc = recognizer_open(c->models, &ro, out, err);
    if (!rc && (rc = recognizer_warm(*out, err)) != 0) {
        recognizer_close(*out);
        *out = NULL;
    }
    return rc;
}

int worker_run(const struct config *c, volatile sig_atomic_t *stop, char err[FR_ERR_LEN])
{
    double t0 = now_ms();
    struct recognizer *rec;
    int rc = worker_recognizer(c, &rec, err);
    if (rc) return rc;
    log_info(NULL, "models loaded in %.0f ms", now_ms() - t0);
    rc = worker_loop(c, rec, stop, err);
    recognizer_close(rec);
    return rc;
}

int worker_loop(const struct config *c, struct recognizer *rec, volatile sig_atomic_t *stop,
                char err[FR_ERR_LEN])
{
    struct worker w = {c, NULL, NULL, rec, {0}};
    char why[FR_ERR_LEN];
    int rc = metrics_attach(why);
    if (rc) log_warn(NULL, "%s", why); /* jobs run uncounted */
    rc = store_open(c, &w.store, err);
    if (!rc) rc = queue_open(c, &w.queue, err);
    int backoff_ms = 100;
    while (!rc && !*stop) {
        struct queue_msg m;
        /* The embedded queue wakes a receive the moment a job arrives, so a 1 s wait costs
         * nothing and lets a stop be seen within a second; on SQS every wait is a request, so
         * the configured long poll is kept (a stop then waits for the poll to end). */
        int wait = c->sqs_wait_time_seconds;
        if (!strcmp(c->backend, "embedded") && wait > 1) wait = 1;
        int r = queue_receive(w.queue, wait, c->sqs_visibility_timeout_seconds, &m, err);
        if (r == FR_ETIMEOUT) continue;
        if (r) {
            log_error(NULL, "receiving: %s (again in %d ms)", err, backoff_ms);
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            if (backoff_ms < 5000) backoff_ms *= 2;
            continue;
        }
        backoff_ms = 100;
        run_job(&w, &m);
    }
    people_cache_free(&w.people);
    queue_close(w.queue);
    store_close(w.store);
    return rc;
}
