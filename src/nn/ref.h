/* ref.h: plain C reference kernels for every op in graph.h, and an executor built on them.
 *
 * Written for clarity, not speed: tests compare the XNNPACK path with these op by op, and the
 * engine falls back to them for a graph XNNPACK cannot run. Semantics are TFLite's. */
#ifndef FR_NN_REF_H
#define FR_NN_REF_H

#include "nn/graph.h"

/* Runs the whole graph on input (shape: shapes[g->inputs[0]]), with shapes from
 * nn_graph_shapes(). outs[i] receives output i (caller-allocated, sized from shapes).
 * Returns 0, FR_ENOMEM, or FR_EUNSUPPORTED for an op it does not know. */
int nn_ref_run(const struct nn_graph *g, const struct nn_shape *shapes, const float *input,
               float *const *outs, char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
