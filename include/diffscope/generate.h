/* Token generation on a session: greedy (temperature 0) or sampled (temperature, top-p). */
#ifndef DIFFSCOPE_GENERATE_H
#define DIFFSCOPE_GENERATE_H
#include <stdint.h>
#include "diffscope/model.h"

typedef struct {
    int max_new;        /* tokens to generate at most */
    float temperature;  /* 0: greedy argmax */
    float top_p;        /* nucleus mass in (0, 1]; 1 keeps every token */
    uint64_t seed;
    int ignore_eos;     /* 1: do not stop at the config's eos_token_id */
} ds_gen_opts;

/* Called with each new token; return non-zero to stop early. */
typedef int (*ds_token_fn)(int id, void *user);

/* Prefills PROMPT (N ids) then decodes one token at a time through the KV cache. OUT gets
 * the new ids (room for max_new), *N_OUT their count. The session must have room for
 * n + max_new positions. PROBES (may be NULL) apply to every forward call, so
 * interventions hold for the whole generation. */
int ds_generate(ds_session *s, const int *prompt, int n, const ds_gen_opts *o, int *out, int *n_out,
                ds_probes *probes, ds_token_fn fn, void *user);

/* Index of the largest logit (the first one on ties, like torch.argmax). */
int ds_argmax(const float *x, int n);
/* Samples from softmax(x / temperature) restricted to the top-p nucleus. */
int ds_sample(const float *x, int n, float temperature, float top_p, uint64_t *rng);

#endif
