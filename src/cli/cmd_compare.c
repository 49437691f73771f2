/* diffscope compare [--model] A [--vs B] (--prompt TEXT | --ids ...) [--span-text T | --span-tokens I:J]
 * [--query-pos Q]: attention mass on a span against noise, per layer, for DiffLlama's difference
 * map and first softmax map (and a second model's maps), plus Table-5 activation outliers.
 * Definitions: include/diffscope/attn_stats.h and docs/compare.md. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/compare.h"
#include "diffscope/provenance.h"
#include "diffscope/span.h"
#include "diffscope/tokenizer.h"
#include "base/path.h"

static const char *usage =
    "usage: diffscope compare [--model] A [--vs B] (--prompt TEXT | --ids 1,2,3) [options]\n\n"
    "Runs the prompt once through A (a DiffLlama) and, with --vs, through B (a Llama, Qwen2, Qwen3\n"
    "or another DiffLlama) on the same tokens, and reports for the query row q, per layer (mean\n"
    "over heads): answer_mass (on the span S), noise_mass (elsewhere, key 0 left out), sink_mass\n"
    "(key 0), entropy and sparsity, for DiffLlama's diff and softmax1 maps and the softmax map of\n"
    "standard attention, plus lambda_full and the Table-5 activation outliers (top-1/2/3/10/100\n"
    "and median of |scores| and |residual stream|). Without --vs the comparison is inside A:\n"
    "softmax1 against diff.\n"
    "Definitions: docs/compare.md.\n\n";

typedef struct {
    const char *model_a, *model_b, *span_text, *query, *out_path;
    int span[2], have_span; /* --span-tokens I:J */
    int json, force;
} compare_opts;

/* A's tokens become R's (taken from RUN), with the query row and the span. */
static int take_tokens(cmp_result *r, const compare_opts *co, cli_run *run) {
    int n = run->n;
    r->ids = run->ids;
    r->T = n;
    r->labels = run->labels;
    run->ids = NULL;
    run->labels = NULL;
    r->query = n - 1;
    if (co->query) {
        long q;
        if (cli_parse_int(co->query, "--query-pos", -n, n - 1, &q))
            return cli_error("--query-pos: '%s' is out of range (the prompt has %d tokens: 0..%d, or -1..-%d)", co->query,
                             n, n - 1, n);
        r->query = (int)(q < 0 ? q + n : q);
    }
    if (co->have_span) {
        r->span_begin = co->span[0];
        r->span_end = co->span[1];
    } else if (co->span_text) {
        const ds_tokenizer *t = cli_tokenizer(run->dir);
        if (!t || ds_span_find(t, r->ids, n, co->span_text, &r->span_begin, &r->span_end)) {
            ds_err_prefix("--span-text");
            return cli_lib_error();
        }
    }
    return DS_EXIT_OK;
}

/* Runs model IDX (0: A, 1: B) on the prompt; A sets R's tokens, span and query, and B must
 * see the same tokens. */
static int run_model(cmp_result *r, const compare_opts *co, const cli_input *in, int idx) {
    cli_input mine = *in;
    if (idx == 1) mine.n_lambda = mine.n_ablate = 0; /* interventions are A's */
    const char *dir = idx ? co->model_b : co->model_a;
    cli_run run = {.want_labels = idx == 0};
    int rc = cli_run_open(&run, dir, &mine, 0);
    if (rc) return rc;
    if (idx == 0)
        rc = take_tokens(r, co, &run);
    else if (in->prompt && (run.n != r->T || memcmp(run.ids, r->ids, (size_t)run.n * sizeof *run.ids)))
        rc = cli_error("%s and %s tokenize the prompt differently (different vocabularies): give both the same "
                       "tokens with --ids",
                       co->model_a, dir);
    cmp_model *cm = &r->models[idx];
    cm->name = idx ? "B" : "A";
    cm->path = dir;
    cm->arch = ds_arch_name(ds_model_config(run.m)->arch);
    ds_attn_stats_opts o = {.outliers = 1, .query = r->query, .span_begin = r->span_begin, .span_end = r->span_end};
    if (rc == DS_EXIT_OK && !(cm->st = cmp_run(run.m, run.s, run.p, r->ids, r->T, &o, NULL))) {
        ds_err_prefix(dir);
        rc = cli_lib_error();
    }
    if (rc == DS_EXIT_OK) r->nmodels = idx + 1;
    cli_run_close(&run);
    return rc;
}

/* With --prompt, B must have A's vocabulary (checked before any model runs). */
static int check_vocabularies(const compare_opts *co, const cli_input *in) {
    if (!co->model_b || !in->prompt) return 0;
    ds_config c[2];
    int loaded = 0, rc = 0;
    for (; loaded < 2 && !rc; loaded++) {
        char *path = ds_path_join(loaded ? co->model_b : co->model_a, "config.json");
        rc = !path || ds_config_load(&c[loaded], path) ? cli_lib_error() : 0;
        free(path);
        if (rc) break;
    }
    if (!rc && c[0].vocab_size != c[1].vocab_size)
        rc = cli_error("%s and %s have different vocabularies (%d and %d tokens): compare them on the same "
                       "tokens with --ids",
                       co->model_a, co->model_b, c[0].vocab_size, c[1].vocab_size);
    for (int i = 0; i < loaded; i++) ds_config_free(&c[i]);
    return rc;
}

static int parse_span(void *user, const char *arg) {
    compare_opts *co = user;
    if (cli_parse_pair(arg, ':', "", 0, INT_MAX, &co->span[0], &co->span[1]) || co->span[1] <= co->span[0])
        return ds_fail("'%s' is not I:J with I < J (integers in 0..%d)", arg, INT_MAX);
    co->have_span = 1;
    return 0;
}

int cmd_compare(int argc, char **argv) {
    cli_input in = {0};
    compare_opts co = {0};
    cmp_result r = {0};
    int rc;
    const cli_opt opts[] = {
        CLI_INPUT_OPTS(&in),
        {"model", 0, CLI_STRING, &co.model_a, 0, 0, "A", "the first model folder (or give it as the first argument)"},
        {"vs", 0, CLI_STRING, &co.model_b, 0, 0, "B", "a second model run on the same token ids"},
        {"span-text", 0, CLI_STRING, &co.span_text, 0, 0, "TEXT",
         "the span S: TEXT found among the prompt's tokens (exactly once)"},
        {"span-tokens", 0, CLI_CALL, &co, 0, 0, "I:J",
         "the span S as token positions I..J-1 (half-open; 0 is the first\ntoken, BOS included; I > 0 and J <= q+1)",
         parse_span},
        {"query-pos", 0, CLI_STRING, &co.query, 0, 0, "Q",
         "the query row q (default: the last token; negative: from the end)"},
        {"per-head", 0, CLI_FLAG, &r.per_head, 0, 0, NULL, "also report every head"},
        {"json", 0, CLI_FLAG, &co.json, 0, 0, NULL, "JSON on stdout instead of the table"},
        {"output", 'o', CLI_STRING, &co.out_path, 0, 0, "FILE.h5", "also write the numbers to HDF5 (--force overwrites)"},
        {"force", 0, CLI_FLAG, &co.force, 0, 0, NULL, "overwrite FILE.h5 if it exists"},
        {0}};
    const cli_cmd cmd = {"compare", usage, "--lambda-override and --ablate-head apply to A only.\n", opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (!co.model_a && optind < argc) co.model_a = argv[optind++];
    if (!co.model_a || optind != argc)
        return cli_error("compare needs one model A (--model A or the first argument; see diffscope compare --help)");
    if (co.span_text && co.have_span) return cli_error("give the span as --span-text or --span-tokens, not both");
    if (check_vocabularies(&co, &in)) return DS_EXIT_INPUT;
    r.prompt = in.prompt, r.span_text = co.span_text;
    rc = run_model(&r, &co, &in, 0);
    if (!rc && co.model_b) rc = run_model(&r, &co, &in, 1);
    const char *models[2] = {co.model_a, co.model_b};
    ds_provenance *pv = rc ? NULL : cli_provenance(models, r.nmodels, &in);
    if (!rc && !pv) rc = cli_lib_error();
    r.provenance = pv;
    if (!rc && co.out_path && cmp_write_h5(co.out_path, co.force, &r)) rc = cli_lib_error();
    if (!rc) {
        if (co.json) rc = cmp_print_json(stdout, &r) ? cli_lib_error() : DS_EXIT_OK;
        else cmp_print_table(stdout, &r);
    }
    ds_provenance_free(pv);
    for (int i = 0; i < r.nmodels; i++) ds_attn_stats_free(r.models[i].st);
    cli_free_labels(r.labels, r.T);
    free(r.ids);
    return rc;
}
