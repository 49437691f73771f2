/* The forward pass of a Llama-family decoder (sessions: session.c), for every architecture of
 * arch.c: what differs between them is read from the config's ds_arch_desc.
 *
 * One call runs n tokens through every layer at once (GEMMs over n rows):
 *
 *   x = embed[ids]
 *   for each layer:  x += o_proj(attention(rope(q), rope(k), v))   on rmsnorm_in(x)
 *                         (q, k ← rmsnorm over each head first when the architecture has qk_norm)
 *                    x += down(silu(gate(y)) * up(y)),              y = rmsnorm_post(x)
 *   logits = lm_head(rmsnorm_final(x))
 *
 * with probe points fired along the way (include/diffscope/probe.h). */
#include "model/internal.h"
#include "diffscope/error.h"
#include "base/vec_exp.h"
#include "base/finite.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "model/linear_bf16.h"

/* out = w * x / sqrt(mean(x²) + eps), row by row (transformers' LlamaRMSNorm). */
static void rmsnorm(float *out, const float *x, const float *w, int n, int D, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)n * D >= DS_PAR_MIN)
    for (int t = 0; t < n; t++) {
        const float *r = x + (size_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)r[i] * r[i];
        float inv = 1.0f / sqrtf((float)(ss / D) + eps);
        for (int i = 0; i < D; i++) out[(size_t)t * D + i] = w[i] * (r[i] * inv);
    }
}

static void add_inplace(float *x, const float *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= DS_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Fires POINT with a 2-D or 3-D view of DATA when a probe wants it. */
static int fire(ds_probes *p, ds_hook_point point, int layer, int pos0, float *data, int ndim, int64_t d0,
                int64_t d1, int64_t d2) {
    if (!ds_probes_active(p, point, layer)) return 0;
    ds_probe_event ev = {0};
    ev.pos0 = pos0;
    ev.ndim = ndim;
    int64_t dims[3] = {d0, d1, d2};
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        ev.shape[i] = ev.full[i] = dims[i];
        ev.strides[i] = stride;
        stride *= dims[i];
    }
    ev.data = data;
    return ds_probes_fire(p, point, layer, &ev);
}

static int check_ids(const ds_session *s, const int *ids, int n) {
    const ds_config *c = &s->m->cfg;
    if (n <= 0) return ds_fail("no tokens to run");
    if (s->pos + n > s->max_tokens)
        return ds_fail("%d tokens would exceed the session's %d positions", s->pos + n, s->max_tokens);
    return ds_config_check_ids(c, ids, n, s->pos);
}

/* The model's products of one x: f32 (linear.c) or bf16 (linear_bf16.c), by the compute mode. */
static int products(const ds_model *m, const float *x, int n, int in, const ds_linear_out *outs, int count) {
    if (m->compute == DS_COMPUTE_BF16) return ds_linear_bf16(x, n, in, outs, count);
    ds_linear_shared(x, n, in, outs, count);
    return 0;
}

static int layer_forward(ds_session *s, int l, int n, ds_probes *pr) {
    const ds_model *m = s->m;
    const ds_config *c = &m->cfg;
    const ds_layer *ly = &m->layers[l];
    const int D = c->hidden_size, FF = c->intermediate_size, H = c->num_heads, KV = c->num_kv_heads;
    const int hd = c->head_dim, pos0 = s->pos;
    const size_t kvw = (size_t)KV * hd, nD = (size_t)n * D;
    float *kc = s->k_cache + ((size_t)l * s->max_tokens + pos0) * kvw;
    float *vc = s->v_cache + ((size_t)l * s->max_tokens + pos0) * kvw;

    if (fire(pr, DS_HOOK_RESID_PRE, l, pos0, s->x, 2, n, D, 0)) return -1;
    rmsnorm(s->xb, s->x, ly->attn_norm, n, D, c->rms_norm_eps);
    const ds_linear_out qkv[3] = {{s->q, ly->wq, ly->bq, H * hd, ly->wq16}, {kc, ly->wk, ly->bk, (int)kvw, ly->wk16},
                                  {vc, ly->wv, ly->bv, (int)kvw, ly->wv16}};
    if (products(m, s->xb, n, D, qkv, 3)) return -1;
    if (c->desc->qk_norm) {
        rmsnorm(s->q, s->q, ly->q_norm, n * H, hd, c->rms_norm_eps);
        rmsnorm(kc, kc, ly->k_norm, n * KV, hd, c->rms_norm_eps);
    }
    if (fire(pr, DS_HOOK_Q, l, pos0, s->q, 3, n, H, hd) || fire(pr, DS_HOOK_K, l, pos0, kc, 3, n, KV, hd) ||
        fire(pr, DS_HOOK_V, l, pos0, vc, 3, n, KV, hd))
        return -1;
    ds_rope_apply(s->q, n, H, hd, pos0, s->rope_cos, s->rope_sin);
    ds_rope_apply(kc, n, KV, hd, pos0, s->rope_cos, s->rope_sin);

    double lambda = 0;
    if (c->desc->differential) {
        float lam[4] = {(float)ly->lambda[0], (float)ly->lambda[1], (float)ly->lambda[2], (float)ly->lambda[3]};
        lambda = ly->lambda[3];
        if (ds_probes_active(pr, DS_HOOK_LAMBDA, l)) {
            if (fire(pr, DS_HOOK_LAMBDA, l, pos0, lam, 1, 4, 0, 0)) return -1;
            if (lam[3] != (float)ly->lambda[3]) lambda = lam[3]; /* an intervention overrode λ */
        }
    }
    /* z: [n, map_heads, H·hd / map_heads], one row per head a map shows (2·hd channels for a
     * differential head) */
    if (ds_attention(s, l, n, lambda, pr) ||
        fire(pr, DS_HOOK_Z, l, pos0, s->z, 3, n, c->map_heads, H * hd / c->map_heads))
        return -1;
    const ds_linear_out o_proj = {s->tmp, ly->wo, ly->bo, D, ly->wo16};
    if (products(m, s->z, n, H * hd, &o_proj, 1)) return -1;
    if (fire(pr, DS_HOOK_ATTN_OUT, l, pos0, s->tmp, 2, n, D, 0)) return -1;
    add_inplace(s->x, s->tmp, nD);
    if (fire(pr, DS_HOOK_RESID_MID, l, pos0, s->x, 2, n, D, 0)) return -1;

    rmsnorm(s->xb, s->x, ly->mlp_norm, n, D, c->rms_norm_eps);
    const ds_linear_out gate_up[2] = {{s->gate, ly->w_gate, ly->b_gate, FF, ly->w_gate16},
                                      {s->up, ly->w_up, ly->b_up, FF, ly->w_up16}};
    if (products(m, s->xb, n, D, gate_up, 2)) return -1;
    const size_t nI = (size_t)n * FF;
    float *gate = s->gate; /* locals: through s, every store might move s->gate, and no SIMD */
    const float *up = s->up;
#pragma omp parallel for simd schedule(static) if (nI >= DS_PAR_MIN)
    for (size_t i = 0; i < nI; i++) gate[i] = (gate[i] / (1.0f + ds_expf(-gate[i]))) * up[i];
    if (fire(pr, DS_HOOK_MLP_POST, l, pos0, s->gate, 2, n, FF, 0)) return -1;
    const ds_linear_out down = {s->tmp, ly->w_down, ly->b_down, D, ly->w_down16};
    if (products(m, s->gate, n, FF, &down, 1)) return -1;
    if (fire(pr, DS_HOOK_MLP_OUT, l, pos0, s->tmp, 2, n, D, 0)) return -1;
    add_inplace(s->x, s->tmp, nD);
    return fire(pr, DS_HOOK_RESID_POST, l, pos0, s->x, 2, n, D, 0);
}

/* Fails when WHAT ([rows, width], first row at position POS0) holds NaN or ±inf, unless the
 * caller allowed them: a result built on them is meaningless, and silently so. */
static int check_finite(const float *x, int rows, int width, int pos0, const char *what) {
    if (ds_get_allow_nonfinite()) return 0;
    int64_t bad = ds_first_nonfinite(x, (size_t)rows * width);
    if (bad < 0) return 0;
    return ds_failc(DS_ERR_NONFINITE, "the %s of token position %lld hold %s (at index %lld): the model "
                    "overflowed or an input is not finite", what, (long long)(pos0 + bad / width),
                   ds_nonfinite_name(x[bad]), (long long)(bad % width));
}

int ds_forward(ds_session *s, const int *ids, int n, float *logits, int last_only, ds_probes *pr) {
    const ds_model *m = s->m;
    const ds_config *c = &m->cfg;
    const int D = c->hidden_size, V = c->vocab_size;
    if (check_ids(s, ids, n) || ds_session_reserve(s, n) || ds_probes_bind(pr, c->num_layers)) return -1;
    for (int t = 0; t < n; t++) {
        float *row = s->x + (size_t)t * D;
        if (m->embed16)
            for (int i = 0; i < D; i++) row[i] = ds_bf16_to_f32(m->embed16[(size_t)ids[t] * D + i]);
        else
            memcpy(row, m->embed + (size_t)ids[t] * D, D * sizeof(float));
    }
    if (fire(pr, DS_HOOK_EMBED, -1, s->pos, s->x, 2, n, D, 0)) return -1;
    for (int l = 0; l < c->num_layers; l++)
        if (layer_forward(s, l, n, pr)) {
            /* Leave the cache as it was: the failed call's keys are not part of the sequence. */
            return -1;
        }
    const int first = last_only ? n - 1 : 0, rows = n - first;
    rmsnorm(s->xb, s->x + (size_t)first * D, m->final_norm, rows, D, c->rms_norm_eps);
    if (check_finite(s->xb, rows, D, s->pos + first, "final hidden states") ||
        fire(pr, DS_HOOK_FINAL_NORM, -1, s->pos, s->xb, 2, rows, D, 0))
        return -1;
    if (logits) {
        const ds_linear_out head = {logits, m->lm_head, NULL, V, m->lm_head16};
        if (products(m, s->xb, rows, D, &head, 1) || check_finite(logits, rows, V, s->pos + first, "logits") ||
            fire(pr, DS_HOOK_LOGITS, -1, s->pos, logits, 2, rows, V, 0))
            return -1;
    }
    s->pos += n;
    return 0;
}
