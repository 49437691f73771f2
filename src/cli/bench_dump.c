/* A timed dump, split by where its time goes: a probe registered before the dump's handlers
 * and one after them, on each point outside the attention maps that the dump listens to, time
 * the handlers at that point; what is left is the forward pass, with the handlers that take the
 * maps a head at a time inside its tasks, which the same probes on the points between the
 * stages (bench_stages.h) split stage by stage, the handlers' time taken out. No probe goes on
 * a map: one that takes whole blocks would turn the attention to its staged path. */
#include "cli/bench_dump.h"
#include "base/path.h"
#include "cli/cli.h"
#include "diffscope/dump.h"
#include "io/outfile.h"
#include <stdlib.h>
#include <sys/stat.h>

const char *const bench_dump_part_names[N_DUMP_PARTS] = {"forward", "mlp_stats", "layer_end", "groupnorm",
                                                        "other", "open", "finish"};

/* The part that the handlers at each point belong to. */
static const struct {
    ds_hook_point point;
    int part;
} timed_points[] = {{DS_HOOK_LAMBDA, DUMP_OTHER},          {DS_HOOK_RESID_PRE, DUMP_OTHER},
                    {DS_HOOK_GROUPNORM_IN, DUMP_GROUPNORM}, {DS_HOOK_MLP_POST, DUMP_MLP_STATS},
                    {DS_HOOK_RESID_POST, DUMP_LAYER_END}};
enum { N_TIMED = sizeof timed_points / sizeof *timed_points };

/* The fields of ds_dump_io that add up over rounds and are reported as a round's mean. */
#define SUMMED_IO_FIELDS(X) X(bytes) X(writes) X(writing_s) X(waits) X(waiting_s) X(draining_s)

typedef struct {
    bench_dump_split *split;
    double since;    /* when the handlers at the current point began */
    double stage_t0; /* when the current stage began */
    double handled;  /* the handlers' time since then, at points that close no stage */
} handler_clock;

/* A point between stages closes the stage that ran up to it, the handlers before it taken out;
 * its own handlers belong to no stage. */
static int before_handlers(const ds_probe_event *ev, void *user) {
    handler_clock *c = user;
    c->since = cli_now();
    int stage = bench_stage_closed_by(ev->point);
    if (stage >= 0) {
        c->split->forward.seconds[stage] += c->since - c->stage_t0 - c->handled;
        c->handled = 0;
    }
    return 0;
}

static int after_handlers(const ds_probe_event *ev, void *user) {
    handler_clock *c = user;
    double t = cli_now();
    for (int i = 0; i < N_TIMED; i++)
        if (timed_points[i].point == ev->point) c->split->seconds[timed_points[i].part] += t - c->since;
    if (bench_stage_closed_by(ev->point) >= 0) c->stage_t0 = t;
    else c->handled += t - c->since;
    return 0;
}

/* FN on every point the dump's handlers or the stages' boundaries are at. */
static int add_timing_probes(ds_probes *p, ds_hook_fn fn, handler_clock *c) {
    for (int point = 0; point < DS_HOOK_COUNT; point++) {
        int timed = bench_stage_closed_by((ds_hook_point)point) >= 0;
        for (int i = 0; i < N_TIMED; i++) timed |= (int)timed_points[i].point == point;
        if (timed && ds_probes_add_point_causal(p, (ds_hook_point)point, -1, fn, c)) return -1; /* they read no data */
    }
    return 0;
}

char *bench_tmpdir(void) {
    const char *tmpdir = getenv("TMPDIR");
    return ds_tmpdir_create(tmpdir && *tmpdir ? tmpdir : "/tmp", "diffscope-bench");
}

double bench_dump_timed(const ds_model *m, ds_session *s, const int *ids, int T, unsigned what, float *logits, double *mb,
                        bench_dump_split *split) {
    char *dir = bench_tmpdir(), *path = dir ? ds_path_join(dir, "dump.h5") : NULL;
    if (!path) {
        if (dir) ds_tmpdir_remove(dir);
        return -1;
    }
    bench_dump_split here = {{0}};
    ds_dump_opts d = {.what = what, .topk = 100, .force = 1, .io = &here.io};
    bench_stages_init(&here.forward, m, T);
    handler_clock clock = {&here, 0, 0, 0};
    ds_probes *p = ds_probes_new();
    ds_session_reset(s);
    int rc = !p || add_timing_probes(p, before_handlers, &clock);
    double t0 = cli_now();
    ds_dump *dd = rc ? NULL : ds_dump_begin(path, &d, m, ids, T, p);
    here.seconds[DUMP_OPEN] = cli_now() - t0;
    rc = !dd || add_timing_probes(p, after_handlers, &clock);
    clock.stage_t0 = cli_now();
    rc = rc || ds_forward(s, ids, T, logits, 1, p);
    double t_close = cli_now();
    if (dd) rc = rc ? (ds_dump_abort(dd), -1) : ds_dump_finish(dd, NULL);
    double secs = cli_now() - t0;
    here.seconds[DUMP_FINISH] = cli_now() - t_close;
    double handlers = 0;
    for (int i = DUMP_FORWARD + 1; i < N_DUMP_PARTS; i++) handlers += here.seconds[i];
    here.seconds[DUMP_FORWARD] = secs - handlers;
    /* What no boundary closes (the embedding, the final norm, lm_head) is the rest's, as in a
     * prefill's stages. */
    double staged = 0;
    for (int i = 0; i < N_STAGES; i++) staged += here.forward.seconds[i];
    here.forward.seconds[STAGE_REST] += here.seconds[DUMP_FORWARD] - staged;
    for (int i = 0; i < N_DUMP_PARTS; i++) split->seconds[i] += here.seconds[i];
    for (int i = 0; i < N_STAGES; i++) {
        split->forward.seconds[i] += here.forward.seconds[i];
        split->forward.flops[i] = here.forward.flops[i];
    }
    ds_dump_io *io = &split->io;
    if (here.io.writer_threads > io->writer_threads) io->writer_threads = here.io.writer_threads;
    io->buffers = here.io.buffers, io->buffer_bytes = here.io.buffer_bytes;
#define ADD_ROUND(field) io->field += here.io.field;
    SUMMED_IO_FIELDS(ADD_ROUND)
#undef ADD_ROUND
    struct stat st;
    *mb = !rc && !stat(path, &st) ? (double)st.st_blocks * 512 / 1e6 : 0; /* the chunks of zeros are holes */
    free(path);
    ds_tmpdir_remove(dir);
    ds_probes_free(p);
    return rc ? -1 : secs;
}

void bench_dump_split_mean(bench_dump_split *split, int rounds) {
    for (int i = 0; i < N_DUMP_PARTS; i++) split->seconds[i] /= rounds;
    for (int i = 0; i < N_STAGES; i++) split->forward.seconds[i] /= rounds;
    ds_dump_io *io = &split->io;
#define MEAN_OF_ROUNDS(field) io->field /= rounds;
    SUMMED_IO_FIELDS(MEAN_OF_ROUNDS)
#undef MEAN_OF_ROUNDS
}
