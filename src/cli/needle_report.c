/* `diffscope needle` output: the depth-by-model table (the paper's Table 3) and JSON. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/needle.h"
#include "io/provenance.h"

double needle_last_half(const double *x, int L) {
    double sum = 0;
    int b = ds_attn_last_half_begin(L);
    for (int l = b; l < L; l++) sum += x[l];
    return sum / (L - b);
}

static const double *layers_of(const needle_opts *no, const needle_model *m, const double *x, int j, int d) {
    return x + ((size_t)j * no->ndepths + d) * m->L;
}

void needle_print_table(const needle_opts *no, const needle_prompt_set *ps, const needle_model *nm, int nmodels) {
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
    printf("%s\n\n", no->task ? "acc: share of prompts whose top-1 next token is the value"
                              : "top1: does the top-1 next token start the answer");
    /* Column titles, and their widths for the rows. */
    char titles[16][48];
    int nt = 0;
    for (int i = 0; i < nmodels; i++) {
        snprintf(titles[nt++], sizeof titles[0], "%s:%s", nm[i].name, no->task ? "acc" : "top1");
        for (int j = 0; j < nm[i].nmaps; j++) {
            snprintf(titles[nt++], sizeof titles[0], "%s:%s.answer", nm[i].name, ds_map_name(nm[i].maps[j]));
            snprintf(titles[nt++], sizeof titles[0], "%s:%s.noise", nm[i].name, ds_map_name(nm[i].maps[j]));
        }
    }
    printf("depth");
    for (int c = 0; c < nt; c++) printf("  %s", titles[c]);
    printf("\n");
    for (int d = 0; d < no->ndepths; d++) {
        printf("%4d%%", no->depths[d]);
        int c = 0;
        for (int i = 0; i < nmodels; i++) {
            int w = (int)strlen(titles[c++]);
            if (no->task) printf("  %*.2f", w, nm[i].acc[d]);
            else printf("  %*s", w, nm[i].acc[d] > 0.5 ? "yes" : "no");
            for (int j = 0; j < nm[i].nmaps; j++) {
                w = (int)strlen(titles[c++]);
                printf("  %*.4f", w, needle_last_half(layers_of(no, &nm[i], nm[i].answer, j, d), nm[i].L));
                w = (int)strlen(titles[c++]);
                printf("  %*.4f", w, needle_last_half(layers_of(no, &nm[i], nm[i].noise, j, d), nm[i].L));
            }
        }
        printf("\n");
    }
}

static cJSON *array_of(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static cJSON *model_json(const needle_opts *no, const needle_prompt_set *ps, const ds_tokenizer *t,
                         const needle_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddStringToObject(o, "arch", m->arch);
    int b = ds_attn_last_half_begin(m->L), lh[2] = {b, m->L - 1};
    cJSON_AddItemToObject(o, "layers_averaged", cJSON_CreateIntArray(lh, 2));
    cJSON *depths = cJSON_AddArrayToObject(o, "depths");
    for (int d = 0; depths && d < no->ndepths; d++) {
        cJSON *dj = cJSON_CreateObject();
        cJSON_AddItemToArray(depths, dj);
        cJSON_AddNumberToObject(dj, "depth", no->depths[d]);
        cJSON_AddNumberToObject(dj, "accuracy", m->acc[d]);
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
            const double *a = layers_of(no, m, m->answer, j, d), *n = layers_of(no, m, m->noise, j, d);
            cJSON_AddNumberToObject(mj, "answer_mass", needle_last_half(a, m->L));
            cJSON_AddNumberToObject(mj, "noise_mass", needle_last_half(n, m->L));
            cJSON_AddItemToObject(mj, "answer_mass_per_layer", array_of(a, m->L));
            cJSON_AddItemToObject(mj, "noise_mass_per_layer", array_of(n, m->L));
        }
    }
    return o;
}

int needle_print_json(const needle_opts *no, const needle_prompt_set *ps, const ds_tokenizer *t,
                      const needle_model *nm, int nmodels) {
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
    for (int i = 0; models && i < nmodels; i++) cJSON_AddItemToArray(models, model_json(no, ps, t, &nm[i]));
    char *s = ds_provenance_add_to_json(no->provenance, o) ? NULL : cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory for JSON output");
    printf("%s\n", s);
    free(s);
    return 0;
}
