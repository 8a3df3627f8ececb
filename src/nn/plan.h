/* plan.h: the executor of a graph at one set of shapes on the XNNPACK backend.
 *
 * The graph is cut into steps run in order: XNNPACK segments (runtimes over runs of nodes) and
 * the engine's own kernels (kern.h) between them. Tensors that cross steps live in buffers the
 * plan owns, reused once their last reader has run; a RESHAPE that only renames a graph output
 * costs nothing (the step before writes the output directly). */
#ifndef FR_NN_PLAN_H
#define FR_NN_PLAN_H

#include <pthreadpool.h>

#include "nn/graph.h"

struct nn_plan;

enum {
    NN_PLAN_KERNELS = 1, /* use the engine's own kernels where they apply */
    NN_PLAN_BF16 = 2     /* and those in bfloat16 products (kern.h) */
};

/* Builds the plan for g at shapes (from nn_graph_shapes; both must outlive the plan) on pool
 * (NULL: the caller's thread). kernels: NN_PLAN_* flags.
 * Returns 0, FR_EUNSUPPORTED, FR_EBACKEND (XNNPACK refused a node; err names it), FR_ENOMEM. */
int nn_plan_build(const struct nn_graph *g, const struct nn_shape *shapes, pthreadpool_t pool,
                  int kernels, struct nn_plan **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Runs on input, writing output i to outs[i] (caller-owned, sized from the shapes; the pointers
 * may change between calls). Returns 0 or FR_EBACKEND. */
int nn_plan_run(struct nn_plan *p, const float *input, float *const *outs,
                char err[FR_ERR_LEN]) FR_MUST_USE;

/* 1 when the plan is one of the engine's kernels from the input to the outputs, with no
 * activation in the plan's buffers: it streams rows through its own small scratch, so running
 * it in bands would only repeat the rows where bands overlap. */
int nn_plan_streams(const struct nn_plan *p);

/* NULL does nothing. */
void nn_plan_free(struct nn_plan *p);

#endif
