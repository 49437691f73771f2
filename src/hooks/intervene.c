/* λ override and head ablation as writing probe hooks. */
#include "diffscope/intervene.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdlib.h>

typedef struct {
    float value;
    int head;
} intervention;

static intervention *new_intervention(float value, int head) {
    intervention *iv = malloc(sizeof *iv);
    if (iv) iv->value = value, iv->head = head;
    return iv;
}

static int set_lambda(const ds_probe_event *ev, void *user) {
    ev->data[3] = ((intervention *)user)->value;
    return 0;
}

static int zero_head(const ds_probe_event *ev, void *user) {
    int h = ((intervention *)user)->head;
    for (int64_t t = 0; t < ev->shape[0]; t++)
        for (int64_t j = 0; j < ev->shape[2]; j++) ev->data[t * ev->strides[0] + h * ev->strides[1] + j] = 0.0f;
    return 0;
}

int ds_intervene_lambda(ds_probes *p, const ds_model *m, int layer, float value) {
    const ds_config *c = ds_model_config(m);
    if (!c->desc->differential)
        return ds_fail("%s is a %s model, it has no lambda", ds_model_dir(m), c->desc->label);
    if (layer < 0 || layer >= c->num_layers)
        return ds_fail("layer %d out of range (0..%d)", layer, c->num_layers - 1);
    if (!isfinite(value)) return ds_fail("lambda %g for layer %d is not a finite number", value, layer);
    return ds_probes_add_point_owned(p, DS_HOOK_LAMBDA, layer, set_lambda, new_intervention(value, 0));
}

int ds_intervene_ablate(ds_probes *p, const ds_model *m, int layer, int head) {
    const ds_config *c = ds_model_config(m);
    int heads = c->map_heads;
    if (layer < 0 || layer >= c->num_layers)
        return ds_fail("layer %d out of range (0..%d)", layer, c->num_layers - 1);
    if (head < 0 || head >= heads)
        return ds_fail("head %d out of range (0..%d%s)", head, heads - 1,
                       c->desc->differential ? ", differential heads" : "");
    return ds_probes_add_point_owned(p, DS_HOOK_Z, layer, zero_head, new_intervention(0, head));
}
