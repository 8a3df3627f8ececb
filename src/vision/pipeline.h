/* pipeline.h: a photo in, every face out: detection, alignment, embedding, and the matching of
 * each face against a gallery of known people.
 *
 *   struct recognizer *r;  recognizer_open("models", NULL, &r, err);
 *   struct recognition res; recognizer_run(r, &img, &res, err);
 *   recognition_match(&res, gallery, 0.45f);   // names, or Unknown
 *   recognition_json(&res, &buf);  ...  recognition_free(&res);
 *
 * A recognizer is used by one thread at a time. */
#ifndef FR_VISION_PIPELINE_H
#define FR_VISION_PIPELINE_H

#include "util/buf.h"
#include "util/err.h"
#include "vision/embed.h"
#include "vision/image.h"
#include "vision/mtcnn.h"

/* Cosine similarity at which a face counts as a known person. Chosen on the labelled photos
 * (same-person pairs >= 0.512, different-person pairs <= 0.402; README): midway. */
#define RECOGNIZER_THRESHOLD_DEFAULT 0.45f
#define RECOGNIZER_NAME_MAX 128
/* Embedding length (embed_face's quality) below which a detection is not reported as a face:
 * midway between the highest non-face O-Net passed on the test photos (37) and the lowest real
 * face (48); see embed.h. */
#define RECOGNIZER_MIN_QUALITY_DEFAULT 42.0f

struct recognizer_opts {
    struct mtcnn_opts detect;
    int threads;       /* engine threads (default 1) */
    float min_quality; /* detections whose embedding is shorter are dropped; 0 keeps them all */
};

#define RECOGNIZER_OPTS_DEFAULT {MTCNN_OPTS_DEFAULT, 1, RECOGNIZER_MIN_QUALITY_DEFAULT}

struct face_result {
    struct face_box det;
    float emb[EMBED_DIM];
    int has_emb;                         /* 0 when alignment failed (degenerate landmarks) */
    float quality;                       /* embed_face's quality; NAN without embedding */
    char name[RECOGNIZER_NAME_MAX + 1]; /* best match, or "" when unknown or unmatched */
    float similarity;                   /* to the best match; NAN before matching */
};

struct recognition_timing {
    double detect, align_embed, match; /* milliseconds */
};

struct recognition {
    struct face_result *faces; /* sorted by detection score */
    int n;
    int largest; /* index of the largest face, -1 when none */
    struct recognition_timing t;
};

struct recognizer;

int recognizer_open(const char *model_dir, const struct recognizer_opts *opts,
                    struct recognizer **out, char err[FR_ERR_LEN]) FR_MUST_USE;
void recognizer_close(struct recognizer *r);

/* Prepares the executors a first photo would otherwise build (R-Net, O-Net batch sizes, the
 * embedding model), so that first requests are as fast as the rest. */
int recognizer_warm(struct recognizer *r, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Decodes an uploaded photo for this recognizer: a JPEG much larger than detection needs is
 * decoded reduced in the DCT domain, down to no less than 1.5 times the detection size (faces
 * keep enough pixels for alignment: the embeddings of the 24 faces of the 1920-px group photos
 * decoded at 1/2 are within cosine 0.99 of those at full size, the 76-px non-face of sample4
 * 0.96). Errors as image_decode. */
int recognizer_decode(const struct recognizer *r, const uint8_t *buf, size_t len,
                      const struct image_limits *lim, struct image *out,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

/* Detects and embeds every face of img into *out (freed with recognition_free, also on error).
 * Detections whose embedding is shorter than opts.min_quality are not faces and not reported;
 * those that cannot be aligned (degenerate landmarks) are, without embedding. deadline: CLOCK_MONOTONIC milliseconds after which the work stops with FR_ETIMEOUT (0: none).
 * Returns 0 or the errors of mtcnn_detect / embed_face. */
int recognizer_run(struct recognizer *r, const struct image *img, double deadline,
                   struct recognition *out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Names each face by its best match in the gallery at or above threshold (else unknown). */
struct gallery;
void recognition_match(struct recognition *res, const struct gallery *g, float threshold);

void recognition_free(struct recognition *res);

/* Detection's stage timing of the last recognizer_run (benchmarks). */
void recognizer_detect_timing(const struct recognizer *r, struct mtcnn_timing *t);

/* The one-line answer: the largest face's name, "Unknown" when it matches no one, "No face". */
const char *recognition_result(const struct recognition *res);

/* Appends one face as a JSON object to b: box, score, landmarks, quality; then name and
 * similarity when with_match; then embedding (null without one) when with_embedding. */
void recognition_face_json(const struct face_result *f, int with_match, int with_embedding,
                           struct buf *b);

/* Appends the members {"result":..., "faces":[...]} (without the braces) to b, each face with
 * its match and without embedding. */
void recognition_json(const struct recognition *res, struct buf *b);

#endif
