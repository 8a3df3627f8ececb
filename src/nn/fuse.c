/* fuse.c: pattern rewrites of split-up PReLU and softmax forms into single nodes.
 *
 * Each pattern is matched from its last node (the anchor) backwards through producers. A match
 * replaces the anchor by the fused node, in place, and deletes the other nodes, which keeps the
 * execution order valid: the fused node's input was produced before the pattern's first node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"

struct index {
    int *producer; /* node writing each tensor, or -1 */
    int *readers;  /* number of node inputs and graph outputs reading each tensor */
};

static int index_build(const struct nn_graph *g, struct index *ix)
{
    ix->producer = malloc((size_t)g->ntensors * sizeof(int));
    ix->readers = calloc((size_t)g->ntensors, sizeof(int));
    if (!ix->producer || !ix->readers) return FR_ENOMEM;
    for (int t = 0; t < g->ntensors; t++)
        ix->producer[t] = -1;
    for (int n = 0; n < g->nnodes; n++) {
        const struct nn_node *nd = &g->nodes[n];
        if (nd->op == NN_OP_COUNT) continue; /* deleted */
        ix->producer[nd->out] = n;
        for (int k = 0; k < nd->nin; k++)
            if (nd->in[k] >= 0) ix->readers[nd->in[k]]++;
    }
    for (int i = 0; i < g->noutputs; i++)
        ix->readers[g->outputs[i]] += 1000; /* never an intermediate */
    return 0;
}

static void index_free(struct index *ix)
{
    free(ix->producer);
    free(ix->readers);
    *ix = (struct index){NULL, NULL};
}

/* The node producing t with op, read only once (by the pattern), or NULL. */
static struct nn_node *only(const struct nn_graph *g, const struct index *ix, int t, enum nn_op op,
                            int readers)
{
    if (t < 0 || ix->producer[t] < 0 || ix->readers[t] != readers) return NULL;
    struct nn_node *nd = &g->nodes[ix->producer[t]];
    return nd->op == op && nd->act == NN_ACT_NONE ? nd : NULL;
}

/* Makes a [C] slope tensor scale * c from constant c when c is per-channel over the last axis
 * (every dimension but the last is 1) or a scalar. Returns its index or a negative code. */
static int make_slope(struct nn_graph *g, int c, int channels, float scale)
{
    const struct nn_tensor *ct = &g->tensors[c];
    int64_t count = nn_shape_count(&ct->shape);
    for (int i = 0; i + 1 < ct->shape.ndim; i++)
        if (ct->shape.d[i] != 1) return FR_EUNSUPPORTED;
    if (count != channels && count != 1) return FR_EUNSUPPORTED;
    float *s = nn_alloc_aligned((size_t)channels * sizeof(float));
    if (!s) return FR_ENOMEM;
    const float *src = ct->data;
    for (int i = 0; i < channels; i++)
        s[i] = scale * src[count == 1 ? 0 : i];
    struct nn_shape shape = {1, {channels}};
    char name[300];
    snprintf(name, sizeof name, "%s/prelu_slope", g->tensors[c].name);
    int t = nn_graph_add_tensor(g, name, NN_F32, &shape, s, (size_t)channels * sizeof(float));
    if (t < 0) free(s);
    return t;
}

static void set_fused(struct nn_node *anchor, enum nn_op op, int x, int slope)
{
    int out = anchor->out;
    memset(anchor, 0, sizeof *anchor);
    anchor->op = op;
    anchor->out = out;
    anchor->in[0] = x;
    anchor->in[1] = slope;
    anchor->in[2] = -1;
    anchor->nin = slope >= 0 ? 2 : 1;
}

/* ADD(RELU(x), MUL(c, q)) where q is NEG(RELU(NEG(x))) (slope c) or SUB(x, ABS(x)) (slope 2c). */
static int try_prelu(struct nn_graph *g, const struct index *ix, struct nn_node *add)
{
    if (add->op != NN_OP_ADD || add->act != NN_ACT_NONE) return 0;
    for (int side = 0; side < 2; side++) {
        struct nn_node *relu = only(g, ix, add->in[side], NN_OP_RELU, 1);
        struct nn_node *mul = only(g, ix, add->in[1 - side], NN_OP_MUL, 1);
        if (!relu || !mul) continue;
        int x = relu->in[0];
        int ci = nn_graph_const_f32(g, mul->in[0]) ? 0 : nn_graph_const_f32(g, mul->in[1]) ? 1 : -1;
        if (ci < 0) continue;
        int c = mul->in[ci], q = mul->in[1 - ci];
        struct nn_node *dead[5] = {relu, mul, NULL, NULL, NULL};
        float scale;
        struct nn_node *neg2 = only(g, ix, q, NN_OP_NEG, 1);
        struct nn_node *sub = only(g, ix, q, NN_OP_SUB, 1);
        if (neg2) {
            struct nn_node *relu2 = only(g, ix, neg2->in[0], NN_OP_RELU, 1);
            struct nn_node *neg1 = relu2 ? only(g, ix, relu2->in[0], NN_OP_NEG, 1) : NULL;
            if (!neg1 || neg1->in[0] != x) continue;
            dead[2] = neg2, dead[3] = relu2, dead[4] = neg1;
            scale = 1.0f;
        } else if (sub && sub->in[0] == x) {
            struct nn_node *abs_ = only(g, ix, sub->in[1], NN_OP_ABS, 1);
            if (!abs_ || abs_->in[0] != x) continue;
            dead[2] = sub, dead[3] = abs_;
            scale = 2.0f;
        } else {
            continue;
        }
        const struct nn_shape *xs = &g->tensors[x].shape;
        int slope = xs->ndim ? make_slope(g, c, xs->d[xs->ndim - 1], scale) : FR_EUNSUPPORTED;
        if (slope == FR_ENOMEM) return FR_ENOMEM;
        if (slope < 0) continue;
        for (int i = 0; i < 5; i++)
            if (dead[i]) dead[i]->op = NN_OP_COUNT;
        set_fused(add, NN_OP_PRELU, x, slope);
        return 1;
    }
    return 0;
}

/* DIV(e, SUM(e)) with e = EXP(SUB(x, REDUCE_MAX(x))), all over the last axis, keep_dims. */
static int try_softmax(struct nn_graph *g, const struct index *ix, struct nn_node *div)
{
    if (div->op != NN_OP_DIV || div->act != NN_ACT_NONE) return 0;
    struct nn_node *exp_ = only(g, ix, div->in[0], NN_OP_EXP, 2);
    struct nn_node *sum = only(g, ix, div->in[1], NN_OP_SUM, 1);
    if (!exp_ || !sum || sum->in[0] != div->in[0] || !sum->keep_dims) return 0;
    struct nn_node *sub = only(g, ix, exp_->in[0], NN_OP_SUB, 1);
    if (!sub) return 0;
    int x = sub->in[0];
    struct nn_node *max = only(g, ix, sub->in[1], NN_OP_REDUCE_MAX, 1);
    if (!max || max->in[0] != x || !max->keep_dims) return 0;
    /* both reductions must be over the last axis: nn_graph_shapes accepts no other */
    exp_->op = sum->op = sub->op = max->op = NN_OP_COUNT;
    set_fused(div, NN_OP_SOFTMAX, x, -1);
    return 1;
}

/* SOFTMAX over two classes of z = CONV_2D or FULLY_CONNECTED(x) -> SIGMOID of the same layer with
 * weights and bias replaced by their class differences. */
static int try_sigmoid(struct nn_graph *g, const struct index *ix, struct nn_node *sm)
{
    if (sm->op != NN_OP_SOFTMAX) return 0;
    int z = sm->in[0];
    struct nn_node *lin = only(g, ix, z, NN_OP_CONV_2D, 1);
    if (!lin) lin = only(g, ix, z, NN_OP_FULLY_CONNECTED, 1);
    if (!lin || !nn_graph_const_f32(g, lin->in[1]) || (lin->in[2] >= 0 && !nn_graph_const_f32(g, lin->in[2])))
        return 0;
    const struct nn_tensor *w = &g->tensors[lin->in[1]];
    if (w->shape.d[0] != 2) return 0; /* weights are [O, ...]: two output classes */
    size_t row = (size_t)(nn_shape_count(&w->shape) / 2);
    float *nw = nn_alloc_aligned(2 * row * sizeof(float));
    float *nb = nn_alloc_aligned(2 * sizeof(float));
    if (!nw || !nb) {
        free(nw), free(nb);
        return FR_ENOMEM;
    }
    const float *ow = w->data, *ob = lin->in[2] >= 0 ? g->tensors[lin->in[2]].data : NULL;
    for (size_t i = 0; i < row; i++) {
        nw[i] = ow[i] - ow[row + i];
        nw[row + i] = -nw[i];
    }
    nb[0] = ob ? ob[0] - ob[1] : 0.0f;
    nb[1] = -nb[0];
    struct nn_shape ws = w->shape, bs = {1, {2}};
    char name[300];
    snprintf(name, sizeof name, "%s/class_difference", w->name);
    int tw = nn_graph_add_tensor(g, name, NN_F32, &ws, nw, 2 * row * sizeof(float));
    if (tw < 0) {
        free(nw), free(nb);
        return tw;
    }
    int tb = nn_graph_add_tensor(g, "class_difference_bias", NN_F32, &bs, nb, 2 * sizeof(float));
    if (tb < 0) {
        free(nb);
        return tb;
    }
    lin->in[1] = tw;
    lin->in[2] = tb;
    lin->nin = 3;
    sm->op = NN_OP_SIGMOID;
    return 1;
}

/* Removes the nodes marked deleted (op NN_OP_COUNT), keeping the order of the others. */
static void compact(struct nn_graph *g)
{
    int k = 0;
    for (int n = 0; n < g->nnodes; n++)
        if (g->nodes[n].op != NN_OP_COUNT) g->nodes[k++] = g->nodes[n];
    g->nnodes = k;
}

int nn_graph_fuse(struct nn_graph *g)
{
    struct index ix = {0};
    int rc = index_build(g, &ix), fused = 0;
    for (int n = g->nnodes - 1; n >= 0 && rc >= 0; n--) {
        struct nn_node *nd = &g->nodes[n];
        if (nd->op == NN_OP_ADD) rc = try_prelu(g, &ix, nd);
        else if (nd->op == NN_OP_DIV) rc = try_softmax(g, &ix, nd);
        else rc = 0;
        if (rc > 0) fused++;
    }
    /* second pass, on a fresh index: the softmax nodes made above become sigmoids */
    index_free(&ix);
    if (rc >= 0) rc = index_build(g, &ix);
    for (int n = 0; n < g->nnodes && rc >= 0; n++)
        if ((rc = try_sigmoid(g, &ix, &g->nodes[n])) > 0) fused++;
    index_free(&ix);
    compact(g);
    return rc < 0 ? rc : fused;
}

int nn_graph_prune(struct nn_graph *g)
{
    struct index ix = {0};
    if (index_build(g, &ix) < 0) {
        index_free(&ix);
        return FR_ENOMEM;
    }
    int pruned = 0;
    for (int n = g->nnodes - 1; n >= 0; n--) {
        struct nn_node *nd = &g->nodes[n];
        if (ix.readers[nd->out] > 0) continue;
        for (int k = 0; k < nd->nin; k++)
            if (nd->in[k] >= 0) ix.readers[nd->in[k]]--;
        nd->op = NN_OP_COUNT;
        pruned++;
    }
    index_free(&ix);
    compact(g);
    return pruned;
}
