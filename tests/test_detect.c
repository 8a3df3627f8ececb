/* test_detect: face detection counts on real group photos, duplicates, odd inputs.
 *
 * Uses ../shared/datasets/faces (group photos, portraits) and the face-api demo photos fetched by
 * scripts/fixtures.sh into $FACEREC_FIXTURES (default build/fixtures); each part says when its
 * data is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vision/image.h"
#include "vision/mtcnn.h"
#include "vision/pipeline.h"

#define DATA "../shared/datasets/faces"

static struct mtcnn *m;
static struct recognizer *rec; /* detection as the product reports it: with the quality gate */

static float iou(const float *a, const float *b)
{
    float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (iw <= 0 || ih <= 0) return 0;
    float inter = iw * ih;
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/* Detects in img and checks the count is within [lo, hi], no duplicates, sane landmarks, every
 * face of the default quality or better. */
static void check_faces(const struct image *img, int lo, int hi, const char *what)
{
    char err[FR_ERR_LEN];
    struct face_box *raw = NULL;
    int nraw = -1;
    CHECK_MSG(mtcnn_detect(m, img, NULL, &raw, &nraw, err) == 0, "%s: %s", what, err);
    free(raw);
    struct recognition res = {0};
    int rc = recognizer_run(rec, img, 0, &res, err);
    CHECK_MSG(rc == 0, "%s: %s", what, err);
    int n = res.n;
    struct face_box f[MTCNN_MAX_FACES];
    for (int i = 0; i < n; i++) {
        f[i] = res.faces[i].det;
        CHECK_MSG(res.faces[i].has_emb && res.faces[i].quality >= RECOGNIZER_MIN_QUALITY_DEFAULT,
                  "%s: face %d quality %.1f", what, i, (double)res.faces[i].quality);
    }
    CHECK_MSG(n >= lo && n <= hi, "%s: %d faces, expected %d..%d", what, n, lo, hi);
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++)
            CHECK_MSG(iou(f[i].box, f[j].box) < 0.3f, "%s: faces %d and %d overlap", what, i, j);
        float w = f[i].box[2] - f[i].box[0], h = f[i].box[3] - f[i].box[1];
        CHECK_MSG(w > 0 && h > 0 && f[i].score >= 0.7f && f[i].score <= 1.0f, "%s: face %d", what, i);
        for (int k = 0; k < 5; k++) { /* landmarks lie within the box, give or take a margin */
            float x = f[i].lm[2 * k], y = f[i].lm[2 * k + 1];
            CHECK_MSG(x > f[i].box[0] - w * 0.25f && x < f[i].box[2] + w * 0.25f &&
                          y > f[i].box[1] - h * 0.25f && y < f[i].box[3] + h * 0.25f,
                      "%s: face %d landmark %d outside its box", what, i, k);
        }
        /* eyes above the mouth, left eye left of the right eye */
        CHECK_MSG(f[i].lm[0] < f[i].lm[2] && f[i].lm[1] < f[i].lm[7] && f[i].lm[3] < f[i].lm[9],
                  "%s: face %d landmarks out of order", what, i);
    }
    printf("%-40s %d faces (%d detections before the quality gate)\n", what, n, nraw);
    recognition_free(&res);
}

static void check_file(const char *path, int lo, int hi)
{
    char err[FR_ERR_LEN];
    struct image img = {0};
    int rc = image_load_file(path, NULL, &img, err);
    CHECK_MSG(rc == 0, "%s: %s", path, err);
    if (!rc) check_faces(&img, lo, hi, strrchr(path, '/') + 1);
    image_free(&img);
}

static void test_fixtures(void)
{
    const char *dir = getenv("FACEREC_FIXTURES");
    if (!dir || !*dir) dir = "build/fixtures";
    /* face-api's demo photos: 3, 3, 3, 4, 5, 4 faces. MTCNN alone, at the standard settings
     * (thresholds 0.6, 0.7, 0.7, min face 20, factor 0.709, 640-pixel copy), finds 3, 2, 3, 5,
     * 5, 4, as does a line-by-line port of facenet's detect_face on the full photos: the
     * deviations belong to the models. In sample4 O-Net scores a patterned dress at 25
     * detection pixels 0.94; its embedding's length (quality) is 22 where real faces have 48
     * or more, and the quality gate drops it. In sample2 the third person is in full profile:
     * R-Net passes her (0.96), but its box regression pulls the box forward past her nose and
     * O-Net scores that box 0.51 (a box from her nose to her ear scores 0.99): a miss that
     * remains. It is on a knife edge (detection sizes from 560 to 720 flip it between 1 and 3
     * faces), so it is pinned, not tuned away. */
    static const int lo[6] = {3, 2, 3, 4, 5, 4}, hi[6] = {3, 3, 3, 4, 5, 4};
    for (int i = 0; i < 6; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/sample%d.jpg", dir, i + 1);
        FILE *f = fopen(path, "rb");
        if (!f) {
            printf("note: %s absent (scripts/fixtures.sh): face-api photos not checked\n", path);
            return;
        }
        fclose(f);
        check_file(path, lo[i], hi[i]);
    }
}

static void test_dataset_groups(void)
{
    /* counts from the groups.csv files; bbt2 has two main faces plus partial background ones */
    static const struct {
        const char *path;
        int lo, hi;
    } groups[] = {
        {"face_recognition/groups/kit_with_rose.jpg", 2, 2},
        {"face_recognition/groups/obama_and_biden.jpg", 3, 3},
        {"face_recognition/groups/two_people.jpg", 2, 2},
        {"openface/groups/longoria-cooper.jpg", 2, 2},
        {"face-api.js/groups/bbt1.jpg", 4, 4},
        {"face-api.js/groups/bbt2.jpg", 2, 4},
        {"face-api.js/groups/bbt3.jpg", 5, 5},
        {"face-api.js/groups/bbt4.jpg", 6, 6},
        {"face-api.js/groups/bbt5.jpg", 5, 5},
    };
    FILE *f = fopen(DATA "/labels.csv", "r");
    if (!f) {
        printf("note: " DATA " is absent: group photos not checked\n");
        return;
    }
    fclose(f);
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, DATA "/%s", groups[i].path);
        check_file(path, groups[i].lo, groups[i].hi);
    }
}

/* Every portrait of labels.csv gives the number of faces it is labelled with (without the
 * quality gate, a lock of John Lennon's hair counts as a second face). */
static void test_dataset_portraits(void)
{
    FILE *f = fopen(DATA "/labels.csv", "r");
    if (!f) {
        printf("note: " DATA " is absent: portraits not checked\n");
        return;
    }
    char line[1024];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        char person[128], rel[512];
        int expected;
        if (sscanf(line, "%*[^,],%127[^,],%511[^,],%*d,%*d,%d", person, rel, &expected) != 3 ||
            !strcmp(person, "groups"))
            continue; /* the header, and group photos (test_dataset_groups) */
        char path[700];
        snprintf(path, sizeof path, DATA "/%s", rel);
        check_file(path, expected, expected);
        checked++;
    }
    fclose(f);
    CHECK_MSG(checked >= 60, "only %d portraits in labels.csv", checked);
}

/* Twenty portraits tiled 5 x 4 on one canvas: twenty faces. */
static void test_twenty(void)
{
    static const char *people[] = {"amy", "bernadette", "howard", "leonard", "penny",
                                   "raj", "sheldon", "stuart"};
    const int cell = 190, cols = 5, rows = 4;
    struct image canvas = {cols * cell, rows * cell, NULL};
    canvas.px = calloc((size_t)canvas.w * canvas.h, 3);
    memset(canvas.px, 200, (size_t)canvas.w * canvas.h * 3);
    char err[FR_ERR_LEN];
    for (int k = 0; k < cols * rows; k++) {
        char path[512];
        snprintf(path, sizeof path, DATA "/face-api.js/%s/%s%d.png", people[k % 8], people[k % 8],
                 1 + k / 8);
        struct image img = {0};
        if (image_load_file(path, NULL, &img, err)) {
            printf("note: %s absent: twenty-face collage not checked\n", path);
            free(canvas.px);
            return;
        }
        int ox = (k % cols) * cell + 20, oy = (k / cols) * cell + 20;
        for (int y = 0; y < img.h && y + oy < canvas.h; y++)
            for (int x = 0; x < img.w && x + ox < canvas.w; x++)
                memcpy(canvas.px + ((size_t)(y + oy) * canvas.w + x + ox) * 3,
                       img.px + ((size_t)y * img.w + x) * 3, 3);
        image_free(&img);
    }
    check_faces(&canvas, 20, 20, "collage of 20 portraits");
    free(canvas.px);
}

static void test_no_face(void)
{
    char err[FR_ERR_LEN];
    struct face_box *f;
    int n;
    struct image grey = {640, 480, malloc(640 * 480 * 3)};
    memset(grey.px, 128, 640 * 480 * 3);
    CHECK(mtcnn_detect(m, &grey, NULL, &f, &n, err) == 0 && n == 0 && f == NULL);
    uint32_t s = 1;
    for (int i = 0; i < 640 * 480 * 3; i++)
        s = s * 1664525u + 1013904223u, grey.px[i] = (uint8_t)(s >> 24);
    CHECK(mtcnn_detect(m, &grey, NULL, &f, &n, err) == 0);
    CHECK_MSG(n == 0, "noise: %d faces", n);
    free(f);
    free(grey.px);
    uint8_t px[3] = {1, 2, 3};
    struct image one = {1, 1, px};
    CHECK(mtcnn_detect(m, &one, NULL, &f, &n, err) == 0 && n == 0);
    struct image wide = {4000, 3, calloc(4000 * 3, 3)};
    CHECK(mtcnn_detect(m, &wide, NULL, &f, &n, err) == 0 && n == 0);
    free(wide.px);
    struct image empty = {0, 0, NULL};
    CHECK(mtcnn_detect(m, &empty, NULL, &f, &n, err) == FR_EINVAL);
    struct mtcnn_opts o = MTCNN_OPTS_DEFAULT;
    o.min_face = 5;
    CHECK(mtcnn_detect(m, &one, &o, &f, &n, err) == FR_EINVAL && strstr(err, "min face"));
    o = (struct mtcnn_opts)MTCNN_OPTS_DEFAULT;
    o.factor = 1.0f;
    CHECK(mtcnn_detect(m, &one, &o, &f, &n, err) == FR_EINVAL);
}

/* A photo decoded reduced (in the DCT domain) gives the same faces, in the stored photo's
 * coordinates, as the photo decoded in full. */
static void test_reduced(const char *models)
{
    const char *dir = getenv("FACEREC_FIXTURES");
    char path[512], err[FR_ERR_LEN];
    snprintf(path, sizeof path, "%s/sample1.jpg", dir && *dir ? dir : "build/fixtures");
    size_t len;
    uint8_t *bytes = check_read_file(path, &len);
    if (!bytes) {
        printf("note: %s absent (make fixtures): reduced decoding not checked\n", path);
        return;
    }
    struct recognizer *r;
    struct image full = {0}, small = {0};
    struct recognition a = {0}, b = {0};
    CHECK(recognizer_open(models, NULL, &r, err) == 0);
    CHECK(image_decode(bytes, len, NULL, &full, err) == 0 && full.full_w == 0);
    CHECK(image_decode_reduced(bytes, len, NULL, full.w / 4, &small, err) == 0);
    CHECK_MSG(small.w == (full.w + 3) / 4 && small.full_w == full.w && small.full_h == full.h,
              "reduced %dx%d of %dx%d", small.w, small.h, small.full_w, small.full_h);
    CHECK(recognizer_run(r, &full, 0, &a, err) == 0 && recognizer_run(r, &small, 0, &b, err) == 0);
    CHECK_MSG(a.n == b.n && a.n >= 3, "%d faces in full, %d reduced", a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        float best = 0;
        for (int j = 0; j < b.n; j++)
            best = fmaxf(best, iou(a.faces[i].det.box, b.faces[j].det.box));
        CHECK_MSG(best > 0.6f, "face %d: best IoU %.2f with the reduced decode's faces", i, best);
    }
    recognition_free(&a);
    recognition_free(&b);
    image_free(&full);
    image_free(&small);
    recognizer_close(r);
    free(bytes);
}

int main(void)
{
    const char *models = getenv("FACEREC_MODELS");
    if (!models || !*models) models = "models";
    char err[FR_ERR_LEN];
    if (mtcnn_open(models, NULL, &m, err)) return check_skip(err);
    CHECK_MSG(recognizer_open(models, NULL, &rec, err) == 0, "%s", err);
    test_no_face();
    test_dataset_groups();
    test_dataset_portraits();
    test_twenty();
    test_fixtures();
    test_reduced(models);
    recognizer_close(rec);
    mtcnn_close(m);
    return check_done();
}
