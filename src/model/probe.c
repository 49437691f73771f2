/* Probe registry: hooks registered by glob pattern over names or by point, bound once per
 * forward pass into a point × layer bitmask (ds_probes_bind), so that a probe point asks one
 * bit whether anyone listens and names are only matched when the registry changes. */
#include "diffscope/probe.h"
#include "diffscope/error.h"
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(DS_HOOK_COUNT <= 32, "a layer's probe points are one 32-bit mask");

typedef struct {
    char *pattern;       /* glob over probe names; NULL for a hook added by point */
    ds_hook_point point; /* hooks added by point: the point and layer (-1: every layer) */
    int layer;
    uint32_t *match;     /* glob hooks, once bound: [L + 1] masks of the points whose names match */
    ds_hook_fn fn;
    void *user;
    int owns_user;
    int causal_only; /* reads only the causal entries of the attention maps (ds_probes_add_point_causal) */
    int per_head;    /* takes the maps one head at a time, concurrently (ds_probes_add_point_heads) */
} hook;

struct ds_probes {
    hook *hooks;
    int n;
    /* The binding: valid while bound_n == n (hooks are only ever added). */
    int bound_n, bound_L;
    uint32_t *mask; /* [L + 1]: entry 0 the model-level points, entry l + 1 layer l; bit = point */
};

/* Name templates; "%d" is the layer. */
static const char *const names[DS_HOOK_COUNT] = {
    [DS_HOOK_EMBED] = "hook_embed",
    [DS_HOOK_RESID_PRE] = "blocks.%d.hook_resid_pre",
    [DS_HOOK_Q] = "blocks.%d.attn.hook_q",
    [DS_HOOK_K] = "blocks.%d.attn.hook_k",
    [DS_HOOK_V] = "blocks.%d.attn.hook_v",
    [DS_HOOK_SCORES] = "blocks.%d.attn.hook_scores",
    [DS_HOOK_PATTERN] = "blocks.%d.attn.hook_pattern",
    [DS_HOOK_PATTERN1] = "blocks.%d.attn.hook_pattern1",
    [DS_HOOK_PATTERN2] = "blocks.%d.attn.hook_pattern2",
    [DS_HOOK_DIFF] = "blocks.%d.attn.hook_diff",
    [DS_HOOK_LAMBDA] = "blocks.%d.attn.hook_lambda",
    [DS_HOOK_GROUPNORM_IN] = "blocks.%d.attn.hook_groupnorm_in",
    [DS_HOOK_GROUPNORM_OUT] = "blocks.%d.attn.hook_groupnorm_out",
    [DS_HOOK_Z] = "blocks.%d.attn.hook_z",
    [DS_HOOK_ATTN_OUT] = "blocks.%d.hook_attn_out",
    [DS_HOOK_RESID_MID] = "blocks.%d.hook_resid_mid",
    [DS_HOOK_MLP_POST] = "blocks.%d.mlp.hook_post",
    [DS_HOOK_MLP_OUT] = "blocks.%d.hook_mlp_out",
    [DS_HOOK_RESID_POST] = "blocks.%d.hook_resid_post",
    [DS_HOOK_FINAL_NORM] = "ln_final.hook_normalized",
    [DS_HOOK_LOGITS] = "hook_logits",
};

static int per_layer(ds_hook_point point) { return strchr(names[point], '%') != NULL; }

ds_probes *ds_probes_new(void) { return calloc(1, sizeof(ds_probes)); }

void ds_probes_free(ds_probes *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->hooks[i].pattern);
        free(p->hooks[i].match);
        if (p->hooks[i].owns_user) free(p->hooks[i].user);
    }
    free(p->hooks);
    free(p->mask);
    free(p);
}

/* Appends a hook: by PATTERN when it is not NULL, else by POINT and LAYER. */
static int add(ds_probes *p, const char *pattern, ds_hook_point point, int layer, ds_hook_fn fn, void *user) {
    hook *nh = realloc(p->hooks, (size_t)(p->n + 1) * sizeof *nh);
    if (!nh) return ds_failc(DS_ERR_NOMEM, "out of memory");
    p->hooks = nh;
    nh[p->n] = (hook){.point = point, .layer = layer, .fn = fn, .user = user};
    if (pattern && !(nh[p->n].pattern = strdup(pattern))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    p->n++;
    return 0;
}

/* Adds through ADD_RC's result and, on success, gives P the ownership of USER. */
static int own(ds_probes *p, int add_rc, void *user) {
    if (!user || add_rc) {
        free(user);
        return user ? -1 : ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    p->hooks[p->n - 1].owns_user = 1;
    return 0;
}

int ds_probes_add(ds_probes *p, const char *pattern, ds_hook_fn fn, void *user) {
    return add(p, pattern, 0, -1, fn, user);
}

int ds_probes_add_owned(ds_probes *p, const char *pattern, ds_hook_fn fn, void *user) {
    return own(p, user ? ds_probes_add(p, pattern, fn, user) : 0, user);
}

int ds_probes_add_point(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user) {
    if ((unsigned)point >= DS_HOOK_COUNT || layer < -1)
        return ds_fail("probe point %d, layer %d: no such point", (int)point, layer);
    return add(p, NULL, point, layer, fn, user);
}

int ds_probes_add_point_owned(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user) {
    return own(p, user ? ds_probes_add_point(p, point, layer, fn, user) : 0, user);
}

int ds_probes_add_point_causal(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user) {
    if (ds_probes_add_point(p, point, layer, fn, user)) return -1;
    p->hooks[p->n - 1].causal_only = 1;
    return 0;
}

/* The points that carry attention maps: only there can a hook take one head at a time. */
static const uint32_t map_points = 1u << DS_HOOK_SCORES | 1u << DS_HOOK_PATTERN | 1u << DS_HOOK_PATTERN1 |
                                   1u << DS_HOOK_PATTERN2 | 1u << DS_HOOK_DIFF;

int ds_probes_add_point_heads(ds_probes *p, ds_hook_point point, int layer, ds_hook_fn fn, void *user) {
    if ((unsigned)point < DS_HOOK_COUNT && !(map_points >> point & 1))
        return ds_fail("probe point %s: only the attention maps are handed out one head at a time",
                       ds_hook_name(point, layer < 0 ? 0 : layer, (char[96]){0}, 96));
    if (ds_probes_add_point_causal(p, point, layer, fn, user)) return -1;
    p->hooks[p->n - 1].per_head = 1;
    return 0;
}

int ds_probes_block_rows(int H, int tk, int n) {
    /* A block's maps, H × rows × Tk floats, fit 32 MB; shorter blocks also waste less of the
     * causal triangle (a block's QKᵀ covers keys up to its last row). */
    const size_t budget = (size_t)8 << 20, per_row = (size_t)(H > 0 ? H : 1) * (size_t)(tk > 0 ? tk : 1);
    size_t R = budget / per_row;
    if (R > DS_MAP_MAX_ROWS) R = DS_MAP_MAX_ROWS;
    if (R > (size_t)n) R = (size_t)n;
    return R < 1 ? 1 : (int)R;
}

const char *ds_hook_name(ds_hook_point point, int layer, char *buf, int bufsize) {
    snprintf(buf, (size_t)bufsize, names[point], layer);
    return buf;
}

/* 1 when hook H listens to POINT at LAYER, whose probe name is NAME. */
static int hook_matches(const ds_probes *p, const hook *h, ds_hook_point point, int layer, const char *name) {
    if (!h->pattern) return h->point == point && (h->layer < 0 || layer < 0 || h->layer == layer);
    if (h->match && p->bound_n == p->n && layer < p->bound_L) return h->match[layer + 1] >> point & 1;
    return fnmatch(h->pattern, name, 0) == 0;
}

/* Sets in MASK ([L + 1]) the bits of the points that hook H, added by point, listens to. */
static void bind_point_hook(const hook *h, int L, uint32_t *mask) {
    if (!per_layer(h->point)) mask[0] |= 1u << h->point;
    else if (h->layer < 0)
        for (int l = 0; l < L; l++) mask[l + 1] |= 1u << h->point;
    else if (h->layer < L)
        mask[h->layer + 1] |= 1u << h->point;
}

/* The points whose names glob hook H matches, as masks [L + 1]; NULL when out of memory. */
static uint32_t *bind_glob_hook(const hook *h, int L) {
    uint32_t *m = calloc((size_t)L + 1, sizeof *m);
    char name[96];
    for (int layer = -1; m && layer < L; layer++)
        for (int point = 0; point < DS_HOOK_COUNT; point++)
            if (per_layer(point) == (layer >= 0) && !fnmatch(h->pattern, ds_hook_name(point, layer, name, sizeof name), 0))
                m[layer + 1] |= 1u << point;
    return m;
}

int ds_probes_bind(ds_probes *p, int L) {
    if (!p || (p->bound_n == p->n && p->bound_L == L)) return 0;
    uint32_t *mask = calloc((size_t)L + 1, sizeof *mask);
    if (!mask) return ds_failc(DS_ERR_NOMEM, "out of memory");
    free(p->mask);
    p->mask = mask;
    p->bound_n = -1; /* until the binding is complete, hooks are matched by name */
    for (int i = 0; i < p->n; i++) {
        hook *h = &p->hooks[i];
        free(h->match);
        h->match = NULL;
        if (!h->pattern) {
            bind_point_hook(h, L, mask);
            continue;
        }
        if (!(h->match = bind_glob_hook(h, L))) return ds_failc(DS_ERR_NOMEM, "out of memory");
        for (int l = 0; l <= L; l++) mask[l] |= h->match[l];
    }
    p->bound_n = p->n;
    p->bound_L = L;
    return 0;
}

/* Which hooks any_hook counts. */
enum { ANY_KIND, PLAIN_ONLY, WHOLE_BLOCKS_ONLY, PER_HEAD_ONLY };

/* 1 when a hook of kind KIND listens to POINT at LAYER: any, those not added as causal, those
 * not added per head, or those added per head. */
static int any_hook(ds_probes *p, ds_hook_point point, int layer, int kind) {
    char name[96];
    ds_hook_name(point, layer, name, sizeof name);
    for (int i = 0; i < p->n; i++) {
        const hook *h = &p->hooks[i];
        if (kind == PLAIN_ONLY && h->causal_only) continue;
        if (kind == WHOLE_BLOCKS_ONLY && h->per_head) continue;
        if (kind == PER_HEAD_ONLY && !h->per_head) continue;
        if (hook_matches(p, h, point, layer, name)) return 1;
    }
    return 0;
}

int ds_probes_active(ds_probes *p, ds_hook_point point, int layer) {
    if (!p || p->n == 0) return 0;
    if (p->bound_n == p->n && layer < p->bound_L) return p->mask[layer + 1] >> point & 1;
    return any_hook(p, point, layer, ANY_KIND); /* not bound: by name */
}

uint32_t ds_probes_wanted(ds_probes *p, int layer) {
    if (!p || p->n == 0) return 0;
    if (p->bound_n == p->n && layer < p->bound_L) return p->mask[layer + 1];
    uint32_t want = 0;
    for (int point = 0; point < DS_HOOK_COUNT; point++)
        if (per_layer(point) == (layer >= 0) && ds_probes_active(p, point, layer)) want |= 1u << point;
    return want;
}

int ds_probes_masked_wanted(ds_probes *p, ds_hook_point point, int layer) {
    return p && any_hook(p, point, layer, PLAIN_ONLY);
}

void ds_probes_map_wants(ds_probes *p, int layer, uint32_t maps, uint32_t *blocks, uint32_t *heads) {
    const uint32_t want = ds_probes_wanted(p, layer) & maps;
    *blocks = *heads = 0;
    for (int point = 0; point < DS_HOOK_COUNT; point++) {
        if (!(want >> point & 1)) continue;
        if (any_hook(p, (ds_hook_point)point, layer, WHOLE_BLOCKS_ONLY)) *blocks |= 1u << point;
        if (any_hook(p, (ds_hook_point)point, layer, PER_HEAD_ONLY)) *heads |= 1u << point;
    }
}

/* Calls the hooks at POINT of LAYER that take one head at a time when PER_HEAD, the others
 * otherwise. */
static int fire(ds_probes *p, ds_hook_point point, int layer, ds_probe_event *ev, int per_head) {
    if (!p || p->n == 0) return 0;
    char name[96];
    ds_hook_name(point, layer, name, sizeof name);
    ev->name = name;
    ev->point = point;
    ev->layer = layer;
    for (int i = 0; i < p->n; i++)
        if (p->hooks[i].per_head == per_head && hook_matches(p, &p->hooks[i], point, layer, name) &&
            p->hooks[i].fn(ev, p->hooks[i].user))
            return -1;
    return 0;
}

int ds_probes_fire(ds_probes *p, ds_hook_point point, int layer, ds_probe_event *ev) {
    return fire(p, point, layer, ev, 0);
}

int ds_probes_fire_heads(ds_probes *p, ds_hook_point point, int layer, ds_probe_event *ev) {
    return fire(p, point, layer, ev, 1);
}
