/* Products of the bf16 compute mode: y = x · Wᵀ (+ b) with W held as bf16 [out, in], x rounded
 * to bf16 (nearest even), products accumulated in f32: what PyTorch's bf16 nn.Linear computes
 * on a CPU, before it rounds y to bf16 (y stays f32 here).
 *
 * diffscope's own kernels run them where the CPU has AMX or AVX512-BF16 (bf16_tiles.c), oneDNN
 * where it has a bf16 matmul otherwise (other AVX-512 CPUs, or any with
 * DIFFSCOPE_BF16_KERNEL=onednn). Elsewhere each block of
 * DS_TILE_FEATS rows of W is widened to f32 in the thread's scratch and multiplied by OpenBLAS
 * sgemm against the rounded x: the same operands, so the same products up to the order of the
 * f32 additions (a bf16 × bf16 product is exact in f32), at f32 speed but with half the
 * memory. Those blocks are fixed by the shapes, so that path's results do not depend on the
 * thread count; oneDNN's threading gives no such promise. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "base/half.h"
#include "diffscope/error.h"
#include "model/linear_bf16.h"

static inline float widen(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}

/* One product on the widening path, for N rows: XR is x already rounded to bf16 values. */
static void widened_product(const float *xr, int n, int in, const ds_linear_out *o, int j0, int nj, float *wf) {
    const uint16_t *w = o->w16 + (size_t)j0 * in;
    if (n == 1) { /* decoding: one pass over the bf16 weights, at memory speed */
        for (int j = 0; j < nj; j++) {
            const uint16_t *row = w + (size_t)j * in;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int i = 0; i < in; i++) acc += xr[i] * widen(row[i]);
            o->y[j0 + j] = acc;
        }
        return;
    }
    for (size_t i = 0; i < (size_t)nj * in; i++) wf[i] = widen(w[i]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nj, in, 1.0f, xr, in, wf, in, 0.0f, o->y + j0, o->out);
}

static int widened_products(const uint16_t *xb, int n, int in, const ds_linear_out *outs, int count) {
    const int threads = omp_get_max_threads();
    float *xr = malloc((size_t)n * in * sizeof *xr);
    float *wf = n > 1 ? malloc((size_t)threads * DS_TILE_FEATS * in * sizeof *wf) : NULL;
    if (!xr || (n > 1 && !wf)) {
        free(xr);
        free(wf);
        return ds_failc(DS_ERR_NOMEM, "out of memory for a bf16 product (%d x %d)", n, in);
    }
    for (size_t i = 0; i < (size_t)n * in; i++) xr[i] = widen(xb[i]);
    int first[DS_LINEAR_MAX + 1] = {0};
    size_t work = 0;
    for (int i = 0; i < count; i++) {
        first[i + 1] = first[i] + (outs[i].out + DS_TILE_FEATS - 1) / DS_TILE_FEATS;
        work += (size_t)n * in * outs[i].out;
    }
    /* OpenBLAS threads a call made outside a parallel region in its own split: serial tiles
     * run with the count at 1, as in linear.c. */
    const int par = work >= DS_PAR_MIN;
    if (!par) omp_set_num_threads(1);
#pragma omp parallel for schedule(dynamic) if (par)
    for (int k = 0; k < first[count]; k++) {
        int i = 0;
        while (k >= first[i + 1]) i++;
        const int j0 = (k - first[i]) * DS_TILE_FEATS, nj = outs[i].out - j0 < DS_TILE_FEATS ? outs[i].out - j0 : DS_TILE_FEATS;
        widened_product(xr, n, in, &outs[i], j0, nj, wf ? wf + (size_t)omp_get_thread_num() * DS_TILE_FEATS * in : NULL);
    }
    if (!par) omp_set_num_threads(threads);
    free(xr);
    free(wf);
    return 0;
}

/* y[t, :] += b for every row of one product. */
static void add_bias(const ds_linear_out *o, int n) {
    const size_t total = (size_t)n * o->out;
#pragma omp parallel for schedule(static) if (total >= DS_PAR_MIN)
    for (size_t e = 0; e < total; e++) o->y[e] += o->b[e % (size_t)o->out];
}

void ds_bf16_packed_free(uint16_t *packed) {
    if (!ds_tiles_free(packed)) ds_dnnl_bf16_free(packed);
}

int ds_linear_bf16(const float *x, int n, int in, const ds_linear_out *outs, int count) {
    if (ds_tiles_is_packed(outs[0].w16)) {
        int rc = ds_tiles_products(x, n, in, outs, count);
        for (int i = 0; i < count && !rc; i++)
            if (outs[i].b) add_bias(&outs[i], n);
        return rc;
    }
    const size_t nx = (size_t)n * in;
    uint16_t *xb = malloc(nx * sizeof *xb);
    if (!xb) return ds_failc(DS_ERR_NOMEM, "out of memory for a bf16 product (%d x %d)", n, in);
#pragma omp parallel for simd schedule(static) if (nx >= DS_PAR_MIN)
    for (size_t i = 0; i < nx; i++) xb[i] = ds_f32_to_bf16(x[i]);
    /* oneDNN has a bf16 matmul for every shape on a CPU or for none (1) */
    int rc = ds_dnnl_bf16_matmul(outs[0].y, xb, outs[0].w16, n, in, outs[0].out);
    const int widened = rc == 1;
    if (widened) rc = widened_products(xb, n, in, outs, count);
    for (int i = 1; i < count && !widened && !rc; i++) rc = ds_dnnl_bf16_matmul(outs[i].y, xb, outs[i].w16, n, in, outs[i].out);
    free(xb);
    if (rc > 0) rc = ds_failc(DS_ERR_INTERNAL, "oneDNN ran one bf16 product of a step but not the next");
    for (int i = 0; i < count && !rc; i++)
        if (outs[i].b) add_bias(&outs[i], n);
    return rc;
}
