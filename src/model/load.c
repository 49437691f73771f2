/* Loading a model folder: config.json + safetensors -> ds_model with float32 weights.
 *
 * Every tensor the architecture needs is checked for presence, dtype and shape before any
 * computation; F32 tensors stay in the file mapping (zero-copy), BF16/F16 are converted once. */
#include "model/internal.h"
#include "diffscope/error.h"
#include "base/path.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float *load_tensor(ds_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                                int required) {
    const ds_tensor *t = ds_weights_find(&m->weights, name);
    if (!t) {
        if (required) ds_fail("%s: missing tensor '%s'", m->dir, name);
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
    int owned;
    float *f = ds_tensor_to_f32(t, &owned);
    if (!f) return NULL;
    if (owned) {
        float **no = realloc(m->owned, (size_t)(m->nowned + 1) * sizeof *no);
        if (!no) {
            free(f);
            ds_failc(DS_ERR_NOMEM, "out of memory");
            return NULL;
        }
        m->owned = no;
        m->owned[m->nowned++] = f;
    }
    const char *dt = ds_dtype_name(t->dtype);
    if (!m->storage_dtype[0]) snprintf(m->storage_dtype, sizeof m->storage_dtype, "%s", dt);
    else if (strcmp(m->storage_dtype, dt)) snprintf(m->storage_dtype, sizeof m->storage_dtype, "mixed");
    return f;
}

/* λ of one layer as transformers computes it: exp(λq1·λk1) − exp(λq2·λk2) + λ_init. */
static void compute_lambda(double out[4], const float *q1, const float *k1, const float *q2,
                           const float *k2, int hd, int layer) {
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

static int load_layer(ds_model *m, int l) {
    const ds_config *c = &m->cfg;
    ds_layer *ly = &m->layers[l];
    int D = c->hidden_size, I = c->intermediate_size, hd = c->head_dim;
    int qd = c->num_heads * hd, kvd = c->num_kv_heads * hd;
    char n[256];
#define T2(field, suffix, d0, d1)                                                     \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                            \
    if (!(ly->field = load_tensor(m, n, 2, d0, d1, 1))) return -1;
#define T1(field, suffix, d0, req)                                                    \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                            \
    if (!(ly->field = load_tensor(m, n, 1, d0, 0, req)) && (req)) return -1;
    T1(attn_norm, "input_layernorm.weight", D, 1);
    T1(mlp_norm, "post_attention_layernorm.weight", D, 1);
    T2(wq, "self_attn.q_proj.weight", qd, D);
    T2(wk, "self_attn.k_proj.weight", kvd, D);
    T2(wv, "self_attn.v_proj.weight", kvd, D);
    T2(wo, "self_attn.o_proj.weight", D, qd);
    T2(w_gate, "mlp.gate_proj.weight", I, D);
    T2(w_up, "mlp.up_proj.weight", I, D);
    T2(w_down, "mlp.down_proj.weight", D, I);
    if (c->attention_bias) {
        T1(bq, "self_attn.q_proj.bias", qd, 1);
        T1(bk, "self_attn.k_proj.bias", kvd, 1);
        T1(bv, "self_attn.v_proj.bias", kvd, 1);
        T1(bo, "self_attn.o_proj.bias", D, 1);
    }
    if (c->mlp_bias) {
        T1(b_gate, "mlp.gate_proj.bias", I, 1);
        T1(b_up, "mlp.up_proj.bias", I, 1);
        T1(b_down, "mlp.down_proj.bias", D, 1);
    }
    if (c->arch == DS_ARCH_DIFFLLAMA) {
        const float *lq1, *lk1, *lq2, *lk2;
        snprintf(n, sizeof n, "model.layers.%d.self_attn.lambda_q1", l);
        if (!(lq1 = load_tensor(m, n, 1, hd, 0, 1))) return -1;
        snprintf(n, sizeof n, "model.layers.%d.self_attn.lambda_k1", l);
        if (!(lk1 = load_tensor(m, n, 1, hd, 0, 1))) return -1;
        snprintf(n, sizeof n, "model.layers.%d.self_attn.lambda_q2", l);
        if (!(lq2 = load_tensor(m, n, 1, hd, 0, 1))) return -1;
        snprintf(n, sizeof n, "model.layers.%d.self_attn.lambda_k2", l);
        if (!(lk2 = load_tensor(m, n, 1, hd, 0, 1))) return -1;
        compute_lambda(ly->lambda, lq1, lk1, lq2, lk2, hd, l);
    }
#undef T1
#undef T2
    return 0;
}

ds_model *ds_model_load(const char *dir) {
    ds_model *m = calloc(1, sizeof *m);
    if (!m) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->dir = strdup(dir);
    char *path = ds_path_join(dir, "config.json");
    int failed = !m->dir || !path || ds_config_load(&m->cfg, path) || ds_weights_open_dir(&m->weights, dir);
    free(path);
    if (failed) goto fail;
    const ds_config *c = &m->cfg;
    int V = c->vocab_size, D = c->hidden_size;
    if (!(m->embed = load_tensor(m, "model.embed_tokens.weight", 2, V, D, 1))) goto fail;
    if (!(m->final_norm = load_tensor(m, "model.norm.weight", 1, D, 0, 1))) goto fail;
    if (c->tie_word_embeddings) m->lm_head = m->embed;
    else if (!(m->lm_head = load_tensor(m, "lm_head.weight", 2, V, D, 1))) goto fail;
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int l = 0; l < c->num_layers; l++)
        if (load_layer(m, l)) goto fail;
    return m;
fail:
    ds_model_free(m);
    return NULL;
}

void ds_model_free(ds_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nowned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    ds_weights_close(&m->weights);
    ds_config_free(&m->cfg);
    free(m->dir);
    free(m);
}

const ds_config *ds_model_config(const ds_model *m) { return &m->cfg; }
const char *ds_model_dir(const ds_model *m) { return m->dir; }
const char *ds_model_storage_dtype(const ds_model *m) { return m->storage_dtype; }

void ds_model_lambda(const ds_model *m, int layer, double out[4]) {
    memcpy(out, m->layers[layer].lambda, sizeof m->layers[layer].lambda);
}
