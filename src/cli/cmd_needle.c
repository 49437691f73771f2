/* diffscope needle MODEL [--vs B] (--haystack FILE --needle TEXT --question TEXT --answer TEXT |
 * --task kv): the key-information retrieval probe (the paper's Table 3). Per needle depth: does
 * the top-1 next token at the last prompt token start the answer, and how much attention does
 * that row give the needle (answer_mass) and the rest of the context (noise_mass), averaged over
 * heads and the last half of the layers. Prompts: cli/needle.h; definitions: docs/compare.md. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/compare.h"
#include "cli/needle.h"
#include "io/outfile.h"

static const char *usage =
    "usage: diffscope needle MODEL [--vs B] --haystack FILE --needle TEXT --question TEXT --answer TEXT\n"
    "                        [--depths 0,25,50,75,100] [--context-tokens N] [options]\n"
    "       diffscope needle MODEL [--vs B] --haystack-ids FILE --needle-ids LIST --question-ids LIST\n"
    "                        --answer-id ID [--depths ...] [--context-tokens N] [options]\n"
    "       diffscope needle MODEL [--vs B] --task kv [--pairs P] [--context-tokens N] [--trials K]\n"
    "                        [--seed S] [--depths ...] [options]\n\n"
    "Builds one prompt per depth: N tokens of haystack with the needle inserted at DEPTH percent\n"
    "(0: first, 100: last), then the question; runs it and reports whether the top-1 next token\n"
    "at the last prompt token starts the answer, and the attention of that row on the needle's\n"
    "tokens (answer_mass) and on the rest of the context after token 0 (noise_mass), mean over\n"
    "heads and over the last half of the layers (all layers in --json). DiffLlama: the diff and\n"
    "softmax1 maps; Llama: softmax.\n"
    "--task kv generates prompts of the demo models' retrieval task (docs/demo-models.md):\n"
    "'<s> filler ... k_x v_y ... ? k_x' -> v_y, with the queried pair at the depth, P pairs in N\n"
    "context tokens, K random prompts per depth; top-1 is then an accuracy, printed as the share\n"
    "and the count (0.9000 (18/20)), the masses as mean +- the 95 % interval over the K prompts.\n"
    "--json and -o add each prompt's values and their std (docs/compare.md).\n\n";

/* ---- prompts ---- */

/* Sizes before work: a prompt has at least N + 2 tokens, so an N past max_position_embeddings
 * (without --allow-long), or prompts and a KV cache larger than the machine's memory, are
 * refused before any prompt is built (--context-tokens 100000000 built 7.8 GB of prompts in
 * 26 s before). */
static int check_prompt_sizes(const needle_opts *no, const ds_config *c, int allow_long) {
    long long least = (long long)no->N + 2, limit = c->max_position_embeddings;
    if (!no->N) return 0; /* text without --context-tokens: N is what fits */
    if (least > limit && !allow_long)
        return ds_fail("--context-tokens %d: the prompts would have at least %lld tokens, more than "
                       "max_position_embeddings (%lld) of %s; --allow-long runs them anyway", no->N, least, limit,
                       no->model[0]);
    double prompts = (double)no->ndepths * no->trials * least * sizeof(int);
    double kv = 2.0 * c->num_layers * c->num_kv_heads * c->head_dim * (double)least * sizeof(float);
    double memory = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (memory > 0 && prompts + kv > memory)
        return ds_fail("--context-tokens %d: the prompts and the KV cache would take %.1f GB, more than the %.1f GB "
                       "of memory here", no->N, (prompts + kv) / 1e9, memory / 1e9);
    return 0;
}

static int build_prompts(const needle_opts *no, const ds_tokenizer *t, const ds_config *c, int add_special,
                         needle_prompt_set *ps) {
    ps->nprompts = no->ndepths * no->trials;
    ps->prompts = calloc((size_t)ps->nprompts, sizeof *ps->prompts);
    if (!ps->prompts) return ds_failc(DS_ERR_NOMEM, "out of memory");
    int rc = 0;
    if (no->task) {
        needle_kv kv;
        uint64_t rng = (uint64_t)no->seed;
        rc = needle_kv_load(&kv, t, no->model[0], add_special);
        for (int i = 0; !rc && i < ps->nprompts; i++)
            rc = needle_kv_prompt(&kv, no->N, no->pairs, no->depths[i / no->trials], &rng, &ps->prompts[i]);
        needle_kv_free(&kv);
        ps->N = no->N;
    } else {
        needle_text nt;
        const char *hay = no->haystack ? no->haystack : no->haystack_ids;
        rc = no->haystack ? needle_text_load(&nt, t, no->haystack, no->needle, no->question, add_special)
                          : needle_ids_load(&nt, no->haystack_ids, no->needle_ids, no->question_ids,
                                            add_special ? c->bos_token_id : -1);
        int N = no->N;
        if (!rc && !N) {
            N = c->max_position_embeddings - nt.nprefix - nt.nneedle - nt.nquestion;
            if (N > nt.nhay) N = nt.nhay;
            if (N < 1) rc = ds_fail("%s: the needle and question leave no room for a haystack", hay);
        }
        if (!rc && N > nt.nhay)
            rc = ds_fail("%s: the haystack has %d tokens, fewer than --context-tokens %d", hay, nt.nhay, N);
        ps->nneedle = nt.nneedle, ps->nquestion = nt.nquestion, ps->N = N;
        for (int i = 0; !rc && i < ps->nprompts; i++) {
            rc = needle_text_prompt(&nt, N, no->depths[i], &ps->prompts[i]);
            ps->prompts[i].answer_id = (int)no->answer_id;
        }
        needle_text_free(&nt);
    }
    for (int i = 0; !rc && i < ps->nprompts; i++)
        if (ps->prompts[i].n > ps->maxlen) ps->maxlen = ps->prompts[i].n;
    return rc;
}

static void free_prompts(needle_prompt_set *ps) {
    for (int i = 0; ps->prompts && i < ps->nprompts; i++) free(ps->prompts[i].ids);
    free(ps->prompts);
}

/* B must read the prompts as A does: same vocabulary size and, when B has a tokenizer, the same
 * prompts from it. */
static int check_same_vocabulary(const needle_opts *no, const ds_config *ca, const ds_config *cb,
                                 const needle_prompt_set *ps, int add_special) {
    if (ca->vocab_size != cb->vocab_size)
        return ds_fail("%s and %s have different vocabularies (%d and %d tokens)", no->model[0], no->model[1],
                       ca->vocab_size, cb->vocab_size);
    if (no->haystack_ids) return 0; /* token ids: nothing to tokenize */
    if (!cli_has_tokenizer(no->model[1])) return 0;
    ds_tokenizer *t = ds_tokenizer_load(no->model[1]);
    needle_prompt_set pb = {0};
    needle_opts same = *no;
    same.N = ps->N;
    int rc = !t || build_prompts(&same, t, cb, add_special, &pb);
    for (int i = 0; !rc && i < ps->nprompts; i++)
        if (pb.prompts[i].n != ps->prompts[i].n ||
            memcmp(pb.prompts[i].ids, ps->prompts[i].ids, (size_t)pb.prompts[i].n * sizeof(int)))
            rc = ds_fail("%s and %s tokenize the needle prompts differently (different vocabularies)", no->model[0],
                         no->model[1]);
    free_prompts(&pb);
    ds_tokenizer_free(t);
    return rc ? -1 : 0;
}

/* Token ids given by the user must be tokens of the model. */
static int check_ids_in_vocabulary(const needle_opts *no, const needle_prompt_set *ps, int vocab_size) {
    if (no->answer_id >= vocab_size)
        return ds_fail("--answer-id %d is outside the vocabulary of %s (size %d)", no->answer_id, no->model[0],
                       vocab_size);
    for (int i = 0; i < ps->nprompts; i++)
        for (int k = 0; k < ps->prompts[i].n; k++)
            if (ps->prompts[i].ids[k] >= vocab_size)
                return ds_fail("token id %d (in --haystack-ids, --needle-ids or --question-ids) is outside the "
                               "vocabulary of %s (size %d)", ps->prompts[i].ids[k], no->model[0], vocab_size);
    return 0;
}

/* ---- running ---- */

static int run_model(const needle_opts *no, const cli_input *in, int idx, const ds_model *m, const ds_tokenizer *t,
                     const needle_prompt_set *ps, needle_model *nm) {
    const ds_config *c = ds_model_config(m);
    const size_t P = (size_t)ps->nprompts;
    nm->L = c->num_layers;
    ds_session *s = ds_session_new(m, ps->maxlen, in->allow_long);
    if (!s) return -1;
    nm->correct = calloc(P, sizeof *nm->correct);
    nm->answer = calloc((size_t)DS_ATTN_NMAPS * P * nm->L, sizeof *nm->answer);
    nm->noise = calloc((size_t)DS_ATTN_NMAPS * P * nm->L, sizeof *nm->noise);
    nm->top1 = calloc(P, sizeof *nm->top1);
    int rc = !nm->correct || !nm->answer || !nm->noise || !nm->top1 ? ds_failc(DS_ERR_NOMEM, "out of memory") : 0;
    cli_progress prog;
    cli_progress_start(&prog, nm->name, ps->nprompts);
    for (int i = 0; !rc && i < ps->nprompts; i++) {
        const needle_prompt *p = &ps->prompts[i];
        ds_attn_stats_opts o = {.query = p->n - 1, .span_begin = p->span_begin, .span_end = p->span_end};
        ds_probes *probes = ds_probes_new();
        ds_attn_stats *st = NULL;
        if (!probes) ds_failc(DS_ERR_NOMEM, "out of memory");
        else if (idx > 0 || !cli_add_interventions(in, m, probes)) /* interventions are A's */
            st = cmp_run(m, s, probes, p->ids, p->n, &o, &nm->top1[i]);
        ds_probes_free(probes);
        if (!st) {
            rc = -1;
            break;
        }
        nm->correct[i] = p->answer_id >= 0 ? nm->top1[i] == p->answer_id : needle_starts_answer(t, nm->top1[i], no->answer);
        nm->nmaps = cmp_maps(st, nm->maps);
        for (int j = 0; j < nm->nmaps; j++)
            for (int l = 0; l < nm->L; l++) {
                size_t at = ((size_t)j * P + i) * nm->L + l;
                nm->answer[at] = st->layer[nm->maps[j]][l].answer_mass;
                nm->noise[at] = st->layer[nm->maps[j]][l].noise_mass;
            }
        ds_attn_stats_free(st);
        cli_progress_step(&prog, i + 1);
    }
    cli_progress_end(&prog);
    ds_session_free(s);
    return rc;
}

static void free_model(needle_model *nm) {
    free(nm->correct);
    free(nm->answer);
    free(nm->noise);
    free(nm->top1);
}


static int own_prompts(void *unused, const char *arg) {
    return ds_fail("needle builds its own prompts: --prompt and --ids do not apply");
}

/* The options make one probe: text, token ids or the kv task; 0 or a usage error's status. */
static int check_needle_opts(needle_opts *no, int trials, const cli_list *depths) {
    static const int default_depths[] = {0, 25, 50, 75, 100};
    int by_text = no->haystack || no->needle || no->question || no->answer;
    int by_ids = no->haystack_ids || no->needle_ids || no->question_ids || no->answer_id >= 0;
    if (by_text && by_ids)
        return cli_error("give the probe as text (--haystack, --needle, --question, --answer) or as token ids "
                         "(--haystack-ids, --needle-ids, --question-ids, --answer-id), not both");
    if (!no->task && by_ids && (!no->haystack_ids || !no->needle_ids || !no->question_ids || no->answer_id < 0))
        return cli_error("needle needs --haystack-ids, --needle-ids, --question-ids and --answer-id together");
    if (!no->task && !by_ids && (!no->haystack || !no->needle || !no->question || !no->answer))
        return cli_error(
            "needle needs --haystack, --needle, --question and --answer (or their token-id forms, or --task kv)");
    if (no->task && (by_text || by_ids))
        return cli_error("--task kv generates its prompts: --haystack, --needle, --question and --answer do not apply");
    if (!no->task && trials > 1) return cli_error("--trials applies to --task kv (a text probe is deterministic)");
    no->trials = no->task ? (trials ? trials : 20) : 1;
    if (no->task && !no->N) no->N = 128 - 1 - 3 * no->pairs;
    if (no->task && no->N < 2 * no->pairs)
        return cli_error("--context-tokens %d: too short for %d pairs (at least %d)", no->N, no->pairs, 2 * no->pairs);
    no->depths = depths->n ? depths->v : default_depths;
    no->ndepths = depths->n ? depths->n : (int)(sizeof default_depths / sizeof *default_depths);
    return DS_EXIT_OK;
}

/* Builds the prompts, runs A (and B) on them and prints the report. */
static int run_needle(const needle_opts *no, const cli_input *in) {
    int by_ids = no->haystack_ids != NULL, nmodels = 0, rc = DS_EXIT_INPUT;
    cli_input_apply(in);
    needle_model nm[2] = {{0}};
    needle_prompt_set ps = {0};
    ds_tokenizer *t = NULL;
    ds_model *m = NULL;
    ds_provenance *pv = NULL;
    ds_config ca;
    /* The prompts come from A's config.json and tokenizer, before any weights are read. */
    /* an -o that cannot be written is said before the runs, not after them */
    if ((no->output && ds_outfile_check_target(no->output, no->force)) || cli_load_config(no->model[0], &ca))
        return cli_lib_error();
    if (!by_ids && !(t = ds_tokenizer_load(no->model[0]))) goto fail;
    if (check_prompt_sizes(no, &ca, in->allow_long) || build_prompts(no, t, &ca, !in->no_special, &ps)) goto fail;
    if (by_ids && check_ids_in_vocabulary(no, &ps, ca.vocab_size)) goto fail;
    if ((rc = cli_check_length(no->model[0], &ca, ps.maxlen, in->allow_long))) goto out;
    for (int i = 0; i < 2 && no->model[i]; i++) {
        ds_model_free(m);
        if (!(m = ds_model_load(no->model[i]))) goto fail;
        if (i == 1 && check_same_vocabulary(no, &ca, ds_model_config(m), &ps, !in->no_special)) goto fail;
        nm[i].name = i ? "B" : "A";
        nm[i].path = no->model[i];
        nm[i].arch = ds_arch_name(ds_model_config(m)->arch);
        nmodels = i + 1;
        if (run_model(no, in, i, m, t, &ps, &nm[i])) goto fail;
    }
    needle_opts done = *no;
    if (!(pv = cli_provenance(no->model, nmodels, in))) goto fail;
    done.provenance = pv;
    if (done.output && needle_write_h5(&done, &ps, nm, nmodels)) goto fail;
    if (!no->json) needle_print_table(&done, &ps, nm, nmodels);
    if (!no->json || !needle_print_json(&done, &ps, t, nm, nmodels)) rc = DS_EXIT_OK;
    else rc = cli_lib_error();
    goto out;
fail:
    rc = cli_lib_error();
out:
    for (int i = 0; i < nmodels; i++) free_model(&nm[i]);
    free_prompts(&ps);
    ds_model_free(m);
    ds_tokenizer_free(t);
    ds_config_free(&ca);
    ds_provenance_free(pv);
    return rc;
}

int cmd_needle(int argc, char **argv) {
    cli_input in = {0};
    needle_opts no = {.pairs = 6, .seed = 1, .answer_id = -1};
    cli_list depths = {0};
    int trials = 0, rc;
    const cli_opt opts[] = {
        {"prompt", 0, CLI_CALL, NULL, 0, 0, "TEXT", NULL, own_prompts},
        {"ids", 0, CLI_CALL, NULL, 0, 0, "LIST", NULL, own_prompts},
        {"model", 0, CLI_STRING, &no.model[0], 0, 0, "A", NULL},
        {"vs", 0, CLI_STRING, &no.model[1], 0, 0, "B", "a second model run on the same prompts (same vocabulary)"},
        {"haystack", 0, CLI_STRING, &no.haystack, 0, 0, "FILE", "text to fill the context with (its first N tokens are used)"},
        {"needle", 0, CLI_STRING, &no.needle, 0, 0, "TEXT", "the key information, inserted at each depth"},
        {"question", 0, CLI_STRING, &no.question, 0, 0, "TEXT", "appended after the context; the model should answer next"},
        {"answer", 0, CLI_STRING, &no.answer, 0, 0, "TEXT", "what the top-1 token should start"},
        {"haystack-ids", 0, CLI_STRING, &no.haystack_ids, 0, 0, "FILE",
         "the haystack as token ids, for a model without tokenizer.json\n(ids separated by commas or spaces; the model's BOS goes\nfirst unless --no-special)"},
        {"needle-ids", 0, CLI_STRING, &no.needle_ids, 0, 0, "LIST", "the needle as token ids"},
        {"question-ids", 0, CLI_STRING, &no.question_ids, 0, 0, "LIST", "the question as token ids"},
        {"answer-id", 0, CLI_INT, &no.answer_id, 0, INT_MAX, "ID", "the answer token: top1 is then: is it ID"},
        {"depths", 0, CLI_LIST, &depths, 0, 100, "LIST", "needle depths in percent (default 0,25,50,75,100)"},
        {"context-tokens", 0, CLI_INT, &no.N, 1, 100000000, "N",
         "haystack tokens (default: all that fit in max_position_embeddings);\nkv: context tokens (default 128 - 1 - 3P, the training rows' context)"},
        {"task", 0, CLI_CHOICE, &no.task, 0, 0, "kv", "the demo models' key-value retrieval task"},
        {"pairs", 0, CLI_INT, &no.pairs, 1, 1000000, "P", "kv: key-value pairs in the context (default 6)"},
        {"trials", 0, CLI_INT, &trials, 1, 1000000, "K", "kv: random prompts per depth (default 20)"},
        {"seed", 0, CLI_INT, &no.seed, 0, INT_MAX, "S", "kv: random seed (default 1)"},
        {"no-special", 0, CLI_FLAG, &in.no_special, 0, 0, NULL, "do not add the tokenizer's special tokens (BOS)"},
        CLI_RUN_OPTS(&in),
        {"json", 0, CLI_FLAG, &no.json, 0, 0, NULL, "JSON on stdout instead of the table"},
        {"output", 'o', CLI_STRING, &no.output, 0, 0, "FILE", "also write the results and every prompt's values to HDF5"},
        {"force", 0, CLI_FLAG, &no.force, 0, 0, NULL, "overwrite FILE if it exists"},
        {0}};
    const cli_cmd cmd = {"needle", usage, "--lambda-override and --ablate-head apply to A only.\n", opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (!no.model[0] && optind < argc) no.model[0] = argv[optind++];
    if (!no.model[0] || optind != argc) rc = cli_error("needle needs one MODEL folder (see diffscope needle --help)");
    else rc = check_needle_opts(&no, trials, &depths);
    if (rc == DS_EXIT_OK) rc = run_needle(&no, &in);
    cli_opts_free(opts);
    return rc;
}
