/* The data behind the view: the maps of one head of one layer (read whole, one head at a
 * time), the counterfactual λ, and the per-head summary strip at the selected row. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/attn_stats.h"
#include "diffscope/error.h"
#include "viewer.h"

void viewer_free_maps(viewer *v) {
    float **bufs[] = {&v->s1, &v->s2, &v->diff_dump, &v->lmaps[0], &v->lmaps[1], &v->lmaps[2],
                      &v->lmaps[3], &v->vs_map, &v->strip_s1, &v->strip_s2, &v->gn_scale,
                      &v->strip_a, &v->strip_b};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
}

static float *alloc_floats(size_t n) {
    float *p = malloc(n * sizeof *p);
    if (!p) ds_failc(DS_ERR_NOMEM, "out of memory (%zu MB for one map)", n * sizeof *p >> 20);
    return p;
}

double viewer_lambda_dump(const viewer *v) { return v->li ? v->li->lambda_full : 0; }

/* The dumped diff is used as is while λ is the dump's own; another λ is computed. */
static int use_dumped_diff(const viewer *v) {
    return v->diff_dump && v->lambda == viewer_lambda_dump(v);
}

float viewer_value(const viewer *v, panel_kind kind, int slot, int q, int k) {
    if (k > q || q < 0 || k < 0 || q >= v->T || k >= v->T) return NAN;
    size_t i = (size_t)q * v->T + k;
    switch (kind) {
    case PANEL_SOFTMAX1: return v->s1 ? v->s1[i] : NAN;
    case PANEL_SOFTMAX2: return v->s2 ? v->s2[i] : NAN;
    case PANEL_LSOFTMAX2: return v->s2 ? (float)(v->lambda * v->s2[i]) : NAN;
    case PANEL_DIFF:
        if (use_dumped_diff(v)) return v->diff_dump[i];
        return v->s1 && v->s2 ? (float)(v->s1[i] - v->lambda * v->s2[i]) : NAN;
    case PANEL_SOFTMAX:
        return slot >= 0 && slot < v->n_lheads && v->lmaps[slot] ? v->lmaps[slot][i] : NAN;
    case PANEL_VS: return v->vs_map ? v->vs_map[i] : NAN;
    default: return NAN;
    }
}

/* The largest value (magnitude for the difference) of panel KIND over the cells in view,
 * across the Llama slots shown for PANEL_SOFTMAX. */
static float visible_max(const viewer *v, panel_kind kind, int slots) {
    int q0 = (int)floor(v->view_q0), q1 = (int)ceil(v->view_q0 + v->span);
    int k0 = (int)floor(v->view_k0), k1 = (int)ceil(v->view_k0 + v->span);
    q0 = q0 < 0 ? 0 : q0, k0 = k0 < 0 ? 0 : k0;
    q1 = q1 > v->T ? v->T : q1, k1 = k1 > v->T ? v->T : k1;
    float mx = 0;
    for (int slot = 0; slot < slots; slot++)
        for (int q = q0; q < q1; q++)
            for (int k = k0; k < k1 && k <= q; k++) {
                float x = fabsf(viewer_value(v, kind, slot, q, k));
                if (x > mx) mx = x;
            }
    return mx;
}

int viewer_update_scales(viewer *v) {
    const double key[] = {v->view_k0, v->view_q0, v->span, v->lambda, (double)v->data_generation};
    if (!memcmp(key, v->scale_key, sizeof key)) return 0;
    memcpy(v->scale_key, key, sizeof key);
    float soft = 0, diff = 0, vs = 0;
    if (v->differential) {
        float m1 = visible_max(v, PANEL_SOFTMAX1, 1), m2 = visible_max(v, PANEL_SOFTMAX2, 1);
        soft = m1 > m2 ? m1 : m2;
        diff = visible_max(v, PANEL_DIFF, 1);
    } else {
        soft = visible_max(v, PANEL_SOFTMAX, v->n_lheads);
    }
    if (v->vs_li) vs = visible_max(v, PANEL_VS, 1);
    v->vmax_soft = soft > 0 ? soft : 1;
    v->vmax_diff = diff > 0 ? diff : 1;
    v->vmax_vs = vs > 0 ? vs : 1;
    return 1;
}

/* The strip: per head, DiffLlama: the cancelled share at the selected row with the slider's λ
 * (ds_cancelled_share, as in compare and the dump) and the GroupNorm scale at that row. Llama:
 * the row's attention entropy over log(q+1) and its largest weight. */
static void compute_strip(viewer *v) {
    int T = v->T, q = v->row;
    const ds_dump_layer_info *li = v->li;
    for (int h = 0; h < li->n_heads; h++) {
        const float *a = v->strip_s1 + (size_t)h * T, *b = v->strip_s2 ? v->strip_s2 + (size_t)h * T : NULL;
        double x = 0, y = 0;
        if (v->differential) {
            x = ds_cancelled_share(a, b, v->lambda, q + 1);
            y = v->gn_scale ? v->gn_scale[(size_t)h * T + q] : NAN;
        } else {
            double ent = 0, mx = 0;
            for (int k = 0; k <= q; k++) {
                if (a[k] > 0) ent -= a[k] * log(a[k]);
                if (a[k] > mx) mx = a[k];
            }
            x = q > 0 ? ent / log(q + 1.0) : 0;
            y = mx;
        }
        v->strip_a[h] = (float)x;
        v->strip_b[h] = (float)y;
    }
}

int viewer_load_strip(viewer *v) {
    if (v->strip_row == v->row) return 0;
    const ds_dump_layer_info *li = v->li;
    for (int h = 0; h < li->n_heads; h++) {
        float *a = v->strip_s1 + (size_t)h * v->T;
        if (v->differential) {
            if (ds_dump_reader_read_rows(v->dump, v->layer, DS_MAP_SOFTMAX1, h, v->row, 1, a) < 0 ||
                ds_dump_reader_read_rows(v->dump, v->layer, DS_MAP_SOFTMAX2, h, v->row, 1,
                                  v->strip_s2 + (size_t)h * v->T) < 0)
                return -1;
        } else if (ds_dump_reader_read_rows(v->dump, v->layer, DS_MAP_SOFTMAX, h, v->row, 1, a) < 0)
            return -1;
    }
    v->strip_row = v->row;
    compute_strip(v);
    return 0;
}

void viewer_set_lambda(viewer *v, double lambda) {
    if (!v->differential || !isfinite(lambda)) return;
    v->lambda = lambda;
    if (v->strip_row >= 0) compute_strip(v);
}

/* Reads the --vs map of the same layer, if the --vs dump has it. */
int viewer_load_vs(viewer *v) {
    v->vs_li = NULL;
    if (!v->vs) return 0;
    const ds_dump_info *vi = ds_dump_reader_info(v->vs);
    int found = 0;
    for (int i = 0; i < vi->n_layers; i++) found |= vi->layers[i] == v->layer;
    if (!found) return 0; /* the panel says so */
    const ds_dump_layer_info *li = ds_dump_reader_layer(v->vs, v->layer);
    if (!li) return -1;
    if (v->vs_head >= li->n_heads) v->vs_head = li->n_heads - 1;
    if (v->vs_head < 0) v->vs_head = 0;
    if (ds_dump_reader_read_head(v->vs, v->layer, DS_MAP_SOFTMAX, v->vs_head, v->vs_map) < 0) return -1;
    v->vs_li = li;
    v->data_generation++;
    return 0;
}

/* Llama: the window of heads shown moves only when the selected head leaves it; maps already
 * in memory are reused when it moves by a few heads. */
static int load_llama_heads(viewer *v, int layer_changed) {
    size_t n = (size_t)v->T * v->T;
    int hs = v->li->n_heads;
    v->n_lheads = hs < LLAMA_PANELS ? hs : LLAMA_PANELS;
    if (layer_changed)
        for (int s = 0; s < LLAMA_PANELS; s++) v->lmap_head[s] = -1;
    if (layer_changed || v->head < v->lwin || v->head >= v->lwin + v->n_lheads)
        v->lwin = v->head < hs - v->n_lheads ? v->head : hs - v->n_lheads;
    for (int s = 0; s < v->n_lheads; s++) {
        int want = v->lwin + s;
        for (int j = s + 1; j < LLAMA_PANELS && v->lmap_head[s] != want; j++)
            if (v->lmap_head[j] == want) { /* swap the buffers */
                float *m = v->lmaps[s];
                int h = v->lmap_head[s];
                v->lmaps[s] = v->lmaps[j], v->lmap_head[s] = v->lmap_head[j];
                v->lmaps[j] = m, v->lmap_head[j] = h;
            }
    }
    for (int s = 0; s < v->n_lheads; s++) {
        if (v->lmap_head[s] != v->lwin + s) {
            if (!v->lmaps[s] && !(v->lmaps[s] = alloc_floats(n))) return -1;
            v->lmap_head[s] = -1;
            if (ds_dump_reader_read_head(v->dump, v->layer, DS_MAP_SOFTMAX, v->lwin + s, v->lmaps[s]) < 0) return -1;
            v->lmap_head[s] = v->lwin + s;
        }
    }
    return 0;
}

int viewer_load(viewer *v) {
    size_t n = (size_t)v->T * v->T;
    const ds_dump_layer_info *li = ds_dump_reader_layer(v->dump, v->layer);
    if (!li) return -1;
    if (v->head < 0 || v->head >= li->n_heads)
        return ds_fail("%s: head index %d outside 0..%d in layer %d", ds_dump_reader_path(v->dump),
                       v->head, li->n_heads - 1, v->layer);
    int layer_changed = v->li != li;
    v->li = li;
    v->differential = ds_arch_get(v->info->arch)->differential;
    /* Buffers are sized by T and the layer's head count, so they are kept across heads. */
    if (!v->strip_a || layer_changed) {
        int hs = li->n_heads;
        free(v->strip_s1); free(v->strip_s2); free(v->gn_scale); free(v->strip_a); free(v->strip_b);
        v->strip_s2 = v->gn_scale = NULL;
        if (!(v->strip_s1 = alloc_floats((size_t)hs * v->T)) ||
            !(v->strip_a = alloc_floats(hs)) || !(v->strip_b = alloc_floats(hs)))
            return -1;
        if (v->differential && !(v->strip_s2 = alloc_floats((size_t)hs * v->T))) return -1;
        if (li->has_groupnorm) {
            if (!(v->gn_scale = alloc_floats((size_t)hs * v->T))) return -1;
            if (ds_dump_reader_read_groupnorm_scale(v->dump, v->layer, v->gn_scale) < 0) return -1;
        }
        if (v->differential) v->lambda = li->lambda_full;
        v->strip_row = -1;
    }
    if (v->differential) {
        if ((!v->s1 && !(v->s1 = alloc_floats(n))) || (!v->s2 && !(v->s2 = alloc_floats(n))))
            return -1;
        if (ds_dump_reader_read_head(v->dump, v->layer, DS_MAP_SOFTMAX1, v->head, v->s1) < 0 ||
            ds_dump_reader_read_head(v->dump, v->layer, DS_MAP_SOFTMAX2, v->head, v->s2) < 0)
            return -1;
        if (li->has_map[DS_MAP_DIFF]) {
            if (!v->diff_dump && !(v->diff_dump = alloc_floats(n))) return -1;
            if (ds_dump_reader_read_head(v->dump, v->layer, DS_MAP_DIFF, v->head, v->diff_dump) < 0) return -1;
        } else {
            free(v->diff_dump);
            v->diff_dump = NULL;
        }
    } else if (load_llama_heads(v, layer_changed) < 0)
        return -1;
    if (v->vs && !v->vs_map && !(v->vs_map = alloc_floats(n))) return -1;
    if (viewer_load_vs(v) < 0) return -1;
    v->data_generation++;
    return viewer_load_strip(v);
}

const char *panel_title(const viewer *v, const panel *p, char *buf, int n) {
    switch (p->kind) {
    case PANEL_SOFTMAX1: snprintf(buf, n, "softmax\u2081"); break;
    case PANEL_SOFTMAX2: snprintf(buf, n, "softmax\u2082"); break;
    case PANEL_LSOFTMAX2: snprintf(buf, n, "\u03bb\u00b7softmax\u2082  (\u03bb = %.3f)", v->lambda); break;
    case PANEL_DIFF: snprintf(buf, n, "difference  softmax\u2081 \u2212 \u03bb\u00b7softmax\u2082"); break;
    case PANEL_SOFTMAX:
        snprintf(buf, n, "head %d", v->li && p->slot < v->n_lheads ? v->li->heads[v->lwin + p->slot] : 0);
        break;
    case PANEL_VS:
        if (v->vs_li)
            snprintf(buf, n, "%s (--vs)  head %d", ds_arch_get(ds_dump_reader_info(v->vs)->arch)->label,
                     v->vs_li->heads[v->vs_head]);
        else snprintf(buf, n, "--vs");
        break;
    default: snprintf(buf, n, "?");
    }
    return buf;
}
