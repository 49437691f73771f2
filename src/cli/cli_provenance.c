/* The command line's part of provenance records (diffscope/provenance.h): the argv of this
 * process, and the interventions in the words of the options that asked for them. */
#include "cli/cli_input.h"
#include <stdio.h>
#include "diffscope/provenance.h"

static int saved_argc;
static char **saved_argv;

void cli_set_command_line(int argc, char **argv) {
    saved_argc = argc;
    saved_argv = argv;
}

/* IN's --lambda-override and --ablate-head, as given. */
static int add_interventions(ds_provenance *pv, const cli_input *in) {
    char text[64];
    for (int i = 0; i < in->n_lambda; i++) {
        snprintf(text, sizeof text, "lambda-override %d=%.9g", in->lambda_layer[i], in->lambda_value[i]);
        if (ds_provenance_add_intervention(pv, text)) return -1;
    }
    for (int i = 0; i < in->n_ablate; i++) {
        snprintf(text, sizeof text, "ablate-head %d.%d", in->ablate_layer[i], in->ablate_head[i]);
        if (ds_provenance_add_intervention(pv, text)) return -1;
    }
    return 0;
}

ds_provenance *cli_provenance(const char *const *models, int nmodels, const cli_input *in) {
    ds_provenance *pv = ds_provenance_new();
    int rc = !pv || ds_provenance_set_command(pv, saved_argc, saved_argv) || (in && add_interventions(pv, in));
    for (int i = 0; i < nmodels && !rc; i++) rc = ds_provenance_add_model(pv, models[i]);
    if (rc) {
        ds_provenance_free(pv);
        return NULL;
    }
    return pv;
}
