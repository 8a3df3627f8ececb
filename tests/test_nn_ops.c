/* test_nn_ops: every op on XNNPACK equals the reference kernel within tolerance, on random
 * shapes and parameters (the ggml test-backend-ops idea). Each case is a one- or two-node graph
 * built in memory, run on both backends without fusion. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/kern.h"
#include "nn/nn.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int threads = 1; /* of the XNNPACK net compare() builds */

static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static int rint_(int lo, int hi) /* inclusive */
{
    return lo + (int)(rnd() % (uint32_t)(hi - lo + 1));
}

static float rfloat(void)
{
    return (float)(rnd() % 20001) / 10000.0f - 1.0f;
}

static int add_tensor(struct nn_graph *g, struct nn_shape s, int constant)
{
    void *data = NULL;
    size_t n = (size_t)nn_shape_count(&s);
    if (constant) {
        float *f = nn_alloc_aligned(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            f[i] = rfloat();
        data = f;
    }
    char name[32];
    snprintf(name, sizeof name, "t%d", g->ntensors);
    int t = nn_graph_add_tensor(g, name, NN_F32, &s, data, data ? n * sizeof(float) : 0);
    if (t < 0) abort();
    return t;
}

static struct nn_graph *new_graph(struct nn_shape in)
{
    struct nn_graph *g = calloc(1, sizeof *g);
    g->nodes = calloc(8, sizeof *g->nodes);
    g->inputs[0] = add_tensor(g, in, 0);
    g->ninputs = 1;
    return g;
}

static struct nn_node *add_node(struct nn_graph *g, enum nn_op op, int a, int b, int c)
{
    struct nn_node *nd = &g->nodes[g->nnodes++];
    *nd = (struct nn_node){.op = op, .nin = c >= 0 ? 3 : b >= 0 ? 2 : 1, .in = {a, b, c}};
    nd->stride_h = nd->stride_w = nd->dil_h = nd->dil_w = nd->depth_mult = 1;
    nd->out = add_tensor(g, (struct nn_shape){1, {1}}, 0); /* shape filled by inference */
    return nd;
}

/* Runs g (declared input shape) on both backends and compares every output within tol
 * (relative to the largest reference value); bf16: with the engine's bfloat16 kernels, on
 * nthreads threads. Frees g. */
static void compare_with(struct nn_graph *g, const char *what, int bf16, int nthreads, double tol)
{
    char err[FR_ERR_LEN] = "";
    if (g->noutputs == 0) { /* by default the last node's result */
        g->outputs[0] = g->nodes[g->nnodes - 1].out;
        g->noutputs = 1;
    }
    /* declared shapes of the activations come from inference, as a reader would record them */
    struct nn_shape *shapes = calloc((size_t)g->ntensors, sizeof *shapes);
    int rc = nn_graph_shapes(g, NULL, shapes, err);
    CHECK_MSG(rc == 0, "%s: shapes: %s", what, err);
    if (rc) {
        free(shapes);
        nn_graph_free(g);
        return;
    }
    for (int i = 0; i < g->ntensors; i++)
        g->tensors[i].shape = shapes[i];
    struct nn_shape in = shapes[g->inputs[0]];
    free(shapes);
    size_t n = (size_t)nn_shape_count(&in);
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = rfloat() * 2.0f;

    /* the two nets need their own graph: duplicate by building the reference net from a copy */
    struct nn_graph *copy = calloc(1, sizeof *copy);
    *copy = *g;
    copy->tensors = calloc((size_t)g->tensors_cap, sizeof *copy->tensors);
    copy->nodes = malloc((size_t)g->nnodes * sizeof *copy->nodes);
    memcpy(copy->nodes, g->nodes, (size_t)g->nnodes * sizeof *copy->nodes);
    for (int i = 0; i < g->ntensors; i++) {
        copy->tensors[i] = g->tensors[i];
        copy->tensors[i].name = strdup(g->tensors[i].name);
        if (g->tensors[i].data) {
            copy->tensors[i].data = nn_alloc_aligned(g->tensors[i].nbytes);
            memcpy(copy->tensors[i].data, g->tensors[i].data, g->tensors[i].nbytes);
        }
    }
    struct nn_opts xo = {.threads = nthreads, .no_fuse = 1, .bf16 = bf16};
    struct nn_opts ro = {.backend = NN_BACKEND_REF, .no_fuse = 1};
    struct nn_net *xn = NULL, *rn = NULL;
    int rc1 = nn_net_from_graph(g, &xo, &xn, err);
    CHECK_MSG(rc1 == 0, "%s: %s", what, err);
    int rc2 = nn_net_from_graph(copy, &ro, &rn, err);
    CHECK_MSG(rc2 == 0, "%s: %s", what, err);
    if (!rc1 && !rc2) {
        CHECK_MSG(nn_net_backend(xn) == NN_BACKEND_XNNPACK, "%s: not run on XNNPACK", what);
        struct nn_output xo_[NN_MAX_IO], ro_[NN_MAX_IO];
        int e1 = nn_net_run(xn, x, &in, xo_, err);
        CHECK_MSG(e1 == 0, "%s: xnnpack run: %s", what, err);
        int e2 = nn_net_run(rn, x, &in, ro_, err);
        CHECK_MSG(e2 == 0, "%s: reference run: %s", what, err);
        for (int o = 0; !e1 && !e2 && o < nn_net_noutputs(xn); o++) {
            CHECK(nn_shape_equal(&xo_[o].shape, &ro_[o].shape));
            size_t m = (size_t)nn_shape_count(&ro_[o].shape);
            double maxerr = 0, maxref = 1e-30;
            for (size_t i = 0; i < m; i++) {
                maxerr = fmax(maxerr, fabs((double)xo_[o].data[i] - ro_[o].data[i]));
                maxref = fmax(maxref, fabs((double)ro_[o].data[i]));
            }
            CHECK_MSG(maxerr / maxref <= tol, "%s: output %d: relative error %.3g", what, o,
                      maxerr / maxref);
        }
    }
    nn_net_close(xn);
    nn_net_close(rn);
    free(x);
}

static void compare(struct nn_graph *g, const char *what)
{
    compare_with(g, what, 0, threads, 1e-4);
}

static struct nn_shape nhwc(int n, int h, int w, int c)
{
    return (struct nn_shape){4, {n, h, w, c}};
}

static void test_conv(int depthwise, int iter)
{
    int c = rint_(1, 20), m = depthwise ? rint_(1, 2) : 1, o = depthwise ? c * m : rint_(1, 24);
    int kh = rint_(1, 5), kw = rint_(1, 5), sh = rint_(1, 2), sw = rint_(1, 2);
    int dh = rint_(1, 2), dw = rint_(1, 2);
    int h = rint_((kh - 1) * dh + 1, 20), w = rint_((kw - 1) * dw + 1, 20);
    struct nn_graph *g = new_graph(nhwc(rint_(1, 2), h, w, c));
    int wt = add_tensor(g, depthwise ? nhwc(1, kh, kw, o) : nhwc(o, kh, kw, c), 1);
    int bias = rint_(0, 3) ? add_tensor(g, (struct nn_shape){1, {o}}, 1) : -1;
    struct nn_node *nd = add_node(g, depthwise ? NN_OP_DEPTHWISE_CONV_2D : NN_OP_CONV_2D,
                                  g->inputs[0], wt, bias);
    if (bias < 0) nd->nin = 3; /* optional bias absent: in[2] = -1 */
    nd->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    nd->stride_h = sh, nd->stride_w = sw, nd->dil_h = dh, nd->dil_w = dw;
    nd->depth_mult = m;
    nd->act = (enum nn_act)rint_(0, 3);
    char what[160];
    snprintf(what, sizeof what, "%s #%d in %dx%dx%d k%dx%d s%d,%d d%d,%d %s act%d o%d",
             depthwise ? "depthwise" : "conv", iter, h, w, c, kh, kw, sh, sw, dh, dw,
             nd->pad == NN_PAD_SAME ? "same" : "valid", nd->act, o);
    compare(g, what);
}

static void test_fc(int iter)
{
    int rows = rint_(1, 4), in = rint_(1, 64), out = rint_(1, 40);
    struct nn_graph *g = new_graph((struct nn_shape){4, {rows, 1, 1, in}});
    int wt = add_tensor(g, (struct nn_shape){2, {out, in}}, 1);
    int b = add_tensor(g, (struct nn_shape){1, {out}}, 1);
    struct nn_node *nd = add_node(g, NN_OP_FULLY_CONNECTED, g->inputs[0], wt, b);
    nd->act = (enum nn_act)rint_(0, 1);
    char what[64];
    snprintf(what, sizeof what, "fully connected #%d %dx%d->%d", iter, rows, in, out);
    compare(g, what);
}

static void test_pool(int iter)
{
    int fh = rint_(1, 3), fw = rint_(1, 3), s = rint_(1, 2);
    if (fh * fw == 1) fw = 2; /* XNNPACK rejects a 1x1 pooling window (it is a copy) */
    struct nn_graph *g = new_graph(nhwc(rint_(1, 2), rint_(fh, 17), rint_(fw, 17), rint_(1, 12)));
    struct nn_node *nd = add_node(g, NN_OP_MAX_POOL_2D, g->inputs[0], -1, -1);
    nd->filter_h = fh, nd->filter_w = fw, nd->stride_h = nd->stride_w = s;
    nd->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    char what[64];
    snprintf(what, sizeof what, "max pool #%d %dx%d s%d", iter, fh, fw, s);
    compare(g, what);
}

/* Binary ops: with a broadcast constant, and with two activations. */
static void test_binary(enum nn_op op, int iter)
{
    struct nn_shape s = nhwc(rint_(1, 2), rint_(1, 9), rint_(1, 9), rint_(1, 16));
    struct nn_graph *g = new_graph(s);
    int other;
    if (iter % 2) {
        struct nn_shape cs = {1, {s.d[3]}};
        other = add_tensor(g, cs, 1);
        if (op == NN_OP_DIV) { /* keep divisors away from zero */
            float *f = g->tensors[other].data;
            for (int i = 0; i < s.d[3]; i++)
                f[i] = f[i] >= 0 ? f[i] + 0.5f : f[i] - 0.5f;
        }
    } else {
        struct nn_node *a = add_node(g, op == NN_OP_DIV ? NN_OP_SIGMOID : NN_OP_ABS,
                                     g->inputs[0], -1, -1);
        other = a->out;
    }
    struct nn_node *nd = add_node(g, op, g->inputs[0], other, -1);
    nd->act = (enum nn_act)rint_(0, 3);
    char what[64];
    snprintf(what, sizeof what, "%s #%d %s", nn_op_name(op), iter,
             iter % 2 ? "constant" : "activations");
    compare(g, what);
}

static void test_unary(enum nn_op op, int iter)
{
    struct nn_shape s = rint_(0, 1) ? nhwc(rint_(1, 2), rint_(1, 9), rint_(1, 9), rint_(1, 16))
                                    : (struct nn_shape){2, {rint_(1, 4), rint_(1, 30)}};
    struct nn_graph *g = new_graph(s);
    int slope = -1;
    if (op == NN_OP_PRELU) slope = add_tensor(g, (struct nn_shape){1, {s.d[s.ndim - 1]}}, 1);
    struct nn_node *nd = add_node(g, op, g->inputs[0], slope, -1);
    if (op == NN_OP_RESHAPE) nd->new_shape = (struct nn_shape){2, {-1, s.d[s.ndim - 1]}};
    char what[64];
    snprintf(what, sizeof what, "%s #%d", nn_op_name(op), iter);
    compare(g, what);
}

/* The engine's own kernels (kern.h) and what they fuse: each graph is built so that a kernel
 * claims it (checked when the CPU has them), then compared with the reference like any op. */
static void expect_claim_with(struct nn_graph *g, int n, int bf16, int count, const char *what)
{
    if (!nn_kern_available() || (bf16 && !nn_kern_bf16_available())) return;
    char err[FR_ERR_LEN];
    struct nn_shape *shapes = calloc((size_t)g->ntensors, sizeof *shapes);
    int *readers = calloc((size_t)g->ntensors, sizeof *readers);
    char *taken = calloc((size_t)g->nnodes, 1);
    CHECK(nn_graph_shapes(g, NULL, shapes, err) == 0);
    for (int k = 0; k < g->nnodes; k++)
        for (int i = 0; i < g->nodes[k].nin; i++)
            if (g->nodes[k].in[i] >= 0) readers[g->nodes[k].in[i]]++;
    for (int i = 0; i < g->noutputs; i++)
        readers[g->outputs[i]]++;
    struct nn_kern *k = NULL;
    int nodes[NN_KERN_MAX_NODES], got = 0;
    CHECK_MSG(nn_kern_claim(g, shapes, readers, taken, n, bf16, &k, nodes, &got) == 1 &&
                  got == count,
              "%s: kernel claims %d nodes, expected %d", what, got, count);
    nn_kern_free(k);
    free(shapes), free(readers), free(taken);
}

static void expect_claim(struct nn_graph *g, int n, int count, const char *what)
{
    expect_claim_with(g, n, 0, count, what);
}

static int prelu_after(struct nn_graph *g, int x, int channels)
{
    int slope = add_tensor(g, (struct nn_shape){1, {channels}}, 1);
    return add_node(g, NN_OP_PRELU, x, slope, -1)->out;
}

/* A narrow convolution (< 16 outputs) with PReLU and sometimes a 2x2 max pool after it, or two
 * of them reading one input. */
static void test_narrow(int iter)
{
    int c = rint_(1, 20), o = rint_(1, 15), k = rint_(1, 3), s = rint_(1, 2);
    int h = rint_(k, 24), w = rint_(k, 24), pair = iter % 3 == 2, pool = iter % 3 == 1;
    struct nn_graph *g = new_graph(nhwc(rint_(1, 2), h, w, c));
    enum nn_padding pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    int o1 = pair ? rint_(1, 16 - o) : 0, outs[2], nouts = 0, claimed = 2;
    for (int j = 0; j < 1 + pair; j++) {
        int oj = j ? o1 : o;
        int wt = add_tensor(g, nhwc(oj, k, k, c), 1);
        int b = add_tensor(g, (struct nn_shape){1, {oj}}, 1);
        struct nn_node *nd = add_node(g, NN_OP_CONV_2D, g->inputs[0], wt, b);
        nd->pad = pad, nd->stride_h = nd->stride_w = s;
        int y = nd->out;
        if (!pair || j == 1) y = prelu_after(g, y, oj);
        outs[nouts++] = y;
    }
    if (pair) claimed = 3;
    struct nn_shape tmp[32];
    char err[FR_ERR_LEN];
    if (pool && nn_graph_shapes(g, NULL, tmp, err) == 0 && tmp[outs[0]].d[1] >= 2 &&
        tmp[outs[0]].d[2] >= 2) {
        struct nn_node *p = add_node(g, NN_OP_MAX_POOL_2D, outs[0], -1, -1);
        p->filter_h = p->filter_w = 2, p->stride_h = p->stride_w = 2;
        p->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
        outs[0] = p->out;
        claimed = 3;
    }
    for (int i = 0; i < nouts; i++)
        g->outputs[i] = outs[i];
    g->noutputs = nouts;
    char what[160];
    snprintf(what, sizeof what, "narrow #%d in %dx%dx%d k%d s%d o%d+%d %s%s", iter, h, w, c, k, s,
             o, o1, pad == NN_PAD_SAME ? "same" : "valid", claimed == 3 && !pair ? " pooled" : "");
    expect_claim(g, 0, claimed, what);
    compare(g, what);
}

/* Depthwise 3x3 (stride 1, and stride 2 without padding before: the blocked path; channels not
 * always a multiple of 16) and global windows (the whole picture, MobileFaceNet's last layer),
 * with the PReLU after them and sometimes the one before them fused in. */
static void test_depthwise_kernel(int iter)
{
    int global = iter % 4 == 3, pre = iter % 2, c = rint_(0, 1) ? 16 * rint_(1, 4) : rint_(1, 40);
    int stride = !global && iter % 3 == 0 ? 2 : 1;
    int h = rint_(1, 20), w = global ? rint_(1, 20) : rint_(10, 40);
    enum nn_padding pad = global || rint_(0, 1) ? NN_PAD_VALID : NN_PAD_SAME;
    if (stride == 2) { /* at least 8 outputs wide; SAME pads only after on even sizes */
        w = 2 * rint_(9, 20), h = 2 * rint_(2, 10);
    }
    if (!global && pad == NN_PAD_VALID && h < 3) pad = NN_PAD_SAME;
    struct nn_graph *g = new_graph(nhwc(rint_(1, 2), h, w, c));
    int x = pre ? prelu_after(g, g->inputs[0], c) : g->inputs[0];
    int wt = add_tensor(g, nhwc(1, global ? h : 3, global ? w : 3, c), 1);
    int b = add_tensor(g, (struct nn_shape){1, {c}}, 1);
    struct nn_node *nd = add_node(g, NN_OP_DEPTHWISE_CONV_2D, x, wt, b);
    nd->pad = pad, nd->stride_h = nd->stride_w = stride;
    prelu_after(g, nd->out, c);
    char what[160];
    snprintf(what, sizeof what, "depthwise kernel #%d in %dx%dx%d %s s%d%s", iter, h, w, c,
             global                   ? "global"
             : nd->pad == NN_PAD_SAME ? "3x3 same"
                                      : "3x3 valid",
             stride, pre ? " after a PReLU" : "");
    expect_claim(g, pre, 2 + pre, what);
    compare(g, what);
}

/* A max pool with the PReLU before it fused in (R-Net's and O-Net's 3x3 stride 2 pools, SAME
 * and VALID; channels not always a multiple of 16), with a fused clamp sometimes. */
static void test_pool_kernel(int iter)
{
    int f = rint_(2, 3), s = rint_(1, 2), c = rint_(0, 1) ? 16 * rint_(1, 4) : rint_(1, 70);
    struct nn_graph *g = new_graph(nhwc(rint_(1, 3), rint_(f, 25), rint_(f, 25), c));
    int x = prelu_after(g, g->inputs[0], c);
    struct nn_node *nd = add_node(g, NN_OP_MAX_POOL_2D, x, -1, -1);
    nd->filter_h = nd->filter_w = f, nd->stride_h = nd->stride_w = s;
    nd->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    nd->act = iter % 4 == 3 ? NN_ACT_RELU6 : NN_ACT_NONE;
    char what[160];
    snprintf(what, sizeof what, "pool kernel #%d %dx%d s%d c%d %s%s", iter, f, f, s, c,
             nd->pad == NN_PAD_SAME ? "same" : "valid", nd->act ? " relu6" : "");
    expect_claim(g, 1, 2, what);
    compare(g, what);
}

/* A 1x1 convolution in bfloat16 products (an even number of inputs, a multiple of 16 outputs;
 * pixel counts that leave a partial block), with the PReLU after it or a clamp, sometimes a
 * residual ADD after that, on one and two threads. bfloat16 keeps 8 bits of each factor: within
 * 2e-2 of the float32 reference's largest output, 4e-2 under a clamp (which keeps that largest
 * output smaller than the sums whose rounding it measures). */
static void test_pointwise_kernel(int iter)
{
    int c = 2 * rint_(1, 100), o = 16 * rint_(1, 8), n = rint_(1, 2);
    int h = rint_(1, 20), w = rint_(1, 20), prelu = iter % 3 != 2, res = iter % 4 == 1;
    if (res) c = o; /* a residual connection: the output adds to the input */
    struct nn_graph *g = new_graph(nhwc(n, h, w, c));
    int wt = add_tensor(g, nhwc(o, 1, 1, c), 1);
    int b = add_tensor(g, (struct nn_shape){1, {o}}, 1);
    struct nn_node *nd = add_node(g, NN_OP_CONV_2D, g->inputs[0], wt, b);
    nd->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    int y = nd->out;
    if (prelu)
        y = prelu_after(g, y, o);
    else
        nd->act = NN_ACT_RELU6;
    if (res) add_node(g, NN_OP_ADD, y, g->inputs[0], -1);
    char what[160];
    snprintf(what, sizeof what, "pointwise bf16 kernel #%d %dx%dx%dx%d -> %d%s%s", iter, n, h, w,
             c, o, prelu ? " prelu" : " relu6", res ? " + residual" : "");
    expect_claim_with(g, 0, 1, 1 + prelu + res, what);
    compare_with(g, what, 1, 1 + iter % 2, prelu ? 2e-2 : 4e-2);
}

/* Any other convolution in bfloat16 products (at least 8 inputs, odd counts too; at least 16
 * outputs, not always a multiple of 16; strides 1 and 2, SAME and VALID), with the PReLU after
 * it or a clamp, on one and two threads. */
static void test_conv_bf16_kernel(int iter)
{
    int c = rint_(8, 70), o = rint_(16, 80), k = rint_(1, 3), s = rint_(1, 2);
    int h = rint_(k, 20), w = rint_(k, 20), prelu = iter % 3 != 2;
    if (k == 1 && s == 1 && c % 2 == 0) c++; /* else the pointwise kernel's */
    struct nn_graph *g = new_graph(nhwc(rint_(1, 2), h, w, c));
    int wt = add_tensor(g, nhwc(o, k, k, c), 1);
    int b = add_tensor(g, (struct nn_shape){1, {o}}, 1);
    struct nn_node *nd = add_node(g, NN_OP_CONV_2D, g->inputs[0], wt, b);
    nd->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    nd->stride_h = nd->stride_w = s;
    if (prelu)
        prelu_after(g, nd->out, o);
    else
        nd->act = NN_ACT_RELU6;
    char what[160];
    snprintf(what, sizeof what, "conv bf16 kernel #%d %dx%dx%d k%d s%d %s -> %d%s", iter, h, w, c,
             k, s, nd->pad == NN_PAD_SAME ? "same" : "valid", o, prelu ? " prelu" : " relu6");
    expect_claim_with(g, 0, 1, 1 + prelu, what);
    compare_with(g, what, 1, 1 + iter % 2, prelu ? 2e-2 : 4e-2);
}

/* P-Net's body as one chain (kern_chain.h): a 3x3 convolution with PReLU (slopes of either sign)
 * and a 2x2 pool (SAME or VALID, odd and even sizes), one to three 3x3 convolutions with or
 * without their PReLU, then one or two 1x1 heads, each with or without a sigmoid; on one thread
 * and on three (rows split unevenly, each piece starting its rings afresh); in float32, or with
 * bf16 its 3x3 layers after the first in bfloat16 products (odd channel counts too: a pair's
 * upper half padded), within 2e-2. */
/* Weights of a chain scaled by 1 / sqrt(fan-in), as trained nets have them: activations stay
 * near 1 through the layers instead of growing by ~sqrt(9 C) per layer (logits in the
 * thousands would make a sigmoid's output hinge on float rounding). */
static int chain_weights(struct nn_graph *g, int o, int k, int c)
{
    int t = add_tensor(g, nhwc(o, k, k, c), 1);
    float *w = g->tensors[t].data, f = 1.0f / sqrtf((float)(k * k * c));
    for (int i = 0; i < o * k * k * c; i++)
        w[i] *= f;
    return t;
}

static void test_chain(int iter, int bf16)
{
    int c0 = rint_(1, 4), convs = rint_(1, 3), two = rint_(0, 1);
    int h = rint_(4 * convs + 4, 4 * convs + 30), w = rint_(4 * convs + 4, 4 * convs + 70);
    struct nn_graph *g = new_graph(nhwc(rint_(1, 2), h, w, c0));
    g->nodes = realloc(g->nodes, 20 * sizeof *g->nodes);
    int o = rint_(1, 12), c = c0, x = g->inputs[0], nodes = 0;
    char what[200];
    int len = snprintf(what, sizeof what, "chain%s #%d in %dx%dx%d: %d", bf16 ? " bf16" : "", iter,
                       h, w, c0, o);
    for (int layer = 0; layer <= convs; layer++) {
        int wt = chain_weights(g, o, 3, c);
        int b = add_tensor(g, (struct nn_shape){1, {o}}, 1);
        struct nn_node *nd = add_node(g, NN_OP_CONV_2D, x, wt, b);
        nd->pad = NN_PAD_VALID;
        x = nd->out, nodes++;
        if (layer == 0 || rint_(0, 3)) x = prelu_after(g, x, o), nodes++;
        if (layer == 0) {
            struct nn_node *p = add_node(g, NN_OP_MAX_POOL_2D, x, -1, -1);
            p->filter_h = p->filter_w = 2, p->stride_h = p->stride_w = 2;
            p->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
            x = p->out, nodes++;
        }
        c = o, o = layer < convs ? rint_(1, 40) : 0;
        if (o) len += snprintf(what + len, sizeof what - (size_t)len, "-%d", o);
    }
    int o0 = rint_(1, two ? 7 : 8), o1 = two ? rint_(1, 8 - o0) : 0;
    for (int k = 0; k < 1 + two; k++) {
        int ok = k ? o1 : o0;
        int wt = chain_weights(g, ok, 1, c);
        int b = add_tensor(g, (struct nn_shape){1, {ok}}, 1);
        struct nn_node *nd = add_node(g, NN_OP_CONV_2D, x, wt, b);
        nd->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
        g->outputs[k] = nd->out, nodes++;
        if (rint_(0, 1)) g->outputs[k] = add_node(g, NN_OP_SIGMOID, nd->out, -1, -1)->out, nodes++;
    }
    g->noutputs = 1 + two;
    snprintf(what + len, sizeof what - (size_t)len, " heads %d+%d", o0, o1);
    expect_claim_with(g, 0, bf16, nodes, what);
    compare_with(g, what, bf16, iter % 2 ? 3 : 1, bf16 ? 2e-2 : 1e-4);
}

/* R-Net's and O-Net's convolutions before their fully connected layers (kern_small.h): a
 * convolution of 3 channels, 3 wide and 1 to 4 high, to 16..32 outputs (some in bfloat16
 * products), or in float32 of 1 to 64 channels, up to 3x3, to 16..64 outputs; its PReLU (slopes
 * of either sign, or all >= 0: then applied after the pool) and a 2x2 or 3x3 max pool of
 * stride 1 or 2, SAME or VALID; on one thread and on three (each piece starting its ring
 * afresh). */
static void test_small_kernel(int iter)
{
    int wide = iter % 4 == 3, c = wide ? rint_(1, 64) : 3, kw = wide ? rint_(1, 3) : 3;
    int o = rint_(16, wide ? 64 : 32), kh = rint_(1, wide ? 3 : 4), f = rint_(2, 3), s = rint_(1, 2);
    int h = rint_(kh + f - 1, 30), w = rint_(kw + 3, 50), positive = iter % 2;
    if (wide && c == 3 && kw == 3) c = 4; /* else the colour kind's */
    struct nn_graph *g = new_graph(nhwc(rint_(1, 3), h, w, c));
    int wt = add_tensor(g, nhwc(o, kh, kw, c), 1);
    int b = add_tensor(g, (struct nn_shape){1, {o}}, 1);
    struct nn_node *nd = add_node(g, NN_OP_CONV_2D, g->inputs[0], wt, b);
    nd->pad = NN_PAD_VALID;
    int y = prelu_after(g, nd->out, o);
    if (positive) {
        float *sl = g->tensors[g->nodes[1].in[1]].data;
        for (int i = 0; i < o; i++)
            sl[i] = fabsf(sl[i]);
    }
    struct nn_node *p = add_node(g, NN_OP_MAX_POOL_2D, y, -1, -1);
    p->filter_h = p->filter_w = f, p->stride_h = p->stride_w = s;
    p->pad = rint_(0, 1) ? NN_PAD_SAME : NN_PAD_VALID;
    char what[160];
    int bf16 = !wide && iter % 3 == 1;
    snprintf(what, sizeof what, "small kernel #%d in %dx%dx%d k%dx%d -> %d, pool %dx%d s%d %s%s%s",
             iter, h, w, c, kh, kw, o, f, f, s, p->pad == NN_PAD_SAME ? "same" : "valid",
             positive ? ", slopes >= 0" : "", bf16 ? ", bf16" : "");
    expect_claim_with(g, 0, bf16, 3, what);
    compare_with(g, what, bf16, iter % 3 == 2 ? 3 : 1, bf16 ? 2e-2 : 1e-4);
}

/* R-Net's and O-Net's hidden layer (kern_fc.h): a fully connected layer of 64 to 256 outputs
 * with its PReLU, on 1 to 13 rows (blocks of rows not always full), from a 4-D input it
 * flattens (odd widths too); on one thread and on three; half of them in bfloat16 products. */
static void test_fc_kernel(int iter)
{
    int rows = rint_(1, 13), h = rint_(1, 3), in = rint_(1, 200), out = 64 * rint_(1, 4);
    struct nn_graph *g = new_graph(nhwc(rows, h, h, in));
    int wt = add_tensor(g, (struct nn_shape){2, {out, h * h * in}}, 1);
    int b = add_tensor(g, (struct nn_shape){1, {out}}, 1);
    struct nn_node *nd = add_node(g, NN_OP_FULLY_CONNECTED, g->inputs[0], wt, b);
    prelu_after(g, nd->out, out);
    char what[96];
    int bf16 = iter % 2;
    snprintf(what, sizeof what, "fc kernel #%d %dx%d->%d%s", iter, rows, h * h * in, out,
             bf16 ? " bf16" : "");
    expect_claim_with(g, 0, bf16, 2, what);
    compare_with(g, what, bf16, iter % 3 == 2 ? 3 : 1, bf16 ? 2e-2 : 1e-4);
}

/* Ops XNNPACK lacks: the net falls back to the reference kernels and still runs. */
static void test_fallback(void)
{
    char err[FR_ERR_LEN];
    struct nn_graph *g = new_graph((struct nn_shape){2, {3, 5}});
    struct nn_node *e = add_node(g, NN_OP_EXP, g->inputs[0], -1, -1);
    int axis_t;
    {
        int32_t *ax = nn_alloc_aligned(4);
        *ax = -1;
        struct nn_shape s1 = {1, {1}};
        axis_t = nn_graph_add_tensor(g, "axis", NN_I32, &s1, ax, 4);
    }
    struct nn_node *sum = add_node(g, NN_OP_SUM, e->out, axis_t, -1);
    sum->keep_dims = 1;
    g->outputs[0] = sum->out;
    g->noutputs = 1;
    struct nn_shape shapes[8];
    CHECK(nn_graph_shapes(g, NULL, shapes, err) == 0);
    for (int i = 0; i < g->ntensors; i++)
        g->tensors[i].shape = shapes[i];
    struct nn_net *net;
    struct nn_opts o = {.threads = 1, .no_fuse = 1};
    CHECK(nn_net_from_graph(g, &o, &net, err) == 0);
    CHECK(nn_net_backend(net) == NN_BACKEND_REF);
    float x[15];
    for (int i = 0; i < 15; i++)
        x[i] = (float)i / 10.0f;
    struct nn_shape in = {2, {3, 5}};
    struct nn_output out[NN_MAX_IO];
    CHECK(nn_net_run(net, x, &in, out, err) == 0);
    for (int r = 0; r < 3; r++) {
        double s = 0;
        for (int i = 0; i < 5; i++)
            s += exp(x[r * 5 + i]);
        CHECK(fabs(out[0].data[r] - s) < 1e-4 * s);
    }
    /* a shape the graph cannot take is an error, not a crash */
    struct nn_shape bad = {2, {3, 6}};
    CHECK(nn_net_run(net, x, &bad, out, err) == FR_EINVAL);
    nn_net_close(net);
}

int main(void)
{
    for (int i = 0; i < 60; i++)
        test_conv(0, i);
    for (int i = 0; i < 60; i++)
        test_conv(1, i);
    for (int i = 0; i < 20; i++)
        test_fc(i);
    for (int i = 0; i < 20; i++)
        test_pool(i);
    static const enum nn_op binary[] = {NN_OP_ADD, NN_OP_SUB, NN_OP_MUL, NN_OP_DIV};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 8; i++)
            test_binary(binary[k], i);
    static const enum nn_op unary[] = {NN_OP_NEG,     NN_OP_ABS,     NN_OP_RELU,   NN_OP_PRELU,
                                       NN_OP_SOFTMAX, NN_OP_SIGMOID, NN_OP_RESHAPE};
    for (int k = 0; k < 7; k++)
        for (int i = 0; i < 6; i++)
            test_unary(unary[k], i);
    for (int i = 0; i < 60; i++)
        test_narrow(i);
    for (int i = 0; i < 60; i++)
        test_depthwise_kernel(i);
    for (int i = 0; i < 40; i++)
        test_pool_kernel(i);
    for (int i = 0; i < 30; i++)
        test_pointwise_kernel(i);
    for (int i = 0; i < 60; i++)
        test_conv_bf16_kernel(i);
    for (int i = 0; i < 40; i++)
        test_chain(i, 0);
    for (int i = 0; i < 40; i++)
        test_chain(i, 1);
    for (int i = 0; i < 60; i++)
        test_small_kernel(i);
    for (int i = 0; i < 30; i++)
        test_fc_kernel(i);
    test_fallback();
    return check_done();
}
