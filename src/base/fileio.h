/* Reading a whole (small) file: config.json, tokenizer.json, an index, a haystack. */
#ifndef DIFFSCOPE_FILEIO_H
#define DIFFSCOPE_FILEIO_H
#include <stddef.h>

/* The bytes of PATH in a new buffer with a NUL after them; *LEN (if LEN) gets their count.
 * NULL with a message naming PATH ("cannot open: ...", "read error", "out of memory"). */
char *ds_read_file(const char *path, size_t *len);

#endif
