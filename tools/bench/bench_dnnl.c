/* oneDNN bf16 matmul on the kajuma shapes, weights as the model maps them ([out, in] row-major,
 * oneDNN's "ba") against weights reordered once into the layout the primitive asks for
 * (format "any", then one dnnl_reorder): does the kernel repack plain weights on every call?
 * Also: whether one blocked layout serves every row count, and the attention products (per-head
 * Q·Kᵀ and A·V, batched) in bf16. Prints one JSON object per line; GFLOP/s are the median of
 * --rounds calls after one warm-up. Threads: OMP_NUM_THREADS (oneDNN runs on OpenMP here).
 *
 * usage: bench_dnnl [ROUNDS [f32]]  (on a CPU without AVX-512 oneDNN has no bf16 matmul: it says so;
 *                                   f32 runs the same products in f32, to try the program there) */
#include <dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static dnnl_engine_t eng;
static dnnl_stream_t stream;
static int rounds = 7;
/* The operands' type: bf16, or f32 to try this program where oneDNN has no bf16 matmul. */
static dnnl_data_type_t dt = dnnl_bf16;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint16_t *random_bf16(size_t count) {
    uint16_t *p = malloc(count * sizeof(float)); /* room for f32 operands too */
    uint32_t s = 12345;
    for (size_t i = 0; i < count; i++) {
        s = s * 1664525u + 1013904223u;
        union { float f; uint32_t u; } v = {.f = ((s >> 8) / 16777216.0f - 0.5f) * 0.1f};
        p[i] = (uint16_t)(v.u >> 16);
    }
    return p;
}

/* Median seconds of one execution of PRIM with ARGS. */
static double time_prim(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    double t[64];
    int r = rounds < 64 ? rounds : 64;
    dnnl_primitive_execute(prim, stream, nargs, args);
    dnnl_stream_wait(stream);
    for (int i = 0; i < r; i++) {
        double t0 = now();
        dnnl_primitive_execute(prim, stream, nargs, args);
        dnnl_stream_wait(stream);
        t[i] = now() - t0;
    }
    qsort(t, r, sizeof *t, cmp_double);
    return t[r / 2];
}

/* The weights layout of a memory descriptor as oneDNN would name it, roughly: the strides'
 * order and the inner blocks, e.g. "plain[1,2048]" or "blocked[...]16b64a2b". */
static void describe(const dnnl_memory_desc_t *md, char *out, size_t size) {
    if (md->format_kind != dnnl_blocked) {
        snprintf(out, size, "kind%d", (int)md->format_kind);
        return;
    }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int len = snprintf(out, size, "strides[%lld,%lld]", (long long)b->strides[0], (long long)b->strides[1]);
    for (int i = 0; i < b->inner_nblks && len < (int)size; i++)
        len += snprintf(out + len, size - len, "%lld%c", (long long)b->inner_blks[i], 'a' + (int)b->inner_idxs[i]);
}

static const char *impl_of(const_dnnl_primitive_desc_t pd) {
    const char *name = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    return name;
}

/* A matmul primitive desc for src [n, in] bf16, weights WEI (NULL: "any"), dst f32. */
static dnnl_primitive_desc_t matmul_pd(int n, int in, int out, const dnnl_memory_desc_t *wei) {
    dnnl_memory_desc_t src, w, dst;
    dnnl_dims_t ds = {n, in}, dw = {in, out}, dd = {n, out};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_init_by_tag(&src, 2, ds, dt, dnnl_ab);
    if (wei) w = *wei;
    else dnnl_memory_desc_init_by_tag(&w, 2, dw, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab);
    if (dnnl_matmul_desc_init(&md, &src, &w, NULL, &dst) || dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL))
        return NULL;
    return pd;
}

/* GFLOP/s of one product with weights in layout WEI held in buffer WBUF. */
static double run_matmul(dnnl_primitive_desc_t pd, int n, int in, int out, const dnnl_memory_desc_t *wei, void *wbuf,
                         uint16_t *x, float *y) {
    dnnl_primitive_t prim;
    if (dnnl_primitive_create(&prim, pd)) return -1;
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_t ms, mw, md;
    dnnl_memory_create(&ms, src, eng, x);
    dnnl_memory_create(&mw, wei, eng, wbuf);
    dnnl_memory_create(&md, dst, eng, y);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    double s = time_prim(prim, 3, args);
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(mw);
    dnnl_memory_destroy(md);
    dnnl_primitive_destroy(prim);
    return 2.0 * n * in * out / s / 1e9;
}

/* Reorders plain "ba" weights W into layout TO (a new buffer); *SECONDS gets the time. */
static void *reorder_weights(const uint16_t *w, int in, int out, const dnnl_memory_desc_t *to, double *seconds) {
    dnnl_memory_desc_t from;
    dnnl_dims_t dw = {in, out};
    dnnl_memory_desc_init_by_tag(&from, 2, dw, dt, dnnl_ba);
    void *buf = aligned_alloc(64, (dnnl_memory_desc_get_size(to) + 63) / 64 * 64);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    dnnl_memory_t mf, mt;
    dnnl_reorder_primitive_desc_create(&rpd, &from, eng, to, eng, NULL);
    dnnl_primitive_create(&r, rpd);
    dnnl_memory_create(&mf, &from, eng, (void *)w);
    dnnl_memory_create(&mt, to, eng, buf);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mf}, {DNNL_ARG_TO, mt}};
    double t0 = now();
    dnnl_primitive_execute(r, stream, 2, args);
    dnnl_stream_wait(stream);
    *seconds = now() - t0;
    dnnl_memory_destroy(mf);
    dnnl_memory_destroy(mt);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    return buf;
}

/* One weight shape at row counts NS: plain against prepacked, and the layout chosen at ns[ref]
 * used at every n. */
static void weights_shape(int in, int out, const int *ns, int count, int ref) {
    uint16_t *w = random_bf16((size_t)in * out);
    int nmax = 0;
    for (int i = 0; i < count; i++) nmax = ns[i] > nmax ? ns[i] : nmax;
    uint16_t *x = random_bf16((size_t)nmax * in);
    float *y = malloc((size_t)nmax * out * sizeof *y);
    dnnl_primitive_desc_t ref_pd = matmul_pd(ns[ref], in, out, NULL);
    if (!ref_pd) {
        printf("{\"in\": %d, \"out\": %d, \"error\": \"no bf16 matmul on this CPU\"}\n", in, out);
        free(w), free(x), free(y);
        return;
    }
    dnnl_memory_desc_t ref_md = *dnnl_primitive_desc_query_md(ref_pd, dnnl_query_weights_md, 0);
    double ref_reorder;
    void *ref_buf = reorder_weights(w, in, out, &ref_md, &ref_reorder);
    char ref_name[128];
    describe(&ref_md, ref_name, sizeof ref_name);
    for (int i = 0; i < count; i++) {
        const int n = ns[i];
        dnnl_memory_desc_t plain;
        dnnl_dims_t dw = {in, out};
        dnnl_memory_desc_init_by_tag(&plain, 2, dw, dt, dnnl_ba);
        dnnl_primitive_desc_t pd_plain = matmul_pd(n, in, out, &plain), pd_any = matmul_pd(n, in, out, NULL),
                              pd_ref = matmul_pd(n, in, out, &ref_md);
        if (!pd_plain || !pd_any) {
            printf("{\"n\": %d, \"in\": %d, \"out\": %d, \"error\": \"no bf16 matmul on this CPU\"}\n", n, in, out);
            continue;
        }
        double gf_plain = run_matmul(pd_plain, n, in, out, &plain, w, x, y);
        dnnl_memory_desc_t any_md = *dnnl_primitive_desc_query_md(pd_any, dnnl_query_weights_md, 0);
        double reorder_s;
        void *buf = reorder_weights(w, in, out, &any_md, &reorder_s);
        double gf_any = run_matmul(pd_any, n, in, out, &any_md, buf, x, y);
        double gf_ref = pd_ref ? run_matmul(pd_ref, n, in, out, &ref_md, ref_buf, x, y) : -1;
        char name[128];
        describe(&any_md, name, sizeof name);
        printf("{\"n\": %d, \"in\": %d, \"out\": %d, \"plain_impl\": \"%s\", \"plain_gflops\": %.0f, "
               "\"packed_impl\": \"%s\", \"packed_layout\": \"%s\", \"packed_gflops\": %.0f, \"reorder_ms\": %.2f, "
               "\"same_layout_as_n%d\": %d, \"n%d_layout_impl\": \"%s\", \"n%d_layout_gflops\": %.0f}\n",
               n, in, out, impl_of(pd_plain), gf_plain, impl_of(pd_any), name, gf_any, reorder_s * 1e3, ns[ref],
               dnnl_memory_desc_equal(&any_md, &ref_md), ns[ref], pd_ref ? impl_of(pd_ref) : "none", ns[ref], gf_ref);
        fflush(stdout);
        free(buf);
        dnnl_primitive_desc_destroy(pd_plain);
        dnnl_primitive_desc_destroy(pd_any);
        if (pd_ref) dnnl_primitive_desc_destroy(pd_ref);
    }
    printf("{\"in\": %d, \"out\": %d, \"n%d_layout\": \"%s\", \"reorder_ms\": %.2f}\n", in, out, ns[ref], ref_name,
           ref_reorder * 1e3);
    free(ref_buf);
    dnnl_primitive_desc_destroy(ref_pd);
    free(w);
    free(x);
    free(y);
}

/* Row counts that are not a multiple of 32, in packed weights: as one product, and as two (the
 * first n - n % 32 rows, then the rest). dnnl_matmul.c does not split: it helped some counts and
 * slowed others (docs/performance.md, "bf16 compute on 16 cores"). */
static void split_rows(int in, int out, const int *ns, int count) {
    dnnl_primitive_desc_t ref_pd = matmul_pd(512, in, out, NULL);
    if (!ref_pd) return;
    dnnl_memory_desc_t md = *dnnl_primitive_desc_query_md(ref_pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(ref_pd);
    uint16_t *w = random_bf16((size_t)in * out);
    double reorder_s;
    void *buf = reorder_weights(w, in, out, &md, &reorder_s);
    for (int i = 0; i < count; i++) {
        const int n = ns[i], tail = n % 32, head = n - tail;
        uint16_t *x = random_bf16((size_t)n * in);
        float *y = malloc((size_t)n * out * sizeof *y);
        dnnl_primitive_desc_t pd = matmul_pd(n, in, out, &md), pdh = matmul_pd(head, in, out, &md),
                              pdt = tail ? matmul_pd(tail, in, out, &md) : NULL;
        double whole = run_matmul(pd, n, in, out, &md, buf, x, y);
        double gh = run_matmul(pdh, head, in, out, &md, buf, x, y);
        double gt = tail ? run_matmul(pdt, tail, in, out, &md, buf, x + (size_t)head * in, y + (size_t)head * out) : 0;
        double split_s = 2.0 * head * in * out / gh / 1e9 + (tail ? 2.0 * tail * in * out / gt / 1e9 : 0);
        printf("{\"split\": 1, \"n\": %d, \"in\": %d, \"out\": %d, \"whole_gflops\": %.0f, \"split_gflops\": %.0f}\n", n,
               in, out, whole, 2.0 * n * in * out / split_s / 1e9);
        fflush(stdout);
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_desc_destroy(pdh);
        if (pdt) dnnl_primitive_desc_destroy(pdt);
        free(x);
        free(y);
    }
    free(buf);
    free(w);
}

/* Attention's products for H heads of dimension HD over N tokens, batched over heads:
 * scores [H, n, n] = Q [H, n, hd] · Kᵀ, values [H, n, hd] = A [H, n, n] · V [H, n, hd]. */
static void attention_products(int h, int n, int hd) {
    uint16_t *q = random_bf16((size_t)h * n * hd), *k = random_bf16((size_t)h * n * hd);
    uint16_t *a = random_bf16((size_t)h * n * n);
    float *y = malloc((size_t)h * n * n * sizeof *y);
    struct { const char *name; dnnl_dims_t a, b, c; dnnl_format_tag_t btag; uint16_t *pa, *pb; } p[2] = {
        {"QK", {h, n, hd}, {h, hd, n}, {h, n, n}, dnnl_acb, q, k},
        {"AV", {h, n, n}, {h, n, hd}, {h, n, hd}, dnnl_abc, a, k},
    };
    for (int i = 0; i < 2; i++) {
        dnnl_memory_desc_t ma, mb, mc;
        dnnl_memory_desc_init_by_tag(&ma, 3, p[i].a, dt, dnnl_abc);
        dnnl_memory_desc_init_by_tag(&mb, 3, p[i].b, dt, p[i].btag);
        dnnl_memory_desc_init_by_tag(&mc, 3, p[i].c, dnnl_f32, dnnl_abc);
        dnnl_matmul_desc_t md;
        dnnl_primitive_desc_t pd = NULL;
        if (dnnl_matmul_desc_init(&md, &ma, &mb, NULL, &mc) || dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL)) {
            printf("{\"attention\": \"%s\", \"n\": %d, \"error\": \"no bf16 matmul\"}\n", p[i].name, n);
            continue;
        }
        dnnl_primitive_t prim;
        dnnl_primitive_create(&prim, pd);
        dnnl_memory_t xa, xb, xc;
        dnnl_memory_create(&xa, &ma, eng, p[i].pa);
        dnnl_memory_create(&xb, &mb, eng, p[i].pb);
        dnnl_memory_create(&xc, &mc, eng, y);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, xa}, {DNNL_ARG_WEIGHTS, xb}, {DNNL_ARG_DST, xc}};
        double s = time_prim(prim, 3, args);
        double flops = 2.0 * p[i].a[0] * p[i].a[1] * p[i].a[2] * p[i].b[2];
        printf("{\"attention\": \"%s\", \"heads\": %d, \"n\": %d, \"hd\": %d, \"impl\": \"%s\", \"gflops\": %.0f, \"ms\": %.2f}\n",
               p[i].name, h, n, hd, impl_of(pd), flops / s / 1e9, s * 1e3);
        fflush(stdout);
        dnnl_memory_destroy(xa);
        dnnl_memory_destroy(xb);
        dnnl_memory_destroy(xc);
        dnnl_primitive_destroy(prim);
        dnnl_primitive_desc_destroy(pd);
    }
    free(q);
    free(k);
    free(a);
    free(y);
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: bench_dnnl [ROUNDS [f32]]\noneDNN bf16 matmul: plain against prepacked weights, kajuma shapes");
        return 0;
    }
    if (argc > 1) rounds = atoi(argv[1]) > 0 ? atoi(argv[1]) : rounds;
    if (argc > 2 && !strcmp(argv[2], "f32")) dt = dnnl_f32;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&stream, eng, dnnl_stream_default_flags)) {
        fprintf(stderr, "bench_dnnl: no oneDNN CPU engine\n");
        return 3;
    }
    printf("{\"threads\": %d, \"isa\": %d, \"rounds\": %d}\n", omp_get_max_threads(), (int)dnnl_get_effective_cpu_isa(),
           rounds);
    const int ns[] = {1, 7, 512, 513, 2048};
    const int shapes[][2] = {{2048, 2048}, {2048, 512}, {2048, 8192}, {8192, 2048}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) weights_shape(shapes[i][0], shapes[i][1], ns, 5, 2);
    const int odd[] = {100, 513, 700, 1000, 1500, 2047};
    split_rows(2048, 8192, odd, 6);
    split_rows(8192, 2048, odd, 6);
    attention_products(32, 512, 64);
    attention_products(32, 2048, 64);
    return 0;
}
