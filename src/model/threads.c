/* The thread count of OpenBLAS and our OpenMP loops, kept within an address-space limit.
 *
 * OpenBLAS (x86_64, its BUFFER_SIZE) allocates a 128 MiB buffer for every thread it may run a
 * GEMM on: at start-up for its default count (one per core), and again whenever the count is
 * set. When that allocation fails it retries forever. Each of our OpenMP threads also costs a
 * stack and a glibc malloc arena (64 MiB of address space reserved). Under an address-space
 * limit (ulimit -v, common on HPC nodes) one thread per core therefore hung instead of failing,
 * so every count is cut to what the limit leaves room for. Results do not depend on the thread
 * count (docs/reliability.md, "Determinism"). */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include "diffscope/error.h"
#include "model/internal.h"

#define BLAS_BUFFER_BYTES ((size_t)128 << 20)
#define ARENA_BYTES ((size_t)64 << 20)
#define OTHER_BYTES ((size_t)64 << 20) /* HDF5, output buffers, the dump's tables */

static size_t address_space_used(void) {
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t per_thread_bytes(void) {
    struct rlimit stack;
    size_t stack_bytes = (size_t)8 << 20; /* glibc's thread stack when the limit is unlimited */
    if (!getrlimit(RLIMIT_STACK, &stack) && stack.rlim_cur != RLIM_INFINITY && stack.rlim_cur < ((rlim_t)1 << 30))
        stack_bytes = (size_t)stack.rlim_cur;
    return BLAS_BUFFER_BYTES + ARENA_BYTES + stack_bytes;
}

/* How many threads fit when PLANNED more bytes are still to be allocated (INT_MAX without a
 * limit, 0 when not even the calling thread does); *ROOM gets the bytes left. Inside a
 * parallel region OpenBLAS takes a new buffer even on the calling thread (not the one its
 * constructor made), so every thread costs one; the others also cost a stack and an arena. */
static int threads_that_fit(size_t planned, size_t *room) {
    struct rlimit as;
    *room = SIZE_MAX;
    if (getrlimit(RLIMIT_AS, &as) || as.rlim_cur == RLIM_INFINITY) return INT_MAX;
    size_t used = address_space_used() + planned + OTHER_BYTES;
    if ((size_t)as.rlim_cur < used) return *room = 0, 0;
    *room = (size_t)as.rlim_cur - used;
    if (*room < BLAS_BUFFER_BYTES) return 0;
    size_t fit = 1 + (*room - BLAS_BUFFER_BYTES) / per_thread_bytes();
    return fit > INT_MAX ? INT_MAX : (int)fit;
}

/* Runs before OpenBLAS's own constructor (priority 101 runs before unprioritised ones), which
 * allocates a buffer for each of OPENBLAS_NUM_THREADS or one thread per core, and hangs when
 * it cannot: the count is cut, and when not even one buffer fits the process ends here, with
 * the status of an out-of-memory failure, instead of hanging. */
__attribute__((constructor(101))) static void fit_startup_threads(void) {
    struct rlimit as;
    if (getrlimit(RLIMIT_AS, &as) || as.rlim_cur == RLIM_INFINITY) return;
    size_t room, need = address_space_used() + BLAS_BUFFER_BYTES + 2 * OTHER_BYTES;
    if ((size_t)as.rlim_cur < need) {
        fprintf(stderr, "diffscope: out of memory: the address-space limit (ulimit -v) of %zu MiB is below the "
                "%zu MiB the program needs to start\n", (size_t)as.rlim_cur >> 20, need >> 20);
        _exit(DS_EXIT_INTERNAL);
    }
    int fit = threads_that_fit(BLAS_BUFFER_BYTES, &room);
    if (fit < 1) fit = 1;
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    long want = env && atol(env) > 0 ? atol(env) : sysconf(_SC_NPROCESSORS_ONLN);
    if (want > fit) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", fit);
        setenv("OPENBLAS_NUM_THREADS", buf, 1);
    }
    if (omp_get_max_threads() > fit) omp_set_num_threads(fit);
}

void ds_set_threads(int n) {
    if (n <= 0) return;
    size_t room;
    int fit = threads_that_fit(0, &room);
    if (n > fit) n = fit > 0 ? fit : 1; /* a session then says what does not fit */
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int ds_get_threads(void) { return omp_get_max_threads(); }

int ds_fit_threads_to_address_space(size_t planned) {
    size_t room;
    int fit = threads_that_fit(planned, &room);
    if (fit < 1) {
        struct rlimit as;
        getrlimit(RLIMIT_AS, &as);
        return ds_failc(DS_ERR_NOMEM, "out of memory: the address-space limit (ulimit -v) of %zu MiB is too small for the "
                       "model and a session of this length", (size_t)as.rlim_cur >> 20);
    }
    if (ds_get_threads() > fit) ds_set_threads(fit);
    return 0;
}
