/* Outlier statistics (src/dump/outliers.h) finished over parts, several at once: checked
 * against a direct computation (every value sorted: the median as numpy takes it, the top
 * values; the moments summed in long double), and bit for bit between finishing the
 * statistics together or one by one, on 1, 2, 3 and 7 threads, and between rows pushed in
 * order and the same rows put at fixed places by several threads in any order, their tallies
 * added in order. The dump's statistics against
 * NumPy on real models are in tests/numerics/test_dump.py. */
#include "test.h"
#include <math.h>
#include <omp.h>
#include "diffscope/error.h"
#include "dump/outliers.h"

enum { PARTS = 16, STATS = 3, TOPK = 25 };

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static double uniform(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Values of statistic S: Gaussian with a few large ones; repeated values; mostly zeros. Part 3
 * of every statistic stays empty, and the counts are odd for one statistic, even for another. */
static float value(int s, size_t i) {
    double g = sqrt(-2 * log(uniform() + 1e-300)) * cos(6.283185307179586 * uniform());
    if (s == 0) return (float)(i % 997 == 0 ? 40 * g : g);
    if (s == 1) return (float)(int)(4 * g) / 4;
    return i % 5 ? 0.0f : (float)g;
}

typedef struct {
    float *all[STATS];
    size_t n[STATS];
} pushed;

/* Pushes the same values into ACC on every call (the generator restarts). */
static void push(ds_outliers acc[STATS][PARTS], pushed *kept) {
    rng_state = 0x9e3779b97f4a7c15u;
    static const int row_len[STATS] = {301, 64, 255};
    static const int rows[STATS] = {40, 57, 33};
    float row[301];
    for (int s = 0; s < STATS; s++) {
        kept->n[s] = 0;
        for (int p = 0; p < PARTS; p++)
            for (int r = 0; p != 3 && r < rows[s] + p % 2; r++) {
                for (int k = 0; k < row_len[s]; k++) row[k] = value(s, kept->n[s] + k);
                for (int k = 0; k < row_len[s]; k++) kept->all[s][kept->n[s]++] = fabsf(row[k]);
                ds_outliers_push_row(&acc[s][p], row, row_len[s], p, r);
            }
    }
}

static int descending(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void check_direct(const ds_outlier_result *r, float *all, size_t n, int s) {
    qsort(all, n, sizeof *all, descending);
    double median = n % 2 ? all[n / 2] : 0.5 * ((double)all[n / 2 - 1] + all[n / 2]);
    long double sum = 0, s2 = 0, s4 = 0;
    for (size_t i = 0; i < n; i++) sum += all[i];
    long double mean = sum / n;
    for (size_t i = 0; i < n; i++) {
        long double d = all[i] - mean;
        s2 += d * d, s4 += d * d * d * d;
    }
    double std = sqrtl(s2 / n), kurt = (double)((s4 / n) / ((s2 / n) * (s2 / n)));
    CHECK(r->count == (int64_t)n, "statistic %d: count %lld, want %zu", s, (long long)r->count, n);
    CHECK(r->median == median, "statistic %d: median %.9g, want %.9g", s, r->median, median);
    CHECK(fabs(r->mean - (double)mean) <= 1e-12 * (double)mean, "statistic %d: mean %.17g, want %.17Lg", s, r->mean, mean);
    CHECK(fabs(r->std - std) <= 1e-11 * std, "statistic %d: std %.17g, want %.17g", s, r->std, std);
    CHECK(fabs(r->kurtosis - kurt) <= 1e-10 * kurt, "statistic %d: kurtosis %.17g, want %.17g", s, r->kurtosis, kurt);
    CHECK(r->k == TOPK, "statistic %d: %d top values, want %d", s, r->k, TOPK);
    for (int i = 0; i < r->k && i < TOPK; i++)
        CHECK(r->values[i] == all[i], "statistic %d: top value %d is %.9g, want %.9g", s, i, r->values[i], all[i]);
}

static int same_result(const ds_outlier_result *a, const ds_outlier_result *b, int ncoords) {
    return a->count == b->count && !memcmp(&a->median, &b->median, sizeof a->median) &&
           !memcmp(&a->mean, &b->mean, sizeof a->mean) && !memcmp(&a->std, &b->std, sizeof a->std) &&
           !memcmp(&a->kurtosis, &b->kurtosis, sizeof a->kurtosis) && a->k == b->k &&
           !memcmp(a->values, b->values, (size_t)a->k * sizeof *a->values) &&
           !memcmp(a->coords, b->coords, (size_t)a->k * ncoords * sizeof *a->coords);
}

TEST(outliers_finished_together_against_direct) {
    static ds_outliers acc[STATS][PARTS];
    pushed kept;
    for (int s = 0; s < STATS; s++) {
        kept.all[s] = malloc(PARTS * 60 * 301 * sizeof(float));
        for (int p = 0; p < PARTS; p++) REQUIRE(!ds_outliers_init(&acc[s][p], TOPK, s ? 2 : 3), "%s", ds_errmsg());
    }
    ds_outliers *const stats[STATS] = {acc[0], acc[1], acc[2]};
    ds_outlier_result first[STATS], r[STATS];
    /* one by one on one thread: the reference for the bits */
    omp_set_num_threads(1);
    push(acc, &kept);
    for (int s = 0; s < STATS; s++) REQUIRE(!ds_outliers_finish_parts(acc[s], PARTS, &first[s]), "%s", ds_errmsg());
    for (int s = 0; s < STATS; s++) check_direct(&first[s], kept.all[s], kept.n[s], s);
    CHECK(kept.n[0] % 2 != kept.n[2] % 2, "the counts %zu and %zu should be one odd, one even", kept.n[0], kept.n[2]);
    static const int threads[] = {1, 2, 3, 7};
    for (unsigned t = 0; t < sizeof threads / sizeof *threads; t++) {
        omp_set_num_threads(threads[t]);
        push(acc, &kept);
        REQUIRE(!ds_outliers_finish_many(stats, STATS, PARTS, r), "%s", ds_errmsg());
        for (int s = 0; s < STATS; s++) {
            CHECK(same_result(&r[s], &first[s], s ? 2 : 3),
                  "statistic %d finished together on %d threads differs from it alone on 1", s, threads[t]);
            ds_outlier_result_free(&r[s]);
        }
    }
    /* emptied: a second finish sees no values */
    REQUIRE(!ds_outliers_finish_many(stats, STATS, PARTS, r), "%s", ds_errmsg());
    for (int s = 0; s < STATS; s++) {
        CHECK(r[s].count == 0 && r[s].k == 0 && r[s].median == 0, "statistic %d not emptied: count %lld", s,
              (long long)r[s].count);
        ds_outlier_result_free(&r[s]);
    }
    omp_set_num_threads(2);
    for (int s = 0; s < STATS; s++) {
        ds_outlier_result_free(&first[s]);
        free(kept.all[s]);
        for (int p = 0; p < PARTS; p++) ds_outliers_free(&acc[s][p]);
    }
}

/* The dump's scores: rows put by 3 threads, last row first, at places fixed in advance, each
 * with a tally of its own, the tallies then added in row order, give the result of pushing the
 * rows in order, bit for bit (pushed rows are counted for the median as they come, put ones
 * when finishing). */
TEST(outliers_put_by_threads_equal_pushed_in_order) {
    enum { ROWS = 45, LEN = 301 };
    static ds_outliers pushed_acc[PARTS], put_acc[PARTS], tally[PARTS][ROWS];
    static float rows[PARTS][ROWS][LEN];
    rng_state = 0x2545f4914f6cdd1du;
    for (int p = 0; p < PARTS; p++) {
        REQUIRE(!ds_outliers_init(&pushed_acc[p], TOPK, 3) && !ds_outliers_init(&put_acc[p], TOPK, 3), "%s",
                ds_errmsg());
        ds_outliers_reserve(&put_acc[p], (size_t)ROWS * LEN);
        for (int r = 0; r < ROWS; r++) {
            REQUIRE(!ds_outliers_init(&tally[p][r], TOPK, 3), "%s", ds_errmsg());
            for (int k = 0; k < LEN; k++) rows[p][r][k] = value(0, (size_t)r * LEN + k);
            ds_outliers_push_row(&pushed_acc[p], rows[p][r], LEN, p, r);
        }
    }
#pragma omp parallel for num_threads(3) schedule(dynamic)
    for (int i = PARTS * ROWS - 1; i >= 0; i--) {
        const int p = i / ROWS, r = i % ROWS;
        ds_outliers_put_row(&put_acc[p], (size_t)r * LEN, &tally[p][r], rows[p][r], LEN, p, r);
    }
    for (int p = 0; p < PARTS; p++)
        for (int r = 0; r < ROWS; r++) ds_outliers_add_tally(&put_acc[p], &tally[p][r]);
    ds_outlier_result a, b;
    REQUIRE(!ds_outliers_finish_parts(pushed_acc, PARTS, &a) && !ds_outliers_finish_parts(put_acc, PARTS, &b), "%s",
            ds_errmsg());
    CHECK(a.count == (int64_t)PARTS * ROWS * LEN && same_result(&a, &b, 3),
          "put: count %lld, median %.9g, mean %.17g, kurtosis %.17g, top %.9g; pushed: %lld, %.9g, %.17g, %.17g, %.9g",
          (long long)b.count, b.median, b.mean, b.kurtosis, b.k ? b.values[0] : 0, (long long)a.count, a.median, a.mean,
          a.kurtosis, a.k ? a.values[0] : 0);
    /* a place past the reserved room marks the tally, not the memory after the buffer */
    ds_outliers_put_row(&put_acc[0], put_acc[0].cap - LEN + 1, &tally[0][0], rows[0][0], LEN, 0, 0);
    ds_outliers_add_tally(&put_acc[0], &tally[0][0]);
    ds_outlier_result c;
    CHECK(ds_outliers_finish_parts(put_acc, PARTS, &c) != 0, "a put past the reserved room went unreported");
    ds_outlier_result_free(&a), ds_outlier_result_free(&b), ds_outlier_result_free(&c);
    for (int p = 0; p < PARTS; p++) {
        ds_outliers_free(&pushed_acc[p]), ds_outliers_free(&put_acc[p]);
        for (int r = 0; r < ROWS; r++) ds_outliers_free(&tally[p][r]);
    }
}

/* The median's two middle values in one bucket of the top 16 bits, with the same or other low
 * bits, and in two buckets (the candidates then span both), against the values pushed. */
TEST(outliers_median_within_and_across_buckets) {
    static const struct { float lo, hi; } cases[] = {{1.0f, 1.0000001f}, {1.0f, 2.0f}, {0.0f, 3e-39f}, {5.0f, 5.0f}};
    for (unsigned c = 0; c < sizeof cases / sizeof *cases; c++) {
        enum { PARTS2 = 4, HALF = 1001 };
        ds_outliers acc[PARTS2];
        for (int p = 0; p < PARTS2; p++) REQUIRE(!ds_outliers_init(&acc[p], 3, 2), "%s", ds_errmsg());
        /* HALF values at or below lo, HALF at or above hi, spread over the parts */
        float row[2 * HALF];
        for (int i = 0; i < HALF; i++) row[i] = i % 3 ? cases[c].lo : cases[c].lo / 2, row[HALF + i] = i % 5 ? cases[c].hi : 2 * cases[c].hi;
        for (int i = 0; i < 2 * HALF; i += 2 * HALF / PARTS2 + 1) {
            int n = 2 * HALF - i < 2 * HALF / PARTS2 + 1 ? 2 * HALF - i : 2 * HALF / PARTS2 + 1;
            ds_outliers_push_row(&acc[(i / 7) % PARTS2], row + i, n, i, 0);
        }
        ds_outlier_result r;
        REQUIRE(!ds_outliers_finish_parts(acc, PARTS2, &r), "%s", ds_errmsg());
        double want = 0.5 * ((double)cases[c].lo + cases[c].hi);
        CHECK(r.count == 2 * HALF && r.median == want, "case %u: median %.9g of %lld values, want %.9g", c, r.median,
              (long long)r.count, want);
        ds_outlier_result_free(&r);
        for (int p = 0; p < PARTS2; p++) ds_outliers_free(&acc[p]);
    }
}

int main(void) {
    RUN(outliers_finished_together_against_direct);
    RUN(outliers_put_by_threads_equal_pushed_in_order);
    RUN(outliers_median_within_and_across_buckets);
    return test_summary();
}
