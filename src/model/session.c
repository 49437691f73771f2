/* Sessions: the KV cache, the RoPE tables and the activation scratch of one sequence (the
 * thread count: threads.c). */
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"
#include "model/internal.h"

static int allow_nonfinite;
void ds_set_allow_nonfinite(int allow) { allow_nonfinite = allow != 0; }
int ds_get_allow_nonfinite(void) { return allow_nonfinite; }

static ds_compute compute_mode = DS_COMPUTE_F32;
static const char *const COMPUTE_NAMES[] = {[DS_COMPUTE_F32] = "f32", [DS_COMPUTE_BF16] = "bf16"};
void ds_set_compute(ds_compute mode) { compute_mode = mode; }
ds_compute ds_get_compute(void) { return compute_mode; }
const char *ds_compute_name(ds_compute mode) { return COMPUTE_NAMES[mode == DS_COMPUTE_BF16]; }
int ds_compute_parse(const char *name, ds_compute *mode) {
    for (int i = 0; i < 2; i++)
        if (!strcmp(name, COMPUTE_NAMES[i])) return *mode = (ds_compute)i, 0;
    return -1;
}

ds_session *ds_session_new(const ds_model *m, int max_tokens, int allow_long) {
    const ds_config *c = &m->cfg;
    if (max_tokens <= 0) {
        ds_fail("a session needs at least one token");
        return NULL;
    }
    if (!allow_long && ds_config_check_length(c, max_tokens)) {
        ds_err_prefix(m->dir);
        return NULL;
    }
    ds_session *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->m = m;
    s->max_tokens = max_tokens;
    /* L · T · KV · hd floats: the config bounds L and KV · hd, but T is the caller's. */
    size_t kv;
    if (__builtin_mul_overflow((size_t)c->num_layers * c->num_kv_heads * c->head_dim, (size_t)max_tokens, &kv) ||
        kv > SIZE_MAX / sizeof(float))
        goto oom;
    size_t rope = (size_t)max_tokens * (c->head_dim / 2);
    s->k_cache = malloc(kv * sizeof(float));
    s->v_cache = malloc(kv * sizeof(float));
    s->rope_cos = malloc(rope * sizeof(float));
    s->rope_sin = malloc(rope * sizeof(float));
    if (!s->k_cache || !s->v_cache || !s->rope_cos || !s->rope_sin) goto oom;
    ds_rope_table(c, max_tokens, s->rope_cos, s->rope_sin);
    /* The activations of a full-length call (ds_session_reserve) are still to come. */
    size_t acts = (size_t)max_tokens * (3 * (size_t)c->hidden_size + 2 * (size_t)c->num_heads * c->head_dim +
                                        2 * (size_t)c->intermediate_size) * sizeof(float);
    if (ds_fit_threads_to_address_space(acts)) { /* its message stays: freeing records none */
        ds_session_free(s);
        return NULL;
    }
    return s;
oom:
    ds_session_free(s);
    ds_failc(DS_ERR_NOMEM, "out of memory for a session of %d tokens", max_tokens);
    return NULL;
}

static void free_scratch(ds_session *s) {
    free(s->x), free(s->xb), free(s->q), free(s->z), free(s->tmp), free(s->gate), free(s->up);
    s->x = s->xb = s->q = s->z = s->tmp = s->gate = s->up = NULL;
    s->cap = 0;
}

void ds_session_free(ds_session *s) {
    if (!s) return;
    free_scratch(s);
    free(s->k_cache), free(s->v_cache), free(s->rope_cos), free(s->rope_sin);
    free(s->att), free(s->diff);
    free(s);
}

int ds_session_pos(const ds_session *s) { return s->pos; }
const ds_model *ds_session_model(const ds_session *s) { return s->m; }
void ds_session_reset(ds_session *s) { s->pos = 0; }

int ds_session_reserve(ds_session *s, int n) {
    if (n <= s->cap) return 0;
    const ds_config *c = &s->m->cfg;
    free_scratch(s);
    size_t D = c->hidden_size, Q = (size_t)c->num_heads * c->head_dim, FF = c->intermediate_size;
    s->x = malloc(n * D * sizeof(float));
    s->xb = malloc(n * D * sizeof(float));
    s->tmp = malloc(n * D * sizeof(float));
    s->q = malloc(n * Q * sizeof(float));
    s->z = malloc(n * Q * sizeof(float));
    s->gate = malloc(n * FF * sizeof(float));
    s->up = malloc(n * FF * sizeof(float));
    if (!s->x || !s->xb || !s->tmp || !s->q || !s->z || !s->gate || !s->up) {
        free_scratch(s);
        return ds_failc(DS_ERR_NOMEM, "out of memory for %d tokens of activations", n);
    }
    s->cap = n;
    return 0;
}
