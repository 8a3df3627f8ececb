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
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-9s %s\n", "help", "this list; 'help COMMAND' describes one, 'help config' the settings");
    fprintf(f, "\n'facerec COMMAND --help' describes one command. Exit status: 0 success, 1 failure,\n"
               "2 usage error; errors are one line on stderr.\n");
    return 0;
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

/* Whether args ask for help: --help or -h before any "--". */
static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* facerec help [COMMAND | config [--env | --markdown]] */
static int help(int argc, char **argv)
{
    if (argc == 0) return usage(stdout);
    if (!strcmp(argv[0], "config")) {
        enum config_format fmt = CONFIG_HELP;
        if (argc == 2 && !strcmp(argv[1], "--env")) fmt = CONFIG_ENV;
        else if (argc == 2 && !strcmp(argv[1], "--markdown")) fmt = CONFIG_MARKDOWN;
        else if (argc > 1) return cli_usage("help", "config takes --env or --markdown, not '%s'", argv[1]);
        config_print(stdout, fmt);
        return 0;
    }
    if (argc > 1) return cli_usage("help", "one command at a time");
    const char *name = !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ? "help" : argv[0];
    if (strcmp(name, "help") != 0 && !find(name))
        return cli_usage("help", "no command '%s'", name);
    if (cli_manual(name, stdout) == 0) return 0;
    char *args[] = {(char *)name, "--help", NULL}; /* a command without a page: its own help */
    return find(name)->run(2, args);
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
    if (argc < 2) {
        fprintf(stderr, "facerec: no command given (see 'facerec help')\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help")) return help(argc - 2, argv + 2);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) return usage(stdout);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("facerec %s\n", FACEREC_VERSION);
        return 0;
    }
    const struct command *c = find(cmd);
    if (!c) {
        fprintf(stderr, "facerec: unknown command '%s' (see 'facerec help')\n", cmd);
        return 2;
    }
    if (wants_help(argc - 2, argv + 2) && cli_manual(cmd, stdout) == 0) return 0;
    return c->run(argc - 1, argv + 1);
}
