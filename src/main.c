/* main.c: the facerec binary: one command with subcommands. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/config.h"

#define FACEREC_VERSION "0.1.0"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"serve", cli_serve, "the service on one machine: HTTP API, embedded queue and store, workers"},
    {"api", cli_api, "the HTTP API alone (workers run elsewhere)"},
    {"worker", cli_worker, "one worker process"},
    {"autoscale", cli_autoscale, "start and stop workers on the queue's depth (process or command driver)"},
    {"queue", cli_queue, "the configured job queue by hand (queue send BODY, queue counts)"},
    {"nn", cli_nn, "inspect and run a TFLite model (nn info MODEL, nn run MODEL ...)"},
    {"detect", cli_detect, "find faces in images: boxes, scores, landmarks (JSON)"},
    {"embed", cli_detect, "detect, then a 192-value embedding per face (JSON)"},
    {"enroll", cli_enroll, "add people to a gallery file from a folder of photos"},
    {"identify", cli_identify, "name the faces in images against a gallery file (JSON)"},
    {"loadtest", cli_loadtest, "load a running service with uploads; success rate, latency percentiles"},
    {"bench", cli_bench, "benchmarks (bench nn, bench pipeline)"},
};

static int usage(FILE *f)
{
    fprintf(f, "usage: facerec COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-8s %s\n", "help", "this list; 'help COMMAND' describes one, 'help config' the settings");
    fprintf(f, "\n'facerec COMMAND --help' describes one command.\n");
    return f == stdout ? 0 : 2;
}

/* Photos are decoded into buffers of several megabytes (a progressive JPEG's coefficients: 17 MB
 * for 2000x1428) allocated and freed for every photo. By default glibc maps such blocks fresh
 * and unmaps them on free, so each photo page-faults its buffers in again: 97 of the 132 ms of a
 * progressive 2000x1428 decode. Blocks up to 32 MB (glibc's ceiling for this setting) come from
 * the heap instead, and up to 128 MB of freed heap stays mapped for the next photo. */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

int main(int argc, char **argv)
{
    tune_malloc();
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") && argc >= 3 && !strcmp(argv[2], "config")) {
        enum config_format fmt = CONFIG_HELP;
        if (argc >= 4 && !strcmp(argv[3], "--env")) fmt = CONFIG_ENV;
        else if (argc >= 4 && !strcmp(argv[3], "--markdown")) fmt = CONFIG_MARKDOWN;
        config_print(stdout, fmt);
        return 0;
    }
    if (!strcmp(cmd, "help") && argc >= 3) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char *args[] = {argv[2], "--help", NULL};
                return commands[i].run(2, args);
            }
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage(stdout);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("facerec %s\n", FACEREC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "facerec: unknown command '%s' (see 'facerec help')\n", cmd);
    return 2;
}
