/* The one matrix-product shape of the model: y = x · Wᵀ (+ b), through OpenBLAS sgemm.
 *
 * The output features are cut into blocks of a fixed width, each one single-threaded sgemm,
 * shared among our OpenMP threads. OpenBLAS's own threading (and even the kernel it picks)
 * depends on the thread count and the matrix size, which changes float rounding; a fixed
 * partition makes the result bit-identical whatever --threads is. */
#include "model_internal.h"
#include <cblas.h>

/* Output features per sgemm call: out/8 rounded up to a multiple of 64 (at least 64). Each
 * call re-packs all of x, so wider blocks cost less: 64-wide blocks took 10 % longer than
 * 256-wide ones on one thread, and out/16 blocks made a 512-token kajuma-llama prefill 5 %
 * slower than out/8 on two threads (7.6-8.2 s against 7.2-7.5 s, three runs each). Eight
 * blocks still share out among up to 8 threads. The width depends only on the shape, never on
 * the thread count: a width that followed the thread count changed the rounding (logits of 1
 * and 2 threads then differed by 2e-5). Blocks are handed out dynamically, so a thread slowed
 * by another process does not hold the others back. */
static int block_width(int out) {
    int w = (out / 8 + 63) / 64 * 64;
    return w < 64 ? 64 : w;
}

void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    const int bw = block_width(out), nblocks = (out + bw - 1) / bw;
#pragma omp parallel for schedule(dynamic) if ((size_t)n * in * out >= DS_PAR_MIN)
    for (int k = 0; k < nblocks; k++) {
        int j0 = k * bw, nj = out - j0 < bw ? out - j0 : bw;
        if (n == 1) /* decoding: a matrix-vector product streams the weights at memory speed */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, nj, in, 1.0f, w + (size_t)j0 * in, in, x, 1, 0.0f, y + j0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nj, in, 1.0f, x, in, w + (size_t)j0 * in, in, 0.0f,
                        y + j0, out);
    }
    if (!b) return;
#pragma omp parallel for schedule(static) if ((size_t)n * out >= DS_PAR_MIN)
    for (int t = 0; t < n; t++)
        for (int j = 0; j < out; j++) y[(size_t)t * out + j] += b[j];
}
