/* Determinism: the same model and prompt give bit-identical logits and residual streams
 * (prefill, then greedy decode steps through the KV cache) whatever the thread count: 1, 2, 3
 * and 7 threads (more than this machine's cores, and an odd count), and two runs with the same
 * count. src/model/linear.c cuts every product into tiles fixed by the shapes alone and
 * attention works on (head, row block) tasks fixed by the shapes alone, so no float is summed
 * in an order that follows the threads. The CLI side (dump and logits files, CPU affinity with
 * taskset, sampling with --seed) is tests/cli/test_determinism.sh. */
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
    static const int threads[] = {1, 2, 3, 7, 2}; /* the last run repeats the second */
    enum { RUNS = sizeof threads / sizeof *threads };
    if (!test_file_exists(dir)) SKIP("%s not present", dir);
    ds_model *m = ds_model_load(dir);
    REQUIRE(m, "load %s: %s", dir, ds_errmsg());
    const ds_config *c = ds_model_config(m);
    if (T > c->max_position_embeddings - DECODE_STEPS) T = c->max_position_embeddings - DECODE_STEPS;
    int *ids = malloc((size_t)T * sizeof *ids);
    for (int i = 0; i < T; i++) ids[i] = (int)((7u * i * i + 3u * i + 1u) % (unsigned)c->vocab_size);
    run_out r[RUNS] = {{0}};
    int ok = 1;
    for (int k = 0; k < RUNS && ok; k++) ok = run_model(m, ids, T, threads[k], &r[k]) == 0;
    CHECK(ok, "forward failed: %s", ds_errmsg());
    size_t nl = (size_t)(T + DECODE_STEPS) * c->vocab_size, nr = (size_t)c->num_layers * T * c->hidden_size;
    for (int k = 1; k < RUNS && ok; k++) {
        CHECK(!memcmp(r[0].logits, r[k].logits, nl * sizeof(float)),
              "%s: logits with %d thread(s) differ from 1 thread's by up to %.3g (relative)", dir, threads[k],
              max_rel(r[0].logits, r[k].logits, nl));
        CHECK(!memcmp(r[0].resid, r[k].resid, nr * sizeof(float)),
              "%s: residual streams with %d thread(s) differ from 1 thread's by up to %.3g (relative)", dir,
              threads[k], max_rel(r[0].resid, r[k].resid, nr));
    }
    for (int k = 0; k < RUNS; k++) run_free(&r[k]);
    ds_set_threads(2);
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
