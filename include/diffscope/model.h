/* A loaded Llama or DiffLlama checkpoint, and sessions that run it.
 *
 * The model is read-only after ds_model_load; several sessions may share it. A session owns
 * a KV cache for one sequence and the scratch buffers of the forward pass. ds_forward runs
 * n new tokens at positions pos .. pos+n-1 in one prefill (GEMMs over all n tokens) and
 * appends their keys and values to the cache; decoding is ds_forward with n = 1. */
#ifndef DIFFSCOPE_MODEL_H
#define DIFFSCOPE_MODEL_H
#include <stdint.h>
#include "diffscope/config.h"
#include "diffscope/probe.h"

typedef struct ds_model ds_model;
typedef struct ds_session ds_session;

/* Loads DIR (config.json + safetensors). NULL on failure, with ds_errmsg() set. */
ds_model *ds_model_load(const char *dir);
void ds_model_free(ds_model *m);
const ds_config *ds_model_config(const ds_model *m);
const char *ds_model_dir(const ds_model *m);
/* Storage dtype name of the weights ("F32", "BF16", "F16", or "mixed"). */
const char *ds_model_storage_dtype(const ds_model *m);

/* λ of DiffLlama layer L: out = {lambda_1, lambda_2, lambda_init, lambda_full}. */
void ds_model_lambda(const ds_model *m, int layer, double out[4]);

/* A session for up to MAX_TOKENS positions. More than max_position_embeddings is an error
 * unless ALLOW_LONG (then the caller should warn). */
ds_session *ds_session_new(const ds_model *m, int max_tokens, int allow_long);
void ds_session_free(ds_session *s);
int ds_session_pos(const ds_session *s);
const ds_model *ds_session_model(const ds_session *s);
void ds_session_reset(ds_session *s);

/* Runs IDS[0..n) (all in the vocabulary) through the model. When LOGITS is not NULL it
 * receives [n, V] logits, or [1, V] for the last token when LAST_ONLY. PROBES may be NULL. */
int ds_forward(ds_session *s, const int *ids, int n, float *logits, int last_only,
               ds_probes *probes);

/* Non-finite values (docs/reliability.md): by default a weight that is NaN or ±inf fails
 * ds_model_load, and a forward pass whose final hidden states or logits are not finite fails
 * ds_forward (so does a dump whose maps are not). ds_set_allow_nonfinite(1), before loading,
 * lets them through, for whoever studies the blow-up. Process-wide, like the thread count. */
void ds_set_allow_nonfinite(int allow);
int ds_get_allow_nonfinite(void);

/* How the matrix products run (docs/numerics.md, "bf16 compute"): DS_COMPUTE_F32, the default
 * and the exact reference, or DS_COMPUTE_BF16: the projections and lm_head with bfloat16 operands
 * and float32 accumulation (oneDNN), the weights held as bfloat16; everything else float32.
 * Set before ds_model_load: a model keeps the mode it was loaded with. Process-wide. */
typedef enum { DS_COMPUTE_F32, DS_COMPUTE_BF16 } ds_compute;
void ds_set_compute(ds_compute mode);
ds_compute ds_get_compute(void);
ds_compute ds_model_compute(const ds_model *m);
const char *ds_compute_name(ds_compute mode);         /* "f32", "bf16" */
int ds_compute_parse(const char *name, ds_compute *mode); /* -1 for another name */
/* The kernel family bf16 products run on here: "AMX" (diffscope's own tiles, or oneDNN's with
 * DIFFSCOPE_BF16_KERNEL=onednn), "AVX512-BF16", "AVX512 (bf16 emulated)" (oneDNN's), or "AVX2
 * (bf16 widened to f32, OpenBLAS)" where oneDNN has no bf16 matmul. */
const char *ds_bf16_kernel(void);
/* The implementation of a bf16 product: "diffscope:amx_tiles", oneDNN's name for its own (e.g.
 * "brg:avx512_core_amx"), or "none". */
const char *ds_bf16_impl(void);

/* Thread count for OpenBLAS and our own loops (0: leave the default). */
void ds_set_threads(int n);
int ds_get_threads(void);

#endif
