/* diffscope bench MODEL [--tokens N] [--decode N] [--dump] [--dump-what LIST] [--rounds N] [--json]: prefill and
 * decode speed, the prefill's achieved GFLOP/s next to OpenBLAS sgemm's on the model's largest
 * prefill GEMM shape (measured in the same process, round by round), peak RSS, the implied
 * weight-read bandwidth of decoding next to the machine's measured read bandwidth, and the cost
 * of a full dump.
 *
 * Each round times one prefill, then runs the reference sgemm back to back for as long as that
 * prefill took, then (with --dump) one dump. Both rates are sustained over the same length of
 * time, next to each other, so a slow spell of a shared host hits both; the figures reported
 * are medians over the rounds. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "base/huge_alloc.h"
#include "base/path.h"
#include "cli/bench_dump.h"
#include "cli/bench_stages.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "diffscope/dump.h"
#include "diffscope/generate.h"
#include "diffscope/model.h"
#include "io/outfile.h"

static const char *usage =
    "usage: diffscope bench MODEL [--tokens N] [--decode N] [--dump] [--dump-what LIST] [--rounds N]\n"
    "                      [--threads N] [--compute f32|bf16] [--json]\n\n"
    "Measures a prefill of N random tokens (default 512), N decode steps (default 0), and\n"
    "with --dump the time and size of a dump of every layer at the same length (dump's default\n"
    "--what: the maps, GroupNorm, outliers and cancelled share; --dump-what chooses).\n"
    "Efficiency = prefill GFLOP/s / sgemm GFLOP/s on the model's MLP GEMM shape (T x D -> I),\n"
    "the sgemm run back to back for as long as the prefill took, right after it; the median over\n"
    "the rounds is reported (and sgemm's best single call as its peak).\n\n";

/* Products of one prefill: T rows through each weight matrix of the architecture's table, and
 * the output projection (lm_head or the tied embedding) for the last token. */
typedef struct {
    double T, flops;
} flop_count;

static int count_products(const ds_tensor_ref *t, void *user) {
    flop_count *f = user;
    if (t->desc->use == DS_USE_MATRIX) f->flops += 2 * f->T * (double)t->shape[0] * t->shape[1];
    return 0;
}

/* FLOPs of a prefill of T tokens from an empty cache with last-token logits: every matrix
 * product the forward pass does (2 per multiply-add), attention over causal entries only. */
static double prefill_flops(const ds_config *c, double T) {
    flop_count f = {T, 0};
    ds_config_tensors(c, count_products, &f);
    double q = (double)c->num_heads * c->head_dim, causal = T * (T + 1) / 2;
    double attn = 2 * causal * q /* QK^T over all H heads */ + 2 * causal * q /* AV: H*hd output channels */;
    return f.flops + c->num_layers * attn + 2.0 * c->hidden_size * c->vocab_size;
}

/* The reference product y[M, N] = a[M, K] · b[N, K]ᵀ, OpenBLAS's own threading on all threads. */
typedef struct {
    int M, N, K;
    float *a, *b, *y;
} sgemm_ref;

/* N floats in 2 MiB huge pages where the kernel grants them, as the model's weights are mapped
 * (src/io/safetensors.c): the reference gets the same help from the TLB as the forward pass. */
static float *huge_floats(size_t n) { return ds_alloc_huge(n * sizeof(float)); }

static int sgemm_ref_init(sgemm_ref *r, int M, int N, int K) {
    *r = (sgemm_ref){M, N, K, huge_floats((size_t)M * K), huge_floats((size_t)N * K), huge_floats((size_t)M * N)};
    if (!r->a || !r->b || !r->y) return -1;
    for (size_t i = 0; i < (size_t)M * K; i++) r->a[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) r->b[i] = (float)(i % 5) * 0.01f;
    return 0;
}

static void sgemm_ref_free(sgemm_ref *r) {
    free(r->a);
    free(r->b);
    free(r->y);
}

/* Calls the reference product back to back for at least SECONDS (and at least twice); returns
 * the sustained GFLOP/s and lowers *BEST_CALL_S to the fastest single call seen. */
static double sgemm_sustained(sgemm_ref *r, double seconds, double *best_call_s) {
    double t_start = cli_now(), t = t_start;
    int calls = 0;
    do {
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->M, r->N, r->K, 1.0f, r->a, r->K, r->b, r->K, 0.0f,
                    r->y, r->N);
        t = cli_now();
        if (t - t0 < *best_call_s) *best_call_s = t - t0;
        calls++;
    } while (t - t_start < seconds || calls < 2);
    return 2.0 * r->M * r->N * r->K * calls / (t - t_start) / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of V[0..n) (n >= 1); V is reordered. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Read bandwidth of this machine: summing a 1 GiB buffer (already in memory) with all threads. */
static double read_bandwidth_gbs(void) {
    size_t n = (size_t)1 << 28;
    float *buf = malloc(n * sizeof(float));
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = 1.0f;
    double best = 1e30, sum = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = cli_now();
        float s = 0;
        /* simd lets the sum be reassociated into vector lanes: a plain loop would measure the
         * latency of one chain of additions, not the memory. */
#pragma omp parallel for simd reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i++) s += buf[i];
        double t = cli_now() - t0;
        best = t < best ? t : best;
        sum += s;
    }
    free(buf);
    return sum > 0 ? n * sizeof(float) / best / 1e9 : 0;
}

/* From /proc/self/status: the peak resident set (VmHWM), and the current one split into
 * RssFile (the mapped weights, FILE_HUGE of them in 2 MiB pages) and RssAnon (our own
 * allocations), in GiB.
 *
 * Not getrusage's ru_maxrss: Linux folds the high-water mark of the image a process replaced
 * by exec into it, so a diffscope started by a Python process that holds a model reported that
 * process's size (6.5 GiB for 4.6 GiB of weights on the GPU host, under transformers). Where
 * /proc is missing, ru_maxrss is the fallback and the split is zero. */
static void rss_gb(double *peak, double *file, double *anon, double *file_huge) {
    *peak = *file = *anon = *file_huge = 0;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %ld", &kib) == 1) *peak = kib / 1048576.0;
        if (sscanf(line, "RssFile: %ld", &kib) == 1) *file = kib / 1048576.0;
        if (sscanf(line, "RssAnon: %ld", &kib) == 1) *anon = kib / 1048576.0;
    }
    if (f) fclose(f);
    /* the part of the mapped files in 2 MiB pages (src/io/safetensors.c asks for them) */
    f = fopen("/proc/self/smaps_rollup", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "FilePmdMapped: %ld", &kib) == 1) *file_huge = kib / 1048576.0;
    if (f) fclose(f);
    if (*peak == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        *peak = ru.ru_maxrss / 1048576.0; /* KiB -> GiB */
    }
}

/* What `dd` measures: BYTES written to a new file beside the dump's (a private folder in
 * $TMPDIR, else /tmp) in 4 MiB writes from one thread, without fsync (a dump does not sync
 * either), in GB/s; 0 when it cannot be written. */
static double plain_write_gbs(double bytes) {
    const size_t chunk = (size_t)4 << 20;
    char *dir = bench_tmpdir(), *path = dir ? ds_path_join(dir, "dd") : NULL;
    char *buf = path ? calloc(1, chunk) : NULL;
    FILE *f = buf ? fopen(path, "wb") : NULL;
    double t0 = cli_now(), done = 0;
    while (f && done < bytes && fwrite(buf, 1, chunk, f) == chunk) done += chunk;
    int ok = f && !fclose(f) && done >= bytes;
    double t = cli_now() - t0;
    if (dir) ds_tmpdir_remove(dir);
    free(path);
    free(buf);
    return ok ? done / t / 1e9 : 0;
}

enum { MAX_ROUNDS = 100 };

/* What one bench measures, and the figures it reports. */
typedef struct {
    int T, n_dec, rounds, do_dump;
    const char *dump_what; /* dump's --what list; NULL: its default */
    unsigned what;
    double load_s, flops, prefill, best_prefill, gflops, ref_med, ref_peak, efficiency;
    double rss_forward, rss_file, rss_anon, rss_file_huge;
    double dump, dump_mb, dump_x, disk_gbs;
    double dec_tps, weight_gbs, bw;
    bench_stages stages;
    bench_dump_split dump_split; /* the mean over the rounds */
    const char *core, *better_core; /* OpenBLAS's kernel, and the CPU's best when that is not it */
} bench_figures;

/* The model, random prompt ids, a session and the reference product. */
typedef struct {
    ds_model *m;
    ds_session *s;
    int *ids;
    float *logits;
    sgemm_ref ref;
} bench_run;

static void bench_close(bench_run *b) {
    free(b->ids);
    free(b->logits);
    ds_session_free(b->s);
    ds_model_free(b->m);
    sgemm_ref_free(&b->ref);
}

static int bench_open(bench_run *b, const char *dir, bench_figures *f) {
    double t0 = cli_now();
    if (!(b->m = ds_model_load(dir))) return -1;
    f->load_s = cli_now() - t0;
    const ds_config *c = ds_model_config(b->m);
    /* A slow kernel makes every figure below meaningless: say so where nobody can miss it. */
    f->core = openblas_get_corename(), f->better_core = cli_blas_better_kernel();
    if (f->better_core)
        cli_warn("*** OpenBLAS runs its %s kernel, but this CPU's best is %s: these figures are not this "
                 "machine's; unset OPENBLAS_CORETYPE or set it to %s ***", f->core, f->better_core, f->better_core);
    int total = f->T + f->n_dec;
    b->ids = malloc((size_t)total * sizeof *b->ids);
    b->logits = malloc((size_t)c->vocab_size * sizeof(float));
    int ref_failed = sgemm_ref_init(&b->ref, f->T, c->intermediate_size, c->hidden_size);
    if (!(b->s = ds_session_new(b->m, total, 1))) return -1;
    if (!b->ids || !b->logits || ref_failed)
        return ds_failc(DS_ERR_NOMEM, "out of memory for a session of %d tokens", total);
    uint64_t x = 12345;
    for (int i = 0; i < total; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        b->ids[i] = (int)((x >> 33) % (uint64_t)c->vocab_size);
    }
    return 0;
}

/* One warm-up prefill, then the timed rounds: prefill, sgemm for as long, and a dump. */
static int measure_prefill(bench_run *b, bench_figures *f) {
    const ds_config *c = ds_model_config(b->m);
    /* Warm-up: one full prefill, so that the measured ones neither read the mapped weights
     * from disk nor first-touch their scratch buffers. Its peak RSS is the forward pass's. */
    if (ds_forward(b->s, b->ids, f->T, b->logits, 1, NULL)) return -1;
    rss_gb(&f->rss_forward, &f->rss_file, &f->rss_anon, &f->rss_file_huge);
    f->flops = prefill_flops(c, (double)f->T);
    double prefill_s[MAX_ROUNDS], ref_gflops[MAX_ROUNDS], eff[MAX_ROUNDS], dump_s[MAX_ROUNDS], dump_ratio[MAX_ROUNDS];
    double disk_gbs[MAX_ROUNDS];
    double best_call_s = 1e30;
    for (int r = 0; r < f->rounds; r++) {
        ds_session_reset(b->s);
        double t0 = cli_now();
        if (ds_forward(b->s, b->ids, f->T, b->logits, 1, NULL)) return -1;
        prefill_s[r] = cli_now() - t0;
        ref_gflops[r] = sgemm_sustained(&b->ref, prefill_s[r], &best_call_s);
        eff[r] = f->flops / prefill_s[r] / 1e9 / ref_gflops[r];
        dump_s[r] = f->do_dump ? bench_dump_timed(b->m, b->s, b->ids, f->T, f->what, b->logits, &f->dump_mb, &f->dump_split) : 0;
        if (dump_s[r] < 0) return -1;
        disk_gbs[r] = f->do_dump ? plain_write_gbs(f->dump_mb * 1e6) : 0;
        dump_ratio[r] = dump_s[r] / prefill_s[r];
    }
    f->best_prefill = prefill_s[0];
    for (int r = 1; r < f->rounds; r++) f->best_prefill = fmin(f->best_prefill, prefill_s[r]);
    f->prefill = median(prefill_s, f->rounds);
    f->ref_med = median(ref_gflops, f->rounds);
    f->efficiency = median(eff, f->rounds);
    f->dump = median(dump_s, f->rounds);
    f->dump_x = median(dump_ratio, f->rounds);
    f->disk_gbs = median(disk_gbs, f->rounds);
    bench_dump_split_mean(&f->dump_split, f->rounds);
    f->ref_peak = 2.0 * b->ref.M * b->ref.N * b->ref.K / best_call_s / 1e9;
    f->gflops = f->flops / f->prefill / 1e9;
    /* Where the prefill's time goes, from one more prefill with the stage probes. */
    return bench_stages_measure(b->m, b->s, b->ids, f->T, b->logits, &f->stages);
}

/* Decode: a fresh prefill (untimed), then N steps, each reading every weight once (the
 * embedding table only one row). */
static int measure_decode(bench_run *b, bench_figures *f) {
    if (!f->n_dec) return 0;
    const ds_config *c = ds_model_config(b->m);
    ds_session_reset(b->s);
    if (ds_forward(b->s, b->ids, f->T, b->logits, 1, NULL)) return -1;
    double t0 = cli_now();
    for (int i = 0; i < f->n_dec; i++)
        if (ds_forward(b->s, &b->ids[f->T + i], 1, b->logits, 1, NULL)) return -1;
    const double bytes_per_weight = ds_model_compute(b->m) == DS_COMPUTE_BF16 ? 2.0 : 4.0;
    double weight_bytes =
        bytes_per_weight * (ds_config_param_count(c) - (double)c->vocab_size * c->hidden_size * (c->tie_word_embeddings ? 0 : 1));
    f->dec_tps = f->n_dec / (cli_now() - t0);
    f->weight_gbs = f->dec_tps * weight_bytes / 1e9;
    f->bw = read_bandwidth_gbs();
    return 0;
}

/* Each stage's seconds, FLOPs and GFLOP/s, as object NAME of O. */
static void add_stages_json(cJSON *o, const char *name, const bench_stages *st) {
    cJSON *all = cJSON_AddObjectToObject(o, name);
    for (int i = 0; all && i < N_STAGES; i++) {
        cJSON *one = cJSON_AddObjectToObject(all, bench_stage_names[i]);
        cJSON_AddNumberToObject(one, "s", st->seconds[i]);
        cJSON_AddNumberToObject(one, "flops", st->flops[i]);
        cJSON_AddNumberToObject(one, "gflops", st->flops[i] / st->seconds[i] / 1e9);
    }
}

/* The mean dump's writes; the rate is one writer thread's while it writes. */
static void add_dump_io_json(cJSON *o, const ds_dump_io *io) {
    cJSON *w = cJSON_AddObjectToObject(o, "dump_io");
    cJSON_AddNumberToObject(w, "writer_threads", io->writer_threads);
    cJSON_AddNumberToObject(w, "buffers", io->buffers);
    cJSON_AddNumberToObject(w, "buffer_mb", io->buffer_bytes / 1e6);
    cJSON_AddNumberToObject(w, "gb", io->bytes / 1e9);
    cJSON_AddNumberToObject(w, "writes", (double)io->writes);
    cJSON_AddNumberToObject(w, "writing_s", io->writing_s);
    cJSON_AddNumberToObject(w, "writer_gbs", io->writing_s > 0 ? io->bytes / 1e9 / io->writing_s : 0);
    cJSON_AddNumberToObject(w, "waits", (double)io->waits);
    cJSON_AddNumberToObject(w, "waiting_s", io->waiting_s);
    cJSON_AddNumberToObject(w, "draining_s", io->draining_s);
}

static int print_json(const char *model, const ds_config *c, const bench_figures *f) {
    /* Full precision: a tiny model's prefill takes microseconds on a fast machine. */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddNumberToObject(o, "params", (double)ds_config_param_count(c));
    cJSON_AddNumberToObject(o, "threads", ds_get_threads());
    cJSON_AddStringToObject(o, "compute", ds_compute_name(ds_get_compute()));
    cJSON_AddStringToObject(o, "bf16_kernel", ds_bf16_kernel());
    cJSON_AddStringToObject(o, "bf16_impl", ds_bf16_impl());
    cJSON_AddNumberToObject(o, "tokens", f->T);
    cJSON_AddNumberToObject(o, "rounds", f->rounds);
    cJSON_AddNumberToObject(o, "load_s", f->load_s);
    cJSON_AddNumberToObject(o, "prefill_flops", f->flops);
    cJSON_AddNumberToObject(o, "prefill_s", f->prefill);
    cJSON_AddNumberToObject(o, "prefill_best_s", f->best_prefill);
    cJSON_AddNumberToObject(o, "prefill_tok_s", f->T / f->prefill);
    cJSON_AddNumberToObject(o, "prefill_gflops", f->gflops);
    cJSON_AddNumberToObject(o, "sgemm_gflops", f->ref_med);
    cJSON_AddNumberToObject(o, "sgemm_peak_gflops", f->ref_peak);
    cJSON_AddNumberToObject(o, "efficiency", f->efficiency);
    cJSON_AddNumberToObject(o, "peak_rss_gb", f->rss_forward);
    cJSON_AddNumberToObject(o, "rss_file_gb", f->rss_file);
    cJSON_AddNumberToObject(o, "rss_file_huge_gb", f->rss_file_huge);
    cJSON_AddNumberToObject(o, "rss_anon_gb", f->rss_anon);
    cJSON_AddNumberToObject(o, "decode_tokens", f->n_dec);
    cJSON_AddNumberToObject(o, "decode_tok_s", f->dec_tps);
    cJSON_AddNumberToObject(o, "decode_weight_gbs", f->weight_gbs);
    cJSON_AddNumberToObject(o, "read_bandwidth_gbs", f->bw);
    cJSON_AddStringToObject(o, "dump_what", f->dump_what ? f->dump_what : "default");
    cJSON_AddNumberToObject(o, "dump_s", f->dump);
    cJSON_AddNumberToObject(o, "dump_mb", f->dump_mb);
    cJSON_AddNumberToObject(o, "dump_ratio", f->dump_x);
    cJSON_AddNumberToObject(o, "dump_gbs", f->do_dump ? f->dump_mb / 1e3 / f->dump : 0);
    cJSON_AddNumberToObject(o, "disk_write_gbs", f->disk_gbs);
    cJSON *split = f->do_dump ? cJSON_AddObjectToObject(o, "dump_split_s") : NULL;
    for (int i = 0; split && i < N_DUMP_PARTS; i++)
        cJSON_AddNumberToObject(split, bench_dump_part_names[i], f->dump_split.seconds[i]);
    add_stages_json(o, "stages", &f->stages);
    if (f->do_dump) add_stages_json(o, "dump_forward_stages", &f->dump_split.forward);
    if (f->do_dump) add_dump_io_json(o, &f->dump_split.io);
    cJSON_AddStringToObject(o, "blas_core", f->core);
    cJSON_AddBoolToObject(o, "blas_core_best", !f->better_core);
    cJSON_AddStringToObject(o, "blas_core_wanted", f->better_core ? f->better_core : f->core);
    return cli_print_json(o);
}

static void print_stages(const char *label, const bench_stages *st) {
    printf("%s", label);
    for (int i = 0; i < N_STAGES; i++)
        printf("%s %.3f s (%.0f GFLOP/s)%s", bench_stage_names[i], st->seconds[i], st->flops[i] / st->seconds[i] / 1e9,
               i + 1 < N_STAGES ? ", " : "\n");
}

static void print_text(const char *model, const ds_config *c, const bench_figures *f) {
    printf("model            %s (%s, %.1f M params, %d threads)\n", model, ds_arch_name(c->arch),
           ds_config_param_count(c) / 1e6, ds_get_threads());
    printf("load             %.2f s (OpenBLAS kernel %s%s%s)\n", f->load_s, f->core,
           f->better_core ? ", NOT this CPU's best: " : "", f->better_core ? f->better_core : "");
    if (ds_get_compute() == DS_COMPUTE_BF16)
        printf("compute          bf16 on %s (implementation: %s)\n", ds_bf16_kernel(), ds_bf16_impl());
    printf("prefill %5d tok %.3f s  %.1f tok/s  %.1f GFLOP/s  (median of %d rounds; best %.3f s)\n", f->T, f->prefill,
           f->T / f->prefill, f->gflops, f->rounds, f->best_prefill);
    printf("sgemm %dx%dx%d %.1f GFLOP/s sustained (best call %.1f)  -> efficiency %.0f %%\n", f->T, c->hidden_size,
           c->intermediate_size, f->ref_med, f->ref_peak, 100 * f->efficiency);
    printf("peak RSS         %.2f GiB (mapped files %.2f, %.2f of them in 2 MiB pages; anonymous %.2f)\n",
           f->rss_forward, f->rss_file, f->rss_file_huge, f->rss_anon);
    print_stages("stages           ", &f->stages);
    if (f->n_dec)
        printf("decode %6d tok %.2f tok/s  %.1f GB/s of weights (machine read bandwidth %.1f GB/s)\n", f->n_dec,
               f->dec_tps, f->weight_gbs, f->bw);
    if (f->do_dump)
        printf("dump (--what %s)  %.3f s  %.1f MB  %.2fx the prefill  %.2f GB/s (plain writes of as many bytes "
               "there: %.2f GB/s)\n", f->dump_what ? f->dump_what : "default", f->dump, f->dump_mb, f->dump_x,
               f->dump_mb / 1e3 / f->dump, f->disk_gbs);
    if (f->do_dump) {
        printf("dump's time      ");
        for (int i = 0; i < N_DUMP_PARTS; i++)
            printf("%s %.3f s%s", bench_dump_part_names[i], f->dump_split.seconds[i], i + 1 < N_DUMP_PARTS ? ", " : "\n");
        print_stages("dump's forward   ", &f->dump_split.forward);
        const ds_dump_io *io = &f->dump_split.io;
        if (io->writes)
            printf("dump's writes    %.2f GB in %ld pwrite calls by %d writer thread%s: %.3f s of writing (%.2f "
                   "GB/s a thread); the forward pass waited %.3f s for buffers (%ld times, summed over its "
                   "threads), the end %.3f s for the last writes\n", io->bytes / 1e9, io->writes, io->writer_threads,
                   io->writer_threads == 1 ? "" : "s", io->writing_s, io->bytes / 1e9 / io->writing_s, io->waiting_s,
                   io->waits, io->draining_s);
    }
}

int cmd_bench(int argc, char **argv) {
    bench_figures f = {.T = 512, .rounds = 3};
    int threads = 0, json = 0, rc;
    const char *compute = "f32";
    const cli_opt opts[] = {
        {"tokens", 0, CLI_INT, &f.T, 1, 1 << 20, "N", "prompt length"},
        {"compute", 0, CLI_CHOICE, &compute, 0, 0, "f32|bf16", "matrix products in f32 (default) or bf16 (docs/numerics.md)"},
        {"decode", 0, CLI_INT, &f.n_dec, 0, 1 << 20, "N", "decode steps after the prefill"},
        {"dump", 0, CLI_FLAG, &f.do_dump, 0, 0, NULL, "also time `dump` (default --what) in $TMPDIR (default /tmp), once per round"},
        {"dump-what", 0, CLI_STRING, &f.dump_what, 0, 0, "LIST", "time `dump --what LIST` instead (implies --dump), e.g.\n"
         "softmax,diff: the maps alone, as transformers + h5py write them"},
        {"rounds", 0, CLI_INT, &f.rounds, 1, MAX_ROUNDS, "N", "measured rounds after one warm-up prefill (default 3)"},
        {"threads", 0, CLI_INT, &threads, 1, 1024, "N", "threads (default: all cores)"},
        {"json", 0, CLI_FLAG, &json, 0, 0, NULL, "one JSON object on stdout"},
        {0}};
    const cli_cmd cmd = {"bench", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 1) return cli_error("bench needs one MODEL folder (see diffscope bench --help)");
    f.what = DS_DUMP_DEFAULT;
    if (f.dump_what && ds_dump_parse_what(f.dump_what, &f.what))
        return cli_error("bench: --dump-what: %s", ds_errmsg());
    f.do_dump |= f.dump_what != NULL;
    if (threads) ds_set_threads(threads);
    ds_compute mode = DS_COMPUTE_F32;
    ds_compute_parse(compute, &mode);
    ds_set_compute(mode);
    bench_run b = {0};
    const char *model = argv[optind];
    int failed = bench_open(&b, model, &f) || measure_prefill(&b, &f) || measure_decode(&b, &f);
    if (!failed && json) failed = print_json(model, ds_model_config(b.m), &f);
    else if (!failed) print_text(model, ds_model_config(b.m), &f);
    rc = failed ? cli_lib_error() : DS_EXIT_OK;
    bench_close(&b);
    return rc;
}
