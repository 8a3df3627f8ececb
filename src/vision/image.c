/* image.c: JPEG (libjpeg-turbo), PNG (libpng) and WebP (libwebp) decoding of untrusted bytes.
 *
 * Each decoder runs in a *_run() function that owns the setjmp() and keeps everything it
 * allocates in a context struct owned by its caller; the caller is the one cleanup path, so a
 * longjmp out of the library from any depth leaks nothing. The header dimensions are checked
 * (check_dims) before any pixel buffer is allocated. */
#include "vision/image.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

/* Real progressive JPEGs have about ten scans; thousands of tiny scans make the decoder
 * re-walk every coefficient each time, a known CPU exhaustion. libjpeg-turbo's own tools
 * offer the same kind of cap. */
#define JPEG_MAX_SCANS 256
/* libjpeg's internal memory on top of the coefficient arrays (8 bytes per pixel at most for
 * four components): Huffman tables, line buffers, MCU padding. */
#define JPEG_MEM_SLACK ((int64_t)16 << 20)
/* Ancillary PNG chunks: how many may be stored and how large one may be after inflating. */
#define PNG_CHUNK_CACHE_MAX 128
#define PNG_CHUNK_MALLOC_MAX ((png_alloc_size_t)8 << 20)

struct image_limits image_limits_default(void)
{
    struct image_limits lim = IMAGE_LIMITS_DEFAULT;
    return lim;
}

void image_free(struct image *img)
{
    if (!img) return;
    free(img->px);
    *img = (struct image){0};
}

static uint32_t rd16(const uint8_t *p, int big_endian)
{
    return big_endian ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}

static uint32_t rd32(const uint8_t *p, int big_endian)
{
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int check_limits(const struct image_limits *lim, char *err)
{
    if (lim->max_w <= 0 || lim->max_h <= 0 || lim->max_pixels <= 0 || lim->max_bytes == 0)
        return fr_fail(err, FR_EINVAL,
                       "invalid image limits (%dx%d, %" PRId64 " pixels, %zu bytes)", lim->max_w,
                       lim->max_h, lim->max_pixels, lim->max_bytes);
    return 0;
}

/* Checks header dimensions against lim before anything is allocated for the pixels. Returns
 * 0, FR_EFORMAT for an empty image or FR_ETOOBIG naming the size and the cap. */
static int check_dims(const char *fmt, int64_t w, int64_t h, const struct image_limits *lim,
                      char *err)
{
    if (w <= 0 || h <= 0)
        return fr_fail(err, FR_EFORMAT, "%s image has no pixels (%" PRId64 "x%" PRId64 ")", fmt, w,
                       h);
    if (w > lim->max_w || h > lim->max_h)
        return fr_fail(err, FR_ETOOBIG,
                       "%s image is %" PRId64 "x%" PRId64 " pixels, over the limit of %dx%d", fmt,
                       w, h, lim->max_w, lim->max_h);
    if (w * h > lim->max_pixels)
        return fr_fail(err, FR_ETOOBIG,
                       "%s image is %" PRId64 "x%" PRId64 " = %" PRId64
                       " pixels, over the limit of %" PRId64 " pixels",
                       fmt, w, h, w * h, lim->max_pixels);
    if ((uint64_t)(w * h) > SIZE_MAX / 4)
        return fr_fail(err, FR_ETOOBIG, "%s image of %" PRId64 "x%" PRId64 " is too large here",
                       fmt, w, h);
    return 0;
}

/* Composites n RGBA pixels over white into RGB. in and out may be the same buffer: pixel i is
 * read before its 3 bytes are written, and those never reach pixel i + 1's 4 bytes. */
static void rgba_over_white(const uint8_t *in, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned r = in[4 * i], g = in[4 * i + 1], b = in[4 * i + 2], a = in[4 * i + 3];
        unsigned bg = 255 * (255 - a) + 127;
        out[3 * i] = (uint8_t)((r * a + bg) / 255);
        out[3 * i + 1] = (uint8_t)((g * a + bg) / 255);
        out[3 * i + 2] = (uint8_t)((b * a + bg) / 255);
    }
}

/* ---- EXIF ------------------------------------------------------------------------------- */

/* Returns the orientation (1..8) in the EXIF block t[0..n), a TIFF header optionally preceded
 * by "Exif\0\0"; 1 when absent, out of range or malformed. Every offset is checked. */
static int exif_orientation(const uint8_t *t, size_t n)
{
    if (n >= 6 && memcmp(t, "Exif\0\0", 6) == 0) {
        t += 6;
        n -= 6;
    }
    if (n < 8) return 1;
    int be;
    if (t[0] == 'I' && t[1] == 'I')
        be = 0;
    else if (t[0] == 'M' && t[1] == 'M')
        be = 1;
    else
        return 1;
    if (rd16(t + 2, be) != 42) return 1;
    size_t ifd = rd32(t + 4, be);
    if (ifd > n || n - ifd < 2) return 1;
    size_t count = rd16(t + ifd, be);
    for (size_t i = 0; i < count; i++) {
        size_t e = ifd + 2 + i * 12;
        if (e > n || n - e < 12) break;
        if (rd16(t + e, be) != 0x0112) continue;
        uint32_t type = rd16(t + e + 2, be), v;
        if (rd32(t + e + 4, be) < 1) return 1;
        if (type == 3) /* SHORT, the standard type; its value sits in the entry */
            v = rd16(t + e + 8, be);
        else if (type == 4) /* LONG, seen from sloppy writers */
            v = rd32(t + e + 8, be);
        else
            return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* Walks the JPEG marker segments before the first SOS and returns the orientation from the
 * first APP1 "Exif" segment, or 1. Stops at anything that does not look like a marker. */
static int jpeg_exif_orientation(const uint8_t *b, size_t len)
{
    size_t pos = 2; /* after SOI */
    while (pos + 4 <= len) {
        if (b[pos] != 0xFF) return 1;
        uint8_t m = b[pos + 1];
        if (m == 0xFF) { /* fill byte */
            pos++;
            continue;
        }
        if (m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) { /* no length field */
            pos += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9) return 1; /* image data: EXIF must come before it */
        size_t seg = rd16(b + pos + 2, 1);    /* includes its own two bytes */
        if (seg < 2 || seg > len - pos - 2) return 1;
        if (m == 0xE1 && seg - 2 >= 6 && memcmp(b + pos + 4, "Exif\0\0", 6) == 0)
            return exif_orientation(b + pos + 4, seg - 2);
        pos += 2 + seg;
    }
    return 1;
}

int image_rotate_orient(struct image *img, int orientation, char err[FR_ERR_LEN])
{
    if (!img || orientation < 1 || orientation > 8)
        return fr_fail(err, FR_EINVAL, "EXIF orientation %d is not in 1..8", orientation);
    if (!img->px || img->w <= 0 || img->h <= 0)
        return fr_fail(err, FR_EINVAL, "no image to orient");
    size_t w = (size_t)img->w, h = (size_t)img->h, n = w * h;
    uint8_t *p = img->px, t;

#define SWAP_PX(a, b)                                                                              \
    for (int k_ = 0; k_ < 3; k_++) {                                                               \
        t = p[3 * (a) + k_];                                                                       \
        p[3 * (a) + k_] = p[3 * (b) + k_];                                                         \
        p[3 * (b) + k_] = t;                                                                       \
    }
    switch (orientation) {
    case 1:
        return 0;
    case 2: /* mirror left-right */
        for (size_t y = 0; y < h; y++)
            for (size_t x = 0; x < w / 2; x++)
                SWAP_PX(y * w + x, y * w + w - 1 - x);
        return 0;
    case 3: /* rotate 180 */
        for (size_t i = 0; i < n / 2; i++)
            SWAP_PX(i, n - 1 - i);
        return 0;
    case 4: /* mirror top-bottom */
        for (size_t y = 0; y < h / 2; y++)
            for (size_t x = 0; x < w; x++)
                SWAP_PX(y * w + x, (h - 1 - y) * w + x);
        return 0;
    }
#undef SWAP_PX

    /* 5..8 swap the sides, so they need a second buffer. The destination is h wide and w
     * high; source (x, y) goes to destination pixel base + x * sx + y * sy. */
    ptrdiff_t H = (ptrdiff_t)h, W = (ptrdiff_t)w, base, sx, sy;
    switch (orientation) {
    case 5: /* transpose */
        base = 0, sx = H, sy = 1;
        break;
    case 6: /* rotate 90 clockwise */
        base = H - 1, sx = H, sy = -1;
        break;
    case 7: /* transverse */
        base = W * H - 1, sx = -H, sy = -1;
        break;
    default: /* 8: rotate 90 counter-clockwise */
        base = (W - 1) * H, sx = -H, sy = 1;
        break;
    }
    uint8_t *dst = malloc(n * 3);
    if (!dst) return fr_fail(err, FR_ENOMEM, "out of memory rotating a %zux%zu image", w, h);
    const uint8_t *s = p;
    for (ptrdiff_t y = 0; y < H; y++) {
        ptrdiff_t d = base + y * sy;
        for (ptrdiff_t x = 0; x < W; x++, d += sx, s += 3)
            memcpy(dst + 3 * d, s, 3);
    }
    free(img->px);
    img->px = dst;
    img->w = (int)h;
    img->h = (int)w;
    int fw = img->full_w;
    img->full_w = img->full_h, img->full_h = fw;
    return 0;
}

/* ---- JPEG ------------------------------------------------------------------------------- */

struct jpeg_ctx {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    int code;    /* FR_E* for the longjmp path */
    int started; /* jpeg_start_decompress() returned: single-scan data is being decoded */
    int eof;     /* the input ran out (libjpeg then feeds a fake EOI marker) */
    char msg[JMSG_LENGTH_MAX];
    uint8_t *px;  /* output, owned here until handed over */
    uint8_t *row; /* one CMYK scanline */
};

static int jpeg_error_code(int msg_code)
{
    switch (msg_code) {
    case JERR_BAD_PRECISION:
    case JERR_SOF_UNSUPPORTED:
    case JERR_NOT_COMPILED:
    case JERR_ARITH_NOTIMPL:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOTIMPL:
        return FR_EUNSUPPORTED;
    case JERR_OUT_OF_MEMORY:
        return FR_ENOMEM;
    case JERR_NO_BACKING_STORE: /* over max_memory_to_use */
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW:
        return FR_ETOOBIG;
    default:
        return FR_EFORMAT;
    }
}

static _Noreturn void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_ctx *c = cinfo->client_data;
    c->code = jpeg_error_code(cinfo->err->msg_code);
    if (cinfo->err->msg_code == JERR_NO_BACKING_STORE)
        snprintf(c->msg, sizeof c->msg, "decoding needs more memory than the pixel limit allows");
    else
        (*cinfo->err->format_message)(cinfo, c->msg);
    longjmp(c->jmp, 1);
}

/* Warnings (level -1) that mean entropy-coded data is missing or damaged: libjpeg would carry
 * on with grey or smeared blocks, which we refuse to hand to a face model. "Premature end of
 * JPEG file" also comes from the decoder's read-ahead when only the EOI marker is missing; in
 * a single-scan file "premature end of data segment" reliably follows whenever pixels are
 * actually lost, so there it is tolerated. In a multi-scan (progressive) file a cut between
 * two scans is indistinguishable from a missing EOI and would silently drop the later scans,
 * so there, as in the headers, it is fatal. So it is with arithmetic coding, which pads a cut
 * scan with zeros without a word. Other warnings (junk before a marker, a bad ICC
 * marker, an unknown JFIF revision) are harmless and ignored, as is trace output. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0) return;
    struct jpeg_ctx *c = cinfo->client_data;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
        c->eof = 1;
        if (c->started && !d->progressive_mode && !d->arith_code &&
            d->comps_in_scan == d->num_components)
            return;
        jpeg_on_error(cinfo);
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
        jpeg_on_error(cinfo); /* does not return */
    default:
        return;
    }
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo; /* never print */
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor) return;
    if (((j_decompress_ptr)cinfo)->input_scan_number <= JPEG_MAX_SCANS) return;
    struct jpeg_ctx *c = cinfo->client_data;
    c->code = FR_ETOOBIG;
    snprintf(c->msg, sizeof c->msg, "more than %d scans (progressive passes)", JPEG_MAX_SCANS);
    longjmp(c->jmp, 1);
}

/* Photoshop (Adobe APP14) stores CMYK inverted, 255 meaning no ink; others store ink. */
static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, size_t w, int inverted)
{
    for (size_t x = 0; x < w; x++, in += 4, out += 3) {
        unsigned c = in[0], m = in[1], y = in[2], k = in[3];
        if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        out[0] = (uint8_t)((c * k + 127) / 255);
        out[1] = (uint8_t)((m * k + 127) / 255);
        out[2] = (uint8_t)((y * k + 127) / 255);
    }
}

/* Decodes into c->px; on return c holds everything to free. *w, *h set on success. */
static int jpeg_run(struct jpeg_ctx *c, const uint8_t *buf, size_t len,
                    const struct image_limits *lim, int min_side, int *w, int *h, int *full_w,
                    int *full_h, char *err)
{
    if (setjmp(c->jmp)) {
        switch (c->code) {
        case FR_ETOOBIG:
            return fr_fail(err, c->code, "JPEG is too costly to decode: %s", c->msg);
        case FR_EUNSUPPORTED:
            return fr_fail(err, c->code, "unsupported JPEG: %s", c->msg);
        case FR_ENOMEM:
            return fr_fail(err, c->code, "out of memory decoding JPEG: %s", c->msg);
        default:
            return fr_fail(err, c->code, "%s JPEG (libjpeg: %s)", c->eof ? "truncated" : "corrupt",
                           c->msg);
        }
    }
    struct jpeg_decompress_struct *ci = &c->cinfo;
    ci->err = jpeg_std_error(&c->jerr);
    c->jerr.error_exit = jpeg_on_error;
    c->jerr.emit_message = jpeg_on_message;
    c->jerr.output_message = jpeg_on_output;
    ci->client_data = c;
    jpeg_create_decompress(ci);
    c->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &c->progress;
    jpeg_mem_src(ci, buf, (unsigned long)len);
    jpeg_read_header(ci, TRUE);

    int rc = check_dims("JPEG", ci->image_width, ci->image_height, lim, err);
    if (rc) return rc;
    int cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default:
        return fr_fail(err, FR_EUNSUPPORTED,
                       "unsupported JPEG: %d colour components of unknown meaning",
                       ci->num_components);
    }
    /* Progressive and multi-scan files buffer all coefficients: bound that by the pixel cap. */
    int64_t mem = lim->max_pixels < (INT64_MAX - JPEG_MEM_SLACK) / 8
                      ? lim->max_pixels * 8 + JPEG_MEM_SLACK
                      : INT64_MAX;
    ci->mem->max_memory_to_use = mem < LONG_MAX ? (long)mem : LONG_MAX;
    /* Decoding at 1/2, 1/4 or 1/8 in the DCT domain is several times faster than decoding in
     * full and shrinking after: take the smallest that keeps the longest side >= min_side. */
    unsigned longest = ci->image_width > ci->image_height ? ci->image_width : ci->image_height;
    unsigned denom = 1;
    while (min_side > 0 && denom < 8 && longest / (denom * 2) >= (unsigned)min_side)
        denom *= 2;
    ci->scale_num = 1;
    ci->scale_denom = denom;
    jpeg_calc_output_dimensions(ci);
    JDIMENSION want_w = ci->output_width, want_h = ci->output_height;

    jpeg_start_decompress(ci);
    c->started = 1;
    int ow = (int)ci->output_width, oh = (int)ci->output_height;
    if (ci->output_width != want_w || ci->output_height != want_h ||
        ci->output_components != (cmyk ? 4 : 3))
        return fr_fail(err, FR_EBACKEND, "libjpeg produced an unexpected %ux%u x%d output",
                       ci->output_width, ci->output_height, ci->output_components);
    size_t stride = (size_t)ow * 3;
    c->px = malloc(stride * (size_t)oh);
    if (!c->px) return fr_fail(err, FR_ENOMEM, "out of memory for a %dx%d image", ow, oh);
    if (cmyk && !(c->row = malloc((size_t)ow * 4)))
        return fr_fail(err, FR_ENOMEM, "out of memory for a %dx%d image", ow, oh);
    while (ci->output_scanline < ci->output_height) {
        uint8_t *out = c->px + stride * ci->output_scanline;
        JSAMPROW dst = cmyk ? c->row : out;
        if (jpeg_read_scanlines(ci, &dst, 1) != 1)
            return fr_fail(err, FR_EFORMAT, "corrupt JPEG: decoding stopped at line %u",
                           ci->output_scanline);
        if (cmyk) cmyk_to_rgb(c->row, out, (size_t)ow, ci->saw_Adobe_marker);
    }
    /* No jpeg_finish_decompress(): every pixel is in, and what follows (EOI, trailing bytes)
     * cannot change them. */
    *w = ow;
    *h = oh;
    *full_w = (int)ci->image_width;
    *full_h = (int)ci->image_height;
    return 0;
}

static int decode_jpeg(const uint8_t *buf, size_t len, const struct image_limits *lim,
                       int min_side, struct image *out, char *err)
{
#if SIZE_MAX > ULONG_MAX
    if (len > ULONG_MAX)
        return fr_fail(err, FR_ETOOBIG, "JPEG input of %zu bytes is too large", len);
#endif
    struct jpeg_ctx *c = calloc(1, sizeof *c); /* ~1 KB of jmp_buf and structs: keep off stack */
    if (!c) return fr_fail(err, FR_ENOMEM, "out of memory");
    int w = 0, h = 0, full_w = 0, full_h = 0;
    int rc = jpeg_run(c, buf, len, lim, min_side, &w, &h, &full_w, &full_h, err);
    jpeg_destroy_decompress(&c->cinfo); /* safe on a struct never created: mem is NULL */
    free(c->row);
    if (rc == 0) {
        out->w = w;
        out->h = h;
        out->px = c->px;
        if (full_w != w || full_h != h) out->full_w = full_w, out->full_h = full_h;
    } else {
        free(c->px);
    }
    free(c);
    if (rc) return rc;
    /* After libjpeg's buffers are gone, so that the rotated copy does not add to them. */
    int orient = jpeg_exif_orientation(buf, len);
    if (orient != 1 && (rc = image_rotate_orient(out, orient, err)) != 0) image_free(out);
    return rc;
}

/* ---- PNG -------------------------------------------------------------------------------- */

struct png_ctx {
    png_structp png;
    png_infop info;
    jmp_buf jmp;
    const uint8_t *buf;
    size_t len, pos;
    int truncated;
    char msg[128];
    uint8_t *px;     /* output, owned here until handed over */
    png_bytep *rows; /* pointers into px */
};

static _Noreturn void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* never print; libpng only warns about things it recovered from */
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep dst, size_t n)
{
    struct png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        c->truncated = 1;
        png_error(png, "the data ends early");
    }
    memcpy(dst, c->buf + c->pos, n);
    c->pos += n;
}

static int png_run(struct png_ctx *c, const struct image_limits *lim, int *w, int *h, char *err)
{
    if (setjmp(c->jmp))
        return fr_fail(err, FR_EFORMAT, "%s PNG: %s", c->truncated ? "truncated" : "corrupt",
                       c->msg);
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    if (!c->png) return fr_fail(err, FR_ENOMEM, "out of memory starting libpng");
    c->info = png_create_info_struct(c->png);
    if (!c->info) return fr_fail(err, FR_ENOMEM, "out of memory starting libpng");
    png_set_read_fn(c->png, c, png_on_read);
    png_set_user_limits(c->png, (png_uint_32)lim->max_w, (png_uint_32)lim->max_h);
    png_set_chunk_cache_max(c->png, PNG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(c->png, PNG_CHUNK_MALLOC_MAX);
    /* Skip what we would throw away anyway, including compressed text and ICC profiles. */
    static const png_byte skip[] = "iCCP\0iTXt\0sPLT\0tEXt\0zTXt\0eXIf";
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, skip, (int)sizeof skip / 5);
    png_read_info(c->png, c->info);

    png_uint_32 pw, ph;
    int depth, color, interlace;
    png_get_IHDR(c->png, c->info, &pw, &ph, &depth, &color, &interlace, NULL, NULL);
    int rc = check_dims("PNG", pw, ph, lim, err);
    if (rc) return rc;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(c->png);
    if (depth == 16) png_set_scale_16(c->png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);

    size_t ch = png_get_channels(c->png, c->info), stride = (size_t)pw * ch;
    if ((ch != 3 && ch != 4) || png_get_rowbytes(c->png, c->info) != stride)
        return fr_fail(err, FR_EBACKEND, "libpng produced %zu channels, %zu bytes a row", ch,
                       (size_t)png_get_rowbytes(c->png, c->info));
    c->px = malloc(stride * ph);
    c->rows = malloc(sizeof *c->rows * ph);
    if (!c->px || !c->rows)
        return fr_fail(err, FR_ENOMEM, "out of memory for a %ux%u image", (unsigned)pw,
                       (unsigned)ph);
    for (size_t y = 0; y < ph; y++)
        c->rows[y] = c->px + y * stride;
    png_read_image(c->png, c->rows);
    /* No png_read_end(): the pixels are complete and trailing chunks cannot change them. */
    if (ch == 4) {
        size_t n = (size_t)pw * ph;
        rgba_over_white(c->px, c->px, n);
        uint8_t *shrunk = realloc(c->px, n * 3);
        if (shrunk) c->px = shrunk;
    }
    *w = (int)pw;
    *h = (int)ph;
    return 0;
}

static int decode_png(const uint8_t *buf, size_t len, const struct image_limits *lim,
                      struct image *out, char *err)
{
    /* Signature, IHDR length and type, then width and height: refuse a huge image before
     * libpng allocates anything for it. */
    if (len < 8 + 8 + 13) return fr_fail(err, FR_EFORMAT, "truncated PNG: no complete header");
    if (memcmp(buf + 12, "IHDR", 4) != 0)
        return fr_fail(err, FR_EFORMAT, "corrupt PNG: the first chunk is not IHDR");
    int rc = check_dims("PNG", rd32(buf + 16, 1), rd32(buf + 20, 1), lim, err);
    if (rc) return rc;

    struct png_ctx *c = calloc(1, sizeof *c);
    if (!c) return fr_fail(err, FR_ENOMEM, "out of memory");
    c->buf = buf;
    c->len = len;
    int w = 0, h = 0;
    rc = png_run(c, lim, &w, &h, err);
    if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
    free(c->rows);
    if (rc == 0) {
        out->w = w;
        out->h = h;
        out->px = c->px;
    } else {
        free(c->px);
    }
    free(c);
    return rc;
}

/* ---- WebP ------------------------------------------------------------------------------- */

static int webp_fail(VP8StatusCode st, char *err)
{
    switch (st) {
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return fr_fail(err, FR_EFORMAT, "truncated WebP: the data ends early");
    case VP8_STATUS_BITSTREAM_ERROR:
        return fr_fail(err, FR_EFORMAT, "corrupt WebP: bad bitstream");
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return fr_fail(err, FR_EUNSUPPORTED, "unsupported WebP feature");
    case VP8_STATUS_OUT_OF_MEMORY:
        return fr_fail(err, FR_ENOMEM, "out of memory decoding WebP");
    default:
        return fr_fail(err, FR_EBACKEND, "libwebp failed with status %d", (int)st);
    }
}

/* Orientation from the EXIF chunk of an extended (VP8X) WebP, or 1. */
static int webp_exif_orientation(const uint8_t *buf, size_t len)
{
    if (len < 16 || memcmp(buf + 12, "VP8X", 4) != 0) return 1; /* simple files have no EXIF */
    WebPData data = {buf, len};
    WebPDemuxer *d = WebPDemux(&data);
    if (!d) return 1;
    int orient = 1;
    WebPChunkIterator it;
    if ((WebPDemuxGetI(d, WEBP_FF_FORMAT_FLAGS) & EXIF_FLAG) &&
        WebPDemuxGetChunk(d, "EXIF", 1, &it)) {
        orient = exif_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(d);
    return orient;
}

static int decode_webp(const uint8_t *buf, size_t len, const struct image_limits *lim,
                       struct image *out, char *err)
{
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) return fr_fail(err, FR_EBACKEND, "libwebp version mismatch");
    VP8StatusCode st = WebPGetFeatures(buf, len, &cfg.input);
    if (st != VP8_STATUS_OK) return webp_fail(st, err);
    int w = cfg.input.width, h = cfg.input.height;
    int rc = check_dims("WebP", w, h, lim, err);
    if (rc) return rc;
    if (cfg.input.has_animation)
        return fr_fail(err, FR_EUNSUPPORTED, "unsupported WebP: animated images are not decoded");

    size_t n = (size_t)w * (size_t)h, ch = cfg.input.has_alpha ? 4 : 3;
    uint8_t *px = malloc(n * ch);
    if (!px) return fr_fail(err, FR_ENOMEM, "out of memory for a %dx%d image", w, h);
    cfg.output.colorspace = ch == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = px;
    cfg.output.u.RGBA.stride = w * (int)ch;
    cfg.output.u.RGBA.size = n * ch;
    st = WebPDecode(buf, len, &cfg);
    WebPFreeDecBuffer(&cfg.output); /* frees nothing of ours: the memory is external */
    if (st != VP8_STATUS_OK) {
        free(px);
        return webp_fail(st, err);
    }
    if (ch == 4) {
        rgba_over_white(px, px, n);
        uint8_t *shrunk = realloc(px, n * 3);
        if (shrunk) px = shrunk;
    }
    out->w = w;
    out->h = h;
    out->px = px;
    int orient = webp_exif_orientation(buf, len);
    if (orient != 1 && (rc = image_rotate_orient(out, orient, err)) != 0) image_free(out);
    return rc;
}

/* ---- Sniffing and entry points ---------------------------------------------------------- */

/* Names a format we recognise but do not decode, or returns NULL. */
static const char *other_format(const uint8_t *b, size_t len)
{
    if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) return "GIF";
    if (len >= 26 && b[0] == 'B' && b[1] == 'M' && rd32(b + 6, 0) == 0) return "BMP";
    if (len >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0)) return "TIFF";
    if (len >= 12 && memcmp(b + 4, "ftyp", 4) == 0) {
        if (memcmp(b + 8, "avif", 4) == 0 || memcmp(b + 8, "avis", 4) == 0) return "AVIF";
        if (memcmp(b + 8, "hei", 3) == 0 || memcmp(b + 8, "mif1", 4) == 0) return "HEIF";
    }
    if (len >= 2 && b[0] == 0xFF && b[1] == 0x0A) return "JPEG XL";
    if (len >= 12 && memcmp(b, "\0\0\0\x0cJXL \r\n\x87\n", 12) == 0) return "JPEG XL";
    if (len >= 12 && memcmp(b, "\0\0\0\x0cjP  \r\n\x87\n", 12) == 0) return "JPEG 2000";
    return NULL;
}

int image_decode(const uint8_t *buf, size_t len, const struct image_limits *lim, struct image *out,
                 char err[FR_ERR_LEN])
{
    return image_decode_reduced(buf, len, lim, 0, out, err);
}

int image_decode_reduced(const uint8_t *buf, size_t len, const struct image_limits *lim,
                         int min_side, struct image *out, char err[FR_ERR_LEN])
{
    struct image_limits def = IMAGE_LIMITS_DEFAULT;
    if (!lim) lim = &def;
    if (!out || (!buf && len)) return fr_fail(err, FR_EINVAL, "image_decode: no buffer");
    *out = (struct image){0};
    int rc = check_limits(lim, err);
    if (rc) return rc;
    if (len == 0) return fr_fail(err, FR_EINVAL, "empty input: no image data");
    if (len > lim->max_bytes)
        return fr_fail(err, FR_ETOOBIG, "image input is %zu bytes, over the limit of %zu bytes",
                       len, lim->max_bytes);

    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return decode_jpeg(buf, len, lim, min_side, out, err);
    if (len >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(buf, len, lim, out, err);
    if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return decode_webp(buf, len, lim, out, err);
    const char *other = other_format(buf, len);
    if (other)
        return fr_fail(err, FR_EUNSUPPORTED,
                       "%s images are not supported; send a JPEG, PNG or WebP image", other);
    return fr_fail(err, FR_EUNSUPPORTED, "not a JPEG, PNG or WebP image");
}

int image_load_file(const char *path, const struct image_limits *lim, struct image *out,
                    char err[FR_ERR_LEN])
{
    struct image_limits def = IMAGE_LIMITS_DEFAULT;
    if (!lim) lim = &def;
    if (out) *out = (struct image){0};
    if (!path || !out) return fr_fail(err, FR_EINVAL, "image_load_file: no path");
    int rc = check_limits(lim, err);
    if (rc) return rc;

    /* glibc's strerror() is thread-safe (thread-local buffer for unknown codes). */
    FILE *f = fopen(path, "rb");
    if (!f)
        return fr_fail(err, errno == ENOENT ? FR_ENOTFOUND : FR_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, limit = lim->max_bytes;
    size_t want = limit < SIZE_MAX ? limit + 1 : limit; /* one more byte tells "over the cap" */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > limit) {
        rc = fr_fail(err, FR_ETOOBIG, "%s is %jd bytes, over the limit of %zu bytes", path,
                     (intmax_t)st.st_size, limit);
        goto done;
    }
    for (;;) {
        if (n == cap) {
            if (cap == want) break;
            size_t ncap = cap == 0 ? 65536 : cap > want / 2 ? want : cap * 2;
            if (ncap > want) ncap = want;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                rc = fr_fail(err, FR_ENOMEM, "out of memory reading %s", path);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) {
            if (ferror(f)) {
                rc = fr_fail(err, FR_EIO, "cannot read %s: %s", path, strerror(errno));
                goto done;
            }
            break; /* end of file */
        }
    }
    if (n > limit) {
        rc = fr_fail(err, FR_ETOOBIG, "%s is over the limit of %zu bytes", path, limit);
        goto done;
    }
    rc = image_decode(buf, n, lim, out, err);
    if (rc && err) {
        char inner[FR_ERR_LEN];
        memcpy(inner, err, FR_ERR_LEN);
        inner[FR_ERR_LEN - 1] = '\0';
        fr_fail(err, rc, "%s: %s", path, inner);
    }
done:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- encoding (fixtures, thumbnails) ---- */

struct jpeg_enc {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    jmp_buf jmp;
};

static void jpeg_enc_error(j_common_ptr ci)
{
    longjmp(((struct jpeg_enc *)ci->client_data)->jmp, 1);
}

int image_encode_jpeg(const struct image *img, int quality, uint8_t **out, size_t *len,
                      char err[FR_ERR_LEN])
{
    *out = NULL;
    *len = 0;
    if (img->w <= 0 || img->h <= 0 || !img->px || quality < 1 || quality > 100)
        return fr_fail(err, FR_EINVAL, "nothing to encode");
    struct jpeg_enc *e = calloc(1, sizeof *e);
    if (!e) return fr_fail(err, FR_ENOMEM, "out of memory");
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    int rc = 0;
    e->ci.err = jpeg_std_error(&e->jerr);
    e->jerr.error_exit = jpeg_enc_error;
    e->ci.client_data = e;
    if (setjmp(e->jmp)) {
        rc = fr_fail(err, FR_EBACKEND, "JPEG encoding failed");
    } else {
        jpeg_create_compress(&e->ci);
        jpeg_mem_dest(&e->ci, &mem, &mem_len);
        e->ci.image_width = (JDIMENSION)img->w;
        e->ci.image_height = (JDIMENSION)img->h;
        e->ci.input_components = 3;
        e->ci.in_color_space = JCS_RGB;
        jpeg_set_defaults(&e->ci);
        jpeg_set_quality(&e->ci, quality, TRUE);
        jpeg_start_compress(&e->ci, TRUE);
        while (e->ci.next_scanline < e->ci.image_height) {
            JSAMPROW row = img->px + (size_t)e->ci.next_scanline * img->w * 3;
            jpeg_write_scanlines(&e->ci, &row, 1);
        }
        jpeg_finish_compress(&e->ci);
    }
    jpeg_destroy_compress(&e->ci);
    free(e);
    if (rc) {
        free(mem);
        return rc;
    }
    *out = mem; /* libjpeg allocates the destination with malloc */
    *len = mem_len;
    return 0;
}
