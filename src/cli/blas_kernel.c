/* Choosing OpenBLAS's kernel when its own detection falls short.
 *
 * Debian's OpenBLAS 0.3.21 is built for every x86 CPU (DYNAMIC_ARCH) and picks a kernel from
 * the CPU model when the library loads, before main(). It does not know recent or virtualised
 * models: on a virtualised Xeon it ran a generic kernel and diffscope's prefill was 3.4-5.6x
 * slower than with its AVX-512 kernel (docs/performance.md), and on AVX-512 AMD EPYCs it runs
 * the AVX2 kernels. OPENBLAS_CORETYPE overrides the choice, but is only read at load time: so
 * when the user has not set it and the kernel in use is not the best one the CPU supports,
 * diffscope sets it and executes itself again, once, with the command line it was started
 * with (however it was started: directly, or through the dynamic loader). Setting
 * OPENBLAS_CORETYPE (to anything) keeps OpenBLAS's choice or the user's; `bench` warns when
 * that choice is not the CPU's best. */
#include "cli/cli.h"
#include <stdio.h>
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

const char *cli_blas_better_kernel(void) {
    const char *current = openblas_get_corename();
    return better_kernel(current ? current : "");
}

/* The command line this process was started with, from /proc/self/cmdline: started through
 * the dynamic loader (ld.so --library-path L diffscope ...), /proc/self/exe is the loader and
 * main's argv lacks the loader's own arguments, so only this argv runs the same program again.
 * NULL when /proc is not there. */
static char **start_argv(void) {
    static char buf[1 << 17];
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int whole = feof(f);
    fclose(f);
    if (!n || !whole) return NULL; /* a command line longer than the buffer: leave it */
    buf[n] = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += !buf[i];
    char **argv = calloc(count + 2, sizeof *argv);
    for (size_t i = 0, k = 0; argv && i < n; i += strlen(buf + i) + 1) argv[k++] = buf + i;
    return argv;
}

void cli_choose_blas_kernel(void) {
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice, or our own re-execution */
    const char *want = cli_blas_better_kernel();
    char **argv = want ? start_argv() : NULL;
    if (!argv || setenv("OPENBLAS_CORETYPE", want, 1)) return free(argv);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on with the kernel we have */
    free(argv);
}
