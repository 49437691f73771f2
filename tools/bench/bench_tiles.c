/* GEMM tile sizes: one decoder layer's products (q, k, v together; o; gate and up together;
 * down) through ds_linear_tiled with each tile size, on all threads, next to OpenBLAS's own
 * threaded sgemm of the same FLOPs. Prints one JSON object per line.
 *
 *   bench_tiles [TOKENS [D KV_WIDTH FF [REPS]]]     (default: the kajuma shape at 512 tokens)
 *
 * The weights (one layer's, larger than any cache) are in 2 MiB pages like the model's, so the
 * tiles stream them from memory as a real prefill does. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include "model/internal.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *huge_floats(size_t n) {
    const size_t huge = (size_t)2 << 20, bytes = (n * sizeof(float) + huge - 1) / huge * huge;
    float *p = aligned_alloc(huge, bytes);
    if (!p) exit(3);
    madvise(p, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

typedef struct {
    int T, D, KV, FF;
    float *x, *h, *wq, *wk, *wv, *wo, *wg, *wu, *wd, *q, *k, *v, *o, *g, *u, *y;
} layer;

/* One layer's products with the given tiles, each tile a call of its own (0: OpenBLAS's own
 * threaded sgemm, whole; -1: the library's own choice, ds_linear_shared, which on OpenBLAS's
 * AVX-512 kernels runs neighbouring tiles as one call). */
static void run_layer(layer *L, int rows, int feats) {
    const ds_linear_out qkv[3] = {{.y = L->q, .w = L->wq, .out = L->D},
                                  {.y = L->k, .w = L->wk, .out = L->KV},
                                  {.y = L->v, .w = L->wv, .out = L->KV}};
    const ds_linear_out o[1] = {{.y = L->o, .w = L->wo, .out = L->D}};
    const ds_linear_out gu[2] = {{.y = L->g, .w = L->wg, .out = L->FF}, {.y = L->u, .w = L->wu, .out = L->FF}};
    const ds_linear_out down[1] = {{.y = L->y, .w = L->wd, .out = L->D}};
    struct { const float *x; int in; const ds_linear_out *o; int n; } steps[4] = {
        {L->x, L->D, qkv, 3}, {L->x, L->D, o, 1}, {L->x, L->D, gu, 2}, {L->h, L->FF, down, 1}};
    for (int s = 0; s < 4; s++) {
        if (rows < 0) {
            ds_linear_shared(steps[s].x, L->T, steps[s].in, steps[s].o, steps[s].n);
            continue;
        }
        if (rows) {
            ds_linear_tiled(steps[s].x, L->T, steps[s].in, steps[s].o, steps[s].n, rows, feats, 0);
            continue;
        }
        for (int i = 0; i < steps[s].n; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L->T, steps[s].o[i].out, steps[s].in, 1.0f,
                        steps[s].x, steps[s].in, steps[s].o[i].w, steps[s].in, 0.0f, steps[s].o[i].y,
                        steps[s].o[i].out);
    }
}

int main(int argc, char **argv) {
    layer L = {.T = argc > 1 ? atoi(argv[1]) : 512, .D = argc > 4 ? atoi(argv[2]) : 2048,
               .KV = argc > 4 ? atoi(argv[3]) : 512, .FF = argc > 4 ? atoi(argv[4]) : 8192};
    int reps = argc > 5 ? atoi(argv[5]) : 3;
    size_t T = L.T, D = L.D, KV = L.KV, FF = L.FF;
    L.x = huge_floats(T * D), L.h = huge_floats(T * FF);
    L.wq = huge_floats(D * D), L.wk = huge_floats(KV * D), L.wv = huge_floats(KV * D), L.wo = huge_floats(D * D);
    L.wg = huge_floats(FF * D), L.wu = huge_floats(FF * D), L.wd = huge_floats(D * FF);
    L.q = huge_floats(T * D), L.k = huge_floats(T * KV), L.v = huge_floats(T * KV), L.o = huge_floats(T * D);
    L.g = huge_floats(T * FF), L.u = huge_floats(T * FF), L.y = huge_floats(T * D);
    const double flops = 2.0 * T * D * (D + 2 * KV + D + 3 * FF);
    static const int sizes[][2] = {{0, 0},     {512, 64},  {512, 128}, {512, 256}, {256, 128}, {256, 256},
                                   {128, 64},  {128, 128}, {128, 256}, {128, 512}, {64, 128},  {64, 256},
                                   {64, 512},  {32, 256},  {-1, -1}};
    run_layer(&L, -1, -1); /* first touch */
    for (size_t c = 0; c < sizeof sizes / sizeof *sizes; c++) {
        double best = 1e30, t_all = now();
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            run_layer(&L, sizes[c][0], sizes[c][1]);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        double mean = (now() - t_all) / reps;
        int rows = sizes[c][0] > 0 ? sizes[c][0] : L.T, fw = sizes[c][1] > 0 ? sizes[c][1] : L.D;
        int rt = sizes[c][0] < 0 ? 0 : (L.T + rows - 1) / rows; /* the library's choice: counts not shown */
        printf("{\"threads\": %d, \"tokens\": %d, \"tile_rows\": %d, \"tile_feats\": %d, \"tiles_o\": %d, "
               "\"tiles_qkv\": %d, \"gflops_mean\": %.1f, \"gflops_best\": %.1f}\n",
               omp_get_max_threads(), L.T, sizes[c][0], sizes[c][1], rt * ((L.D + fw - 1) / fw),
               rt * ((L.D + fw - 1) / fw + 2 * ((L.KV + fw - 1) / fw)), flops / mean / 1e9, flops / best / 1e9);
        fflush(stdout);
    }
    return 0;
}
