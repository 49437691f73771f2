/* What the CPU's matrix units give, free of any library: the ceiling that oneDNN's bf16 products
 * (and PyTorch's) are measured against in docs/performance.md. Prints one JSON line per case and
 * thread count:
 *   - clock: a chain of dependent integer multiplies (3 cycles each on every x86 core since
 *     2011; a chain of adds of an immediate is no measure: newer Intel cores fold them), so
 *     3 x multiplies per second is the core clock, alone and with every thread running it;
 *   - fma_f32: 12 independent chains of 16-lane fused multiply-adds (AVX-512) in registers, the
 *     float32 peak (FLOP a cycle = 2 units x 16 lanes x 2 on a core with two FMA units);
 *   - dot_bf16: the same with VDPBF16PS (AVX512-BF16), 16 lanes x 2 bf16 products each: twice
 *     the float32 peak where it issues as often as an FMA, the float32 peak where half as often;
 *   - amx_regs: TDPBF16PS on tiles already loaded, 4 independent accumulators (AMX's peak:
 *     16 x 16 x 32 multiply-adds, 16384 FLOP, per instruction);
 *   - amx_l1: the same with 2 A and 2 B tiles loaded from 4 KB buffers before every 4 products,
 *     as a GEMM's inner kernel does (operands in L1).
 * It runs each case on 1 thread and then on every thread (OpenMP), SECONDS each.
 *
 *   bench_amx [--seconds S] [--threads N]
 *
 * Needs a CPU and kernel with AMX (Linux >= 5.16 grants the tile state per process on request);
 * without it only clock, fma_f32 and dot_bf16 run. Built by `make build/bench_amx` (x86-64 only). */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "base/amx_config.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define TILE_FLOP (16.0 * 16 * 32 * 2)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Multiplies in a dependent chain, unrolled so that the loop's own work hides beside them. */
static double clock_muls(double seconds) {
    uint64_t x = 3, n = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 1000; i++) __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(x));
        n += 4000;
    } while ((t = now() - t0) < seconds);
    return 3.0 * n / t;
}

/* 12 independent chains C0..C11 in named registers (an array of them may live in memory at
 * -O2), each advanced by STEP(c) 1000 times a pass, until SECONDS after T0; the steps taken
 * into *N. */
#define RUN_CHAINS(STEP, seconds, t0, n)                                                             \
    do {                                                                                           \
        for (int r = 0; r < 1000; r++) {                                                           \
            STEP(c0), STEP(c1), STEP(c2), STEP(c3), STEP(c4), STEP(c5);                            \
            STEP(c6), STEP(c7), STEP(c8), STEP(c9), STEP(c10), STEP(c11);                          \
            __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));     \
            __asm__ volatile("" : "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));   \
        }                                                                                          \
        *(n) += 1000 * 12;                                                                         \
    } while (now() - (t0) < (seconds))

__attribute__((target("avx512f"))) static double fma_f32(double seconds) {
    const __m512 a = _mm512_set1_ps(1.0f + 1e-7f), b = _mm512_set1_ps(1e-7f);
    __m512 c0 = a, c1 = b, c2 = a, c3 = b, c4 = a, c5 = b, c6 = a, c7 = b, c8 = a, c9 = b, c10 = a, c11 = b;
    uint64_t n = 0;
    const double t0 = now();
#define FMA_STEP(c) (c = _mm512_fmadd_ps(c, a, b))
    RUN_CHAINS(FMA_STEP, seconds, t0, &n);
    return n * 16.0 * 2 / (now() - t0);
}

/* The same chains of VDPBF16PS: 16 lanes x 2 products x 2 FLOP an instruction. */
__attribute__((target("avx512f,avx512bf16"))) static double dot_bf16(double seconds) {
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80); /* two bf16 1.0 */
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0;
    __m512 c9 = c0, c10 = c0, c11 = c0;
    uint64_t n = 0;
    const double t0 = now();
#define DOT_STEP(c) (c = _mm512_dpbf16_ps(c, a, a))
    RUN_CHAINS(DOT_STEP, seconds, t0, &n);
    return n * 16.0 * 2 * 2 / (now() - t0);
}

/* FROM_L1: reload the operand tiles before every 4 products, as a GEMM kernel would. */
__attribute__((target("amx-tile,amx-bf16"))) static double amx(double seconds, int from_l1) {
    static _Thread_local uint16_t a[2][16 * 32] __attribute__((aligned(64))), b[2][16 * 32] __attribute__((aligned(64)));
    static _Thread_local float c[16 * 16] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) a[0][i] = a[1][i] = b[0][i] = b[1][i] = 0x3f80; /* 1.0 */
    ds_tiles_configure();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a[0], 64);
    _tile_loadd(5, a[1], 64);
    _tile_loadd(6, b[0], 64);
    _tile_loadd(7, b[1], 64);
    uint64_t n = 0;
    double t0 = now(), t;
    do {
        for (int r = 0; r < 256; r++) {
            if (from_l1) {
                _tile_loadd(4, a[0], 64);
                _tile_loadd(5, a[1], 64);
                _tile_loadd(6, b[0], 64);
                _tile_loadd(7, b[1], 64);
            }
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        n += 256 * 4;
    } while ((t = now() - t0) < seconds);
    _tile_stored(0, c, 64);
    _tile_release();
    if (c[0] == -1.0f) puts("");
    return n * TILE_FLOP / t;
}

static int amx_granted(void) {
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 && __builtin_cpu_supports("avx512f");
}

typedef enum { CLOCK, FMA_F32, DOT_BF16, AMX_REGS, AMX_L1, NCASES } bench_case;
static const char *const case_names[NCASES] = {"clock", "fma_f32", "dot_bf16", "amx_regs", "amx_l1"};

static double run_case(bench_case c, double seconds) {
    switch (c) {
    case CLOCK: return clock_muls(seconds);
    case FMA_F32: return fma_f32(seconds);
    case DOT_BF16: return dot_bf16(seconds);
    case AMX_REGS: return amx(seconds, 0);
    case AMX_L1: return amx(seconds, 1);
    default: return 0;
    }
}

int main(int argc, char **argv) {
    double seconds = 2.0;
    int threads = omp_get_max_threads();
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else return fprintf(stderr, "usage: bench_amx [--seconds S] [--threads N]\n"), 2;
    }
    if (argc % 2 == 0 || seconds <= 0 || threads < 1) return fprintf(stderr, "usage: bench_amx [--seconds S] [--threads N]\n"), 2;
    const int has_amx = amx_granted(), has_avx512 = __builtin_cpu_supports("avx512f");
    const int has_bf16 = has_avx512 && __builtin_cpu_supports("avx512bf16");
    fprintf(stderr, "bench_amx: AMX %s, AVX-512 %s, AVX512-BF16 %s\n", has_amx ? "granted" : "not available",
            has_avx512 ? "yes" : "no", has_bf16 ? "yes" : "no");
    for (int c = 0; c < NCASES; c++) {
        if ((c == FMA_F32 && !has_avx512) || (c == DOT_BF16 && !has_bf16) || ((c == AMX_REGS || c == AMX_L1) && !has_amx))
            continue;
        int counts[2] = {1, threads};
        for (int k = 0; k < (threads > 1 ? 2 : 1); k++) {
            double *per = calloc((size_t)counts[k], sizeof *per);
            if (!per) return 3;
#pragma omp parallel num_threads(counts[k])
            per[omp_get_thread_num()] = run_case((bench_case)c, seconds);
            double sum = 0, lo = per[0], hi = per[0];
            for (int t = 0; t < counts[k]; t++) sum += per[t], lo = per[t] < lo ? per[t] : lo, hi = per[t] > hi ? per[t] : hi;
            /* clocks are averaged over the threads, rates added up */
            const char *total = c == CLOCK ? "mean_ghz" : "total_gflops";
            printf("{\"case\":\"%s\",\"threads\":%d,\"%s\":%.2f,\"per_thread_min\":%.2f,\"per_thread_max\":%.2f}\n",
                   case_names[c], counts[k], total, (c == CLOCK ? sum / counts[k] : sum) / 1e9, lo / 1e9, hi / 1e9);
            fflush(stdout);
            free(per);
        }
    }
    return 0;
}
