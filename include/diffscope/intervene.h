/* Interventions: probe hooks that write. Register them on a ds_probes before any reader, so
 * readers (a dump) see the values the forward pass actually used. */
#ifndef DIFFSCOPE_INTERVENE_H
#define DIFFSCOPE_INTERVENE_H
#include "diffscope/model.h"

/* Replaces λ_full of DiffLlama layer LAYER by VALUE. */
int ds_intervene_lambda(ds_probes *p, const ds_model *m, int layer, float value);
/* Zeroes head HEAD of layer LAYER at the input of o_proj (a differential head for DiffLlama,
 * 0 <= HEAD < H/2; a head for Llama, 0 <= HEAD < H). */
int ds_intervene_ablate(ds_probes *p, const ds_model *m, int layer, int head);

#endif
