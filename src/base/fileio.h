/* Reading a whole (small) file: config.json, tokenizer.json, an index, a haystack. */
#ifndef DIFFSCOPE_FILEIO_H
#define DIFFSCOPE_FILEIO_H
#include <stddef.h>

/* Size limits of the files read whole. They are far above any real file of the kind (a
 * config.json is a few KB, an index of a 400B-parameter model 100 KB, the largest tokenizer.json
 * files 35 MB) and keep a hostile or mistaken input (/dev/zero's twin, a weights file named as
 * a config) from filling memory. */
#define DS_MAX_CONFIG_BYTES ((size_t)4 << 20)      /* config.json, init --like */
#define DS_MAX_INDEX_BYTES ((size_t)64 << 20)      /* model.safetensors.index.json */
#define DS_MAX_TOKENIZER_BYTES ((size_t)256 << 20) /* tokenizer.json */
#define DS_MAX_TEXT_BYTES ((size_t)256 << 20)      /* a haystack, id list or prompts file */
#define DS_MAX_JOURNAL_BYTES ((size_t)4 << 30)     /* a sweep journal, re-read on resume */

/* The bytes of PATH in a new buffer with a NUL after them; *LEN (if LEN) gets their count.
 * PATH must be a regular file (a FIFO would block, a device never end) of at most MAX bytes.
 * NULL with a message naming PATH ("cannot open: ...", "not a regular file", "N bytes, more
 * than the limit of M MiB", "read error", "out of memory"). */
char *ds_read_file(const char *path, size_t max, size_t *len);

/* 0 when PATH (followed through symlinks) is a regular file; else -1 with a message naming
 * it: for inputs that a library opens itself (HDF5), which would block on a FIFO. */
int ds_check_regular_file(const char *path);

/* 0 when the file system that will hold the output PATH (its folder) has at least BYTES free
 * for an unprivileged user (statvfs f_bavail); else -1 with a message naming PATH and both
 * sizes (DS_ERR_IO). Also 0 when the folder cannot be examined: creating the file will say why. */
int ds_check_free_space(const char *path, double bytes);

#endif
