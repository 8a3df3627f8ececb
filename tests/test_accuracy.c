/* test_accuracy: recognition accuracy on the labelled photos of ../shared/datasets/faces.
 *
 * Each portrait's largest face is detected, aligned and embedded with one global setting. Then:
 * verification on pairs.csv (ROC AUC, accuracy with a 10-fold cross-validated threshold, TAR at
 * FAR 1%), and leave-one-out rank-1 identification over every portrait whose person has another
 * photo. Fails when the figures drop below what the pipeline measured (see README). With
 * ACCURACY_FLIP=1 it also reports the same figures when the flipped face's embedding is added. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "vision/embed.h"
#include "vision/image.h"
#include "vision/mtcnn.h"

#define DATA "../shared/datasets/faces"
#define MAX_PHOTOS 512
#define ACCURACY_THRESHOLD 0.45 /* the default unknown threshold (pipeline) */

struct photo {
    char path[256], person[64];
    float emb[EMBED_DIM], flip[EMBED_DIM];
    int ok;
};

static struct photo photos[MAX_PHOTOS];
static int nphotos;

static struct photo *find(const char *path)
{
    for (int i = 0; i < nphotos; i++)
        if (!strcmp(photos[i].path, path)) return &photos[i];
    return NULL;
}

static float dot(const float *a, const float *b, int use_flip, const float *fa, const float *fb)
{
    double s = 0;
    if (!use_flip) {
        for (int i = 0; i < EMBED_DIM; i++)
            s += (double)a[i] * b[i];
        return (float)s;
    }
    /* sum of embeddings, renormalised */
    double na = 0, nb = 0;
    for (int i = 0; i < EMBED_DIM; i++) {
        double x = a[i] + fa[i], y = b[i] + fb[i];
        s += x * y, na += x * x, nb += y * y;
    }
    return (float)(s / sqrt(na * nb));
}

struct pair {
    float sim;
    int same;
};

static int by_sim(const void *a, const void *b)
{
    float x = ((const struct pair *)a)->sim, y = ((const struct pair *)b)->sim;
    return (x > y) - (x < y);
}

/* Best accuracy threshold on pairs[i] for i % 10 != fold: candidates are midway between
 * neighbouring similarities. */
static float best_threshold(const struct pair *p, int n, int fold)
{
    float best_t = 0;
    double best = -1;
    for (int k = 0; k < n; k++) {
        if (fold >= 0 && k % 10 == fold) continue;
        float next = 2.0f; /* the smallest training similarity above p[k] */
        for (int i = 0; i < n; i++)
            if ((fold < 0 || i % 10 != fold) && p[i].sim > p[k].sim && p[i].sim < next)
                next = p[i].sim;
        float t = next < 2.0f ? (p[k].sim + next) / 2 : p[k].sim + 1e-6f;
        int right = 0, total = 0;
        for (int i = 0; i < n; i++) {
            if (fold >= 0 && i % 10 == fold) continue;
            right += (p[i].sim >= t) == p[i].same;
            total++;
        }
        if ((double)right / total > best) best = (double)right / total, best_t = t;
    }
    return best_t;
}

static void evaluate(struct pair *pairs, int np, int use_flip, const char *label)
{
    /* AUC: probability that a same pair scores above a different pair */
    double wins = 0;
    int ns = 0, nd = 0;
    for (int i = 0; i < np; i++)
        for (int j = 0; j < np; j++)
            if (pairs[i].same && !pairs[j].same)
                wins += pairs[i].sim > pairs[j].sim ? 1.0 : pairs[i].sim == pairs[j].sim ? 0.5 : 0;
    for (int i = 0; i < np; i++)
        pairs[i].same ? ns++ : nd++;
    double auc = wins / ((double)ns * nd);
    /* 10-fold verification accuracy (pairs interleaved into folds by index) */
    int right = 0;
    for (int f = 0; f < 10; f++) {
        float t = best_threshold(pairs, np, f);
        for (int i = f; i < np; i += 10)
            right += (pairs[i].sim >= t) == pairs[i].same;
    }
    double acc10 = (double)right / np;
    /* TAR at FAR 1%: the threshold that lets at most 1% of different pairs through */
    struct pair *diff = malloc((size_t)nd * sizeof *diff);
    int k = 0;
    for (int i = 0; i < np; i++)
        if (!pairs[i].same) diff[k++] = pairs[i];
    qsort(diff, (size_t)nd, sizeof *diff, by_sim);
    float t1 = diff[nd - 1 - (int)floor(nd * 0.01)].sim + 1e-6f;
    int tar = 0;
    for (int i = 0; i < np; i++)
        tar += pairs[i].same && pairs[i].sim >= t1;
    float max_diff = diff[nd - 1].sim, min_same = 2;
    for (int i = 0; i < np; i++)
        if (pairs[i].same && pairs[i].sim < min_same) min_same = pairs[i].sim;
    /* the service's default unknown threshold: false accepts and rejects it gives here */
    int fa = 0, fr = 0;
    for (int i = 0; i < np; i++) {
        fa += !pairs[i].same && pairs[i].sim >= ACCURACY_THRESHOLD;
        fr += pairs[i].same && pairs[i].sim < ACCURACY_THRESHOLD;
    }
    free(diff);
    /* leave-one-out rank-1 */
    int trials = 0, hits = 0;
    for (int i = 0; i < nphotos; i++) {
        if (!photos[i].ok) continue;
        int others = 0;
        for (int j = 0; j < nphotos; j++)
            others += j != i && photos[j].ok && !strcmp(photos[i].person, photos[j].person);
        if (!others) continue;
        int best = -1;
        float bs = -2;
        for (int j = 0; j < nphotos; j++) {
            if (j == i || !photos[j].ok) continue;
            float s = dot(photos[i].emb, photos[j].emb, use_flip, photos[i].flip, photos[j].flip);
            if (s > bs) bs = s, best = j;
        }
        trials++;
        hits += best >= 0 && !strcmp(photos[i].person, photos[best].person);
    }
    printf("%-12s pairs %d same / %d different: AUC %.4f, 10-fold accuracy %.4f, TAR@FAR1%% %.4f "
           "(threshold %.3f); same-pair min %.3f, different-pair max %.3f; rank-1 %d/%d; at %.2f: "
           "%d/%d false accepts, %d/%d false rejects\n",
           label, ns, nd, auc, acc10, (double)tar / ns, (double)t1, (double)min_same,
           (double)max_diff, hits, trials, ACCURACY_THRESHOLD, fa, nd, fr, ns);
    if (!use_flip) {
        CHECK_MSG(auc >= 0.999, "AUC %.4f below 0.999", auc);
        CHECK_MSG(acc10 >= 0.99, "10-fold accuracy %.4f below 0.99", acc10);
        CHECK_MSG((double)tar / ns >= 0.99, "TAR@FAR1%% %.4f below 0.99", (double)tar / ns);
        CHECK_MSG(hits == trials && trials >= 50, "rank-1 %d/%d", hits, trials);
    }
}

int main(void)
{
    FILE *f = fopen(DATA "/labels.csv", "r");
    if (!f) return check_skip(DATA " is absent: accuracy not measured");
    const char *models = getenv("FACEREC_MODELS");
    if (!models || !*models) models = "models";
    char err[FR_ERR_LEN], line[1024];
    struct mtcnn *m;
    struct embedder *e;
    if (mtcnn_open(models, NULL, &m, err) || embed_open(models, NULL, &e, err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int flip = getenv("ACCURACY_FLIP") != NULL;
    if (!fgets(line, sizeof line, f)) return 1; /* header */
    while (fgets(line, sizeof line, f) && nphotos < MAX_PHOTOS) {
        char src[64], person[64], path[256];
        if (sscanf(line, "%63[^,],%63[^,],%255[^,],", src, person, path) != 3) continue;
        if (!strcmp(person, "groups")) continue;
        struct photo *p = &photos[nphotos++];
        snprintf(p->path, sizeof p->path, "%s", path);
        snprintf(p->person, sizeof p->person, "%s", person);
        char full[512];
        snprintf(full, sizeof full, DATA "/%s", path);
        struct image img = {0};
        struct face_box *faces = NULL;
        int n = 0;
        int rc = image_load_file(full, NULL, &img, err);
        if (!rc) rc = mtcnn_detect(m, &img, NULL, &faces, &n, err);
        CHECK_MSG(rc == 0 && n > 0, "%s: %s", path, rc ? err : "no face");
        if (!rc && n > 0) {
            int big = 0; /* the largest face */
            for (int k = 1; k < n; k++)
                if ((faces[k].box[2] - faces[k].box[0]) * (faces[k].box[3] - faces[k].box[1]) >
                    (faces[big].box[2] - faces[big].box[0]) * (faces[big].box[3] - faces[big].box[1]))
                    big = k;
            rc = embed_face(e, &img, &faces[big], p->emb, NULL, err);
            CHECK_MSG(rc == 0, "%s: %s", path, err);
            if (!rc && flip) {
                static float crop[EMBED_SIZE * EMBED_SIZE * 3], mirrored[EMBED_SIZE * EMBED_SIZE * 3];
                if (embed_align(&img, &faces[big], crop, err) == 0) {
                    for (int y = 0; y < EMBED_SIZE; y++)
                        for (int x = 0; x < EMBED_SIZE; x++)
                            memcpy(&mirrored[(y * EMBED_SIZE + x) * 3],
                                   &crop[(y * EMBED_SIZE + EMBED_SIZE - 1 - x) * 3], 3 * sizeof(float));
                    rc = embed_aligned(e, mirrored, p->flip, NULL, err);
                }
            }
            p->ok = rc == 0;
        }
        free(faces);
        image_free(&img);
    }
    fclose(f);

    f = fopen(DATA "/pairs.csv", "r");
    CHECK(f != NULL);
    struct pair pairs[1024];
    int np = 0;
    if (f && fgets(line, sizeof line, f)) {
        while (fgets(line, sizeof line, f) && np < 1024) {
            char a[256], b[256];
            int same;
            if (sscanf(line, "%255[^,],%255[^,],%d", a, b, &same) != 3) continue;
            struct photo *pa = find(a), *pb = find(b);
            CHECK_MSG(pa && pb && pa->ok && pb->ok, "pair %s %s without embeddings", a, b);
            if (!pa || !pb || !pa->ok || !pb->ok) continue;
            pairs[np].sim = dot(pa->emb, pb->emb, 0, NULL, NULL);
            pairs[np++].same = same;
        }
        fclose(f);
    }
    evaluate(pairs, np, 0, "aligned");
    if (flip) {
        f = fopen(DATA "/pairs.csv", "r");
        np = 0;
        if (f && fgets(line, sizeof line, f))
            while (fgets(line, sizeof line, f) && np < 1024) {
                char a[256], b[256];
                int same;
                if (sscanf(line, "%255[^,],%255[^,],%d", a, b, &same) != 3) continue;
                struct photo *pa = find(a), *pb = find(b);
                if (!pa || !pb || !pa->ok || !pb->ok) continue;
                pairs[np].sim = dot(pa->emb, pb->emb, 1, pa->flip, pb->flip);
                pairs[np++].same = same;
            }
        if (f) fclose(f);
        evaluate(pairs, np, 1, "aligned+flip");
    }
    embed_close(e);
    mtcnn_close(m);
    return check_done();
}
