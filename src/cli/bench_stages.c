/* Where a prefill's time goes: probes on the points between the stages of each layer (after
 * the q/k/v projections, after attention, after o_proj, after gate/up and SiLU, after down)
 * take the time, and each interval is added to the stage it closes. The probes receive views
 * of data the forward pass holds anyway and register no attention map, so the forward pass
 * runs as in a plain prefill. */
#include "cli/bench_stages.h"
#include "cli/cli.h"

const char *const bench_stage_names[N_STAGES] = {"qkv", "attention", "o_proj", "gate_up", "down", "rest"};

typedef struct {
    bench_stages *out;
    double last;
} clock_state;

/* The stage that each probe point closes. */
static const struct {
    const char *pattern;
    ds_hook_point point;
    int stage;
} marks[] = {{"blocks.*.attn.hook_q", DS_HOOK_Q, STAGE_QKV},
             {"blocks.*.attn.hook_z", DS_HOOK_Z, STAGE_ATTENTION},
             {"blocks.*.hook_attn_out", DS_HOOK_ATTN_OUT, STAGE_O_PROJ},
             {"blocks.*.mlp.hook_post", DS_HOOK_MLP_POST, STAGE_GATE_UP},
             {"blocks.*.hook_mlp_out", DS_HOOK_MLP_OUT, STAGE_DOWN},
             {"blocks.*.hook_resid_post", DS_HOOK_RESID_POST, STAGE_REST}};

int bench_stage_closed_by(ds_hook_point point) {
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (point == marks[i].point) return marks[i].stage;
    return -1;
}

static int on_mark(const ds_probe_event *ev, void *user) {
    clock_state *c = user;
    double t = cli_now();
    int stage = bench_stage_closed_by(ev->point);
    if (stage >= 0) c->out->seconds[stage] += t - c->last;
    c->last = t;
    return 0;
}

void bench_stages_init(bench_stages *out, const ds_model *m, int T) {
    const ds_config *c = ds_model_config(m);
    const double D = c->hidden_size, FF = c->intermediate_size, L = c->num_layers;
    const double q = (double)c->num_heads * c->head_dim, kv = (double)c->num_kv_heads * c->head_dim;
    *out = (bench_stages){.flops = {L * 2 * T * D * (q + 2 * kv), L * 4 * ((double)T * (T + 1) / 2) * q,
                                    L * 2 * T * q * D, L * 4 * T * D * FF, L * 2 * T * FF * D,
                                    2 * D * c->vocab_size}};
}

int bench_stages_measure(const ds_model *m, ds_session *s, const int *ids, int T, float *logits, bench_stages *out) {
    bench_stages_init(out, m, T);
    clock_state st = {out, 0};
    ds_probes *p = ds_probes_new();
    int rc = !p;
    for (size_t i = 0; !rc && i < sizeof marks / sizeof *marks; i++) rc = ds_probes_add(p, marks[i].pattern, on_mark, &st);
    ds_session_reset(s);
    double t0 = st.last = cli_now();
    rc = rc || ds_forward(s, ids, T, logits, 1, p);
    double total = cli_now() - t0;
    ds_probes_free(p);
    /* What no mark closes: the embedding, each layer's first norm (before hook_q's interval
     * starts at the previous layer's end, so it is in QKV), the final norm and lm_head. */
    double marked = 0;
    for (int i = 0; i < N_STAGES; i++) marked += out->seconds[i];
    out->seconds[STAGE_REST] += total - marked;
    return rc ? -1 : 0;
}
