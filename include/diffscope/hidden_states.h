/* Hidden states in transformers' output_hidden_states layout, collected through probes:
 * entry 0 = the embeddings, entry i = the residual stream after layer i-1, and the last entry
 * (i = L) the final RMSNorm's output instead of the raw output of the last layer. */
#ifndef DIFFSCOPE_HIDDEN_STATES_H
#define DIFFSCOPE_HIDDEN_STATES_H
#include "diffscope/probe.h"

typedef struct {
    float *out; /* [L+1, T, D], owned by the caller */
    int T, D, L;
} ds_hidden_states;

/* Registers on P the probes that fill H->out. The forward call must ask for every row's
 * logits (last_only = 0), so that the final norm covers every token. */
int ds_hidden_states_attach(ds_probes *p, ds_hidden_states *h);

#endif
