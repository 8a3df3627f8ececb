/* config.c: the settings table and its readers. */
#include "util/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum type { T_STR, T_SECRET, T_INT, T_FLOAT };

struct var {
    const char *name;
    enum type type;
    size_t off, size; /* field in struct config; size for strings */
    const char *dflt;
    double min, max;    /* numbers */
    const char *choices; /* strings: "a|b", or NULL for any */
    const char *help;
};

#define STR(field) T_STR, offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define SECRET(field) T_SECRET, offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define INT(field) T_INT, offsetof(struct config, field), 0
#define FLOAT(field) T_FLOAT, offsetof(struct config, field), 0

static const struct var vars[] = {
    {"BACKEND", STR(backend), "embedded", 0, 0, "embedded|aws",
     "queue and object store: embedded (SQLite queue and files under DATA_DIR) or aws (SQS, S3)"},
    {"DATA_DIR", STR(data_dir), "./data", 0, 0, NULL,
     "directory of the embedded queue and object store"},
    {"AWS_ENDPOINT_URL", STR(aws_endpoint_url), "", 0, 0, NULL,
     "endpoint of an SQS/S3-compatible service; empty for AWS itself"},
    {"AWS_REGION", STR(aws_region), "us-east-1", 0, 0, NULL, "AWS region"},
    {"AWS_ACCESS_KEY_ID", SECRET(aws_access_key_id), "", 0, 0, NULL, "AWS access key id"},
    {"AWS_SECRET_ACCESS_KEY", SECRET(aws_secret_access_key), "", 0, 0, NULL,
     "AWS secret access key"},
    {"S3_IN_BUCKET", STR(s3_in_bucket), "input-bucket", 0, 0, NULL,
     "bucket of uploaded photos, keys {job_id}_{filename}"},
    {"S3_OUT_BUCKET", STR(s3_out_bucket), "output-bucket", 0, 0, NULL,
     "bucket of results, keys {job_id}"},
    {"SQS_REQ_QUEUE_NAME", STR(sqs_req_queue_name), "request-queue", 0, 0, NULL,
     "queue of jobs, bodies {job_id}_{filename}"},
    {"DURABILITY", STR(durability), "power", 0, 0, "power|process",
     "embedded backend: power (an accepted job and a written result survive power loss: fsync "
     "before answering) or process (they survive any process crash, not an OS crash: no fsync)"},
    {"SQS_WAIT_TIME_SECONDS", INT(sqs_wait_time_seconds), "10", 0, 20, NULL,
     "long-poll wait of a worker's receive"},
    {"SQS_VISIBILITY_TIMEOUT_SECONDS", INT(sqs_visibility_timeout_seconds), "60", 1, 43200, NULL,
     "how long a received job stays hidden before another worker may take it"},
    {"MAX_RECEIVES", INT(max_receives), "5", 1, 1000, NULL,
     "receives after which a job goes to the dead-letter queue"},
    {"HOST", STR(host), "0.0.0.0", 0, 0, NULL, "IPv4 address the API listens on"},
    {"PORT", INT(port), "8000", 1, 65535, NULL, "HTTP port of the API"},
    {"METRICS_PORT", INT(metrics_port), "0", 0, 65535, NULL,
     "facerec worker: serve its own GET /metrics on HOST:METRICS_PORT (0: off; the API always has "
     "/metrics)"},
    {"MAX_WAIT_SECONDS", INT(max_wait_seconds), "30", 0, 900, NULL,
     "how long POST / waits for the result before answering 202 with the job id"},
    {"MAX_FILE_MB", INT(max_file_mb), "8", 1, 64, NULL, "largest upload accepted, in MiB"},
    {"API_KEY", SECRET(api_key), "", 0, 0, NULL,
     "when set, enrolment endpoints require header X-Api-Key with this value"},
    {"FACEREC_MODELS", STR(models), "models", 0, 0, NULL, "directory of the .tflite models"},
    {"MATCH_THRESHOLD", FLOAT(match_threshold), "0.45", 0, 1, NULL,
     "cosine similarity from which a face is a known person, else Unknown"},
    {"MIN_FACE", INT(min_face), "20", 12, 10000, NULL,
     "smallest face searched, in pixels of the detection copy"},
    {"DETECT_MAX_SIDE", INT(detect_max_side), "640", 48, 8192, NULL,
     "longest side of the copy faces are detected on"},
    {"MIN_FACE_QUALITY", FLOAT(min_face_quality), "42", 0, 1000, NULL,
     "a detection whose embedding is shorter than this is not a face (real faces 48-88, "
     "O-Net's mistakes 22-37 on the test photos); 0 keeps every detection"},
    {"JOB_TIMEOUT_SECONDS", INT(job_timeout_seconds), "20", 1, 3600, NULL,
     "a job running longer is aborted and retried later"},
    {"WORKERS", INT(workers), "0", 0, 1000, NULL,
     "0: facerec serve scales its workers between MIN_WORKERS and MAX_WORKERS; N: exactly N"},
    {"WORKER_THREADS", INT(worker_threads), "1", 1, 64, NULL, "inference threads per worker"},
    {"MIN_WORKERS", INT(min_workers), "0", 0, 1000, NULL, "autoscaler: fewest workers"},
    {"MAX_WORKERS", INT(max_workers), "0", 0, 1000, NULL,
     "autoscaler: most workers; 0: one per CPU core (divided by WORKER_THREADS) for the process "
     "driver, 15 for the command driver"},
    {"BACKLOG_PER_WORKER", INT(backlog_per_worker), "1", 1, 10000, NULL,
     "autoscaler: waiting jobs per worker"},
    {"SCALE_DOWN_SECONDS", INT(scale_down_seconds), "30", 0, 86400, NULL,
     "autoscaler: stabilisation window before scaling down"},
    {"SCALE_INTERVAL_MS", INT(scale_interval_ms), "0", 0, 60000, NULL,
     "autoscaler: how often it reads the queue's counts; 0: 100 ms on the embedded queue, 1000 ms "
     "on SQS (where each read is two requests)"},
    {"AUTOSCALE_DRIVER", STR(autoscale_driver), "process", 0, 0, "process|command",
     "autoscaler: process (worker processes on this machine) or command (runs AUTOSCALE_COMMAND)"},
    {"AUTOSCALE_COMMAND", STR(autoscale_command), "", 0, 0, NULL,
     "autoscaler, command driver: shell command run with the desired count as $1 (and in "
     "$FACEREC_DESIRED_WORKERS) whenever it changes"},
};

enum { NVARS = sizeof vars / sizeof vars[0] };

static int set(struct config *c, const struct var *v, const char *value, char *err)
{
    char *field = (char *)c + v->off;
    if (v->type == T_STR || v->type == T_SECRET) {
        size_t n = strlen(value);
        if (n >= v->size)
            return fr_fail(err, FR_EINVAL, "%s: value of %zu bytes is too long (at most %zu)",
                           v->name, n, v->size - 1);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)value[i] < 0x20)
                return fr_fail(err, FR_EINVAL, "%s: control characters are not allowed", v->name);
        if (v->choices) {
            int ok = 0;
            const char *p = v->choices;
            while (*p && !ok) {
                size_t len = strcspn(p, "|");
                ok = len == n && !strncmp(p, value, n);
                p += len + (p[len] == '|');
            }
            if (!ok) return fr_fail(err, FR_EINVAL, "%s: '%s' is not one of %s", v->name, value, v->choices);
        }
        memcpy(field, value, n + 1);
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    while (*end == ' ')
        end++;
    if (end == value || *end || errno || !isfinite(d))
        return fr_fail(err, FR_EINVAL, "%s: '%s' is not a number", v->name, value);
    if (v->type == T_INT && d != floor(d))
        return fr_fail(err, FR_EINVAL, "%s: '%s' is not a whole number", v->name, value);
    if (d < v->min || d > v->max)
        return fr_fail(err, FR_EINVAL, "%s: %s is out of range (%g..%g)", v->name, value, v->min,
                       v->max);
    if (v->type == T_INT) *(int *)field = (int)d;
    else *(double *)field = d;
    return 0;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NVARS; i++)
        if (set(c, &vars[i], vars[i].dflt, NULL)) abort(); /* a bad default is a bug here */
}

int config_load(struct config *c, char err[FR_ERR_LEN])
{
    config_defaults(c);
    for (int i = 0; i < NVARS; i++) {
        const char *value = getenv(vars[i].name);
        if (!value) continue;
        int rc = set(c, &vars[i], value, err);
        if (rc) return rc;
    }
    if (c->max_workers > 0 && c->min_workers > c->max_workers)
        return fr_fail(err, FR_EINVAL, "MIN_WORKERS (%d) is above MAX_WORKERS (%d)",
                       c->min_workers, c->max_workers);
    if (!strcmp(c->autoscale_driver, "command") && !c->autoscale_command[0])
        return fr_fail(err, FR_EINVAL, "AUTOSCALE_DRIVER=command needs AUTOSCALE_COMMAND");
    return 0;
}

static void bounds(const struct var *v, char *buf, size_t n)
{
    if (v->type == T_INT || v->type == T_FLOAT) snprintf(buf, n, "%g..%g", v->min, v->max);
    else if (v->choices) snprintf(buf, n, "%s", v->choices);
    else snprintf(buf, n, "%s", v->type == T_SECRET ? "secret" : "text");
}

/* Writes s as the text of a Markdown table cell: a '|' would end the cell. */
static void md_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

void config_print(FILE *f, enum config_format format)
{
    if (format == CONFIG_MARKDOWN) {
        fprintf(f, "| variable | default | allowed | meaning |\n|---|---|---|---|\n");
    } else if (format == CONFIG_HELP) {
        fprintf(f, "Settings come from the environment (a .env file is not read: export them).\n\n");
    } else {
        fprintf(f, "# facerec settings (printed by `facerec help config --env`)\n");
    }
    for (int i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        char b[64];
        bounds(v, b, sizeof b);
        switch (format) {
        case CONFIG_MARKDOWN:
            fprintf(f, "| `%s` | %s%s%s | ", v->name, *v->dflt ? "`" : "",
                    *v->dflt ? v->dflt : "(none)", *v->dflt ? "`" : "");
            md_cell(f, b);
            fputs(" | ", f);
            md_cell(f, v->help);
            fputs(" |\n", f);
            break;
        case CONFIG_ENV: fprintf(f, "\n# %s (%s)\n%s=%s\n", v->help, b, v->name, v->dflt); break;
        default:
            fprintf(f, "  %-31s %-14s %s\n  %-31s %-14s %s\n", v->name,
                    *v->dflt ? v->dflt : "(none)", v->help, "", "", b);
        }
    }
}
