/* diffscope sweep --model A [--vs B] (--prompts FILE.jsonl | --task kv|needle --lengths ...) -o OUT.h5:
 * compare's statistics for every prompt of a data set, per layer and head, with aggregates; on
 * one process, on N ranks under mpirun, or as --shard I/N jobs and --merge. See cli/sweep.h for
 * the flow and docs/sweep.md for the files. */
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_opt.h"
#include "cli/commands.h"
#include "cli/compare.h"
#include "cli/needle.h"
#include "cli/sweep.h"
#include "diffscope/dump.h"
#include "diffscope/error.h"

static const char *usage =
    "usage: diffscope sweep --model A [--vs B] --prompts FILE.jsonl -o OUT.h5 [options]\n"
    "       diffscope sweep --model A [--vs B] --task kv --lengths 64,128 [--depths 0:100:25]\n"
    "                       [--trials K] -o OUT.h5 [options]\n"
    "       mpirun -np N diffscope sweep ...        (N ranks, one model load each)\n"
    "       diffscope sweep ... --shard I/N  then  diffscope sweep ... --merge\n\n"
    "Runs every prompt through A (and B) as `diffscope compare` does and stores, per prompt,\n"
    "layer and head, everything compare reports (answer, noise and sink mass, entropy and\n"
    "sparsity of each map at the query row; lambda_full; GroupNorm rms and scale; the Table-5\n"
    "outliers; the top-1 token), as HDF5 datasets [prompt, layer, head] in OUT.h5, with their\n"
    "mean, std, 95 % interval and median over prompts under /aggregates. Rerunning the same\n"
    "command resumes: prompts already in OUT.h5.shards/ are not run again. Files: docs/sweep.md.\n\n"
    "JSONL lines: \"text\" or \"ids\" (a list of token ids), optional \"span\" (text found in the\n"
    "prompt, or [i, j]), \"query\" (token index, default the last; negative: from the end), \"id\"\n"
    "and any other fields, kept as metadata. Every line is checked before any work.\n\n";

static int parse_shard(void *dst, const char *s) {
    sweep_opts *o = dst;
    if (cli_parse_pair(s, '/', "", 0, 1000000, &o->shard_i, &o->shard_n) || o->shard_n < 1 || o->shard_i >= o->shard_n)
        return ds_fail("'%s' is not I/N with 0 <= I < N", s);
    return 0;
}

static int parse_depths(void *dst, const char *s) {
    sweep_opts *o = dst;
    free(o->depths);
    o->depths = NULL;
    return sweep_parse_depths(s, &o->depths, &o->ndepths);
}

static int own_prompts(void *unused, const char *arg) {
    return ds_fail("sweep reads its prompts from --prompts or --task: --prompt and --ids do not apply");
}

/* The combinations that make sense; -1 with a message. */
static int check_opts(sweep_opts *o, int nranks) {
    if (!o->model[0]) return ds_fail("sweep needs a model A (--model A or the first argument; see diffscope sweep --help)");
    if (!o->out) return ds_fail("sweep needs -o OUT.h5");
    if (!o->prompts == !o->task) return ds_fail("give the prompts as --prompts FILE.jsonl or as a --task grid (one of them)");
    if (o->shard_n && o->merge) return ds_fail("--shard runs one part, --merge joins them: give one of them");
    if (o->shard_n && nranks > 1) return ds_fail("--shard splits the work without MPI: do not start it with mpirun");
    int text_task = o->haystack || o->needle || o->question || o->answer;
    if (!o->task && (o->nlengths || o->depths || o->trials || o->pairs || text_task))
        return ds_fail("--lengths, --depths, --trials, --pairs and the needle texts belong to a --task grid");
    if (!o->task) return 0;
    if (!o->nlengths) return ds_fail("--task %s needs --lengths (context tokens, e.g. 64,128)", o->task);
    int kv = !strcmp(o->task, "kv");
    if (kv && text_task) return ds_fail("--task kv generates its prompts: --haystack, --needle, --question and --answer do not apply");
    if (!kv && (!o->haystack || !o->needle || !o->question || !o->answer))
        return ds_fail("--task needle needs --haystack, --needle, --question and --answer");
    if (!kv && o->trials > 1) return ds_fail("--trials applies to --task kv (a text probe is deterministic)");
    if (!o->trials) o->trials = kv ? 4 : 1;
    if (!o->pairs) o->pairs = 6;
    if (!o->depths) return sweep_parse_depths("0:100:25", &o->depths, &o->ndepths);
    for (int i = 0; i < o->ndepths; i++)
        if (o->depths[i] > 100) return ds_fail("--depths: %d is not a percentage (0..100)", o->depths[i]);
    return 0;
}

/* ---- the setup every rank shares ---- */

static uint64_t hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* What the results depend on: the models' shapes, the prompts, the compute mode, the maps kept,
 * A's interventions. */
static uint64_t fingerprint(const sweep_setup *su, const sweep_prompts *ps, const sweep_opts *o) {
    const cli_input *in = &o->in;
    uint64_t h = 0xcbf29ce484222325ull;
    for (int m = 0; m < su->nmodels; m++) {
        const sweep_layout *l = &su->lay[m];
        h = hash(h, l->arch, strlen(l->arch)), h = hash(h, &l->L, sizeof l->L), h = hash(h, &l->heads, sizeof l->heads);
        h = hash(h, &l->ndoubles, sizeof l->ndoubles);
    }
    for (int i = 0; i < ps->n; i++) {
        const sweep_prompt *p = &ps->p[i];
        int v[5] = {p->n, p->query, p->span_begin, p->span_end, p->answer_id};
        h = hash(h, v, sizeof v), h = hash(h, p->ids, (size_t)p->n * sizeof *p->ids);
    }
    const char *compute = in->compute ? in->compute : "f32";
    h = hash(h, compute, strlen(compute));
    h = hash(h, &o->maps, sizeof o->maps);
    h = hash(h, o->map_layers, (size_t)o->nmap_layers * sizeof(int));
    h = hash(h, o->map_heads, (size_t)o->nmap_heads * sizeof(int));
    h = hash(h, in->lambda_layer, (size_t)in->n_lambda * sizeof(int));
    h = hash(h, in->lambda_value, (size_t)in->n_lambda * sizeof(float));
    h = hash(h, in->ablate_layer, (size_t)in->n_ablate * sizeof(int));
    return hash(h, in->ablate_head, (size_t)in->n_ablate * sizeof(int));
}

/* --dump-layers and --dump-heads are in model C (at PATH). */
static int check_map_selection(const sweep_opts *o, const ds_config *c, const char *path) {
    if (ds_dump_check_layers(c, o->map_layers, o->nmap_layers))
        return ds_err_prefix("--dump-layers"), ds_err_prefix(path), -1;
    if (ds_dump_check_heads(c, o->map_heads, o->nmap_heads))
        return ds_err_prefix("--dump-heads"), ds_err_prefix(path), -1;
    return 0;
}

/* Configurations, layouts, prompts, fingerprint: no model weights yet. */
static int setup(const sweep_opts *o, sweep_setup *su, sweep_prompts *ps) {
    ds_config c[2] = {{0}};
    int rc = 0;
    su->nmodels = o->model[1] ? 2 : 1;
    for (int m = 0; !rc && m < su->nmodels; m++) {
        rc = cli_load_config(o->model[m], &c[m]) || check_map_selection(o, &c[m], o->model[m]);
        if (!rc) sweep_layout_init(&su->lay[m], m ? "B" : "A", o->model[m], &c[m]);
    }
    if (!rc && su->nmodels == 2 && c[0].vocab_size != c[1].vocab_size)
        rc = ds_fail("%s and %s have different vocabularies (%d and %d tokens): a sweep runs both on the same tokens",
                     o->model[0], o->model[1], c[0].vocab_size, c[1].vocab_size);
    rc = rc || sweep_prompts_load(ps, o, &c[0]);
    for (int m = 0; m < su->nmodels; m++) ds_config_free(&c[m]);
    if (rc) return -1;
    su->rec_size = sizeof(sweep_rec_head) + (su->lay[0].ndoubles + su->lay[1].ndoubles) * sizeof(double) + 8;
    su->fingerprint = fingerprint(su, ps, o);
    return 0;
}

/* OUT.h5.shards exists and is ours to write; with --force, emptied of earlier results first. */
static int prepare_dir(const sweep_opts *o, const char *dir, int rank) {
    struct stat st;
    if (!o->force && !o->merge && !stat(o->out, &st) && stat(dir, &st))
        return ds_fail("%s: already exists and is not a sweep's master (use --force to overwrite)", o->out);
    if (o->force && rank == 0 && !o->shard_n && !o->merge && sweep_dir_clear(dir)) return -1;
    if (mkdir(dir, 0755) && errno != EEXIST) return ds_fail("%s: cannot create the sweep's folder: %s", dir, strerror(errno));
    if (access(dir, W_OK)) return ds_fail("%s: not writable: %s", dir, strerror(errno));
    if (!o->maps || o->merge) return 0;
    size_t n = strlen(dir) + sizeof "/" SWEEP_MAPS_DIR;
    char *maps = malloc(n);
    if (!maps) return ds_failc(DS_ERR_NOMEM, "out of memory");
    snprintf(maps, n, "%s/" SWEEP_MAPS_DIR, dir);
    int rc = mkdir(maps, 0755) && errno != EEXIST ? ds_fail("%s: cannot create: %s", maps, strerror(errno)) : 0;
    free(maps);
    return rc;
}

/* ---- running this rank's prompts ---- */

typedef struct {
    ds_model *m[2];
    ds_session *s[2];
    ds_provenance *maps_provenance[2]; /* of each model's map files (--dump-layers) */
} sweep_models;

static int load_models(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, int a, int b,
                       sweep_models *sm) {
    int maxlen = 1;
    for (int i = a; i < b; i++) maxlen = ps->p[i].n > maxlen ? ps->p[i].n : maxlen;
    for (int m = 0; m < su->nmodels; m++)
        if (!(sm->m[m] = ds_model_load(o->model[m])) || !(sm->s[m] = ds_session_new(sm->m[m], maxlen, o->in.allow_long)) ||
            (o->maps && !(sm->maps_provenance[m] = cli_provenance(&o->model[m], 1, m ? NULL : &o->in))))
            return -1;
    return 0;
}

static void free_models(sweep_models *sm) {
    for (int m = 0; m < 2; m++)
        ds_session_free(sm->s[m]), ds_model_free(sm->m[m]), ds_provenance_free(sm->maps_provenance[m]);
}

/* Model M's maps of prompt P (index I), kept as a dump file: its hooks are added to PROBES
 * before the statistics' (as `diffscope dump` adds them after the interventions). */
static ds_dump *begin_maps(const sweep_opts *o, const char *dir, int m, const sweep_prompt *p, int i,
                           const sweep_models *sm, ds_probes *probes) {
    ds_dump_opts d = {.what = DS_DUMP_SOFTMAX | DS_DUMP_DIFF | DS_DUMP_IF_PRESENT, .layers = o->map_layers,
                      .nlayers = o->nmap_layers, .heads = o->map_heads, .nheads = o->nmap_heads,
                      .provenance = sm->maps_provenance[m]};
    char *path = sweep_maps_path(dir, m ? "B" : "A", i);
    ds_dump *dump = NULL;
    if (!path) return NULL;
    /* A file without its journal record is from a run killed in between: made again. */
    if (unlink(path) && errno != ENOENT) ds_fail("%s: cannot replace: %s", path, strerror(errno));
    else dump = ds_dump_begin(path, &d, sm->m[m], p->ids, p->n, probes);
    free(path);
    return dump;
}

/* Prompt I through every model into REC. */
static int run_prompt(const sweep_opts *o, const sweep_setup *su, const char *dir, const sweep_prompt *p, int i,
                      sweep_models *sm, void *rec) {
    sweep_rec_head h = {.index = i, .T = p->n, .query = p->query, .span_begin = p->span_begin, .span_end = p->span_end,
                        .correct = {-1, -1}};
    double *vals = sweep_rec_values(rec);
    ds_attn_stats_opts so = {.query = p->query, .span_begin = p->span_begin, .span_end = p->span_end,
                             .outliers = 1, .groupnorm = 1};
    for (int m = 0; m < su->nmodels; m++) {
        int top1 = -1;
        ds_probes *probes = ds_probes_new();
        ds_attn_stats *st = NULL;
        ds_dump *maps = NULL;
        if (!probes) ds_failc(DS_ERR_NOMEM, "out of memory");
        else if ((m > 0 || !cli_add_interventions(&o->in, sm->m[m], probes)) && /* interventions are A's */
                 (!o->maps || (maps = begin_maps(o, dir, m, p, i, sm, probes))))
            st = cmp_run(sm->m[m], sm->s[m], probes, p->ids, p->n, &so, &top1);
        if (maps && !st) ds_dump_abort(maps);
        else if (maps && ds_dump_finish(maps, NULL)) ds_attn_stats_free(st), st = NULL;
        ds_probes_free(probes);
        if (!st) return ds_err_prefix(o->model[m]), -1;
        sweep_layout_extract(&su->lay[m], st, vals);
        vals += su->lay[m].ndoubles;
        ds_attn_stats_free(st);
        h.top1[m] = top1;
        if (p->answer_id >= 0) h.correct[m] = top1 == p->answer_id;
        else if (o->answer) h.correct[m] = needle_starts_answer(cli_tokenizer(o->model[0]), top1, o->answer);
    }
    memcpy(rec, &h, sizeof h);
    return 0;
}

/* Where a rank's time went, for the --shard report and --times: the clock at the end of each
 * step (T_WAIT: every rank has loaded; T_GATHER: every rank has run and this one holds its
 * range's records; T_END: every shard is written; T_MASTER: rank 0 or --merge has written the
 * master). --merge has no steps between T_SETUP and T_END: they take no time. */
enum { T_START, T_SETUP, T_LOAD, T_WAIT, T_RUN, T_GATHER, T_SHARD, T_END, T_MASTER, T_MARKS };
typedef struct {
    double at[T_MARKS];
    double run_cpu; /* CPU seconds of the run step (user and system) */
    int ran;
} sweep_times;

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/* --times: one JSON line on stderr per rank (docs/sweep.md, Benchmarks), written at once so
 * that the lines of ranks sharing a terminal do not mix. */
static void print_times(const sweep_times *t, int part, int parts, const int *first, int master) {
    static const char *const step[T_MARKS] = {NULL, "setup", "load", "wait", "run", "gather", "shard", "end_wait", "master"};
    char line[1024];
    int n = snprintf(line, sizeof line, "diffscope: times {\"rank\": %d, \"ranks\": %d, \"first\": %d, \"last\": %d, "
                     "\"prompts_run\": %d", part, parts, first[part], first[part + 1] - 1, t->ran);
    for (int k = T_SETUP; k <= (master ? T_MASTER : T_END); k++)
        n += snprintf(line + n, sizeof line - (size_t)n, ", \"%s_s\": %.4f", step[k], t->at[k] - t->at[k - 1]);
    snprintf(line + n, sizeof line - (size_t)n, ", \"run_cpu_s\": %.4f, \"run_start\": %.4f, \"run_end\": %.4f}\n",
             t->run_cpu, t->at[T_WAIT], t->at[T_RUN]);
    fputs(line, stderr);
}

/* Runs the prompts the queue gives this rank (PART of PARTS; ranges FIRST), journaling each. */
static int run_prompts(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, const char *dir, int part,
                       int parts, const int *first, int shared, sweep_models *sm, void **recs, sweep_times *t) {
    sweep_journal j = {.fd = -1};
    sweep_queue q;
    long todo = 0, done = 0;
    for (int i = first[part]; i < first[part + 1]; i++) todo += !recs[i];
    /* Opened even with nothing left to run: opening cuts a record torn by a kill. */
    int rc = sweep_journal_open(&j, dir, part, parts, su), i;
    cli_progress prog;
    char label[48];
    snprintf(label, sizeof label, parts > 1 ? "rank %d/%d" : "sweep", part, parts);
    if (part == 0) cli_progress_start(&prog, label, todo);
    sweep_queue_init(&q, dir, first, part, parts, shared);
    while (!rc && (i = sweep_queue_next(&q, recs)) != -1) {
        if (i < 0 || !(recs[i] = calloc(1, su->rec_size))) rc = i < 0 ? -1 : ds_failc(DS_ERR_NOMEM, "out of memory");
        rc = rc || run_prompt(o, su, dir, &ps->p[i], i, sm, recs[i]) || sweep_journal_append(&j, su, recs[i]);
        done++;
        if (part == 0) cli_progress_step(&prog, done < todo ? done : todo);
    }
    if (part == 0) cli_progress_end(&prog);
    sweep_journal_close(&j);
    t->ran = (int)done;
    return rc ? -1 : 0;
}

/* This rank's shard, from the journals' records of its range (every one present). */
static int write_shard(const char *dir, const sweep_setup *su, void *const *recs, int part, int parts, const int *first) {
    for (int i = first[part]; i < first[part + 1]; i++)
        if (!recs[i]) return ds_fail("%s: no journal holds prompt %d (did a rank fail?): run the sweep again", dir, i);
    char *path = sweep_shard_path(dir, part, parts);
    int rc = !path || sweep_shard_write(path, su, recs, first[part], first[part + 1]);
    free(path);
    return rc ? -1 : 0;
}

/* ---- the command ---- */

/* Everything after option parsing; RANK 0 of NRANKS writes the master (unless --shard). */
static int sweep(sweep_opts *o, int rank, int nranks) {
    sweep_setup su = {0};
    sweep_prompts ps = {0};
    sweep_models sm = {0};
    sweep_aggs ag = {0};
    void **recs = NULL;
    ds_provenance *pv = NULL;
    char *dir = sweep_dir(o->out);
    int part = o->shard_n ? o->shard_i : rank, parts = o->shard_n ? o->shard_n : nranks;
    sweep_times t = {.at[T_START] = cli_now()};
    int others = 0, rc = !dir || setup(o, &su, &ps) || prepare_dir(o, dir, rank);
    t.at[T_SETUP] = cli_now();
    if (!rc && o->merge) rc = sweep_find_shards(dir, &parts);
    int *first = rc ? NULL : malloc(((size_t)parts + 1) * sizeof *first);
    if (!rc && !first) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
    if (!rc) sweep_ranges(&ps, parts, first);
    if (!o->merge) {
        /* MPI ranks share their prompts through a queue (sweep_queue.c), so any rank may run any
         * prompt: its session is sized for the longest, and it looks at every journal's records. */
        int shared = nranks > 1, a = 0, b = ps.n;
        if (first && !shared) a = first[part], b = first[part + 1];
        rc = rc || (shared && rank == 0 && sweep_claims_reset(dir));
        /* Every rank loads before any runs, so that a missing model stops them all at once. */
        rc = rc || load_models(o, &su, &ps, a, b, &sm);
        t.at[T_LOAD] = cli_now();
        others = sweep_mpi_max(rc) && !rc; /* another rank failed and said why */
        t.at[T_WAIT] = cli_now();
        double cpu0 = cpu_now();
        if (!rc && !others && !(recs = calloc((size_t)ps.n, sizeof *recs))) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
        rc = rc || others || sweep_journal_load(dir, &su, a, b, recs) ||
             run_prompts(o, &su, &ps, dir, part, parts, first, shared, &sm, recs, &t);
        t.at[T_RUN] = cli_now(), t.run_cpu = cpu_now() - cpu0;
        if (shared) { /* the prompts of this range that other ranks ran are in their journals */
            others |= sweep_mpi_max(rc) && !rc;
            rc |= others;
            rc = rc || sweep_claims_gather(dir, &su, parts, first[part], first[part + 1], recs);
            if (!others) sweep_claims_release(dir, first[part], first[part + 1]);
        }
        t.at[T_GATHER] = cli_now();
        rc = rc || write_shard(dir, &su, recs, part, parts, first);
        t.at[T_SHARD] = cli_now();
        others |= sweep_mpi_max(rc) && !rc;
        rc |= others;
        t.at[T_END] = cli_now();
        if (!rc && shared && rank == 0) sweep_claims_remove(dir);
    } else {
        for (int k = T_LOAD; k <= T_END; k++) t.at[k] = t.at[T_SETUP];
    }
    int master = !o->shard_n && rank == 0;
    if (!rc && o->shard_n)
        fprintf(stderr, "diffscope: shard %d/%d done (prompts %d..%d; %.2f s: prompts checked in %.2f s, models loaded "
                        "in %.2f s, %d prompts run in %.2f s, shard written in %.2f s); when all %d are: the same "
                        "command with --merge instead of --shard\n", o->shard_i, o->shard_n, first[part],
                first[part + 1] - 1, t.at[T_END] - t.at[T_START], t.at[T_SETUP] - t.at[T_START],
                t.at[T_LOAD] - t.at[T_SETUP], t.ran, t.at[T_RUN] - t.at[T_WAIT], t.at[T_SHARD] - t.at[T_GATHER],
                o->shard_n);
    else if (!rc && master) {
        o->provenance = pv = cli_provenance(o->model, o->model[1] ? 2 : 1, &o->in);
        /* The other ranks are done: the aggregates may use the cores they ran on. */
        if (nranks > 1) ds_set_threads(omp_get_num_procs());
        rc = !pv || sweep_master_write(o, &su, &ps, parts, &ag);
        t.at[T_MASTER] = cli_now();
        if (!rc && o->json) rc = sweep_print_json(o, &su, &ps, &ag);
        else if (!rc) sweep_print_table(o, &su, &ps, &ag);
    }
    if (!rc && o->times) print_times(&t, part, parts, first, master);
    ds_provenance_free(pv);
    o->provenance = NULL;
    sweep_aggs_free(&ag);
    sweep_journal_free(recs, ps.n);
    free_models(&sm);
    sweep_prompts_free(&ps);
    free(first), free(dir);
    return others ? -2 : rc ? -1 : 0;
}

int cmd_sweep(int argc, char **argv) {
    sweep_opts o = {.seed = 1};
    cli_list lengths = {0}, map_layers = {0}, map_heads = {0};
    int rank = 0, nranks = 1, rc;
    const cli_opt opts[] = {
        {"prompt", 0, CLI_CALL, NULL, 0, 0, "TEXT", NULL, own_prompts},
        {"ids", 0, CLI_CALL, NULL, 0, 0, "LIST", NULL, own_prompts},
        {"model", 0, CLI_STRING, &o.model[0], 0, 0, "A", "the first model folder (or give it as the first argument)"},
        {"vs", 0, CLI_STRING, &o.model[1], 0, 0, "B", "a second model run on the same token ids"},
        {"prompts", 0, CLI_STRING, &o.prompts, 0, 0, "FILE.jsonl", "the prompts, one JSON object per line"},
        {"output", 'o', CLI_STRING, &o.out, 0, 0, "OUT.h5", "the master file; OUT.h5.shards/ holds journals and shards"},
        {"task", 0, CLI_CHOICE, &o.task, 0, 0, "kv|needle",
         "needle's prompts instead of --prompts (diffscope needle --help):\nthe demo models' kv task, or --haystack ... --answer"},
        {"lengths", 0, CLI_LIST, &lengths, 1, 100000000, "LIST", "grid: context tokens, e.g. 64,128"},
        {"depths", 0, CLI_CALL, &o, 0, 0, "A:B:STEP", "grid: needle depths in percent, or a list (default 0:100:25)",
         parse_depths},
        {"trials", 0, CLI_INT, &o.trials, 1, 1000000, "K", "grid, kv: random prompts per cell (default 4)"},
        {"pairs", 0, CLI_INT, &o.pairs, 1, 1000000, "P", "grid, kv: key-value pairs in the context (default 6)"},
        {"seed", 0, CLI_INT, &o.seed, 0, INT_MAX, "S", "grid, kv: random seed (default 1)"},
        {"haystack", 0, CLI_STRING, &o.haystack, 0, 0, "FILE", "grid, needle task: the text filling the context"},
        {"needle", 0, CLI_STRING, &o.needle, 0, 0, "TEXT", "grid, needle task: the key information"},
        {"question", 0, CLI_STRING, &o.question, 0, 0, "TEXT", "grid, needle task: appended after the context"},
        {"answer", 0, CLI_STRING, &o.answer, 0, 0, "TEXT", "grid, needle task: what the top-1 token should start"},
        {"no-special", 0, CLI_FLAG, &o.in.no_special, 0, 0, NULL, "do not add the tokenizer's special tokens (BOS)"},
        CLI_RUN_OPTS(&o.in),
        {"force", 0, CLI_FLAG, &o.force, 0, 0, NULL, "start over: remove the journals and shards of an earlier sweep"},
        {"shard", 0, CLI_CALL, &o, 0, 0, "I/N", "run only part I of N (0 <= I < N) and write its shard, no master",
         parse_shard},
        {"merge", 0, CLI_FLAG, &o.merge, 0, 0, NULL, "write the master from the N shards of --shard runs"},
        {"json", 0, CLI_FLAG, &o.json, 0, 0, NULL, "the aggregates as JSON on stdout instead of the table"},
        {"times", 0, CLI_FLAG, &o.times, 0, 0, NULL,
         "each rank prints where its time went (checks, load, run, shard),\none JSON line on stderr"},
        {"dump-layers", 0, CLI_LIST, &map_layers, 0, INT_MAX, "LIST",
         "also keep every prompt's attention maps of these layers\n(e.g. 0,3-5; default all when --dump-heads is given),\n"
         "as dump files under OUT.h5.shards/maps/"},
        {"dump-heads", 0, CLI_LIST, &map_heads, 0, INT_MAX, "LIST",
         "... of these heads (differential heads for DiffLlama;\ndefault all when --dump-layers is given)"},
        {0}};
    const cli_cmd cmd = {"sweep", usage, "--lambda-override and --ablate-head apply to A only.\n", opts};
    if (cli_parse(&cmd, argc, argv, &rc)) goto out;
    o.lengths = lengths.v, o.nlengths = lengths.n;
    o.map_layers = map_layers.v, o.nmap_layers = map_layers.n, o.map_heads = map_heads.v, o.nmap_heads = map_heads.n;
    o.maps = map_layers.n || map_heads.n;
    rc = DS_EXIT_INPUT;
    if (!o.model[0] && optind < argc) o.model[0] = argv[optind++];
    if (optind != argc) {
        cli_error("unexpected argument '%s' (see diffscope sweep --help)", argv[optind]);
        goto out;
    }
    if (sweep_mpi_init(&argc, &argv, &rank, &nranks) || check_opts(&o, nranks)) {
        rc = cli_exit_status(ds_errcode());
        if (rank == 0) cli_lib_error();
        goto out;
    }
    cli_input_apply(&o.in);
    int r = sweep(&o, rank, nranks);
    /* Only rank 0 reports a problem every rank has (bad input); a rank's own failure, each. */
    rc = r == -1 ? cli_exit_status(ds_errcode()) : r ? DS_EXIT_INPUT : DS_EXIT_OK;
    if (r == -1 && (rank == 0 || !strstr(ds_errmsg(), ".jsonl:"))) cli_lib_error();
out:
    sweep_mpi_finalize();
    cli_opts_free(opts);
    free(o.depths);
    return rc;
}
