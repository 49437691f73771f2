/* The one matrix-product shape of the model: y = x · Wᵀ (+ b), through OpenBLAS sgemm.
 *
 * Each product is cut into tiles of rows × output features, shared among our OpenMP threads,
 * each tile computed by a single-threaded sgemm. Products that read the same x (q, k and v;
 * gate and up) share one parallel loop, so the small ones fill the gaps of the big ones and the
 * threads meet at one barrier.
 *
 * Invariant: the tiles depend on the shapes alone (n, in, out), never on the thread count or
 * the cores the process may run on, and every output is rounded as its tile's own sgemm call
 * rounds it. So the results are bit-identical for every --threads, every CPU affinity and every
 * machine that runs the same OpenBLAS kernel. With OpenBLAS's Haswell and Zen kernels any other
 * cut changes the rounding (cutting a product in two, in rows or in features, does), and so
 * does OpenBLAS's own threading: each tile is one call. Its AVX-512 kernels round each output
 * the same however the product is cut into calls, small-matrix calls aside: there a thread runs
 * neighbouring tiles as one call, and on few threads these larger calls pack x and W fewer
 * times (docs/performance.md, "Tiles and determinism"). */
#include "model/internal.h"
#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>
#include <strings.h>

static void product_tile(const float *x, int in, const ds_linear_out *o, int r0, int nr, int j0, int nj) {
    if (nr == 1) /* decoding: a matrix-vector product streams the weights at memory speed */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nj, in, 1.0f, o->w + (size_t)j0 * in, in, x + (size_t)r0 * in, 1,
                    0.0f, o->y + (size_t)r0 * o->out + j0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nj, in, 1.0f, x + (size_t)r0 * in, in,
                    o->w + (size_t)j0 * in, in, 0.0f, o->y + (size_t)r0 * o->out + j0, o->out);
}

/* OpenBLAS's kernels whose sum for each output does not depend on how a product is cut into
 * calls, as long as no call is small enough for their small-matrix path: on these, threads
 * may run neighbouring tiles as one call and get the tiles' bits. Not so on Haswell and Zen,
 * whose sums change with the cut. tests/unit/test_linear_cuts.c checks the kernel in use. */
static const char *const cut_free_kernels[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
/* Products of fewer multiply-adds than this may take a kernel's small-matrix path, which sums
 * in another order: their tiles always run one call each. */
#define SMALL_CALL_MACS ((size_t)4 << 20)
/* Groups of tiles per thread in a loop's largest product: fewer and larger calls pack x and W
 * fewer times, more groups let the other threads take over from a core that falls behind. On a
 * few threads the packing weighs more; on many, a slow core can hold up the rest
 * (docs/performance.md, "Tiles and determinism"). The groups change no bits, only the speed. */
static int groups_per_thread(int threads) { return threads <= 4 ? 2 : 4; }

char *openblas_get_corename(void);

int ds_linear_kernel_is_cut_free(void) {
    static _Atomic int known; /* 0 unknown, 1 no, 2 yes: racing first readers store the same */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (!k) {
        const char *core = openblas_get_corename();
        k = 1;
        for (size_t i = 0; core && i < sizeof cut_free_kernels / sizeof *cut_free_kernels; i++)
            if (!strcasecmp(core, cut_free_kernels[i])) k = 2;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 2;
}

/* One product's tiles, rt row tiles × ft feature tiles, run in groups of gr × gf tiles. */
typedef struct {
    int rt, ft, gr, gf;
} tile_grid;

static int tiles_of(int n, int out, int tile_rows, int tile_feats) {
    return ((n + tile_rows - 1) / tile_rows) * ((out + tile_feats - 1) / tile_feats);
}

/* LOOP_TILES: the tiles of the loop's largest product. Its groups set the group size for all
 * of the loop's products, so that a small one (k and v beside q) is not cut into as many calls
 * as the large one, each re-packing all of x: the large product's groups already leave the
 * threads enough pieces to share. */
static tile_grid grid_of(int n, int in, int out, int tile_rows, int tile_feats, int threads, int merge,
                         int loop_tiles) {
    tile_grid g = {(n + tile_rows - 1) / tile_rows, (out + tile_feats - 1) / tile_feats, 1, 1};
    /* the smallest tile is the last one in both directions */
    const size_t last_macs = (size_t)(n - (g.rt - 1) * tile_rows) * (out - (g.ft - 1) * tile_feats) * in;
    const int last_rows = n - (g.rt - 1) * tile_rows, per_group = loop_tiles / (threads * groups_per_thread(threads));
    /* a single row is a matrix-vector product (product_tile), which sums in its own order */
    if (!merge || last_rows == 1 || last_macs < SMALL_CALL_MACS || per_group < 2) return g;
    /* all rows of a block of features first: x's rows are packed once per call */
    if (per_group >= g.rt) g.gr = g.rt, g.gf = per_group / g.rt;
    else g.gr = per_group;
    return g;
}

void ds_linear_tiled(const float *x, int n, int in, const ds_linear_out *outs, int count, int tile_rows,
                     int tile_feats, int merge) {
    size_t work = 0;
    for (int i = 0; i < count; i++) work += (size_t)n * in * outs[i].out;
    /* OpenBLAS's OpenMP build threads a call made outside an active parallel region over
     * omp_get_max_threads() threads (matrix-vector products from 9216 elements), in a split
     * that rounds differently: serial tiles run with that count at 1. */
    const int par = work >= DS_PAR_MIN, threads = omp_get_max_threads();
    /* first[i]: index of product i's first group in the flat list of all groups. Within a
     * product the row groups of one feature block are neighbours, so the threads that take
     * them at about the same time share that block of W in the cache. */
    tile_grid grid[DS_LINEAR_MAX];
    int rgroups[DS_LINEAR_MAX], first[DS_LINEAR_MAX + 1] = {0};
    merge = merge && ds_linear_kernel_is_cut_free();
    int loop_tiles = 0;
    for (int i = 0; i < count; i++) {
        const int t = tiles_of(n, outs[i].out, tile_rows, tile_feats);
        loop_tiles = t > loop_tiles ? t : loop_tiles;
    }
    for (int i = 0; i < count; i++) {
        grid[i] = grid_of(n, in, outs[i].out, tile_rows, tile_feats, par ? threads : 1, merge, loop_tiles);
        rgroups[i] = (grid[i].rt + grid[i].gr - 1) / grid[i].gr;
        first[i + 1] = first[i] + rgroups[i] * ((grid[i].ft + grid[i].gf - 1) / grid[i].gf);
    }
    if (!par) omp_set_num_threads(1);
#pragma omp parallel for schedule(dynamic) if (par)
    for (int k = 0; k < first[count]; k++) {
        int i = 0;
        while (k >= first[i + 1]) i++;
        const tile_grid *g = &grid[i];
        const int f = (k - first[i]) / rgroups[i], r = (k - first[i]) % rgroups[i];
        const int r0 = r * g->gr * tile_rows, j0 = f * g->gf * tile_feats, out = outs[i].out;
        const int rows = g->gr * tile_rows, feats = g->gf * tile_feats;
        product_tile(x, in, &outs[i], r0, n - r0 < rows ? n - r0 : rows, j0, out - j0 < feats ? out - j0 : feats);
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
        for (int i = 0; i < count; i++) tiles += (size_t)tiles_of(n, outs[i].out, rows, feats);
        if (tiles >= DS_TILE_MIN_COUNT) break;
    }
    const int rows = tile_shapes[s][0];
    ds_linear_tiled(x, n, in, outs, count, n < rows ? n : rows, tile_shapes[s][1], 1);
}

void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    ds_linear_out o = {.y = y, .w = w, .b = b, .out = out};
    ds_linear_shared(x, n, in, &o, 1);
}
