/* graph.h: the inference graph every part of the engine shares.
 *
 * A graph is a list of tensors (activations and constant weights) and a list of nodes in
 * execution order. It is built by a reader (tflite.h), rewritten by the fusion pass, and executed
 * by the reference kernels (ref.h) or by XNNPACK (xnn.h). Shapes stored on tensors are those the
 * file declares; nn_graph_shapes() computes them again for any input shape, validating every
 * node on the way, so executors never see a shape they have not been told is consistent. */
#ifndef FR_NN_GRAPH_H
#define FR_NN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define NN_MAX_DIMS 5
#define NN_MAX_NODE_INPUTS 3
#define NN_MAX_IO 8
#define NN_MAX_TENSORS 8192
#define NN_MAX_NODES 8192
#define NN_MAX_DIM 1000000 /* no single dimension larger than this */

enum nn_dtype { NN_F32, NN_I32 };

enum nn_op {
    NN_OP_CONV_2D,
    NN_OP_DEPTHWISE_CONV_2D,
    NN_OP_FULLY_CONNECTED,
    NN_OP_MAX_POOL_2D,
    NN_OP_ADD,
    NN_OP_SUB,
    NN_OP_MUL,
    NN_OP_DIV,
    NN_OP_NEG,
    NN_OP_ABS,
    NN_OP_RELU,
    NN_OP_EXP,
    NN_OP_RESHAPE,
    NN_OP_REDUCE_MAX,
    NN_OP_SUM,
    NN_OP_SOFTMAX, /* over the last axis; from TFLite SOFTMAX (beta 1) or fused */
    NN_OP_PRELU,   /* fused only: in[1] is a per-channel slope over the last axis */
    NN_OP_SIGMOID, /* fused only: from a two-class softmax */
    NN_OP_COUNT
};

enum nn_padding { NN_PAD_SAME, NN_PAD_VALID };
enum nn_act { NN_ACT_NONE, NN_ACT_RELU, NN_ACT_RELU_N1_TO_1, NN_ACT_RELU6 };

struct nn_shape {
    int ndim;
    int32_t d[NN_MAX_DIMS];
};

struct nn_tensor {
    char *name;         /* owned, never NULL */
    enum nn_dtype type;
    struct nn_shape shape; /* as declared by the file (or computed, for fused tensors) */
    void *data;         /* constant contents, 64-byte aligned, owned; NULL for activations */
    size_t nbytes;
};

struct nn_node {
    enum nn_op op;
    int nin;
    int in[NN_MAX_NODE_INPUTS]; /* tensor indices; -1 for an absent optional bias */
    int out;
    /* convolution and pooling */
    enum nn_padding pad;
    int stride_h, stride_w, dil_h, dil_w;
    int filter_h, filter_w; /* pooling window */
    int depth_mult;
    enum nn_act act;
    /* reduce */
    int keep_dims;
    /* reshape: the declared target shape (-1 for one inferred dimension) */
    struct nn_shape new_shape;
};

struct nn_graph {
    struct nn_tensor *tensors;
    int ntensors, tensors_cap;
    struct nn_node *nodes;
    int nnodes;
    int inputs[NN_MAX_IO], ninputs;
    int outputs[NN_MAX_IO], noutputs;
};

/* Static facts about a graph at its declared input shape, for `nn info`. */
struct nn_stats {
    int op_count[NN_OP_COUNT];
    int64_t params; /* constant float elements */
    int64_t macs;   /* multiply-accumulates of conv, depthwise and fully connected nodes */
};

const char *nn_op_name(enum nn_op op);

/* Frees everything the graph owns; NULL does nothing. */
void nn_graph_free(struct nn_graph *g);

/* Appends a tensor (name copied; data, if not NULL, is taken over and must come from
 * nn_alloc_aligned). Returns its index, or FR_ENOMEM / FR_ETOOBIG. */
int nn_graph_add_tensor(struct nn_graph *g, const char *name, enum nn_dtype type,
                        const struct nn_shape *shape, void *data, size_t nbytes) FR_MUST_USE;

/* 64-byte aligned allocation released with free(); NULL on failure or size 0. */
void *nn_alloc_aligned(size_t nbytes);

/* Whether tensor t (may be -1) is a float32 constant. */
int nn_graph_const_f32(const struct nn_graph *g, int t);

/* For the kernels' fusions: the only node after node `after` reading tensor t, as its first
 * input, when that node is not taken (taken[m] nonzero) and t is read nowhere else (readers[t]
 * counts the node inputs and graph outputs reading it); else -1. */
int nn_graph_sole_reader(const struct nn_graph *g, const int *readers, const char *taken,
                         int after, int t);

/* Checks the graph's structure (indices in range, topological order, each activation written
 * once, constants where weights are expected) and computes the shape of every tensor for the
 * given input shapes into shapes[ntensors] (caller-allocated). inputs may be NULL to use the
 * declared shapes. Returns 0, or FR_EFORMAT / FR_EUNSUPPORTED / FR_EINVAL with err naming the
 * node and what is wrong (e.g. an input too small for a VALID convolution). */
int nn_graph_shapes(const struct nn_graph *g, const struct nn_shape *inputs,
                    struct nn_shape *shapes, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Fills stats for the given input shape (NULL: the declared one). Returns nn_graph_shapes'
 * errors. */
int nn_graph_stats(const struct nn_graph *g, const struct nn_shape *input, struct nn_stats *stats,
                   char err[FR_ERR_LEN]) FR_MUST_USE;

/* Rewrites the split-up forms these models use into single nodes:
 *   relu(x) + a * -relu(-x)      -> PRELU(x, a)       (MTCNN)
 *   relu(x) + c * (x - |x|)      -> PRELU(x, 2c)      (MobileFaceNet)
 *   exp(x - max(x)) / sum(exp(..)) over the last axis  -> SOFTMAX(x)
 *   SOFTMAX over 2 classes of a linear layer z = Wx + b -> SIGMOID(W'x + b') with
 *   W' = [W0 - W1; W1 - W0]: softmax(z)_i = sigmoid(z_i - z_(1-i)), one cheap pass instead of a
 *   softmax over tiny rows (P-Net's probability map).
 * Only rewrites where the intermediate tensors have no other reader and are not graph outputs.
 * Returns the number of rewrites (>= 0) or FR_ENOMEM. */
int nn_graph_fuse(struct nn_graph *g) FR_MUST_USE;

/* Deletes nodes whose results nothing reads (XNNPACK gives such outputs no memory and aborts).
 * Returns the number of nodes deleted or FR_ENOMEM. */
int nn_graph_prune(struct nn_graph *g) FR_MUST_USE;

static inline int64_t nn_shape_count(const struct nn_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

/* Implicit zero padding before (top or left) and after a window op along one axis, TensorFlow's
 * SAME rule (the odd pixel goes after); 0 and 0 for VALID. */
void nn_window_pads(int32_t in, int32_t out, int k, int stride, int dil, enum nn_padding pad,
                    int *before, int *after);

/* Output range implied by a fused activation. */
void nn_act_range(enum nn_act act, float *lo, float *hi);

int nn_shape_equal(const struct nn_shape *a, const struct nn_shape *b);

/* Writes "[1,2,3]" into buf (always NUL-terminated). */
void nn_shape_str(const struct nn_shape *s, char *buf, size_t len);

#endif
