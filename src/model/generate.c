/* Greedy and nucleus-sampled generation through the KV cache. */
#include "diffscope/generate.h"
#include "diffscope/error.h"
#include <math.h>
#include <stdlib.h>

int ds_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* xorshift64*: small, fast, and the same sequence on every platform for a given seed. */
static double next_uniform(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

typedef struct { float p; int id; } cand;

static int by_prob_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->p < y->p ? 1 : x->p > y->p ? -1 : x->id - y->id;
}

int ds_sample(const float *x, int n, float temperature, float top_p, uint64_t *rng) {
    if (temperature <= 0) return ds_argmax(x, n);
    cand *c = malloc((size_t)n * sizeof *c);
    if (!c) return ds_argmax(x, n);
    float mx = x[ds_argmax(x, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        c[i].p = expf((x[i] - mx) / temperature);
        c[i].id = i;
        sum += c[i].p;
    }
    qsort(c, (size_t)n, sizeof *c, by_prob_desc);
    int keep = n;
    if (top_p > 0 && top_p < 1) {
        double acc = 0;
        for (int i = 0; i < n; i++) {
            acc += c[i].p / sum;
            if (acc >= top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += c[i].p;
    double r = next_uniform(rng) * kept, acc = 0;
    int id = c[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        acc += c[i].p;
        if (r < acc) {
            id = c[i].id;
            break;
        }
    }
    free(c);
    return id;
}

static int is_eos(const ds_config *c, int id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == id) return 1;
    return 0;
}

int ds_generate(ds_session *s, const int *prompt, int n, const ds_gen_opts *o, int *out, int *n_out,
                ds_probes *probes, ds_token_fn fn, void *user) {
    const ds_config *c = ds_model_config(ds_session_model(s));
    if (!(o->temperature >= 0 && isfinite(o->temperature)))
        return ds_fail("temperature %g is not a finite number >= 0", (double)o->temperature);
    if (!(o->top_p >= 0 && o->top_p <= 1)) return ds_fail("top_p %g is not a number in [0, 1]", (double)o->top_p);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    if (!logits) return ds_failc(DS_ERR_NOMEM, "out of memory");
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    *n_out = 0;
    int rc = ds_forward(s, prompt, n, logits, 1, probes);
    while (!rc && *n_out < o->max_new) {
        int id = ds_sample(logits, c->vocab_size, o->temperature, o->top_p, &rng);
        out[(*n_out)++] = id;
        if ((fn && fn(id, user)) || (!o->ignore_eos && is_eos(c, id)) || *n_out == o->max_new) break;
        rc = ds_forward(s, &id, 1, logits, 1, probes);
    }
    free(logits);
    return rc;
}
