/* diffscope dump MODEL (--prompt TEXT | --ids ...) -o out.h5: every attention map, λ,
 * GroupNorm statistic and outlier statistic, streamed to HDF5 (docs/dump-format.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "diffscope/dump.h"

static const char *help =
    "usage: diffscope dump MODEL (--prompt TEXT | --ids 1,2,3) -o OUT.h5 [options]\n\n"
    "Runs the prompt once and writes every attention map of the chosen layers and heads to\n"
    "HDF5, layer by layer as it is computed: for DiffLlama both softmax maps of each\n"
    "differential head, their lambda-weighted difference, lambda, the GroupNorm statistics;\n"
    "for Llama the softmax maps; for both the activation outliers. Layout: docs/dump-format.md.\n\n" CLI_INPUT_HELP
    "  -o, --output FILE      the HDF5 file (written to a temporary name, renamed when done)\n"
    "  --force                overwrite FILE if it exists\n"
    "  --layers LIST          layers to dump, e.g. 0,3-5 (default: all)\n"
    "  --heads LIST           heads to dump (differential heads for DiffLlama; default: all)\n"
    "  --what LIST            softmax,diff,scores,groupnorm,outliers (default: all but scores)\n"
    "  --dtype f32|f16        storage of the maps (default f32)\n"
    "  --compress N           gzip level 0-9 with shuffle (default 0)\n"
    "  --topk K               outliers kept per statistic (default 100)\n"
    "  --logits               also write /logits [T, V]\n"
    "  --hidden               also write /hidden_states [L+1, T, D]\n"
    "  --json                 print a JSON summary on stdout\n"
    "  -h, --help             this text\n";

enum { OPT_FORCE = OPT_INPUT_LAST, OPT_LAYERS, OPT_HEADS, OPT_WHAT, OPT_DTYPE, OPT_COMPRESS, OPT_TOPK, OPT_LOGITS,
       OPT_HIDDEN, OPT_JSON };

int cmd_dump(int argc, char **argv) {
    static const struct option opts[] = {
        CLI_INPUT_LONGOPTS,
        {"output", required_argument, 0, 'o'},   {"force", no_argument, 0, OPT_FORCE},
        {"layers", required_argument, 0, OPT_LAYERS}, {"heads", required_argument, 0, OPT_HEADS},
        {"what", required_argument, 0, OPT_WHAT}, {"dtype", required_argument, 0, OPT_DTYPE},
        {"compress", required_argument, 0, OPT_COMPRESS}, {"topk", required_argument, 0, OPT_TOPK},
        {"logits", no_argument, 0, OPT_LOGITS}, {"hidden", no_argument, 0, OPT_HIDDEN},
        {"json", no_argument, 0, OPT_JSON},       {"help", no_argument, 0, 'h'},
        {0}};
    cli_input in = {0};
    ds_dump_opts d = {.what = DS_DUMP_DEFAULT, .topk = 100, .tool_version = DS_VERSION};
    const char *out_path = NULL;
    int *layers = NULL, *heads = NULL, json = 0, o, rc = DS_EXIT_INPUT;
    long v;
    optind = 1;
    while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        int r = cli_input_option(&in, o, optarg);
        if (r < 0) goto bad;
        if (r) continue;
        switch (o) {
        case 'o': out_path = optarg; break;
        case OPT_FORCE: d.force = 1; break;
        case OPT_LAYERS:
            free(layers);
            if (cli_parse_list(optarg, "--layers", &layers, &d.nlayers)) goto bad;
            d.layers = layers;
            break;
        case OPT_HEADS:
            free(heads);
            if (cli_parse_list(optarg, "--heads", &heads, &d.nheads)) goto bad;
            d.heads = heads;
            break;
        case OPT_WHAT:
            if (ds_dump_parse_what(optarg, &d.what)) goto bad;
            break;
        case OPT_DTYPE:
            if (strcmp(optarg, "f32") && strcmp(optarg, "f16")) {
                ds_fail("--dtype: '%s' is not f32 or f16", optarg);
                goto bad;
            }
            d.f16 = !strcmp(optarg, "f16");
            break;
        case OPT_COMPRESS:
            if (cli_parse_int(optarg, "--compress", 0, 9, &v)) goto bad;
            d.compress = (int)v;
            break;
        case OPT_TOPK:
            if (cli_parse_int(optarg, "--topk", 1, 1000000, &v)) goto bad;
            d.topk = (int)v;
            break;
        case OPT_LOGITS: d.logits = 1; break;
        case OPT_HIDDEN: d.hidden = 1; break;
        case OPT_JSON: json = 1; break;
        case 'h':
            fputs(help, stdout);
            rc = DS_EXIT_OK;
            goto out;
        default: fputs(help, stderr); goto out;
        }
    }
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
    goto out;
bad:
    rc = cli_lib_error();
out:
    free(layers);
    free(heads);
    return rc;
}
