/* Shared model + prompt loading for the model-running commands. */
#include "cli/cli_input.h"
#include "cli/cli.h"
#include "diffscope/intervene.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_input_add_lambda(void *user, const char *arg) {
    cli_input *in = user;
    const char *eq = strchr(arg, '=');
    char layer[32];
    long l;
    double v;
    if (in->n_lambda == CLI_MAX_INTERVENTIONS) return ds_fail("more than %d", CLI_MAX_INTERVENTIONS);
    if (!eq || eq - arg >= (long)sizeof layer) return ds_fail("'%s' is not LAYER=VALUE", arg);
    snprintf(layer, sizeof layer, "%.*s", (int)(eq - arg), arg);
    if (cli_parse_int(layer, "the layer", 0, INT_MAX, &l) || cli_parse_double(eq + 1, "the value", -HUGE_VAL, HUGE_VAL, 0, &v))
        return ds_fail("'%s' is not LAYER=VALUE (an integer in 0..%d and a finite number)", arg, INT_MAX);
    in->lambda_layer[in->n_lambda] = (int)l;
    in->lambda_value[in->n_lambda++] = (float)v;
    return 0;
}

int cli_input_add_ablation(void *user, const char *arg) {
    cli_input *in = user;
    if (in->n_ablate == CLI_MAX_INTERVENTIONS) return ds_fail("more than %d", CLI_MAX_INTERVENTIONS);
    if (cli_parse_pair(arg, '.', "", 0, INT_MAX, &in->ablate_layer[in->n_ablate], &in->ablate_head[in->n_ablate]))
        return ds_fail("'%s' is not LAYER.HEAD (two integers in 0..%d)", arg, INT_MAX);
    in->n_ablate++;
    return 0;
}

int cli_add_interventions(const cli_input *in, const ds_model *m, ds_probes *p) {
    for (int i = 0; i < in->n_lambda; i++)
        if (ds_intervene_lambda(p, m, in->lambda_layer[i], in->lambda_value[i])) return -1;
    for (int i = 0; i < in->n_ablate; i++)
        if (ds_intervene_ablate(p, m, in->ablate_layer[i], in->ablate_head[i])) return -1;
    return 0;
}

static int layer_done(const ds_probe_event *ev, void *user) {
    cli_progress_step(user, ev->layer + 1);
    return 0;
}

int cli_add_layer_progress(ds_probes *p, cli_progress *pg) {
    return pg->active ? ds_probes_add(p, "blocks.*.hook_resid_post", layer_done, pg) : 0;
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
        *rc = cli_lib_error();
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
    if (labels && !*labels && cli_token_labels(model_dir, *ids, *n, labels)) goto fail_ids;
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
    *rc = cli_lib_error();
    ds_model_free(m);
    return NULL;
}
