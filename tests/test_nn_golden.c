/* test_nn_golden: every face model reproduces the independent reference outputs in
 * ../shared/golden within 1e-4 (max abs error / max abs reference), on XNNPACK with the engine's
 * own kernels and without them, on the reference kernels (fused and as the file spells it), and
 * with two threads; and with their convolutions in bfloat16 products (where the CPU has them,
 * as the pipeline runs them) within 2e-2, MobileFaceNet's embeddings within cosine 0.9999. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "check.h"
#include "nn/nn.h"

#define GOLDEN "../shared/golden"

/* A float32 file and its number of values. */
static float *read_all(const char *path, size_t *n)
{
    float *buf = check_read_file(path, n);
    *n /= sizeof(float);
    return buf;
}

struct model {
    const char *name;
    struct nn_shape in;
    int nout;
};

static void check_model(const char *dir, const struct model *m, const struct nn_opts *opts,
                        const char *label)
{
    const double tol = opts->bf16 ? 2e-2 : 1e-4;
    char path[512], err[FR_ERR_LEN];
    size_t n;
    snprintf(path, sizeof path, GOLDEN "/%s.in.f32", m->name);
    float *in = read_all(path, &n);
    CHECK_MSG(in && n == (size_t)nn_shape_count(&m->in), "%s", path);
    snprintf(path, sizeof path, "%s/%s.tflite", dir, m->name);
    struct nn_net *net = NULL;
    int rc = nn_net_open(path, opts, &net, err);
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    struct nn_output out[NN_MAX_IO];
    if (in && net && nn_net_run(net, in, &m->in, out, err) == 0) {
        CHECK(nn_net_noutputs(net) == m->nout);
        for (int i = 0; i < m->nout; i++) {
            size_t rn;
            snprintf(path, sizeof path, GOLDEN "/%s.out%d.f32", m->name, i);
            float *ref = read_all(path, &rn);
            CHECK_MSG(ref && rn == (size_t)nn_shape_count(&out[i].shape), "%s size", path);
            if (ref && rn == (size_t)nn_shape_count(&out[i].shape)) {
                double maxerr = 0, maxref = 0, dot = 0, n0 = 0, n1 = 0;
                for (size_t k = 0; k < rn; k++) {
                    maxerr = fmax(maxerr, fabs((double)out[i].data[k] - ref[k]));
                    maxref = fmax(maxref, fabs((double)ref[k]));
                    dot += (double)out[i].data[k] * ref[k];
                    n0 += (double)out[i].data[k] * out[i].data[k], n1 += (double)ref[k] * ref[k];
                }
                double rel = maxerr / maxref;
                CHECK_MSG(rel <= tol, "%s out%d %s: relative error %.3g", m->name, i, label, rel);
                if (opts->bf16 && m->nout == 1) /* the embeddings, over both faces of the batch */
                    CHECK_MSG(dot / sqrt(n0 * n1) >= 0.9999, "%s %s: cosine %.6f", m->name, label,
                              dot / sqrt(n0 * n1));
                printf("%-14s out%d %-18s rel err %.2e\n", m->name, i, label, rel);
            }
            free(ref);
        }
    } else {
        CHECK_MSG(0, "%s %s: run failed: %s", m->name, label, err);
    }
    nn_net_close(net);
    free(in);
}

int main(void)
{
    FILE *probe = fopen(GOLDEN "/README.md", "r");
    if (!probe) return check_skip(GOLDEN " is absent: golden outputs not checked");
    fclose(probe);
    const char *dir = getenv("FACEREC_MODELS");
    if (!dir || !*dir) dir = "models";
    static const struct model models[] = {
        {"pnet", {4, {1, 384, 288, 3}}, 2},
        {"rnet", {4, {1, 24, 24, 3}}, 2},
        {"onet", {4, {1, 48, 48, 3}}, 3},
        {"MobileFaceNet", {4, {2, 112, 112, 3}}, 1},
    };
    const struct nn_opts xnn = {.threads = 1}, xnn2 = {.threads = 2};
    const struct nn_opts plain = {.threads = 1, .no_kernels = 1, .no_bands = 1};
    const struct nn_opts ref = {.backend = NN_BACKEND_REF};
    const struct nn_opts raw = {.backend = NN_BACKEND_REF, .no_fuse = 1};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        check_model(dir, &models[i], &xnn, "xnnpack");
        check_model(dir, &models[i], &xnn2, "xnnpack 2 threads");
        check_model(dir, &models[i], &plain, "xnnpack only");
        check_model(dir, &models[i], &ref, "reference fused");
        check_model(dir, &models[i], &raw, "reference unfused");
    }
    const struct nn_opts bf16 = {.threads = 1, .bf16 = 1}, bf16x2 = {.threads = 2, .bf16 = 1};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        check_model(dir, &models[i], &bf16, "bf16");
        check_model(dir, &models[i], &bf16x2, "bf16 2 threads");
    }
    return check_done();
}
