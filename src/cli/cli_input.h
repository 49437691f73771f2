/* Options every model-running command shares: the model folder, the prompt (--prompt TEXT
 * or --ids 1,2,3), --threads, --allow-long, --no-special. */
#ifndef DIFFSCOPE_CLI_INPUT_H
#define DIFFSCOPE_CLI_INPUT_H
#include <getopt.h>
#include "diffscope/model.h"
#include "cli/cli.h"

enum { OPT_PROMPT = 1000, OPT_IDS, OPT_THREADS, OPT_ALLOW_LONG, OPT_NO_SPECIAL, OPT_LAMBDA, OPT_ABLATE, OPT_INPUT_LAST };

#define CLI_INPUT_LONGOPTS                                         \
    {"prompt", required_argument, 0, OPT_PROMPT},                  \
    {"ids", required_argument, 0, OPT_IDS},                        \
    {"threads", required_argument, 0, OPT_THREADS},                \
    {"allow-long", no_argument, 0, OPT_ALLOW_LONG},                \
    {"no-special", no_argument, 0, OPT_NO_SPECIAL},                \
    {"lambda-override", required_argument, 0, OPT_LAMBDA},         \
    {"ablate-head", required_argument, 0, OPT_ABLATE}

#define CLI_INPUT_HELP                                                                     \
    "  --prompt TEXT      the prompt, tokenized with the model's tokenizer.json\n"         \
    "  --ids 1,2,3        the prompt as token ids (no tokenizer needed)\n"                 \
    "  --no-special       do not add the tokenizer's special tokens (BOS) to --prompt\n"   \
    "  --threads N        threads for OpenBLAS and our loops (default: all cores)\n"       \
    "  --allow-long       run prompts longer than max_position_embeddings (warns)\n"     \
    "  --lambda-override L=V  use lambda V in layer L (DiffLlama; repeatable)\n"          \
    "  --ablate-head L.H  zero head H of layer L before o_proj (repeatable)\n"

#define CLI_MAX_INTERVENTIONS 64

typedef struct {
    const char *prompt;
    const char *ids;
    int threads;
    int allow_long;
    int no_special;
    int n_lambda, lambda_layer[CLI_MAX_INTERVENTIONS];
    float lambda_value[CLI_MAX_INTERVENTIONS];
    int n_ablate, ablate_layer[CLI_MAX_INTERVENTIONS], ablate_head[CLI_MAX_INTERVENTIONS];
} cli_input;

/* Handles one of the shared options; returns 1 if OPT was one, 0 if not, -1 on a bad value. */
int cli_input_option(cli_input *in, int opt, const char *arg);

/* Loads MODEL_DIR and turns the prompt into ids. *IDS is malloc'd; *LABELS (optional, may be
 * NULL) receives a malloc'd array of printable token pieces (NULL entries without a
 * tokenizer). Returns NULL with the message printed and *rc set on failure. */
ds_model *cli_load(const char *model_dir, const cli_input *in, int **ids, int *n, int extra_tokens,
                   char ***labels, int *rc);
void cli_free_labels(char **labels, int n);

/* Registers the --lambda-override and --ablate-head interventions on P (before any reader). */
int cli_add_interventions(const cli_input *in, const ds_model *m, ds_probes *p);

/* Draws PG (started with the layer count as total) as each layer finishes; it is drawn only
 * when stderr is a terminal. Register it after the probes whose work it should count. */
int cli_add_layer_progress(ds_probes *p, cli_progress *pg);

/* Parses "0,3-5" into a malloc'd list of non-negative integers. */
int cli_parse_list(const char *s, const char *opt, int **out, int *n);

#endif
