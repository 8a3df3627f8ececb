/* nn.c: a model plus a per-input-shape cache of executors. */
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

#include "nn/ref.h"
#include "nn/tflite.h"
#include "nn/plan.h"
#include "nn/xnn.h"

#define DEFAULT_MAX_SHAPES 32

/* Everything that depends on one input shape. */
struct entry {
    struct nn_shape in;
    int whole; /* outputs of a banded run: shapes and buffers only, no executor */
    struct nn_shape *shapes; /* every tensor's shape */
    struct nn_plan *plan;    /* NULL on the reference backend */
    float *outs[NN_MAX_IO];
    uint64_t last_used;
};

struct nn_net {
    struct nn_graph *g;
    enum nn_backend backend;
    pthreadpool_t pool;
    int own_pool; /* created here (else borrowed from nn_opts) */
    struct entry *cache;
    int ncache, max_cache;
    uint64_t clock;
    int band_stride, band_field; /* geometry along H when bandable, else 0 */
    int streams;                 /* its plans stream rows themselves (nn_plan_streams): no bands */
    int kernels;                 /* NN_PLAN_* flags for plans */
};

#define BAND_ROWS 96 /* input rows of a band (48 before P-Net's first layer was fused with its
                        * pool: its 10-channel full-resolution output no longer exists; with
                        * AVX-512 P-Net is one kernel that streams rows, and runs whole) */

static void entry_clear(struct entry *e)
{
    nn_plan_free(e->plan);
    free(e->shapes);
    for (int i = 0; i < NN_MAX_IO; i++)
        free(e->outs[i]);
    memset(e, 0, sizeof *e);
}

/* Whether every output row depends on a fixed window of input rows, and which: output row r
 * reads input rows [r * stride, r * stride + field). True for chains of VALID windows (and SAME
 * ones whose window equals their stride), per-pixel ops and per-channel constants. */
static void band_analyse(struct nn_net *net)
{
    const struct nn_graph *g = net->g;
    int *st = calloc((size_t)g->ntensors, sizeof *st), *fd = calloc((size_t)g->ntensors, sizeof *fd);
    int ok = st && fd && g->ninputs == 1 && g->tensors[g->inputs[0]].shape.ndim == 4;
    if (ok) st[g->inputs[0]] = 1, fd[g->inputs[0]] = 1;
    for (int n = 0; ok && n < g->nnodes; n++) {
        const struct nn_node *nd = &g->nodes[n];
        int x = nd->in[0], s = st[x], f = fd[x];
        ok = s > 0;
        int k = 1, stride = 1, dil = 1;
        switch (nd->op) {
        case NN_OP_CONV_2D:
        case NN_OP_DEPTHWISE_CONV_2D:
            k = g->tensors[nd->in[1]].shape.d[1], stride = nd->stride_h, dil = nd->dil_h;
            break;
        case NN_OP_MAX_POOL_2D: k = nd->filter_h, stride = nd->stride_h; break;
        case NN_OP_RELU:
        case NN_OP_PRELU:
        case NN_OP_SIGMOID:
        case NN_OP_NEG:
        case NN_OP_ABS:
        case NN_OP_EXP:
        case NN_OP_SOFTMAX: break;
        case NN_OP_ADD:
        case NN_OP_SUB:
        case NN_OP_MUL:
        case NN_OP_DIV: {
            const struct nn_tensor *b = &g->tensors[nd->in[1]];
            if (b->data) ok = ok && (b->shape.ndim < 3 || b->shape.d[b->shape.ndim - 3] == 1);
            else ok = ok && st[nd->in[1]] == s && fd[nd->in[1]] == f;
            break;
        }
        default: ok = 0;
        }
        int windowed = nd->op == NN_OP_CONV_2D || nd->op == NN_OP_DEPTHWISE_CONV_2D ||
                       nd->op == NN_OP_MAX_POOL_2D;
        if (windowed && nd->pad == NN_PAD_SAME && !(k == stride && dil == 1)) ok = 0;
        if (!ok) break;
        st[nd->out] = s * stride;
        fd[nd->out] = f + ((k - 1) * dil) * s;
    }
    for (int i = 0; ok && i < g->noutputs; i++)
        ok = st[g->outputs[i]] == st[g->outputs[0]] && fd[g->outputs[i]] == fd[g->outputs[0]] &&
             st[g->outputs[i]] > 0 && g->tensors[g->outputs[i]].shape.ndim == 4;
    if (ok && fd[g->outputs[0]] < BAND_ROWS / 2) {
        net->band_stride = st[g->outputs[0]];
        net->band_field = fd[g->outputs[0]];
    }
    free(st);
    free(fd);
}

int nn_net_from_graph(struct nn_graph *g, const struct nn_opts *opts, struct nn_net **out,
                      char err[FR_ERR_LEN])
{
    static const struct nn_opts defaults = {.threads = 1};
    if (!opts) opts = &defaults;
    *out = NULL;
    struct nn_net *net = calloc(1, sizeof *net);
    if (!net) {
        nn_graph_free(g);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    net->g = g;
    net->max_cache = opts->max_shapes > 0 ? opts->max_shapes : DEFAULT_MAX_SHAPES;
    net->cache = calloc((size_t)net->max_cache, sizeof *net->cache);
    int rc = net->cache ? 0 : fr_fail(err, FR_ENOMEM, "out of memory");
    if (!rc && !opts->no_fuse) {
        int n = nn_graph_fuse(g);
        if (n < 0) rc = fr_fail(err, n, "graph fusion failed");
    }
    if (!rc) {
        int n = nn_graph_prune(g);
        if (n < 0) rc = fr_fail(err, n, "graph pruning failed");
    }
    net->backend = opts->backend;
    net->kernels = opts->no_kernels ? 0 : NN_PLAN_KERNELS | (opts->bf16 ? NN_PLAN_BF16 : 0);
    if (!rc && !opts->no_bands) band_analyse(net);
    if (!rc && net->backend == NN_BACKEND_XNNPACK) {
        if (!nn_xnn_supports(g, NULL) || nn_xnn_init(err) != 0)
            net->backend = NN_BACKEND_REF;
        else if (opts->pool)
            net->pool = opts->pool;
        else if (opts->threads > 1 && !(net->pool = pthreadpool_create((size_t)opts->threads)))
            rc = fr_fail(err, FR_ENOMEM, "cannot create a thread pool of %d", opts->threads);
        else
            net->own_pool = net->pool != NULL;
    }
    if (rc) {
        nn_net_close(net);
        return rc;
    }
    *out = net;
    return 0;
}

int nn_net_open(const char *path, const struct nn_opts *opts, struct nn_net **out,
                char err[FR_ERR_LEN])
{
    struct nn_graph *g;
    *out = NULL;
    int rc = nn_tflite_load(path, &g, err);
    return rc ? rc : nn_net_from_graph(g, opts, out, err);
}

void nn_net_close(struct nn_net *net)
{
    if (!net) return;
    for (int i = 0; i < net->ncache; i++)
        entry_clear(&net->cache[i]);
    free(net->cache);
    if (net->own_pool) pthreadpool_destroy(net->pool);
    nn_graph_free(net->g);
    free(net);
}

static int entry_build(struct nn_net *net, const struct nn_shape *in, int whole, struct entry *e,
                       char err[FR_ERR_LEN])
{
    const struct nn_graph *g = net->g;
    memset(e, 0, sizeof *e);
    e->in = *in;
    e->whole = whole;
    e->shapes = calloc((size_t)g->ntensors, sizeof *e->shapes);
    if (!e->shapes) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = nn_graph_shapes(g, in, e->shapes, err);
    for (int i = 0; i < g->noutputs && !rc; i++) {
        size_t n = (size_t)nn_shape_count(&e->shapes[g->outputs[i]]);
        if (!(e->outs[i] = nn_alloc_aligned(n * sizeof(float))))
            rc = fr_fail(err, FR_ENOMEM, "out of memory for output %d", i);
    }
    if (!rc && !whole && net->backend == NN_BACKEND_XNNPACK)
        rc = nn_plan_build(g, e->shapes, net->pool, net->kernels, &e->plan, err);
    if (rc) entry_clear(e);
    return rc;
}

/* The cache entry for shape in, building it (and evicting the least recently used) if needed. */
static int lookup(struct nn_net *net, const struct nn_shape *in, int whole, struct entry **out,
                  char err[FR_ERR_LEN])
{
    for (int i = 0; i < net->ncache; i++)
        if (nn_shape_equal(&net->cache[i].in, in) && net->cache[i].whole == whole) {
            *out = &net->cache[i];
            return 0;
        }
    struct entry *e;
    if (net->ncache < net->max_cache) {
        e = &net->cache[net->ncache];
    } else {
        e = &net->cache[0];
        for (int i = 1; i < net->ncache; i++)
            if (net->cache[i].last_used < e->last_used) e = &net->cache[i];
        entry_clear(e);
    }
    int rc = entry_build(net, in, whole, e, err);
    if (rc) {
        /* keep the array dense: an evicted slot that failed to rebuild takes the last entry */
        if (e != &net->cache[net->ncache]) {
            *e = net->cache[net->ncache - 1];
            memset(&net->cache[net->ncache - 1], 0, sizeof *e);
            net->ncache--;
        }
        return rc;
    }
    if (e == &net->cache[net->ncache]) net->ncache++;
    *out = e;
    return 0;
}

/* The input rows of a band with R output rows, and whether every SAME window of the graph then
 * sees an input height divisible by its stride (no padding inside the picture). */
static int band_exact(const struct nn_net *net, const struct nn_shape *band, struct nn_shape *shapes)
{
    const struct nn_graph *g = net->g;
    if (nn_graph_shapes(g, band, shapes, NULL)) return 0;
    for (int n = 0; n < g->nnodes; n++) {
        const struct nn_node *nd = &g->nodes[n];
        if ((nd->op == NN_OP_CONV_2D || nd->op == NN_OP_DEPTHWISE_CONV_2D ||
             nd->op == NN_OP_MAX_POOL_2D) &&
            nd->pad == NN_PAD_SAME && shapes[nd->in[0]].d[1] % nd->stride_h != 0)
            return 0;
    }
    return 1;
}

static int run_entry(struct nn_net *net, struct entry *e, const float *input, char err[FR_ERR_LEN])
{
    e->last_used = ++net->clock;
    return e->plan ? nn_plan_run(e->plan, input, e->outs, err)
                  : nn_ref_run(net->g, e->shapes, input, e->outs, err);
}

/* Runs a tall input in bands of BAND_ROWS input rows, copying each band's output rows into the
 * whole picture's outputs. Returns 1 when done, 0 when banding does not apply, < 0 on error. */
static int run_banded(struct nn_net *net, const float *input, const struct nn_shape *shape,
                      struct entry **whole, char err[FR_ERR_LEN])
{
    const struct nn_graph *g = net->g;
    int S = net->band_stride, K = net->band_field, H = shape->d[1];
    if (!S || net->streams || net->max_cache < 4 || shape->ndim != 4 || shape->d[0] != 1 ||
        H < 3 * BAND_ROWS)
        return 0;
    int R = (BAND_ROWS - K) / S + 1, rows_in = (R - 1) * S + K;
    struct nn_shape band = {4, {1, rows_in, shape->d[2], shape->d[3]}};
    struct nn_shape *tmp = malloc((size_t)g->ntensors * sizeof *tmp);
    int exact = tmp && band_exact(net, &band, tmp);
    free(tmp);
    if (!exact) return 0;
    /* a band's plan that streams tells that the whole picture's would too (the kernels claim
     * the same nodes at any size): run whole, from now on */
    struct entry *mid = NULL, *last = NULL, *w;
    int rc = lookup(net, &band, 0, &mid, err);
    if (rc) return rc;
    mid->last_used = ++net->clock;
    if (mid->plan && nn_plan_streams(mid->plan)) {
        net->streams = 1;
        return 0;
    }
    /* every entry the run needs, looked up first and marked recent, so that none of the later
     * lookups evicts another (the LRU never takes the most recent entries) */
    int OH = -1, nbands = 0, last_rows = rows_in;
    rc = lookup(net, shape, 1, &w, err);
    if (rc) return rc;
    w->last_used = ++net->clock;
    OH = w->shapes[g->outputs[0]].d[1];
    nbands = (OH + R - 1) / R;
    last_rows = H - (nbands - 1) * R * S < rows_in ? H - (nbands - 1) * R * S : rows_in;
    struct nn_shape lb = {4, {1, last_rows, shape->d[2], shape->d[3]}};
    if ((rc = lookup(net, &band, 0, &mid, err))) return rc;
    mid->last_used = ++net->clock;
    if ((rc = lookup(net, &lb, 0, &last, err))) return rc;
    last->last_used = ++net->clock;
    if (!nn_shape_equal(&w->in, shape) || !w->whole || !nn_shape_equal(&mid->in, &band))
        return fr_fail(err, FR_EBACKEND, "executor cache too small for banded runs");
    size_t row_in = (size_t)shape->d[2] * shape->d[3];
    for (int b = 0; b < nbands; b++) {
        int r0 = b * R;
        struct entry *e = b == nbands - 1 ? last : mid;
        if ((rc = run_entry(net, e, input + (size_t)r0 * S * row_in, err))) return rc;
        for (int i = 0; i < g->noutputs; i++) {
            const struct nn_shape *os = &e->shapes[g->outputs[i]];
            size_t row_out = (size_t)os->d[2] * os->d[3];
            int n = os->d[1] < R ? os->d[1] : R;
            if (r0 + n > OH) n = OH - r0;
            memcpy(w->outs[i] + (size_t)r0 * row_out, e->outs[i], (size_t)n * row_out * sizeof(float));
        }
    }
    *whole = w;
    return 1;
}

int nn_net_run(struct nn_net *net, const float *input, const struct nn_shape *shape,
               struct nn_output *out, char err[FR_ERR_LEN])
{
    const struct nn_graph *g = net->g;
    struct entry *e;
    int rc = run_banded(net, input, shape, &e, err);
    if (rc < 0) return rc;
    if (rc == 0) {
        if ((rc = lookup(net, shape, 0, &e, err))) return rc;
        if ((rc = run_entry(net, e, input, err))) return rc;
    }
    for (int i = 0; i < g->noutputs; i++)
        out[i] = (struct nn_output){e->outs[i], e->shapes[g->outputs[i]]};
    return 0;
}

const struct nn_graph *nn_net_graph(const struct nn_net *net)
{
    return net->g;
}

int nn_net_noutputs(const struct nn_net *net)
{
    return net->g->noutputs;
}

enum nn_backend nn_net_backend(const struct nn_net *net)
{
    return net->backend;
}
