/* Table-5 outlier figures in bounded memory (see diffscope/table5.h). */
#include "diffscope/table5.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

const int ds_table5_ranks[DS_TABLE5_RANKS] = {1, 2, 3, 10, 100};

#define HIST_SHIFT 11 /* bits 30..11 of a non-negative float: 2^20 bins */
#define HIST_BINS (1u << (31 - HIST_SHIFT))
#define BLOCK_SHIFT 10 /* the bins in blocks of 2^10, each block's total kept apart */
#define HIST_BYTES ((size_t)HIST_BINS * sizeof(uint64_t))

/* The values of one prompt fill a few hundred of the 2^20 bins, and a sweep makes one
 * accumulator per prompt, model and stream. Clearing and walking all 8 MB each time cost more
 * than the pushes of a short prompt, and loads the memory bus that all processes of a node
 * share; so the median walks the block totals and then one block, and a freed histogram is
 * cleared block by block (only the blocks it used) and kept for the next accumulator. A new
 * histogram is mapped, not allocated and cleared: the kernel gives zero pages on first use. */
struct ds_table5_acc {
    int64_t count;
    int ntop;
    float top[DS_TABLE5_TOP];                 /* descending */
    uint64_t *hist;                           /* [HIST_BINS], mapped */
    uint64_t block[HIST_BINS >> BLOCK_SHIFT]; /* sums of hist's blocks */
};

/* Cleared histograms of freed accumulators (a compare or sweep has up to four at a time). */
static _Atomic(uint64_t *) spare[4];

static uint64_t *take_hist(void) {
    for (size_t i = 0; i < sizeof spare / sizeof *spare; i++) {
        uint64_t *h = atomic_exchange(&spare[i], NULL);
        if (h) return h;
    }
    void *h = mmap(NULL, HIST_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return h == MAP_FAILED ? NULL : h;
}

static void give_hist(const ds_table5_acc *a) {
    for (size_t k = 0; k < HIST_BINS >> BLOCK_SHIFT; k++)
        if (a->block[k]) memset(a->hist + (k << BLOCK_SHIFT), 0, sizeof *a->hist << BLOCK_SHIFT);
    for (size_t i = 0; i < sizeof spare / sizeof *spare; i++) {
        uint64_t *empty = NULL;
        if (atomic_compare_exchange_strong(&spare[i], &empty, a->hist)) return;
    }
    munmap(a->hist, HIST_BYTES);
}

ds_table5_acc *ds_table5_new(void) {
    ds_table5_acc *a = calloc(1, sizeof *a);
    if (a && !(a->hist = take_hist())) free(a), a = NULL;
    if (!a) ds_failc(DS_ERR_NOMEM, "out of memory for outlier statistics");
    return a;
}

void ds_table5_free(ds_table5_acc *a) {
    if (!a) return;
    give_hist(a);
    free(a);
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* |V| of bit pattern U (sign cleared, not NaN) into the histogram and the top list. */
static inline void push_abs(ds_table5_acc *a, uint32_t u) {
    uint32_t b = u >> HIST_SHIFT;
    a->hist[b]++;
    a->block[b >> BLOCK_SHIFT]++;
    float v = bits_float(u);
    if (a->ntop == DS_TABLE5_TOP && v <= a->top[DS_TABLE5_TOP - 1]) return;
    int i = a->ntop < DS_TABLE5_TOP ? a->ntop++ : DS_TABLE5_TOP - 1;
    for (; i > 0 && a->top[i - 1] < v; i--) a->top[i] = a->top[i - 1];
    a->top[i] = v;
}

void ds_table5_push(ds_table5_acc *a, float v) { ds_table5_push_n(a, &v, 1); }

void ds_table5_push_n(ds_table5_acc *a, const float *v, size_t n) {
    int64_t used = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = float_bits(v[i]) & 0x7fffffffu;
        if (u > 0x7f800000u) continue; /* NaN */
        used++;
        push_abs(a, u);
    }
    a->count += used;
}

/* The middle of the bin that holds the value of 0-based rank R in ascending order. */
static double bin_value_at_rank(const ds_table5_acc *a, int64_t r) {
    int64_t seen = 0;
    uint32_t b = 0;
    for (; b < HIST_BINS && seen + (int64_t)a->block[b >> BLOCK_SHIFT] <= r; b += 1u << BLOCK_SHIFT)
        seen += (int64_t)a->block[b >> BLOCK_SHIFT];
    for (; b < HIST_BINS; b++) {
        seen += (int64_t)a->hist[b];
        if (seen > r) {
            double lo = bits_float(b << HIST_SHIFT);
            double hi = b + 1 < HIST_BINS ? bits_float((b + 1) << HIST_SHIFT) : lo;
            return isinf(lo) ? lo : 0.5 * (lo + hi);
        }
    }
    return NAN;
}

void ds_table5_result(const ds_table5_acc *a, ds_table5 *out) {
    out->count = a->count;
    for (int i = 0; i < DS_TABLE5_RANKS; i++) {
        int k = ds_table5_ranks[i];
        out->top[i] = k <= a->ntop ? a->top[k - 1] : NAN;
    }
    if (a->count == 0) {
        out->median = NAN;
        return;
    }
    int64_t mid = a->count / 2;
    out->median = a->count % 2 ? bin_value_at_rank(a, mid)
                               : 0.5 * (bin_value_at_rank(a, mid - 1) + bin_value_at_rank(a, mid));
}
