/* api.c: routes, uploads and waiting for results. */
#include "service/api.h"
#include "util/text.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/queue.h"
#include "service/job.h"
#include "service/log.h"
#include "service/metrics.h"
#include "service/people.h"
#include "service/waits.h"
#include "service/worker.h"
#include "service/web.h"
#include "vision/pipeline.h"
#include "store/store.h"
#include "util/buf.h"

#define MAX_CONNECTIONS 256
/* Threads that serve the connections. A waiting upload holds no thread (it is suspended until
 * its result comes, see waits.h), so a few suffice; more than the cores so that a thread
 * blocked on an fsync, an S3 request or an enrolment does not hold up the others. */
#define API_THREADS 32
#define HEADER_MEMORY (32 * 1024) /* per connection: request line and headers must fit */
#define CLIENT_TIMEOUT_S 15       /* idle time allowed on a connection (slow clients) */
#define RESULT_MAX ((size_t)16 << 20)
#define ENROL_MAX_PHOTOS 20

/* A store and a queue handle, used by one request at a time. The queue is opened when first
 * needed (/health, /metrics): uploads send through the api's queue_sender. */
struct handles {
    struct store *store;
    struct queue *queue;
    struct handles *next;
};

struct api {
    struct config cfg;
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock; /* guards idle */
    struct handles *idle;
    struct queue_sender *sender; /* uploads' messages, committed together when they coincide */
    struct waits *waits;         /* uploads waiting for their results */
    int waiting;                 /* uploads suspended in waits (atomic) */
    /* Enrolment runs one request at a time: it guards the recognizer and the read-modify-write
     * of the stored gallery (within this API process; see README on several API hosts). */
    pthread_mutex_t enrol_lock;
    struct recognizer *rec; /* loaded on first enrolment */
    struct people_cache people; /* the stored gallery, re-read only when its version changes */
};

enum route {
    R_NONE, R_UPLOAD, R_STATUS, R_HEALTH, R_METRICS, R_PEOPLE, R_ENROL, R_UNENROL, R_NOT_FOUND,
    R_BAD_METHOD, R_PAGE, R_PHOTO
};

struct photo {
    struct buf data;
    char filename[256];
};

enum phase { PH_RECEIVING, PH_WAITING, PH_RESUMED };

struct request {
    enum route route;
    struct api *api;
    struct MHD_Connection *conn;
    enum phase phase;          /* of an upload: suspended while its result is awaited */
    enum wait_outcome outcome; /* set by the waits' thread before it resumes the connection */
    char id[JOB_ID_LEN + 1];   /* the upload's job */
    double t0;                 /* now_ms when the upload was complete */
    char allow[32]; /* for 405 */
    struct MHD_PostProcessor *pp;
    struct buf file;       /* inputFile bytes */
    char filename[512];    /* as the client sent it */
    int have_file, too_big, malformed;
    uint64_t received;     /* body bytes seen */
    int answered;          /* a response was queued before the body (Content-Length too big) */
    struct photo photos[ENROL_MAX_PHOTOS]; /* POST /people/{name}: every file field */
    int nphotos, too_many;
};

/* ---- handle pool ---- */

static struct handles *handles_get(struct api *a, char *err)
{
    pthread_mutex_lock(&a->lock);
    struct handles *h = a->idle;
    if (h) a->idle = h->next;
    pthread_mutex_unlock(&a->lock);
    if (h) return h;
    h = calloc(1, sizeof *h);
    if (!h) {
        fr_fail(err, FR_ENOMEM, "out of memory");
        return NULL;
    }
    if (store_open(&a->cfg, &h->store, err)) {
        free(h);
        return NULL;
    }
    return h;
}

/* The handle's queue, opened on first use; 0 or queue_open's error. */
static int handles_queue(struct api *a, struct handles *h, char *err)
{
    return h->queue ? 0 : queue_open(&a->cfg, &h->queue, err);
}

static void handles_put(struct api *a, struct handles *h)
{
    if (!h) return;
    pthread_mutex_lock(&a->lock);
    h->next = a->idle;
    a->idle = h;
    pthread_mutex_unlock(&a->lock);
}

/* ---- responses ---- */

static enum MHD_Result send_typed(struct MHD_Connection *c, unsigned code, const char *type,
                                  const char *body, size_t len, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned code, const char *body,
                                 size_t len, const char *allow)
{
    return send_typed(c, code, "application/json", body, len, allow);
}

/* A 200 with static bytes (the page's files) or bytes copied (thumbnails). */
static enum MHD_Result send_file(struct MHD_Connection *c, const char *type, const void *data,
                                 size_t len, int is_static)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)data, is_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", is_static ? "no-cache" : "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (is_static) MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_append(&b, "{\"status\":\"error\",\"error\":", 26);
    buf_json_str(&b, msg);
    buf_append(&b, "}\n", 2);
    enum MHD_Result ok = b.err ? MHD_NO : send_body(c, code, b.data, b.len, NULL);
    buf_free(&b);
    return ok;
}

/* ---- routing ---- */

static enum route route_of(const char *method, const char *url, char *allow, size_t allow_len)
{
    struct {
        const char *prefix;
        int exact;
        const char *method;
        enum route route;
        const char *suffix; /* the part after the prefix must end so (and be longer) */
    } routes[] = {
        {"/", 1, "POST", R_UPLOAD},
        {"/", 1, "GET", R_PAGE},
        {"/static/", 0, "GET", R_PAGE},
        {"/people/", 0, "GET", R_PHOTO, "/photo"},
        {"/health", 1, "GET", R_HEALTH},
        {"/metrics", 1, "GET", R_METRICS},
        {"/status/", 0, "GET", R_STATUS},
        {"/people", 1, "GET", R_PEOPLE},
        {"/people/", 0, "POST", R_ENROL},
        {"/people/", 0, "DELETE", R_UNENROL},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        int match = routes[i].exact ? !strcmp(url, routes[i].prefix)
                                    : !strncmp(url, routes[i].prefix, strlen(routes[i].prefix));
        const char *sfx = routes[i].suffix;
        size_t sn = sfx ? strlen(sfx) : 0;
        if (match && sfx) {
            size_t rest = strlen(url) - strlen(routes[i].prefix);
            match = rest > sn && !strcmp(url + strlen(url) - sn, sfx);
        }
        /* a path parameter is one segment: /people/a/b is no person's route (404), not "a/b" */
        if (match && !routes[i].exact) {
            const char *param = url + strlen(routes[i].prefix);
            if (memchr(param, '/', strlen(param) - sn)) match = 0;
        }
        if (!match) continue;
        if (!strcmp(method, routes[i].method) ||
            (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET")))
            return routes[i].route;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", routes[i].method);
    }
    return allow[0] ? R_BAD_METHOD : R_NOT_FOUND;
}

/* ---- upload ---- */

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *content_type,
                                const char *transfer_encoding, const char *data, uint64_t off,
                                size_t size)
{
    (void)kind, (void)content_type, (void)transfer_encoding, (void)off;
    struct request *rq = cls;
    if (rq->route == R_ENROL) { /* every file field is a photo */
        if (!filename) return MHD_YES;
        if (off == 0) {
            if (rq->nphotos == ENROL_MAX_PHOTOS) {
                rq->too_many = 1;
                return MHD_YES;
            }
            struct photo *p = &rq->photos[rq->nphotos++];
            buf_init(&p->data, rq->file.max);
            snprintf(p->filename, sizeof p->filename, "%s", filename);
        }
        if (rq->too_many || rq->nphotos == 0) return MHD_YES;
        struct photo *p = &rq->photos[rq->nphotos - 1];
        if (size && !rq->too_big && buf_append(&p->data, data, size) != 0) rq->too_big = 1;
        return MHD_YES;
    }
    if (!key || strcmp(key, "inputFile") != 0) return MHD_YES; /* other fields are ignored */
    if (!rq->have_file) {
        rq->have_file = 1;
        snprintf(rq->filename, sizeof rq->filename, "%s", filename ? filename : "");
    }
    /* past the cap the rest is read and dropped, so that the client gets its 400 (closing on
     * unread data would reset the connection and lose the answer) */
    if (size && !rq->too_big && buf_append(&rq->file, data, size) != 0) {
        rq->too_big = 1;
        buf_free(&rq->file);
    }
    return MHD_YES;
}

/* Magic bytes of the image types workers decode. */
static int looks_like_image(const uint8_t *p, size_t n)
{
    return (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) ||
           (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) ||
           (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4));
}

/* Called by the waits' thread (or within waits_add): the result is there, or the wait is over. */
static void on_result(void *arg, enum wait_outcome outcome)
{
    struct request *rq = arg;
    rq->outcome = outcome;
    rq->phase = PH_RESUMED;
    MHD_resume_connection(rq->conn);
}

static enum MHD_Result send_pending(struct MHD_Connection *c, const char *id)
{
    char body[128];
    int n = snprintf(body, sizeof body, "{\"job_id\":\"%s\",\"status\":\"pending\"}\n", id);
    return send_body(c, 202, body, (size_t)n, NULL);
}

/* 202 with the job id, after storing the pending marker that GET /status/{id} answers 202 from.
 * The marker is written only here: a client answered 200 never polls, and one cut off before
 * its answer never got the id (the job still runs; its status is 404 until the result). */
static enum MHD_Result answer_pending(struct api *a, struct MHD_Connection *c, struct request *rq)
{
    char err[FR_ERR_LEN];
    struct handles *h = handles_get(a, err);
    char name[JOB_FILENAME_MAX + 1];
    job_filename_sanitize(rq->filename, name);
    int rc = h ? store_put(h->store, a->cfg.s3_in_bucket, rq->id, name, strlen(name), err) : FR_EBACKEND;
    handles_put(a, h);
    if (rc) log_warn(rq->id, "storing the pending marker: %s (its status is 404 until it is done)", err);
    return send_pending(c, rq->id);
}

/* The upload's connection is resumed: answer with the result, or 202. */
static enum MHD_Result answer_upload(struct api *a, struct MHD_Connection *c, struct request *rq)
{
    __atomic_sub_fetch(&a->waiting, 1, __ATOMIC_RELAXED);
    if (rq->outcome != WAIT_READY) return answer_pending(a, c, rq);
    char err[FR_ERR_LEN];
    struct handles *h = handles_get(a, err);
    uint8_t *result = NULL;
    size_t len = 0;
    int rc = h ? store_get(h->store, a->cfg.s3_out_bucket, rq->id, RESULT_MAX, &result, &len, err)
               : FR_EBACKEND;
    handles_put(a, h);
    if (rc) {
        log_warn(rq->id, "reading the result: %s", err);
        free(result);
        return answer_pending(a, c, rq);
    }
    enum MHD_Result ok = send_body(c, 200, (const char *)result, len, NULL);
    double took = now_ms() - rq->t0;
    metrics_observe(MH_ANSWER, took / 1e3);
    log_info(rq->id, "answered in %.1f ms", took);
    free(result);
    return ok;
}

static enum MHD_Result finish_upload(struct api *a, struct MHD_Connection *c, struct request *rq)
{
    char err[FR_ERR_LEN], msg[FR_ERR_LEN + 64];
    if (!rq->have_file) return send_error(c, 400, "no inputFile field in the form");
    if (rq->file.len == 0) return send_error(c, 400, "inputFile is empty");
    if (!looks_like_image((const uint8_t *)rq->file.data, rq->file.len))
        return send_error(c, 400, "inputFile is not a JPEG, PNG or WebP image");
    char name[JOB_FILENAME_MAX + 1], key[JOB_ID_LEN + JOB_FILENAME_MAX + 2];
    char *id = rq->id;
    if (job_id_new(id)) return send_error(c, 500, "cannot make a job id");
    job_filename_sanitize(rq->filename, name);
    snprintf(key, sizeof key, "%s_%s", id, name);
    rq->t0 = now_ms();
    struct handles *h = handles_get(a, err);
    if (!h) {
        log_error(id, "backends unavailable: %s", err);
        return send_error(c, 503, "storage or queue unavailable");
    }
    /* the input first, then the message: a worker never sees a job whose input is missing. The
     * message is committed with the others that arrive meanwhile (queue_sender). */
    int rc = store_put(h->store, a->cfg.s3_in_bucket, key, rq->file.data, rq->file.len, err);
    if (!rc && (rc = queue_sender_send(a->sender, key, err)) != 0) {
        /* refused: the client will upload again under a new id, so this input is nobody's. If
         * the message went through after all (an ambiguous SQS failure), its worker writes an
         * "input missing" result that nobody asks for. */
        char derr[FR_ERR_LEN];
        if (store_delete(h->store, a->cfg.s3_in_bucket, key, derr))
            log_warn(id, "removing the input of a refused upload: %s", derr);
    }
    if (rc) {
        handles_put(a, h);
        log_error(id, "accepting the upload failed: %s", err);
        snprintf(msg, sizeof msg, "could not accept the job: %s", err);
        return send_error(c, 503, msg);
    }
    metrics_observe(MH_ACCEPT, (now_ms() - rq->t0) / 1e3);
    log_info(id, "accepted %s (%zu bytes)", name, rq->file.len);
    buf_free(&rq->file); /* not needed any more while the request waits */
    if (a->cfg.max_wait_seconds == 0) {
        handles_put(a, h);
        return answer_pending(a, c, rq);
    }
    /* suspended until on_result resumes it (possibly within waits_add); then answer_upload */
    rq->phase = PH_WAITING;
    __atomic_add_fetch(&a->waiting, 1, __ATOMIC_RELAXED);
    MHD_suspend_connection(c);
    rc = waits_add(a->waits, h->store, id, rq->t0 + a->cfg.max_wait_seconds * 1000.0, on_result, rq, err);
    handles_put(a, h);
    if (rc) {
        log_warn(id, "cannot wait for the result: %s", err);
        on_result(rq, WAIT_TIMEOUT);
    }
    return MHD_YES;
}

/* ---- status and health ---- */

static enum MHD_Result do_status(struct api *a, struct MHD_Connection *c, const char *id)
{
    char err[FR_ERR_LEN];
    if (!job_id_valid(id)) return send_error(c, 400, "malformed job id (expected a UUID)");
    struct handles *h = handles_get(a, err);
    if (!h) return send_error(c, 503, "storage unavailable");
    uint8_t *data = NULL;
    size_t len;
    int rc = store_get(h->store, a->cfg.s3_out_bucket, id, RESULT_MAX, &data, &len, err);
    enum MHD_Result ok;
    if (rc == 0) {
        ok = send_body(c, 200, (const char *)data, len, NULL);
    } else if (rc == FR_ENOTFOUND) {
        free(data);
        data = NULL;
        rc = store_get(h->store, a->cfg.s3_in_bucket, id, 4096, &data, &len, err);
        if (rc == 0) ok = send_pending(c, id); else if (rc == FR_ENOTFOUND) {
            ok = send_error(c, 404, "no such job");
        } else {
            ok = send_error(c, 503, "storage unavailable");
        }
    } else {
        ok = send_error(c, 503, "storage unavailable");
    }
    free(data);
    handles_put(a, h);
    return ok;
}

static enum MHD_Result do_health(struct api *a, struct MHD_Connection *c)
{
    char err[FR_ERR_LEN], msg[FR_ERR_LEN + 32];
    struct handles *h = handles_get(a, err);
    if (!h) {
        snprintf(msg, sizeof msg, "backends unavailable: %s", err);
        return send_error(c, 503, msg);
    }
    struct queue_counts qc;
    int rc = store_check(h->store, err);
    if (rc) snprintf(msg, sizeof msg, "object store: %s", err);
    else if ((rc = handles_queue(a, h, err)) != 0 || (rc = queue_counts(h->queue, &qc, err)) != 0)
        snprintf(msg, sizeof msg, "queue: %s", err);
    handles_put(a, h);
    if (rc) return send_error(c, 503, msg);
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"ok\",\"queue\":{\"waiting\":%ld,\"in_flight\":%ld,\"delayed\":%ld,"
                     "\"dead\":%ld}}\n",
                     qc.waiting, qc.in_flight, qc.delayed, qc.dead);
    return send_body(c, 200, body, (size_t)n, NULL);
}

static enum MHD_Result do_metrics(struct api *a, struct MHD_Connection *c)
{
    char err[FR_ERR_LEN];
    long q[4] = {-1, -1, -1, -1}; /* left out when the queue cannot be read */
    struct handles *h = handles_get(a, err);
    struct queue_counts qc;
    if (h && handles_queue(a, h, err) == 0 && queue_counts(h->queue, &qc, err) == 0) {
        q[0] = qc.waiting, q[1] = qc.in_flight, q[2] = qc.delayed, q[3] = qc.dead;
    }
    handles_put(a, h);
    struct buf b;
    buf_init(&b, 1 << 20);
    metrics_print(&b, q);
    enum MHD_Result ok = b.err ? send_error(c, 500, "metrics too large")
                               : send_typed(c, 200, METRICS_CONTENT_TYPE,
                                            b.data, b.len, NULL);
    buf_free(&b);
    return ok;
}

/* ---- people ---- */

/* Constant-time comparison of the X-Api-Key header with API_KEY. */
static int key_ok(const struct api *a, struct MHD_Connection *c)
{
    if (!a->cfg.api_key[0]) return 1;
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    if (!got) return 0;
    size_t n = strlen(a->cfg.api_key), m = strlen(got);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a->cfg.api_key[i] ^ (i < m ? got[i] : 0));
    return diff == 0;
}

static enum MHD_Result send_people(struct MHD_Connection *c, unsigned code, const struct gallery *g,
                                   const char *extra)
{
    struct buf b;
    buf_init(&b, (size_t)64 << 20);
    buf_append(&b, "{\"people\":[", 11);
    for (int i = 0; i < gallery_people(g); i++) {
        int examples;
        const char *name = gallery_person(g, i, &examples);
        buf_append(&b, i ? ",{\"name\":" : "{\"name\":", i ? 9 : 8);
        buf_json_str(&b, name);
        buf_printf(&b, ",\"examples\":%d}", examples);
    }
    buf_printf(&b, "]%s%s}\n", extra ? "," : "", extra ? extra : "");
    enum MHD_Result ok = b.err ? send_error(c, 500, "listing too large") : send_body(c, code, b.data, b.len, NULL);
    buf_free(&b);
    return ok;
}

/* Appends {"file":..., "error":...} to a JSON list being built in b. */
static void skip_json(struct buf *b, const char *file, const char *why)
{
    buf_append(b, b->len ? ",{\"file\":" : "{\"file\":", b->len ? 9 : 8);
    buf_json_str(b, file);
    buf_append(b, ",\"error\":", 9);
    buf_json_str(b, why);
    buf_append(b, "}", 1);
}

/* A face found for enrolment, before it is added to the gallery. */
struct enrol_face {
    const char *file;
    float emb[EMBED_DIM];
};

#define PEOPLE_TRIES 8 /* compare-and-swap attempts of one change of the gallery */

/* Changes the gallery (caller holds enrol_lock): removes name (remove), or adds faces[0..n) to
 * name, listing in skipped those the gallery refuses (full). The change is made on the stored
 * gallery and written only if that is still the stored version (store_put_if): when another API
 * process changed it in between, the change is made again on theirs. On success the cache holds
 * what was stored and its version; on failure the cache is dropped, so that the next request
 * starts from what is stored. Returns 0 (*added faces added; none stored when 0), FR_ENOTFOUND
 * (remove: no such person), or the store's errors. */
static int change_people(struct api *a, struct handles *h, const char *name, int remove,
                         const struct enrol_face *faces, int n, struct buf *skipped, int *added,
                         char err[FR_ERR_LEN])
{
    size_t skipped_before = skipped ? skipped->len : 0;
    for (int attempt = 1;; attempt++) {
        int rc = people_refresh(&a->people, h->store, &a->cfg, 0, err);
        if (rc) return rc;
        struct gallery *g = a->people.g;
        *added = 0;
        if (skipped && skipped->len > skipped_before) { /* this attempt's refusals only */
            skipped->len = skipped_before;
            skipped->data[skipped->len] = 0;
        }
        if (remove && gallery_remove(g, name) == FR_ENOTFOUND) return FR_ENOTFOUND;
        for (int i = 0; i < n; i++) {
            char why[FR_ERR_LEN];
            if (gallery_add(g, name, faces[i].emb, why)) skip_json(skipped, faces[i].file, why);
            else (*added)++;
        }
        if (!remove && *added == 0) return 0;
        rc = people_save(h->store, &a->cfg, g, a->people.ver, err);
        if (!rc) return 0;
        people_cache_free(&a->people);
        if (rc != FR_ECONFLICT || attempt == PEOPLE_TRIES) return rc;
        log_info(NULL, "the gallery changed meanwhile (attempt %d): making the change again",
                 attempt);
    }
}

static enum MHD_Result do_people(struct api *a, struct MHD_Connection *c, struct request *rq,
                                 const char *url)
{
    char err[FR_ERR_LEN], msg[FR_ERR_LEN + 128];
    if (!key_ok(a, c)) return send_error(c, 401, "missing or wrong X-Api-Key");
    const char *name = rq->route == R_PEOPLE ? NULL : url + strlen("/people/");
    if (name && !gallery_name_valid(name))
        return send_error(c, 400, "invalid person name (1-128 characters, no '/' or control characters)");
    if (rq->route == R_ENROL) {
        if (rq->too_big) return send_error(c, 400, "a photo is over the upload limit");
        if (rq->too_many) return send_error(c, 400, "too many photos in one request (at most 20)");
        if (rq->nphotos == 0) return send_error(c, 400, "no photo in the form");
    }
    struct handles *h = handles_get(a, err);
    if (!h) return send_error(c, 503, "storage unavailable");
    pthread_mutex_lock(&a->enrol_lock);
    enum MHD_Result ok;
    int rc, added = 0;
    if (rq->route == R_PEOPLE) {
        if ((rc = people_refresh(&a->people, h->store, &a->cfg, 0, err)) != 0) {
            snprintf(msg, sizeof msg, "gallery unavailable: %s", err);
            ok = send_error(c, 503, msg);
        } else {
            ok = send_people(c, 200, a->people.g, NULL);
        }
    } else if (rq->route == R_UNENROL) {
        rc = change_people(a, h, name, 1, NULL, 0, NULL, &added, err);
        if (rc == FR_ENOTFOUND) {
            ok = send_error(c, 404, "no such person");
        } else if (rc) {
            log_error(NULL, "storing the gallery: %s", err);
            ok = send_error(c, 503, "could not store the gallery");
        } else {
            log_info(NULL, "removed %s from the gallery", name);
            char key[PEOPLE_PHOTO_KEY_LEN + 1];
            people_photo_key(name, key);
            if (store_delete(h->store, a->cfg.s3_out_bucket, key, err))
                log_warn(NULL, "deleting the photo of %s: %s", name, err);
            char body[64];
            int n = snprintf(body, sizeof body, "{\"status\":\"deleted\"}\n");
            ok = send_body(c, 200, body, (size_t)n, NULL);
        }
    } else { /* enrol: the faces first, then the gallery */
        if (!a->rec) { /* loaded at the first enrolment: most API processes never enrol */
            struct recognizer_opts ro = worker_recognizer_opts(&a->cfg);
            ro.threads = 1; /* enrolment runs on the API's own threads */
            if (recognizer_open(a->cfg.models, &ro, &a->rec, err)) {
                snprintf(msg, sizeof msg, "cannot load the models: %s", err);
                ok = send_error(c, 503, msg);
                goto done;
            }
        }
        struct buf skipped;
        buf_init(&skipped, 1 << 20);
        struct enrol_face faces[ENROL_MAX_PHOTOS];
        int nfaces = 0;
        uint8_t *thumb = NULL; /* of the first face */
        size_t thumb_len = 0;
        for (int i = 0; i < rq->nphotos; i++) {
            struct photo *p = &rq->photos[i];
            struct image img = {0};
            struct recognition res = {0};
            const char *why = NULL;
            struct image_limits lim = image_limits_default();
            lim.max_bytes = p->data.max;
            if (p->data.len == 0) why = "empty file";
            else if (recognizer_decode(a->rec, (const uint8_t *)p->data.data, p->data.len, &lim, &img, err) ||
                     recognizer_run(a->rec, &img, 0, &res, err))
                why = err;
            else if (res.largest < 0) why = "no face found";
            if (why) {
                skip_json(&skipped, p->filename, why);
            } else {
                const struct face_result *f = &res.faces[res.largest];
                faces[nfaces].file = p->filename;
                memcpy(faces[nfaces].emb, f->emb, sizeof f->emb);
                if (nfaces++ == 0 && people_photo_make(&img, &f->det, &thumb, &thumb_len, err))
                    log_warn(NULL, "no thumbnail of %s: %s", name, err); /* the page does without */
            }
            recognition_free(&res);
            image_free(&img);
        }
        rc = nfaces ? change_people(a, h, name, 0, faces, nfaces, &skipped, &added, err) : 0;
        if (rc) {
            log_error(NULL, "storing the gallery: %s", err);
            ok = send_error(c, 503, "could not store the gallery");
        } else if (added == 0) {
            snprintf(msg, sizeof msg, "no usable face in the %d photo%s", rq->nphotos,
                     rq->nphotos == 1 ? "" : "s");
            ok = send_error(c, 400, msg);
        } else {
            int examples = gallery_examples_of(a->people.g, name);
            struct buf b;
            buf_init(&b, 2 << 20);
            buf_append(&b, "{\"name\":", 8);
            buf_json_str(&b, name);
            buf_printf(&b, ",\"added\":%d,\"examples\":%d,\"skipped\":[%s]}\n", added, examples,
                       skipped.data ? skipped.data : "");
            ok = b.err ? send_error(c, 500, "response too large") : send_body(c, 200, b.data, b.len, NULL);
            buf_free(&b);
            log_info(NULL, "enrolled %d photo%s of %s", added, added == 1 ? "" : "s", name);
            char key[PEOPLE_PHOTO_KEY_LEN + 1];
            people_photo_key(name, key);
            if (thumb && store_put(h->store, a->cfg.s3_out_bucket, key, thumb, thumb_len, err))
                log_warn(NULL, "storing the photo of %s: %s", name, err);
        }
        free(thumb);
        buf_free(&skipped);
    }
done:
    pthread_mutex_unlock(&a->enrol_lock);
    handles_put(a, h);
    return ok;
}

/* GET /people/{name}/photo: the thumbnail stored at enrolment. */
static enum MHD_Result do_photo(struct api *a, struct MHD_Connection *c, const char *url)
{
    char err[FR_ERR_LEN], name[GALLERY_NAME_MAX + 1], key[PEOPLE_PHOTO_KEY_LEN + 1];
    if (!key_ok(a, c)) return send_error(c, 401, "missing or wrong X-Api-Key");
    size_t n = strlen(url) - strlen("/people/") - strlen("/photo");
    if (n >= sizeof name) return send_error(c, 400, "invalid person name");
    memcpy(name, url + strlen("/people/"), n);
    name[n] = 0;
    if (!gallery_name_valid(name)) return send_error(c, 400, "invalid person name");
    people_photo_key(name, key);
    struct handles *h = handles_get(a, err);
    if (!h) return send_error(c, 503, "storage unavailable");
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = store_get(h->store, a->cfg.s3_out_bucket, key, PEOPLE_PHOTO_MAX, &data, &len, err);
    handles_put(a, h);
    enum MHD_Result ok = rc == 0              ? send_file(c, "image/jpeg", data, len, 0)
                         : rc == FR_ENOTFOUND ? send_error(c, 404, "no photo of this person")
                                              : send_error(c, 503, "storage unavailable");
    free(data);
    return ok;
}

/* ---- the access handler ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **state)
{
    (void)version;
    struct api *a = cls;
    struct request *rq = *state;
    if (!rq) { /* first call: headers are in */
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *state = rq;
        rq->api = a;
        rq->conn = c;
        rq->route = route_of(method, url, rq->allow, sizeof rq->allow);
        if (rq->route == R_UPLOAD || rq->route == R_ENROL) {
            size_t cap = (size_t)a->cfg.max_file_mb << 20;
            buf_init(&rq->file, cap);
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            size_t limit = rq->route == R_ENROL ? cap * 4 : cap;
            unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
            if (length > limit + 65536) {
                rq->answered = 1;
                char msg[96];
                snprintf(msg, sizeof msg, "upload over the limit of %d MB", a->cfg.max_file_mb);
                return send_error(c, 400, msg);
            }
            /* the photo is most of the body: room for it now, not by doubling and copying */
            if (rq->route == R_UPLOAD && length > 0)
                (void)buf_reserve(&rq->file, length < cap ? (size_t)length : cap);
            rq->pp = MHD_create_post_processor(c, 64 * 1024, on_field, rq);
            if (!rq->pp) {
                rq->answered = 1;
                return send_error(c, 400, "expected a multipart/form-data upload with field inputFile");
            }
        }
        return MHD_YES;
    }
    if (*upload_size > 0) { /* body data */
        rq->received += *upload_size;
        /* a body far over the cap (chunked, no Content-Length) is cut off */
        if (rq->received > ((uint64_t)a->cfg.max_file_mb << 20) * 8 + (1u << 20)) return MHD_NO;
        if (!rq->answered && rq->pp && !rq->malformed &&
            MHD_post_process(rq->pp, upload_data, *upload_size) != MHD_YES)
            rq->malformed = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->answered) return MHD_YES;
    if (rq->phase == PH_WAITING) return MHD_YES; /* not resumed yet */
    if (rq->phase == PH_RESUMED) return answer_upload(a, c, rq);
    if (rq->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "upload over the limit of %d MB", a->cfg.max_file_mb);
        return send_error(c, 400, msg);
    }
    if (rq->malformed) return send_error(c, 400, "malformed multipart/form-data upload");
    switch (rq->route) {
    case R_UPLOAD: return finish_upload(a, c, rq);
    case R_STATUS: return do_status(a, c, url + strlen("/status/"));
    case R_HEALTH: return do_health(a, c);
    case R_METRICS: return do_metrics(a, c);
    case R_PAGE: {
        const struct web_file *f = web_lookup(url);
        return f ? send_file(c, web_content_type(f->name), f->data, f->len, 1)
                 : send_error(c, 404, "no such file");
    }
    case R_PHOTO: return do_photo(a, c, url);
    case R_PEOPLE:
    case R_ENROL:
    case R_UNENROL: return do_people(a, c, rq, url);
    case R_BAD_METHOD: {
        char msg[64];
        snprintf(msg, sizeof msg, "method %s not allowed here", method);
        struct buf b;
        buf_init(&b, 4096);
        buf_append(&b, "{\"status\":\"error\",\"error\":", 26);
        buf_json_str(&b, msg);
        buf_append(&b, "}\n", 2);
        enum MHD_Result ok = send_body(c, 405, b.data, b.len, rq->allow);
        buf_free(&b);
        return ok;
    }
    default: return send_error(c, 404, "no such route");
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)code;
    struct request *rq = *state;
    if (!rq) return;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    if (info && info->http_status) {
        static const enum metrics_route by_route[] = {
            [R_NONE] = MR_OTHER, [R_UPLOAD] = MR_UPLOAD, [R_STATUS] = MR_STATUS, [R_HEALTH] = MR_HEALTH,
            [R_METRICS] = MR_METRICS, [R_PEOPLE] = MR_PEOPLE, [R_ENROL] = MR_PEOPLE,
            [R_UNENROL] = MR_PEOPLE, [R_NOT_FOUND] = MR_OTHER, [R_BAD_METHOD] = MR_OTHER,
            [R_PAGE] = MR_PAGE, [R_PHOTO] = MR_PEOPLE};
        metrics_request(rq->route < sizeof by_route / sizeof *by_route ? by_route[rq->route] : MR_OTHER,
                        (int)info->http_status);
    }
    if (rq->pp) MHD_destroy_post_processor(rq->pp);
    buf_free(&rq->file);
    for (int i = 0; i < rq->nphotos; i++)
        buf_free(&rq->photos[i].data);
    free(rq);
    *state = NULL;
}

int api_start(const struct config *c, struct api **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct api *a = calloc(1, sizeof *a);
    if (!a) return fr_fail(err, FR_ENOMEM, "out of memory");
    a->cfg = *c;
    if (metrics_attach(err)) {
        free(a);
        return FR_ENOMEM;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->enrol_lock, NULL);
    /* fail early when the backends are unreachable (the sender opens the queue); a store handle
     * per thread, opened now */
    struct handles *hs[API_THREADS] = {0};
    int rc = 0;
    for (int i = 0; i < API_THREADS && !rc; i++)
        if (!(hs[i] = handles_get(a, err))) rc = FR_EBACKEND;
    for (int i = 0; i < API_THREADS; i++)
        handles_put(a, hs[i]);
    if (!rc) rc = queue_sender_open(&a->cfg, &a->sender, err);
    if (!rc) rc = waits_open(&a->cfg, &a->waits, err);
    if (rc) {
        api_stop(a);
        return rc;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    if (inet_pton(AF_INET, c->host, &addr.sin_addr) != 1) {
        api_stop(a);
        return fr_fail(err, FR_EINVAL, "HOST '%s' is not an IPv4 address", c->host);
    }
    a->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
        on_request, a, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_THREADS, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CLIENT_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_END);
    if (!a->daemon) {
        api_stop(a);
        return fr_fail(err, FR_EIO, "cannot listen on %s:%d", c->host, c->port);
    }
    *out = a;
    return 0;
}

void api_stop(struct api *a)
{
    if (!a) return;
    if (a->daemon) MHD_quiesce_daemon(a->daemon);
    /* the waiting uploads are answered 202 (MHD must not stop with connections suspended) */
    waits_close(a->waits);
    for (int i = 0; i < 100 && __atomic_load_n(&a->waiting, __ATOMIC_RELAXED) > 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (a->daemon) MHD_stop_daemon(a->daemon);
    queue_sender_close(a->sender);
    while (a->idle) {
        struct handles *h = a->idle;
        a->idle = h->next;
        store_close(h->store);
        queue_close(h->queue);
        free(h);
    }
    recognizer_close(a->rec);
    people_cache_free(&a->people);
    pthread_mutex_destroy(&a->enrol_lock);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
