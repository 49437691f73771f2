/* `diffscope lens`: the logit lens and direct logit attribution of one position
 * (diffscope/lens.h), summarised for the reports (src/cli/lens_report.c, docs/lens.md). */
#ifndef DIFFSCOPE_CLI_LENS_H
#define DIFFSCOPE_CLI_LENS_H
#include "diffscope/lens.h"
#include "diffscope/provenance.h"

/* The root attributes `format` and `format_version` of lens's HDF5 file (docs/lens.md). */
#define LENS_FORMAT "diffscope-lens"
#define LENS_FORMAT_VERSION 1

typedef struct {
    const char *model_dir, *arch, *config_json;
    const char *prompt;    /* NULL with --ids */
    const ds_provenance *provenance;
    const int *ids;        /* [T] the prompt */
    char **labels;         /* [T] printable pieces (entries NULL without a tokenizer) */
    int T, pos;
    int target, vs;        /* vs: -1 without --vs-token */
    char *target_text, *vs_text; /* printable pieces, or NULL */
    int L, V, k;
    /* lens rows r = 0 (embeddings) .. L (after the last layer) */
    int *top_ids;          /* [L+1, k] */
    char **top_text;       /* [L+1, k] printable pieces, entries NULL without a tokenizer */
    double *top_logit, *top_prob;   /* [L+1, k] */
    int *target_rank;      /* [L+1] 1 = the top token */
    double *target_logit, *target_prob, *vs_logit; /* [L+1]; vs_logit NULL without --vs-token */
    ds_dla dla;
} lens_result;

void lens_print_table(FILE *f, const lens_result *r);
/* Returns 0, or -1 (out of memory) with a message. */
int lens_print_json(const lens_result *r);
int lens_write_h5(const char *path, int force, const lens_result *r);

#endif
