/* The runs of `diffscope patch`: one clean run that captures the activations the tables patch,
 * the corrupted run, and one corrupted run per table cell with a probe hook that writes the
 * clean activation over the corrupted one (docs/patch.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli/patch.h"
#include "diffscope/intervene.h"

const patch_kind_desc patch_kinds[PATCH_KINDS] = {
    [PATCH_RESID_PRE] = {"resid_pre", "position", 0,
                         "the residual stream entering layer l (hook_resid_pre) at one position"},
    [PATCH_RESID_PRE_ALL] = {"resid_pre_all", NULL, 0,
                             "the residual stream entering layer l at every position at once (reproduces the "
                             "clean run)"},
    [PATCH_HEAD_OUT] = {"head_out", "head", 0,
                        "one head's output at every position (hook_z, the input of o_proj; DiffLlama: after "
                        "GroupNorm)"},
    [PATCH_SOFTMAX1] = {"softmax1", "head", 1,
                        "the first softmax map A1 of one differential head (A2, lambda and V stay corrupted)"},
    [PATCH_SOFTMAX2] = {"softmax2", "head", 1,
                        "the second softmax map A2 of one differential head (A1, lambda and V stay corrupted)"},
    [PATCH_LAMBDA] = {"lambda", NULL, 1, "lambda_full of layer l"},
};

/* The clean activations a table reads, each [L][per_layer] floats in the probe's full shape. */
typedef enum { SRC_RESID, SRC_Z, SRC_MAP1, SRC_MAP2, SRC_LAMBDA, SRC_COUNT } source;

static const struct {
    ds_hook_point point;
    source src;
    int sel_dim; /* the axis a table's column picks (-1: none, the whole tensor) */
} patch_how[PATCH_KINDS] = {
    [PATCH_RESID_PRE] = {DS_HOOK_RESID_PRE, SRC_RESID, 0},     /* [T, D]: position */
    [PATCH_RESID_PRE_ALL] = {DS_HOOK_RESID_PRE, SRC_RESID, -1},
    [PATCH_HEAD_OUT] = {DS_HOOK_Z, SRC_Z, 1},                  /* [T, heads, width]: head */
    [PATCH_SOFTMAX1] = {DS_HOOK_PATTERN1, SRC_MAP1, 0},        /* [H/2, T, T]: head */
    [PATCH_SOFTMAX2] = {DS_HOOK_PATTERN2, SRC_MAP2, 0},
    [PATCH_LAMBDA] = {DS_HOOK_LAMBDA, SRC_LAMBDA, 0},          /* [4]: lambda_full, index 3 */
};

typedef struct {
    float *data;      /* [L][per_layer] */
    size_t per_layer;
} capture;

/* Copies between the block EV and DENSE, the probe's full tensor in row-major order: into
 * the event's data when TO_EVENT, else into DENSE. SEL_DIM >= 0 restricts axis SEL_DIM to the
 * index SEL of the full tensor. Attention maps come in blocks of rows (ev->offset). */
static void copy_block(const ds_probe_event *ev, float *dense, int to_event, int sel_dim, int64_t sel) {
    int64_t shape[3] = {1, 1, 1}, st[3] = {0, 0, 0}, off[3] = {0, 0, 0}, full[3] = {1, 1, 1};
    const int nd = ev->ndim, k0 = 3 - nd;
    for (int i = 0; i < nd; i++)
        shape[k0 + i] = ev->shape[i], st[k0 + i] = ev->strides[i], off[k0 + i] = ev->offset[i], full[k0 + i] = ev->full[i];
    int64_t lo[3] = {0, 0, 0}, hi[3] = {shape[0], shape[1], shape[2]};
    if (sel_dim >= 0) {
        const int k = k0 + sel_dim;
        lo[k] = sel - off[k];
        hi[k] = lo[k] + 1;
        if (lo[k] < 0 || lo[k] >= shape[k]) return; /* this block of rows does not hold it */
    }
    for (int64_t a = lo[0]; a < hi[0]; a++)
        for (int64_t b = lo[1]; b < hi[1]; b++)
            for (int64_t c = lo[2]; c < hi[2]; c++) {
                float *e = ev->data + a * st[0] + b * st[1] + c * st[2];
                float *d = dense + ((a + off[0]) * full[1] + (b + off[1])) * full[2] + (c + off[2]);
                if (to_event) *e = *d;
                else *d = *e;
            }
}

static int capture_hook(const ds_probe_event *ev, void *user) {
    capture *cap = user;
    copy_block(ev, cap->data + (size_t)ev->layer * cap->per_layer, 0, -1, 0);
    return 0;
}

typedef struct {
    float *src; /* the clean tensor of the patched layer */
    int sel_dim;
    int64_t sel;
} patch_write;

static int patch_hook(const ds_probe_event *ev, void *user) {
    const patch_write *w = user;
    copy_block(ev, w->src, 1, w->sel_dim, w->sel);
    return 0;
}

/* Floats per layer of each source, for the model and prompt length of J. */
static size_t source_size(const patch_job *j, source s) {
    const ds_config *c = ds_model_config(j->run->m);
    const size_t T = (size_t)j->run->n;
    switch (s) {
    case SRC_RESID: return T * c->hidden_size;
    case SRC_Z: return T * c->num_heads * c->head_dim;
    case SRC_MAP1:
    case SRC_MAP2: return (size_t)c->map_heads * T * T;
    case SRC_LAMBDA: return 4;
    default: return 0;
    }
}

/* The metric of the last position's logits LG[V]. */
static double metric_of(const patch_job *j, const float *lg, int V) {
    if (j->metric == PATCH_METRIC_LOGIT_DIFF) return (double)lg[j->answer] - (double)lg[j->wrong];
    double mx = lg[0], sum = 0;
    for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
    for (int v = 0; v < V; v++) sum += exp((double)lg[v] - mx);
    return (double)lg[j->answer] - mx - log(sum);
}

double patch_normalized(const patch_job *j, double raw) {
    double d = j->clean - j->corrupted;
    return d != 0 ? (raw - j->corrupted) / d : NAN;
}

/* New probes holding the interventions of every run, and of the corrupted run when CORRUPTED. */
static ds_probes *run_probes(const patch_job *j, int corrupted) {
    ds_probes *p = ds_probes_new();
    if (!p) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int rc = cli_add_interventions(j->in, j->run->m, p);
    for (int i = 0; !rc && corrupted && i < j->corrupt->n; i++)
        if ((rc = ds_intervene_lambda(p, j->run->m, j->corrupt->layer[i], j->corrupt->value[i])))
            ds_err_prefix("--corrupt-lambda");
    if (!rc) return p;
    ds_probes_free(p);
    return NULL;
}

/* Runs IDS with the probes P (freed here) and stores the metric in *OUT. */
static int run_metric(const patch_job *j, const int *ids, ds_probes *p, float *logits, double *out) {
    cli_run *r = j->run;
    ds_session_reset(r->s);
    int rc = p ? ds_forward(r->s, ids, r->n, logits, 1, p) : -1;
    ds_probes_free(p);
    if (!rc) *out = metric_of(j, logits, ds_model_config(r->m)->vocab_size);
    return rc;
}

int patch_check_interventions(const patch_job *j) {
    ds_probes *p = run_probes(j, 1);
    ds_probes_free(p);
    return p ? 0 : -1;
}

long patch_count_runs(const patch_job *j) {
    long n = 2;
    for (int k = 0; k < PATCH_KINDS; k++)
        if (j->tables[k].on) n += (long)j->tables[k].rows * j->tables[k].cols;
    return n;
}

/* The clean run, capturing every source a table that is on reads into CAPS. */
static int run_clean(patch_job *j, capture caps[SRC_COUNT], float *logits) {
    ds_probes *p = run_probes(j, 0);
    for (int s = 0; p && s < SRC_COUNT; s++) {
        if (!caps[s].data) continue;
        ds_hook_point point = DS_HOOK_COUNT;
        for (int k = 0; k < PATCH_KINDS; k++)
            if (patch_how[k].src == (source)s) point = patch_how[k].point;
        if (ds_probes_add_point(p, point, -1, capture_hook, &caps[s])) {
            ds_probes_free(p);
            p = NULL;
        }
    }
    return run_metric(j, j->run->ids, p, logits, &j->clean);
}

/* Cell (L, COL) of table K: the corrupted run with the clean activation written over. */
static int run_cell(patch_job *j, patch_kind k, int l, int col, const capture *cap, float *logits) {
    patch_write w = {cap->data + (size_t)l * cap->per_layer, patch_how[k].sel_dim, col};
    if (k == PATCH_LAMBDA) w.sel = 3;
    ds_probes *p = run_probes(j, 1);
    if (p && ds_probes_add_point(p, patch_how[k].point, l, patch_hook, &w)) {
        ds_probes_free(p);
        p = NULL;
    }
    patch_table *t = &j->tables[k];
    return run_metric(j, j->corrupted_ids, p, logits, &t->raw[(size_t)l * t->cols + col]);
}

/* The tables' memory and the capture buffers of the sources they read. */
static int allocate(patch_job *j, capture caps[SRC_COUNT]) {
    const int L = ds_model_config(j->run->m)->num_layers;
    for (int k = 0; k < PATCH_KINDS; k++) {
        patch_table *t = &j->tables[k];
        if (!t->on) continue;
        if (!(t->raw = calloc((size_t)t->rows * t->cols, sizeof *t->raw))) goto oom;
        source s = patch_how[k].src;
        if (caps[s].data) continue;
        caps[s].per_layer = source_size(j, s);
        if (caps[s].per_layer > SIZE_MAX / sizeof(float) / (size_t)L ||
            !(caps[s].data = malloc((size_t)L * caps[s].per_layer * sizeof(float))))
            goto oom;
    }
    return 0;
oom:
    return ds_failc(DS_ERR_NOMEM, "out of memory for the clean run's activations");
}

int patch_execute(patch_job *j) {
    const ds_config *c = ds_model_config(j->run->m);
    capture caps[SRC_COUNT] = {{0}};
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    int rc = !logits ? ds_failc(DS_ERR_NOMEM, "out of memory") : allocate(j, caps);
    cli_progress pg;
    cli_progress_start(&pg, "patch", patch_count_runs(j));
    long done = 0;
    if (!rc) rc = run_clean(j, caps, logits);
    if (!rc) rc = run_metric(j, j->corrupted_ids, run_probes(j, 1), logits, &j->corrupted);
    cli_progress_step(&pg, done += 2);
    for (int k = 0; !rc && k < PATCH_KINDS; k++) {
        const patch_table *t = &j->tables[k];
        for (int l = 0; t->on && !rc && l < t->rows; l++)
            for (int col = 0; !rc && col < t->cols; col++) {
                rc = run_cell(j, (patch_kind)k, l, col, &caps[patch_how[k].src], logits);
                cli_progress_step(&pg, ++done);
            }
    }
    cli_progress_end(&pg);
    for (int s = 0; s < SRC_COUNT; s++) free(caps[s].data);
    free(logits);
    return rc;
}

void patch_job_free(patch_job *j) {
    for (int k = 0; k < PATCH_KINDS; k++) free(j->tables[k].raw), j->tables[k].raw = NULL;
    free(j->corrupted_ids);
    cli_free_labels(j->corrupted_labels, j->run ? j->run->n : 0);
    free(j->answer_text), free(j->wrong_text);
    j->corrupted_ids = NULL, j->corrupted_labels = NULL, j->answer_text = j->wrong_text = NULL;
}
