/* ds_expf: e^x in float32 that the compiler vectorises (under `#pragma omp simd`), for the
 * softmax and SiLU loops, where glibc's scalar expf took a third of the attention time.
 *
 * Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-7 polynomial, 2^n put
 * into the exponent bits. Error ≤ 1 ulp over the normal range (tests/unit/test_vec_exp.c checks
 * it against libm's double exp). Results that would be subnormal (x < -87.34) are 0, and
 * x > 88 gives +inf (e^88..e^88.72 is still finite in float32; nothing here needs it), NaN
 * gives NaN. The clamp is written so that NaN (which fails every comparison) becomes a finite
 * number before the float-to-int conversion and the exponent shift, both undefined for NaN and
 * for the negative values NaN would give; the result is then replaced by x itself.
 *
 * Every choice is a bit mask (ds_select), not `c ? a : b`: GCC (12, -O2) turns those into
 * branches around the arithmetic it may not run speculatively (floating point can trap), and
 * a loop with branches is not vectorised; the masks give the same bits for every input. */
#ifndef DIFFSCOPE_VEC_EXP_H
#define DIFFSCOPE_VEC_EXP_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* COND ? A : B without a branch. */
static inline float ds_select(int cond, float a, float b) {
    uint32_t ua, ub, mask = -(uint32_t)(cond != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & mask) | (ub & ~mask);
    memcpy(&a, &ua, sizeof a);
    return a;
}

static inline float ds_expf(float x) {
    const float hi = 88.0f, lo = -87.33654475f;
    float xc = ds_select(x < hi, x, hi); /* NaN -> hi */
    xc = ds_select(xc > lo, xc, lo);
    /* round(xc / ln2) by the 1.5·2^23 trick, which needs no rounding-mode call */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f - n * -2.12194440e-4f; /* ln2 in two parts: r is exact */
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = ds_select(x < lo, 0.0f, p * scale);
    y = ds_select(x > hi, INFINITY, y);
    return ds_select(x == x, y, x);
}

#endif
