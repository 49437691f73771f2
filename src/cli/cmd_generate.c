/* diffscope generate MODEL (--prompt TEXT | --ids ...) [-n N] [sampling] [--json] */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "diffscope/generate.h"

static const char *usage =
    "usage: diffscope generate MODEL (--prompt TEXT | --ids 1,2,3) [options]\n\n"
    "Generates tokens after the prompt with the KV cache and prints the new tokens: their\n"
    "text when MODEL has a tokenizer.json and the prompt was text, else their ids.\n\n";
static void print_ids(const int *ids, int n) {
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
}

static int greedy(void *temperature, const char *arg) {
    *(float *)temperature = 0;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    cli_input in = {0};
    ds_gen_opts g = {.max_new = 32, .temperature = 0, .top_p = 1, .seed = 0};
    int json = 0, seed = 0, rc;
    const cli_opt opts[] = {
        CLI_INPUT_OPTS(&in),
        {"max-new-tokens", 'n', CLI_INT, &g.max_new, 0, 1 << 20, "N", "tokens to generate (default 32)"},
        {"greedy", 0, CLI_CALL, &g.temperature, 0, 0, NULL, "argmax decoding (the default)", greedy},
        {"temperature", 0, CLI_FLOAT, &g.temperature, 0, HUGE_VAL, "T", "sample from softmax(logits / T) (T > 0)"},
        {"top-p", 0, CLI_FLOAT, &g.top_p, 0, 1, "P", "nucleus sampling mass (default 1)", NULL, CLI_LO_OPEN},
        {"seed", 0, CLI_INT, &seed, 0, INT_MAX, "S", "sampling seed (default 0)"},
        {"ignore-eos", 0, CLI_FLAG, &g.ignore_eos, 0, 0, NULL, "do not stop at the end-of-sequence token"},
        {"json", 0, CLI_FLAG, &json, 0, 0, NULL, "{\"input_ids\", \"output_ids\", \"timing\"} on stdout"},
        {0}};
    const cli_cmd cmd = {"generate", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    g.seed = (uint64_t)seed;
    if (optind != argc - 1) return cli_error("generate needs one MODEL folder (see diffscope generate --help)");
    int *ids = NULL, n = 0;
    ds_model *m = cli_load(argv[optind], &in, &ids, &n, g.max_new, NULL, &rc);
    if (!m) return rc;
    ds_session *s = ds_session_new(m, n + g.max_new > 0 ? n + g.max_new : 1, in.allow_long);
    ds_probes *p = ds_probes_new();
    int *out = malloc(((size_t)g.max_new + 1) * sizeof *out), n_out = 0;
    double t0 = cli_now();
    rc = DS_EXIT_OK;
    if (!s || !out || !p || cli_add_interventions(&in, m, p)) rc = cli_lib_error();
    else if (g.max_new > 0 && ds_generate(s, ids, n, &g, out, &n_out, p, NULL, NULL)) rc = cli_lib_error();
    double secs = cli_now() - t0;
    char *text = rc == DS_EXIT_OK && in.prompt ? cli_detokenize(argv[optind], out, n_out) : NULL;
    if (rc == DS_EXIT_OK) {
        if (json) {
            printf("{\"input_ids\": [");
            print_ids(ids, n);
            printf("], \"output_ids\": [");
            print_ids(out, n_out);
            printf("], \"timing\": {\"seconds\": %.6f, \"tokens_per_second\": %.3f}}\n", secs,
                   secs > 0 ? n_out / secs : 0.0);
        } else if (text) {
            printf("%s\n", text); /* text prompt in, text out */
        } else {
            print_ids(out, n_out);
            printf("\n");
        }
    }
    free(text);
    free(out);
    free(ids);
    ds_probes_free(p);
    ds_session_free(s);
    ds_model_free(m);
    return rc;
}
