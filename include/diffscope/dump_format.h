/* The schema of a diffscope dump file, written down once: the names that the writer
 * (src/dump/dump.c), the reader (diffscope/dump_reader.h) and its users share. The meaning of
 * each name, with shapes and types, is docs/dump-format.md; renaming something here renames it
 * in the file, so the format version has to change with it.
 *
 *   /                                   root attributes DS_DUMP_ATTR_FORMAT ... _WHAT
 *   /provenance                         how the file was made (diffscope/provenance.h)
 *   /tokens/{ids,text}
 *   /layers/{l}/attn/{map}              one dataset per ds_map, attribute DS_DUMP_ATTR_HEADS;
 *                                       the group carries the λ attributes (DiffLlama)
 *   /layers/{l}/groupnorm/{rms,scale}
 *   /layers/{l}/cancelled_share         [heads, query], attribute DS_DUMP_ATTR_HEADS
 *   /layers/{l}/outliers/{scores,resid,mlp}/{values,index}, statistics as attributes
 *   /logits, /hidden_states */
#ifndef DIFFSCOPE_DUMP_FORMAT_H
#define DIFFSCOPE_DUMP_FORMAT_H

#define DS_DUMP_FORMAT "diffscope-dump"
#define DS_DUMP_FORMAT_VERSION 1

/* The attention maps of a layer, each a dataset /layers/{l}/attn/{ds_map_name(map)}.
 * DiffLlama has softmax1, softmax2 and diff; Llama has softmax; scores exist for both. */
typedef enum {
    DS_MAP_SOFTMAX1, /* first softmax map of each differential head */
    DS_MAP_SOFTMAX2, /* second softmax map */
    DS_MAP_DIFF,     /* softmax1 - λ·softmax2 */
    DS_MAP_SOFTMAX,  /* softmax map of a standard head */
    DS_MAP_SCORES,   /* pre-softmax scaled scores */
    DS_MAP_COUNT
} ds_map;

/* "softmax1", "softmax2", "diff", "softmax", "scores"; "?" outside the enum. */
const char *ds_map_name(ds_map map);

/* Root attributes. */
#define DS_DUMP_ATTR_FORMAT "format"
#define DS_DUMP_ATTR_FORMAT_VERSION "format_version"
#define DS_DUMP_ATTR_ARCH "arch"
#define DS_DUMP_ATTR_NUM_LAYERS "num_layers"
#define DS_DUMP_ATTR_NUM_HEADS "num_heads"
#define DS_DUMP_ATTR_NUM_KV_HEADS "num_kv_heads"
#define DS_DUMP_ATTR_HEAD_DIM "head_dim"
#define DS_DUMP_ATTR_NUM_TOKENS "num_tokens"
#define DS_DUMP_ATTR_CONFIG "config"
#define DS_DUMP_ATTR_PROMPT "prompt"
#define DS_DUMP_ATTR_LAYERS "layers"
#define DS_DUMP_ATTR_WHAT "what"
#define DS_DUMP_ATTR_ALLOW_NONFINITE "allow_nonfinite" /* 1, only when NaN/inf were let through */

/* Tokens. */
#define DS_DUMP_TOKENS "/tokens"
#define DS_DUMP_TOKEN_IDS "ids"
#define DS_DUMP_TOKEN_TEXT "text"
#define DS_DUMP_TOKEN_IDS_PATH DS_DUMP_TOKENS "/" DS_DUMP_TOKEN_IDS
#define DS_DUMP_TOKEN_TEXT_PATH DS_DUMP_TOKENS "/" DS_DUMP_TOKEN_TEXT

/* Per-layer groups: snprintf(buf, n, DS_DUMP_LAYER_PATH, layer, DS_DUMP_ATTN). */
#define DS_DUMP_LAYER_PATH "/layers/%d/%s"
#define DS_DUMP_ATTN "attn"
#define DS_DUMP_GROUPNORM_GROUP "groupnorm"
#define DS_DUMP_OUTLIERS_GROUP "outliers"

/* On each map dataset: the model head of each index along its first axis. */
#define DS_DUMP_ATTR_HEADS "heads"
/* The names of a map's three axes, stored as HDF5 dimension labels (H5DSset_label; h5py reads
 * them as dset.dims[i].label). */
#define DS_DUMP_MAP_AXES {"head", "query", "key"}

/* On /layers/{l}/attn (DiffLlama). lambda_model only when lambda_overridden is 1. */
#define DS_DUMP_ATTR_LAMBDA_1 "lambda_1"
#define DS_DUMP_ATTR_LAMBDA_2 "lambda_2"
#define DS_DUMP_ATTR_LAMBDA_INIT "lambda_init"
#define DS_DUMP_ATTR_LAMBDA_FULL "lambda_full"
#define DS_DUMP_ATTR_LAMBDA_OVERRIDDEN "lambda_overridden"
#define DS_DUMP_ATTR_LAMBDA_MODEL "lambda_model"

/* Under /layers/{l}/groupnorm (DiffLlama). */
#define DS_DUMP_GROUPNORM_RMS "rms"
#define DS_DUMP_GROUPNORM_SCALE "scale"

/* /layers/{l}/cancelled_share (DiffLlama): ds_cancelled_share (diffscope/attn_stats.h) of each
 * selected differential head at each query row; axes labelled "head", "query". */
#define DS_DUMP_CANCELLED_SHARE "cancelled_share"

/* /layers/{l}/outliers/{statistic}: datasets, attributes, and the statistics' names with the
 * names of their index columns. */
#define DS_DUMP_OUTLIER_VALUES "values"
#define DS_DUMP_OUTLIER_INDEX "index"
#define DS_DUMP_ATTR_MEDIAN "median"
#define DS_DUMP_ATTR_MEAN "mean"
#define DS_DUMP_ATTR_STD "std"
#define DS_DUMP_ATTR_KURTOSIS "kurtosis"
#define DS_DUMP_ATTR_COUNT "count"
#define DS_DUMP_ATTR_INDEX_NAMES "index_names"
#define DS_DUMP_OUTLIER_SCORES "scores"
#define DS_DUMP_OUTLIER_RESID "resid"
#define DS_DUMP_OUTLIER_MLP "mlp"
#define DS_DUMP_INDEX_HEAD_QUERY_KEY "head,query,key"
#define DS_DUMP_INDEX_TOKEN_CHANNEL "token,channel"

/* Whole-run datasets, at the root. */
#define DS_DUMP_LOGITS "logits"
#define DS_DUMP_HIDDEN_STATES "hidden_states"

#endif
