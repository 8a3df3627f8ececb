/* warp.c: separable area/bilinear resampling and the face alignment warp. */
#include "vision/warp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#define NORM(p) (((float)(p) - 127.5f) * 0.0078125f)
#define BLACK NORM(0)

const float warp_face_template[10] = {38.2946f, 51.6963f, 73.5318f, 51.5014f, 56.0252f,
                                      71.7366f, 41.5493f, 92.3655f, 70.7299f, 92.2041f};

struct warp_src warp_src_image(const struct image *img)
{
    return (struct warp_src){img->w, img->h, img->px, NULL};
}

/* Taps of one axis: for destination i, source indices first[i] .. first[i] + count[i] - 1 with
 * weights w[i * maxtaps + k]. Indices outside [0, n) are kept: they read as black. */
struct taps {
    int maxtaps;
    int *first, *count;
    float *w;
};

static void taps_free(struct taps *t)
{
    free(t->first);
    free(t->count);
    free(t->w);
    t->first = t->count = NULL, t->w = NULL; /* taps_make's failure path frees, then its caller */
}

/* (int)floor(v) for |v| < 2^31 without a libm call (the baseline x86-64 has no rounding
 * instruction; crops make hundreds of taps per photo). */
static inline int floor_int(double v)
{
    int i = (int)v; /* truncates toward zero */
    return v < i ? i - 1 : i;
}

static int taps_make(struct taps *t, double a, double b, int d)
{
    double s = (b - a) / d; /* source pixels per destination pixel */
    t->maxtaps = s > 1.0 ? (int)ceil(s) + 2 : 2;
    t->first = malloc((size_t)d * sizeof(int));
    t->count = malloc((size_t)d * sizeof(int));
    t->w = calloc((size_t)d * (size_t)t->maxtaps, sizeof(float));
    if (!t->first || !t->count || !t->w) {
        taps_free(t);
        return FR_ENOMEM;
    }
    for (int i = 0; i < d; i++) {
        float *w = t->w + (size_t)i * t->maxtaps;
        if (s <= 1.0) { /* bilinear at the destination pixel's centre */
            double c = a + (i + 0.5) * s - 0.5;
            double f = floor_int(c);
            t->first[i] = (int)f;
            t->count[i] = 2;
            w[0] = (float)(1.0 - (c - f));
            w[1] = (float)(c - f);
        } else { /* average of the covered interval [lo, hi) */
            double lo = a + i * s, hi = lo + s;
            int first = floor_int(lo), n = 0;
            for (int k = first; k < hi && n < t->maxtaps; k++, n++) {
                double end = hi < k + 1.0 ? hi : k + 1.0, start = lo > k ? lo : (double)k;
                w[n] = (float)((end - start) / s);
            }
            t->first[i] = first;
            t->count[i] = n;
        }
    }
    return 0;
}

/* Vector-width clones of the vertical pass (the same operations in the same order at every
 * width, so results do not depend on the CPU; no FMA: ISO C mode does not contract). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* acc[i] += w * x[i] */
CLONES static void axpy_f32(float *restrict acc, const float *restrict x, float w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * x[i];
}

/* acc[i] += w * NORM(p[i]) */
CLONES static void axpy_u8(float *restrict acc, const uint8_t *restrict p, float w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * NORM(p[i]);
}

/* acc[i] += w * BLACK */
static void axpy_black(float *acc, float w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        acc[i] += w * BLACK;
}

/* acc[0 .. 3 * (x1 - x0)) += w * source row y over columns x0 .. x1 - 1 (black outside). */
static void add_row(const struct warp_src *src, int y, int x0, int x1, float w, float *acc)
{
    int in0 = x0 < 0 ? 0 : x0, in1 = x1 > src->w ? src->w : x1;
    if (y < 0 || y >= src->h || in0 >= in1) in0 = in1 = x1; /* all outside */
    axpy_black(acc, w, (size_t)(in0 - x0) * 3);
    float *o = acc + (size_t)(in0 - x0) * 3;
    size_t n = (size_t)(in1 - in0) * 3;
    if (src->u8) axpy_u8(o, src->u8 + ((size_t)y * src->w + in0) * 3, w, n);
    else if (n) axpy_f32(o, src->f32 + ((size_t)y * src->w + in0) * 3, w, n);
    axpy_black(o + n, w, (size_t)(x1 - in1) * 3);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_VSUM 1
#define VSUM_MAX 8 /* source rows one fused vertical pass takes */
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

static int vsum_usable(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

static inline __mmask16 tail_mask(size_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* 16 values of a source row from index i as normalised floats (m: which are read); u8 rows
 * normalised as NORM does. */
AVX512 static inline __attribute__((always_inline)) __m512 load16(const void *row, size_t i,
                                                                  __mmask16 m, int u8)
{
    if (u8) {
        __m128i b = _mm_maskz_loadu_epi8(m, (const uint8_t *)row + i);
        __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
        return _mm512_mul_ps(_mm512_sub_ps(f, _mm512_set1_ps(127.5f)), _mm512_set1_ps(0.0078125f));
    }
    const float *p = (const float *)row + i;
    return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

AVX512 static inline __attribute__((always_inline)) void
vsum_rows(float *acc, const void *const *rows, const float *w, int count, size_t n, int u8)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) { /* two vectors per broadcast weight */
        __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
        for (int k = 0; k < count; k++) {
            __m512 wk = _mm512_set1_ps(w[k]);
            v0 = _mm512_add_ps(v0, _mm512_mul_ps(wk, load16(rows[k], i, 0xffff, u8)));
            v1 = _mm512_add_ps(v1, _mm512_mul_ps(wk, load16(rows[k], i + 16, 0xffff, u8)));
        }
        _mm512_storeu_ps(acc + i, v0);
        _mm512_storeu_ps(acc + i + 16, v1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_setzero_ps();
        for (int k = 0; k < count; k++)
            v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(w[k]), load16(rows[k], i, m, u8)));
        _mm512_mask_storeu_ps(acc + i, m, v);
    }
}

/* The vertical pass in one sweep when every row lies inside the source: acc[i] = sum over
 * k < count of w[k] * rows[k][i] (u8 rows: bytes, normalised; else floats), summed from 0 in k
 * order with separate multiply and add, exactly the sums memset + add_row make (one write of
 * acc instead of count + 1). With taps made without libm calls, minimums of alternated runs
 * here: a 24x24 crop 3.6 -> 2.1 us, 48x48 10 -> 6.7 us, a 0.709 pyramid step of a 300x400 float
 * level 0.16 -> 0.12 ms. Tried and dropped: taps on the stack instead of malloc (no gain), four
 * outputs per vector in the horizontal pass (128-bit inserts: 2.1 -> 2.5 us per crop on this
 * Zen 4). */
AVX512 static void vsum(float *acc, const void *const *rows, const float *w, int count, size_t n,
                        int u8)
{
    if (u8) vsum_rows(acc, rows, w, count, n, 1); /* each a specialised copy */
    else vsum_rows(acc, rows, w, count, n, 0);
}
#endif

/* Horizontal pass of one row: o[i] = sum over k < nt of wx[i][k] * acc pixel first[i] + k
 * (r, g and b at once), outputs ostep floats apart. Every output reads nt taps, those past its
 * count having weight 0 over finite sums (or zeroed padding), so the sums equal the count-long
 * ones; a constant nt lets the compiler unroll without a mispredicted branch per output. */
static inline void hpass(const float *acc, const struct taps *tx, int cx0, int dw, int nt,
                         float *o, size_t ostep)
{
    for (int i = 0; i < dw; i++, o += ostep) {
        const float *wx = tx->w + (size_t)i * tx->maxtaps;
        const float *a = acc + (size_t)(tx->first[i] - cx0) * 3;
#ifdef __SSE2__
        /* r, g, b (and a lane of the next pixel, unused) at once */
        __m128 v = _mm_setzero_ps();
        for (int k = 0; k < nt; k++)
            v = _mm_add_ps(v, _mm_mul_ps(_mm_set1_ps(wx[k]), _mm_loadu_ps(a + 3 * k)));
        _mm_storel_pi((__m64 *)o, v);
        _mm_store_ss(o + 2, _mm_movehl_ps(v, v));
#else
        float r = 0, g = 0, b = 0;
        for (int k = 0; k < nt; k++) {
            r += wx[k] * a[3 * k], g += wx[k] * a[3 * k + 1], b += wx[k] * a[3 * k + 2];
        }
        o[0] = r, o[1] = g, o[2] = b;
#endif
    }
}

int warp_resize(const struct warp_src *src, double x0, double y0, double x1, double y1, int dw,
                int dh, int transpose, float *dst)
{
    return warp_resize_pitch(src, x0, y0, x1, y1, dw, dh, transpose, transpose ? dh : dw, dst);
}

int warp_resize_pitch(const struct warp_src *src, double x0, double y0, double x1, double y1,
                      int dw, int dh, int transpose, int pitch, float *dst)
{
    if (dw <= 0 || dh <= 0 || !(x1 > x0) || !(y1 > y0) || src->w <= 0 || src->h <= 0 ||
        pitch < (transpose ? dh : dw))
        return FR_EINVAL;
    if (!(fabs(x0) < WARP_MAX_COORD && fabs(x1) < WARP_MAX_COORD && fabs(y0) < WARP_MAX_COORD &&
          fabs(y1) < WARP_MAX_COORD))
        return FR_EINVAL; /* taps index source pixels with ints */
    struct taps tx = {0}, ty = {0};
    if (taps_make(&tx, x0, x1, dw) || taps_make(&ty, y0, y1, dh)) {
        taps_free(&tx);
        return FR_ENOMEM;
    }
    /* columns the horizontal taps touch */
    int cx0 = tx.first[0], cx1 = tx.first[dw - 1] + tx.count[dw - 1];
    size_t span = (size_t)(cx1 - cx0);
    int nt = 0; /* taps the horizontal pass reads for every output (zero weights past a count) */
    for (int i = 0; i < dw; i++)
        nt = tx.count[i] > nt ? tx.count[i] : nt;
    size_t alen = (span + (size_t)nt) * 3 + 1; /* + nt: those reads; + 1: 4-lane reads */
    float *acc = malloc(alen * sizeof(float));
    int rc = acc ? 0 : FR_ENOMEM;
    if (acc) memset(acc, 0, alen * sizeof(float)); /* the padding stays zero */
#ifdef HAVE_VSUM
    int fast = cx0 >= 0 && cx1 <= src->w && vsum_usable(); /* columns inside: fused rows */
#endif
    size_t ostep = transpose ? (size_t)pitch * 3 : 3; /* between horizontally adjacent outputs */
    for (int j = 0; j < dh && !rc; j++) {
        /* vertical pass: weighted sum of the source rows into acc */
        const float *wy = ty.w + (size_t)j * ty.maxtaps;
        int fy = ty.first[j], cy = ty.count[j];
#ifdef HAVE_VSUM
        if (fast && fy >= 0 && fy + cy <= src->h && cy <= VSUM_MAX) {
            const void *rows[VSUM_MAX];
            size_t bpp = src->u8 ? 3 : 3 * sizeof(float);
            const char *base = src->u8 ? (const char *)src->u8 : (const char *)src->f32;
            for (int k = 0; k < cy; k++)
                rows[k] = base + ((size_t)(fy + k) * src->w + cx0) * bpp;
            vsum(acc, rows, wy, cy, span * 3, src->u8 != NULL);
        } else
#endif
        {
            memset(acc, 0, alen * sizeof(float));
            for (int k = 0; k < cy; k++)
                add_row(src, fy + k, cx0, cx1, wy[k], acc);
        }
        /* horizontal pass */
        float *o = dst + (transpose ? (size_t)j : (size_t)j * pitch) * 3;
        switch (nt) { /* a constant tap count: unrolled, no branch per tap */
        case 2: hpass(acc, &tx, cx0, dw, 2, o, ostep); break;
        case 3: hpass(acc, &tx, cx0, dw, 3, o, ostep); break;
        case 4: hpass(acc, &tx, cx0, dw, 4, o, ostep); break;
        case 5: hpass(acc, &tx, cx0, dw, 5, o, ostep); break;
        case 6: hpass(acc, &tx, cx0, dw, 6, o, ostep); break;
        default: hpass(acc, &tx, cx0, dw, nt, o, ostep); break;
        }
    }
    free(acc);
    taps_free(&tx);
    taps_free(&ty);
    return rc;
}

int warp_similarity(const float *src, const float *dst, int n, double m[6])
{
    /* Umeyama for 2-D similarity: centre both sets, a = sum(x.u + y.v), b = sum(x.v - y.u),
     * scale*rotation = (a, b) / sum |p|^2. */
    double sx = 0, sy = 0, dx = 0, dy = 0;
    for (int i = 0; i < n; i++) {
        sx += src[2 * i], sy += src[2 * i + 1], dx += dst[2 * i], dy += dst[2 * i + 1];
    }
    sx /= n, sy /= n, dx /= n, dy /= n;
    double a = 0, b = 0, norm = 0;
    for (int i = 0; i < n; i++) {
        double x = src[2 * i] - sx, y = src[2 * i + 1] - sy;
        double u = dst[2 * i] - dx, v = dst[2 * i + 1] - dy;
        a += x * u + y * v;
        b += x * v - y * u;
        norm += x * x + y * y;
    }
    if (!(norm > 1e-9) || !isfinite(a) || !isfinite(b)) return FR_EINVAL;
    double c = a / norm, s = b / norm;
    m[0] = c, m[1] = -s, m[2] = dx - (c * sx - s * sy);
    m[3] = s, m[4] = c, m[5] = dy - (s * sx + c * sy);
    return 0;
}

/* floorf(v) without a libm call (the baseline x86-64 has no rounding instruction). */
static inline float floor_fast(float v)
{
    if (!(v > -1e9f && v < 1e9f)) return floorf(v);
    int i = (int)v; /* truncates toward zero */
    return (float)(v < (float)i ? i - 1 : i);
}

/* Bilinear sample of a normalised float source at (x, y); black outside. */
static void sample_f32(const struct warp_src *src, float x, float y, float *rgb)
{
    float fx = floor_fast(x), fy = floor_fast(y), ax = x - fx, ay = y - fy;
    int x0 = (int)fx, y0 = (int)fy;
    rgb[0] = rgb[1] = rgb[2] = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            float w = (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay);
            if (xx < 0 || yy < 0 || xx >= src->w || yy >= src->h) {
                rgb[0] += w * BLACK, rgb[1] += w * BLACK, rgb[2] += w * BLACK;
                continue;
            }
            const float *p = src->f32 + ((size_t)yy * src->w + xx) * 3;
            rgb[0] += w * p[0], rgb[1] += w * p[1], rgb[2] += w * p[2];
        }
}

/* Bilinear sample of the u8 image at (x, y), normalised; black outside. */
static void sample_u8(const struct image *img, float x, float y, float *rgb)
{
    float fx = floor_fast(x), fy = floor_fast(y), ax = x - fx, ay = y - fy;
    int x0 = (int)fx, y0 = (int)fy;
#ifdef __SSE2__
    if (fx >= 0 && fy >= 0 && fx < img->w - 1 && fy < img->h - 1) {
        /* all four pixels inside: the three channels at once, the same sums in the same order */
        const uint8_t *p = img->px + ((size_t)y0 * img->w + x0) * 3;
        size_t row = (size_t)img->w * 3;
        const uint8_t *q[4] = {p, p + 3, p + row, p + row + 3};
        float w[4] = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
        __m128 acc = _mm_setzero_ps();
        for (int k = 0; k < 4; k++) {
            uint32_t v = (uint32_t)q[k][0] | (uint32_t)q[k][1] << 8 | (uint32_t)q[k][2] << 16;
            __m128i b = _mm_cvtsi32_si128((int)v), z = _mm_setzero_si128();
            __m128 f = _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(b, z), z));
            acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(w[k]), f));
        }
        acc = _mm_mul_ps(_mm_sub_ps(acc, _mm_set1_ps(127.5f)), _mm_set1_ps(0.0078125f));
        _mm_storel_pi((__m64 *)rgb, acc);
        _mm_store_ss(rgb + 2, _mm_movehl_ps(acc, acc));
        return;
    }
#endif
    float acc[3] = {0, 0, 0};
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx >= img->w || yy >= img->h) continue; /* black: p = 0 */
            float w = (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay);
            const uint8_t *p = img->px + ((size_t)yy * img->w + xx) * 3;
            acc[0] += w * p[0], acc[1] += w * p[1], acc[2] += w * p[2];
        }
    rgb[0] = NORM(acc[0]), rgb[1] = NORM(acc[1]), rgb[2] = NORM(acc[2]);
}

int warp_affine(const struct image *img, const double m[6], int size, float *dst)
{
    /* inverse of [c -s tx; s c ty]: output pixel -> image coordinates */
    double det = m[0] * m[4] - m[1] * m[3];
    if (!(fabs(det) > 1e-12)) return FR_EINVAL;
    double i0 = m[4] / det, i1 = -m[1] / det, i3 = -m[3] / det, i4 = m[0] / det;
    double i2 = -(i0 * m[2] + i1 * m[5]), i5 = -(i3 * m[2] + i4 * m[5]);
    double shrink = sqrt(fabs(det)); /* output pixels per image pixel */
    if (shrink >= 0.5) {
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                sample_u8(img, (float)(i0 * x + i1 * y + i2), (float)(i3 * x + i4 * y + i5),
                          dst + ((size_t)y * size + x) * 3);
        return 0;
    }
    /* Shrinking by 2x or more: first average the face's area down to 4/3 of the output scale
     * (separable, cheap), then warp that bilinearly, so every image pixel counts once. */
    double bx0 = INFINITY, by0 = INFINITY, bx1 = -INFINITY, by1 = -INFINITY;
    for (int c = 0; c < 4; c++) {
        double ox = c & 1 ? size : -1, oy = c & 2 ? size : -1;
        double ix = i0 * ox + i1 * oy + i2, iy = i3 * ox + i4 * oy + i5;
        bx0 = fmin(bx0, ix), bx1 = fmax(bx1, ix), by0 = fmin(by0, iy), by1 = fmax(by1, iy);
    }
    bx0 = floor(bx0), by0 = floor(by0), bx1 = ceil(bx1), by1 = ceil(by1);
    double p = shrink / 0.75; /* temp pixels per image pixel */
    int tw = (int)ceil((bx1 - bx0) * p), th = (int)ceil((by1 - by0) * p);
    if (tw < 1 || th < 1 || (int64_t)tw * th > (int64_t)16 * size * size) return FR_EINVAL;
    float *tmp = malloc((size_t)tw * th * 3 * sizeof(float));
    if (!tmp) return FR_ENOMEM;
    struct warp_src src = warp_src_image(img);
    double px = tw / (bx1 - bx0), py = th / (by1 - by0); /* actual, after rounding */
    int rc = warp_resize(&src, bx0, by0, bx1, by1, tw, th, 0, tmp);
    if (rc) {
        free(tmp);
        return rc;
    }
    /* image coordinate u maps to temp coordinate (u - bx0 + 0.5) * px - 0.5 */
    struct warp_src t = {tw, th, NULL, tmp};
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double ix = i0 * x + i1 * y + i2, iy = i3 * x + i4 * y + i5;
            sample_f32(&t, (float)((ix - bx0 + 0.5) * px - 0.5), (float)((iy - by0 + 0.5) * py - 0.5),
                       dst + ((size_t)y * size + x) * 3);
        }
    free(tmp);
    return 0;
}
