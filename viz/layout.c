/* Where things go in the window, and the mapping between pixels and token cells.
 *
 *   top bar      title line; λ line with the slider
 *   panels       square heatmaps side by side, each with its title above, a colour bar on
 *                its right, key labels below; query labels left of the first one
 *   row profile  one bar chart per map over the visible keys, aligned with each other
 *   strip        the per-head summary of the layer at the selected row */
#include <math.h>
#include "text.h"
#include "viewer.h"

enum {
    MARGIN = 12,
    LABEL_W = 118,     /* query labels left of the first panel, chart names left of charts */
    TITLE_H = 24,      /* panel title above a heatmap */
    BAR_GAP = 8,
    BAR_W = 12,
    BAR_LABELS = 50,   /* tick values right of a colour bar */
    PANEL_GAP = 14,
    XLABEL_H = 62,     /* rotated key labels under heatmaps and under the last chart */
    CHART_GAP = 10,
    STRIP_H = 74,
    TOP_H = 72,
};

void layout_compute(viewer *v, int w, int h) {
    layout_info *L = &v->lay;
    v->win_w = w;
    v->win_h = h;
    L->top_h = TOP_H;
    L->font_px = text_height(FONT_LABEL);

    panel_kind kinds[MAX_PANELS];
    int n = 0;
    if (v->differential) {
        kinds[n++] = PANEL_SOFTMAX1;
        kinds[n++] = PANEL_SOFTMAX2;
        kinds[n++] = PANEL_LSOFTMAX2;
        kinds[n++] = PANEL_DIFF;
    } else
        while (n < v->n_lheads) kinds[n++] = PANEL_SOFTMAX;
    if (v->vs) kinds[n++] = PANEL_VS;
    L->n_charts = v->differential ? 3 : v->n_lheads;

    /* Heatmap side: as wide as the window allows, leaving the profile at least 56 px a chart. */
    int per_panel_extra = BAR_GAP + BAR_W + BAR_LABELS + PANEL_GAP;
    int s_w = (w - LABEL_W - MARGIN - n * per_panel_extra) / n;
    int fixed = TOP_H + TITLE_H + XLABEL_H + MARGIN + 20 + (L->n_charts - 1) * CHART_GAP + XLABEL_H +
                MARGIN + STRIP_H + MARGIN;
    int s_h = h - fixed - (L->n_charts == 1 ? 110 : L->n_charts * 56);
    if (!v->differential) s_h = h - fixed - (L->n_charts == 1 ? 110 : L->n_charts * 44);
    int s = s_w < s_h ? s_w : s_h;
    if (s < 40) s = 40;

    if (n != v->n_panels) {
        for (int i = 0; i < MAX_PANELS; i++) v->panels[i].dirty = 1;
    }
    v->n_panels = n;
    int x = LABEL_W;
    for (int i = 0; i < n; i++) {
        panel *p = &v->panels[i];
        if (p->kind != kinds[i] || p->map.w != s || p->slot != i) p->dirty = 1;
        p->kind = kinds[i];
        p->slot = i;
        p->map = (SDL_Rect){x, TOP_H + TITLE_H, s, s};
        p->bar = (SDL_Rect){x + s + BAR_GAP, TOP_H + TITLE_H, BAR_W, s};
        x += s + per_panel_extra;
    }

    int prof_top = TOP_H + TITLE_H + s + XLABEL_H + MARGIN;
    int strip_top = h - MARGIN - STRIP_H;
    int avail = strip_top - MARGIN - XLABEL_H - prof_top - 20 - (L->n_charts - 1) * CHART_GAP;
    int ch = avail / L->n_charts;
    if (ch > 130) ch = 130;
    if (ch < 30) ch = 30;
    int right = w - MARGIN - BAR_LABELS;
    L->area = (SDL_Rect){LABEL_W, prof_top, right - LABEL_W, 20 + L->n_charts * ch +
                                                                 (L->n_charts - 1) * CHART_GAP};
    for (int i = 0; i < L->n_charts; i++)
        L->chart[i] = (SDL_Rect){LABEL_W, prof_top + 20 + i * (ch + CHART_GAP), right - LABEL_W, ch};
    L->strip = (SDL_Rect){LABEL_W, strip_top, right - LABEL_W, STRIP_H};
    if (v->differential) {
        int sw = w / 3 < 460 ? w / 3 : 460;
        L->slider = (SDL_Rect){w - MARGIN - 90 - sw, 38, sw, 6};
    } else L->slider = (SDL_Rect){0, 0, 0, 0};
}

static double min_span(const viewer *v) { return v->T < 3 ? v->T : 3; }

void view_fit(viewer *v) {
    v->view_k0 = v->view_q0 = 0;
    v->span = v->T;
}

void view_clamp(viewer *v) {
    if (v->span > v->T) v->span = v->T;
    if (v->span < min_span(v)) v->span = min_span(v);
    double hi = v->T - v->span;
    v->view_k0 = v->view_k0 < 0 ? 0 : v->view_k0 > hi ? hi : v->view_k0;
    v->view_q0 = v->view_q0 < 0 ? 0 : v->view_q0 > hi ? hi : v->view_q0;
}

void view_zoom(viewer *v, double factor, int p, int x, int y) {
    double fx = 0.5, fy = 0.5; /* where the fixed point lies, as a fraction of the view */
    if (p >= 0) {
        const SDL_Rect *m = &v->panels[p].map;
        fx = (double)(x - m->x) / m->w;
        fy = (double)(y - m->y) / m->h;
    } else if (p == -2) { /* over the row profile: keep the key under the pointer */
        fx = (double)(x - v->lay.area.x) / v->lay.area.w;
    }
    double ck = v->view_k0 + fx * v->span, cq = v->view_q0 + fy * v->span;
    double ns = v->span * factor;
    if (ns > v->T) ns = v->T;
    if (ns < min_span(v)) ns = min_span(v);
    v->span = ns;
    v->view_k0 = ck - fx * ns;
    v->view_q0 = cq - fy * ns;
    view_clamp(v);
}

double cell_to_px(const viewer *v, double cell, double origin, int px0, int size) {
    return px0 + (cell - origin) * size / v->span;
}

static int cell_at(const viewer *v, double origin, int px0, int size, int px) {
    int c = (int)floor(origin + (px - px0 + 0.5) * v->span / size);
    return c < 0 ? 0 : c >= v->T ? v->T - 1 : c;
}

int layout_hit(const viewer *v, int x, int y, int *q, int *k) {
    for (int i = 0; i < v->n_panels; i++) {
        const SDL_Rect *m = &v->panels[i].map;
        if (x >= m->x && x < m->x + m->w && y >= m->y && y < m->y + m->h) {
            if (q) *q = cell_at(v, v->view_q0, m->y, m->h, y);
            if (k) *k = cell_at(v, v->view_k0, m->x, m->w, x);
            return i;
        }
    }
    return -1;
}

int layout_profile_hit(const viewer *v, int x, int y, int *k) {
    for (int i = 0; i < v->lay.n_charts; i++) {
        const SDL_Rect *c = &v->lay.chart[i];
        if (x >= c->x && x < c->x + c->w && y >= c->y && y < c->y + c->h) {
            if (k) *k = cell_at(v, v->view_k0, c->x, c->w, x);
            return i;
        }
    }
    return -1;
}

int layout_strip_hit(const viewer *v, int x, int y) {
    const SDL_Rect *s = &v->lay.strip;
    if (!v->li || x < s->x || x >= s->x + s->w || y < s->y || y >= s->y + s->h) return -1;
    int h = (int)((long)(x - s->x) * v->li->n_heads / s->w);
    return h < v->li->n_heads ? h : v->li->n_heads - 1;
}

void slider_range(const viewer *v, double *lo, double *hi) {
    double ld = viewer_lambda_dump(v), lm = v->li ? v->li->lambda_model : ld;
    *lo = floor((fmin(0, fmin(ld, lm)) - 0.25) * 4) / 4;
    *hi = ceil((fmax(1, fmax(ld, lm)) + 0.25) * 4) / 4;
}

double slider_lambda_at(const viewer *v, int x) {
    double lo, hi;
    slider_range(v, &lo, &hi);
    const SDL_Rect *s = &v->lay.slider;
    double t = (double)(x - s->x) / (s->w > 0 ? s->w : 1);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return lo + t * (hi - lo);
}
