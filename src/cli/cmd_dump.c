/* diffscope dump MODEL (--prompt TEXT | --ids ...) -o out.h5: every attention map, λ,
 * GroupNorm statistic and outlier statistic, streamed to HDF5 (docs/dump-format.md). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "diffscope/dump.h"

static const char *usage =
    "usage: diffscope dump MODEL (--prompt TEXT | --ids 1,2,3) -o OUT.h5 [options]\n\n"
    "Runs the prompt once and writes every attention map of the chosen layers and heads to\n"
    "HDF5, layer by layer as it is computed: for DiffLlama both softmax maps of each\n"
    "differential head, their lambda-weighted difference, lambda, the GroupNorm statistics;\n"
    "for Llama the softmax maps; for both the activation outliers. Layout: docs/dump-format.md.\n\n";

static int parse_what(void *what, const char *arg) { return ds_dump_parse_what(arg, what); }

int cmd_dump(int argc, char **argv) {
    cli_input in = {0};
    ds_dump_opts d = {.what = DS_DUMP_DEFAULT, .topk = 100, .tool_version = DS_VERSION};
    const char *out_path = NULL, *dtype = "f32";
    cli_list layers = {0}, heads = {0};
    int json = 0, rc = DS_EXIT_INPUT;
    const cli_opt opts[] = {
        CLI_INPUT_OPTS(&in),
        {"output", 'o', CLI_STRING, &out_path, 0, 0, "FILE", "the HDF5 file (written to a temporary name, renamed when done)"},
        {"force", 0, CLI_FLAG, &d.force, 0, 0, NULL, "overwrite FILE if it exists"},
        {"layers", 0, CLI_LIST, &layers, 0, INT_MAX, "LIST", "layers to dump, e.g. 0,3-5 (default: all)"},
        {"heads", 0, CLI_LIST, &heads, 0, INT_MAX, "LIST", "heads to dump (differential heads for DiffLlama; default: all)"},
        {"what", 0, CLI_CALL, &d.what, 0, 0, "LIST", "softmax,diff,scores,groupnorm,outliers (default: all but scores)",
         parse_what},
        {"dtype", 0, CLI_CHOICE, &dtype, 0, 0, "f32|f16", "storage of the maps (default f32)"},
        {"compress", 0, CLI_INT, &d.compress, 0, 9, "N", "gzip level 0-9 with shuffle (default 0)"},
        {"topk", 0, CLI_INT, &d.topk, 1, 1000000, "K", "outliers kept per statistic (default 100)"},
        {"logits", 0, CLI_FLAG, &d.logits, 0, 0, NULL, "also write /logits [T, V]"},
        {"hidden", 0, CLI_FLAG, &d.hidden, 0, 0, NULL, "also write /hidden_states [L+1, T, D]"},
        {"json", 0, CLI_FLAG, &json, 0, 0, NULL, "print a JSON summary on stdout"},
        {0}};
    const cli_cmd cmd = {"dump", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    rc = DS_EXIT_INPUT;
    d.f16 = !strcmp(dtype, "f16");
    d.layers = layers.v;
    d.nlayers = layers.n;
    d.heads = heads.v;
    d.nheads = heads.n;
    if (optind != argc - 1) {
        cli_error("dump needs one MODEL folder (see diffscope dump --help)");
        goto out;
    }
    if (!out_path) {
        cli_error("dump needs -o OUT.h5");
        goto out;
    }
    int *ids = NULL, n = 0;
    char **labels = NULL;
    ds_model *m = cli_load(argv[optind], &in, &ids, &n, 0, &labels, &rc);
    if (!m) goto out;
    const ds_config *c = ds_model_config(m);
    d.prompt = in.prompt;
    d.model_path = argv[optind];
    d.token_text = labels;
    float *logits = d.logits ? malloc((size_t)n * c->vocab_size * sizeof(float)) : NULL;
    ds_session *s = ds_session_new(m, n, in.allow_long);
    ds_probes *p = ds_probes_new();
    ds_dump *dump = NULL;
    cli_progress progress;
    double t0 = cli_now();
    rc = DS_EXIT_INPUT;
    if (!s || !p || (d.logits && !logits)) {
        if (s) ds_fail("out of memory");
        rc = cli_lib_error();
    } else if (cli_add_interventions(&in, m, p) || !(dump = ds_dump_begin(out_path, &d, m, ids, n, p))) {
        rc = cli_lib_error();
    } else if (cli_progress_start(&progress, "dump", c->num_layers), cli_add_layer_progress(p, &progress) ||
               ds_forward(s, ids, n, logits, 0, p)) {
        cli_progress_end(&progress);
        rc = cli_lib_error();
        ds_dump_abort(dump);
    } else if (cli_progress_end(&progress), ds_dump_finish(dump, logits)) {
        rc = cli_lib_error();
    } else {
        struct stat st;
        double secs = cli_now() - t0;
        long long size = stat(out_path, &st) ? -1 : (long long)st.st_size;
        if (json)
            printf("{\"output\": \"%s\", \"tokens\": %d, \"seconds\": %.6f, \"bytes\": %lld}\n", out_path, n, secs, size);
        else
            fprintf(stderr, "diffscope: wrote %s: %d tokens, %.1f MB, %.2f s\n", out_path, n, size / 1e6, secs);
        rc = DS_EXIT_OK;
    }
    ds_probes_free(p);
    ds_session_free(s);
    free(logits);
    cli_free_labels(labels, n);
    free(ids);
    ds_model_free(m);
out:
    cli_opts_free(opts);
    return rc;
}
