/* Read-only float32 views of a loaded model's weights, for analyses that project activations
 * through them (the logit lens, direct logit attribution). Row-major [out, in] as transformers
 * stores them; valid while the model is loaded. A model loaded in the bf16 compute mode
 * (ds_set_compute) holds these matrices as bf16 only: NULL then. */
#ifndef DIFFSCOPE_WEIGHTS_H
#define DIFFSCOPE_WEIGHTS_H
#include "diffscope/model.h"

/* lm_head [V, D] (the embedding matrix when the embeddings are tied). */
const float *ds_model_unembed(const ds_model *m);
/* The final RMSNorm's weight [D]. */
const float *ds_model_final_norm(const ds_model *m);
/* o_proj of LAYER: [D, H·hd]; *BIAS gets its bias [D], or NULL when the model has none. */
const float *ds_model_o_proj(const ds_model *m, int layer, const float **bias);

#endif
