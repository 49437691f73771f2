/* Attention-noise statistics at one query row, and the paper's Table-5 activation outliers,
 * computed from probe events during one forward pass (no dump file, no stored maps).
 *
 *   ds_attn_stats *s = ds_attn_stats_begin(model, T, &opts, probes);   registers its hooks
 *   ds_forward(session, ids, T, logits, 1, probes);                    one prefill, pos0 = 0
 *   ds_attn_stats_finish(s);   ... read s->layer / s->head / s->scores ...   ds_attn_stats_free(s)
 *
 * For query position q and span S = [span_begin, span_end) (0 < span_begin, span_end <= q + 1),
 * at row q of each map M and each head:
 *   answer_mass = sum_{k in S} M[q,k]          (NaN when there is no span)
 *   noise_mass  = sum_{k not in S, 0 < k <= q} M[q,k]
 *   sink_mass   = M[q,0]
 *   entropy     = -sum_{k <= q} M[q,k] ln M[q,k], in nats (softmax maps; NaN for diff)
 *   sparsity    = share of the q+1 causal entries k <= q with |M[q,k]| < 1e-3 max_k |M[q,k]|
 * Maps: DiffLlama "diff" (softmax1 - λ·softmax2) and "softmax1"; Llama "softmax".
 *
 * Cancelled share (DiffLlama): for each differential head, ds_cancelled_share of row q of its
 * softmax1 and softmax2 with the λ of the run (docs/compare.md; the dump's cancelled_share
 * datasets and the viewer's strip use the same function).
 *
 * GroupNorm (with opts.groupnorm, DiffLlama): for each head, the RMS of the head's 2·head_dim
 * GroupNorm input and the scale (1 - λ_init) / sqrt(ms + eps) it is multiplied by, at row q and
 * as the mean over all T tokens (the /layers/{l}/groupnorm datasets of a dump, summarised).
 *
 * Outliers (with opts.outliers): the k-th largest absolute value for k = 1, 2, 3, 10, 100 and
 * the median, of every causal pre-softmax score (all layers, all sub-heads) and of every
 * residual-stream value after every layer (all tokens, channels and layers).
 *
 * Memory: a few doubles per layer and head, plus two ds_table5_acc (diffscope/table5.h: 8 MB
 * each, exact top-k, median within 1.3e-4 relative), whatever the prompt length. */
#ifndef DIFFSCOPE_ATTN_STATS_H
#define DIFFSCOPE_ATTN_STATS_H
#include <stdint.h>
#include "diffscope/dump_format.h"
#include "diffscope/model.h"
#include "diffscope/table5.h"

/* The maps the statistics cover, in report order: DS_MAP_DIFF, DS_MAP_SOFTMAX1 (DiffLlama),
 * DS_MAP_SOFTMAX (Llama). The arrays below are indexed by ds_map. */
#define DS_ATTN_NMAPS 3
extern const ds_map ds_attn_maps[DS_ATTN_NMAPS];

typedef struct {
    double answer_mass, noise_mass, sink_mass, entropy, sparsity;
} ds_attn_row_stats;

typedef struct {
    int query;                  /* q, 0 <= q < T */
    int span_begin, span_end;   /* S = [span_begin, span_end); span_end == 0: no span */
    int outliers;               /* also collect the Table-5 statistics */
    int groupnorm;              /* also collect the GroupNorm summaries (DiffLlama) */
} ds_attn_stats_opts;

typedef struct {
    double rms_query, scale_query; /* at row q */
    double rms_mean, scale_mean;   /* means over the T tokens */
} ds_attn_gn_stats;

typedef struct {
    ds_attn_stats_opts o;
    int T, L;
    int heads;                               /* per map: H/2 (DiffLlama) or H (Llama) */
    int is_diff;
    double rms_norm_eps;
    int has_map[DS_MAP_COUNT];
    ds_attn_row_stats *head[DS_MAP_COUNT];  /* [L * heads], for maps the model has */
    ds_attn_row_stats *layer[DS_MAP_COUNT]; /* [L], means over heads (after finish) */
    double *lambda_full;                     /* [L], the λ the forward pass used; NaN for Llama */
    ds_attn_gn_stats *groupnorm;             /* [L * heads] with opts.groupnorm and DiffLlama, else NULL */
    double *cancelled_share;                 /* [L * heads] DiffLlama, else NULL */
    double *cancelled_share_layer;           /* [L], means over heads (after finish); DiffLlama */
    float *row1;                             /* [heads * (q+1)]: row q of softmax1 until softmax2's */
    ds_table5 scores, resid;                 /* after finish, with opts.outliers */
    ds_table5_acc *scores_acc, *resid_acc;   /* while running */
} ds_attn_stats;

/* The share of softmax1's mass in one row that λ·softmax2 cancels, over keys 0..N-1:
 *   max(0, Σ_k min(S1[k], λ·S2[k])) / Σ_k S1[k]     (0 when Σ_k S1[k] <= 0)
 * 0: nothing cancelled, 1: all of it. With λ <= 0 nothing is cancelled. Summed in double. */
double ds_cancelled_share(const float *s1, const float *s2, double lambda, int n);

/* 0 when OPTS's query and span fit a prompt of T tokens, else -1 with a message. */
int ds_attn_stats_check(const ds_attn_stats_opts *opts, int T);
/* Checks OPTS against T and registers the hooks on P. NULL with a message on failure. */
ds_attn_stats *ds_attn_stats_begin(const ds_model *m, int T, const ds_attn_stats_opts *opts, ds_probes *p);
/* Computes the means over heads and the outlier statistics; releases the accumulators. */
int ds_attn_stats_finish(ds_attn_stats *s);
void ds_attn_stats_free(ds_attn_stats *s);

/* The first layer of "the last half of the layers" (L/2 rounded down), used by needle. */
static inline int ds_attn_last_half_begin(int L) { return L / 2; }

#endif
