/* Rotary position embedding in transformers' rotate_half layout (channel i pairs with
 * i + hd/2), the layout of every architecture so far (ds_arch_desc.rope_layout).
 * Frequencies and angles are computed in float32 exactly as transformers does, so that our
 * angles carry the same rounding as its "float64" references. */
#include "model/internal.h"
#include "diffscope/error.h"
#include <math.h>

int ds_rope_check(const ds_config *c) {
    if (c->desc->rope_layout != DS_ROPE_ROTATE_HALF)
        return ds_fail("%s: RoPE layout %d is not implemented (rotate_half is)", c->desc->model_type,
                       (int)c->desc->rope_layout);
    return 0;
}

/* transformers' _compute_default_rope_parameters and _compute_llama3_parameters. */
static void inv_freq(const ds_config *c, float *out) {
    int hd = c->head_dim;
    for (int i = 0; i < hd / 2; i++) {
        float f = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)hd);
        if (c->rope_type == DS_ROPE_LLAMA3) {
            float factor = (float)c->rope_factor, lo = (float)c->rope_low_freq_factor;
            float hi = (float)c->rope_high_freq_factor, old = (float)c->rope_original_max_pos;
            float low_wavelen = old / lo, high_wavelen = old / hi;
            float wavelen = (float)(2 * M_PI) / f;
            float scaled = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                float smooth = (old / wavelen - lo) / (hi - lo);
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }
            f = scaled;
        }
        out[i] = f;
    }
}

void ds_rope_table(const ds_config *c, int max_tokens, float *cos_out, float *sin_out) {
    int half = c->head_dim / 2;
    float freq[half > 0 ? half : 1];
    inv_freq(c, freq);
    for (int p = 0; p < max_tokens; p++)
        for (int i = 0; i < half; i++) {
            float angle = freq[i] * (float)p;
            cos_out[(size_t)p * half + i] = cosf(angle);
            sin_out[(size_t)p * half + i] = sinf(angle);
        }
}

void ds_rope_apply(float *x, int n, int nheads, int hd, int pos0, const float *cos_t, const float *sin_t) {
    int half = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)n * nheads * hd >= DS_PAR_MIN)
    for (int t = 0; t < n; t++) {
        const float *cs = cos_t + (size_t)(pos0 + t) * half, *sn = sin_t + (size_t)(pos0 + t) * half;
        for (int h = 0; h < nheads; h++) {
            float *v = x + ((size_t)t * nheads + h) * hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}
