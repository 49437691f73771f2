/* Causal self-attention, standard (Llama) and differential (DiffLlama), over the KV cache.
 *
 * Follows ../shared/DESIGN.md section 1. For DiffLlama, sub-head h in 0..H-1 gives the map
 * A_h = softmax(q_h k_{h/n_rep}ᵀ/√hd + mask); differential head i pairs A_i with A_{i+H/2}
 * and reads the 2·hd-channel value V_i = [v_{i/n_rep}, v_{(i+H/2)/n_rep}]:
 *
 *     O_i = (A_i − λ A_{i+H/2}) V_i,   then   O_i ← (1 − λ_init) · O_i / √(mean(O_i²) + eps)
 *
 * (transformers computes A_i V_i − λ A_{i+H/2} V_i; the difference is float rounding.)
 *
 * Query rows are processed in blocks of R rows so that a long prompt never holds a full
 * T × T map for every head: the scratch holds H × R × Tk floats. The maps of a block are
 * handed to the probes (in head-major [heads, R, Tk] views) before the next block. */
#include "model_internal.h"
#include "diffscope/error.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scratch budget for one row block of maps, in floats (32 MB), and the tallest block: a
 * block's QKᵀ covers keys up to its last row, so shorter blocks waste less of the causal
 * triangle (1/8 of it at 512 tokens with 128 rows instead of 1/2 with one block). */
#define ATT_BLOCK_FLOATS (8u << 20)
#define ATT_MAX_ROWS 128

static int ensure_scratch(ds_session *s, size_t need) {
    if (need <= s->att_cap) return 0;
    free(s->att);
    free(s->diff);
    s->att = malloc(need * sizeof(float));
    s->diff = malloc(need * sizeof(float)); /* H/2 maps would do; one size keeps it simple */
    s->att_cap = (s->att && s->diff) ? need : 0;
    return s->att_cap ? 0 : ds_fail("out of memory for attention scratch (%zu floats)", need);
}

static void block_view(ds_probe_event *ev, float *data, int heads, int nr, int r0, int n, int tk, int pos0) {
    memset(ev, 0, sizeof *ev);
    ev->pos0 = pos0;
    ev->ndim = 3;
    ev->shape[0] = heads, ev->shape[1] = nr, ev->shape[2] = tk;
    ev->strides[0] = (int64_t)nr * tk, ev->strides[1] = tk, ev->strides[2] = 1;
    ev->offset[1] = r0;
    ev->full[0] = heads, ev->full[1] = n, ev->full[2] = tk;
    ev->data = data;
}

/* Row i of a block is query position p = pos0 + r0 + i; keys k > p are masked. Softmax in
 * place over keys 0..p, zeros after p up to WIDTH columns. */
static void softmax_rows(float *S, int nr, int tk, int p_first, int width) {
    for (int i = 0; i < nr; i++) {
        float *row = S + (size_t)i * tk;
        int p = p_first + i;
        float mx = row[0];
        for (int k = 1; k <= p; k++) mx = row[k] > mx ? row[k] : mx;
        double sum = 0;
        for (int k = 0; k <= p; k++) {
            row[k] = expf(row[k] - mx);
            sum += row[k];
        }
        float inv = (float)(1.0 / sum);
        for (int k = 0; k <= p; k++) row[k] *= inv;
        for (int k = p + 1; k < width; k++) row[k] = 0.0f;
    }
}

static void groupnorm(ds_session *s, int n, int layer) {
    const ds_config *c = &s->m->cfg;
    int hd2 = 2 * c->head_dim, Hd = c->num_heads / 2, width = c->num_heads * c->head_dim;
    float scale = (float)(1.0 - ds_lambda_init(layer)), eps = c->rms_norm_eps;
#pragma omp parallel for schedule(static) if ((size_t)n * width >= DS_PAR_MIN)
    for (int t = 0; t < n; t++)
        for (int i = 0; i < Hd; i++) {
            float *o = s->z + (size_t)t * width + (size_t)i * hd2;
            double ss = 0;
            for (int j = 0; j < hd2; j++) ss += (double)o[j] * o[j];
            float r = 1.0f / sqrtf((float)(ss / hd2) + eps);
            for (int j = 0; j < hd2; j++) o[j] = (o[j] * r) * scale;
        }
}

static void groupnorm_view(ds_probe_event *ev, ds_session *s, int n, int pos0) {
    const ds_config *c = &s->m->cfg;
    memset(ev, 0, sizeof *ev);
    ev->pos0 = pos0;
    ev->ndim = 3;
    ev->shape[0] = ev->full[0] = c->num_heads / 2;
    ev->shape[1] = ev->full[1] = n;
    ev->shape[2] = ev->full[2] = 2 * c->head_dim;
    ev->strides[0] = 2 * c->head_dim, ev->strides[1] = (int64_t)c->num_heads * c->head_dim, ev->strides[2] = 1;
    ev->data = s->z;
}

int ds_attention(ds_session *s, int layer, int n, double lambda, ds_probes *probes) {
    const ds_config *c = &s->m->cfg;
    const int H = c->num_heads, KV = c->num_kv_heads, hd = c->head_dim, nrep = H / KV;
    const int Hd = H / 2, qw = H * hd, kvw = KV * hd, pos0 = s->pos, tk = pos0 + n;
    const int is_diff = c->arch == DS_ARCH_DIFFLLAMA;
    const float *K = s->k_cache + (size_t)layer * s->max_tokens * kvw;
    const float *V = s->v_cache + (size_t)layer * s->max_tokens * kvw;
    const float scale = (float)(1.0 / sqrt((double)hd)), lam = (float)lambda;

    const int want_scores = ds_probes_active(probes, DS_HOOK_SCORES, layer);
    const int want_pattern = ds_probes_active(probes, DS_HOOK_PATTERN, layer);
    const int want_p1 = is_diff && ds_probes_active(probes, DS_HOOK_PATTERN1, layer);
    const int want_p2 = is_diff && ds_probes_active(probes, DS_HOOK_PATTERN2, layer);
    const int want_diff = is_diff && ds_probes_active(probes, DS_HOOK_DIFF, layer);
    const int want_maps = want_scores || want_pattern || want_p1 || want_p2 || want_diff;

    size_t per_row = (size_t)H * tk;
    int R = (int)(ATT_BLOCK_FLOATS / per_row);
    if (R < 1) R = 1;
    if (R > ATT_MAX_ROWS) R = ATT_MAX_ROWS;
    if (R > n) R = n;
    if (ensure_scratch(s, per_row * R)) return -1;
    ds_probe_event ev;

    for (int r0 = 0; r0 < n; r0 += R) {
        const int nr = n - r0 < R ? n - r0 : R;
        const int kmax = pos0 + r0 + nr; /* keys visible to the last row of the block */
        /* Probes see whole rows of Tk keys; otherwise only the kmax columns in use are filled. */
        const int width = want_maps ? tk : kmax;
        const int par = (size_t)H * nr * kmax * hd >= DS_PAR_MIN;
        float *att = s->att;

#pragma omp parallel for schedule(dynamic) if (par)
        for (int h = 0; h < H; h++) {
            float *S = att + (size_t)h * nr * tk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, kmax, hd, scale,
                        s->q + (size_t)r0 * qw + (size_t)h * hd, qw, K + (size_t)(h / nrep) * hd, kvw, 0.0f, S, tk);
            if (want_scores)
                for (int i = 0; i < nr; i++)
                    for (int k = pos0 + r0 + i + 1; k < width; k++) S[(size_t)i * tk + k] = -INFINITY;
        }
        if (want_scores) {
            block_view(&ev, att, H, nr, r0, n, tk, pos0);
            if (ds_probes_fire(probes, DS_HOOK_SCORES, layer, &ev)) return -1;
        }
#pragma omp parallel for schedule(dynamic) if (par)
        for (int h = 0; h < H; h++) softmax_rows(att + (size_t)h * nr * tk, nr, tk, pos0 + r0, width);

        if (want_pattern) {
            block_view(&ev, att, H, nr, r0, n, tk, pos0);
            if (ds_probes_fire(probes, DS_HOOK_PATTERN, layer, &ev)) return -1;
        }
        if (!is_diff) {
#pragma omp parallel for schedule(dynamic) if (par)
            for (int h = 0; h < H; h++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, hd, kmax, 1.0f,
                            att + (size_t)h * nr * tk, tk, V + (size_t)(h / nrep) * hd, kvw, 0.0f,
                            s->z + (size_t)r0 * qw + (size_t)h * hd, qw);
            continue;
        }
        if (want_p1) {
            block_view(&ev, att, Hd, nr, r0, n, tk, pos0);
            if (ds_probes_fire(probes, DS_HOOK_PATTERN1, layer, &ev)) return -1;
        }
        if (want_p2) {
            block_view(&ev, att + (size_t)Hd * nr * tk, Hd, nr, r0, n, tk, pos0);
            if (ds_probes_fire(probes, DS_HOOK_PATTERN2, layer, &ev)) return -1;
        }
#pragma omp parallel for schedule(dynamic) if (par)
        for (int i = 0; i < Hd; i++) {
            const float *A1 = att + (size_t)i * nr * tk, *A2 = att + (size_t)(i + Hd) * nr * tk;
            float *Dm = s->diff + (size_t)i * nr * tk;
            for (int r = 0; r < nr; r++)
                for (int k = 0; k < width; k++) {
                    size_t o = (size_t)r * tk + k;
                    Dm[o] = A1[o] - lam * A2[o];
                }
            float *O = s->z + (size_t)r0 * qw + (size_t)i * 2 * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, hd, kmax, 1.0f, Dm, tk,
                        V + (size_t)(i / nrep) * hd, kvw, 0.0f, O, qw);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, hd, kmax, 1.0f, Dm, tk,
                        V + (size_t)((i + Hd) / nrep) * hd, kvw, 0.0f, O + hd, qw);
        }
        if (want_diff) {
            block_view(&ev, s->diff, Hd, nr, r0, n, tk, pos0);
            if (ds_probes_fire(probes, DS_HOOK_DIFF, layer, &ev)) return -1;
        }
    }
    if (!is_diff) return 0;
    if (ds_probes_active(probes, DS_HOOK_GROUPNORM_IN, layer)) {
        groupnorm_view(&ev, s, n, pos0);
        if (ds_probes_fire(probes, DS_HOOK_GROUPNORM_IN, layer, &ev)) return -1;
    }
    groupnorm(s, n, layer);
    if (ds_probes_active(probes, DS_HOOK_GROUPNORM_OUT, layer)) {
        groupnorm_view(&ev, s, n, pos0);
        if (ds_probes_fire(probes, DS_HOOK_GROUPNORM_OUT, layer, &ev)) return -1;
    }
    return 0;
}
