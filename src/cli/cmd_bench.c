/* diffscope bench MODEL [--tokens N] [--decode N] [--dump] [--json]: prefill and decode speed,
 * the prefill's achieved GFLOP/s next to OpenBLAS sgemm's on the model's largest prefill GEMM
 * shape (measured in the same process), peak RSS, the implied weight-read bandwidth of
 * decoding next to the machine's measured read bandwidth, and the cost of a full dump. */
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "diffscope/dump.h"
#include "diffscope/generate.h"
#include "diffscope/model.h"

static const char *help =
    "usage: diffscope bench MODEL [--tokens N] [--decode N] [--dump] [--threads N] [--json]\n\n"
    "Measures a prefill of N random tokens (default 512), N decode steps (default 0), and\n"
    "with --dump the time and size of a dump of every map of every layer at the same length.\n"
    "Efficiency = prefill GFLOP/s / sgemm GFLOP/s on the model's MLP GEMM shape (T x D -> I).\n\n"
    "  --tokens N      prompt length\n"
    "  --decode N      decode steps after the prefill\n"
    "  --dump          also time `dump` (default --what) into a temporary file\n"
    "  --threads N     threads (default: all cores)\n"
    "  --json          one JSON object on stdout\n"
    "  -h, --help      this text\n";

/* FLOPs of a prefill of T tokens from an empty cache with last-token logits: every matrix
 * product the forward pass does (2 per multiply-add), attention over causal entries only. */
static double prefill_flops(const ds_config *c, double T) {
    double D = c->hidden_size, FF = c->intermediate_size, V = c->vocab_size;
    double q = (double)c->num_heads * c->head_dim, kv = (double)c->num_kv_heads * c->head_dim;
    double proj = 2 * T * D * (q + 2 * kv) + 2 * T * q * D;
    double mlp = 3 * 2 * T * D * FF;
    double causal = T * (T + 1) / 2;
    double attn = 2 * causal * q /* QK^T over all H heads */ + 2 * causal * q /* AV: H*hd output channels */;
    return c->num_layers * (proj + mlp + attn) + 2 * D * V;
}

static double sgemm_gflops(int M, int N, int K) {
    float *a = malloc((size_t)M * K * sizeof(float)), *b = malloc((size_t)N * K * sizeof(float));
    float *y = malloc((size_t)M * N * sizeof(float));
    if (!a || !b || !y) {
        free(a), free(b), free(y);
        return 0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 5) * 0.01f;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, y, N);
        double t = cli_now() - t0;
        best = t < best ? t : best;
    }
    free(a), free(b), free(y);
    return 2.0 * M * N * K / best / 1e9;
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

static double peak_rss_gb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1048576.0; /* KiB -> GiB */
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"tokens", required_argument, 0, 't'}, {"decode", required_argument, 0, 'd'},
                                         {"dump", no_argument, 0, 'D'},         {"threads", required_argument, 0, 'j'},
                                         {"json", no_argument, 0, 'J'},         {"help", no_argument, 0, 'h'},
                                         {0}};
    long T = 512, n_dec = 0, threads = 0;
    int do_dump = 0, json = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 't': if (cli_parse_int(optarg, "--tokens", 1, 1 << 20, &T)) return cli_lib_error(); break;
        case 'd': if (cli_parse_int(optarg, "--decode", 0, 1 << 20, &n_dec)) return cli_lib_error(); break;
        case 'j': if (cli_parse_int(optarg, "--threads", 1, 1024, &threads)) return cli_lib_error(); break;
        case 'D': do_dump = 1; break;
        case 'J': json = 1; break;
        case 'h': fputs(help, stdout); return DS_EXIT_OK;
        default: fputs(help, stderr); return DS_EXIT_INPUT;
        }
    }
    if (optind != argc - 1) return cli_error("bench needs one MODEL folder (see diffscope bench --help)");
    if (threads) ds_set_threads((int)threads);
    double t0 = cli_now();
    ds_model *m = ds_model_load(argv[optind]);
    if (!m) return cli_lib_error();
    double load_s = cli_now() - t0;
    const ds_config *c = ds_model_config(m);
    int total = (int)(T + n_dec);
    int *ids = malloc((size_t)total * sizeof *ids);
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    ds_session *s = ds_session_new(m, total, 1);
    if (!ids || !logits || !s) {
        free(ids), free(logits), ds_session_free(s), ds_model_free(m);
        return cli_error("out of memory for a session of %d tokens", total);
    }
    uint64_t x = 12345;
    for (int i = 0; i < total; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int)((x >> 33) % (uint64_t)c->vocab_size);
    }
    /* Warm-up: one full prefill, so that the measured one neither reads the mapped weights
     * from disk nor first-touches its scratch buffers. */
    int rc = ds_forward(s, ids, (int)T, logits, 1, NULL);
    ds_session_reset(s);
    t0 = cli_now();
    rc = rc || ds_forward(s, ids, (int)T, logits, 1, NULL);
    double prefill_s = cli_now() - t0;
    t0 = cli_now();
    for (int i = 0; i < n_dec && !rc; i++) rc = ds_forward(s, &ids[T + i], 1, logits, 1, NULL);
    double decode_s = cli_now() - t0;
    if (rc) {
        cli_lib_error();
        free(ids), free(logits), ds_session_free(s), ds_model_free(m);
        return DS_EXIT_INPUT;
    }
    double rss_forward = peak_rss_gb();
    double flops = prefill_flops(c, (double)T), gflops = flops / prefill_s / 1e9;
    double ref = sgemm_gflops((int)T, c->intermediate_size, c->hidden_size);
    double dump_s = 0, dump_mb = 0;
    if (do_dump) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/diffscope-bench-%d.h5", (int)getpid());
        ds_dump_opts d = {.what = DS_DUMP_DEFAULT, .topk = 100, .force = 1};
        ds_probes *p = ds_probes_new();
        ds_session_reset(s);
        t0 = cli_now();
        ds_dump *dd = ds_dump_begin(path, &d, m, ids, (int)T, p);
        rc = !dd || ds_forward(s, ids, (int)T, logits, 1, p);
        if (dd) rc = rc ? (ds_dump_abort(dd), -1) : ds_dump_finish(dd, NULL);
        dump_s = cli_now() - t0;
        struct stat st;
        if (!rc && !stat(path, &st)) dump_mb = st.st_size / 1e6;
        unlink(path);
        ds_probes_free(p);
        if (rc) cli_lib_error();
    }
    /* Decode reads every weight once per token (the embedding table only one row). */
    double weight_bytes = 4.0 * (ds_config_param_count(c) - (double)c->vocab_size * c->hidden_size *
                                                               (c->tie_word_embeddings ? 0 : 1));
    double dec_tps = n_dec ? n_dec / decode_s : 0, bw = n_dec ? read_bandwidth_gbs() : 0;
    if (json) {
        printf("{\"model\": \"%s\", \"params\": %lld, \"threads\": %d, \"tokens\": %ld, \"load_s\": %.3f, "
               "\"prefill_s\": %.4f, \"prefill_tok_s\": %.2f, \"prefill_gflops\": %.2f, \"sgemm_gflops\": %.2f, "
               "\"efficiency\": %.3f, \"peak_rss_gb\": %.3f, \"decode_tokens\": %ld, \"decode_tok_s\": %.3f, "
               "\"decode_weight_gbs\": %.2f, \"read_bandwidth_gbs\": %.2f, \"dump_s\": %.4f, \"dump_mb\": %.2f, "
               "\"dump_ratio\": %.3f, \"blas_core\": \"%s\"}\n",
               argv[optind], ds_config_param_count(c), ds_get_threads(), T, load_s, prefill_s, T / prefill_s, gflops,
               ref, gflops / ref, rss_forward, n_dec, dec_tps, dec_tps * weight_bytes / 1e9, bw, dump_s, dump_mb,
               do_dump ? dump_s / prefill_s : 0.0, openblas_get_corename());
    } else {
        printf("model            %s (%s, %.1f M params, %d threads)\n", argv[optind], ds_arch_name(c->arch),
               ds_config_param_count(c) / 1e6, ds_get_threads());
        printf("load             %.2f s (OpenBLAS kernel %s)\n", load_s, openblas_get_corename());
        printf("prefill %5ld tok %.3f s  %.1f tok/s  %.1f GFLOP/s\n", T, prefill_s, T / prefill_s, gflops);
        printf("sgemm %dx%dx%d %.1f GFLOP/s  -> efficiency %.0f %%\n", (int)T, c->hidden_size, c->intermediate_size, ref,
               100 * gflops / ref);
        printf("peak RSS         %.2f GiB\n", rss_forward);
        if (n_dec)
            printf("decode %6ld tok %.2f tok/s  %.1f GB/s of weights (machine read bandwidth %.1f GB/s)\n", n_dec,
                   dec_tps, dec_tps * weight_bytes / 1e9, bw);
        if (do_dump)
            printf("dump (all maps)  %.3f s  %.1f MB  %.2fx the prefill\n", dump_s, dump_mb, dump_s / prefill_s);
    }
    free(ids), free(logits);
    ds_session_free(s);
    ds_model_free(m);
    return rc ? DS_EXIT_INPUT : DS_EXIT_OK;
}
