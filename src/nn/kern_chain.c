/* kern_chain.c: P-Net's body fused row by row, output pixels in the lanes, in AVX-512.
 *
 * Activations live in planes, [channel][row][column]: a lane only ever reads the same lane of
 * its input shifted by a window offset, so garbage in columns past the picture (finite: zeros,
 * or values computed from them) never reaches a pixel inside it. After the first layer every
 * layer's rows are PW (the pooled width) floats apart, so a span of rows is a 1-D convolution
 * over one run of floats (output offset j reads input offsets j + ky * PW + kx): 16-pixel
 * blocks run on across row ends, and a layer wastes only the columns its window loses.
 *
 * Layers are filled on demand, SPAN rows at a time: a span of heads rows asks for the rows of
 * the last convolution it needs, which ask for theirs, down to the pooled first layer, computed
 * one row at a time from input rows de-interleaved from NHWC into planes (a ring of four).
 * Each layer holds SPAN + 2 rows, the two its successor still needs moved to the front.
 *
 * The inner loops hold PB blocks of 16 pixels times OB outputs in registers: per input value
 * and window tap, PB loads and OB broadcast weights feed PB * OB multiply-adds (8 x 3 reaches
 * the FMA units' peak on this machine; more outputs per pass spill registers). Measured on the
 * 640x480 pyramid (1 thread): rows rounded up to 16 pixels each, 4.6 ms; as spans of 8 rows,
 * first layer 32 columns per step, 4.1-4.2 ms; the 3x3 tiles are ~70% of it, at ~215 GFLOPS.
 *
 * With bf16 (the net opened so, on a CPU with AVX512_BF16) the 3x3 convolutions after the first
 * multiply bfloat16 copies of their inputs and weights and sum in float32: the rows they read
 * hold channel pairs, one 32-bit lane per pixel (channel 2i in its lower half), so that a tap of
 * a pair is one VDPBF16PS (32 products) with a broadcast weight pair where float32 takes two
 * FMAs (16 each). The first layer's pooled row is packed so after its float32 pass, the others
 * pack their outputs as they store them (cvtne2ps + one word permute); the last one stores
 * floats, and the heads stay float32. Alternating with the float32 build, 6 runs each (bench nn,
 * 1 thread, medians): 4.31 -> 2.74 ms (minimums 4.11 -> 2.67), the 3x3 tiles 2.2x faster; P-Net's
 * probabilities within 1.31e-2 of the golden reference (float32: 2e-6). The heads in bfloat16
 * too (the last convolution packing pairs) were ~0.15 ms faster but moved the probabilities by
 * 1.77e-2, near test_nn_golden's 2e-2: not kept. The first layer is then ~25% of the time; in
 * bfloat16 as well (inputs as pairs of channels 0-1 and of channel 2 at two neighbouring
 * pixels: 5 products per window row instead of 9) it took 2.75 -> 2.43 ms, but rounding the
 * inputs to 8 bits moved the probabilities by 1.83e-2: not kept either (commit 6a2e153). On 2
 * threads: 2.23 -> 1.46 ms. */
#include "nn/kern_chain.h"
#include "nn/simd.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OB 8        /* outputs per pass of the 3x3 layers and the heads */
#define PB_MAX 3    /* blocks of 16 pixels per pass */
#define MAX_CONVS 4 /* 3x3 convolutions after the first */
#define SPAN 8      /* rows of a layer computed at once (4: 1-2% slower; 16: no faster) */
#define SLACK 64    /* floats past a plane: where a span's last block and window reach */

struct layer {
    int C, O, Op;        /* input channels, outputs, outputs rounded up to the pass size */
    int H, W;            /* output size */
    float *w;            /* [ky][c][kx][Op] (1x1 heads: [c][Op]) */
    float *bias, *slope; /* [Op]; slope 1 where there is no PReLU */
    int C2;              /* bf16: input channel pairs, the last one padded with a zero weight */
    uint32_t *wb;        /* bf16: [ky][c2][kx][Op], channel 2 c2 in the low half, 2 c2 + 1 high */
};

struct nn_chain {
    int in, nout, out[2], Oh[2]; /* heads: their tensors and channels */
    int sigmoid[2];              /* heads: a sigmoid applied last */
    int N, H, W, C0;             /* the input */
    int H0, W0, PH, PW;          /* the first convolution's output, then pooled */
    int prelu_first;             /* a negative slope: the PReLU does not commute with the pool */
    int ob0;                     /* outputs per pass of the first layer (4 or 5) */
    struct layer first, convs[MAX_CONVS], heads;
    int S;    /* convolutions after the first */
    int bf16; /* the 3x3 convolutions after the first in bfloat16 products: the rows they read
               * (layers 0 .. S - 1) hold channel pairs; planes[r]: planes of layer r's rows */
    int planes[MAX_CONVS + 1];
    /* a part's scratch: the input ring (4 rows of C0 planes of cs_in floats), then per layer
     * (the first one pooled) SPAN + 2 rows of PW floats in each of its Op planes (ps floats
     * apart), then the heads' staging: 8 planes of SPAN rows (hs floats apart) */
    ptrdiff_t cs_in, ps, hs;
    size_t off[MAX_CONVS + 2], part_floats;
    size_t off_first; /* bf16: the first layer's pooled row in float planes (PWs apart) */
    ptrdiff_t PWs;
    float *scratch;
    int parts;
};

void nn_chain_free(struct nn_chain *c)
{
    if (!c) return;
    struct layer *ls[2 + MAX_CONVS] = {&c->first, &c->heads};
    for (int i = 0; i < MAX_CONVS; i++)
        ls[2 + i] = &c->convs[i];
    for (int i = 0; i < 2 + MAX_CONVS; i++)
        free(ls[i]->w), free(ls[i]->bias), free(ls[i]->slope), free(ls[i]->wb);
    free(c->scratch);
    free(c);
}

int nn_chain_input(const struct nn_chain *c)
{
    return c->in;
}

int nn_chain_outputs(const struct nn_chain *c, int out[2])
{
    out[0] = c->out[0], out[1] = c->out[1];
    return c->nout;
}

int nn_chain_rows(const struct nn_chain *c)
{
    return c->N * c->heads.H;
}

/* ---- claiming ---- */

/* A convolution of tensor x, k x k, stride 1, no padding or dilation, no clamp, with constant
 * weights [O][k][k][C] and bias: its output channels, or 0. */
static int plain_conv(const struct nn_graph *g, const struct nn_shape *shapes,
                      const struct nn_node *nd, int k)
{
    if (nd->op != NN_OP_CONV_2D || nd->act != NN_ACT_NONE || nd->stride_h != 1 ||
        nd->stride_w != 1 || nd->dil_h != 1 || nd->dil_w != 1 || !nn_graph_const_f32(g, nd->in[1]))
        return 0;
    if (nd->nin > 2 && nd->in[2] >= 0 && !nn_graph_const_f32(g, nd->in[2])) return 0;
    const struct nn_shape *xs = &shapes[nd->in[0]], *ys = &shapes[nd->out];
    const struct nn_shape *ws = &g->tensors[nd->in[1]].shape;
    if (xs->ndim != 4 || ys->ndim != 4 || ws->ndim != 4 || ws->d[1] != k || ws->d[2] != k ||
        ws->d[3] != xs->d[3] || ws->d[0] != ys->d[3] || ys->d[0] != xs->d[0] ||
        ys->d[1] != xs->d[1] - k + 1 || ys->d[2] != xs->d[2] - k + 1)
        return 0;
    return ys->d[3];
}

/* The PReLU that is the only reader of t, with per-channel constant slopes, or -1. */
static int prelu_of(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                    const char *taken, int after, int t)
{
    int m = nn_graph_sole_reader(g, readers, taken, after, t);
    if (m < 0) return -1;
    const struct nn_node *nd = &g->nodes[m];
    if (nd->op != NN_OP_PRELU || nd->nin < 2 || !nn_graph_const_f32(g, nd->in[1])) return -1;
    const struct nn_shape *ss = &shapes[nd->in[1]];
    return ss->ndim == 1 && ss->d[0] == shapes[t].d[3] ? m : -1;
}

/* Weights of convolution nd (k x k, O outputs of C channels) into l, outputs padded to ob, with
 * the slopes of PReLU node p (or none: -1). Returns 0 or FR_ENOMEM; l's arrays (allocated or
 * NULL, also on error) are the caller's to free. */
static int load_layer(const struct nn_graph *g, const struct nn_shape *shapes,
                      const struct nn_node *nd, int p, int k, int ob, struct layer *l)
{
    const struct nn_shape *ys = &shapes[nd->out];
    l->C = shapes[nd->in[0]].d[3], l->O = ys->d[3], l->H = ys->d[1], l->W = ys->d[2];
    l->Op = (l->O + ob - 1) / ob * ob;
    size_t nw = (size_t)k * k * l->C * l->Op;
    l->w = nn_alloc_aligned(nw * sizeof(float));
    l->bias = nn_alloc_aligned((size_t)l->Op * sizeof(float));
    l->slope = nn_alloc_aligned((size_t)l->Op * sizeof(float));
    if (!l->w || !l->bias || !l->slope) return FR_ENOMEM;
    memset(l->w, 0, nw * sizeof(float));
    const float *w = g->tensors[nd->in[1]].data; /* [O][ky][kx][C] */
    const float *b = nd->nin > 2 && nd->in[2] >= 0 ? g->tensors[nd->in[2]].data : NULL;
    const float *s = p >= 0 ? g->tensors[g->nodes[p].in[1]].data : NULL;
    for (int o = 0; o < l->Op; o++) {
        l->bias[o] = b && o < l->O ? b[o] : 0.0f;
        l->slope[o] = s && o < l->O ? s[o] : 1.0f;
    }
    for (int o = 0; o < l->O; o++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int c = 0; c < l->C; c++)
                    l->w[(((size_t)ky * l->C + c) * k + kx) * l->Op + o] =
                        w[(((size_t)o * k + ky) * k + kx) * l->C + c];
    return 0;
}

/* l's float weights (k x k) as bfloat16 channel pairs into l->wb. Returns 0 or FR_ENOMEM (the
 * caller frees l's arrays). */
static int load_pairs(struct layer *l, int k)
{
    l->C2 = (l->C + 1) / 2;
    if (!(l->wb = nn_alloc_aligned((size_t)k * k * l->C2 * l->Op * sizeof(uint32_t))))
        return FR_ENOMEM;
    for (int ky = 0; ky < k; ky++)
        for (int c2 = 0; c2 < l->C2; c2++)
            for (int kx = 0; kx < k; kx++)
                for (int o = 0; o < l->Op; o++) {
                    const float *w = l->w + (((size_t)ky * l->C + 2 * c2) * k + kx) * l->Op + o;
                    uint32_t hi = 2 * c2 + 1 < l->C ? nn_to_bf16(w[(size_t)k * l->Op]) : 0;
                    l->wb[(((size_t)ky * l->C2 + c2) * k + kx) * l->Op + o] =
                        nn_to_bf16(w[0]) | hi << 16;
                }
    return 0;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

int nn_chain_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                   const char *taken, int n, int bf16, struct nn_chain **out,
                   int nodes[NN_CHAIN_MAX_NODES], int *count)
{
    *out = NULL;
    *count = 0;
    const struct nn_node *nd = &g->nodes[n];
    int O0 = taken[n] ? 0 : plain_conv(g, shapes, nd, 3);
    if (!O0 || shapes[nd->in[0]].d[3] > 4) return 0;
    /* the first layer: convolution, PReLU (optional), 2x2 stride 2 pool padded only after */
    int list[NN_CHAIN_MAX_NODES], cnt = 0, p0, pool, t;
    list[cnt++] = n;
    t = nd->out;
    if ((p0 = prelu_of(g, shapes, readers, taken, n, t)) >= 0)
        list[cnt++] = p0, t = g->nodes[p0].out;
    pool = nn_graph_sole_reader(g, readers, taken, list[cnt - 1], t);
    if (pool < 0) return 0;
    const struct nn_node *pn = &g->nodes[pool];
    const struct nn_shape *ps = &shapes[pn->out];
    if (pn->op != NN_OP_MAX_POOL_2D || pn->act != NN_ACT_NONE || pn->filter_h != 2 ||
        pn->filter_w != 2 || pn->stride_h != 2 || pn->stride_w != 2 || ps->ndim != 4 ||
        ps->d[1] != (pn->pad == NN_PAD_SAME ? (shapes[t].d[1] + 1) / 2 : shapes[t].d[1] / 2) ||
        ps->d[2] != (pn->pad == NN_PAD_SAME ? (shapes[t].d[2] + 1) / 2 : shapes[t].d[2] / 2) ||
        ps->d[1] < 1 || ps->d[2] < 1)
        return 0;
    list[cnt++] = pool;
    t = pn->out;
    /* 3x3 convolutions with their PReLUs, as long as each is the only reader */
    int convs[MAX_CONVS], cprelu[MAX_CONVS], S = 0, last = pool;
    for (;;) {
        int m = nn_graph_sole_reader(g, readers, taken, last, t);
        if (m < 0 || S == MAX_CONVS || !plain_conv(g, shapes, &g->nodes[m], 3)) break;
        convs[S] = m;
        list[cnt++] = m;
        t = g->nodes[m].out, last = m;
        cprelu[S] = prelu_of(g, shapes, readers, taken, m, t);
        if (cprelu[S] >= 0) list[cnt++] = cprelu[S], t = g->nodes[cprelu[S]].out, last = cprelu[S];
        S++;
    }
    if (S == 0) return 0;
    /* the heads: every reader of t a 1x1 convolution (two at most, 8 outputs between them) */
    int heads[2], hp[2], hsig[2], nh = 0, Oh = 0;
    for (int m = last + 1; m < g->nnodes && nh <= 2; m++) {
        const struct nn_node *hd = &g->nodes[m];
        int reads = 0;
        for (int i = 0; i < hd->nin; i++)
            reads |= hd->in[i] == t;
        if (!reads) continue;
        int o = taken[m] ? 0 : plain_conv(g, shapes, hd, 1);
        if (!o || hd->in[0] != t || nh == 2) return 0;
        heads[nh] = m, Oh += o;
        hp[nh] = prelu_of(g, shapes, readers, taken, m, hd->out);
        /* and a sigmoid after it (P-Net's two-class softmax, fused) */
        int y = hp[nh] >= 0 ? g->nodes[hp[nh]].out : hd->out;
        hsig[nh] = nn_graph_sole_reader(g, readers, taken, hp[nh] >= 0 ? hp[nh] : m, y);
        if (hsig[nh] >= 0 && g->nodes[hsig[nh]].op != NN_OP_SIGMOID) hsig[nh] = -1;
        nh++;
    }
    int total = cnt + nh;
    for (int i = 0; i < nh; i++)
        total += (hp[i] >= 0) + (hsig[i] >= 0);
    if (nh == 0 || nh != readers[t] || Oh > OB || total > NN_CHAIN_MAX_NODES) return 0;

    struct nn_chain *c = calloc(1, sizeof *c);
    if (!c) return FR_ENOMEM;
    const struct nn_shape *xs = &shapes[nd->in[0]];
    c->in = nd->in[0];
    c->N = xs->d[0], c->H = xs->d[1], c->W = xs->d[2], c->C0 = xs->d[3];
    c->H0 = shapes[nd->out].d[1], c->W0 = shapes[nd->out].d[2];
    c->PH = ps->d[1], c->PW = ps->d[2];
    c->ob0 = O0 % 4 == 0 || O0 < 4 ? 4 : 5; /* P-Net's 10: two passes of 5 */
    c->S = S;
    int rc = load_layer(g, shapes, nd, p0, 3, c->ob0, &c->first);
    for (int i = 0; i < S && !rc; i++)
        rc = load_layer(g, shapes, &g->nodes[convs[i]], cprelu[i], 3, OB, &c->convs[i]);
    /* the heads as one layer: the first's outputs, then the second's */
    struct layer *h = &c->heads;
    if (!rc) {
        h->C = shapes[t].d[3], h->O = Oh, h->Op = OB;
        h->H = shapes[t].d[1], h->W = shapes[t].d[2];
        h->w = nn_alloc_aligned((size_t)h->C * OB * sizeof(float));
        h->bias = nn_alloc_aligned(OB * sizeof(float));
        h->slope = nn_alloc_aligned(OB * sizeof(float));
        if (!h->w || !h->bias || !h->slope) rc = FR_ENOMEM;
    }
    if (!rc) {
        memset(h->w, 0, (size_t)h->C * OB * sizeof(float));
        for (int o = 0; o < OB; o++)
            h->bias[o] = 0.0f, h->slope[o] = 1.0f;
        for (int i = 0, off = 0; i < nh; i++) {
            struct layer one = {0};
            if ((rc = load_layer(g, shapes, &g->nodes[heads[i]], hp[i], 1, 1, &one)) == 0) {
                for (int o = 0; o < one.O; o++) {
                    for (int ch = 0; ch < h->C; ch++)
                        h->w[(size_t)ch * OB + off + o] = one.w[(size_t)ch * one.Op + o];
                    h->bias[off + o] = one.bias[o], h->slope[off + o] = one.slope[o];
                }
                c->Oh[i] = one.O;
                off += one.O;
            }
            free(one.w), free(one.bias), free(one.slope);
            list[cnt++] = heads[i];
            c->out[i] = g->nodes[heads[i]].out;
            if (hp[i] >= 0) list[cnt++] = hp[i], c->out[i] = g->nodes[hp[i]].out;
            if (hsig[i] >= 0) list[cnt++] = hsig[i], c->out[i] = g->nodes[hsig[i]].out;
            c->sigmoid[i] = hsig[i] >= 0;
            if (rc) break;
        }
        c->nout = nh;
    }
    for (int o = 0; o < O0 && !rc; o++)
        c->prelu_first |= c->first.slope[o] < 0.0f;
    c->bf16 = bf16;
    for (int i = 0; i < S && bf16 && !rc; i++)
        rc = load_pairs(&c->convs[i], 3);
    for (int r = 0; r <= S; r++) {
        int Op = r == 0 ? c->first.Op : c->convs[r - 1].Op;
        c->planes[r] = bf16 && r < S ? (Op + 1) / 2 : Op;
    }
    /* scratch layout of one part */
    c->cs_in = (ptrdiff_t)round16((size_t)c->W) + SLACK;
    c->ps = (ptrdiff_t)round16((size_t)(SPAN + 2) * c->PW + SLACK);
    c->hs = (ptrdiff_t)round16((size_t)SPAN * c->PW + SLACK);
    size_t at = 4 * (size_t)c->C0 * (size_t)c->cs_in;
    for (int r = 0; r <= S; r++) {
        c->off[r] = at;
        at += (size_t)c->planes[r] * (size_t)c->ps;
    }
    c->off[S + 1] = at;
    at += (size_t)OB * (size_t)c->hs;
    c->PWs = (ptrdiff_t)round16((size_t)c->PW);
    c->off_first = at;
    if (bf16) at += (size_t)c->first.Op * (size_t)c->PWs;
    c->part_floats = round16(at);
    c->parts = 0;
    if (!rc) rc = nn_chain_set_parts(c, 1);
    if (rc) {
        nn_chain_free(c);
        return rc;
    }
    memcpy(nodes, list, (size_t)cnt * sizeof *list);
    *count = cnt;
    *out = c;
    return 1;
}

int nn_chain_set_parts(struct nn_chain *c, int parts)
{
    if (parts < 1) parts = 1;
    if (parts <= c->parts) return 0;
    size_t n = (size_t)parts * c->part_floats;
    float *s = nn_alloc_aligned(n * sizeof(float));
    if (!s) return FR_ENOMEM;
    memset(s, 0, n * sizeof(float)); /* the padding columns stay zero */
    free(c->scratch);
    c->scratch = s;
    c->parts = parts;
    return 0;
}

/* ---- running ---- */

/* What one part knows while it runs: which input rows its ring holds, and which rows each
 * layer holds: base[r] .. next[r] - 1, row base[r] first (next[S + 1]: the heads' next row). */
struct cursor {
    const struct nn_chain *c;
    const float *x;
    float *s; /* the part's scratch */
    int n;    /* image */
    int tag[4];
    int base[MAX_CONVS + 1], next[MAX_CONVS + 2];
};

/* Input row iy of the image as C0 planes, from the ring or de-interleaved into it. */
AVX512 static const float *input_row(struct cursor *cu, int iy)
{
    const struct nn_chain *c = cu->c;
    const int C = c->C0, W = c->W;
    float *d = cu->s + (size_t)(iy & 3) * C * c->cs_in;
    if (cu->tag[iy & 3] == iy) return d;
    cu->tag[iy & 3] = iy;
    const float *x = cu->x + ((size_t)cu->n * c->H + iy) * W * C;
    /* the row after the next comes from memory while this one and the next are used */
    if (iy + 2 < c->H)
        for (size_t k = 0; k < (size_t)W * C; k += 16)
            _mm_prefetch((const char *)(x + 2 * (size_t)W * C + k), _MM_HINT_T0);
    int ix = 0;
    if (C == 3) {
        /* 16 pixels: three registers of interleaved channels, two permutes per plane */
        const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        const __m512i three = _mm512_mullo_epi32(lane, _mm512_set1_epi32(3));
        for (; ix + LANES <= W; ix += LANES) {
            const float *p = x + (size_t)ix * 3;
            __m512 v0 = _mm512_loadu_ps(p), v1 = _mm512_loadu_ps(p + 16),
                   v2 = _mm512_loadu_ps(p + 32);
            for (int ch = 0; ch < 3; ch++) {
                __m512i idx = _mm512_add_epi32(three, _mm512_set1_epi32(ch));
                __mmask16 hi = _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(32));
                __m512 v = _mm512_permutex2var_ps(v0, idx, v1);
                v = _mm512_mask_permutexvar_ps(v, hi, _mm512_sub_epi32(idx, _mm512_set1_epi32(32)),
                                               v2);
                _mm512_storeu_ps(d + ch * c->cs_in + ix, v);
            }
        }
    }
    for (; ix < W; ix++)
        for (int ch = 0; ch < C; ch++)
            d[ch * c->cs_in + ix] = x[(size_t)ix * C + ch];
    return d;
}

/* The first layer for outputs [ob, ob + T) of pooled row p from C input planes: both
 * convolution rows at once, 32 of their columns (16 pooled: one register) per step, so that
 * each broadcast weight feeds four multiply-adds. */
AVX512 INLINE void first_pass(const struct nn_chain *c, const float *const *ra,
                              const float *const *rb, int ob, float *dst, ptrdiff_t dps, int T,
                              int C)
{
    const struct layer *l = &c->first;
    const int nb = (c->W0 + 2 * LANES - 1) / (2 * LANES);
    const ptrdiff_t cs = c->cs_in;
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int b = 0; b < nb; b++) {
        const int col = b * 2 * LANES;
        __m512 A[2][5], B[2][5];
        for (int o = 0; o < T; o++)
            A[0][o] = A[1][o] = B[0][o] = B[1][o] = _mm512_set1_ps(l->bias[ob + o]);
#pragma GCC unroll 3
        for (int ky = 0; ky < 3; ky++)
#pragma GCC unroll 4
            for (int ch = 0; ch < C; ch++) {
                const float *pa = ra[ky] + ch * cs + col, *pb = rb[ky] + ch * cs + col;
                const float *ws = l->w + ((size_t)(ky * C + ch) * 3) * l->Op + ob;
#pragma GCC unroll 3
                for (int kx = 0; kx < 3; kx++) {
                    __m512 va0 = _mm512_loadu_ps(pa + kx), va1 = _mm512_loadu_ps(pa + kx + LANES);
                    __m512 vb0 = _mm512_loadu_ps(pb + kx), vb1 = _mm512_loadu_ps(pb + kx + LANES);
#pragma GCC unroll 5
                    for (int o = 0; o < T; o++) {
                        __m512 wv = _mm512_set1_ps(ws[kx * l->Op + o]);
                        A[0][o] = _mm512_fmadd_ps(va0, wv, A[0][o]);
                        A[1][o] = _mm512_fmadd_ps(va1, wv, A[1][o]);
                        B[0][o] = _mm512_fmadd_ps(vb0, wv, B[0][o]);
                        B[1][o] = _mm512_fmadd_ps(vb1, wv, B[1][o]);
                    }
                }
            }
        /* columns past the convolution's output take no part in the pool; pooled columns
         * past the picture are not stored (they would land on the next row) */
        int cols = c->W0 - col, left = c->PW - b * LANES;
        __mmask16 past0 = cols < LANES ? (__mmask16)(0xffffu << cols) : 0;
        __mmask16 past1 =
            cols < 2 * LANES ? (__mmask16)(0xffffu << (cols > LANES ? cols - LANES : 0)) : 0;
        __mmask16 keep = left >= LANES ? 0xffff : (__mmask16)((1u << left) - 1);
        const __m512 ninf = _mm512_set1_ps(-INFINITY);
#pragma GCC unroll 5
        for (int o = 0; o < T; o++) {
            __m512 s = _mm512_set1_ps(l->slope[ob + o]);
            if (c->prelu_first) {
                A[0][o] = prelu(A[0][o], s), A[1][o] = prelu(A[1][o], s);
                B[0][o] = prelu(B[0][o], s), B[1][o] = prelu(B[1][o], s);
            }
            __m512 m0 = _mm512_mask_mov_ps(_mm512_max_ps(A[0][o], B[0][o]), past0, ninf);
            __m512 m1 = _mm512_mask_mov_ps(_mm512_max_ps(A[1][o], B[1][o]), past1, ninf);
            __m512 m = _mm512_max_ps(_mm512_permutex2var_ps(m0, even, m1),
                                     _mm512_permutex2var_ps(m0, odd, m1));
            if (!c->prelu_first) m = prelu(m, s);
            _mm512_mask_storeu_ps(dst + (ob + o) * dps + b * LANES, keep, m);
        }
    }
}

typedef void first_fn(const struct nn_chain *c, const float *const *ra, const float *const *rb,
                      int ob, float *dst, ptrdiff_t dps);

#define FIRST(name, T, C)                                                                          \
    AVX512 static void name(const struct nn_chain *c, const float *const *ra,                      \
                            const float *const *rb, int ob, float *dst, ptrdiff_t dps)             \
    {                                                                                              \
        first_pass(c, ra, rb, ob, dst, dps, T, C);                                                 \
    }
FIRST(first4, 4, c->C0)
FIRST(first5, 5, c->C0)
FIRST(first5_rgb, 5, 3) /* P-Net's: the whole window unrolled */

static float *row_at(const struct cursor *cu, int r, int row)
{
    return cu->s + cu->c->off[r] + (size_t)(row - cu->base[r]) * cu->c->PW;
}

/* Two float planes lo and hi (NULL: zeros) as bfloat16 pairs, 16 pixels per register, hi in
 * each lane's upper half. */
AVX512BF16 INLINE __m512i pack_pair(__m512 lo, __m512 hi)
{
    /* cvtne2ps puts lo's 16 values then hi's: interleave them */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* The first layer's pooled row (float planes PWs apart at f) as channel pairs at dst. */
AVX512BF16 static void first_pairs(const struct nn_chain *c, const float *f, float *dst)
{
    const int Op = c->first.Op;
    for (int p = 0; p < c->planes[0]; p++)
        for (int j = 0; j < c->PW; j += LANES) {
            int left = c->PW - j;
            __mmask16 keep = left >= LANES ? 0xffff : (__mmask16)((1u << left) - 1);
            __m512 lo = _mm512_loadu_ps(f + 2 * p * c->PWs + j);
            __m512 hi = 2 * p + 1 < Op ? _mm512_loadu_ps(f + (2 * p + 1) * c->PWs + j)
                                       : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + p * c->ps + j, keep, pack_pair(lo, hi));
        }
}

/* Pooled row p of the first layer into its rows. */
AVX512 static void first_row(struct cursor *cu, int p)
{
    const struct nn_chain *c = cu->c;
    int r0 = 2 * p, r1 = 2 * p + 1 < c->H0 ? 2 * p + 1 : r0; /* SAME: the last may be alone */
    const float *ra[3], *rb[3];
    for (int ky = 0; ky < 3; ky++) /* four input rows: all stay in the ring of four */
        ra[ky] = input_row(cu, r0 + ky), rb[ky] = input_row(cu, r1 + ky);
    float *dst = row_at(cu, 0, p);
    first_fn *f = c->ob0 == 4 ? first4 : c->C0 == 3 ? first5_rgb : first5;
    if (!c->bf16) {
        for (int ob = 0; ob < c->first.Op; ob += c->ob0)
            f(c, ra, rb, ob, dst, c->ps);
        return;
    }
    float *stage = cu->s + c->off_first;
    for (int ob = 0; ob < c->first.Op; ob += c->ob0)
        f(c, ra, rb, ob, stage, c->PWs);
    first_pairs(c, stage, dst);
}

/* Every sum of a tile (PB blocks x T outputs) starts at its output's bias. */
AVX512 INLINE void start_at_bias(__m512 a[PB_MAX][OB], const float *bias, int PB, int T)
{
    for (int o = 0; o < T; o++) {
        __m512 b = _mm512_set1_ps(bias[o]);
        for (int q = 0; q < PB; q++)
            a[q][o] = b;
    }
}

/* PB blocks of 16 pixels from column px, outputs [0, T) (T <= OB) of weights w (rows of wo
 * floats), of a k x k window over the C planes (cs apart) of input rows in[0..k-1]; activated
 * into the T planes (ocs apart) that start at dst (the block's first pixel). */
AVX512 INLINE void tile(const float *const *in, ptrdiff_t cs, int C, const float *w, int wo,
                        const float *bias, const float *slope, float *dst, ptrdiff_t ocs, int px,
                        int PB, int K, int T)
{
    __m512 a[PB_MAX][OB];
    start_at_bias(a, bias, PB, T);
    for (int ky = 0; ky < K; ky++) {
        const float *r = in[ky] + px;
        const float *ws = w + (size_t)ky * C * K * wo;
        for (int ch = 0; ch < C; ch++, r += cs, ws += K * wo) {
#pragma GCC unroll 3
            for (int kx = 0; kx < K; kx++) {
                __m512 v[PB_MAX];
                for (int q = 0; q < PB; q++)
                    v[q] = _mm512_loadu_ps(r + kx + q * LANES);
#pragma GCC unroll 8
                for (int o = 0; o < T; o++) {
                    __m512 wv = _mm512_set1_ps(ws[kx * wo + o]);
                    for (int q = 0; q < PB; q++)
                        a[q][o] = _mm512_fmadd_ps(v[q], wv, a[q][o]);
                }
            }
        }
    }
    for (int o = 0; o < T; o++) {
        __m512 s = _mm512_set1_ps(slope[o]);
        for (int q = 0; q < PB; q++)
            _mm512_storeu_ps(dst + o * ocs + q * LANES, prelu(a[q][o], s));
    }
}

typedef void tile_fn(const float *const *in, ptrdiff_t cs, int C, const float *w, int wo,
                     const float *bias, const float *slope, float *dst, ptrdiff_t ocs, int px);

#define TILE(name, PB, K, T)                                                                       \
    AVX512 static void name(const float *const *in, ptrdiff_t cs, int C, const float *w, int wo,   \
                            const float *bias, const float *slope, float *dst, ptrdiff_t ocs,      \
                            int px)                                                                \
    {                                                                                              \
        tile(in, cs, C, w, wo, bias, slope, dst, ocs, px, PB, K, T);                               \
    }
TILE(tile3_1, 1, 3, OB)
TILE(tile3_2, 2, 3, OB)
TILE(tile3_3, 3, 3, OB)
TILE(heads8_1, 1, 1, OB)
TILE(heads8_2, 2, 1, OB)
TILE(heads8_3, 3, 1, OB)
TILE(heads6_1, 1, 1, 6) /* P-Net's 2 + 4: no multiply-adds for two unused outputs */
TILE(heads6_2, 2, 1, 6)
TILE(heads6_3, 3, 1, 6)
static tile_fn *const tiles3[PB_MAX] = {tile3_1, tile3_2, tile3_3};
static tile_fn *const heads8[PB_MAX] = {heads8_1, heads8_2, heads8_3};
static tile_fn *const heads6[PB_MAX] = {heads6_1, heads6_2, heads6_3};

/* tile in bfloat16 products: the input rows hold C2 planes of channel pairs (cs apart), each
 * lane one pixel's pair, so that a tap of a pair is one VDPBF16PS with a broadcast weight pair
 * (w: [ky][c2][kx][wo]); the outputs are activated into T float planes, or with pairs set (T
 * even) packed into T / 2 planes of pairs for the next layer. */
AVX512BF16 INLINE void tile_bf(const float *const *in, ptrdiff_t cs, int C2, const uint32_t *w,
                               int wo, const float *bias, const float *slope, float *dst,
                               ptrdiff_t ocs, int px, int PB, int K, int T, int pairs)
{
    __m512 a[PB_MAX][OB];
    start_at_bias(a, bias, PB, T);
    for (int ky = 0; ky < K; ky++) {
        const float *r = in[ky] + px;
        const uint32_t *ws = w + (size_t)ky * C2 * K * wo;
        for (int c2 = 0; c2 < C2; c2++, r += cs, ws += K * wo) {
#pragma GCC unroll 3
            for (int kx = 0; kx < K; kx++) {
                __m512bh v[PB_MAX];
                for (int q = 0; q < PB; q++)
                    v[q] = (__m512bh)_mm512_loadu_si512(r + kx + q * LANES);
#pragma GCC unroll 8
                for (int o = 0; o < T; o++) {
                    __m512bh wv = (__m512bh)_mm512_set1_epi32((int)ws[kx * wo + o]);
                    for (int q = 0; q < PB; q++)
                        a[q][o] = _mm512_dpbf16_ps(a[q][o], v[q], wv);
                }
            }
        }
    }
    if (pairs) {
        for (int o = 0; o < T; o += 2) {
            __m512 s0 = _mm512_set1_ps(slope[o]), s1 = _mm512_set1_ps(slope[o + 1]);
            for (int q = 0; q < PB; q++)
                _mm512_storeu_si512(dst + o / 2 * ocs + q * LANES,
                                    pack_pair(prelu(a[q][o], s0), prelu(a[q][o + 1], s1)));
        }
        return;
    }
    for (int o = 0; o < T; o++) {
        __m512 s = _mm512_set1_ps(slope[o]);
        for (int q = 0; q < PB; q++)
            _mm512_storeu_ps(dst + o * ocs + q * LANES, prelu(a[q][o], s));
    }
}

typedef void tile_bf_fn(const float *const *in, ptrdiff_t cs, int C2, const uint32_t *w, int wo,
                        const float *bias, const float *slope, float *dst, ptrdiff_t ocs, int px);

#define TILE_BF(name, PB, K, T, pairs)                                                             \
    AVX512BF16 static void name(const float *const *in, ptrdiff_t cs, int C2, const uint32_t *w,   \
                                int wo, const float *bias, const float *slope, float *dst,         \
                                ptrdiff_t ocs, int px)                                             \
    {                                                                                              \
        tile_bf(in, cs, C2, w, wo, bias, slope, dst, ocs, px, PB, K, T, pairs);                    \
    }
TILE_BF(tile3bf_1, 1, 3, OB, 1)
TILE_BF(tile3bf_2, 2, 3, OB, 1)
TILE_BF(tile3bf_3, 3, 3, OB, 1)
TILE_BF(tile3bff_1, 1, 3, OB, 0)
TILE_BF(tile3bff_2, 2, 3, OB, 0)
TILE_BF(tile3bff_3, 3, 3, OB, 0)
static tile_bf_fn *const tiles3bf[PB_MAX] = {tile3bf_1, tile3bf_2, tile3bf_3};
static tile_bf_fn *const tiles3bff[PB_MAX] = {tile3bff_1, tile3bff_2, tile3bff_3};

/* Blocks of 16 pixels per tile when nb blocks remain: the row split into as few tiles as the
 * largest tile allows, as even as possible (7 blocks: 3 + 2 + 2, not 3 + 3 + 1: a tile of one
 * block has too few independent accumulators to keep the FMA units busy). */
static int tile_blocks(int nb)
{
    int count = (nb + PB_MAX - 1) / PB_MAX;
    return (nb + count - 1) / count;
}

static void fill(struct cursor *cu, int r, int row);

/* Rows q .. q + g - 1 of 3x3 layer r (1-based: convs[r - 1]) as one span: rows of every layer
 * lie one after the other, PW floats apart, so the output pixel at offset j of the span reads
 * offsets j + ky * PW + kx of the input's; the columns a layer loses to its window (on the
 * right of each row) are computed and never read. */
static void conv_span(struct cursor *cu, int r, int q, int g)
{
    const struct nn_chain *c = cu->c;
    const struct layer *l = &c->convs[r - 1];
    fill(cu, r - 1, q + g + 1);
    const float *in[3] = {row_at(cu, r - 1, q), row_at(cu, r - 1, q + 1), row_at(cu, r - 1, q + 2)};
    float *dst = row_at(cu, r, q);
    int nb = ((g - 1) * c->PW + l->W + LANES - 1) / LANES;
    for (int ob = 0; ob < l->Op; ob += OB)
        for (int b = 0, pb; b < nb; b += pb) {
            pb = tile_blocks(nb - b);
            if (c->bf16 && r == c->S)
                tiles3bff[pb - 1](in, c->ps, l->C2, l->wb + ob, l->Op, l->bias + ob, l->slope + ob,
                                  dst + (size_t)ob * c->ps + b * LANES, c->ps, b * LANES);
            else if (c->bf16)
                tiles3bf[pb - 1](in, c->ps, l->C2, l->wb + ob, l->Op, l->bias + ob, l->slope + ob,
                                 dst + (size_t)ob / 2 * c->ps + b * LANES, c->ps, b * LANES);
            else
                tiles3[pb - 1](in, c->ps, l->C, l->w + ob, l->Op, l->bias + ob, l->slope + ob,
                               dst + (size_t)ob * c->ps + b * LANES, c->ps, b * LANES);
        }
}

/* Layer r holds row `row` (rows are asked for in order): computes the rows up to it, SPAN at a
 * time, first moving the rows the next layer still needs to the front. */
static void fill(struct cursor *cu, int r, int row)
{
    const struct nn_chain *c = cu->c;
    const int Op = c->planes[r];
    while (cu->next[r] <= row) {
        int q = cu->next[r], g = r == 0 ? 1 : row + 1 - q < SPAN ? row + 1 - q : SPAN;
        if (q - cu->base[r] + g > SPAN + 2) {
            int keep = cu->next[r + 1];
            float *p = cu->s + c->off[r];
            for (int o = 0; o < Op; o++)
                memmove(p + o * c->ps, p + o * c->ps + (size_t)(keep - cu->base[r]) * c->PW,
                        (size_t)(q - keep) * c->PW * sizeof(float));
            cu->base[r] = keep;
        }
        if (r == 0)
            first_row(cu, q);
        else
            conv_span(cu, r, q, g);
        cu->next[r] = q + g;
    }
}

/* e^x within 2 ulp for |x| <= 88 (clamped beyond): x = n ln 2 + r, |r| <= ln 2 / 2, e^r by
 * its Taylor series to r^6, times 2^n. */
AVX512 INLINE __m512 exp_ps(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x); /* ln 2, split */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* 1 / (1 + e^-v) over the first n floats (a multiple of 16) of O planes hs apart at v. */
AVX512 static void sigmoid_planes(float *v, ptrdiff_t hs, int O, int n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int o = 0; o < O; o++)
        for (int j = 0; j < n; j += LANES) {
            float *p = v + o * hs + j;
            __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(p)));
            _mm512_storeu_ps(p, _mm512_div_ps(one, _mm512_add_ps(one, e)));
        }
}

/* Stores v, masked to its first n floats (n <= 0: nothing). */
AVX512 INLINE void store_first(float *p, int n, __m512 v)
{
    if (n >= LANES)
        _mm512_storeu_ps(p, v);
    else if (n > 0)
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v);
}

/* P-Net's heads (2 and 4 channels) for 16 pixels from their planes (hs apart) at v to
 * pixels pix .. pix + n - 1 of the NHWC outputs: interleaved by permutes, not one float at a
 * time (which cost as much as the heads themselves). */
AVX512 static void heads_2_4(const float *v, ptrdiff_t hs, float *const *y, size_t pix, int n)
{
    __m512 h[6];
    for (int o = 0; o < 6; o++)
        h[o] = _mm512_loadu_ps(v + o * hs);
    /* pairs: lanes 0..7 of a and b interleaved, then lanes 8..15 */
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    /* quads: pairs 0..3 of a and b interleaved, then pairs 4..7 */
    const __m512i qlo = _mm512_set_epi32(23, 22, 7, 6, 21, 20, 5, 4, 19, 18, 3, 2, 17, 16, 1, 0);
    const __m512i qhi =
        _mm512_set_epi32(31, 30, 15, 14, 29, 28, 13, 12, 27, 26, 11, 10, 25, 24, 9, 8);
    float *y0 = y[0] + pix * 2, *y1 = y[1] + pix * 4;
    store_first(y0, 2 * n, _mm512_permutex2var_ps(h[0], lo, h[1]));
    store_first(y0 + 16, 2 * n - 16, _mm512_permutex2var_ps(h[0], hi, h[1]));
    __m512 t0 = _mm512_permutex2var_ps(h[2], lo, h[3]), t1 = _mm512_permutex2var_ps(h[2], hi, h[3]);
    __m512 u0 = _mm512_permutex2var_ps(h[4], lo, h[5]), u1 = _mm512_permutex2var_ps(h[4], hi, h[5]);
    store_first(y1, 4 * n, _mm512_permutex2var_ps(t0, qlo, u0));
    store_first(y1 + 16, 4 * n - 16, _mm512_permutex2var_ps(t0, qhi, u0));
    store_first(y1 + 32, 4 * n - 32, _mm512_permutex2var_ps(t1, qlo, u1));
    store_first(y1 + 48, 4 * n - 48, _mm512_permutex2var_ps(t1, qhi, u1));
}

void nn_chain_run(const struct nn_chain *c, const float *x, float *const *y, int u0, int u1,
                  int part)
{
    const struct layer *h = &c->heads;
    struct cursor cu = {.c = c, .x = x, .s = c->scratch + (size_t)part * c->part_floats, .n = -1};
    float *stage = cu.s + c->off[c->S + 1];
    for (int u = u0, g; u < u1; u += g) {
        int n = u / h->H, r = u % h->H;
        g = h->H - r < SPAN ? h->H - r : SPAN;
        if (u1 - u < g) g = u1 - u;
        if (n != cu.n) { /* a new image (or the first row of this part): nothing held */
            cu.n = n;
            for (int i = 0; i < 4; i++)
                cu.tag[i] = -1;
            for (int i = 0; i <= c->S + 1; i++)
                cu.next[i] = r;
            for (int i = 0; i <= c->S; i++)
                cu.base[i] = r;
        }
        /* rows r .. r + g - 1 of the heads: one span, then its rows to the NHWC outputs */
        fill(&cu, c->S, r + g - 1);
        cu.next[c->S + 1] = r + g;
        const float *in[1] = {row_at(&cu, c->S, r)};
        int nb = ((g - 1) * c->PW + h->W + LANES - 1) / LANES;
        for (int b = 0, pb; b < nb; b += pb) {
            pb = tile_blocks(nb - b);
            tile_fn *f = h->O <= 6 ? heads6[pb - 1] : heads8[pb - 1];
            f(in, c->ps, h->C, h->w, OB, h->bias, h->slope, stage + b * LANES, c->hs, b * LANES);
        }
        for (int i = 0, o = 0; i < c->nout; o += c->Oh[i++])
            if (c->sigmoid[i])
                sigmoid_planes(stage + (size_t)o * c->hs, c->hs, c->Oh[i], nb * LANES);
        for (int i = 0; i < g; i++) {
            const float *v = stage + (size_t)i * c->PW;
            size_t pix0 = ((size_t)n * h->H + r + i) * h->W;
            if (c->nout == 2 && c->Oh[0] == 2 && c->Oh[1] == 4) {
                for (int px = 0; px < h->W; px += LANES)
                    heads_2_4(v + px, c->hs, y, pix0 + px, h->W - px);
                continue;
            }
            for (int px = 0; px < h->W; px++) {
                float *y0 = y[0] + (pix0 + px) * c->Oh[0];
                for (int o = 0; o < c->Oh[0]; o++)
                    y0[o] = v[o * c->hs + px];
                if (c->nout > 1) {
                    float *y1 = y[1] + (pix0 + px) * c->Oh[1];
                    for (int o = 0; o < c->Oh[1]; o++)
                        y1[o] = v[(c->Oh[0] + o) * c->hs + px];
                }
            }
        }
    }
}
