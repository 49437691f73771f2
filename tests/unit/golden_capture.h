/* Test helper: a probe consumer that copies every attention map, diff map, λ and GroupNorm
 * input RMS of a forward pass into whole arrays, the layout of the golden files. */
#ifndef DIFFSCOPE_GOLDEN_CAPTURE_H
#define DIFFSCOPE_GOLDEN_CAPTURE_H
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/model.h"

typedef struct {
    int L, H, T;
    float *pattern; /* [L, H, T, T] */
    float *diff;    /* [L, H/2, T, T] */
    double *lambda; /* [L, 4] */
    float *gn_rms;  /* [L, H/2, T] */
} capture;

static int capture_hook(const ds_probe_event *ev, void *user) {
    capture *c = user;
    int T = c->T, l = ev->layer;
    if (ev->point == DS_HOOK_PATTERN || ev->point == DS_HOOK_DIFF) {
        int heads = ev->point == DS_HOOK_PATTERN ? c->H : c->H / 2;
        float *dst = ev->point == DS_HOOK_PATTERN ? c->pattern : c->diff;
        for (int h = 0; h < ev->shape[0]; h++)
            for (int r = 0; r < ev->shape[1]; r++)
                for (int k = 0; k < T; k++)
                    dst[(((size_t)l * heads + h) * T + ev->offset[1] + r) * T + k] =
                        ev->data[h * ev->strides[0] + r * ev->strides[1] + k];
    } else if (ev->point == DS_HOOK_LAMBDA) {
        for (int i = 0; i < 4; i++) c->lambda[l * 4 + i] = ev->data[i];
    } else if (ev->point == DS_HOOK_GROUPNORM_IN) {
        int Hd = c->H / 2;
        for (int h = 0; h < Hd; h++)
            for (int t = 0; t < T; t++) {
                double ss = 0;
                for (int j = 0; j < ev->shape[2]; j++) {
                    double v = ev->data[h * ev->strides[0] + t * ev->strides[1] + j];
                    ss += v * v;
                }
                c->gn_rms[((size_t)l * Hd + h) * T + t] = (float)sqrt(ss / ev->shape[2]);
            }
    }
    return 0;
}

static void capture_init(capture *c, ds_probes *p, int L, int H, int T) {
    c->L = L, c->H = H, c->T = T;
    c->pattern = calloc((size_t)L * H * T * T, sizeof(float));
    c->diff = calloc((size_t)L * H * T * T, sizeof(float));
    c->lambda = calloc((size_t)L * 4, sizeof(double));
    c->gn_rms = calloc((size_t)L * H * T, sizeof(float));
    ds_probes_add(p, "blocks.*.attn.hook_pattern", capture_hook, c);
    ds_probes_add(p, "blocks.*.attn.hook_diff", capture_hook, c);
    ds_probes_add(p, "blocks.*.attn.hook_lambda", capture_hook, c);
    ds_probes_add(p, "blocks.*.attn.hook_groupnorm_in", capture_hook, c);
}

static void capture_free(capture *c) {
    free(c->pattern), free(c->diff), free(c->lambda), free(c->gn_rms);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}
#endif
