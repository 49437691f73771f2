/* Writing safetensors checkpoints (used by `diffscope init`): tensors are declared first,
 * then their data are produced one at a time in declaration order, so a multi-gigabyte
 * checkpoint is written without holding it in memory. Above SHARD_BYTES per file the checkpoint
 * is sharded like transformers: model-0000i-of-0000n.safetensors plus
 * model.safetensors.index.json. The files are created in DIR under their final names, never
 * over an existing file (O_EXCL, O_NOFOLLOW): DIR is meant to be a fresh staging folder that
 * the caller moves into place once everything is written (cmd_init.c). */
#ifndef DIFFSCOPE_ST_WRITER_H
#define DIFFSCOPE_ST_WRITER_H
#include <stdint.h>
#include "io/safetensors.h"

typedef struct ds_st_writer ds_st_writer;

/* Fills OUT (numel elements, float32) with the tensor's values. */
typedef void (*ds_fill_fn)(const char *name, float *out, int64_t numel, void *user);

/* Messages name SHOWN_DIR/FILE (the folder the files are meant for). */
ds_st_writer *ds_st_writer_new(const char *dir, const char *shown_dir, ds_dtype dtype, uint64_t shard_bytes);
int ds_st_writer_add(ds_st_writer *w, const char *name, int ndim, const int64_t *shape);
/* Writes every declared tensor, calling FILL for each; frees W. On failure the files it began
 * are left for the caller, who removes the staging folder. */
int ds_st_writer_write(ds_st_writer *w, ds_fill_fn fill, void *user);
void ds_st_writer_free(ds_st_writer *w);

#endif
