/* nn.h: the inference engine's public API: load a model once, run it on many inputs.
 *
 *   struct nn_net *net;
 *   if (nn_net_open("models/MobileFaceNet.tflite", NULL, &net, err)) ...
 *   struct nn_shape in = {4, {1, 112, 112, 3}};
 *   struct nn_output out[NN_MAX_IO];
 *   if (nn_net_run(net, pixels, &in, out, err)) ...   // out[0].data: 192 floats
 *   nn_net_close(net);
 *
 * At open the graph is read, checked and fused. Each distinct input shape gets its own executor
 * (XNNPACK runtimes, with the engine's own kernels between them where those are faster: see
 * kern.h), built on first use and kept in a small LRU cache. A fully convolutional
 * graph (windows, per-pixel and per-channel ops only) on a tall input runs in horizontal bands
 * whose activations stay in cache, with the same results as in one piece, unless one of the
 * engine's kernels computes it all, streaming rows itself (P-Net with AVX-512). A net is used by one
 * thread at a time; use one net per worker thread. */
#ifndef FR_NN_H
#define FR_NN_H

#include <pthreadpool.h>

#include "nn/graph.h"

enum nn_backend { NN_BACKEND_XNNPACK, NN_BACKEND_REF };

struct nn_opts {
    int threads;          /* XNNPACK threads for this net; 1 (default) runs on the caller */
    pthreadpool_t pool;   /* when set, run on this pool instead (shared, not owned: several nets
                             used in turn share one pool, rather than each keeping threads that
                             spin while another net runs) */
    enum nn_backend backend;
    int no_fuse;          /* keep the graph as the file spells it */
    int max_shapes;       /* executors kept at once (default 32) */
    int no_bands;         /* never run a fully convolutional graph in horizontal bands */
    int no_kernels;       /* XNNPACK for every node: none of the engine's own kernels (kern.h) */
    int bf16;             /* convolutions in bfloat16 products summed in float32, where the CPU
                             has AVX512_BF16 (kern.h): faster, and no longer equal to the float32
                             model within 1e-4 */
};

struct nn_output {
    const float *data; /* owned by the net; valid until the next nn_net_run */
    struct nn_shape shape;
};

struct nn_net;

/* Loads and prepares the model at path. opts may be NULL for defaults. When XNNPACK cannot run
 * the graph the net falls back to the reference kernels (nn_net_backend tells).
 * Returns 0, or the reader's errors (FR_EIO, FR_EFORMAT, FR_EUNSUPPORTED, ...), with err set. */
int nn_net_open(const char *path, const struct nn_opts *opts, struct nn_net **out,
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* As nn_net_open, for a graph already in memory; takes ownership of g (freed on error too). */
int nn_net_from_graph(struct nn_graph *g, const struct nn_opts *opts, struct nn_net **out,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void nn_net_close(struct nn_net *net);

/* Runs the net on input of the given shape; fills out[0..noutputs-1].
 * Returns 0, FR_EINVAL (a shape the graph cannot take, err says why), FR_ENOMEM, FR_EBACKEND. */
int nn_net_run(struct nn_net *net, const float *input, const struct nn_shape *shape,
               struct nn_output *out, char err[FR_ERR_LEN]) FR_MUST_USE;

const struct nn_graph *nn_net_graph(const struct nn_net *net);
int nn_net_noutputs(const struct nn_net *net);
enum nn_backend nn_net_backend(const struct nn_net *net);

#endif
