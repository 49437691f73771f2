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
#include "io/provenance.h"
#include <cjson/cJSON.h>

static const char *usage =
    "usage: diffscope dump MODEL (--prompt TEXT | --ids 1,2,3) -o OUT.h5 [options]\n\n"
    "Runs the prompt once and writes every attention map of the chosen layers and heads to\n"
    "HDF5, layer by layer as it is computed: for DiffLlama both softmax maps of each\n"
    "differential head, their lambda-weighted difference, lambda, the GroupNorm statistics;\n"
    "for Llama the softmax maps; for both the activation outliers. Layout: docs/dump-format.md.\n\n";

static int parse_what(void *what, const char *arg) { return ds_dump_parse_what(arg, what); }

/* The --help text after the options: the --what items, from the dump's table of quantities. */
static const char *what_items(char *buf, size_t size) {
    snprintf(buf, size, "\n--what items:\n");
    const char *name, *line;
    for (int i = 0; (name = ds_dump_quantity(i, &line)); i++)
        snprintf(buf + strlen(buf), size - strlen(buf), "  %-16s %s\n", name, line);
    snprintf(buf + strlen(buf), size - strlen(buf), "  %-16s %s\n", "all", "every item above that the model has");
    snprintf(buf + strlen(buf), size - strlen(buf),
             "An item the model lacks (diff, groupnorm, cancelled_share for Llama) is refused (exit 2);\n"
             "the default and `all` keep only what it has.\n");
    return buf;
}

/* The layers and heads the user chose are in the model. */
static int check_selection(const ds_dump_opts *d, const ds_config *c) {
    if (ds_dump_check_layers(c, d->layers, d->nlayers)) {
        ds_err_prefix("--layers");
        return -1;
    }
    if (ds_dump_check_heads(c, d->heads, d->nheads)) {
        ds_err_prefix("--heads");
        return -1;
    }
    return 0;
}

/* Streams the maps of one forward pass of RUN's prompt into OUT_PATH. */
static int write_dump(cli_run *run, const ds_dump_opts *d, const char *out_path) {
    const ds_config *c = ds_model_config(run->m);
    float *logits = NULL;
    if (d->logits && !(logits = malloc((size_t)run->n * c->vocab_size * sizeof(float))))
        return ds_failc(DS_ERR_NOMEM, "out of memory for the logits");
    ds_dump *dump = ds_dump_begin(out_path, d, run->m, run->ids, run->n, run->p);
    int rc = dump ? 0 : -1;
    if (dump) {
        cli_progress progress;
        cli_progress_start(&progress, "dump", c->num_layers);
        rc = cli_add_layer_progress(run->p, &progress);
        if (!rc) rc = ds_forward(run->s, run->ids, run->n, logits, 0, run->p);
        cli_progress_end(&progress);
        if (rc) ds_dump_abort(dump);
        else rc = ds_dump_finish(dump, logits);
    }
    free(logits);
    return rc;
}

/* The file's size, and the disk space it takes, which is less where chunks of zeros were never
 * written (docs/dump-format.md, "Storage"). */
static int report(const char *out_path, int tokens, double secs, int json, const ds_provenance *pv) {
    struct stat st;
    const int known = !stat(out_path, &st);
    const long long size = known ? (long long)st.st_size : -1, disk = known ? (long long)st.st_blocks * 512 : -1;
    if (!json) {
        char on_disk[48] = "";
        if (disk >= 0 && disk < size - size / 100) snprintf(on_disk, sizeof on_disk, " (%.1f MB on disk)", disk / 1e6);
        fprintf(stderr, "diffscope: wrote %s: %d tokens, %.1f MB%s, %.2f s\n", out_path, tokens, size / 1e6, on_disk, secs);
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", out_path);
    cJSON_AddNumberToObject(o, "tokens", tokens);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "bytes", (double)size);
    cJSON_AddNumberToObject(o, "disk_bytes", (double)disk);
    if (ds_provenance_add_to_json(pv, o)) {
        cJSON_Delete(o);
        return -1;
    }
    return cli_print_json(o);
}

static int run_dump(const char *model_dir, const cli_input *in, ds_dump_opts *d, const char *out_path, int json) {
    cli_run run = {.want_labels = 1};
    int rc = cli_run_open(&run, model_dir, in, 0);
    if (rc) return rc;
    ds_provenance *pv = cli_provenance(&model_dir, 1, in);
    d->prompt = in->prompt;
    d->provenance = pv;
    d->token_text = run.labels;
    double t0 = cli_now();
    if (!pv || check_selection(d, ds_model_config(run.m)) || write_dump(&run, d, out_path) ||
        report(out_path, run.n, cli_now() - t0, json, pv))
        rc = cli_lib_error();
    ds_provenance_free(pv);
    cli_run_close(&run);
    return rc;
}

int cmd_dump(int argc, char **argv) {
    cli_input in = {0};
    ds_dump_opts d = {.what = DS_DUMP_DEFAULT, .topk = 100};
    const char *out_path = NULL, *dtype = "f32";
    cli_list layers = {0}, heads = {0};
    int json = 0, rc = DS_EXIT_INPUT;
    const cli_opt opts[] = {
        CLI_INPUT_OPTS(&in),
        {"output", 'o', CLI_STRING, &out_path, 0, 0, "FILE", "the HDF5 file (written to a temporary name, renamed when done)"},
        {"force", 0, CLI_FLAG, &d.force, 0, 0, NULL, "overwrite FILE if it exists; write it even when its estimated\nsize exceeds the free space"},
        {"layers", 0, CLI_LIST, &layers, 0, INT_MAX, "LIST", "layers to dump, e.g. 0,3-5 (default: all)"},
        {"heads", 0, CLI_LIST, &heads, 0, INT_MAX, "LIST", "heads to dump (differential heads for DiffLlama; default: all)"},
        {"what", 0, CLI_CALL, &d.what, 0, 0, "LIST", "the items below to write, comma-separated (default: all but scores)",
         parse_what},
        {"dtype", 0, CLI_CHOICE, &dtype, 0, 0, "f32|f16", "storage of the maps (default f32)"},
        {"compress", 0, CLI_INT, &d.compress, 0, 9, "N", "gzip level 0-9 with shuffle (default 0)"},
        {"topk", 0, CLI_INT, &d.topk, 1, 1000000, "K", "outliers kept per statistic (default 100)"},
        {"logits", 0, CLI_FLAG, &d.logits, 0, 0, NULL, "also write /logits [T, V]"},
        {"hidden", 0, CLI_FLAG, &d.hidden, 0, 0, NULL, "also write /hidden_states [L+1, T, D]"},
        {"json", 0, CLI_FLAG, &json, 0, 0, NULL, "print a JSON summary on stdout"},
        {0}};
    char epilog[1024];
    const cli_cmd cmd = {"dump", usage, what_items(epilog, sizeof epilog), opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    d.f16 = !strcmp(dtype, "f16");
    d.layers = layers.v;
    d.nlayers = layers.n;
    d.heads = heads.v;
    d.nheads = heads.n;
    if (optind != argc - 1) rc = cli_error("dump needs one MODEL folder (see diffscope dump --help)");
    else if (!out_path) rc = cli_error("dump needs -o OUT.h5");
    else rc = run_dump(argv[optind], &in, &d, out_path, json);
    cli_opts_free(opts);
    return rc;
}
