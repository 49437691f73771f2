/* The products' tiles (src/model/linear.c). ds_linear_tiled gives every output the bits of its
 * tile's own sgemm call on 1, 2, 3 and 7 threads, whether or not OpenBLAS's kernel in use lets a
 * thread run neighbouring tiles as one call; and where the kernel is one that may
 * (ds_linear_kernel_is_cut_free), it rounds every output the same however whole tiles are
 * grouped into calls, on random shapes and groupings. tests/cli/test_linear_kernels.sh runs this
 * suite under each of OpenBLAS's kernels the CPU can run. */
#include <cblas.h>
#include <omp.h>
#include "test.h"
#include "model/internal.h"

char *openblas_get_corename(void);

static unsigned seed = 2024u;
static float next_value(void) {
    seed = seed * 1103515245u + 12345u;
    return (float)(seed >> 8) / 16777216.0f - 0.5f;
}

static float *random_floats(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = next_value();
    return p;
}

/* Rows r0.. and features j0.. of y = x·Wᵀ as one call, as linear.c makes it: a matrix-vector
 * product for a single row. Run with one OpenMP thread, so that OpenBLAS does not thread it. */
static void one_call(const float *x, const float *w, float *y, int in, int out, int r0, int nr, int j0, int nj) {
    if (nr == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, nj, in, 1.0f, w + (size_t)j0 * in, in, x + (size_t)r0 * in, 1, 0.0f,
                    y + (size_t)r0 * out + j0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nj, in, 1.0f, x + (size_t)r0 * in, in,
                    w + (size_t)j0 * in, in, 0.0f, y + (size_t)r0 * out + j0, out);
}

static void tile_by_tile(const float *x, const float *w, float *y, int n, int in, int out, int tr, int tf) {
    for (int r = 0; r < n; r += tr)
        for (int j = 0; j < out; j += tf) one_call(x, w, y, in, out, r, n - r < tr ? n - r : tr, j, out - j < tf ? out - j : tf);
}

static size_t differing(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(a + i, b + i, sizeof *a) != 0;
    return d;
}

/* Products of one x through ds_linear_tiled on several thread counts against each tile as its
 * own call. */
static void check_products(int n, int in, const int *outs, int count, int tr, int tf) {
    const int threads_before = omp_get_max_threads();
    float *x = random_floats((size_t)n * in), *w[DS_LINEAR_MAX], *ref[DS_LINEAR_MAX], *y[DS_LINEAR_MAX];
    REQUIRE(x, "out of memory");
    ds_linear_out o[DS_LINEAR_MAX];
    for (int i = 0; i < count; i++) {
        w[i] = random_floats((size_t)outs[i] * in);
        ref[i] = malloc((size_t)n * outs[i] * sizeof(float));
        y[i] = malloc((size_t)n * outs[i] * sizeof(float));
        REQUIRE(w[i] && ref[i] && y[i], "out of memory");
        o[i] = (ds_linear_out){.y = y[i], .w = w[i], .out = outs[i]};
    }
    omp_set_num_threads(1);
    for (int i = 0; i < count; i++) tile_by_tile(x, w[i], ref[i], n, in, outs[i], tr, tf);
    static const int thread_counts[] = {1, 2, 3, 7};
    for (size_t t = 0; t < sizeof thread_counts / sizeof *thread_counts; t++) {
        omp_set_num_threads(thread_counts[t]);
        for (int i = 0; i < count; i++) memset(y[i], 0xff, (size_t)n * outs[i] * sizeof(float));
        ds_linear_tiled(x, n, in, o, count, tr, tf, 1);
        for (int i = 0; i < count; i++) {
            const size_t d = differing(ref[i], y[i], (size_t)n * outs[i]);
            CHECK(!d, "%d × %d · (%d × %d)ᵀ, tiles %d × %d, %d threads: %zu of %zu outputs differ from the tiles' own calls",
                  n, in, outs[i], in, tr, tf, thread_counts[t], d, (size_t)n * outs[i]);
        }
    }
    omp_set_num_threads(threads_before);
    for (int i = 0; i < count; i++) free(w[i]), free(ref[i]), free(y[i]);
    free(x);
}

/* q, k and v of one x; merged into row and feature groups where the kernel allows */
TEST(tiles_qkv_any_threads) {
    const int outs[] = {1024, 256, 256};
    check_products(512, 512, outs, 3, 128, 128);
}

/* tails in both directions: 44 rows and 60 features in the last tiles */
TEST(tiles_with_tails_any_threads) {
    const int outs[] = {700};
    check_products(300, 2048, outs, 1, 128, 128);
}

/* gate and up: wide tiles, whole rows */
TEST(tiles_wide_any_threads) {
    const int outs[] = {1024, 1024};
    check_products(1024, 256, outs, 2, 512, 256);
}

/* a last row tile of one row is a matrix-vector product: never merged into a matrix product
 * (the inputs long enough for its tiles to pass the small-matrix size) */
TEST(tiles_single_row_tail) {
    const int outs[] = {256};
    check_products(129, 32768, outs, 1, 128, 128);
}

/* last tiles small enough for a kernel's small-matrix path (30 × 20 and 30 × 8), and products
 * too small to be parallel */
TEST(tiles_small) {
    const int outs[] = {148, 264};
    check_products(158, 256, outs, 2, 128, 128);
    const int tiny[] = {40};
    check_products(9, 32, tiny, 1, 128, 128);
}

/* The property linear.c relies on, checked for the kernel in use when it is listed: any
 * grouping of whole tiles into calls gives each output the same bits, as long as no tile is
 * under the small-matrix size and none is a single row. */
TEST(kernel_rounds_any_grouping) {
    const char *core = openblas_get_corename();
    printf("# OpenBLAS kernel %s: %s\n", core ? core : "?",
           ds_linear_kernel_is_cut_free() ? "neighbouring tiles may run as one call" : "every tile is a call of its own");
    if (!ds_linear_kernel_is_cut_free()) return; /* ds_linear_tiled does not merge: nothing relies on it */
    const int threads_before = omp_get_max_threads();
    omp_set_num_threads(1);
    static const int tile_shapes[][2] = {{128, 128}, {512, 256}, {64, 96}};
    int tried = 0;
    for (int c = 0; c < 40 && tried < 12 && !test_failed_now; c++) {
        const int tr = tile_shapes[c % 3][0], tf = tile_shapes[c % 3][1];
        const int in = 256 + (int)(seed % 1800), n = tr * (1 + (int)(seed >> 12) % 3) + 2 + (int)(seed >> 5) % tr;
        seed = seed * 1103515245u + 12345u;
        const int out = tf * (1 + (int)(seed >> 9) % 4) + 1 + (int)(seed >> 3) % tf;
        /* every tile, the last ones in both directions too, above the small-matrix size */
        const int last_r = n % tr ? n % tr : tr, last_f = out % tf ? out % tf : tf;
        if ((size_t)last_r * last_f * in < ((size_t)4 << 20) || last_r == 1) continue;
        tried++;
        float *x = random_floats((size_t)n * in), *w = random_floats((size_t)out * in);
        float *a = malloc((size_t)n * out * sizeof *a), *b = malloc((size_t)n * out * sizeof *b);
        REQUIRE(x && w && a && b, "out of memory");
        tile_by_tile(x, w, a, n, in, out, tr, tf);
        const int rt = (n + tr - 1) / tr, ft = (out + tf - 1) / tf;
        for (int r = 0; r < rt;) {
            int gr = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % rt;
            if (r + gr > rt) gr = rt - r;
            for (int f = 0; f < ft;) {
                int gf = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % ft;
                if (f + gf > ft) gf = ft - f;
                const int r0 = r * tr, j0 = f * tf;
                one_call(x, w, b, in, out, r0, (r + gr) * tr > n ? n - r0 : gr * tr, j0, (f + gf) * tf > out ? out - j0 : gf * tf);
                f += gf;
            }
            r += gr;
        }
        const size_t d = differing(a, b, (size_t)n * out);
        CHECK(!d, "kernel %s, %d × %d · (%d × %d)ᵀ, tiles %d × %d grouped at random: %zu of %zu outputs differ", core, n,
              in, out, in, tr, tf, d, (size_t)n * out);
        free(x), free(w), free(a), free(b);
    }
    CHECK(tried >= 12 || test_failed_now, "only %d random shapes had every tile above the small-matrix size", tried);
    omp_set_num_threads(threads_before);
}

int main(void) {
    RUN(tiles_qkv_any_threads);
    RUN(tiles_with_tails_any_threads);
    RUN(tiles_wide_any_threads);
    RUN(tiles_single_row_tail);
    RUN(tiles_small);
    RUN(kernel_rounds_any_grouping);
    return test_summary();
}
