/* The one matrix-product shape of the model: y = x · Wᵀ (+ b), through OpenBLAS sgemm.
 *
 * The output features are cut into blocks, each one single-threaded sgemm, shared among our
 * OpenMP threads. Products that read the same x (q, k and v; gate and up) share one parallel
 * loop, so the small ones fill the gaps of the big ones and the threads meet at one barrier.
 *
 * Invariant: the partition depends on the shape and on the number of cores the process may
 * run on (its CPU affinity), never on the thread count. With OpenBLAS's Haswell kernel any
 * change of the partition changes the float rounding (even cutting a product in two), and so
 * does OpenBLAS's own threading; a fixed partition makes the results bit-identical for every
 * --threads on one machine with the same affinity. */
#include "model/internal.h"
#include <cblas.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

/* The cores this process may run on (its CPU affinity, as `nproc` counts them), read once. */
static int machine_cores(void) {
    static _Atomic int cores; /* 0 until first read; racing first readers store the same value */
    int c = atomic_load_explicit(&cores, memory_order_relaxed);
    if (!c) {
        cpu_set_t set;
        long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
        c = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
        atomic_store_explicit(&cores, c, memory_order_relaxed);
    }
    return c;
}

/* Output features per sgemm call: one block per core, in multiples of 64, at least 256. Each
 * call re-packs all of x, so blocks should be wide. Measured on 2 cores, 512 tokens, sustained
 * GFLOP/s of one block per core against two: 190 against 180 for 2048 outputs (q, o), 190
 * against 187 for down_proj, 180 against 174 for k and v, 196 against 197 for gate and up.
 * The products that share x run in one loop, so q, k and v still make 6 blocks on 2 cores. */
static int block_width(int out) {
    int nblocks = machine_cores();
    int w = ((out + nblocks - 1) / nblocks + 63) / 64 * 64;
    return w < 256 ? 256 : w;
}

static void product_block(const float *x, int n, int in, const ds_linear_out *o, int j0, int nj) {
    if (n == 1) /* decoding: a matrix-vector product streams the weights at memory speed */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nj, in, 1.0f, o->w + (size_t)j0 * in, in, x, 1, 0.0f, o->y + j0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nj, in, 1.0f, x, in, o->w + (size_t)j0 * in, in,
                    0.0f, o->y + j0, o->out);
}

void ds_linear_shared(const float *x, int n, int in, const ds_linear_out *outs, int count) {
    /* first[i]: index of product i's first block in the flat list of all blocks */
    int bw[DS_LINEAR_MAX], first[DS_LINEAR_MAX + 1] = {0};
    size_t work = 0;
    for (int i = 0; i < count; i++) {
        bw[i] = block_width(outs[i].out);
        first[i + 1] = first[i] + (outs[i].out + bw[i] - 1) / bw[i];
        work += (size_t)n * in * outs[i].out;
    }
#pragma omp parallel for schedule(dynamic) if (work >= DS_PAR_MIN)
    for (int k = 0; k < first[count]; k++) {
        int i = 0;
        while (k >= first[i + 1]) i++;
        int j0 = (k - first[i]) * bw[i];
        product_block(x, n, in, &outs[i], j0, outs[i].out - j0 < bw[i] ? outs[i].out - j0 : bw[i]);
    }
    for (int i = 0; i < count; i++) {
        const ds_linear_out *o = &outs[i];
        if (!o->b) continue;
#pragma omp parallel for schedule(static) if ((size_t)n * o->out >= DS_PAR_MIN)
        for (int t = 0; t < n; t++)
            for (int j = 0; j < o->out; j++) o->y[(size_t)t * o->out + j] += o->b[j];
    }
}

void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    ds_linear_out o = {.y = y, .w = w, .b = b, .out = out};
    ds_linear_shared(x, n, in, &o, 1);
}
