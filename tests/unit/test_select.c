/* Selection (src/base/select.h) against qsort: for every rank of arrays in random, sorted,
 * reversed, organ-pipe and few-distinct-values orders, the value of the rank is the sorted
 * array's, and the array is left partitioned around it. */
#include "test.h"
#include "base/select.h"

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { RANDOM, SORTED, REVERSED, ORGAN_PIPE, FEW_VALUES, ORDERS };
static const char *order_name[ORDERS] = {"random", "sorted", "reversed", "organ pipe", "few values"};

static double value(int order, size_t i, size_t n, unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    switch (order) {
    case RANDOM: return (double)(*seed >> 8) / 16777216.0 - 0.5;
    case SORTED: return (double)i;
    case REVERSED: return (double)(n - i);
    case ORGAN_PIPE: return (double)(i < n / 2 ? i : n - i);
    default: return (double)((*seed >> 16) % 3);
    }
}

/* Every rank of one array of N values in ORDER, both types; returns the failures. */
static int check_array(int order, size_t n) {
    float *f = malloc(n * sizeof *f), *fs = malloc(n * sizeof *fs), *fw = malloc(n * sizeof *fw);
    double *d = malloc(n * sizeof *d), *ds = malloc(n * sizeof *ds), *dw = malloc(n * sizeof *dw);
    int bad = 0;
    unsigned seed = (unsigned)(n * 31 + (size_t)order);
    for (size_t i = 0; i < n; i++) fs[i] = f[i] = (float)(d[i] = ds[i] = value(order, i, n, &seed));
    qsort(fs, n, sizeof *fs, cmp_f);
    qsort(ds, n, sizeof *ds, cmp_d);
    for (size_t k = 0; k < n && bad < 3; k++) {
        memcpy(fw, f, n * sizeof *f);
        memcpy(dw, d, n * sizeof *d);
        float vf = ds_select_float(fw, n, k);
        double vd = ds_select_double(dw, n, k);
        int ok = vf == fs[k] && vd == ds[k] && fw[k] == vf && dw[k] == vd;
        for (size_t i = 0; i < n && ok; i++)
            ok = (i < k ? fw[i] <= vf && dw[i] <= vd : fw[i] >= vf && dw[i] >= vd);
        if (!ok) {
            bad++;
            CHECK(0, "%s, n %zu, rank %zu: float %g (want %g), double %g (want %g), or not partitioned",
                  order_name[order], n, k, vf, fs[k], vd, ds[k]);
        }
    }
    free(f), free(fs), free(fw), free(d), free(ds), free(dw);
    return bad;
}

TEST(select_every_rank_against_qsort) {
    static const size_t sizes[] = {1, 2, 3, 5, 16, 17, 100, 257, 1000};
    int bad = 0;
    for (int order = 0; order < ORDERS; order++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) bad += check_array(order, sizes[s]);
    CHECK(bad == 0, "%d failures", bad);
}

TEST(select_large_random_medians) {
    enum { N = 200001 };
    double *d = malloc(N * sizeof *d), *s = malloc(N * sizeof *s);
    REQUIRE(d && s, "out of memory");
    unsigned seed = 7;
    for (size_t i = 0; i < N; i++) s[i] = d[i] = value(i % 2 ? RANDOM : FEW_VALUES, i, N, &seed);
    qsort(s, N, sizeof *s, cmp_d);
    double v = ds_select_double(d, N, N / 2);
    CHECK(v == s[N / 2], "median of %d values: %g, want %g", N, v, s[N / 2]);
    free(d);
    free(s);
}

int main(void) {
    RUN(select_every_rank_against_qsort);
    RUN(select_large_random_medians);
    return test_summary();
}
