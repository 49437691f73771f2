/* diffscope lens MODEL (--prompt TEXT | --ids ...) [--token T] [--position P]: the logit lens
 * of every layer's residual stream and the direct logit attribution of a target logit to every
 * head (both paths of a differential head) and MLP (docs/lens.md). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "cli/lens.h"
#include "diffscope/bindings.h"

static const char *usage =
    "usage: diffscope lens MODEL (--prompt TEXT | --ids 1,2,3) [--token T] [--position P] [options]\n\n"
    "At token position P (default: the last), the logit lens: the final RMSNorm and lm_head\n"
    "applied to the embeddings and to the residual stream after every layer (top-k tokens and\n"
    "the target's rank, logit and probability per layer); and the direct logit attribution of\n"
    "the target's logit (or of logit(T) - logit(--vs-token)) to the embeddings, every head,\n"
    "o_proj's bias and every MLP, with the final norm's scale frozen at the final residual.\n"
    "For DiffLlama each differential head is also split into its softmax1 path and its\n"
    "lambda*softmax2 path. Definitions: docs/lens.md.\n\n";

static const char *epilog = "\nT is a token id or the text of exactly one token (tokenized without special tokens);\n"
                            "the default target is the model's top-1 prediction at P. P < 0 counts from the end.\n";

/* Token T (an id, or the text of one token) of MODEL_DIR's vocabulary of V; OPT names it in
 * messages. DS_EXIT_OK or the exit status after the message. */
static int parse_token(const char *model_dir, const char *opt, const char *s, int V, int *id) {
    long v;
    if (*s && strspn(s, "0123456789") == strlen(s)) {
        if (cli_parse_int(s, opt, 0, V - 1, &v)) return cli_error("%s: token id %s outside the vocabulary (0..%d)", opt, s, V - 1);
        *id = (int)v;
        return DS_EXIT_OK;
    }
    const ds_tokenizer *t = cli_tokenizer(model_dir);
    if (!t) {
        ds_err_prefix(opt);
        return cli_lib_error();
    }
    int *ids = NULL, n = 0;
    if (ds_tokenizer_encode(t, s, strlen(s), 0, &ids, &n)) {
        ds_err_prefix(opt);
        return cli_lib_error();
    }
    int rc = DS_EXIT_OK;
    if (n != 1) rc = cli_error("%s: '%s' is %d tokens of %s's tokenizer, not one (give one token or its id)", opt, s, n, model_dir);
    else *id = ids[0];
    free(ids);
    return rc;
}

/* Indices of the K largest of X[0..n) into TOP, largest first (ties: the lower index first). */
static void top_k(const double *x, int n, int k, int *top) {
    int have = 0;
    for (int i = 0; i < n; i++) {
        if (have == k && x[i] <= x[top[k - 1]]) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && x[top[j - 1]] < x[i]) top[j] = top[j - 1], j--;
        top[j] = i;
    }
}

/* The lens table of R from the lens logits LENS [L+1, V]. */
static int summarise_lens(lens_result *r, const double *lens) {
    const int R = r->L + 1, V = r->V, k = r->k;
    r->top_ids = malloc((size_t)R * k * sizeof(int));
    r->top_logit = malloc((size_t)R * k * sizeof(double));
    r->top_prob = malloc((size_t)R * k * sizeof(double));
    r->target_rank = malloc((size_t)R * sizeof(int));
    r->target_logit = malloc((size_t)R * sizeof(double));
    r->target_prob = malloc((size_t)R * sizeof(double));
    r->vs_logit = r->vs >= 0 ? malloc((size_t)R * sizeof(double)) : NULL;
    if (!r->top_ids || !r->top_logit || !r->top_prob || !r->target_rank || !r->target_logit || !r->target_prob ||
        (r->vs >= 0 && !r->vs_logit))
        return ds_failc(DS_ERR_NOMEM, "out of memory for the lens table");
    for (int l = 0; l < R; l++) {
        const double *x = lens + (size_t)l * V;
        int *top = r->top_ids + (size_t)l * k, rank = 1;
        top_k(x, V, k, top);
        double max = x[top[0]], sum = 0, t = x[r->target];
        for (int v = 0; v < V; v++) sum += exp(x[v] - max), rank += x[v] > t;
        for (int j = 0; j < k; j++) {
            r->top_logit[(size_t)l * k + j] = x[top[j]];
            r->top_prob[(size_t)l * k + j] = exp(x[top[j]] - max) / sum;
        }
        r->target_rank[l] = rank;
        r->target_logit[l] = t;
        r->target_prob[l] = exp(t - max) / sum;
        if (r->vs_logit) r->vs_logit[l] = x[r->vs];
    }
    return cli_token_labels(r->model_dir, r->top_ids, R * k, &r->top_text);
}

/* *TEXT: the printable piece of token ID (NULL without a tokenizer). */
static int piece(const char *model_dir, int id, char **text) {
    char **labels = NULL;
    if (cli_token_labels(model_dir, &id, 1, &labels)) return -1;
    *text = labels[0];
    free(labels);
    return 0;
}

static void free_result(lens_result *r) {
    cli_free_labels(r->top_text, (r->L + 1) * r->k);
    free(r->top_ids), free(r->top_logit), free(r->top_prob);
    free(r->target_rank), free(r->target_logit), free(r->target_prob), free(r->vs_logit);
    free(r->target_text), free(r->vs_text);
    ds_dla_free(&r->dla);
}

typedef struct {
    const char *token, *vs_token, *out_path;
    int position, json, force;
} lens_opts;

/* Runs the prompt up to the position through RUN's model with the lens attached, and fills R. */
static int run_lens(cli_run *run, const lens_opts *o, lens_result *r) {
    const ds_config *c = ds_model_config(run->m);
    int rc;
    if (o->token && (rc = parse_token(run->dir, "--token", o->token, c->vocab_size, &r->target))) return rc;
    if (o->vs_token && (rc = parse_token(run->dir, "--vs-token", o->vs_token, c->vocab_size, &r->vs))) return rc;
    ds_lens *x = ds_lens_begin(run->p, run->m, r->pos);
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    /* the position sees tokens 0..pos only: the rest of the prompt need not run */
    int failed = !x || !logits || ds_forward(run->s, run->ids, r->pos + 1, logits, 1, run->p) || ds_lens_finish(x);
    if (!logits && x) ds_failc(DS_ERR_NOMEM, "out of memory for the logits");
    if (!failed && !o->token) {
        r->target = 0;
        for (int v = 1; v < c->vocab_size; v++)
            if (logits[v] > logits[r->target]) r->target = v;
    }
    failed = failed || ds_lens_dla(x, r->target, r->vs, &r->dla) || summarise_lens(r, ds_lens_logits(x)) ||
             piece(run->dir, r->target, &r->target_text) || (r->vs >= 0 && piece(run->dir, r->vs, &r->vs_text));
    free(logits);
    ds_lens_free(x);
    return failed ? cli_lib_error() : DS_EXIT_OK;
}

static int report(const lens_opts *o, const lens_result *r) {
    if (o->out_path && lens_write_h5(o->out_path, o->force, r)) return cli_lib_error();
    if (o->json) return lens_print_json(r) ? cli_lib_error() : DS_EXIT_OK;
    lens_print_table(stdout, r);
    return DS_EXIT_OK;
}

static int lens_model(const char *model_dir, const cli_input *in, const lens_opts *o, int k) {
    cli_run run = {.want_labels = 1};
    ds_provenance *pv = NULL;
    int rc = cli_run_open(&run, model_dir, in, 0);
    if (rc) return rc;
    const ds_config *c = ds_model_config(run.m);
    lens_result r = {.model_dir = model_dir, .arch = ds_model_arch(run.m), .config_json = c->json_text,
                     .prompt = in->prompt, .ids = run.ids, .labels = run.labels, .T = run.n,
                     .pos = o->position < 0 ? run.n + o->position : o->position, .target = -1, .vs = -1,
                     .L = c->num_layers, .V = c->vocab_size, .k = k};
    if (r.pos < 0 || r.pos >= run.n)
        rc = cli_error("--position %d out of range for %d tokens (%d..%d)", o->position, run.n, -run.n, run.n - 1);
    else if (k > r.V)
        rc = cli_error("--top-k %d exceeds the vocabulary of %s (%d tokens)", k, model_dir, r.V);
    else if (!(rc = run_lens(&run, o, &r)) && !(r.provenance = pv = cli_provenance(&model_dir, 1, in)))
        rc = cli_lib_error();
    else if (!rc)
        rc = report(o, &r);
    ds_provenance_free(pv);
    free_result(&r);
    cli_run_close(&run);
    return rc;
}

int cmd_lens(int argc, char **argv) {
    cli_input in = {0};
    lens_opts o = {.position = -1};
    int k = 5, rc;
    const cli_opt opts[] = {
        CLI_INPUT_OPTS(&in),
        {"token", 0, CLI_STRING, &o.token, 0, 0, "T", "the target token (default: the model's top-1 at P)"},
        {"vs-token", 0, CLI_STRING, &o.vs_token, 0, 0, "T", "attribute logit(target) - logit(T) instead"},
        {"position", 0, CLI_INT, &o.position, INT_MIN + 1, INT_MAX, "P", "the token position (default -1: the last)"},
        {"top-k", 0, CLI_INT, &k, 1, 1000, "K", "tokens listed per layer (default 5)"},
        {"json", 0, CLI_FLAG, &o.json, 0, 0, NULL, "print the results as JSON"},
        {"output", 'o', CLI_STRING, &o.out_path, 0, 0, "FILE", "also write them to this HDF5 file"},
        {"force", 0, CLI_FLAG, &o.force, 0, 0, NULL, "overwrite FILE if it exists"},
        {0}};
    const cli_cmd cmd = {"lens", usage, epilog, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 1) return cli_error("lens needs one MODEL folder (see diffscope lens --help)");
    return lens_model(argv[optind], &in, &o, k);
}
