/* probe.h's threading contract, which the Python package's callbacks rely on (they need the
 * GIL, docs/python.md): every probe event of ds_forward and ds_generate arrives on the calling
 * thread, outside any OpenMP parallel region, with several threads and prompts long enough
 * that the forward pass does run its loops in parallel. */
#include "test.h"
#include "diffscope/error.h"
#include "diffscope/generate.h"
#include "diffscope/model.h"
#include <omp.h>
#include <pthread.h>

#define MODEL "notebooks-data/models/diffllama"
#define T 96

typedef struct {
    pthread_t caller;
    int events, wrong_thread, in_parallel;
} thread_check;

static int on_event(const ds_probe_event *ev, void *user) {
    thread_check *c = user;
    c->events++;
    c->wrong_thread += !pthread_equal(pthread_self(), c->caller);
    c->in_parallel += omp_in_parallel();
    return 0;
}

TEST(probe_events_fire_on_the_calling_thread) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s", ds_errmsg());
    int prev = ds_get_threads();
    ds_set_threads(4);
    int ids[T];
    for (int i = 0; i < T; i++) ids[i] = 4 + (i * 37) % 500;
    thread_check c = {.caller = pthread_self()};
    ds_probes *p = ds_probes_new();
    ds_probes_add(p, "*", on_event, &c);
    ds_session *s = ds_session_new(m, T + 4, 0);
    REQUIRE(s, "%s", ds_errmsg());
    CHECK(ds_forward(s, ids, T, NULL, 1, p) == 0, "%s", ds_errmsg());
    ds_session_reset(s);
    ds_gen_opts o = {.max_new = 3, .temperature = 0, .top_p = 1, .ignore_eos = 1};
    int out[3], n_out = 0;
    CHECK(ds_generate(s, ids, T, &o, out, &n_out, p, NULL, NULL) == 0, "%s", ds_errmsg());
    CHECK(c.events > 100, "only %d events", c.events);
    CHECK(c.wrong_thread == 0, "%d of %d events on another thread", c.wrong_thread, c.events);
    CHECK(c.in_parallel == 0, "%d of %d events inside an OpenMP parallel region", c.in_parallel, c.events);
    ds_session_free(s);
    ds_probes_free(p);
    ds_model_free(m);
    ds_set_threads(prev);
}

int main(void) {
    RUN(probe_events_fire_on_the_calling_thread);
    return test_summary();
}
