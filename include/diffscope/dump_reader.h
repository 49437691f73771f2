/* Reading diffscope dumps (docs/dump-format.md) for the viewer: one head of one layer at a
 * time, through HDF5 hyperslabs, so a dump of a long prompt never has to fit in memory.
 *
 * Every function that can fail returns a negative value (or NULL) and records a one-line
 * message naming the file and the problem (ds_errmsg()). Nothing in a dump is trusted:
 * attribute types and sizes, dataset ranks, shapes and element types are checked before any
 * read, so a damaged or foreign file gives a message, never a crash (a libFuzzer harness
 * targets this module). Maps stored as float16 or float64 are converted to float by HDF5.
 * String attributes are read only where needed (format, arch): each one is a place where a
 * damaged file can make HDF5 1.10 allocate what a corrupted length claims (see h5_guard.h). */
#ifndef DIFFSCOPE_VIZ_DUMP_READER_H
#define DIFFSCOPE_VIZ_DUMP_READER_H
#include <stdint.h>

/* Largest prompt the viewer accepts: one map of one head is T² floats. */
#define DV_MAX_TOKENS 32768
#define DV_MAX_HEADS 1024
#define DV_MAX_LAYERS 4096

typedef enum { DV_ARCH_LLAMA, DV_ARCH_DIFFLLAMA } dv_arch;

/* The maps of a layer, by dataset name under /layers/{l}/attn. */
typedef enum { DV_MAP_SOFTMAX1, DV_MAP_SOFTMAX2, DV_MAP_DIFF, DV_MAP_SOFTMAX, DV_MAP_COUNT } dv_map;

typedef struct {
    dv_arch arch;
    int num_layers, num_heads, num_kv_heads, head_dim, num_tokens;
    int n_layers;       /* entries of `layers`: the layers present in the file */
    int *layers;
    int32_t *ids;       /* [num_tokens] */
    char **tokens;      /* [num_tokens] UTF-8 text of each token */
} dv_dump_info;

typedef struct {
    int layer;
    int n_heads;        /* Hs: heads dumped */
    int *heads;         /* [Hs] the model head of each index */
    int has_map[DV_MAP_COUNT];
    int has_groupnorm;  /* /layers/{l}/groupnorm/scale present and [Hs, T] */
    /* DiffLlama only (NAN for Llama). lambda_full is the λ the forward pass used (the one in
     * `diff`); lambda_model is the model's own λ (== lambda_full unless overridden). */
    double lambda_1, lambda_2, lambda_init, lambda_full, lambda_model;
    int lambda_overridden;
} dv_layer_info;

typedef struct dv_dump dv_dump;

/* Opens PATH and checks that it is a diffscope dump of format_version 1: root attributes,
 * /tokens. Layers are checked when first used (dv_dump_layer). */
dv_dump *dv_dump_open(const char *path);
void dv_dump_close(dv_dump *d);
const char *dv_dump_path(const dv_dump *d);
const dv_dump_info *dv_dump_get_info(const dv_dump *d);

/* Index of LAYER in info->layers, or -1 with a message when the layer is not in the file. */
int dv_dump_layer_index(const dv_dump *d, int layer);

/* Metadata of layer LAYER (a model layer number listed in `layers`): heads, λ, which maps
 * exist with the right shape. The result stays valid until dv_dump_close. */
const dv_layer_info *dv_dump_layer(dv_dump *d, int layer);

/* Index of model head HEAD among the heads dumped for LAYER, or -1 with a message. */
int dv_dump_head_index(dv_dump *d, int layer, int head);

/* Reads rows [row0, row0+nrows) of map MAP of head index HI of LAYER into OUT
 * (nrows × T floats, row-major). Fails when the map is absent. */
int dv_dump_read_rows(dv_dump *d, int layer, dv_map map, int hi, int row0, int nrows,
                      float *out);

/* Reads the whole [T, T] map of one head (T² floats). */
int dv_dump_read_head(dv_dump *d, int layer, dv_map map, int hi, float *out);

/* Reads /layers/{l}/groupnorm/scale [Hs, T] into OUT (Hs × T floats). */
int dv_dump_read_groupnorm_scale(dv_dump *d, int layer, float *out);

const char *dv_map_name(dv_map m);

#endif
