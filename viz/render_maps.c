/* Heatmap panels. Pixels are recomputed only when a panel is dirty (new head, λ, zoom, pan,
 * scale); hovering only redraws overlays over the cached texture. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "draw.h"

/* The cells [*LO, *HI) that pixel P covers along one axis whose first pixel starts at cell
 * ORIGIN, STEP cells a pixel: the cell under its centre when zoomed in (STEP <= 1), every
 * cell it touches when zoomed out; at least one, none past T. */
static void pixel_cells(double origin, int p, double step, int T, int *lo, int *hi) {
    if (step <= 1) {
        *lo = (int)floor(origin + (p + 0.5) * step);
        *hi = *lo + 1;
    } else {
        *lo = (int)floor(origin + p * step);
        *hi = (int)ceil(origin + (p + 1) * step);
    }
    if (*hi > T) *hi = T;
    if (*lo >= *hi) *lo = *hi - 1;
}

/* The pixels of panel P: each pixel shows its cell, or when zoomed out the block of cells it
 * covers, pooled so that sparse peaks stay visible: the largest value for softmax maps, the
 * value of largest magnitude (with its sign) for the difference. */
static void panel_pixels(viewer *v, panel *p) {
    int S = p->map.w, T = v->T;
    const float *base = NULL;
    double mul = 1;
    int signed_pool = 0, compute_diff = 0;
    switch (p->kind) {
    case PANEL_SOFTMAX1: base = v->s1; break;
    case PANEL_SOFTMAX2: base = v->s2; break;
    case PANEL_LSOFTMAX2: base = v->s2; mul = v->lambda; break;
    case PANEL_SOFTMAX: base = p->slot < v->n_lheads ? v->lmaps[p->slot] : NULL; break;
    case PANEL_VS: base = v->vs_li ? v->vs_map : NULL; break;
    case PANEL_DIFF:
        signed_pool = 1;
        if (v->diff_dump && v->lambda == viewer_lambda_dump(v)) base = v->diff_dump;
        else { base = v->s1; compute_diff = 1; }
        break;
    default: break;
    }
    float lam = (float)v->lambda;
    double step = v->span / S;
    for (int py = 0; py < S; py++) {
        int q0, q1;
        pixel_cells(v->view_q0, py, step, T, &q0, &q1);
        uint32_t *row = p->pixels + (size_t)py * S;
        for (int px = 0; px < S; px++) {
            int k0, k1;
            pixel_cells(v->view_k0, px, step, T, &k0, &k1);
            float best = NAN;
            if (base) {
                for (int q = q0; q < q1; q++) {
                    int kend = k1 < q + 1 ? k1 : q + 1; /* keys after the query are masked */
                    const float *r = base + (size_t)q * T;
                    const float *r2 = compute_diff ? v->s2 + (size_t)q * T : NULL;
                    for (int k = k0; k < kend; k++) {
                        float x = compute_diff ? r[k] - lam * r2[k] : r[k];
                        if (signed_pool ? !(fabsf(x) <= fabsf(best)) : !(x <= best)) best = x;
                    }
                }
            }
            if (!isnan(best)) best = (float)(best * mul);
            row[px] = cmap_color(&p->scale, best);
        }
    }
}

static void panel_scale(const viewer *v, panel *p) {
    p->scale.log = v->log_scale;
    p->scale.kind = p->kind == PANEL_DIFF ? CMAP_DIVERGING : CMAP_SEQUENTIAL;
    /* softmax₁, softmax₂ and λ·softmax₂ share one scale so their colours compare directly. */
    p->scale.vmax = p->kind == PANEL_DIFF ? v->vmax_diff : p->kind == PANEL_VS ? v->vmax_vs : v->vmax_soft;
}

static void panel_update(viewer *v, panel *p) {
    int S = p->map.w;
    if (!p->tex || p->tex_size != S) {
        if (p->tex) SDL_DestroyTexture(p->tex);
        free(p->pixels);
        p->tex = SDL_CreateTexture(v->ren, SDL_PIXELFORMAT_ARGB8888, SDL_TEXTUREACCESS_STREAMING, S, S);
        p->pixels = malloc((size_t)S * S * sizeof *p->pixels);
        p->tex_size = S;
        p->dirty = 1;
        if (!p->tex || !p->pixels) return;
    }
    panel_scale(v, p);
    if (!p->dirty) return;
    panel_pixels(v, p);
    SDL_UpdateTexture(p->tex, NULL, p->pixels, S * (int)sizeof *p->pixels);
    p->dirty = 0;
}

void render_mark_dirty(viewer *v) {
    for (int i = 0; i < MAX_PANELS; i++) v->panels[i].dirty = 1;
}

static void draw_colorbar(viewer *v, const panel *p) {
    SDL_Renderer *r = v->ren;
    const SDL_Rect *b = &p->bar;
    for (int y = 0; y < b->h; y++) {
        draw_color(r, cmap_color_at(p->scale.kind, 1.0f - (float)y / (b->h - 1)));
        SDL_RenderDrawLine(r, b->x, b->y + y, b->x + b->w - 1, b->y + y);
    }
    draw_outline(r, b->x - 1, b->y - 1, b->w + 2, b->h + 2, C_GRID);
    int fh = text_height(FONT_SMALL);
    for (int i = 0; i <= 4; i++) {
        float t = i / 4.0f;
        int y = b->y + (int)lrintf((1 - t) * (b->h - 1));
        char buf[32];
        fmt_value(cmap_value_at(&p->scale, t), buf, sizeof buf);
        draw_hline(r, b->x + b->w, b->x + b->w + 3, y, C_DIM);
        int ty = y - fh / 2;
        if (ty < b->y - 2) ty = b->y - 2;
        if (ty > b->y + b->h - fh + 2) ty = b->y + b->h - fh + 2;
        text_draw(r, FONT_SMALL, buf, b->x + b->w + 5, ty, C_DIM, ALIGN_LEFT);
    }
}

/* Query labels left of the first panel, key labels under every panel. */
static void draw_axis_labels(viewer *v, const panel *p, int with_queries) {
    SDL_Renderer *r = v->ren;
    const SDL_Rect *m = &p->map;
    double cell = (double)m->w / v->span;
    int fh = text_height(FONT_LABEL);
    int step = nice_step((fh + 1) / cell);
    int first = (int)ceil(v->view_q0 - 0.5), last = (int)(v->view_q0 + v->span);
    char lab[160];
    if (with_queries) {
        for (int q = first - first % step; q < last && q < v->T; q += step) {
            if (q < 0) continue;
            double yc = cell_to_px(v, q + 0.5, v->view_q0, m->y, m->h);
            if (yc < m->y || yc > m->y + m->h) continue;
            uint32_t c = q == v->row ? C_SEL : q == v->hover_q ? C_HOVER : C_DIM;
            token_label(v, q, step, FONT_LABEL, m->x - 14, 0, lab, sizeof lab);
            text_draw(r, FONT_LABEL, lab, m->x - 6, (int)yc - fh / 2, c, ALIGN_RIGHT);
        }
    }
    first = (int)ceil(v->view_k0 - 0.5);
    last = (int)(v->view_k0 + v->span);
    for (int k = first - first % step; k < last && k < v->T; k += step) {
        if (k < 0) continue;
        double xc = cell_to_px(v, k + 0.5, v->view_k0, m->x, m->w);
        if (xc < m->x || xc > m->x + m->w) continue;
        uint32_t c = k == v->hover_k ? C_HOVER : C_DIM;
        token_label(v, k, step, FONT_LABEL, 56, 1, lab, sizeof lab);
        text_draw_up(r, FONT_LABEL, lab, (int)xc, m->y + m->h + 5, c);
    }
}

void render_panel(viewer *v, panel *p, int first) {
    SDL_Renderer *r = v->ren;
    const SDL_Rect *m = &p->map;
    char title[128];
    panel_title(v, p, title, sizeof title);
    if (text_width(FONT_UI, title) > p->bar.x + p->bar.w + 40 - m->x) {
        /* Narrow panels: the name alone. */
        char *cut = strstr(title, "  ");
        if (cut) *cut = 0;
    }
    int selected = p->kind == PANEL_SOFTMAX && v->lwin + p->slot == v->head;
    text_draw(r, FONT_UI, title, m->x, m->y - 21, selected ? C_ACCENT : C_TEXT, ALIGN_LEFT);
    panel_update(v, p);
    if (p->tex) SDL_RenderCopy(r, p->tex, NULL, m);
    if (p->kind == PANEL_VS && !v->vs_li)
        text_draw(r, FONT_UI, "layer not in the --vs dump", m->x + m->w / 2, m->y + m->h / 2 - 8,
                  C_DIM, ALIGN_CENTER);
    draw_outline(r, m->x - 1, m->y - 1, m->w + 2, m->h + 2, C_GRID);

    /* Clip overlays to the map so partly visible cells do not spill over. */
    SDL_RenderSetClipRect(r, m);
    double y0 = cell_to_px(v, v->row, v->view_q0, m->y, m->h);
    double y1 = cell_to_px(v, v->row + 1, v->view_q0, m->y, m->h);
    int hgt = (int)lrint(y1 - y0) < 1 ? 1 : (int)lrint(y1 - y0);
    if (y1 >= m->y && y0 <= m->y + m->h) {
        /* Selected row: brackets at both edges, so the cells stay visible. */
        draw_fill(r, m->x, (int)lrint(y0), 4, hgt, C_SEL);
        draw_fill(r, m->x + m->w - 4, (int)lrint(y0), 4, hgt, C_SEL);
    }
    if (v->hover_q >= 0) {
        double hx0 = cell_to_px(v, v->hover_k, v->view_k0, m->x, m->w);
        double hx1 = cell_to_px(v, v->hover_k + 1, v->view_k0, m->x, m->w);
        double hy0 = cell_to_px(v, v->hover_q, v->view_q0, m->y, m->h);
        double hy1 = cell_to_px(v, v->hover_q + 1, v->view_q0, m->y, m->h);
        if (hx1 - hx0 >= 5)
            draw_outline(r, (int)lrint(hx0), (int)lrint(hy0), (int)lrint(hx1 - hx0), (int)lrint(hy1 - hy0), C_HOVER);
        else {
            draw_color(r, C_HOVER);
            SDL_RenderDrawLine(r, (int)hx0, m->y, (int)hx0, m->y + m->h);
            SDL_RenderDrawLine(r, m->x, (int)hy0, m->x + m->w, (int)hy0);
        }
    }
    SDL_RenderSetClipRect(r, NULL);
    draw_colorbar(v, p);
    draw_axis_labels(v, p, first);
}
