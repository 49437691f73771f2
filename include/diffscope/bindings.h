/* Entry points for bindings from other languages (python/diffscope calls the library through
 * ctypes). Plain numbers and strings stand in for the C structs of the rest of the API, whose
 * layout a binding would otherwise have to repeat; for the structs a binding must repeat (the
 * probe event its callbacks receive, the generation options), ds_struct_offset lets it check
 * its copy against the library it loaded instead of reading garbage after a change. */
#ifndef DIFFSCOPE_BINDINGS_H
#define DIFFSCOPE_BINDINGS_H
#include <stddef.h>
#include "diffscope/model.h"

/* A number of the model's validated config by its config.json name: "vocab_size",
 * "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
 * "num_key_value_heads", "head_dim", "max_position_embeddings", "bos_token_id" (-1 when absent),
 * "tie_word_embeddings"; or one the architecture implies: "differential" (1 for differential
 * attention), "map_heads" (heads of each attention map and of hook_z: H/2 when differential,
 * else H). -1 with a message for any other name. */
long long ds_model_dim(const ds_model *m, const char *name);
/* The config's model_type: "diffllama", "llama", "qwen2", "qwen3" (include/diffscope/arch.h). */
const char *ds_model_arch(const ds_model *m);
/* The text of the model's config.json. */
const char *ds_model_config_json(const ds_model *m);

/* The I-th probe name (0-based) that a forward pass of M fires, in the forward pass's order:
 * hook_embed, each layer's points, ln_final.hook_normalized, hook_logits; only the points of
 * M's architecture (the differential ones for DiffLlama). Written into BUF; NULL past the end.
 * Bindings check a user's glob against these names, so that a typo is an error, not an
 * empty result. */
const char *ds_model_probe_name(const ds_model *m, int i, char *buf, int bufsize);

/* Byte offset of FIELD in the struct named STRUCT_NAME ("ds_probe_event", "ds_gen_opts"), or
 * its size for FIELD "sizeof"; -1 for a name the library does not know. */
long long ds_struct_offset(const char *struct_name, const char *field);

/* Frees what the library returned as malloc'd (token ids, decoded text, pieces). */
void ds_free(void *p);

#endif
