/* `diffscope compare` output: the side-by-side table, JSON (cJSON) and HDF5. The three carry
 * the same numbers under the same names (docs/compare.md). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/compare.h"
#include "io/h5out.h"
#include "io/provenance.h"

const char *const cmp_metric_names[5] = {"answer_mass", "noise_mass", "sink_mass", "entropy", "sparsity"};
static const char *const metric_help[5] = {
    "sum of M[q,k] over the span S",
    "sum of M[q,k] over 0 < k <= q outside S",
    "M[q,0], the first token",
    "-sum M[q,k] ln M[q,k] over k <= q, nats (softmax maps only)",
    "share of the q+1 entries below 1e-3 of the row's largest |entry|"};
const char *const cmp_table5_names[DS_TABLE5_RANKS + 1] = {"top1", "top2", "top3", "top10", "top100", "median"};

double cmp_metric(const ds_attn_row_stats *s, int i) {
    const double v[5] = {s->answer_mass, s->noise_mass, s->sink_mass, s->entropy, s->sparsity};
    return v[i];
}

double cmp_table5_value(const ds_table5 *t, int i) { return i < DS_TABLE5_RANKS ? t->top[i] : t->median; }

/* ---- table ---- */

static void print_num(FILE *f, int width, double v) {
    if (isnan(v)) fprintf(f, " %*s", width, "-");
    else fprintf(f, " %*.4f", width, v);
}

static void print_label(FILE *f, const cmp_result *r, int t) {
    const char *s = r->labels && r->labels[t] ? r->labels[t] : NULL;
    if (s) fprintf(f, "\"%s\"", s);
    else fprintf(f, "[%d]", r->ids[t]);
}

static void print_header(FILE *f, const cmp_result *r) {
    for (int i = 0; i < r->nmodels; i++) {
        const ds_attn_stats *st = r->models[i].st;
        fprintf(f, "%s: %s (%s, %d layers, %d %sheads)\n", r->models[i].name, r->models[i].path, r->models[i].arch,
                st->L, st->heads, st->is_diff ? "differential " : "");
    }
    fprintf(f, "tokens: %d, query q = %d ", r->T, r->query);
    print_label(f, r, r->query);
    if (r->span_end) {
        fprintf(f, ", span S = %d:%d", r->span_begin, r->span_end);
        for (int t = r->span_begin; t < r->span_end; t++) fputc(' ', f), print_label(f, r, t);
    } else {
        fprintf(f, ", no span (answer_mass not defined)");
    }
    fputc('\n', f);
}

/* Columns: one per (model, map). */
typedef struct {
    int model, map;
    char title[32];
} column;

static int columns_of(const cmp_result *r, column *cols) {
    int n = 0;
    for (int i = 0; i < r->nmodels; i++) {
        int maps[DS_ATTN_NMAPS], nm = cmp_maps(r->models[i].st, maps);
        for (int j = 0; j < nm; j++) {
            cols[n].model = i, cols[n].map = maps[j];
            snprintf(cols[n].title, sizeof cols[n].title, "%s %s", r->models[i].name, ds_map_name(maps[j]));
            n++;
        }
    }
    return n;
}

/* The per-layer figures only DiffLlama has: [L] arrays of ds_attn_stats, and their per-head
 * [L * heads] arrays where there are some. */
typedef struct {
    const char *name, *help;
    const double *(*layer)(const ds_attn_stats *st);
    const char *head_name;                          /* of the per-head values in JSON and HDF5 */
    const double *(*head)(const ds_attn_stats *st); /* NULL: one value per layer */
} diff_series;

static const double *lambda_of(const ds_attn_stats *st) { return st->lambda_full; }
static const double *cancelled_of(const ds_attn_stats *st) { return st->cancelled_share_layer; }
static const double *cancelled_heads_of(const ds_attn_stats *st) { return st->cancelled_share; }

static const diff_series diff_series_list[] = {
    {"lambda_full", "the λ of each DiffLlama layer in this run", lambda_of, NULL, NULL},
    {"cancelled_share", "share of softmax1's mass at row q that λ·softmax2 cancels, mean over heads",
     cancelled_of, "cancelled_share_per_head", cancelled_heads_of},
};
enum { N_DIFF_SERIES = sizeof diff_series_list / sizeof diff_series_list[0] };

static void print_diff_series(FILE *f, const cmp_result *r, const diff_series *ds) {
    int any = 0;
    for (int i = 0; i < r->nmodels; i++) any |= r->models[i].st->is_diff;
    if (!any) return;
    fprintf(f, "\n%s: %s\nlayer", ds->name, ds->help);
    for (int i = 0; i < r->nmodels; i++)
        if (r->models[i].st->is_diff) fprintf(f, " %12s", r->models[i].name);
    fputc('\n', f);
    for (int l = 0; l < r->models[0].st->L || (r->nmodels > 1 && l < r->models[1].st->L); l++) {
        fprintf(f, "%5d", l);
        for (int i = 0; i < r->nmodels; i++) {
            const ds_attn_stats *st = r->models[i].st;
            if (st->is_diff) print_num(f, 12, l < st->L ? ds->layer(st)[l] : NAN);
        }
        fputc('\n', f);
    }
}

static void print_metric(FILE *f, const cmp_result *r, const column *cols, int ncols, int m) {
    if (m == 0 && !r->span_end) return;
    fprintf(f, "\n%s: %s\nlayer", cmp_metric_names[m], metric_help[m]);
    for (int c = 0; c < ncols; c++) fprintf(f, " %12s", cols[c].title);
    fputc('\n', f);
    int L = 0;
    for (int i = 0; i < r->nmodels; i++) L = r->models[i].st->L > L ? r->models[i].st->L : L;
    for (int l = 0; l < L; l++) {
        fprintf(f, "%5d", l);
        for (int c = 0; c < ncols; c++) {
            const ds_attn_stats *st = r->models[cols[c].model].st;
            print_num(f, 12, l < st->L ? cmp_metric(&st->layer[cols[c].map][l], m) : NAN);
        }
        fputc('\n', f);
    }
}

static void print_per_head(FILE *f, const cmp_result *r, const column *cols, int ncols) {
    for (int c = 0; c < ncols; c++) {
        const ds_attn_stats *st = r->models[cols[c].model].st;
        fprintf(f, "\n%s, per head\nl.head", cols[c].title);
        for (int m = 0; m < 5; m++) fprintf(f, " %12s", cmp_metric_names[m]);
        fputc('\n', f);
        for (int l = 0; l < st->L; l++)
            for (int h = 0; h < st->heads; h++) {
                char lh[32];
                snprintf(lh, sizeof lh, "%d.%d", l, h);
                fprintf(f, "%6s", lh);
                for (int m = 0; m < 5; m++) print_num(f, 12, cmp_metric(&st->head[cols[c].map][(size_t)l * st->heads + h], m));
                fputc('\n', f);
            }
    }
    for (int i = 0; i < r->nmodels; i++)
        for (int k = 0; r->models[i].st->is_diff && k < N_DIFF_SERIES; k++) {
            const ds_attn_stats *st = r->models[i].st;
            const diff_series *ds = &diff_series_list[k];
            if (!ds->head) continue;
            fprintf(f, "\n%s %s, per head\nlayer", r->models[i].name, ds->name);
            for (int h = 0; h < st->heads; h++) fprintf(f, " %8d", h);
            fputc('\n', f);
            for (int l = 0; l < st->L; l++) {
                fprintf(f, "%5d", l);
                for (int h = 0; h < st->heads; h++) print_num(f, 8, ds->head(st)[(size_t)l * st->heads + h]);
                fputc('\n', f);
            }
        }
}

static void print_table5(FILE *f, const cmp_result *r) {
    if (!r->models[0].st->o.outliers) return;
    fprintf(f, "\nactivation outliers (Table 5): k-th largest |value| and median, over all tokens\n%-22s", "");
    const char *heads[] = {"top-1", "top-2", "top-3", "top-10", "top-100", "median"};
    for (int i = 0; i < 6; i++) fprintf(f, " %10s", heads[i]);
    fputc('\n', f);
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < r->nmodels; i++) {
            const ds_table5 *t = which ? &r->models[i].st->resid : &r->models[i].st->scores;
            fprintf(f, "%s %-20s", r->models[i].name, which ? "residual stream" : "attention scores");
            for (int k = 0; k < 6; k++) {
                double v = cmp_table5_value(t, k);
                if (isnan(v)) fprintf(f, " %10s", "-");
                else fprintf(f, " %10.4g", v);
            }
            fputc('\n', f);
        }
}

void cmp_print_table(FILE *f, const cmp_result *r) {
    column cols[2 * DS_ATTN_NMAPS];
    int ncols = columns_of(r, cols);
    print_header(f, r);
    fprintf(f, "\nattention of the query row q, mean over heads, per layer and map M\n");
    for (int k = 0; k < N_DIFF_SERIES; k++) print_diff_series(f, r, &diff_series_list[k]);
    for (int m = 0; m < 5; m++) print_metric(f, r, cols, ncols, m);
    if (r->per_head) print_per_head(f, r, cols, ncols);
    print_table5(f, r);
}

/* ---- JSON ---- */

static cJSON *num(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

static cJSON *row_json(const ds_attn_row_stats *s) {
    cJSON *o = cJSON_CreateObject();
    for (int m = 0; o && m < 5; m++) cJSON_AddItemToObject(o, cmp_metric_names[m], num(cmp_metric(s, m)));
    return o;
}

static cJSON *table5_json(const ds_table5 *t) {
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; o && k < 6; k++) cJSON_AddItemToObject(o, cmp_table5_names[k], num(cmp_table5_value(t, k)));
    if (o) cJSON_AddNumberToObject(o, "count", (double)t->count);
    return o;
}

static cJSON *model_json(const cmp_result *r, const cmp_model *cm) {
    const ds_attn_stats *st = cm->st;
    int maps[DS_ATTN_NMAPS], nm = cmp_maps(st, maps);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", cm->name);
    cJSON_AddStringToObject(o, "path", cm->path);
    cJSON_AddStringToObject(o, "arch", cm->arch);
    cJSON_AddNumberToObject(o, "heads", st->heads);
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; layers && l < st->L; l++) {
        cJSON *lo = cJSON_CreateObject();
        cJSON_AddItemToArray(layers, lo);
        cJSON_AddNumberToObject(lo, "layer", l);
        for (int k = 0; st->is_diff && k < N_DIFF_SERIES; k++) {
            const diff_series *ds = &diff_series_list[k];
            cJSON_AddItemToObject(lo, ds->name, num(ds->layer(st)[l]));
            if (!r->per_head || !ds->head) continue;
            cJSON *hs = cJSON_AddArrayToObject(lo, ds->head_name);
            for (int h = 0; hs && h < st->heads; h++) cJSON_AddItemToArray(hs, num(ds->head(st)[(size_t)l * st->heads + h]));
        }
        for (int j = 0; j < nm; j++) {
            cJSON *mo = row_json(&st->layer[maps[j]][l]);
            cJSON_AddItemToObject(lo, ds_map_name(maps[j]), mo);
            if (!r->per_head || !mo) continue;
            cJSON *hs = cJSON_AddArrayToObject(mo, "heads");
            for (int h = 0; hs && h < st->heads; h++)
                cJSON_AddItemToArray(hs, row_json(&st->head[maps[j]][(size_t)l * st->heads + h]));
        }
    }
    if (st->o.outliers) {
        cJSON *out = cJSON_AddObjectToObject(o, "outliers");
        cJSON_AddItemToObject(out, "scores", table5_json(&st->scores));
        cJSON_AddItemToObject(out, "resid", table5_json(&st->resid));
    }
    return o;
}

int cmp_print_json(FILE *f, const cmp_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON *ids = cJSON_CreateIntArray(r->ids, r->T);
    cJSON_AddItemToObject(o, "tokens", ids);
    cJSON *text = cJSON_AddArrayToObject(o, "token_text");
    for (int t = 0; text && t < r->T; t++)
        cJSON_AddItemToArray(text, r->labels && r->labels[t] ? cJSON_CreateString(r->labels[t]) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "query_pos", r->query);
    if (r->span_end) {
        int span[2] = {r->span_begin, r->span_end};
        cJSON_AddItemToObject(o, "span", cJSON_CreateIntArray(span, 2));
    } else {
        cJSON_AddNullToObject(o, "span");
    }
    if (r->span_text) cJSON_AddStringToObject(o, "span_text", r->span_text);
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; models && i < r->nmodels; i++) cJSON_AddItemToArray(models, model_json(r, &r->models[i]));
    char *s = ds_provenance_add_to_json(r->provenance, o) ? NULL : cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory for JSON output");
    fprintf(f, "%s\n", s);
    free(s);
    return 0;
}

/* ---- HDF5 ---- */

static int write_f64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const double *v) {
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return rc < 0 ? ds_failc(DS_ERR_IO, "cannot write dataset '%s'", name) : 0;
}

/* /models/{name}/{map}/{metric} [L] and .../per_head/{metric} [L, heads]. */
static int write_map_h5(hid_t file, const cmp_model *cm, int map, double *buf) {
    const ds_attn_stats *st = cm->st;
    char path[96];
    snprintf(path, sizeof path, "/models/%s/%s/per_head", cm->name, ds_map_name(map));
    hid_t ph = ds_h5_group(file, path);
    snprintf(path, sizeof path, "/models/%s/%s", cm->name, ds_map_name(map));
    hid_t g = ds_h5_group(file, path);
    int rc = g < 0 || ph < 0 ? -1 : 0;
    for (int m = 0; !rc && m < 5; m++) {
        hsize_t dl[1] = {(hsize_t)st->L}, dh[2] = {(hsize_t)st->L, (hsize_t)st->heads};
        for (int l = 0; l < st->L; l++) buf[l] = cmp_metric(&st->layer[map][l], m);
        rc = write_f64(g, cmp_metric_names[m], 1, dl, buf);
        for (size_t i = 0; i < (size_t)st->L * st->heads; i++) buf[i] = cmp_metric(&st->head[map][i], m);
        rc = rc || write_f64(ph, cmp_metric_names[m], 2, dh, buf);
    }
    if (g >= 0) H5Gclose(g);
    if (ph >= 0) H5Gclose(ph);
    return rc ? -1 : 0;
}

static int write_table5_h5(hid_t file, const char *model, const char *name, const ds_table5 *t) {
    char path[96];
    snprintf(path, sizeof path, "/models/%s/outliers/%s", model, name);
    hid_t g = ds_h5_group(file, path);
    int rc = g < 0;
    for (int k = 0; !rc && k < 6; k++) rc = ds_h5_attr_double(g, cmp_table5_names[k], cmp_table5_value(t, k));
    rc = rc || ds_h5_attr_int(g, "count", t->count);
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

static int write_model_h5(hid_t file, const cmp_model *cm) {
    const ds_attn_stats *st = cm->st;
    char path[64];
    snprintf(path, sizeof path, "/models/%s", cm->name);
    hid_t g = ds_h5_group(file, path);
    double *buf = malloc((size_t)st->L * st->heads * sizeof *buf);
    int rc = g < 0 || !buf;
    if (!buf) ds_failc(DS_ERR_NOMEM, "out of memory");
    rc = rc || ds_h5_attr_str(g, "path", cm->path) || ds_h5_attr_str(g, "arch", cm->arch) ||
         ds_h5_attr_int(g, "heads", st->heads);
    for (int k = 0; !rc && st->is_diff && k < N_DIFF_SERIES; k++) {
        const diff_series *ds = &diff_series_list[k];
        hsize_t dl[1] = {(hsize_t)st->L}, dh[2] = {(hsize_t)st->L, (hsize_t)st->heads};
        rc = write_f64(g, ds->name, 1, dl, ds->layer(st)) || (ds->head && write_f64(g, ds->head_name, 2, dh, ds->head(st)));
    }
    int maps[DS_ATTN_NMAPS], nm = cmp_maps(st, maps);
    for (int j = 0; !rc && j < nm; j++) rc = write_map_h5(file, cm, maps[j], buf);
    if (!rc && st->o.outliers)
        rc = write_table5_h5(file, cm->name, "scores", &st->scores) || write_table5_h5(file, cm->name, "resid", &st->resid);
    free(buf);
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

int cmp_write_h5(const char *path, int force, const cmp_result *r) {
    ds_h5out o;
    if (ds_h5out_open(&o, path, force)) return -1;
    hid_t f = o.file;
    hsize_t n = (hsize_t)r->T;
    int rc = ds_h5_attr_str(f, "format", CMP_FORMAT) || ds_h5_attr_int(f, "format_version", CMP_FORMAT_VERSION) ||
             ds_provenance_write_h5(r->provenance, f) || ds_h5_attr_int(f, "query_pos", r->query) ||
             ds_h5_attr_int(f, "span_begin", r->span_end ? r->span_begin : -1) ||
             ds_h5_attr_int(f, "span_end", r->span_end ? r->span_end : -1) ||
             ds_h5_attr_str(f, "prompt", r->prompt ? r->prompt : "") ||
             ds_h5_attr_str(f, "span_text", r->span_text ? r->span_text : "");
    hid_t g = rc ? -1 : ds_h5_group(f, "/tokens");
    rc = rc || g < 0 || ds_h5_write_i32(g, "ids", 1, &n, r->ids);
    if (g >= 0) H5Gclose(g);
    for (int i = 0; !rc && i < r->nmodels; i++) rc = write_model_h5(f, &r->models[i]);
    if (rc) {
        if (strncmp(ds_errmsg(), path, strlen(path))) ds_err_prefix(path);
        ds_h5out_abort(&o);
        return -1;
    }
    return ds_h5out_commit(&o);
}
