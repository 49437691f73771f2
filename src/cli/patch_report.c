/* The results of `diffscope patch`: tables on stdout, --json, and the HDF5 file
 * (layout in docs/patch.md). */
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/patch.h"
#include "io/h5out.h"
#include "io/provenance.h"

static const char *metric_name(const patch_job *j) {
    return j->metric == PATCH_METRIC_LOGIT_DIFF ? "logit_diff" : "logprob";
}

static const char *piece(const char *text) { return text ? text : "?"; }

static void print_ids(const char *what, const int *ids, int n) {
    printf("%s", what);
    for (int t = 0; t < n; t++) printf("%s%d", t ? "," : "", ids[t]);
    putchar('\n');
}

static void print_header(const patch_job *j) {
    const cli_run *r = j->run;
    const ds_config *c = ds_model_config(r->m);
    printf("model: %s (%s, %d layers, %d %sheads), %d tokens\n", r->dir, ds_arch_name(c->arch), c->num_layers,
           c->map_heads, c->desc->differential ? "differential " : "", r->n);
    print_ids("clean ids:     ", r->ids, r->n);
    print_ids("corrupted ids: ", j->corrupted_ids, r->n);
    printf("positions that differ:");
    int any = 0;
    for (int t = 0; t < r->n; t++)
        if (r->ids[t] != j->corrupted_ids[t]) {
            printf(" %d", t), any = 1;
            if (r->labels && r->labels[t] && j->corrupted_labels && j->corrupted_labels[t])
                printf(" (\"%s\" -> \"%s\")", r->labels[t], j->corrupted_labels[t]);
        }
    printf("%s\n", any ? "" : " none");
    if (j->metric == PATCH_METRIC_LOGIT_DIFF)
        printf("metric: logit(%d \"%s\") - logit(%d \"%s\") at the last position\n", j->answer, piece(j->answer_text),
               j->wrong, piece(j->wrong_text));
    else
        printf("metric: log-probability of %d \"%s\" at the last position\n", j->answer, piece(j->answer_text));
    printf("clean %.6f, corrupted %.6f; normalized = (patched - corrupted) / (clean - corrupted)\n", j->clean,
           j->corrupted);
}

static void print_table(const patch_job *j, patch_kind k, int normalized) {
    const patch_table *t = &j->tables[k];
    const char *col = patch_kinds[k].column;
    printf("%-8s", col ? (*col == 'p' ? "layer/pos" : "layer/head") : "layer");
    if (col)
        for (int c = 0; c < t->cols; c++) printf(" %9d", c);
    else
        printf(" %9s", normalized ? "norm" : "raw");
    putchar('\n');
    for (int l = 0; l < t->rows; l++) {
        printf("%-8d", l);
        for (int c = 0; c < t->cols; c++) {
            double v = t->raw[(size_t)l * t->cols + c];
            printf(" %9.4f", normalized ? patch_normalized(j, v) : v);
        }
        putchar('\n');
    }
}

void patch_print_tables(const patch_job *j) {
    print_header(j);
    for (int k = 0; k < PATCH_KINDS; k++) {
        if (!j->tables[k].on) continue;
        printf("\n%s: %s\n", patch_kinds[k].name, patch_kinds[k].what);
        printf("normalized\n");
        print_table(j, (patch_kind)k, 1);
        printf("raw (the metric)\n");
        print_table(j, (patch_kind)k, 0);
    }
}

static cJSON *json_ids(const int *ids, int n) { return cJSON_CreateIntArray(ids, n); }

/* [rows][cols] (or [rows] for a table without columns) of raw or normalized values; NaN becomes null. */
static cJSON *json_values(const patch_job *j, patch_kind k, int normalized) {
    const patch_table *t = &j->tables[k];
    cJSON *a = cJSON_CreateArray();
    for (int l = 0; a && l < t->rows; l++) {
        cJSON *row = patch_kinds[k].column ? cJSON_CreateArray() : NULL;
        for (int c = 0; c < t->cols; c++) {
            double v = t->raw[(size_t)l * t->cols + c];
            if (normalized) v = patch_normalized(j, v);
            cJSON *x = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
            if (row) cJSON_AddItemToArray(row, x);
            else cJSON_AddItemToArray(a, x);
        }
        if (row) cJSON_AddItemToArray(a, row);
    }
    return a;
}

static cJSON *json_dims(const patch_kind k) {
    const char *dims[2] = {"layer", patch_kinds[k].column};
    return cJSON_CreateStringArray(dims, patch_kinds[k].column ? 2 : 1);
}

int patch_print_json(const patch_job *j) {
    const cli_run *r = j->run;
    cJSON *o = cJSON_CreateObject(), *tables = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", r->dir);
    cJSON_AddStringToObject(o, "arch", ds_arch_name(ds_model_config(r->m)->arch));
    cJSON_AddStringToObject(o, "metric", metric_name(j));
    cJSON_AddNumberToObject(o, "answer_id", j->answer);
    if (j->wrong >= 0) cJSON_AddNumberToObject(o, "wrong_id", j->wrong);
    else cJSON_AddNullToObject(o, "wrong_id");
    cJSON_AddNumberToObject(o, "position", r->n - 1);
    cJSON_AddItemToObject(o, "clean_ids", json_ids(r->ids, r->n));
    cJSON_AddItemToObject(o, "corrupted_ids", json_ids(j->corrupted_ids, r->n));
    cJSON_AddNumberToObject(o, "clean", j->clean);
    cJSON_AddNumberToObject(o, "corrupted", j->corrupted);
    for (int k = 0; k < PATCH_KINDS; k++) {
        if (!j->tables[k].on) continue;
        cJSON *tj = cJSON_CreateObject();
        cJSON_AddItemToObject(tj, "dims", json_dims((patch_kind)k));
        cJSON_AddItemToObject(tj, "raw", json_values(j, (patch_kind)k, 0));
        cJSON_AddItemToObject(tj, "normalized", json_values(j, (patch_kind)k, 1));
        cJSON_AddItemToObject(tables, patch_kinds[k].name, tj);
    }
    cJSON_AddItemToObject(o, "tables", tables);
    if (ds_provenance_add_to_json(j->provenance, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return cli_print_json(o);
}

/* GROUP/NAME [rows, cols] (or [rows]) with its axes labelled. */
static int write_values(hid_t g, const char *name, patch_kind k, const double *v, int rows, int cols) {
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    const int nd = patch_kinds[k].column ? 2 : 1;
    const char *const axes[2] = {"layer", patch_kinds[k].column};
    return ds_h5_write_f64(g, name, nd, dims, v) || ds_h5_label_axes(g, name, nd, axes) ? -1 : 0;
}

static int write_table(hid_t f, const patch_job *j, patch_kind k) {
    const patch_table *t = &j->tables[k];
    size_t n = (size_t)t->rows * t->cols;
    double *norm = malloc(n * sizeof *norm);
    hid_t g = norm ? ds_h5_group(f, patch_kinds[k].name) : -1;
    int rc = !norm ? ds_failc(DS_ERR_NOMEM, "out of memory") : g < 0;
    for (size_t i = 0; !rc && i < n; i++) norm[i] = patch_normalized(j, t->raw[i]);
    rc = rc || write_values(g, "raw", k, t->raw, t->rows, t->cols) ||
         write_values(g, "normalized", k, norm, t->rows, t->cols) || ds_h5_attr_str(g, "what", patch_kinds[k].what);
    if (g >= 0) H5Gclose(g);
    free(norm);
    return rc ? -1 : 0;
}

static int write_contents(hid_t f, const patch_job *j) {
    const cli_run *r = j->run;
    hsize_t n = (hsize_t)r->n;
    int rc = ds_h5_attr_str(f, "format", PATCH_FORMAT) || ds_h5_attr_int(f, "format_version", PATCH_FORMAT_VERSION) ||
             ds_provenance_write_h5(j->provenance, f) ||
             ds_h5_attr_str(f, "config", ds_model_config(r->m)->json_text) ||
             (ds_get_allow_nonfinite() && ds_h5_attr_int(f, "allow_nonfinite", 1)) ||
             ds_h5_attr_str(f, "arch", ds_arch_name(ds_model_config(r->m)->arch)) ||
             ds_h5_attr_str(f, "metric", metric_name(j)) || ds_h5_attr_int(f, "answer_id", j->answer) ||
             ds_h5_attr_int(f, "wrong_id", j->wrong) || ds_h5_attr_int(f, "position", r->n - 1) ||
             ds_h5_attr_double(f, "clean", j->clean) || ds_h5_attr_double(f, "corrupted", j->corrupted) ||
             ds_h5_attr_str(f, "clean_prompt", j->clean_prompt ? j->clean_prompt : "") ||
             ds_h5_attr_str(f, "corrupted_prompt", j->corrupted_prompt ? j->corrupted_prompt : "");
    hid_t g = rc ? -1 : ds_h5_group(f, "tokens");
    rc = rc || g < 0 || ds_h5_write_i32(g, "clean_ids", 1, &n, r->ids) ||
         ds_h5_write_i32(g, "corrupted_ids", 1, &n, j->corrupted_ids);
    if (g >= 0) H5Gclose(g);
    for (int k = 0; !rc && k < PATCH_KINDS; k++)
        if (j->tables[k].on) rc = write_table(f, j, (patch_kind)k);
    return rc ? -1 : 0;
}

int patch_write_h5(const char *path, int force, const patch_job *j) {
    ds_h5out o;
    if (ds_h5out_open(&o, path, force)) return -1;
    if (write_contents(o.file, j)) {
        if (strncmp(ds_errmsg(), path, strlen(path))) ds_err_prefix(path);
        ds_h5out_abort(&o);
        return -1;
    }
    return ds_h5out_commit(&o);
}
