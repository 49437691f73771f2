/* Prompts of `diffscope needle`: the key-information retrieval probe of the Diff Transformer
 * paper (Table 3). A prompt is
 *     [special prefix (BOS)] haystack[0:c] NEEDLE haystack[c:N] QUESTION
 * with c = round(depth/100 · N), so depth 0 puts the needle first and 100 right before the
 * question. The query row is the last prompt token, whose next-token prediction should be the
 * answer; the span S is the needle's tokens. The kv task generates prompts in the format of
 * the demo models (tools/train_pair.py, docs/demo-models.md):
 *     <s> filler ... k_x v_y ... filler ? k_x      -> v_y
 * with P key-value pairs in N context tokens, the queried pair (S) at the depth. */
#ifndef DIFFSCOPE_CLI_NEEDLE_H
#define DIFFSCOPE_CLI_NEEDLE_H
#include <stdint.h>
#include "diffscope/attn_stats.h"
#include "diffscope/provenance.h"
#include "diffscope/tokenizer.h"

typedef struct {
    int *ids;
    int n;
    int span_begin, span_end; /* the needle's tokens */
    int answer_id;            /* kv task: the value token; text: -1 (checked by text) */
} needle_prompt;

/* The text probe's pieces, tokenized once. */
typedef struct {
    int *prefix, nprefix;     /* special tokens the tokenizer puts first (BOS), or none */
    int *hay, nhay;
    int *needle, nneedle;
    int *question, nquestion;
} needle_text;

/* Tokenizes the haystack file and the texts (the needle and question as continuations of
 * earlier text, see diffscope/span.h). */
int needle_text_load(needle_text *nt, const ds_tokenizer *t, const char *haystack_path, const char *needle,
                     const char *question, int add_special);
void needle_text_free(needle_text *nt);
/* The same pieces given as token ids, for models without a tokenizer.json: HAYSTACK_PATH
 * holds ids separated by commas or white space, NEEDLE_IDS and QUESTION_IDS are lists like
 * --ids; PREFIX_ID (the model's BOS) goes first unless it is negative. */
int needle_ids_load(needle_text *nt, const char *haystack_path, const char *needle_ids, const char *question_ids,
                    int prefix_id);
/* The prompt with N haystack tokens and the needle at DEPTH percent. */
int needle_text_prompt(const needle_text *nt, int N, int depth, needle_prompt *p);

/* The demo task's vocabulary, read from the tokenizer: "▁?", keys "▁k_*", values "▁v_*" and
 * filler words (the whole-word tokens that follow "▁?"). */
typedef struct {
    int *prefix, nprefix;
    int qmark;
    int *keys, nkeys, *values, nvalues, *fillers, nfillers;
} needle_kv;

int needle_kv_load(needle_kv *kv, const ds_tokenizer *t, const char *tokenizer_path, int add_special);
void needle_kv_free(needle_kv *kv);
/* A random prompt: N context tokens with PAIRS pairs, the queried one at DEPTH percent. */
int needle_kv_prompt(const needle_kv *kv, int N, int pairs, int depth, uint64_t *rng, needle_prompt *p);

/* 1 when token ID's text (leading spaces dropped) is a non-empty prefix of ANSWER (leading
 * spaces dropped): the top-1 token "starts the answer". */
int needle_starts_answer(const ds_tokenizer *t, int id, const char *answer);

/* ---- a needle run: options, prompts, per-model results, output (needle_report.c) ---- */

typedef struct {
    const char *model[2], *haystack, *needle, *question, *answer, *task;
    const char *haystack_ids, *needle_ids, *question_ids; /* the probe as token ids */
    int answer_id;                                        /* with the ids: the answer token, else -1 */
    const int *depths;
    int ndepths;
    int N;          /* context tokens (text: resolved by build_prompts when not given) */
    int pairs, trials, json;
    int seed;
    const ds_provenance *provenance;
    const char *output; /* -o: HDF5 file (needle_write_h5), or NULL */
    int force;
} needle_opts;

typedef struct {
    int nprompts;
    needle_prompt *prompts; /* [ndepths * trials], depth-major */
    int maxlen;
    int N;                  /* context tokens used */
    int nneedle, nquestion; /* text probe */
} needle_prompt_set;

/* Per prompt (depth d's trial k is prompt d * trials + k): everything else is derived. */
typedef struct {
    const char *name, *path, *arch;
    int L, nmaps, maps[DS_ATTN_NMAPS];
    int *top1;              /* [nprompts] */
    int *correct;           /* [nprompts]: 1 when the top-1 token is (starts) the answer */
    double *answer, *noise; /* [nmaps][nprompts][L]: means over heads */
} needle_model;

/* What is reported per depth, each over the depth's trials: whether the top-1 is right, and
 * the answer and noise mass of each map (means over heads and the last half of the layers). */
typedef enum { NEEDLE_CORRECT, NEEDLE_ANSWER_MASS, NEEDLE_NOISE_MASS } needle_quantity;

/* One quantity at one depth. */
typedef struct {
    double *trial;    /* [trials]: each prompt's value */
    double *layer;    /* [L]: mean over trials per layer (masses only) */
    double mean, std, ci95; /* over trials: std divides by n - 1, ci95 = 1.96 std / sqrt(n) */
    int count;        /* NEEDLE_CORRECT: how many prompts were right */
} needle_values;

/* The values of Q (map index J for the masses) of model M at depth D, in V (whose arrays hold
 * trials and m->L doubles). */
void needle_values_of(const needle_opts *no, const needle_model *m, needle_quantity q, int j, int d, needle_values *v);
/* The JSON and HDF5 name of quantity Q's mean: "accuracy", "answer_mass", "noise_mass" (its
 * spread and values add "_std", "_ci95", "_per_trial", "_per_layer"). */
const char *needle_quantity_name(needle_quantity q);

/* Mean of X[l] over the last half of the layers (l = L/2 .. L-1). */
double needle_last_half(const double *x, int L);
void needle_print_table(const needle_opts *no, const needle_prompt_set *ps, const needle_model *nm, int nmodels);
int needle_print_json(const needle_opts *no, const needle_prompt_set *ps, const ds_tokenizer *t,
                      const needle_model *nm, int nmodels);
/* -o: the same numbers and every prompt's values as HDF5 (docs/compare.md), through the
 * output contract (io/h5out.h). */
int needle_write_h5(const needle_opts *no, const needle_prompt_set *ps, const needle_model *nm, int nmodels);

#endif
