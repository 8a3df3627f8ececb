/* fuzz_image.c: libFuzzer target for image_decode() on arbitrary bytes.
 *
 *     make fuzz && build/fuzz/fuzz_image -max_len=262144 corpus/
 *
 * Small caps keep each run fast and within libFuzzer's memory limit; the decoders and the
 * EXIF parser see the same code paths as with the service's defaults. */
#include "vision/image.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct image_limits lim = {4096, 4096, 4 << 20, 4 << 20};
    struct image img = {0};
    char err[FR_ERR_LEN];
    if (image_decode(data, size, &lim, &img, err) == 0) {
        /* A decoded image is whole: touch its first and last bytes. */
        if (!img.px || img.w <= 0 || img.h <= 0 || (int64_t)img.w * img.h > lim.max_pixels) abort();
        volatile uint8_t sink = img.px[0];
        sink = img.px[(size_t)img.w * img.h * 3 - 1];
        (void)sink;
        image_free(&img);
    } else if (img.px || !err[0]) {
        abort();
    }
    return 0;
}
