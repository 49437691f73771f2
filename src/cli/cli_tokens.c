/* Prompt text -> ids for the model-running commands. */
#include "cli/cli.h"

int cli_tokenize_prompt(const char *model_dir, const char *text, int add_special, int **ids, int *n,
                        char ***labels) {
    return ds_fail("%s: --prompt needs the tokenizer, which this build does not have yet; use --ids", model_dir);
}
