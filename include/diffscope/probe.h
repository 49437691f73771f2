/* Named probe points, TransformerLens style.
 *
 * A caller registers callbacks (hooks) on the names of probe points, or glob patterns over
 * them ("blocks.*.attn.hook_diff", "blocks.3.hook_resid_post"): the user-facing API. C
 * consumers may register by enum instead, ds_probes_add_point(p, DS_HOOK_DIFF, 3, fn, user),
 * with no name to format. ds_forward calls each matching callback with a view of the tensor at
 * that point. A callback may read the view; at the writable points (marked W) it may also
 * change the data, and the forward pass continues from the changed values.
 *
 *   point                         full shape                 notes
 *   hook_embed                    [T, D]
 *   blocks.{l}.hook_resid_pre     [T, D]                     W
 *   blocks.{l}.attn.hook_q/k/v    [T, H|KV, hd]              after the projections, before RoPE
 *                                                            (q, k after q/k_norm for Qwen3)
 *   blocks.{l}.attn.hook_scores   [H, T, Tk]                 scaled q·k, masked = -inf
 *   blocks.{l}.attn.hook_pattern  [H, T, Tk]                 all H softmax maps
 *   blocks.{l}.attn.hook_pattern1 [H/2, T, Tk]  DiffLlama, W first map of each diff head
 *   blocks.{l}.attn.hook_pattern2 [H/2, T, Tk]  DiffLlama, W second map; the difference map
 *                                                            is made from the written maps
 *   blocks.{l}.attn.hook_diff     [H/2, T, Tk]  DiffLlama    pattern1 - λ·pattern2
 *   blocks.{l}.attn.hook_lambda   [4]           DiffLlama, W lambda_1, lambda_2, lambda_init,
 *                                                            lambda_full; writing [3] overrides λ
 *   blocks.{l}.attn.hook_groupnorm_in  [H/2, T, 2hd]  DiffLlama
 *   blocks.{l}.attn.hook_groupnorm_out [H/2, T, 2hd]  DiffLlama  after (1-λ_init)·RMSNorm
 *   blocks.{l}.attn.hook_z        [T, H, hd] (Llama) or [T, H/2, 2hd] (DiffLlama), W
 *                                 the input of o_proj; zeroing a head ablates it
 *   blocks.{l}.hook_attn_out      [T, D]
 *   blocks.{l}.hook_resid_mid     [T, D]
 *   blocks.{l}.mlp.hook_post      [T, I]                     silu(gate)·up
 *   blocks.{l}.hook_mlp_out       [T, D]
 *   blocks.{l}.hook_resid_post    [T, D]
 *   ln_final.hook_normalized      [T, D]
 *   hook_logits                   [T, V]                     only rows the caller asked for
 *
 * T is the number of tokens of this forward call, Tk = pos0 + T the keys visible to it
 * (pos0 is the KV-cache length before the call). Attention maps (scores, pattern*, diff)
 * arrive in blocks of query rows: ev->offset[1] is the first row of the block and
 * ev->shape[1] its height (ds_probes_block_rows, the last block shorter); all other points
 * arrive whole. Within one forward call events come in layer order, from the calling thread,
 * never concurrently, except for the hooks added by ds_probes_add_point_heads below.
 *
 * Each ds_forward binds the registry first (ds_probes_bind): every pattern is resolved into
 * a point × layer bitmask, so a probe point costs one bit test and names are matched again only
 * when hooks were added since. Invariant: with no probe registered (or probes == NULL) the
 * forward pass does no probe work beyond one bit test per point. */
#ifndef DIFFSCOPE_PROBE_H
#define DIFFSCOPE_PROBE_H
#include <stdint.h>

typedef enum {
    DS_HOOK_EMBED,
    DS_HOOK_RESID_PRE,
    DS_HOOK_Q, DS_HOOK_K, DS_HOOK_V,
    DS_HOOK_SCORES,
    DS_HOOK_PATTERN,
    DS_HOOK_PATTERN1,
    DS_HOOK_PATTERN2,
    DS_HOOK_DIFF,
    DS_HOOK_LAMBDA,
    DS_HOOK_GROUPNORM_IN,
    DS_HOOK_GROUPNORM_OUT,
    DS_HOOK_Z,
    DS_HOOK_ATTN_OUT,
    DS_HOOK_RESID_MID,
    DS_HOOK_MLP_POST,
    DS_HOOK_MLP_OUT,
    DS_HOOK_RESID_POST,
    DS_HOOK_FINAL_NORM,
    DS_HOOK_LOGITS,
    DS_HOOK_COUNT
} ds_hook_point;

typedef struct {
    const char *name;      /* full probe name, e.g. "blocks.2.attn.hook_diff" */
    ds_hook_point point;
    int layer;             /* -1 for model-level points */
    int pos0;              /* KV-cache length before this forward call */
    int ndim;
    int64_t shape[4];      /* this block */
    int64_t strides[4];    /* in floats */
    int64_t offset[4];     /* where the block starts inside the full tensor */
    int64_t full[4];       /* the full tensor's shape */
    float *data;
    /* At hook_pattern2 for a hook added by ds_probes_add_point_heads: the same rows of the same
     * differential head's first map (what hook_pattern1 handed out, as its hooks left it), for
     * statistics of both maps; NULL everywhere else. Same strides as data. */
    const float *first_map;
} ds_probe_event;

/* Return 0 to go on; non-zero aborts the forward pass (ds_forward then fails with the
 * message the callback recorded through ds_fail). */
typedef int (*ds_hook_fn)(const ds_probe_event *ev, void *user);

typedef struct ds_probes ds_probes;

ds_probes *ds_probes_new(void);
void ds_probes_free(ds_probes *p);
/* PATTERN is a glob (fnmatch) over probe names. */
int ds_probes_add(ds_probes *p, const char *pattern, ds_hook_fn fn, void *user);
/* The same, and USER (malloc'd) is freed with P. On failure USER is freed at once. */
int ds_probes_add_owned(ds_probes *p, const char *pattern, ds_hook_fn fn, void *user);
/* POINT at LAYER (-1: every layer; ignored for the model-level points hook_embed,
 * ln_final.hook_normalized and hook_logits); the _owned form frees USER as above. */
int ds_probes_add_point(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user);
int ds_probes_add_point_owned(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user);
/* The same for a hook that reads (and, at the writable maps, writes) only the causal entries
 * (keys k <= q) of the rows of the attention maps: hook_scores, hook_pattern, hook_pattern1,
 * hook_pattern2, hook_diff. Where every hook at a layer's hook_scores was added so, the forward
 * pass leaves the masked entries of the rows it hands out unset (they hold whatever the
 * scratch held) instead of writing -inf into them; where every hook at all the other map
 * points of the layer was, it leaves unset the keys past the block's last query (zeros
 * otherwise, and the difference map is not computed there): up to half of every block. At
 * other points it is ds_probes_add_point. */
int ds_probes_add_point_causal(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user);

/* A hook on one of the attention maps (hook_scores, hook_pattern, hook_pattern1, hook_pattern2,
 * hook_diff) that takes one head's rows of a row block at a time and may be called by several
 * threads at once, so that the forward pass hands each head's block out while it is still in
 * the cache of the core that made it, without stopping between stages for all heads. The
 * event is [1, nr, Tk]: ev->offset[0] is the head (the sub-head at hook_scores and
 * hook_pattern, the differential head at hook_pattern1/2 and hook_diff), ev->offset[1] the
 * block's first row. The hook reads and writes only the causal entries (keys k <= q, as
 * ds_probes_add_point_causal). Guarantees: every (head, row block) comes exactly once at each
 * point; for one head and block the points come one after the other in forward order (a
 * sub-head's scores, then its map; pattern1 before pattern2, then diff); calls for different
 * heads or blocks may run at once and in any order. The hook must be safe
 * to run so (its own data per head and block, or a lock). When it fails, the forward pass
 * stops calling hooks and fails with the message it recorded, after the running calls return.
 * Other points: ds_probes_add_point. */
int ds_probes_add_point_heads(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user);

/* The height of the row blocks in which the maps of a forward call of N tokens arrive, Tk keys
 * visible to it, in a model of H attention heads (sub-heads): a function of the shapes alone.
 * Never more than DS_MAP_MAX_ROWS. */
#define DS_MAP_MAX_ROWS 128
int ds_probes_block_rows(int H, int tk, int n);

/* Probe name of POINT at LAYER (layer ignored for model-level points). */
const char *ds_hook_name(ds_hook_point point, int layer, char *buf, int bufsize);

/* Internal to the forward pass. ds_probes_bind resolves the patterns for a model of L
 * layers (again only when hooks were added or L changed; 0, or -1 out of memory).
 * ds_probes_wanted is the set of points someone listens to at LAYER (-1: the model-level
 * points), bit 1u << point; ds_probes_active one of them. Both work unbound too, by name.
 * ds_probes_fire fills name/point/layer of EV and calls every matching callback. */
int ds_probes_bind(ds_probes *p, int L);
uint32_t ds_probes_wanted(ds_probes *p, int layer);
int ds_probes_active(ds_probes *p, ds_hook_point point, int layer);
/* 1 when a hook at POINT of LAYER may read masked entries: one not added as causal. */
int ds_probes_masked_wanted(ds_probes *p, ds_hook_point point, int layer);
int ds_probes_fire(ds_probes *p, ds_hook_point point, int layer, ds_probe_event *ev);
/* Of the points in MAPS (a mask) at LAYER: into *BLOCKS those that hooks taking whole blocks
 * listen to, into *HEADS those that hooks added by ds_probes_add_point_heads listen to. */
void ds_probes_map_wants(ds_probes *p, int layer, uint32_t maps, uint32_t *blocks, uint32_t *heads);
/* ds_probes_fire for the hooks added by ds_probes_add_point_heads only; ds_probes_fire leaves
 * them out. Safe to call from several threads at once. */
int ds_probes_fire_heads(ds_probes *p, ds_hook_point point, int layer, ds_probe_event *ev);

#endif
