/* Outlier statistics: a k-element min-heap for the top values; every |value| kept for an exact
 * median (a histogram of the top 16 bits of the values' bit patterns, then one of the low 16
 * bits of the values in the median's buckets); the moments taken a row at a time as rows come,
 * while the row is in cache. */
#include "dump/outliers.h"
#include "base/huge_alloc.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { HIST_BUCKETS = DS_OUTLIER_BUCKETS };

static int hist_init(ds_outlier_hist *h) {
    h->bucket = calloc(HIST_BUCKETS, sizeof *h->bucket);
    h->n = 0, h->lo = HIST_BUCKETS, h->hi = 0;
    return h->bucket ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory for an outlier histogram");
}

static void hist_free(ds_outlier_hist *h) {
    free(h->bucket);
    memset(h, 0, sizeof *h);
}

/* Empty, clearing only the buckets it has seen. */
static void hist_clear(ds_outlier_hist *h) {
    if (h->bucket && h->lo <= h->hi) memset(h->bucket + h->lo, 0, (h->hi - h->lo + 1) * sizeof *h->bucket);
    h->n = 0, h->lo = HIST_BUCKETS, h->hi = 0;
}

static void hist_widen(ds_outlier_hist *h, uint32_t lo_bits, uint32_t hi_bits) {
    if (lo_bits >> 16 < h->lo) h->lo = lo_bits >> 16;
    if (hi_bits >> 16 > h->hi) h->hi = hi_bits >> 16;
}

/* Counts A[0..N) (absolute values whose bit patterns lie in [LO_BITS, HI_BITS]) in H. */
static void hist_count(ds_outlier_hist *h, const float *a, size_t n, uint32_t lo_bits, uint32_t hi_bits) {
    size_t *bucket = h->bucket;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        bucket[u >> 16]++;
    }
    h->n += n;
    if (n) hist_widen(h, lo_bits, hi_bits);
}

/* A takes B's values (Pébay, "Formulas for robust, one-pass parallel computation of
 * covariances and arbitrary-order statistical moments", 2008): exact up to rounding, and stable
 * when the two means are far apart. */
static void moments_merge(ds_moments *a, const ds_moments *b) {
    if (b->n == 0) return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    const double na = a->n, nb = b->n, n = na + nb, d = b->mean - a->mean, dn = d / n, dn2 = dn * dn;
    a->m4 += b->m4 + d * dn2 * dn * na * nb * (na * na - na * nb + nb * nb) + 6 * dn2 * (na * na * b->m2 + nb * nb * a->m2) +
             4 * dn * (na * b->m3 - nb * a->m3);
    a->m3 += b->m3 + d * dn2 * na * nb * (na - nb) + 3 * dn * (na * b->m2 - nb * a->m2);
    a->m2 += b->m2 + d * dn * na * nb;
    a->mean += dn * nb;
    a->n = n;
}

int ds_outliers_init(ds_outliers *o, int k, int ncoords) {
    memset(o, 0, sizeof *o);
    o->k = k > 0 ? k : 1;
    o->lo = UINT32_MAX;
    o->hist.lo = HIST_BUCKETS;
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

/* The values of A[K0..K1) that beat the least of O's top values, into O's heap. */
static void insert_above(ds_outliers *o, const float *a, int64_t k0, int64_t k1, int64_t c0, int64_t c1) {
    for (int64_t k = k0; k < k1; k++) {
        if (o->ntop == o->k && a[k] <= o->top[0]) continue;
        int64_t c[3] = {c0, o->ncoords == 3 ? c1 : k, k};
        heap_insert(o, a[k], c);
    }
}

/* |ROW[k]| into DST[k], k < N, counted in O (its sum, moments, range and top values, and its
 * histogram when it has one). */
static void put_values(ds_outliers *o, float *dst, const float *row, int64_t n, int64_t c0, int64_t c1) {
    double sum = 0;
    uint32_t lo = UINT32_MAX, hi = 0;
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
    if (o->hist.bucket) hist_count(&o->hist, dst, (size_t)n, lo, hi);
    /* The row's central moments about its own mean, merged into O's. */
    ds_moments m = {(double)n, sum / n, 0, 0, 0};
    double s2 = 0, s3 = 0, s4 = 0;
#pragma omp simd reduction(+ : s2, s3, s4)
    for (int64_t k = 0; k < n; k++) {
        double d = dst[k] - m.mean, d2 = d * d;
        s2 += d2, s3 += d2 * d, s4 += d2 * d2;
    }
    m.m2 = s2, m.m3 = s3, m.m4 = s4;
    moments_merge(&o->mom, &m);
    o->lo = lo < o->lo ? lo : o->lo, o->hi = hi > o->hi ? hi : o->hi;
    o->sum += sum;
    o->n += (size_t)n;
    /* Only values above the heap's minimum can enter: most blocks of 16 hold none, which their
     * largest bit pattern shows (a NaN's lies above every threshold, as it passes the test of
     * insert_above, and a NaN at the top of the heap lets everything through, as that test does). */
    enum { BLOCK = 16 };
    int64_t k0 = 0;
    for (; k0 + BLOCK <= n; k0 += BLOCK) {
        if (o->ntop == o->k) {
            uint32_t top_bits, most = 0;
            memcpy(&top_bits, &o->top[0], sizeof top_bits);
            for (int k = 0; k < BLOCK; k++) {
                uint32_t u;
                memcpy(&u, &dst[k0 + k], sizeof u);
                most = u > most ? u : most;
            }
            if (most <= top_bits && top_bits <= 0x7f800000u) continue;
        }
        insert_above(o, dst, k0, k0 + BLOCK, c0, c1);
    }
    insert_above(o, dst, k0, n, c0, c1);
}

/* Empty, buffers kept. */
static void reset(ds_outliers *o) {
    o->n = 0, o->sum = 0, o->ntop = 0, o->oom = 0, o->lo = UINT32_MAX, o->hi = 0;
    memset(&o->mom, 0, sizeof o->mom);
    hist_clear(&o->hist);
}

/* O's heap takes FROM's top values that beat its least, in FROM's heap order. */
static void merge_top(ds_outliers *o, const ds_outliers *from) {
    for (int i = 0; i < from->ntop; i++)
        if (o->ntop < o->k || from->top[i] > o->top[0])
            heap_insert(o, from->top[i], &from->top_coords[(size_t)i * o->ncoords]);
}

void ds_outliers_push_row(ds_outliers *o, const float *row, int64_t n, int64_t c0, int64_t c1) {
    if (o->oom || n <= 0) return;
    if ((o->n + (size_t)n > o->cap && grow(o, o->n + (size_t)n)) || (!o->hist.bucket && hist_init(&o->hist))) {
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
    moments_merge(&o->mom, &t->mom);
    if (t->n) o->lo = t->lo < o->lo ? t->lo : o->lo, o->hi = t->hi > o->hi ? t->hi : o->hi;
    merge_top(o, t);
    reset(t);
}

/* Room for NEED candidates in O's buffer (kept for the next layer). */
static int grow_candidates(ds_outliers *o, size_t need) {
    size_t cap = o->cand_cap ? o->cand_cap : 4096;
    while (cap < need) cap *= 2;
    float *c = realloc(o->cand, cap * sizeof *c);
    if (!c) return -1;
    o->cand = c, o->cand_cap = cap;
    return 0;
}

/* O's values in buckets B_LO..B_LO+WIDTH, in order, into O's candidate buffer; their count,
 * or -1 when memory ran out. The buffer has one slot more than that: the loop stores every
 * value of a block it looks at and advances past the candidates only. Branch-free, since about
 * half the values lie below the median's bucket (a branch on each would be mispredicted half
 * the time), except for one test per block of 16, most of which hold no candidate. */
static int64_t gather_candidates(ds_outliers *o, uint32_t b_lo, uint32_t width) {
    enum { BLOCK = 16 };
    const float *a = o->all;
    const size_t n = o->n;
    size_t j = 0, i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        int any = 0;
        for (int k = 0; k < BLOCK; k++) {
            uint32_t u;
            memcpy(&u, &a[i + k], 4);
            any |= (u >> 16) - b_lo <= width;
        }
        if (!any) continue;
        if (j + BLOCK + 1 > o->cand_cap && grow_candidates(o, j + BLOCK + 1)) return -1;
        for (int k = 0; k < BLOCK; k++) {
            uint32_t u;
            memcpy(&u, &a[i + k], 4);
            o->cand[j] = a[i + k];
            j += (u >> 16) - b_lo <= width;
        }
    }
    if (j + BLOCK + 1 > o->cand_cap && grow_candidates(o, j + BLOCK + 1)) return -1;
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        o->cand[j] = a[i];
        j += (u >> 16) - b_lo <= width;
    }
    return (int64_t)j;
}

/* What finishing one statistic (the union of its parts) needs between the parallel phases. */
typedef struct {
    ds_outliers *parts;
    size_t n, *hist; /* hist: the parts' histograms summed */
    size_t first_bucket, last_bucket;           /* the buckets that the parts' histograms span */
    size_t k_lo, k_hi, b_lo, b_hi, m;  /* the two middle ranks, their buckets, the values in these */
    size_t below_lo, below_hi;         /* the values below b_lo and below b_hi */
    int64_t *found;  /* [nparts]: each part's candidates (in its buffer), -1 when memory ran out */
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

/* Part O's count in bucket B. */
static size_t part_count(const ds_outliers *o, size_t b) {
    return b >= o->hist.lo && b <= o->hist.hi ? o->hist.bucket[b] : 0;
}

/* The buckets of the two middle ranks, from the summed histogram. */
static void place_candidates(finishing *f) {
    const size_t *hist = f->hist;
    size_t below = 0, b_lo = f->first_bucket;
    while (below + hist[b_lo] <= f->k_lo) below += hist[b_lo++];
    size_t b_hi = b_lo, below_hi = below;
    while (below_hi + hist[b_hi] <= f->k_hi) below_hi += hist[b_hi++];
    f->below_lo = below, f->below_hi = below_hi, f->b_lo = b_lo, f->b_hi = b_hi, f->m = below_hi + hist[b_hi] - below;
}

/* 0 when the parts' candidates are the ones the histogram counts; -1 when memory ran out while
 * gathering them, -2 (with the message) when they disagree. */
static int check_candidates(const finishing *f, int nparts) {
    size_t m = 0;
    for (int p = 0; p < nparts; p++) {
        if (f->found[p] < 0) return -1;
        m += (size_t)f->found[p];
    }
    return m == f->m ? 0 : (ds_fail("internal error: %zu median candidates, the histogram counts %zu", m, f->m), -2);
}

/* The value of rank RANK (0-based, ascending) among the parts' candidates in bucket BUCKET. The
 * low 16 bits of a bit pattern complete its top 16 bits, so counting the candidates by them
 * finds the value exactly, in one pass and without reordering anything. */
static float rank_in_bucket(const finishing *f, int nparts, uint32_t bucket, size_t rank, size_t *low) {
    memset(low, 0, 65536 * sizeof *low);
    for (int p = 0; p < nparts; p++)
        for (int64_t i = 0; i < f->found[p]; i++) {
            uint32_t u;
            memcpy(&u, &f->parts[p].cand[i], 4);
            if (u >> 16 == bucket) low[u & 0xffff]++;
        }
    size_t below = 0;
    uint32_t b = 0;
    while (below + low[b] <= rank) below += low[b++];
    const uint32_t u = bucket << 16 | b;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* The median (numpy's: the mean of the two middle values when n is even); -1 when memory ran
 * out. */
static int median_of_candidates(const finishing *f, int nparts, double *median) {
    size_t *low = malloc(65536 * sizeof *low);
    if (!low) return -1;
    double hi = rank_in_bucket(f, nparts, (uint32_t)f->b_hi, f->k_hi - f->below_hi, low);
    double lo = f->n % 2 ? hi : rank_in_bucket(f, nparts, (uint32_t)f->b_lo, f->k_lo - f->below_lo, low);
    free(low);
    *median = f->n % 2 ? hi : 0.5 * (lo + hi);
    return 0;
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

/* 1 when some of O's values were put, not pushed, and so are not in its histogram yet. */
static int uncounted(const ds_outliers *o) { return o->hist.n != o->n; }

/* The count, mean and moments (the parts' merged in part order), and the allocations before
 * the parallel phases; -1 when memory ran out (then or while pushing). */
static int start_finishing(finishing *f, int nparts, ds_outlier_result *r) {
    ds_outliers *parts = f->parts;
    ds_moments mom = {0};
    double sum = 0;
    int oom = 0;
    for (int p = 0; p < nparts; p++) {
        f->n += parts[p].n, sum += parts[p].sum, oom |= parts[p].oom;
        moments_merge(&mom, &parts[p].mom);
        if (uncounted(&parts[p]) && !parts[p].hist.bucket && hist_init(&parts[p].hist)) oom = 1;
    }
    r->count = (int64_t)f->n;
    r->mean = f->n ? sum / f->n : 0;
    double m2 = f->n ? mom.m2 / f->n : 0, m4 = f->n ? mom.m4 / f->n : 0;
    r->std = sqrt(m2);
    r->kurtosis = m2 > 0 ? m4 / (m2 * m2) : 0;
    /* the two middle ranks, 0-based */
    f->k_hi = f->n / 2, f->k_lo = f->n % 2 ? f->k_hi : f->k_hi - 1;
    f->hist = oom ? NULL : calloc(HIST_BUCKETS, sizeof *f->hist);
    f->found = f->hist ? calloc((size_t)nparts, sizeof *f->found) : NULL;
    return f->found ? 0 : -1;
}

/* The buckets that the parts' histograms span, once every value is counted. */
static void bucket_range(finishing *f, int nparts) {
    f->first_bucket = HIST_BUCKETS - 1, f->last_bucket = 0;
    for (int p = 0; p < nparts; p++) {
        const ds_outlier_hist *h = &f->parts[p].hist;
        if (h->lo <= h->hi && h->lo < f->first_bucket) f->first_bucket = h->lo;
        if (h->lo <= h->hi && h->hi > f->last_bucket) f->last_bucket = h->hi;
    }
}

static void end_finishing(finishing *f, int nparts) {
    for (int p = 0; p < nparts; p++) reset(&f->parts[p]); /* ready for the next layer; buffers kept */
    free(f->hist), free(f->found);
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
        /* The counts of the values put, in one pass here rather than by the tasks that put
         * them (why: docs/performance.md, "Run 13"). */
#pragma omp parallel for schedule(dynamic)
        for (int t = 0; t < ntasks; t++) {
            ds_outliers *o = &f[tasks[t].s].parts[tasks[t].p];
            if (!uncounted(o)) continue;
            hist_clear(&o->hist);
            hist_count(&o->hist, o->all, o->n, o->lo, o->hi);
        }
        for (int s = 0; s < nstats; s++) bucket_range(&f[s], nparts);
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
        for (int s = 0; s < nstats; s++)
            if (f[s].n) place_candidates(&f[s]);
#pragma omp parallel for schedule(dynamic)
        for (int t = 0; t < ntasks; t++) {
            finishing *g = &f[tasks[t].s];
            g->found[tasks[t].p] = gather_candidates(&g->parts[tasks[t].p], (uint32_t)g->b_lo, (uint32_t)(g->b_hi - g->b_lo));
        }
    }
    for (int s = 0; !failed && s < nstats; s++) failed = f[s].n ? check_candidates(&f[s], nparts) : 0;
    if (!failed) {
        int short_of_memory = 0;
#pragma omp parallel for schedule(dynamic) reduction(| : short_of_memory)
        for (int s = 0; s < nstats; s++)
            if (f[s].n) short_of_memory |= median_of_candidates(&f[s], nparts, &results[s].median) != 0;
        failed = short_of_memory;
    }
    for (int s = 0; !failed && s < nstats; s++) failed = top_values(stats[s], nparts, &results[s]);
    for (int s = 0; f && s < nstats; s++) {
        if (failed) ds_outlier_result_free(&results[s]);
        end_finishing(&f[s], nparts);
    }
    free(f), free(tasks);
    if (failed == -2) return -1;
    return failed ? ds_failc(DS_ERR_NOMEM, "out of memory collecting outlier statistics") : 0;
}

int ds_outliers_finish_parts(ds_outliers *parts, int nparts, ds_outlier_result *r) {
    return ds_outliers_finish_many(&parts, 1, nparts, r);
}

int ds_outliers_finish(ds_outliers *o, ds_outlier_result *r) { return ds_outliers_finish_parts(o, 1, r); }

void ds_outliers_free(ds_outliers *o) {
    hist_free(&o->hist);
    free(o->all), free(o->top), free(o->top_coords), free(o->cand);
    memset(o, 0, sizeof *o);
}

void ds_outlier_result_free(ds_outlier_result *r) {
    free(r->values), free(r->coords);
    memset(r, 0, sizeof *r);
}
