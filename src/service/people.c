#include "service/people.h"
#include "util/text.h"
#include "vision/warp.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int people_load(struct store *s, const struct config *c, struct gallery **g, char ver[64],
                char err[FR_ERR_LEN])
{
    *g = NULL;
    ver[0] = 0;
    /* version first: if the object changes between the two calls, the next check reloads */
    int rc = store_version(s, c->s3_out_bucket, PEOPLE_KEY, ver, err);
    uint8_t *data = NULL;
    size_t len = 0;
    if (!rc) rc = store_get(s, c->s3_out_bucket, PEOPLE_KEY, GALLERY_FILE_MAX, &data, &len, err);
    if (rc == FR_ENOTFOUND) {
        ver[0] = 0;
        return gallery_new(g) ? fr_fail(err, FR_ENOMEM, "out of memory") : 0;
    }
    if (rc) return rc;
    char why[FR_ERR_LEN];
    rc = gallery_parse(data, len, g, why);
    free(data);
    if (rc) return fr_fail(err, rc, "stored gallery: %s", why);
    return 0;
}

int people_save(struct store *s, const struct config *c, const struct gallery *g, char ver[64],
                char err[FR_ERR_LEN])
{
    struct buf b;
    buf_init(&b, GALLERY_FILE_MAX);
    int rc = gallery_serialize(g, &b);
    char now[64];
    if (rc) rc = fr_fail(err, rc, "gallery too large");
    else rc = store_put_if(s, c->s3_out_bucket, PEOPLE_KEY, b.data, b.len, ver, now, err);
    if (!rc) memcpy(ver, now, 64);
    buf_free(&b);
    return rc;
}

int people_refresh(struct people_cache *pc, struct store *s, const struct config *c,
                   double max_age_ms, char err[FR_ERR_LEN])
{
    double now = now_ms();
    if (pc->g && now - pc->checked < max_age_ms) return 0;
    char ver[64];
    int rc = store_version(s, c->s3_out_bucket, PEOPLE_KEY, ver, err);
    if (rc == FR_ENOTFOUND) ver[0] = 0;
    else if (rc) return rc;
    pc->checked = now;
    if (pc->g && !strcmp(ver, pc->ver)) return 0;
    struct gallery *g;
    rc = people_load(s, c, &g, ver, err);
    if (rc) return rc;
    gallery_free(pc->g);
    pc->g = g;
    memcpy(pc->ver, ver, sizeof pc->ver);
    return 0;
}

void people_cache_free(struct people_cache *pc)
{
    gallery_free(pc->g);
    memset(pc, 0, sizeof *pc);
}

void people_photo_key(const char *name, char key[PEOPLE_PHOTO_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(key, "photo-", 6);
    size_t n = 6;
    for (const unsigned char *p = (const unsigned char *)name; *p && n + 2 <= PEOPLE_PHOTO_KEY_LEN; p++) {
        key[n++] = hex[*p >> 4];
        key[n++] = hex[*p & 15];
    }
    key[n] = 0;
}

int people_photo_make(const struct image *img, const struct face_box *box, uint8_t **jpeg,
                      size_t *len, char err[FR_ERR_LEN])
{
    *jpeg = NULL;
    *len = 0;
    if (img->w <= 0 || img->h <= 0) return fr_fail(err, FR_EINVAL, "empty image");
    int fw, fh; /* the box is in the stored photo's pixels; img may be decoded reduced */
    image_full_size(img, &fw, &fh);
    double sx = (double)img->w / fw, sy = (double)img->h / fh;
    double bx[4] = {box->box[0] * sx, box->box[1] * sy, box->box[2] * sx, box->box[3] * sy};
    double bw = bx[2] - bx[0], bh = bx[3] - bx[1];
    if (!(bw > 0) || !(bh > 0)) return fr_fail(err, FR_EINVAL, "empty face box");
    /* the face with some hair and chin around it; inside the image when the image allows */
    double side = 1.5 * (bw > bh ? bw : bh);
    double lim = img->w < img->h ? img->w : img->h;
    if (side > lim) side = lim;
    double x0 = (bx[0] + bx[2] - side) / 2, y0 = (bx[1] + bx[3] - side) / 2;
    if (x0 + side > img->w) x0 = img->w - side;
    if (y0 + side > img->h) y0 = img->h - side;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    enum { S = PEOPLE_PHOTO_SIDE };
    float *f = malloc((size_t)S * S * 3 * sizeof *f);
    uint8_t *px = malloc((size_t)S * S * 3);
    struct warp_src src = warp_src_image(img);
    int rc = f && px ? warp_resize(&src, x0, y0, x0 + side, y0 + side, S, S, 0, f) : FR_ENOMEM;
    if (rc) {
        free(f);
        free(px);
        return fr_fail(err, rc, "cannot crop the face: %s", fr_strerror(rc));
    }
    for (size_t i = 0; i < (size_t)S * S * 3; i++) { /* back from the network's (p - 127.5) / 128 */
        float v = f[i] * 128.0f + 127.5f;
        px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
    }
    free(f);
    struct image thumb = {S, S, px};
    rc = image_encode_jpeg(&thumb, 85, jpeg, len, err);
    free(px);
    return rc;
}
