/* Colormap tables and value scales. */
#include "colormap.h"
#include <math.h>

typedef struct { float t; uint8_t r, g, b; } stop;

/* Control points of matplotlib's inferno, sampled every 1/8. */
static const stop seq_stops[] = {
    {0.000f, 0, 0, 4},       {0.125f, 31, 12, 72},   {0.250f, 85, 15, 109},
    {0.375f, 136, 34, 106},  {0.500f, 186, 54, 85},  {0.625f, 227, 89, 51},
    {0.750f, 249, 140, 10},  {0.875f, 249, 201, 50}, {1.000f, 252, 255, 164},
};
/* Blue (negative) → near-black (zero) → orange → pale yellow (positive): dark in the
 * middle, so the large near-zero part of a difference map stays calm on a dark UI. */
static const stop div_stops[] = {
    {0.00f, 175, 225, 255}, {0.20f, 70, 150, 235},  {0.40f, 28, 66, 130},
    {0.50f, 20, 20, 24},    {0.60f, 125, 36, 22},   {0.80f, 232, 96, 34},
    {1.00f, 255, 228, 150},
};

static uint32_t table[2][256];
static int table_ready;

static uint32_t lerp_stops(const stop *s, int n, float t) {
    int i = 0;
    while (i < n - 2 && t > s[i + 1].t) i++;
    float u = (t - s[i].t) / (s[i + 1].t - s[i].t);
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    int r = (int)lrintf(s[i].r + u * (s[i + 1].r - s[i].r));
    int g = (int)lrintf(s[i].g + u * (s[i + 1].g - s[i].g));
    int b = (int)lrintf(s[i].b + u * (s[i + 1].b - s[i].b));
    return 0xFF000000u | (uint32_t)r << 16 | (uint32_t)g << 8 | (uint32_t)b;
}

static void build_tables(void) {
    for (int i = 0; i < 256; i++) {
        table[CMAP_SEQUENTIAL][i] = lerp_stops(seq_stops, sizeof seq_stops / sizeof *seq_stops, i / 255.0f);
        table[CMAP_DIVERGING][i] = lerp_stops(div_stops, sizeof div_stops / sizeof *div_stops, i / 255.0f);
    }
    table_ready = 1;
}

uint32_t cmap_color_at(cmap_kind kind, float t) {
    if (!table_ready) build_tables();
    if (!(t >= 0)) t = 0; /* also catches NaN */
    if (t > 1) t = 1;
    return table[kind][(int)lrintf(t * 255.0f)];
}

/* Floor of the symmetric log scale: differences below vmax/1000 sit at the centre. */
static float symlog_floor(const cmap_scale *s) { return s->vmax * 1e-3f; }

float cmap_position(const cmap_scale *s, float v) {
    if (isnan(v)) return -1;
    float vmax = s->vmax > 0 ? s->vmax : 1;
    float t;
    if (s->kind == CMAP_SEQUENTIAL) {
        if (!s->log) t = v / vmax;
        else if (v <= 0) t = 0;
        else t = (log10f(v) - (log10f(vmax) - CMAP_LOG_DECADES)) / CMAP_LOG_DECADES;
    } else {
        float u;
        if (!s->log) u = v / vmax;
        else {
            float fl = symlog_floor(s);
            u = copysignf(log10f(1 + fabsf(v) / fl) / log10f(1 + vmax / fl), v);
        }
        t = 0.5f + 0.5f * u;
    }
    return t < 0 ? 0 : t > 1 ? 1 : t;
}

float cmap_value_at(const cmap_scale *s, float t) {
    float vmax = s->vmax > 0 ? s->vmax : 1;
    if (s->kind == CMAP_SEQUENTIAL)
        return s->log ? powf(10, log10f(vmax) - CMAP_LOG_DECADES + t * CMAP_LOG_DECADES) : t * vmax;
    float u = 2 * t - 1;
    if (!s->log) return u * vmax;
    float fl = symlog_floor(s);
    return copysignf(fl * (powf(10, fabsf(u) * log10f(1 + vmax / fl)) - 1), u);
}

uint32_t cmap_color(const cmap_scale *s, float v) {
    if (isnan(v)) return CMAP_MASKED;
    return cmap_color_at(s->kind, cmap_position(s, v));
}
