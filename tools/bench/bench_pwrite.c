/* What the storage takes from a dump's writers, and what slows them: writes MB megabytes into a
 * new file in DIR (sized first with ftruncate, as HDF5 allocates a dump's contiguous maps) and
 * prints one JSON line per case with GB/s and the writer threads' CPU time, for every
 * combination of
 *   - mode: buffered pwrite, O_DIRECT pwrite (4 KiB-aligned buffers, offsets and lengths), or
 *     O_DIRECT into a file whose blocks fallocate reserved first ("falloc": ext4 lets O_DIRECT
 *     writes run in parallel only where they do not allocate);
 *   - writer threads: each takes the next job (one buffer of REGIONS pieces), as the dump's do;
 *   - layout: sequential (a job's pieces one after another), or scattered (the dump's: piece j
 *     of every job goes to region j of REGIONS equal regions, as a block of rows goes to each
 *     head's map);
 *   - load: 0, or SPIN threads spinning on arithmetic beside the writers (the forward pass).
 *
 *   bench_pwrite DIR [--mb N] [--piece-kb N] [--regions N] [--threads 1,2,4,8]
 *                    [--modes buffered,direct,falloc] [--layouts sequential,scattered] [--spin 0,15]
 *
 * Defaults: 2048 MB, 1024 KiB pieces, 32 regions, the lists shown. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 16
#define ALIGN 4096

enum { BUFFERED, DIRECT, FALLOC, NMODES };

typedef struct {
    int fd, scattered, regions;
    size_t piece, njobs, region_bytes;
    atomic_size_t next_job;
    atomic_int failed;
    char *src;
} job_set;

typedef struct {
    job_set *js;
    double cpu_s;
} writer;

static atomic_int spinning;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double thread_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static void *spin_main(void *arg) {
    volatile double x = 1.0 + (double)(size_t)arg * 1e-9;
    while (atomic_load_explicit(&spinning, memory_order_relaxed))
        for (int i = 0; i < 10000; i++) x = x * 1.0000001 + 1e-9;
    return NULL;
}

static void *writer_main(void *arg) {
    writer *wr = arg;
    job_set *js = wr->js;
    double c0 = thread_cpu();
    for (size_t job; (job = atomic_fetch_add(&js->next_job, 1)) < js->njobs && !js->failed;)
        for (int j = 0; j < js->regions; j++) {
            off_t off = js->scattered ? (off_t)(j * js->region_bytes + job * js->piece)
                                      : (off_t)((job * js->regions + j) * js->piece);
            ssize_t k = pwrite(js->fd, js->src + (size_t)j * js->piece, js->piece, off);
            if (k != (ssize_t)js->piece) atomic_store(&js->failed, k < 0 ? errno : EIO);
        }
    wr->cpu_s = thread_cpu() - c0;
    return NULL;
}

/* One case: the file made and sized, SPIN spinners started, THREADS writers timed to the end
 * of their last write, the file removed. */
static void run_case(const char *path, size_t total, size_t piece, int regions, int mode, int scattered,
                     int threads, int spin, char *src) {
    static const char *const mode_names[NMODES] = {"buffered", "direct", "falloc"};
    job_set js = {.scattered = scattered, .regions = regions, .piece = piece,
                  .njobs = total / piece / (size_t)regions, .region_bytes = total / (size_t)regions, .src = src};
    unlink(path);
    sync();
    js.fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | (mode != BUFFERED ? O_DIRECT : 0), 0644);
    printf("{\"mode\": \"%s\", \"layout\": \"%s\", \"threads\": %d, \"spin\": %d, \"mb\": %zu, \"piece_kb\": %zu, "
           "\"regions\": %d", mode_names[mode], scattered ? "scattered" : "sequential", threads, spin, total >> 20, piece >> 10, regions);
    double tf = now();
    if (js.fd < 0 || ftruncate(js.fd, (off_t)total) || (mode == FALLOC && fallocate(js.fd, 0, 0, (off_t)total))) {
        printf(", \"error\": \"%s\"}\n", strerror(errno));
        if (js.fd >= 0) close(js.fd);
        unlink(path);
        return;
    }
    if (mode == FALLOC) printf(", \"falloc_s\": %.3f", now() - tf);
    pthread_t spinners[64], writers[64];
    writer w[64];
    atomic_store(&spinning, 1);
    for (int i = 0; i < spin; i++) pthread_create(&spinners[i], NULL, spin_main, (void *)(size_t)i);
    double t0 = now();
    for (int i = 0; i < threads; i++) w[i] = (writer){&js, 0}, pthread_create(&writers[i], NULL, writer_main, &w[i]);
    double cpu = 0;
    for (int i = 0; i < threads; i++) pthread_join(writers[i], NULL), cpu += w[i].cpu_s;
    double t = now() - t0;
    atomic_store(&spinning, 0);
    for (int i = 0; i < spin; i++) pthread_join(spinners[i], NULL);
    double tc = now();
    close(js.fd);
    double close_s = now() - tc;
    unlink(path);
    size_t bytes = js.njobs * (size_t)regions * piece;
    printf(", \"s\": %.3f, \"gbs\": %.2f, \"writer_cpu_s\": %.2f, \"close_s\": %.3f", t, bytes / t / 1e9, cpu, close_s);
    if (js.failed) printf(", \"error\": \"%s\"", strerror(js.failed));
    printf("}\n");
    fflush(stdout);
}

/* "1,2,4" -> {1, 2, 4}; the count. */
static int int_list(const char *s, int *out) {
    int n = 0;
    for (char *end; *s && n < MAX_LIST; s = *end ? end + 1 : end) out[n++] = (int)strtol(s, &end, 10);
    return n;
}

/* Which of the NNAMES NAMES the comma list S holds, as indices. */
static int name_list(const char *s, const char *const *names, int nnames, int *out) {
    int n = 0;
    for (int i = 0; i < nnames; i++)
        if (strstr(s, names[i])) out[n++] = i;
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_pwrite DIR [--mb N] [--piece-kb N] [--regions N] [--threads 1,2,4,8]\n"
                        "       [--modes buffered,direct,falloc] [--layouts sequential,scattered] [--spin 0,15]\n");
        return 2;
    }
    static const char *const modes[NMODES] = {"buffered", "direct", "falloc"};
    static const char *const layouts[2] = {"sequential", "scattered"};
    size_t mb = 2048, piece_kb = 1024;
    int regions = 32, threads[MAX_LIST] = {1, 2, 4, 8}, nthreads = 4, spin[MAX_LIST] = {0, 15}, nspin = 2;
    int mode[NMODES] = {BUFFERED, DIRECT, FALLOC}, nmode = NMODES, layout[2] = {0, 1}, nlayout = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--mb")) mb = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--piece-kb")) piece_kb = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--regions")) regions = atoi(v);
        else if (!strcmp(k, "--threads")) nthreads = int_list(v, threads);
        else if (!strcmp(k, "--spin")) nspin = int_list(v, spin);
        else if (!strcmp(k, "--modes")) nmode = name_list(v, modes, NMODES, mode);
        else if (!strcmp(k, "--layouts")) nlayout = name_list(v, layouts, 2, layout);
        else return fprintf(stderr, "bench_pwrite: unknown option %s\n", k), 2;
    }
    const size_t piece = piece_kb << 10, total = (mb << 20) / (piece * (size_t)regions) * (piece * (size_t)regions);
    for (int i = 0; i < nthreads; i++)
        if (threads[i] < 1 || threads[i] > 64) return fprintf(stderr, "bench_pwrite: 1 to 64 threads\n"), 2;
    for (int i = 0; i < nspin; i++)
        if (spin[i] < 0 || spin[i] > 64) return fprintf(stderr, "bench_pwrite: 0 to 64 spinners\n"), 2;
    if (!piece || piece % ALIGN || regions < 1 || !total)
        return fprintf(stderr, "bench_pwrite: the piece must be a multiple of 4 KiB, the size a job at least\n"), 2;
    char *src = aligned_alloc(ALIGN, piece * (size_t)regions), path[4096];
    if (!src) return 3;
    memset(src, 1, piece * (size_t)regions);
    snprintf(path, sizeof path, "%s/bench_pwrite.%d.tmp", argv[1], (int)getpid());
    for (int l = 0; l < nlayout; l++)
        for (int m = 0; m < nmode; m++)
            for (int s = 0; s < nspin; s++)
                for (int t = 0; t < nthreads; t++)
                    run_case(path, total, piece, regions, mode[m], layout[l], threads[t], spin[s], src);
    free(src);
    return 0;
}
