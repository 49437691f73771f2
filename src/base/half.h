/* float32 <-> bfloat16 / float16 scalar conversions (IEEE round to nearest even). */
#ifndef DS_HALF_H
#define DS_HALF_H
#include <stdint.h>

float ds_bf16_to_f32(uint16_t h);   /* exact */
float ds_f16_to_f32(uint16_t h);    /* exact, subnormals included */
uint16_t ds_f32_to_f16(float f);    /* nearest even; overflow to inf, NaN stays NaN */

#endif
