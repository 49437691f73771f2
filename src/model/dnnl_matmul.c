/* bf16 matrix products through oneDNN's matmul primitive (the library PyTorch runs its CPU bf16
 * products on): y[n, out] (f32) = x[n, in] (bf16) · W[out, in]ᵀ (bf16), accumulated in f32.
 * oneDNN picks its kernel at run time from the CPU: AMX tiles, AVX512-BF16 dot products, or
 * AVX-512 emulating them; on a CPU without AVX-512 it has no bf16 matmul at all, and the caller
 * (linear_bf16.c) widens the weights to f32 itself.
 *
 * Weights: ds_dnnl_bf16_pack reorders a matrix once into the blocked layout the kernel reads
 * (the layout it asks for at PACK_ROWS rows, used at every row count: oneDNN accepts it for
 * all of them). Given the plain [out, in] matrix instead, the kernel copies it into that layout
 * on every call; that costs little on a long prompt, but a decoding step's products ran 1.7-3x
 * slower (tools/bench/bench_dnnl.c measures both; docs/performance.md has the figures). Packed
 * matrices are found by their address, so callers pass either kind the same way.
 *
 * Rows: a product of more than PAD_ROWS rows, not a multiple of PAD_ROWS, runs on its rows
 * padded with zero rows up to the next multiple, in scratch buffers, and the real rows are
 * copied out. oneDNN 2.6's AMX kernel runs such counts far below its speed on the padded count
 * (513 rows: half the useful GFLOP/s of 544); tools/bench/bench_dnnl.c measures it and
 * docs/performance.md has the figures. Each row's result is its own dot products, so the
 * zero rows change nothing in the real ones beyond what a different row count may change in
 * oneDNN's summation order (the bf16 mode promises no more).
 *
 * One engine and one stream for the process. Creating a primitive costs as much as a small
 * product (oneDNN generates its kernel), so each shape's primitive is made once and kept; the
 * table, the packed matrices and the stream are shared by every session, under one lock. */
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/huge_alloc.h"
#include "diffscope/error.h"
#include "diffscope/model.h"
#include "model/linear_bf16.h"

#define CACHE_SLOTS 128
/* The row count whose weights layout every product of a packed matrix uses: a prefill's. */
#define PACK_ROWS 512
/* The row granule of oneDNN's AMX kernel (its tile of 32 rows). */
#define PAD_ROWS 32

typedef struct {
    int n, in, out, packed;
    dnnl_primitive_t prim; /* NULL: oneDNN has no bf16 matmul for this shape and layout here */
} cached_matmul;

typedef struct {
    const uint16_t *data; /* the packed buffer, the address products are called with */
    int in, out;
    dnnl_memory_desc_t md;
} packed_matrix;

static struct {
    pthread_once_t once;
    pthread_mutex_t lock;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    cached_matmul slots[CACHE_SLOTS];
    int used, next;
    packed_matrix *packed;
    int npacked, packed_cap;
    /* the padded rows' operands, kept and grown (a fresh buffer would fault in every page) */
    uint16_t *xpad;
    float *ypad;
    size_t xpad_size, ypad_size;
    char impl[64];
} g = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static void init_engine(void) {
    if (dnnl_engine_create(&g.engine, dnnl_cpu, 0) != dnnl_success) g.engine = NULL;
    else if (dnnl_stream_create(&g.stream, g.engine, dnnl_stream_default_flags) != dnnl_success) g.stream = NULL;
}

/* The weights as the model maps them: W[out, in] row-major is the [in, out] matrix oneDNN
 * multiplies by, in its "ba" layout. */
static int plain_md(dnnl_memory_desc_t *md, int in, int out) {
    dnnl_dims_t dw = {in, out};
    return dnnl_memory_desc_init_by_tag(md, 2, dw, dnnl_bf16, dnnl_ba) != dnnl_success;
}

/* The primitive descriptor of one product with weights layout WEI (NULL: the kernel's choice),
 * or NULL when oneDNN implements none here. */
static dnnl_primitive_desc_t matmul_pd(int n, int in, int out, const dnnl_memory_desc_t *wei) {
    dnnl_memory_desc_t src, w, dst;
    dnnl_dims_t ds = {n, in}, dw = {in, out}, dd = {n, out};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    if (wei) w = *wei;
    else if (dnnl_memory_desc_init_by_tag(&w, 2, dw, dnnl_bf16, dnnl_format_tag_any)) return NULL;
    if (dnnl_memory_desc_init_by_tag(&src, 2, ds, dnnl_bf16, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) || dnnl_matmul_desc_init(&md, &src, &w, NULL, &dst) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, g.engine, NULL))
        return NULL;
    return pd;
}

static dnnl_primitive_t make_matmul(int n, int in, int out, const dnnl_memory_desc_t *wei) {
    dnnl_primitive_desc_t pd = matmul_pd(n, in, out, wei);
    dnnl_primitive_t prim = NULL;
    if (pd && dnnl_primitive_create(&prim, pd)) prim = NULL;
    dnnl_primitive_desc_destroy(pd);
    return prim;
}

/* The packed matrix at address W, or NULL when W is a plain one; the caller holds the lock. */
static const packed_matrix *find_packed(const uint16_t *w) {
    for (int i = 0; i < g.npacked; i++)
        if (g.packed[i].data == w) return &g.packed[i];
    return NULL;
}

/* The cached primitive of a shape and layout (made on first use); the caller holds the lock. */
static cached_matmul *lookup(int n, int in, int out, const packed_matrix *p) {
    const int packed = p != NULL;
    for (int i = 0; i < g.used; i++) {
        cached_matmul *c = &g.slots[i];
        if (c->n == n && c->in == in && c->out == out && c->packed == packed) return c;
    }
    cached_matmul *c;
    if (g.used < CACHE_SLOTS) c = &g.slots[g.used++];
    else { /* prompts of many lengths: the oldest shape makes room */
        c = &g.slots[g.next];
        g.next = (g.next + 1) % CACHE_SLOTS;
        if (c->prim) dnnl_primitive_destroy(c->prim);
    }
    dnnl_memory_desc_t wei;
    if (!p && plain_md(&wei, in, out)) *c = (cached_matmul){n, in, out, packed, NULL};
    else *c = (cached_matmul){n, in, out, packed, make_matmul(n, in, out, p ? &p->md : &wei)};
    return c;
}

/* Runs PRIM on buffers in layouts SRC, WEI, DST; 0 done. */
static int execute(dnnl_primitive_t prim, const dnnl_memory_desc_t *src, const void *x, const dnnl_memory_desc_t *wei,
                   const void *w, const dnnl_memory_desc_t *dst, void *y) {
    dnnl_memory_t ms = NULL, mw = NULL, md = NULL;
    int rc = dnnl_memory_create(&ms, src, g.engine, (void *)x) || dnnl_memory_create(&mw, wei, g.engine, (void *)w) ||
             dnnl_memory_create(&md, dst, g.engine, y);
    if (!rc) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
        rc = dnnl_primitive_execute(prim, g.stream, 3, args) || dnnl_stream_wait(g.stream);
    }
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(mw);
    dnnl_memory_destroy(md);
    return rc;
}

/* Reorders W from layout FROM into layout TO at OUT; 0 done. */
static int reorder(const void *w, const dnnl_memory_desc_t *from, void *out, const dnnl_memory_desc_t *to) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t mf = NULL, mt = NULL;
    int rc = dnnl_reorder_primitive_desc_create(&pd, from, g.engine, to, g.engine, NULL) ||
             dnnl_primitive_create(&prim, pd) || dnnl_memory_create(&mf, from, g.engine, (void *)w) ||
             dnnl_memory_create(&mt, to, g.engine, out);
    if (!rc) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mf}, {DNNL_ARG_TO, mt}};
        rc = dnnl_primitive_execute(prim, g.stream, 2, args) || dnnl_stream_wait(g.stream);
    }
    dnnl_memory_destroy(mf);
    dnnl_memory_destroy(mt);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* One product of N rows, W packed as P (NULL: plain); the caller holds the lock. A packed matrix
 * whose layout oneDNN refuses at this row count (none seen) is unpacked into a scratch copy for
 * the call. */
static int matmul_rows(float *y, const uint16_t *x, const uint16_t *w, const packed_matrix *p, int n, int in,
                       int out) {
    cached_matmul *c = lookup(n, in, out, p);
    dnnl_memory_desc_t src, plain, dst;
    dnnl_dims_t ds = {n, in}, dd = {n, out};
    if (dnnl_memory_desc_init_by_tag(&src, 2, ds, dnnl_bf16, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) || plain_md(&plain, in, out))
        return -1;
    if (c->prim) return execute(c->prim, &src, x, p ? &p->md : &plain, w, &dst, y) ? -1 : 0;
    if (!p) return 1;
    uint16_t *wp = malloc((size_t)in * out * sizeof *wp);
    cached_matmul *cp = wp ? lookup(n, in, out, NULL) : NULL;
    int rc = !cp || !cp->prim || reorder(w, &p->md, wp, &plain) || execute(cp->prim, &src, x, &plain, wp, &dst, y);
    free(wp);
    return rc ? -1 : 0;
}

/* *BUF with room for BYTES (grown, never shrunk), or NULL; the caller holds the lock. */
static void *room(void **buf, size_t *size, size_t bytes) {
    if (bytes <= *size) return *buf;
    void *p = realloc(*buf, bytes);
    if (p) *buf = p, *size = bytes;
    return p;
}

/* The product on x's N rows padded with zero rows to NP; the caller holds the lock. Without
 * room for the padding, the rows run as they are. */
static int padded_matmul(float *y, const uint16_t *x, const uint16_t *w, const packed_matrix *p, int n, int np, int in,
                         int out) {
    if (!p && !lookup(np, in, out, NULL)->prim) return 1; /* no bf16 matmul here: nothing to pad for */
    uint16_t *xp = room((void **)&g.xpad, &g.xpad_size, (size_t)np * in * sizeof *xp);
    float *yp = xp ? room((void **)&g.ypad, &g.ypad_size, (size_t)np * out * sizeof *yp) : NULL;
    if (!yp) return matmul_rows(y, x, w, p, n, in, out);
    memcpy(xp, x, (size_t)n * in * sizeof *xp);
    memset(xp + (size_t)n * in, 0, (size_t)(np - n) * in * sizeof *xp);
    const int rc = matmul_rows(yp, xp, w, p, np, in, out);
    if (rc) return rc;
#pragma omp parallel for schedule(static) if ((size_t)n * out >= DS_PAR_MIN)
    for (int t = 0; t < n; t++) memcpy(y + (size_t)t * out, yp + (size_t)t * out, (size_t)out * sizeof *y);
    return 0;
}

int ds_dnnl_bf16_matmul(float *y, const uint16_t *x, const uint16_t *w, int n, int in, int out) {
    pthread_once(&g.once, init_engine);
    if (!g.stream) return 1;
    const int np = n > PAD_ROWS && n % PAD_ROWS ? (n / PAD_ROWS + 1) * PAD_ROWS : n;
    pthread_mutex_lock(&g.lock);
    const packed_matrix *p = find_packed(w);
    const int rc = np == n ? matmul_rows(y, x, w, p, n, in, out) : padded_matmul(y, x, w, p, n, np, in, out);
    pthread_mutex_unlock(&g.lock);
    return rc < 0 ? ds_failc(DS_ERR_INTERNAL, "oneDNN could not run a bf16 product (%d x %d x %d)", n, in, out) : rc;
}

int ds_dnnl_bf16_pack(const uint16_t *w, int in, int out, uint16_t **packed) {
    *packed = NULL;
    pthread_once(&g.once, init_engine);
    if (!g.stream) return 1;
    dnnl_primitive_desc_t pd = matmul_pd(PACK_ROWS, in, out, NULL);
    if (!pd) return 1;
    dnnl_memory_desc_t md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), plain;
    dnnl_primitive_desc_destroy(pd);
    if (plain_md(&plain, in, out)) return ds_failc(DS_ERR_INTERNAL, "oneDNN refused a bf16 matrix (%d x %d)", out, in);
    if (dnnl_memory_desc_equal(&md, &plain)) return 1; /* the kernel reads the plain layout as it is */
    /* a large matrix in huge pages where the kernel gives them, as the file mapping was
     * (io/safetensors.c) */
    uint16_t *buf = ds_alloc_huge(dnnl_memory_desc_get_size(&md));
    if (!buf) return ds_failc(DS_ERR_NOMEM, "out of memory packing a bf16 matrix (%d x %d)", out, in);
    pthread_mutex_lock(&g.lock);
    int rc = reorder(w, &plain, buf, &md);
    if (!rc && g.npacked == g.packed_cap) {
        int cap = g.packed_cap ? 2 * g.packed_cap : 256;
        packed_matrix *np = realloc(g.packed, (size_t)cap * sizeof *np);
        if (np) g.packed = np, g.packed_cap = cap;
        else rc = -1;
    }
    if (!rc) g.packed[g.npacked++] = (packed_matrix){buf, in, out, md};
    pthread_mutex_unlock(&g.lock);
    if (rc) {
        free(buf);
        return ds_failc(DS_ERR_NOMEM, "oneDNN could not pack a bf16 matrix (%d x %d)", out, in);
    }
    *packed = buf;
    return 0;
}

void ds_dnnl_bf16_free(uint16_t *packed) {
    if (!packed) return;
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.npacked; i++)
        if (g.packed[i].data == packed) {
            g.packed[i] = g.packed[--g.npacked];
            break;
        }
    pthread_mutex_unlock(&g.lock);
    free(packed);
}

const char *ds_bf16_impl(void) {
    if (ds_tiles_ready()) return ds_tiles_impl();
    pthread_once(&g.once, init_engine);
    pthread_mutex_lock(&g.lock);
    if (!g.impl[0]) {
        dnnl_primitive_desc_t pd = g.stream ? matmul_pd(64, 256, 256, NULL) : NULL;
        const char *name = NULL;
        if (pd && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name)
            snprintf(g.impl, sizeof g.impl, "%s", name);
        else snprintf(g.impl, sizeof g.impl, "none");
        dnnl_primitive_desc_destroy(pd);
    }
    pthread_mutex_unlock(&g.lock);
    return g.impl;
}

static int has_isa(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t want) { return ((unsigned)isa & (unsigned)want) == (unsigned)want; }

const char *ds_bf16_kernel(void) {
    if (ds_tiles_ready()) return ds_tiles_kernel();
    if (!strcmp(ds_bf16_impl(), "none")) return "AVX2 (bf16 widened to f32, OpenBLAS)";
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (has_isa(isa, dnnl_cpu_isa_avx512_core_amx)) return "AMX";
    if (has_isa(isa, dnnl_cpu_isa_avx512_core_bf16)) return "AVX512-BF16";
    return "AVX512 (bf16 emulated)";
}
