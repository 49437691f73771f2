/* diffscope generate MODEL (--prompt TEXT | --ids ...) [-n N] [sampling] [--json] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "diffscope/generate.h"

static const char *help =
    "usage: diffscope generate MODEL (--prompt TEXT | --ids 1,2,3) [options]\n\n"
    "Generates tokens after the prompt with the KV cache and prints the new tokens: their\n"
    "text when MODEL has a tokenizer.json and the prompt was text, else their ids.\n\n" CLI_INPUT_HELP
    "  -n, --max-new-tokens N  tokens to generate (default 32)\n"
    "  --greedy                argmax decoding (the default)\n"
    "  --temperature T         sample from softmax(logits / T) (T > 0)\n"
    "  --top-p P               nucleus sampling mass (default 1)\n"
    "  --seed S                sampling seed (default 0)\n"
    "  --ignore-eos            do not stop at the end-of-sequence token\n"
    "  --json                  {\"input_ids\", \"output_ids\", \"timing\"} on stdout\n"
    "  -h, --help              this text\n";

enum { OPT_GREEDY = OPT_INPUT_LAST, OPT_TEMP, OPT_TOPP, OPT_SEED, OPT_IGNORE_EOS, OPT_JSON };

static void print_ids(const int *ids, int n) {
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
}

int cmd_generate(int argc, char **argv) {
    static const struct option opts[] = {
        CLI_INPUT_LONGOPTS,
        {"max-new-tokens", required_argument, 0, 'n'},
        {"greedy", no_argument, 0, OPT_GREEDY},
        {"temperature", required_argument, 0, OPT_TEMP},
        {"top-p", required_argument, 0, OPT_TOPP},
        {"seed", required_argument, 0, OPT_SEED},
        {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
        {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, 'h'},
        {0}};
    cli_input in = {0};
    ds_gen_opts g = {.max_new = 32, .temperature = 0, .top_p = 1, .seed = 0};
    int json = 0, o;
    long v;
    double d;
    optind = 1;
    while ((o = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        int r = cli_input_option(&in, o, optarg);
        if (r < 0) return cli_lib_error();
        if (r) continue;
        switch (o) {
        case 'n':
            if (cli_parse_int(optarg, "--max-new-tokens", 0, 1 << 20, &v)) return cli_lib_error();
            g.max_new = (int)v;
            break;
        case OPT_GREEDY: g.temperature = 0; break;
        case OPT_TEMP:
            if (cli_parse_double(optarg, "--temperature", &d) || d < 0)
                return cli_error("--temperature: '%s' is not a number >= 0", optarg);
            g.temperature = (float)d;
            break;
        case OPT_TOPP:
            if (cli_parse_double(optarg, "--top-p", &d) || d <= 0 || d > 1)
                return cli_error("--top-p: '%s' is not a number in (0, 1]", optarg);
            g.top_p = (float)d;
            break;
        case OPT_SEED:
            if (cli_parse_int(optarg, "--seed", 0, 0x7fffffffL, &v)) return cli_lib_error();
            g.seed = (uint64_t)v;
            break;
        case OPT_IGNORE_EOS: g.ignore_eos = 1; break;
        case OPT_JSON: json = 1; break;
        case 'h': fputs(help, stdout); return DS_EXIT_OK;
        default: fputs(help, stderr); return DS_EXIT_INPUT;
        }
    }
    if (optind != argc - 1) return cli_error("generate needs one MODEL folder (see diffscope generate --help)");
    int *ids = NULL, n = 0, rc;
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
