/* Entry points for language bindings (include/diffscope/bindings.h): tables of config numbers
 * and of struct layouts, so that a binding names fields instead of copying offsets. */
#include "diffscope/bindings.h"
#include "diffscope/error.h"
#include "diffscope/generate.h"
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t offset;
} dims[] = {
    {"vocab_size", offsetof(ds_config, vocab_size)},
    {"hidden_size", offsetof(ds_config, hidden_size)},
    {"intermediate_size", offsetof(ds_config, intermediate_size)},
    {"num_hidden_layers", offsetof(ds_config, num_layers)},
    {"num_attention_heads", offsetof(ds_config, num_heads)},
    {"num_key_value_heads", offsetof(ds_config, num_kv_heads)},
    {"map_heads", offsetof(ds_config, map_heads)},
    {"head_dim", offsetof(ds_config, head_dim)},
    {"max_position_embeddings", offsetof(ds_config, max_position_embeddings)},
    {"bos_token_id", offsetof(ds_config, bos_token_id)},
    {"tie_word_embeddings", offsetof(ds_config, tie_word_embeddings)},
};

long long ds_model_dim(const ds_model *m, const char *name) {
    const ds_config *c = ds_model_config(m);
    if (strcmp(name, "differential") == 0) return c->desc->differential;
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (strcmp(dims[i].name, name) == 0) return *(const int *)((const char *)c + dims[i].offset);
    return ds_fail("no config number named '%s'", name);
}

/* Points only a differential-attention model fires. */
static int differential_only(ds_hook_point p) {
    return p == DS_HOOK_PATTERN1 || p == DS_HOOK_PATTERN2 || p == DS_HOOK_DIFF || p == DS_HOOK_LAMBDA ||
           p == DS_HOOK_GROUPNORM_IN || p == DS_HOOK_GROUPNORM_OUT;
}

static int model_level(ds_hook_point p) {
    return p == DS_HOOK_EMBED || p == DS_HOOK_FINAL_NORM || p == DS_HOOK_LOGITS;
}

const char *ds_model_probe_name(const ds_model *m, int i, char *buf, int bufsize) {
    const ds_config *c = ds_model_config(m);
    if (i < 0) return NULL;
    if (i-- == 0) return ds_hook_name(DS_HOOK_EMBED, -1, buf, bufsize);
    for (int l = 0; l < c->num_layers; l++)
        for (int p = 0; p < DS_HOOK_COUNT; p++) {
            if (model_level(p) || (differential_only(p) && !c->desc->differential)) continue;
            if (i-- == 0) return ds_hook_name(p, l, buf, bufsize);
        }
    if (i == 0) return ds_hook_name(DS_HOOK_FINAL_NORM, -1, buf, bufsize);
    if (i == 1) return ds_hook_name(DS_HOOK_LOGITS, -1, buf, bufsize);
    return NULL;
}

const char *ds_model_arch(const ds_model *m) { return ds_arch_name(ds_model_config(m)->arch); }

const char *ds_model_config_json(const ds_model *m) { return ds_model_config(m)->json_text; }

#define FIELD(s, f) {#s, #f, offsetof(s, f)}
#define SIZE(s) {#s, "sizeof", sizeof(s)}
static const struct {
    const char *type, *field;
    size_t offset;
} layout[] = {
    SIZE(ds_probe_event),
    FIELD(ds_probe_event, name),
    FIELD(ds_probe_event, point),
    FIELD(ds_probe_event, layer),
    FIELD(ds_probe_event, pos0),
    FIELD(ds_probe_event, ndim),
    FIELD(ds_probe_event, shape),
    FIELD(ds_probe_event, strides),
    FIELD(ds_probe_event, offset),
    FIELD(ds_probe_event, full),
    FIELD(ds_probe_event, data),
    FIELD(ds_probe_event, first_map),
    SIZE(ds_gen_opts),
    FIELD(ds_gen_opts, max_new),
    FIELD(ds_gen_opts, temperature),
    FIELD(ds_gen_opts, top_p),
    FIELD(ds_gen_opts, seed),
    FIELD(ds_gen_opts, ignore_eos),
};

long long ds_struct_offset(const char *struct_name, const char *field) {
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++)
        if (strcmp(layout[i].type, struct_name) == 0 && strcmp(layout[i].field, field) == 0)
            return (long long)layout[i].offset;
    return -1;
}

void ds_free(void *p) { free(p); }
