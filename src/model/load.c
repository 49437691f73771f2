/* Loading a model folder: config.json + safetensors -> ds_model with float32 weights.
 *
 * The tensors are the architecture's table (arch.c) for this config; every one is checked for
 * presence, dtype and shape before any computation; F32 tensors stay in the file mapping
 * (zero-copy), BF16/F16 are converted once. In the bf16 compute mode the matrices (the
 * projections, the embedding, lm_head) are kept as bf16 instead: BF16 ones stay in the mapping,
 * others are rounded once, and where oneDNN has a bf16 matmul the projections and an untied
 * lm_head are then reordered once into its layout (dnnl_matmul.c) in place of the plain copy;
 * the vectors (norms, biases, λ) are float32 as in the f32 mode. */
#include "model/internal.h"
#include "model/linear_bf16.h"
#include "diffscope/error.h"
#include "base/path.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Tensor NAME, checked to have shape [d0] or [d0, d1]. */
static const ds_tensor *shaped_tensor(ds_model *m, const char *name, int ndim, int64_t d0, int64_t d1) {
    const ds_tensor *t = ds_weights_find(&m->weights, name);
    if (!t) {
        ds_fail("%s: missing tensor '%s'", m->dir, name);
        return NULL;
    }
    int64_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[128] = "", exp[64];
        for (int i = 0; i < t->ndim && strlen(got) < 100; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (ndim == 1) snprintf(exp, sizeof exp, "%lld", (long long)d0);
        else snprintf(exp, sizeof exp, "%lld, %lld", (long long)d0, (long long)d1);
        ds_fail("%s: tensor '%s' has shape [%s], expected [%s]", t->file, name, got, exp);
        return NULL;
    }
    const char *dt = ds_dtype_name(t->dtype);
    if (!m->storage_dtype[0]) snprintf(m->storage_dtype, sizeof m->storage_dtype, "%s", dt);
    else if (strcmp(m->storage_dtype, dt)) snprintf(m->storage_dtype, sizeof m->storage_dtype, "mixed");
    return t;
}

/* DATA (converted, not mapped) is freed with the model; frees it and fails when it cannot be
 * recorded. */
static int keep_owned(ds_model *m, void *data) {
    void **no = realloc(m->owned, (size_t)(m->nowned + 1) * sizeof *no);
    if (!no) {
        free(data);
        return ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    m->owned = no;
    m->owned[m->nowned++] = data;
    return 0;
}

static const float *load_tensor(ds_model *m, const char *name, int ndim, int64_t d0, int64_t d1) {
    const ds_tensor *t = shaped_tensor(m, name, ndim, d0, d1);
    int owned;
    float *f = t ? ds_tensor_to_f32(t, !ds_get_allow_nonfinite(), &owned) : NULL;
    return f && owned && keep_owned(m, f) ? NULL : f;
}

/* The plain copy of a packed matrix is not read again: a converted one is freed, and a mapped
 * one's pages leave the process's memory (the file still backs them, should anything read
 * them). */
static void drop_plain(uint16_t *h, size_t bytes, int owned) {
    if (owned) {
        free(h);
        return;
    }
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)h, b = a + bytes;
    const uintptr_t first = (a + page - 1) / page * page, end = b / page * page;
    if (end > first) madvise((void *)first, end - first, MADV_DONTNEED);
}

/* Matrix NAME [d0 = out, d1 = in] as bf16: when PACK, packed for diffscope's AMX kernel where it
 * is ready, else for oneDNN where it has a bf16 matmul (linear_bf16.h); else in the mapping or
 * converted. */
static const uint16_t *load_tensor_bf16(ds_model *m, const char *name, int64_t d0, int64_t d1, int pack) {
    const ds_tensor *t = shaped_tensor(m, name, 2, d0, d1);
    int owned;
    uint16_t *h = t ? ds_tensor_to_bf16(t, !ds_get_allow_nonfinite(), &owned) : NULL, *p = NULL;
    if (!h) return NULL;
    const int rc = !pack ? 1 : ds_tiles_ready() ? ds_tiles_pack(h, (int)d1, (int)d0, &p)
                                              : ds_dnnl_bf16_pack(h, (int)d1, (int)d0, &p);
    if (rc == 1) return owned && keep_owned(m, h) ? NULL : h;
    if (!rc) {
        uint16_t **np = realloc(m->packed, (size_t)(m->npacked + 1) * sizeof *np);
        if (np) m->packed = np, m->packed[m->npacked++] = p;
        else ds_bf16_packed_free(p), p = NULL, ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    if (p) drop_plain(h, (size_t)d0 * (size_t)d1 * sizeof *h, owned);
    else if (owned) free(h);
    return p;
}

/* λ of one layer as transformers computes it: exp(λq1·λk1) − exp(λq2·λk2) + λ_init. */
static void compute_lambda(ds_layer *ly, int hd, int layer) {
    const float *q1 = ly->lambda_vec[0], *k1 = ly->lambda_vec[1], *q2 = ly->lambda_vec[2], *k2 = ly->lambda_vec[3];
    double *out = ly->lambda;
    double s1 = 0, s2 = 0;
    for (int i = 0; i < hd; i++) {
        s1 += (double)q1[i] * k1[i];
        s2 += (double)q2[i] * k2[i];
    }
    out[0] = exp(s1);
    out[1] = exp(s2);
    out[2] = ds_lambda_init(layer);
    out[3] = out[0] - out[1] + out[2];
}

/* Where the loader keeps tensor ID of layer LY (or of the model). */
static const float **slot(ds_model *m, ds_layer *ly, ds_tensor_id id) {
    switch (id) {
    case DS_T_EMBED: return &m->embed;
    case DS_T_FINAL_NORM: return &m->final_norm;
    case DS_T_LM_HEAD: return &m->lm_head;
    case DS_T_WQ: return &ly->wq;
    case DS_T_BQ: return &ly->bq;
    case DS_T_WK: return &ly->wk;
    case DS_T_BK: return &ly->bk;
    case DS_T_WV: return &ly->wv;
    case DS_T_BV: return &ly->bv;
    case DS_T_WO: return &ly->wo;
    case DS_T_BO: return &ly->bo;
    case DS_T_W_GATE: return &ly->w_gate;
    case DS_T_B_GATE: return &ly->b_gate;
    case DS_T_W_UP: return &ly->w_up;
    case DS_T_B_UP: return &ly->b_up;
    case DS_T_W_DOWN: return &ly->w_down;
    case DS_T_B_DOWN: return &ly->b_down;
    case DS_T_ATTN_NORM: return &ly->attn_norm;
    case DS_T_MLP_NORM: return &ly->mlp_norm;
    case DS_T_Q_NORM: return &ly->q_norm;
    case DS_T_K_NORM: return &ly->k_norm;
    case DS_T_LAMBDA_Q1: return &ly->lambda_vec[0];
    case DS_T_LAMBDA_K1: return &ly->lambda_vec[1];
    case DS_T_LAMBDA_Q2: return &ly->lambda_vec[2];
    case DS_T_LAMBDA_K2: return &ly->lambda_vec[3];
    case DS_T_COUNT: break;
    }
    return NULL;
}

/* Where the bf16 compute mode keeps matrix ID as bf16 (NULL for the tensors that stay f32). */
static const uint16_t **slot16(ds_model *m, ds_layer *ly, ds_tensor_id id) {
    switch (id) {
    case DS_T_EMBED: return &m->embed16;
    case DS_T_LM_HEAD: return &m->lm_head16;
    case DS_T_WQ: return &ly->wq16;
    case DS_T_WK: return &ly->wk16;
    case DS_T_WV: return &ly->wv16;
    case DS_T_WO: return &ly->wo16;
    case DS_T_W_GATE: return &ly->w_gate16;
    case DS_T_W_UP: return &ly->w_up16;
    case DS_T_W_DOWN: return &ly->w_down16;
    default: return NULL;
    }
}

static int load_one(const ds_tensor_ref *t, void *user) {
    ds_model *m = user;
    const uint16_t **dst16 = m->compute == DS_COMPUTE_BF16 && t->ndim == 2
                                 ? slot16(m, t->layer >= 0 ? &m->layers[t->layer] : NULL, t->desc->id)
                                 : NULL;
    if (dst16) {
        /* the embedding's rows are read one by one (and by a tied lm_head): never packed */
        *dst16 = load_tensor_bf16(m, t->name, t->shape[0], t->shape[1], t->desc->id != DS_T_EMBED);
        return *dst16 ? 0 : -1;
    }
    const float **dst = slot(m, t->layer >= 0 ? &m->layers[t->layer] : NULL, t->desc->id);
    if (!dst) return ds_fail("%s: tensor '%s' has no place in the model", m->dir, t->name);
    *dst = load_tensor(m, t->name, t->ndim, t->shape[0], t->ndim == 2 ? t->shape[1] : 0);
    return *dst ? 0 : -1;
}

ds_model *ds_model_load(const char *dir) {
    ds_model *m = calloc(1, sizeof *m);
    if (!m) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->dir = strdup(dir);
    m->compute = ds_get_compute();
    char *path = ds_path_join(dir, "config.json");
    int failed = !m->dir || !path || ds_config_load(&m->cfg, path) || ds_weights_open_dir(&m->weights, dir);
    free(path);
    if (failed) goto fail;
    const ds_config *c = &m->cfg;
    if (ds_rope_check(c) || ds_attention_check(c)) {
        ds_err_prefix(m->dir);
        goto fail;
    }
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (ds_config_tensors(c, load_one, m)) goto fail;
    if (c->tie_word_embeddings) m->lm_head = m->embed, m->lm_head16 = m->embed16;
    for (int l = 0; c->desc->differential && l < c->num_layers; l++) {
        const double *lam = m->layers[l].lambda;
        compute_lambda(&m->layers[l], c->head_dim, l);
        if (!isfinite(lam[3]) && !ds_get_allow_nonfinite()) {
            ds_failc(DS_ERR_NONFINITE, "%s: layer %d: lambda_full is not finite (lambda_1 = exp(q1.k1) = %g, "
                     "lambda_2 = exp(q2.k2) = %g)", m->dir, l, lam[0], lam[1]);
            goto fail;
        }
    }
    return m;
fail:
    ds_model_free(m);
    return NULL;
}

void ds_model_free(ds_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nowned; i++) free(m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->npacked; i++) ds_bf16_packed_free(m->packed[i]);
    free(m->packed);
    free(m->layers);
    ds_weights_close(&m->weights);
    ds_config_free(&m->cfg);
    free(m->dir);
    free(m);
}

const ds_config *ds_model_config(const ds_model *m) { return &m->cfg; }
const char *ds_model_dir(const ds_model *m) { return m->dir; }
const char *ds_model_storage_dtype(const ds_model *m) { return m->storage_dtype; }
ds_compute ds_model_compute(const ds_model *m) { return m->compute; }

void ds_model_lambda(const ds_model *m, int layer, double out[4]) {
    memcpy(out, m->layers[layer].lambda, sizeof m->layers[layer].lambda);
}
