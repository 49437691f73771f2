/* Shared model + prompt loading for the model-running commands. */
#include "cli/cli_input.h"
#include "cli/cli.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_input_option(cli_input *in, int opt, const char *arg) {
    long v;
    switch (opt) {
    case OPT_PROMPT: in->prompt = arg; return 1;
    case OPT_IDS: in->ids = arg; return 1;
    case OPT_ALLOW_LONG: in->allow_long = 1; return 1;
    case OPT_NO_SPECIAL: in->no_special = 1; return 1;
    case OPT_THREADS:
        if (cli_parse_int(arg, "--threads", 1, 1024, &v)) return -1;
        in->threads = (int)v;
        return 1;
    default: return 0;
    }
}

void cli_free_labels(char **labels, int n) {
    if (!labels) return;
    for (int i = 0; i < n; i++) free(labels[i]);
    free(labels);
}

ds_model *cli_load(const char *model_dir, const cli_input *in, int **ids, int *n, int extra_tokens,
                   char ***labels, int *rc) {
    *rc = DS_EXIT_INPUT;
    if (labels) *labels = NULL;
    if (!in->prompt == !in->ids) {
        cli_error("give the prompt as --prompt TEXT or as --ids 1,2,3 (exactly one of them)");
        return NULL;
    }
    if (in->threads) ds_set_threads(in->threads);
    struct stat st;
    if (stat(model_dir, &st) || !S_ISDIR(st.st_mode)) {
        cli_error("%s: model folder not found", model_dir);
        return NULL;
    }
    ds_model *m = ds_model_load(model_dir);
    if (!m) {
        cli_lib_error();
        return NULL;
    }
    if (in->ids) {
        if (cli_parse_ids(in->ids, ids, n)) goto fail;
    } else if (cli_tokenize_prompt(model_dir, in->prompt, !in->no_special, ids, n, labels)) {
        goto fail;
    }
    const ds_config *c = ds_model_config(m);
    for (int i = 0; i < *n; i++)
        if ((*ids)[i] >= c->vocab_size) {
            ds_fail("token id %d (position %d) is outside the vocabulary of %s (size %d)", (*ids)[i], i, model_dir,
                    c->vocab_size);
            goto fail_ids;
        }
    if (*n + extra_tokens > c->max_position_embeddings) {
        if (!in->allow_long) {
            ds_fail("%s: %d tokens exceed max_position_embeddings (%d); --allow-long runs them anyway", model_dir,
                    *n + extra_tokens, c->max_position_embeddings);
            goto fail_ids;
        }
        cli_warn("%d tokens exceed max_position_embeddings (%d) of %s: beyond the trained length", *n + extra_tokens,
                 c->max_position_embeddings, model_dir);
    }
    if (labels && !*labels) {
        *labels = calloc((size_t)*n, sizeof **labels);
    }
    *rc = DS_EXIT_OK;
    return m;
fail_ids:
    free(*ids);
    *ids = NULL;
    if (labels) {
        cli_free_labels(*labels, *n);
        *labels = NULL;
    }
fail:
    cli_lib_error();
    ds_model_free(m);
    return NULL;
}
