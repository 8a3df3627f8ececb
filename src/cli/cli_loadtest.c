/* cli_loadtest.c: `facerec loadtest URL --requests N --concurrency C [--rate R] [--json FILE] IMAGE...`
 *
 * C client threads upload the images in turn (POST / with inputFile) until N requests have been
 * made. Closed loop (default): each client polls an upload answered 202 at GET /status/{id}
 * every 20 ms, then makes its next request. Open loop (--rate R): request i starts at i/R
 * seconds whatever the answers, and uploads answered 202 are handed to one poller thread, which
 * polls each job with a period of a tenth of its age (20 ms to 1 s), so a latency measured
 * there is late by at most about 10%. A request's latency runs from the start of the upload to
 * its result; it succeeds when the result says "done". Prints the success rate, latency
 * avg/p50/p95/p99/max, throughput and the results seen; --json FILE writes the same as JSON. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/text.h"

#define MAX_IMAGES 64
#define MAX_RESULTS 16     /* distinct result strings counted */
#define RESPONSE_MAX (16u << 20)

struct image_file {
    const char *path;
    struct buf data;
};

struct outcome {
    double ms;
    int ok;
    char result[64]; /* the result string, or the error */
};

struct pending {
    int i;             /* request index */
    double t0, next;   /* upload start, next poll (now_ms) */
    char id[65];
};

struct run {
    const char *url;
    struct image_file img[MAX_IMAGES];
    int nimg, requests, timeout_s;
    double rate, t_start; /* requests per second (0: closed loop), start (now_ms) */
    int next;             /* next request index, under lock */
    pthread_mutex_t lock;
    struct outcome *out;
    struct pending *pend; /* open loop: uploads answered 202, under lock */
    int npend, submitted_all;
};

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* One HTTP exchange; returns the status code (0 on a transport error) with the body in b. */
static long exchange(CURL *h, const char *url, curl_mime *form, struct buf *b, int timeout_s)
{
    b->len = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (form) curl_easy_setopt(h, CURLOPT_MIMEPOST, form);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* Records request i's outcome from its last answer (code, body in b). */
static void settle(struct run *r, int i, double t0, long code, const struct buf *b)
{
    struct outcome *o = &r->out[i];
    o->ms = now_ms() - t0;
    json_t *doc = code == 200 ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *result = json_string_value(json_object_get(doc, "result"));
    o->ok = code == 200 && status && !strcmp(status, "done");
    if (o->ok) snprintf(o->result, sizeof o->result, "%s", result ? result : "?");
    else if (code == 202) snprintf(o->result, sizeof o->result, "timed out (pending)");
    else if (code == 0) snprintf(o->result, sizeof o->result, "no answer (connection or timeout)");
    else snprintf(o->result, sizeof o->result, "HTTP %ld%s%s", code, status ? " " : "", status ? status : "");
    json_decref(doc);
}

/* The job id of a 202 answer, copied to id (65 bytes); 0 when there is none. */
static int pending_id(long code, const struct buf *b, char *id)
{
    if (code != 202) return 0;
    json_t *doc = json_loadb(b->data, b->len, 0, NULL);
    const char *s = json_string_value(json_object_get(doc, "job_id"));
    int ok = s && strlen(s) <= 64;
    if (ok) strcpy(id, s);
    json_decref(doc);
    return ok;
}

static long poll_status(struct run *r, CURL *h, const char *id, struct buf *b)
{
    char url[1024];
    const char *slash = r->url[strlen(r->url) - 1] == '/' ? "" : "/";
    snprintf(url, sizeof url, "%s%sstatus/%s", r->url, slash, id);
    return exchange(h, url, NULL, b, r->timeout_s);
}

static void one(struct run *r, CURL *h, int i, struct buf *b)
{
    const struct image_file *im = &r->img[i % r->nimg];
    double t0 = now_ms(), deadline = t0 + r->timeout_s * 1000.0;
    curl_mime *form = curl_mime_init(h);
    curl_mimepart *part = curl_mime_addpart(form);
    curl_mime_name(part, "inputFile");
    curl_mime_data(part, im->data.data, im->data.len);
    const char *base = strrchr(im->path, '/');
    curl_mime_filename(part, base ? base + 1 : im->path);
    long code = exchange(h, r->url, form, b, r->timeout_s);
    curl_mime_free(form);
    char id[65];
    if (r->rate > 0 && pending_id(code, b, id)) { /* open loop: the poller takes it from here */
        pthread_mutex_lock(&r->lock);
        r->pend[r->npend++] = (struct pending){i, t0, now_ms() + 20, ""};
        strcpy(r->pend[r->npend - 1].id, id);
        pthread_mutex_unlock(&r->lock);
        return;
    }
    while (pending_id(code, b, id) && now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
        code = poll_status(r, h, id, b);
    }
    settle(r, i, t0, code, b);
}

/* Open loop: polls the pending jobs until every request is settled. */
static void *poller(void *arg)
{
    struct run *r = arg;
    CURL *h = curl_easy_init();
    struct buf b;
    buf_init(&b, RESPONSE_MAX);
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int done = r->submitted_all && r->npend == 0;
        struct pending p = {-1, 0, 0, ""};
        double now = now_ms();
        for (int k = 0; k < r->npend; k++)
            if (r->pend[k].next <= now) {
                p = r->pend[k];
                r->pend[k] = r->pend[--r->npend];
                break;
            }
        pthread_mutex_unlock(&r->lock);
        if (done) break;
        if (p.i < 0) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        long code = h ? poll_status(r, h, p.id, &b) : 0;
        double age = now_ms() - p.t0;
        if (code == 202 && age < r->timeout_s * 1000.0) {
            double period = age / 10 < 20 ? 20 : age / 10 > 1000 ? 1000 : age / 10;
            p.next = now_ms() + period;
            pthread_mutex_lock(&r->lock);
            r->pend[r->npend++] = p;
            pthread_mutex_unlock(&r->lock);
        } else {
            settle(r, p.i, p.t0, code, &b);
        }
    }
    buf_free(&b);
    curl_easy_cleanup(h);
    return NULL;
}

static void *client(void *arg)
{
    struct run *r = arg;
    CURL *h = curl_easy_init();
    struct buf b;
    buf_init(&b, RESPONSE_MAX);
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int i = r->next < r->requests ? r->next++ : -1;
        pthread_mutex_unlock(&r->lock);
        if (i < 0) break;
        if (r->rate > 0) { /* open loop: request i starts at i / rate */
            double wait = r->t_start + i * 1000.0 / r->rate - now_ms();
            if (wait > 0) {
                struct timespec ts = {(time_t)(wait / 1000), (long)(fmod(wait, 1000) * 1e6)};
                nanosleep(&ts, NULL);
            }
        }
        if (h) {
            one(r, h, i, &b);
        } else {
            r->out[i].ms = 0;
            snprintf(r->out[i].result, sizeof r->out[i].result, "cannot make a curl handle");
        }
    }
    buf_free(&b);
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
    if (n == 0) return 0;
    int k = (int)(p / 100.0 * n + 0.999999) - 1; /* nearest rank */
    return sorted[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static const char usage_text[] =
    "usage: facerec loadtest URL [--requests N] [--concurrency C] [--rate R] [--timeout S]\n"
    "                        [--json FILE] IMAGE...\n";

int cli_loadtest(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("%s\nUploads the images in turn to the service at URL (POST /, field inputFile) from C\n"
               "concurrent clients until N requests are made (default 100, 100 clients, 120 s each);\n"
               "a 202 answer is polled at /status/{id}. With --rate R the requests start at R per\n"
               "second whatever the answers (open loop; C clients upload, one thread polls).\n"
               "Prints the success rate, latency\n"
               "avg/p50/p95/p99/max from upload to result, photos per second, and the results seen;\n"
               "--json FILE writes them as JSON. Exit status 0 when every request succeeded.\n",
               usage_text);
        return 0;
    }
    struct run r = {0};
    r.requests = 100;
    int concurrency = 100;
    r.timeout_s = 120;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--requests") && has) r.requests = atoi(argv[++i]);
        else if (!strcmp(a, "--concurrency") && has) concurrency = atoi(argv[++i]);
        else if (!strcmp(a, "--timeout") && has) r.timeout_s = atoi(argv[++i]);
        else if (!strcmp(a, "--rate") && has) r.rate = atof(argv[++i]);
        else if (!strcmp(a, "--json") && has) json_path = argv[++i];
        else if (a[0] == '-') return cli_usage("loadtest", "unknown option or missing value: '%s'", a);
        else if (!r.url) r.url = a;
        else if (r.nimg == MAX_IMAGES) return cli_error("at most %d images", MAX_IMAGES);
        else r.img[r.nimg++].path = a;
    }
    if (!r.url || r.nimg == 0 || r.requests < 1 || r.requests > 1000000 || concurrency < 1 ||
        concurrency > 1000 || r.timeout_s < 1 || !(r.rate >= 0 && r.rate <= 100000))
        return cli_usage("loadtest", "needs URL and an IMAGE; --requests 1..1000000, --concurrency "
                                     "1..1000, --timeout >= 1, --rate 0..100000");
    if (concurrency > r.requests) concurrency = r.requests;
    int rc = 0;
    char err[FR_ERR_LEN];
    for (int i = 0; i < r.nimg && !rc; i++) {
        buf_init(&r.img[i].data, 64u << 20);
        if (buf_read_file(&r.img[i].data, r.img[i].path, err)) rc = cli_error("%s", err);
    }
    r.out = calloc((size_t)r.requests, sizeof *r.out);
    r.pend = calloc((size_t)r.requests, sizeof *r.pend);
    pthread_t *th = calloc((size_t)concurrency, sizeof *th);
    if (!rc && (!r.out || !r.pend || !th)) rc = cli_error("out of memory");
    if (!rc && curl_global_init(CURL_GLOBAL_DEFAULT)) rc = cli_error("cannot initialise libcurl");
    double t0 = now_ms(), wall = 0;
    if (!rc) {
        pthread_mutex_init(&r.lock, NULL);
        r.t_start = now_ms();
        pthread_t poll_th;
        int polling = r.rate > 0 && pthread_create(&poll_th, NULL, poller, &r) == 0;
        if (r.rate > 0 && !polling) rc = cli_error("cannot start the poller thread");
        int started = 0;
        for (; started < concurrency && !rc; started++)
            if (pthread_create(&th[started], NULL, client, &r)) break;
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        pthread_mutex_lock(&r.lock);
        r.submitted_all = 1;
        pthread_mutex_unlock(&r.lock);
        if (polling) pthread_join(poll_th, NULL);
        wall = (now_ms() - t0) / 1000.0;
        pthread_mutex_destroy(&r.lock);
        if (!rc && started == 0) rc = cli_error("cannot start client threads");
    }
    if (!rc) {
        double *ms = malloc((size_t)r.requests * sizeof *ms);
        int ok = 0;
        double sum = 0;
        struct { char text[64]; int n; } seen[MAX_RESULTS];
        int nseen = 0, other = 0;
        for (int i = 0; i < r.requests; i++) {
            ok += r.out[i].ok;
            sum += r.out[i].ms;
            if (ms) ms[i] = r.out[i].ms;
            int k = 0;
            while (k < nseen && strcmp(seen[k].text, r.out[i].result))
                k++;
            if (k < nseen) seen[k].n++;
            else if (nseen < MAX_RESULTS) {
                snprintf(seen[nseen].text, sizeof seen[nseen].text, "%s", r.out[i].result);
                seen[nseen++].n = 1;
            } else other++;
        }
        if (!ms) return cli_error("out of memory");
        qsort(ms, (size_t)r.requests, sizeof *ms, cmp_double);
        int n = r.requests;
        double avg = sum / n, p50 = pct(ms, n, 50), p95 = pct(ms, n, 95), p99 = pct(ms, n, 99);
        if (r.rate > 0) printf("open loop at %.1f requests/s: ", r.rate);
        printf("%d requests, %d concurrent: %d succeeded (%.1f%%) in %.2f s, %.1f photos/s\n", n,
               concurrency, ok, 100.0 * ok / n, wall, n / wall);
        printf("latency ms: avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f  max %.1f\n", avg, p50, p95, p99, ms[n - 1]);
        printf("results:");
        for (int k = 0; k < nseen; k++)
            printf("%s %s x%d", k ? "," : "", seen[k].text, seen[k].n);
        if (other) printf(", others x%d", other);
        printf("\n");
        if (json_path) {
            json_t *res = json_object();
            for (int k = 0; k < nseen; k++)
                json_object_set_new(res, seen[k].text, json_integer(seen[k].n));
            json_t *doc = json_pack("{s:s,s:i,s:i,s:f,s:i,s:f,s:f,s:f,s:{s:f,s:f,s:f,s:f,s:f,s:f},s:o}",
                                    "url", r.url, "requests", n, "concurrency", concurrency, "rate", r.rate,
                                    "succeeded", ok, "success_rate", (double)ok / n, "seconds", wall,
                                    "photos_per_second", n / wall, "latency_ms", "avg", avg, "p50",
                                    p50, "p95", p95, "p99", p99, "min", ms[0], "max", ms[n - 1],
                                    "results", res);
            if (!doc || json_dump_file(doc, json_path, JSON_INDENT(2)))
                rc = cli_error("cannot write %s", json_path);
            json_decref(doc);
        }
        if (!rc && ok < n) rc = 1;
        free(ms);
    }
    if (r.out) curl_global_cleanup();
    for (int i = 0; i < r.nimg; i++)
        buf_free(&r.img[i].data);
    free(r.out);
    free(r.pend);
    free(th);
    return rc;
}
