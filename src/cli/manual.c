/* manual.c: the manual page of every subcommand, printed by `facerec help COMMAND` and
 * `facerec COMMAND --help` (main.c). Sections in man(1) order; EXIT STATUS is the same for every
 * command unless a page adds to it. tests/test_cli.sh checks every command of `facerec help`
 * has a page with all the sections. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

struct manual {
    const char *name, *summary;
    const char *synopsis, *description, *options, *environment, *exit_extra, *examples;
};

#define SERVICE_ENV                                                                                \
    "Every setting comes from the environment; 'facerec help config' lists them with defaults\n"   \
    "and bounds. A value out of bounds is an error before anything starts.\n"

static const struct manual pages[] = {
    {"serve", "the whole service on one machine",
     "facerec serve\n",
     "Runs the HTTP API (see docs/openapi.yaml) in this process and the autoscaler as a child\n"
     "process, which starts and stops worker processes on the queue's depth (WORKERS > 0 pins\n"
     "their number). With BACKEND=embedded the queue is SQLite and the object store files under\n"
     "DATA_DIR; with BACKEND=aws they are SQS and S3. SIGTERM or SIGINT stops the API, then lets\n"
     "the workers finish their current job. Logs go to stderr, one line per event.\n",
     NULL, SERVICE_ENV
     "Most used: PORT, HOST, DATA_DIR, WORKERS, MIN_WORKERS, MAX_WORKERS, MAX_WAIT_SECONDS,\n"
     "API_KEY, FACEREC_MODELS, BACKEND.\n",
     NULL,
     "make run                                  # set up, build and serve on :8000\n"
     "PORT=9000 WORKERS=4 facerec serve\n"
     "BACKEND=aws S3_IN_BUCKET=in S3_OUT_BUCKET=out facerec serve\n"},
    {"api", "the HTTP API alone",
     "facerec api\n",
     "Serves the HTTP API (see docs/openapi.yaml) and queues jobs; workers run elsewhere\n"
     "('facerec worker', 'facerec autoscale'), sharing the queue and object store: BACKEND=aws,\n"
     "or the same DATA_DIR on one machine. SIGTERM or SIGINT stops it.\n",
     NULL, SERVICE_ENV "Most used: BACKEND, PORT, HOST, MAX_WAIT_SECONDS, MAX_FILE_MB, API_KEY.\n",
     NULL,
     "BACKEND=aws SQS_REQ_QUEUE_NAME=face-jobs facerec api\n"},
    {"worker", "one worker process",
     "facerec worker\n",
     "Receives jobs from the queue, recognises the faces of each photo and writes the result to\n"
     "the object store, until SIGTERM or SIGINT, which lets it finish its current job first.\n",
     NULL, SERVICE_ENV
     "Most used: BACKEND, FACEREC_MODELS, WORKER_THREADS, JOB_TIMEOUT_SECONDS, MATCH_THRESHOLD,\n"
     "METRICS_PORT (its own GET /metrics).\n",
     NULL,
     "BACKEND=aws facerec worker\n"},
    {"autoscale", "start and stop workers on the queue's depth",
     "facerec autoscale\n",
     "Reads the queue's counts every SCALE_INTERVAL_MS and keeps the number of workers between\n"
     "MIN_WORKERS and MAX_WORKERS, BACKLOG_PER_WORKER waiting jobs per worker, scaling down only\n"
     "after SCALE_DOWN_SECONDS. Its process driver runs the workers as child processes of this\n"
     "one (replacing crashed ones); its command driver (AUTOSCALE_DRIVER=command) runs\n"
     "AUTOSCALE_COMMAND with the desired count whenever it changes. 'facerec serve' runs it.\n",
     NULL, SERVICE_ENV
     "Most used: MIN_WORKERS, MAX_WORKERS, BACKLOG_PER_WORKER, SCALE_DOWN_SECONDS, WORKERS,\n"
     "AUTOSCALE_DRIVER, AUTOSCALE_COMMAND.\n",
     NULL,
     "MIN_WORKERS=1 MAX_WORKERS=8 facerec autoscale\n"},
    {"queue", "the configured job queue by hand",
     "facerec queue send BODY [--delay S]\n"
     "facerec queue counts\n",
     "send puts a message on the job queue (bodies are {job_id}_{filename}; anything else is a\n"
     "poison message, which workers delete and log). counts prints the queue's counts as one\n"
     "JSON object: {\"waiting\",\"in_flight\",\"delayed\",\"dead\"}.\n",
     "--delay S    the message becomes visible after S seconds\n",
     SERVICE_ENV "Used: BACKEND, DATA_DIR or the AWS settings, SQS_REQ_QUEUE_NAME.\n",
     NULL,
     "facerec queue counts\n"
     "BACKEND=aws facerec queue counts\n"},
    {"nn", "inspect and run a TFLite model",
     "facerec nn info MODEL [--nodes]\n"
     "facerec nn run MODEL --input IN.f32 [--shape 1,H,W,C] --output PREFIX [--threads N]\n"
     "                     [--reference] [--no-fuse] [--bf16]\n",
     "info prints the model's inputs, outputs, op counts, parameters and multiply-accumulates.\n"
     "run reads raw little-endian float32 input and writes PREFIX.out0.f32, PREFIX.out1.f32, ...\n"
     "in the model's output order.\n",
     "--nodes        info: also list every node after fusion\n"
     "--input FILE   run: the input tensor, raw float32, exactly the shape's size\n"
     "--shape DIMS   run: the input shape (default: the model's declared one)\n"
     "--output P     run: prefix of the output files\n"
     "--threads N    run: threads (default 1)\n"
     "--reference    run: on the plain C reference kernels instead of XNNPACK\n"
     "--no-fuse      run: without the graph fusions\n"
     "--bf16         run: 1x1 convolutions in bfloat16 products (where the CPU has AVX512_BF16)\n",
     NULL, NULL,
     "facerec nn info models/MobileFaceNet.tflite\n"
     "facerec nn run models/onet.tflite --input in.f32 --output /tmp/onet\n"},
    {"detect", "find faces in images",
     "facerec detect [--min-face N] [--max-side N] [--thresholds P,R,O] [--min-quality Q]\n"
     "               IMAGE...\n",
     "Prints one JSON object per image, one a line: file, width, height and faces, each with\n"
     "box [x1,y1,x2,y2], score, five landmarks [[x,y] x5] (eyes, nose tip, mouth corners) and\n"
     "quality: the length of the face's MobileFaceNet embedding before normalisation. Real\n"
     "faces measure 48-88; a detection below --min-quality is not reported, as in the service.\n"
     "An image that cannot be read is reported on stderr; the others are still printed.\n",
     "--min-face N        smallest face searched, pixels of the detection copy (default 20)\n"
     "--max-side N        longest side of the copy faces are detected on (default 640)\n"
     "--thresholds P,R,O  P-Net, R-Net, O-Net score thresholds (default 0.6,0.7,0.7)\n"
     "--min-quality Q     smallest quality reported as a face (default 42; 0: every detection)\n",
     "FACEREC_MODELS  directory of the .tflite models (default models)\n", NULL,
     "facerec detect group.jpg\n"
     "facerec detect --min-face 40 *.jpg | jq '.faces | length'\n"},
    {"embed", "find faces and compute their embeddings",
     "facerec embed [--min-face N] [--max-side N] [--thresholds P,R,O] [--min-quality Q]\n"
     "              IMAGE...\n",
     "As 'facerec detect', with each face's 192-value unit-length embedding (MobileFaceNet on\n"
     "the face aligned by its five landmarks) added as \"embedding\".\n",
     "--min-face N        smallest face searched (default 20)\n"
     "--max-side N        longest side of the detection copy (default 640)\n"
     "--thresholds P,R,O  detector thresholds (default 0.6,0.7,0.7)\n"
     "--min-quality Q     smallest quality reported as a face (default 42)\n",
     "FACEREC_MODELS  directory of the .tflite models (default models)\n", NULL,
     "facerec embed portrait.jpg > portrait.json\n"},
    {"enroll", "add people to a gallery file from a folder of photos",
     "facerec enroll --gallery FILE DIR\n",
     "Enrols DIR/<person name>/<photos>: one person per folder, the largest face of each photo.\n"
     "Photos with no face are reported on stderr and skipped; photos with several faces are\n"
     "reported and their largest face used. FILE is created or extended, and written atomically.\n"
     "When stderr is a terminal, a progress line shows the person and photo count.\n",
     "--gallery FILE  the gallery file to create or extend\n",
     "FACEREC_MODELS  directory of the .tflite models (default models)\n", NULL,
     "facerec enroll --gallery people.gallery photos/   # photos/Alice/1.jpg, photos/Bob/a.png ...\n"},
    {"identify", "name the faces in images against a gallery file",
     "facerec identify --gallery FILE [--threshold T] IMAGE...\n",
     "Prints one JSON object per image, one a line: file, result (the largest face's name,\n"
     "Unknown, or No face) and faces (box, score, landmarks, name, similarity).\n",
     "--gallery FILE  a gallery made by 'facerec enroll'\n"
     "--threshold T   cosine similarity from which a face is a known person (default 0.45)\n",
     "FACEREC_MODELS  directory of the .tflite models (default models)\n", NULL,
     "facerec identify --gallery people.gallery group.jpg\n"},
    {"loadtest", "load a running service with uploads",
     "facerec loadtest URL [--requests N] [--concurrency C] [--rate R] [--timeout S]\n"
     "                     [--json FILE] IMAGE...\n",
     "Uploads the images in turn to the service at URL (POST /, field inputFile), C requests\n"
     "at a time, until N requests are made; a 202 answer is polled at /status/{id}.\n"
     "With --rate R the requests start at R per second whatever the answers (open loop; at\n"
     "most C uploads at once). One thread drives every connection, to leave the machine's\n"
     "cores to the service it measures.\n"
     "Prints the success rate, latency avg/p50/p95/p99/max from upload to result, photos per\n"
     "second, and the results seen.\n",
     "--requests N     requests in all (default 100)\n"
     "--concurrency C  requests at once (default 100)\n"
     "--rate R         start R requests per second (open loop; default 0: a request starts\n"
     "                 when another has its result)\n"
     "--timeout S      seconds each request may take, polls included (default 120)\n"
     "--json FILE      also write the figures as JSON to FILE\n",
     NULL, "1 also when any request did not succeed.\n",
     "facerec loadtest http://localhost:8000 --requests 500 --concurrency 50 photo.jpg\n"},
    {"bench", "benchmarks",
     "facerec bench nn [--threads N] [--repeat R] [--json]\n"
     "facerec bench pipeline [--threads N] [--repeat R] [--json] IMAGE...\n"
     "facerec bench fit IMAGE WxH OUT.jpg\n",
     "nn times each face model after a warm-up: median milliseconds and achieved GFLOPS\n"
     "(2 x multiply-accumulates / time) of MobileFaceNet, the P-Net pyramid of a 640x480 photo,\n"
     "R-Net and O-Net per crop (batch 1 and 16), and a 3x3 convolution 64->64 on 56x56 as the\n"
     "machine's reference point; then the four nets again with their convolutions in bfloat16\n"
     "products, as the pipeline runs them where the CPU can (AVX512_BF16).\n"
     "pipeline decodes, detects, aligns and embeds every face of each photo (bytes already in\n"
     "memory) and prints per-stage medians and photos per second.\n"
     "fit makes a benchmark photo: IMAGE cropped to the aspect of WxH, resampled, JPEG quality 90.\n"
     "Results go to stdout; when stderr is a terminal, progress lines go there.\n",
     "--threads N  inference threads (default 1)\n"
     "--repeat R   timed runs, after the warm-up (default 50 for nn, 20 for pipeline)\n"
     "--json       one JSON object instead of lines of text\n",
     "FACEREC_MODELS  directory of the .tflite models (default models)\n", NULL,
     "facerec bench nn --json\n"
     "facerec bench fit face.jpg 640x480 /tmp/face640.jpg && facerec bench pipeline /tmp/face640.jpg\n"},
    {"help", "describe the commands and settings",
     "facerec help [COMMAND | config [--env | --markdown]]\n"
     "facerec COMMAND --help | -h\n"
     "facerec --version\n",
     "Without arguments, lists the commands. With a COMMAND, prints its manual page. config\n"
     "lists every setting read from the environment, with default, bounds and meaning.\n",
     "--env       config: as a .env file (the shipped .env.example)\n"
     "--markdown  config: as a Markdown table (the one in README.md)\n",
     NULL, NULL,
     "facerec help serve\n"
     "facerec help config --markdown\n"},
};

/* Prints text with every line indented by four spaces. */
static void indented(FILE *f, const char *text)
{
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        fprintf(f, "    %.*s\n", (int)n, text);
        text += n + (nl ? 1 : 0);
    }
}

int cli_manual(const char *cmd, FILE *f)
{
    for (size_t i = 0; i < sizeof pages / sizeof *pages; i++) {
        const struct manual *m = &pages[i];
        if (strcmp(cmd, m->name) != 0) continue;
        fprintf(f, "NAME\n    facerec %s - %s\n\nSYNOPSIS\n", m->name, m->summary);
        indented(f, m->synopsis);
        fputs("\nDESCRIPTION\n", f);
        indented(f, m->description);
        fputs("\nOPTIONS\n", f);
        if (m->options) indented(f, m->options);
        fputs("    --help, -h   this page\n", f);
        if (m->environment) {
            fputs("\nENVIRONMENT\n", f);
            indented(f, m->environment);
        }
        fputs("\nEXIT STATUS\n"
              "    0  success\n"
              "    1  failure; one line on stderr says why: facerec: ...\n"
              "    2  usage error (unknown option, missing argument); one line on stderr\n",
              f);
        if (m->exit_extra) indented(f, m->exit_extra);
        fputs("\nEXAMPLES\n", f);
        indented(f, m->examples);
        return 0;
    }
    return -1;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "facerec: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'facerec help %s')\n", cmd);
    va_end(ap);
    return 2;
}
