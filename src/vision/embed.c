/* embed.c: alignment and MobileFaceNet. */
#include "vision/embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "vision/warp.h"

struct embedder {
    struct nn_net *net;
    float input[EMBED_SIZE * EMBED_SIZE * 3];
};

int embed_open(const char *dir, pthreadpool_t pool, struct embedder **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct embedder *e = calloc(1, sizeof *e);
    if (!e) return fr_fail(err, FR_ENOMEM, "out of memory");
    char path[4096];
    snprintf(path, sizeof path, "%s/MobileFaceNet.tflite", dir);
    /* 1x1 convolutions in bfloat16 products where the CPU has them: 1.9x faster, embeddings
     * within cosine 0.99997 of float32 (the golden face), accuracy unchanged (test_accuracy) */
    struct nn_opts o = {.threads = 1, .pool = pool, .bf16 = 1};
    int rc = nn_net_open(path, &o, &e->net, err);
    if (rc) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void embed_close(struct embedder *e)
{
    if (!e) return;
    nn_net_close(e->net);
    free(e);
}

int embed_align(const struct image *img, const struct face_box *face,
                float out[EMBED_SIZE * EMBED_SIZE * 3], char err[FR_ERR_LEN])
{
    double m[6];
    if (warp_similarity(face->lm, warp_face_template, 5, m))
        return fr_fail(err, FR_EINVAL, "face landmarks are degenerate");
    int rc = warp_affine(img, m, EMBED_SIZE, out);
    return rc ? fr_fail(err, rc, "face alignment failed") : 0;
}

int embed_face(struct embedder *e, const struct image *img, const struct face_box *face,
               float out[EMBED_DIM], float *quality, char err[FR_ERR_LEN])
{
    int rc = embed_align(img, face, e->input, err);
    return rc ? rc : embed_aligned(e, e->input, out, quality, err);
}

int embed_aligned(struct embedder *e, const float *aligned, float out[EMBED_DIM], float *quality,
                  char err[FR_ERR_LEN])
{
    int rc;
    struct nn_shape shape = {4, {1, EMBED_SIZE, EMBED_SIZE, 3}};
    struct nn_output o[NN_MAX_IO];
    if ((rc = nn_net_run(e->net, aligned, &shape, o, err))) return rc;
    if (nn_shape_count(&o[0].shape) != EMBED_DIM)
        return fr_fail(err, FR_EUNSUPPORTED, "embedding model gives %lld values, not %d",
                       (long long)nn_shape_count(&o[0].shape), EMBED_DIM);
    double norm = 0;
    for (int i = 0; i < EMBED_DIM; i++)
        norm += (double)o[0].data[i] * o[0].data[i];
    norm = sqrt(norm);
    if (!(norm > 1e-12) || !isfinite(norm))
        return fr_fail(err, FR_EBACKEND, "embedding has no direction");
    for (int i = 0; i < EMBED_DIM; i++)
        out[i] = (float)(o[0].data[i] / norm);
    if (quality) *quality = (float)norm;
    return 0;
}
