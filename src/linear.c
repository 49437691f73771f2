/* The one matrix-product shape of the model: y = x · Wᵀ (+ b), through OpenBLAS sgemm.
 *
 * The output features are cut into blocks of a fixed width, each one single-threaded sgemm,
 * shared among our OpenMP threads. OpenBLAS's own threading (and even the kernel it picks)
 * depends on the thread count and the matrix size, which changes float rounding; a fixed
 * partition makes the result bit-identical whatever --threads is. */
#include "model_internal.h"
#include <cblas.h>

/* Output features per sgemm call: wide enough that re-packing x for every call stays cheap
 * (64 cost 10 % more than 256 on one thread), narrow enough that two threads share the
 * k/v projections of small models evenly. */
#define LINEAR_BLOCK 128

void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    int nblocks = (out + LINEAR_BLOCK - 1) / LINEAR_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)n * in * out >= DS_PAR_MIN)
    for (int k = 0; k < nblocks; k++) {
        int j0 = k * LINEAR_BLOCK, nj = out - j0 < LINEAR_BLOCK ? out - j0 : LINEAR_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nj, in, 1.0f, x, in, w + (size_t)j0 * in, in, 0.0f,
                    y + j0, out);
    }
    if (!b) return;
#pragma omp parallel for schedule(static) if ((size_t)n * out >= DS_PAR_MIN)
    for (int t = 0; t < n; t++)
        for (int j = 0; j < out; j++) y[(size_t)t * out + j] += b[j];
}
