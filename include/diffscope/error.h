/* Error reporting for libdiffscope.
 *
 * Every fallible library function returns a negative value (or NULL) on failure and
 * records a one-line message, which names the file and the problem, in a thread-local
 * buffer, together with a status code saying what kind of failure it was (as SQLite keeps
 * SQLITE_NOMEM apart from sqlite3_errmsg). The caller reads them with ds_errmsg() and
 * ds_errcode(); the CLI prints "diffscope: MSG" on stderr and maps the code to an exit
 * status (src/cli/cli_util.c). Messages describe the data, never a command-line flag. */
#ifndef DIFFSCOPE_ERROR_H
#define DIFFSCOPE_ERROR_H

/* Exit codes of every diffscope command (documented in the README). */
enum {
    DS_EXIT_OK = 0,
    DS_EXIT_CHECK = 1,    /* a check failed: verify found a difference past tolerance */
    DS_EXIT_INPUT = 2,    /* bad input: usage, files, config, tensors, prompt, output path */
    DS_EXIT_INTERNAL = 3, /* out of memory or another failure that is not the input's fault */
};

/* What kind of failure the last message describes. */
typedef enum {
    DS_OK = 0,
    DS_ERR_INPUT,   /* bad input: a file, a config, a tensor, an id, an option value */
    DS_ERR_NOMEM,   /* out of memory */
    DS_ERR_IO,      /* reading or writing a file failed (full disk, file-size limit, I/O error) */
    DS_ERR_INTERNAL, /* a failure that is neither the input's nor the machine's: a bug */
    DS_ERR_NONFINITE /* a NaN or infinity in weights or results (ds_set_allow_nonfinite lets them through) */
} ds_status;

/* Records a printf-style message with STATUS and returns -1, so `return ds_failc(...)` reads
 * well. */
int ds_failc(ds_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ds_failc with DS_ERR_INPUT: the common case. */
int ds_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message of the last failure on this thread ("" when none). */
const char *ds_errmsg(void);
/* Its status (DS_OK when none). */
ds_status ds_errcode(void);

/* Prefixes the current message with "PREFIX: " (used to add a file name at an outer level);
 * the status stays. */
void ds_err_prefix(const char *prefix);

#endif
