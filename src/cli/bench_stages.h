/* Where a prefill's time goes, stage by stage, measured through probes (bench_stages.c). */
#ifndef DIFFSCOPE_BENCH_STAGES_H
#define DIFFSCOPE_BENCH_STAGES_H
#include "diffscope/model.h"

enum { STAGE_QKV, STAGE_ATTENTION, STAGE_O_PROJ, STAGE_GATE_UP, STAGE_DOWN, STAGE_REST, N_STAGES };
extern const char *const bench_stage_names[N_STAGES];

typedef struct {
    double seconds[N_STAGES]; /* summed over the layers; REST: norms, residual adds, lm_head */
    double flops[N_STAGES];   /* the matrix products' FLOPs of each stage (REST: lm_head's) */
} bench_stages;

/* OUT with no time yet and the FLOPs of each stage of a prefill of T tokens of M. */
void bench_stages_init(bench_stages *out, const ds_model *m, int T);

/* The stage that the probe point POINT closes (the stage's time runs from the previous such
 * point to this one), or -1 when it closes none. */
int bench_stage_closed_by(ds_hook_point point);

/* One prefill of IDS[0..T) from an empty cache, timed between the probe points that separate
 * the stages. Returns 0, or -1 with the library's message set. */
int bench_stages_measure(const ds_model *m, ds_session *s, const int *ids, int T, float *logits, bench_stages *out);
#endif
