/* Outlier statistics: a k-element min-heap for the top values, and every |value| kept for an
 * exact median (histogram, then quickselect) and two-pass moments. */
#include "dump/outliers.h"
#include "base/huge_alloc.h"
#include "base/select.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ds_outliers_init(ds_outliers *o, int k, int ncoords) {
    memset(o, 0, sizeof *o);
    o->k = k > 0 ? k : 1;
    o->lo = UINT32_MAX;
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
    float *na = ds_alloc_huge(cap * sizeof(float));
    if (!na) return -1;
    if (o->n) memcpy(na, o->all, o->n * sizeof *na);
    free(o->all);
    o->all = na, o->cap = cap;
    return 0;
}

void ds_outliers_reserve(ds_outliers *o, size_t n) {
    if (n > o->cap) grow(o, n); /* best effort: pushing grows it again, or reports running out */
}

/* |ROW[k]| into DST[k], k < N, counted in O (its sum, range, count and top values). */
static void put_values(ds_outliers *o, float *dst, const float *row, int64_t n, int64_t c0, int64_t c1) {
    double sum = 0;
    uint32_t lo = o->lo, hi = o->hi;
    /* simd: the sum may be reassociated into vector lanes (the same order on every run). The
     * range is kept on bit patterns, which order like the values and take NaN in too. */
#pragma omp simd reduction(+ : sum) reduction(min : lo) reduction(max : hi)
    for (int64_t k = 0; k < n; k++) {
        float a = fabsf(row[k]);
        uint32_t u;
        memcpy(&u, &a, sizeof u);
        dst[k] = a, sum += a;
        lo = u < lo ? u : lo, hi = u > hi ? u : hi;
    }
    o->lo = lo, o->hi = hi;
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

/* Empty, buffers kept. */
static void reset(ds_outliers *o) { o->n = 0, o->sum = 0, o->ntop = 0, o->oom = 0, o->lo = UINT32_MAX, o->hi = 0; }

/* O's heap takes FROM's top values that beat its least, in FROM's heap order. */
static void merge_top(ds_outliers *o, const ds_outliers *from) {
    for (int i = 0; i < from->ntop; i++)
        if (o->ntop < o->k || from->top[i] > o->top[0])
            heap_insert(o, from->top[i], &from->top_coords[(size_t)i * o->ncoords]);
}

void ds_outliers_push_row(ds_outliers *o, const float *row, int64_t n, int64_t c0, int64_t c1) {
    if (o->oom || n <= 0) return;
    if (o->n + (size_t)n > o->cap && grow(o, o->n + (size_t)n)) {
        o->oom = 1;
        return;
    }
    put_values(o, o->all + o->n, row, n, c0, c1);
}

void ds_outliers_put_row(ds_outliers *o, size_t at, ds_outliers *tally, const float *row, int64_t n, int64_t c0,
                         int64_t c1) {
    if (tally->oom || n <= 0) return;
    if (at + (size_t)n > o->cap) {
        tally->oom = 1;
        return;
    }
    put_values(tally, o->all + at, row, n, c0, c1);
}

void ds_outliers_add_tally(ds_outliers *o, ds_outliers *t) {
    o->n += t->n, o->sum += t->sum, o->oom |= t->oom;
    if (t->n) o->lo = t->lo < o->lo ? t->lo : o->lo, o->hi = t->hi > o->hi ? t->hi : o->hi;
    merge_top(o, t);
    reset(t);
}

/* Buckets of the top 16 bits of a value's bit pattern, which order like the values: the values
 * are absolute values, so the sign bit is clear and the buckets are below 2^15. */
enum { HIST_BUCKETS = 1 << 15 };

/* One pass over a part's |values|, in blocks that stay in L1 between the two loops: the sums
 * of the central powers (the mean is known from pushing) into *S2 and *S4, and the part's
 * histogram, cleared and filled only over the buckets its values span. */
static void moments_and_histogram(ds_outliers *o, double mean, double *s2_out, double *s4_out) {
    enum { BLOCK = 4096 };
    double s2 = 0, s4 = 0;
    const float *a = o->all;
    *s2_out = 0, *s4_out = 0;
    if (!o->n) return;
    const uint32_t b0 = o->lo >> 16;
    memset(o->hist + b0, 0, ((o->hi >> 16) - b0 + 1) * sizeof *o->hist);
    for (size_t i0 = 0; i0 < o->n; i0 += BLOCK) {
        const size_t i1 = o->n - i0 < BLOCK ? o->n : i0 + BLOCK;
#pragma omp simd reduction(+ : s2, s4)
        for (size_t i = i0; i < i1; i++) {
            double d = a[i] - mean, d2 = d * d;
            s2 += d2, s4 += d2 * d2;
        }
        for (size_t i = i0; i < i1; i++) {
            uint32_t u;
            memcpy(&u, &a[i], 4);
            o->hist[u >> 16]++;
        }
    }
    *s2_out = s2, *s4_out = s4;
}

/* The values of A[0..N) in buckets B_LO..B_LO+WIDTH, in order, to OUT; their count. OUT has
 * one slot more than that: the loop stores every value it looks at and advances past the
 * candidates only. Branch-free, since about half the values lie below the median's bucket (a
 * branch on each would be mispredicted half the time), except for one test per block of 16,
 * most of which hold no candidate. */
static size_t gather_candidates(const float *a, size_t n, uint32_t b_lo, uint32_t width, float *out) {
    enum { BLOCK = 16 };
    size_t j = 0, i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        int any = 0;
        for (int k = 0; k < BLOCK; k++) {
            uint32_t u;
            memcpy(&u, &a[i + k], 4);
            any |= (u >> 16) - b_lo <= width;
        }
        if (!any) continue;
        for (int k = 0; k < BLOCK; k++) {
            uint32_t u;
            memcpy(&u, &a[i + k], 4);
            out[j] = a[i + k];
            j += (u >> 16) - b_lo <= width;
        }
    }
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        out[j] = a[i];
        j += (u >> 16) - b_lo <= width;
    }
    return j;
}

/* What finishing one statistic (the union of its parts) needs between the parallel phases. */
typedef struct {
    ds_outliers *parts;
    size_t n, *hist; /* hist: the parts' histograms summed */
    size_t first_bucket, last_bucket; /* the buckets that any part's values span */
    double sum, mean, *s24; /* s24: each part's sums of squared and fourth central powers */
    size_t k_lo, k_hi, below, b_lo, b_hi, m; /* the two middle ranks, their buckets, the values below */
    size_t *first;  /* [nparts + 1]: where each part's candidates start among all of them */
    float *cand;    /* the candidates, part p's at first[p] + p (one spare slot each), then closed up */
} finishing;

/* One task of a parallel phase: part P of statistic S. */
typedef struct {
    int s, p;
    size_t n;
} part_task;

static int larger_first(const void *a, const void *b) {
    const part_task *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? 1 : -1;
    return x->s != y->s ? x->s - y->s : x->p - y->p;
}

/* Part O's count in bucket B: its histogram is cleared and filled only over its own range. */
static size_t part_count(const ds_outliers *o, size_t b) {
    return o->n && b >= o->lo >> 16 && b <= o->hi >> 16 ? o->hist[b] : 0;
}

/* The buckets of the two middle ranks from the summed histogram, and each part's share of the
 * values in them (from its own histogram). */
static int place_candidates(finishing *f, int nparts) {
    const size_t *hist = f->hist;
    size_t below = 0, b_lo = f->first_bucket;
    while (below + hist[b_lo] <= f->k_lo) below += hist[b_lo++];
    size_t b_hi = b_lo, below_hi = below;
    while (below_hi + hist[b_hi] <= f->k_hi) below_hi += hist[b_hi++];
    f->below = below, f->b_lo = b_lo, f->b_hi = b_hi, f->m = below_hi + hist[b_hi] - below;
    f->cand = malloc((f->m + (size_t)nparts) * sizeof *f->cand);
    f->first = malloc(((size_t)nparts + 1) * sizeof *f->first);
    if (!f->cand || !f->first) return -1;
    f->first[0] = 0;
    for (int p = 0; p < nparts; p++) {
        size_t c = 0;
        for (size_t b = b_lo; b <= b_hi; b++) c += part_count(&f->parts[p], b);
        f->first[p + 1] = f->first[p] + c;
    }
    return 0;
}

/* The median (numpy's: the mean of the two middle values when n is even) from the gathered
 * candidates: the parts' ranges closed up, a quickselect for each middle rank. */
static double median_of_candidates(finishing *f, int nparts) {
    for (int p = 1; p < nparts; p++)
        memmove(f->cand + f->first[p], f->cand + f->first[p] + p, (f->first[p + 1] - f->first[p]) * sizeof *f->cand);
    double lo = ds_select_float(f->cand, f->m, f->k_lo - f->below), hi = ds_select_float(f->cand, f->m, f->k_hi - f->below);
    return f->n % 2 ? hi : 0.5 * (lo + hi);
}

/* Part 0's heap takes the other parts' top values in part order; the result in descending
 * order. */
static int top_values(ds_outliers *parts, int nparts, ds_outlier_result *r) {
    ds_outliers *o = &parts[0];
    for (int p = 1; p < nparts; p++) merge_top(o, &parts[p]);
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
    if (!r->values || !r->coords) return -1;
    memcpy(r->values, o->top, (size_t)k * sizeof *r->values);
    memcpy(r->coords, o->top_coords, (size_t)k * o->ncoords * sizeof *r->coords);
    return 0;
}

/* Allocations and sums before the parallel phases; -1 when memory ran out (then or while
 * pushing). */
static int start_finishing(finishing *f, int nparts, ds_outlier_result *r) {
    ds_outliers *parts = f->parts;
    int oom = 0;
    f->first_bucket = HIST_BUCKETS - 1, f->last_bucket = 0;
    for (int p = 0; p < nparts; p++) {
        f->n += parts[p].n, f->sum += parts[p].sum, oom |= parts[p].oom;
        if (parts[p].n && parts[p].lo >> 16 < f->first_bucket) f->first_bucket = parts[p].lo >> 16;
        if (parts[p].n && parts[p].hi >> 16 > f->last_bucket) f->last_bucket = parts[p].hi >> 16;
        if (!parts[p].hist && !(parts[p].hist = malloc(HIST_BUCKETS * sizeof *parts[p].hist))) oom = 1;
    }
    f->s24 = oom ? NULL : calloc(2 * (size_t)nparts, sizeof *f->s24);
    f->hist = f->s24 ? calloc(HIST_BUCKETS, sizeof *f->hist) : NULL;
    r->count = (int64_t)f->n;
    r->mean = f->n ? f->sum / f->n : 0;
    f->mean = r->mean;
    /* the two middle ranks, 0-based */
    f->k_hi = f->n / 2, f->k_lo = f->n % 2 ? f->k_hi : f->k_hi - 1;
    return f->hist ? 0 : -1;
}

static void end_finishing(finishing *f, int nparts) {
    for (int p = 0; p < nparts; p++) reset(&f->parts[p]); /* ready for the next layer; buffers kept */
    free(f->s24), free(f->hist), free(f->first), free(f->cand);
}

/* Every statistic's state, emptied, for start_finishing; NULL when out of memory. */
static finishing *new_finishing(ds_outliers *const *stats, int nstats, int nparts, ds_outlier_result *results) {
    finishing *f = calloc((size_t)nstats, sizeof *f);
    for (int s = 0; s < nstats; s++) {
        memset(&results[s], 0, sizeof results[s]);
        if (f) f[s].parts = stats[s];
        else for (int p = 0; p < nparts; p++) reset(&stats[s][p]);
    }
    return f;
}

int ds_outliers_finish_many(ds_outliers *const *stats, int nstats, int nparts, ds_outlier_result *results) {
    finishing *f = new_finishing(stats, nstats, nparts, results);
    part_task *tasks = malloc((size_t)nstats * nparts * sizeof *tasks);
    int failed = !f || !tasks, ntasks = 0;
    for (int s = 0; !failed && s < nstats; s++) failed = start_finishing(&f[s], nparts, &results[s]);
    /* The parts of every statistic in one list, the largest first, for each parallel phase. */
    for (int s = 0; !failed && s < nstats; s++)
        for (int p = 0; p < nparts; p++)
            if (f[s].n) tasks[ntasks++] = (part_task){s, p, stats[s][p].n};
    if (!failed) qsort(tasks, (size_t)ntasks, sizeof *tasks, larger_first);
    if (!failed) {
#pragma omp parallel for schedule(dynamic)
        for (int t = 0; t < ntasks; t++) {
            finishing *g = &f[tasks[t].s];
            const int p = tasks[t].p;
            moments_and_histogram(&g->parts[p], g->mean, &g->s24[2 * p], &g->s24[2 * p + 1]);
        }
        enum { SPAN = 2048 }; /* buckets per task of the summing */
        const int spans = HIST_BUCKETS / SPAN;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < nstats * spans; t++) {
            finishing *g = &f[t / spans];
            size_t from = (size_t)(t % spans) * SPAN, to = from + SPAN - 1;
            if (from < g->first_bucket) from = g->first_bucket;
            if (to > g->last_bucket) to = g->last_bucket;
            for (size_t b = from; g->n && b <= to; b++)
                for (int p = 0; p < nparts; p++) g->hist[b] += part_count(&g->parts[p], b);
        }
    }
    for (int s = 0; !failed && s < nstats; s++) {
        finishing *g = &f[s];
        ds_outlier_result *r = &results[s];
        if (!g->n) continue;
        double s2 = 0, s4 = 0;
        for (int p = 0; p < nparts; p++) s2 += g->s24[2 * p], s4 += g->s24[2 * p + 1]; /* in part order */
        double m2 = s2 / g->n, m4 = s4 / g->n;
        r->std = sqrt(m2);
        r->kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0;
        failed = place_candidates(g, nparts);
    }
    if (!failed) {
#pragma omp parallel for schedule(dynamic)
        for (int t = 0; t < ntasks; t++) {
            finishing *g = &f[tasks[t].s];
            const int p = tasks[t].p;
            gather_candidates(g->parts[p].all, g->parts[p].n, (uint32_t)g->b_lo, (uint32_t)(g->b_hi - g->b_lo),
                              g->cand + g->first[p] + p);
        }
#pragma omp parallel for schedule(dynamic)
        for (int s = 0; s < nstats; s++)
            if (f[s].n) results[s].median = median_of_candidates(&f[s], nparts);
    }
    for (int s = 0; !failed && s < nstats; s++) failed = top_values(stats[s], nparts, &results[s]);
    for (int s = 0; f && s < nstats; s++) {
        if (failed) ds_outlier_result_free(&results[s]);
        end_finishing(&f[s], nparts);
    }
    free(f), free(tasks);
    return failed ? ds_failc(DS_ERR_NOMEM, "out of memory collecting outlier statistics") : 0;
}

int ds_outliers_finish_parts(ds_outliers *parts, int nparts, ds_outlier_result *r) {
    return ds_outliers_finish_many(&parts, 1, nparts, r);
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
