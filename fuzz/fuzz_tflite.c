/* fuzz_tflite: libFuzzer target for the TFLite reader, the graph passes and, for small graphs,
 * the XNNPACK build and run. `make fuzz && build/fuzz/fuzz_tflite -max_total_time=300 corpus/`
 * with the model files as seeds. */
#include <stdint.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "nn/tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[FR_ERR_LEN];
    struct nn_graph *g;
    if (nn_tflite_parse(data, size, &g, err) != 0) return 0;
    struct nn_stats st;
    (void)nn_graph_stats(g, NULL, &st, err);
    struct nn_shape in = g->tensors[g->inputs[0]].shape;
    if (nn_shape_count(&in) > 20000) {
        nn_graph_free(g);
        return 0;
    }
    struct nn_net *net;
    struct nn_opts o = {.threads = 1};
    if (nn_net_from_graph(g, &o, &net, err) != 0) return 0;
    float *x = calloc((size_t)nn_shape_count(&in), sizeof(float));
    struct nn_output out[NN_MAX_IO];
    if (x) (void)nn_net_run(net, x, &in, out, err);
    free(x);
    nn_net_close(net);
    return 0;
}
