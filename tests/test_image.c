/* test_image.c: image decoding. Every fixture is encoded in memory with libjpeg, libpng and
 * libwebp; nothing binary is committed. With IMAGE_TEST_SEEDS=<dir> the fixtures are also
 * written there as a fuzzing seed corpus. The labelled photos in ../shared/datasets/faces are
 * decoded too when that folder exists. */
#include "check.h"
#include "vision/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#define DATASET "../shared/datasets/faces"

struct membuf {
    uint8_t *p;
    size_t n, cap;
};

static void mb_append(struct membuf *m, const void *data, size_t n)
{
    if (m->n + n > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->n + n)
            cap *= 2;
        m->p = realloc(m->p, cap);
        if (!m->p) abort();
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, n);
    m->n += n;
}

static struct membuf mb_copy(const uint8_t *p, size_t n)
{
    struct membuf m = {0};
    mb_append(&m, p, n);
    return m;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

/* ---- pixel fixtures --------------------------------------------------------------------- */

static const uint8_t RED[3] = {255, 0, 0}, GREEN[3] = {0, 255, 0}, BLUE[3] = {0, 0, 255},
                     WHITE[3] = {255, 255, 255};

/* Quadrants: red top-left, green top-right, blue bottom-left, white bottom-right. */
static uint8_t *quad_rgb(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *c = y < h / 2 ? (x < w / 2 ? RED : GREEN) : (x < w / 2 ? BLUE : WHITE);
            memcpy(px + ((size_t)y * w + x) * 3, c, 3);
        }
    return px;
}

/* A red 16x16 block in the top-left corner of a blue image: after orientation it shows which
 * corner the stored top-left went to. */
static uint8_t *corner_rgb(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(px + ((size_t)y * w + x) * 3, x < 16 && y < 16 ? RED : BLUE, 3);
    return px;
}

static const uint8_t *px_at(const struct image *im, int x, int y)
{
    return im->px + ((size_t)y * im->w + x) * 3;
}

static int near(const uint8_t *p, const uint8_t *want, int tol)
{
    for (int c = 0; c < 3; c++)
        if (abs((int)p[c] - (int)want[c]) > tol) return 0;
    return 1;
}

static int near3(const uint8_t *p, int r, int g, int b, int tol)
{
    const uint8_t want[3] = {(uint8_t)r, (uint8_t)g, (uint8_t)b};
    return near(p, want, tol);
}

/* ---- encoders --------------------------------------------------------------------------- */

struct jpeg_spec {
    int w, h, comps;
    J_COLOR_SPACE in_cs, jpeg_cs; /* jpeg_cs JCS_UNKNOWN: libjpeg's default */
    int quality, progressive, arith;
    const uint8_t *px;
    const uint8_t *app1;
    size_t app1_len;
};

static struct membuf enc_jpeg(const struct jpeg_spec *s)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&ci, &out, &n);
    ci.image_width = (JDIMENSION)s->w;
    ci.image_height = (JDIMENSION)s->h;
    ci.input_components = s->comps;
    ci.in_color_space = s->in_cs;
    jpeg_set_defaults(&ci);
    if (s->jpeg_cs != JCS_UNKNOWN) jpeg_set_colorspace(&ci, s->jpeg_cs);
    jpeg_set_quality(&ci, s->quality ? s->quality : 95, TRUE);
    if (s->progressive) jpeg_simple_progression(&ci);
    ci.arith_code = s->arith ? TRUE : FALSE;
    jpeg_start_compress(&ci, TRUE);
    if (s->app1) jpeg_write_marker(&ci, JPEG_APP0 + 1, s->app1, (unsigned)s->app1_len);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(s->px + (size_t)ci.next_scanline * s->w * s->comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    struct membuf m = mb_copy(out, n);
    free(out);
    return m;
}

static struct membuf enc_jpeg_rgb(const uint8_t *px, int w, int h)
{
    struct jpeg_spec s = {.w = w, .h = h, .comps = 3, .in_cs = JCS_RGB, .px = px};
    return enc_jpeg(&s);
}

struct png_spec {
    int w, h, color, depth, interlace;
    const uint8_t *data; /* rows in PNG sample layout (16-bit big-endian, packed sub-byte) */
    const png_color *pal;
    int npal;
    const png_byte *trns; /* palette alpha */
    int ntrns;
    const png_color_16 *key; /* tRNS colour key for grey or RGB */
};

static void png_put(png_structp png, png_bytep data, size_t n)
{
    mb_append(png_get_io_ptr(png), data, n);
}

static void png_flush_none(png_structp png)
{
    (void)png;
}

static struct membuf enc_png(const struct png_spec *s)
{
    struct membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &m, png_put, png_flush_none);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->pal) png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->key) png_set_tRNS(png, info, s->trns, s->ntrns, s->key);
    png_write_info(png, info);
    int ch = s->color == PNG_COLOR_TYPE_RGB         ? 3
             : s->color == PNG_COLOR_TYPE_RGB_ALPHA ? 4
             : s->color == PNG_COLOR_TYPE_GA        ? 2
                                                    : 1;
    size_t rowbytes = ((size_t)s->w * ch * s->depth + 7) / 8;
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < s->h; y++)
            png_write_row(png, (png_const_bytep)(s->data + (size_t)y * rowbytes));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return m;
}

static struct membuf enc_png_rgb(const uint8_t *px, int w, int h, int interlace)
{
    struct png_spec s = {.w = w,
                         .h = h,
                         .color = PNG_COLOR_TYPE_RGB,
                         .depth = 8,
                         .interlace = interlace,
                         .data = px};
    return enc_png(&s);
}

/* kind: 0 lossy RGB, 1 lossless RGB, 2 lossless RGBA. */
static struct membuf enc_webp(const uint8_t *px, int w, int h, int kind)
{
    uint8_t *out = NULL;
    size_t n = kind == 0   ? WebPEncodeRGB(px, w, h, w * 3, 90, &out)
               : kind == 1 ? WebPEncodeLosslessRGB(px, w, h, w * 3, &out)
                           : WebPEncodeLosslessRGBA(px, w, h, w * 4, &out);
    if (n == 0) abort();
    struct membuf m = mb_copy(out, n);
    WebPFree(out);
    return m;
}

/* A TIFF block (what follows "Exif\0\0") with Make and Orientation in IFD0. variant: 0 good,
 * 1 IFD offset out of range, 2 absurd entry count running off the end without an orientation
 * entry, 3 truncated inside the orientation entry, 4 orientation of the wrong type. */
static uint8_t *w16(uint8_t *p, int big_endian, unsigned v)
{
    p[big_endian ? 0 : 1] = (uint8_t)(v >> 8);
    p[big_endian ? 1 : 0] = (uint8_t)v;
    return p + 2;
}

static uint8_t *w32(uint8_t *p, int big_endian, uint32_t v)
{
    p = w16(p, big_endian, big_endian ? v >> 16 : v & 0xFFFF);
    return w16(p, big_endian, big_endian ? v & 0xFFFF : v >> 16);
}

static size_t make_tiff(uint8_t *t, int be, int orientation, int variant)
{
    uint8_t *p = t;
    *p++ = be ? 'M' : 'I';
    *p++ = be ? 'M' : 'I';
    p = w16(p, be, 42);
    p = w32(p, be, variant == 1 ? 0xFFFFFFF0u : 8);
    p = w16(p, be, variant == 2 ? 0xFFFF : 2);
    p = w16(p, be, 0x010F); /* Make, ASCII, 4 bytes inline */
    p = w16(p, be, 2);
    p = w32(p, be, 4);
    memcpy(p, "abc", 4);
    p += 4;
    p = w16(p, be, variant == 2 ? 0x0110 : 0x0112); /* Orientation (or Model), SHORT, 1 */
    p = w16(p, be, variant == 4 ? 7 : 3);
    p = w32(p, be, 1);
    p = w16(p, be, (unsigned)orientation);
    p = w16(p, be, 0);
    p = w32(p, be, 0); /* no next IFD */
    size_t n = (size_t)(p - t);
    return variant == 3 ? 30 : n; /* 3: cut inside the orientation entry */
}

static struct membuf jpeg_with_exif(const uint8_t *px, int w, int h, int big_endian,
                                    int orientation, int variant)
{
    uint8_t app1[128];
    memcpy(app1, "Exif\0\0", 6);
    size_t n = 6 + make_tiff(app1 + 6, big_endian, orientation, variant);
    struct jpeg_spec s = {
        .w = w, .h = h, .comps = 3, .in_cs = JCS_RGB, .px = px, .app1 = app1, .app1_len = n};
    return enc_jpeg(&s);
}

/* Rebuilds a simple lossless WebP as an extended one with an EXIF chunk after the image. */
static struct membuf webp_with_exif(const uint8_t *px, int w, int h, int orientation)
{
    struct membuf simple = enc_webp(px, w, h, 1), m = {0};
    uint8_t tiff[64], hdr[12], vp8x[18], chunk[8];
    size_t tn = make_tiff(tiff, 0, orientation, 0);
    memcpy(vp8x, "VP8X", 4);
    put_le32(vp8x + 4, 10);
    memset(vp8x + 8, 0, 10);
    vp8x[8] = 0x08;                         /* EXIF flag */
    put_le32(vp8x + 12, (uint32_t)(w - 1)); /* 24-bit canvas width - 1 at 12..14 */
    vp8x[15] = (uint8_t)(h - 1), vp8x[16] = (uint8_t)((h - 1) >> 8),
    vp8x[17] = (uint8_t)((h - 1) >> 16);
    size_t image = simple.n - 12, total = 4 + sizeof vp8x + image + 8 + tn + (tn & 1);
    memcpy(hdr, "RIFF", 4);
    put_le32(hdr + 4, (uint32_t)total);
    memcpy(hdr + 8, "WEBP", 4);
    mb_append(&m, hdr, 12);
    mb_append(&m, vp8x, sizeof vp8x);
    mb_append(&m, simple.p + 12, image);
    memcpy(chunk, "EXIF", 4);
    put_le32(chunk + 4, (uint32_t)tn);
    mb_append(&m, chunk, 8);
    mb_append(&m, tiff, tn);
    if (tn & 1) mb_append(&m, "", 1);
    free(simple.p);
    return m;
}

/* ---- seed corpus ------------------------------------------------------------------------ */

static const char *seed_dir;

static void seed(const char *name, const struct membuf *m)
{
    if (!seed_dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", seed_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(m->p, 1, m->n, f);
    fclose(f);
}

/* ---- tests ------------------------------------------------------------------------------ */

static int decode(const struct membuf *m, struct image *im, char *err)
{
    return image_decode(m->p, m->n, NULL, im, err);
}

static void test_defaults(void)
{
    struct image_limits d = image_limits_default();
    CHECK(d.max_w == 16384 && d.max_h == 16384);
    CHECK(d.max_pixels == 40000000);
    CHECK(d.max_bytes == (size_t)64 << 20);
    image_free(NULL);
    struct image im = {0};
    image_free(&im);
    image_free(&im);
    CHECK(im.px == NULL && im.w == 0);
}

static void check_quads(const struct image *im, int tol, const char *what)
{
    int w = im->w, h = im->h;
    CHECK_MSG(near(px_at(im, w / 4, h / 4), RED, tol), "%s red", what);
    CHECK_MSG(near(px_at(im, 3 * w / 4, h / 4), GREEN, tol), "%s green", what);
    CHECK_MSG(near(px_at(im, w / 4, 3 * h / 4), BLUE, tol), "%s blue", what);
    CHECK_MSG(near(px_at(im, 3 * w / 4, 3 * h / 4), WHITE, tol), "%s white", what);
}

static void test_jpeg(void)
{
    char err[FR_ERR_LEN];
    struct image im = {0};
    uint8_t *px = quad_rgb(64, 48);

    struct membuf m = enc_jpeg_rgb(px, 64, 48);
    seed("rgb.jpg", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 48);
    check_quads(&im, 24, "jpeg");
    image_free(&im);

    /* Only the EOI marker missing: every pixel is there, accepted. */
    struct membuf cut = mb_copy(m.p, m.n - 2);
    CHECK(decode(&cut, &im, err) == 0 && im.w == 64);
    image_free(&im);
    free(cut.p);
    free(m.p);

    struct jpeg_spec prog = {
        .w = 64, .h = 48, .comps = 3, .in_cs = JCS_RGB, .px = px, .progressive = 1};
    m = enc_jpeg(&prog);
    seed("progressive.jpg", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 48);
    check_quads(&im, 24, "progressive jpeg");
    image_free(&im);
    /* A multi-scan file without EOI could be missing whole scans: rejected. */
    cut = mb_copy(m.p, m.n - 2);
    CHECK(decode(&cut, &im, err) == FR_EFORMAT && strstr(err, "truncated JPEG"));
    free(cut.p);
    free(m.p);

    /* Arithmetic coding pads a cut scan with zeros silently: any truncation is fatal. */
    struct jpeg_spec ar = {.w = 64, .h = 48, .comps = 3, .in_cs = JCS_RGB, .px = px, .arith = 1};
    m = enc_jpeg(&ar);
    seed("arith.jpg", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 48);
    if (im.px) check_quads(&im, 24, "arithmetic jpeg");
    image_free(&im);
    CHECK(image_decode(m.p, m.n - 2, NULL, &im, err) == FR_EFORMAT);
    CHECK(image_decode(m.p, m.n / 2, NULL, &im, err) == FR_EFORMAT);
    free(m.p);

    /* Greyscale: a horizontal ramp, replicated into R, G and B. */
    uint8_t grey[64 * 8];
    for (int i = 0; i < 64 * 8; i++)
        grey[i] = (uint8_t)((i % 64) * 4);
    struct jpeg_spec gs = {.w = 64, .h = 8, .comps = 1, .in_cs = JCS_GRAYSCALE, .px = grey};
    m = enc_jpeg(&gs);
    seed("grey.jpg", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 8);
    int same = 1, close = 1;
    for (int x = 0; x < 64; x++) {
        const uint8_t *p = px_at(&im, x, 4);
        same &= p[0] == p[1] && p[1] == p[2];
        close &= abs(p[0] - x * 4) <= 8;
    }
    CHECK(same);
    CHECK(close);
    image_free(&im);
    free(m.p);

    /* CMYK the way Photoshop writes it (Adobe marker, inverted: 255 = no ink), stored as
     * CMYK and as YCCK. Red is no cyan, full magenta and yellow, no black. */
    uint8_t cmyk[32 * 16 * 4];
    for (int i = 0; i < 32 * 16; i++) {
        int left = (i % 32) < 16;
        uint8_t ink[4] = {0, left ? 255 : 0, left ? 255 : 0, left ? 0 : 255}; /* red | black */
        for (int k = 0; k < 4; k++)
            cmyk[i * 4 + k] = (uint8_t)(255 - ink[k]);
    }
    J_COLOR_SPACE stored[2] = {JCS_CMYK, JCS_YCCK};
    for (int k = 0; k < 2; k++) {
        struct jpeg_spec cs = {
            .w = 32, .h = 16, .comps = 4, .in_cs = JCS_CMYK, .jpeg_cs = stored[k], .px = cmyk};
        m = enc_jpeg(&cs);
        seed(k ? "ycck.jpg" : "cmyk.jpg", &m);
        CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
        CHECK(im.w == 32 && im.h == 16);
        if (im.px) {
            CHECK_MSG(near3(px_at(&im, 4, 8), 255, 0, 0, 24), "cmyk red %d %d %d",
                      px_at(&im, 4, 8)[0], px_at(&im, 4, 8)[1], px_at(&im, 4, 8)[2]);
            CHECK(near3(px_at(&im, 28, 8), 0, 0, 0, 24));
        }
        image_free(&im);
        free(m.p);
    }

    /* 1x1 is a valid image. */
    m = enc_jpeg_rgb(GREEN, 1, 1);
    seed("1x1.jpg", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 1 && im.h == 1 && near(im.px, GREEN, 24));
    image_free(&im);
    free(m.p);
    free(px);
}

/* Where the stored top-left corner must end up for each orientation, and whether the sides
 * swap: from the EXIF definition of "0th row" and "0th column". */
enum { TL, TR, BL, BR };
static const int orient_corner[9] = {0, TL, TR, BR, BL, TL, TR, BR, BL};

static void check_corner(const struct image *im, int sw, int sh, int orientation, int tol,
                         const char *what)
{
    int swap = orientation >= 5;
    CHECK_MSG(im->w == (swap ? sh : sw) && im->h == (swap ? sw : sh), "%s %d: %dx%d", what,
              orientation, im->w, im->h);
    if (!im->px) return;
    int xs[4] = {8, im->w - 9, 8, im->w - 9}, ys[4] = {8, 8, im->h - 9, im->h - 9};
    for (int c = 0; c < 4; c++) {
        const uint8_t *want = c == orient_corner[orientation] ? RED : BLUE;
        CHECK_MSG(near(px_at(im, xs[c], ys[c]), want, tol), "%s orientation %d corner %d", what,
                  orientation, c);
    }
}

static void test_exif(void)
{
    char err[FR_ERR_LEN], name[64];
    struct image im = {0};
    uint8_t *px = corner_rgb(64, 32);
    for (int o = 1; o <= 8; o++)
        for (int be = 0; be <= 1; be++) {
            struct membuf m = jpeg_with_exif(px, 64, 32, be, o, 0);
            snprintf(name, sizeof name, "exif%d%s.jpg", o, be ? "mm" : "ii");
            seed(name, &m);
            CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
            check_corner(&im, 64, 32, o, 24, be ? "jpeg MM" : "jpeg II");
            image_free(&im);
            free(m.p);
        }
    /* Malformed or out-of-range EXIF is ignored: the image decodes as stored. */
    for (int variant = 0; variant <= 4; variant++) {
        struct membuf m = jpeg_with_exif(px, 64, 32, 0, variant == 0 ? 9 : 6, variant);
        snprintf(name, sizeof name, "exifbad%d.jpg", variant);
        seed(name, &m);
        CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
        check_corner(&im, 64, 32, 1, 24, "bad exif");
        image_free(&im);
        free(m.p);
    }
    /* WebP: EXIF chunk of an extended file, lossless so the pixels are exact. */
    for (int o = 1; o <= 8; o++) {
        struct membuf m = webp_with_exif(px, 64, 32, o);
        snprintf(name, sizeof name, "exif%d.webp", o);
        seed(name, &m);
        CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
        check_corner(&im, 64, 32, o, 0, "webp");
        image_free(&im);
        free(m.p);
    }
    free(px);
}

static void test_rotate(void)
{
    char err[FR_ERR_LEN];
    /* 3x2, every pixel distinct: value = 10 * (y * 3 + x) + 1. */
    uint8_t src[18];
    for (int i = 0; i < 6; i++)
        src[3 * i] = src[3 * i + 1] = src[3 * i + 2] = (uint8_t)(10 * i + 1);
    /* Destination corners TL, TR, BL, BR for the stored TL(1), TR(21), BL(31), BR(51). */
    static const int corners[9][4] = {
        {0},
        {1, 21, 31, 51},
        {21, 1, 51, 31},
        {51, 31, 21, 1},
        {31, 51, 1, 21},
        {1, 31, 21, 51},
        {31, 1, 51, 21},
        {51, 21, 31, 1},
        {21, 51, 1, 31},
    };
    for (int o = 1; o <= 8; o++) {
        struct image im = {3, 2, malloc(18)};
        memcpy(im.px, src, 18);
        CHECK(image_rotate_orient(&im, o, err) == 0);
        int swap = o >= 5;
        CHECK(im.w == (swap ? 2 : 3) && im.h == (swap ? 3 : 2));
        int got[4] = {px_at(&im, 0, 0)[0], px_at(&im, im.w - 1, 0)[0], px_at(&im, 0, im.h - 1)[0],
                      px_at(&im, im.w - 1, im.h - 1)[0]};
        CHECK_MSG(memcmp(got, corners[o], sizeof got) == 0, "orientation %d: %d %d %d %d", o,
                  got[0], got[1], got[2], got[3]);
        /* Every pixel survives exactly once. */
        int sum = 0;
        for (int i = 0; i < 6; i++)
            sum += im.px[3 * i];
        CHECK(sum == 1 + 11 + 21 + 31 + 41 + 51);
        image_free(&im);
    }
    struct image im = {3, 2, malloc(18)};
    memcpy(im.px, src, 18);
    CHECK(image_rotate_orient(&im, 0, err) == FR_EINVAL);
    CHECK(image_rotate_orient(&im, 9, err) == FR_EINVAL);
    CHECK(memcmp(im.px, src, 18) == 0);
    image_free(&im);
    CHECK(image_rotate_orient(&im, 6, err) == FR_EINVAL);
}

static void test_png(void)
{
    char err[FR_ERR_LEN];
    struct image im = {0};
    uint8_t *px = quad_rgb(64, 48);

    for (int interlace = 0; interlace <= 1; interlace++) {
        struct membuf m = enc_png_rgb(px, 64, 48, interlace);
        seed(interlace ? "interlaced.png" : "rgb.png", &m);
        CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
        CHECK(im.w == 64 && im.h == 48 && im.px && memcmp(im.px, px, 64 * 48 * 3) == 0);
        image_free(&im);
        free(m.p);
    }

    /* 8-bit grey, and 1-bit grey. */
    uint8_t grey[16 * 4];
    for (int i = 0; i < 64; i++)
        grey[i] = (uint8_t)(i * 4);
    struct png_spec g8 = {.w = 16, .h = 4, .color = PNG_COLOR_TYPE_GRAY, .depth = 8, .data = grey};
    struct membuf m = enc_png(&g8);
    seed("grey.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    int ok = im.w == 16 && im.h == 4;
    for (int i = 0; ok && i < 64; i++)
        ok = im.px[3 * i] == grey[i] && im.px[3 * i + 1] == grey[i] && im.px[3 * i + 2] == grey[i];
    CHECK(ok);
    image_free(&im);
    free(m.p);

    uint8_t bits[2] = {0xA0, 0x50}; /* 4x2: 1010 / 0101 */
    struct png_spec g1 = {.w = 4, .h = 2, .color = PNG_COLOR_TYPE_GRAY, .depth = 1, .data = bits};
    m = enc_png(&g1);
    seed("grey1.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 4 && im.h == 2);
    if (im.px) {
        CHECK(near3(px_at(&im, 0, 0), 255, 255, 255, 0) && near3(px_at(&im, 1, 0), 0, 0, 0, 0));
        CHECK(near3(px_at(&im, 0, 1), 0, 0, 0, 0) && near3(px_at(&im, 1, 1), 255, 255, 255, 0));
    }
    image_free(&im);
    free(m.p);

    /* Palette, 4-bit, with tRNS: index 0 transparent, 1 half-transparent black, 2 opaque. */
    png_color pal[3] = {{10, 20, 30}, {0, 0, 0}, {0, 200, 100}};
    png_byte trns[2] = {0, 128};
    uint8_t idx[2 * 3] = {0x01, 0x20, 0x12, 0x00, 0x22, 0x10}; /* 4x3, two pixels a byte */
    struct png_spec pl = {.w = 4,
                          .h = 3,
                          .color = PNG_COLOR_TYPE_PALETTE,
                          .depth = 4,
                          .data = idx,
                          .pal = pal,
                          .npal = 3,
                          .trns = trns,
                          .ntrns = 2};
    m = enc_png(&pl);
    seed("palette.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 4 && im.h == 3);
    if (im.px) {
        CHECK(near3(px_at(&im, 0, 0), 255, 255, 255, 0)); /* transparent -> white */
        CHECK(near3(px_at(&im, 1, 0), 127, 127, 127, 1)); /* half black over white */
        CHECK(near3(px_at(&im, 2, 0), 0, 200, 100, 0));   /* opaque */
        CHECK(near3(px_at(&im, 0, 2), 0, 200, 100, 0));
    }
    image_free(&im);
    free(m.p);

    /* Palette without transparency, 8-bit. */
    uint8_t idx8[4] = {0, 1, 2, 0};
    struct png_spec p8 = {.w = 2,
                          .h = 2,
                          .color = PNG_COLOR_TYPE_PALETTE,
                          .depth = 8,
                          .data = idx8,
                          .pal = pal,
                          .npal = 3};
    m = enc_png(&p8);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.px && near3(px_at(&im, 0, 0), 10, 20, 30, 0) &&
          near3(px_at(&im, 0, 1), 0, 200, 100, 0));
    image_free(&im);
    free(m.p);

    /* 16-bit RGB, big-endian samples: 0xABCD -> 0xAB (171.13 rounds down), 0xFFFF -> 255. */
    uint8_t rgb16[2 * 6] = {0xAB, 0xCD, 0x00, 0x00, 0xFF, 0xFF, 0x80, 0x80, 0x12, 0x34, 0x00, 0xFF};
    struct png_spec s16 = {.w = 2, .h = 1, .color = PNG_COLOR_TYPE_RGB, .depth = 16, .data = rgb16};
    m = enc_png(&s16);
    seed("rgb16.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.px && near3(px_at(&im, 0, 0), 0xAB, 0, 255, 0));
    CHECK(im.px && near3(px_at(&im, 1, 0), 0x80, 0x12, 0x01, 1));
    image_free(&im);
    free(m.p);

    /* 16-bit grey. */
    uint8_t g16[4] = {0x00, 0x00, 0xFF, 0xFF};
    struct png_spec sg16 = {.w = 2, .h = 1, .color = PNG_COLOR_TYPE_GRAY, .depth = 16, .data = g16};
    m = enc_png(&sg16);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.px && near3(px_at(&im, 0, 0), 0, 0, 0, 0) &&
          near3(px_at(&im, 1, 0), 255, 255, 255, 0));
    image_free(&im);
    free(m.p);

    /* RGBA: transparent red -> white, opaque blue, half-transparent black -> mid grey. */
    uint8_t rgba[3 * 4] = {255, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0, 128};
    struct png_spec sa = {
        .w = 3, .h = 1, .color = PNG_COLOR_TYPE_RGB_ALPHA, .depth = 8, .data = rgba};
    m = enc_png(&sa);
    seed("rgba.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 3 && im.h == 1);
    if (im.px) {
        CHECK(near3(px_at(&im, 0, 0), 255, 255, 255, 0));
        CHECK(near3(px_at(&im, 1, 0), 0, 0, 255, 0));
        CHECK(near3(px_at(&im, 2, 0), 127, 127, 127, 1));
    }
    image_free(&im);
    free(m.p);

    /* 16-bit RGBA, interlaced. */
    uint8_t rgba16[8] = {0x12, 0x34, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00};
    struct png_spec sa16 = {.w = 1,
                            .h = 1,
                            .color = PNG_COLOR_TYPE_RGB_ALPHA,
                            .depth = 16,
                            .interlace = 1,
                            .data = rgba16};
    m = enc_png(&sa16);
    seed("rgba16.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.px && near3(px_at(&im, 0, 0), 255, 255, 255, 0));
    image_free(&im);
    free(m.p);

    /* Grey + alpha. */
    uint8_t ga[4] = {0, 0, 100, 255};
    struct png_spec sga = {.w = 2, .h = 1, .color = PNG_COLOR_TYPE_GA, .depth = 8, .data = ga};
    m = enc_png(&sga);
    seed("greyalpha.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.px && near3(px_at(&im, 0, 0), 255, 255, 255, 0) &&
          near3(px_at(&im, 1, 0), 100, 100, 100, 0));
    image_free(&im);
    free(m.p);

    /* RGB with a tRNS colour key: pure green is transparent. */
    png_color_16 key = {.green = 255};
    uint8_t keyed[6] = {0, 255, 0, 1, 2, 3};
    struct png_spec sk = {
        .w = 2, .h = 1, .color = PNG_COLOR_TYPE_RGB, .depth = 8, .data = keyed, .key = &key};
    m = enc_png(&sk);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.px && near3(px_at(&im, 0, 0), 255, 255, 255, 0) &&
          near3(px_at(&im, 1, 0), 1, 2, 3, 0));
    image_free(&im);
    free(m.p);

    m = enc_png_rgb(RED, 1, 1, 0);
    seed("1x1.png", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 1 && im.h == 1 && im.px && near(im.px, RED, 0));
    image_free(&im);
    free(m.p);
    free(px);
}

static void test_webp(void)
{
    char err[FR_ERR_LEN];
    struct image im = {0};
    uint8_t *px = quad_rgb(64, 48);

    struct membuf m = enc_webp(px, 64, 48, 0);
    seed("lossy.webp", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 48);
    if (im.px) check_quads(&im, 32, "lossy webp");
    image_free(&im);
    free(m.p);

    m = enc_webp(px, 64, 48, 1);
    seed("lossless.webp", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 48 && im.px && memcmp(im.px, px, 64 * 48 * 3) == 0);
    image_free(&im);
    free(m.p);

    uint8_t rgba[3 * 4] = {255, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0, 128};
    m = enc_webp(rgba, 3, 1, 2);
    seed("alpha.webp", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 3 && im.h == 1);
    if (im.px) {
        CHECK(near3(px_at(&im, 0, 0), 255, 255, 255, 0));
        CHECK(near3(px_at(&im, 1, 0), 0, 0, 255, 0));
        CHECK(near3(px_at(&im, 2, 0), 127, 127, 127, 1));
    }
    image_free(&im);
    free(m.p);

    m = enc_webp(BLUE, 1, 1, 0);
    seed("1x1.webp", &m);
    CHECK_MSG(decode(&m, &im, err) == 0, "%s", err);
    CHECK(im.w == 1 && im.h == 1 && im.px && near(im.px, BLUE, 40));
    image_free(&im);
    free(m.p);
    free(px);
}

static int has(const char *s, const char *needle)
{
    return !needle || strstr(s, needle) != NULL;
}

/* Expects rc and a message containing `needle` (may be NULL), and a zeroed image. */
#define CHECK_FAILS(buf, len, lim, want, needle)                                                   \
    do {                                                                                           \
        struct image im_ = {7, 7, NULL};                                                           \
        char err_[FR_ERR_LEN] = "";                                                                \
        int rc_ = image_decode((buf), (len), (lim), &im_, err_);                                   \
        CHECK_MSG(rc_ == (want), "rc %d (%s), want %d: %s", rc_, fr_strerror(rc_), (want), err_);  \
        CHECK_MSG(has(err_, (needle)), "message \"%s\" lacks \"%s\"", err_,                        \
                  (needle) ? (needle) : "");                                                       \
        CHECK(im_.px == NULL && im_.w == 0 && im_.h == 0);                                         \
        if (rc_ == 0) image_free(&im_);                                                            \
    } while (0)

/* A PNG signature and IHDR (with a correct CRC) for a w x h RGB image, then IEND. */
static struct membuf png_header_only(uint32_t w, uint32_t h)
{
    struct membuf m = {0};
    uint8_t ihdr[25], iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    put_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, w);
    put_be32(ihdr + 12, h);
    ihdr[16] = 8, ihdr[17] = 2, ihdr[18] = 0, ihdr[19] = 0, ihdr[20] = 0;
    put_be32(ihdr + 21, crc32_png(ihdr + 4, 17));
    mb_append(&m, "\x89PNG\r\n\x1a\n", 8);
    mb_append(&m, ihdr, sizeof ihdr);
    mb_append(&m, iend, sizeof iend);
    return m;
}

/* Offset of the first byte of marker `marker` (0xFF, marker) in a JPEG, or 0. */
static size_t jpeg_find_marker(const struct membuf *m, uint8_t marker)
{
    for (size_t i = 2; i + 1 < m->n; i++)
        if (m->p[i] == 0xFF && m->p[i + 1] == marker) return i;
    return 0;
}

static void test_errors(void)
{
    uint8_t *px = quad_rgb(64, 32);
    static const char text[] = "hello, this is a text file and not an image at all\n";

    CHECK_FAILS((const uint8_t *)"", 0, NULL, FR_EINVAL, "empty");
    CHECK_FAILS(NULL, 0, NULL, FR_EINVAL, NULL);
    CHECK_FAILS((const uint8_t *)text, sizeof text - 1, NULL, FR_EUNSUPPORTED,
                "not a JPEG, PNG or WebP image");
    CHECK_FAILS((const uint8_t *)"GIF89a\1\0\1\0", 10, NULL, FR_EUNSUPPORTED, "GIF");
    CHECK_FAILS((const uint8_t *)"\xFF\xD8\xFF", 3, NULL, FR_EFORMAT, "JPEG");
    CHECK_FAILS((const uint8_t *)"\x89PNG\r\n\x1a\n", 8, NULL, FR_EFORMAT, "truncated PNG");
    CHECK_FAILS((const uint8_t *)"RIFF\0\0\0\0WEBP", 12, NULL, FR_EFORMAT, "WebP");

    /* Truncated at half, for each format. */
    struct membuf jpg = enc_jpeg_rgb(px, 64, 32);
    CHECK_FAILS(jpg.p, jpg.n / 2, NULL, FR_EFORMAT, "truncated JPEG");
    struct jpeg_spec ps = {
        .w = 64, .h = 32, .comps = 3, .in_cs = JCS_RGB, .px = px, .progressive = 1};
    struct membuf prog = enc_jpeg(&ps);
    CHECK_FAILS(prog.p, prog.n / 2, NULL, FR_EFORMAT, "truncated JPEG");
    CHECK_FAILS(prog.p, prog.n - 40, NULL, FR_EFORMAT, "JPEG");
    struct membuf png = enc_png_rgb(px, 64, 32, 0);
    CHECK_FAILS(png.p, png.n / 2, NULL, FR_EFORMAT, "truncated PNG");
    CHECK_FAILS(png.p, 33, NULL, FR_EFORMAT, "PNG"); /* header only */
    struct membuf webp = enc_webp(px, 64, 32, 0);
    CHECK_FAILS(webp.p, webp.n / 2, NULL, FR_EFORMAT, "WebP");
    struct membuf webpl = enc_webp(px, 64, 32, 1);
    CHECK_FAILS(webpl.p, webpl.n / 2, NULL, FR_EFORMAT, "WebP");

    /* A bad CRC on the image data of a PNG. */
    struct membuf bad = mb_copy(png.p, png.n);
    uint8_t *idat = memmem(bad.p, bad.n, "IDAT", 4);
    CHECK(idat != NULL);
    if (idat) {
        uint32_t len = (uint32_t)idat[-4] << 24 | idat[-3] << 16 | idat[-2] << 8 | idat[-1];
        idat[4 + len] ^= 0x55;
        CHECK_FAILS(bad.p, bad.n, NULL, FR_EFORMAT, "corrupt PNG");
    }
    free(bad.p);

    /* Over the caps: a PNG header claiming 30000x30000 with nothing after it, so only a check
     * of the header before decoding can give FR_ETOOBIG. */
    struct membuf huge = png_header_only(30000, 30000);
    seed("huge.png", &huge);
    CHECK_FAILS(huge.p, huge.n, NULL, FR_ETOOBIG, "30000x30000");
    CHECK_FAILS(huge.p, huge.n, NULL, FR_ETOOBIG, "16384x16384");
    struct image_limits wide = {30000, 30000, 40000000, 1 << 20};
    CHECK_FAILS(huge.p, huge.n, &wide, FR_ETOOBIG, "900000000 pixels");
    free(huge.p);
    struct membuf zero = png_header_only(0, 0);
    CHECK_FAILS(zero.p, zero.n, NULL, FR_EFORMAT, "0x0");
    free(zero.p);
    struct membuf tiny = png_header_only(1, 1); /* valid header, no image data */
    CHECK_FAILS(tiny.p, tiny.n, NULL, FR_EFORMAT, "PNG");
    free(tiny.p);

    /* A JPEG whose SOF claims 65000x65000. */
    struct membuf big = mb_copy(jpg.p, jpg.n);
    size_t sof = jpeg_find_marker(&big, 0xC0);
    CHECK(sof != 0);
    big.p[sof + 5] = 65000 >> 8, big.p[sof + 6] = 65000 & 0xFF; /* height */
    big.p[sof + 7] = 65000 >> 8, big.p[sof + 8] = 65000 & 0xFF; /* width */
    seed("huge.jpg", &big);
    CHECK_FAILS(big.p, big.n, NULL, FR_ETOOBIG, "65000x65000");
    big.p[sof + 5] = 0, big.p[sof + 6] = 0; /* height 0 */
    CHECK_FAILS(big.p, big.n, NULL, FR_EFORMAT, "JPEG");
    /* Within the caps but with far too little data: rejected, not grey-filled. */
    big.p[sof + 5] = 4000 >> 8, big.p[sof + 6] = 4000 & 0xFF;
    big.p[sof + 7] = 4000 >> 8, big.p[sof + 8] = 4000 & 0xFF;
    CHECK_FAILS(big.p, big.n, NULL, FR_EFORMAT, "JPEG");
    free(big.p);

    /* 12-bit and lossless JPEG are well-formed but not decoded here. */
    struct membuf odd = mb_copy(jpg.p, jpg.n);
    odd.p[sof + 4] = 12;
    CHECK_FAILS(odd.p, odd.n, NULL, FR_EUNSUPPORTED, "precision 12");
    odd.p[sof + 4] = 8;
    odd.p[sof + 1] = 0xC3;
    CHECK_FAILS(odd.p, odd.n, NULL, FR_EUNSUPPORTED, "unsupported JPEG");
    free(odd.p);

    /* A progressive JPEG whose last scan is repeated 300 times: the scan cap stops it. */
    size_t last = 0;
    for (size_t i = 2; i + 1 < prog.n; i++)
        if (prog.p[i] == 0xFF && prog.p[i + 1] == 0xDA) last = i;
    CHECK(last != 0);
    struct membuf scans = {0};
    mb_append(&scans, prog.p, prog.n - 2);
    for (int k = 0; k < 300; k++)
        mb_append(&scans, prog.p + last, prog.n - 2 - last);
    mb_append(&scans, "\xFF\xD9", 2);
    seed("scans.jpg", &scans);
    CHECK_FAILS(scans.p, scans.n, NULL, FR_ETOOBIG, "scans");
    free(scans.p);

    /* A lossless WebP whose header claims 16384x16384 (268M pixels). */
    struct membuf bigw = mb_copy(webpl.p, webpl.n);
    CHECK(memcmp(bigw.p + 12, "VP8L", 4) == 0 && bigw.p[20] == 0x2f);
    uint32_t bitsw =
        (uint32_t)bigw.p[21] | bigw.p[22] << 8 | bigw.p[23] << 16 | (uint32_t)bigw.p[24] << 24;
    bitsw = (bitsw & 0xF0000000u) | 16383u | 16383u << 14;
    put_le32(bigw.p + 21, bitsw);
    seed("huge.webp", &bigw);
    CHECK_FAILS(bigw.p, bigw.n, NULL, FR_ETOOBIG, "16384x16384");
    free(bigw.p);

    /* The animation flag of an extended WebP: not decoded. */
    uint8_t *cpx = corner_rgb(64, 32);
    struct membuf anim = webp_with_exif(cpx, 64, 32, 1);
    anim.p[20] |= 0x02;
    CHECK_FAILS(anim.p, anim.n, NULL, FR_EUNSUPPORTED, "animated");
    free(anim.p);
    free(cpx);

    /* Configurable caps, per format: 64x32 against each limit, and exactly at the limits. */
    struct membuf *all[3] = {&jpg, &png, &webpl};
    for (int f = 0; f < 3; f++) {
        const struct membuf *m = all[f];
        struct image_limits narrow = {32, 1000, 1000000, 1 << 20};
        struct image_limits low = {1000, 16, 1000000, 1 << 20};
        struct image_limits few = {1000, 1000, 2047, 1 << 20};
        struct image_limits small = {1000, 1000, 1000000, m->n - 1};
        struct image_limits exact = {64, 32, 2048, m->n};
        struct image_limits invalid = {0, 32, 2048, m->n};
        CHECK_FAILS(m->p, m->n, &narrow, FR_ETOOBIG, "64x32 pixels, over the limit of 32x1000");
        CHECK_FAILS(m->p, m->n, &low, FR_ETOOBIG, "over the limit of 1000x16");
        CHECK_FAILS(m->p, m->n, &few, FR_ETOOBIG, "2048 pixels, over the limit of 2047");
        CHECK_FAILS(m->p, m->n, &small, FR_ETOOBIG, "bytes");
        CHECK_FAILS(m->p, m->n, &invalid, FR_EINVAL, "limits");
        struct image im = {0};
        char err[FR_ERR_LEN];
        CHECK_MSG(image_decode(m->p, m->n, &exact, &im, err) == 0, "%s", err);
        CHECK(im.w == 64 && im.h == 32);
        image_free(&im);
    }
    free(jpg.p);
    free(prog.p);
    free(png.p);
    free(webp.p);
    free(webpl.p);
    free(px);
}

/* The library must never print: run corrupt inputs with stdout and stderr sent to a file. */
static void test_silent(void)
{
    uint8_t *px = quad_rgb(64, 32);
    struct membuf jpg = enc_jpeg_rgb(px, 64, 32), png = enc_png_rgb(px, 64, 32, 0);
    char path[] = "/tmp/test_image_outXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), errfd = dup(2);
    dup2(fd, 1);
    dup2(fd, 2);

    struct image im = {0};
    char err[FR_ERR_LEN];
    int rcs[4];
    rcs[0] = image_decode(jpg.p, jpg.n / 2, NULL, &im, err);
    /* Junk bytes before a marker: a libjpeg warning that is not fatal. */
    struct membuf junk = {0};
    size_t sos = jpeg_find_marker(&jpg, 0xDA);
    mb_append(&junk, jpg.p, sos);
    mb_append(&junk, "\x01\x02\x03", 3);
    mb_append(&junk, jpg.p + sos, jpg.n - sos);
    rcs[1] = image_decode(junk.p, junk.n, NULL, &im, err);
    image_free(&im);
    png.p[png.n - 20] ^= 0xFF;
    rcs[2] = image_decode(png.p, png.n, NULL, &im, err);
    image_free(&im);
    rcs[3] = image_decode(png.p, png.n / 2, NULL, &im, err);

    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(errfd, 2);
    close(out);
    close(errfd);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == 0);
    close(fd);
    unlink(path);
    CHECK(rcs[0] == FR_EFORMAT && rcs[3] == FR_EFORMAT);
    CHECK(rcs[1] == 0); /* extraneous bytes are tolerated */
    (void)rcs[2];       /* damaged IEND/IDAT tail: any result, but silent */
    free(junk.p);
    free(jpg.p);
    free(png.p);
    free(px);
}

static volatile uint8_t sink;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Bit-flipped and truncated copies of every kind of fixture: any result but a crash, and a
 * consistent one. */
static void test_mutations(void)
{
    uint8_t *px = corner_rgb(64, 32);
    uint8_t rgba[16 * 8 * 4];
    for (int i = 0; i < 16 * 8 * 4; i++)
        rgba[i] = (uint8_t)(i * 7);
    uint8_t idx[8 * 4];
    for (int i = 0; i < 32; i++)
        idx[i] = (uint8_t)(i % 3);
    png_color pal[3] = {{10, 20, 30}, {0, 0, 0}, {0, 200, 100}};
    png_byte trns[2] = {0, 128};
    struct png_spec pl = {.w = 8,
                          .h = 4,
                          .color = PNG_COLOR_TYPE_PALETTE,
                          .depth = 8,
                          .data = idx,
                          .pal = pal,
                          .npal = 3,
                          .trns = trns,
                          .ntrns = 2};
    struct png_spec pa = {.w = 16,
                          .h = 8,
                          .color = PNG_COLOR_TYPE_RGB_ALPHA,
                          .depth = 8,
                          .interlace = 1,
                          .data = rgba};
    struct jpeg_spec ps = {
        .w = 64, .h = 32, .comps = 3, .in_cs = JCS_RGB, .px = px, .progressive = 1};
    struct membuf fx[] = {
        enc_jpeg_rgb(px, 64, 32),
        enc_jpeg(&ps),
        jpeg_with_exif(px, 64, 32, 1, 6, 0),
        enc_png_rgb(px, 64, 32, 0),
        enc_png(&pl),
        enc_png(&pa),
        enc_webp(px, 64, 32, 0),
        enc_webp(px, 64, 32, 1),
        enc_webp(rgba, 16, 8, 2),
        webp_with_exif(px, 64, 32, 8),
    };
    int nfx = (int)(sizeof fx / sizeof fx[0]), bad = 0, decoded = 0, runs = 0;
    for (int f = 0; f < nfx; f++) {
        struct membuf *m = &fx[f];
        for (int iter = 0; iter < 400; iter++) {
            struct membuf c = mb_copy(m->p, m->n);
            int flips = 1 + (int)(rng() % 8);
            for (int k = 0; k < flips; k++) {
                uint64_t r = rng();
                c.p[r % c.n] ^= (uint8_t)(1u << ((r >> 32) % 8));
            }
            size_t len = iter % 4 == 3 ? (size_t)(rng() % c.n) : c.n;
            struct image im = {0};
            char err[FR_ERR_LEN] = "";
            int rc = image_decode(c.p, len, NULL, &im, err);
            runs++;
            if (rc == 0) {
                decoded++;
                bad += !(im.px && im.w > 0 && im.h > 0);
                if (im.px) sink = im.px[(size_t)im.w * im.h * 3 - 1]; /* touch the end */
            } else {
                bad += !(im.px == NULL && err[0] && rc < 0);
            }
            image_free(&im);
            free(c.p);
        }
        for (size_t cut = 0; cut < m->n; cut += 1 + m->n / 97) {
            struct image im = {0};
            char err[FR_ERR_LEN] = "";
            if (image_decode(m->p, cut, NULL, &im, err) == 0) image_free(&im);
        }
        free(m->p);
    }
    CHECK_MSG(bad == 0, "%d inconsistent results", bad);
    printf("mutations: %d decodes, %d succeeded\n", runs, decoded);
    free(px);
}

static void test_load_file(void)
{
    char err[FR_ERR_LEN];
    struct image im = {0};
    uint8_t *px = quad_rgb(64, 32);
    struct membuf png = enc_png_rgb(px, 64, 32, 0);
    char path[] = "/tmp/test_imageXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, png.p, png.n) == (ssize_t)png.n);
    close(fd);

    CHECK_MSG(image_load_file(path, NULL, &im, err) == 0, "%s", err);
    CHECK(im.w == 64 && im.h == 32 && im.px && memcmp(im.px, px, 64 * 32 * 3) == 0);
    image_free(&im);

    struct image_limits small = image_limits_default();
    small.max_bytes = png.n - 1;
    CHECK(image_load_file(path, &small, &im, err) == FR_ETOOBIG && strstr(err, path));
    small.max_bytes = png.n;
    CHECK(image_load_file(path, &small, &im, err) == 0);
    image_free(&im);
    small.max_w = 10;
    CHECK(image_load_file(path, &small, &im, err) == FR_ETOOBIG && strstr(err, path) &&
          strstr(err, "64x32"));

    CHECK(image_load_file("/nonexistent/x.png", NULL, &im, err) == FR_ENOTFOUND);
    CHECK(strstr(err, "/nonexistent/x.png") != NULL);
    CHECK(image_load_file("/tmp", NULL, &im, err) == FR_EIO);
    CHECK(im.px == NULL);
    unlink(path);
    free(png.p);
    free(px);
}

/* Decodes every photo in labels.csv and compares with its width and height columns. None of
 * these photos has an EXIF orientation other than 1 (eleven carry the tag, all 1), so stored
 * and displayed sizes agree; a swapped result would point at orientation handling. */
static void test_dataset(void)
{
    FILE *f = fopen(DATASET "/labels.csv", "r");
    if (!f) {
        printf("dataset %s is absent: skipping the real-photo checks\n", DATASET);
        return;
    }
    char line[1024];
    int n = 0, ok = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0; /* header */
    while (fgets(line, sizeof line, f)) {
        char *save = NULL, *source = strtok_r(line, ",", &save);
        char *person = strtok_r(NULL, ",", &save), *path = strtok_r(NULL, ",", &save);
        char *ws = strtok_r(NULL, ",", &save), *hs = strtok_r(NULL, ",", &save);
        if (!source || !person || !path || !ws || !hs) continue;
        char full[1200];
        snprintf(full, sizeof full, "%s/%s", DATASET, path);
        struct image im = {0};
        char err[FR_ERR_LEN];
        int rc = image_load_file(full, NULL, &im, err);
        int w = atoi(ws), h = atoi(hs);
        CHECK_MSG(rc == 0, "%s: %s", path, err);
        CHECK_MSG(rc != 0 || (im.w == w && im.h == h), "%s: decoded %dx%d, labels say %dx%d%s",
                  path, im.w, im.h, w, h,
                  im.w == h && im.h == w ? " (swapped: EXIF orientation?)" : "");
        n++;
        ok += rc == 0 && im.w == w && im.h == h;
        image_free(&im);
    }
    fclose(f);
    CHECK(n > 0);
    printf("dataset: %d of %d photos decoded with the labelled size\n", ok, n);
}

int main(void)
{
    seed_dir = getenv("IMAGE_TEST_SEEDS");
    if (seed_dir) mkdir(seed_dir, 0755);
    test_defaults();
    test_jpeg();
    test_exif();
    test_rotate();
    test_png();
    test_webp();
    test_errors();
    test_silent();
    test_mutations();
    test_load_file();
    test_dataset();
    return check_done();
}
