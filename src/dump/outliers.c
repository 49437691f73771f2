/* Outlier statistics: a k-element min-heap for the top values, and every |value| kept for an
 * exact median (histogram, then quickselect) and two-pass moments. */
#include "dump/outliers.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int ds_outliers_init(ds_outliers *o, int k, int ncoords) {
    memset(o, 0, sizeof *o);
    o->k = k > 0 ? k : 1;
    o->ncoords = ncoords;
    o->top = malloc((size_t)o->k * sizeof *o->top);
    o->top_coords = malloc((size_t)o->k * ncoords * sizeof *o->top_coords);
    return o->top && o->top_coords ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory for outlier statistics");
}

static void heap_swap(ds_outliers *o, int a, int b) {
    float t = o->top[a];
    o->top[a] = o->top[b], o->top[b] = t;
    for (int i = 0; i < o->ncoords; i++) {
        int64_t c = o->top_coords[a * o->ncoords + i];
        o->top_coords[a * o->ncoords + i] = o->top_coords[b * o->ncoords + i];
        o->top_coords[b * o->ncoords + i] = c;
    }
}

static void sift_down(ds_outliers *o, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < o->ntop && o->top[l] < o->top[m]) m = l;
        if (r < o->ntop && o->top[r] < o->top[m]) m = r;
        if (m == i) return;
        heap_swap(o, i, m);
        i = m;
    }
}

static void heap_insert(ds_outliers *o, float v, const int64_t *c) {
    if (o->ntop < o->k) { /* sift the new leaf up */
        int i = o->ntop++;
        o->top[i] = v;
        memcpy(&o->top_coords[i * o->ncoords], c, (size_t)o->ncoords * sizeof *c);
        while (i > 0 && o->top[(i - 1) / 2] > o->top[i]) {
            heap_swap(o, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    } else {
        o->top[0] = v;
        memcpy(&o->top_coords[0], c, (size_t)o->ncoords * sizeof *c);
        sift_down(o, 0);
    }
}

/* Room for NEED values: the buffer at least doubles, 64-byte aligned (in 2 MiB pages where
 * the kernel grants them, when large: fewer page faults filling it). */
static int grow(ds_outliers *o, size_t need) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < need) cap *= 2;
    const size_t huge = (size_t)2 << 20, bytes = (cap * sizeof(float) + huge - 1) / huge * huge;
    float *na = cap * sizeof(float) >= huge ? aligned_alloc(huge, bytes) : aligned_alloc(64, cap * sizeof(float));
    if (!na) return -1;
    if (cap * sizeof(float) >= huge) madvise(na, bytes, MADV_HUGEPAGE);
    if (o->n) memcpy(na, o->all, o->n * sizeof *na);
    free(o->all);
    o->all = na, o->cap = cap;
    return 0;
}

void ds_outliers_reserve(ds_outliers *o, size_t n) {
    if (n > o->cap) grow(o, n); /* best effort: pushing grows it again, or reports running out */
}

void ds_outliers_push_row(ds_outliers *o, const float *row, int64_t n, int64_t c0, int64_t c1) {
    if (o->oom || n <= 0) return;
    if (o->n + (size_t)n > o->cap && grow(o, o->n + (size_t)n)) {
        o->oom = 1;
        return;
    }
    float *dst = o->all + o->n;
    double sum = 0;
    /* simd: the sum may be reassociated into vector lanes (the same order on every run). */
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < n; k++) sum += dst[k] = fabsf(row[k]);
    o->sum += sum;
    o->n += (size_t)n;
    /* Only values above the heap's minimum can enter: most rows skip the heap entirely. */
    float threshold = o->ntop < o->k ? -1.0f : o->top[0];
    for (int64_t k = 0; k < n; k++) {
        if (dst[k] <= threshold) continue;
        int64_t c[3] = {c0, o->ncoords == 3 ? c1 : k, k};
        heap_insert(o, dst[k], c);
        threshold = o->ntop < o->k ? -1.0f : o->top[0];
    }
}

/* The k-th smallest of a[0..n) (0-based), reordering a. */
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j], a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

enum { HIST_BUCKETS = 1 << 16 };

/* One pass over a part's |values|: the sums of the central powers (the mean is known from
 * pushing) into *S2 and *S4, and the part's histogram of the top 16 bits of each value's bit
 * pattern, which orders like the values. */
static void moments_and_histogram(ds_outliers *o, double mean, double *s2_out, double *s4_out) {
    double s2 = 0, s4 = 0;
    const float *a = o->all;
#pragma omp simd reduction(+ : s2, s4)
    for (size_t i = 0; i < o->n; i++) {
        double d = a[i] - mean, d2 = d * d;
        s2 += d2, s4 += d2 * d2;
    }
    memset(o->hist, 0, HIST_BUCKETS * sizeof *o->hist);
    for (size_t i = 0; i < o->n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        o->hist[u >> 16]++;
    }
    *s2_out = s2, *s4_out = s4;
}

/* The k_lo-th and k_hi-th smallest values (0-based, k_lo <= k_hi) of all the parts' values:
 * the summed histogram HIST names the buckets that hold them, each part gathers its values in
 * those buckets into its own range of the candidates (in part order, as one pass would), and a
 * quickselect runs on the candidates only. */
static int order_stats(const ds_outliers *parts, int nparts, const size_t *hist, size_t k_lo, size_t k_hi,
                       double *lo, double *hi) {
    size_t below = 0, b_lo = 0;
    while (below + hist[b_lo] <= k_lo) below += hist[b_lo++];
    size_t b_hi = b_lo, below_hi = below;
    while (below_hi + hist[b_hi] <= k_hi) below_hi += hist[b_hi++];
    size_t m = below_hi + hist[b_hi] - below;
    /* Part p gathers into cand[first[p] + p ...]: its candidates, then one spare slot for the
     * branch-free loop's store past the last (parts run in parallel, so that store must not
     * land in the next part's range); the ranges are closed up afterwards. */
    float *cand = malloc((m + (size_t)nparts) * sizeof *cand);
    size_t *first = malloc(((size_t)nparts + 1) * sizeof *first);
    if (!cand || !first) return free(cand), free(first), ds_failc(DS_ERR_NOMEM, "out of memory for the median");
    first[0] = 0;
    for (int p = 0; p < nparts; p++) {
        size_t c = 0;
        for (size_t b = b_lo; b <= b_hi; b++) c += parts[p].hist[b];
        first[p + 1] = first[p] + c;
    }
    uint32_t width = (uint32_t)(b_hi - b_lo);
    /* Branch-free: about half the values lie below the median's bucket, so a branch on the
     * bucket would be mispredicted half the time (it was most of a dump's outlier cost). */
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < nparts; p++) {
        const float *a = parts[p].all;
        float *out = cand + first[p] + p;
        size_t j = 0;
        for (size_t i = 0; i < parts[p].n; i++) {
            uint32_t u;
            memcpy(&u, &a[i], 4);
            out[j] = a[i];
            j += (u >> 16) - (uint32_t)b_lo <= width;
        }
    }
    for (int p = 1; p < nparts; p++)
        memmove(cand + first[p], cand + first[p] + p, (first[p + 1] - first[p]) * sizeof *cand);
    *lo = select_kth(cand, m, k_lo - below);
    *hi = select_kth(cand, m, k_hi - below);
    free(cand), free(first);
    return 0;
}

static void reset(ds_outliers *o) { o->n = 0, o->sum = 0, o->ntop = 0, o->oom = 0; }

int ds_outliers_finish_parts(ds_outliers *parts, int nparts, ds_outlier_result *r) {
    memset(r, 0, sizeof *r);
    size_t n = 0;
    double sum = 0;
    int oom = 0;
    for (int p = 0; p < nparts; p++) {
        n += parts[p].n, sum += parts[p].sum, oom |= parts[p].oom;
        if (!parts[p].hist && !(parts[p].hist = malloc(HIST_BUCKETS * sizeof *parts[p].hist))) oom = 1;
    }
    double *s24 = oom ? NULL : calloc(2 * (size_t)nparts, sizeof *s24);
    size_t *hist = s24 ? calloc(HIST_BUCKETS, sizeof *hist) : NULL;
    if (!hist) {
        for (int p = 0; p < nparts; p++) reset(&parts[p]);
        free(s24);
        return ds_failc(DS_ERR_NOMEM, "out of memory collecting outlier statistics");
    }
    r->count = (int64_t)n;
    int rc = 0;
    if (n) {
        double s2 = 0, s4 = 0, lo = 0, hi = 0;
        r->mean = sum / n;
#pragma omp parallel for schedule(dynamic)
        for (int p = 0; p < nparts; p++) moments_and_histogram(&parts[p], r->mean, &s24[2 * p], &s24[2 * p + 1]);
        for (int p = 0; p < nparts; p++) s2 += s24[2 * p], s4 += s24[2 * p + 1]; /* in part order */
#pragma omp parallel for schedule(static)
        for (size_t b = 0; b < HIST_BUCKETS; b++)
            for (int p = 0; p < nparts; p++) hist[b] += parts[p].hist[b];
        double m2 = s2 / n, m4 = s4 / n;
        r->std = sqrt(m2);
        r->kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0;
        /* numpy's median: the mean of the two middle values when n is even. */
        size_t mid = n / 2;
        rc = order_stats(parts, nparts, hist, n % 2 ? mid : mid - 1, mid, &lo, &hi);
        r->median = n % 2 ? hi : 0.5 * (lo + hi);
    }
    free(hist), free(s24);
    /* The other parts' top values go through the first part's heap, in part order. */
    ds_outliers *o = &parts[0];
    for (int p = 1; p < nparts; p++)
        for (int i = 0; i < parts[p].ntop; i++)
            if (o->ntop < o->k || parts[p].top[i] > o->top[0])
                heap_insert(o, parts[p].top[i], &parts[p].top_coords[(size_t)i * o->ncoords]);
    /* Heap -> descending order by repeatedly taking the minimum to the end. */
    int k = o->ntop;
    while (o->ntop > 1) {
        heap_swap(o, 0, o->ntop - 1);
        o->ntop--;
        sift_down(o, 0);
    }
    r->k = k;
    r->values = malloc((size_t)(k ? k : 1) * sizeof *r->values);
    r->coords = malloc((size_t)(k ? k : 1) * o->ncoords * sizeof *r->coords);
    if (!rc && (!r->values || !r->coords)) rc = ds_failc(DS_ERR_NOMEM, "out of memory for outlier statistics");
    if (!rc) {
        memcpy(r->values, o->top, (size_t)k * sizeof *r->values);
        memcpy(r->coords, o->top_coords, (size_t)k * o->ncoords * sizeof *r->coords);
    }
    /* Ready for the next layer; the value buffers keep their pages. */
    for (int p = 0; p < nparts; p++) reset(&parts[p]);
    if (rc) ds_outlier_result_free(r);
    return rc;
}

int ds_outliers_finish(ds_outliers *o, ds_outlier_result *r) { return ds_outliers_finish_parts(o, 1, r); }

void ds_outliers_free(ds_outliers *o) {
    free(o->all), free(o->top), free(o->top_coords), free(o->hist);
    memset(o, 0, sizeof *o);
}

void ds_outlier_result_free(ds_outlier_result *r) {
    free(r->values), free(r->coords);
    memset(r, 0, sizeof *r);
}
