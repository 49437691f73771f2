/* Probe points and outlier statistics: names, views, and the dump's MLP outlier statistics
 * against a plain C computation from our own probe on the same forward pass. */
#include "test.h"
#include "diffscope/dump.h"
#include "diffscope/error.h"
#include "io/h5in.h"

#define MODEL "tests/data/golden/models/diff-sharded-deep-f32"
static const int ids[] = {3, 17, 5, 60, 2, 9, 44, 81, 7, 30, 12, 55};
#define T ((int)(sizeof ids / sizeof ids[0]))

TEST(probe_names_follow_transformerlens) {
    char b[96];
    CHECK(!strcmp(ds_hook_name(DS_HOOK_RESID_POST, 3, b, sizeof b), "blocks.3.hook_resid_post"), "%s", b);
    CHECK(!strcmp(ds_hook_name(DS_HOOK_PATTERN1, 0, b, sizeof b), "blocks.0.attn.hook_pattern1"), "%s", b);
    CHECK(!strcmp(ds_hook_name(DS_HOOK_MLP_POST, 2, b, sizeof b), "blocks.2.mlp.hook_post"), "%s", b);
    CHECK(!strcmp(ds_hook_name(DS_HOOK_FINAL_NORM, -1, b, sizeof b), "ln_final.hook_normalized"), "%s", b);
}

static int no_op(const ds_probe_event *ev, void *u) { return 0; }

/* The hooks of the binding test, on P. */
static void add_binding_hooks(ds_probes *p) {
    ds_probes_add(p, "blocks.1.*", no_op, NULL);
    ds_probes_add(p, "*hook_diff", no_op, NULL);
    ds_probes_add(p, "hook_embed", no_op, NULL);
    ds_probes_add(p, "blocks.[02].mlp.*", no_op, NULL);
    ds_probes_add_point(p, DS_HOOK_Z, 2, no_op, NULL);
    ds_probes_add_point(p, DS_HOOK_LAMBDA, -1, no_op, NULL);
    ds_probes_add_point(p, DS_HOOK_LOGITS, 5, no_op, NULL); /* the layer of a model-level point is ignored */
}

/* The bound bitmask gives, for every point and layer, what matching each name gives. */
TEST(bound_probes_answer_as_names_do) {
    enum { L = 4 };
    ds_probes *bound = ds_probes_new(), *named = ds_probes_new();
    add_binding_hooks(bound);
    add_binding_hooks(named);
    REQUIRE(ds_probes_bind(bound, L) == 0, "%s", ds_errmsg());
    int differ = 0, active = 0;
    for (int layer = -1; layer < L; layer++) {
        uint32_t want = ds_probes_wanted(bound, layer);
        for (int point = 0; point < DS_HOOK_COUNT; point++) {
            int model_level = point == DS_HOOK_EMBED || point == DS_HOOK_FINAL_NORM || point == DS_HOOK_LOGITS;
            if (model_level != (layer < 0)) { /* no such event: the mask never holds it */
                CHECK(!(want >> point & 1), "point %d layer %d is in the mask", point, layer);
                continue;
            }
            int a = ds_probes_active(named, point, layer), b = (want >> point & 1) != 0;
            differ += a != b;
            active += a;
            CHECK(a == b, "point %d layer %d: by name %d, bound %d", point, layer, a, b);
        }
    }
    CHECK(!differ && active > 0, "%d differ, %d active", differ, active);
    /* Spot checks of the rules themselves. */
    CHECK(ds_probes_active(bound, DS_HOOK_RESID_PRE, 1) && !ds_probes_active(bound, DS_HOOK_RESID_PRE, 0), "blocks.1.*");
    CHECK(ds_probes_active(bound, DS_HOOK_MLP_POST, 2) && !ds_probes_active(bound, DS_HOOK_MLP_POST, 3), "[02]");
    CHECK(ds_probes_active(bound, DS_HOOK_Z, 2) && !ds_probes_active(bound, DS_HOOK_Z, 3), "Z at layer 2 only");
    CHECK(ds_probes_active(bound, DS_HOOK_LAMBDA, 3) && ds_probes_active(bound, DS_HOOK_EMBED, -1), "-1: all layers");
    CHECK(ds_probes_active(bound, DS_HOOK_LOGITS, -1) && !ds_probes_active(bound, DS_HOOK_FINAL_NORM, -1), "model level");
    /* A hook added after binding is seen before the next binding. */
    CHECK(!ds_probes_active(bound, DS_HOOK_RESID_PRE, 3), "resid_pre 3 before");
    ds_probes_add(bound, "blocks.3.hook_resid_pre", no_op, NULL);
    CHECK(ds_probes_active(bound, DS_HOOK_RESID_PRE, 3), "resid_pre 3 after adding");
    CHECK(ds_probes_add_point(bound, DS_HOOK_COUNT, 0, no_op, NULL) < 0, "an unknown point is refused");
    ds_probes_free(bound);
    ds_probes_free(named);
}

typedef struct { int events, layer_sum; } event_count;

static int count_event(const ds_probe_event *ev, void *u) {
    event_count *c = u;
    c->events++;
    c->layer_sum += ev->layer;
    return 0;
}

/* A hook added by point sees the events the same hook added by name sees. */
TEST(hooks_by_point_see_what_hooks_by_name_see) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    ds_probes *p = ds_probes_new();
    event_count all_pt = {0}, all_name = {0}, one_pt = {0}, one_name = {0}, top_pt = {0}, top_name = {0};
    ds_probes_add_point(p, DS_HOOK_PATTERN1, -1, count_event, &all_pt);
    ds_probes_add(p, "blocks.*.attn.hook_pattern1", count_event, &all_name);
    ds_probes_add_point(p, DS_HOOK_RESID_POST, 1, count_event, &one_pt);
    ds_probes_add(p, "blocks.1.hook_resid_post", count_event, &one_name);
    ds_probes_add_point(p, DS_HOOK_FINAL_NORM, -1, count_event, &top_pt);
    ds_probes_add(p, "ln_final.hook_normalized", count_event, &top_name);
    ds_session *s = ds_session_new(m, T, 0);
    REQUIRE(ds_forward(s, ids, T, NULL, 0, p) == 0, "%s", ds_errmsg());
    int L = ds_model_config(m)->num_layers;
    CHECK(all_pt.events >= L && all_pt.events == all_name.events && all_pt.layer_sum == all_name.layer_sum,
          "pattern1: %d/%d events", all_pt.events, all_name.events);
    CHECK(one_pt.events == 1 && one_pt.layer_sum == 1 && one_name.events == 1, "resid_post 1: %d/%d events",
          one_pt.events, one_name.events);
    CHECK(top_pt.events == 1 && top_name.events == 1, "final norm: %d/%d events", top_pt.events, top_name.events);
    ds_session_free(s);
    ds_probes_free(p);
    ds_model_free(m);
}

typedef struct { int rows_ok, masked_ok, events; } map_check;

static int check_maps(const ds_probe_event *ev, void *u) {
    map_check *c = u;
    c->events++;
    for (int h = 0; h < ev->shape[0]; h++)
        for (int r = 0; r < ev->shape[1]; r++) {
            const float *row = ev->data + h * ev->strides[0] + r * ev->strides[1];
            int q = (int)ev->offset[1] + r;
            if (ev->point == DS_HOOK_SCORES) {
                for (int k = q + 1; k < ev->shape[2]; k++) c->masked_ok &= isinf(row[k]) && row[k] < 0;
            } else {
                double s = 0;
                for (int k = 0; k < ev->shape[2]; k++) s += row[k];
                c->rows_ok &= fabs(s - 1) < 1e-5;
            }
        }
    return 0;
}

TEST(pattern_rows_sum_to_one_and_scores_are_masked) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    ds_probes *p = ds_probes_new();
    map_check c = {1, 1, 0};
    ds_probes_add(p, "blocks.*.attn.hook_pattern", check_maps, &c);
    ds_probes_add(p, "blocks.*.attn.hook_scores", check_maps, &c);
    ds_session *s = ds_session_new(m, T, 0);
    REQUIRE(ds_forward(s, ids, T, NULL, 0, p) == 0, "%s", ds_errmsg());
    CHECK(c.events == 2 * ds_model_config(m)->num_layers, "%d events", c.events);
    CHECK(c.rows_ok, "a softmax row does not sum to 1");
    CHECK(c.masked_ok, "a future key is not -inf in the scores");
    ds_session_free(s);
    ds_probes_free(p);
    ds_model_free(m);
}

/* The causal entries of every scores row, summed in order, and how many there were. */
typedef struct { double sum; long count; } causal_sum;

static int sum_causal(const ds_probe_event *ev, void *u) {
    causal_sum *c = u;
    for (int h = 0; h < ev->shape[0]; h++)
        for (int r = 0; r < ev->shape[1]; r++) {
            const float *row = ev->data + h * ev->strides[0] + r * ev->strides[1];
            for (int k = 0; k <= (int)ev->offset[1] + r; k++) c->sum += row[k], c->count++;
        }
    return 0;
}

/* A hook added as causal reads the same causal scores as a plain one; the masked entries are
 * written (with -inf) only while some hook at hook_scores was added plainly. */
TEST(causal_scores_hooks_see_the_same_causal_entries) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    const int L = ds_model_config(m)->num_layers;
    causal_sum plain = {0, 0}, causal = {0, 0};
    ds_probes *p1 = ds_probes_new(), *p2 = ds_probes_new();
    REQUIRE(p1 && p2, "out of memory");
    ds_probes_add_point(p1, DS_HOOK_SCORES, -1, sum_causal, &plain);
    ds_probes_add_point_causal(p2, DS_HOOK_SCORES, -1, sum_causal, &causal);
    ds_probes_add(p2, "blocks.*.attn.hook_pattern", no_op, NULL);
    CHECK(ds_probes_masked_wanted(p1, DS_HOOK_SCORES, 0) == 1, "a plain hook should want the masked entries");
    CHECK(ds_probes_masked_wanted(p2, DS_HOOK_SCORES, L - 1) == 0, "only causal hooks listen to hook_scores");
    ds_session *s = ds_session_new(m, T, 0);
    REQUIRE(s, "%s", ds_errmsg());
    REQUIRE(ds_forward(s, ids, T, NULL, 0, p1) == 0, "%s", ds_errmsg());
    ds_session_reset(s);
    REQUIRE(ds_forward(s, ids, T, NULL, 0, p2) == 0, "%s", ds_errmsg());
    CHECK(plain.count > 0 && plain.count == causal.count, "%ld against %ld causal entries", plain.count, causal.count);
    CHECK(plain.sum == causal.sum, "the causal scores differ: sums %.17g and %.17g", plain.sum, causal.sum);
    ds_probes_add(p2, "blocks.1.attn.*", no_op, NULL);
    CHECK(ds_probes_masked_wanted(p2, DS_HOOK_SCORES, 1) == 1 && ds_probes_masked_wanted(p2, DS_HOOK_SCORES, 0) == 0,
          "a plain glob hook over layer 1's points should want the masked entries there only");
    ds_session_free(s);
    ds_probes_free(p1);
    ds_probes_free(p2);
    ds_model_free(m);
}

/* Hooks added as causal at the maps made by the softmax (hook_pattern1, hook_pattern2, hook_diff)
 * read the same causal entries as plain ones, though the forward pass then leaves the keys
 * past each block unset; the logits are the same bits with either, and with no hooks (the fused
 * path). The prompt is longer than one row block, so that later blocks run on scratch that
 * earlier blocks filled. */
TEST(causal_map_hooks_see_the_same_causal_entries) {
    static const ds_hook_point points[] = {DS_HOOK_PATTERN1, DS_HOOK_PATTERN2, DS_HOOK_DIFF};
    enum { NP = sizeof points / sizeof *points, N = 300 };
    ds_model *m = ds_model_load("notebooks-data/models/diffllama"); /* the demo model: 512 positions */
    REQUIRE(m, "%s", ds_errmsg());
    const int V = ds_model_config(m)->vocab_size;
    int long_ids[N];
    for (int i = 0; i < N; i++) long_ids[i] = ids[i % T] + i % 7;
    causal_sum plain[NP] = {{0, 0}}, causal[NP] = {{0, 0}};
    ds_probes *p1 = ds_probes_new(), *p2 = ds_probes_new();
    float *logits[3] = {malloc((size_t)N * V * sizeof(float)), malloc((size_t)N * V * sizeof(float)),
                        malloc((size_t)N * V * sizeof(float))};
    REQUIRE(p1 && p2 && logits[0] && logits[1] && logits[2], "out of memory");
    for (int i = 0; i < NP; i++) {
        ds_probes_add_point(p1, points[i], -1, sum_causal, &plain[i]);
        ds_probes_add_point_causal(p2, points[i], -1, sum_causal, &causal[i]);
    }
    CHECK(ds_probes_masked_wanted(p1, DS_HOOK_DIFF, 0) == 1, "a plain hook should want the masked entries");
    CHECK(ds_probes_masked_wanted(p2, DS_HOOK_PATTERN1, 0) == 0, "only causal hooks listen to hook_pattern1");
    ds_session *s = ds_session_new(m, N, 0);
    REQUIRE(s, "%s", ds_errmsg());
    ds_probes *runs[3] = {NULL, p1, p2};
    for (int r = 0; r < 3; r++) {
        ds_session_reset(s);
        REQUIRE(ds_forward(s, long_ids, N, logits[r], 0, runs[r]) == 0, "%s", ds_errmsg());
    }
    for (int i = 0; i < NP; i++) {
        CHECK(plain[i].count == (long)ds_model_config(m)->num_layers * (ds_model_config(m)->num_heads / 2) * N * (N + 1) / 2,
              "%s: %ld causal entries", ds_hook_name(points[i], 0, (char[96]){0}, 96), plain[i].count);
        CHECK(plain[i].count == causal[i].count && plain[i].sum == causal[i].sum,
              "%s: causal entries differ: %ld and %ld, sums %.17g and %.17g", ds_hook_name(points[i], 0, (char[96]){0}, 96),
              plain[i].count, causal[i].count, plain[i].sum, causal[i].sum);
    }
    CHECK(!memcmp(logits[0], logits[1], (size_t)N * V * sizeof(float)), "plain map hooks change the logits");
    CHECK(!memcmp(logits[0], logits[2], (size_t)N * V * sizeof(float)), "causal map hooks change the logits");
    ds_session_free(s);
    ds_probes_free(p1);
    ds_probes_free(p2);
    for (int r = 0; r < 3; r++) free(logits[r]);
    ds_model_free(m);
}

typedef struct { float *act[16]; int FF; } mlp_capture;

static int grab_mlp(const ds_probe_event *ev, void *u) {
    mlp_capture *c = u;
    size_t n = (size_t)ev->shape[0] * ev->shape[1];
    c->act[ev->layer] = malloc(n * sizeof(float));
    memcpy(c->act[ev->layer], ev->data, n * sizeof(float));
    c->FF = (int)ev->shape[1];
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

TEST(dump_mlp_outliers_match_plain_c) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    const char *out = "build/test_probes_mlp.h5";
    remove(out);
    ds_probes *p = ds_probes_new();
    mlp_capture cap = {{0}, 0};
    ds_probes_add(p, "blocks.*.mlp.hook_post", grab_mlp, &cap);
    ds_dump_opts o = {.what = DS_DUMP_OUTLIERS, .topk = 5, .force = 1};
    ds_dump *d = ds_dump_begin(out, &o, m, ids, T, p);
    REQUIRE(d, "%s", ds_errmsg());
    ds_session *s = ds_session_new(m, T, 0);
    REQUIRE(ds_forward(s, ids, T, NULL, 0, p) == 0 && ds_dump_finish(d, NULL) == 0, "%s", ds_errmsg());
    hid_t f = ds_h5_open_read(out);
    REQUIRE(f >= 0, "%s", ds_errmsg());
    for (int l = 0; l < ds_model_config(m)->num_layers; l++) {
        size_t n = (size_t)T * cap.FF;
        float *a = malloc(n * sizeof(float));
        double sum = 0;
        for (size_t i = 0; i < n; i++) a[i] = fabsf(cap.act[l][i]), sum += a[i];
        qsort(a, n, sizeof(float), cmp_float);
        double mean = sum / n, median = n % 2 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
        char path[160], grp[96];
        snprintf(grp, sizeof grp, "/layers/%d/outliers/mlp", l);
        snprintf(path, sizeof path, "%s/values", grp);
        ds_h5_shape sh;
        float *top = ds_h5_read_f32(f, path, &sh);
        REQUIRE(top && sh.numel == 5, "%s", ds_errmsg());
        for (int i = 0; i < 5; i++) CHECK(top[i] == a[n - 1 - i], "layer %d top %d: %g vs %g", l, i, top[i], a[n - 1 - i]);
        double got_median, got_mean;
        ds_h5_read_attr_f64(f, grp, "median", &got_median);
        ds_h5_read_attr_f64(f, grp, "mean", &got_mean);
        CHECK(fabs(got_median - median) < 1e-7, "layer %d median %g vs %g", l, got_median, median);
        CHECK(fabs(got_mean - mean) < 1e-6 * mean, "layer %d mean %g vs %g", l, got_mean, mean);
        free(top), free(a), free(cap.act[l]);
    }
    H5Fclose(f);
    remove(out);
    ds_session_free(s);
    ds_probes_free(p);
    ds_model_free(m);
}

int main(void) {
    RUN(probe_names_follow_transformerlens);
    RUN(bound_probes_answer_as_names_do);
    RUN(hooks_by_point_see_what_hooks_by_name_see);
    RUN(pattern_rows_sum_to_one_and_scores_are_masked);
    RUN(causal_scores_hooks_see_the_same_causal_entries);
    RUN(causal_map_hooks_see_the_same_causal_entries);
    RUN(dump_mlp_outliers_match_plain_c);
    return test_summary();
}
