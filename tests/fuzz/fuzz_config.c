/* libFuzzer harness: config.json parsing and validation (ds_config_parse in src/model/config.c).
 *
 * The input is the text of a config.json. When it is accepted, the harness checks the
 * guarantees later code relies on: positive dimensions, H a multiple of KV, H even for
 * DiffLlama, an even head_dim, finite RoPE parameters that keep every frequency finite (theta
 * above 1, llama3 factors in range) and a finite rms_norm_eps in [0, 1]; and it computes the parameter count, which UBSan checks for
 * signed overflow. A rejected input must leave a one-line message. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/config.h"
#include "diffscope/error.h"

static void cfg_check(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    ds_config c;
    if (ds_config_parse(&c, text, "fuzz/config.json") == 0) {
        cfg_check(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0);
        cfg_check(c.num_heads > 0 && c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0);
        cfg_check(c.head_dim > 0 && c.head_dim % 2 == 0 && c.max_position_embeddings > 0);
        cfg_check(!c.desc->differential || c.num_heads % 2 == 0);
        cfg_check(c.n_eos >= 0 && c.n_eos <= DS_MAX_EOS && c.json_text != NULL);
        cfg_check(ds_config_param_count(&c) > 0);
        cfg_check(c.rope_theta > 1 && isfinite((float)c.rope_theta));
        cfg_check(c.rms_norm_eps >= 0 && c.rms_norm_eps <= 1);
        cfg_check(c.rope_type != DS_ROPE_LLAMA3 ||
                  (c.rope_factor >= 1 && isfinite((float)c.rope_factor) && c.rope_low_freq_factor > 0 &&
                   c.rope_high_freq_factor > c.rope_low_freq_factor && isfinite((float)c.rope_high_freq_factor)));
        volatile double l = ds_lambda_init(c.num_layers - 1);
        (void)l;
        ds_config_free(&c);
    } else {
        cfg_check(ds_errmsg()[0] != 0 && strchr(ds_errmsg(), '\n') == NULL);
    }
    free(text);
    return 0;
}
