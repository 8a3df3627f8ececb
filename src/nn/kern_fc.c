/* kern_fc.c: a fully connected layer + PReLU, in AVX-512.
 *
 * Outputs lie in the lanes, in groups of G = 64 (4 vectors) whose weights are stored
 * input-major and contiguous ([group][I][64]): a unit streams one group's weights once and,
 * per input, broadcasts that input of up to MR rows into 4 * MR sums held in registers. */
#include "nn/kern_fc.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

#define LANES 16
#define GV 4            /* vectors per output group */
#define G (GV * LANES)  /* outputs per group */
#define MR 6            /* rows per block (x 4 vectors: 24 sums) */

struct nn_fc {
    int in, out;
    int rows, I, O;      /* input [rows][I], output [rows][O] */
    float *w;            /* [O / G][I][G] */
    float *bias, *slope; /* [O] */
};

void nn_fc_free(struct nn_fc *f)
{
    if (!f) return;
    free(f->w);
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

static int is_const(const struct nn_graph *g, int t)
{
    return t >= 0 && g->tensors[t].data && g->tensors[t].type == NN_F32;
}

int nn_fc_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                const char *taken, int n, struct nn_fc **out, int nodes[2], int *count)
{
    *out = NULL;
    *count = 0;
    const struct nn_node *nd = &g->nodes[n];
    if (taken[n] || nd->op != NN_OP_FULLY_CONNECTED || nd->act != NN_ACT_NONE ||
        !is_const(g, nd->in[1]) || (nd->nin > 2 && nd->in[2] >= 0 && !is_const(g, nd->in[2])))
        return 0;
    const struct nn_shape *ws = &g->tensors[nd->in[1]].shape, *ys = &shapes[nd->out];
    if (ws->ndim != 2 || ys->ndim != 2 || ws->d[0] % G || ys->d[1] != ws->d[0] ||
        readers[nd->out] != 1)
        return 0;
    int p = -1; /* the only reader: a PReLU of per-output slopes */
    for (int m = n + 1; m < g->nnodes && p < 0; m++)
        for (int i = 0; i < g->nodes[m].nin; i++)
            if (g->nodes[m].in[i] == nd->out) p = i == 0 && !taken[m] ? m : g->nnodes;
    if (p < 0 || p >= g->nnodes) return 0;
    const struct nn_node *pn = &g->nodes[p];
    if (pn->op != NN_OP_PRELU || pn->nin < 2 || !is_const(g, pn->in[1]) ||
        nn_shape_count(&shapes[pn->in[1]]) != ws->d[0])
        return 0;
    struct nn_fc *f = calloc(1, sizeof *f);
    if (!f) return FR_ENOMEM;
    f->in = nd->in[0], f->out = pn->out;
    f->rows = ys->d[0], f->O = ws->d[0], f->I = ws->d[1];
    f->w = nn_alloc_aligned((size_t)f->O * f->I * sizeof(float));
    f->bias = nn_alloc_aligned((size_t)f->O * sizeof(float));
    f->slope = nn_alloc_aligned((size_t)f->O * sizeof(float));
    if (!f->w || !f->bias || !f->slope) {
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
    nodes[0] = n, nodes[1] = p;
    *count = 2;
    *out = f;
    return 1;
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
    for (int v = 0; v < GV; v++) {
        int o = gi * G + v * LANES;
        __m512 sl = _mm512_load_ps(f->slope + o);
        for (int m = 0; m < M; m++) {
            __m512 t = a[m][v];
            t = _mm512_mask_mul_ps(t, _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_LT_OQ), t,
                                   sl);
            _mm512_storeu_ps(y + (size_t)(r0 + m) * f->O + o, t);
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
    int groups = f->O / G;
    for (int u = u0; u < u1; u++) {
        int r0 = u / groups * MR, gi = u % groups;
        int M = f->rows - r0 < MR ? f->rows - r0 : MR;
        tiles[M](f, x, y, r0, gi);
    }
}
