/* safetensors reading: header parsed with cJSON, data mapped with mmap.
 *
 * A ds_weights is the union of one model.safetensors file or of every shard named by
 * model.safetensors.index.json. Tensor data stay in the mapping; ds_tensor_to_f32 gives
 * float32, zero-copy where the stored dtype is F32 and the data are 4-byte aligned.
 *
 * Invariants checked at open: the header length fits in the file, the header is a JSON
 * object, every tensor has a known dtype, a shape whose element count times the dtype size
 * equals its byte range without overflow, and a byte range inside the data section that
 * overlaps no other tensor. */
#ifndef DIFFSCOPE_SAFETENSORS_H
#define DIFFSCOPE_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "base/half.h"

typedef enum {
    DS_DT_F32, DS_DT_F16, DS_DT_BF16, DS_DT_F64,
    DS_DT_I64, DS_DT_I32, DS_DT_I16, DS_DT_I8, DS_DT_U8, DS_DT_BOOL,
    DS_DT_F8_E4M3, DS_DT_F8_E5M2,
} ds_dtype;

#define DS_MAX_DIMS 8

typedef struct {
    char *name;
    ds_dtype dtype;
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    const void *data;   /* inside the file mapping */
    size_t nbytes;
    const char *file;   /* the shard it lives in */
} ds_tensor;

typedef struct {
    char *path;
    void *map;
    size_t size;
} ds_mapped_file;

typedef struct {
    ds_mapped_file *files;
    int nfiles;
    ds_tensor *tensors;
    int ntensors;
    /* Open-addressing hash of the names: slot = tensor index + 1, 0 when empty; a power of two
     * at least twice ntensors, so that a header of 10^5 names is checked for duplicates and
     * looked up in linear time. */
    int *slots;
    size_t nslots;
} ds_weights;

const char *ds_dtype_name(ds_dtype dt);
size_t ds_dtype_size(ds_dtype dt);

/* Opens one .safetensors file and appends its tensors. */
int ds_weights_add_file(ds_weights *w, const char *path);
/* Opens the weights of a model folder: model.safetensors or the sharded index. */
int ds_weights_open_dir(ds_weights *w, const char *dir);
void ds_weights_close(ds_weights *w);
const ds_tensor *ds_weights_find(const ds_weights *w, const char *name);

/* Float32 data of a floating tensor: the mapped bytes themselves when F32 and aligned
 * (*owned = 0), else a new malloc'd converted copy (*owned = 1). NULL on failure, which with
 * CHECK_FINITE includes a NaN or infinity in the data (or an F64 value beyond float32's
 * range): the message names the tensor and the element's index. */
float *ds_tensor_to_f32(const ds_tensor *t, int check_finite, int *owned);
/* The same as bfloat16 (the bf16 compute mode): the mapped bytes when BF16 and 2-byte aligned,
 * else a converted copy rounded to nearest even. */
uint16_t *ds_tensor_to_bf16(const ds_tensor *t, int check_finite, int *owned);

#endif
