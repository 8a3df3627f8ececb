/* test_warp: warp_resize against a plain double-precision area average / bilinear reference,
 * for u8 and float sources, rectangles inside the source (the fused vertical pass) and past its
 * edges (black), transposed outputs with a pitch, crops the size of MTCNN's; and its errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vision/warp.h"

/* The source value at (x, y), normalised; black outside. */
static double at(const struct warp_src *s, int x, int y, int c)
{
    if (x < 0 || y < 0 || x >= s->w || y >= s->h) return (0 - 127.5) / 128;
    size_t i = ((size_t)y * s->w + x) * 3 + c;
    return s->u8 ? (s->u8[i] - 127.5) / 128 : s->f32[i];
}

/* Weight of source pixel k for destination i of d over [a, b): area overlap when shrinking,
 * bilinear at the pixel centre when enlarging. */
static double weight(double a, double b, int d, int i, int k)
{
    double s = (b - a) / d;
    if (s <= 1.0) {
        double c = a + (i + 0.5) * s - 0.5, f = floor(c);
        if (k == (int)f) return 1 - (c - f);
        if (k == (int)f + 1) return c - f;
        return 0;
    }
    double lo = a + i * s, hi = lo + s;
    double cover = fmin(hi, k + 1.0) - fmax(lo, (double)k);
    return cover > 0 ? cover / s : 0;
}

static double ref(const struct warp_src *s, double x0, double y0, double x1, double y1, int dw,
                  int dh, int i, int j, int c)
{
    double v = 0;
    for (int y = (int)floor(y0) - 2; y <= (int)ceil(y1) + 2; y++) {
        double wy = weight(y0, y1, dh, j, y);
        if (wy == 0) continue;
        for (int x = (int)floor(x0) - 2; x <= (int)ceil(x1) + 2; x++) {
            double wx = weight(x0, x1, dw, i, x);
            if (wx != 0) v += wy * wx * at(s, x, y, c);
        }
    }
    return v;
}

/* Resamples and compares every output with ref; the pixels between rows (pitch) untouched. */
static void check_resize(const struct warp_src *s, double x0, double y0, double x1, double y1,
                         int dw, int dh, int transpose, int pitch, const char *what)
{
    int rows = transpose ? dw : dh;
    size_t n = (size_t)rows * pitch * 3;
    float *out = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        out[i] = 1234.5f;
    int rc = warp_resize_pitch(s, x0, y0, x1, y1, dw, dh, transpose, pitch, out);
    CHECK_MSG(rc == 0, "%s: rc %d", what, rc);
    double worst = 0;
    int untouched = 1;
    for (int j = 0; j < dh; j++)
        for (int i = 0; i < dw; i++)
            for (int c = 0; c < 3; c++) {
                size_t o = (transpose ? (size_t)i * pitch + j : (size_t)j * pitch + i) * 3 + c;
                double d = fabs(out[o] - ref(s, x0, y0, x1, y1, dw, dh, i, j, c));
                worst = d > worst ? d : worst;
            }
    for (int r = 0; r < rows; r++)
        for (size_t k = (size_t)(transpose ? dh : dw) * 3; k < (size_t)pitch * 3; k++)
            untouched &= out[(size_t)r * pitch * 3 + k] == 1234.5f;
    CHECK_MSG(worst < 2e-5, "%s: differs from the reference by %g", what, worst);
    CHECK_MSG(untouched, "%s: wrote between rows", what);
    free(out);
}

static void test_resize(void)
{
    int w = 157, h = 203;
    uint8_t *u = malloc((size_t)w * h * 3);
    float *f = malloc((size_t)w * h * 3 * sizeof(float));
    unsigned r = 12345;
    for (int i = 0; i < w * h * 3; i++) {
        r = r * 1103515245u + 12345u;
        u[i] = (uint8_t)(r >> 16);
        f[i] = (u[i] - 127.5f) / 128;
    }
    struct warp_src su = {w, h, u, NULL}, sf = {w, h, NULL, f};
    const struct warp_src *srcs[2] = {&su, &sf};
    for (int k = 0; k < 2; k++) {
        const struct warp_src *s = srcs[k];
        char what[96];
        /* MTCNN-sized crops inside the source: shrink 2-3x, odd offsets */
        for (int t = 0; t < 6; t++) {
            double x = 3.3 + 17.1 * t, y = 5.7 + 23.9 * t, side = 50 + 5.3 * t;
            int size = t & 1 ? 48 : 24;
            if (size == 48) side *= 2;
            if (x + side > w) x = w - side - 0.25;
            if (y + side > h) y = h - side - 0.5;
            snprintf(what, sizeof what, "%s crop %d inside", k ? "f32" : "u8", t);
            check_resize(s, x, y, x + side, y + side, size, size, t & 2 ? 1 : 0, size, what);
        }
        /* past the edges: black comes in */
        snprintf(what, sizeof what, "%s crop past the top left", k ? "f32" : "u8");
        check_resize(s, -20.5, -7.25, 40, 53.25, 24, 24, 1, 24, what);
        snprintf(what, sizeof what, "%s crop past the bottom right", k ? "f32" : "u8");
        check_resize(s, w - 30.5, h - 20, w + 31, h + 41.5, 24, 24, 0, 24, what);
        /* pyramid levels: the whole source at 0.709, transposed into a pitch; enlarging */
        snprintf(what, sizeof what, "%s level", k ? "f32" : "u8");
        check_resize(s, 0, 0, w, h, 111, 144, 1, 150, what);
        snprintf(what, sizeof what, "%s level, rows", k ? "f32" : "u8");
        check_resize(s, 0, 0, w, h, 111, 144, 0, 117, what);
        snprintf(what, sizeof what, "%s enlarged", k ? "f32" : "u8");
        check_resize(s, 10.5, 20, 30, 41, 48, 48, 0, 48, what);
        snprintf(what, sizeof what, "%s shrunk 9x", k ? "f32" : "u8");
        check_resize(s, 0, 0, w, h, 17, 22, 0, 17, what);
    }
    free(u);
    free(f);
}

static void test_errors(void)
{
    uint8_t px[3 * 4] = {0};
    struct warp_src s = {2, 2, px, NULL};
    float out[3 * 16];
    CHECK(warp_resize(&s, 0, 0, 0, 2, 2, 2, 0, out) == FR_EINVAL);
    CHECK(warp_resize(&s, 0, 0, 2, 2, 0, 2, 0, out) == FR_EINVAL);
    CHECK(warp_resize(&s, 0, 0, NAN, 2, 2, 2, 0, out) == FR_EINVAL);
    CHECK(warp_resize(&s, -1e300, 0, 2, 2, 2, 2, 0, out) == FR_EINVAL);
    CHECK(warp_resize(&s, 0, 0, 2, 1e12, 2, 2, 0, out) == FR_EINVAL);
    CHECK(warp_resize_pitch(&s, 0, 0, 2, 2, 4, 2, 0, 3, out) == FR_EINVAL);
    CHECK(warp_resize(&s, 0, 0, 2, 2, 4, 4, 0, out) == 0);
}

int main(void)
{
    test_resize();
    test_errors();
    return check_done();
}
