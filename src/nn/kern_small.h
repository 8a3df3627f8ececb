/* kern_small.h: a convolution on a small picture fused with its PReLU and the max pool after
 * it, one kind of kernel of kern.h (which claims it and runs it; nothing else includes this
 * header).
 *
 * These are R-Net's and O-Net's layers before their fully connected ones. The first (the colour
 * kind): a 3x3 VALID convolution of the 3 colour channels to 28 or 32 outputs, its PReLU and a
 * 3x3 stride-2 max pool; XNNPACK ran them as two passes over a picture of 22x22x28 (R-Net) or
 * 46x46x32 floats (O-Net: 271 KB per crop, out of L1), its GEMM getting 3 products per kernel
 * tap and channel. The next ones (the wide kind, float32 only: with bfloat16 products the
 * kernel of kern.c takes them): 3x3 convolutions of 28 to 64 channels to 48 or 64 outputs, PReLU
 * and a 3x3 or 2x2 pool. Either way the convolution's rows are computed into a ring of as many
 * rows as the pool's window is high, and each pooled row is taken from the ring while it is in
 * L1: the full-resolution picture is never written. */
#ifndef FR_NN_KERN_SMALL_H
#define FR_NN_KERN_SMALL_H

#include "nn/graph.h"

struct nn_small;

/* Whether node n of g starts such a triple (arguments as nn_kern_claim): a convolution (stride
 * 1, no padding, 16 to 64 outputs, at least 4 wide; either k x 3 over 3 channels to at most 32
 * outputs, or, without bf16, at most 3x3 over at most 64 channels) whose only reader is a PReLU
 * whose only reader is a max pool. On a match, prepares it into *out (free with nn_small_free)
 * and lists its three nodes in nodes[0..2], n first. bf16: the colour kind's products in
 * bfloat16 (the caller checked AVX512_BF16). Returns 1 (claimed), 0 (not one) or FR_ENOMEM.
 * Needs AVX-512 to run. */
int nn_small_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                   const char *taken, int n, int bf16, struct nn_small **out, int nodes[3],
                   int *count) FR_MUST_USE;

/* The activation read and the tensor written (the pool's output). */
int nn_small_input(const struct nn_small *s);
int nn_small_output(const struct nn_small *s);

/* Scratch for `parts` pieces run at once. Returns 0 or FR_ENOMEM (the kernel is unchanged). */
int nn_small_set_parts(struct nn_small *s, int parts) FR_MUST_USE;

/* Pooled rows over the whole batch: the units nn_small_run splits. */
int nn_small_rows(const struct nn_small *s);

/* Pooled rows u0 .. u1 - 1 (over the whole batch) from x into y, with the scratch of piece
 * `part` (< the parts set). Pieces with distinct parts may run at once. Cannot fail. */
void nn_small_run(const struct nn_small *s, const float *x, float *y, int u0, int u1, int part);

/* NULL does nothing. */
void nn_small_free(struct nn_small *s);

#endif
