/* How many threads the storage takes: writes MB megabytes into a new file of that size (made
 * with ftruncate, as HDF5 allocates a dump's contiguous maps) in CHUNK_KB pieces, spread
 * round-robin over 1, 2, 4, ... THREADS threads, each with pwrite, and prints GB/s for each.
 *
 *   bench_pwrite FILE [MB [CHUNK_KB [THREADS]]]      (default 800 MB, 256 KiB, 16) */
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: bench_pwrite FILE [MB [CHUNK_KB [THREADS]]]\n"), 2;
    const size_t mb = argc > 2 ? atol(argv[2]) : 800, chunk = (argc > 3 ? atol(argv[3]) : 256) << 10;
    const int max_threads = argc > 4 ? atoi(argv[4]) : 16;
    const size_t total = mb << 20, nchunks = total / chunk;
    char *src = malloc(chunk * 64);
    if (!src) return 3;
    memset(src, 1, chunk * 64);
    for (int threads = 1; threads <= max_threads; threads *= 2) {
        unlink(argv[1]);
        int fd = open(argv[1], O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)total)) return perror(argv[1]), 2;
        double t0 = now();
        int failed = 0;
#pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(| : failed)
        for (size_t i = 0; i < nchunks; i++)
            failed |= pwrite(fd, src + (i % 64) * chunk, chunk, (off_t)(i * chunk)) != (ssize_t)chunk;
        double t = now() - t0;
        close(fd);
        printf("{\"threads\": %d, \"mb\": %zu, \"chunk_kb\": %zu, \"gbs\": %.2f%s}\n", threads, mb, chunk >> 10,
               nchunks * chunk / t / 1e9, failed ? ", \"failed\": true" : "");
        fflush(stdout);
    }
    unlink(argv[1]);
    return 0;
}
