/* bf16.h: float32 to bfloat16 for the kernels that pack weights (kern.c, kern_chain.c,
 * kern_small.c, kern_fc.c). */
#ifndef FR_NN_BF16_H
#define FR_NN_BF16_H

#include <stdint.h>
#include <string.h>

/* Rounds to nearest even (weights only: they hold no NaNs, checked at load). */
static inline uint16_t nn_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
