/* The aggregates of a sweep's master: mean, std, 95 % interval and median over prompts of every
 * field, layer and head, and the grid tables. The per-prompt values are read from the shards in
 * shard order, which is prompt order, so every sum is taken in the same order whatever the
 * number of ranks; they are the values the master's virtual datasets give, read with one open
 * of each shard instead of HDF5 opening every shard again for each virtual dataset. Columns are
 * independent, so they are spread over threads: a column's figures come from one thread, in
 * the same order as on one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/select.h"
#include "cli/sweep.h"
#include "diffscope/error.h"

/* The figures of the K values X (no NaN) whose sum, taken in their order, is SUM. The medians
 * by selection (base/select.h), not by sorting: the master computes one for every layer, head
 * and field over all prompts. */
static void stats_of(double *x, int k, double sum, double *mean, double *std, double *ci95, double *median) {
    double ss = 0;
    *mean = k ? sum / k : NAN;
    for (int i = 0; i < k; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = k > 1 ? sqrt(ss / (k - 1)) : NAN;
    *ci95 = k > 1 ? 1.96 * *std / sqrt(k) : NAN;
    if (!k) {
        *median = NAN;
        return;
    }
    double upper = ds_select_double(x, (size_t)k, (size_t)k / 2), lower = upper;
    for (int i = 0; k % 2 == 0 && i < k / 2; i++) lower = i == 0 || x[i] > lower ? x[i] : lower;
    *median = k % 2 ? upper : (lower + upper) / 2;
}

void sweep_stats(double *x, int n, double *mean, double *std, double *ci95, double *median, int *count) {
    int k = 0;
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) x[k++] = x[i];
    for (int i = 0; i < k; i++) sum += x[i];
    stats_of(x, k, sum, mean, std, ci95, median);
    *count = k;
}

/* sweep_stats of column J of X [P, N] into entry J of A; V: room for P values. The sum is taken
 * while the column is gathered, over the same values in the same order. */
static void column_stats(const double *x, int P, int n, int j, double *v, sweep_agg *a) {
    int k = 0;
    double sum = 0;
    for (int i = 0; i < P; i++) {
        double y = x[(size_t)i * n + j];
        if (!isnan(y)) v[k++] = y, sum += y;
    }
    stats_of(v, k, sum, &a->mean[j], &a->std[j], &a->ci95[j], &a->median[j]);
    a->count[j] = k;
}

/* ---- reading the shards ---- */

/* PATH of the open shard FILE (named SHARD) into BUF: ROWS prompts of the shape ND, DIMS. */
static int read_rows(hid_t file, const char *shard, const char *path, hid_t memtype, int rows, int nd, const int *dims,
                     void *buf) {
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT), sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t have[4] = {0};
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == nd + 1 && H5Sget_simple_extent_dims(sp, have, NULL) >= 0 &&
             have[0] == (hsize_t)rows;
    for (int k = 0; ok && k < nd; k++) ok = have[k + 1] == (hsize_t)dims[k];
    int rc = !ok ? ds_fail("%s: no dataset '%s' of %d prompts in the shape this sweep writes: a shard of another sweep? "
                           "(rerun with --force)", shard, path, rows)
         : H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? ds_failc(DS_ERR_IO, "%s: cannot read '%s'", shard, path)
                                                                        : 0;
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* Model LAY's CORRECT [P] and every field's VALS[k] [P, count], from the NRANKS shards of OUT. */
static int read_shards(const char *out, const sweep_layout *lay, const int *first, int nranks, int *correct,
                       double *const *vals) {
    char *dir = sweep_dir(out), path[160];
    int rc = dir ? 0 : -1;
    for (int r = 0; !rc && r < nranks; r++) {
        int a = first[r], rows = first[r + 1] - a;
        if (!rows) continue;
        char *shard = sweep_shard_path(dir, r, nranks);
        hid_t f = shard ? H5Fopen(shard, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
        rc = !shard ? -1 : f < 0 ? ds_fail("%s: cannot open the shard", shard) : 0;
        snprintf(path, sizeof path, "/%s/correct", lay->name);
        rc = rc || read_rows(f, shard, path, H5T_NATIVE_INT, rows, 0, NULL, correct + a);
        for (int k = 0; !rc && k < lay->nfields; k++) {
            int dims[2], nd = sweep_field_dims(lay, &lay->f[k], dims);
            snprintf(path, sizeof path, "/%s/%s", lay->name, lay->f[k].name);
            rc = read_rows(f, shard, path, H5T_NATIVE_DOUBLE, rows, nd, dims, vals[k] + (size_t)a * lay->f[k].count);
        }
        if (f >= 0) H5Fclose(f);
        free(shard);
    }
    free(dir);
    return rc ? -1 : 0;
}

/* ---- the statistics of columns ---- */

static int agg_alloc(sweep_agg *a, int n) {
    a->mean = malloc((size_t)n * sizeof(double)), a->std = malloc((size_t)n * sizeof(double));
    a->ci95 = malloc((size_t)n * sizeof(double)), a->median = malloc((size_t)n * sizeof(double));
    a->count = malloc((size_t)n * sizeof(int));
    return a->mean && a->std && a->ci95 && a->median && a->count ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
}

static void agg_free(sweep_agg *a) { free(a->mean), free(a->std), free(a->ci95), free(a->median), free(a->count); }

/* Every column of X [P, n] into A. */
typedef struct {
    const double *x;
    int n;
    sweep_agg *a;
} agg_task;

/* The NT tasks' columns, spread over the threads (each with one column buffer). */
static int agg_tasks(const agg_task *t, int nt, int P) {
    long total = 0;
    for (int k = 0; k < nt; k++) total += t[k].n;
    int *task = malloc(((size_t)total + 1) * sizeof *task), *col = malloc(((size_t)total + 1) * sizeof *col);
    int rc = !task || !col;
    for (long c = 0, k = 0; !rc && k < nt; k++)
        for (int j = 0; j < t[k].n; j++, c++) task[c] = (int)k, col[c] = j;
    for (int k = 0; !rc && k < nt; k++) rc = agg_alloc(t[k].a, t[k].n);
    int nomem = 0;
#pragma omp parallel if (!rc && total > 1) reduction(| : nomem)
    {
        double *v = rc ? NULL : malloc(((size_t)P + 1) * sizeof *v);
        nomem |= !rc && !v;
#pragma omp for schedule(dynamic, 4)
        for (long c = 0; c < total; c++) {
            if (!v) continue;
            const agg_task *k = &t[task[c]];
            column_stats(k->x, P, k->n, col[c], v, k->a);
        }
        free(v);
    }
    free(task), free(col);
    return rc || nomem ? ds_failc(DS_ERR_NOMEM, "out of memory") : 0;
}

/* The per-prompt head means of an [P, L, H] array, as compare's per-layer figures are made. */
static void head_means(const double *x, int P, int L, int H, double *out) {
    for (long pl = 0; pl < (long)P * L; pl++) {
        double s = 0;
        for (int h = 0; h < H; h++) s += x[pl * H + h];
        out[pl] = s / H;
    }
}

/* ---- writing ---- */

static int agg_write(hid_t f, const char *group, const sweep_agg *a, int nd, const int *dims) {
    hsize_t hd[2] = {(hsize_t)dims[0], nd > 1 ? (hsize_t)dims[1] : 1};
    const double *cols[4] = {a->mean, a->std, a->ci95, a->median};
    static const char *const names[4] = {"mean", "std", "ci95", "median"};
    char path[200];
    int rc = 0;
    for (int k = 0; !rc && k < 4; k++)
        snprintf(path, sizeof path, "%s/%s", group, names[k]), rc = sweep_write_f64(f, path, nd, hd, cols[k]);
    snprintf(path, sizeof path, "%s/count", group);
    return rc || sweep_write_i32(f, path, nd, hd, a->count);
}

/* The length × depth table: mean over trials of answer/noise mass (heads and the last half of
 * the layers averaged, as needle reports them) and of correct. */
static int grid_tables(hid_t f, const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, int m,
                       const double *const *field_vals, const int *correct, sweep_aggs *ag) {
    const sweep_layout *lay = &su->lay[m];
    int NL = o->nlengths, ND = o->ndepths, K = o->trials, b = ds_attn_last_half_begin(lay->L);
    size_t cells = (size_t)NL * ND;
    hsize_t hd[2] = {(hsize_t)NL, (hsize_t)ND};
    char path[160];
    if (!(ag->grid_acc[m] = calloc(cells, sizeof(double)))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ps->n; i++) ag->grid_acc[m][i / K] += correct[i] > 0 ? 1.0 / K : 0.0;
    snprintf(path, sizeof path, "/aggregates/grid/%s/acc", lay->name);
    int rc = sweep_write_f64(f, path, 2, hd, ag->grid_acc[m]);
    for (int j = 0, fi = 0; !rc && j < DS_ATTN_NMAPS; j++) {
        if ((ds_attn_maps[j] == DS_MAP_SOFTMAX) == lay->is_diff) continue;
        for (int which = 0; !rc && which < 2; which++) { /* fields fi (answer_mass), fi + 1 (noise_mass) */
            double *t = calloc(cells, sizeof *t);
            if (!t) return ds_failc(DS_ERR_NOMEM, "out of memory");
            const double *x = field_vals[fi + which];
            for (int i = 0; i < ps->n; i++) {
                double s = 0;
                for (int l = b; l < lay->L; l++)
                    for (int h = 0; h < lay->heads; h++) s += x[((size_t)i * lay->L + l) * lay->heads + h];
                t[i / K] += s / ((double)(lay->L - b) * lay->heads) / K;
            }
            (which ? ag->grid_noise : ag->grid_answer)[m][j] = t;
            snprintf(path, sizeof path, "/aggregates/grid/%s/%s/%s", lay->name, ds_map_name(ds_attn_maps[j]),
                     which ? "noise_mass" : "answer_mass");
            rc = sweep_write_f64(f, path, 2, hd, t);
        }
        fi += 5;
    }
    return rc;
}

/* Model M's per-prompt values, held while its aggregates are made. */
typedef struct {
    int *correct;
    double *vals[SWEEP_MAX_FIELDS], *head_means[SWEEP_MAX_FIELDS], *correct_nan;
} model_values;

static void values_free(model_values *v) {
    for (int k = 0; k < SWEEP_MAX_FIELDS; k++) free(v->vals[k]), free(v->head_means[k]);
    free(v->correct), free(v->correct_nan);
}

static int values_alloc(model_values *v, const sweep_layout *lay, int P) {
    int ok = (v->correct = malloc(((size_t)P + 1) * sizeof *v->correct)) &&
             (v->correct_nan = malloc(((size_t)P + 1) * sizeof *v->correct_nan));
    for (int k = 0; ok && k < lay->nfields; k++) {
        ok = (v->vals[k] = malloc(((size_t)P * lay->f[k].count + 1) * sizeof(double))) != NULL;
        if (ok && lay->f[k].shape == SWEEP_LH) ok = (v->head_means[k] = malloc(((size_t)P * lay->L + 1) * sizeof(double))) != NULL;
    }
    return ok ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
}

/* Model M: reads its values, computes every aggregate (the fields, their head means, correct)
 * at once over the threads, then writes them field by field. */
static int model_aggregates(hid_t f, const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, int m,
                            const int *first, int nranks, sweep_aggs *ag) {
    const sweep_layout *lay = &su->lay[m];
    int P = ps->n, nt = 0;
    model_values v = {0};
    agg_task t[2 * SWEEP_MAX_FIELDS + 1];
    char path[160];
    int rc = values_alloc(&v, lay, P) || read_shards(o->out, lay, first, nranks, v.correct, v.vals);
    for (int k = 0; !rc && k < lay->nfields; k++) {
        t[nt++] = (agg_task){v.vals[k], lay->f[k].count, &ag->field[m][k]};
        if (lay->f[k].shape != SWEEP_LH) continue;
        head_means(v.vals[k], P, lay->L, lay->heads, v.head_means[k]);
        t[nt++] = (agg_task){v.head_means[k], lay->L, &ag->over_heads[m][k]};
    }
    /* correct: 1/0 per prompt with an answer, NaN (left out) without. */
    for (int i = 0; !rc && i < P; i++) v.correct_nan[i] = v.correct[i] < 0 ? NAN : v.correct[i];
    t[nt++] = (agg_task){v.correct_nan, 1, &ag->correct[m]};
    rc = rc || agg_tasks(t, nt, P);
    for (int k = 0; !rc && k < lay->nfields; k++) {
        int dims[2], nd = sweep_field_dims(lay, &lay->f[k], dims);
        snprintf(path, sizeof path, "/aggregates/%s/%s", lay->name, lay->f[k].name);
        rc = agg_write(f, path, &ag->field[m][k], nd, dims);
        snprintf(path, sizeof path, "/aggregates/%s/%s/over_heads", lay->name, lay->f[k].name);
        if (!rc && lay->f[k].shape == SWEEP_LH) rc = agg_write(f, path, &ag->over_heads[m][k], 1, dims);
    }
    int one = 1;
    snprintf(path, sizeof path, "/aggregates/%s/correct", lay->name);
    rc = rc || agg_write(f, path, &ag->correct[m], 1, &one);
    if (!rc && o->task) rc = grid_tables(f, o, su, ps, m, (const double *const *)v.vals, v.correct, ag);
    values_free(&v);
    return rc;
}

int sweep_aggregates_write(hid_t f, const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps,
                           const int *first, int nranks, sweep_aggs *ag) {
    int rc = 0;
    ag->nmodels = su->nmodels;
    for (int m = 0; !rc && m < su->nmodels; m++) rc = model_aggregates(f, o, su, ps, m, first, nranks, ag);
    return rc;
}

void sweep_aggs_free(sweep_aggs *ag) {
    for (int m = 0; m < 2; m++) {
        for (int k = 0; k < SWEEP_MAX_FIELDS; k++) agg_free(&ag->field[m][k]), agg_free(&ag->over_heads[m][k]);
        agg_free(&ag->correct[m]);
        free(ag->grid_acc[m]);
        for (int j = 0; j < DS_ATTN_NMAPS; j++) free(ag->grid_answer[m][j]), free(ag->grid_noise[m][j]);
    }
    memset(ag, 0, sizeof *ag);
}
