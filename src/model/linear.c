/* The one matrix-product shape of the model: y = x · Wᵀ (+ b), through OpenBLAS sgemm.
 *
 * Each product is cut into tiles of rows × output features, each tile one single-threaded
 * sgemm, shared among our OpenMP threads. Products that read the same x (q, k and v; gate and
 * up) share one parallel loop, so the small ones fill the gaps of the big ones and the threads
 * meet at one barrier.
 *
 * Invariant: the tiles depend on the shapes alone (n, in, out), never on the thread count or
 * the cores the process may run on. With OpenBLAS's kernels any change of the tiles changes
 * the float rounding (cutting a product in two, in rows or in features, does), and so does
 * OpenBLAS's own threading; fixed tiles make the results bit-identical for every --threads,
 * every CPU affinity and every machine that runs the same OpenBLAS kernel. */
#include "model/internal.h"
#include <cblas.h>
#include <omp.h>

static void product_tile(const float *x, int in, const ds_linear_out *o, int r0, int nr, int j0, int nj) {
    if (nr == 1) /* decoding: a matrix-vector product streams the weights at memory speed */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nj, in, 1.0f, o->w + (size_t)j0 * in, in, x + (size_t)r0 * in, 1,
                    0.0f, o->y + (size_t)r0 * o->out + j0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nj, in, 1.0f, x + (size_t)r0 * in, in,
                    o->w + (size_t)j0 * in, in, 0.0f, o->y + (size_t)r0 * o->out + j0, o->out);
}

void ds_linear_tiled(const float *x, int n, int in, const ds_linear_out *outs, int count, int tile_rows,
                     int tile_feats) {
    /* first[i]: index of product i's first tile in the flat list of all tiles. Within a
     * product the row tiles of one feature block are neighbours, so the threads that take
     * them at about the same time share that block of W in the cache. */
    int rt = (n + tile_rows - 1) / tile_rows, ft[DS_LINEAR_MAX], first[DS_LINEAR_MAX + 1] = {0};
    size_t work = 0;
    for (int i = 0; i < count; i++) {
        ft[i] = (outs[i].out + tile_feats - 1) / tile_feats;
        first[i + 1] = first[i] + ft[i] * rt;
        work += (size_t)n * in * outs[i].out;
    }
    /* OpenBLAS's OpenMP build threads a call made outside an active parallel region over
     * omp_get_max_threads() threads (matrix-vector products from 9216 elements), in a split
     * that rounds differently: serial tiles run with that count at 1. */
    const int par = work >= DS_PAR_MIN, threads = omp_get_max_threads();
    if (!par) omp_set_num_threads(1);
#pragma omp parallel for schedule(dynamic) if (par)
    for (int k = 0; k < first[count]; k++) {
        int i = 0;
        while (k >= first[i + 1]) i++;
        const int f = (k - first[i]) / rt, r = (k - first[i]) % rt;
        const int r0 = r * tile_rows, j0 = f * tile_feats, out = outs[i].out;
        product_tile(x, in, &outs[i], r0, n - r0 < tile_rows ? n - r0 : tile_rows, j0,
                     out - j0 < tile_feats ? out - j0 : tile_feats);
    }
    if (!par) omp_set_num_threads(threads);
    for (int i = 0; i < count; i++) {
        const ds_linear_out *o = &outs[i];
        if (!o->b) continue;
#pragma omp parallel for schedule(static) if ((size_t)n * o->out >= DS_PAR_MIN)
        for (int t = 0; t < n; t++)
            for (int j = 0; j < o->out; j++) o->y[(size_t)t * o->out + j] += o->b[j];
    }
}

/* Tile shapes {rows, features}, largest first; at equal size taller rows come first, since
 * each row tile re-packs its block of weights from memory, and each feature tile its rows of x
 * from the cache. */
static const int tile_shapes[][2] = {{512, 256}, {512, 128}, {256, 256}, {256, 128}, {128, 256}, {128, 128}};

void ds_linear_shared(const float *x, int n, int in, const ds_linear_out *outs, int count) {
    const size_t nshapes = sizeof tile_shapes / sizeof *tile_shapes;
    size_t s = 0;
    for (; s + 1 < nshapes; s++) {
        const int rows = tile_shapes[s][0], feats = tile_shapes[s][1];
        size_t tiles = 0;
        for (int i = 0; i < count; i++) tiles += (size_t)((outs[i].out + feats - 1) / feats) * ((n + rows - 1) / rows);
        if (tiles >= DS_TILE_MIN_COUNT) break;
    }
    const int rows = tile_shapes[s][0];
    ds_linear_tiled(x, n, in, outs, count, n < rows ? n : rows, tile_shapes[s][1]);
}

void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    ds_linear_out o = {.y = y, .w = w, .b = b, .out = out};
    ds_linear_shared(x, n, in, &o, 1);
}
