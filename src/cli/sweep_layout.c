/* The per-prompt figures of one model, as a table of fields: the journal records, the shard and
 * master datasets, the aggregates and the JSON all walk this table. */
#include <stdio.h>
#include <string.h>
#include "cli/compare.h"
#include "cli/sweep.h"

static const char *const gn_names[4] = {"rms_query", "scale_query", "rms_mean", "scale_mean"};

static void add(sweep_layout *lay, const char *a, const char *b, int shape) {
    sweep_field *f = &lay->f[lay->nfields++];
    snprintf(f->name, sizeof f->name, "%s%s%s", a, b ? "/" : "", b ? b : "");
    f->shape = shape;
    f->count = shape == SWEEP_LH ? lay->L * lay->heads : shape == SWEEP_L ? lay->L : DS_TABLE5_RANKS + 1;
    f->offset = lay->ndoubles;
    lay->ndoubles += (size_t)f->count;
}

void sweep_layout_init(sweep_layout *lay, const char *name, const char *path, const ds_config *c) {
    memset(lay, 0, sizeof *lay);
    lay->name = name, lay->path = path, lay->arch = ds_arch_name(c->arch);
    lay->is_diff = c->desc->differential;
    lay->L = c->num_layers, lay->heads = c->map_heads;
    for (int j = 0; j < DS_ATTN_NMAPS; j++)
        if ((ds_attn_maps[j] == DS_MAP_SOFTMAX) != lay->is_diff)
            for (int m = 0; m < 5; m++) add(lay, ds_map_name(ds_attn_maps[j]), cmp_metric_names[m], SWEEP_LH);
    if (lay->is_diff) {
        add(lay, "lambda_full", NULL, SWEEP_L);
        add(lay, "cancelled_share", NULL, SWEEP_LH);
        for (int g = 0; g < 4; g++) add(lay, "groupnorm", gn_names[g], SWEEP_LH);
    }
    add(lay, "outliers", "scores", SWEEP_T5);
    add(lay, "outliers", "resid", SWEEP_T5);
}

static double gn_value(const ds_attn_gn_stats *g, int k) {
    const double v[4] = {g->rms_query, g->scale_query, g->rms_mean, g->scale_mean};
    return v[k];
}

void sweep_layout_extract(const sweep_layout *lay, const ds_attn_stats *st, double *out) {
    int fi = 0;
    for (int j = 0; j < DS_ATTN_NMAPS; j++) {
        int map = ds_attn_maps[j];
        if (!st->has_map[map]) continue;
        for (int m = 0; m < 5; m++, fi++)
            for (int i = 0; i < lay->f[fi].count; i++) out[lay->f[fi].offset + i] = cmp_metric(&st->head[map][i], m);
    }
    if (lay->is_diff) {
        memcpy(out + lay->f[fi++].offset, st->lambda_full, (size_t)lay->L * sizeof *out);
        memcpy(out + lay->f[fi++].offset, st->cancelled_share, (size_t)lay->L * lay->heads * sizeof *out);
        for (int g = 0; g < 4; g++, fi++)
            for (int i = 0; i < lay->f[fi].count; i++) out[lay->f[fi].offset + i] = gn_value(&st->groupnorm[i], g);
    }
    for (int which = 0; which < 2; which++, fi++)
        for (int k = 0; k <= DS_TABLE5_RANKS; k++)
            out[lay->f[fi].offset + k] = cmp_table5_value(which ? &st->resid : &st->scores, k);
}
