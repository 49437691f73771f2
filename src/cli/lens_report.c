/* `diffscope lens` output: the table, JSON (cJSON) and HDF5, with the same numbers under the
 * same names (docs/lens.md). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/lens.h"
#include "io/h5out.h"
#include "io/provenance.h"

/* The residual stream of lens row L: the probe point it is read at. */
static const char *stream_name(int l, char *buf, int size) {
    if (l == 0) snprintf(buf, size, "hook_embed");
    else snprintf(buf, size, "blocks.%d.hook_resid_post", l - 1);
    return buf;
}

/* ---- table ---- */

static void print_piece(FILE *f, const char *text, int id) {
    if (text) fprintf(f, "\"%s\"", text);
    else fprintf(f, "[%d]", id);
}

static void print_header(FILE *f, const lens_result *r) {
    fprintf(f, "model: %s (%s, %d layers, %d %sheads)\n", r->model_dir, r->arch, r->L, r->dla.heads,
            r->dla.differential ? "differential " : "");
    fprintf(f, "tokens: %d, position P = %d ", r->T, r->pos);
    print_piece(f, r->labels ? r->labels[r->pos] : NULL, r->ids[r->pos]);
    fprintf(f, ", target ");
    print_piece(f, r->target_text, r->target);
    fprintf(f, " (id %d)", r->target);
    if (r->vs >= 0) {
        fprintf(f, " vs ");
        print_piece(f, r->vs_text, r->vs);
        fprintf(f, " (id %d)", r->vs);
    }
    fputc('\n', f);
}

static void print_lens(FILE *f, const lens_result *r) {
    fprintf(f, "\nlogit lens at P: final RMSNorm (each stream's own scale) and lm_head of the embeddings\n"
               "and of the residual stream after each layer; rank 1 = the top token\n");
    fprintf(f, "layer     rank      logit       prob%s  top-%d (prob)\n", r->vs >= 0 ? "    t - vs" : "", r->k);
    for (int l = 0; l <= r->L; l++) {
        if (l == 0) fprintf(f, "embed");
        else fprintf(f, "%5d", l - 1);
        fprintf(f, " %8d %10.4f %10.4f", r->target_rank[l], r->target_logit[l], r->target_prob[l]);
        if (r->vs >= 0) fprintf(f, " %10.4f", r->target_logit[l] - r->vs_logit[l]);
        fprintf(f, " ");
        for (int j = 0; j < r->k; j++) {
            size_t at = (size_t)l * r->k + j;
            fprintf(f, " ");
            print_piece(f, r->top_text[at], r->top_ids[at]);
            fprintf(f, " %.3f", r->top_prob[at]);
        }
        fputc('\n', f);
    }
}

/* [L, heads] per-head values, with the per-layer columns (NULL: none) after them. */
static void print_heads(FILE *f, const lens_result *r, const char *title, const double *v, const double *bias,
                        const double *mlp) {
    const ds_dla *d = &r->dla;
    fprintf(f, "\n%s\nlayer", title);
    char name[24];
    for (int h = 0; h < d->heads; h++) snprintf(name, sizeof name, "head %d", h), fprintf(f, " %10s", name);
    if (bias) fprintf(f, "   o_bias");
    if (mlp) fprintf(f, "        mlp");
    fputc('\n', f);
    for (int l = 0; l < d->L; l++) {
        fprintf(f, "%5d", l);
        for (int h = 0; h < d->heads; h++) fprintf(f, " %10.4f", v[(size_t)l * d->heads + h]);
        if (bias) fprintf(f, " %8.4f", bias[l]);
        if (mlp) fprintf(f, " %10.4f", mlp[l]);
        fputc('\n', f);
    }
}

static void print_dla(FILE *f, const lens_result *r) {
    const ds_dla *d = &r->dla;
    fprintf(f, "\ndirect logit attribution at P of %s = %.6f (the model's)\n",
            r->vs >= 0 ? "logit(target) - logit(vs)" : "logit(target)", d->logit);
    fprintf(f, "final norm's scale frozen at 1/RMS = %.6g of the final residual; the contributions below sum\n"
               "to %.6f, remainder %.3g (the forward pass's float32 rounding)\n",
            d->scale, d->total, d->remainder);
    fprintf(f, "embeddings %10.4f\n", d->embed);
    print_heads(f, r, "each head through its slice of o_proj, o_proj's bias, the MLP", d->head, d->attn_bias, d->mlp);
    if (!d->differential) return;
    print_heads(f, r, "softmax1 path of each differential head: g·A1·V", d->path1, NULL, NULL);
    print_heads(f, r, "lambda·softmax2 path: -g·λ·A2·V (softmax1 path + this = the head)", d->path2, NULL, NULL);
}

void lens_print_table(FILE *f, const lens_result *r) {
    print_header(f, r);
    print_lens(f, r);
    print_dla(f, r);
}

/* ---- JSON ---- */

static cJSON *token_json(int id, const char *text) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    if (text) cJSON_AddStringToObject(o, "text", text);
    else cJSON_AddNullToObject(o, "text");
    return o;
}

static cJSON *lens_json(const lens_result *r) {
    cJSON *a = cJSON_CreateArray();
    char name[64];
    for (int l = 0; l <= r->L; l++) {
        cJSON *o = cJSON_CreateObject(), *top = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "stream", stream_name(l, name, sizeof name));
        cJSON_AddNumberToObject(o, "target_rank", r->target_rank[l]);
        cJSON_AddNumberToObject(o, "target_logit", r->target_logit[l]);
        cJSON_AddNumberToObject(o, "target_prob", r->target_prob[l]);
        if (r->vs >= 0) cJSON_AddNumberToObject(o, "vs_logit", r->vs_logit[l]);
        for (int j = 0; j < r->k; j++) {
            size_t at = (size_t)l * r->k + j;
            cJSON *t = token_json(r->top_ids[at], r->top_text[at]);
            cJSON_AddNumberToObject(t, "logit", r->top_logit[at]);
            cJSON_AddNumberToObject(t, "prob", r->top_prob[at]);
            cJSON_AddItemToArray(top, t);
        }
        cJSON_AddItemToObject(o, "top", top);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* [rows, cols] as nested arrays. */
static cJSON *matrix_json(const double *v, int rows, int cols) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < rows; i++) cJSON_AddItemToArray(a, cJSON_CreateDoubleArray(v + (size_t)i * cols, cols));
    return a;
}

static cJSON *dla_json(const ds_dla *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "logit", d->logit);
    cJSON_AddNumberToObject(o, "scale", d->scale);
    cJSON_AddNumberToObject(o, "embed", d->embed);
    cJSON_AddItemToObject(o, "heads", matrix_json(d->head, d->L, d->heads));
    if (d->differential) {
        cJSON_AddItemToObject(o, "softmax1_path", matrix_json(d->path1, d->L, d->heads));
        cJSON_AddItemToObject(o, "softmax2_path", matrix_json(d->path2, d->L, d->heads));
    }
    cJSON_AddItemToObject(o, "attn_bias", cJSON_CreateDoubleArray(d->attn_bias, d->L));
    cJSON_AddItemToObject(o, "mlp", cJSON_CreateDoubleArray(d->mlp, d->L));
    cJSON_AddNumberToObject(o, "total", d->total);
    cJSON_AddNumberToObject(o, "remainder", d->remainder);
    return o;
}

int lens_print_json(const lens_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", r->model_dir);
    cJSON_AddStringToObject(o, "arch", r->arch);
    cJSON_AddItemToObject(o, "input_ids", cJSON_CreateIntArray(r->ids, r->T));
    cJSON_AddNumberToObject(o, "position", r->pos);
    cJSON_AddItemToObject(o, "target", token_json(r->target, r->target_text));
    if (r->vs >= 0) cJSON_AddItemToObject(o, "vs", token_json(r->vs, r->vs_text));
    else cJSON_AddNullToObject(o, "vs");
    cJSON_AddItemToObject(o, "lens", lens_json(r));
    cJSON_AddItemToObject(o, "dla", dla_json(&r->dla));
    if (ds_provenance_add_to_json(r->provenance, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return cli_print_json(o);
}

/* ---- HDF5 ---- */

/* A float64 or int32 dataset whose axes carry the names in AXES (dimension labels). */
static int write_labelled(hid_t loc, const char *name, int ndim, const hsize_t *dims, const void *data, int is_int,
                          const char *const *axes) {
    if (is_int ? ds_h5_write_i32(loc, name, ndim, dims, data) : ds_h5_write_f64(loc, name, ndim, dims, data)) return -1;
    return ds_h5_label_axes(loc, name, ndim, axes);
}

/* The format, how the file was made (/provenance) and the model it describes. */
static int write_root(hid_t f, const lens_result *r) {
    return ds_h5_attr_str(f, "format", LENS_FORMAT) || ds_h5_attr_int(f, "format_version", LENS_FORMAT_VERSION) ||
           ds_provenance_write_h5(r->provenance, f) || ds_h5_attr_str(f, "arch", r->arch) ||
           ds_h5_attr_str(f, "config", r->config_json) || ds_h5_attr_str(f, "prompt", r->prompt ? r->prompt : "");
}

static int write_lens_group(hid_t f, const lens_result *r) {
    static const char *const by_rank[2] = {"stream", "rank"}, *const by_stream[1] = {"stream"};
    hid_t g = ds_h5_group(f, "/lens");
    hsize_t d2[2] = {(hsize_t)r->L + 1, (hsize_t)r->k}, d1[1] = {(hsize_t)r->L + 1};
    int rc = g < 0 || write_labelled(g, "top_ids", 2, d2, r->top_ids, 1, by_rank) ||
             write_labelled(g, "top_logit", 2, d2, r->top_logit, 0, by_rank) ||
             write_labelled(g, "top_prob", 2, d2, r->top_prob, 0, by_rank) ||
             write_labelled(g, "target_rank", 1, d1, r->target_rank, 1, by_stream) ||
             write_labelled(g, "target_logit", 1, d1, r->target_logit, 0, by_stream) ||
             write_labelled(g, "target_prob", 1, d1, r->target_prob, 0, by_stream) ||
             (r->vs >= 0 && write_labelled(g, "vs_logit", 1, d1, r->vs_logit, 0, by_stream));
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

static int write_dla_group(hid_t f, const ds_dla *d) {
    static const char *const by_head[2] = {"layer", "head"}, *const by_layer[1] = {"layer"};
    hid_t g = ds_h5_group(f, "/dla");
    hsize_t d2[2] = {(hsize_t)d->L, (hsize_t)d->heads}, d1[1] = {(hsize_t)d->L};
    int rc = g < 0 || ds_h5_attr_double(g, "logit", d->logit) || ds_h5_attr_double(g, "scale", d->scale) ||
             ds_h5_attr_double(g, "embed", d->embed) || ds_h5_attr_double(g, "total", d->total) ||
             ds_h5_attr_double(g, "remainder", d->remainder) ||
             write_labelled(g, "heads", 2, d2, d->head, 0, by_head) ||
             write_labelled(g, "attn_bias", 1, d1, d->attn_bias, 0, by_layer) ||
             write_labelled(g, "mlp", 1, d1, d->mlp, 0, by_layer) ||
             (d->differential && (write_labelled(g, "softmax1_path", 2, d2, d->path1, 0, by_head) ||
                                  write_labelled(g, "softmax2_path", 2, d2, d->path2, 0, by_head)));
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

int lens_write_h5(const char *path, int force, const lens_result *r) {
    hsize_t n = (hsize_t)r->T;
    ds_h5out o;
    if (ds_h5out_open(&o, path, force)) return -1;
    hid_t f = o.file;
    int rc = write_root(f, r) || ds_h5_attr_int(f, "position", r->pos) ||
             ds_h5_attr_int(f, "target", r->target) || ds_h5_attr_int(f, "vs", r->vs) ||
             ds_h5_attr_str(f, "target_text", r->target_text ? r->target_text : "") ||
             ds_h5_write_i32(f, "input_ids", 1, &n, r->ids) || write_lens_group(f, r) || write_dla_group(f, &r->dla);
    if (!rc) return ds_h5out_commit(&o);
    if (strncmp(ds_errmsg(), path, strlen(path))) ds_err_prefix(path); /* name the file once */
    ds_h5out_abort(&o);
    return -1;
}
