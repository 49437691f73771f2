/* bf16 matrix products through oneDNN's matmul primitive (the library PyTorch runs its CPU bf16
 * products on): y[n, out] (f32) = x[n, in] (bf16) · W[out, in]ᵀ (bf16), accumulated in f32.
 * oneDNN picks its kernel at run time from the CPU: AMX tiles, AVX512-BF16 dot products, or
 * AVX-512 emulating them; on a CPU without AVX-512 it has no bf16 matmul at all, and the caller
 * (linear_bf16.c) widens the weights to f32 itself.
 *
 * One engine and one stream for the process. Creating a primitive costs as much as a small
 * product (oneDNN generates its kernel), so each shape's primitive is made once and kept; the
 * table and the stream are shared by every session, under one lock. */
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "diffscope/error.h"
#include "diffscope/model.h"
#include "model/linear_bf16.h"

#define CACHE_SLOTS 128

typedef struct {
    int n, in, out;
    dnnl_primitive_t prim; /* NULL: oneDNN has no bf16 matmul for this shape on this CPU */
} cached_matmul;

static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    cached_matmul slots[CACHE_SLOTS];
    int used, next;
    char impl[64];
} g = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static void init_engine(void) {
    if (dnnl_engine_create(&g.engine, dnnl_cpu, 0) != dnnl_success) g.engine = NULL;
    else if (dnnl_stream_create(&g.stream, g.engine, dnnl_stream_default_flags) != dnnl_success) g.stream = NULL;
}

/* The primitive for one shape, or NULL when oneDNN implements none here. */
static dnnl_primitive_t make_matmul(int n, int in, int out, char *impl, size_t impl_size) {
    dnnl_memory_desc_t src, wei, dst;
    dnnl_dims_t ds = {n, in}, dw = {in, out}, dd = {n, out};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    /* W[out, in] row-major is the [in, out] weights matrix with the "ba" layout: no copy. */
    if (dnnl_memory_desc_init_by_tag(&src, 2, ds, dnnl_bf16, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&wei, 2, dw, dnnl_bf16, dnnl_ba) ||
        dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) || dnnl_matmul_desc_init(&md, &src, &wei, NULL, &dst) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, g.engine, NULL))
        return NULL;
    const char *name = NULL;
    if (impl && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
        snprintf(impl, impl_size, "%s", name);
    if (dnnl_primitive_create(&prim, pd)) prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    return prim;
}

/* The cached primitive of a shape (made on first use); the caller holds the lock. */
static cached_matmul *lookup(int n, int in, int out) {
    for (int i = 0; i < g.used; i++)
        if (g.slots[i].n == n && g.slots[i].in == in && g.slots[i].out == out) return &g.slots[i];
    cached_matmul *c;
    if (g.used < CACHE_SLOTS) c = &g.slots[g.used++];
    else { /* prompts of many lengths: the oldest shape makes room */
        c = &g.slots[g.next];
        g.next = (g.next + 1) % CACHE_SLOTS;
        if (c->prim) dnnl_primitive_destroy(c->prim);
    }
    *c = (cached_matmul){n, in, out, make_matmul(n, in, out, NULL, 0)};
    return c;
}

int ds_dnnl_bf16_matmul(float *y, const uint16_t *x, const uint16_t *w, int n, int in, int out) {
    pthread_once(&g.once, init_engine);
    if (!g.stream) return 1;
    pthread_mutex_lock(&g.lock);
    cached_matmul *c = lookup(n, in, out);
    int rc = 1;
    if (c->prim) {
        dnnl_memory_desc_t src, wei, dst;
        dnnl_dims_t ds = {n, in}, dw = {in, out}, dd = {n, out};
        dnnl_memory_t ms = NULL, mw = NULL, md = NULL;
        rc = dnnl_memory_desc_init_by_tag(&src, 2, ds, dnnl_bf16, dnnl_ab) ||
             dnnl_memory_desc_init_by_tag(&wei, 2, dw, dnnl_bf16, dnnl_ba) ||
             dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) ||
             dnnl_memory_create(&ms, &src, g.engine, (void *)x) || dnnl_memory_create(&mw, &wei, g.engine, (void *)w) ||
             dnnl_memory_create(&md, &dst, g.engine, y);
        if (!rc) {
            dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
            rc = dnnl_primitive_execute(c->prim, g.stream, 3, args) || dnnl_stream_wait(g.stream);
        }
        dnnl_memory_destroy(ms);
        dnnl_memory_destroy(mw);
        dnnl_memory_destroy(md);
        if (rc) rc = ds_failc(DS_ERR_INTERNAL, "oneDNN could not run a bf16 product (%d x %d x %d)", n, in, out);
    }
    pthread_mutex_unlock(&g.lock);
    return rc;
}

const char *ds_bf16_impl(void) {
    pthread_once(&g.once, init_engine);
    pthread_mutex_lock(&g.lock);
    if (!g.impl[0]) {
        dnnl_primitive_t p = g.stream ? make_matmul(64, 256, 256, g.impl, sizeof g.impl) : NULL;
        if (p) dnnl_primitive_destroy(p);
        else snprintf(g.impl, sizeof g.impl, "none");
    }
    pthread_mutex_unlock(&g.lock);
    return g.impl;
}

static int has_isa(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t want) { return ((unsigned)isa & (unsigned)want) == (unsigned)want; }

const char *ds_bf16_kernel(void) {
    if (!strcmp(ds_bf16_impl(), "none")) return "AVX2 (bf16 widened to f32, OpenBLAS)";
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (has_isa(isa, dnnl_cpu_isa_avx512_core_amx)) return "AMX";
    if (has_isa(isa, dnnl_cpu_isa_avx512_core_bf16)) return "AVX512-BF16";
    return "AVX512 (bf16 emulated)";
}
