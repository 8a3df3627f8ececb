/* test_gallery: people, search, caps, and the file format against damage of every kind.
 * Prints the search time at 1k, 10k and 100k examples (measured, not asserted). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "vision/gallery.h"

static uint64_t rng = 12345;

static float rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) % 20001) / 10000.0f - 1.0f;
}

static void unit(float *v)
{
    double n = 0;
    for (int i = 0; i < GALLERY_DIM; i++)
        v[i] = rnd(), n += (double)v[i] * v[i];
    for (int i = 0; i < GALLERY_DIM; i++)
        v[i] = (float)(v[i] / sqrt(n));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(void)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    CHECK(gallery_new(&g) == 0);
    float a[GALLERY_DIM], b[GALLERY_DIM], c[GALLERY_DIM];
    unit(a), unit(b), unit(c);
    struct gallery_match m;
    gallery_search(g, a, &m);
    CHECK(m.name == NULL);
    CHECK(gallery_add(g, "Ada Lovelace", a, err) == 0);
    CHECK(gallery_add(g, "Grace Hopper", b, err) == 0);
    CHECK(gallery_add(g, "Ada Lovelace", c, err) == 0);
    CHECK(gallery_people(g) == 2 && gallery_examples(g) == 3);
    int ex;
    CHECK(!strcmp(gallery_person(g, 0, &ex), "Ada Lovelace") && ex == 2);
    gallery_search(g, b, &m);
    CHECK(m.name && !strcmp(m.name, "Grace Hopper") && fabsf(m.similarity - 1.0f) < 1e-5f);
    gallery_search(g, c, &m);
    CHECK(m.name && !strcmp(m.name, "Ada Lovelace"));

    /* names and embeddings that are refused */
    static const char *bad[] = {"", "a/b", "..", ".", " lead", "trail ", "tab\tname", "back\\slash",
                                "\xff\xfe", "\xc0\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(gallery_add(g, bad[i], a, err) == FR_EINVAL, "name %zu accepted", i);
    CHECK(gallery_name_valid("José Ñúñez") && gallery_name_valid("李小龍"));
    char longname[GALLERY_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(gallery_add(g, longname, a, err) == FR_EINVAL);
    float notunit[GALLERY_DIM] = {0};
    CHECK(gallery_add(g, "Zero", notunit, err) == FR_EINVAL);
    notunit[0] = NAN;
    CHECK(gallery_add(g, "NaN", notunit, err) == FR_EINVAL);

    /* round trip */
    struct buf file;
    buf_init(&file, 1 << 20);
    CHECK(gallery_serialize(g, &file) == 0);
    struct gallery *h;
    CHECK(gallery_parse((const uint8_t *)file.data, file.len, &h, err) == 0);
    CHECK(gallery_people(h) == 2 && gallery_examples(h) == 3);
    gallery_search(h, c, &m);
    CHECK(m.name && !strcmp(m.name, "Ada Lovelace") && fabsf(m.similarity - 1.0f) < 1e-5f);
    gallery_free(h);

    /* every truncation and every single-bit flip is an error, never a different gallery */
    int ok_parse = 0;
    for (size_t cut = 0; cut < file.len; cut++)
        if (gallery_parse((const uint8_t *)file.data, cut, &h, err) == 0) ok_parse++, gallery_free(h);
    CHECK_MSG(ok_parse == 0, "%d truncations parsed", ok_parse);
    uint8_t *copy = malloc(file.len);
    int flips_parsed = 0;
    for (size_t i = 0; i < file.len; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(copy, file.data, file.len);
            copy[i] ^= (uint8_t)(1u << bit);
            int rc = gallery_parse(copy, file.len, &h, err);
            if (rc == 0) flips_parsed++, gallery_free(h);
            else CHECK(rc == FR_EINTEGRITY || rc == FR_EFORMAT || rc == FR_EUNSUPPORTED);
        }
    CHECK_MSG(flips_parsed == 0, "%d bit flips parsed", flips_parsed);
    /* a newer version says so */
    memcpy(copy, file.data, file.len);
    copy[6] = 2;
    CHECK(gallery_parse(copy, file.len, &h, err) == FR_EUNSUPPORTED && strstr(err, "version 2"));
    free(copy);
    CHECK(gallery_parse((const uint8_t *)"hello world, not a gallery", 26, &h, err) == FR_EFORMAT);
    buf_free(&file);

    CHECK(gallery_remove(g, "Ada Lovelace") == 0);
    CHECK(gallery_remove(g, "Ada Lovelace") == FR_ENOTFOUND);
    CHECK(gallery_people(g) == 1 && gallery_examples(g) == 1);
    gallery_search(g, c, &m);
    CHECK(m.name && !strcmp(m.name, "Grace Hopper"));
    gallery_free(g);

    /* search speed at 1k, 10k, 100k examples (2000 people of 50 examples at the top) */
    CHECK(gallery_new(&g) == 0);
    size_t sizes[] = {1000, 10000, 100000};
    size_t added = 0;
    for (int s = 0; s < 3; s++) {
        while (added < sizes[s]) {
            char name[32];
            snprintf(name, sizeof name, "person %zu", added / 50);
            unit(a);
            if (gallery_add(g, name, a, err)) break;
            added++;
        }
        unit(b);
        double t0 = now_ms();
        int reps = sizes[s] >= 100000 ? 20 : 200;
        for (int i = 0; i < reps; i++)
            gallery_search(g, b, &m);
        printf("search over %zu examples: %.3f ms\n", gallery_examples(g), (now_ms() - t0) / reps);
    }
    CHECK(gallery_examples(g) == 100000);
    gallery_free(g);
    return check_done();
}
