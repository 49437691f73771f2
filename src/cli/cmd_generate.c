/* diffscope generate MODEL (--prompt TEXT | --ids ...) [-n N] [sampling] [--json] */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "diffscope/generate.h"
#include <cjson/cJSON.h>

static const char *usage =
    "usage: diffscope generate MODEL (--prompt TEXT | --ids 1,2,3) [options]\n\n"
    "Generates tokens after the prompt with the KV cache and prints the new tokens: their\n"
    "text when MODEL has a tokenizer.json and the prompt was text, else their ids.\n\n";
/* The new tokens: as text when the prompt was text and the model has a tokenizer, else ids. */
static int report(const cli_run *run, int text_prompt, const int *out, int n_out, double secs, int json) {
    if (json) {
        cJSON *o = cJSON_CreateObject(), *timing = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "input_ids", cJSON_CreateIntArray(run->ids, run->n));
        cJSON_AddItemToObject(o, "output_ids", cJSON_CreateIntArray(out, n_out));
        cJSON_AddNumberToObject(timing, "seconds", secs);
        cJSON_AddNumberToObject(timing, "tokens_per_second", secs > 0 ? n_out / secs : 0.0);
        cJSON_AddItemToObject(o, "timing", timing);
        return cli_print_json(o);
    }
    size_t len = 0;
    char *text = text_prompt ? cli_detokenize(run->dir, out, n_out, &len) : NULL;
    if (text) {
        fwrite(text, 1, len, stdout); /* NULs and all */
        putchar('\n');
    } else {
        for (int i = 0; i < n_out; i++) printf("%s%d", i ? ", " : "", out[i]);
        printf("\n");
    }
    free(text);
    return 0;
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
    cli_run run = {0};
    if ((rc = cli_run_open(&run, argv[optind], &in, g.max_new))) return rc;
    int *out = malloc(((size_t)g.max_new + 1) * sizeof *out), n_out = 0;
    double t0 = cli_now();
    int failed = out ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
    if (!failed && g.max_new > 0) failed = ds_generate(run.s, run.ids, run.n, &g, out, &n_out, run.p, NULL, NULL);
    if (!failed) failed = report(&run, in.prompt != NULL, out, n_out, cli_now() - t0, json);
    rc = failed ? cli_lib_error() : DS_EXIT_OK;
    free(out);
    cli_run_close(&run);
    return rc;
}
