/* simd.h: what the engine's own kernels (kern.c, kern_chain.c, kern_small.c, kern_fc.c) share:
 * their target attributes, the vector width, PReLU on a vector, and float32 to bfloat16 for the
 * weights they pack. The bfloat16 paths run only where nn_kern_bf16_available() says so; every
 * CPU with AVX512_BF16 also has AVX512BW. */
#ifndef FR_NN_SIMD_H
#define FR_NN_SIMD_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))

#define LANES 16 /* floats per vector */

/* v where v >= 0, else v * slope (per lane). */
AVX512 INLINE __m512 prelu(__m512 v, __m512 slope)
{
    return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, slope);
}

/* Rounds to nearest even (weights only: they hold no NaNs, checked at load). */
static inline uint16_t nn_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
