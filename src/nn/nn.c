/* nn.c: a model plus a per-input-shape cache of executors. */
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

#include "nn/ref.h"
#include "nn/tflite.h"
#include "nn/xnn.h"

#define DEFAULT_MAX_SHAPES 32

/* Everything that depends on one input shape. */
struct entry {
    struct nn_shape in;
    struct nn_shape *shapes; /* every tensor's shape */
    struct nn_xnn *xnn;      /* NULL on the reference backend */
    float *outs[NN_MAX_IO];
    uint64_t last_used;
};

struct nn_net {
    struct nn_graph *g;
    enum nn_backend backend;
    pthreadpool_t pool;
    struct entry *cache;
    int ncache, max_cache;
    uint64_t clock;
};

static void entry_clear(struct entry *e)
{
    nn_xnn_free(e->xnn);
    free(e->shapes);
    for (int i = 0; i < NN_MAX_IO; i++)
        free(e->outs[i]);
    memset(e, 0, sizeof *e);
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
    if (!rc && net->backend == NN_BACKEND_XNNPACK) {
        if (!nn_xnn_supports(g, NULL) || nn_xnn_init(err) != 0)
            net->backend = NN_BACKEND_REF;
        else if (opts->threads > 1 && !(net->pool = pthreadpool_create((size_t)opts->threads)))
            rc = fr_fail(err, FR_ENOMEM, "cannot create a thread pool of %d", opts->threads);
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
    if (net->pool) pthreadpool_destroy(net->pool);
    nn_graph_free(net->g);
    free(net);
}

static int entry_build(struct nn_net *net, const struct nn_shape *in, struct entry *e,
                       char err[FR_ERR_LEN])
{
    const struct nn_graph *g = net->g;
    memset(e, 0, sizeof *e);
    e->in = *in;
    e->shapes = calloc((size_t)g->ntensors, sizeof *e->shapes);
    if (!e->shapes) return fr_fail(err, FR_ENOMEM, "out of memory");
    int rc = nn_graph_shapes(g, in, e->shapes, err);
    for (int i = 0; i < g->noutputs && !rc; i++) {
        size_t n = (size_t)nn_shape_count(&e->shapes[g->outputs[i]]);
        if (!(e->outs[i] = nn_alloc_aligned(n * sizeof(float))))
            rc = fr_fail(err, FR_ENOMEM, "out of memory for output %d", i);
    }
    if (!rc && net->backend == NN_BACKEND_XNNPACK)
        rc = nn_xnn_build(g, e->shapes, net->pool, &e->xnn, err);
    if (rc) entry_clear(e);
    return rc;
}

/* The cache entry for shape in, building it (and evicting the least recently used) if needed. */
static int lookup(struct nn_net *net, const struct nn_shape *in, struct entry **out,
                  char err[FR_ERR_LEN])
{
    for (int i = 0; i < net->ncache; i++)
        if (nn_shape_equal(&net->cache[i].in, in)) {
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
    int rc = entry_build(net, in, e, err);
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

int nn_net_run(struct nn_net *net, const float *input, const struct nn_shape *shape,
               struct nn_output *out, char err[FR_ERR_LEN])
{
    struct entry *e;
    int rc = lookup(net, shape, &e, err);
    if (rc) return rc;
    e->last_used = ++net->clock;
    const struct nn_graph *g = net->g;
    rc = e->xnn ? nn_xnn_run(e->xnn, input, e->outs, err)
                : nn_ref_run(g, e->shapes, input, e->outs, err);
    if (rc) return rc;
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
