/* pipeline.c: detection, then alignment and embedding of every face. */
#include "vision/pipeline.h"
#include "util/text.h"

#include "vision/gallery.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct recognizer {
    struct recognizer_opts opts;
    pthreadpool_t pool; /* the engine's threads beyond the caller's, shared by all four nets
                           (NULL on one thread) */
    struct mtcnn *det;
    struct embedder *emb;
};

int recognizer_open(const char *dir, const struct recognizer_opts *opts, struct recognizer **out,
                    char err[FR_ERR_LEN])
{
    *out = NULL;
    struct recognizer *r = calloc(1, sizeof *r);
    if (!r) return fr_fail(err, FR_ENOMEM, "out of memory");
    r->opts = opts ? *opts : (struct recognizer_opts)RECOGNIZER_OPTS_DEFAULT;
    int rc = 0;
    if (r->opts.threads > 1 && !(r->pool = pthreadpool_create((size_t)r->opts.threads)))
        rc = fr_fail(err, FR_ENOMEM, "cannot create a thread pool of %d", r->opts.threads);
    if (!rc) rc = mtcnn_open(dir, r->pool, &r->det, err);
    if (!rc) rc = embed_open(dir, r->pool, &r->emb, err);
    if (rc) {
        recognizer_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int recognizer_warm(struct recognizer *r, char err[FR_ERR_LEN])
{
    int rc = mtcnn_warm(r->det, err);
    if (rc) return rc;
    static float blank[EMBED_SIZE * EMBED_SIZE * 3];
    float emb[EMBED_DIM];
    rc = embed_aligned(r->emb, blank, emb, NULL, err);
    return rc == FR_EBACKEND ? 0 : rc; /* a blank face may have no direction: that is fine */
}

void recognizer_close(struct recognizer *r)
{
    if (!r) return;
    mtcnn_close(r->det);
    embed_close(r->emb);
    if (r->pool) pthreadpool_destroy(r->pool);
    free(r);
}

int recognizer_decode(const struct recognizer *r, const uint8_t *buf, size_t len,
                      const struct image_limits *lim, struct image *out, char err[FR_ERR_LEN])
{
    return image_decode_reduced(buf, len, lim, 3 * r->opts.detect.max_side / 2, out, err);
}

void recognizer_detect_timing(const struct recognizer *r, struct mtcnn_timing *t)
{
    mtcnn_last_timing(r->det, t);
}

void recognition_free(struct recognition *res)
{
    free(res->faces);
    memset(res, 0, sizeof *res);
    res->largest = -1;
}

static float box_area(const struct face_box *f)
{
    return (f->box[2] - f->box[0]) * (f->box[3] - f->box[1]);
}

int recognizer_run(struct recognizer *r, const struct image *img, double deadline,
                   struct recognition *out, char err[FR_ERR_LEN])
{
    memset(out, 0, sizeof *out);
    out->largest = -1;
    struct face_box *boxes = NULL;
    int n = 0;
    double t0 = now_ms();
    struct mtcnn_opts o = r->opts.detect;
    o.deadline = deadline;
    int rc = mtcnn_detect(r->det, img, &o, &boxes, &n, err);
    out->t.detect = now_ms() - t0;
    if (rc) return rc;
    if (n > 0 && !(out->faces = calloc((size_t)n, sizeof *out->faces))) {
        free(boxes);
        return fr_fail(err, FR_ENOMEM, "out of memory");
    }
    t0 = now_ms();
    int kept = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (deadline > 0 && now_ms() > deadline) {
            rc = fr_fail(err, FR_ETIMEOUT, "stopped: the job's time limit was reached");
            break;
        }
        struct face_result *f = &out->faces[kept];
        f->det = boxes[i];
        f->similarity = NAN;
        f->quality = NAN;
        char why[FR_ERR_LEN];
        int e = embed_face(r->emb, img, &boxes[i], f->emb, &f->quality, why);
        if (e && e != FR_EINVAL) { /* FR_EINVAL: degenerate landmarks, a face without embedding */
            rc = fr_fail(err, e, "%s", why);
            break;
        }
        f->has_emb = !e;
        if (f->has_emb && f->quality < r->opts.min_quality) continue; /* not a face */
        if (f->has_emb &&
            (out->largest < 0 || box_area(&f->det) > box_area(&out->faces[out->largest].det)))
            out->largest = kept;
        kept++;
    }
    out->t.align_embed = now_ms() - t0;
    out->n = kept;
    free(boxes);
    if (rc) {
        recognition_free(out);
        return rc;
    }
    /* the client's coordinates are the stored photo's, also when it was decoded reduced */
    int fw, fh;
    image_full_size(img, &fw, &fh);
    float sx = (float)fw / (float)img->w, sy = (float)fh / (float)img->h;
    for (int i = 0; i < out->n && (fw != img->w || fh != img->h); i++) {
        struct face_box *b = &out->faces[i].det;
        b->box[0] *= sx, b->box[1] *= sy, b->box[2] *= sx, b->box[3] *= sy;
        for (int k = 0; k < 5; k++)
            b->lm[2 * k] *= sx, b->lm[2 * k + 1] *= sy;
    }
    return 0;
}

void recognition_match(struct recognition *res, const struct gallery *g, float threshold)
{
    for (int i = 0; i < res->n; i++) {
        struct face_result *f = &res->faces[i];
        f->name[0] = 0;
        f->similarity = NAN;
        if (!f->has_emb || !g) continue;
        struct gallery_match m;
        gallery_search(g, f->emb, &m);
        if (!m.name) continue;
        f->similarity = m.similarity;
        if (m.similarity >= threshold) snprintf(f->name, sizeof f->name, "%s", m.name);
    }
}

const char *recognition_result(const struct recognition *res)
{
    if (res->largest < 0) return "No face";
    const struct face_result *f = &res->faces[res->largest];
    return f->name[0] ? f->name : "Unknown";
}

void recognition_face_json(const struct face_result *f, int with_match, int with_embedding,
                           struct buf *b)
{
    const struct face_box *d = &f->det;
    buf_printf(b, "{\"box\":[%.1f,%.1f,%.1f,%.1f],\"score\":%.4f,\"landmarks\":[", d->box[0],
               d->box[1], d->box[2], d->box[3], d->score);
    for (int k = 0; k < 5; k++)
        buf_printf(b, "%s[%.1f,%.1f]", k ? "," : "", d->lm[2 * k], d->lm[2 * k + 1]);
    buf_append(b, "],\"quality\":", 12);
    buf_json_num(b, f->quality);
    if (with_match) {
        buf_append(b, ",\"name\":", 8);
        buf_json_str(b, f->name[0] ? f->name : "Unknown");
        buf_append(b, ",\"similarity\":", 14);
        buf_json_num(b, f->similarity);
    }
    if (with_embedding && !f->has_emb) {
        buf_append(b, ",\"embedding\":null", 17);
    } else if (with_embedding) {
        buf_append(b, ",\"embedding\":[", 14);
        for (int j = 0; j < EMBED_DIM; j++)
            buf_printf(b, "%s%.6f", j ? "," : "", f->emb[j]);
        buf_append(b, "]", 1);
    }
    buf_append(b, "}", 1);
}

void recognition_json(const struct recognition *res, struct buf *b)
{
    buf_append(b, "\"result\":", 9);
    buf_json_str(b, recognition_result(res));
    buf_append(b, ",\"faces\":[", 10);
    for (int i = 0; i < res->n; i++) {
        if (i) buf_append(b, ",", 1);
        recognition_face_json(&res->faces[i], 1, 0, b);
    }
    buf_append(b, "]", 1);
}
