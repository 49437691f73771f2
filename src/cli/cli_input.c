/* Shared model + prompt loading for the model-running commands. */
#include "cli/cli_input.h"
#include "cli/cli.h"
#include "diffscope/intervene.h"
#include "base/path.h"
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
        if (ds_intervene_lambda(p, m, in->lambda_layer[i], in->lambda_value[i])) {
            ds_err_prefix("--lambda-override");
            return -1;
        }
    for (int i = 0; i < in->n_ablate; i++)
        if (ds_intervene_ablate(p, m, in->ablate_layer[i], in->ablate_head[i])) {
            ds_err_prefix("--ablate-head");
            return -1;
        }
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

/* R->ids (and R->labels) from --prompt or --ids. */
static int read_prompt(cli_run *r, const cli_input *in) {
    if (in->ids) return cli_parse_ids(in->ids, &r->ids, &r->n);
    return cli_tokenize_prompt(r->dir, in->prompt, !in->no_special, &r->ids, &r->n, r->want_labels ? &r->labels : NULL);
}

int cli_load_config(const char *model_dir, ds_config *c) {
    char *path = ds_path_join(model_dir, "config.json");
    int rc = !path || ds_config_load(c, path) ? -1 : 0;
    free(path);
    return rc;
}

int cli_check_length(const char *model_dir, const ds_config *c, int tokens, int allow_long) {
    if (!ds_config_check_length(c, tokens)) return DS_EXIT_OK;
    if (!allow_long) return cli_error("%s: %s; --allow-long runs them anyway", model_dir, ds_errmsg());
    cli_warn("%d tokens exceed max_position_embeddings (%d) of %s: beyond the trained length", tokens,
             c->max_position_embeddings, model_dir);
    return DS_EXIT_OK;
}

/* The prompt against config.json, before the weights are read: the library's checks of the
 * vocabulary and of the length (which --allow-long turns into a warning). */
static int check_prompt(const cli_run *r, const cli_input *in, int extra_tokens) {
    ds_config c;
    if (cli_load_config(r->dir, &c)) return cli_lib_error();
    int rc;
    if (ds_config_check_ids(&c, r->ids, r->n, 0)) {
        ds_err_prefix(r->dir);
        rc = cli_lib_error();
    } else {
        rc = cli_check_length(r->dir, &c, r->n + extra_tokens, in->allow_long);
    }
    ds_config_free(&c);
    return rc;
}

/* The weights, a session for the prompt and EXTRA_TOKENS more, probes with the interventions. */
static int load(cli_run *r, const cli_input *in, int extra_tokens) {
    if (!(r->m = ds_model_load(r->dir))) return -1;
    if (!(r->s = ds_session_new(r->m, r->n + extra_tokens, in->allow_long))) return -1;
    if (!(r->p = ds_probes_new())) return ds_failc(DS_ERR_NOMEM, "out of memory");
    if (cli_add_interventions(in, r->m, r->p)) return -1;
    if (r->want_labels && !r->labels) return cli_token_labels(r->dir, r->ids, r->n, &r->labels);
    return 0;
}

void cli_input_apply(const cli_input *in) {
    ds_compute mode = DS_COMPUTE_F32;
    if (in->compute) ds_compute_parse(in->compute, &mode); /* a CLI_CHOICE: one of the names */
    if (in->threads) ds_set_threads(in->threads);
    ds_set_allow_nonfinite(in->allow_nonfinite);
    ds_set_compute(mode);
}

int cli_run_open(cli_run *r, const char *model_dir, const cli_input *in, int extra_tokens) {
    *r = (cli_run){.dir = model_dir, .want_labels = r->want_labels};
    if (!in->prompt == !in->ids)
        return cli_error("give the prompt as --prompt TEXT or as --ids 1,2,3 (exactly one of them)");
    cli_input_apply(in);
    struct stat st;
    if (stat(model_dir, &st) || !S_ISDIR(st.st_mode)) return cli_error("%s: model folder not found", model_dir);
    int rc = read_prompt(r, in) ? cli_lib_error() : check_prompt(r, in, extra_tokens);
    if (rc == DS_EXIT_OK && load(r, in, extra_tokens)) rc = cli_lib_error();
    if (rc != DS_EXIT_OK) cli_run_close(r);
    return rc;
}

void cli_run_close(cli_run *r) {
    ds_probes_free(r->p);
    ds_session_free(r->s);
    ds_model_free(r->m);
    cli_free_labels(r->labels, r->n);
    free(r->ids);
    *r = (cli_run){.dir = r->dir, .want_labels = r->want_labels};
}
