/* Error reporting for libdiffscope.
 *
 * Every fallible library function returns a negative value (or NULL) on failure and
 * records a one-line message, which names the file and the problem, in a thread-local
 * buffer. The caller reads it with ds_errmsg(). The CLI prints it as "diffscope: MSG"
 * on stderr and exits with DS_EXIT_INPUT. */
#ifndef DIFFSCOPE_ERROR_H
#define DIFFSCOPE_ERROR_H

/* Exit codes of every diffscope command (documented in the README). */
enum {
    DS_EXIT_OK = 0,
    DS_EXIT_CHECK = 1,    /* a check failed: verify found a difference past tolerance */
    DS_EXIT_INPUT = 2,    /* bad input: usage, files, config, tensors, prompt, output path */
    DS_EXIT_INTERNAL = 3, /* out of memory or another failure that is not the input's fault */
};

/* Records a printf-style message and returns -1, so `return ds_fail(...)` reads well. */
int ds_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message of the last failure on this thread ("" when none). */
const char *ds_errmsg(void);

/* Prefixes the current message with "PREFIX: " (used to add a file name at an outer level). */
void ds_err_prefix(const char *prefix);

#endif
