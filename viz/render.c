/* Drawing one frame. Heatmap pixels are recomputed only when a panel is dirty (new head,
 * λ, zoom, pan, scale); hovering only redraws overlays over cached textures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "text.h"
#include "viewer.h"

#define C_BG 0xFF15161Bu
#define C_PANEL 0xFF1D1F26u
#define C_GRID 0xFF2C2F38u
#define C_TEXT 0xFFD8DBE2u
#define C_DIM 0xFF8A8F9Cu
#define C_ACCENT 0xFFF0A040u
#define C_HOVER 0xFF5FD7FFu
#define C_SEL 0xFFFFFFFFu
#define C_POS 0xFFF08A3Cu  /* softmax₁ bars, positive differences */
#define C_NEG 0xFF5AA0F0u  /* negative differences */
#define C_S2 0xFF9A8CF0u   /* λ·softmax₂ bars */
#define C_GN 0xFF55C8A8u   /* GroupNorm scale bars */

static void set_color(SDL_Renderer *r, uint32_t c) {
    SDL_SetRenderDrawColor(r, (c >> 16) & 255, (c >> 8) & 255, c & 255, (c >> 24) & 255);
}

static void fill(SDL_Renderer *r, int x, int y, int w, int h, uint32_t c) {
    SDL_Rect rc = {x, y, w, h};
    set_color(r, c);
    SDL_RenderFillRect(r, &rc);
}

static void outline(SDL_Renderer *r, int x, int y, int w, int h, uint32_t c) {
    SDL_Rect rc = {x, y, w, h};
    set_color(r, c);
    SDL_RenderDrawRect(r, &rc);
}

static void hline(SDL_Renderer *r, int x0, int x1, int y, uint32_t c) {
    set_color(r, c);
    SDL_RenderDrawLine(r, x0, y, x1, y);
}

/* Short form of a value for ticks and tooltips. */
static void fmt_value(float x, char *buf, int n) {
    float a = fabsf(x);
    if (isnan(x)) snprintf(buf, n, "\u2013");
    else if (x == 0) snprintf(buf, n, "0");
    else if (a >= 0.01f && a < 1000) snprintf(buf, n, a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3f", x);
    else snprintf(buf, n, "%.1e", x);
    /* A minus sign, not a hyphen. */
    if (buf[0] == '-' && n > 4) {
        memmove(buf + 3, buf + 1, strlen(buf));
        memcpy(buf, "\u2212", 3);
    }
}

/* Smallest step of 1, 2, 5, 10, 20, 50, ... that is at least NEED. */
static int nice_step(double need) {
    int base = 1;
    for (;;) {
        if (base >= need) return base;
        if (2 * base >= need) return 2 * base;
        if (5 * base >= need) return 5 * base;
        base *= 10;
        if (base > 1000000) return base;
    }
}

/* Label of token I shortened to fit MAXW pixels in font F. When only every STEP-th token is
 * labelled (STEP > 1) the label starts with the token's index; a rotated key label then holds
 * the index alone (its length is short). */
static void token_label(const viewer *v, int i, int step, font_id f, int maxw, int rotated, char *out,
                        int n) {
    char full[160], cut[160];
    if (step > 1 && rotated) {
        snprintf(out, n, "%d", i);
        return;
    }
    if (step > 1) snprintf(full, sizeof full, "%d %s", i, v->info->tokens[i]);
    else snprintf(full, sizeof full, "%s", v->info->tokens[i]);
    for (int maxch = 24; maxch >= 1; maxch -= 2) {
        text_truncate(full, maxch, cut, sizeof cut);
        if (text_width(f, cut) <= maxw) break;
    }
    snprintf(out, n, "%s", cut);
}

/* ---- heatmaps ---- */

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
        if (step <= 1) q0 = (int)floor(v->view_q0 + (py + 0.5) * step), q1 = q0 + 1;
        else q0 = (int)floor(v->view_q0 + py * step), q1 = (int)ceil(v->view_q0 + (py + 1) * step);
        if (q1 > T) q1 = T;
        if (q0 >= q1) q0 = q1 - 1;
        uint32_t *row = p->pixels + (size_t)py * S;
        for (int px = 0; px < S; px++) {
            int k0, k1;
            if (step <= 1) k0 = (int)floor(v->view_k0 + (px + 0.5) * step), k1 = k0 + 1;
            else k0 = (int)floor(v->view_k0 + px * step), k1 = (int)ceil(v->view_k0 + (px + 1) * step);
            if (k1 > T) k1 = T;
            if (k0 >= k1) k0 = k1 - 1;
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
        set_color(r, cmap_color_at(p->scale.kind, 1.0f - (float)y / (b->h - 1)));
        SDL_RenderDrawLine(r, b->x, b->y + y, b->x + b->w - 1, b->y + y);
    }
    outline(r, b->x - 1, b->y - 1, b->w + 2, b->h + 2, C_GRID);
    int fh = text_height(FONT_SMALL);
    for (int i = 0; i <= 4; i++) {
        float t = i / 4.0f;
        int y = b->y + (int)lrintf((1 - t) * (b->h - 1));
        char buf[32];
        fmt_value(cmap_value_at(&p->scale, t), buf, sizeof buf);
        hline(r, b->x + b->w, b->x + b->w + 3, y, C_DIM);
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

static void draw_panel(viewer *v, panel *p, int first) {
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
    outline(r, m->x - 1, m->y - 1, m->w + 2, m->h + 2, C_GRID);

    /* Clip overlays to the map so partly visible cells do not spill over. */
    SDL_RenderSetClipRect(r, m);
    double y0 = cell_to_px(v, v->row, v->view_q0, m->y, m->h);
    double y1 = cell_to_px(v, v->row + 1, v->view_q0, m->y, m->h);
    int hgt = (int)lrint(y1 - y0) < 1 ? 1 : (int)lrint(y1 - y0);
    if (y1 >= m->y && y0 <= m->y + m->h) {
        /* Selected row: brackets at both edges, so the cells stay visible. */
        fill(r, m->x, (int)lrint(y0), 4, hgt, C_SEL);
        fill(r, m->x + m->w - 4, (int)lrint(y0), 4, hgt, C_SEL);
    }
    if (v->hover_q >= 0) {
        double hx0 = cell_to_px(v, v->hover_k, v->view_k0, m->x, m->w);
        double hx1 = cell_to_px(v, v->hover_k + 1, v->view_k0, m->x, m->w);
        double hy0 = cell_to_px(v, v->hover_q, v->view_q0, m->y, m->h);
        double hy1 = cell_to_px(v, v->hover_q + 1, v->view_q0, m->y, m->h);
        if (hx1 - hx0 >= 5)
            outline(r, (int)lrint(hx0), (int)lrint(hy0), (int)lrint(hx1 - hx0), (int)lrint(hy1 - hy0), C_HOVER);
        else {
            set_color(r, C_HOVER);
            SDL_RenderDrawLine(r, (int)hx0, m->y, (int)hx0, m->y + m->h);
            SDL_RenderDrawLine(r, m->x, (int)hy0, m->x + m->w, (int)hy0);
        }
    }
    SDL_RenderSetClipRect(r, NULL);
    draw_colorbar(v, p);
    draw_axis_labels(v, p, first);
}

/* ---- row profile ---- */

static float profile_value(const viewer *v, int chart, int k) {
    if (!v->diffllama) return viewer_value(v, PANEL_SOFTMAX, chart, v->row, k);
    return viewer_value(v, chart == 0 ? PANEL_SOFTMAX1 : chart == 1 ? PANEL_LSOFTMAX2 : PANEL_DIFF, 0, v->row, k);
}

static void draw_profile(viewer *v) {
    SDL_Renderer *r = v->ren;
    const layout_info *L = &v->lay;
    int q = v->row, nc = L->n_charts;
    char buf[256], lab[160];
    token_label(v, q, 1, FONT_UI, 300, 0, lab, sizeof lab);
    snprintf(buf, sizeof buf, "row profile \u00b7 query %d  %s", q, lab);
    text_draw(r, FONT_UI, buf, L->area.x, L->area.y, C_TEXT, ALIGN_LEFT);
    if (v->diffllama)
        text_draw(r, FONT_SMALL, "common-mode mass in both maps cancels in the difference \u00b7 click a row to select it",
                  L->area.x + L->area.w, L->area.y + 3, C_DIM, ALIGN_RIGHT);

    /* One scale for all charts, so the bars compare directly: the difference is drawn
     * around its own zero line, with room for its positive and negative parts. */
    float ymax = 0, pos = 0, neg = 0;
    for (int k = 0; k <= q; k++) {
        for (int c = 0; c < (v->diffllama ? 2 : nc); c++) {
            float x = fabsf(profile_value(v, c, k));
            if (x > ymax) ymax = x;
        }
        if (v->diffllama) {
            float d = profile_value(v, 2, k);
            if (d > pos) pos = d;
            if (-d > neg) neg = -d;
        }
    }
    if (pos + neg > ymax) ymax = pos + neg;
    if (!(ymax > 0)) ymax = 1;

    const char *names[3] = {"softmax\u2081", "\u03bb\u00b7softmax\u2082", "difference"};
    uint32_t colors[LLAMA_PANELS] = {C_POS, v->diffllama ? C_S2 : C_POS, C_POS, C_POS};
    int is_diff[LLAMA_PANELS] = {0, 0, v->diffllama, 0};
    for (int c = 0; c < nc; c++) {
        const SDL_Rect *ch = &L->chart[c];
        fill(r, ch->x, ch->y, ch->w, ch->h, C_PANEL);
        double u = (ch->h - 4) / ymax; /* pixels per unit */
        int base = ch->y + ch->h - 2;
        if (is_diff[c]) base = ch->y + 2 + (int)lrint((ch->h - 4 - (pos + neg) * u) / 2 + pos * u);
        char name[48];
        uint32_t ncol = is_diff[c] ? C_TEXT : colors[c];
        if (v->diffllama) snprintf(name, sizeof name, "%s", names[c]);
        else {
            snprintf(name, sizeof name, "head %d", v->li->heads[v->lwin + c]);
            ncol = v->lwin + c == v->head ? C_ACCENT : C_TEXT;
        }
        text_draw(r, FONT_UI, name, ch->x - 8, ch->y + 2, ncol, ALIGN_RIGHT);
        char tick[32];
        fmt_value(ymax, tick, sizeof tick);
        char line[48];
        snprintf(line, sizeof line, "full height %s", tick);
        text_draw(r, FONT_SMALL, line, ch->x - 8, ch->y + 20, C_DIM, ALIGN_RIGHT);
        /* Masked keys (after the query) are shaded. */
        double xm = cell_to_px(v, q + 1, v->view_k0, ch->x, ch->w);
        if (xm < ch->x + ch->w) {
            int x0 = xm < ch->x ? ch->x : (int)lrint(xm);
            fill(r, x0, ch->y, ch->x + ch->w - x0, ch->h, 0xFF191A20u);
        }
        hline(r, ch->x, ch->x + ch->w - 1, base, C_GRID);
        /* Bars: one per key when a key is at least 2 px wide, else one per pixel column with
         * the pooled value (largest, or largest magnitude for the difference). */
        double colw = (double)ch->w / v->span;
        int k0 = (int)floor(v->view_k0), k1 = (int)ceil(v->view_k0 + v->span);
        if (k1 > v->T) k1 = v->T;
        SDL_RenderSetClipRect(r, ch);
        if (colw >= 2) {
            for (int k = k0; k < k1 && k <= q; k++) {
                float x = profile_value(v, c, k);
                if (isnan(x)) continue;
                double xa = cell_to_px(v, k, v->view_k0, ch->x, ch->w);
                int bw = (int)lrint(colw) - (colw >= 5 ? 2 : 1);
                int bh = (int)lrint(fabs(x) * u);
                uint32_t col = is_diff[c] && x < 0 ? C_NEG : colors[c];
                if (k == v->hover_k) col = C_HOVER;
                fill(r, (int)lrint(xa) + (colw >= 5 ? 1 : 0), x >= 0 ? base - bh : base + 1, bw < 1 ? 1 : bw, bh, col);
            }
        } else {
            for (int px = 0; px < ch->w; px++) {
                int ka = (int)floor(v->view_k0 + px * v->span / ch->w);
                int kb = (int)ceil(v->view_k0 + (px + 1) * v->span / ch->w);
                float best = NAN;
                for (int k = ka; k < kb && k <= q && k < v->T; k++) {
                    float x = profile_value(v, c, k);
                    if (!(fabsf(x) <= fabsf(best))) best = x;
                }
                if (isnan(best)) continue;
                int bh = (int)lrint(fabs(best) * u);
                set_color(r, is_diff[c] && best < 0 ? C_NEG : colors[c]);
                SDL_RenderDrawLine(r, ch->x + px, best >= 0 ? base : base + 1, ch->x + px,
                                   best >= 0 ? base - bh : base + bh);
            }
        }
        SDL_RenderSetClipRect(r, NULL);
    }
    /* Key labels under the last chart. */
    const SDL_Rect *last = &L->chart[nc - 1];
    double cell = (double)last->w / v->span;
    int step = nice_step((text_height(FONT_LABEL) + 1) / cell);
    int first = (int)ceil(v->view_k0 - 0.5);
    for (int k = first - first % step; k < v->view_k0 + v->span && k < v->T; k += step) {
        if (k < 0) continue;
        double xc = cell_to_px(v, k + 0.5, v->view_k0, last->x, last->w);
        if (xc < last->x || xc > last->x + last->w) continue;
        token_label(v, k, step, FONT_LABEL, 56, 1, lab, sizeof lab);
        text_draw_up(r, FONT_LABEL, lab, (int)xc, last->y + last->h + 4, k == v->hover_k ? C_HOVER : C_DIM);
    }
}

/* ---- per-head strip ---- */

static void draw_strip(viewer *v) {
    SDL_Renderer *r = v->ren;
    const SDL_Rect *s = &v->lay.strip;
    const dv_layer_info *li = v->li;
    int hs = li->n_heads;
    char buf[200];
    if (v->diffllama)
        snprintf(buf, sizeof buf, "heads of layer %d at query %d \u00b7 noise mass: share of softmax\u2081 "
                 "cancelled by \u03bb\u00b7softmax\u2082 \u00b7 GN scale: GroupNorm factor \u00b7 click to select",
                 v->layer, v->row);
    else
        snprintf(buf, sizeof buf, "heads of layer %d at query %d \u00b7 entropy / log(q+1) \u00b7 largest "
                 "weight \u00b7 click to select", v->layer, v->row);
    text_draw(r, FONT_SMALL, buf, s->x, s->y, C_DIM, ALIGN_LEFT);
    const char *rowname[2] = {v->diffllama ? "noise mass" : "entropy", v->diffllama ? "GN scale" : "max weight"};
    uint32_t rowcol[2] = {v->diffllama ? C_POS : C_S2, C_GN};
    int top = s->y + 16, rh = 20;
    float bmax = 0;
    for (int h = 0; h < hs; h++)
        if (v->strip_b[h] > bmax) bmax = v->strip_b[h];
    if (!(bmax > 0)) bmax = 1;
    for (int row = 0; row < 2; row++)
        text_draw(r, FONT_LABEL, rowname[row], s->x - 8, top + row * (rh + 2) + 3, rowcol[row], ALIGN_RIGHT);
    int fh = text_height(FONT_SMALL);
    for (int h = 0; h < hs; h++) {
        int x0 = s->x + (int)((long)s->w * h / hs), x1 = s->x + (int)((long)s->w * (h + 1) / hs);
        int cw = x1 - x0 - 2;
        if (h == v->head) fill(r, x0, top - 2, x1 - x0 - 1, 2 * rh + 6 + fh, 0xFF343846u);
        else if (!v->diffllama && h >= v->lwin && h < v->lwin + v->n_lheads) /* shown, not selected */
            fill(r, x0, top - 2, x1 - x0 - 1, 2 * rh + 6 + fh, 0xFF262932u);
        for (int row = 0; row < 2; row++) {
            float val = row == 0 ? v->strip_a[h] : v->strip_b[h];
            float frac = row == 0 ? val : val / bmax;
            int y = top + row * (rh + 2);
            fill(r, x0 + 1, y, cw, rh, C_PANEL);
            if (!isnan(val)) {
                int bw = (int)lrintf((frac < 0 ? 0 : frac > 1 ? 1 : frac) * cw);
                fill(r, x0 + 1, y, bw, rh, rowcol[row]);
                if (cw >= 40) {
                    char vb[24];
                    fmt_value(val, vb, sizeof vb);
                    text_draw(r, FONT_SMALL, vb, x0 + 4, y + (rh - fh) / 2, 0xFFFFFFFFu, ALIGN_LEFT);
                }
            }
        }
        if (cw >= 14 || h % nice_step(14.0 / (cw + 2)) == 0) {
            snprintf(buf, sizeof buf, "%d", li->heads[h]);
            text_draw(r, FONT_SMALL, buf, (x0 + x1) / 2, top + 2 * rh + 4, h == v->head ? C_SEL : C_DIM, ALIGN_CENTER);
        }
    }
}

/* ---- top bar and λ slider ---- */

static void draw_top(viewer *v) {
    SDL_Renderer *r = v->ren;
    const dv_dump_info *in = v->info;
    char buf[512];
    int x = 14;
    x += text_draw(r, FONT_TITLE, "diffscope-view", x, 10, C_ACCENT, ALIGN_LEFT) + 12;
    snprintf(buf, sizeof buf, "%s \u00b7 %s \u00b7 layer %d (of %d) \u00b7 head %d (%d of %d dumped) \u00b7 %d tokens%s",
             v->dump_name, v->diffllama ? "DiffLlama" : "Llama", v->layer, in->num_layers,
             v->li->heads[v->head], v->head + 1, v->li->n_heads, v->T, v->log_scale ? " \u00b7 log scale" : "");
    text_draw(r, FONT_UI, buf, x, 11, C_TEXT, ALIGN_LEFT);
    text_draw(r, FONT_UI, "h: help", v->win_w - 14, 11, C_DIM, ALIGN_RIGHT);
    if (!v->diffllama) {
        char cut[200];
        text_truncate(in->prompt, 100, cut, sizeof cut);
        snprintf(buf, sizeof buf, "heads %d\u2013%d shown \u00b7 prompt: %s", v->li->heads[v->lwin],
                 v->li->heads[v->lwin + v->n_lheads - 1], cut);
        text_draw(r, FONT_LABEL, buf, 14, 38, C_DIM, ALIGN_LEFT);
        return;
    }
    const dv_layer_info *li = v->li;
    char lm[32], li0[32], ln[32];
    snprintf(lm, sizeof lm, "%.4f", li->lambda_model);
    snprintf(li0, sizeof li0, "%.4f", li->lambda_init);
    snprintf(ln, sizeof ln, "%.4f", v->lambda);
    if (li->lambda_overridden)
        snprintf(buf, sizeof buf, "\u03bb now %s   \u00b7   dump \u03bb %.4f (overridden; model %s)   \u00b7   \u03bb_init %s",
                 ln, li->lambda_full, lm, li0);
    else
        snprintf(buf, sizeof buf, "\u03bb now %s   \u00b7   model \u03bb %s   \u00b7   \u03bb_init %s%s", ln, lm, li0,
                 v->lambda != li->lambda_full ? "   \u00b7   counterfactual (r resets)" : "");
    text_draw(r, FONT_UI, buf, 14, 38, v->lambda != li->lambda_full ? C_ACCENT : C_TEXT, ALIGN_LEFT);

    const SDL_Rect *s = &v->lay.slider;
    double lo, hi;
    slider_range(v, &lo, &hi);
    fill(r, s->x, s->y, s->w, s->h, C_GRID);
    int fh = text_height(FONT_SMALL);
    snprintf(buf, sizeof buf, "%.2f", lo);
    text_draw(r, FONT_SMALL, buf, s->x - 6, s->y - fh / 2 + 3, C_DIM, ALIGN_RIGHT);
    snprintf(buf, sizeof buf, "%.2f", hi);
    text_draw(r, FONT_SMALL, buf, s->x + s->w + 6, s->y - fh / 2 + 3, C_DIM, ALIGN_LEFT);
    text_draw(r, FONT_SMALL, "\u03bb", s->x + s->w + 40, s->y - fh / 2 + 3, C_DIM, ALIGN_LEFT);
    /* Marks: the model's λ and, when the dump overrode it, the dump's λ above the track;
     * λ_init below, so that close values stay legible. */
    struct { double val; uint32_t col; const char *name; int below; } marks[3] = {
        {li->lambda_model, C_TEXT, "model", 0}, {li->lambda_init, C_DIM, "\u03bb_init", 1},
        {li->lambda_full, C_ACCENT, "dump", 0}};
    for (int i = 0; i < (li->lambda_overridden ? 3 : 2); i++) {
        int mx = s->x + (int)lrint((marks[i].val - lo) / (hi - lo) * s->w);
        if (mx < s->x || mx > s->x + s->w) continue;
        fill(r, mx, s->y - 6, 2, s->h + 12, marks[i].col);
        text_draw(r, FONT_SMALL, marks[i].name, mx, marks[i].below ? s->y + s->h + 7 : s->y - 8 - fh,
                  marks[i].col, ALIGN_CENTER);
    }
    double lc = v->lambda < lo ? lo : v->lambda > hi ? hi : v->lambda;
    int kx = s->x + (int)lrint((lc - lo) / (hi - lo) * s->w);
    fill(r, s->x, s->y, kx - s->x, s->h, 0xFF8A5A20u);
    fill(r, kx - 5, s->y - 7, 10, s->h + 14, C_ACCENT);
}

/* ---- tooltip and help ---- */

static void draw_box(SDL_Renderer *r, int x, int y, int w, int h) {
    SDL_SetRenderDrawBlendMode(r, SDL_BLENDMODE_BLEND);
    fill(r, x, y, w, h, 0xF2101116u);
    SDL_SetRenderDrawBlendMode(r, SDL_BLENDMODE_NONE);
    outline(r, x, y, w, h, 0xFF4A4F5Cu);
}

static void draw_tooltip(viewer *v) {
    if (v->hover_q < 0) return;
    SDL_Renderer *r = v->ren;
    int q = v->hover_q, k = v->hover_k;
    char lines[8][200], a[160], b[160];
    int n = 0;
    token_label(v, q, 1, FONT_UI, 260, 0, a, sizeof a);
    token_label(v, k, 1, FONT_UI, 260, 0, b, sizeof b);
    snprintf(lines[n++], 200, "query %d  %s", q, a);
    snprintf(lines[n++], 200, "key %d  %s", k, b);
    const char *names[PANEL_KIND_COUNT] = {"softmax\u2081", "softmax\u2082", "\u03bb\u00b7softmax\u2082",
                                           "difference", "softmax", "Llama (--vs)"};
    if (k > q) snprintf(lines[n++], 200, "masked: the key comes after the query");
    else
        for (int i = 0; i < v->n_panels; i++) { /* one line per panel */
            const panel *p = &v->panels[i];
            char val[32];
            if (p->kind == PANEL_VS && !v->vs_li) continue;
            fmt_value(viewer_value(v, p->kind, p->slot, q, k), val, sizeof val);
            if (p->kind == PANEL_SOFTMAX)
                snprintf(lines[n++], 200, "head %d\t%s", v->li->heads[v->lwin + p->slot], val);
            else snprintf(lines[n++], 200, "%s\t%s", names[p->kind], val);
        }
    int fh = text_height(FONT_UI) + 2, w = 0;
    for (int i = 0; i < n; i++) {
        char *tab = strchr(lines[i], '\t');
        int lw = tab ? 130 + text_width(FONT_UI, tab + 1) : text_width(FONT_UI, lines[i]);
        if (lw > w) w = lw;
    }
    w += 20;
    int h = n * fh + 12, x = v->mouse_x + 18, y = v->mouse_y + 18;
    if (x + w > v->win_w - 4) x = v->mouse_x - 18 - w;
    if (y + h > v->win_h - 4) y = v->mouse_y - 18 - h;
    if (x < 4) x = 4;
    if (y < 4) y = 4;
    draw_box(r, x, y, w, h);
    for (int i = 0; i < n; i++) {
        char *tab = strchr(lines[i], '\t');
        if (tab) {
            *tab = 0;
            text_draw(r, FONT_UI, lines[i], x + 10, y + 6 + i * fh, C_DIM, ALIGN_LEFT);
            text_draw(r, FONT_UI, tab + 1, x + w - 10, y + 6 + i * fh, C_TEXT, ALIGN_RIGHT);
        } else text_draw(r, FONT_UI, lines[i], x + 10, y + 6 + i * fh, i < 2 ? C_HOVER : C_DIM, ALIGN_LEFT);
    }
}

static const char *help_lines[][2] = {
    {"Right / Left", "next / previous head"},
    {"PageDown / PageUp  or  ] / [", "next / previous layer"},
    {"Down / Up", "select the next / previous query row"},
    {"point at a cell", "query, key and the value of every map there"},
    {"click a heatmap cell", "select its query row (row profile)"},
    {"click a head in the strip", "select that head"},
    {"mouse wheel,  + / -", "zoom in / out (about the pointer)"},
    {"drag", "pan"},
    {"0", "fit the whole prompt"},
    {"drag the \u03bb slider,  . / ,", "counterfactual \u03bb (+/- 0.01; with Shift 0.1)"},
    {"r", "reset \u03bb to the dump's \u03bb"},
    {"m", "set \u03bb to the model's own \u03bb (differs when the dump overrode it)"},
    {"l  (lower-case L)", "toggle the log colour scale"},
    {"v / V", "next / previous head of the --vs dump"},
    {"s", "save a screenshot (diffscope-view-L<l>-H<h>.png)"},
    {"h  ?  F1", "show / hide this help"},
    {"q  Escape", "quit (Escape closes this help first)"},
};

static void draw_help(viewer *v) {
    SDL_Renderer *r = v->ren;
    int n = sizeof help_lines / sizeof help_lines[0], fh = text_height(FONT_UI) + 6;
    int w = 620, h = n * fh + 70, x = (v->win_w - w) / 2, y = (v->win_h - h) / 2;
    draw_box(r, x, y, w, h);
    text_draw(r, FONT_TITLE, "diffscope-view keys", x + 20, y + 16, C_ACCENT, ALIGN_LEFT);
    for (int i = 0; i < n; i++) {
        text_draw(r, FONT_UI, help_lines[i][0], x + 20, y + 50 + i * fh, C_TEXT, ALIGN_LEFT);
        text_draw(r, FONT_UI, help_lines[i][1], x + 280, y + 50 + i * fh, C_DIM, ALIGN_LEFT);
    }
}

void render_frame(viewer *v) {
    SDL_Renderer *r = v->ren;
    set_color(r, C_BG);
    SDL_RenderClear(r);
    draw_top(v);
    for (int i = 0; i < v->n_panels; i++) draw_panel(v, &v->panels[i], i == 0);
    draw_profile(v);
    draw_strip(v);
    if (v->show_help) draw_help(v);
    else draw_tooltip(v);
}
