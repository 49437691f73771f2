/* Logit lens and direct logit attribution (DLA) at one token position, as a probe consumer.
 *
 *   ds_lens *x = ds_lens_begin(probes, model, pos);  // registers its readers on PROBES
 *   ds_forward(session, ids, n, logits, last_only, probes);  // fresh session; must give
 *                                                             // the logits of row POS
 *   ds_lens_finish(x);                               // the lens of every residual stream
 *   ds_lens_dla(x, target, vs, &dla);                // DLA to a logit or a logit difference
 *
 * Logit lens: row 0 is the embeddings (hook_embed), row l + 1 the residual stream after layer l
 * (blocks.{l}.hook_resid_post), each through the final RMSNorm with its own RMS and then
 * lm_head. Row L is therefore the model's own logits, recomputed in float64 from the same
 * normalised vector.
 *
 * DLA (TransformerLens' apply_ln=True convention): the final RMSNorm's scale s =
 * 1/sqrt(mean(x²) + eps) of the final residual x at POS is frozen, which makes the logit a
 * linear function of x, and x is a sum of the embedding, each head's output through its slice
 * of o_proj, each o_proj bias and each MLP's output. With u = s · w_norm ⊙ (W_U[target] −
 * W_U[vs]), every component c contributes u · c, and the contributions add up to the logit up
 * to the forward pass's float32 rounding (REMAINDER).
 *
 * Differential heads: after GroupNorm, head i's output is
 *   z_i = g_i · (A1_i V_i − λ A2_i V_i),   g_i = (1 − λ_init) / sqrt(mean_c(O_i²) + eps)
 * with O_i = A1_i V_i − λ A2_i V_i (../shared/DESIGN.md section 1, steps 7-8); both paths share
 * the same divisor, so z_i splits exactly into g_i A1_i V_i (the softmax1 path, PATH1) and
 * −g_i λ A2_i V_i (the λ·softmax2 path, PATH2), and PATH1 + PATH2 = HEAD. A head whose output a
 * writing probe zeroed (ablation) has both paths 0. */
#ifndef DIFFSCOPE_LENS_H
#define DIFFSCOPE_LENS_H
#include "diffscope/model.h"

typedef struct ds_lens ds_lens;

/* Registers on P the readers of position POS (a row of the next forward call, which must start
 * a fresh session). NULL with a message on failure. */
ds_lens *ds_lens_begin(ds_probes *p, const ds_model *m, int pos);
/* After the forward pass: fails when it never reached POS, or gave no logits for it. */
int ds_lens_finish(ds_lens *x);
void ds_lens_free(ds_lens *x);

/* [L+1, V] lens logits (float64), rows as above. */
const double *ds_lens_logits(const ds_lens *x);
/* [V] the model's logits at POS, as the forward pass computed them (float32). */
const float *ds_lens_model_logits(const ds_lens *x);

typedef struct {
    int L, heads;      /* heads: differential heads for DiffLlama (map_heads) */
    int differential;
    double scale;      /* s: 1/RMS of the final residual, frozen */
    double logit;      /* the model's logit of the target (minus that of VS) */
    double embed;      /* the embedding's contribution */
    double *head;      /* [L, heads] each head through its slice of o_proj */
    double *path1;     /* [L, heads] softmax1 path (differential only, else NULL) */
    double *path2;     /* [L, heads] λ·softmax2 path, its sign included */
    double *attn_bias; /* [L] o_proj's bias (0 without one) */
    double *mlp;       /* [L] the MLP's output, its biases included */
    double total;      /* embed + heads + attn_bias + mlp */
    double remainder;  /* logit − total: the forward pass's rounding */
} ds_dla;

/* DLA to the logit of TARGET, or to logit(TARGET) − logit(VS) when VS >= 0. OUT is freed with
 * ds_dla_free. */
int ds_lens_dla(const ds_lens *x, int target, int vs, ds_dla *out);
void ds_dla_free(ds_dla *d);

/* ds_lens_dla for language bindings, without the struct: OUT receives 5 + 3·L·heads + 2·L
 * float64, in this order: logit, scale, embed, total, remainder, head [L, heads], path1 and
 * path2 [L, heads] (zeros for a standard model), attn_bias [L], mlp [L]. */
int ds_lens_dla_flat(const ds_lens *x, int target, int vs, double *out);

#endif
