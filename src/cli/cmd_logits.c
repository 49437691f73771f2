/* diffscope logits MODEL (--ids ... | --prompt ...) -o out.h5: /logits [T, V] and
 * /hidden_states [L+1, T, D] in transformers' convention. The minimal numeric dump that the
 * golden tests compare with transformers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "io/h5out.h"
#include "diffscope/hidden_states.h"

static const char *usage =
    "usage: diffscope logits MODEL (--ids 1,2,3 | --prompt TEXT) -o OUT.h5 [options]\n\n"
    "Runs the prompt and writes /logits [T, V] and /hidden_states [L+1, T, D] (float32):\n"
    "entry 0 = embeddings, entry i = output of layer i-1, the last entry after the final norm,\n"
    "as transformers' output_hidden_states.\n\n";

int cmd_logits(int argc, char **argv) {
    cli_input in = {0};
    const char *out_path = NULL;
    int force = 0, rc;
    const cli_opt opts[] = {CLI_INPUT_OPTS(&in),
                            {"output", 'o', CLI_STRING, &out_path, 0, 0, "FILE", "the HDF5 file to write"},
                            {"force", 0, CLI_FLAG, &force, 0, 0, NULL, "overwrite FILE if it exists"},
                            {0}};
    const cli_cmd cmd = {"logits", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 1) return cli_error("logits needs one MODEL folder (see diffscope logits --help)");
    if (!out_path) return cli_error("logits needs -o OUT.h5");
    int *ids = NULL, n = 0;
    ds_model *m = cli_load(argv[optind], &in, &ids, &n, 0, NULL, &rc);
    if (!m) return rc;
    const ds_config *c = ds_model_config(m);
    ds_hidden_states hs = {NULL, n, c->hidden_size, c->num_layers};
    float *logits = malloc((size_t)n * c->vocab_size * sizeof(float));
    hs.out = malloc((size_t)(c->num_layers + 1) * n * c->hidden_size * sizeof(float));
    ds_session *s = ds_session_new(m, n, in.allow_long);
    ds_probes *p = ds_probes_new();
    ds_h5out out;
    rc = DS_EXIT_INPUT;
    if (!logits || !hs.out || !s || !p) {
        if (s) ds_fail("out of memory");
        rc = cli_lib_error();
    } else if (cli_add_interventions(&in, m, p) || ds_hidden_states_attach(p, &hs) ||
               ds_forward(s, ids, n, logits, 0, p) || ds_h5out_open(&out, out_path, force)) {
        rc = cli_lib_error();
    } else {
        hsize_t d2[2] = {(hsize_t)n, (hsize_t)c->vocab_size};
        hsize_t d3[3] = {(hsize_t)c->num_layers + 1, (hsize_t)n, (hsize_t)c->hidden_size};
        hsize_t d1[1] = {(hsize_t)n};
        if (ds_h5_write_f32(out.file, "logits", 2, d2, logits) ||
            ds_h5_write_f32(out.file, "hidden_states", 3, d3, hs.out) ||
            ds_h5_write_i32(out.file, "input_ids", 1, d1, ids) ||
            ds_h5_attr_str(out.file, "model_path", argv[optind])) {
            ds_h5out_abort(&out);
            rc = cli_lib_error();
        } else if (ds_h5out_commit(&out)) {
            rc = cli_lib_error();
        } else {
            rc = DS_EXIT_OK;
        }
    }
    ds_probes_free(p);
    ds_session_free(s);
    free(hs.out);
    free(logits);
    free(ids);
    ds_model_free(m);
    return rc;
}
