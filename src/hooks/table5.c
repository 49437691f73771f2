/* Table-5 outlier figures in bounded memory (see diffscope/table5.h). */
#include "diffscope/table5.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const int ds_table5_ranks[DS_TABLE5_RANKS] = {1, 2, 3, 10, 100};

#define HIST_SHIFT 11 /* bits 30..11 of a non-negative float: 2^20 bins */
#define HIST_BINS (1u << (31 - HIST_SHIFT))

struct ds_table5_acc {
    int64_t count;
    int ntop;
    float top[DS_TABLE5_TOP]; /* descending */
    uint64_t *hist;           /* [HIST_BINS] */
};

ds_table5_acc *ds_table5_new(void) {
    ds_table5_acc *a = calloc(1, sizeof *a);
    if (a && !(a->hist = calloc(HIST_BINS, sizeof *a->hist))) {
        free(a);
        a = NULL;
    }
    if (!a) ds_failc(DS_ERR_NOMEM, "out of memory for outlier statistics");
    return a;
}

void ds_table5_free(ds_table5_acc *a) {
    if (!a) return;
    free(a->hist);
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

void ds_table5_push(ds_table5_acc *a, float v) {
    if (isnan(v)) return;
    v = fabsf(v);
    a->count++;
    a->hist[float_bits(v) >> HIST_SHIFT]++;
    if (a->ntop == DS_TABLE5_TOP && v <= a->top[DS_TABLE5_TOP - 1]) return;
    int i = a->ntop < DS_TABLE5_TOP ? a->ntop++ : DS_TABLE5_TOP - 1;
    for (; i > 0 && a->top[i - 1] < v; i--) a->top[i] = a->top[i - 1];
    a->top[i] = v;
}

/* The middle of the bin that holds the value of 0-based rank R in ascending order. */
static double bin_value_at_rank(const ds_table5_acc *a, int64_t r) {
    int64_t seen = 0;
    for (uint32_t b = 0; b < HIST_BINS; b++) {
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
