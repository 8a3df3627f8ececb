/* cli_nn.c: `facerec nn info|run`. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "nn/nn.h"
#include "nn/tflite.h"

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("facerec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static const char nn_usage[] =
    "usage: facerec nn info MODEL [--nodes]\n"
    "       facerec nn run MODEL --input IN.f32 [--shape 1,H,W,C] --output PREFIX\n"
    "                           [--threads N] [--reference] [--no-fuse] [--bf16]\n"
    "\n"
    "info  prints the model's inputs, outputs, op counts, parameters and MACs\n"
    "      (--nodes also lists every node after fusion).\n"
    "run   reads raw little-endian float32 input, writes PREFIX.out0.f32, PREFIX.out1.f32, ...\n"
    "      in the model's output order. --shape defaults to the declared input shape.\n";

static void print_shape(const char *label, const char *name, const struct nn_shape *s)
{
    char buf[96];
    nn_shape_str(s, buf, sizeof buf);
    printf("%s %-12s %s\n", label, buf, name);
}

static int nn_info(const char *path, int nodes)
{
    char err[FR_ERR_LEN];
    struct nn_graph *g;
    struct nn_stats st;
    if (nn_tflite_load(path, &g, err)) return cli_error("%s", err);
    if (nn_graph_stats(g, NULL, &st, err)) {
        nn_graph_free(g);
        return cli_error("%s", err);
    }
    printf("model    %s\n", path);
    for (int i = 0; i < g->ninputs; i++)
        print_shape("input   ", g->tensors[g->inputs[i]].name, &g->tensors[g->inputs[i]].shape);
    struct nn_shape *shapes = calloc((size_t)g->ntensors, sizeof *shapes);
    if (!shapes || nn_graph_shapes(g, NULL, shapes, err)) {
        free(shapes);
        nn_graph_free(g);
        return cli_error("%s", shapes ? err : "out of memory");
    }
    for (int i = 0; i < g->noutputs; i++)
        print_shape("output  ", g->tensors[g->outputs[i]].name, &shapes[g->outputs[i]]);
    free(shapes);
    printf("nodes    %d\n", g->nnodes);
    for (int op = 0; op < NN_OP_COUNT; op++)
        if (st.op_count[op]) printf("  %-18s %d\n", nn_op_name(op), st.op_count[op]);
    printf("params   %lld\n", (long long)st.params);
    printf("MACs     %lld\n", (long long)st.macs);
    int fused = nn_graph_fuse(g);
    if (fused > 0) {
        printf("fused    %d patterns -> %d nodes\n", fused, g->nnodes);
    }
    if (nodes) {
        for (int n = 0; n < g->nnodes; n++) {
            const struct nn_node *nd = &g->nodes[n];
            printf("  #%-3d %-18s", n, nn_op_name(nd->op));
            for (int k = 0; k < nd->nin; k++)
                printf(" %d", nd->in[k]);
            printf(" -> %d  %s\n", nd->out, g->tensors[nd->out].name);
        }
    }
    nn_graph_free(g);
    return 0;
}

static int parse_shape(const char *s, struct nn_shape *out)
{
    out->ndim = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v <= 0 || v > NN_MAX_DIM || out->ndim == NN_MAX_DIMS) return -1;
        out->d[out->ndim++] = (int32_t)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return out->ndim ? 0 : -1;
}

/* Reads exactly want bytes of path into a new buffer. */
static float *read_f32(const char *path, size_t want, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, FR_ERR_LEN, "%s: %s", path, strerror(errno));
        return NULL;
    }
    float *buf = malloc(want ? want : 1);
    size_t got = buf ? fread(buf, 1, want, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (!buf || got != want || extra) {
        snprintf(err, FR_ERR_LEN, "%s: expected exactly %zu bytes of float32 for this shape", path,
                 want);
        free(buf);
        return NULL;
    }
    return buf;
}

static int nn_run(int argc, char **argv)
{
    const char *model = NULL, *input = NULL, *prefix = NULL, *shape_arg = NULL;
    struct nn_opts opts = {.threads = 1};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--input") && i + 1 < argc) input = argv[++i];
        else if (!strcmp(a, "--output") && i + 1 < argc) prefix = argv[++i];
        else if (!strcmp(a, "--shape") && i + 1 < argc) shape_arg = argv[++i];
        else if (!strcmp(a, "--threads") && i + 1 < argc) opts.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--reference")) opts.backend = NN_BACKEND_REF;
        else if (!strcmp(a, "--no-fuse")) opts.no_fuse = 1;
        else if (!strcmp(a, "--bf16")) opts.bf16 = 1;
        else if (a[0] != '-' && !model) model = a;
        else return cli_usage("nn", "unknown option or missing value: '%s'", a);
    }
    if (!model || !input || !prefix) return cli_usage("nn", "run needs MODEL, --input and --output");
    if (opts.threads < 1 || opts.threads > 64) return cli_usage("nn", "--threads must be 1..64");
    char err[FR_ERR_LEN];
    struct nn_net *net;
    if (nn_net_open(model, &opts, &net, err)) return cli_error("%s", err);
    const struct nn_graph *g = nn_net_graph(net);
    struct nn_shape shape = g->tensors[g->inputs[0]].shape;
    int rc = 0;
    if (shape_arg && parse_shape(shape_arg, &shape)) {
        nn_net_close(net);
        return cli_error("--shape: expected comma-separated positive sizes, got '%s'", shape_arg);
    }
    float *in = read_f32(input, (size_t)nn_shape_count(&shape) * sizeof(float), err);
    struct nn_output out[NN_MAX_IO];
    if (!in) rc = cli_error("%s", err);
    else if (nn_net_run(net, in, &shape, out, err)) rc = cli_error("%s", err);
    for (int i = 0; !rc && i < nn_net_noutputs(net); i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s.out%d.f32", prefix, i);
        FILE *f = fopen(path, "wb");
        size_t n = (size_t)nn_shape_count(&out[i].shape);
        if (!f || fwrite(out[i].data, sizeof(float), n, f) != n) rc = cli_error("%s: cannot write", path);
        if (f && fclose(f) != 0 && !rc) rc = cli_error("%s: cannot write", path);
    }
    free(in);
    nn_net_close(net);
    return rc;
}

int cli_nn(int argc, char **argv)
{
    if (argc < 2) return cli_usage("nn", "which: info or run?");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(nn_usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "info") && argc >= 3)
        return nn_info(argv[2], argc > 3 && !strcmp(argv[3], "--nodes"));
    if (!strcmp(argv[1], "run")) return nn_run(argc - 2, argv + 2);
    if (!strcmp(argv[1], "info")) return cli_usage("nn", "info needs MODEL");
    return cli_usage("nn", "unknown subcommand '%s' (info or run)", argv[1]);
}
