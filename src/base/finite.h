/* Finding NaN and infinities in float arrays: the load-time weight check, the forward pass's
 * check of its output and the dump's check of each map (docs/reliability.md, "Non-finite
 * values"). */
#ifndef DIFFSCOPE_FINITE_H
#define DIFFSCOPE_FINITE_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Index of the first NaN or ±inf in X[0..n), or -1. x·0 is 0 for every finite x and NaN for
 * NaN and ±inf, so one vectorised sum answers "any?"; only then is the index searched. */
static inline int64_t ds_first_nonfinite(const float *x, size_t n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += x[i] * 0.0f;
    if (acc == 0.0f) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (int64_t)i;
    return -1;
}

/* "NaN", "inf" or "-inf", for messages. */
static inline const char *ds_nonfinite_name(float v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

#endif
