/* Hooks that take the attention maps one head at a time (ds_probes_add_point_heads): the
 * forward pass hands them out from its tasks, several at once. Against hooks that take whole
 * blocks on the same model and prompt: every (head, row block) comes exactly once at each map
 * point, with the same causal entries bit for bit; hook_pattern2's first_map is the head's
 * pattern1; the logits are the same bits with either kind, with both, and with none; a failing
 * hook fails the forward pass with its own message, from any thread. */
#include "test.h"
#include "diffscope/error.h"
#include "diffscope/model.h"

#define MODEL "notebooks-data/models/diffllama" /* the demo model: 8 sub-heads, 4 layers */
enum { N = 300 };                             /* more than two row blocks */
static const ds_hook_point points[] = {DS_HOOK_SCORES, DS_HOOK_PATTERN, DS_HOOK_PATTERN1, DS_HOOK_PATTERN2,
                                       DS_HOOK_DIFF};
enum { NP = sizeof points / sizeof *points, MAX_L = 4, MAX_H = 8, MAX_BLOCKS = 8 };

/* The causal entries of every map of every layer, as one kind of hook saw them. */
typedef struct {
    float *maps[NP];                                    /* [L][heads][N][N], NaN where never written */
    float *first;                                       /* pattern2's first_map, [L][H/2][N][N] */
    int calls[NP][MAX_L][MAX_H][MAX_BLOCKS];            /* per-head hooks: calls per (head, block) */
    int R;                                              /* the row-block height */
    int wrong;                                          /* events with an unexpected shape */
} seen_maps;

static int point_index(ds_hook_point p) {
    for (int i = 0; i < NP; i++)
        if (points[i] == p) return i;
    return -1;
}

static float *map_at(float *maps, int layer, int heads, int h, int q) {
    return maps + (((size_t)layer * heads + h) * N + q) * N;
}

/* Copies the causal entries of heads [h0, h0 + nheads) of the event's rows. */
static void keep_rows(seen_maps *s, const ds_probe_event *ev, int h0, int nheads) {
    const int i = point_index(ev->point), heads = (int)ev->full[0];
    for (int h = 0; h < nheads; h++)
        for (int64_t r = 0; r < ev->shape[1]; r++) {
            const int q = (int)(ev->offset[1] + r);
            const float *row = ev->data + h * ev->strides[0] + r * ev->strides[1];
            memcpy(map_at(s->maps[i], ev->layer, heads, h0 + h, q), row, (size_t)(q + 1) * sizeof *row);
            if (ev->first_map)
                memcpy(map_at(s->first, ev->layer, heads, h0 + h, q), ev->first_map + r * ev->strides[1],
                       (size_t)(q + 1) * sizeof *row);
        }
}

static int whole_block(const ds_probe_event *ev, void *user) {
    seen_maps *s = user;
    if (ev->shape[0] != ev->full[0] || ev->offset[0] || ev->first_map) s->wrong++;
    keep_rows(s, ev, 0, (int)ev->shape[0]);
    return 0;
}

static int one_head(const ds_probe_event *ev, void *user) {
    seen_maps *s = user;
    const int i = point_index(ev->point), h = (int)ev->offset[0];
    const int bad = ev->shape[0] != 1 || ev->offset[1] % s->R || h < 0 || h >= ev->full[0] ||
                    (ev->point == DS_HOOK_PATTERN2) != (ev->first_map != NULL);
#pragma omp atomic update
    s->wrong += bad;
    if (bad) return 0;
#pragma omp atomic update
    s->calls[i][ev->layer][h][ev->offset[1] / s->R]++;
    keep_rows(s, ev, h, 1);
    return 0;
}

static int init_seen(seen_maps *s, int L, int H, int R) {
    memset(s, 0, sizeof *s);
    s->R = R;
    for (int i = 0; i < NP; i++) {
        const int heads = points[i] == DS_HOOK_SCORES || points[i] == DS_HOOK_PATTERN ? H : H / 2;
        const size_t n = (size_t)L * heads * N * N;
        if (!(s->maps[i] = malloc(n * sizeof(float)))) return -1;
        for (size_t k = 0; k < n; k++) s->maps[i][k] = NAN;
    }
    s->first = malloc((size_t)L * (H / 2) * N * N * sizeof(float));
    return s->first ? 0 : -1;
}

static void free_seen(seen_maps *s) {
    for (int i = 0; i < NP; i++) free(s->maps[i]);
    free(s->first);
}

/* The causal entries of map I (HEADS heads) that differ between A and B, bit for bit, or were
 * never written in either. */
static long differing(const seen_maps *a, const seen_maps *b, int i, int L, int heads) {
    long n = 0;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < heads; h++)
            for (int q = 0; q < N; q++) {
                const float *x = map_at(a->maps[i], l, heads, h, q), *y = map_at(b->maps[i], l, heads, h, q);
                for (int k = 0; k <= q; k++) n += isnan(x[k]) || memcmp(&x[k], &y[k], sizeof *x) != 0;
            }
    return n;
}

TEST(head_hooks_see_what_block_hooks_see) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    const ds_config *c = ds_model_config(m);
    const int L = c->num_layers, H = c->num_heads, V = c->vocab_size, R = ds_probes_block_rows(H, N, N);
    const int nblocks = (N + R - 1) / R;
    REQUIRE(L <= MAX_L && H <= MAX_H && nblocks <= MAX_BLOCKS && nblocks > 2, "the demo model's shape changed");
    int ids[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 37 + 11) % V;
    seen_maps blocks, heads, mixed;
    REQUIRE(!init_seen(&blocks, L, H, R) && !init_seen(&heads, L, H, R) && !init_seen(&mixed, L, H, R), "out of memory");
    ds_probes *pb = ds_probes_new(), *ph = ds_probes_new(), *pm = ds_probes_new();
    REQUIRE(pb && ph && pm, "out of memory");
    for (int i = 0; i < NP; i++) {
        ds_probes_add_point_causal(pb, points[i], -1, whole_block, &blocks);
        REQUIRE(!ds_probes_add_point_heads(ph, points[i], -1, one_head, &heads), "%s", ds_errmsg());
        ds_probes_add_point_heads(pm, points[i], -1, one_head, &mixed);
    }
    seen_maps layer1_whole;
    memset(&layer1_whole, 0, sizeof layer1_whole);
    ds_probes_add_point_causal(pm, DS_HOOK_PATTERN1, 1, whole_block, &layer1_whole); /* layer 1 takes the staged path */
    layer1_whole.maps[point_index(DS_HOOK_PATTERN1)] = malloc((size_t)L * (H / 2) * N * N * sizeof(float));
    REQUIRE(layer1_whole.maps[point_index(DS_HOOK_PATTERN1)], "out of memory");

    float *logits[4];
    for (int r = 0; r < 4; r++) REQUIRE(logits[r] = malloc((size_t)N * V * sizeof(float)), "out of memory");
    ds_session *s = ds_session_new(m, N, 0);
    REQUIRE(s, "%s", ds_errmsg());
    ds_probes *runs[4] = {NULL, pb, ph, pm};
    const int threads = ds_get_threads();
    for (int r = 0; r < 4; r++) {
        ds_set_threads(r == 2 ? 1 : 3); /* per-head hooks on one thread and on several */
        ds_session_reset(s);
        REQUIRE(ds_forward(s, ids, N, logits[r], 0, runs[r]) == 0, "%s", ds_errmsg());
    }
    ds_set_threads(threads);
    for (int r = 1; r < 4; r++)
        CHECK(!memcmp(logits[0], logits[r], (size_t)N * V * sizeof(float)), "run %d's logits differ from no hooks'", r);
    CHECK(blocks.wrong == 0 && heads.wrong == 0 && mixed.wrong == 0, "%d, %d, %d events of the wrong shape",
          blocks.wrong, heads.wrong, mixed.wrong);
    for (int i = 0; i < NP; i++) {
        const int nh = points[i] == DS_HOOK_SCORES || points[i] == DS_HOOK_PATTERN ? H : H / 2;
        long calls_off = 0;
        for (int l = 0; l < L; l++)
            for (int h = 0; h < nh; h++)
                for (int b = 0; b < nblocks; b++) calls_off += (heads.calls[i][l][h][b] != 1) + (mixed.calls[i][l][h][b] != 1);
        char name[96];
        ds_hook_name(points[i], 0, name, sizeof name);
        CHECK(calls_off == 0, "%s: %ld (layer, head, block) not called exactly once", name, calls_off);
        CHECK(differing(&blocks, &heads, i, L, nh) == 0, "%s: %ld causal entries differ per head", name,
              differing(&blocks, &heads, i, L, nh));
        CHECK(differing(&blocks, &mixed, i, L, nh) == 0, "%s: %ld causal entries differ, staged per head", name,
              differing(&blocks, &mixed, i, L, nh));
    }
    /* pattern2's first_map is pattern1 */
    seen_maps as_first = heads;
    as_first.maps[point_index(DS_HOOK_PATTERN1)] = heads.first;
    CHECK(differing(&blocks, &as_first, point_index(DS_HOOK_PATTERN1), L, H / 2) == 0,
          "hook_pattern2's first_map is not the head's pattern1");
    for (int r = 0; r < 4; r++) free(logits[r]);
    free(layer1_whole.maps[point_index(DS_HOOK_PATTERN1)]);
    free_seen(&blocks), free_seen(&heads), free_seen(&mixed);
    ds_probes_free(pb), ds_probes_free(ph), ds_probes_free(pm);
    ds_session_free(s);
    ds_model_free(m);
}

static int refuse_head_3(const ds_probe_event *ev, void *user) {
    (void)user;
    if (ev->layer == 2 && ev->offset[0] == 3 && ev->offset[1] > 0)
        return ds_fail("the test's hook refuses head 3, rows from %lld", (long long)ev->offset[1]);
    return 0;
}

TEST(a_failing_head_hook_fails_the_forward_pass_with_its_message) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    int ids[N];
    for (int i = 0; i < N; i++) ids[i] = (i * 13 + 5) % ds_model_config(m)->vocab_size;
    ds_session *s = ds_session_new(m, N, 0);
    ds_probes *p = ds_probes_new();
    REQUIRE(s && p, "%s", ds_errmsg());
    REQUIRE(!ds_probes_add_point_heads(p, DS_HOOK_DIFF, -1, refuse_head_3, NULL), "%s", ds_errmsg());
    const int threads = ds_get_threads();
    for (int t = 1; t <= 3; t += 2) {
        ds_set_threads(t);
        ds_session_reset(s);
        ds_fail("no message yet");
        CHECK(ds_forward(s, ids, N, NULL, 1, p) != 0, "the forward pass went on past a failing hook (%d threads)", t);
        CHECK(strstr(ds_errmsg(), "the test's hook refuses head 3, rows from ") != NULL, "%d threads: message '%s'", t,
              ds_errmsg());
    }
    ds_set_threads(threads);
    CHECK(ds_probes_add_point_heads(p, DS_HOOK_Z, -1, refuse_head_3, NULL) != 0 &&
              strstr(ds_errmsg(), "blocks.0.attn.hook_z") != NULL,
          "hook_z is not a map, yet a per-head hook was taken there (%s)", ds_errmsg());
    ds_probes_free(p);
    ds_session_free(s);
    ds_model_free(m);
}

int main(void) {
    RUN(head_hooks_see_what_block_hooks_see);
    RUN(a_failing_head_hook_fails_the_forward_pass_with_its_message);
    return test_summary();
}
