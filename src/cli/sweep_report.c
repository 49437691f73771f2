/* `diffscope sweep` on stdout: the aggregates as a table (per layer, the mean over prompts of
 * the mean over heads, with its 95 % interval) or as JSON (every aggregate, per layer and head). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/compare.h"
#include "cli/sweep.h"
#include "diffscope/error.h"
#include "io/provenance.h"

static void print_pm(double m, double ci) {
    if (isnan(m)) printf(" %17s", "-");
    else if (isnan(ci)) printf(" %8.4f         ", m);
    else printf(" %8.4f ± %-6.4f", m, ci);
}

static void print_header(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps) {
    printf("sweep: %d prompts, %ld tokens, from %s\n", ps->n, ps->tokens, o->task ? o->task : o->prompts);
    for (int m = 0; m < su->nmodels; m++)
        printf("%s: %s (%s, %d layers, %d %sheads)\n", su->lay[m].name, su->lay[m].path, su->lay[m].arch, su->lay[m].L,
               su->lay[m].heads, su->lay[m].is_diff ? "differential " : "");
    printf("per layer: mean over prompts ± 95 %% interval of the mean over heads (row q of each map)\n");
}

/* The five statistics of one map, per layer. */
static void print_map(const sweep_layout *lay, const sweep_aggs *ag, int m, int first_field) {
    printf("\n%s %.*s\nlayer", lay->name, (int)(strchr(lay->f[first_field].name, '/') - lay->f[first_field].name),
           lay->f[first_field].name);
    for (int k = 0; k < 5; k++) printf(" %17s", cmp_metric_names[k]);
    printf("\n");
    for (int l = 0; l < lay->L; l++) {
        printf("%5d", l);
        for (int k = 0; k < 5; k++) {
            const sweep_agg *a = &ag->over_heads[m][first_field + k];
            print_pm(a->mean[l], a->ci95[l]);
        }
        printf("\n");
    }
}

static int field_index(const sweep_layout *lay, const char *name) {
    for (int k = 0; k < lay->nfields; k++)
        if (!strcmp(lay->f[k].name, name)) return k;
    return -1;
}

static void print_model(const sweep_layout *lay, const sweep_aggs *ag, int m) {
    int k;
    for (k = 0; k < lay->nfields && !strcmp(lay->f[k].name + strcspn(lay->f[k].name, "/"), "/answer_mass"); k += 5)
        print_map(lay, ag, m, k);
    if ((k = field_index(lay, "lambda_full")) >= 0) {
        printf("\n%s lambda_full, cancelled_share, groupnorm (row q: rms, scale; mean over tokens: rms)\n"
               "layer %17s %17s %17s %17s %17s\n",
               lay->name, "lambda_full", "cancelled_share", "rms_query", "scale_query", "rms_mean");
        int g = field_index(lay, "groupnorm/rms_query"), c = field_index(lay, "cancelled_share");
        for (int l = 0; l < lay->L; l++) {
            printf("%5d", l);
            print_pm(ag->field[m][k].mean[l], ag->field[m][k].ci95[l]);
            print_pm(ag->over_heads[m][c].mean[l], ag->over_heads[m][c].ci95[l]);
            for (int j = 0; j < 3; j++) print_pm(ag->over_heads[m][g + j].mean[l], ag->over_heads[m][g + j].ci95[l]);
            printf("\n");
        }
    }
    printf("\n%s outliers (Table 5): mean over prompts\n%-7s", lay->name, "");
    for (int r = 0; r <= DS_TABLE5_RANKS; r++) printf(" %10s", cmp_table5_names[r]);
    printf("\n");
    for (int which = 0; which < 2; which++) {
        const sweep_agg *a = &ag->field[m][field_index(lay, which ? "outliers/resid" : "outliers/scores")];
        printf("%-7s", which ? "resid" : "scores");
        for (int r = 0; r <= DS_TABLE5_RANKS; r++) printf(" %10.4g", a->mean[r]);
        printf("\n");
    }
    if (ag->correct[m].count[0])
        printf("%s top-1 is the answer: %.4f ± %.4f (%d prompts)\n", lay->name, ag->correct[m].mean[0],
               isnan(ag->correct[m].ci95[0]) ? 0.0 : ag->correct[m].ci95[0], ag->correct[m].count[0]);
}

static void print_grid(const sweep_opts *o, const sweep_setup *su, const sweep_aggs *ag) {
    printf("\nlength × depth: mean over %d trials (masses: heads and the last half of the layers averaged)\n%6s %5s",
           o->trials, "length", "depth");
    for (int m = 0; m < su->nmodels; m++) {
        printf(" %6s:acc", su->lay[m].name);
        for (int j = 0; j < DS_ATTN_NMAPS; j++)
            if (ag->grid_answer[m][j])
                printf(" %s:%s.answer %s:%s.noise", su->lay[m].name, ds_map_name(ds_attn_maps[j]), su->lay[m].name,
                       ds_map_name(ds_attn_maps[j]));
    }
    printf("\n");
    for (int li = 0; li < o->nlengths; li++)
        for (int d = 0; d < o->ndepths; d++) {
            size_t c = (size_t)li * o->ndepths + d;
            printf("%6d %4d%%", o->lengths[li], o->depths[d]);
            for (int m = 0; m < su->nmodels; m++) {
                printf(" %8.3f", ag->grid_acc[m][c]);
                for (int j = 0; j < DS_ATTN_NMAPS; j++)
                    if (ag->grid_answer[m][j])
                        printf(" %*.4f %*.4f", (int)strlen(ds_map_name(ds_attn_maps[j])) + 9, ag->grid_answer[m][j][c],
                               (int)strlen(ds_map_name(ds_attn_maps[j])) + 8, ag->grid_noise[m][j][c]);
            }
            printf("\n");
        }
}

void sweep_print_table(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, const sweep_aggs *ag) {
    print_header(o, su, ps);
    for (int m = 0; m < su->nmodels; m++) print_model(&su->lay[m], ag, m);
    if (o->task) print_grid(o, su, ag);
    printf("\nwritten: %s (per prompt, layer and head; aggregates under /aggregates)\n", o->out);
}

/* ---- JSON ---- */

static cJSON *num(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

/* V [rows * cols] as a list of lists (cols > 1) or a list. */
static cJSON *matrix(const double *v, int rows, int cols) {
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; a && r < rows; r++) {
        if (cols == 1) {
            cJSON_AddItemToArray(a, num(v[r]));
            continue;
        }
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; row && c < cols; c++) cJSON_AddItemToArray(row, num(v[(size_t)r * cols + c]));
        cJSON_AddItemToArray(a, row);
    }
    return a;
}

static cJSON *agg_json(const sweep_agg *a, int rows, int cols) {
    cJSON *o = cJSON_CreateObject();
    const double *v[4] = {a->mean, a->std, a->ci95, a->median};
    static const char *const names[4] = {"mean", "std", "ci95", "median"};
    for (int k = 0; o && k < 4; k++) cJSON_AddItemToObject(o, names[k], matrix(v[k], rows, cols));
    double *cnt = malloc(((size_t)rows * cols + 1) * sizeof *cnt);
    for (int i = 0; cnt && i < rows * cols; i++) cnt[i] = a->count[i];
    if (cnt) cJSON_AddItemToObject(o, "count", matrix(cnt, rows, cols));
    free(cnt);
    return o;
}

static cJSON *model_json(const sweep_layout *lay, const sweep_aggs *ag, int m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", lay->name);
    cJSON_AddStringToObject(o, "path", lay->path);
    cJSON_AddStringToObject(o, "arch", lay->arch);
    cJSON_AddNumberToObject(o, "layers", lay->L);
    cJSON_AddNumberToObject(o, "heads", lay->heads);
    cJSON *fields = cJSON_AddObjectToObject(o, "aggregates");
    for (int k = 0; fields && k < lay->nfields; k++) {
        const sweep_field *f = &lay->f[k];
        cJSON *a = agg_json(&ag->field[m][k], f->shape == SWEEP_LH ? lay->L : f->count,
                            f->shape == SWEEP_LH ? lay->heads : 1);
        if (a && f->shape == SWEEP_LH) cJSON_AddItemToObject(a, "over_heads", agg_json(&ag->over_heads[m][k], lay->L, 1));
        cJSON_AddItemToObject(fields, f->name, a);
    }
    cJSON_AddItemToObject(fields, "correct", agg_json(&ag->correct[m], 1, 1));
    return o;
}

static cJSON *grid_json(const sweep_opts *o, const sweep_setup *su, const sweep_aggs *ag) {
    cJSON *g = cJSON_CreateObject();
    cJSON_AddItemToObject(g, "lengths", cJSON_CreateIntArray(o->lengths, o->nlengths));
    cJSON_AddItemToObject(g, "depths", cJSON_CreateIntArray(o->depths, o->ndepths));
    cJSON_AddNumberToObject(g, "trials", o->trials);
    for (int m = 0; g && m < su->nmodels; m++) {
        cJSON *mo = cJSON_AddObjectToObject(g, su->lay[m].name);
        cJSON_AddItemToObject(mo, "acc", matrix(ag->grid_acc[m], o->nlengths, o->ndepths));
        for (int j = 0; mo && j < DS_ATTN_NMAPS; j++) {
            if (!ag->grid_answer[m][j]) continue;
            cJSON *x = cJSON_AddObjectToObject(mo, ds_map_name(ds_attn_maps[j]));
            cJSON_AddItemToObject(x, "answer_mass", matrix(ag->grid_answer[m][j], o->nlengths, o->ndepths));
            cJSON_AddItemToObject(x, "noise_mass", matrix(ag->grid_noise[m][j], o->nlengths, o->ndepths));
        }
    }
    return g;
}

int sweep_print_json(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, const sweep_aggs *ag) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "source", o->task ? o->task : o->prompts);
    cJSON_AddNumberToObject(j, "prompts", ps->n);
    cJSON_AddNumberToObject(j, "tokens", (double)ps->tokens);
    cJSON_AddStringToObject(j, "output", o->out);
    cJSON *models = cJSON_AddArrayToObject(j, "models");
    for (int m = 0; models && m < su->nmodels; m++) cJSON_AddItemToArray(models, model_json(&su->lay[m], ag, m));
    if (o->task) cJSON_AddItemToObject(j, "grid", grid_json(o, su, ag));
    if (ds_provenance_add_to_json(o->provenance, j)) {
        cJSON_Delete(j);
        return -1;
    }
    return cli_print_json(j);
}
