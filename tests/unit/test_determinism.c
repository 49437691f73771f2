/* Determinism: the same model, prompt and thread count give bit-identical logits and residual
 * streams (prefill, then greedy decode steps through the KV cache) across runs, and runs with
 * 1 and 2 threads agree within 1e-5, relative to max(1, |value|). They are in fact equal
 * (src/model/linear.c partitions the GEMMs by shape and cores, never by threads; the measured
 * difference is printed); the tolerance is what OpenBLAS's own threading would need, whose
 * summation order followed the thread count (about 1e-5 absolute on logits near 11 for the
 * demo model). The CLI side (dump and logits files compared with h5diff, sampling with --seed)
 * is tests/cli/test_determinism.sh. */
#include "test.h"
#include "diffscope/error.h"
#include "diffscope/model.h"

#define DECODE_STEPS 6

typedef struct {
    float *logits; /* [T + DECODE_STEPS, V]: prefill rows, then one row per decode step */
    float *resid;  /* [L, T, D]: residual stream after each layer, prefill only */
    int T, D, L, V;
} run_out;

static int grab_resid(const ds_probe_event *ev, void *user) {
    run_out *r = user;
    if (ev->pos0 != 0) return 0; /* decode steps are covered by their logits */
    memcpy(r->resid + (size_t)ev->layer * r->T * r->D, ev->data, (size_t)r->T * r->D * sizeof(float));
    return 0;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Prefill IDS, then DECODE_STEPS greedy steps, with THREADS threads. 0 on success. */
static int run_model(const ds_model *m, const int *ids, int T, int threads, run_out *r) {
    const ds_config *c = ds_model_config(m);
    r->T = T, r->D = c->hidden_size, r->L = c->num_layers, r->V = c->vocab_size;
    r->logits = malloc((size_t)(T + DECODE_STEPS) * r->V * sizeof(float));
    r->resid = malloc((size_t)r->L * T * r->D * sizeof(float));
    ds_set_threads(threads);
    ds_session *s = ds_session_new(m, T + DECODE_STEPS, 0);
    ds_probes *p = ds_probes_new();
    int rc = !r->logits || !r->resid || !s || !p || ds_probes_add(p, "blocks.*.hook_resid_post", grab_resid, r) ||
             ds_forward(s, ids, T, r->logits, 0, p);
    for (int k = 0; !rc && k < DECODE_STEPS; k++) {
        float *row = r->logits + (size_t)(T + k) * r->V;
        int next = argmax(row - r->V, r->V);
        rc = ds_forward(s, &next, 1, row, 0, NULL);
    }
    ds_probes_free(p);
    ds_session_free(s);
    return rc;
}

static void run_free(run_out *r) {
    free(r->logits);
    free(r->resid);
}

/* Largest |a - b| / max(1, |a|). */
static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)a[i]));
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static void check_model(const char *dir, int T) {
    if (!test_file_exists(dir)) SKIP("%s not present", dir);
    ds_model *m = ds_model_load(dir);
    REQUIRE(m, "load %s: %s", dir, ds_errmsg());
    const ds_config *c = ds_model_config(m);
    if (T > c->max_position_embeddings - DECODE_STEPS) T = c->max_position_embeddings - DECODE_STEPS;
    int *ids = malloc((size_t)T * sizeof *ids);
    for (int i = 0; i < T; i++) ids[i] = (int)((7u * i * i + 3u * i + 1u) % (unsigned)c->vocab_size);
    run_out r[2][2] = {{{0}}}; /* [threads 1, 2][run a, b] */
    int ok = 1;
    for (int t = 0; t < 2 && ok; t++)
        for (int k = 0; k < 2 && ok; k++) ok = run_model(m, ids, T, t + 1, &r[t][k]) == 0;
    CHECK(ok, "forward failed: %s", ds_errmsg());
    if (ok) {
        size_t nl = (size_t)(T + DECODE_STEPS) * c->vocab_size, nr = (size_t)c->num_layers * T * c->hidden_size;
        for (int t = 0; t < 2; t++) {
            CHECK(!memcmp(r[t][0].logits, r[t][1].logits, nl * sizeof(float)),
                  "%s: logits differ between two runs with %d thread(s)", dir, t + 1);
            CHECK(!memcmp(r[t][0].resid, r[t][1].resid, nr * sizeof(float)),
                  "%s: residual streams differ between two runs with %d thread(s)", dir, t + 1);
        }
        double dl = max_rel(r[0][0].logits, r[1][0].logits, nl), dr = max_rel(r[0][0].resid, r[1][0].resid, nr);
        printf("# %s T=%d: threads 1 vs 2: logits max rel diff %.3g, residual stream %.3g\n", dir, T, dl, dr);
        CHECK(dl <= 1e-5, "%s: logits with 1 and 2 threads differ by %.3g", dir, dl);
        CHECK(dr <= 1e-5, "%s: residual streams with 1 and 2 threads differ by %.3g", dir, dr);
    }
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++) run_free(&r[t][k]);
    free(ids);
    ds_model_free(m);
}

TEST(determinism_diffllama_golden) { check_model("tests/data/golden/models/diff-gqa-tied-bf16", 40); }
TEST(determinism_llama_golden) { check_model("tests/data/golden/models/llama-mha-bias-f32", 40); }
TEST(determinism_diffllama_demo) { check_model("notebooks-data/models/diffllama", 300); }
TEST(determinism_llama_demo) { check_model("notebooks-data/models/llama", 300); }

int main(void) {
    RUN(determinism_diffllama_golden);
    RUN(determinism_llama_golden);
    RUN(determinism_diffllama_demo);
    RUN(determinism_llama_demo);
    return test_summary();
}
