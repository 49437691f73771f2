/* float32 <-> bfloat16 / float16 scalar conversions (IEEE round to nearest even). */
#ifndef DS_HALF_H
#define DS_HALF_H
#include <stdint.h>

float ds_bf16_to_f32(uint16_t h);   /* exact */
float ds_f16_to_f32(uint16_t h);    /* exact, subnormals included */
uint16_t ds_f32_to_f16(float f);    /* nearest even; overflow to inf, NaN stays NaN */

/* Nearest even, as PyTorch's and oneDNN's conversions; NaN stays NaN. Inline: the bf16 compute
 * path rounds every activation that enters a product (src/model/linear_bf16.c). */
static inline uint16_t ds_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(v.u >> 16 | 0x40);
    return (uint16_t)((v.u + 0x7fffu + (v.u >> 16 & 1)) >> 16);
}

#endif
