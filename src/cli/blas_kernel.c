/* Choosing OpenBLAS's kernel when its own detection falls short.
 *
 * Debian's OpenBLAS 0.3.21 is built for every x86 CPU (DYNAMIC_ARCH) and picks a kernel from
 * the CPU model when the library loads, before main(). It does not know recent or virtualised
 * models: on a virtualised Xeon it ran a generic kernel and diffscope's prefill was 3.4-5.6x
 * slower than with its AVX-512 kernel (docs/performance.md), and on AVX-512 AMD EPYCs it runs
 * the AVX2 kernels. OPENBLAS_CORETYPE overrides the choice, but is only read at load time: so
 * when the user has not set it and the kernel in use is not the best one the CPU supports,
 * diffscope sets it and executes itself again, once. Setting OPENBLAS_CORETYPE (to anything)
 * keeps OpenBLAS's choice or the user's. */
#include "cli/cli.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *openblas_get_corename(void);

/* The kernel to ask for on this CPU, or NULL when the one in use is already right. */
static const char *better_kernel(const char *current) {
    static const char *const avx512_kernels[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx2_kernels[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        for (size_t i = 0; i < sizeof avx512_kernels / sizeof *avx512_kernels; i++)
            if (!strcasecmp(current, avx512_kernels[i])) return NULL;
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        for (size_t i = 0; i < sizeof avx2_kernels / sizeof *avx2_kernels; i++)
            if (!strcasecmp(current, avx2_kernels[i])) return NULL;
        return "Haswell";
    }
    return NULL;
}

/* Started through the dynamic loader (ld.so --library-path L diffscope ...), /proc/self/exe
 * is the loader itself, and executing it with our argv would run the wrong program. */
static int started_by_loader(void) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return 1;
    path[n] = 0;
    const char *base = strrchr(path, '/');
    return !strncmp(base ? base + 1 : path, "ld-", 3);
}

void cli_choose_blas_kernel(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice, or our own re-execution */
    const char *current = openblas_get_corename();
    const char *want = better_kernel(current ? current : "");
    if (!want || started_by_loader() || setenv("OPENBLAS_CORETYPE", want, 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the kernel we have */
}
