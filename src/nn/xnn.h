/* xnn.h: runs a graph on XNNPACK's subgraph API.
 *
 * One runtime is built for one set of tensor shapes (this XNNPACK cannot reshape a runtime), with
 * the graph's constant tensors as static weights: the graph must outlive the runtime. */
#ifndef FR_NN_XNN_H
#define FR_NN_XNN_H

#include <pthreadpool.h>

#include "nn/graph.h"

struct nn_xnn;

/* Initialises XNNPACK once per process (thread-safe). Returns 0 or FR_EBACKEND. */
int nn_xnn_init(char err[FR_ERR_LEN]) FR_MUST_USE;

/* 1 when every node of g has an XNNPACK translation; else 0 and, if why is not NULL, names the
 * first node that has none. */
int nn_xnn_supports(const struct nn_graph *g, char why[FR_ERR_LEN]);

/* Builds a runtime for the nodes listed (in execution order) at shapes (from nn_graph_shapes) on
 * pool (NULL: caller's thread). ext lists the tensors that live outside the runtime: first the
 * nin the nodes read, then the nout they write; nn_xnn_run takes their memory in that order.
 * Every other activation the nodes read must be written by one of them.
 * Returns 0, FR_EUNSUPPORTED, FR_EBACKEND (XNNPACK refused; err names the node) or FR_ENOMEM. */
int nn_xnn_build(const struct nn_graph *g, const struct nn_shape *shapes, const int *nodes,
                 int nnodes, const int *ext, int nin, int nout, pthreadpool_t pool,
                 struct nn_xnn **out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Runs with ptrs[i] the memory of ext[i] (caller-owned, sized from the shapes). The pointers may
 * change between calls (at the cost of a new XNNPACK setup). Returns 0 or FR_EBACKEND. */
int nn_xnn_run(struct nn_xnn *x, void *const *ptrs, char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void nn_xnn_free(struct nn_xnn *x);

#endif
