/* kern.c: depthwise and narrow convolutions with fused PReLU, in AVX-512.
 *
 * Both kernels walk the output row by row. Pixels whose window lies inside the input (the
 * interior) run blocked, several pixels at once so that independent accumulators hide the FMA
 * latency; the few border pixels run one at a time with the window clipped. The activation is a
 * per-lane PReLU slope (1 where there is none) followed by a per-lane clamp. */
#include "nn/kern.h"
#include "nn/simd.h"
#include "nn/kern_chain.h"
#include "nn/kern_fc.h"
#include "nn/kern_small.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(NN_CHAIN_MAX_NODES <= NN_KERN_MAX_NODES, "a chain's nodes fit a kernel's list");

#define DW3_BLOCK 8 /* output pixels per block of the 3x3 depthwise kernel */

#define CB_MR 12 /* output pixels per block of the bfloat16 convolutions (x 32 outputs: 24 sums) */

enum kind {
    KIND_DEPTHWISE,
    KIND_NARROW,
    KIND_POOL,
    KIND_POINTWISE,
    KIND_CONV_BF16,
    KIND_CHAIN,
    KIND_SMALL,
    KIND_FC
};

struct nn_kern {
    enum kind kind;
    int in, nout, out[2];
    int N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl;
    int Cp;                 /* depthwise: channels rounded up to 16 */
    float *w;               /* depthwise [KH*KW][Cp]; narrow [KH*KW*C][16] */
    float *bias;            /* [Cp] or [16] */
    float *slope, *lo, *hi; /* per channel or per lane, same lengths as bias */
    int O[2], off[2];       /* narrow: channels of each output and their first lane */
    int pool, PH, PW;       /* narrow: a fused 2x2 max pool (stride 2) and its output size */
    float *pre;             /* depthwise, pool: slopes of a PReLU applied to the input as it is
                               read */
    float *rows;            /* narrow: two activated output rows of 16 lanes per part (scratch) */
    int O1, C2;             /* bfloat16 kinds: outputs, input channel pairs */
    uint16_t *wb;           /* bfloat16 weights [ceil(O1/16)][KH*KW][C2][16 outputs][2 inputs] */
    uint16_t *xb;           /* pointwise: a block of CB_MR input pixels in bfloat16, per part;
                               conv: the padded input [N][Hp][Wp][C2][2] (zero borders and odd
                               channel) */
    int Hp, Wp;             /* conv: padded input height and width */
    int res;                /* bfloat16 kinds: the tensor added to the output (a residual
                               connection: the ADD after it is fused), or -1 */
    int parts;              /* pieces run at once on a thread pool (1: the caller's thread) */
    struct nn_chain *chain; /* chain: all of it (kern_chain.h) */
    struct nn_small *small; /* small: all of it (kern_small.h) */
    struct nn_fc *fc;       /* fc: all of it (kern_fc.h) */
};

int nn_kern_available(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int nn_kern_bf16_available(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

void nn_kern_free(struct nn_kern *k)
{
    if (!k) return;
    free(k->w);
    free(k->bias);
    free(k->slope);
    free(k->lo);
    free(k->hi);
    free(k->rows);
    free(k->pre);
    free(k->wb);
    free(k->xb);
    nn_chain_free(k->chain);
    nn_small_free(k->small);
    nn_fc_free(k->fc);
    free(k);
}

int nn_kern_inputs(const struct nn_kern *k, int in[2])
{
    if (k->chain) {
        in[0] = nn_chain_input(k->chain);
        return 1;
    }
    if (k->small || k->fc) {
        in[0] = k->small ? nn_small_input(k->small) : nn_fc_input(k->fc);
        return 1;
    }
    in[0] = k->in;
    if (k->kind != KIND_POINTWISE && k->kind != KIND_CONV_BF16) return 1;
    in[1] = k->res;
    return k->res >= 0 ? 2 : 1;
}

int nn_kern_outputs(const struct nn_kern *k, int out[2])
{
    if (k->chain) return nn_chain_outputs(k->chain, out);
    if (k->small || k->fc) {
        out[0] = k->small ? nn_small_output(k->small) : nn_fc_output(k->fc);
        return 1;
    }
    out[0] = k->out[0], out[1] = k->out[1];
    return k->nout;
}

/* ---- claiming ---- */

/* The PReLU node that is the only reader of tensor t (and t is no graph output), or -1. */
static int prelu_reader(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                        const char *taken, int after, int t)
{
    if (readers[t] != 1) return -1;
    for (int m = after + 1; m < g->nnodes; m++) {
        const struct nn_node *nd = &g->nodes[m];
        if (nd->in[0] != t && !(nd->nin > 1 && nd->in[1] == t)) continue;
        const struct nn_shape *ss = nd->nin > 1 && nd->in[1] >= 0 ? &shapes[nd->in[1]] : NULL;
        if (taken[m] || nd->op != NN_OP_PRELU || nd->in[0] != t || !nn_graph_const_f32(g, nd->in[1]) || !ss ||
            ss->ndim != 1 || ss->d[0] != shapes[t].d[3])
            return -1;
        return m;
    }
    return -1;
}

/* The PReLU node (not yet taken, per-channel constant slope) that writes tensor t, read by
 * nothing else than the node that asks, or -1. */
static int prelu_writer(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                        const char *taken, int before, int t)
{
    if (readers[t] != 1) return -1;
    for (int m = before - 1; m >= 0; m--) {
        const struct nn_node *nd = &g->nodes[m];
        if (nd->out != t) continue;
        const struct nn_shape *ss = nd->nin > 1 && nd->in[1] >= 0 ? &shapes[nd->in[1]] : NULL;
        if (taken[m] || nd->op != NN_OP_PRELU || !nn_graph_const_f32(g, nd->in[1]) || !ss || ss->ndim != 1 ||
            ss->d[0] != shapes[t].d[3] || g->tensors[nd->in[0]].data)
            return -1;
        return m;
    }
    return -1;
}

/* The 2x2, stride 2 max pool that is the only reader of tensor t, written after node `after`
 * and padded (if at all) only after, or -1. */
static int pool_reader(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                       const char *taken, int after, int t)
{
    if (readers[t] != 1) return -1;
    for (int m = after + 1; m < g->nnodes; m++) {
        const struct nn_node *nd = &g->nodes[m];
        if (nd->in[0] != t) continue;
        const struct nn_shape *xs = &shapes[t], *ys = &shapes[nd->out];
        int pt, pb, pl, pr;
        if (taken[m] || nd->op != NN_OP_MAX_POOL_2D || nd->act != NN_ACT_NONE ||
            nd->filter_h != 2 || nd->filter_w != 2 || nd->stride_h != 2 || nd->stride_w != 2 ||
            ys->ndim != 4)
            return -1;
        nn_window_pads(xs->d[1], ys->d[1], 2, 2, 1, nd->pad, &pt, &pb);
        nn_window_pads(xs->d[2], ys->d[2], 2, 2, 1, nd->pad, &pl, &pr);
        return pt == 0 && pl == 0 ? m : -1;
    }
    return -1;
}

/* Geometry shared by both kinds; 0 when the node is not a plain 4-D window we handle. */
static int geometry(const struct nn_graph *g, const struct nn_shape *shapes,
                    const struct nn_node *nd, struct nn_kern *k)
{
    const struct nn_shape *xs = &shapes[nd->in[0]], *ys = &shapes[nd->out];
    if (xs->ndim != 4 || ys->ndim != 4 || nd->dil_h != 1 || nd->dil_w != 1) return 0;
    if (!nn_graph_const_f32(g, nd->in[1]) || (nd->nin > 2 && nd->in[2] >= 0 && !nn_graph_const_f32(g, nd->in[2])))
        return 0;
    const struct nn_shape *ws = &g->tensors[nd->in[1]].shape;
    if (ws->ndim != 4) return 0;
    k->in = nd->in[0];
    k->N = xs->d[0], k->H = xs->d[1], k->W = xs->d[2], k->C = xs->d[3];
    k->OH = ys->d[1], k->OW = ys->d[2];
    k->KH = ws->d[1], k->KW = ws->d[2], k->sh = nd->stride_h, k->sw = nd->stride_w;
    int pb, pr;
    nn_window_pads(k->H, k->OH, k->KH, k->sh, 1, nd->pad, &k->pt, &pb);
    nn_window_pads(k->W, k->OW, k->KW, k->sw, 1, nd->pad, &k->pl, &pr);
    return 1;
}

/* Zeroed, 64-byte aligned weights and per-lane parameters. */
static int alloc_params(struct nn_kern *k, size_t nw, size_t nlanes)
{
    k->w = nn_alloc_aligned(nw * sizeof(float));
    k->bias = nn_alloc_aligned(nlanes * sizeof(float));
    k->slope = nn_alloc_aligned(nlanes * sizeof(float));
    k->lo = nn_alloc_aligned(nlanes * sizeof(float));
    k->hi = nn_alloc_aligned(nlanes * sizeof(float));
    if (!k->w || !k->bias || !k->slope || !k->lo || !k->hi) return FR_ENOMEM;
    memset(k->w, 0, nw * sizeof(float));
    memset(k->bias, 0, nlanes * sizeof(float));
    return 0;
}

static int claim_depthwise(const struct nn_graph *g, const struct nn_shape *shapes,
                           const int *readers, const char *taken, int n, struct nn_kern *k,
                           int *nodes, int *count)
{
    const struct nn_node *nd = &g->nodes[n];
    if (!geometry(g, shapes, nd, k) || shapes[nd->out].d[3] != k->C) return 0;
    /* ours: global windows (output 1x1; XNNPACK takes 0.049 ms for MobileFaceNet's 25k
     * products) and 3x3 windows the blocked path takes (stride 1, or 2 without padding before),
     * at least a block wide; XNNPACK is faster on narrower pictures (7x7: 0.004 vs 0.007 ms) */
    int global = k->OH == 1 && k->OW == 1;
    int s1 = k->sh == 1 && k->sw == 1 && k->pt <= 1 && k->pl <= 1;
    int s2 = k->sh == 2 && k->sw == 2 && k->pt == 0 && k->pl == 0;
    if (!global && !(k->KH == 3 && k->KW == 3 && (s1 || s2) && k->OW >= DW3_BLOCK)) return 0;
    k->kind = KIND_DEPTHWISE;
    k->Cp = (k->C + 15) & ~15;
    int taps = k->KH * k->KW, p = prelu_reader(g, shapes, readers, taken, n, nd->out);
    if (alloc_params(k, (size_t)taps * k->Cp, (size_t)k->Cp)) return FR_ENOMEM;
    const float *w = g->tensors[nd->in[1]].data;
    for (int t = 0; t < taps; t++)
        memcpy(k->w + (size_t)t * k->Cp, w + (size_t)t * k->C, (size_t)k->C * sizeof(float));
    if (nd->nin > 2 && nd->in[2] >= 0)
        memcpy(k->bias, g->tensors[nd->in[2]].data, (size_t)k->C * sizeof(float));
    float lo, hi;
    nn_act_range(nd->act, &lo, &hi);
    const float *s = p >= 0 ? g->tensors[g->nodes[p].in[1]].data : NULL;
    for (int c = 0; c < k->Cp; c++) {
        k->slope[c] = s && c < k->C ? s[c] : 1.0f;
        k->lo[c] = lo, k->hi[c] = hi;
    }
    nodes[0] = n;
    *count = 1;
    k->nout = 1;
    k->out[0] = nd->out;
    if (p >= 0) nodes[(*count)++] = p, k->out[0] = g->nodes[p].out;
    /* the PReLU that wrote the input, applied as the input is read: one pass fewer */
    int q = prelu_writer(g, shapes, readers, taken, n, nd->in[0]);
    if (q >= 0) {
        if (!(k->pre = nn_alloc_aligned((size_t)k->Cp * sizeof(float)))) return FR_ENOMEM;
        const float *ps = g->tensors[g->nodes[q].in[1]].data;
        for (int c = 0; c < k->Cp; c++)
            k->pre[c] = c < k->C ? ps[c] : 1.0f;
        k->in = g->nodes[q].in[0];
        nodes[(*count)++] = q;
    }
    return 1;
}

/* A convolution the narrow kernel can take, with O output channels. */
static int narrow_ok(const struct nn_graph *g, const struct nn_shape *shapes, int n, int *O)
{
    const struct nn_node *nd = &g->nodes[n];
    struct nn_kern k;
    if (nd->op != NN_OP_CONV_2D || !geometry(g, shapes, nd, &k)) return 0;
    *O = shapes[nd->out].d[3];
    /* at 16 output channels XNNPACK's tiles are full and it is as fast (measured on P-Net) */
    return *O < 16 && g->tensors[nd->in[1]].shape.d[3] == k.C;
}

static int claim_narrow(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                        const char *taken, int n, struct nn_kern *k, int *nodes, int *count)
{
    int O0, O1 = 0, m = -1;
    if (!narrow_ok(g, shapes, n, &O0)) return 0;
    const struct nn_node *nd = &g->nodes[n];
    geometry(g, shapes, nd, k);
    /* a second convolution of the same input and window that fits in the remaining lanes */
    for (int j = n + 1; j < g->nnodes && O0 < 16; j++) {
        const struct nn_node *b = &g->nodes[j];
        if (taken[j] || b->in[0] != nd->in[0] || !narrow_ok(g, shapes, j, &O1) || O0 + O1 > 16)
            continue;
        const struct nn_shape *wa = &g->tensors[nd->in[1]].shape, *wb = &g->tensors[b->in[1]].shape;
        if (wa->d[1] == wb->d[1] && wa->d[2] == wb->d[2] && b->stride_h == nd->stride_h &&
            b->stride_w == nd->stride_w && b->pad == nd->pad) {
            m = j;
            break;
        }
    }
    if (m < 0) O1 = 0;
    k->kind = KIND_NARROW;
    int taps = k->KH * k->KW * k->C;
    if (alloc_params(k, (size_t)taps * 16, 16)) return FR_ENOMEM;
    for (int i = 0; i < 16; i++)
        k->slope[i] = 1.0f, k->lo[i] = -INFINITY, k->hi[i] = INFINITY;
    *count = 0;
    k->nout = m >= 0 ? 2 : 1;
    for (int gi = 0; gi < k->nout; gi++) {
        int c = gi == 0 ? n : m, O = gi == 0 ? O0 : O1, off = gi == 0 ? 0 : O0;
        const struct nn_node *cn = &g->nodes[c];
        const float *w = g->tensors[cn->in[1]].data; /* [O][KH][KW][C] */
        const float *b = cn->nin > 2 && cn->in[2] >= 0 ? g->tensors[cn->in[2]].data : NULL;
        for (int o = 0; o < O; o++) {
            for (int t = 0; t < taps; t++)
                k->w[(size_t)t * 16 + off + o] = w[(size_t)o * taps + t];
            k->bias[off + o] = b ? b[o] : 0.0f;
        }
        float lo, hi;
        nn_act_range(cn->act, &lo, &hi);
        int p = prelu_reader(g, shapes, readers, taken, c, cn->out);
        const float *s = p >= 0 ? g->tensors[g->nodes[p].in[1]].data : NULL;
        for (int o = 0; o < O; o++)
            k->slope[off + o] = s ? s[o] : 1.0f, k->lo[off + o] = lo, k->hi[off + o] = hi;
        nodes[(*count)++] = c;
        k->out[gi] = cn->out;
        if (p >= 0) nodes[(*count)++] = p, k->out[gi] = g->nodes[p].out;
        k->O[gi] = O, k->off[gi] = off;
    }
    int q = k->nout == 1 ? pool_reader(g, shapes, readers, taken, n, k->out[0]) : -1;
    if (q >= 0) {
        k->pool = 1;
        k->PH = shapes[g->nodes[q].out].d[1], k->PW = shapes[g->nodes[q].out].d[2];
        k->out[0] = g->nodes[q].out;
        nodes[(*count)++] = q;
    }
    if (!(k->rows = nn_alloc_aligned((size_t)2 * k->OW * 16 * sizeof(float)))) return FR_ENOMEM;
    return 1;
}

/* A max pool with the PReLU that writes its input applied as the input is read: R-Net's and
 * O-Net's PReLU + 3x3 pools, which XNNPACK runs as two passes over the picture (O-Net's first
 * pair: 0.024 ms per crop, an eighth of the net). */
static int claim_pool(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                      const char *taken, int n, struct nn_kern *k, int *nodes, int *count)
{
    const struct nn_node *nd = &g->nodes[n];
    const struct nn_shape *xs = &shapes[nd->in[0]], *ys = &shapes[nd->out];
    if (xs->ndim != 4 || ys->ndim != 4 || nd->filter_h < 1 || nd->filter_w < 1) return 0;
    int q = prelu_writer(g, shapes, readers, taken, n, nd->in[0]);
    if (q < 0) return 0;
    k->kind = KIND_POOL;
    k->in = g->nodes[q].in[0];
    k->N = xs->d[0], k->H = xs->d[1], k->W = xs->d[2], k->C = xs->d[3];
    k->OH = ys->d[1], k->OW = ys->d[2];
    k->KH = nd->filter_h, k->KW = nd->filter_w, k->sh = nd->stride_h, k->sw = nd->stride_w;
    int pb, pr;
    nn_window_pads(k->H, k->OH, k->KH, k->sh, 1, nd->pad, &k->pt, &pb);
    nn_window_pads(k->W, k->OW, k->KW, k->sw, 1, nd->pad, &k->pl, &pr);
    k->Cp = (k->C + 15) & ~15;
    k->lo = nn_alloc_aligned((size_t)k->Cp * sizeof(float));
    k->hi = nn_alloc_aligned((size_t)k->Cp * sizeof(float));
    k->pre = nn_alloc_aligned((size_t)k->Cp * sizeof(float));
    if (!k->lo || !k->hi || !k->pre) return FR_ENOMEM;
    float lo, hi;
    nn_act_range(nd->act, &lo, &hi);
    const float *ps = g->tensors[g->nodes[q].in[1]].data;
    for (int c = 0; c < k->Cp; c++)
        k->pre[c] = c < k->C ? ps[c] : 1.0f, k->lo[c] = lo, k->hi[c] = hi;
    nodes[0] = n, nodes[1] = q;
    *count = 2;
    k->nout = 1;
    k->out[0] = nd->out;
    return 1;
}

/* The ADD without activation that is the only reader of tensor t and adds to it another
 * computed tensor of its shape (a residual connection), or -1; *other is that tensor (-1 if
 * none). */
static int residual_reader(const struct nn_graph *g, const struct nn_shape *shapes,
                           const int *readers, const char *taken, int after, int t, int *other)
{
    *other = -1;
    if (readers[t] != 1) return -1;
    for (int m = after + 1; m < g->nnodes; m++) {
        const struct nn_node *nd = &g->nodes[m];
        if (nd->nin < 2 || (nd->in[0] != t && nd->in[1] != t)) continue;
        int o = nd->in[0] == t ? nd->in[1] : nd->in[0];
        if (taken[m] || nd->op != NN_OP_ADD || nd->act != NN_ACT_NONE || o == t || o < 0 ||
            g->tensors[o].data || !nn_shape_equal(&shapes[o], &shapes[t]) ||
            !nn_shape_equal(&shapes[nd->out], &shapes[t]))
            return -1;
        *other = o;
        return m;
    }
    return -1;
}

/* A convolution (no dilation) with at least 16 outputs and the PReLU after it fused, in
 * bfloat16 products summed in float32. A 1x1 window over an even number of inputs (stride 1, no
 * padding) is pointwise: its pixels are converted block by block as they are used. Any other
 * window with at least 8 inputs first copies the input into a zero-bordered bfloat16 picture,
 * where each input is read by several windows (with 3 inputs XNNPACK was faster). */
static int claim_bf16(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                      const char *taken, int n, struct nn_kern *k, int *nodes, int *count)
{
    const struct nn_node *nd = &g->nodes[n];
    if (!geometry(g, shapes, nd, k) || g->tensors[nd->in[1]].shape.d[3] != k->C) return 0;
    int O = shapes[nd->out].d[3], O16 = (O + 15) / 16, taps = k->KH * k->KW;
    int pointwise = taps == 1 && k->sh == 1 && k->sw == 1 && !k->pt && !k->pl &&
                    k->OH == k->H && k->OW == k->W && k->C % 2 == 0;
    if (O < 16 || (!pointwise && k->C < 8)) return 0;
    k->kind = pointwise ? KIND_POINTWISE : KIND_CONV_BF16;
    k->O1 = O;
    k->C2 = (k->C + 1) / 2;
    if (alloc_params(k, 16, (size_t)O16 * 16)) return FR_ENOMEM;
    size_t nw = (size_t)O16 * taps * k->C2 * 32;
    if (!(k->wb = nn_alloc_aligned(nw * sizeof(uint16_t)))) return FR_ENOMEM;
    memset(k->wb, 0, nw * sizeof(uint16_t));
    if (!pointwise) {
        k->Hp = (k->OH - 1) * k->sh + k->KH, k->Wp = (k->OW - 1) * k->sw + k->KW;
        if (k->Hp < k->pt + k->H) k->Hp = k->pt + k->H;
        if (k->Wp < k->pl + k->W) k->Wp = k->pl + k->W;
        size_t nx = (size_t)k->N * k->Hp * k->Wp * k->C2 * 2;
        if (!(k->xb = nn_alloc_aligned(nx * sizeof(uint16_t)))) return FR_ENOMEM;
        memset(k->xb, 0, nx * sizeof(uint16_t));
    } else if (!(k->xb = nn_alloc_aligned((size_t)CB_MR * k->C * sizeof(uint16_t)))) {
        return FR_ENOMEM; /* one part's scratch; nn_kern_set_parts makes room for more */
    }
    const float *w = g->tensors[nd->in[1]].data; /* [O][KH][KW][C] */
    for (int o = 0; o < O; o++)
        for (int t = 0; t < taps; t++)
            for (int c = 0; c < k->C; c++)
                k->wb[((((size_t)(o / 16) * taps + t) * k->C2 + c / 2) * 16 + o % 16) * 2 + c % 2] =
                    nn_to_bf16(w[((size_t)o * taps + t) * k->C + c]);
    if (nd->nin > 2 && nd->in[2] >= 0)
        memcpy(k->bias, g->tensors[nd->in[2]].data, (size_t)O * sizeof(float));
    float lo, hi;
    nn_act_range(nd->act, &lo, &hi);
    int p = prelu_reader(g, shapes, readers, taken, n, nd->out);
    const float *sl = p >= 0 ? g->tensors[g->nodes[p].in[1]].data : NULL;
    for (int o = 0; o < O16 * 16; o++)
        k->slope[o] = sl && o < O ? sl[o] : 1.0f, k->lo[o] = lo, k->hi[o] = hi;
    nodes[0] = n;
    *count = 1;
    k->nout = 1;
    k->out[0] = nd->out;
    if (p >= 0) nodes[(*count)++] = p, k->out[0] = g->nodes[p].out;
    int a = residual_reader(g, shapes, readers, taken, n, k->out[0], &k->res);
    if (a >= 0) nodes[(*count)++] = a, k->out[0] = g->nodes[a].out;
    return 1;
}

int nn_kern_set_parts(struct nn_kern *k, int parts)
{
    if (parts < 1) parts = 1;
    if (k->chain) {
        int rc = nn_chain_set_parts(k->chain, parts);
        if (rc) return rc;
    }
    if (k->small) {
        int rc = nn_small_set_parts(k->small, parts);
        if (rc) return rc;
    }
    if (k->kind == KIND_NARROW && parts > k->parts) {
        float *r = nn_alloc_aligned((size_t)parts * 2 * k->OW * 16 * sizeof(float));
        if (!r) return FR_ENOMEM;
        free(k->rows);
        k->rows = r;
    }
    if (k->kind == KIND_POINTWISE && parts > k->parts) {
        uint16_t *xb = nn_alloc_aligned((size_t)parts * CB_MR * k->C * sizeof(uint16_t));
        if (!xb) return FR_ENOMEM;
        free(k->xb);
        k->xb = xb;
    }
    k->parts = parts;
    return 0;
}

int nn_kern_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                  const char *taken, int n, int bf16, struct nn_kern **out,
                  int nodes[NN_KERN_MAX_NODES], int *count)
{
    *out = NULL;
    *count = 0;
    const struct nn_node *nd = &g->nodes[n];
    if (taken[n] || (nd->op != NN_OP_DEPTHWISE_CONV_2D && nd->op != NN_OP_CONV_2D &&
                     nd->op != NN_OP_MAX_POOL_2D && nd->op != NN_OP_FULLY_CONNECTED))
        return 0;
    struct nn_kern *k = calloc(1, sizeof *k);
    if (!k) return FR_ENOMEM;
    k->parts = 1;
    if (nd->op == NN_OP_FULLY_CONNECTED) { /* R-Net's and O-Net's hidden layer */
        int rc = nn_fc_claim(g, shapes, readers, taken, n, bf16 && nn_kern_bf16_available(),
                             &k->fc, nodes, count);
        if (rc <= 0) {
            nn_kern_free(k);
            return rc;
        }
        k->kind = KIND_FC;
        *out = k;
        return 1;
    }
    /* a whole P-Net body first: its first convolution would otherwise go to the narrow kernel */
    int chain_bf16 = bf16 && nn_kern_bf16_available();
    int rc = nd->op == NN_OP_CONV_2D
                 ? nn_chain_claim(g, shapes, readers, taken, n, chain_bf16, &k->chain, nodes, count)
                 : 0;
    if (rc > 0) {
        k->kind = KIND_CHAIN;
        *out = k;
        return 1;
    }
    /* then a colour layer with its PReLU and pool (R-Net's and O-Net's first) */
    if (rc == 0 && nd->op == NN_OP_CONV_2D)
        rc = nn_small_claim(g, shapes, readers, taken, n, bf16 && nn_kern_bf16_available(),
                            &k->small, nodes, count);
    if (rc > 0) {
        k->kind = KIND_SMALL;
        *out = k;
        return 1;
    }
    if (rc == 0)
        rc = nd->op == NN_OP_DEPTHWISE_CONV_2D
                 ? claim_depthwise(g, shapes, readers, taken, n, k, nodes, count)
             : nd->op == NN_OP_MAX_POOL_2D
                 ? claim_pool(g, shapes, readers, taken, n, k, nodes, count)
                 : claim_narrow(g, shapes, readers, taken, n, k, nodes, count);
    if (rc == 0 && nd->op == NN_OP_CONV_2D && bf16 && nn_kern_bf16_available()) {
        nn_kern_free(k); /* a fresh one: a claim that declines may have filled in fields */
        if (!(k = calloc(1, sizeof *k))) return FR_ENOMEM;
        k->parts = 1;
        rc = claim_bf16(g, shapes, readers, taken, n, k, nodes, count);
    }
    if (rc <= 0) {
        nn_kern_free(k);
        *count = 0;
        return rc;
    }
    *out = k;
    return 1;
}

/* ---- running ---- */

/* The first and one-past-last output column whose window lies inside the input. */
static void interior(int in, int out, int k, int stride, int pad, int *lo, int *hi)
{
    *lo = (pad + stride - 1) / stride;
    *hi = in - k + pad >= 0 ? (in - k + pad) / stride + 1 : 0;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

AVX512 static inline __m512 activate(__m512 v, __m512 slope, __m512 lo, __m512 hi)
{
    return _mm512_min_ps(_mm512_max_ps(prelu(v, slope), lo), hi);
}

/* Masked AVX-512 stores are slow on some CPUs (AMD Zen 4): plain ones when all lanes are on. */
AVX512 static inline void store(float *p, __mmask16 m, __m512 v)
{
    if (m == 0xffff)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, m, v);
}

AVX512 static inline __m512 load(const float *p, __mmask16 m)
{
    return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

/* A depthwise input vector with the kernel's input PReLU (if any) applied. */
AVX512 static inline __m512 load_pre(const struct nn_kern *k, const float *p, __mmask16 m, int cb)
{
    __m512 v = load(p, m);
    return k->pre ? prelu(v, _mm512_loadu_ps(k->pre + cb)) : v;
}

#define DW_BLOCK 4

/* Output pixels [ox_lo, ox_hi) (at least DW3_BLOCK of them) of a 3x3 stride-1 depthwise window,
 * for one full block of 16 channels of one output row, in blocks of DW3_BLOCK pixels (the last
 * one overlapping the one before): every input vector is loaded once per row and feeds each
 * output whose window covers it; accumulators and weights stay in registers. off: offset in x
 * of input row iy0 (which may lie above the picture), channel cb. Only window rows ky0..ky1-1
 * are inside the input; with left (right), the first (last) block's leftmost (rightmost) input
 * column is outside (SAME padding). All of ky0, ky1, left, right and pre (apply the input
 * PReLU) are constants after inlining. */
AVX512 INLINE void
dw3_span(const struct nn_kern *k, const float *x, ptrdiff_t off, float *yp, int cb, int ox_lo,
         int ox_hi, int S, int ky0, int ky1, int left, int right, int pre)
{
    const ptrdiff_t C = k->C, row = (ptrdiff_t)k->W * C;
    __m512 w[9];
    for (int t = 0; t < 9; t++)
        w[t] = _mm512_loadu_ps(k->w + (size_t)t * k->Cp + cb);
    __m512 b = _mm512_loadu_ps(k->bias + cb), s = _mm512_loadu_ps(k->slope + cb);
    __m512 lo = _mm512_loadu_ps(k->lo + cb), hi = _mm512_loadu_ps(k->hi + cb);
    __m512 ps = pre ? _mm512_loadu_ps(k->pre + cb) : b;
    for (int ox0 = ox_lo; ox0 < ox_hi; ox0 += DW3_BLOCK) {
        int ox = ox0 + DW3_BLOCK > ox_hi ? ox_hi - DW3_BLOCK : ox0;
        int first = left && ox == ox_lo, last = right && ox + DW3_BLOCK == ox_hi;
        __m512 a[DW3_BLOCK];
        for (int j = 0; j < DW3_BLOCK; j++)
            a[j] = b;
        for (int ky = ky0; ky < ky1; ky++) {
            ptrdiff_t r = off + ky * row + ((ptrdiff_t)ox * S - k->pl) * C;
#pragma GCC unroll 32
            for (int i = 0; i < (DW3_BLOCK - 1) * S + 3; i++) {
                if ((left && i == 0 && first) || (right && i == (DW3_BLOCK - 1) * S + 2 && last))
                    continue;
                __m512 v = _mm512_loadu_ps(x + (r + i * C));
                if (pre) v = prelu(v, ps);
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; kx++) {
                    int d = i - kx;
                    if (d >= 0 && d % S == 0 && d / S < DW3_BLOCK)
                        a[d / S] = _mm512_fmadd_ps(v, w[ky * 3 + kx], a[d / S]);
                }
            }
        }
        for (int j = 0; j < DW3_BLOCK; j++)
            _mm512_storeu_ps(yp + (ptrdiff_t)(ox + j) * C, activate(a[j], s, lo, hi));
    }
}

typedef void dw3_fn(const struct nn_kern *k, const float *x, ptrdiff_t off, float *yp, int cb,
                    int ox_lo, int ox_hi);

#define DW3(name, S, ky0, ky1, left, right, pre)                                                   \
    AVX512 static void name(const struct nn_kern *k, const float *x, ptrdiff_t off, float *yp,     \
                            int cb, int ox_lo, int ox_hi)                                          \
    {                                                                                              \
        dw3_span(k, x, off, yp, cb, ox_lo, ox_hi, S, ky0, ky1, left, right, pre);                  \
    }
/* stride 1: [rows: all, top clipped, bottom clipped][columns: inside, whole SAME row][pre] */
DW3(dw3_a_i, 1, 0, 3, 0, 0, 0)
DW3(dw3_a_i_p, 1, 0, 3, 0, 0, 1)
DW3(dw3_a_w, 1, 0, 3, 1, 1, 0)
DW3(dw3_a_w_p, 1, 0, 3, 1, 1, 1)
DW3(dw3_t_i, 1, 1, 3, 0, 0, 0)
DW3(dw3_t_i_p, 1, 1, 3, 0, 0, 1)
DW3(dw3_t_w, 1, 1, 3, 1, 1, 0)
DW3(dw3_t_w_p, 1, 1, 3, 1, 1, 1)
DW3(dw3_b_i, 1, 0, 2, 0, 0, 0)
DW3(dw3_b_i_p, 1, 0, 2, 0, 0, 1)
DW3(dw3_b_w, 1, 0, 2, 1, 1, 0)
DW3(dw3_b_w_p, 1, 0, 2, 1, 1, 1)
static dw3_fn *const dw3_table[3][2][2] = {
    {{dw3_a_i, dw3_a_i_p}, {dw3_a_w, dw3_a_w_p}},
    {{dw3_t_i, dw3_t_i_p}, {dw3_t_w, dw3_t_w_p}},
    {{dw3_b_i, dw3_b_i_p}, {dw3_b_w, dw3_b_w_p}},
};
/* stride 2 (SAME on even sizes pads only after): [rows: all, bottom clipped][columns: inside,
 * whole row with the last column outside][pre] */
DW3(dw3s2_a_i, 2, 0, 3, 0, 0, 0)
DW3(dw3s2_a_i_p, 2, 0, 3, 0, 0, 1)
DW3(dw3s2_a_w, 2, 0, 3, 0, 1, 0)
DW3(dw3s2_a_w_p, 2, 0, 3, 0, 1, 1)
DW3(dw3s2_b_i, 2, 0, 2, 0, 0, 0)
DW3(dw3s2_b_i_p, 2, 0, 2, 0, 0, 1)
DW3(dw3s2_b_w, 2, 0, 2, 0, 1, 0)
DW3(dw3s2_b_w_p, 2, 0, 2, 0, 1, 1)
static dw3_fn *const dw3s2_table[2][2][2] = {
    {{dw3s2_a_i, dw3s2_a_i_p}, {dw3s2_a_w, dw3s2_a_w_p}},
    {{dw3s2_b_i, dw3s2_b_i_p}, {dw3s2_b_w, dw3s2_b_w_p}},
};

/* Output rows u0 .. u1 - 1, counted over the whole batch (row oy of image n is n * OH + oy). */
AVX512 static void run_depthwise(const struct nn_kern *k, const float *x, float *y, int u0, int u1)
{
    const int C = k->C, Cp = k->Cp, KW = k->KW;
    int ox_lo, ox_hi;
    interior(k->W, k->OW, KW, k->sw, k->pl, &ox_lo, &ox_hi);
    for (int u = u0; u < u1; u++) {
        int n = u / k->OH, oy = u % k->OH;
        int iy0 = oy * k->sh - k->pt;
        int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = k->H - iy0 < k->KH ? k->H - iy0 : k->KH;
        ptrdiff_t xr = ((ptrdiff_t)n * k->H + iy0) * k->W * C; /* row iy0: may be above */
        float *yr = y + ((size_t)n * k->OH + oy) * k->OW * C;
        for (int cb = 0; cb < C; cb += 16) {
            __mmask16 m = C - cb >= 16 ? 0xffff : (__mmask16)((1u << (C - cb)) - 1);
            __m512 b = _mm512_loadu_ps(k->bias + cb), s = _mm512_loadu_ps(k->slope + cb);
            __m512 lo = _mm512_loadu_ps(k->lo + cb), hi = _mm512_loadu_ps(k->hi + cb);
            /* the blocked path: 3x3 stride 1, full channel blocks, one window row at most
             * clipped, and either the whole row (SAME: one padding column each side) or the
             * pixels whose window is inside */
            int ox = 0, span_lo = 0, span_hi = 0;
            int rows = ky0 == 0 && ky1 == 3   ? 0
                       : ky0 == 1 && ky1 == 3 ? 1
                       : ky0 == 0 && ky1 == 2 ? 2
                                              : -1;
            if (m == 0xffff && k->KH == 3 && KW == 3 && k->sw == 2 && k->sh == 2 &&
                (rows == 0 || rows == 2)) {
                /* whole row: the windows start inside, the last one may end one past */
                int whole = k->pl == 0 && (k->OW - 1) * 2 + 2 == k->W;
                span_lo = ox_lo, span_hi = whole ? k->OW : ox_hi;
                if (span_lo == 0 && span_hi - span_lo >= DW3_BLOCK)
                    dw3s2_table[rows / 2][whole][k->pre != NULL](k, x, xr + cb, yr + cb, cb,
                                                                 span_lo, span_hi);
                else
                    span_lo = span_hi = 0;
            } else if (m == 0xffff && k->KH == 3 && KW == 3 && k->sw == 1 && k->sh == 1 &&
                       rows >= 0) {
                int whole = k->pl == 1 && ox_lo == 1 && ox_hi == k->OW - 1 && k->OW == k->W;
                span_lo = whole ? 0 : ox_lo, span_hi = whole ? k->OW : ox_hi;
                if (span_hi - span_lo >= DW3_BLOCK)
                    dw3_table[rows][whole][k->pre != NULL](k, x, xr + cb, yr + cb, cb, span_lo,
                                                           span_hi);
                else
                    span_lo = span_hi = 0;
            }
            for (;;) {
                if (ox == span_lo) ox = span_hi; /* done above */
                int block = ox >= ox_lo && ox + DW_BLOCK <= ox_hi ? DW_BLOCK : 1;
                if (ox >= k->OW) break;
                int ix0 = ox * k->sw - k->pl;
                if (block == DW_BLOCK) {
                    __m512 a[DW_BLOCK];
                    for (int j = 0; j < DW_BLOCK; j++)
                        a[j] = b;
                    const ptrdiff_t step = (ptrdiff_t)k->sw * C;
                    for (int ky = ky0; ky < ky1; ky++) {
                        const float *xp = x + (xr + ((ptrdiff_t)ky * k->W + ix0) * C + cb);
                        const float *wp = k->w + (size_t)ky * KW * Cp + cb;
                        for (int kx = 0; kx < KW; kx++) {
                            __m512 wv = _mm512_loadu_ps(wp + (size_t)kx * Cp);
                            const float *p = xp + (ptrdiff_t)kx * C;
                            for (int j = 0; j < DW_BLOCK; j++)
                                a[j] =
                                    _mm512_fmadd_ps(load_pre(k, p + j * step, m, cb), wv, a[j]);
                        }
                    }
                    float *yp = yr + (size_t)ox * C + cb;
                    for (int j = 0; j < DW_BLOCK; j++)
                        store(yp + (size_t)j * C, m, activate(a[j], s, lo, hi));
                } else {
                    int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = k->W - ix0 < KW ? k->W - ix0 : KW;
                    __m512 a = b;
                    for (int ky = ky0; ky < ky1; ky++)
                        for (int kx = kx0; kx < kx1; kx++) {
                            __m512 wv =
                                _mm512_loadu_ps(k->w + ((size_t)ky * KW + kx) * Cp + cb);
                            const float *p =
                                x + (xr + ((ptrdiff_t)ky * k->W + ix0 + kx) * C + cb);
                            a = _mm512_fmadd_ps(load_pre(k, p, m, cb), wv, a);
                        }
                    store(yr + (size_t)ox * C + cb, m, activate(a, s, lo, hi));
                }
                ox += block;
            }
        }
    }
}

#define NARROW_BLOCK 8

/* Writes the lanes of v that belong to each output, for output pixel pix. */
AVX512 static inline void narrow_store(const struct nn_kern *k, __m512 v, float *const *y,
                                       size_t pix)
{
    for (int gi = 0; gi < k->nout; gi++) {
        __m512 u = v;
        if (k->off[gi])
            u = _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9,
                                                                        8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                       _mm512_set1_epi32(k->off[gi])),
                                      v);
        _mm512_mask_storeu_ps(y[gi] + pix * k->O[gi], (__mmask16)((1u << k->O[gi]) - 1), u);
    }
}

/* Output row oy of image n of a narrow convolution, activated, into r[0..OW-1]. */
AVX512 static void narrow_row(const struct nn_kern *k, const float *x, int n, int oy, int ox_lo,
                              int ox_hi, __m512 *r)
{
    const int C = k->C, KW = k->KW, row = KW * C;
    __m512 b = _mm512_loadu_ps(k->bias), s = _mm512_loadu_ps(k->slope);
    __m512 lo = _mm512_loadu_ps(k->lo), hi = _mm512_loadu_ps(k->hi);
    int iy0 = oy * k->sh - k->pt;
    int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = k->H - iy0 < k->KH ? k->H - iy0 : k->KH;
    ptrdiff_t xr = ((ptrdiff_t)n * k->H + iy0) * k->W * C;
    int ox = 0;
    while (ox < k->OW) {
        int ix0 = ox * k->sw - k->pl;
        if (ox >= ox_lo && ox + NARROW_BLOCK <= ox_hi) {
            __m512 a[NARROW_BLOCK];
            for (int j = 0; j < NARROW_BLOCK; j++)
                a[j] = b;
            const size_t step = (size_t)k->sw * C;
            for (int ky = ky0; ky < ky1; ky++) {
                const float *xp = x + (xr + ((ptrdiff_t)ky * k->W + ix0) * C);
                const float *wp = k->w + (size_t)ky * row * 16;
                for (int q = 0; q < row; q++) {
                    __m512 wv = _mm512_load_ps(wp + (size_t)q * 16);
                    for (int j = 0; j < NARROW_BLOCK; j++)
                        a[j] = _mm512_fmadd_ps(_mm512_set1_ps(xp[j * step + q]), wv, a[j]);
                }
            }
            for (int j = 0; j < NARROW_BLOCK; j++)
                r[ox + j] = activate(a[j], s, lo, hi);
            ox += NARROW_BLOCK;
        } else {
            int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = k->W - ix0 < KW ? k->W - ix0 : KW;
            __m512 a = b;
            for (int ky = ky0; ky < ky1; ky++)
                for (int kx = kx0; kx < kx1; kx++) {
                    const float *xp = x + (xr + ((ptrdiff_t)ky * k->W + ix0 + kx) * C);
                    const float *wp = k->w + ((size_t)ky * row + (size_t)kx * C) * 16;
                    for (int c = 0; c < C; c++)
                        a = _mm512_fmadd_ps(_mm512_set1_ps(xp[c]),
                                            _mm512_load_ps(wp + (size_t)c * 16), a);
                }
            r[ox++] = activate(a, s, lo, hi);
        }
    }
}

/* Output rows u0 .. u1 - 1 (pooled rows when pooling), counted over the whole batch, with the
 * scratch rows of part `part`. */
AVX512 static void run_narrow(const struct nn_kern *k, const float *x, float *const *y, int u0,
                              int u1, int part)
{
    int ox_lo, ox_hi;
    interior(k->W, k->OW, k->KW, k->sw, k->pl, &ox_lo, &ox_hi);
    __m512 *r0 = (__m512 *)k->rows + (size_t)part * 2 * k->OW, *r1 = r0 + k->OW;
    for (int u = u0; u < u1; u++) {
        if (!k->pool) {
            int n = u / k->OH, oy = u % k->OH;
            narrow_row(k, x, n, oy, ox_lo, ox_hi, r0);
            size_t pix0 = ((size_t)n * k->OH + oy) * k->OW;
            for (int ox = 0; ox < k->OW; ox++)
                narrow_store(k, r0[ox], y, pix0 + ox);
            continue;
        }
        /* 2x2 max pool, stride 2, no padding before (SAME pads only after, and a window
         * hanging past the picture takes the maximum of the pixels it has) */
        int n = u / k->PH, py = u % k->PH;
        narrow_row(k, x, n, 2 * py, ox_lo, ox_hi, r0);
        const __m512 *rb = r0;
        if (2 * py + 1 < k->OH) {
            narrow_row(k, x, n, 2 * py + 1, ox_lo, ox_hi, r1);
            rb = r1;
        }
        size_t pix0 = ((size_t)n * k->PH + py) * k->PW;
        for (int px = 0; px < k->PW; px++) {
            int c0 = 2 * px, c1 = 2 * px + 1 < k->OW ? 2 * px + 1 : 2 * px;
            __m512 v =
                _mm512_max_ps(_mm512_max_ps(r0[c0], r0[c1]), _mm512_max_ps(rb[c0], rb[c1]));
            narrow_store(k, v, y, pix0 + px);
        }
    }
}

/* Output rows u0 .. u1 - 1 of the pool, counted over the whole batch; padding is ignored. */
AVX512 static void run_pool(const struct nn_kern *k, const float *x, float *y, int u0, int u1)
{
    const int C = k->C;
    for (int u = u0; u < u1; u++) {
        int n = u / k->OH, oy = u % k->OH, iy0 = oy * k->sh - k->pt;
        int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = k->H - iy0 < k->KH ? k->H - iy0 : k->KH;
        const float *xn = x + (size_t)n * k->H * k->W * C;
        float *yr = y + ((size_t)n * k->OH + oy) * k->OW * C;
        for (int ox = 0; ox < k->OW; ox++) {
            int ix0 = ox * k->sw - k->pl;
            int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = k->W - ix0 < k->KW ? k->W - ix0 : k->KW;
            for (int cb = 0; cb < C; cb += 16) {
                __mmask16 m = C - cb >= 16 ? 0xffff : (__mmask16)((1u << (C - cb)) - 1);
                __m512 s = _mm512_loadu_ps(k->pre + cb), a = _mm512_set1_ps(-INFINITY);
                for (int ky = ky0; ky < ky1; ky++) {
                    const float *p = xn + ((size_t)(iy0 + ky) * k->W + ix0) * C + cb;
                    for (int kx = kx0; kx < kx1; kx++)
                        a = _mm512_max_ps(a, prelu(load(p + (ptrdiff_t)kx * C, m), s));
                }
                a = _mm512_min_ps(_mm512_max_ps(a, _mm512_loadu_ps(k->lo + cb)),
                                  _mm512_loadu_ps(k->hi + cb));
                store(yr + (size_t)ox * C + cb, m, a);
            }
        }
    }
}

/* n floats (n even) from x into bfloat16 at y. */
AVX512BF16 static void to_bf16_row(const float *x, size_t n, uint16_t *y)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512(y + i, (__m512i)v);
    }
    if (i < n) { /* the rest, in one masked pass */
        __mmask16 lo = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __mmask16 hi = n - i > 16 ? (__mmask16)((1u << (n - i - 16)) - 1) : 0;
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + i + 16),
                                         _mm512_maskz_loadu_ps(lo, x + i));
        _mm512_mask_storeu_epi16(y + i, ((__mmask32)hi << 16) | lo, (__m512i)v);
    }
}

/* Outputs [ob, ob + 16 * NB) of m (<= CB_MR) output pixels from p0 (flat over the batch), summed
 * over every tap and channel pair: pixel j's window starts at pairs[off[j]], or with off NULL
 * (pointwise) at pairs[j * C2]. */
AVX512BF16 INLINE void
cb_tile(const struct nn_kern *k, const int *pairs, const int *off, const float *res, float *y,
        size_t p0, int m, int ob, int NB)
{
    const int taps = k->KH * k->KW, O = k->O1;
    const ptrdiff_t C2 = k->C2;
    __m512 a[CB_MR][2];
    for (int j = 0; j < CB_MR; j++)
        a[j][0] = a[j][1] = _mm512_setzero_ps();
    const uint16_t *w0 = k->wb + (size_t)(ob / 16) * taps * C2 * 32;
    const uint16_t *w1 = w0 + (size_t)taps * C2 * 32;
    for (int t = 0; t < (off ? taps : 1); t++) {
        ptrdiff_t toff = off ? ((t / k->KW) * k->Wp + t % k->KW) * C2 : 0;
        const int *q = pairs + toff;
        const uint16_t *u0p = w0 + (size_t)t * C2 * 32, *u1p = w1 + (size_t)t * C2 * 32;
        for (ptrdiff_t c2 = 0; c2 < C2; c2++, q++, u0p += 32, u1p += 32) {
            __m512bh u0 = (__m512bh)_mm512_load_si512(u0p), u1 = u0;
            if (NB == 2) u1 = (__m512bh)_mm512_load_si512(u1p);
            for (int j = 0; j < CB_MR; j++) {
                if (j >= m) break;
                __m512bh v = (__m512bh)_mm512_set1_epi32(q[off ? off[j] : j * C2]);
                a[j][0] = _mm512_dpbf16_ps(a[j][0], v, u0);
                if (NB == 2) a[j][1] = _mm512_dpbf16_ps(a[j][1], v, u1);
            }
        }
    }
    for (int h = 0; h < NB; h++) {
        int o0 = ob + 16 * h;
        __mmask16 mk = O - o0 >= 16 ? 0xffff : (__mmask16)((1u << (O - o0)) - 1);
        __m512 b = _mm512_loadu_ps(k->bias + o0), s = _mm512_loadu_ps(k->slope + o0);
        __m512 lo = _mm512_loadu_ps(k->lo + o0), hi = _mm512_loadu_ps(k->hi + o0);
        for (int j = 0; j < m; j++) {
            size_t at = (p0 + (size_t)j) * O + o0;
            __m512 v = activate(_mm512_add_ps(a[j][h], b), s, lo, hi);
            if (res) v = _mm512_add_ps(v, load(res + at, mk));
            store(y + at, mk, v);
        }
    }
}

/* Every output of m pixels from p0: full blocks with the pixel count a constant. */
AVX512BF16 INLINE void
cb_pixels(const struct nn_kern *k, const int *pairs, const int *off, const float *res, float *y,
          size_t p0, int m)
{
    int O16 = (k->O1 + 15) / 16, ob = 0;
    for (; ob + 32 <= O16 * 16; ob += 32)
        if (m == CB_MR)
            cb_tile(k, pairs, off, res, y, p0, CB_MR, ob, 2);
        else
            cb_tile(k, pairs, off, res, y, p0, m, ob, 2);
    if (ob < O16 * 16) {
        if (m == CB_MR)
            cb_tile(k, pairs, off, res, y, p0, CB_MR, ob, 1);
        else
            cb_tile(k, pairs, off, res, y, p0, m, ob, 1);
    }
}

/* Padded input rows u0 .. u1 - 1 (over the batch) of a bfloat16 convolution into xb; the zero
 * borders were written once when it was claimed. */
static void cb_convert(const struct nn_kern *k, const float *x, int u0, int u1)
{
    const int C = k->C, C2 = k->C2;
    for (int u = u0; u < u1; u++) {
        int n = u / k->Hp, iy = u % k->Hp - k->pt;
        if (iy < 0 || iy >= k->H) continue;
        const float *xr = x + ((size_t)n * k->H + iy) * k->W * C;
        uint16_t *yr = k->xb + (((size_t)n * k->Hp + u % k->Hp) * k->Wp + k->pl) * C2 * 2;
        if (C % 2 == 0) { /* the row is contiguous on both sides */
            to_bf16_row(xr, (size_t)k->W * C, yr);
        } else {
            for (int ix = 0; ix < k->W; ix++)
                for (int c = 0; c < C; c++)
                    yr[(size_t)ix * C2 * 2 + c] = nn_to_bf16(xr[(size_t)ix * C + c]);
        }
    }
}

/* Pixel blocks u0 .. u1 - 1 of a bfloat16 convolution (xb already converted). */
AVX512BF16 static void run_conv_bf16(const struct nn_kern *k, const float *res, float *y, int u0,
                                     int u1)
{
    size_t P = (size_t)k->N * k->OH * k->OW;
    for (int u = u0; u < u1; u++) {
        size_t p0 = (size_t)u * CB_MR;
        int m = P - p0 < CB_MR ? (int)(P - p0) : CB_MR, off[CB_MR];
        for (int j = 0; j < m; j++) {
            size_t p = p0 + (size_t)j;
            int n = (int)(p / ((size_t)k->OH * k->OW)), r = (int)(p % ((size_t)k->OH * k->OW));
            int oy = r / k->OW, ox = r % k->OW;
            off[j] = (((n * k->Hp) + oy * k->sh) * k->Wp + ox * k->sw) * k->C2;
        }
        if (res)
            cb_pixels(k, (const int *)k->xb, off, res, y, p0, m);
        else
            cb_pixels(k, (const int *)k->xb, off, NULL, y, p0, m);
    }
}

/* Pixel blocks u0 .. u1 - 1 of a 1x1 convolution: each block's inputs into bfloat16 in the
 * scratch of part `part` (in L1, rather than the whole picture first), then every output. */
AVX512BF16 static void run_pointwise(const struct nn_kern *k, const float *x, const float *res,
                                     float *y, int u0, int u1, int part)
{
    size_t P = (size_t)k->N * k->OH * k->OW;
    uint16_t *xb = k->xb + (size_t)part * CB_MR * k->C;
    for (int u = u0; u < u1; u++) {
        size_t p0 = (size_t)u * CB_MR;
        int m = P - p0 < CB_MR ? (int)(P - p0) : CB_MR;
        to_bf16_row(x + p0 * k->C, (size_t)m * k->C, xb);
        if (res)
            cb_pixels(k, (const int *)xb, NULL, res, y, p0, m);
        else
            cb_pixels(k, (const int *)xb, NULL, NULL, y, p0, m);
    }
}

struct run_ctx {
    const struct nn_kern *k;
    const float *x, *res;
    float *const *y;
    int units, parts;
    int convert; /* bf16 conv: this pass converts the input rows (units), not output blocks */
};

static void run_part(const struct run_ctx *c, int part)
{
    int u0 = (int)((int64_t)c->units * part / c->parts);
    int u1 = (int)((int64_t)c->units * (part + 1) / c->parts);
    if (c->k->kind == KIND_CHAIN)
        nn_chain_run(c->k->chain, c->x, c->y, u0, u1, part);
    else if (c->k->kind == KIND_SMALL)
        nn_small_run(c->k->small, c->x, c->y[0], u0, u1, part);
    else if (c->k->kind == KIND_FC)
        nn_fc_run(c->k->fc, c->x, c->y[0], u0, u1);
    else if (c->k->kind == KIND_DEPTHWISE)
        run_depthwise(c->k, c->x, c->y[0], u0, u1);
    else if (c->k->kind == KIND_POOL)
        run_pool(c->k, c->x, c->y[0], u0, u1);
    else if (c->k->kind == KIND_POINTWISE)
        run_pointwise(c->k, c->x, c->res, c->y[0], u0, u1, part);
    else if (c->k->kind == KIND_CONV_BF16 && c->convert)
        cb_convert(c->k, c->x, u0, u1);
    else if (c->k->kind == KIND_CONV_BF16)
        run_conv_bf16(c->k, c->res, c->y[0], u0, u1);
    else
        run_narrow(c->k, c->x, c->y, u0, u1, part);
}

static void run_task(void *ctx, size_t part)
{
    run_part(ctx, (int)part);
}

static void run_units(struct run_ctx *c, pthreadpool_t pool)
{
    if (c->parts > c->units) c->parts = c->units;
    if (c->parts <= 1) {
        c->parts = 1;
        run_part(c, 0);
    } else {
        pthreadpool_parallelize_1d(pool, run_task, c, (size_t)c->parts, 0);
    }
}

void nn_kern_run(const struct nn_kern *k, const float *const *xs, float *const *y,
                 pthreadpool_t pool)
{
    const float *x = xs[0], *res = xs[1];
    int rows = k->kind == KIND_NARROW && k->pool ? k->PH : k->OH;
    int units = k->kind == KIND_CHAIN   ? nn_chain_rows(k->chain)
                : k->kind == KIND_SMALL ? nn_small_rows(k->small)
                : k->kind == KIND_FC    ? nn_fc_units(k->fc)
                : k->kind == KIND_POINTWISE || k->kind == KIND_CONV_BF16
                    ? (k->N * k->OH * k->OW + CB_MR - 1) / CB_MR
                    : k->N * rows;
    int parts = pool ? k->parts : 1;
    if (k->kind == KIND_CONV_BF16) {
        struct run_ctx cv = {k, x, res, y, k->N * k->Hp, parts, 1};
        run_units(&cv, pool);
    }
    struct run_ctx c = {k, x, res, y, units, parts, 0};
    run_units(&c, pool);
}
