/* test_tflite: the model reader on good, truncated, bit-flipped and hostile files.
 *
 * Every damaged copy must give either a valid graph or an error with a message: never a crash
 * or an out-of-bounds read (this test also runs under ASan). Damaged copies that still parse are
 * built and run on XNNPACK too, since a flipped stride or shape must be caught before XNNPACK
 * sees it (its asserts abort the process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn/nn.h"
#include "nn/tflite.h"

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static int parses, rejects, runs;

/* Parses buf; a graph that parses is also run once on XNNPACK at its declared input shape when
 * that is small. Checks that failures explain themselves. */
static void try_bytes(const uint8_t *buf, size_t len, int run)
{
    char err[FR_ERR_LEN] = "";
    struct nn_graph *g = NULL;
    int rc = nn_tflite_parse(buf, len, &g, err);
    if (rc) {
        rejects++;
        CHECK_MSG(rc < 0 && err[0] != 0 && g == NULL, "rc %d without a message", rc);
        return;
    }
    parses++;
    const struct nn_shape in = g->tensors[g->inputs[0]].shape;
    if (!run || nn_shape_count(&in) > 300000) {
        nn_graph_free(g);
        return;
    }
    struct nn_net *net;
    struct nn_opts o = {.threads = 1};
    if (nn_net_from_graph(g, &o, &net, err) != 0) return;
    float *x = calloc((size_t)nn_shape_count(&in), sizeof(float));
    struct nn_output out[NN_MAX_IO];
    if (x && nn_net_run(net, x, &in, out, err) == 0) runs++;
    free(x);
    nn_net_close(net);
}

static void mutate_model(const char *path, int flips, int run)
{
    size_t len;
    uint8_t *orig = check_read_file(path, &len);
    CHECK_MSG(orig != NULL, "%s unreadable", path);
    if (!orig) return;
    uint8_t *buf = malloc(len);
    /* truncations: every prefix length near the start, then evenly spaced ones */
    for (size_t cut = 0; cut < len; cut += cut < 256 ? 1 : len / 300 + 1) {
        uint8_t *t = malloc(cut ? cut : 1);
        memcpy(t, orig, cut);
        try_bytes(t, cut, 0);
        free(t);
    }
    /* bit flips, mostly where the FlatBuffer's tables and vtables are: outside large buffers */
    for (int i = 0; i < flips; i++) {
        memcpy(buf, orig, len);
        int nflip = 1 + (int)(rnd() % 4);
        for (int k = 0; k < nflip; k++) {
            size_t pos;
            if (rnd() % 2) pos = rnd() % (len < 4096 ? len : 4096);
            else if (rnd() % 2) pos = len - 1 - rnd() % (len < 8192 ? len : 8192);
            else pos = rnd() % len;
            if (rnd() % 4) buf[pos] ^= (uint8_t)(1u << (rnd() % 8));
            else buf[pos] = (uint8_t)rnd(); /* a random byte, often a big offset */
        }
        try_bytes(buf, len, run);
    }
    free(buf);
    free(orig);
}

/* Position of field id of the table at pos (0 when absent): enough navigation to patch a file. */
static size_t field_pos(const uint8_t *b, size_t pos, int id)
{
    int32_t soff;
    memcpy(&soff, b + pos, 4);
    size_t vt = pos - (size_t)soff;
    uint16_t vsize, off;
    memcpy(&vsize, b + vt, 2);
    if ((size_t)(4 + 2 * id + 2) > vsize) return 0;
    memcpy(&off, b + vt + 4 + 2 * id, 2);
    return off ? pos + off : 0;
}

static size_t deref(const uint8_t *b, size_t pos)
{
    uint32_t v;
    memcpy(&v, b + pos, 4);
    return pos + v;
}

/* Rewrites the first operator code of a good model into an op we do not support. */
static void test_unsupported_op(const char *path)
{
    size_t len;
    uint8_t *b = check_read_file(path, &len);
    if (!b) return;
    size_t model = deref(b, 0);
    size_t codes = deref(b, field_pos(b, model, 1));
    uint32_t ncodes;
    memcpy(&ncodes, b + codes, 4);
    size_t dep = 0, code = 0;
    for (uint32_t i = 0; i < ncodes && !dep && !code; i++) { /* ADD (0) is stored as absent */
        size_t t = deref(b, codes + 4 + 4 * i);
        dep = field_pos(b, t, 0), code = field_pos(b, t, 3);
    }
    CHECK(dep || code);
    if (dep) b[dep] = 28; /* TANH */
    if (code) {
        int32_t v = 28;
        memcpy(b + code, &v, 4);
    }
    char err[FR_ERR_LEN] = "";
    struct nn_graph *g;
    int rc = nn_tflite_parse(b, len, &g, err);
    CHECK_MSG(rc == FR_EUNSUPPORTED && strstr(err, "TANH"), "rc %d: %s", rc, err);
    free(b);
}

static void test_headers(void)
{
    char err[FR_ERR_LEN];
    struct nn_graph *g;
    static const uint8_t text[] = "this is not a model, just some text of a reasonable length";
    CHECK(nn_tflite_parse(text, sizeof text, &g, err) == FR_EFORMAT && strstr(err, "TFL3"));
    CHECK(nn_tflite_parse(text, 0, &g, err) == FR_EFORMAT);
    uint8_t hdr[32] = {8, 0, 0, 0, 'T', 'F', 'L', '3'};
    CHECK(nn_tflite_parse(hdr, sizeof hdr, &g, err) == FR_EFORMAT); /* vtable of zeros */
    CHECK(nn_tflite_load("/nonexistent/model.tflite", &g, err) == FR_EIO && strstr(err, "nonexistent"));
    CHECK(nn_tflite_load("/", &g, err) < 0);
}

int main(void)
{
    const char *dir = getenv("FACEREC_MODELS");
    if (!dir || !*dir) dir = "models";
    char path[512];
    snprintf(path, sizeof path, "%s/rnet.tflite", dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return check_skip("models are absent (run make models)");
    fclose(probe);
    test_headers();
    test_unsupported_op(path);
    static const struct {
        const char *name;
        int flips;
        int run;
    } models[] = {{"rnet", 1000, 1}, {"onet", 600, 1}, {"pnet", 1500, 0}, {"MobileFaceNet", 150, 0}};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.tflite", dir, models[i].name);
        mutate_model(path, models[i].flips, models[i].run);
    }
    /* a model with an unsupported tensor type names it */
    snprintf(path, sizeof path, "%s/FaceAntiSpoofing.tflite", dir);
    char err[FR_ERR_LEN] = "";
    struct nn_graph *g;
    CHECK(nn_tflite_load(path, &g, err) == FR_EUNSUPPORTED && strstr(err, "FLOAT16"));
    printf("damaged copies: %d parsed (%d of them ran), %d rejected with a message\n", parses,
           runs, rejects);
    CHECK(rejects > 500);
    return check_done();
}
