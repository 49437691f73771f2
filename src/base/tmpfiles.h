/* Temporary output files to remove when the process is interrupted.
 *
 * Every output is written under a temporary name and renamed when complete (h5out.c,
 * st_writer.c). A signal that ends the process in between (Ctrl-C, kill) would leave that
 * temporary file behind; the CLI's signal handler calls ds_tmpfiles_remove_all(), which only
 * uses unlink() on a fixed table, so it is safe to call from a signal handler. Registration
 * copies the path; a path longer than DS_TMPFILE_MAX or more than DS_TMPFILE_SLOTS files at
 * once are not registered (the file is then only removed on normal failures). */
#ifndef DIFFSCOPE_TMPFILES_H
#define DIFFSCOPE_TMPFILES_H

enum { DS_TMPFILE_SLOTS = 8, DS_TMPFILE_MAX = 4352 };

void ds_tmpfile_register(const char *path);
void ds_tmpfile_unregister(const char *path);
/* Async-signal-safe: unlinks every registered file. */
void ds_tmpfiles_remove_all(void);

#endif
