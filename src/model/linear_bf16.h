/* The bf16 compute mode's matrix products (docs/numerics.md, "bf16 compute"). Internal. */
#ifndef DIFFSCOPE_LINEAR_BF16_H
#define DIFFSCOPE_LINEAR_BF16_H
#include <stdint.h>
#include "model/internal.h"

/* linear_bf16.c: ds_linear_shared with each product's bf16 weights (ds_linear_out.w16): x is
 * rounded to bf16, the products accumulate in f32, the biases (f32) are added after. -1 with
 * ds_errmsg set when memory or oneDNN fails. */
int ds_linear_bf16(const float *x, int n, int in, const ds_linear_out *outs, int count);

/* dnnl_matmul.c: y[n, out] = x[n, in] · W[out, in]ᵀ through oneDNN, all threads. 0 done, 1 when
 * oneDNN has no bf16 matmul on this CPU (nothing written), -1 on failure. */
int ds_dnnl_bf16_matmul(float *y, const uint16_t *x, const uint16_t *w, int n, int in, int out);

/* dnnl_matmul.c: W[out, in] reordered into the layout oneDNN's bf16 matmul reads, in a new buffer
 * (*PACKED) that ds_dnnl_bf16_matmul takes in place of W. 0 done, 1 when there is nothing to
 * pack for (no bf16 matmul on this CPU, or it reads W as it is; *PACKED NULL), -1 on failure. */
int ds_dnnl_bf16_pack(const uint16_t *w, int in, int out, uint16_t **packed);
void ds_dnnl_bf16_free(uint16_t *packed);

#endif
