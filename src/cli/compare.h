/* Shared parts of `diffscope compare` and `diffscope needle`: running a model once with the
 * attention statistics (diffscope/attn_stats.h), and writing compare's results. */
#ifndef DIFFSCOPE_CLI_COMPARE_H
#define DIFFSCOPE_CLI_COMPARE_H
#include <stdio.h>
#include "cli/cli_input.h"
#include "diffscope/attn_stats.h"

/* The root attributes `format` and `format_version` of compare's HDF5 file
 * (docs/compare.md). */
#define CMP_FORMAT "diffscope-compare"
#define CMP_FORMAT_VERSION 1

/* One model's results in a comparison. */
typedef struct {
    const char *name; /* "A" or "B" */
    const char *path;
    const char *arch; /* "diffllama" or "llama" */
    ds_attn_stats *st;
} cmp_model;

typedef struct {
    int T;
    int *ids;
    char **labels;         /* [T] printable pieces (entries may be NULL) */
    const char *prompt;    /* NULL with --ids */
    const char *span_text; /* NULL unless --span-text */
    int query, span_begin, span_end; /* span_end == 0: no span */
    int per_head;
    int nmodels;
    cmp_model models[2];
    const ds_provenance *provenance;
} cmp_result;

/* Runs IDS[0..T) through M in session S (reset first) with the statistics of O added to P
 * (which may hold interventions; it must not fire again once the statistics are freed). *TOP1
 * (may be NULL) gets the argmax of the last token's logits. NULL with a message on failure. */
ds_attn_stats *cmp_run(const ds_model *m, ds_session *s, ds_probes *p, const int *ids, int T,
                       const ds_attn_stats_opts *o, int *top1);

/* The maps a model has, in report order: DiffLlama diff, softmax1; Llama softmax. */
int cmp_maps(const ds_attn_stats *st, int maps[DS_ATTN_NMAPS]);

/* The five row statistics, in report order, and the Table-5 ranks (top1 .. top100, median). */
extern const char *const cmp_metric_names[5];
extern const char *const cmp_table5_names[DS_TABLE5_RANKS + 1];
double cmp_metric(const ds_attn_row_stats *s, int i);
double cmp_table5_value(const ds_table5 *t, int i);

void cmp_print_table(FILE *f, const cmp_result *r);
/* Returns 0, or -1 (out of memory) with a message. */
int cmp_print_json(FILE *f, const cmp_result *r);
int cmp_write_h5(const char *path, int force, const cmp_result *r);

#endif
