/* ref.c: reference kernels. Every loop is the textbook definition of its op. */
#include "nn/ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void conv2d(const struct nn_node *nd, const float *x, const struct nn_shape *xs,
                   const float *w, const struct nn_shape *ws, const float *b, float *y,
                   const struct nn_shape *ys, int depthwise)
{
    int N = xs->d[0], H = xs->d[1], W = xs->d[2], C = xs->d[3];
    int OH = ys->d[1], OW = ys->d[2], O = ys->d[3], KH = ws->d[1], KW = ws->d[2];
    int pt, pb, pl, pr;
    float lo, hi;
    nn_window_pads(H, OH, KH, nd->stride_h, nd->dil_h, nd->pad, &pt, &pb);
    nn_window_pads(W, OW, KW, nd->stride_w, nd->dil_w, nd->pad, &pl, &pr);
    nn_act_range(nd->act, &lo, &hi);
    int M = depthwise ? O / C : 1;
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int o = 0; o < O; o++) {
                    double acc = b ? b[o] : 0.0;
                    for (int ky = 0; ky < KH; ky++) {
                        int iy = oy * nd->stride_h - pt + ky * nd->dil_h;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < KW; kx++) {
                            int ix = ox * nd->stride_w - pl + kx * nd->dil_w;
                            if (ix < 0 || ix >= W) continue;
                            const float *px = x + (((size_t)n * H + iy) * W + ix) * C;
                            if (depthwise) {
                                acc += (double)px[o / M] * w[((size_t)ky * KW + kx) * O + o];
                            } else {
                                const float *pw = w + (((size_t)o * KH + ky) * KW + kx) * C;
                                for (int c = 0; c < C; c++)
                                    acc += (double)px[c] * pw[c];
                            }
                        }
                    }
                    y[(((size_t)n * OH + oy) * OW + ox) * O + o] = clampf((float)acc, lo, hi);
                }
}

static void fully_connected(const struct nn_node *nd, const float *x, const float *w,
                            const struct nn_shape *ws, const float *b, float *y,
                            const struct nn_shape *ys)
{
    int rows = ys->d[0], O = ws->d[0], I = ws->d[1];
    float lo, hi;
    nn_act_range(nd->act, &lo, &hi);
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < O; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < I; i++)
                acc += (double)x[(size_t)r * I + i] * w[(size_t)o * I + i];
            y[(size_t)r * O + o] = clampf((float)acc, lo, hi);
        }
}

static void max_pool(const struct nn_node *nd, const float *x, const struct nn_shape *xs,
                     float *y, const struct nn_shape *ys)
{
    int N = xs->d[0], H = xs->d[1], W = xs->d[2], C = xs->d[3], OH = ys->d[1], OW = ys->d[2];
    int pt, pb, pl, pr;
    float lo, hi;
    nn_window_pads(H, OH, nd->filter_h, nd->stride_h, 1, nd->pad, &pt, &pb);
    nn_window_pads(W, OW, nd->filter_w, nd->stride_w, 1, nd->pad, &pl, &pr);
    nn_act_range(nd->act, &lo, &hi);
    for (int n = 0; n < N; n++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    for (int ky = 0; ky < nd->filter_h; ky++) {
                        int iy = oy * nd->stride_h - pt + ky;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < nd->filter_w; kx++) {
                            int ix = ox * nd->stride_w - pl + kx;
                            if (ix < 0 || ix >= W) continue;
                            float v = x[(((size_t)n * H + iy) * W + ix) * C + c];
                            if (v > m) m = v;
                        }
                    }
                    y[(((size_t)n * OH + oy) * OW + ox) * C + c] = clampf(m, lo, hi);
                }
}

/* Elementwise binary op with numpy broadcasting over up to NN_MAX_DIMS dimensions. */
static void binary(const struct nn_node *nd, const float *a, const struct nn_shape *as,
                   const float *b, const struct nn_shape *bs, float *y, const struct nn_shape *ys)
{
    int nd_ = ys->ndim;
    int64_t sa[NN_MAX_DIMS], sb[NN_MAX_DIMS];
    int64_t stride_a = 1, stride_b = 1;
    for (int i = nd_ - 1; i >= 0; i--) {
        int ia = i - (nd_ - as->ndim), ib = i - (nd_ - bs->ndim);
        int32_t da = ia >= 0 ? as->d[ia] : 1, db = ib >= 0 ? bs->d[ib] : 1;
        sa[i] = da == 1 ? 0 : stride_a;
        sb[i] = db == 1 ? 0 : stride_b;
        stride_a *= da;
        stride_b *= db;
    }
    float lo, hi;
    nn_act_range(nd->act, &lo, &hi);
    int64_t total = nn_shape_count(ys);
    for (int64_t k = 0; k < total; k++) {
        int64_t rem = k, oa = 0, ob = 0;
        for (int i = nd_ - 1; i >= 0; i--) {
            int64_t idx = rem % ys->d[i];
            rem /= ys->d[i];
            oa += idx * sa[i];
            ob += idx * sb[i];
        }
        float u = a[oa], v = b[ob], r;
        switch (nd->op) {
        case NN_OP_ADD: r = u + v; break;
        case NN_OP_SUB: r = u - v; break;
        case NN_OP_MUL: r = u * v; break;
        default: r = u / v; break;
        }
        y[k] = clampf(r, lo, hi);
    }
}

/* Reductions and softmax over the last axis. */
static void last_axis(enum nn_op op, const float *x, const struct nn_shape *xs, float *y)
{
    int64_t inner = xs->d[xs->ndim - 1], outer = nn_shape_count(xs) / inner;
    for (int64_t r = 0; r < outer; r++) {
        const float *px = x + r * inner;
        float m = -INFINITY;
        double s = 0.0;
        for (int64_t i = 0; i < inner; i++)
            if (px[i] > m) m = px[i];
        if (op == NN_OP_REDUCE_MAX) {
            y[r] = m;
            continue;
        }
        if (op == NN_OP_SUM) {
            for (int64_t i = 0; i < inner; i++)
                s += px[i];
            y[r] = (float)s;
            continue;
        }
        for (int64_t i = 0; i < inner; i++)
            s += exp((double)px[i] - m);
        for (int64_t i = 0; i < inner; i++)
            y[r * inner + i] = (float)(exp((double)px[i] - m) / s);
    }
}

static void unary(enum nn_op op, const float *x, const float *slope, int64_t channels, float *y,
                  int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        switch (op) {
        case NN_OP_NEG: y[i] = -v; break;
        case NN_OP_ABS: y[i] = fabsf(v); break;
        case NN_OP_RELU: y[i] = v > 0 ? v : 0; break;
        case NN_OP_EXP: y[i] = expf(v); break;
        case NN_OP_SIGMOID: y[i] = (float)(1.0 / (1.0 + exp(-(double)v))); break;
        case NN_OP_PRELU: y[i] = v > 0 ? v : v * slope[i % channels]; break;
        default: y[i] = v; break; /* RESHAPE */
        }
    }
}

int nn_ref_run(const struct nn_graph *g, const struct nn_shape *shapes, const float *input,
               float *const *outs, char err[FR_ERR_LEN])
{
    float **buf = calloc((size_t)g->ntensors, sizeof *buf);
    if (!buf) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = 0;
    for (int n = 0; n < g->nnodes && !rc; n++) {
        const struct nn_node *nd = &g->nodes[n];
        int o = nd->out;
        buf[o] = malloc((size_t)nn_shape_count(&shapes[o]) * sizeof(float));
        if (!buf[o]) {
            rc = fr_fail(err, FR_ENOMEM, "out of memory for node %d", n);
            break;
        }
        const float *in[NN_MAX_NODE_INPUTS] = {0};
        for (int k = 0; k < nd->nin; k++) {
            int t = nd->in[k];
            if (t < 0) continue;
            in[k] = g->tensors[t].data ? g->tensors[t].data
                    : t == g->inputs[0] ? input
                                        : buf[t];
        }
        const struct nn_shape *xs = &shapes[nd->in[0]], *ys = &shapes[o];
        switch (nd->op) {
        case NN_OP_CONV_2D:
        case NN_OP_DEPTHWISE_CONV_2D:
            conv2d(nd, in[0], xs, in[1], &g->tensors[nd->in[1]].shape, in[2], buf[o], ys,
                   nd->op == NN_OP_DEPTHWISE_CONV_2D);
            break;
        case NN_OP_FULLY_CONNECTED:
            fully_connected(nd, in[0], in[1], &g->tensors[nd->in[1]].shape, in[2], buf[o], ys);
            break;
        case NN_OP_MAX_POOL_2D: max_pool(nd, in[0], xs, buf[o], ys); break;
        case NN_OP_ADD:
        case NN_OP_SUB:
        case NN_OP_MUL:
        case NN_OP_DIV: binary(nd, in[0], xs, in[1], &shapes[nd->in[1]], buf[o], ys); break;
        case NN_OP_REDUCE_MAX:
        case NN_OP_SUM:
        case NN_OP_SOFTMAX: last_axis(nd->op, in[0], xs, buf[o]); break;
        case NN_OP_NEG:
        case NN_OP_ABS:
        case NN_OP_RELU:
        case NN_OP_EXP:
        case NN_OP_SIGMOID:
        case NN_OP_RESHAPE:
        case NN_OP_PRELU:
            unary(nd->op, in[0], in[1], xs->d[xs->ndim - 1], buf[o], nn_shape_count(ys));
            break;
        default: rc = fr_fail(err, FR_EUNSUPPORTED, "reference: node %d: op %s unknown", n,
                              nn_op_name(nd->op));
        }
    }
    for (int i = 0; i < g->noutputs && !rc; i++) {
        int t = g->outputs[i];
        memcpy(outs[i], t == g->inputs[0] ? input : buf[t], (size_t)nn_shape_count(&shapes[t]) * sizeof(float));
    }
    for (int i = 0; i < g->ntensors; i++)
        free(buf[i]);
    free(buf);
    return rc;
}
