/* The bf16 compute mode's matrix products (docs/numerics.md, "bf16 compute"). Internal. */
#ifndef DIFFSCOPE_LINEAR_BF16_H
#define DIFFSCOPE_LINEAR_BF16_H
#include <stdint.h>
#include "model/internal.h"

/* linear_bf16.c: ds_linear_shared with each product's bf16 weights (ds_linear_out.w16): x is
 * rounded to bf16, the products accumulate in f32, the biases (f32) are added after. -1 with
 * ds_errmsg set when memory or oneDNN fails. */
int ds_linear_bf16(const float *x, int n, int in, const ds_linear_out *outs, int count);
/* Frees a matrix packed by either kernel's pack. */
void ds_bf16_packed_free(uint16_t *packed);

/* dnnl_matmul.c: y[n, out] = x[n, in] · W[out, in]ᵀ through oneDNN, all threads. 0 done, 1 when
 * oneDNN has no bf16 matmul on this CPU (nothing written), -1 on failure. */
int ds_dnnl_bf16_matmul(float *y, const uint16_t *x, const uint16_t *w, int n, int in, int out);

/* dnnl_matmul.c: W[out, in] reordered into the layout oneDNN's bf16 matmul reads, in a new buffer
 * (*PACKED) that ds_dnnl_bf16_matmul takes in place of W. 0 done, 1 when there is nothing to
 * pack for (no bf16 matmul on this CPU, or it reads W as it is; *PACKED NULL), -1 on failure. */
int ds_dnnl_bf16_pack(const uint16_t *w, int in, int out, uint16_t **packed);
void ds_dnnl_bf16_free(uint16_t *packed);

/* bf16_tiles.c: diffscope's own kernels on AMX's tile layout. Ready when the CPU has AMX-BF16
 * (and Linux grants the tile state) or AVX512-BF16, and DIFFSCOPE_BF16_KERNEL is not "onednn";
 * then the model packs its matrices with ds_tiles_pack instead of oneDNN's. */
int ds_tiles_ready(void);
/* "AMX" or "AVX512-BF16": the kernel the products run on, and its implementation name for
 * ds_bf16_impl ("diffscope:amx_tiles", "diffscope:avx512bf16_dot"); NULL when not ready. */
const char *ds_tiles_kernel(void);
const char *ds_tiles_impl(void);
/* W[out, in] in the kernel's tile layout, in a new buffer (*PACKED); 0, or -1 on failure. */
int ds_tiles_pack(const uint16_t *w, int in, int out, uint16_t **packed);
/* 1 when W is a matrix ds_tiles_pack made. */
int ds_tiles_is_packed(const uint16_t *w);
/* Frees PACKED and returns 1 when ds_tiles_pack made it; 0 (nothing done) otherwise. */
int ds_tiles_free(uint16_t *packed);
/* ds_linear_shared's products (no biases) with every w16 packed by ds_tiles_pack, x rounded
 * to bf16: on the kernel when ready, else (tests) the same sums in plain C. 0, or -1. */
int ds_tiles_products(const float *x, int n, int in, const ds_linear_out *outs, int count);
/* The plain C sums, on any CPU (tests compare the tiles with them). */
int ds_tiles_products_scalar(const float *x, int n, int in, const ds_linear_out *outs, int count);

#endif
