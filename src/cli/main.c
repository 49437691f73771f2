/* diffscope: command dispatch, global --help and --version. */
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_input.h"
#include "cli/commands.h"
#include "base/tmpfiles.h"
#include "io/outfile.h"

static const struct {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} commands[] = {
    {"info", cmd_info, "architecture, shapes, parameters, dtype and λ of every layer"},
    {"generate", cmd_generate, "generate tokens (greedy or sampled) with the KV cache"},
    {"logits", cmd_logits, "write logits and hidden states of a prompt to HDF5"},
    {"dump", cmd_dump, "write every attention map, lambda, GroupNorm and outlier statistic to HDF5"},
    {"init", cmd_init, "write a random-weight checkpoint of a real shape (kajuma, small, tiny)"},
    {"bench", cmd_bench, "prefill/decode speed, GFLOP/s against sgemm, peak memory, dump cost"},
    {"verify", cmd_verify, "compare two HDF5 files dataset by dataset (regression check)"},
    {"view", cmd_view, "interactive viewer of a dump's attention maps (diffscope-view)"},
    {"lens", cmd_lens, "logit lens of every layer and direct logit attribution to heads and MLPs"},
    {"compare", cmd_compare, "attention on a span vs noise per layer (diff vs softmax), Table-5 outliers"},
    {"needle", cmd_needle, "key-information retrieval by depth: top-1 answer and answer/noise mass"},
    {"sweep", cmd_sweep, "compare's statistics over a data set of prompts, on one process or MPI ranks"},
    {"patch", cmd_patch, "activation patching: clean into corrupted run per layer, position, head, lambda"},
    {"tokenize", cmd_tokenize, "text -> token ids with a tokenizer.json (HF tokenizers exactly)"},
    {"detokenize", cmd_detokenize, "token ids -> text with a tokenizer.json"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: diffscope COMMAND [OPTIONS] ...\n\n"
               "Look inside Differential-Transformer (DiffLlama) and Llama checkpoints.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'diffscope COMMAND --help' describes a command.\n"
               "exit status: 0 ok, 1 a check failed (verify), 2 bad input, 3 internal error\n");
}

/* Results on stdout that did not arrive (a full disk, /dev/full) turn success into status 2. */
static int finish(int rc) {
    if (ds_close_stdout() && (rc == DS_EXIT_OK || rc == DS_EXIT_CHECK)) return cli_lib_error();
    return rc;
}

static int run(int argc, char **argv) {
    /* HDF5 1.10 crashes in its exit-time clean-up after a file failed to close (disk full,
     * ulimit -f). Every file is closed explicitly, so that clean-up is not needed. It must be
     * turned off before any other HDF5 call. */
    H5dont_atexit();
    cli_choose_blas_kernel();
    /* A signal removes the temporary output being written, then ends the process; a write past
     * `ulimit -f` fails with EFBIG instead of SIGXFSZ killing us (src/base/tmpfiles.h). */
    ds_tmpfiles_catch_signals();
    if (argc < 2) {
        usage(stderr);
        return DS_EXIT_INPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return DS_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("diffscope %s\n", DS_VERSION);
        return DS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    return cli_error("unknown command '%s' (see diffscope --help)", argv[1]);
}

int main(int argc, char **argv) {
    /* Provenance records the command line as given; getopt reorders ARGV as it parses. */
    char **given = malloc(((size_t)argc + 1) * sizeof *given);
    if (given) memcpy(given, argv, ((size_t)argc + 1) * sizeof *given);
    cli_set_command_line(given ? argc : 0, given);
    int rc = finish(run(argc, argv));
    free(given);
    return rc;
}
