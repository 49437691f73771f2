/* The architectures diffscope runs, one row each, and the tensor table they share
 * (include/diffscope/arch.h). Defaults and tensor names are transformers 5.17's
 * (configuration_*.py, modeling_*.py of each model). */
#include "diffscope/config.h"
#include "diffscope/error.h"
#include "diffscope/probe.h"
#include <stdio.h>
#include <string.h>

#define L_ 1 /* per layer */
#define M_ 0 /* once per model */

/* The Hugging Face Llama-family layout, in the order `diffscope init` writes it. DiffLlama,
 * Llama, Qwen2 and Qwen3 all name their tensors this way; an architecture that names them
 * otherwise gets a table of its own. */
static const ds_tensor_desc HF_DECODER[] = {
    {DS_T_EMBED, "model.embed_tokens.weight", M_, {DS_DIM_V, DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_EMBED},
    {DS_T_WQ, "model.layers.%d.self_attn.q_proj.weight", L_, {DS_DIM_Q, DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_BQ, "model.layers.%d.self_attn.q_proj.bias", L_, {DS_DIM_Q}, DS_WHEN_QKV_BIAS, DS_USE_VECTOR},
    {DS_T_WK, "model.layers.%d.self_attn.k_proj.weight", L_, {DS_DIM_KV, DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_BK, "model.layers.%d.self_attn.k_proj.bias", L_, {DS_DIM_KV}, DS_WHEN_QKV_BIAS, DS_USE_VECTOR},
    {DS_T_WV, "model.layers.%d.self_attn.v_proj.weight", L_, {DS_DIM_KV, DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_BV, "model.layers.%d.self_attn.v_proj.bias", L_, {DS_DIM_KV}, DS_WHEN_QKV_BIAS, DS_USE_VECTOR},
    {DS_T_WO, "model.layers.%d.self_attn.o_proj.weight", L_, {DS_DIM_D, DS_DIM_Q}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_BO, "model.layers.%d.self_attn.o_proj.bias", L_, {DS_DIM_D}, DS_WHEN_O_BIAS, DS_USE_VECTOR},
    {DS_T_W_GATE, "model.layers.%d.mlp.gate_proj.weight", L_, {DS_DIM_I, DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_B_GATE, "model.layers.%d.mlp.gate_proj.bias", L_, {DS_DIM_I}, DS_WHEN_MLP_BIAS, DS_USE_VECTOR},
    {DS_T_W_UP, "model.layers.%d.mlp.up_proj.weight", L_, {DS_DIM_I, DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_B_UP, "model.layers.%d.mlp.up_proj.bias", L_, {DS_DIM_I}, DS_WHEN_MLP_BIAS, DS_USE_VECTOR},
    {DS_T_W_DOWN, "model.layers.%d.mlp.down_proj.weight", L_, {DS_DIM_D, DS_DIM_I}, DS_WHEN_ALWAYS, DS_USE_MATRIX},
    {DS_T_B_DOWN, "model.layers.%d.mlp.down_proj.bias", L_, {DS_DIM_D}, DS_WHEN_MLP_BIAS, DS_USE_VECTOR},
    {DS_T_ATTN_NORM, "model.layers.%d.input_layernorm.weight", L_, {DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_VECTOR},
    {DS_T_MLP_NORM, "model.layers.%d.post_attention_layernorm.weight", L_, {DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_VECTOR},
    {DS_T_Q_NORM, "model.layers.%d.self_attn.q_norm.weight", L_, {DS_DIM_HD}, DS_WHEN_QK_NORM, DS_USE_VECTOR},
    {DS_T_K_NORM, "model.layers.%d.self_attn.k_norm.weight", L_, {DS_DIM_HD}, DS_WHEN_QK_NORM, DS_USE_VECTOR},
    {DS_T_LAMBDA_Q1, "model.layers.%d.self_attn.lambda_q1", L_, {DS_DIM_HD}, DS_WHEN_DIFFERENTIAL, DS_USE_VECTOR},
    {DS_T_LAMBDA_K1, "model.layers.%d.self_attn.lambda_k1", L_, {DS_DIM_HD}, DS_WHEN_DIFFERENTIAL, DS_USE_VECTOR},
    {DS_T_LAMBDA_Q2, "model.layers.%d.self_attn.lambda_q2", L_, {DS_DIM_HD}, DS_WHEN_DIFFERENTIAL, DS_USE_VECTOR},
    {DS_T_LAMBDA_K2, "model.layers.%d.self_attn.lambda_k2", L_, {DS_DIM_HD}, DS_WHEN_DIFFERENTIAL, DS_USE_VECTOR},
    {DS_T_FINAL_NORM, "model.norm.weight", M_, {DS_DIM_D}, DS_WHEN_ALWAYS, DS_USE_VECTOR},
    {DS_T_LM_HEAD, "lm_head.weight", M_, {DS_DIM_V, DS_DIM_D}, DS_WHEN_UNTIED, DS_USE_HEAD},
};
#define HF_DECODER_TENSORS HF_DECODER, (int)(sizeof HF_DECODER / sizeof HF_DECODER[0])

#define STANDARD_MAPS (1u << DS_HOOK_SCORES | 1u << DS_HOOK_PATTERN)
#define DIFFERENTIAL_MAPS (STANDARD_MAPS | 1u << DS_HOOK_PATTERN1 | 1u << DS_HOOK_PATTERN2 | 1u << DS_HOOK_DIFF)

static const ds_arch_desc ARCHS[DS_ARCH_COUNT] = {
    [DS_ARCH_LLAMA] = {
        .arch = DS_ARCH_LLAMA, .model_type = "llama", .hf_class = "LlamaForCausalLM", .label = "Llama",
        .title = "Llama",
        .default_rms_norm_eps = 1e-6, .default_rope_theta = 10000.0, .default_max_positions = 2048,
        .qkv_bias = DS_BIAS_CONFIG, .o_bias = DS_BIAS_CONFIG, .mlp_bias = DS_BIAS_CONFIG,
        .rope_layout = DS_ROPE_ROTATE_HALF, .maps = STANDARD_MAPS, .tensors = HF_DECODER_TENSORS,
    },
    /* The MLP has no bias whatever the config says: transformers ignores mlp_bias there. */
    [DS_ARCH_DIFFLLAMA] = {
        .arch = DS_ARCH_DIFFLLAMA, .model_type = "diffllama", .hf_class = "DiffLlamaForCausalLM",
        .label = "DiffLlama", .title = "DiffLlama (differential attention)",
        .default_rms_norm_eps = 1e-5, .default_rope_theta = 10000.0, .default_max_positions = 2048,
        .qkv_bias = DS_BIAS_CONFIG, .o_bias = DS_BIAS_CONFIG, .mlp_bias = DS_BIAS_NEVER,
        .differential = 1, .pairing = DS_PAIRING_HALF, .rope_layout = DS_ROPE_ROTATE_HALF,
        .maps = DIFFERENTIAL_MAPS, .tensors = HF_DECODER_TENSORS,
    },
    /* q/k/v always have a bias and o_proj never: Qwen2Attention hard-codes both. */
    [DS_ARCH_QWEN2] = {
        .arch = DS_ARCH_QWEN2, .model_type = "qwen2", .hf_class = "Qwen2ForCausalLM", .label = "Qwen2",
        .title = "Qwen2 (q/k/v bias)",
        .default_rms_norm_eps = 1e-6, .default_rope_theta = 10000.0, .default_max_positions = 32768,
        .qkv_bias = DS_BIAS_ALWAYS, .o_bias = DS_BIAS_NEVER, .mlp_bias = DS_BIAS_NEVER,
        .rope_layout = DS_ROPE_ROTATE_HALF, .sliding_window_keys = 1, .maps = STANDARD_MAPS,
        .tensors = HF_DECODER_TENSORS,
    },
    /* head_dim defaults to 128, not D / H (Qwen3Config). */
    [DS_ARCH_QWEN3] = {
        .arch = DS_ARCH_QWEN3, .model_type = "qwen3", .hf_class = "Qwen3ForCausalLM",
        .label = "Qwen3", .title = "Qwen3 (RMSNorm on q and k)",
        .default_rms_norm_eps = 1e-6, .default_rope_theta = 10000.0, .default_max_positions = 32768,
        .default_head_dim = 128,
        .qkv_bias = DS_BIAS_CONFIG, .o_bias = DS_BIAS_CONFIG, .mlp_bias = DS_BIAS_NEVER,
        .rope_layout = DS_ROPE_ROTATE_HALF, .qk_norm = 1, .sliding_window_keys = 1, .maps = STANDARD_MAPS,
        .tensors = HF_DECODER_TENSORS,
    },
};

const ds_arch_desc *ds_arch_get(ds_arch a) { return a >= 0 && a < DS_ARCH_COUNT ? &ARCHS[a] : NULL; }

const char *ds_arch_name(ds_arch a) { return a >= 0 && a < DS_ARCH_COUNT ? ARCHS[a].model_type : "unknown"; }

const ds_arch_desc *ds_arch_find(const char *model_type) {
    for (int i = 0; i < DS_ARCH_COUNT; i++)
        if (!strcmp(ARCHS[i].model_type, model_type)) return &ARCHS[i];
    return NULL;
}

int ds_arch_map_heads(const ds_arch_desc *a, int num_heads) { return a->differential ? num_heads / 2 : num_heads; }

char *ds_arch_names(char *buf, size_t size, const char *sep) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < DS_ARCH_COUNT && n < size; i++)
        n += snprintf(buf + n, size - n, "%s%s", i ? sep : "", ARCHS[i].model_type);
    return buf;
}

static int present(const ds_config *c, ds_when w) {
    switch (w) {
    case DS_WHEN_ALWAYS: return 1;
    case DS_WHEN_UNTIED: return !c->tie_word_embeddings;
    case DS_WHEN_QKV_BIAS: return c->qkv_bias;
    case DS_WHEN_O_BIAS: return c->o_bias;
    case DS_WHEN_MLP_BIAS: return c->mlp_bias;
    case DS_WHEN_QK_NORM: return c->desc->qk_norm;
    case DS_WHEN_DIFFERENTIAL: return c->desc->differential;
    }
    return 0;
}

static int64_t dim_size(const ds_config *c, ds_dim d) {
    switch (d) {
    case DS_DIM_NONE: return 0;
    case DS_DIM_D: return c->hidden_size;
    case DS_DIM_I: return c->intermediate_size;
    case DS_DIM_V: return c->vocab_size;
    case DS_DIM_Q: return (int64_t)c->num_heads * c->head_dim;
    case DS_DIM_KV: return (int64_t)c->num_kv_heads * c->head_dim;
    case DS_DIM_HD: return c->head_dim;
    }
    return 0;
}

static int visit(const ds_config *c, const ds_tensor_desc *d, int layer, ds_tensor_fn fn, void *user) {
    if (!present(c, d->when)) return 0;
    ds_tensor_ref t = {.desc = d, .layer = layer, .ndim = d->shape[1] == DS_DIM_NONE ? 1 : 2};
    for (int i = 0; i < t.ndim; i++) t.shape[i] = dim_size(c, d->shape[i]);
    if (d->per_layer) snprintf(t.name, sizeof t.name, d->name, layer);
    else snprintf(t.name, sizeof t.name, "%s", d->name);
    return fn(&t, user);
}

/* Model-level rows are visited where they stand; each run of per-layer rows once per layer. */
int ds_config_tensors(const ds_config *c, ds_tensor_fn fn, void *user) {
    const ds_tensor_desc *t = c->desc->tensors;
    const int n = c->desc->n_tensors;
    for (int i = 0; i < n;) {
        int rc;
        if (!t[i].per_layer) {
            if ((rc = visit(c, &t[i++], -1, fn, user))) return rc;
            continue;
        }
        int end = i;
        while (end < n && t[end].per_layer) end++;
        for (int l = 0; l < c->num_layers; l++)
            for (int k = i; k < end; k++)
                if ((rc = visit(c, &t[k], l, fn, user))) return rc;
        i = end;
    }
    return 0;
}

static int count_params(const ds_tensor_ref *t, void *user) {
    *(long long *)user += t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
    return 0;
}

long long ds_config_param_count(const ds_config *c) {
    long long n = 0;
    ds_config_tensors(c, count_params, &n);
    return n;
}
