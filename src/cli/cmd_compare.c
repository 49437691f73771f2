/* diffscope compare [--model] A [--vs B] (--prompt TEXT | --ids ...) [--span-text T | --span-tokens I:J]
 * [--query-pos Q]: attention mass on a span against noise, per layer, for DiffLlama's difference
 * map and first softmax map (and a second model's maps), plus Table-5 activation outliers.
 * Definitions: include/diffscope/attn_stats.h and docs/compare.md. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/compare.h"
#include "diffscope/span.h"
#include "diffscope/tokenizer.h"

static const char *help =
    "usage: diffscope compare [--model] A [--vs B] (--prompt TEXT | --ids 1,2,3) [options]\n\n"
    "Runs the prompt once through A (a DiffLlama) and, with --vs, through B (a Llama or another\n"
    "DiffLlama) on the same tokens, and reports for the query row q, per layer (mean over heads):\n"
    "answer_mass (on the span S), noise_mass (elsewhere, key 0 left out), sink_mass (key 0),\n"
    "entropy and sparsity, for DiffLlama's diff and softmax1 maps and Llama's softmax map, plus\n"
    "lambda_full and the Table-5 activation outliers (top-1/2/3/10/100 and median of |scores| and\n"
    "|residual stream|). Without --vs the comparison is inside A: softmax1 against diff.\n"
    "Definitions: docs/compare.md.\n\n" CLI_INPUT_HELP
    "  --model A             the first model folder (or give it as the first argument)\n"
    "  --vs B                a second model run on the same token ids\n"
    "  --span-text TEXT      the span S: TEXT found among the prompt's tokens (exactly once)\n"
    "  --span-tokens I:J     the span S as token positions I..J-1 (half-open; 0 is the first\n"
    "                        token, BOS included; I > 0 and J <= q+1)\n"
    "  --query-pos Q         the query row q (default: the last token; negative: from the end)\n"
    "  --per-head            also report every head\n"
    "  --json                JSON on stdout instead of the table\n"
    "  -o, --output FILE.h5  also write the numbers to HDF5 (--force overwrites)\n"
    "  -h, --help            this text\n"
    "--lambda-override and --ablate-head apply to A only.\n";

enum { OPT_MODEL = OPT_INPUT_LAST, OPT_VS, OPT_SPAN_TEXT, OPT_SPAN_TOKENS, OPT_QUERY, OPT_PER_HEAD, OPT_JSON,
       OPT_FORCE };

typedef struct {
    const char *model_a, *model_b, *span_text, *span_tokens, *query, *out_path;
    int json, force;
} compare_opts;

/* Loads MODEL and runs it on the prompt; the first call (A) sets R's tokens, span and query,
 * the second (B) must see the same tokens. */
static int run_model(cmp_result *r, const compare_opts *co, const cli_input *in, int idx, int **ids_a) {
    cli_input mine = *in;
    if (idx == 1) mine.n_lambda = mine.n_ablate = 0; /* interventions are A's */
    const char *dir = idx ? co->model_b : co->model_a;
    int *ids = NULL, n = 0, rc;
    char **labels = NULL;
    ds_model *m = cli_load(dir, &mine, &ids, &n, 0, idx ? NULL : &labels, &rc);
    if (!m) return rc;
    rc = DS_EXIT_INPUT;
    const ds_config *c = ds_model_config(m);
    ds_attn_stats_opts o = {.outliers = 1};
    if (idx == 0) {
        *ids_a = ids;
        r->ids = ids, r->T = n, r->labels = labels;
        r->query = n - 1;
        if (co->query) {
            char *end;
            long q = strtol(co->query, &end, 10);
            if (end == co->query || *end || q < -n || q >= n) {
                cli_error("--query-pos: '%s' is out of range (the prompt has %d tokens: 0..%d, or -1..-%d)", co->query,
                          n, n - 1, n);
                goto out;
            }
            r->query = (int)(q < 0 ? q + n : q);
        }
        if (co->span_tokens) {
            char extra;
            if (sscanf(co->span_tokens, "%d:%d%c", &r->span_begin, &r->span_end, &extra) != 2 ||
                r->span_end <= r->span_begin) {
                cli_error("--span-tokens: '%s' is not I:J with I < J", co->span_tokens);
                goto out;
            }
        } else if (co->span_text) {
            const ds_tokenizer *t = cli_tokenizer(dir);
            int bad = !t || ds_span_find(t, ids, n, co->span_text, &r->span_begin, &r->span_end);
            if (bad) {
                cli_error("--span-text: %s", ds_errmsg());
                goto out;
            }
        }
    } else {
        if (in->prompt && (n != r->T || memcmp(ids, r->ids, (size_t)n * sizeof *ids))) {
            cli_error("%s and %s tokenize the prompt differently (different vocabularies): give both the same "
                      "tokens with --ids",
                      co->model_a, dir);
            goto out;
        }
    }
    o.query = r->query, o.span_begin = r->span_begin, o.span_end = r->span_end;
    ds_session *s = ds_session_new(m, n, in->allow_long);
    cmp_model *cm = &r->models[idx];
    cm->name = idx ? "B" : "A", cm->path = dir, cm->arch = ds_arch_name(c->arch);
    if (!s) cli_lib_error();
    else if (!(cm->st = cmp_run(m, s, &mine, ids, n, &o, NULL))) cli_error("%s: %s", dir, ds_errmsg());
    else rc = DS_EXIT_OK, r->nmodels = idx + 1;
    ds_session_free(s);
out:
    if (idx) free(ids);
    ds_model_free(m);
    return rc;
}

/* With --prompt, B must have A's vocabulary (checked before any model runs). */
static int check_vocabularies(const compare_opts *co, const cli_input *in) {
    if (!co->model_b || !in->prompt) return 0;
    ds_config a, b;
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/config.json", co->model_a);
    snprintf(pb, sizeof pb, "%s/config.json", co->model_b);
    if (ds_config_load(&a, pa)) return cli_lib_error();
    if (ds_config_load(&b, pb)) {
        ds_config_free(&a);
        return cli_lib_error();
    }
    int va = a.vocab_size, vb = b.vocab_size;
    ds_config_free(&a), ds_config_free(&b);
    if (va != vb)
        return cli_error("%s and %s have different vocabularies (%d and %d tokens): compare them on the same "
                         "tokens with --ids",
                         co->model_a, co->model_b, va, vb);
    return 0;
}

int cmd_compare(int argc, char **argv) {
    static const struct option opts[] = {
        CLI_INPUT_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},        {"vs", required_argument, 0, OPT_VS},
        {"span-text", required_argument, 0, OPT_SPAN_TEXT}, {"span-tokens", required_argument, 0, OPT_SPAN_TOKENS},
        {"query-pos", required_argument, 0, OPT_QUERY},    {"per-head", no_argument, 0, OPT_PER_HEAD},
        {"json", no_argument, 0, OPT_JSON},                {"output", required_argument, 0, 'o'},
        {"force", no_argument, 0, OPT_FORCE},              {"help", no_argument, 0, 'h'},
        {0}};
    cli_input in = {0};
    compare_opts co = {0};
    cmp_result r = {0};
    int o, *ids = NULL;
    optind = 1;
    while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        int k = cli_input_option(&in, o, optarg);
        if (k < 0) return cli_lib_error();
        if (k) continue;
        switch (o) {
        case OPT_MODEL: co.model_a = optarg; break;
        case OPT_VS: co.model_b = optarg; break;
        case OPT_SPAN_TEXT: co.span_text = optarg; break;
        case OPT_SPAN_TOKENS: co.span_tokens = optarg; break;
        case OPT_QUERY: co.query = optarg; break;
        case OPT_PER_HEAD: r.per_head = 1; break;
        case OPT_JSON: co.json = 1; break;
        case 'o': co.out_path = optarg; break;
        case OPT_FORCE: co.force = 1; break;
        case 'h': fputs(help, stdout); return DS_EXIT_OK;
        default: fputs(help, stderr); return DS_EXIT_INPUT;
        }
    }
    if (!co.model_a && optind < argc) co.model_a = argv[optind++];
    if (!co.model_a || optind != argc)
        return cli_error("compare needs one model A (--model A or the first argument; see diffscope compare --help)");
    if (co.span_text && co.span_tokens) return cli_error("give the span as --span-text or --span-tokens, not both");
    if (check_vocabularies(&co, &in)) return DS_EXIT_INPUT;
    r.prompt = in.prompt, r.span_text = co.span_text;
    int rc = run_model(&r, &co, &in, 0, &ids);
    if (!rc && co.model_b) rc = run_model(&r, &co, &in, 1, &ids);
    if (!rc && co.out_path && cmp_write_h5(co.out_path, co.force, &r)) rc = cli_lib_error();
    if (!rc) {
        if (co.json) rc = cmp_print_json(stdout, &r) ? cli_lib_error() : DS_EXIT_OK;
        else cmp_print_table(stdout, &r);
    }
    for (int i = 0; i < r.nmodels; i++) ds_attn_stats_free(r.models[i].st);
    cli_free_labels(r.labels, r.T);
    free(ids);
    return rc;
}
