/* Shared pieces of the diffscope command-line front end. Each command lives in its own
 * src/cli/cmd_NAME.c and is listed in the table in src/cli/main.c. */
#ifndef DIFFSCOPE_CLI_H
#define DIFFSCOPE_CLI_H
#include <stdio.h>
#include "diffscope/diffscope.h" /* DS_VERSION */
#include "diffscope/error.h"
#include "diffscope/tokenizer.h"
#include "cli/cli_opt.h"

/* A command: returns the process exit status (DS_EXIT_*). argv[0] is the command name. */
typedef int (*cli_command_fn)(int argc, char **argv);

/* Prints "diffscope: MSG" (cli_progname) on stderr, one line, and returns DS_EXIT_INPUT. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, returning STATUS. */
int cli_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints ds_errmsg() the same way and returns the exit status of ds_errcode(). */
int cli_lib_error(void);
/* The exit status (DS_EXIT_*) of a library status. */
int cli_exit_status(ds_status status);
/* Prints "diffscope: warning: MSG" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Re-executes diffscope with OPENBLAS_CORETYPE set when OpenBLAS picked a slower kernel than
 * the CPU supports and the user set none (src/cli/blas_kernel.c); returns when nothing to do. */
void cli_choose_blas_kernel(void);
/* The OpenBLAS kernel this CPU should run, when the one in use is slower; NULL when it is the
 * best (or no better one is known). */
const char *cli_blas_better_kernel(void);

/* Parses "1,2,3" (spaces allowed) into a new array; -1 with a message on bad input. */
int cli_parse_ids(const char *s, int **ids, int *n);

/* Prints O on stdout as one line of JSON and deletes it; -1 with a message when out of memory.
 * Every command's JSON goes through cJSON: strings escaped, NaN and infinities as null. */
typedef struct cJSON cJSON;
int cli_print_json(cJSON *o);

/* Progress bar on stderr, drawn only when stderr is a terminal: done/total, time, rate, ETA. */
typedef struct { const char *label; long total; long done; int active; double t0; } cli_progress;
void cli_progress_start(cli_progress *p, const char *label, long total);
void cli_progress_step(cli_progress *p, long done);
void cli_progress_end(cli_progress *p);

double cli_now(void);

/* MODEL_DIR's tokenizer.json, loaded on first use and kept until exit (NULL + message on
 * failure). The functions below use it. */
const ds_tokenizer *cli_tokenizer(const char *model_dir);
/* Tokenizes TEXT with MODEL_DIR's tokenizer.json. *LABELS (when LABELS is not NULL) gets the
 * printable piece of each token. */
int cli_tokenize_prompt(const char *model_dir, const char *text, int add_special, int **ids, int *n,
                        char ***labels);
/* 1 when MODEL_DIR holds a tokenizer.json. */
int cli_has_tokenizer(const char *model_dir);
/* Printable pieces of IDS from MODEL_DIR's tokenizer.json, or an array of NULLs when the
 * folder has none (callers then label tokens by id). */
int cli_token_labels(const char *model_dir, const int *ids, int n, char ***labels);
/* Text of IDS with MODEL_DIR's tokenizer.json (malloc'd; *LEN bytes, which may include NULs),
 * NULL when it has none. */
char *cli_detokenize(const char *model_dir, const int *ids, int n, size_t *len);

#endif
