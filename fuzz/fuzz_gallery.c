/* fuzz_gallery: the gallery file parser; what parses must serialise back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gallery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[FR_ERR_LEN];
    struct gallery *g;
    if (gallery_parse(data, size, &g, err) != 0) return 0;
    struct buf b;
    buf_init(&b, size + 16);
    if (gallery_serialize(g, &b) != 0 || b.len != size || memcmp(b.data, data, size) != 0) abort();
    float q[GALLERY_DIM] = {1};
    struct gallery_match m;
    gallery_search(g, q, &m);
    buf_free(&b);
    gallery_free(g);
    return 0;
}
