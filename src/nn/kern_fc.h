/* kern_fc.h: a fully connected layer with the PReLU after it, one kind of kernel of kern.h
 * (which claims it and runs it; nothing else includes this header).
 *
 * R-Net's 576 -> 128 and O-Net's 1152 -> 256 layers, run on batches of a few crops: the
 * weights (295 KB and 1.2 MB) are more than the products, so every weight read from the cache
 * meets several crops at once. */
#ifndef FR_NN_KERN_FC_H
#define FR_NN_KERN_FC_H

#include "nn/graph.h"

struct nn_fc;

/* Whether node n of g is such a layer (arguments as nn_kern_claim): a FULLY_CONNECTED with
 * constant weights, no clamp, a multiple of 64 outputs, and a PReLU with per-output slopes as
 * its only reader. On a match, prepares it into *out (free with nn_fc_free) and lists its two
 * nodes in nodes[0..1], n first. bf16: products in bfloat16 (the caller checked
 * AVX512_BF16). Returns 1 (claimed), 0 (not one) or FR_ENOMEM. Needs AVX-512 to run. */
int nn_fc_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                const char *taken, int n, int bf16, struct nn_fc **out, int nodes[2],
                int *count) FR_MUST_USE;

/* The activation read and the tensor written (the PReLU's output). */
int nn_fc_input(const struct nn_fc *f);
int nn_fc_output(const struct nn_fc *f);

/* The units nn_fc_run splits: blocks of rows (crops) times groups of 64 outputs. */
int nn_fc_units(const struct nn_fc *f);

/* Units u0 .. u1 - 1 from x ([rows][I]) into y ([rows][O]). Pieces may run at once. Cannot
 * fail. */
void nn_fc_run(const struct nn_fc *f, const float *x, float *y, int u0, int u1);

/* NULL does nothing. */
void nn_fc_free(struct nn_fc *f);

#endif
