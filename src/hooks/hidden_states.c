/* Hidden-state collection (see include/diffscope/hidden_states.h). */
#include "diffscope/hidden_states.h"
#include <string.h>

static int copy_slot(const ds_probe_event *ev, void *user) {
    ds_hidden_states *h = user;
    int slot;
    if (ev->point == DS_HOOK_EMBED) slot = 0;
    else if (ev->point == DS_HOOK_FINAL_NORM) slot = h->L;
    else if (ev->layer < h->L - 1) slot = ev->layer + 1;
    else return 0; /* the last layer's raw output: transformers stores norm(x) there */
    size_t per = (size_t)h->T * h->D;
    memcpy(h->out + (size_t)slot * per, ev->data, per * sizeof(float));
    return 0;
}

int ds_hidden_states_attach(ds_probes *p, ds_hidden_states *h) {
    return ds_probes_add_point(p, DS_HOOK_EMBED, -1, copy_slot, h) ||
                   ds_probes_add_point(p, DS_HOOK_RESID_POST, -1, copy_slot, h) ||
                   ds_probes_add_point(p, DS_HOOK_FINAL_NORM, -1, copy_slot, h)
               ? -1
               : 0;
}
