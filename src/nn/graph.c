/* graph.c: graph ownership, structural checks and shape inference. */
#include "nn/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[NN_OP_COUNT] = {
    [NN_OP_CONV_2D] = "CONV_2D",
    [NN_OP_DEPTHWISE_CONV_2D] = "DEPTHWISE_CONV_2D",
    [NN_OP_FULLY_CONNECTED] = "FULLY_CONNECTED",
    [NN_OP_MAX_POOL_2D] = "MAX_POOL_2D",
    [NN_OP_ADD] = "ADD",
    [NN_OP_SUB] = "SUB",
    [NN_OP_MUL] = "MUL",
    [NN_OP_DIV] = "DIV",
    [NN_OP_NEG] = "NEG",
    [NN_OP_ABS] = "ABS",
    [NN_OP_RELU] = "RELU",
    [NN_OP_EXP] = "EXP",
    [NN_OP_RESHAPE] = "RESHAPE",
    [NN_OP_REDUCE_MAX] = "REDUCE_MAX",
    [NN_OP_SUM] = "SUM",
    [NN_OP_SOFTMAX] = "SOFTMAX",
    [NN_OP_PRELU] = "PRELU",
    [NN_OP_SIGMOID] = "SIGMOID",
};

const char *nn_op_name(enum nn_op op)
{
    return (unsigned)op < NN_OP_COUNT ? op_names[op] : "?";
}

void *nn_alloc_aligned(size_t nbytes)
{
    if (nbytes == 0) return NULL;
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    return aligned_alloc(64, rounded);
}

void nn_graph_free(struct nn_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->ntensors; i++) {
        free(g->tensors[i].name);
        free(g->tensors[i].data);
    }
    free(g->tensors);
    free(g->nodes);
    free(g);
}

int nn_graph_add_tensor(struct nn_graph *g, const char *name, enum nn_dtype type,
                        const struct nn_shape *shape, void *data, size_t nbytes)
{
    if (g->ntensors >= NN_MAX_TENSORS) return FR_ETOOBIG;
    if (g->ntensors == g->tensors_cap) {
        int cap = g->tensors_cap ? g->tensors_cap * 2 : 64;
        struct nn_tensor *t = realloc(g->tensors, (size_t)cap * sizeof *t);
        if (!t) return FR_ENOMEM;
        g->tensors = t;
        g->tensors_cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return FR_ENOMEM;
    g->tensors[g->ntensors] = (struct nn_tensor){copy, type, *shape, data, nbytes};
    return g->ntensors++;
}

int nn_shape_equal(const struct nn_shape *a, const struct nn_shape *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

void nn_shape_str(const struct nn_shape *s, char *buf, size_t len)
{
    size_t used = 0;
    if (len == 0) return;
    buf[0] = 0;
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < s->ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ",%d" : "%d", (int)s->d[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

int nn_graph_const_f32(const struct nn_graph *g, int t)
{
    return t >= 0 && g->tensors[t].data && g->tensors[t].type == NN_F32;
}

int nn_graph_sole_reader(const struct nn_graph *g, const int *readers, const char *taken,
                         int after, int t)
{
    if (readers[t] != 1) return -1;
    for (int m = after + 1; m < g->nnodes; m++) {
        const struct nn_node *nd = &g->nodes[m];
        for (int i = 0; i < nd->nin; i++)
            if (nd->in[i] == t) return taken[m] || i != 0 ? -1 : m;
    }
    return -1;
}

void nn_window_pads(int32_t in, int32_t out, int k, int stride, int dil, enum nn_padding pad,
                    int *before, int *after)
{
    *before = *after = 0;
    if (pad != NN_PAD_SAME) return;
    int64_t eff = (int64_t)(k - 1) * dil + 1;
    int64_t total = ((int64_t)out - 1) * stride + eff - in;
    if (total <= 0) return;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

void nn_act_range(enum nn_act act, float *lo, float *hi)
{
    switch (act) {
    case NN_ACT_RELU: *lo = 0.0f, *hi = INFINITY; return;
    case NN_ACT_RELU6: *lo = 0.0f, *hi = 6.0f; return;
    case NN_ACT_RELU_N1_TO_1: *lo = -1.0f, *hi = 1.0f; return;
    default: *lo = -INFINITY, *hi = INFINITY; return;
    }
}

/* ---- shape inference ---------------------------------------------------------------------- */

struct ctx {
    const struct nn_graph *g;
    struct nn_shape *shapes;
    char *err;
    int node;
};

static int node_err(const struct ctx *c, int code, const char *why)
{
    return fr_fail(c->err, code, "model: node %d (%s): %s", c->node,
                   nn_op_name(c->g->nodes[c->node].op), why);
}

static const struct nn_tensor *constant(const struct ctx *c, int t, enum nn_dtype type)
{
    if (t < 0) return NULL;
    const struct nn_tensor *x = &c->g->tensors[t];
    return x->data && x->type == type ? x : NULL;
}

/* Output size of a window op along one axis; 0 when the input is too small. */
static int32_t window_out(int32_t in, int k, int stride, int dil, enum nn_padding pad)
{
    if (pad == NN_PAD_SAME) return (in + stride - 1) / stride;
    int64_t eff = (int64_t)(k - 1) * dil + 1;
    if (in < eff) return 0;
    return (int32_t)((in - eff) / stride + 1);
}

static int shape_window(struct ctx *c, const struct nn_shape *x, int kh, int kw, int32_t oc,
                        struct nn_shape *out)
{
    const struct nn_node *nd = &c->g->nodes[c->node];
    if (x->ndim != 4) return node_err(c, FR_EUNSUPPORTED, "input must be 4-D NHWC");
    int32_t oh = window_out(x->d[1], kh, nd->stride_h, nd->dil_h, nd->pad);
    int32_t ow = window_out(x->d[2], kw, nd->stride_w, nd->dil_w, nd->pad);
    if (oh <= 0 || ow <= 0) return node_err(c, FR_EINVAL, "input is smaller than the window");
    *out = (struct nn_shape){4, {x->d[0], oh, ow, oc}};
    return 0;
}

static int shape_bias(struct ctx *c, int bias, int32_t n)
{
    if (bias < 0) return 0;
    const struct nn_tensor *b = constant(c, bias, NN_F32);
    if (!b || b->shape.ndim != 1 || b->shape.d[0] != n)
        return node_err(c, FR_EFORMAT, "bias must be a constant of one value per output channel");
    return 0;
}

static int shape_broadcast(struct ctx *c, const struct nn_shape *a, const struct nn_shape *b,
                           struct nn_shape *out)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    out->ndim = n;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int32_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return node_err(c, FR_EFORMAT, "operand shapes do not broadcast");
        out->d[i] = da > db ? da : db;
    }
    return 0;
}

/* A reduce over the last axis only: the one form these models use. */
static int shape_reduce(struct ctx *c, const struct nn_shape *x, struct nn_shape *out)
{
    const struct nn_node *nd = &c->g->nodes[c->node];
    const struct nn_tensor *ax = constant(c, nd->in[1], NN_I32);
    if (!ax || nn_shape_count(&ax->shape) != 1)
        return node_err(c, FR_EUNSUPPORTED, "axis must be one constant int32");
    int32_t a = *(const int32_t *)ax->data;
    if (a < 0) a += x->ndim;
    if (x->ndim < 1 || a != x->ndim - 1)
        return node_err(c, FR_EUNSUPPORTED, "only a reduction over the last axis is supported");
    *out = *x;
    if (nd->keep_dims)
        out->d[a] = 1;
    else
        out->ndim--;
    return 0;
}

/* Reshape: the declared shape, with -1 inferred. A leading dimension equal to the declared batch
 * follows the actual batch, so a graph declared for batch 2 also runs batch 1. */
static int shape_reshape(struct ctx *c, const struct nn_shape *x, struct nn_shape *out)
{
    const struct nn_node *nd = &c->g->nodes[c->node];
    struct nn_shape ns = nd->new_shape;
    const struct nn_tensor *st = constant(c, nd->in[1], NN_I32);
    if (st) {
        if (st->shape.ndim != 1 || st->shape.d[0] > NN_MAX_DIMS)
            return node_err(c, FR_EUNSUPPORTED, "shape operand must be a short int32 vector");
        ns.ndim = st->shape.d[0];
        memcpy(ns.d, st->data, (size_t)ns.ndim * 4);
    }
    if (ns.ndim < 1) return node_err(c, FR_EFORMAT, "no target shape");
    const struct nn_shape *decl = &c->g->tensors[c->g->inputs[0]].shape;
    const struct nn_shape *in0 = &c->shapes[c->g->inputs[0]];
    if (ns.d[0] > 0 && decl->ndim > 0 && ns.d[0] == decl->d[0] && in0->ndim > 0 &&
        x->ndim > 0 && x->d[0] == in0->d[0])
        ns.d[0] = in0->d[0];
    int64_t known = 1, total = nn_shape_count(x);
    int unknown = -1;
    for (int i = 0; i < ns.ndim; i++) {
        if (ns.d[i] == -1 && unknown < 0)
            unknown = i;
        else if (ns.d[i] <= 0 || ns.d[i] > NN_MAX_DIM)
            return node_err(c, FR_EFORMAT, "target shape has an invalid dimension");
        else
            known *= ns.d[i];
    }
    if (unknown >= 0) {
        if (total % known) return node_err(c, FR_EINVAL, "element count does not divide");
        ns.d[unknown] = (int32_t)(total / known);
    }
    if (nn_shape_count(&ns) != total) return node_err(c, FR_EINVAL, "element count changes");
    *out = ns;
    return 0;
}

static int infer_node(struct ctx *c, struct nn_shape *out)
{
    const struct nn_node *nd = &c->g->nodes[c->node];
    const struct nn_shape *x = &c->shapes[nd->in[0]];
    const struct nn_tensor *w;
    switch (nd->op) {
    case NN_OP_CONV_2D:
        w = constant(c, nd->in[1], NN_F32);
        if (!w || w->shape.ndim != 4)
            return node_err(c, FR_EFORMAT, "filter must be a constant [O,KH,KW,I]");
        if (x->ndim != 4 || x->d[3] != w->shape.d[3])
            return node_err(c, FR_EFORMAT, "input channels do not match the filter");
        if (shape_bias(c, nd->in[2], w->shape.d[0])) return FR_EFORMAT;
        return shape_window(c, x, w->shape.d[1], w->shape.d[2], w->shape.d[0], out);
    case NN_OP_DEPTHWISE_CONV_2D: {
        w = constant(c, nd->in[1], NN_F32);
        if (!w || w->shape.ndim != 4 || w->shape.d[0] != 1)
            return node_err(c, FR_EFORMAT, "filter must be a constant [1,KH,KW,C*M]");
        if (x->ndim != 4 || x->d[3] <= 0 || w->shape.d[3] % x->d[3])
            return node_err(c, FR_EFORMAT, "filter channels are not a multiple of the input's");
        int m = w->shape.d[3] / x->d[3];
        if (nd->depth_mult != 0 && nd->depth_mult != m)
            return node_err(c, FR_EFORMAT, "depth multiplier does not match the filter");
        if (shape_bias(c, nd->in[2], w->shape.d[3])) return FR_EFORMAT;
        return shape_window(c, x, w->shape.d[1], w->shape.d[2], w->shape.d[3], out);
    }
    case NN_OP_FULLY_CONNECTED: {
        w = constant(c, nd->in[1], NN_F32);
        if (!w || w->shape.ndim != 2)
            return node_err(c, FR_EFORMAT, "weights must be a constant [O,I]");
        int64_t n = nn_shape_count(x);
        if (w->shape.d[1] <= 0 || n % w->shape.d[1])
            return node_err(c, FR_EINVAL, "input size is not a multiple of the weights' width");
        if (shape_bias(c, nd->in[2], w->shape.d[0])) return FR_EFORMAT;
        *out = (struct nn_shape){2, {(int32_t)(n / w->shape.d[1]), w->shape.d[0]}};
        return 0;
    }
    case NN_OP_MAX_POOL_2D:
        if (x->ndim != 4) return node_err(c, FR_EUNSUPPORTED, "input must be 4-D NHWC");
        return shape_window(c, x, nd->filter_h, nd->filter_w, x->d[3], out);
    case NN_OP_ADD:
    case NN_OP_SUB:
    case NN_OP_MUL:
    case NN_OP_DIV:
        return shape_broadcast(c, x, &c->shapes[nd->in[1]], out);
    case NN_OP_PRELU:
        w = constant(c, nd->in[1], NN_F32);
        if (!w || x->ndim < 1 || nn_shape_count(&w->shape) != x->d[x->ndim - 1])
            return node_err(c, FR_EFORMAT, "slope must be a constant per channel");
        *out = *x;
        return 0;
    case NN_OP_NEG:
    case NN_OP_ABS:
    case NN_OP_RELU:
    case NN_OP_EXP:
    case NN_OP_SOFTMAX:
    case NN_OP_SIGMOID:
        if (x->ndim < 1) return node_err(c, FR_EFORMAT, "input has no dimensions");
        *out = *x;
        return 0;
    case NN_OP_RESHAPE: return shape_reshape(c, x, out);
    case NN_OP_REDUCE_MAX:
    case NN_OP_SUM: return shape_reduce(c, x, out);
    default: return node_err(c, FR_EUNSUPPORTED, "unknown op");
    }
}

/* How many inputs each op takes: min and max (bias optional). */
static void op_arity(enum nn_op op, int *lo, int *hi)
{
    switch (op) {
    case NN_OP_CONV_2D:
    case NN_OP_DEPTHWISE_CONV_2D:
    case NN_OP_FULLY_CONNECTED: *lo = 2, *hi = 3; return;
    case NN_OP_ADD:
    case NN_OP_SUB:
    case NN_OP_MUL:
    case NN_OP_DIV:
    case NN_OP_PRELU:
    case NN_OP_REDUCE_MAX:
    case NN_OP_SUM: *lo = *hi = 2; return;
    case NN_OP_RESHAPE: *lo = 1, *hi = 2; return;
    default: *lo = *hi = 1; return;
    }
}

int nn_graph_shapes(const struct nn_graph *g, const struct nn_shape *inputs,
                    struct nn_shape *shapes, char err[FR_ERR_LEN])
{
    struct ctx c = {g, shapes, err, 0};
    unsigned char *ready = calloc((size_t)g->ntensors, 1);
    if (!ready) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < g->ntensors; i++) {
        shapes[i] = g->tensors[i].shape;
        ready[i] = g->tensors[i].data != NULL;
    }
    for (int i = 0; i < g->ninputs && !rc; i++) {
        int t = g->inputs[i];
        if (t < 0 || t >= g->ntensors || g->tensors[t].data || g->tensors[t].type != NN_F32) {
            rc = fr_fail(err, FR_EFORMAT, "model: input %d is not a float activation tensor", i);
            break;
        }
        if (inputs) {
            for (int k = 0; k < inputs[i].ndim; k++)
                if (inputs[i].d[k] <= 0 || inputs[i].d[k] > NN_MAX_DIM)
                    rc = fr_fail(err, FR_EINVAL, "input %d: dimension %d out of range", i, k);
            if (!rc && inputs[i].ndim != g->tensors[t].shape.ndim)
                rc = fr_fail(err, FR_EINVAL, "input %d: expected %d dimensions, got %d", i,
                             g->tensors[t].shape.ndim, inputs[i].ndim);
            if (!rc && inputs[i].d[inputs[i].ndim - 1] !=
                           g->tensors[t].shape.d[g->tensors[t].shape.ndim - 1])
                rc = fr_fail(err, FR_EINVAL, "input %d: expected %d channels", i,
                             g->tensors[t].shape.d[g->tensors[t].shape.ndim - 1]);
            if (!rc) shapes[t] = inputs[i];
        }
        ready[t] = 1;
    }
    for (int n = 0; n < g->nnodes && !rc; n++) {
        const struct nn_node *nd = &g->nodes[n];
        c.node = n;
        int lo, hi;
        op_arity(nd->op, &lo, &hi);
        if (nd->nin < lo || nd->nin > hi) {
            rc = node_err(&c, FR_EFORMAT, "wrong number of inputs");
            break;
        }
        for (int k = 0; k < nd->nin && !rc; k++) {
            int t = nd->in[k];
            int optional = k == 2 && hi == 3;
            if (t < 0 && optional) continue;
            if (t < 0 || t >= g->ntensors)
                rc = node_err(&c, FR_EFORMAT, "input tensor index out of range");
            else if (!ready[t])
                rc = node_err(&c, FR_EFORMAT, "reads a tensor before it is written");
            else if (g->tensors[t].type != NN_F32 && !(k == 1 && (nd->op == NN_OP_RESHAPE ||
                                                              nd->op == NN_OP_REDUCE_MAX ||
                                                              nd->op == NN_OP_SUM)))
                rc = node_err(&c, FR_EUNSUPPORTED, "non-float operand");
        }
        if (rc) break;
        if (nd->in[0] < 0) {
            rc = node_err(&c, FR_EFORMAT, "missing input");
            break;
        }
        int o = nd->out;
        if (o < 0 || o >= g->ntensors || ready[o] || g->tensors[o].type != NN_F32) {
            rc = node_err(&c, FR_EFORMAT, "output is not a fresh float tensor");
            break;
        }
        struct nn_shape s;
        if ((rc = infer_node(&c, &s))) break;
        for (int k = 0; k < s.ndim; k++)
            if (s.d[k] <= 0 || s.d[k] > NN_MAX_DIM) rc = node_err(&c, FR_EINVAL, "output too large");
        if (!rc && nn_shape_count(&s) > (int64_t)1 << 31)
            rc = node_err(&c, FR_ETOOBIG, "output tensor too large");
        shapes[o] = s;
        ready[o] = 1;
    }
    for (int i = 0; i < g->noutputs && !rc; i++) {
        int t = g->outputs[i];
        if (t < 0 || t >= g->ntensors || !ready[t] || g->tensors[t].data)
            rc = fr_fail(err, FR_EFORMAT, "model: output %d is never computed", i);
    }
    free(ready);
    return rc;
}

int nn_graph_stats(const struct nn_graph *g, const struct nn_shape *input, struct nn_stats *st,
                   char err[FR_ERR_LEN])
{
    memset(st, 0, sizeof *st);
    struct nn_shape *shapes = calloc((size_t)g->ntensors, sizeof *shapes);
    if (!shapes) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = nn_graph_shapes(g, input, shapes, err);
    for (int i = 0; i < g->ntensors && !rc; i++)
        if (g->tensors[i].data && g->tensors[i].type == NN_F32)
            st->params += nn_shape_count(&g->tensors[i].shape);
    for (int n = 0; n < g->nnodes && !rc; n++) {
        const struct nn_node *nd = &g->nodes[n];
        st->op_count[nd->op]++;
        const struct nn_shape *o = &shapes[nd->out];
        const struct nn_shape *w = nd->nin > 1 ? &g->tensors[nd->in[1]].shape : NULL;
        if (nd->op == NN_OP_CONV_2D)
            st->macs += nn_shape_count(o) * w->d[1] * w->d[2] * w->d[3];
        else if (nd->op == NN_OP_DEPTHWISE_CONV_2D)
            st->macs += nn_shape_count(o) * w->d[1] * w->d[2];
        else if (nd->op == NN_OP_FULLY_CONNECTED)
            st->macs += nn_shape_count(o) * w->d[1];
    }
    free(shapes);
    return rc;
}
