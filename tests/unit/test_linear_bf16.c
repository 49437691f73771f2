/* The bf16 compute mode's products (src/model/linear_bf16.c, dnnl_matmul.c, bf16_tiles.c)
 * against a double-precision product of the same bf16-rounded operands, on whichever kernel this
 * CPU runs (oneDNN's, or the widening path where oneDNN has no bf16 matmul), with the weights as
 * mapped and, where oneDNN has a bf16 matmul, packed into its layout; the tile-layout kernels'
 * packing and blocks on every CPU (their plain C sums where the CPU has neither AMX nor
 * AVX512-BF16; DIFFSCOPE_BF16_KERNEL=avx512bf16 tests the dot products on an AMX CPU);
 * and the rounding of ds_f32_to_bf16 against hand-worked values. */
#include <float.h>
#include <omp.h>
#include "test.h"
#include "base/half.h"
#include "diffscope/error.h"
#include "diffscope/model.h"
#include "model/linear_bf16.h"

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

TEST(bf16_round_nearest_even) {
    CHECK(ds_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa, 1 */
    CHECK(ds_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "1 + 2^-8 -> %#x", ds_f32_to_bf16(1.0f + 0x1p-8f));
    /* 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up */
    CHECK(ds_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "1 + 3*2^-8 -> %#x", ds_f32_to_bf16(1.0f + 3 * 0x1p-8f));
    CHECK(ds_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "just above the tie rounds up");
    CHECK(ds_f32_to_bf16(-2.0f) == 0xc000, "-2");
    CHECK(ds_f32_to_bf16(INFINITY) == 0x7f80 && ds_f32_to_bf16(-INFINITY) == 0xff80, "infinities");
    CHECK(isnan(ds_bf16_to_f32(ds_f32_to_bf16(NAN))), "NaN stays NaN");
    CHECK(isnan(ds_bf16_to_f32(ds_f32_to_bf16(bits_to_f32(0x7f800001u)))), "a NaN with only low bits stays NaN");
    CHECK(ds_f32_to_bf16(FLT_MAX) == 0x7f80, "FLT_MAX rounds to inf (beyond bf16's largest finite)");
    CHECK(ds_f32_to_bf16(0x1p-130f) == 0x0008, "subnormal 2^-130 -> %#x", ds_f32_to_bf16(0x1p-130f));
}

/* A product of N rows through ds_linear_bf16, checked against double sums of bf16(x)·w + b.
 * The f32 sums may be ordered any way: each is within in·2^-24·Σ|x·w| of the exact one. The
 * check also fails when x is not rounded to bf16: that changes results by far more. */
enum { PLAIN, PACKED_DNNL, PACKED_TILES };
static const char *const pack_names[] = {"", ", packed for oneDNN", ", packed for the tile-layout kernel"};

static void check_product(int n, int in, int out, int threads, int packed) {
    float *x = malloc((size_t)n * in * sizeof *x), *b = malloc((size_t)out * sizeof *b);
    float *y1 = malloc((size_t)n * out * sizeof *y1), *y2 = malloc((size_t)n * out * sizeof *y2);
    uint16_t *w = malloc((size_t)out * in * sizeof *w);
    REQUIRE(x && b && y1 && y2 && w, "out of memory");
    unsigned seed = 12345u + (unsigned)(n * 7 + in * 13 + out);
    for (size_t i = 0; i < (size_t)n * in; i++) x[i] = (float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)out * in; i++)
        w[i] = ds_f32_to_bf16((float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f);
    for (int j = 0; j < out; j++) b[j] = 0.01f * (float)j;
    /* two products of the same x, as q/k/v or gate/up: the second without a bias */
    const int half = out / 2;
    ds_linear_out o[2] = {{.y = y1, .b = b, .out = half, .w16 = w},
                          {.y = y2, .b = NULL, .out = out - half, .w16 = w + (size_t)half * in}};
    uint16_t *p[2] = {NULL, NULL};
    for (int k = 0; k < 2 && packed; k++) {
        const int rc = packed == PACKED_TILES ? ds_tiles_pack(o[k].w16, in, o[k].out, &p[k])
                                            : ds_dnnl_bf16_pack(o[k].w16, in, o[k].out, &p[k]);
        REQUIRE(rc == 0, "%d x %d: packing failed", o[k].out, in);
        o[k].w16 = p[k];
    }
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    int rc = ds_linear_bf16(x, n, in, o, 2);
    omp_set_num_threads(before);
    ds_bf16_packed_free(p[0]);
    ds_bf16_packed_free(p[1]);
    REQUIRE(rc == 0, "ds_linear_bf16 failed: %s", ds_errmsg());
    double worst = 0, worst_unrounded = 0;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < out; j++) {
            double exact = j < half ? b[j] : 0, unrounded = exact, mag = 0;
            for (int i = 0; i < in; i++) {
                double xi = ds_bf16_to_f32(ds_f32_to_bf16(x[(size_t)t * in + i])), wi = ds_bf16_to_f32(w[(size_t)j * in + i]);
                exact += xi * wi;
                unrounded += (double)x[(size_t)t * in + i] * wi;
                mag += fabs(xi * wi);
            }
            double got = j < half ? y1[(size_t)t * half + j] : y2[(size_t)t * (out - half) + j - half];
            double bound = in * 0x1p-24 * mag + 1e-6;
            if (fabs(got - exact) / bound > worst) worst = fabs(got - exact) / bound;
            if (fabs(unrounded - exact) / bound > worst_unrounded) worst_unrounded = fabs(unrounded - exact) / bound;
        }
    CHECK(worst <= 1.0, "%d x %d x %d on %d threads%s: error %.3g of the f32 summation bound", n, in, out, threads,
          pack_names[packed], worst);
    CHECK(worst_unrounded > 4.0, "%d x %d x %d: unrounded x is only %.3g bounds away, the check could not tell", n, in,
          out, worst_unrounded);
    free(x), free(b), free(y1), free(y2), free(w);
}

/* rows, in, out: 130 and 257 rows run padded to 160 and 288 rows where oneDNN runs them */
static const int shapes[][3] = {{1, 64, 40}, {1, 300, 260}, {3, 96, 130}, {130, 64, 300}, {257, 200, 96}};

TEST(bf16_products_match_double) {
    printf("# bf16 kernel: %s (implementation: %s)\n", ds_bf16_kernel(), ds_bf16_impl());
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int threads = 1; threads <= 2; threads++) check_product(shapes[i][0], shapes[i][1], shapes[i][2], threads, 0);
}

/* The same products with the weights packed once (what the model loader does on such a CPU):
 * one layout, the one oneDNN asks for at 512 rows, at every row count. */
TEST(bf16_packed_products_match_double) {
    uint16_t w[64 * 40] = {0}, *p;
    const int rc = ds_dnnl_bf16_pack(w, 64, 40, &p);
    ds_dnnl_bf16_free(p);
    if (rc == 1) SKIP("nothing to pack for on this CPU (bf16 kernel: %s)", ds_bf16_kernel());
    REQUIRE(rc == 0, "packing failed: %s", ds_errmsg());
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_product(shapes[i][0], shapes[i][1], shapes[i][2], 2, PACKED_DNNL);
}

/* The tile-layout kernel's packing, padding, row chunks and feature panels on every CPU: shapes
 * that are not multiples of 32 in any direction, and ones that span several chunks and panels
 * (1100 KB of rounded rows make a chunk: 256 rows up to 2176 inputs). */
static const int amx_shapes[][3] = {{1, 64, 40}, {3, 96, 130}, {33, 70, 45}, {130, 64, 300}, {300, 256, 290}};

TEST(tiles_products_match_double) {
    printf("# tile-layout kernel: %s\n", ds_tiles_ready() ? ds_tiles_kernel() : "none on this CPU: its plain C sums");
    for (size_t i = 0; i < sizeof amx_shapes / sizeof amx_shapes[0]; i++)
        for (int threads = 1; threads <= 2; threads++)
            check_product(amx_shapes[i][0], amx_shapes[i][1], amx_shapes[i][2], threads, PACKED_TILES);
}

/* Each value of the tile-layout kernel is one sum in input order: the same bits on 1 and 2
 * threads, and within a few f32 roundings of the plain C sums (TDPBF16PS and VDPBF16PS may add
 * a pair of products in another order). */
TEST(tiles_products_do_not_depend_on_threads) {
    const int n = 300, in = 256, out = 290;
    float *x = malloc((size_t)n * in * sizeof *x), *y[3];
    uint16_t *w = malloc((size_t)out * in * sizeof *w), *p = NULL;
    for (int k = 0; k < 3; k++) y[k] = malloc((size_t)n * out * sizeof *y[k]);
    REQUIRE(x && w && y[0] && y[1] && y[2], "out of memory");
    unsigned seed = 99u;
    for (size_t i = 0; i < (size_t)n * in; i++) x[i] = (float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)out * in; i++)
        w[i] = ds_f32_to_bf16((float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f);
    REQUIRE(ds_tiles_pack(w, in, out, &p) == 0, "packing failed: %s", ds_errmsg());
    const int before = omp_get_max_threads();
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        ds_linear_out o = {.y = y[k], .out = out, .w16 = p};
        omp_set_num_threads(k + 1);
        rc |= ds_tiles_products(x, n, in, &o, 1);
    }
    ds_linear_out o = {.y = y[2], .out = out, .w16 = p};
    rc |= ds_tiles_products_scalar(x, n, in, &o, 1);
    omp_set_num_threads(before);
    ds_bf16_packed_free(p);
    REQUIRE(rc == 0, "a product failed: %s", ds_errmsg());
    CHECK(!memcmp(y[0], y[1], (size_t)n * out * sizeof *y[0]), "1 and 2 threads differ");
    double worst = 0;
    for (size_t i = 0; i < (size_t)n * out; i++) worst = fmax(worst, fabs((double)y[0][i] - y[2][i]));
    CHECK(worst <= 1e-5, "the kernel and the plain C sums differ by %.3g", worst);
    free(x), free(w), free(y[0]), free(y[1]), free(y[2]);
}

/* The plain C kernel's sums, one f32 accumulator a value adding each pair of products in input
 * order (the padding's zeros included), are what the tile-layout driver must give bit for bit:
 * 70 rows and 100 features leave partial blocks at both edges, 600 inputs a partial tile. */
TEST(tiles_plain_sums_are_one_sum_in_input_order) {
    const int n = 70, in = 600, out = 100, padded = (in + 31) / 32 * 32;
    float *x = malloc((size_t)n * in * sizeof *x), *y = malloc((size_t)n * out * sizeof *y);
    uint16_t *w = malloc((size_t)out * in * sizeof *w), *p = NULL;
    REQUIRE(x && y && w, "out of memory");
    unsigned seed = 7u;
    for (size_t i = 0; i < (size_t)n * in; i++) x[i] = (float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f;
    for (size_t i = 0; i < (size_t)out * in; i++)
        w[i] = ds_f32_to_bf16((float)((seed = seed * 1103515245u + 12345u) >> 8) / 16777216.0f - 0.5f);
    REQUIRE(ds_tiles_pack(w, in, out, &p) == 0, "packing failed: %s", ds_errmsg());
    ds_linear_out o = {.y = y, .out = out, .w16 = p};
    const int rc = ds_tiles_products_scalar(x, n, in, &o, 1);
    ds_bf16_packed_free(p);
    REQUIRE(rc == 0, "the product failed: %s", ds_errmsg());
    int differ = 0;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < out; j++) {
            float acc = 0.0f;
            for (int i = 0; i < padded; i += 2) {
                const float x0 = i < in ? ds_bf16_to_f32(ds_f32_to_bf16(x[(size_t)t * in + i])) : 0.0f;
                const float x1 = i + 1 < in ? ds_bf16_to_f32(ds_f32_to_bf16(x[(size_t)t * in + i + 1])) : 0.0f;
                const float w0 = i < in ? ds_bf16_to_f32(w[(size_t)j * in + i]) : 0.0f;
                const float w1 = i + 1 < in ? ds_bf16_to_f32(w[(size_t)j * in + i + 1]) : 0.0f;
                acc += x0 * w0 + x1 * w1;
            }
            differ += memcmp(&acc, &y[(size_t)t * out + j], sizeof acc) != 0;
        }
    CHECK(differ == 0, "%d of %d values differ from one sum in input order", differ, n * out);
    free(x), free(y), free(w);
}

int main(void) {
    RUN(bf16_round_nearest_even);
    RUN(bf16_products_match_double);
    RUN(bf16_packed_products_match_double);
    RUN(tiles_products_match_double);
    RUN(tiles_products_do_not_depend_on_threads);
    RUN(tiles_plain_sums_are_one_sum_in_input_order);
    return test_summary();
}
