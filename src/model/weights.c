/* Read-only views of the weights (include/diffscope/weights.h). */
#include "diffscope/weights.h"
#include "model/internal.h"

const float *ds_model_unembed(const ds_model *m) { return m->lm_head; }

const float *ds_model_final_norm(const ds_model *m) { return m->final_norm; }

const float *ds_model_o_proj(const ds_model *m, int layer, const float **bias) {
    *bias = m->layers[layer].bo;
    return m->layers[layer].wo;
}
