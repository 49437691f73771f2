/* One description per architecture (src/model/arch.c), in the manner of llama.cpp's llama-arch:
 * the config.json model_type and Hugging Face class, transformers' defaults for the keys a
 * config leaves out, every tensor of the checkpoint (name template, shape in config terms,
 * when it is present), and the attention features the code branches on.
 *
 * The loader, `diffscope init`, the parameter count and bench's FLOP count walk the tensor
 * table; the forward pass, the dump, the hooks and the viewer test features (differential,
 * qk_norm, ...) instead of naming architectures. Adding an architecture is a row here plus
 * whatever new feature value it brings (docs/architecture.md, "Adding an architecture"). */
#ifndef DIFFSCOPE_ARCH_H
#define DIFFSCOPE_ARCH_H
#include <stddef.h>
#include <stdint.h>

typedef enum { DS_ARCH_LLAMA, DS_ARCH_DIFFLLAMA, DS_ARCH_QWEN2, DS_ARCH_QWEN3, DS_ARCH_COUNT } ds_arch;

/* A tensor's dimension in config terms: D hidden, I intermediate, V vocabulary, Q = H·hd,
 * KV = KV·hd, HD = hd. */
typedef enum { DS_DIM_NONE, DS_DIM_D, DS_DIM_I, DS_DIM_V, DS_DIM_Q, DS_DIM_KV, DS_DIM_HD } ds_dim;

/* When a tensor is in the checkpoint: always, or when the resolved config (ds_config) or the
 * architecture says so. */
typedef enum {
    DS_WHEN_ALWAYS,
    DS_WHEN_UNTIED,        /* !tie_word_embeddings */
    DS_WHEN_QKV_BIAS,      /* ds_config.qkv_bias */
    DS_WHEN_O_BIAS,        /* ds_config.o_bias */
    DS_WHEN_MLP_BIAS,      /* ds_config.mlp_bias */
    DS_WHEN_QK_NORM,       /* ds_arch_desc.qk_norm */
    DS_WHEN_DIFFERENTIAL,  /* ds_arch_desc.differential */
} ds_when;

/* What the forward pass does with a tensor: FLOP and parameter counts read it. */
typedef enum {
    DS_USE_VECTOR,  /* norm weight, bias, λ vector */
    DS_USE_MATRIX,  /* a product with every token's activations, [out, in] */
    DS_USE_EMBED,   /* rows looked up by token id */
    DS_USE_HEAD,    /* the output projection, applied to the rows the caller asks logits for */
} ds_tensor_use;

/* Every tensor the loader knows, one id each (the loader binds ids to its weight fields). */
typedef enum {
    DS_T_EMBED, DS_T_FINAL_NORM, DS_T_LM_HEAD,
    DS_T_WQ, DS_T_BQ, DS_T_WK, DS_T_BK, DS_T_WV, DS_T_BV, DS_T_WO, DS_T_BO,
    DS_T_W_GATE, DS_T_B_GATE, DS_T_W_UP, DS_T_B_UP, DS_T_W_DOWN, DS_T_B_DOWN,
    DS_T_ATTN_NORM, DS_T_MLP_NORM, DS_T_Q_NORM, DS_T_K_NORM,
    DS_T_LAMBDA_Q1, DS_T_LAMBDA_K1, DS_T_LAMBDA_Q2, DS_T_LAMBDA_K2,
    DS_T_COUNT
} ds_tensor_id;

typedef struct {
    ds_tensor_id id;
    const char *name;  /* safetensors name; per-layer ones hold one %d for the layer */
    int per_layer;
    ds_dim shape[2];   /* shape[1] == DS_DIM_NONE: a vector */
    ds_when when;
    ds_tensor_use use;
} ds_tensor_desc;

/* Which sub-heads form a differential head i (of H/2): i and i + H/2 (transformers'
 * DiffLlama), or 2i and 2i + 1 (the unilm reference code). */
typedef enum { DS_PAIRING_NONE, DS_PAIRING_HALF, DS_PAIRING_ADJACENT } ds_head_pairing;
/* RoPE channel pairs: i with i + hd/2 (rotate_half, transformers) or 2i with 2i + 1. */
typedef enum { DS_ROPE_ROTATE_HALF, DS_ROPE_INTERLEAVED } ds_rope_layout;
/* A bias present never, always, or as the config's attention_bias / mlp_bias key says. */
typedef enum { DS_BIAS_NEVER, DS_BIAS_ALWAYS, DS_BIAS_CONFIG } ds_bias_rule;

typedef struct {
    ds_arch arch;
    const char *model_type;        /* config.json "model_type" */
    const char *hf_class;          /* config.json "architectures"[0] */
    const char *label;             /* for people, short: "DiffLlama" */
    const char *title;             /* for people, with what sets it apart: "DiffLlama (differential attention)" */
    /* transformers' defaults for keys a config.json leaves out */
    double default_rms_norm_eps, default_rope_theta;
    int default_max_positions;
    int default_head_dim;          /* 0: hidden_size / num_attention_heads */
    ds_bias_rule qkv_bias, o_bias, mlp_bias;
    /* attention */
    int differential;              /* two softmax maps per head, A1 − λ·A2, λ, GroupNorm */
    ds_head_pairing pairing;       /* DS_PAIRING_NONE unless differential */
    ds_rope_layout rope_layout;
    int subln_affine;              /* the GroupNorm has a learned weight (else the fixed 1 − λ_init) */
    int qk_norm;                   /* RMSNorm over each q and k head (weight [hd]) before RoPE */
    int sliding_window_keys;       /* config.json may ask for sliding-window layers (refused) */
    unsigned maps;                 /* 1u << DS_HOOK_* of the per-head maps the attention makes */
    const ds_tensor_desc *tensors; /* in checkpoint order */
    int n_tensors;
} ds_arch_desc;

const ds_arch_desc *ds_arch_get(ds_arch a);
/* The architecture whose model_type is NAME, or NULL. */
const ds_arch_desc *ds_arch_find(const char *model_type);
/* "diffllama", "llama", "qwen2", "qwen3" */
const char *ds_arch_name(ds_arch a);
/* Heads of each attention map (and of hook_z) of a model with NUM_HEADS query heads: H/2
 * differential heads, or H. */
int ds_arch_map_heads(const ds_arch_desc *a, int num_heads);
/* The model types of the table, separated by SEP, in BUF (returned; cut at SIZE). */
char *ds_arch_names(char *buf, size_t size, const char *sep);

#endif
