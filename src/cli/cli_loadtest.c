/* cli_loadtest.c: `facerec loadtest URL --requests N --concurrency C [--rate R] [--json FILE] IMAGE...`
 *
 * Uploads the images in turn (POST / with inputFile) until N requests have been made, keeping at
 * most C of them going. Closed loop (default): a request answered 202 is polled at
 * GET /status/{id} every 20 ms, and the next request starts when one has its result. Open loop
 * (--rate R): request i starts at i/R seconds whatever the answers (if fewer than C uploads are
 * in progress), and a job answered 202 is polled with a period of a tenth of its age (20 ms to
 * 1 s), so a latency measured there is late by at most about 10%. A request's latency runs from
 * the start of the upload to its result; it succeeds when the result says "done". Prints the
 * success rate, latency avg/p50/p95/p99/max, throughput and the results seen; --json FILE
 * writes the same as JSON.
 *
 * It shares the machine with the service it measures, so it is made cheap: one thread drives
 * every connection (libcurl's multi-socket interface on epoll: a wake-up costs the sockets that
 * are ready, not all the open ones), connections are kept alive and reused, and each image's
 * multipart body is built once and sent from memory by every request. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/text.h"

#define MAX_IMAGES 64
#define MAX_RESULTS 16     /* distinct result strings counted */
#define RESPONSE_MAX (16u << 20)
#define BOUNDARY "facerec-loadtest-7d1f4a2c9e"

struct image_file {
    const char *path;
    struct buf data; /* the file */
    struct buf form; /* the whole multipart/form-data body */
};

struct outcome {
    double ms;
    int ok;
    char result[64]; /* the result string, or the error */
};

/* A request from its upload to its result. */
struct req {
    double t0, next; /* upload start; next poll (now_ms) */
    char id[65];     /* job id once answered 202 */
};

/* One HTTP exchange in progress (CURLOPT_PRIVATE of its handle). */
struct xfer {
    CURL *h;
    int i, upload; /* request index; upload or poll */
    struct buf body;
    struct xfer *next_free;
};

struct run {
    const char *url;
    struct image_file img[MAX_IMAGES];
    int nimg, requests, concurrency, timeout_s;
    double rate, t_start; /* requests per second (0: closed loop), start (now_ms) */
    struct outcome *out;
    struct req *req;
    CURLM *multi;
    int epfd;         /* the sockets libcurl asks to watch (CURLMOPT_SOCKETFUNCTION) */
    double curl_due;  /* when libcurl wants its timeout action (now_ms), or < 0 */
    struct curl_slist *form_headers;
    struct xfer *free_x; /* idle handles, their connections kept alive */
    int next, settled, uploading, busy; /* busy: requests started and not settled */
    int *heap, nheap; /* requests waiting for a poll, by req[].next */
};

/* ---- the poll schedule: a binary heap of request indices by next poll time ---- */

static int earlier(const struct run *r, int a, int b)
{
    return r->req[r->heap[a]].next < r->req[r->heap[b]].next;
}

static void swap(struct run *r, int a, int b)
{
    int t = r->heap[a];
    r->heap[a] = r->heap[b];
    r->heap[b] = t;
}

static void heap_push(struct run *r, int i)
{
    int k = r->nheap++;
    r->heap[k] = i;
    while (k > 0 && earlier(r, k, (k - 1) / 2)) {
        swap(r, k, (k - 1) / 2);
        k = (k - 1) / 2;
    }
}

static int heap_pop(struct run *r)
{
    int top = r->heap[0];
    r->heap[0] = r->heap[--r->nheap];
    for (int k = 0;;) {
        int l = 2 * k + 1, m = k;
        if (l < r->nheap && earlier(r, l, m)) m = l;
        if (l + 1 < r->nheap && earlier(r, l + 1, m)) m = l + 1;
        if (m == k) break;
        swap(r, k, m);
        k = m;
    }
    return top;
}

/* ---- exchanges ---- */

static size_t collect(char *p, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* Builds the body once: every upload of this image sends the same bytes. */
static int build_form(struct image_file *im)
{
    const char *base = strrchr(im->path, '/');
    base = base ? base + 1 : im->path;
    buf_init(&im->form, im->data.len + 4096);
    buf_printf(&im->form,
               "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"inputFile\"; filename=\"");
    for (const char *c = base; *c; c++) /* quotes and line breaks cannot be in a header value */
        buf_append(&im->form, (*c == '"' || *c == '\r' || *c == '\n') ? "_" : c, 1);
    buf_printf(&im->form, "\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    buf_append(&im->form, im->data.data, im->data.len);
    buf_printf(&im->form, "\r\n--" BOUNDARY "--\r\n");
    return im->form.err;
}

/* Starts an upload (request i) or a poll of its job. Returns 0, or -1 when no handle. */
static int start(struct run *r, int i, int upload)
{
    struct xfer *x = r->free_x;
    if (x) {
        r->free_x = x->next_free;
    } else {
        x = calloc(1, sizeof *x);
        if (!x || !(x->h = curl_easy_init())) {
            free(x);
            return -1;
        }
        buf_init(&x->body, RESPONSE_MAX);
    }
    x->i = i;
    x->upload = upload;
    x->body.len = 0;
    CURL *h = x->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)r->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (upload) {
        const struct image_file *im = &r->img[i % r->nimg];
        curl_easy_setopt(h, CURLOPT_URL, r->url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->form_headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, im->form.data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)im->form.len);
        r->req[i].t0 = now_ms();
        r->uploading++;
    } else {
        char url[1024];
        const char *slash = r->url[strlen(r->url) - 1] == '/' ? "" : "/";
        snprintf(url, sizeof url, "%s%sstatus/%s", r->url, slash, r->req[i].id);
        curl_easy_setopt(h, CURLOPT_URL, url);
    }
    curl_multi_add_handle(r->multi, h);
    return 0;
}

/* Records request i's outcome from its last answer (code, body in b). */
static void settle(struct run *r, int i, long code, const struct buf *b)
{
    struct outcome *o = &r->out[i];
    o->ms = now_ms() - r->req[i].t0;
    json_t *doc = code == 200 ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *result = json_string_value(json_object_get(doc, "result"));
    o->ok = code == 200 && status && !strcmp(status, "done");
    if (o->ok) snprintf(o->result, sizeof o->result, "%s", result ? result : "?");
    else if (code == 202) snprintf(o->result, sizeof o->result, "timed out (pending)");
    else if (code == 0) snprintf(o->result, sizeof o->result, "no answer (connection or timeout)");
    else snprintf(o->result, sizeof o->result, "HTTP %ld%s%s", code, status ? " " : "", status ? status : "");
    json_decref(doc);
    r->settled++;
    r->busy--;
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

/* An exchange ended: settle its request or schedule the next poll. */
static void finished(struct run *r, struct xfer *x, CURLcode res)
{
    long code = 0;
    if (res == CURLE_OK) curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(r->multi, x->h);
    int i = x->i;
    if (x->upload) r->uploading--;
    struct req *q = &r->req[i];
    double now = now_ms(), age = now - q->t0;
    int pending = x->upload ? pending_id(code, &x->body, q->id) : code == 202;
    if (pending && age < r->timeout_s * 1000.0) {
        double period = r->rate > 0 ? (age / 10 < 20 ? 20 : age / 10 > 1000 ? 1000 : age / 10) : 20;
        q->next = now + period;
        heap_push(r, i);
    } else {
        settle(r, i, code, &x->body);
    }
    x->next_free = r->free_x;
    r->free_x = x;
}

static int on_socket(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
    (void)h, (void)sockp;
    struct run *r = arg;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static int on_timer(CURLM *m, long ms, void *arg)
{
    (void)m;
    struct run *r = arg;
    r->curl_due = ms < 0 ? -1 : now_ms() + (double)ms;
    return 0;
}

static void read_done(struct run *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            struct xfer *x;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            finished(r, x, m->data.result);
        }
}

/* Runs every request to its outcome. */
static void drive(struct run *r)
{
    while (r->settled < r->requests) {
        double now = now_ms(), wake = now + 1000;
        /* new uploads: closed loop, while fewer than C requests are going; open loop, when due
         * and fewer than C uploads are in progress */
        while (r->next < r->requests) {
            int i = r->next;
            if (r->rate > 0) {
                double due = r->t_start + i * 1000.0 / r->rate;
                if (due > now) {
                    if (due < wake) wake = due;
                    break;
                }
                if (r->uploading >= r->concurrency) break;
            } else if (r->busy >= r->concurrency) {
                break;
            }
            if (start(r, i, 1)) {
                r->req[i].t0 = now;
                r->busy++;
                r->next++;
                settle(r, i, 0, &(struct buf){0});
                snprintf(r->out[i].result, sizeof r->out[i].result, "cannot make a curl handle");
                continue;
            }
            r->busy++;
            r->next++;
        }
        while (r->nheap > 0 && r->req[r->heap[0]].next <= now) {
            int i = heap_pop(r);
            if (start(r, i, 0)) settle(r, i, 0, &(struct buf){0});
        }
        if (r->nheap > 0 && r->req[r->heap[0]].next < wake) wake = r->req[r->heap[0]].next;
        int running;
        if (r->curl_due >= 0 && r->curl_due <= now_ms()) {
            r->curl_due = -1;
            curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        read_done(r);
        if (r->settled >= r->requests) break;
        double wait = wake - now_ms();
        if (r->curl_due >= 0 && r->curl_due - now_ms() < wait) wait = r->curl_due - now_ms();
        struct epoll_event evs[64];
        int n = epoll_wait(r->epfd, evs, 64, wait > 0 ? (int)ceil(wait) : 0);
        for (int k = 0; k < n; k++) {
            int flags = (evs[k].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                        (evs[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                        (evs[k].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(r->multi, evs[k].data.fd, flags, &running);
        }
        read_done(r);
    }
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
               "concurrent requests until N requests are made (default 100, 100 at once, 120 s each);\n"
               "a 202 answer is polled at /status/{id}. With --rate R the requests start at R per\n"
               "second whatever the answers (open loop; at most C uploads at once).\n"
               "Prints the success rate, latency\n"
               "avg/p50/p95/p99/max from upload to result, photos per second, and the results seen;\n"
               "--json FILE writes them as JSON. Exit status 0 when every request succeeded.\n",
               usage_text);
        return 0;
    }
    struct run r = {0};
    r.requests = 100;
    int concurrency = 100; /* copied to r.concurrency once checked */
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
    for (int i = 0; i < r.nimg && !rc; i++)
        if (build_form(&r.img[i])) rc = cli_error("%s: too large", r.img[i].path);
    r.concurrency = concurrency;
    r.out = calloc((size_t)r.requests, sizeof *r.out);
    r.req = calloc((size_t)r.requests, sizeof *r.req);
    r.heap = calloc((size_t)r.requests, sizeof *r.heap);
    if (!rc && (!r.out || !r.req || !r.heap)) rc = cli_error("out of memory");
    if (!rc && curl_global_init(CURL_GLOBAL_DEFAULT)) rc = cli_error("cannot initialise libcurl");
    double t0 = now_ms(), wall = 0;
    if (!rc) {
        r.multi = curl_multi_init();
        r.curl_due = -1;
        r.epfd = epoll_create1(EPOLL_CLOEXEC);
        if (r.epfd < 0) rc = cli_error("epoll: cannot create");
        /* no "Expect: 100-continue": the body follows the headers at once */
        r.form_headers = curl_slist_append(NULL, "Content-Type: multipart/form-data; boundary=" BOUNDARY);
        r.form_headers = curl_slist_append(r.form_headers, "Expect:");
        if (!r.multi || !r.form_headers) rc = cli_error("cannot initialise libcurl");
    }
    if (!rc) {
        curl_multi_setopt(r.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)concurrency + 64);
        curl_multi_setopt(r.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(r.multi, CURLMOPT_SOCKETDATA, &r);
        curl_multi_setopt(r.multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(r.multi, CURLMOPT_TIMERDATA, &r);
        r.t_start = now_ms();
        drive(&r);
        wall = (now_ms() - t0) / 1000.0;
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
    while (r.free_x) {
        struct xfer *x = r.free_x;
        r.free_x = x->next_free;
        curl_easy_cleanup(x->h);
        buf_free(&x->body);
        free(x);
    }
    if (r.multi) curl_multi_cleanup(r.multi);
    if (r.epfd > 0) close(r.epfd);
    curl_slist_free_all(r.form_headers);
    if (r.out) curl_global_cleanup();
    for (int i = 0; i < r.nimg; i++) {
        buf_free(&r.img[i].data);
        buf_free(&r.img[i].form);
    }
    free(r.out);
    free(r.req);
    free(r.heap);
    return rc;
}
