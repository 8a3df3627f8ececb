/* cli_bench.c: `facerec bench nn`: median time and achieved GFLOPS of each model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/text.h"
#include "nn/nn.h"
#include "vision/image.h"
#include "vision/pipeline.h"
#include "vision/warp.h"

static const char bench_usage[] =
    "usage: facerec bench nn [--threads N] [--repeat R] [--json]\n"
    "       facerec bench pipeline [--threads N] [--repeat R] [--json] IMAGE...\n"
    "       facerec bench fit IMAGE WxH OUT.jpg   (a benchmark photo: IMAGE cropped to the\n"
    "                                              aspect of WxH, resampled, JPEG quality 90)\n"
    "\n"
    "pipeline: decodes, detects, aligns and embeds every face of each photo (bytes already in\n"
    "memory), prints per-stage median milliseconds and photos per second.\n"
    "\n"
    "nn: "
    "Times each face model after a warm-up and prints the median milliseconds and achieved\n"
    "GFLOPS (2 x multiply-accumulates / time): MobileFaceNet batch 1, the P-Net pyramid of a\n"
    "640x480 photo (min face 20, factor 0.709), R-Net and O-Net per crop (batch 1 and 16), and a\n"
    "3x3 convolution 64->64 on 56x56 as the machine's reference point; then the four nets again\n"
    "with convolutions in bfloat16 products, as the pipeline runs them where the CPU can.\n"
    "Models come from $FACEREC_MODELS (default ./models).\n";

struct result {
    const char *name;
    double median_ms, gflops;
    int64_t macs;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed case: a net run on one or more input shapes in turn (a pyramid). */
struct bench_case {
    const char *name;
    const char *model;
    int nshapes;
    struct nn_shape shapes[16];
    int per_item; /* divide time by the batch size (per-crop figures) */
    int bf16;     /* with bfloat16 products where the engine has them (nn_opts.bf16) */
};

static int run_case(struct nn_net *net, const struct bench_case *bc, int repeat, struct result *r,
                    char *err)
{
    const struct nn_graph *g = nn_net_graph(net);
    int64_t macs = 0;
    size_t maxn = 0;
    for (int i = 0; i < bc->nshapes; i++) {
        struct nn_stats st;
        if (nn_graph_stats(g, &bc->shapes[i], &st, err)) return -1;
        macs += st.macs;
        size_t n = (size_t)nn_shape_count(&bc->shapes[i]);
        if (n > maxn) maxn = n;
    }
    float *in = malloc(maxn * sizeof(float));
    double *t = malloc((size_t)repeat * sizeof(double));
    if (!in || !t) {
        free(in);
        free(t);
        snprintf(err, FR_ERR_LEN, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < maxn; i++)
        in[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    struct nn_output out[NN_MAX_IO];
    int rc = 0;
    for (int it = -3; it < repeat && !rc; it++) { /* three warm-up rounds build the runtimes */
        double t0 = now_ms();
        for (int i = 0; i < bc->nshapes && !rc; i++)
            rc = nn_net_run(net, in, &bc->shapes[i], out, err);
        if (it >= 0) t[it] = now_ms() - t0;
    }
    if (!rc) {
        qsort(t, (size_t)repeat, sizeof *t, cmp_double);
        double med = repeat % 2 ? t[repeat / 2] : (t[repeat / 2 - 1] + t[repeat / 2]) / 2;
        int items = bc->per_item ? bc->shapes[0].d[0] : 1;
        r->name = bc->name;
        r->macs = macs / items;
        r->median_ms = med / items;
        r->gflops = 2.0 * (double)macs / (med * 1e6);
    }
    free(in);
    free(t);
    return rc ? -1 : 0;
}

/* The P-Net pyramid: scale 12/minface, times factor per level while the short side >= 12.
 * MTCNN takes the image transposed, [1,W,H,3]. */
static int pnet_pyramid(int w, int h, double min_face, double factor, struct nn_shape *shapes,
                        int max)
{
    int n = 0;
    double scale = 12.0 / min_face;
    while (n < max && fmin(w, h) * scale >= 12.0) {
        int sw = (int)ceil(w * scale), sh = (int)ceil(h * scale);
        shapes[n++] = (struct nn_shape){4, {1, sw, sh, 3}};
        scale *= factor;
    }
    return n;
}

/* A graph of one 3x3 convolution 64->64 on 56x56: the machine's reference point. */
static struct nn_graph *conv_reference(void)
{
    struct nn_graph *g = calloc(1, sizeof *g);
    struct nn_node *nd = calloc(1, sizeof *nd);
    float *w = nn_alloc_aligned(64 * 3 * 3 * 64 * sizeof(float));
    float *b = nn_alloc_aligned(64 * sizeof(float));
    if (!g || !nd || !w || !b) {
        free(g), free(nd), free(w), free(b);
        return NULL;
    }
    for (int i = 0; i < 64 * 9 * 64; i++)
        w[i] = (float)(i % 17) / 17.0f - 0.5f;
    memset(b, 0, 64 * sizeof(float));
    struct nn_shape xs = {4, {1, 56, 56, 64}}, ws = {4, {64, 3, 3, 64}}, bs = {1, {64}};
    int ok = nn_graph_add_tensor(g, "x", NN_F32, &xs, NULL, 0) == 0 &&
             nn_graph_add_tensor(g, "w", NN_F32, &ws, w, 64 * 9 * 64 * 4) == 1 &&
             nn_graph_add_tensor(g, "b", NN_F32, &bs, b, 64 * 4) == 2 &&
             nn_graph_add_tensor(g, "y", NN_F32, &xs, NULL, 0) == 3;
    if (!ok) {
        nn_graph_free(g);
        free(nd);
        return NULL;
    }
    *nd = (struct nn_node){.op = NN_OP_CONV_2D, .nin = 3, .in = {0, 1, 2}, .out = 3,
                           .pad = NN_PAD_SAME, .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1};
    g->nodes = nd;
    g->nnodes = 1;
    g->inputs[0] = 0, g->ninputs = 1;
    g->outputs[0] = 3, g->noutputs = 1;
    return g;
}

static int bench_nn(int argc, char **argv)
{
    struct nn_opts opts = {.threads = 1};
    int repeat = 50, json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) opts.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else return cli_usage("bench", "unknown option or missing value: '%s'", argv[i]);
    }
    if (opts.threads < 1 || opts.threads > 64 || repeat < 1 || repeat > 100000)
        return cli_usage("bench", "--threads must be 1..64 and --repeat 1..100000");
    const char *dir = cli_models_dir();
    struct bench_case cases[] = {
        {"MobileFaceNet", "MobileFaceNet", 1, {{4, {1, 112, 112, 3}}}, 0, 0},
        {"P-Net pyramid 640x480", "pnet", 0, {{0}}, 0},
        {"R-Net per crop", "rnet", 1, {{4, {1, 24, 24, 3}}}, 1},
        {"R-Net per crop, batch 16", "rnet", 1, {{4, {16, 24, 24, 3}}}, 1},
        {"O-Net per crop", "onet", 1, {{4, {1, 48, 48, 3}}}, 1},
        {"O-Net per crop, batch 16", "onet", 1, {{4, {16, 48, 48, 3}}}, 1},
        {"conv3x3 64->64 56x56", NULL, 1, {{4, {1, 56, 56, 64}}}, 0},
        {"MobileFaceNet, bf16", "MobileFaceNet", 1, {{4, {1, 112, 112, 3}}}, 0, 1},
        {"P-Net pyramid, bf16", "pnet", 0, {{0}}, 0, 1},
        {"R-Net per crop, batch 16, bf16", "rnet", 1, {{4, {16, 24, 24, 3}}}, 1, 1},
        {"O-Net per crop, batch 16, bf16", "onet", 1, {{4, {16, 48, 48, 3}}}, 1, 1},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    for (int i = 0; i < NCASES; i++)
        if (!strcmp(cases[i].model ? cases[i].model : "", "pnet"))
            cases[i].nshapes = pnet_pyramid(640, 480, 20, 0.709, cases[i].shapes, 16);
    struct result res[NCASES];
    char err[FR_ERR_LEN];
    int tty = isatty(STDERR_FILENO); /* progress only for a person watching */
    for (int i = 0; i < NCASES; i++) {
        if (tty) fprintf(stderr, "\rbench: %d/%d %s\033[K", i + 1, NCASES, cases[i].name);
        struct nn_net *net;
        int rc;
        if (cases[i].model) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.tflite", dir, cases[i].model);
            struct nn_opts o = opts;
            o.bf16 = cases[i].bf16;
            rc = nn_net_open(path, &o, &net, err);
        } else {
            struct nn_graph *g = conv_reference();
            rc = g ? nn_net_from_graph(g, &opts, &net, err) : FR_ENOMEM;
            if (!g) snprintf(err, sizeof err, "out of memory");
        }
        if (rc) return cli_error("%s", err);
        rc = run_case(net, &cases[i], repeat, &res[i], err);
        nn_net_close(net);
        if (tty) fputs("\r\033[K", stderr);
        if (rc) return cli_error("%s: %s", cases[i].name, err);
        if (!json)
            printf("%-30s %9.3f ms  %7.1f GFLOPS  (%.1f MMAC, %d thread%s, median of %d)\n",
                   res[i].name, res[i].median_ms, res[i].gflops, (double)res[i].macs / 1e6,
                   opts.threads, opts.threads > 1 ? "s" : "", repeat);
    }
    if (json) {
        printf("{\"threads\":%d,\"models\":[", opts.threads);
        for (int i = 0; i < NCASES; i++)
            printf("%s{\"name\":\"%s\",\"median_ms\":%.4f,\"gflops\":%.1f,\"macs\":%lld}",
                   i ? "," : "", res[i].name, res[i].median_ms, res[i].gflops,
                   (long long)res[i].macs);
        printf("]}\n");
    }
    return 0;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int bench_pipeline(int argc, char **argv)
{
    struct recognizer_opts ro = RECOGNIZER_OPTS_DEFAULT;
    int repeat = 20, json = 0, first = 0;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "--threads") && first + 1 < argc) ro.threads = atoi(argv[++first]);
        else if (!strcmp(argv[first], "--repeat") && first + 1 < argc) repeat = atoi(argv[++first]);
        else if (!strcmp(argv[first], "--json")) json = 1;
        else break;
    }
    if (first >= argc) return cli_usage("bench", "pipeline needs at least one IMAGE");
    if (ro.threads < 1 || ro.threads > 64 || repeat < 1 || repeat > 100000)
        return cli_usage("bench", "--threads must be 1..64 and --repeat 1..100000");
    char err[FR_ERR_LEN];
    struct recognizer *r;
    if (recognizer_open(cli_models_dir(), &ro, &r, err)) return cli_error("%s", err);
    int status = 0;
    if (json) printf("{\"threads\":%d,\"photos\":[", ro.threads);
    for (int i = first; i < argc && !status; i++) {
        if (isatty(STDERR_FILENO)) /* progress, erased by the next line on stdout or stderr */
            fprintf(stderr, "\rbench: photo %d/%d %s\033[K\r", i - first + 1, argc - first, argv[i]);
        struct buf file;
        buf_init(&file, 64u << 20);
        int unread = buf_read_file(&file, argv[i], err);
        if (unread || file.len == 0) {
            status = unread ? cli_error("%s", err) : cli_error("%s: empty file", argv[i]);
            buf_free(&file);
            break;
        }
        const uint8_t *bytes = (const uint8_t *)file.data;
        long len = (long)file.len;
        double *t = calloc((size_t)repeat * 9, sizeof *t);
        int faces = 0, w = 0, h = 0, props = 0, refined = 0;
        for (int it = -2; it < repeat && !status; it++) {
            struct image img = {0};
            struct recognition res;
            double t0 = now_ms();
            int rc = recognizer_decode(r, bytes, (size_t)len, NULL, &img, err);
            double t1 = now_ms();
            if (!rc) rc = recognizer_run(r, &img, 0, &res, err);
            double t2 = now_ms();
            if (rc) {
                status = cli_error("%s: %s", argv[i], err);
            } else if (it >= 0) {
                t[it] = t1 - t0, t[repeat + it] = res.t.detect, t[2 * repeat + it] = res.t.align_embed;
                t[3 * repeat + it] = t2 - t0;
                struct mtcnn_timing mt;
                recognizer_detect_timing(r, &mt);
                t[4 * repeat + it] = mt.prepare, t[5 * repeat + it] = mt.pnet;
                t[6 * repeat + it] = mt.crops, t[7 * repeat + it] = mt.rnet;
                t[8 * repeat + it] = mt.onet;
                props = mt.proposals, refined = mt.refined;
                faces = res.n, w = img.w, h = img.h;
            }
            if (!rc) recognition_free(&res);
            image_free(&img);
        }
        if (!status) {
            double dec = median(t, repeat), det = median(t + repeat, repeat);
            double emb = median(t + 2 * repeat, repeat), tot = median(t + 3 * repeat, repeat);
            if (json)
                printf("%s{\"file\":\"%s\",\"width\":%d,\"height\":%d,\"faces\":%d,"
                       "\"decode_ms\":%.3f,\"detect_ms\":%.3f,\"align_embed_ms\":%.3f,"
                       "\"total_ms\":%.3f,\"photos_per_s\":%.2f}",
                       i > first ? "," : "", argv[i], w, h, faces, dec, det, emb, tot, 1000.0 / tot);
            else
                printf("%s: %dx%d, %d face%s: decode %.2f ms, detect %.2f ms, align+embed %.2f ms, "
                       "total %.2f ms (%.1f photos/s, median of %d)\n",
                       argv[i], w, h, faces, faces == 1 ? "" : "s", dec, det, emb, tot, 1000.0 / tot,
                       repeat);
            if (!json)
                printf("  detect stages: pyramid %.2f ms, P-Net %.2f, crops %.2f, R-Net %.2f "
                       "(with crops), O-Net %.2f (with crops); %d proposals, %d refined\n",
                       median(t + 4 * repeat, repeat), median(t + 5 * repeat, repeat),
                       median(t + 6 * repeat, repeat), median(t + 7 * repeat, repeat),
                       median(t + 8 * repeat, repeat), props, refined);
        }
        free(t);
        buf_free(&file);
    }
    if (json && !status) printf("]}\n");
    recognizer_close(r);
    return status;
}

static int bench_fit(int argc, char **argv)
{
    int w, h;
    if (argc != 3 || sscanf(argv[1], "%dx%d", &w, &h) != 2 || w < 16 || h < 16 || w > 8192 || h > 8192)
        return cli_usage("bench", "fit takes IMAGE WxH OUT.jpg, W and H in 16..8192");
    char err[FR_ERR_LEN];
    struct image img = {0};
    if (image_load_file(argv[0], NULL, &img, err)) return cli_error("%s", err);
    /* the largest centred rectangle of the target's aspect */
    double sw = img.w, sh = (double)img.w * h / w;
    if (sh > img.h) sh = img.h, sw = (double)img.h * w / h;
    double x0 = (img.w - sw) / 2, y0 = (img.h - sh) / 2;
    float *f = malloc((size_t)w * h * 3 * sizeof(float));
    struct image out = {w, h, malloc((size_t)w * h * 3)};
    struct warp_src src = warp_src_image(&img);
    int rc = f && out.px ? warp_resize(&src, x0, y0, x0 + sw, y0 + sh, w, h, 0, f) : FR_ENOMEM;
    for (size_t i = 0; !rc && i < (size_t)w * h * 3; i++) {
        float v = f[i] * 128.0f + 127.5f + 0.5f;
        out.px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    uint8_t *jpg = NULL;
    size_t len = 0;
    if (!rc) rc = image_encode_jpeg(&out, 90, &jpg, &len, err);
    FILE *o = rc ? NULL : fopen(argv[2], "wb");
    if (!rc && (!o || fwrite(jpg, 1, len, o) != len)) rc = FR_EIO;
    if (o && fclose(o) != 0) rc = FR_EIO;
    free(jpg), free(f), free(out.px);
    image_free(&img);
    if (rc) return cli_error("%s: cannot make the photo (%s)", argv[2], fr_strerror(rc));
    return 0;
}

int cli_bench(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "fit")) return bench_fit(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "nn")) return bench_nn(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "pipeline")) return bench_pipeline(argc - 2, argv + 2);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(bench_usage, stdout);
        return 0;
    }
    if (argc < 2) return cli_usage("bench", "which benchmark: nn, pipeline or fit?");
    return cli_usage("bench", "unknown benchmark '%s' (nn, pipeline or fit)", argv[1]);
}
