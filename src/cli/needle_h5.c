/* `diffscope needle -o OUT.h5`: the numbers of the table and JSON, every prompt's values and the
 * prompts, as HDF5 (layout in docs/compare.md), written through the output contract. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/needle.h"
#include "io/h5out.h"
#include "io/provenance.h"

#define NEEDLE_FORMAT "diffscope-needle"
#define NEEDLE_FORMAT_VERSION 1

static int write_prompts(hid_t f, const needle_prompt_set *ps) {
    const size_t P = (size_t)ps->nprompts, W = (size_t)ps->maxlen;
    int *ids = malloc(P * W * sizeof *ids), *len = malloc(P * sizeof *len), *span = malloc(2 * P * sizeof *span);
    int *answer = malloc(P * sizeof *answer);
    hid_t g = ids && len && span && answer ? ds_h5_group(f, "/prompts") : H5I_INVALID_HID;
    int rc = g < 0 ? -1 : 0;
    if (!ids || !len || !span || !answer) ds_failc(DS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < P; i++) {
        const needle_prompt *p = &ps->prompts[i];
        for (size_t k = 0; k < W; k++) ids[i * W + k] = k < (size_t)p->n ? p->ids[k] : -1;
        len[i] = p->n, span[2 * i] = p->span_begin, span[2 * i + 1] = p->span_end, answer[i] = p->answer_id;
    }
    hsize_t d2[2] = {P, W}, dp[1] = {P}, ds[2] = {P, 2};
    rc = rc || ds_h5_write_i32(g, "ids", 2, d2, ids) || ds_h5_write_i32(g, "length", 1, dp, len) ||
         ds_h5_write_i32(g, "span", 2, ds, span) || ds_h5_write_i32(g, "answer_id", 1, dp, answer);
    if (g >= 0) H5Gclose(g);
    free(ids), free(len), free(span), free(answer);
    return rc ? -1 : 0;
}

/* Quantity Q (map index J) of model M at every depth: NAME [D], NAME_std, NAME_ci95 [D],
 * NAME_per_trial [D, trials], and for the masses NAME_per_layer [D, L], into group G. */
static int write_quantity(hid_t g, const needle_opts *no, const needle_model *m, needle_quantity q, int j) {
    const int D = no->ndepths, K = no->trials, L = m->L;
    double *stat = malloc((size_t)3 * D * sizeof *stat), *trial = malloc((size_t)D * K * sizeof *trial);
    double *layer = malloc((size_t)D * L * sizeof *layer);
    int *count = malloc((size_t)D * sizeof *count);
    if (!stat || !trial || !layer || !count) {
        free(stat), free(trial), free(layer), free(count);
        return ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    for (int d = 0; d < D; d++) {
        needle_values v = {trial + (size_t)d * K, layer + (size_t)d * L};
        needle_values_of(no, m, q, j, d, &v);
        stat[d] = v.mean, stat[D + d] = v.std, stat[2 * D + d] = v.ci95, count[d] = v.count;
    }
    const char *name = needle_quantity_name(q);
    static const char *const suffix[3] = {"", "_std", "_ci95"};
    char key[64];
    hsize_t dd[1] = {(hsize_t)D}, dk[2] = {(hsize_t)D, (hsize_t)K}, dl[2] = {(hsize_t)D, (hsize_t)L};
    int rc = 0;
    for (int s = 0; !rc && s < 3; s++) {
        snprintf(key, sizeof key, "%s%s", name, suffix[s]);
        rc = ds_h5_write_f64(g, key, 1, dd, stat + (size_t)s * D);
    }
    snprintf(key, sizeof key, "%s_per_trial", name);
    rc = rc || ds_h5_write_f64(g, key, 2, dk, trial);
    snprintf(key, sizeof key, "%s_per_layer", name);
    if (q != NEEDLE_CORRECT) rc = rc || ds_h5_write_f64(g, key, 2, dl, layer);
    else rc = rc || ds_h5_write_i32(g, "correct", 1, dd, count);
    free(stat), free(trial), free(layer), free(count);
    return rc ? -1 : 0;
}

static int write_model(hid_t f, const needle_opts *no, const needle_model *m) {
    char path[64];
    snprintf(path, sizeof path, "/models/%s", m->name);
    hid_t g = ds_h5_group(f, path);
    if (g < 0) return -1;
    int lh[2] = {ds_attn_last_half_begin(m->L), m->L - 1};
    hsize_t dk[2] = {(hsize_t)no->ndepths, (hsize_t)no->trials};
    int rc = ds_h5_attr_str(g, "path", m->path) || ds_h5_attr_str(g, "arch", m->arch) ||
             ds_h5_attr_int_array(g, "layers_averaged", lh, 2) || ds_h5_write_i32(g, "top1", 2, dk, m->top1) ||
             write_quantity(g, no, m, NEEDLE_CORRECT, 0);
    for (int j = 0; !rc && j < m->nmaps; j++) {
        hid_t mg = ds_h5_group(g, ds_map_name(m->maps[j]));
        rc = mg < 0 || write_quantity(mg, no, m, NEEDLE_ANSWER_MASS, j) || write_quantity(mg, no, m, NEEDLE_NOISE_MASS, j);
        if (mg >= 0) H5Gclose(mg);
    }
    H5Gclose(g);
    return rc ? -1 : 0;
}

/* Root attributes: the format and the options that made the prompts; /provenance: how the
 * file was made (io/provenance.h). */
static int write_root(hid_t f, const needle_opts *no, const needle_prompt_set *ps) {
    hsize_t dd[1] = {(hsize_t)no->ndepths};
    int rc = ds_h5_attr_str(f, "format", NEEDLE_FORMAT) || ds_h5_attr_int(f, "format_version", NEEDLE_FORMAT_VERSION) ||
             ds_provenance_write_h5(no->provenance, f) || ds_h5_attr_str(f, "mode", no->task ? "kv" : "text") ||
             ds_h5_attr_int(f, "context_tokens", ps->N) || ds_h5_attr_int(f, "prompt_tokens", ps->maxlen) ||
             ds_h5_attr_int(f, "trials", no->trials) || ds_h5_write_i32(f, "depths", 1, dd, no->depths);
    if (rc) return -1;
    if (no->task) return ds_h5_attr_int(f, "pairs", no->pairs) || ds_h5_attr_int(f, "seed", no->seed) ? -1 : 0;
    const char *hay = no->haystack ? no->haystack : no->haystack_ids;
    rc = ds_h5_attr_str(f, "haystack", hay);
    if (no->answer) rc = rc || ds_h5_attr_str(f, "needle", no->needle) || ds_h5_attr_str(f, "question", no->question) ||
                         ds_h5_attr_str(f, "answer", no->answer);
    else rc = rc || ds_h5_attr_str(f, "needle_ids", no->needle_ids) ||
              ds_h5_attr_str(f, "question_ids", no->question_ids) || ds_h5_attr_int(f, "answer_id", no->answer_id);
    return rc ? -1 : 0;
}

int needle_write_h5(const needle_opts *no, const needle_prompt_set *ps, const needle_model *nm, int nmodels) {
    ds_h5out o;
    if (ds_h5out_open(&o, no->output, no->force)) return -1;
    int rc = write_root(o.file, no, ps) || write_prompts(o.file, ps);
    for (int i = 0; !rc && i < nmodels; i++) rc = write_model(o.file, no, &nm[i]);
    if (rc) {
        if (strncmp(ds_errmsg(), no->output, strlen(no->output))) ds_err_prefix(no->output);
        ds_h5out_abort(&o);
        return -1;
    }
    return ds_h5out_commit(&o);
}
