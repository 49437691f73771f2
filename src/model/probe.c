/* Probe registry: glob patterns -> callbacks, matched by name at each probe point. */
#include "diffscope/probe.h"
#include "diffscope/error.h"
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *pattern;
    ds_hook_fn fn;
    void *user;
    int owns_user;
} hook;

struct ds_probes {
    hook *hooks;
    int n;
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

ds_probes *ds_probes_new(void) { return calloc(1, sizeof(ds_probes)); }

void ds_probes_free(ds_probes *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->hooks[i].pattern);
        if (p->hooks[i].owns_user) free(p->hooks[i].user);
    }
    free(p->hooks);
    free(p);
}

int ds_probes_add(ds_probes *p, const char *pattern, ds_hook_fn fn, void *user) {
    hook *nh = realloc(p->hooks, (size_t)(p->n + 1) * sizeof *nh);
    if (!nh) return ds_failc(DS_ERR_NOMEM, "out of memory");
    p->hooks = nh;
    nh[p->n].pattern = strdup(pattern);
    nh[p->n].fn = fn;
    nh[p->n].user = user;
    nh[p->n].owns_user = 0;
    if (!nh[p->n].pattern) return ds_failc(DS_ERR_NOMEM, "out of memory");
    p->n++;
    return 0;
}

int ds_probes_add_owned(ds_probes *p, const char *pattern, ds_hook_fn fn, void *user) {
    if (!user || ds_probes_add(p, pattern, fn, user)) {
        free(user);
        return user ? -1 : ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    p->hooks[p->n - 1].owns_user = 1;
    return 0;
}

const char *ds_hook_name(ds_hook_point point, int layer, char *buf, int bufsize) {
    snprintf(buf, (size_t)bufsize, names[point], layer);
    return buf;
}

int ds_probes_active(ds_probes *p, ds_hook_point point, int layer) {
    if (!p || p->n == 0) return 0;
    char name[96];
    ds_hook_name(point, layer, name, sizeof name);
    for (int i = 0; i < p->n; i++)
        if (fnmatch(p->hooks[i].pattern, name, 0) == 0) return 1;
    return 0;
}

int ds_probes_fire(ds_probes *p, ds_hook_point point, int layer, ds_probe_event *ev) {
    if (!p || p->n == 0) return 0;
    char name[96];
    ds_hook_name(point, layer, name, sizeof name);
    ev->name = name;
    ev->point = point;
    ev->layer = layer;
    for (int i = 0; i < p->n; i++)
        if (fnmatch(p->hooks[i].pattern, name, 0) == 0 && p->hooks[i].fn(ev, p->hooks[i].user)) return -1;
    return 0;
}
