/* bf16 matrix products in AMX's tile layout, diffscope's own: y[n, out] (f32) = x[n, in]
 * (rounded to bf16) · W[out, in]ᵀ (bf16), accumulated in f32, on AMX tiles (TDPBF16PS) or, on a
 * CPU with AVX512-BF16 but no AMX, by VDPBF16PS dot products on the same layout.
 *
 * Why not oneDNN's: on the Xeon we benchmark on, oneDNN 2.6's AMX matmul (and PyTorch's, on a
 * newer oneDNN) run these shapes at a fraction of what the tiles themselves do there
 * (tools/bench/bench_amx.c measures the tiles; docs/performance.md has the figures), and its
 * AVX512-BF16 kernel ran them slower than float32 sgemm.
 *
 * Layouts. W is packed once (ds_tiles_pack) into 1 KB tiles: for each block of 16 output
 * features and each block of 32 inputs, 16 rows of input pairs × 16 features × 2, the "VNNI"
 * layout TDPBF16PS reads B in; features and inputs are padded with zeros to multiples of 32.
 * x is rounded to bf16 into 1 KB tiles of 16 rows × 32 inputs, padded with zeros to multiples
 * of 32 rows and inputs: each tile the kernel loads, of either operand, is then 1 KB in one
 * piece, which the cache's prefetchers follow, where 16 rows of a long matrix would be 16
 * separate lines.
 *
 * Work. The kernel makes a 32 × 32 block of y over all the inputs, in input order (four
 * accumulator tiles; or, with dot products, four strips of 8 rows in 16 registers), so each y
 * value is one fixed sum whatever the thread count or the core: results do not depend on
 * either. Tasks are a chunk of rows (as many as keep it within L2 beside one
 * block of W) times a panel of PANEL_COLS features, handed to the threads dynamically; within
 * a task each 32-feature block of W stays in L2 while it meets every row block of the chunk.
 *
 * Packed matrices are found by their address (as dnnl_matmul.c's), so callers pass W the same
 * way whichever kernel packed it. */
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "base/half.h"
#include "base/huge_alloc.h"
#include "diffscope/error.h"
#include "model/linear_bf16.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include "base/amx_config.h"
#define HAVE_AMX_BUILD 1
#endif

#define TILE_ELEMS 512 /* 16 rows × 32 bf16 */
#define PANEL_COLS 128
#define CHUNK_BYTES ((size_t)1100 << 10)
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

typedef struct {
    const uint16_t *data;
    int in, out;
} packed_matrix;

typedef enum { NO_KERNEL, AMX_KERNEL, DOT_KERNEL } kernel_kind;

/* What ds_bf16_kernel and ds_bf16_impl report for each kernel. */
static const struct {
    const char *family, *impl;
} kernel_names[] = {[AMX_KERNEL] = {"AMX", "diffscope:amx_tiles"},
                    [DOT_KERNEL] = {"AVX512-BF16", "diffscope:avx512bf16_dot"}};

static struct {
    pthread_mutex_t lock;
    packed_matrix *list;
    int n, cap;
    pthread_once_t once;
    kernel_kind kind;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static int round_up(int v, int to) { return (v + to - 1) / to * to; }

#ifdef HAVE_AMX_BUILD
/* The OS saves the AVX-512 registers (XCR0: opmask, upper halves of zmm0-15, zmm16-31). */
static int os_saves_avx512(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c >> 27 & 1)) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6;
}
#endif

/* DIFFSCOPE_BF16_KERNEL: unset or "auto" the fastest here; "onednn" neither of ours; "avx512bf16"
 * the dot products even where AMX is (to measure them). */
static void probe_kernel(void) {
#ifdef HAVE_AMX_BUILD
    unsigned a, b, c, d, a1 = 0, b1, c1, d1;
    const char *choice = getenv("DIFFSCOPE_BF16_KERNEL");
    if (choice && *choice && strcmp(choice, "auto") && strcmp(choice, "onednn") && strcmp(choice, "avx512bf16"))
        fprintf(stderr, "diffscope: DIFFSCOPE_BF16_KERNEL=%s is not auto, onednn or avx512bf16; using auto\n", choice);
    if ((choice && !strcmp(choice, "onednn")) || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    const int avx512bf16 = (b >> 16 & 1) && (a1 >> 5 & 1) && os_saves_avx512();
    const int want_dot = choice && !strcmp(choice, "avx512bf16");
    /* Linux hands out the tile state only to a process that asks for it */
    if (!want_dot && (d >> 22 & 1) && (d >> 24 & 1) && !syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA))
        g.kind = AMX_KERNEL;
    else if (avx512bf16)
        g.kind = DOT_KERNEL;
#endif
}

int ds_tiles_ready(void) {
    pthread_once(&g.once, probe_kernel);
    return g.kind != NO_KERNEL;
}

const char *ds_tiles_kernel(void) { return ds_tiles_ready() ? kernel_names[g.kind].family : NULL; }

const char *ds_tiles_impl(void) { return ds_tiles_ready() ? kernel_names[g.kind].impl : NULL; }

/* 1 with the shape of the packed matrix at W in *P (a copy: another thread may grow or shrink
 * the list once the lock is released), 0 when W is not one. */
static int find(const uint16_t *w, packed_matrix *p) {
    int found = 0;
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.n && !found; i++)
        if (g.list[i].data == w) *p = g.list[i], found = 1;
    pthread_mutex_unlock(&g.lock);
    return found;
}

int ds_tiles_is_packed(const uint16_t *w) {
    packed_matrix p;
    return find(w, &p);
}

int ds_tiles_pack(const uint16_t *w, int in, int out, uint16_t **packed) {
    const int kp = round_up(in, 32), np = round_up(out, 32), kt = kp / 32;
    uint16_t *buf = ds_alloc_huge((size_t)np * kp * sizeof(uint16_t));
    *packed = NULL;
    if (!buf) return ds_failc(DS_ERR_NOMEM, "out of memory packing a bf16 matrix (%d x %d)", out, in);
#pragma omp parallel for schedule(static) if ((size_t)np * kp >= DS_PAR_MIN)
    for (int fb = 0; fb < np / 16; fb++)
        for (int kb = 0; kb < kt; kb++) {
            uint16_t *tile = buf + ((size_t)fb * kt + kb) * TILE_ELEMS;
            for (int r = 0; r < 16; r++)
                for (int f = 0; f < 16; f++)
                    for (int e = 0; e < 2; e++) {
                        const int row = fb * 16 + f, col = kb * 32 + 2 * r + e;
                        tile[r * 32 + f * 2 + e] = row < out && col < in ? w[(size_t)row * in + col] : 0;
                    }
        }
    pthread_mutex_lock(&g.lock);
    if (g.n == g.cap) {
        const int cap = g.cap ? 2 * g.cap : 256;
        packed_matrix *list = realloc(g.list, (size_t)cap * sizeof *list);
        if (list) g.list = list, g.cap = cap;
    }
    const int stored = g.n < g.cap;
    if (stored) g.list[g.n++] = (packed_matrix){buf, in, out};
    pthread_mutex_unlock(&g.lock);
    if (!stored) {
        free(buf);
        return ds_failc(DS_ERR_NOMEM, "out of memory packing a bf16 matrix (%d x %d)", out, in);
    }
    *packed = buf;
    return 0;
}

int ds_tiles_free(uint16_t *packed) {
    int found = 0;
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.n && !found; i++)
        if (g.list[i].data == packed) g.list[i] = g.list[--g.n], found = 1;
    if (!g.n) free(g.list), g.list = NULL, g.cap = 0;
    pthread_mutex_unlock(&g.lock);
    if (found) free(packed);
    return found;
}

/* One 32 × 32 block: C[32, 32] (row stride LDC floats) = the two 16-row tile rows A0, A1 of the
 * rounded x · the two 16-feature tile columns B0, B1 of a packed matrix, KT tiles each. */
typedef void block_kernel(const uint16_t *a0, const uint16_t *a1, const uint16_t *b0, const uint16_t *b1, int kt,
                          float *c, int ldc);

/* The same sums without tiles, for the tests on CPUs without AMX: each pair of products is added
 * to the accumulator in input order. */
static void block_scalar(const uint16_t *a0, const uint16_t *a1, const uint16_t *b0, const uint16_t *b1, int kt,
                         float *c, int ldc) {
    for (int r = 0; r < 32; r++)
        for (int f = 0; f < 32; f++) {
            const uint16_t *a = r < 16 ? a0 : a1, *b = f < 16 ? b0 : b1;
            float acc = 0.0f;
            for (int kb = 0; kb < kt; kb++)
                for (int p = 0; p < 16; p++) {
                    const size_t tile = (size_t)kb * TILE_ELEMS;
                    const uint16_t *ap = a + tile + (r % 16) * 32 + 2 * p, *bp = b + tile + p * 32 + (f % 16) * 2;
                    acc += ds_bf16_to_f32(ap[0]) * ds_bf16_to_f32(bp[0]) + ds_bf16_to_f32(ap[1]) * ds_bf16_to_f32(bp[1]);
                }
            c[(size_t)r * ldc + f] = acc;
        }
}

#ifdef HAVE_AMX_BUILD

__attribute__((target("amx-tile"))) static void tiles_off(void) { _tile_release(); }

/* Tiles 0-3 accumulate the block's four 16 × 16 quarters, 4-5 hold A, 6-7 B (ds_tiles_configure).
 * Each operand tile of the next 32 inputs is loaded as soon as the products that read its
 * register are issued: tile registers are not renamed, so a load waits for the last product that
 * reads its register, and loading all four at the top of the loop makes every load wait for all
 * four products before it. Each accumulator still adds its products in input order. */
__attribute__((target("amx-tile,amx-bf16"))) static void block_amx(const uint16_t *a0, const uint16_t *a1,
                                                                    const uint16_t *b0, const uint16_t *b1, int kt,
                                                                    float *c, int ldc) {
    const size_t sc = (size_t)ldc * sizeof *c;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a0, 64);
    _tile_loadd(6, b0, 64);
    _tile_loadd(7, b1, 64);
    _tile_loadd(5, a1, 64);
    for (int kb = 0; kb < kt; kb++) {
        const size_t next = (size_t)(kb + 1) * TILE_ELEMS;
        const int more = kb + 1 < kt;
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (more) _tile_loadd(4, a0 + next, 64);
        _tile_dpbf16ps(2, 5, 6);
        if (more) _tile_loadd(6, b0 + next, 64);
        _tile_dpbf16ps(3, 5, 7);
        if (more) {
            _tile_loadd(7, b1 + next, 64);
            _tile_loadd(5, a1 + next, 64);
        }
    }
    _tile_stored(0, c, sc);
    _tile_stored(1, c + 16, sc);
    _tile_stored(2, c + (size_t)16 * ldc, sc);
    _tile_stored(3, c + (size_t)16 * ldc + 16, sc);
}

/* One strip of 8 rows of A (from row R of its tiles) × 32 features, in 16 registers: for each pair
 * of inputs, row i's pair broadcast times the pair's 16-feature row of B0 and of B1. In the tile
 * layout a row of a B tile is one 64-byte vector, and a row's pair of inputs one 32-bit word. */
#define DOT_ROW(i)                                                                                 \
    do {                                                                                           \
        int32_t pair;                                                                              \
        memcpy(&pair, at + (i) * 32 + 2 * p, sizeof pair);                                         \
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(pair);                                     \
        acc##i##0 = _mm512_dpbf16_ps(acc##i##0, ai, bv0);                                         \
        acc##i##1 = _mm512_dpbf16_ps(acc##i##1, ai, bv1);                                         \
    } while (0)
#define DOT_STORE(i)                                                   \
    do {                                                               \
        _mm512_storeu_ps(c + (size_t)(r0 + (i)) * ldc, acc##i##0);      \
        _mm512_storeu_ps(c + (size_t)(r0 + (i)) * ldc + 16, acc##i##1); \
    } while (0)

__attribute__((target("avx512f,avx512bf16"))) static void dot_strip(const uint16_t *a, int r, const uint16_t *b0,
                                                                     const uint16_t *b1, int kt, float *c, int r0,
                                                                     int ldc) {
    __m512 acc00 = _mm512_setzero_ps(), acc01 = acc00, acc10 = acc00, acc11 = acc00, acc20 = acc00, acc21 = acc00;
    __m512 acc30 = acc00, acc31 = acc00, acc40 = acc00, acc41 = acc00, acc50 = acc00, acc51 = acc00;
    __m512 acc60 = acc00, acc61 = acc00, acc70 = acc00, acc71 = acc00;
    for (int kb = 0; kb < kt; kb++) {
        const size_t tile = (size_t)kb * TILE_ELEMS;
        const uint16_t *at = a + tile + r * 32;
        for (int p = 0; p < 16; p++) {
            const __m512bh bv0 = (__m512bh)_mm512_loadu_si512(b0 + tile + p * 32);
            const __m512bh bv1 = (__m512bh)_mm512_loadu_si512(b1 + tile + p * 32);
            DOT_ROW(0);
            DOT_ROW(1);
            DOT_ROW(2);
            DOT_ROW(3);
            DOT_ROW(4);
            DOT_ROW(5);
            DOT_ROW(6);
            DOT_ROW(7);
        }
    }
    DOT_STORE(0);
    DOT_STORE(1);
    DOT_STORE(2);
    DOT_STORE(3);
    DOT_STORE(4);
    DOT_STORE(5);
    DOT_STORE(6);
    DOT_STORE(7);
}

static void block_dot(const uint16_t *a0, const uint16_t *a1, const uint16_t *b0, const uint16_t *b1, int kt,
                      float *c, int ldc) {
    for (int s = 0; s < 4; s++) dot_strip(s < 2 ? a0 : a1, s % 2 * 8, b0, b1, kt, c, s * 8, ldc);
}
#endif

/* x rounded to bf16 in the kernel's tiles (see the top): MP/16 tile rows of KT tiles, or NULL. */
static uint16_t *round_rows(const float *x, int n, int in, int mp, int kt) {
    uint16_t *a = aligned_alloc(64, (size_t)mp * kt * 32 * sizeof *a);
    if (!a) return NULL;
#pragma omp parallel for schedule(static) if ((size_t)mp * kt * 32 >= DS_PAR_MIN)
    for (int r = 0; r < mp; r++) {
        uint16_t *row = a + (size_t)(r / 16) * kt * TILE_ELEMS + (r % 16) * 32;
        for (int kb = 0; kb < kt; kb++) {
            uint16_t *dst = row + (size_t)kb * TILE_ELEMS;
            for (int c = 0; c < 32; c++) {
                const int k = kb * 32 + c;
                dst[c] = r < n && k < in ? ds_f32_to_bf16(x[(size_t)r * in + k]) : 0;
            }
        }
    }
    return a;
}

/* One task: rows [r0, r1) of the padded rows times features [f0, f1) of product O. */
static void run_task(block_kernel *kernel, const uint16_t *a, int n, int kt, const ds_linear_out *o, int r0, int r1,
                     int f0, int f1) {
    float spill[32 * 32];
    const size_t strip = (size_t)kt * TILE_ELEMS; /* one tile row of x, or tile column of W */
    for (int fb = f0; fb < f1; fb += 32) {
        const uint16_t *b0 = o->w16 + (size_t)(fb / 16) * strip, *b1 = b0 + strip;
        for (int rb = r0; rb < r1; rb += 32) {
            const uint16_t *a0 = a + (size_t)(rb / 16) * strip, *a1 = a0 + strip;
            if (rb + 32 <= n && fb + 32 <= o->out) {
                kernel(a0, a1, b0, b1, kt, o->y + (size_t)rb * o->out + fb, o->out);
                continue;
            }
            kernel(a0, a1, b0, b1, kt, spill, 32);
            for (int r = rb; r < rb + 32 && r < n; r++)
                memcpy(o->y + (size_t)r * o->out + fb, spill + (size_t)(r - rb) * 32,
                       (size_t)((o->out - fb < 32 ? o->out - fb : 32)) * sizeof(float));
        }
    }
}

/* The products of OUTS on x with KERNEL; TILES: the kernel needs the tile configuration. */
static int products(block_kernel *kernel, int tiles, const float *x, int n, int in, const ds_linear_out *outs,
                    int count) {
    const int kt = round_up(in, 32) / 32, mp = round_up(n, 32);
    for (int i = 0; i < count; i++) {
        packed_matrix p;
        if (!find(outs[i].w16, &p) || p.in != in || p.out != outs[i].out)
            return ds_failc(DS_ERR_INTERNAL, "a bf16 product's weights are not packed for the tile-layout kernels");
    }
    int chunk = (int)(CHUNK_BYTES / ((size_t)kt * 32 * sizeof(uint16_t))) / 32 * 32;
    chunk = chunk < 32 ? 32 : chunk > 256 ? 256 : chunk;
    const int chunks = (mp + chunk - 1) / chunk;
    int first[DS_LINEAR_MAX + 1] = {0};
    for (int i = 0; i < count; i++) first[i + 1] = first[i] + chunks * ((outs[i].out + PANEL_COLS - 1) / PANEL_COLS);
    uint16_t *a = round_rows(x, n, in, mp, kt);
    if (!a) return ds_failc(DS_ERR_NOMEM, "out of memory for a bf16 product (%d x %d)", n, in);
    const int par = (size_t)n * in * outs[0].out * count >= DS_PAR_MIN;
#pragma omp parallel if (par)
    {
#ifdef HAVE_AMX_BUILD
        if (tiles) ds_tiles_configure();
#endif
#pragma omp for schedule(dynamic)
        for (int t = 0; t < first[count]; t++) {
            int i = 0;
            while (t >= first[i + 1]) i++;
            const int c = (t - first[i]) % chunks, panel = (t - first[i]) / chunks;
            const int r0 = c * chunk, r1 = r0 + chunk < mp ? r0 + chunk : mp;
            const int f0 = panel * PANEL_COLS, f1 = f0 + PANEL_COLS < outs[i].out ? f0 + PANEL_COLS : outs[i].out;
            run_task(kernel, a, n, kt, &outs[i], r0, r1, f0, f1);
        }
#ifdef HAVE_AMX_BUILD
        if (tiles) tiles_off();
#endif
    }
    free(a);
    return 0;
}

int ds_tiles_products(const float *x, int n, int in, const ds_linear_out *outs, int count) {
#ifdef HAVE_AMX_BUILD
    if (ds_tiles_ready()) return g.kind == AMX_KERNEL ? products(block_amx, 1, x, n, in, outs, count)
                                                      : products(block_dot, 0, x, n, in, outs, count);
#endif
    return products(block_scalar, 0, x, n, in, outs, count);
}

int ds_tiles_products_scalar(const float *x, int n, int in, const ds_linear_out *outs, int count) {
    return products(block_scalar, 0, x, n, in, outs, count);
}
