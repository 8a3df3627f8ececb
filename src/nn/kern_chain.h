/* kern_chain.h: the engine's fused convolution chain, one kind of kernel of kern.h (which claims
 * it and runs it; nothing else includes this header).
 *
 * A chain is P-Net's whole body: a 3x3 VALID convolution with its PReLU and a 2x2 stride-2 max
 * pool, then one to four 3x3 VALID convolutions (stride 1) each with its PReLU, then one or two
 * 1x1 convolutions (the heads, at most 8 outputs between them) reading the last activation. It
 * runs row by row: each output row pulls the few rows of each layer it needs through small
 * rings, so no intermediate tensor is ever written to memory, and every layer keeps output
 * pixels in the vector lanes (16 neighbouring pixels of one channel per register), which wastes
 * no lane on P-Net's 3 input and 10 output channels. */
#ifndef FR_NN_KERN_CHAIN_H
#define FR_NN_KERN_CHAIN_H

#include "nn/graph.h"

#define NN_CHAIN_MAX_NODES 16

struct nn_chain;

/* Whether node n of g starts a chain (arguments as nn_kern_claim). On a match, prepares it into
 * *out (free with nn_chain_free) and lists its nodes in nodes[0..*count-1], n first; bf16: its
 * 3x3 convolutions after the first and its heads in bfloat16 products (the caller checks that
 * the CPU has AVX512_BF16). Returns 1 (claimed), 0 (not a chain) or FR_ENOMEM. Needs AVX-512 to
 * run. */
int nn_chain_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                   const char *taken, int n, int bf16, struct nn_chain **out,
                   int nodes[NN_CHAIN_MAX_NODES], int *count) FR_MUST_USE;

/* The activation read, and the tensors written (returns how many: 1 or 2, the heads' order). */
int nn_chain_input(const struct nn_chain *c);
int nn_chain_outputs(const struct nn_chain *c, int out[2]);

/* Scratch for `parts` pieces run at once. Returns 0 or FR_ENOMEM (the chain is unchanged). */
int nn_chain_set_parts(struct nn_chain *c, int parts) FR_MUST_USE;

/* Output rows of the heads over the whole batch: the units nn_chain_run splits. */
int nn_chain_rows(const struct nn_chain *c);

/* Output rows u0 .. u1 - 1 (over the whole batch) from x into y[0] (and y[1]), with the scratch
 * of piece `part` (< the parts set). Pieces with distinct parts may run at once. Cannot fail. */
void nn_chain_run(const struct nn_chain *c, const float *x, float *const *y, int u0, int u1,
                  int part);

/* NULL does nothing. */
void nn_chain_free(struct nn_chain *c);

#endif
