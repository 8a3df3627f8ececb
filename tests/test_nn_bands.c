/* test_nn_bands: a fully convolutional net (P-Net) run in horizontal bands gives the outputs it
 * gives in one piece, for tall inputs of odd and even heights, on one thread and on three (the
 * engine's kernels then split their rows unevenly over the pool). With AVX-512, P-Net is one
 * kernel that streams rows and is never banded (nn_plan_streams): the bands are checked on
 * XNNPACK alone too, and the kernel's rows split over three threads against one piece. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "nn/nn.h"

/* Each size through whole and both banded nets (xnn_only: the nets have no kernels). */
static void test_sizes(struct nn_net *whole, struct nn_net **banded, int xnn_only)
{
    char err[FR_ERR_LEN];
    static const int sizes[][2] = {{144, 100}, {150, 97}, {301, 203}, {384, 288}, {700, 33}, {645, 480}};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        struct nn_shape s = {4, {1, sizes[k][0], sizes[k][1], 3}};
        size_t n = (size_t)nn_shape_count(&s);
        float *x = malloc(n * sizeof(float));
        uint32_t r = 12345u + (uint32_t)k;
        for (size_t i = 0; i < n; i++)
            r = r * 1664525u + 1013904223u, x[i] = (float)(r >> 8) / 8388608.0f - 1.0f;
        struct nn_output a[NN_MAX_IO], b[NN_MAX_IO];
        CHECK(nn_net_run(whole, x, &s, a, err) == 0);
        /* copy before the second net runs: outputs live in each net */
        for (int o = 0; o < nn_net_noutputs(whole); o++) {
            size_t m = (size_t)nn_shape_count(&a[o].shape);
            float *keep = malloc(m * sizeof(float));
            for (size_t i = 0; i < m; i++)
                keep[i] = a[o].data[i];
            a[o].data = keep;
        }
        for (int t = 0; t < 2; t++) {
            CHECK(nn_net_run(banded[t], x, &s, b, err) == 0);
            for (int o = 0; o < nn_net_noutputs(whole); o++) {
                CHECK(nn_shape_equal(&a[o].shape, &b[o].shape));
                size_t m = (size_t)nn_shape_count(&a[o].shape);
                double maxerr = 0;
                for (size_t i = 0; i < m; i++)
                    maxerr = fmax(maxerr, fabs((double)a[o].data[i] - b[o].data[i]));
                CHECK_MSG(maxerr <= 1e-5, "%dx%d output %d, %d thread(s)%s: banded differs by %g",
                          sizes[k][0], sizes[k][1], o, t ? 3 : 1, xnn_only ? ", XNNPACK" : "",
                          maxerr);
            }
        }
        for (int o = 0; o < nn_net_noutputs(whole); o++)
            free((void *)a[o].data);
        free(x);
    }
}

int main(void)
{
    const char *dir = getenv("FACEREC_MODELS");
    char path[512], err[FR_ERR_LEN];
    snprintf(path, sizeof path, "%s/pnet.tflite", dir && *dir ? dir : "models");
    for (int xnn_only = 0; xnn_only < 2; xnn_only++) {
        struct nn_net *whole, *banded[2];
        struct nn_opts ow = {.threads = 1, .no_bands = 1, .no_kernels = xnn_only},
                       ob = {.threads = 1, .no_kernels = xnn_only},
                       ob3 = {.threads = 3, .no_kernels = xnn_only};
        if (nn_net_open(path, &ow, &whole, err))
            return check_skip("models are absent (make models)");
        CHECK(nn_net_open(path, &ob, &banded[0], err) == 0);
        CHECK(nn_net_open(path, &ob3, &banded[1], err) == 0);
        test_sizes(whole, banded, xnn_only);
        nn_net_close(whole);
        nn_net_close(banded[0]);
        nn_net_close(banded[1]);
    }
    return check_done();
}
