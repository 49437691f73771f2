/* Shared model + prompt loading for the model-running commands. */
#include "cli/cli_input.h"
#include "cli/cli.h"
#include "diffscope/intervene.h"
#include <stdio.h>
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
    case OPT_LAMBDA: {
        int l;
        float v;
        char extra;
        if (in->n_lambda == CLI_MAX_INTERVENTIONS) return ds_fail("--lambda-override: too many");
        if (sscanf(arg, "%d=%f%c", &l, &v, &extra) != 2)
            return ds_fail("--lambda-override: '%s' is not LAYER=VALUE", arg);
        in->lambda_layer[in->n_lambda] = l, in->lambda_value[in->n_lambda++] = v;
        return 1;
    }
    case OPT_ABLATE: {
        int l, h;
        char extra;
        if (in->n_ablate == CLI_MAX_INTERVENTIONS) return ds_fail("--ablate-head: too many");
        if (sscanf(arg, "%d.%d%c", &l, &h, &extra) != 2) return ds_fail("--ablate-head: '%s' is not LAYER.HEAD", arg);
        in->ablate_layer[in->n_ablate] = l, in->ablate_head[in->n_ablate++] = h;
        return 1;
    }
    case OPT_THREADS:
        if (cli_parse_int(arg, "--threads", 1, 1024, &v)) return -1;
        in->threads = (int)v;
        return 1;
    default: return 0;
    }
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

int cli_parse_list(const char *s, const char *opt, int **out, int *n) {
    int cap = 16, cnt = 0;
    int *v = malloc(cap * sizeof *v);
    const char *p = s;
    while (v && *p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0) break;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q || b < a || b - a > 1000000) break;
        }
        for (long x = a; x <= b; x++) {
            if (cnt == cap) {
                int *nv = realloc(v, (cap *= 2) * sizeof *v);
                if (!nv) { free(v); return ds_fail("out of memory"); }
                v = nv;
            }
            v[cnt++] = (int)x;
        }
        p = end;
        if (*p == ',') p++;
        else if (*p) break;
    }
    if (!v) return ds_fail("out of memory");
    if (*p || cnt == 0) {
        free(v);
        return ds_fail("%s: '%s' is not a list like 0,3-5", opt, s);
    }
    *out = v;
    *n = cnt;
    return 0;
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
