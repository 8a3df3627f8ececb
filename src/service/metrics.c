/* metrics.c: one shared region of atomic counters, and its text format. */
#include "service/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC 0x6672736d65747231ull /* "frsmetr1" */
#define VERSION 2

static const int codes[] = {200, 202, 400, 401, 404, 405, 413, 431, 500, 503};
enum { NCODES = sizeof codes / sizeof codes[0] + 1 }; /* the last counts any other code */

static const double bounds[] = {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30};
enum { NBOUNDS = sizeof bounds / sizeof bounds[0] };

struct hist {
    uint64_t bucket[NBOUNDS + 1]; /* not cumulative; the last is above every bound */
    uint64_t sum_us;
};

struct region {
    uint64_t magic;
    uint32_t version, size;
    uint64_t requests[MR_COUNT][NCODES];
    uint64_t jobs[MJ_COUNT];
    struct hist hist[MH_COUNT];
    uint64_t worker_events[MW_COUNT];
    int64_t workers_current, workers_desired; /* -1 until an autoscaler sets them */
};

static struct region *reg;

static const char *const route_names[MR_COUNT] = {"upload", "status", "health", "people",
                                                  "metrics", "page", "other"};
static const char *const job_names[MJ_COUNT] = {"done", "failed", "timed_out",
                                                "dead_lettered", "poison", "retried"};
static const char *const worker_names[MW_COUNT] = {"start", "stop", "crash"};
static const struct {
    const char *metric, *label, *help;
} hist_names[MH_COUNT] = {
    {"facerec_answer_seconds", NULL, "Upload received to result answered, for uploads answered in time."},
    {"facerec_accept_seconds", NULL, "Upload received to job queued (input stored, message committed)."},
    {"facerec_job_seconds", NULL, "Job message sent to result written."},
    {"facerec_stage_seconds", "fetch_decode", "Time in each stage of a job."},
    {"facerec_stage_seconds", "detect", NULL},
    {"facerec_stage_seconds", "embed", NULL},
    {"facerec_stage_seconds", "match", NULL},
    {"facerec_stage_seconds", "store", NULL},
};

static struct region *map(int fd, int flags)
{
    void *p = mmap(NULL, sizeof(struct region), PROT_READ | PROT_WRITE, flags, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void init(struct region *r)
{
    memset(r, 0, sizeof *r);
    r->version = VERSION;
    r->size = sizeof *r;
    r->workers_current = r->workers_desired = -1;
    __atomic_store_n(&r->magic, MAGIC, __ATOMIC_RELEASE);
}

/* The region named by $FACEREC_METRICS_FD, or NULL when it names nothing valid. */
static struct region *inherited(void)
{
    const char *s = getenv(METRICS_FD_ENV);
    if (!s || !*s) return NULL;
    char *end;
    errno = 0;
    long fd = strtol(s, &end, 10);
    struct stat st;
    if (*end || errno || fd < 0 || fd > 1 << 20 || fstat((int)fd, &st) ||
        st.st_size != (off_t)sizeof(struct region))
        return NULL;
    struct region *r = map((int)fd, MAP_SHARED);
    if (r && (__atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != MAGIC || r->version != VERSION ||
              r->size != sizeof *r)) {
        munmap(r, sizeof *r);
        r = NULL;
    }
    return r;
}

int metrics_attach(char err[FR_ERR_LEN])
{
    if (reg) return 0;
    struct region *r = inherited();
    if (!r) {
        r = map(-1, MAP_SHARED | MAP_ANONYMOUS);
        if (!r) return fr_fail(err, FR_ENOMEM, "metrics: cannot map a region");
        init(r);
    }
    reg = r;
    return 0;
}

int metrics_create(char err[FR_ERR_LEN])
{
    int fd = memfd_create("facerec-metrics", 0); /* no close-on-exec: workers inherit it */
    if (fd < 0) return fr_fail(err, FR_EIO, "metrics: memfd_create: %s", strerror(errno));
    struct region *r = NULL;
    if (ftruncate(fd, sizeof *r) == 0) r = map(fd, MAP_SHARED);
    if (!r) {
        close(fd);
        return fr_fail(err, FR_EIO, "metrics: cannot map the shared region: %s", strerror(errno));
    }
    init(r);
    char num[16];
    snprintf(num, sizeof num, "%d", fd);
    setenv(METRICS_FD_ENV, num, 1);
    if (reg) munmap(reg, sizeof *reg);
    reg = r;
    return 0;
}

static void add(uint64_t *p, uint64_t n)
{
    __atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void metrics_request(enum metrics_route route, int code)
{
    if (!reg || (unsigned)route >= MR_COUNT) return;
    int i = 0;
    while (i < NCODES - 1 && codes[i] != code)
        i++;
    add(&reg->requests[route][i], 1);
}

void metrics_job(enum metrics_job outcome)
{
    if (reg && (unsigned)outcome < MJ_COUNT) add(&reg->jobs[outcome], 1);
}

void metrics_observe(enum metrics_hist h, double seconds)
{
    if (!reg || (unsigned)h >= MH_COUNT) return;
    if (!(seconds >= 0)) seconds = 0; /* NaN, clock steps */
    int i = 0;
    while (i < NBOUNDS && seconds > bounds[i])
        i++;
    add(&reg->hist[h].bucket[i], 1);
    add(&reg->hist[h].sum_us, seconds < 1e9 ? (uint64_t)(seconds * 1e6 + 0.5) : (uint64_t)1e15);
}

void metrics_worker_event(enum metrics_worker event)
{
    if (reg && (unsigned)event < MW_COUNT) add(&reg->worker_events[event], 1);
}

void metrics_workers(int current, int desired)
{
    if (!reg) return;
    __atomic_store_n(&reg->workers_current, (int64_t)current, __ATOMIC_RELAXED);
    __atomic_store_n(&reg->workers_desired, (int64_t)desired, __ATOMIC_RELAXED);
}

static void header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void print_hist(struct buf *b, int h)
{
    const struct hist *x = &reg->hist[h];
    const char *m = hist_names[h].metric, *lab = hist_names[h].label;
    char sel[64] = "";
    if (lab) snprintf(sel, sizeof sel, "stage=\"%s\",", lab);
    uint64_t cum = 0;
    for (int i = 0; i <= NBOUNDS; i++) {
        cum += load(&x->bucket[i]);
        if (i < NBOUNDS) buf_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", m, sel, bounds[i], (unsigned long long)cum);
        else buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", m, sel, (unsigned long long)cum);
    }
    if (lab) snprintf(sel, sizeof sel, "{stage=\"%s\"}", lab);
    buf_printf(b, "%s_sum%s %.6f\n%s_count%s %llu\n", m, sel, load(&x->sum_us) / 1e6, m, sel,
               (unsigned long long)cum);
}

void metrics_print(struct buf *b, const long queue[4])
{
    if (!reg) return;
    header(b, "facerec_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
    for (int r = 0; r < MR_COUNT; r++)
        for (int i = 0; i < NCODES; i++) {
            uint64_t n = load(&reg->requests[r][i]);
            if (!n) continue;
            char code[8];
            if (i < NCODES - 1) snprintf(code, sizeof code, "%d", codes[i]);
            else snprintf(code, sizeof code, "other");
            buf_printf(b, "facerec_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n", route_names[r],
                       code, (unsigned long long)n);
        }
    header(b, "facerec_jobs_total", "counter",
           "Jobs by outcome (retried: given back to the queue after a failure or the time limit).");
    for (int j = 0; j < MJ_COUNT; j++)
        buf_printf(b, "facerec_jobs_total{outcome=\"%s\"} %llu\n", job_names[j],
                   (unsigned long long)load(&reg->jobs[j]));
    for (int h = 0; h < MH_COUNT; h++) {
        if (hist_names[h].help) header(b, hist_names[h].metric, "histogram", hist_names[h].help);
        print_hist(b, h);
    }
    static const char *const states[4] = {"waiting", "in_flight", "delayed", "dead"};
    header(b, "facerec_queue_messages", "gauge", "Messages in the job queue, by state.");
    for (int i = 0; i < 4; i++)
        if (queue[i] >= 0) buf_printf(b, "facerec_queue_messages{state=\"%s\"} %ld\n", states[i], queue[i]);
    int64_t cur = __atomic_load_n(&reg->workers_current, __ATOMIC_RELAXED);
    int64_t want = __atomic_load_n(&reg->workers_desired, __ATOMIC_RELAXED);
    if (cur >= 0) {
        header(b, "facerec_workers", "gauge", "Worker processes running (not counting those draining).");
        buf_printf(b, "facerec_workers %lld\n", (long long)cur);
        header(b, "facerec_workers_desired", "gauge", "Workers the autoscaler wants.");
        buf_printf(b, "facerec_workers_desired %lld\n", (long long)want);
    }
    header(b, "facerec_worker_events_total", "counter", "Worker processes started, stopped and crashed.");
    for (int e = 0; e < MW_COUNT; e++)
        buf_printf(b, "facerec_worker_events_total{event=\"%s\"} %llu\n", worker_names[e],
                   (unsigned long long)load(&reg->worker_events[e]));
}

static struct MHD_Daemon *daemon_;

static enum MHD_Result on_scrape(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *data,
                                 size_t *size, void **state)
{
    (void)cls, (void)version, (void)data, (void)size;
    if (!*state) { /* headers are in; answer on the next call */
        *state = (void *)1;
        return MHD_YES;
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    unsigned code = 200;
    if (strcmp(url, "/metrics") != 0) {
        code = 404;
        buf_printf(&b, "only /metrics here\n");
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        code = 405;
        buf_printf(&b, "only GET\n");
    } else {
        static const long none[4] = {-1, -1, -1, -1};
        metrics_print(&b, none);
    }
    if (b.err) code = 500;
    struct MHD_Response *r = MHD_create_response_from_buffer(b.err ? 0 : b.len, b.data, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_NO;
    if (r) {
        MHD_add_response_header(r, "Content-Type", METRICS_CONTENT_TYPE);
        ok = MHD_queue_response(c, code, r);
        MHD_destroy_response(r);
    }
    buf_free(&b);
    return ok;
}

int metrics_listen(const char *host, int port, char err[FR_ERR_LEN])
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return fr_fail(err, FR_EINVAL, "'%s' is not an IPv4 address", host);
    if (daemon_) return 0;
    /* one thread polls every connection: scrapes are rare and small */
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
                               on_scrape, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                               MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                               MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!daemon_) return fr_fail(err, FR_EIO, "cannot listen on %s:%d for metrics", host, port);
    return 0;
}

void metrics_unlisten(void)
{
    if (daemon_) MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
