/* One forward pass of a model with the attention statistics registered (see cli/compare.h). */
#include "cli/compare.h"
#include <stdlib.h>
#include "diffscope/error.h"

ds_attn_stats *cmp_run(const ds_model *m, ds_session *s, const cli_input *in, const int *ids, int T,
                       const ds_attn_stats_opts *o, int *top1) {
    const ds_config *c = ds_model_config(m);
    ds_probes *p = ds_probes_new();
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    ds_attn_stats *st = NULL;
    ds_session_reset(s);
    if (!p || !logits) ds_fail("out of memory");
    else if ((!in || !cli_add_interventions(in, m, p)) && (st = ds_attn_stats_begin(m, T, o, p))) {
        if (ds_forward(s, ids, T, logits, 1, p) || ds_attn_stats_finish(st)) {
            ds_attn_stats_free(st);
            st = NULL;
        } else if (top1) {
            int best = 0;
            for (int v = 1; v < c->vocab_size; v++)
                if (logits[v] > logits[best]) best = v;
            *top1 = best;
        }
    }
    ds_probes_free(p); /* before anyone frees ST: the probes point at it */
    free(logits);
    return st;
}

int cmp_maps(const ds_attn_stats *st, int maps[DS_ATTN_NMAPS]) {
    int n = 0;
    for (int k = 0; k < DS_ATTN_NMAPS; k++)
        if (st->has_map[k]) maps[n++] = k;
    return n;
}
