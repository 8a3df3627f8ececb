/* fuzz_gallery: the gallery file parser. Each input is parsed twice: as it is (the checks before
 * and of the checksum), and with its last four bytes replaced by the right CRC-32 (everything
 * after the checksum, which random bytes would otherwise never reach). Whatever parses must
 * serialise back to the same bytes, search sanely, and survive a removal and a second round trip.
 *   make fuzz && build/fuzz/fuzz_gallery -max_len=8192 -max_total_time=180 DIR_OF_SEEDS */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gallery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void check(const uint8_t *data, size_t size)
{
    char err[FR_ERR_LEN];
    memset(err, 'x', sizeof err);
    struct gallery *g = (struct gallery *)(uintptr_t)1; /* must become NULL on failure */
    int rc = gallery_parse(data, size, &g, err);
    if (rc) { /* a code, no gallery, and a message */
        if (g || rc >= 0 || !memchr(err, 0, sizeof err) || !err[0]) abort();
        return;
    }
    struct buf b;
    buf_init(&b, size + 16);
    if (gallery_serialize(g, &b) != 0 || b.len != size || memcmp(b.data, data, size) != 0) abort();

    /* search: a unit query; at most k distinct people, best first, all real */
    float q[GALLERY_DIM] = {0};
    q[size % GALLERY_DIM] = 1.0f;
    struct gallery_match best, top[3];
    gallery_search(g, q, &best);
    int n = gallery_search_top(g, q, -1.0f, top, 3);
    int people = gallery_people(g);
    if (n != (people < 3 ? people : 3)) abort();
    if ((people == 0) != (best.name == NULL)) abort();
    for (int i = 0; i < n; i++) {
        if (!gallery_name_valid(top[i].name) || gallery_examples_of(g, top[i].name) < 1) abort();
        if (!(top[i].similarity >= -1.01f && top[i].similarity <= 1.01f)) abort();
        if (i && (top[i].similarity > top[i - 1].similarity || top[i].name == top[i - 1].name))
            abort();
    }
    if (n && (best.name != top[0].name || best.similarity != top[0].similarity)) abort();

    /* remove the first person: still a valid gallery, one fewer, and it round-trips */
    if (people) {
        size_t examples = gallery_examples(g);
        int ex = 0;
        char name[GALLERY_NAME_MAX + 1];
        strcpy(name, gallery_person(g, 0, &ex));
        if (gallery_remove(g, name) != 0 || gallery_people(g) != people - 1 ||
            gallery_examples(g) != examples - (size_t)ex || gallery_examples_of(g, name) != 0)
            abort();
        struct buf b2;
        buf_init(&b2, size + 16);
        struct gallery *h;
        if (gallery_serialize(g, &b2) != 0 ||
            gallery_parse((const uint8_t *)b2.data, b2.len, &h, err) != 0 ||
            gallery_people(h) != people - 1)
            abort();
        gallery_free(h);
        buf_free(&b2);
    }
    buf_free(&b);
    gallery_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    if (size < 8) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    uint32_t c = crc32_bitwise(fixed, size - 4);
    for (int i = 0; i < 4; i++)
        fixed[size - 4 + (size_t)i] = (uint8_t)(c >> (8 * i));
    check(fixed, size);
    free(fixed);
    return 0;
}
