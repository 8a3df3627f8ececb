/* image.h: decoding untrusted JPEG, PNG and WebP uploads into 8-bit RGB.
 *
 *     struct image img = {0};
 *     char err[FR_ERR_LEN];
 *     int rc = image_decode(buf, len, NULL, &img, err);   // NULL: IMAGE_LIMITS_DEFAULT
 *     if (rc) { log("%s: %s", fr_strerror(rc), err); return rc; }
 *     ... img.px[(y * img.w + x) * 3 + c] ...
 *     image_free(&img);
 *
 * The format is sniffed from the magic bytes, never from a name. The dimensions are read from
 * the header and checked against the limits before any pixel memory is allocated. Every
 * decoded image is converted to the one layout the pipeline uses:
 *   - greyscale is replicated into R, G and B;
 *   - palette images are expanded; 1, 2 and 4-bit samples are scaled to 8 bits;
 *   - 16-bit samples are scaled (rounded) to 8 bits;
 *   - alpha (an alpha channel or PNG tRNS) is composited over white, so that transparent
 *     pixels become white rather than whatever colour the encoder left under them; a face
 *     cut-out on a white card is what a person sees in a viewer;
 *   - CMYK and YCCK JPEGs are converted to RGB with the naive formula (no ICC profile); Adobe
 *     (APP14) files store inverted CMYK, which is what Photoshop writes;
 *   - EXIF orientation (tag 0x0112, values 1..8) is applied for JPEG (APP1 "Exif") and WebP
 *     (EXIF chunk), so that the image is upright as a viewer shows it. Browsers disagree on
 *     WebP; phones and image libraries honour it. PNG eXIf is not applied.
 * ICC profiles and PNG gamma are ignored: pixels are used as stored and treated as sRGB.
 *
 * A JPEG whose entropy-coded data is truncated or corrupt (libjpeg's "premature end", "bad
 * Huffman code", "must resync" warnings) is rejected with FR_EFORMAT instead of returning the
 * grey fill libjpeg would substitute. Harmless warnings (extraneous bytes before a marker, a
 * bad ICC marker, an unknown JFIF revision) are ignored. A baseline (single-scan, Huffman)
 * JPEG missing only its EOI marker is accepted, as its pixels are complete; a progressive or
 * arithmetic-coded one is not, since there a cut could drop data without any other sign.
 * A JPEG with more than 256 scans is FR_ETOOBIG (CPU guard). Animated WebP is
 * FR_EUNSUPPORTED.
 *
 * The module never prints and keeps no global state; all functions are thread-safe. */
#ifndef FR_VISION_IMAGE_H
#define FR_VISION_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* An 8-bit RGB image: 3 bytes per pixel, row-major, stride w * 3, px owned by the struct. */
struct image {
    int w, h;
    uint8_t *px;
    int full_w, full_h; /* the stored image's size when px was decoded reduced; else 0 (= w, h) */
};

/* The stored image's size: full_w, full_h when set, else w, h. */
static inline void image_full_size(const struct image *img, int *w, int *h)
{
    *w = img->full_w > 0 ? img->full_w : img->w;
    *h = img->full_h > 0 ? img->full_h : img->h;
}

/* Caps on untrusted input. All fields must be positive. */
struct image_limits {
    int max_w, max_h;   /* pixels per side */
    int64_t max_pixels; /* w * h */
    size_t max_bytes;   /* size of the encoded input */
};

#define IMAGE_MAX_SIDE_DEFAULT 16384
#define IMAGE_MAX_PIXELS_DEFAULT 40000000 /* ~120 MB of RGB */
#define IMAGE_MAX_BYTES_DEFAULT ((size_t)64 << 20)
#define IMAGE_LIMITS_DEFAULT                                                                       \
    {                                                                                              \
        IMAGE_MAX_SIDE_DEFAULT, IMAGE_MAX_SIDE_DEFAULT, IMAGE_MAX_PIXELS_DEFAULT,                  \
            IMAGE_MAX_BYTES_DEFAULT                                                                \
    }

/* Returns IMAGE_LIMITS_DEFAULT. */
struct image_limits image_limits_default(void);

/* Frees img->px and zeroes the struct. NULL-safe, and safe on a zeroed struct. */
void image_free(struct image *img);

/* Decodes the JPEG, PNG or WebP image in buf[0..len) into *out (see the top of this file for
 * the conversions). lim may be NULL for the defaults. On success returns 0 and *out owns a
 * malloc'ed pixel buffer the caller releases with image_free(). On failure *out is zeroed,
 * nothing is allocated, err holds a sentence naming the reason, and the return is:
 *   FR_EINVAL        empty input or invalid limits;
 *   FR_EUNSUPPORTED  not a JPEG, PNG or WebP image (also GIF, BMP, TIFF, HEIF...), or a
 *                    feature we do not decode (12-bit or lossless JPEG, animated WebP);
 *   FR_EFORMAT       corrupt or truncated data, or a 0x0 image;
 *   FR_ETOOBIG       input bytes, width, height or pixel count over lim (the message names
 *                    the size and the cap), or a JPEG with an absurd number of scans;
 *   FR_ENOMEM        allocation failed. */
int image_decode(const uint8_t *buf, size_t len, const struct image_limits *lim, struct image *out,
                 char err[FR_ERR_LEN]) FR_MUST_USE;

/* As image_decode, but a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (in the DCT domain,
 * several times faster) as long as its longest side stays >= min_side; 0 decodes in full. Other
 * formats decode in full. Caps apply to the stored size, which a reduced image keeps in
 * full_w, full_h (EXIF orientation applied to both). */
int image_decode_reduced(const uint8_t *buf, size_t len, const struct image_limits *lim,
                         int min_side, struct image *out, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Reads the file at path (at most lim->max_bytes of it) and decodes it with image_decode().
 * Returns 0 or the image_decode() errors, plus FR_ENOTFOUND if the file does not exist,
 * FR_EIO if it cannot be read, and FR_ETOOBIG if it is larger than lim->max_bytes. */
int image_load_file(const char *path, const struct image_limits *lim, struct image *out,
                    char err[FR_ERR_LEN]) FR_MUST_USE;

/* Transforms img in place so that an image stored with EXIF orientation `orientation` (1..8)
 * becomes upright; 5..8 swap w and h. Returns 0, FR_EINVAL for an orientation outside 1..8,
 * or FR_ENOMEM (img unchanged) if the rotated copy cannot be allocated. */
int image_rotate_orient(struct image *img, int orientation, char err[FR_ERR_LEN]) FR_MUST_USE;

/* Encodes img as a baseline JPEG of the given quality (1..100) into *out (caller frees).
 * Returns 0, FR_EINVAL, FR_ENOMEM or FR_EBACKEND. */
int image_encode_jpeg(const struct image *img, int quality, uint8_t **out, size_t *len,
                      char err[FR_ERR_LEN]) FR_MUST_USE;

#endif
