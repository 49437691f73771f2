/* Temporary output files to remove when the process dies of a signal.
 *
 * Every output is written under a temporary name and committed when complete (src/io/outfile.c).
 * A signal that ends the process in between would leave the temporary file behind. The handler
 * installed by ds_tmpfiles_catch_signals() removes every registered path with unlink(), rmdir()
 * and getdents64() on a fixed table (all async-signal-safe), then dies of the same signal, so
 * the exit status still says what happened. Registration copies the path; a path longer than
 * DS_TMPFILE_MAX or more than DS_TMPFILE_SLOTS paths at once are refused (-1): the caller then
 * removes the file on its own failures only, and the next run into the folder removes it as
 * stale (src/io/outfile.c). */
#ifndef DIFFSCOPE_TMPFILES_H
#define DIFFSCOPE_TMPFILES_H

enum { DS_TMPFILE_SLOTS = 32, DS_TMPFILE_MAX = 4352 };

typedef enum {
    DS_TMP_FILE,      /* unlink() */
    DS_TMP_TREE,      /* a staging folder: unlink() its entries, then rmdir() */
    DS_TMP_EMPTY_DIR, /* a folder we created: rmdir(), which fails unless it is empty */
} ds_tmp_kind;

int ds_tmpfile_register(const char *path, ds_tmp_kind kind);
void ds_tmpfile_unregister(const char *path);
/* Removes PATH as KIND describes (async-signal-safe). */
void ds_tmp_remove(const char *path, ds_tmp_kind kind);
/* Async-signal-safe: removes every registered path, the latest first. */
void ds_tmpfiles_remove_all(void);

/* Installs the handler for every signal whose default action ends the process (all but
 * SIGKILL, SIGSTOP, the stop and ignore signals, and SIGXFSZ, which is ignored so that a write
 * past `ulimit -f` fails with EFBIG). A signal ignored by whoever started us (nohup, a
 * background job) stays ignored. A fault raised by the kernel (SIGSEGV, SIGBUS, ...) is handed
 * back to the previous handler (a sanitizer's) after the clean-up. */
void ds_tmpfiles_catch_signals(void);

/* While held, an asynchronous signal waits until ds_tmpfiles_release(): used around a commit
 * of several files (init), which a signal must not cut in half. */
void ds_tmpfiles_hold(void);
void ds_tmpfiles_release(void);

/* Test hook: when the environment variable DIFFSCOPE_TEST_STOP equals POINT, the process stops
 * itself (SIGSTOP) there the first time, so that a test can act at a known moment without depending on speed.
 * The points are listed in docs/reliability.md. */
void ds_test_stop_point(const char *point);

#endif
