/* diffscope patch MODEL (--clean TEXT | --clean-ids ...) (--corrupted TEXT | --corrupted-ids ...)
 * (--answer A | --answer-id N) [--wrong B | --wrong-id N]: activation patching, TransformerLens
 * style (docs/patch.md). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/patch.h"
#include "io/outfile.h"

static const char *usage =
    "usage: diffscope patch MODEL (--clean TEXT | --clean-ids 1,2,3) (--corrupted TEXT | --corrupted-ids ...)\n"
    "                       (--answer TOKEN | --answer-id N) [--wrong TOKEN | --wrong-id N] [options]\n\n"
    "Activation patching: runs a clean and a corrupted prompt of the same length, then the corrupted\n"
    "prompt again once per table cell with one activation taken from the clean run, and reports the\n"
    "metric at the last position: logit(answer) - logit(wrong), or without --wrong the log-probability\n"
    "of the answer. Normalized: (patched - corrupted) / (clean - corrupted), 1 = the clean run's metric.\n"
    "Tables (--patch): resid_pre [layer, position], resid_pre_all [layer] (every position at once),\n"
    "head_out [layer, head] (the input of o_proj; DiffLlama: each differential head after GroupNorm),\n"
    "and for DiffLlama softmax1 and softmax2 [layer, head] (one softmax map of a differential head)\n"
    "and lambda [layer]. Definitions: docs/patch.md.\n\n";

static const char *epilog =
    "--lambda-override and --ablate-head act on every run (clean, corrupted, patched);\n"
    "--corrupt-lambda on the corrupted and patched runs only.\n"
    "exit status: 0 ok, 2 bad input (prompts of different lengths, an unknown token, ...), 3 internal\n";

typedef struct {
    const char *corrupted, *corrupted_ids;
    const char *answer, *wrong;
    int answer_id, wrong_id; /* -1: not given */
    int json, force;
    const char *out_path;
    int want[PATCH_KINDS], chose; /* --patch */
} patch_opts;

/* --patch resid_pre,head_out,...: the tables to compute. */
static int parse_tables(void *user, const char *arg) {
    patch_opts *po = user;
    memset(po->want, 0, sizeof po->want);
    po->chose = 1;
    for (const char *p = arg; *p;) {
        size_t len = strcspn(p, ",");
        int found = 0;
        for (int k = 0; k < PATCH_KINDS; k++)
            if (strlen(patch_kinds[k].name) == len && !strncmp(p, patch_kinds[k].name, len)) po->want[k] = found = 1;
        if (!found)
            return ds_fail("'%.*s' is not a table (resid_pre, resid_pre_all, head_out, softmax1, softmax2, lambda)",
                           (int)len, p);
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

static int parse_corruption(void *user, const char *arg) {
    patch_corruption *pc = user;
    cli_input scratch = {0};
    if (pc->n == CLI_MAX_INTERVENTIONS) return ds_fail("more than %d", CLI_MAX_INTERVENTIONS);
    if (cli_input_add_lambda(&scratch, arg)) return -1;
    pc->layer[pc->n] = scratch.lambda_layer[0];
    pc->value[pc->n++] = scratch.lambda_value[0];
    return 0;
}

/* The token of --OPT TEXT (exactly one token without special tokens) or --OPT-id ID, checked
 * against the vocabulary; *PIECE gets its printable text. */
static int resolve_token(const cli_run *r, const char *opt, const char *text, int id, int *out, char **piece) {
    const int V = ds_model_config(r->m)->vocab_size;
    if (text) {
        const ds_tokenizer *t = cli_tokenizer(r->dir);
        int *ids = NULL, n = 0;
        if (!t || ds_tokenizer_encode(t, text, strlen(text), 0, &ids, &n)) {
            ds_err_prefix(opt);
            return cli_lib_error();
        }
        id = n == 1 ? ids[0] : -1;
        free(ids);
        if (n != 1)
            return cli_error("%s: '%s' is %d tokens, not one (give a single token, or its id with %s-id)", opt, text, n,
                             opt);
    } else if (id >= V) {
        return cli_error("%s-id: %d is not in the vocabulary of %s (0..%d)", opt, id, r->dir, V - 1);
    }
    *out = id;
    const ds_tokenizer *t = cli_has_tokenizer(r->dir) ? cli_tokenizer(r->dir) : NULL;
    *piece = t ? ds_tokenizer_piece(t, id) : NULL;
    return DS_EXIT_OK;
}

/* The corrupted prompt's ids, of the clean prompt's length. */
static int corrupted_prompt(patch_job *j, const patch_opts *po, const cli_input *in) {
    const cli_run *r = j->run;
    int n = 0, rc;
    if (po->corrupted_ids) rc = cli_parse_ids(po->corrupted_ids, &j->corrupted_ids, &n);
    else rc = cli_tokenize_prompt(r->dir, po->corrupted, !in->no_special, &j->corrupted_ids, &n, &j->corrupted_labels);
    if (rc) {
        ds_err_prefix(po->corrupted_ids ? "--corrupted-ids" : "--corrupted");
        return cli_lib_error();
    }
    if (n != r->n) {
        cli_free_labels(j->corrupted_labels, n);
        j->corrupted_labels = NULL;
        return cli_error("the clean prompt has %d tokens and the corrupted one %d: patching needs prompts of the same "
                         "length",
                         r->n, n);
    }
    if (ds_config_check_ids(ds_model_config(r->m), j->corrupted_ids, n, 0)) {
        ds_err_prefix("--corrupted");
        return cli_lib_error();
    }
    return DS_EXIT_OK;
}

/* Which tables run, and their shapes. */
static int choose_tables(patch_job *j, const patch_opts *po) {
    const ds_config *c = ds_model_config(j->run->m);
    const int diff = c->desc->differential;
    for (int k = 0; k < PATCH_KINDS; k++) {
        int on = po->chose ? po->want[k] : !patch_kinds[k].differential_only || diff;
        if (on && patch_kinds[k].differential_only && !diff)
            return cli_error("--patch %s: %s is a %s model; %s is DiffLlama's only", patch_kinds[k].name, j->run->dir,
                             ds_arch_name(c->arch), patch_kinds[k].name);
        patch_table *t = &j->tables[k];
        t->on = on;
        t->rows = c->num_layers;
        const char *col = patch_kinds[k].column;
        t->cols = !col ? 1 : !strcmp(col, "position") ? j->run->n : c->map_heads;
    }
    return DS_EXIT_OK;
}

static int report(patch_job *j, const patch_opts *po) {
    if (isnan(patch_normalized(j, j->clean)))
        cli_warn("the clean and corrupted runs give the same metric (%g): the normalized values are undefined", j->clean);
    if (po->out_path && patch_write_h5(po->out_path, po->force, j)) return cli_lib_error();
    if (po->json) return patch_print_json(j) ? cli_lib_error() : DS_EXIT_OK;
    patch_print_tables(j);
    return DS_EXIT_OK;
}

/* The record of the outputs: the interventions of every run, then the corrupted run's. */
static ds_provenance *provenance(const cli_run *run, const cli_input *in, const patch_corruption *corrupt) {
    ds_provenance *pv = cli_provenance(&run->dir, 1, in);
    char text[64];
    for (int i = 0; pv && i < corrupt->n; i++) {
        snprintf(text, sizeof text, "corrupt-lambda %d=%.9g", corrupt->layer[i], corrupt->value[i]);
        if (ds_provenance_add_intervention(pv, text)) {
            ds_provenance_free(pv);
            return NULL;
        }
    }
    return pv;
}

/* Everything after the option parser: checks, the runs, the report. */
static int run_patch(const cli_cmd *cmd, cli_input *in, const patch_opts *po, const patch_corruption *corrupt,
                     int argc, char **argv) {
    int rc;
    if (cli_parse(cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 1) return cli_error("patch needs one MODEL folder (see diffscope patch --help)");
    if (!po->corrupted == !po->corrupted_ids)
        return cli_error("give the corrupted prompt as --corrupted TEXT or --corrupted-ids 1,2,3 (exactly one of them)");
    if (!in->prompt == !in->ids)
        return cli_error("give the clean prompt as --clean TEXT or --clean-ids 1,2,3 (exactly one of them)");
    if (!po->answer == (po->answer_id < 0))
        return cli_error("give the answer as --answer TOKEN or --answer-id N (exactly one of them)");
    if (po->wrong && po->wrong_id >= 0) return cli_error("give --wrong or --wrong-id, not both");
    if (po->out_path && ds_outfile_check_target(po->out_path, po->force)) return cli_lib_error();

    cli_run run = {.want_labels = 1};
    if ((rc = cli_run_open(&run, argv[optind], in, 0))) return rc;
    patch_job j = {.run = &run, .in = in, .corrupt = corrupt, .clean_prompt = in->prompt,
                   .corrupted_prompt = po->corrupted, .wrong = -1};
    j.metric = po->wrong || po->wrong_id >= 0 ? PATCH_METRIC_LOGIT_DIFF : PATCH_METRIC_LOGPROB;
    rc = corrupted_prompt(&j, po, in);
    if (!rc) rc = resolve_token(&run, "--answer", po->answer, po->answer_id, &j.answer, &j.answer_text);
    if (!rc && j.metric == PATCH_METRIC_LOGIT_DIFF)
        rc = resolve_token(&run, "--wrong", po->wrong, po->wrong_id, &j.wrong, &j.wrong_text);
    if (!rc) rc = choose_tables(&j, po);
    if (!rc && patch_check_interventions(&j)) rc = cli_lib_error();
    if (!rc && patch_execute(&j)) rc = cli_lib_error();
    ds_provenance *pv = rc ? NULL : provenance(&run, in, corrupt);
    if (!rc && !(j.provenance = pv)) rc = cli_lib_error();
    if (!rc) rc = report(&j, po);
    ds_provenance_free(pv);
    patch_job_free(&j);
    cli_run_close(&run);
    return rc;
}

int cmd_patch(int argc, char **argv) {
    cli_input in = {0};
    patch_opts po = {.answer_id = -1, .wrong_id = -1};
    patch_corruption corrupt = {0};
    const cli_opt opts[] = {
        {"clean", 0, CLI_STRING, &in.prompt, 0, 0, "TEXT", "the clean prompt, tokenized with the model's tokenizer.json"},
        {"clean-ids", 0, CLI_STRING, &in.ids, 0, 0, "1,2,3", "the clean prompt as token ids"},
        {"corrupted", 0, CLI_STRING, &po.corrupted, 0, 0, "TEXT", "the corrupted prompt (as many tokens as the clean one)"},
        {"corrupted-ids", 0, CLI_STRING, &po.corrupted_ids, 0, 0, "1,2,3", "the corrupted prompt as token ids"},
        {"no-special", 0, CLI_FLAG, &in.no_special, 0, 0, NULL, "do not add special tokens (BOS) to the prompts"},
        {"answer", 0, CLI_STRING, &po.answer, 0, 0, "TOKEN", "the answer token, as text (exactly one token)"},
        {"answer-id", 0, CLI_INT, &po.answer_id, 0, INT_MAX, "N", "the answer token's id"},
        {"wrong", 0, CLI_STRING, &po.wrong, 0, 0, "TOKEN",
         "the wrong answer: the metric becomes logit(answer) - logit(wrong)"},
        {"wrong-id", 0, CLI_INT, &po.wrong_id, 0, INT_MAX, "N", "the wrong answer's id"},
        {"patch", 0, CLI_CALL, &po, 0, 0, "LIST",
         "the tables: resid_pre,resid_pre_all,head_out,softmax1,softmax2,lambda\n(default: all the model has)",
         parse_tables},
        {"corrupt-lambda", 0, CLI_CALL, &corrupt, 0, 0, "L=V",
         "corrupted run only: lambda V in layer L (repeatable); the lambda\ntable then patches the clean lambda back",
         parse_corruption},
        CLI_RUN_OPTS(&in),
        {"json", 0, CLI_FLAG, &po.json, 0, 0, NULL, "JSON on stdout instead of the tables"},
        {"output", 'o', CLI_STRING, &po.out_path, 0, 0, "FILE.h5", "also write the tables to HDF5"},
        {"force", 0, CLI_FLAG, &po.force, 0, 0, NULL, "overwrite FILE.h5 if it exists"},
        {0}};
    const cli_cmd cmd = {"patch", usage, epilog, opts};
    return run_patch(&cmd, &in, &po, &corrupt, argc, argv);
}
