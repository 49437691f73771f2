/* `diffscope patch`: activation patching (docs/patch.md). A clean and a corrupted prompt of the
 * same length run through one model; each patched run is the corrupted run with one activation
 * replaced by the clean run's, and reports a metric of the last position's logits.
 *
 *   patch_run.c     the clean capture and the patched runs (probe hooks that read and write)
 *   patch_report.c  the tables on stdout, --json and the HDF5 file
 *   cmd_patch.c     options, prompts, answer tokens */
#ifndef DIFFSCOPE_CLI_PATCH_H
#define DIFFSCOPE_CLI_PATCH_H
#include "cli/cli_input.h"

/* The format of `diffscope patch -o` files (docs/patch.md). */
#define PATCH_FORMAT "diffscope-patch"
#define PATCH_FORMAT_VERSION 1

/* What a table patches, in report order. */
typedef enum {
    PATCH_RESID_PRE,     /* blocks.{l}.hook_resid_pre at one position: [layer, position] */
    PATCH_RESID_PRE_ALL, /* the same at every position at once: [layer] */
    PATCH_HEAD_OUT,      /* one head of hook_z (after GroupNorm for DiffLlama), every position */
    PATCH_SOFTMAX1,      /* DiffLlama: the first softmax map of one differential head */
    PATCH_SOFTMAX2,      /* DiffLlama: the second one */
    PATCH_LAMBDA,        /* DiffLlama: lambda_full of one layer */
    PATCH_KINDS
} patch_kind;

/* One row per kind (patch_run.c): the name (--patch, HDF5 group, JSON key), the column axis
 * (NULL: one value per layer), and a line for the report. */
typedef struct {
    const char *name;
    const char *column; /* "position", "head" or NULL */
    int differential_only;
    const char *what;
} patch_kind_desc;
extern const patch_kind_desc patch_kinds[PATCH_KINDS];

typedef struct {
    int on;
    int rows, cols;  /* layers × (positions, heads, or 1) */
    double *raw;     /* [rows, cols] the metric of each patched run */
} patch_table;

typedef enum { PATCH_METRIC_LOGIT_DIFF, PATCH_METRIC_LOGPROB } patch_metric;

/* --corrupt-lambda L=V: interventions of the corrupted run only. */
typedef struct {
    int n, layer[CLI_MAX_INTERVENTIONS];
    float value[CLI_MAX_INTERVENTIONS];
} patch_corruption;

typedef struct {
    /* inputs */
    cli_run *run;                /* the model, its session, the clean prompt (run->ids) */
    const cli_input *in;         /* --lambda-override / --ablate-head: every run */
    const patch_corruption *corrupt;
    int *corrupted_ids;          /* [run->n] */
    char **corrupted_labels;     /* [run->n] or NULL */
    patch_metric metric;
    int answer, wrong;           /* token ids; wrong is -1 for the log-prob metric */
    char *answer_text, *wrong_text; /* printable pieces, or NULL */
    const char *clean_prompt, *corrupted_prompt; /* NULL with --*-ids */
    const ds_provenance *provenance; /* how the outputs were made */
    /* results */
    double clean, corrupted;     /* the metric of the unpatched runs */
    patch_table tables[PATCH_KINDS];
} patch_job;

/* 0 when the interventions of J fit the model (layers, lambda only for DiffLlama), before any
 * run; else -1 with a message. */
int patch_check_interventions(const patch_job *j);
/* The number of forward passes the tables of J need (2 for the unpatched runs included). */
long patch_count_runs(const patch_job *j);
/* Runs everything: the clean capture, the corrupted run, every table that is on. 0, or -1 with
 * a message. */
int patch_execute(patch_job *j);
void patch_job_free(patch_job *j);

/* (raw - corrupted) / (clean - corrupted): NaN when clean == corrupted. */
double patch_normalized(const patch_job *j, double raw);

void patch_print_tables(const patch_job *j);
int patch_print_json(const patch_job *j);
int patch_write_h5(const char *path, int force, const patch_job *j);

#endif
