/* `diffscope needle` output: the depth-by-model table (the paper's Table 3) and JSON, from the
 * per-prompt values through needle_values_of. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/needle.h"
#include "io/provenance.h"
#include "cli/sweep.h" /* sweep_stats: the same mean, std and ci95 as the sweep's aggregates */

double needle_last_half(const double *x, int L) {
    double sum = 0;
    int b = ds_attn_last_half_begin(L);
    for (int l = b; l < L; l++) sum += x[l];
    return sum / (L - b);
}

const char *needle_quantity_name(needle_quantity q) {
    static const char *const names[3] = {"accuracy", "answer_mass", "noise_mass"};
    return names[q];
}

void needle_values_of(const needle_opts *no, const needle_model *m, needle_quantity q, int j, int d, needle_values *v) {
    const int K = no->trials, P = no->ndepths * K;
    const double *per_layer = q == NEEDLE_ANSWER_MASS ? m->answer : m->noise;
    double *layer = q == NEEDLE_CORRECT ? NULL : v->layer;
    v->count = 0;
    for (int l = 0; layer && l < m->L; l++) layer[l] = 0;
    for (int k = 0; k < K; k++) {
        int i = d * K + k;
        if (q == NEEDLE_CORRECT) {
            v->trial[k] = m->correct[i];
            v->count += m->correct[i];
            continue;
        }
        const double *x = per_layer + ((size_t)j * P + i) * m->L;
        v->trial[k] = needle_last_half(x, m->L);
        for (int l = 0; layer && l < m->L; l++) layer[l] += x[l];
    }
    for (int l = 0; layer && l < m->L; l++) layer[l] /= K;
    double *scratch = malloc((size_t)K * sizeof *scratch), median;
    int n;
    if (!scratch) { /* the spread is then unknown, the mean is not */
        v->std = v->ci95 = NAN;
        v->mean = 0;
        for (int k = 0; k < K; k++) v->mean += v->trial[k];
        v->mean /= K;
        return;
    }
    memcpy(scratch, v->trial, (size_t)K * sizeof *scratch);
    sweep_stats(scratch, K, &v->mean, &v->std, &v->ci95, &median, &n);
    free(scratch);
}

/* Scratch for needle_values_of: arrays of TRIALS and L doubles; -1 when out of memory. */
static int values_alloc(needle_values *v, int trials, int L) {
    v->trial = malloc((size_t)trials * sizeof *v->trial);
    v->layer = malloc((size_t)L * sizeof *v->layer);
    return v->trial && v->layer ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
}

static void values_free(needle_values *v) { free(v->trial), free(v->layer); }

/* ---- table ---- */

/* One cell: "mean" or, over several trials, "mean ± ci95"; accuracy as "mean (count/trials)"
 * (text probe: yes/no). */
static void format_cell(const needle_opts *no, needle_quantity q, const needle_values *v, char *buf, size_t n) {
    if (q == NEEDLE_CORRECT && !no->task) snprintf(buf, n, "%s", v->count ? "yes" : "no");
    else if (q == NEEDLE_CORRECT) snprintf(buf, n, "%.4f (%d/%d)", v->mean, v->count, no->trials);
    else if (no->trials > 1) snprintf(buf, n, "%.4f ± %.4f", v->mean, v->ci95);
    else snprintf(buf, n, "%.4f", v->mean);
}

static void print_header(const needle_opts *no, const needle_prompt_set *ps, const needle_model *nm, int nmodels) {
    if (no->task)
        printf("needle, kv task: %d context tokens with %d pairs, %d prompts per depth (seed %d), %d tokens each\n",
               ps->N, no->pairs, no->trials, no->seed, ps->maxlen);
    else
        printf("needle: %d tokens of %s, needle %d tokens, question %d tokens: %d tokens per prompt\n", ps->N,
               no->haystack ? no->haystack : no->haystack_ids, ps->nneedle, ps->nquestion, ps->maxlen);
    for (int i = 0; i < nmodels; i++) {
        int b = ds_attn_last_half_begin(nm[i].L);
        printf("%s: %s (%s): masses are means over heads and layers %d-%d\n", nm[i].name, nm[i].path, nm[i].arch, b,
               nm[i].L - 1);
    }
    printf("query: the last prompt token (its next token should be the answer); span: the needle's tokens\n");
    printf("%s\n", no->task ? "acc: share of prompts whose top-1 next token is the value (right/prompts)"
                            : "top1: does the top-1 next token start the answer");
    if (no->trials > 1)
        printf("mass ± x: mean over the depth's prompts ± the half-width of its 95 %% interval (1.96 std/sqrt(n));\n"
               "std and every prompt's values: --json, -o\n");
    printf("\n");
}

/* The cells of one depth, or with D < 0 the column titles; returns how many. */
static int row_cells(const needle_opts *no, const needle_model *nm, int nmodels, int d, needle_values *v,
                     char cells[][64]) {
    int nc = 0;
    for (int i = 0; i < nmodels; i++) {
        for (int j = -1; j < nm[i].nmaps; j++)
            for (int q = j < 0 ? NEEDLE_CORRECT : NEEDLE_ANSWER_MASS; q <= (j < 0 ? NEEDLE_CORRECT : NEEDLE_NOISE_MASS);
                 q++) {
                if (d < 0 && j < 0) snprintf(cells[nc], 64, "%s:%s", nm[i].name, no->task ? "acc" : "top1");
                else if (d < 0)
                    snprintf(cells[nc], 64, "%s:%s.%s", nm[i].name, ds_map_name(nm[i].maps[j]),
                             q == NEEDLE_ANSWER_MASS ? "answer" : "noise");
                else {
                    needle_values_of(no, &nm[i], (needle_quantity)q, j, d, v);
                    format_cell(no, (needle_quantity)q, v, cells[nc], 64);
                }
                nc++;
            }
    }
    return nc;
}

/* Display width of a UTF-8 cell (± is one column, two bytes). */
static int width_of(const char *s) {
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void needle_print_table(const needle_opts *no, const needle_prompt_set *ps, const needle_model *nm, int nmodels) {
    print_header(no, ps, nm, nmodels);
    int L = 0;
    for (int i = 0; i < nmodels; i++) L = nm[i].L > L ? nm[i].L : L;
    needle_values v = {0};
    char(*cells)[64] = malloc((size_t)(no->ndepths + 1) * 2 * (1 + 2 * DS_ATTN_NMAPS) * sizeof *cells);
    if (!cells || values_alloc(&v, no->trials, L)) {
        free(cells);
        values_free(&v);
        printf("(out of memory for the table)\n");
        return;
    }
    const int per_row = 2 * (1 + 2 * DS_ATTN_NMAPS);
    int nc = row_cells(no, nm, nmodels, -1, &v, cells);
    for (int d = 0; d < no->ndepths; d++) row_cells(no, nm, nmodels, d, &v, cells + (size_t)(d + 1) * per_row);
    int width[2 * (1 + 2 * DS_ATTN_NMAPS)];
    for (int c = 0; c < nc; c++) {
        width[c] = 0;
        for (int r = 0; r <= no->ndepths; r++) {
            int w = width_of(cells[(size_t)r * per_row + c]);
            if (w > width[c]) width[c] = w;
        }
    }
    for (int r = 0; r <= no->ndepths; r++) {
        if (r) printf("%4d%%", no->depths[r - 1]);
        else printf("depth");
        for (int c = 0; c < nc; c++) {
            const char *s = cells[(size_t)r * per_row + c];
            printf("  %*s%s", width[c] - width_of(s), "", s);
        }
        printf("\n");
    }
    free(cells);
    values_free(&v);
}

/* ---- JSON ---- */

static cJSON *num(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

static cJSON *array_of(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, num(x[i]));
    return a;
}

/* NAME, NAME_std, NAME_ci95, NAME_per_trial (and NAME_per_layer for the masses) into O. */
static void add_values(cJSON *o, needle_quantity q, const needle_values *v, int trials, int L) {
    const char *name = needle_quantity_name(q);
    char key[64];
    cJSON_AddItemToObject(o, name, num(v->mean));
    snprintf(key, sizeof key, "%s_std", name);
    cJSON_AddItemToObject(o, key, num(v->std));
    snprintf(key, sizeof key, "%s_ci95", name);
    cJSON_AddItemToObject(o, key, num(v->ci95));
    snprintf(key, sizeof key, "%s_per_trial", name);
    cJSON_AddItemToObject(o, key, array_of(v->trial, trials));
    if (q == NEEDLE_CORRECT) return;
    snprintf(key, sizeof key, "%s_per_layer", name);
    cJSON_AddItemToObject(o, key, array_of(v->layer, L));
}

static cJSON *depth_json(const needle_opts *no, const ds_tokenizer *t, const needle_model *m, int d, needle_values *v) {
    cJSON *dj = cJSON_CreateObject();
    cJSON_AddNumberToObject(dj, "depth", no->depths[d]);
    needle_values_of(no, m, NEEDLE_CORRECT, 0, d, v);
    cJSON_AddNumberToObject(dj, "correct", v->count);
    add_values(dj, NEEDLE_CORRECT, v, no->trials, m->L);
    cJSON *top = cJSON_AddArrayToObject(dj, "top1");
    for (int k = 0; top && k < no->trials; k++) {
        int id = m->top1[d * no->trials + k];
        cJSON *tj = cJSON_CreateObject();
        cJSON_AddNumberToObject(tj, "id", id);
        char *piece = t ? ds_tokenizer_piece(t, id) : NULL;
        if (piece) cJSON_AddStringToObject(tj, "text", piece);
        free(piece);
        cJSON_AddItemToArray(top, tj);
    }
    for (int j = 0; j < m->nmaps; j++) {
        cJSON *mj = cJSON_AddObjectToObject(dj, ds_map_name(m->maps[j]));
        for (int q = NEEDLE_ANSWER_MASS; mj && q <= NEEDLE_NOISE_MASS; q++) {
            needle_values_of(no, m, (needle_quantity)q, j, d, v);
            add_values(mj, (needle_quantity)q, v, no->trials, m->L);
        }
    }
    return dj;
}

static cJSON *model_json(const needle_opts *no, const ds_tokenizer *t, const needle_model *m, needle_values *v) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "arch", m->arch);
    int b = ds_attn_last_half_begin(m->L), lh[2] = {b, m->L - 1};
    cJSON_AddItemToObject(o, "layers_averaged", cJSON_CreateIntArray(lh, 2));
    cJSON *depths = cJSON_AddArrayToObject(o, "depths");
    for (int d = 0; depths && d < no->ndepths; d++) cJSON_AddItemToArray(depths, depth_json(no, t, m, d, v));
    return o;
}

int needle_print_json(const needle_opts *no, const needle_prompt_set *ps, const ds_tokenizer *t,
                      const needle_model *nm, int nmodels) {
    int L = 0;
    for (int i = 0; i < nmodels; i++) L = nm[i].L > L ? nm[i].L : L;
    needle_values v = {0};
    if (values_alloc(&v, no->trials, L)) return values_free(&v), -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", no->task ? "kv" : "text");
    cJSON_AddNumberToObject(o, "context_tokens", ps->N);
    cJSON_AddNumberToObject(o, "prompt_tokens", ps->maxlen);
    cJSON_AddNumberToObject(o, "trials", no->trials);
    if (no->task) {
        cJSON_AddNumberToObject(o, "pairs", no->pairs);
        cJSON_AddNumberToObject(o, "seed", (double)no->seed);
    } else if (no->answer) {
        cJSON_AddStringToObject(o, "answer", no->answer);
    } else {
        cJSON_AddNumberToObject(o, "answer_id", (double)no->answer_id);
    }
    cJSON_AddItemToObject(o, "depths", cJSON_CreateIntArray(no->depths, no->ndepths));
    /* The prompts themselves (depth-major: depth d, trial k at d * trials + k), so that a
     * reader can recompute every number. */
    cJSON *pr = cJSON_AddArrayToObject(o, "prompts");
    for (int i = 0; pr && i < ps->nprompts; i++) {
        const needle_prompt *p = &ps->prompts[i];
        cJSON *pj = cJSON_CreateObject();
        int span[2] = {p->span_begin, p->span_end};
        cJSON_AddItemToObject(pj, "ids", cJSON_CreateIntArray(p->ids, p->n));
        cJSON_AddItemToObject(pj, "span", cJSON_CreateIntArray(span, 2));
        if (p->answer_id >= 0) cJSON_AddNumberToObject(pj, "answer_id", p->answer_id);
        cJSON_AddItemToArray(pr, pj);
    }
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; models && i < nmodels; i++) cJSON_AddItemToArray(models, model_json(no, t, &nm[i], &v));
    values_free(&v);
    char *s = ds_provenance_add_to_json(no->provenance, o) ? NULL : cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory for JSON output");
    printf("%s\n", s);
    free(s);
    return 0;
}
