/* diffscope logits MODEL (--ids ... | --prompt ...) -o out.h5: /logits [T, V] and
 * /hidden_states [L+1, T, D] in transformers' convention. The minimal numeric dump that the
 * golden tests compare with transformers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "base/fileio.h"
#include "io/h5out.h"
#include "io/provenance.h"
#include "diffscope/hidden_states.h"

static const char *usage =
    "usage: diffscope logits MODEL (--ids 1,2,3 | --prompt TEXT) -o OUT.h5 [options]\n\n"
    "Runs the prompt and writes /logits [T, V] and /hidden_states [L+1, T, D] (float32):\n"
    "entry 0 = embeddings, entry i = output of layer i-1, the last entry after the final norm,\n"
    "as transformers' output_hidden_states.\n\n";

/* /logits, /hidden_states, /input_ids and /provenance, committed to OUT_PATH. */
static int write_file(const char *out_path, int force, const cli_run *run, const cli_input *in, const float *logits,
                      const float *hidden) {
    const ds_config *c = ds_model_config(run->m);
    ds_provenance *pv = cli_provenance(&run->dir, 1, in);
    ds_h5out out;
    if (!pv || ds_h5out_open(&out, out_path, force)) return ds_provenance_free(pv), -1;
    hsize_t d2[2] = {(hsize_t)run->n, (hsize_t)c->vocab_size};
    hsize_t d3[3] = {(hsize_t)c->num_layers + 1, (hsize_t)run->n, (hsize_t)c->hidden_size};
    hsize_t d1[1] = {(hsize_t)run->n};
    if (ds_h5_write_f32(out.file, "logits", 2, d2, logits) || ds_h5_write_f32(out.file, "hidden_states", 3, d3, hidden) ||
        ds_h5_write_i32(out.file, "input_ids", 1, d1, run->ids) || ds_provenance_write_h5(pv, out.file)) {
        ds_provenance_free(pv);
        ds_h5out_abort(&out);
        return -1;
    }
    ds_provenance_free(pv);
    return ds_h5out_commit(&out);
}

int cmd_logits(int argc, char **argv) {
    cli_input in = {0};
    const char *out_path = NULL;
    int force = 0, rc;
    const cli_opt opts[] = {CLI_INPUT_OPTS(&in),
                            {"output", 'o', CLI_STRING, &out_path, 0, 0, "FILE", "the HDF5 file to write"},
                            {"force", 0, CLI_FLAG, &force, 0, 0, NULL, "overwrite FILE if it exists; write it even when its estimated\nsize exceeds the free space"},
                            {0}};
    const cli_cmd cmd = {"logits", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 1) return cli_error("logits needs one MODEL folder (see diffscope logits --help)");
    if (!out_path) return cli_error("logits needs -o OUT.h5");
    cli_run run = {0};
    if ((rc = cli_run_open(&run, argv[optind], &in, 0))) return rc;
    const ds_config *c = ds_model_config(run.m);
    ds_hidden_states hs = {NULL, run.n, c->hidden_size, c->num_layers};
    float *logits = malloc((size_t)run.n * c->vocab_size * sizeof(float));
    hs.out = malloc((size_t)(c->num_layers + 1) * run.n * c->hidden_size * sizeof(float));
    int failed = !logits || !hs.out ? ds_failc(DS_ERR_NOMEM, "out of memory for the logits and hidden states") : 0;
    /* Refused before the forward pass when the file cannot fit (docs/reliability.md). */
    double bytes = ((double)run.n * c->vocab_size + (double)(c->num_layers + 1) * run.n * c->hidden_size) * sizeof(float);
    if (!failed && !force) failed = ds_check_free_space(out_path, bytes);
    if (!failed)
        failed = ds_hidden_states_attach(run.p, &hs) || ds_forward(run.s, run.ids, run.n, logits, 0, run.p) ||
                 write_file(out_path, force, &run, &in, logits, hs.out);
    rc = failed ? cli_lib_error() : DS_EXIT_OK;
    free(hs.out);
    free(logits);
    cli_run_close(&run);
    return rc;
}
