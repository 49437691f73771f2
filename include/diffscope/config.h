/* config.json of a Hugging Face checkpoint of one of the architectures in arch.h, validated. */
#ifndef DIFFSCOPE_CONFIG_H
#define DIFFSCOPE_CONFIG_H
#include "diffscope/arch.h"

typedef enum { DS_ROPE_DEFAULT, DS_ROPE_LLAMA3 } ds_rope_type;

#define DS_MAX_EOS 8
/* The largest vocabulary accepted (config.json's vocab_size, a tokenizer's ids): 2^24, past
 * every real one (262,144), and small enough that id tables and [T, V] logits stay sane. */
#define DS_MAX_VOCAB (1 << 24)

typedef struct {
    ds_arch arch;
    const ds_arch_desc *desc; /* the architecture's row in arch.c */
    int vocab_size;
    int hidden_size;        /* D */
    int intermediate_size;
    int num_layers;         /* L */
    int num_heads;          /* H: for DiffLlama, H/2 differential heads */
    int map_heads;          /* heads of each attention map and of hook_z: H/2 when differential, else H */
    int num_kv_heads;       /* KV */
    int head_dim;           /* hd: config.head_dim, else the architecture's default (D / H mostly) */
    float rms_norm_eps;
    int tie_word_embeddings;
    int qkv_bias, o_bias;   /* biases of q/k/v_proj and of o_proj (Qwen2 has the first only) */
    int mlp_bias;
    int max_position_embeddings;
    /* RoPE: rope_parameters (transformers 5) or rope_theta + rope_scaling (older files). */
    ds_rope_type rope_type;
    double rope_theta;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
    int bos_token_id;       /* -1 when absent */
    int eos_token_ids[DS_MAX_EOS];
    int n_eos;
    char *json_text;        /* the file's text, kept for dumps */
} ds_config;

/* Parses and validates; errors name PATH and the key. */
int ds_config_parse(ds_config *c, const char *json_text, const char *path);
int ds_config_load(ds_config *c, const char *path);
void ds_config_free(ds_config *c);

/* λ_init of layer l (0-based): 0.8 − 0.6·exp(−0.3·l). */
double ds_lambda_init(int layer);

/* One tensor of a checkpoint: its row in the architecture's table, the layer (-1 for model
 * tensors), the name with the layer filled in, and the shape for this config. */
typedef struct {
    const ds_tensor_desc *desc;
    int layer;
    char name[128];
    int ndim;
    int64_t shape[2];
} ds_tensor_ref;
typedef int (*ds_tensor_fn)(const ds_tensor_ref *t, void *user);

/* Calls FN on every tensor the checkpoint of C holds, in checkpoint order; stops at and
 * returns the first non-zero value FN returns. */
int ds_config_tensors(const ds_config *c, ds_tensor_fn fn, void *user);
/* IDS[0..n), at positions FIRST_POS.., are tokens of C's vocabulary (-1 with a message naming
 * the first that is not). The forward pass checks this; a caller may check a prompt against
 * config.json before it loads the weights. */
int ds_config_check_ids(const ds_config *c, const int *ids, int n, int first_pos);
/* N positions fit in max_position_embeddings (-1 with a message if not). */
int ds_config_check_length(const ds_config *c, int n);

/* Parameter count implied by the config (tied embeddings counted once). */
long long ds_config_param_count(const ds_config *c);

#endif
