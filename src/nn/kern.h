/* kern.h: the engine's own kernels, for nodes XNNPACK runs slowly at the shapes of these models.
 *
 *   - depthwise convolutions (depth multiplier 1, no dilation) with the PReLU after them, and
 *     the PReLU before them applied as the input is read: MobileFaceNet's 3x3 layers at least
 *     8 pixels wide, which XNNPACK runs between two PReLU passes (with the PReLU after,
 *     stride 1: 56x56x64 0.096 -> 0.051 ms, 28x28x128 0.040 -> 0.022, 14x14x256 0.016 ->
 *     0.012; stride 2: 56x56x128 0.044 -> 0.038), and its global 7x7 layer (XNNPACK: 0.049 ms
 *     for 25k products);
 *   - convolutions with fewer than 16 output channels (no dilation), with the PReLU and a 2x2
 *     max pool after them fused in, or two of them reading the same input in one pass: P-Net's
 *     first layer (3 -> 10 channels, where XNNPACK's GEMM has 3 products per kernel tap, and
 *     whose 10-channel output at full resolution is never written) and its two 1x1 heads;
 *   - max pools with the PReLU before them applied as the input is read: R-Net's and O-Net's
 *     PReLU + pool pairs, two passes in XNNPACK (per crop in an A/B in one process: O-Net
 *     0.212 -> 0.204 ms, R-Net 0.0257 -> 0.0249 ms);
 *   - only when asked (bf16), convolutions in bfloat16 products summed in float32: AVX512_BF16's
 *     VDPBF16PS does twice the products of an FMA (383 against 209 GFLOPS measured here).
 *     Factors keep 8 bits: outputs move by up to ~1% of their range (test_nn_golden: P-Net's
 *     probabilities 1.3e-2, MobileFaceNet 8e-3 and cosine 0.99997), which left every detection
 *     and accuracy figure of the pipeline unchanged.
 *       - 1x1 convolutions (an even number of inputs, a multiple of 32 outputs) with the PReLU
 *         after them: blocks of 12 pixels are converted once and meet every 32 outputs in 24
 *         accumulators. MobileFaceNet, whose 1x1 layers are 85% of its products: 3.18 -> 1.70 ms.
 *       - any other convolution with at least 8 inputs and 16 outputs (fewer: the narrow
 *         kernel's, or XNNPACK's, which was faster on 3 inputs), PReLU after it fused: the input
 *         is copied into a zero-bordered bfloat16 picture, then blocks of 12 output pixels sum
 *         over taps and channel pairs. Medians in one process: P-Net pyramid 6.15 -> 4.5-5.1
 *         ms, R-Net 0.025 -> 0.016-0.018 ms and O-Net 0.18 -> 0.11-0.12 ms per crop.
 *   - R-Net's and O-Net's convolutions with their PReLU and max pool (kern_small.h, claimed
 *     before the narrow kernel): the 3x3 convolution of the colour channels to 28 or 32
 *     outputs (in bfloat16 products when asked), and in float32 the next ones, fused so that
 *     the full-resolution picture is never written. The first layer took 8.7 us of R-Net and
 *     53 us of O-Net in XNNPACK + the pool kernel, 23 us of O-Net fused (float32); whole nets
 *     per crop in alternated runs in one loaded machine (medians; bf16 as the detector runs
 *     them): R-Net 0.021 -> 0.015 ms, O-Net 0.111 -> 0.085 ms for the first layer alone.
 *   - R-Net's and O-Net's hidden fully connected layer with its PReLU (kern_fc.h): blocks of 6
 *     crops meet each weight read (XNNPACK, at these batches, reads the 295 KB / 1.2 MB of
 *     weights more often): the layer and its heads per crop, in an A/B in one process, R-Net
 *     (batch 8) 1.7 -> 1.2 us, O-Net (batch 4) 6.7 -> 5.0 us; in bfloat16 products when asked
 *     (half the weight bytes): the layer alone 0.8-1.1 -> 0.5-0.6 us, 4.1-4.7 -> 2.9-3.7 us.
 *   - P-Net's whole body as one chain (kern_chain.h, claimed before the narrow kernel): first
 *     convolution + PReLU + pool, the 3x3 convolutions with their PReLUs, both heads and the
 *     sigmoid, row by row with output pixels in the lanes. Before it the 640x480 pyramid took
 *     6.3 ms on one thread (bench nn), of which 1.6 ms the narrow first layer, 4.1 ms XNNPACK's
 *     conv2 + conv3, 0.5 ms the narrow heads; with it 4.2 ms (2 threads: 4.4 -> 2.3 ms), the
 *     3x3 tiles at about the FMA units' peak. The plan is then one kernel (nn_plan_streams) and
 *     tall levels run whole rather than in bands. With bf16 (and AVX512_BF16) its 3x3
 *     convolutions after the first run in bfloat16 products on channel pairs (the first layer
 *     and the heads stay float32): 4.3 -> 2.7 ms on one thread, 2.2 -> 1.5 ms on two (medians
 *     alternating builds), probabilities within 1.3e-2 of float32.
 *
 * A kernel replaces one to four nodes of a graph at one set of shapes; the plan (plan.h) runs it
 * between XNNPACK segments. Kernels use AVX-512 and are offered only on CPUs that have it
 * (XNNPACK runs the nodes elsewhere); they run on the caller's thread, or split by output rows
 * over a thread pool. */
#ifndef FR_NN_KERN_H
#define FR_NN_KERN_H

#include <pthreadpool.h>

#include "nn/graph.h"

#define NN_KERN_MAX_NODES 16

struct nn_kern;

/* 1 when this CPU can run the kernels; the bfloat16 ones need AVX512_BF16 too. */
int nn_kern_available(void);
int nn_kern_bf16_available(void);

/* Whether a kernel here computes node n of g at shapes (from nn_graph_shapes). readers[t] counts
 * the node inputs and graph outputs that read tensor t; taken[m] is nonzero for nodes already
 * assigned elsewhere (they are never fused). On a match, prepares the kernel into *out (free
 * with nn_kern_free) and lists the nodes it computes in nodes[0..*count-1], n first.
 * Returns 1 (claimed), 0 (not claimed) or FR_ENOMEM. */
int nn_kern_claim(const struct nn_graph *g, const struct nn_shape *shapes, const int *readers,
                  const char *taken, int n, int bf16, struct nn_kern **out,
                  int nodes[NN_KERN_MAX_NODES], int *count) FR_MUST_USE;

/* The activations the kernel reads (returns how many: 1, or 2 when it adds a residual), and the
 * tensors it writes (returns how many: 1 or 2). */
int nn_kern_inputs(const struct nn_kern *k, int in[2]);
int nn_kern_outputs(const struct nn_kern *k, int out[2]);

/* Lets nn_kern_run split the work into up to `parts` pieces run at once (the threads of the
 * pool it will be given). Returns 0 or FR_ENOMEM (the kernel is unchanged). */
int nn_kern_set_parts(struct nn_kern *k, int parts) FR_MUST_USE;

/* Computes the outputs from x[0] (and the residual x[1]) into y[0] (and y[1]), sized from the
 * shapes it was claimed at, on the caller's thread (pool NULL) or in pieces on pool. Cannot
 * fail. */
void nn_kern_run(const struct nn_kern *k, const float *const *x, float *const *y,
                 pthreadpool_t pool);

/* NULL does nothing. */
void nn_kern_free(struct nn_kern *k);

#endif
