/* The library's reader of diffscope dumps (the schema: diffscope/dump_format.h; its meaning:
 * docs/dump-format.md). It reads one head of one layer at a time, through HDF5 hyperslabs, so
 * a dump of a long prompt never has to fit in memory; the viewer is built on it.
 *
 *   ds_dump_reader *r = ds_dump_reader_open("run.h5");
 *   const ds_dump_info *in = ds_dump_reader_info(r);             shape, layers, tokens
 *   const ds_dump_layer_info *li = ds_dump_reader_layer(r, l);   heads, λ, maps present
 *   ds_dump_reader_read_head(r, l, DS_MAP_DIFF, 0, buf);         [T, T] floats
 *   ds_dump_reader_close(r);
 *
 * Every function that can fail returns a negative value (or NULL) and records a one-line
 * message naming the file and the problem (ds_errmsg()). Nothing in a dump is trusted:
 * attribute types and sizes, dataset ranks, shapes and element types are checked before any
 * read, so a damaged or foreign file gives a message, never a crash (a libFuzzer harness
 * targets this module: tests/fuzz/fuzz_dump_reader.c). Maps stored as float16 or float64 are
 * converted to float. String attributes are read only where needed (format, arch): each one is
 * a place where a damaged file can make HDF5 1.10 allocate what a corrupted length claims (see
 * src/io/h5_guard.h). The reader does not read `scores`, outliers, logits or hidden states. */
#ifndef DIFFSCOPE_DUMP_READER_H
#define DIFFSCOPE_DUMP_READER_H
#include <stdint.h>
#include "diffscope/config.h"
#include "diffscope/dump_format.h"

/* Largest dump accepted: one map of one head is T² floats. */
#define DS_DUMP_MAX_TOKENS 32768
#define DS_DUMP_MAX_HEADS 1024
#define DS_DUMP_MAX_LAYERS 4096

typedef struct {
    ds_arch arch;
    int num_layers, num_heads, num_kv_heads, head_dim, num_tokens;
    int n_layers;       /* entries of `layers`: the layers present in the file */
    int *layers;
    int32_t *ids;       /* [num_tokens] */
    char **tokens;      /* [num_tokens] UTF-8 text of each token */
} ds_dump_info;

typedef struct {
    int layer;
    int n_heads;        /* Hs: heads dumped */
    int *heads;         /* [Hs] the model head of each index */
    int has_map[DS_MAP_COUNT]; /* by ds_map; never set for DS_MAP_SCORES */
    int has_groupnorm;  /* /layers/{l}/groupnorm/scale present and [Hs, T] */
    /* Differential architectures only (NAN otherwise). lambda_full is the λ the forward pass
     * used (the one in `diff`); lambda_model is the model's own λ (== lambda_full unless overridden). */
    double lambda_1, lambda_2, lambda_init, lambda_full, lambda_model;
    int lambda_overridden;
} ds_dump_layer_info;

typedef struct ds_dump_reader ds_dump_reader;

/* Opens PATH and checks that it is a diffscope dump of DS_DUMP_FORMAT_VERSION: root attributes,
 * /tokens. Layers are checked when first used (ds_dump_reader_layer). */
ds_dump_reader *ds_dump_reader_open(const char *path);
void ds_dump_reader_close(ds_dump_reader *d);
const char *ds_dump_reader_path(const ds_dump_reader *d);
const ds_dump_info *ds_dump_reader_info(const ds_dump_reader *d);

/* Index of LAYER in info->layers, or -1 with a message when the layer is not in the file. */
int ds_dump_reader_layer_index(const ds_dump_reader *d, int layer);

/* Metadata of layer LAYER (a model layer number listed in `layers`): heads, λ, which maps
 * exist with the right shape. The result stays valid until ds_dump_reader_close. */
const ds_dump_layer_info *ds_dump_reader_layer(ds_dump_reader *d, int layer);

/* Index of model head HEAD among the heads dumped for LAYER, or -1 with a message. */
int ds_dump_reader_head_index(ds_dump_reader *d, int layer, int head);

/* Reads rows [row0, row0+nrows) of map MAP of head index HI of LAYER into OUT
 * (nrows × T floats, row-major). Fails when the map is absent. */
int ds_dump_reader_read_rows(ds_dump_reader *d, int layer, ds_map map, int hi, int row0, int nrows, float *out);

/* Reads the whole [T, T] map of one head (T² floats). */
int ds_dump_reader_read_head(ds_dump_reader *d, int layer, ds_map map, int hi, float *out);

/* Reads /layers/{l}/groupnorm/scale [Hs, T] into OUT (Hs × T floats). */
int ds_dump_reader_read_groupnorm_scale(ds_dump_reader *d, int layer, float *out);

#endif
