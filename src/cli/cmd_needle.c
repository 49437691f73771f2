/* diffscope needle MODEL [--vs B] (--haystack FILE --needle TEXT --question TEXT --answer TEXT |
 * --task kv): the key-information retrieval probe (the paper's Table 3). Per needle depth: does
 * the top-1 next token at the last prompt token start the answer, and how much attention does
 * that row give the needle (answer_mass) and the rest of the context (noise_mass), averaged over
 * heads and the last half of the layers. Prompts: cli/needle.h; definitions: docs/compare.md. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/compare.h"
#include "cli/needle.h"

static const char *help =
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
    "context tokens, K random prompts per depth; top-1 is then an accuracy.\n\n"
    "  --vs B                a second model run on the same prompts (same vocabulary)\n"
    "  --haystack FILE       text to fill the context with (its first N tokens are used)\n"
    "  --needle TEXT         the key information, inserted at each depth\n"
    "  --question TEXT       appended after the context; the model should answer next\n"
    "  --answer TEXT         what the top-1 token should start\n"
    "  --haystack-ids FILE, --needle-ids LIST, --question-ids LIST, --answer-id ID\n"
    "                        the same probe as token ids, for a model without tokenizer.json\n"
    "                        (FILE: ids separated by commas or spaces; the model's BOS goes\n"
    "                        first unless --no-special); top1 is then: is it ID\n"
    "  --depths LIST         needle depths in percent (default 0,25,50,75,100)\n"
    "  --context-tokens N    haystack tokens (default: all that fit in max_position_embeddings);\n"
    "                        kv: context tokens (default 128 - 1 - 3P, the training rows' context)\n"
    "  --task kv             the demo models' key-value retrieval task\n"
    "  --pairs P             kv: key-value pairs in the context (default 6)\n"
    "  --trials K            kv: random prompts per depth (default 20)\n"
    "  --seed S              kv: random seed (default 1)\n"
    "  --no-special          do not add the tokenizer's special tokens (BOS)\n"
    "  --threads N, --allow-long, --lambda-override L=V, --ablate-head L.H (A only): as for dump\n"
    "  --json                JSON on stdout instead of the table\n"
    "  -h, --help            this text\n";

enum { OPT_VS = OPT_INPUT_LAST, OPT_HAYSTACK, OPT_NEEDLE, OPT_QUESTION, OPT_ANSWER, OPT_DEPTHS, OPT_CONTEXT,
       OPT_TASK, OPT_PAIRS, OPT_TRIALS, OPT_SEED, OPT_JSON, OPT_MODEL, OPT_HAYSTACK_IDS, OPT_NEEDLE_IDS,
       OPT_QUESTION_IDS, OPT_ANSWER_ID };

/* ---- prompts ---- */

static int build_prompts(const needle_opts *no, const ds_tokenizer *t, const ds_config *c, int add_special,
                         needle_prompt_set *ps) {
    ps->nprompts = no->ndepths * no->trials;
    ps->prompts = calloc((size_t)ps->nprompts, sizeof *ps->prompts);
    if (!ps->prompts) return ds_fail("out of memory");
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
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", no->model[1]);
    if (stat(path, &st)) return 0;
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
        return ds_fail("--answer-id %ld is outside the vocabulary of %s (size %d)", no->answer_id, no->model[0],
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
    int D = no->ndepths, K = no->trials;
    nm->L = c->num_layers;
    ds_session *s = ds_session_new(m, ps->maxlen, in->allow_long);
    if (!s) return -1;
    nm->acc = calloc((size_t)D, sizeof *nm->acc);
    nm->answer = calloc((size_t)DS_ATTN_NMAPS * D * nm->L, sizeof *nm->answer);
    nm->noise = calloc((size_t)DS_ATTN_NMAPS * D * nm->L, sizeof *nm->noise);
    nm->top1 = calloc((size_t)ps->nprompts, sizeof *nm->top1);
    int rc = !nm->acc || !nm->answer || !nm->noise || !nm->top1 ? ds_fail("out of memory") : 0;
    cli_progress prog;
    cli_progress_start(&prog, nm->name, ps->nprompts);
    for (int i = 0; !rc && i < ps->nprompts; i++) {
        const needle_prompt *p = &ps->prompts[i];
        ds_attn_stats_opts o = {.query = p->n - 1, .span_begin = p->span_begin, .span_end = p->span_end};
        ds_attn_stats *st = cmp_run(m, s, idx == 0 ? in : NULL, p->ids, p->n, &o, &nm->top1[i]);
        if (!st) {
            rc = -1;
            break;
        }
        int d = i / K;
        nm->acc[d] += (p->answer_id >= 0 ? nm->top1[i] == p->answer_id : needle_starts_answer(t, nm->top1[i], no->answer)) /
                      (double)K;
        nm->nmaps = cmp_maps(st, nm->maps);
        for (int j = 0; j < nm->nmaps; j++)
            for (int l = 0; l < nm->L; l++) {
                size_t at = ((size_t)j * D + d) * nm->L + l;
                nm->answer[at] += st->layer[nm->maps[j]][l].answer_mass / K;
                nm->noise[at] += st->layer[nm->maps[j]][l].noise_mass / K;
            }
        ds_attn_stats_free(st);
        cli_progress_step(&prog, i + 1);
    }
    cli_progress_end(&prog);
    ds_session_free(s);
    return rc;
}

static void free_model(needle_model *nm) { free(nm->acc), free(nm->answer), free(nm->noise), free(nm->top1); }


int cmd_needle(int argc, char **argv) {
    static const struct option opts[] = {
        CLI_INPUT_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},     {"vs", required_argument, 0, OPT_VS},
        {"haystack", required_argument, 0, OPT_HAYSTACK}, {"needle", required_argument, 0, OPT_NEEDLE},
        {"question", required_argument, 0, OPT_QUESTION}, {"answer", required_argument, 0, OPT_ANSWER},
        {"depths", required_argument, 0, OPT_DEPTHS},   {"context-tokens", required_argument, 0, OPT_CONTEXT},
        {"task", required_argument, 0, OPT_TASK},       {"pairs", required_argument, 0, OPT_PAIRS},
        {"trials", required_argument, 0, OPT_TRIALS},   {"seed", required_argument, 0, OPT_SEED},
        {"json", no_argument, 0, OPT_JSON},             {"help", no_argument, 0, 'h'},
        {"haystack-ids", required_argument, 0, OPT_HAYSTACK_IDS},
        {"needle-ids", required_argument, 0, OPT_NEEDLE_IDS},
        {"question-ids", required_argument, 0, OPT_QUESTION_IDS},
        {"answer-id", required_argument, 0, OPT_ANSWER_ID},
        {0}};
    cli_input in = {0};
    needle_opts no = {.pairs = 6, .seed = 1, .answer_id = -1};
    long v, trials = 0;
    int o, rc = DS_EXIT_INPUT;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int k = cli_input_option(&in, o, optarg);
        if (k < 0) goto bad;
        if (k) continue;
        switch (o) {
        case OPT_MODEL: no.model[0] = optarg; break;
        case OPT_VS: no.model[1] = optarg; break;
        case OPT_HAYSTACK: no.haystack = optarg; break;
        case OPT_NEEDLE: no.needle = optarg; break;
        case OPT_QUESTION: no.question = optarg; break;
        case OPT_ANSWER: no.answer = optarg; break;
        case OPT_HAYSTACK_IDS: no.haystack_ids = optarg; break;
        case OPT_NEEDLE_IDS: no.needle_ids = optarg; break;
        case OPT_QUESTION_IDS: no.question_ids = optarg; break;
        case OPT_ANSWER_ID:
            if (cli_parse_int(optarg, "--answer-id", 0, 0x7fffffffL, &no.answer_id)) goto bad;
            break;
        case OPT_DEPTHS:
            free(no.depths);
            if (cli_parse_list(optarg, "--depths", &no.depths, &no.ndepths)) goto bad;
            break;
        case OPT_CONTEXT:
            if (cli_parse_int(optarg, "--context-tokens", 1, 100000000, &v)) goto bad;
            no.N = (int)v;
            break;
        case OPT_TASK:
            if (strcmp(optarg, "kv")) {
                ds_fail("--task: '%s' is not a task (kv)", optarg);
                goto bad;
            }
            no.task = optarg;
            break;
        case OPT_PAIRS:
            if (cli_parse_int(optarg, "--pairs", 1, 1000000, &v)) goto bad;
            no.pairs = (int)v;
            break;
        case OPT_TRIALS:
            if (cli_parse_int(optarg, "--trials", 1, 1000000, &trials)) goto bad;
            break;
        case OPT_SEED:
            if (cli_parse_int(optarg, "--seed", 0, 0x7fffffffL, &no.seed)) goto bad;
            break;
        case OPT_JSON: no.json = 1; break;
        case 'h':
            fputs(help, stdout);
            rc = DS_EXIT_OK;
            goto out;
        default: fputs(help, stderr); goto out;
        }
    }
    if (!no.model[0] && optind < argc) no.model[0] = argv[optind++];
    if (!no.model[0] || optind != argc) {
        cli_error("needle needs one MODEL folder (see diffscope needle --help)");
        goto out;
    }
    if (in.prompt || in.ids) {
        cli_error("needle builds its own prompts: --prompt and --ids do not apply");
        goto out;
    }
    int by_text = no.haystack || no.needle || no.question || no.answer;
    int by_ids = no.haystack_ids || no.needle_ids || no.question_ids || no.answer_id >= 0;
    if (by_text && by_ids) {
        cli_error("give the probe as text (--haystack, --needle, --question, --answer) or as token ids "
                  "(--haystack-ids, --needle-ids, --question-ids, --answer-id), not both");
        goto out;
    }
    if (!no.task && by_ids && (!no.haystack_ids || !no.needle_ids || !no.question_ids || no.answer_id < 0)) {
        cli_error("needle needs --haystack-ids, --needle-ids, --question-ids and --answer-id together");
        goto out;
    }
    if (!no.task && !by_ids && (!no.haystack || !no.needle || !no.question || !no.answer)) {
        cli_error("needle needs --haystack, --needle, --question and --answer (or their token-id forms, or --task kv)");
        goto out;
    }
    if (no.task && (by_text || by_ids)) {
        cli_error("--task kv generates its prompts: --haystack, --needle, --question and --answer do not apply");
        goto out;
    }
    if (!no.task && trials > 1) {
        cli_error("--trials applies to --task kv (a text probe is deterministic)");
        goto out;
    }
    no.trials = no.task ? (trials ? (int)trials : 20) : 1;
    if (no.task && !no.N) no.N = 128 - 1 - 3 * no.pairs;
    if (no.task && no.N < 2 * no.pairs) {
        cli_error("--context-tokens %d: too short for %d pairs (at least %d)", no.N, no.pairs, 2 * no.pairs);
        goto out;
    }
    if (!no.depths) {
        static const int defaults[] = {0, 25, 50, 75, 100};
        no.ndepths = 5;
        no.depths = malloc(sizeof defaults);
        if (!no.depths) goto bad;
        memcpy(no.depths, defaults, sizeof defaults);
    }
    for (int i = 0; i < no.ndepths; i++)
        if (no.depths[i] > 100) {
            cli_error("--depths: %d is not a percentage (0..100)", no.depths[i]);
            goto out;
        }
    if (in.threads) ds_set_threads(in.threads);

    needle_model nm[2] = {{0}};
    needle_prompt_set ps = {0};
    ds_tokenizer *t = by_ids ? NULL : ds_tokenizer_load(no.model[0]);
    ds_model *m = by_ids || t ? ds_model_load(no.model[0]) : NULL;
    ds_config ca = {0};
    int nmodels = 0;
    if (!m || build_prompts(&no, t, ds_model_config(m), !in.no_special, &ps)) goto fail;
    ca = *ds_model_config(m);
    ca.json_text = NULL; /* a shallow copy that outlives the model: keep no pointers */
    if (by_ids && check_ids_in_vocabulary(&no, &ps, ca.vocab_size)) goto fail;
    if (ps.maxlen > ca.max_position_embeddings && !in.allow_long) {
        ds_fail("%s: the prompts have %d tokens, more than max_position_embeddings (%d); --allow-long runs them anyway",
                no.model[0], ps.maxlen, ca.max_position_embeddings);
        goto fail;
    }
    if (ps.maxlen > ca.max_position_embeddings)
        cli_warn("%d tokens exceed max_position_embeddings (%d): beyond the trained length", ps.maxlen,
                 ca.max_position_embeddings);
    for (int i = 0; i < 2 && no.model[i]; i++) {
        if (i == 1) {
            ds_model_free(m);
            if (!(m = ds_model_load(no.model[1])) ||
                check_same_vocabulary(&no, &ca, ds_model_config(m), &ps, !in.no_special))
                goto fail;
        }
        nm[i].name = i ? "B" : "A", nm[i].path = no.model[i], nm[i].arch = ds_arch_name(ds_model_config(m)->arch);
        nmodels = i + 1;
        if (run_model(&no, &in, i, m, t, &ps, &nm[i])) goto fail;
    }
    if (no.json) rc = needle_print_json(&no, &ps, t, nm, nmodels) ? cli_lib_error() : DS_EXIT_OK;
    else needle_print_table(&no, &ps, nm, nmodels), rc = DS_EXIT_OK;
    goto done;
fail:
    cli_lib_error();
done:
    for (int i = 0; i < nmodels; i++) free_model(&nm[i]);
    free_prompts(&ps);
    ds_model_free(m);
    ds_tokenizer_free(t);
    goto out;
bad:
    cli_lib_error();
out:
    free(no.depths);
    return rc;
}
