/* Internal layout of ds_model and ds_session, shared by load.c, session.c, forward.c,
 * attention.c and rope.c. Not part of the public API. */
#ifndef DIFFSCOPE_MODEL_INTERNAL_H
#define DIFFSCOPE_MODEL_INTERNAL_H
#include "diffscope/model.h"
#include "io/safetensors.h"

/* Weights of one decoder layer, float32, row-major [out, in] as transformers stores them.
 * Pointers of tensors the architecture's table leaves out for this config are NULL. */
typedef struct {
    const float *attn_norm, *mlp_norm;       /* [D] */
    const float *wq, *wk, *wv, *wo;          /* [H*hd, D], [KV*hd, D], [KV*hd, D], [D, H*hd] */
    const float *bq, *bk, *bv, *bo;
    const float *w_gate, *w_up, *w_down;     /* [I, D], [I, D], [D, I] */
    const float *b_gate, *b_up, *b_down;
    const float *q_norm, *k_norm;            /* [hd] when the architecture has qk_norm */
    const float *lambda_vec[4];              /* [hd] each: lambda_q1, lambda_k1, lambda_q2, lambda_k2 */
    double lambda[4];                        /* differential: lambda_1, lambda_2, lambda_init, lambda_full */
    /* bf16 compute: the matrices as bf16 (their float pointers above are then NULL) */
    const uint16_t *wq16, *wk16, *wv16, *wo16, *w_gate16, *w_up16, *w_down16;
} ds_layer;

struct ds_model {
    char *dir;
    ds_config cfg;
    ds_weights weights;
    const float *embed;      /* [V, D] */
    const float *final_norm; /* [D] */
    const float *lm_head;    /* [V, D]; == embed when tied */
    ds_layer *layers;
    ds_compute compute;
    const uint16_t *embed16, *lm_head16; /* bf16 compute: [V, D] as bf16, embed and lm_head NULL */
    void **owned;            /* converted (non-mapped) buffers to free */
    int nowned;
    uint16_t **packed;       /* bf16 matrices packed for a kernel, freed by ds_bf16_packed_free */
    int npacked;
    char storage_dtype[8];
};

struct ds_session {
    const ds_model *m;
    int max_tokens;
    int pos;                 /* tokens in the KV cache */
    float *k_cache, *v_cache; /* [L][max_tokens][KV*hd], keys after RoPE */
    float *rope_cos, *rope_sin; /* [max_tokens][hd/2] */
    /* Scratch for a forward call of up to `cap` tokens. */
    int cap;
    float *x;      /* [n, D] residual stream */
    float *xb;     /* [n, D] normalised input of a sublayer */
    float *q;      /* [n, H*hd] */
    float *z;      /* [n, H*hd] attention output before o_proj */
    float *tmp;    /* [n, D] */
    float *gate, *up; /* [n, I] */
    /* Attention row-block scratch, sized for the current call. */
    size_t att_cap;
    float *att;    /* [H][R][Tk] maps (scores, then softmax) */
    float *diff;   /* [H/2][R][Tk] */
};

/* Loops over fewer elements (or multiply-adds) than this run on one thread: starting a
 * parallel region costs more than such work, and far more when other processes hold the
 * cores (a descheduled thread stalls every barrier). Decoding small models is all such loops. */
#define DS_PAR_MIN 65536

/* attention.c: self-attention of layer L over the session's cache for the N new tokens in
 * s->q (RoPE applied) whose keys/values are already in the cache. Writes s->z (before
 * o_proj, GroupNorm applied for DiffLlama). LAMBDA is λ_full for DiffLlama. */
int ds_attention(ds_session *s, int layer, int n, double lambda, ds_probes *probes);
/* Fails for an attention feature value (head pairing) attention.c does not implement. */
int ds_attention_check(const ds_config *c);

/* threads.c: cuts the thread count to what an address-space limit (RLIMIT_AS) leaves room for
 * once PLANNED more bytes are allocated; -1 ("out of memory: ...") when not one thread fits. */
int ds_fit_threads_to_address_space(size_t planned);

/* session.c: makes the activation scratch hold N tokens (kept when it already does). */
int ds_session_reserve(ds_session *s, int n);

/* rope.c: ds_rope_check fails for a RoPE layout this file does not implement. */
int ds_rope_check(const ds_config *c);
void ds_rope_table(const ds_config *c, int max_tokens, float *cos_out, float *sin_out);
void ds_rope_apply(float *x, int n, int nheads, int hd, int pos0, const float *cos_t, const float *sin_t);

/* linear.c: y[n, out] = x[n, in] · W[out, in]^T (+ b) */
void ds_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out);

/* One of up to DS_LINEAR_MAX products of the same x, computed together by ds_linear_shared. */
#define DS_LINEAR_MAX 4
typedef struct {
    float *y;       /* [n, out] */
    const float *w; /* [out, in] */
    const float *b; /* [out] or NULL */
    int out;
    const uint16_t *w16; /* [out, in] bf16, in place of w in the bf16 compute mode */
} ds_linear_out;
void ds_linear_shared(const float *x, int n, int in, const ds_linear_out *outs, int count);

/* The tiles every product is cut into, rows × output features (the last ones in each direction
 * may be smaller): fixed by the shapes alone, so that results do not depend on the thread count
 * or the cores. The first of tile_shapes (linear.c) that still cuts a parallel loop's
 * products into DS_TILE_MIN_COUNT tiles (enough for 64 cores), else its last: larger tiles
 * re-pack each block of x and of the weights fewer times. Why these sizes: docs/performance.md,
 * "Tiles and determinism". DS_TILE_FEATS: the feature blocks of the bf16 widening path. */
#define DS_TILE_FEATS 128
#define DS_TILE_MIN_COUNT 64
/* ds_linear_shared with other tiles (tools/bench/bench_tiles.c measures them). MERGE: let a
 * thread run neighbouring tiles as one call where that rounds as the tiles do (linear.c);
 * 0: every tile is a call of its own. */
void ds_linear_tiled(const float *x, int n, int in, const ds_linear_out *outs, int count, int tile_rows,
                     int tile_feats, int merge);
/* 1 when OpenBLAS's kernel in use rounds each output of a product the same however the
 * product is cut into calls (outside its small-matrix path), so ds_linear_tiled may merge. */
int ds_linear_kernel_is_cut_free(void);

#endif
