/* kern_small.c: a convolution on a small picture + PReLU + max pool, in AVX-512.
 *
 * Output channels lie in the lanes (NB = 1 to 4 vectors of 16 per pixel), output pixels in
 * blocks of B (up to 12) whose sums for up to 2 vectors stay in registers: per kernel tap and
 * input channel, the weight vectors are loaded once and each of the B input values is broadcast
 * into one multiply-add per vector. A row of OW pixels is cut into blocks of equal size, the last
 * one overlapping the one before when they do not divide it (its pixels are computed twice,
 * identically). The colour kind (3 channels, 3 wide) broadcasts each input value once into every
 * window that covers it. The wide kind goes over a row once per 2 vectors of outputs, so that
 * those weights (37 KB of O-Net's second layer) stay in L1: 100 -> 87 us for that layer, which
 * took XNNPACK 104 us plus 3 us for the pool.
 *
 * Convolution rows go to a ring of PKH rows (the pool window's height) in the part's scratch;
 * a pooled row takes the maximum over its window of the rows in the ring, computing those it
 * lacks. When every slope is >= 0 the PReLU is monotone and commutes with the maximum, so it is
 * applied to the pooled pixels only (a quarter of the work, the same results bit for bit);
 * otherwise to every convolution output first.
 *
 * With bfloat16 products the crop is first converted whole (per part, when a unit reaches a new
 * crop), and a window row's 9 products are 5 VDPBF16PS. Whole bf16 nets per crop, fastest of
 * alternated runs on a loaded machine: O-Net 81.9 -> 75.2 us, R-Net 11.7 -> 10.6 us; their
 * golden outputs move from 4.6e-3 to 6.6e-3 (O-Net) and 1.4e-3 to 5.3e-3 (R-Net) of their
 * range. */
#include "nn/kern_small.h"
#include "nn/simd.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NB 4      /* vectors of outputs per pixel: at most 64 outputs */
#define PASS_NB 2     /* of them per pass over a row (the wide kind; 3 or 4 with fewer pixels
                         per block were no faster) */
#define MAX_B 12      /* pixels per block (x 2 vectors: 24 sums in registers) */
#define MIN_B 4       /* narrower rows are not claimed */
#define MAX_C 64      /* input channels of the wide kind */
#define MAX_K 3       /* its window */
#define C 3           /* the colour kind: input channels, */
#define KW 3          /* window width (any height) */
#define MAX_POOL_H 8  /* pool window rows: the ring */
#define PAIRS ((KW * C + 1) / 2) /* bfloat16: a window row's products in pairs (the last one
                                    half zero) */

struct nn_small {
    int in, out;
    int N, H, W, Ci;             /* input */
    int KH, KWi, O, NB, V;       /* window, outputs, their vectors and lanes (V = NB * 16) */
    int wide;                    /* not the colour kind: any Ci, KWi, float32 products */
    int OH, OW;                  /* convolution output */
    int PKH, PKW, psh, psw, ppt, ppl, PH, PW; /* the pool: window, stride, padding before, size */
    int post;                    /* PReLU after the pool (every slope >= 0) */
    int B, nblk;                 /* pixels per block, blocks per row */
    float *w;                    /* [ky][kx][c][V] */
    float *bias, *slope;         /* [V]; zero bias, slope 1 in unused lanes */
    uint16_t *wb;                /* bfloat16 products: [ky][pair][NB][16 outputs][2] */
    float *ring;                 /* per part: PKH rows of OW * V floats, then (bf16) the input
                                    image in bfloat16, H * W * C + 2 values */
    size_t part_floats, ring_floats;
    int parts;
};

void nn_small_free(struct nn_small *s)
{
    if (!s) return;
    free(s->w);
    free(s->bias);
    free(s->slope);
    free(s->wb);
    free(s->ring);
    free(s);
}

int nn_small_input(const struct nn_small *s)
{
    return s->in;
}

int nn_small_output(const struct nn_small *s)
{
    return s->out;
}

int nn_small_rows(const struct nn_small *s)
{
    return s->N * s->PH;
}

/* ---- claiming ---- */

int nn_small_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                   const char *taken, int n, int bf16, struct nn_small **out, int nodes[3],
                   int *count)
{
    *out = NULL;
    *count = 0;
    const struct nn_node *nd = &g->nodes[n];
    if (taken[n] || nd->op != NN_OP_CONV_2D || nd->act != NN_ACT_NONE || nd->stride_h != 1 ||
        nd->stride_w != 1 || nd->dil_h != 1 || nd->dil_w != 1 || !nn_graph_const_f32(g, nd->in[1]) ||
        (nd->nin > 2 && nd->in[2] >= 0 && !nn_graph_const_f32(g, nd->in[2])))
        return 0;
    const struct nn_shape *xs = &shapes[nd->in[0]], *ys = &shapes[nd->out];
    const struct nn_shape *ws = &g->tensors[nd->in[1]].shape;
    if (xs->ndim != 4 || ys->ndim != 4 || ws->ndim != 4) return 0;
    int O = ys->d[3], KH = ws->d[1], Ci = xs->d[3], KWi = ws->d[2];
    /* the colour kind (3x3 or k x 3 of 3 channels, up to 32 outputs), or in float32 the wide
     * kind (up to 3x3 of up to 64 channels, up to 64 outputs) */
    int colour = Ci == C && KWi == KW && O <= 2 * LANES;
    if (!colour && (bf16 || Ci > MAX_C || KWi > MAX_K || KH > MAX_K)) return 0;
    /* no padding: every window inside the input */
    if (O < 16 || O > MAX_NB * LANES || ws->d[0] != O || ws->d[3] != Ci ||
        ys->d[1] != xs->d[1] - KH + 1 || ys->d[2] != xs->d[2] - KWi + 1 || ys->d[2] < MIN_B)
        return 0;
    int p = nn_graph_sole_reader(g, readers, taken, n, nd->out);
    if (p < 0) return 0;
    const struct nn_node *pn = &g->nodes[p];
    if (pn->op != NN_OP_PRELU || pn->nin < 2 || !nn_graph_const_f32(g, pn->in[1]) ||
        shapes[pn->in[1]].ndim != 1 || shapes[pn->in[1]].d[0] != O)
        return 0;
    int q = nn_graph_sole_reader(g, readers, taken, p, pn->out);
    if (q < 0) return 0;
    const struct nn_node *qn = &g->nodes[q];
    const struct nn_shape *ps = &shapes[qn->out];
    if (qn->op != NN_OP_MAX_POOL_2D || qn->act != NN_ACT_NONE || ps->ndim != 4 ||
        qn->filter_h < 1 || qn->filter_h > MAX_POOL_H || qn->filter_w < 1 || qn->stride_h < 1 ||
        qn->stride_w < 1 || ps->d[1] < 1 || ps->d[2] < 1)
        return 0;

    struct nn_small *s = calloc(1, sizeof *s);
    if (!s) return FR_ENOMEM;
    s->in = nd->in[0], s->out = qn->out;
    s->N = xs->d[0], s->H = xs->d[1], s->W = xs->d[2], s->Ci = Ci;
    s->KH = KH, s->KWi = KWi, s->wide = !colour, s->O = O, s->NB = (O + LANES - 1) / LANES, s->V = s->NB * LANES;
    s->OH = ys->d[1], s->OW = ys->d[2];
    s->PKH = qn->filter_h, s->PKW = qn->filter_w, s->psh = qn->stride_h, s->psw = qn->stride_w;
    s->PH = ps->d[1], s->PW = ps->d[2];
    int after;
    nn_window_pads(s->OH, s->PH, s->PKH, s->psh, 1, qn->pad, &s->ppt, &after);
    nn_window_pads(s->OW, s->PW, s->PKW, s->psw, 1, qn->pad, &s->ppl, &after);
    s->nblk = (s->OW + MAX_B - 1) / MAX_B;
    s->B = (s->OW + s->nblk - 1) / s->nblk;
    size_t nw = (size_t)KH * KWi * Ci * s->V, nb = (size_t)KH * PAIRS * s->V * 2;
    s->w = nn_alloc_aligned(nw * sizeof(float));
    s->bias = nn_alloc_aligned((size_t)s->V * sizeof(float));
    s->slope = nn_alloc_aligned((size_t)s->V * sizeof(float));
    if (bf16) s->wb = nn_alloc_aligned(nb * sizeof(uint16_t));
    if (!s->w || !s->bias || !s->slope || (bf16 && !s->wb) || nn_small_set_parts(s, 1)) {
        nn_small_free(s);
        return FR_ENOMEM;
    }
    memset(s->w, 0, nw * sizeof(float));
    const float *w = g->tensors[nd->in[1]].data; /* [O][KH][KW][C]: taps are contiguous */
    const float *b = nd->nin > 2 && nd->in[2] >= 0 ? g->tensors[nd->in[2]].data : NULL;
    const float *sl = g->tensors[pn->in[1]].data;
    int taps = KH * KWi * Ci;
    s->post = 1;
    for (int o = 0; o < s->V; o++) {
        s->bias[o] = b && o < O ? b[o] : 0.0f;
        s->slope[o] = o < O ? sl[o] : 1.0f;
        s->post &= !(s->slope[o] < 0.0f);
        for (int t = 0; o < O && t < taps; t++)
            s->w[(size_t)t * s->V + o] = w[(size_t)o * taps + t];
    }
    if (bf16) { /* tap t = kx * C + c of window row ky: pair t / 2, element t % 2 */
        memset(s->wb, 0, nb * sizeof(uint16_t));
        for (int ky = 0; ky < KH; ky++)
            for (int t = 0; t < KW * C; t++)
                for (int o = 0; o < O; o++)
                    s->wb[(((size_t)ky * PAIRS + t / 2) * s->V + o) * 2 + t % 2] =
                        nn_to_bf16(s->w[((size_t)ky * KW * C + t) * s->V + o]);
    }
    nodes[0] = n, nodes[1] = p, nodes[2] = q;
    *count = 3;
    *out = s;
    return 1;
}

int nn_small_set_parts(struct nn_small *s, int parts)
{
    if (parts < 1) parts = 1;
    if (parts <= s->parts) return 0;
    size_t ring = (size_t)s->PKH * s->OW * s->V, per = ring;
    if (s->wb) /* the image in bfloat16 (two values past it: the last pair's zero half) */
        per += ((size_t)s->H * s->W * C + 2 + 31) / 32 * 16;
    float *r = nn_alloc_aligned((size_t)parts * per * sizeof(float));
    if (!r) return FR_ENOMEM;
    memset(r, 0, (size_t)parts * per * sizeof(float));
    free(s->ring);
    s->ring = r;
    s->part_floats = per, s->ring_floats = ring;
    s->parts = parts;
    return 0;
}

/* ---- running ---- */

/* A block's sums (B pixels x NB vectors of outputs) start at the bias. */
AVX512 INLINE void start_sums(const struct nn_small *s, __m512 a[MAX_B][MAX_NB], int B, int NB)
{
#pragma GCC unroll 2
    for (int h = 0; h < NB; h++) {
        __m512 b = _mm512_load_ps(s->bias + h * LANES);
#pragma GCC unroll 12
        for (int j = 0; j < B; j++)
            a[j][h] = b;
    }
}

/* ... and end in y (B * NB * 16 floats), PReLU'd unless the pool comes first. */
AVX512 INLINE void store_sums(const struct nn_small *s, __m512 a[MAX_B][MAX_NB], float *y, int B,
                              int NB)
{
    const int V = NB * LANES;
#pragma GCC unroll 2
    for (int h = 0; h < NB; h++) {
        __m512 sl = _mm512_load_ps(s->slope + h * LANES);
#pragma GCC unroll 12
        for (int j = 0; j < B; j++)
            _mm512_store_ps(y + (size_t)j * V + h * LANES, s->post ? a[j][h] : prelu(a[j][h], sl));
    }
}

/* B output pixels from x (the input at the block's first window) into y (B * V floats):
 * bias + the window's products, PReLU'd unless it comes after the pool. */
AVX512 INLINE void block(const struct nn_small *s, const float *x, float *y, int B, int NB)
{
    const int row = KW * C, V = NB * LANES;
    const size_t xrow = (size_t)s->W * C;
    __m512 a[MAX_B][MAX_NB];
    start_sums(s, a, B, NB);
    const float *wp = s->w;
    for (int ky = 0; ky < s->KH; ky++, x += xrow, wp += row * V) {
#pragma GCC unroll 3
        for (int c = 0; c < C; c++) {
            /* each input value once, into every output whose window covers it */
            __m512 wv[KW][MAX_NB];
#pragma GCC unroll 3
            for (int kx = 0; kx < KW; kx++)
#pragma GCC unroll 2
                for (int h = 0; h < NB; h++)
                    wv[kx][h] = _mm512_load_ps(wp + (kx * C + c) * V + h * LANES);
#pragma GCC unroll 14
            for (int i = 0; i < B + KW - 1; i++) {
                __m512 v = _mm512_set1_ps(x[i * C + c]);
#pragma GCC unroll 3
                for (int kx = 0; kx < KW; kx++) {
                    int j = i - kx;
                    if (j < 0 || j >= B) continue;
#pragma GCC unroll 2
                    for (int h = 0; h < NB; h++)
                        a[j][h] = _mm512_fmadd_ps(v, wv[kx][h], a[j][h]);
                }
            }
        }
    }
    store_sums(s, a, y, B, NB);
}

/* As block, from the image in bfloat16 (xb at the block's first window): a window row's 9
 * values are 5 pairs, each broadcast into one VDPBF16PS per vector of outputs (the 10th value,
 * the next pixel's, meets a zero weight). */
AVX512BF16 INLINE void block_bf16(const struct nn_small *s, const uint16_t *xb, float *y, int B,
                                  int NB)
{
    const int V = NB * LANES;
    const size_t xrow = (size_t)s->W * C;
    __m512 a[MAX_B][MAX_NB];
    start_sums(s, a, B, NB);
    const uint16_t *wp = s->wb;
    for (int ky = 0; ky < s->KH; ky++, xb += xrow) {
        for (int p = 0; p < PAIRS; p++, wp += V * 2) {
            /* pixel j's pair p is pixel j + 2's pair p - 3: hidden from the compiler, whose
             * reuse of such loads across pairs spilled the sums */
            const uint16_t *q = xb + 2 * p;
            __asm__("" : "+r"(q));
            __m512bh wv[MAX_NB];
#pragma GCC unroll 2
            for (int h = 0; h < NB; h++)
                wv[h] = (__m512bh)_mm512_load_si512(wp + h * LANES * 2);
#pragma GCC unroll 12
            for (int j = 0; j < B; j++) {
                __m512bh v = (__m512bh)_mm512_broadcastd_epi32(_mm_loadu_si32(q + j * C));
#pragma GCC unroll 2
                for (int h = 0; h < NB; h++)
                    a[j][h] = _mm512_dpbf16_ps(a[j][h], v, wv[h]);
            }
        }
    }
    store_sums(s, a, y, B, NB);
}

/* The wide kind: outputs [32 * pass, + 16 * NB) of B pixels, from x at the block's first
 * window, into y (the ring row at the block's first pixel). Per tap and input channel, NB
 * weight vectors and B broadcasts feed B * NB multiply-adds. */
AVX512 INLINE void block_wide(const struct nn_small *s, const float *x, float *y, int pass, int B,
                              int NB)
{
    const int Ci = s->Ci, V = s->V, o0 = pass * PASS_NB * LANES;
    __m512 a[MAX_B][PASS_NB];
#pragma GCC unroll 2
    for (int h = 0; h < NB; h++) {
        __m512 b = _mm512_load_ps(s->bias + o0 + h * LANES);
#pragma GCC unroll 12
        for (int j = 0; j < B; j++)
            a[j][h] = b;
    }
    const float *wp = s->w + o0;
    for (int ky = 0; ky < s->KH; ky++)
        for (int kx = 0; kx < s->KWi; kx++) {
            const float *xp = x + ((size_t)ky * s->W + kx) * Ci;
            for (int c = 0; c < Ci; c++, wp += V) {
                __m512 wv[PASS_NB];
#pragma GCC unroll 2
                for (int h = 0; h < NB; h++)
                    wv[h] = _mm512_load_ps(wp + h * LANES);
#pragma GCC unroll 12
                for (int j = 0; j < B; j++) {
                    __m512 v = _mm512_set1_ps(xp[(size_t)j * Ci + c]);
#pragma GCC unroll 2
                    for (int h = 0; h < NB; h++)
                        a[j][h] = _mm512_fmadd_ps(v, wv[h], a[j][h]);
                }
            }
        }
#pragma GCC unroll 2
    for (int h = 0; h < NB; h++) {
        __m512 sl = _mm512_load_ps(s->slope + o0 + h * LANES);
#pragma GCC unroll 12
        for (int j = 0; j < B; j++)
            _mm512_store_ps(y + (size_t)j * V + o0 + h * LANES,
                            s->post ? a[j][h] : prelu(a[j][h], sl));
    }
}

typedef void wide_fn(const struct nn_small *s, const float *x, float *y, int pass);
#define WIDE(B, NB)                                                                                \
    AVX512 static void wide_##B##_##NB(const struct nn_small *s, const float *x, float *y,         \
                                       int pass)                                                   \
    {                                                                                              \
        block_wide(s, x, y, pass, B, NB);                                                          \
    }
#define WIDES(B) WIDE(B, 1) WIDE(B, 2)
WIDES(4) WIDES(5) WIDES(6) WIDES(7) WIDES(8) WIDES(9) WIDES(10) WIDES(11) WIDES(12)
#define ROW_WIDE(B) {wide_##B##_1, wide_##B##_2}
static wide_fn *const wides[MAX_B + 1][PASS_NB] = {
    [4] = ROW_WIDE(4),   [5] = ROW_WIDE(5),   [6] = ROW_WIDE(6),
    [7] = ROW_WIDE(7),   [8] = ROW_WIDE(8),   [9] = ROW_WIDE(9),
    [10] = ROW_WIDE(10), [11] = ROW_WIDE(11), [12] = ROW_WIDE(12)};

typedef void block_fn(const struct nn_small *s, const float *x, float *y);

#define BLOCK(B, NB)                                                                               \
    AVX512 static void block_##B##_##NB(const struct nn_small *s, const float *x, float *y)        \
    {                                                                                              \
        block(s, x, y, B, NB);                                                                     \
    }
#define BLOCKS(B) BLOCK(B, 1) BLOCK(B, 2)
BLOCKS(4) BLOCKS(5) BLOCKS(6) BLOCKS(7) BLOCKS(8) BLOCKS(9) BLOCKS(10) BLOCKS(11) BLOCKS(12)
#define ROW(B) {block_##B##_1, block_##B##_2}
static block_fn *const blocks[MAX_B + 1][MAX_NB] = {
    [4] = ROW(4), [5] = ROW(5), [6] = ROW(6), [7] = ROW(7), [8] = ROW(8),
    [9] = ROW(9), [10] = ROW(10), [11] = ROW(11), [12] = ROW(12)};

typedef void block_bf16_fn(const struct nn_small *s, const uint16_t *xb, float *y);

#define BLOCK_BF16(B, NB)                                                                          \
    AVX512BF16 static void block_bf16_##B##_##NB(const struct nn_small *s, const uint16_t *xb,     \
                                                 float *y)                                         \
    {                                                                                              \
        block_bf16(s, xb, y, B, NB);                                                               \
    }
#define BLOCKS_BF16(B) BLOCK_BF16(B, 1) BLOCK_BF16(B, 2)
BLOCKS_BF16(4) BLOCKS_BF16(5) BLOCKS_BF16(6) BLOCKS_BF16(7) BLOCKS_BF16(8) BLOCKS_BF16(9)
BLOCKS_BF16(10) BLOCKS_BF16(11) BLOCKS_BF16(12)
#define ROW_BF16(B) {block_bf16_##B##_1, block_bf16_##B##_2}
static block_bf16_fn *const blocks_bf16[MAX_B + 1][MAX_NB] = {
    [4] = ROW_BF16(4),   [5] = ROW_BF16(5),   [6] = ROW_BF16(6),
    [7] = ROW_BF16(7),   [8] = ROW_BF16(8),   [9] = ROW_BF16(9),
    [10] = ROW_BF16(10), [11] = ROW_BF16(11), [12] = ROW_BF16(12)};

/* Image n of x into bfloat16 at xb (H * W * C values; the two after them stay zero). */
AVX512BF16 static void image_bf16(const struct nn_small *s, const float *x, int n, uint16_t *xb)
{
    size_t len = (size_t)s->H * s->W * C, i = 0;
    x += (size_t)n * len;
    for (; i + 16 <= len; i += 16)
        _mm256_storeu_si256((__m256i *)(xb + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    if (i < len) {
        uint16_t t[16];
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps((__mmask16)((1u << (len - i)) - 1), x + i));
        _mm256_storeu_si256((__m256i *)t, (__m256i)v);
        memcpy(xb + i, t, (len - i) * sizeof *t);
    }
}

/* Convolution row oy of image n into y (OW * V floats): from x, or with bfloat16 products
 * from xb (image n in bfloat16). */
static void conv_row(const struct nn_small *s, const float *x, const uint16_t *xb, int n, int oy,
                     float *y)
{
    /* the wide kind: pass by pass over the row, so that one pass's weights stay in L1 */
    for (int pass = 0; s->wide && pass * PASS_NB < s->NB; pass++) {
        int nb = s->NB - pass * PASS_NB < PASS_NB ? s->NB - pass * PASS_NB : PASS_NB;
        for (int i = 0; i < s->nblk; i++) {
            int ox = i * s->B;
            if (ox + s->B > s->OW) ox = s->OW - s->B; /* the last block overlaps */
            wides[s->B][nb - 1](s, x + (((size_t)n * s->H + oy) * s->W + ox) * s->Ci,
                                y + (size_t)ox * s->V, pass);
        }
    }
    for (int i = 0; !s->wide && i < s->nblk; i++) {
        int ox = i * s->B;
        if (ox + s->B > s->OW) ox = s->OW - s->B; /* the last block overlaps */
        if (xb)
            blocks_bf16[s->B][s->NB - 1](s, xb + ((size_t)oy * s->W + ox) * C,
                                         y + (size_t)ox * s->V);
        else
            blocks[s->B][s->NB - 1](s, x + (((size_t)n * s->H + oy) * s->W + ox) * C,
                                    y + (size_t)ox * s->V);
    }
}

AVX512 void nn_small_run(const struct nn_small *s, const float *x, float *y, int u0, int u1,
                         int part)
{
    const int V = s->V, O = s->O;
    float *ring = s->ring + (size_t)part * s->part_floats;
    const size_t rs = (size_t)s->OW * V; /* floats per ring row */
    uint16_t *xb = s->wb ? (uint16_t *)(ring + s->ring_floats) : NULL;
    int tag[MAX_POOL_H]; /* which row (n * OH + oy) each slot holds */
    for (int i = 0; i < s->PKH; i++)
        tag[i] = -1;
    for (int u = u0, img = -1; u < u1; u++) {
        int n = u / s->PH, py = u % s->PH;
        if (xb && n != img) image_bf16(s, x, img = n, xb);
        int r0 = py * s->psh - s->ppt, r1 = r0 + s->PKH;
        if (r0 < 0) r0 = 0;
        if (r1 > s->OH) r1 = s->OH;
        for (int r = r0; r < r1; r++) {
            int slot = r % s->PKH;
            if (tag[slot] != n * s->OH + r) {
                conv_row(s, x, xb, n, r, ring + (size_t)slot * rs);
                tag[slot] = n * s->OH + r;
            }
        }
        const float *rows[MAX_POOL_H];
        int nr = r1 - r0;
        for (int k = 0; k < nr; k++)
            rows[k] = ring + (size_t)((r0 + k) % s->PKH) * rs;
        float *yr = y + ((size_t)n * s->PH + py) * s->PW * O;
        for (int h = 0; h < s->NB; h++) {
            int o0 = h * LANES;
            __mmask16 m = O - o0 >= LANES ? 0xffff : (__mmask16)((1u << (O - o0)) - 1);
            __m512 sl = _mm512_load_ps(s->slope + o0);
            for (int px = 0; px < s->PW; px++) {
                int c0 = px * s->psw - s->ppl, c1 = c0 + s->PKW;
                if (c0 < 0) c0 = 0;
                if (c1 > s->OW) c1 = s->OW;
                size_t at = (size_t)c0 * V + o0;
                __m512 v;
                if (nr == 3 && c1 - c0 == 3) { /* a whole 3x3 window (R-Net's and O-Net's) */
                    __m512 t[3];
                    for (int k = 0; k < 3; k++)
                        t[k] = _mm512_max_ps(_mm512_max_ps(_mm512_load_ps(rows[k] + at),
                                                           _mm512_load_ps(rows[k] + at + V)),
                                             _mm512_load_ps(rows[k] + at + 2 * V));
                    v = _mm512_max_ps(_mm512_max_ps(t[0], t[1]), t[2]);
                } else {
                    v = _mm512_set1_ps(-__builtin_inff());
                    for (int k = 0; k < nr; k++)
                        for (int c = 0; c < c1 - c0; c++)
                            v = _mm512_max_ps(v, _mm512_load_ps(rows[k] + at + (size_t)c * V));
                }
                if (s->post) v = prelu(v, sl);
                if (m == 0xffff)
                    _mm512_storeu_ps(yr + (size_t)px * O + o0, v);
                else
                    _mm512_mask_storeu_ps(yr + (size_t)px * O + o0, m, v);
            }
        }
    }
}
