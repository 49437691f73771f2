/* Options every model-running command shares: the model folder, the prompt (--prompt TEXT
 * or --ids 1,2,3), --threads, --allow-long, --no-special. */
#ifndef DIFFSCOPE_CLI_INPUT_H
#define DIFFSCOPE_CLI_INPUT_H
#include "diffscope/model.h"
#include "diffscope/provenance.h"
#include "cli/cli.h"
#include "cli/cli_opt.h"

/* The rows of the shared options in a command's option table (cli/cli_opt.h), for a cli_input
 * IN: the prompt, and how the model runs. */
#define CLI_PROMPT_OPTS(in)                                                                           \
    {"prompt", 0, CLI_STRING, &(in)->prompt, 0, 0, "TEXT", "the prompt, tokenized with the model's tokenizer.json"}, \
    {"ids", 0, CLI_STRING, &(in)->ids, 0, 0, "1,2,3", "the prompt as token ids (no tokenizer needed)"},            \
    {"no-special", 0, CLI_FLAG, &(in)->no_special, 0, 0, NULL,                                      \
     "do not add the tokenizer's special tokens (BOS) to --prompt"}
#define CLI_RUN_OPTS(in)                                                                              \
    {"threads", 0, CLI_INT, &(in)->threads, 1, 1024, "N", "threads for OpenBLAS and our loops (default: all cores)"}, \
    {"allow-long", 0, CLI_FLAG, &(in)->allow_long, 0, 0, NULL,                                      \
     "run prompts longer than max_position_embeddings (warns)"},                                    \
    {"allow-nonfinite", 0, CLI_FLAG, &(in)->allow_nonfinite, 0, 0, NULL,                            \
     "load NaN/inf weights and keep NaN/inf results instead of failing"},                           \
    {"compute", 0, CLI_CHOICE, &(in)->compute, 0, 0, "f32|bf16",                                    \
     "matrix products in f32 (default, exact) or bf16 operands with f32 sums (docs/numerics.md)"},  \
    {"lambda-override", 0, CLI_CALL, (in), 0, 0, "L=V", "use lambda V in layer L (DiffLlama; repeatable)", \
     cli_input_add_lambda},                                                                         \
    {"ablate-head", 0, CLI_CALL, (in), 0, 0, "L.H", "zero head H of layer L before o_proj (repeatable)",     \
     cli_input_add_ablation}
#define CLI_INPUT_OPTS(in) CLI_PROMPT_OPTS(in), CLI_RUN_OPTS(in)

#define CLI_MAX_INTERVENTIONS 64

typedef struct {
    const char *prompt;
    const char *ids;
    int threads;
    int allow_long;
    int allow_nonfinite;
    const char *compute; /* "f32", "bf16" or NULL (f32) */
    int no_special;
    int n_lambda, lambda_layer[CLI_MAX_INTERVENTIONS];
    float lambda_value[CLI_MAX_INTERVENTIONS];
    int n_ablate, ablate_layer[CLI_MAX_INTERVENTIONS], ablate_head[CLI_MAX_INTERVENTIONS];
} cli_input;

/* --lambda-override L=V and --ablate-head L.H (IN is a cli_input). */
int cli_input_add_lambda(void *in, const char *arg);
int cli_input_add_ablation(void *in, const char *arg);

/* Applies IN's process-wide settings (threads, non-finite values, compute mode): before loading. */
void cli_input_apply(const cli_input *in);

/* One model run: the prompt's tokens, the model, a session and probes. The commands that run a
 * model go parse -> cli_run_open -> attach their probes to P -> ds_forward -> report ->
 * cli_run_close. */
typedef struct {
    const char *dir;
    int want_labels; /* set before cli_run_open: fill LABELS */
    int *ids, n;
    char **labels;   /* [n] printable pieces (NULL entries without a tokenizer), or NULL */
    ds_model *m;
    ds_session *s;   /* for n + extra_tokens positions */
    ds_probes *p;    /* holding the --lambda-override and --ablate-head interventions */
} cli_run;

/* Turns IN's prompt into ids and checks them against MODEL_DIR's config.json (vocabulary,
 * length) before the weights are read, then loads the weights and makes the session and the
 * probes. Returns DS_EXIT_OK, or the exit status after printing the message (R is then
 * closed). */
int cli_run_open(cli_run *r, const char *model_dir, const cli_input *in, int extra_tokens);
/* MODEL_DIR's config.json (-1 with a message). */
int cli_load_config(const char *model_dir, ds_config *c);
/* TOKENS positions against C's max_position_embeddings: DS_EXIT_OK (with a warning past it when
 * ALLOW_LONG), or DS_EXIT_INPUT after the message. */
int cli_check_length(const char *model_dir, const ds_config *c, int tokens, int allow_long);

/* Frees what cli_run_open made; R may be closed already. */
void cli_run_close(cli_run *r);
void cli_free_labels(char **labels, int n);

/* Registers the --lambda-override and --ablate-head interventions on P (before any reader). */
int cli_add_interventions(const cli_input *in, const ds_model *m, ds_probes *p);

/* Provenance records (diffscope/provenance.h, src/cli/cli_provenance.c). main() saves the
 * command line; cli_provenance makes a record of this process with it, the model folders
 * MODELS[0..NMODELS) in the output's order, and IN's interventions (IN may be NULL). Make it
 * after the thread count is set (cli_run_open sets it). NULL with a message on failure. */
void cli_set_command_line(int argc, char **argv);
ds_provenance *cli_provenance(const char *const *models, int nmodels, const cli_input *in);

/* Draws PG (started with the layer count as total) as each layer finishes; it is drawn only
 * when stderr is a terminal. Register it after the probes whose work it should count. */
int cli_add_layer_progress(ds_probes *p, cli_progress *pg);

#endif
