/* The one matrix-product shape of the model: y = x · Wᵀ (+ b), through OpenBLAS sgemm. */
#include "model_internal.h"
#include <cblas.h>

void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    if (!b) return;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++)
        for (int j = 0; j < out; j++) y[(size_t)t * out + j] += b[j];
}
