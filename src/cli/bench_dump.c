/* A timed dump, split by where its time goes: a probe registered before the dump's handlers
 * and one after them, on each point the dump listens to, time the handlers at that point;
 * what is left of the forward pass is the forward pass itself. The timing probes ask for no
 * point that the default dump does not already ask for, except hook_pattern on a DiffLlama
 * model, which costs one call per row block. */
#include "cli/bench_dump.h"
#include "base/path.h"
#include "cli/cli.h"
#include "diffscope/dump.h"
#include "io/outfile.h"
#include <stdlib.h>
#include <sys/stat.h>

const char *const bench_dump_part_names[N_DUMP_PARTS] = {"forward", "maps", "score_stats", "mlp_stats",
                                                        "layer_end", "groupnorm", "other", "open", "finish"};

/* The part that the handlers at each point belong to. */
static const struct {
    ds_hook_point point;
    int part;
} timed_points[] = {{DS_HOOK_SCORES, DUMP_SCORE_STATS}, {DS_HOOK_PATTERN, DUMP_MAPS},
                    {DS_HOOK_PATTERN1, DUMP_MAPS},      {DS_HOOK_PATTERN2, DUMP_MAPS},
                    {DS_HOOK_DIFF, DUMP_MAPS},          {DS_HOOK_LAMBDA, DUMP_OTHER},
                    {DS_HOOK_GROUPNORM_IN, DUMP_GROUPNORM}, {DS_HOOK_MLP_POST, DUMP_MLP_STATS},
                    {DS_HOOK_RESID_POST, DUMP_LAYER_END}};
enum { N_TIMED = sizeof timed_points / sizeof *timed_points };

typedef struct {
    bench_dump_split *split;
    double since;
} handler_clock;

static int before_handlers(const ds_probe_event *ev, void *user) {
    ((handler_clock *)user)->since = cli_now();
    return 0;
}

static int after_handlers(const ds_probe_event *ev, void *user) {
    handler_clock *c = user;
    for (int i = 0; i < N_TIMED; i++)
        if (timed_points[i].point == ev->point) c->split->seconds[timed_points[i].part] += cli_now() - c->since;
    return 0;
}

static int add_timing_probes(ds_probes *p, ds_hook_fn fn, handler_clock *c) {
    for (int i = 0; i < N_TIMED; i++)
        if (ds_probes_add_point_causal(p, timed_points[i].point, -1, fn, c)) return -1; /* they read no data */
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
    ds_dump_opts d = {.what = what, .topk = 100, .force = 1};
    bench_dump_split here = {{0}};
    handler_clock clock = {&here, 0};
    ds_probes *p = ds_probes_new();
    ds_session_reset(s);
    int rc = !p || add_timing_probes(p, before_handlers, &clock);
    double t0 = cli_now();
    ds_dump *dd = rc ? NULL : ds_dump_begin(path, &d, m, ids, T, p);
    here.seconds[DUMP_OPEN] = cli_now() - t0;
    rc = !dd || add_timing_probes(p, after_handlers, &clock) || ds_forward(s, ids, T, logits, 1, p);
    double t_close = cli_now();
    if (dd) rc = rc ? (ds_dump_abort(dd), -1) : ds_dump_finish(dd, NULL);
    double secs = cli_now() - t0;
    here.seconds[DUMP_FINISH] = cli_now() - t_close;
    double handlers = 0;
    for (int i = DUMP_MAPS; i < N_DUMP_PARTS; i++) handlers += here.seconds[i];
    here.seconds[DUMP_FORWARD] = secs - handlers;
    for (int i = 0; i < N_DUMP_PARTS; i++) split->seconds[i] += here.seconds[i];
    struct stat st;
    *mb = !rc && !stat(path, &st) ? st.st_size / 1e6 : 0;
    free(path);
    ds_tmpdir_remove(dir);
    ds_probes_free(p);
    return rc ? -1 : secs;
}
