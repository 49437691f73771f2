/* Attention-noise statistics at one query row and Table-5 outliers, from probe events
 * (see include/diffscope/attn_stats.h). Only the row block that holds the query row is read
 * from each map event; scores and residual values are streamed into bounded accumulators. */
#include "diffscope/attn_stats.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries below this share of the row's largest |entry| count as "sparse". */
#define SPARSE_REL 1e-3

const ds_map ds_attn_maps[DS_ATTN_NMAPS] = {DS_MAP_DIFF, DS_MAP_SOFTMAX1, DS_MAP_SOFTMAX};

/* Row q of one head's map: the five statistics. */
static void row_stats(const float *row, int q, int b, int e, int is_softmax, ds_attn_row_stats *st) {
    double answer = 0, noise = 0, ent = 0, mx = 0;
    for (int k = 0; k <= q; k++) {
        double v = row[k];
        if (k >= b && k < e) answer += v;
        else if (k > 0) noise += v;
        if (is_softmax && v > 0) ent -= v * log(v);
        if (fabs(v) > mx) mx = fabs(v);
    }
    int small = 0;
    for (int k = 0; k <= q; k++) small += fabs((double)row[k]) < SPARSE_REL * mx;
    st->answer_mass = e > b ? answer : NAN;
    st->noise_mass = noise;
    st->sink_mass = row[0];
    st->entropy = is_softmax ? ent : NAN;
    st->sparsity = (double)small / (q + 1);
}

double ds_cancelled_share(const float *s1, const float *s2, double lambda, int n) {
    double common = 0, total = 0;
    for (int k = 0; k < n; k++) {
        double lb = lambda * s2[k];
        total += s1[k];
        common += s1[k] < lb ? s1[k] : lb;
    }
    return total > 0 ? fmax(common, 0) / total : 0;
}

/* Row q of softmax1 is kept until softmax2's block comes (the same row block, right after). */
static int on_pattern(ds_attn_stats *s, int second, const ds_probe_event *ev) {
    int row = s->o.query - ev->pos0 - (int)ev->offset[1], n = s->o.query + 1;
    if (row < 0 || row >= ev->shape[1]) return 0;
    for (int h = 0; h < ev->shape[0]; h++) {
        const float *x = ev->data + h * ev->strides[0] + row * ev->strides[1];
        float *keep = s->row1 + (size_t)h * n;
        if (!second) memcpy(keep, x, (size_t)n * sizeof *keep);
        else
            s->cancelled_share[(size_t)ev->layer * s->heads + h] =
                ds_cancelled_share(keep, x, s->lambda_full[ev->layer], n);
    }
    return 0;
}

static int on_map(ds_attn_stats *s, ds_map map, const ds_probe_event *ev) {
    int row = s->o.query - ev->pos0 - (int)ev->offset[1]; /* the query's row inside this block */
    if (row < 0 || row >= ev->shape[1]) return 0;
    for (int h = 0; h < ev->shape[0]; h++)
        row_stats(ev->data + h * ev->strides[0] + row * ev->strides[1], s->o.query, s->o.span_begin, s->o.span_end,
                  map != DS_MAP_DIFF, &s->head[map][(size_t)ev->layer * s->heads + h]);
    return 0;
}

/* Sums over tokens here; ds_attn_stats_finish divides by T. */
static void on_groupnorm(ds_attn_stats *s, const ds_probe_event *ev) {
    double eps = s->rms_norm_eps, keep = 1.0 - ds_lambda_init(ev->layer);
    for (int h = 0; h < ev->shape[0]; h++) {
        ds_attn_gn_stats *g = &s->groupnorm[(size_t)ev->layer * s->heads + h];
        for (int r = 0; r < ev->shape[1]; r++) {
            const float *x = ev->data + h * ev->strides[0] + r * ev->strides[1];
            double ss = 0;
            for (int i = 0; i < ev->shape[2]; i++) ss += (double)x[i] * x[i];
            double ms = ss / ev->shape[2], rms = sqrt(ms), scale = keep / sqrt(ms + eps);
            g->rms_mean += rms, g->scale_mean += scale;
            if (ev->pos0 + (int)ev->offset[1] + r == s->o.query) g->rms_query = rms, g->scale_query = scale;
        }
    }
}

static void push_scores(ds_attn_stats *s, const ds_probe_event *ev) {
    for (int h = 0; h < ev->shape[0]; h++)
        for (int r = 0; r < ev->shape[1]; r++) {
            const float *row = ev->data + h * ev->strides[0] + r * ev->strides[1];
            int q = ev->pos0 + (int)ev->offset[1] + r; /* causal entries: keys 0..q */
            ds_table5_push_n(s->scores_acc, row, (size_t)q + 1);
        }
}

static int on_event(const ds_probe_event *ev, void *user) {
    ds_attn_stats *s = user;
    switch (ev->point) {
    case DS_HOOK_DIFF: return on_map(s, DS_MAP_DIFF, ev);
    case DS_HOOK_PATTERN1: return on_map(s, DS_MAP_SOFTMAX1, ev) || on_pattern(s, 0, ev);
    case DS_HOOK_PATTERN2: return on_pattern(s, 1, ev);
    case DS_HOOK_PATTERN: return on_map(s, DS_MAP_SOFTMAX, ev);
    case DS_HOOK_LAMBDA: s->lambda_full[ev->layer] = ev->data[3]; return 0;
    case DS_HOOK_SCORES: push_scores(s, ev); return 0;
    case DS_HOOK_GROUPNORM_IN: on_groupnorm(s, ev); return 0;
    case DS_HOOK_RESID_POST:
        for (int64_t t = 0; t < ev->shape[0]; t++)
            ds_table5_push_n(s->resid_acc, ev->data + t * ev->strides[0], (size_t)ev->shape[1]);
        return 0;
    default: return 0;
    }
}

int ds_attn_stats_check(const ds_attn_stats_opts *o, int T) {
    if (o->query < 0 || o->query >= T)
        return ds_fail("query position %d is out of range (the prompt has %d tokens: 0..%d)", o->query, T, T - 1);
    if (o->span_end == 0) return 0;
    if (o->span_begin < 0 || o->span_begin >= o->span_end || o->span_end > T)
        return ds_fail("span %d:%d is not a non-empty range of the %d prompt tokens", o->span_begin, o->span_end, T);
    if (o->span_begin == 0)
        return ds_fail("span %d:%d includes token 0, the attention sink (reported apart as sink_mass)", o->span_begin,
                       o->span_end);
    if (o->span_end > o->query + 1)
        return ds_fail("span %d:%d ends after the query position %d (the query cannot attend to it)", o->span_begin,
                       o->span_end, o->query);
    return 0;
}

ds_attn_stats *ds_attn_stats_begin(const ds_model *m, int T, const ds_attn_stats_opts *opts, ds_probes *p) {
    const ds_config *c = ds_model_config(m);
    if (ds_attn_stats_check(opts, T)) return NULL;
    ds_attn_stats *s = calloc(1, sizeof *s);
    if (!s) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->o = *opts, s->T = T, s->L = c->num_layers;
    s->is_diff = c->desc->differential;
    s->heads = c->map_heads;
    s->has_map[DS_MAP_DIFF] = s->has_map[DS_MAP_SOFTMAX1] = s->is_diff;
    s->has_map[DS_MAP_SOFTMAX] = !s->is_diff;
    s->rms_norm_eps = c->rms_norm_eps;
    int gn = opts->groupnorm && s->is_diff;
    int ok = (s->lambda_full = malloc((size_t)s->L * sizeof *s->lambda_full)) != NULL &&
             (!gn || (s->groupnorm = calloc((size_t)s->L * s->heads, sizeof *s->groupnorm))) &&
             (!s->is_diff || ((s->cancelled_share = calloc((size_t)s->L * s->heads, sizeof *s->cancelled_share)) &&
                              (s->cancelled_share_layer = calloc((size_t)s->L, sizeof *s->cancelled_share_layer)) &&
                              (s->row1 = malloc((size_t)s->heads * (opts->query + 1) * sizeof *s->row1))));
    for (int k = 0; ok && k < DS_MAP_COUNT; k++)
        if (s->has_map[k])
            ok = (s->head[k] = calloc((size_t)s->L * s->heads, sizeof **s->head)) &&
                 (s->layer[k] = calloc((size_t)s->L, sizeof **s->layer));
    if (!ok) ds_failc(DS_ERR_NOMEM, "out of memory");
    if (ok && opts->outliers) ok = (s->scores_acc = ds_table5_new()) && (s->resid_acc = ds_table5_new());
    for (int l = 0; ok && l < s->L; l++) s->lambda_full[l] = NAN;
    /* On every layer: the maps the statistics cover and λ; for the outliers, scores and resid;
     * the GroupNorm input for its summaries. */
    ds_hook_point points[7];
    int np = 0;
    if (s->is_diff)
        points[np++] = DS_HOOK_DIFF, points[np++] = DS_HOOK_PATTERN1, points[np++] = DS_HOOK_PATTERN2,
        points[np++] = DS_HOOK_LAMBDA;
    else points[np++] = DS_HOOK_PATTERN;
    if (opts->outliers) points[np++] = DS_HOOK_SCORES, points[np++] = DS_HOOK_RESID_POST;
    if (gn) points[np++] = DS_HOOK_GROUPNORM_IN;
    for (int i = 0; ok && i < np; i++) ok = !ds_probes_add_point_causal(p, points[i], -1, on_event, s);
    if (!ok) {
        ds_attn_stats_free(s);
        return NULL;
    }
    return s;
}

int ds_attn_stats_finish(ds_attn_stats *s) {
    for (int k = 0; k < DS_MAP_COUNT; k++) {
        if (!s->has_map[k]) continue;
        for (int l = 0; l < s->L; l++) {
            ds_attn_row_stats m = {0};
            for (int h = 0; h < s->heads; h++) {
                const ds_attn_row_stats *x = &s->head[k][(size_t)l * s->heads + h];
                m.answer_mass += x->answer_mass, m.noise_mass += x->noise_mass, m.sink_mass += x->sink_mass;
                m.entropy += x->entropy, m.sparsity += x->sparsity;
            }
            m.answer_mass /= s->heads, m.noise_mass /= s->heads, m.sink_mass /= s->heads;
            m.entropy /= s->heads, m.sparsity /= s->heads;
            s->layer[k][l] = m;
        }
    }
    for (int l = 0; s->cancelled_share && l < s->L; l++) {
        double sum = 0;
        for (int h = 0; h < s->heads; h++) sum += s->cancelled_share[(size_t)l * s->heads + h];
        s->cancelled_share_layer[l] = sum / s->heads;
    }
    for (size_t i = 0; s->groupnorm && i < (size_t)s->L * s->heads; i++)
        s->groupnorm[i].rms_mean /= s->T, s->groupnorm[i].scale_mean /= s->T;
    if (s->scores_acc) ds_table5_result(s->scores_acc, &s->scores);
    if (s->resid_acc) ds_table5_result(s->resid_acc, &s->resid);
    ds_table5_free(s->scores_acc), ds_table5_free(s->resid_acc);
    s->scores_acc = s->resid_acc = NULL;
    return 0;
}

void ds_attn_stats_free(ds_attn_stats *s) {
    if (!s) return;
    for (int k = 0; k < DS_MAP_COUNT; k++) free(s->head[k]), free(s->layer[k]);
    ds_table5_free(s->scores_acc), ds_table5_free(s->resid_acc);
    free(s->lambda_full), free(s->groupnorm), free(s->cancelled_share), free(s->cancelled_share_layer), free(s->row1);
    free(s);
}
