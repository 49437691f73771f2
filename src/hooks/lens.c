/* Logit lens and direct logit attribution (include/diffscope/lens.h): the readers keep the rows
 * of position POS that the two need, one layer of maps and values at a time; the projections
 * through the weights run after the forward pass, in float64. */
#include "diffscope/lens.h"
#include "diffscope/error.h"
#include "diffscope/weights.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ds_lens {
    const ds_model *m;
    int pos, n;               /* n: tokens of the forward call (from hook_embed) */
    int L, D, V, H, KV, hd, Hm, zw; /* zw: channels of one head in hook_z */
    float eps;
    int diff;
    float *resid;             /* [L+1, D] embeddings, then resid_post of each layer */
    float *z;                 /* [L, H·hd] hook_z */
    float *mlp;               /* [L, D] hook_mlp_out */
    double *a1v, *a2v;        /* [L, Hm, 2hd] A1·V and A2·V (differential) */
    double *gn;               /* [L, Hm] GroupNorm factor g_i */
    double *lambda;           /* [L] λ used */
    float *p1, *p2;           /* [Hm, pos+1] this layer's map rows at POS */
    float *v;                 /* [pos+1, KV·hd] this layer's values */
    int seen;                 /* bits: which of the layer's captures arrived (see CAP_*) */
    int layers_done;
    float *model_logits;      /* [V] */
    int have_logits;
    double *lens;             /* [L+1, V] */
};

enum { CAP_P1 = 1, CAP_P2 = 2, CAP_V = 4, CAP_GN = 8, CAP_LAMBDA = 16, CAP_ALL_DIFF = 31 };

/* Row POS of a [n, width] event, or NULL when the event is not for this call's rows. */
static const float *row_at(const ds_lens *x, const ds_probe_event *ev) {
    if (ev->pos0 != 0 || ev->shape[0] <= x->pos) return NULL;
    return ev->data + (size_t)x->pos * ev->strides[0];
}

static int on_embed(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    x->n = (int)ev->shape[0];
    if (ev->pos0 != 0) return ds_fail("the lens needs a fresh session (its forward call starts at position %d)", ev->pos0);
    if (x->pos >= x->n) return ds_fail("position %d out of range (%d tokens)", x->pos, x->n);
    memcpy(x->resid, row_at(x, ev), (size_t)x->D * sizeof(float));
    return 0;
}

static int on_resid(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    memcpy(x->resid + (size_t)(ev->layer + 1) * x->D, row_at(x, ev), (size_t)x->D * sizeof(float));
    x->layers_done = ev->layer + 1;
    return 0;
}

static int on_mlp(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    memcpy(x->mlp + (size_t)ev->layer * x->D, row_at(x, ev), (size_t)x->D * sizeof(float));
    return 0;
}

/* Pattern rows arrive in blocks of query rows; keep row POS, keys 0..POS. */
static int on_pattern(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    int64_t r = x->pos - ev->offset[1];
    if (r < 0 || r >= ev->shape[1]) return 0;
    float *dst = ev->point == DS_HOOK_PATTERN1 ? x->p1 : x->p2;
    for (int h = 0; h < x->Hm; h++)
        memcpy(dst + (size_t)h * (x->pos + 1), ev->data + h * ev->strides[0] + r * ev->strides[1],
               (size_t)(x->pos + 1) * sizeof(float));
    x->seen |= ev->point == DS_HOOK_PATTERN1 ? CAP_P1 : CAP_P2;
    return 0;
}

static int on_v(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    size_t w = (size_t)x->KV * x->hd;
    for (int t = 0; t <= x->pos; t++) memcpy(x->v + t * w, ev->data + t * ev->strides[0], w * sizeof(float));
    x->seen |= CAP_V;
    return 0;
}

static int on_lambda(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    x->lambda[ev->layer] = ev->data[3]; /* after any intervention that overrode it */
    x->seen |= CAP_LAMBDA;
    return 0;
}

/* g_i of every head from the GroupNorm input at POS, as attention.c computes it. */
static int on_groupnorm_in(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    int64_t t = x->pos, hd2 = 2 * x->hd;
    float scale = (float)(1.0 - ds_lambda_init(ev->layer));
    for (int i = 0; i < x->Hm; i++) {
        const float *o = ev->data + i * ev->strides[0] + t * ev->strides[1];
        double ss = 0;
        for (int j = 0; j < hd2; j++) ss += (double)o[j] * o[j];
        float r = 1.0f / sqrtf((float)(ss / hd2) + x->eps);
        x->gn[(size_t)ev->layer * x->Hm + i] = (double)r * scale;
    }
    x->seen |= CAP_GN;
    return 0;
}

/* A·V_i at POS for the maps in P ([Hm, pos+1]): V_i = concat(v_{i/nrep}, v_{(i+Hm)/nrep}). */
static void maps_times_values(const ds_lens *x, const float *p, double *out) {
    int nrep = x->H / x->KV, hd = x->hd;
    size_t w = (size_t)x->KV * hd;
    for (int i = 0; i < x->Hm; i++) {
        const int src[2] = {i / nrep, (i + x->Hm) / nrep};
        double *o = out + (size_t)i * 2 * hd;
        memset(o, 0, 2 * hd * sizeof(double));
        for (int k = 0; k <= x->pos; k++) {
            double a = p[(size_t)i * (x->pos + 1) + k];
            for (int half = 0; half < 2; half++) {
                const float *vk = x->v + k * w + (size_t)src[half] * hd;
                for (int c = 0; c < hd; c++) o[half * hd + c] += a * vk[c];
            }
        }
    }
}

static int on_z(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    int l = ev->layer;
    size_t w = (size_t)x->H * x->hd;
    memcpy(x->z + l * w, row_at(x, ev), w * sizeof(float));
    if (!x->diff) return 0;
    if (x->seen != CAP_ALL_DIFF) return ds_failc(DS_ERR_INTERNAL, "the lens missed a probe point of layer %d", l);
    maps_times_values(x, x->p1, x->a1v + l * w);
    maps_times_values(x, x->p2, x->a2v + l * w);
    x->seen = 0;
    return 0;
}

static int on_logits(const ds_probe_event *ev, void *user) {
    ds_lens *x = user;
    int64_t r = x->pos - (x->n - ev->shape[0]); /* logits cover the last rows of the call */
    if (r < 0 || r >= ev->shape[0]) return 0;
    memcpy(x->model_logits, ev->data + r * ev->strides[0], (size_t)x->V * sizeof(float));
    x->have_logits = 1;
    return 0;
}

static int add_readers(ds_probes *p, ds_lens *x) {
    int rc = ds_probes_add_point(p, DS_HOOK_EMBED, -1, on_embed, x) ||
             ds_probes_add_point(p, DS_HOOK_RESID_POST, -1, on_resid, x) ||
             ds_probes_add_point(p, DS_HOOK_MLP_OUT, -1, on_mlp, x) ||
             ds_probes_add_point(p, DS_HOOK_LOGITS, -1, on_logits, x);
    if (!rc && x->diff)
        rc = ds_probes_add_point(p, DS_HOOK_PATTERN1, -1, on_pattern, x) ||
             ds_probes_add_point(p, DS_HOOK_PATTERN2, -1, on_pattern, x) ||
             ds_probes_add_point(p, DS_HOOK_V, -1, on_v, x) || ds_probes_add_point(p, DS_HOOK_LAMBDA, -1, on_lambda, x) ||
             ds_probes_add_point(p, DS_HOOK_GROUPNORM_IN, -1, on_groupnorm_in, x);
    /* hook_z last: its reader uses what the others of the layer kept */
    return rc || ds_probes_add_point(p, DS_HOOK_Z, -1, on_z, x) ? -1 : 0;
}

ds_lens *ds_lens_begin(ds_probes *p, const ds_model *m, int pos) {
    const ds_config *c = ds_model_config(m);
    if (ds_model_compute(m) != DS_COMPUTE_F32) { /* its weights are bf16 (weights.h) */
        ds_fail("the lens projects through float32 weights: load the model with --compute f32, not %s",
                ds_compute_name(ds_model_compute(m)));
        return NULL;
    }
    if (pos < 0) {
        ds_fail("position %d out of range", pos);
        return NULL;
    }
    ds_lens *x = calloc(1, sizeof *x);
    if (!x) goto nomem;
    *x = (ds_lens){.m = m, .pos = pos, .L = c->num_layers, .D = c->hidden_size, .V = c->vocab_size,
                   .H = c->num_heads, .KV = c->num_kv_heads, .hd = c->head_dim, .Hm = c->map_heads,
                   .eps = c->rms_norm_eps, .diff = c->desc->differential};
    x->zw = x->H * x->hd / x->Hm;
    size_t L = x->L, D = x->D, w = (size_t)x->H * x->hd, keys = (size_t)pos + 1;
    x->resid = malloc((L + 1) * D * sizeof(float));
    x->z = malloc(L * w * sizeof(float));
    x->mlp = malloc(L * D * sizeof(float));
    x->model_logits = malloc((size_t)x->V * sizeof(float));
    int ok = x->resid && x->z && x->mlp && x->model_logits;
    if (ok && x->diff) {
        x->a1v = malloc(L * w * sizeof(double));
        x->a2v = malloc(L * w * sizeof(double));
        x->gn = malloc(L * x->Hm * sizeof(double));
        x->lambda = malloc(L * sizeof(double));
        x->p1 = malloc(x->Hm * keys * sizeof(float));
        x->p2 = malloc(x->Hm * keys * sizeof(float));
        x->v = malloc(keys * x->KV * x->hd * sizeof(float));
        ok = x->a1v && x->a2v && x->gn && x->lambda && x->p1 && x->p2 && x->v;
    }
    if (!ok) goto nomem;
    if (!add_readers(p, x)) return x;
    ds_lens_free(x);
    return NULL;
nomem:
    ds_lens_free(x);
    ds_failc(DS_ERR_NOMEM, "out of memory for the lens of position %d", pos);
    return NULL;
}

void ds_lens_free(ds_lens *x) {
    if (!x) return;
    free(x->resid), free(x->z), free(x->mlp), free(x->model_logits), free(x->lens);
    free(x->a1v), free(x->a2v), free(x->gn), free(x->lambda), free(x->p1), free(x->p2), free(x->v);
    free(x);
}

/* 1/sqrt(mean(r²) + eps) in float32, as the forward pass's RMSNorm. */
static float rms_inverse(const float *r, int D, float eps) {
    double ss = 0;
    for (int i = 0; i < D; i++) ss += (double)r[i] * r[i];
    return 1.0f / sqrtf((float)(ss / D) + eps);
}

int ds_lens_finish(ds_lens *x) {
    if (x->layers_done != x->L) return ds_failc(DS_ERR_INTERNAL, "the forward pass did not reach the lens' position");
    if (!x->have_logits) return ds_failc(DS_ERR_INTERNAL, "the forward pass gave no logits at position %d", x->pos);
    const int R = x->L + 1, D = x->D, V = x->V;
    const float *w = ds_model_final_norm(x->m), *U = ds_model_unembed(x->m);
    float *normed = malloc((size_t)R * D * sizeof(float));
    free(x->lens);
    x->lens = malloc((size_t)R * V * sizeof(double));
    if (!normed || !x->lens) {
        free(normed);
        return ds_failc(DS_ERR_NOMEM, "out of memory for the lens logits");
    }
    for (int l = 0; l < R; l++) {
        const float *r = x->resid + (size_t)l * D;
        float inv = rms_inverse(r, D, x->eps);
        for (int i = 0; i < D; i++) normed[(size_t)l * D + i] = w[i] * (r[i] * inv);
    }
    /* every vocabulary row once, all lens rows against it; sums in a fixed order */
#pragma omp parallel for schedule(static) if ((size_t)V * D * R >= 1 << 20)
    for (int v = 0; v < V; v++) {
        const float *u = U + (size_t)v * D;
        for (int l = 0; l < R; l++) {
            const float *nr = normed + (size_t)l * D;
            double acc = 0;
            for (int i = 0; i < D; i++) acc += (double)u[i] * nr[i];
            x->lens[(size_t)l * V + v] = acc;
        }
    }
    free(normed);
    return 0;
}

const double *ds_lens_logits(const ds_lens *x) { return x->lens; }
const float *ds_lens_model_logits(const ds_lens *x) { return x->model_logits; }

static double dot(const double *u, const float *c, int n) {
    double acc = 0;
    for (int i = 0; i < n; i++) acc += u[i] * c[i];
    return acc;
}

/* One layer's heads (and paths) from g = W_Oᵀu [H·hd]. */
static void layer_heads(const ds_lens *x, int l, const double *g, ds_dla *d) {
    size_t w = (size_t)x->H * x->hd;
    for (int h = 0; h < x->Hm; h++) {
        const double *gh = g + (size_t)h * x->zw;
        const float *z = x->z + l * w + (size_t)h * x->zw;
        size_t at = (size_t)l * x->Hm + h;
        double c = 0;
        int zero = 1;
        for (int j = 0; j < x->zw; j++) c += gh[j] * z[j], zero &= z[j] == 0.0f;
        d->head[at] = c;
        if (!x->diff) continue;
        double s1 = 0, s2 = 0;
        const double *a1 = x->a1v + l * w + (size_t)h * x->zw, *a2 = x->a2v + l * w + (size_t)h * x->zw;
        for (int j = 0; j < x->zw; j++) s1 += gh[j] * a1[j], s2 += gh[j] * a2[j];
        double gn = x->gn[at];
        d->path1[at] = zero ? 0 : gn * s1;
        d->path2[at] = zero ? 0 : -gn * (double)(float)x->lambda[l] * s2;
    }
}

void ds_dla_free(ds_dla *d) {
    if (!d) return;
    free(d->head), free(d->path1), free(d->path2), free(d->attn_bias), free(d->mlp);
    memset(d, 0, sizeof *d);
}

int ds_lens_dla(const ds_lens *x, int target, int vs, ds_dla *d) {
    const int D = x->D, L = x->L, Q = x->H * x->hd;
    memset(d, 0, sizeof *d);
    if (target < 0 || target >= x->V || vs >= x->V)
        return ds_fail("token id %d outside the vocabulary (0..%d)", target < 0 || target >= x->V ? target : vs, x->V - 1);
    *d = (ds_dla){.L = L, .heads = x->Hm, .differential = x->diff};
    d->head = calloc((size_t)L * x->Hm, sizeof(double));
    d->attn_bias = calloc(L, sizeof(double));
    d->mlp = calloc(L, sizeof(double));
    double *u = malloc(D * sizeof(double)), *g = malloc((size_t)Q * sizeof(double));
    int ok = d->head && d->attn_bias && d->mlp && u && g;
    if (ok && x->diff) {
        d->path1 = calloc((size_t)L * x->Hm, sizeof(double));
        d->path2 = calloc((size_t)L * x->Hm, sizeof(double));
        ok = d->path1 && d->path2;
    }
    if (!ok) {
        free(u), free(g);
        ds_dla_free(d);
        return ds_failc(DS_ERR_NOMEM, "out of memory for the logit attribution");
    }
    const float *w = ds_model_final_norm(x->m), *U = ds_model_unembed(x->m);
    d->scale = rms_inverse(x->resid + (size_t)L * D, D, x->eps);
    for (int i = 0; i < D; i++)
        u[i] = d->scale * w[i] * ((double)U[(size_t)target * D + i] - (vs >= 0 ? (double)U[(size_t)vs * D + i] : 0.0));
    d->logit = (double)x->model_logits[target] - (vs >= 0 ? (double)x->model_logits[vs] : 0.0);
    d->embed = dot(u, x->resid, D);
    d->total = d->embed;
    for (int l = 0; l < L; l++) {
        const float *bias, *wo = ds_model_o_proj(x->m, l, &bias);
        memset(g, 0, (size_t)Q * sizeof(double));
        for (int i = 0; i < D; i++)
            for (int j = 0; j < Q; j++) g[j] += u[i] * wo[(size_t)i * Q + j];
        layer_heads(x, l, g, d);
        d->attn_bias[l] = bias ? dot(u, bias, D) : 0.0;
        d->mlp[l] = dot(u, x->mlp + (size_t)l * D, D);
        d->total += d->attn_bias[l] + d->mlp[l];
        for (int h = 0; h < x->Hm; h++) d->total += d->head[(size_t)l * x->Hm + h];
    }
    d->remainder = d->logit - d->total;
    free(u), free(g);
    return 0;
}

int ds_lens_dla_flat(const ds_lens *x, int target, int vs, double *out) {
    ds_dla d;
    if (ds_lens_dla(x, target, vs, &d)) return -1;
    size_t per = (size_t)d.L * d.heads;
    double head_scalars[5] = {d.logit, d.scale, d.embed, d.total, d.remainder};
    memcpy(out, head_scalars, sizeof head_scalars);
    out += 5;
    memcpy(out, d.head, per * sizeof(double));
    for (size_t i = 0; i < per; i++) out[per + i] = d.path1 ? d.path1[i] : 0, out[2 * per + i] = d.path2 ? d.path2[i] : 0;
    memcpy(out + 3 * per, d.attn_bias, d.L * sizeof(double));
    memcpy(out + 3 * per + d.L, d.mlp, d.L * sizeof(double));
    ds_dla_free(&d);
    return 0;
}
