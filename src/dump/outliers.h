/* Activation-outlier statistics (the paper's Table 5): the top-k absolute values with their
 * coordinates, and the median, mean, standard deviation and kurtosis of all absolute values.
 *
 * Values are pushed a row at a time (streamed from probe blocks), by the thread that made the
 * row, while it is in that core's cache: each row's moments are taken then. Every absolute
 * value is kept (4 bytes each) so that the median is exact: finishing finds the median's
 * buckets in a histogram of the values and counts the values in them bit by bit. */
#ifndef DIFFSCOPE_OUTLIERS_H
#define DIFFSCOPE_OUTLIERS_H
#include <stddef.h>
#include <stdint.h>

#define DS_OUTLIER_MAX_COORDS 3
/* Histogram buckets: the top 16 bits of an absolute value's bit pattern (sign clear), which
 * order like the values (NaN above infinity). */
#define DS_OUTLIER_BUCKETS 32768

/* How many values fell in each bucket, over the buckets [lo, hi] it has seen (lo > hi: none). */
typedef struct {
    size_t *bucket; /* [DS_OUTLIER_BUCKETS] */
    size_t n;
    uint32_t lo, hi;
} ds_outlier_hist;

/* Central moments of n values: the mean and the sums of the 2nd, 3rd and 4th powers of the
 * deviations from it (merged by Pébay's formulas, so no pass over the values is needed). */
typedef struct {
    double n, mean, m2, m3, m4;
} ds_moments;

typedef struct {
    int k, ncoords;
    float *top;          /* min-heap of the k largest |values| while streaming */
    int64_t *top_coords; /* [k][ncoords] */
    int ntop;
    float *all;          /* 64-byte aligned, so that vectorised sums never depend on where it lies */
    size_t n, cap;
    ds_outlier_hist hist; /* counts of the values pushed (a tally has none); put ones are
                           * counted when finishing */
    float *cand;          /* this accumulator's candidates for the median, while finishing */
    size_t cand_cap;
    double sum;          /* of all |values|, kept while pushing: the mean needs no extra pass */
    ds_moments mom;
    uint32_t lo, hi;     /* the smallest and largest bit pattern pushed */
    int oom;
} ds_outliers;

typedef struct {
    int64_t count;
    double median, mean, std, kurtosis; /* kurtosis: E[(x-mean)^4] / std^4, not excess */
    int k;                              /* values found, <= the k asked for */
    float *values;                      /* [k], descending */
    int64_t *coords;                    /* [k][ncoords] */
} ds_outlier_result;

int ds_outliers_init(ds_outliers *o, int k, int ncoords);
/* Makes room for N values at once, as far as memory allows (a hint: pushing grows it anyway). */
void ds_outliers_reserve(ds_outliers *o, size_t n);
/* Pushes |ROW[k]| for k < N. The coordinates of element k are (C0, C1, k) when ncoords is 3
 * and (C0, k) when it is 2. */
void ds_outliers_push_row(ds_outliers *o, const float *row, int64_t n, int64_t c0, int64_t c1);
/* Filling from several threads at once: each writer puts its rows into ranges of O's values
 * fixed in advance (so where a value lies does not depend on who put it when), and keeps a
 * TALLY of what it put: an accumulator of its own (ds_outliers_init) holding no values, only
 * their count, sum, moments, range and top k. The tallies are then added to O one at a time with
 * ds_outliers_add_tally, in an order the caller fixes; each tally may go to any accumulator of
 * the statistic, as long as every accumulator ends with as many values counted as it holds.
 *
 * ds_outliers_put_row writes |ROW[k]|, k < N, at index AT of O's values, which must be reserved
 * (ds_outliers_reserve; otherwise TALLY is marked out of memory), and counts them in TALLY with
 * the coordinates of ds_outliers_push_row. ds_outliers_add_tally adds TALLY to O and empties it.
 *
 * Rows put this way are counted into the histogram that the median needs when the statistic is
 * finished (one pass over its values, in parallel); rows pushed are counted as they come. */
void ds_outliers_put_row(ds_outliers *o, size_t at, ds_outliers *tally, const float *row, int64_t n, int64_t c0,
                         int64_t c1);
void ds_outliers_add_tally(ds_outliers *o, ds_outliers *tally);
/* Computes the result (its own allocations) and empties the accumulator for reuse, keeping
 * its buffers; -1 when memory ran out while pushing. Accumulators are independent: several
 * may be finished at once on different threads. */
int ds_outliers_finish(ds_outliers *o, ds_outlier_result *r);
/* The same for the union of NPARTS accumulators of the same k and ncoords, which were filled
 * separately (on different threads, say). The parts are finished in parallel (OpenMP; call it
 * outside a parallel region) and combined in their order, so the result depends on how values
 * were split among them but not on who pushed or finished them, nor on the thread count. */
int ds_outliers_finish_parts(ds_outliers *parts, int nparts, ds_outlier_result *r);
/* The same for NSTATS statistics of NPARTS parts each, STATS[s] the parts of statistic s, into
 * RESULTS[s]: each step runs as one parallel loop over the parts of all of them (the largest
 * first), so that the threads share 3 x 16 parts, not 16 at a time, and each statistic is
 * combined in part order exactly as ds_outliers_finish_parts combines it alone. -1 when memory
 * runs out (no result is then kept); every accumulator is emptied either way. */
int ds_outliers_finish_many(ds_outliers *const *stats, int nstats, int nparts, ds_outlier_result *results);
void ds_outliers_free(ds_outliers *o);
void ds_outlier_result_free(ds_outlier_result *r);

#endif
