/* embed.h: face embeddings: align a detected face by its five landmarks onto the 112x112
 * template with a similarity transform, run MobileFaceNet, L2-normalise.
 *
 * The embedding of the horizontally flipped face is not added: measured on the labelled photos
 * it changed no decision once faces are aligned (see README), and it would cost a second
 * inference. */
#ifndef FR_VISION_EMBED_H
#define FR_VISION_EMBED_H

#include "util/err.h"
#include "vision/image.h"
#include "vision/mtcnn.h"

#define EMBED_DIM 192
#define EMBED_SIZE 112

struct embedder;

/* Loads MobileFaceNet.tflite from model_dir, running on the caller's thread and, when pool is
 * not NULL, on pool's threads (shared, not owned: it must outlive the embedder). */
int embed_open(const char *model_dir, pthreadpool_t pool, struct embedder **out,
               char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void embed_close(struct embedder *e);

/* Aligns the face (by face->lm) from img and writes its unit-length embedding to out, and, when
 * quality is not NULL, the embedding's length before normalisation to *quality.
 *
 * That length says how much of a face MobileFaceNet found (as in MagFace and AdaFace, where the
 * feature norm tracks face quality). Measured on the labelled photos and face-api's demo photos:
 * every real face 48-88, also greyscale, in profile, and scaled down to 14 pixels; the two things
 * O-Net took for faces there, a patterned dress and a lock of hair, 22 and 37.
 * Returns 0, FR_EINVAL for degenerate landmarks, or an engine error. */
int embed_face(struct embedder *e, const struct image *img, const struct face_box *face,
               float out[EMBED_DIM], float *quality, char err[FR_ERR_LEN]) FR_MUST_USE;

/* The unit-length embedding of an already aligned crop (as embed_align writes it); quality as
 * for embed_face. */
int embed_aligned(struct embedder *e, const float *aligned, float out[EMBED_DIM], float *quality,
                  char err[FR_ERR_LEN]) FR_MUST_USE;

/* The aligned 112x112 crop of the face as normalised floats (for tests and debugging). */
int embed_align(const struct image *img, const struct face_box *face,
                float out[EMBED_SIZE * EMBED_SIZE * 3], char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
