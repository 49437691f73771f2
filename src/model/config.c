/* config.json -> validated ds_config. Keys a file leaves out take transformers' defaults for
 * its architecture (the rows of arch.c). */
#include "diffscope/config.h"
#include "diffscope/error.h"
#include "base/fileio.h"
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double ds_lambda_init(int layer) { return 0.8 - 0.6 * exp(-0.3 * layer); }

/* Reads integer KEY into *out; absent (or null) keys keep *out when !required. */
static int get_int(const cJSON *j, const char *key, int required, int *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return required ? ds_fail("%s: missing key '%s'", path, key) : 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2147483647.0)
        return ds_fail("%s: '%s' must be an integer", path, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_double(const cJSON *j, const char *key, double *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) return ds_fail("%s: '%s' must be a number", path, key);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *j, const char *key, int *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return ds_fail("%s: '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* RoPE: transformers 5 writes rope_parameters {rope_type, rope_theta, ...}; older files
 * write rope_theta at the top level and rope_scaling {rope_type|type, factor, ...}. */
static int parse_rope(ds_config *c, const cJSON *j, const char *path) {
    c->rope_theta = c->desc->default_rope_theta;
    c->rope_type = DS_ROPE_DEFAULT;
    if (get_double(j, "rope_theta", &c->rope_theta, path)) return -1;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    const char *where = "rope_parameters";
    if (!rp || cJSON_IsNull(rp)) {
        rp = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
        where = "rope_scaling";
    }
    if (!rp || cJSON_IsNull(rp)) return 0;
    if (!cJSON_IsObject(rp)) return ds_fail("%s: '%s' must be an object", path, where);
    if (get_double(rp, "rope_theta", &c->rope_theta, path)) return -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rp, "type");
    if (type && !cJSON_IsString(type)) return ds_fail("%s: %s.rope_type must be a string", path, where);
    const char *t = type ? type->valuestring : "default";
    if (!strcmp(t, "default")) return 0;
    if (strcmp(t, "llama3"))
        return ds_fail("%s: %s.rope_type '%s' is not supported (default and llama3 are)", path, where, t);
    c->rope_type = DS_ROPE_LLAMA3;
    const char *need[] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    for (int i = 0; i < 4; i++)
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(rp, need[i])))
            return ds_fail("%s: llama3 RoPE needs the number %s.%s", path, where, need[i]);
    get_double(rp, "factor", &c->rope_factor, path);
    get_double(rp, "low_freq_factor", &c->rope_low_freq_factor, path);
    get_double(rp, "high_freq_factor", &c->rope_high_freq_factor, path);
    if (get_int(rp, "original_max_position_embeddings", 1, &c->rope_original_max_pos, path)) return -1;
    /* transformers warns below factor 1 and needs low < high; every one finite, so that the
     * scaled frequencies are too. */
    if (!(c->rope_factor >= 1 && c->rope_factor <= FLT_MAX) || !(c->rope_low_freq_factor > 0) ||
        !(c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_high_freq_factor <= FLT_MAX) ||
        c->rope_original_max_pos <= 0)
        return ds_fail("%s: llama3 RoPE parameters out of range (factor >= 1, 0 < low_freq_factor < "
                       "high_freq_factor, all finite)", path);
    return 0;
}

static int parse_eos(ds_config *c, const cJSON *j, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    c->n_eos = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        c->eos_token_ids[c->n_eos++] = v->valueint;
        return 0;
    }
    if (!cJSON_IsArray(v)) return ds_fail("%s: 'eos_token_id' must be an integer or a list", path);
    for (const cJSON *e = v->child; e && c->n_eos < DS_MAX_EOS; e = e->next) {
        if (!cJSON_IsNumber(e)) return ds_fail("%s: 'eos_token_id' entries must be integers", path);
        c->eos_token_ids[c->n_eos++] = e->valueint;
    }
    return 0;
}

static int bias(ds_bias_rule rule, int config_key) {
    return rule == DS_BIAS_ALWAYS || (rule == DS_BIAS_CONFIG && config_key);
}

/* Qwen2/Qwen3 make layer l use a sliding window when use_sliding_window is true and l >=
 * max_window_layers (or as layer_types lists): refused, since the attention here is full. */
static int check_sliding_window(const ds_config *c, const cJSON *j, const char *path) {
    int use = 0, max_window_layers = 28;
    if (!c->desc->sliding_window_keys || get_bool(j, "use_sliding_window", &use, path) || !use) return 0;
    if (get_int(j, "max_window_layers", 0, &max_window_layers, path)) return -1;
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    int sliding = 0;
    if (cJSON_IsArray(types)) {
        for (const cJSON *t = types->child; t; t = t->next)
            sliding |= cJSON_IsString(t) && !strcmp(t->valuestring, "sliding_attention");
    } else {
        sliding = c->num_layers > max_window_layers;
    }
    return sliding ? ds_fail("%s: use_sliding_window is true: sliding-window attention is not supported", path) : 0;
}

static int validate(const ds_config *c, const char *path) {
    const struct { const char *key; int v; } pos[] = {
        {"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
        {"intermediate_size", c->intermediate_size}, {"num_hidden_layers", c->num_layers},
        {"num_attention_heads", c->num_heads}, {"num_key_value_heads", c->num_kv_heads},
        {"head_dim", c->head_dim}, {"max_position_embeddings", c->max_position_embeddings},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0) return ds_fail("%s: '%s' must be positive (got %d)", path, pos[i].key, pos[i].v);
    if (c->num_heads % c->num_kv_heads)
        return ds_fail("%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", path,
                       c->num_heads, c->num_kv_heads);
    if (c->desc->differential && c->num_heads % 2)
        return ds_fail("%s: %s needs an even num_attention_heads (got %d)", path, c->desc->model_type, c->num_heads);
    if (c->head_dim % 2) return ds_fail("%s: head_dim must be even for RoPE (got %d)", path, c->head_dim);
    if (!(c->rms_norm_eps >= 0 && c->rms_norm_eps <= 1))
        return ds_fail("%s: 'rms_norm_eps' must be a non-negative number no larger than 1 (got %g)", path,
                       (double)c->rms_norm_eps);
    /* The frequencies theta^(-2i/hd) lie in [1/theta, 1] only for theta > 1; a theta near 0
     * (1e-300) gives infinite frequencies and NaN angles, a theta past float range inf. */
    if (!(c->rope_theta > 1 && c->rope_theta <= FLT_MAX))
        return ds_fail("%s: 'rope_theta' must be a finite number above 1 (got %g)", path, c->rope_theta);
    /* Keep every later size product (T x vocab, H x hd, ...) inside int64 and sane memory. */
    if ((long long)c->num_heads * c->head_dim > (1 << 20) || c->hidden_size > (1 << 20) ||
        c->intermediate_size > (1 << 22) || c->vocab_size > DS_MAX_VOCAB || c->num_layers > 4096)
        return ds_fail("%s: model dimensions are implausibly large", path);
    return 0;
}

int ds_config_parse(ds_config *c, const char *text, const char *path) {
    memset(c, 0, sizeof *c);
    cJSON *j = cJSON_Parse(text);
    if (!j) return ds_fail("%s: not valid JSON", path);
    int rc = -1;
    if (!cJSON_IsObject(j)) {
        ds_fail("%s: not a JSON object", path);
        goto out;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (!cJSON_IsString(mt)) {
        ds_fail("%s: missing key 'model_type'", path);
        goto out;
    }
    if (!(c->desc = ds_arch_find(mt->valuestring))) {
        char names[128];
        ds_fail("%s: model_type '%s' is not supported (%s are)", path, mt->valuestring,
                ds_arch_names(names, sizeof names, ", "));
        goto out;
    }
    c->arch = c->desc->arch;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
        ds_fail("%s: hidden_act must be \"silu\"", path);
        goto out;
    }
    double eps = c->desc->default_rms_norm_eps;
    int attention_bias = 0, mlp_bias = 0;
    c->max_position_embeddings = c->desc->default_max_positions;
    c->bos_token_id = -1;
    c->head_dim = c->desc->default_head_dim;
    c->num_kv_heads = 0;
    if (get_int(j, "vocab_size", 1, &c->vocab_size, path) ||
        get_int(j, "hidden_size", 1, &c->hidden_size, path) ||
        get_int(j, "intermediate_size", 1, &c->intermediate_size, path) ||
        get_int(j, "num_hidden_layers", 1, &c->num_layers, path) ||
        get_int(j, "num_attention_heads", 1, &c->num_heads, path) ||
        get_int(j, "num_key_value_heads", 0, &c->num_kv_heads, path) ||
        get_int(j, "head_dim", 0, &c->head_dim, path) ||
        get_int(j, "max_position_embeddings", 0, &c->max_position_embeddings, path) ||
        get_int(j, "bos_token_id", 0, &c->bos_token_id, path) ||
        get_double(j, "rms_norm_eps", &eps, path) ||
        get_bool(j, "tie_word_embeddings", &c->tie_word_embeddings, path) ||
        get_bool(j, "attention_bias", &attention_bias, path) || get_bool(j, "mlp_bias", &mlp_bias, path) ||
        parse_rope(c, j, path) || parse_eos(c, j, path) || check_sliding_window(c, j, path))
        goto out;
    c->qkv_bias = bias(c->desc->qkv_bias, attention_bias);
    c->o_bias = bias(c->desc->o_bias, attention_bias);
    c->mlp_bias = bias(c->desc->mlp_bias, mlp_bias);
    c->rms_norm_eps = (float)eps;
    if (c->num_kv_heads == 0) c->num_kv_heads = c->num_heads;
    if (c->head_dim == 0 && c->num_heads > 0) c->head_dim = c->hidden_size / c->num_heads;
    c->map_heads = ds_arch_map_heads(c->desc, c->num_heads);
    if (validate(c, path)) goto out;
    c->json_text = strdup(text);
    rc = c->json_text ? 0 : ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
out:
    cJSON_Delete(j);
    return rc;
}

int ds_config_load(ds_config *c, const char *path) {
    size_t len;
    char *buf = ds_read_file(path, DS_MAX_CONFIG_BYTES, &len);
    if (!buf) return -1;
    int rc = len ? ds_config_parse(c, buf, path) : ds_fail("%s: empty file", path);
    free(buf);
    return rc;
}

void ds_config_free(ds_config *c) {
    free(c->json_text);
    c->json_text = NULL;
}

int ds_config_check_ids(const ds_config *c, const int *ids, int n, int first_pos) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ds_fail("token id %d (position %d) is outside the vocabulary (size %d)", ids[i], first_pos + i,
                           c->vocab_size);
    return 0;
}

int ds_config_check_length(const ds_config *c, int n) {
    if (n > c->max_position_embeddings)
        return ds_fail("%d tokens exceed max_position_embeddings (%d)", n, c->max_position_embeddings);
    return 0;
}
