/* warp.h: turning pixels into network inputs: resampling with area averaging, crops, and the
 * similarity transform that aligns a face to the 112x112 five-point template.
 *
 * Network inputs are float32 NHWC, normalised as (p - 127.5) / 128 (pixels outside the source
 * count as black, p = 0). "Transposed" outputs are laid out [W][H][3], the order MTCNN's models
 * take. Pixel centres sit at integer coordinates, as in OpenCV's warpAffine. */
#ifndef FR_VISION_WARP_H
#define FR_VISION_WARP_H

#include <stdint.h>

#include "util/err.h"
#include "vision/image.h"

/* A read-only view of pixels to resample from: u8 RGB (an image) or float32 already normalised
 * (a previous pyramid level). Transposed float sources are simply views with w and h swapped. */
struct warp_src {
    int w, h;
    const uint8_t *u8; /* one of the two */
    const float *f32;
};

struct warp_src warp_src_image(const struct image *img);

/* Resamples the source rectangle [x0, x1) x [y0, y1) (in source pixels; may extend past the
 * edges) to dw x dh, writing normalised floats to dst (dw * dh * 3; transposed if asked).
 * Shrinking averages the covered area, enlarging interpolates bilinearly. Returns 0, FR_EINVAL
 * for an empty rectangle or size or a coordinate past +-WARP_MAX_COORD, FR_ENOMEM. */
#define WARP_MAX_COORD 1e8
int warp_resize(const struct warp_src *src, double x0, double y0, double x1, double y1, int dw,
                int dh, int transpose, float *dst) FR_MUST_USE;

/* As warp_resize, into a larger picture: output rows (columns when transposed) lie pitch pixels
 * apart in dst (pitch >= dw, or >= dh when transposed); the pixels between are not touched. */
int warp_resize_pitch(const struct warp_src *src, double x0, double y0, double x1, double y1,
                      int dw, int dh, int transpose, int pitch, float *dst) FR_MUST_USE;

/* Least-squares similarity transform (rotation, uniform scale, translation; no reflection)
 * taking the n points src[2i], src[2i+1] onto dst. Writes the 2x3 matrix m mapping src to dst:
 * x' = m[0] x + m[1] y + m[2], y' = m[3] x + m[4] y + m[5]. FR_EINVAL when degenerate. */
int warp_similarity(const float *src, const float *dst, int n, double m[6]) FR_MUST_USE;

/* The standard 112x112 five-point face template (eye centres, nose tip, mouth corners). */
extern const float warp_face_template[10];

/* Warps img into a size x size normalised RGB float image through the inverse of m (m maps image
 * coordinates to output coordinates), bilinear, black border; when m shrinks by 2x or more, the
 * covered area is averaged first. Returns 0, FR_EINVAL (singular or absurd m), FR_ENOMEM. */
int warp_affine(const struct image *img, const double m[6], int size, float *dst) FR_MUST_USE;

#endif
