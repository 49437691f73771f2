/* One forward pass of a model with the attention statistics registered (see cli/compare.h). */
#include "cli/compare.h"
#include <stdlib.h>
#include "diffscope/error.h"
#include "diffscope/generate.h"

ds_attn_stats *cmp_run(const ds_model *m, ds_session *s, ds_probes *p, const int *ids, int T,
                       const ds_attn_stats_opts *o, int *top1) {
    const ds_config *c = ds_model_config(m);
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    if (!logits) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    ds_session_reset(s);
    ds_attn_stats *st = ds_attn_stats_begin(m, T, o, p);
    if (st && (ds_forward(s, ids, T, logits, 1, p) || ds_attn_stats_finish(st))) {
        ds_attn_stats_free(st);
        st = NULL;
    }
    if (st && top1) *top1 = ds_argmax(logits, c->vocab_size);
    free(logits);
    return st;
}

int cmp_maps(const ds_attn_stats *st, int maps[DS_ATTN_NMAPS]) {
    int n = 0;
    for (int k = 0; k < DS_ATTN_NMAPS; k++)
        if (st->has_map[ds_attn_maps[k]]) maps[n++] = ds_attn_maps[k];
    return n;
}
