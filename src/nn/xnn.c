/* xnn.c: translation of an nn_graph into an XNNPACK subgraph and runtime. */
#include "nn/xnn.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

struct nn_xnn {
    xnn_runtime_t rt;
    int next;
    struct xnn_external_value *ext; /* inputs, then outputs, as nn_xnn_build listed them */
    int ready;                      /* ext pointers set up in rt */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static enum xnn_status init_status;

static void init_xnnpack(void)
{
    init_status = xnn_initialize(NULL);
}

int nn_xnn_init(char err[FR_ERR_LEN])
{
    pthread_once(&init_once, init_xnnpack);
    if (init_status != xnn_status_success)
        return fr_fail(err, FR_EBACKEND, "XNNPACK initialisation failed (status %d)",
                       (int)init_status);
    return 0;
}

static int node_supported(enum nn_op op)
{
    return op != NN_OP_EXP && op != NN_OP_REDUCE_MAX && op != NN_OP_SUM;
}

int nn_xnn_supports(const struct nn_graph *g, char why[FR_ERR_LEN])
{
    for (int n = 0; n < g->nnodes; n++)
        if (!node_supported(g->nodes[n].op)) {
            fr_fail(why, FR_EUNSUPPORTED, "node %d: XNNPACK has no %s", n,
                    nn_op_name(g->nodes[n].op));
            return 0;
        }
    return 1;
}

static uint32_t define_value(xnn_subgraph_t sg, const struct nn_graph *g,
                             const struct nn_shape *shapes, int t, uint32_t *ids, int *rc)
{
    if (ids[t] != XNN_INVALID_VALUE_ID || *rc) return ids[t];
    size_t dims[NN_MAX_DIMS];
    const struct nn_shape *s = &shapes[t];
    for (int i = 0; i < s->ndim; i++)
        dims[i] = (size_t)s->d[i];
    if (xnn_define_tensor_value(sg, xnn_datatype_fp32, (size_t)s->ndim, dims, g->tensors[t].data,
                                XNN_INVALID_VALUE_ID, 0, &ids[t]) != xnn_status_success)
        *rc = FR_EBACKEND;
    return ids[t];
}

static enum xnn_status define_node(xnn_subgraph_t sg, const struct nn_graph *g,
                                   const struct nn_shape *shapes, const struct nn_node *nd,
                                   uint32_t *ids, int *rc)
{
#define V(t) define_value(sg, g, shapes, (t), ids, rc)
    uint32_t x = V(nd->in[0]);
    uint32_t y = ids[nd->out] != XNN_INVALID_VALUE_ID ? ids[nd->out] : V(nd->out);
    uint32_t w = XNN_INVALID_VALUE_ID, b = XNN_INVALID_VALUE_ID;
    if (nd->nin > 1 && g->tensors[nd->in[1]].type == NN_F32) w = V(nd->in[1]);
    if (nd->nin > 2 && nd->in[2] >= 0) b = V(nd->in[2]);
#undef V
    if (*rc) return xnn_status_out_of_memory;
    float lo, hi;
    nn_act_range(nd->act, &lo, &hi);
    const struct nn_shape *xs = &shapes[nd->in[0]], *ys = &shapes[nd->out];
    switch (nd->op) {
    case NN_OP_CONV_2D:
    case NN_OP_DEPTHWISE_CONV_2D: {
        const struct nn_shape *ws = &g->tensors[nd->in[1]].shape;
        int pt, pb, pl, pr;
        nn_window_pads(xs->d[1], ys->d[1], ws->d[1], nd->stride_h, nd->dil_h, nd->pad, &pt, &pb);
        nn_window_pads(xs->d[2], ys->d[2], ws->d[2], nd->stride_w, nd->dil_w, nd->pad, &pl, &pr);
        if (nd->op == NN_OP_CONV_2D)
            return xnn_define_convolution_2d(
                sg, pt, pr, pb, pl, ws->d[1], ws->d[2], nd->stride_h, nd->stride_w, nd->dil_h,
                nd->dil_w, 1, xs->d[3], ws->d[0], lo, hi, x, w, b, y, 0);
        return xnn_define_depthwise_convolution_2d(
            sg, pt, pr, pb, pl, ws->d[1], ws->d[2], nd->stride_h, nd->stride_w, nd->dil_h,
            nd->dil_w, ws->d[3] / xs->d[3], xs->d[3], lo, hi, x, w, b, y, 0);
    }
    case NN_OP_FULLY_CONNECTED:
        return xnn_define_fully_connected(sg, lo, hi, x, w, b, y, XNN_FLAG_TENSORFLOW_RESHAPE_2D);
    case NN_OP_MAX_POOL_2D: {
        int pt, pb, pl, pr;
        nn_window_pads(xs->d[1], ys->d[1], nd->filter_h, nd->stride_h, 1, nd->pad, &pt, &pb);
        nn_window_pads(xs->d[2], ys->d[2], nd->filter_w, nd->stride_w, 1, nd->pad, &pl, &pr);
        return xnn_define_max_pooling_2d(sg, pt, pr, pb, pl, nd->filter_h, nd->filter_w,
                                         nd->stride_h, nd->stride_w, 1, 1, lo, hi, x, y, 0);
    }
    case NN_OP_ADD: return xnn_define_add2(sg, lo, hi, x, w, y, 0);
    case NN_OP_SUB: return xnn_define_subtract(sg, lo, hi, x, w, y, 0);
    case NN_OP_MUL: return xnn_define_multiply2(sg, lo, hi, x, w, y, 0);
    case NN_OP_DIV: return xnn_define_divide(sg, lo, hi, x, w, y, 0);
    case NN_OP_NEG: return xnn_define_negate(sg, x, y, 0);
    case NN_OP_ABS: return xnn_define_abs(sg, x, y, 0);
    case NN_OP_RELU: return xnn_define_clamp(sg, 0.0f, INFINITY, x, y, 0);
    case NN_OP_SOFTMAX: return xnn_define_softmax(sg, x, y, 0);
    case NN_OP_SIGMOID: return xnn_define_sigmoid(sg, x, y, 0);
    case NN_OP_PRELU: return xnn_define_prelu(sg, x, w, y, 0);
    case NN_OP_RESHAPE: {
        size_t dims[NN_MAX_DIMS];
        for (int i = 0; i < ys->ndim; i++)
            dims[i] = (size_t)ys->d[i];
        return xnn_define_static_reshape(sg, (size_t)ys->ndim, dims, x, y, 0);
    }
    default: return xnn_status_unsupported_parameter;
    }
}

int nn_xnn_build(const struct nn_graph *g, const struct nn_shape *shapes, const int *nodes,
                 int nnodes, const int *ext, int nin, int nout, pthreadpool_t pool,
                 struct nn_xnn **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    int rc = nn_xnn_init(err);
    if (rc) return rc;
    for (int k = 0; k < nnodes; k++)
        if (!node_supported(g->nodes[nodes[k]].op))
            return fr_fail(err, FR_EUNSUPPORTED, "node %d: XNNPACK has no %s", nodes[k],
                           nn_op_name(g->nodes[nodes[k]].op));
    int next = nin + nout;
    struct nn_xnn *x = calloc(1, sizeof *x);
    uint32_t *ids = malloc((size_t)g->ntensors * sizeof *ids);
    xnn_subgraph_t sg = NULL;
    if (!x || !ids || !(x->ext = calloc((size_t)next, sizeof *x->ext))) {
        rc = fr_fail(err, FR_ENOMEM, "out of memory");
        goto done;
    }
    x->next = next;
    for (int i = 0; i < g->ntensors; i++)
        ids[i] = XNN_INVALID_VALUE_ID;
    if (xnn_create_subgraph((uint32_t)next, 0, &sg) != xnn_status_success) {
        rc = fr_fail(err, FR_EBACKEND, "XNNPACK: cannot create a subgraph");
        goto done;
    }
    /* external values: ids 0..nin-1 are the inputs, then the outputs */
    for (int i = 0; i < next && !rc; i++) {
        int t = ext[i];
        if (ids[t] != XNN_INVALID_VALUE_ID) {
            rc = fr_fail(err, FR_EUNSUPPORTED, "XNNPACK path: tensor %d is external twice", t);
            break;
        }
        size_t dims[NN_MAX_DIMS];
        for (int k = 0; k < shapes[t].ndim; k++)
            dims[k] = (size_t)shapes[t].d[k];
        uint32_t flags = i < nin ? XNN_VALUE_FLAG_EXTERNAL_INPUT : XNN_VALUE_FLAG_EXTERNAL_OUTPUT;
        if (xnn_define_tensor_value(sg, xnn_datatype_fp32, (size_t)shapes[t].ndim, dims, NULL,
                                    (uint32_t)i, flags, &ids[t]) != xnn_status_success)
            rc = fr_fail(err, FR_EBACKEND, "XNNPACK: cannot define external tensor %d", i);
        x->ext[i].id = (uint32_t)i;
    }
    for (int k = 0; k < nnodes && !rc; k++) {
        int n = nodes[k];
        enum xnn_status st = define_node(sg, g, shapes, &g->nodes[n], ids, &rc);
        if (rc || st != xnn_status_success)
            rc = fr_fail(err, FR_EBACKEND, "XNNPACK refused node %d (%s): status %d", n,
                         nn_op_name(g->nodes[n].op), (int)st);
    }
    if (!rc && xnn_create_runtime_v2(sg, pool, 0, &x->rt) != xnn_status_success)
        rc = fr_fail(err, FR_EBACKEND, "XNNPACK: cannot create a runtime");
done:
    if (sg) xnn_delete_subgraph(sg);
    free(ids);
    if (rc) {
        nn_xnn_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int nn_xnn_run(struct nn_xnn *x, void *const *ptrs, char err[FR_ERR_LEN])
{
    int same = x->ready;
    for (int i = 0; i < x->next && same; i++)
        same = x->ext[i].data == ptrs[i];
    if (!same) {
        for (int i = 0; i < x->next; i++)
            x->ext[i].data = ptrs[i]; /* XNNPACK only reads external inputs */
        if (xnn_setup_runtime(x->rt, (size_t)x->next, x->ext) != xnn_status_success) {
            x->ready = 0;
            return fr_fail(err, FR_EBACKEND, "XNNPACK: runtime setup failed");
        }
        x->ready = 1;
    }
    if (xnn_invoke_runtime(x->rt) != xnn_status_success)
        return fr_fail(err, FR_EBACKEND, "XNNPACK: runtime invocation failed");
    return 0;
}

void nn_xnn_free(struct nn_xnn *x)
{
    if (!x) return;
    if (x->rt) xnn_delete_runtime(x->rt);
    free(x->ext);
    free(x);
}
