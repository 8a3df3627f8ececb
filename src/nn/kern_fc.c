/* kern_fc.c: a fully connected layer + PReLU, in AVX-512.
 *
 * Outputs lie in the lanes, in groups of G = 64 (4 vectors) whose weights are stored
 * input-major and contiguous ([group][I][64]): a unit streams one group's weights once and,
 * per input, broadcasts that input of up to MR rows into 4 * MR sums held in registers.
 * With bfloat16 products the weights are pairs of inputs ([group][I / 2][64][2], half the
 * bytes to stream) and a block's rows are converted once, on the stack: per crop, alternated
 * runs, R-Net's layer 0.8-1.1 -> 0.5-0.6 us, O-Net's 4.1-4.7 -> 2.9-3.7 us. */
#include "nn/kern_fc.h"
#include "nn/simd.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GV 4            /* vectors per output group */
#define G (GV * LANES)  /* outputs per group */
#define MR 6            /* rows per block (x 4 vectors: 24 sums) */
#define MAX_I 2048      /* bfloat16: inputs of a row (its block is converted on the stack) */

struct nn_fc {
    int in, out;
    int rows, I, O;      /* input [rows][I], output [rows][O] */
    float *w;            /* [O / G][I][G] */
    uint16_t *wb;        /* bfloat16 products: [O / G][I2][G][2], I2 = input pairs */
    int I2;
    float *bias, *slope; /* [O] */
};

void nn_fc_free(struct nn_fc *f)
{
    if (!f) return;
    free(f->w);
    free(f->wb);
    free(f->bias);
    free(f->slope);
    free(f);
}

int nn_fc_input(const struct nn_fc *f)
{
    return f->in;
}

int nn_fc_output(const struct nn_fc *f)
{
    return f->out;
}

int nn_fc_units(const struct nn_fc *f)
{
    return (f->rows + MR - 1) / MR * (f->O / G);
}

int nn_fc_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                const char *taken, int n, int bf16, struct nn_fc **out, int nodes[2], int *count)
{
    *out = NULL;
    *count = 0;
    const struct nn_node *nd = &g->nodes[n];
    if (taken[n] || nd->op != NN_OP_FULLY_CONNECTED || nd->act != NN_ACT_NONE ||
        !nn_graph_const_f32(g, nd->in[1]) || (nd->nin > 2 && nd->in[2] >= 0 && !nn_graph_const_f32(g, nd->in[2])))
        return 0;
    const struct nn_shape *ws = &g->tensors[nd->in[1]].shape, *ys = &shapes[nd->out];
    if (ws->ndim != 2 || ys->ndim != 2 || ws->d[0] % G || ys->d[1] != ws->d[0] ||
        readers[nd->out] != 1 || (bf16 && ws->d[1] > MAX_I))
        return 0;
    int p = -1; /* the only reader: a PReLU of per-output slopes */
    for (int m = n + 1; m < g->nnodes && p < 0; m++)
        for (int i = 0; i < g->nodes[m].nin; i++)
            if (g->nodes[m].in[i] == nd->out) p = i == 0 && !taken[m] ? m : g->nnodes;
    if (p < 0 || p >= g->nnodes) return 0;
    const struct nn_node *pn = &g->nodes[p];
    if (pn->op != NN_OP_PRELU || pn->nin < 2 || !nn_graph_const_f32(g, pn->in[1]) ||
        nn_shape_count(&shapes[pn->in[1]]) != ws->d[0])
        return 0;
    struct nn_fc *f = calloc(1, sizeof *f);
    if (!f) return FR_ENOMEM;
    f->in = nd->in[0], f->out = pn->out;
    f->rows = ys->d[0], f->O = ws->d[0], f->I = ws->d[1];
    f->w = nn_alloc_aligned((size_t)f->O * f->I * sizeof(float));
    f->bias = nn_alloc_aligned((size_t)f->O * sizeof(float));
    f->slope = nn_alloc_aligned((size_t)f->O * sizeof(float));
    f->I2 = (f->I + 1) / 2;
    size_t nb = (size_t)f->O * f->I2 * 2;
    if (bf16) f->wb = nn_alloc_aligned(nb * sizeof(uint16_t));
    if (!f->w || !f->bias || !f->slope || (bf16 && !f->wb)) {
        nn_fc_free(f);
        return FR_ENOMEM;
    }
    const float *w = g->tensors[nd->in[1]].data; /* [O][I] */
    const float *b = nd->nin > 2 && nd->in[2] >= 0 ? g->tensors[nd->in[2]].data : NULL;
    for (int o = 0; o < f->O; o++) {
        for (int i = 0; i < f->I; i++)
            f->w[((size_t)(o / G) * f->I + i) * G + o % G] = w[(size_t)o * f->I + i];
        f->bias[o] = b ? b[o] : 0.0f;
        f->slope[o] = ((const float *)g->tensors[pn->in[1]].data)[o];
    }
    if (bf16) { /* input i of output o: pair i / 2, element i % 2 (an odd I's last pair half 0) */
        memset(f->wb, 0, nb * sizeof(uint16_t));
        for (int o = 0; o < f->O; o++)
            for (int i = 0; i < f->I; i++)
                f->wb[(((size_t)(o / G) * f->I2 + i / 2) * G + o % G) * 2 + i % 2] =
                    nn_to_bf16(w[(size_t)o * f->I + i]);
    }
    nodes[0] = n, nodes[1] = p;
    *count = 2;
    *out = f;
    return 1;
}

/* A block's sums a[M][GV] (outputs gi * G onwards of rows r0 ..), PReLU applied, into y. */
AVX512 INLINE void store_block(const struct nn_fc *f, __m512 a[MR][GV], float *y, int r0, int gi,
                               int M)
{
    for (int v = 0; v < GV; v++) {
        int o = gi * G + v * LANES;
        __m512 sl = _mm512_load_ps(f->slope + o);
        for (int m = 0; m < M; m++)
            _mm512_storeu_ps(y + (size_t)(r0 + m) * f->O + o, prelu(a[m][v], sl));
    }
}

/* Rows r0 .. r0 + M - 1, outputs of group gi. */
AVX512 INLINE void tile(const struct nn_fc *f, const float *x, float *y, int r0, int gi, int M)
{
    const int I = f->I;
    const float *wp = f->w + (size_t)gi * I * G, *xp = x + (size_t)r0 * I;
    __m512 a[MR][GV];
    for (int v = 0; v < GV; v++) {
        __m512 b = _mm512_load_ps(f->bias + gi * G + v * LANES);
        for (int m = 0; m < M; m++)
            a[m][v] = b;
    }
    for (int i = 0; i < I; i++, wp += G) {
        __m512 w[GV];
        for (int v = 0; v < GV; v++)
            w[v] = _mm512_load_ps(wp + v * LANES);
        for (int m = 0; m < M; m++) {
            __m512 s = _mm512_set1_ps(xp[(size_t)m * I + i]);
            for (int v = 0; v < GV; v++)
                a[m][v] = _mm512_fmadd_ps(s, w[v], a[m][v]);
        }
    }
    store_block(f, a, y, r0, gi, M);
}

/* As tile, with bfloat16 products: xb holds the block's M rows in bfloat16 (I2 pairs each). */
AVX512BF16 INLINE void tile_bf16(const struct nn_fc *f, const uint16_t *xb, float *y, int r0,
                                 int gi, int M)
{
    const int I2 = f->I2;
    const uint16_t *wp = f->wb + (size_t)gi * I2 * G * 2;
    __m512 a[MR][GV];
    for (int v = 0; v < GV; v++) {
        __m512 b = _mm512_load_ps(f->bias + gi * G + v * LANES);
        for (int m = 0; m < M; m++)
            a[m][v] = b;
    }
    for (int p = 0; p < I2; p++, wp += G * 2) {
        __m512bh w[GV];
        for (int v = 0; v < GV; v++)
            w[v] = (__m512bh)_mm512_load_si512(wp + v * LANES * 2);
        for (int m = 0; m < M; m++) {
            __m512bh s = (__m512bh)_mm512_broadcastd_epi32(
                _mm_loadu_si32(xb + ((size_t)m * I2 + p) * 2));
            for (int v = 0; v < GV; v++)
                a[m][v] = _mm512_dpbf16_ps(a[m][v], s, w[v]);
        }
    }
    store_block(f, a, y, r0, gi, M);
}

typedef void tile_bf16_fn(const struct nn_fc *f, const uint16_t *xb, float *y, int r0, int gi);
#define TILE_BF16(M)                                                                               \
    AVX512BF16 static void tile_bf16_##M(const struct nn_fc *f, const uint16_t *xb, float *y,      \
                                         int r0, int gi)                                           \
    {                                                                                              \
        tile_bf16(f, xb, y, r0, gi, M);                                                            \
    }
TILE_BF16(1) TILE_BF16(2) TILE_BF16(3) TILE_BF16(4) TILE_BF16(5) TILE_BF16(6)
static tile_bf16_fn *const tiles_bf16[MR + 1] = {NULL,          tile_bf16_1, tile_bf16_2,
                                                 tile_bf16_3,   tile_bf16_4, tile_bf16_5,
                                                 tile_bf16_6};

/* Rows r0 .. r0 + M - 1 of x into bfloat16 pairs at xb (an odd I's last pair padded with 0). */
AVX512BF16 static void rows_bf16(const struct nn_fc *f, const float *x, int r0, int M,
                                 uint16_t *xb)
{
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)(r0 + m) * f->I;
        uint16_t *yr = xb + (size_t)m * f->I2 * 2;
        int i = 0;
        for (; i + 16 <= f->I; i += 16)
            _mm256_storeu_si256((__m256i *)(yr + i),
                                (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(xr + i)));
        if (i < f->I2 * 2) { /* the rest, and an odd I's zero */
            uint16_t t[16];
            __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << (f->I - i)) - 1), xr + i);
            _mm256_storeu_si256((__m256i *)t, (__m256i)_mm512_cvtneps_pbh(v));
            memcpy(yr + i, t, (size_t)(f->I2 * 2 - i) * sizeof *t);
        }
    }
}

typedef void tile_fn(const struct nn_fc *f, const float *x, float *y, int r0, int gi);
#define TILE(M)                                                                                    \
    AVX512 static void tile_##M(const struct nn_fc *f, const float *x, float *y, int r0, int gi)  \
    {                                                                                              \
        tile(f, x, y, r0, gi, M);                                                                  \
    }
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)
static tile_fn *const tiles[MR + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

void nn_fc_run(const struct nn_fc *f, const float *x, float *y, int u0, int u1)
{
    int groups = f->O / G, converted = -1;
    uint16_t xb[MR * MAX_I]; /* bfloat16: the current block's rows */
    for (int u = u0; u < u1; u++) {
        int r0 = u / groups * MR, gi = u % groups;
        int M = f->rows - r0 < MR ? f->rows - r0 : MR;
        if (!f->wb) {
            tiles[M](f, x, y, r0, gi);
            continue;
        }
        if (converted != r0) rows_bf16(f, x, r0, M, xb), converted = r0;
        tiles_bf16[M](f, xb, y, r0, gi);
    }
}
