/* Causal self-attention, standard (Llama, Qwen) and differential (DiffLlama), over the KV cache.
 *
 * Follows docs/numerics.md. For a differential architecture, sub-head h in
 * 0..H-1 gives the map A_h = softmax(q_h k_{h/n_rep}ᵀ/√hd + mask); differential head i pairs
 * A_i with its partner A_{i+H/2} (ds_arch_desc.pairing: half, the only pairing implemented)
 * and reads the 2·hd-channel value V_i = [v_{i/n_rep}, v_{(i+H/2)/n_rep}]:
 *
 *     O_i = (A_i − λ A_{i+H/2}) V_i,   then   O_i ← (1 − λ_init) · O_i / √(mean(O_i²) + eps)
 *
 * (transformers computes A_i V_i − λ A_{i+H/2} V_i; the difference is float rounding.)
 *
 * Query rows are processed in blocks of R rows (ds_probes_block_rows) so that a long prompt
 * never holds a full T × T map for every head: the scratch holds H × R × Tk floats. When a
 * probe wants a block's maps whole, the block goes through all heads stage by stage (scores,
 * softmax, difference, values), and the maps are handed to the probes (in head-major
 * [heads, R, Tk] views) between stages. Otherwise each (head, block) is one task from scores to
 * values in its thread's share of the scratch, with no barrier between stages, and the hooks
 * that take one head at a time get its maps inside the task, while they are in that core's
 * cache. Both ways make the same calls on the same blocks, so a dump's forward pass gives the
 * same bits as a plain one. */
#include "model/internal.h"
#include "diffscope/error.h"
#include "base/vec_exp.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ensure_scratch(ds_session *s, size_t need) {
    if (need <= s->att_cap) return 0;
    free(s->att);
    free(s->diff);
    s->att = malloc(need * sizeof(float));
    s->diff = malloc(need * sizeof(float)); /* H/2 maps would do; one size keeps it simple */
    s->att_cap = (s->att && s->diff) ? need : 0;
    return s->att_cap ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory for attention scratch (%zu floats)", need);
}

static void block_view(ds_probe_event *ev, float *data, int heads, int nr, int r0, int n, int tk, int pos0) {
    memset(ev, 0, sizeof *ev);
    ev->pos0 = pos0;
    ev->ndim = 3;
    ev->shape[0] = heads, ev->shape[1] = nr, ev->shape[2] = tk;
    ev->strides[0] = (int64_t)nr * tk, ev->strides[1] = tk, ev->strides[2] = 1;
    ev->offset[1] = r0;
    ev->full[0] = heads, ev->full[1] = n, ev->full[2] = tk;
    ev->data = data;
}

/* The probes at one layer's maps, and where a call's maps sit: the hooks that take whole
 * blocks (WHOLE) are called from the calling thread, those that take one head at a time
 * (PER_HEAD, ds_probes_add_point_heads) from the tasks, whose first failure is kept to be
 * raised on the calling thread, since the error state is each thread's own. */
typedef struct {
    ds_probes *probes;
    int layer, n, tk, pos0;
    uint32_t whole, per_head; /* the map points that each kind of hook listens to */
    int failed;
    ds_status code;
    char msg[1024];
} map_hooks;

/* Hands ROWS, head HEAD's nr rows from r0 (row stride tk), to the per-head hooks at POINT;
 * FIRST: at hook_pattern2, the same rows of the head's first map. */
static void fire_head(map_hooks *mh, ds_hook_point point, int heads, int head, float *rows, const float *first, int r0,
                      int nr) {
    int failed;
#pragma omp atomic read
    failed = mh->failed;
    if (!(mh->per_head >> point & 1) || failed) return;
    ds_probe_event ev;
    block_view(&ev, rows, 1, nr, r0, mh->n, mh->tk, mh->pos0);
    ev.full[0] = heads;
    ev.offset[0] = head;
    ev.first_map = first;
    if (!ds_probes_fire_heads(mh->probes, point, mh->layer, &ev)) return;
#pragma omp critical(ds_head_hook_failure)
    if (!mh->failed) {
        mh->code = ds_errcode();
        snprintf(mh->msg, sizeof mh->msg, "%s", ds_errmsg());
#pragma omp atomic write
        mh->failed = 1;
    }
}

/* After the tasks: the first failure of a per-head hook, raised here. */
static int head_failure(const map_hooks *mh) { return mh->failed ? ds_failc(mh->code, "%s", mh->msg) : 0; }

/* Σ row[0..n) in double, in 8 interleaved partial sums added in a fixed order. A vectorised
 * reduction (omp simd) would let the compiler peel iterations to align the row, and so sum in
 * an order that follows the row's address, which is the thread's slice of the scratch. */
static double row_sum(const float *row, int n) {
    double acc[8] = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += row[k + j];
    for (int j = 0; k < n; k++, j++) acc[j] += row[k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Row i of a block is query position p = pos0 + r0 + i; keys k > p are masked. Softmax in
 * place over keys 0..p, zeros after p up to WIDTH columns. */
static void softmax_rows(float *S, int nr, int tk, int p_first, int width) {
    for (int i = 0; i < nr; i++) {
        float *row = S + (size_t)i * tk;
        int p = p_first + i;
        float mx = row[0];
#pragma omp simd reduction(max : mx)
        for (int k = 1; k <= p; k++) mx = row[k] > mx ? row[k] : mx;
#pragma omp simd
        for (int k = 0; k <= p; k++) row[k] = ds_expf(row[k] - mx);
        float inv = (float)(1.0 / row_sum(row, p + 1));
#pragma omp simd
        for (int k = 0; k <= p; k++) row[k] *= inv;
        for (int k = p + 1; k < width; k++) row[k] = 0.0f;
    }
}

/* The differential map of a row block: D = A1 − λ·A2 over WIDTH columns. D may be A1. */
static void diff_rows(float *D, const float *A1, const float *A2, float lam, int nr, int tk, int width) {
    for (int r = 0; r < nr; r++)
#pragma omp simd
        for (int k = 0; k < width; k++) {
            size_t o = (size_t)r * tk + k;
            D[o] = A1[o] - lam * A2[o];
        }
}

int ds_attention_check(const ds_config *c) {
    if (c->desc->differential && c->desc->pairing != DS_PAIRING_HALF)
        return ds_fail("%s: differential head pairing %d is not implemented (i with i + H/2 is)",
                       c->desc->model_type, (int)c->desc->pairing);
    if (c->desc->differential && c->desc->subln_affine)
        return ds_fail("%s: a GroupNorm with a learned weight is not implemented", c->desc->model_type);
    return 0;
}

/* Shapes of one layer's attention call, shared by the staged and the fused paths. */
typedef struct {
    int H, Hd, hd, nrep, qw, kvw, pos0, tk, is_diff;
    unsigned maps; /* the model's map points (ds_arch_desc.maps) */
    const float *K, *V;
    float scale, lam;
} att_shape;

/* S[nr, kmax] (row stride Tk) = scale · q_h · k_{h/nrep}ᵀ for the NR query rows starting at Q. */
static void head_scores(const att_shape *a, float *S, const float *q, int h, int nr, int kmax) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, kmax, a->hd, a->scale, q + (size_t)h * a->hd, a->qw,
                a->K + (size_t)(h / a->nrep) * a->hd, a->kvw, 0.0f, S, a->tk);
}

/* O[nr, hd] (row stride H·hd) = A[nr, kmax] · v_{h/nrep}: the values that sub-head H reads. */
static void head_values(const att_shape *a, float *O, const float *A, int h, int nr, int kmax) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, a->hd, kmax, 1.0f, A, a->tk,
                a->V + (size_t)(h / a->nrep) * a->hd, a->kvw, 0.0f, O, a->qw);
}

static void groupnorm(ds_session *s, int n, int layer) {
    const ds_config *c = &s->m->cfg;
    int hd2 = 2 * c->head_dim, Hd = c->map_heads, width = c->num_heads * c->head_dim;
    float scale = (float)(1.0 - ds_lambda_init(layer)), eps = c->rms_norm_eps;
#pragma omp parallel for schedule(static) if ((size_t)n * width >= DS_PAR_MIN)
    for (int t = 0; t < n; t++)
        for (int i = 0; i < Hd; i++) {
            float *o = s->z + (size_t)t * width + (size_t)i * hd2;
            double ss = 0;
            for (int j = 0; j < hd2; j++) ss += (double)o[j] * o[j];
            float r = 1.0f / sqrtf((float)(ss / hd2) + eps);
            for (int j = 0; j < hd2; j++) o[j] = (o[j] * r) * scale;
        }
}

static void groupnorm_view(ds_probe_event *ev, ds_session *s, int n, int pos0) {
    const ds_config *c = &s->m->cfg;
    memset(ev, 0, sizeof *ev);
    ev->pos0 = pos0;
    ev->ndim = 3;
    ev->shape[0] = ev->full[0] = c->map_heads;
    ev->shape[1] = ev->full[1] = n;
    ev->shape[2] = ev->full[2] = 2 * c->head_dim;
    ev->strides[0] = 2 * c->head_dim, ev->strides[1] = (int64_t)c->num_heads * c->head_dim, ev->strides[2] = 1;
    ev->data = s->z;
}

/* The sub-head that differential head I pairs with its own sub-head I: I + H/2, the only
 * pairing ds_attention_check lets through, which also keeps the first maps of all heads in
 * sub-heads [0, H/2) and the second ones in [H/2, H). */
static int partner(const att_shape *a, int i) { return i + a->Hd; }

/* Rows r0 .. r0+nr of the block see keys 0 .. kmax-1. */
static int block_kmax(const att_shape *a, int r0, int nr) { return a->pos0 + r0 + nr; }

/* No probe wants whole blocks of maps: task (head or head pair, row block) runs from scores to
 * values in its thread's slice of the scratch (one map, or two for a DiffLlama pair), handing
 * its maps to the per-head hooks of MH on the way. The tallest row blocks, the most work, are
 * handed out first. */
static int attention_fused(ds_session *s, const att_shape *a, int n, int R, map_hooks *mh) {
    const int units = a->is_diff ? a->Hd : a->H, nblocks = (n + R - 1) / R, ntasks = units * nblocks;
    const size_t slice = (size_t)R * a->tk * (a->is_diff ? 2 : 1);
    const int par = (size_t)a->H * n * a->tk * a->hd >= DS_PAR_MIN;
#pragma omp parallel for schedule(dynamic) if (par)
    for (int task = 0; task < ntasks; task++) {
        const int b = nblocks - 1 - task / units, u = task % units;
        const int r0 = b * R, nr = n - r0 < R ? n - r0 : R, kmax = block_kmax(a, r0, nr);
        float *S = s->att + (size_t)omp_get_thread_num() * slice;
        const float *q = s->q + (size_t)r0 * a->qw;
        float *z = s->z + (size_t)r0 * a->qw;
        head_scores(a, S, q, u, nr, kmax);
        fire_head(mh, DS_HOOK_SCORES, a->H, u, S, NULL, r0, nr);
        softmax_rows(S, nr, a->tk, a->pos0 + r0, kmax);
        fire_head(mh, DS_HOOK_PATTERN, a->H, u, S, NULL, r0, nr);
        if (!a->is_diff) {
            head_values(a, z + (size_t)u * a->hd, S, u, nr, kmax);
            continue;
        }
        fire_head(mh, DS_HOOK_PATTERN1, a->Hd, u, S, NULL, r0, nr);
        float *S2 = S + (size_t)R * a->tk;
        const int h2 = partner(a, u);
        head_scores(a, S2, q, h2, nr, kmax);
        fire_head(mh, DS_HOOK_SCORES, a->H, h2, S2, NULL, r0, nr);
        softmax_rows(S2, nr, a->tk, a->pos0 + r0, kmax);
        fire_head(mh, DS_HOOK_PATTERN, a->H, h2, S2, NULL, r0, nr);
        fire_head(mh, DS_HOOK_PATTERN2, a->Hd, u, S2, S, r0, nr);
        diff_rows(S, S, S2, a->lam, nr, a->tk, kmax);
        fire_head(mh, DS_HOOK_DIFF, a->Hd, u, S, NULL, r0, nr);
        float *O = z + (size_t)u * 2 * a->hd;
        head_values(a, O, S, u, nr, kmax);
        head_values(a, O + a->hd, S, h2, nr, kmax);
    }
    return head_failure(mh);
}

/* 1 when WANT (ds_probes_wanted) holds POINT. */
static int wants(uint32_t want, ds_hook_point point) { return want >> point & 1; }

/* 1 when a hook at one of the maps made by the softmax (every map point but hook_scores) may
 * read keys past a row's own: then each row of the block is written out to Tk keys, zeros
 * after the query's own key. Otherwise only the keys the products read (to the block's kmax)
 * are. */
static int masked_maps_wanted(const att_shape *a, ds_probes *probes, int layer) {
    for (int point = 0; point < DS_HOOK_COUNT; point++)
        if (point != DS_HOOK_SCORES && (a->maps >> point & 1) && ds_probes_masked_wanted(probes, point, layer))
            return 1;
    return 0;
}

/* A block's HEADS maps at POINT, DATA [heads, nr, tk], to every hook there: whole to the
 * hooks that take blocks, then a head at a time, in parallel, to those that take heads (at
 * hook_pattern2 FIRST is the block of the first maps). -1 when a hook failed. */
static int hand_out_block(map_hooks *mh, ds_hook_point point, int heads, float *data, const float *first, int r0,
                          int nr) {
    if (mh->whole >> point & 1) {
        ds_probe_event ev;
        block_view(&ev, data, heads, nr, r0, mh->n, mh->tk, mh->pos0);
        if (ds_probes_fire(mh->probes, point, mh->layer, &ev)) return -1;
    }
    if (!(mh->per_head >> point & 1)) return 0;
#pragma omp parallel for schedule(dynamic)
    for (int h = 0; h < heads; h++) {
        const size_t at = (size_t)h * nr * mh->tk;
        fire_head(mh, point, heads, h, data + at, first ? first + at : NULL, r0, nr);
    }
    return head_failure(mh);
}

/* Some probe wants the maps: each row block goes through every head stage by stage, and the
 * probes see [heads, nr, Tk] views between stages. The row-wise stages (softmax, the
 * difference) run in pieces of ROW_PIECE rows of a head, many more than the threads: with 32
 * (or 16) whole heads on 15 threads, the last round of a stage kept most threads waiting. Rows
 * are independent there, so the pieces change no bits; the products stay whole heads, the
 * calls the fused path makes. */
enum { ROW_PIECE = 16 };
static int attention_staged(ds_session *s, const att_shape *a, int n, int R, map_hooks *mh) {
    const int mask_scores = ds_probes_masked_wanted(mh->probes, DS_HOOK_SCORES, mh->layer);
    const int masked_maps = masked_maps_wanted(a, mh->probes, mh->layer);
    const int H = a->H, Hd = a->Hd, hd = a->hd, tk = a->tk, pos0 = a->pos0;

    for (int r0 = 0; r0 < n; r0 += R) {
        const int nr = n - r0 < R ? n - r0 : R, kmax = block_kmax(a, r0, nr), width = masked_maps ? tk : kmax;
        const int par = (size_t)H * nr * kmax * hd >= DS_PAR_MIN, pieces = (nr + ROW_PIECE - 1) / ROW_PIECE;
        const float *q = s->q + (size_t)r0 * a->qw;
        float *att = s->att, *z = s->z + (size_t)r0 * a->qw;

#pragma omp parallel for schedule(dynamic) if (par)
        for (int h = 0; h < H; h++) {
            float *S = att + (size_t)h * nr * tk;
            head_scores(a, S, q, h, nr, kmax);
            /* the scores probe sees whole rows of Tk keys, the masked ones -inf unless every hook
             * there reads only the causal ones (softmax_rows zeroes them for the other maps) */
            if (mask_scores)
                for (int i = 0; i < nr; i++)
                    for (int k = pos0 + r0 + i + 1; k < tk; k++) S[(size_t)i * tk + k] = -INFINITY;
        }
        if (hand_out_block(mh, DS_HOOK_SCORES, H, att, NULL, r0, nr)) return -1;
#pragma omp parallel for schedule(dynamic) if (par)
        for (int t = 0; t < H * pieces; t++) {
            const int h = t / pieces, i0 = t % pieces * ROW_PIECE, ni = nr - i0 < ROW_PIECE ? nr - i0 : ROW_PIECE;
            softmax_rows(att + ((size_t)h * nr + i0) * tk, ni, tk, pos0 + r0 + i0, width);
        }

        if (hand_out_block(mh, DS_HOOK_PATTERN, H, att, NULL, r0, nr)) return -1;
        if (!a->is_diff) {
#pragma omp parallel for schedule(dynamic) if (par)
            for (int h = 0; h < H; h++)
                head_values(a, z + (size_t)h * hd, att + (size_t)h * nr * tk, h, nr, kmax);
            continue;
        }
        float *second = att + (size_t)partner(a, 0) * nr * tk;
        if (hand_out_block(mh, DS_HOOK_PATTERN1, Hd, att, NULL, r0, nr) ||
            hand_out_block(mh, DS_HOOK_PATTERN2, Hd, second, att, r0, nr))
            return -1;
#pragma omp parallel for schedule(dynamic) if (par)
        for (int t = 0; t < Hd * pieces; t++) {
            const int i = t / pieces, i0 = t % pieces * ROW_PIECE, ni = nr - i0 < ROW_PIECE ? nr - i0 : ROW_PIECE;
            const size_t at = ((size_t)i * nr + i0) * tk;
            diff_rows(s->diff + at, att + at, att + ((size_t)partner(a, i) * nr + i0) * tk, a->lam, ni, tk, width);
        }
        /* each differential head's two value products: 2·H/2 tasks, not H/2 */
#pragma omp parallel for schedule(dynamic) if (par)
        for (int t = 0; t < 2 * Hd; t++) {
            const int i = t / 2, h = t % 2 ? partner(a, i) : i;
            head_values(a, z + (size_t)i * 2 * hd + (size_t)(t % 2) * hd, s->diff + (size_t)i * nr * tk, h, nr, kmax);
        }
        if (hand_out_block(mh, DS_HOOK_DIFF, Hd, s->diff, NULL, r0, nr)) return -1;
    }
    return 0;
}

int ds_attention(ds_session *s, int layer, int n, double lambda, ds_probes *probes) {
    const ds_config *c = &s->m->cfg;
    att_shape a = {.H = c->num_heads, .Hd = c->map_heads, .hd = c->head_dim, .nrep = c->num_heads / c->num_kv_heads,
                   .qw = c->num_heads * c->head_dim, .kvw = c->num_kv_heads * c->head_dim, .pos0 = s->pos,
                   .tk = s->pos + n, .is_diff = c->desc->differential, .maps = c->desc->maps,
                   .scale = (float)(1.0 / sqrt((double)c->head_dim)), .lam = (float)lambda};
    a.K = s->k_cache + (size_t)layer * s->max_tokens * a.kvw;
    a.V = s->v_cache + (size_t)layer * s->max_tokens * a.kvw;
    const uint32_t want = ds_probes_wanted(probes, layer);
    map_hooks mh = {.probes = probes, .layer = layer, .n = n, .tk = a.tk, .pos0 = a.pos0};
    if (want & c->desc->maps) ds_probes_map_wants(probes, layer, c->desc->maps, &mh.whole, &mh.per_head);

    const int R = ds_probes_block_rows(a.H, a.tk, n);
    /* The fused path gives each thread a slice of 2 maps; the staged one needs all H. */
    size_t maps = (size_t)2 * omp_get_max_threads() > (size_t)a.H ? (size_t)2 * omp_get_max_threads() : (size_t)a.H;
    if (ensure_scratch(s, maps * R * a.tk)) return -1;
    if (mh.whole ? attention_staged(s, &a, n, R, &mh) : attention_fused(s, &a, n, R, &mh)) return -1;

    if (!a.is_diff) return 0;
    ds_probe_event ev;
    if (wants(want, DS_HOOK_GROUPNORM_IN)) {
        groupnorm_view(&ev, s, n, a.pos0);
        if (ds_probes_fire(probes, DS_HOOK_GROUPNORM_IN, layer, &ev)) return -1;
    }
    groupnorm(s, n, layer);
    if (wants(want, DS_HOOK_GROUPNORM_OUT)) {
        groupnorm_view(&ev, s, n, a.pos0);
        if (ds_probes_fire(probes, DS_HOOK_GROUPNORM_OUT, layer, &ev)) return -1;
    }
    return 0;
}
