/* The row profile (aligned bar charts of the selected query row) and the per-head strip. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "draw.h"

static float profile_value(const viewer *v, int chart, int k) {
    if (!v->differential) return viewer_value(v, PANEL_SOFTMAX, chart, v->row, k);
    return viewer_value(v, chart == 0 ? PANEL_SOFTMAX1 : chart == 1 ? PANEL_LSOFTMAX2 : PANEL_DIFF, 0, v->row, k);
}

/* One scale for all charts, so the bars compare directly: the difference is drawn around its
 * own zero line, with room for its positive and negative parts (*POS above, *NEG below). */
static float profile_scale(const viewer *v, int nc, float *pos, float *neg) {
    float ymax = 0;
    *pos = *neg = 0;
    for (int k = 0; k <= v->row; k++) {
        for (int c = 0; c < (v->differential ? 2 : nc); c++) {
            float x = fabsf(profile_value(v, c, k));
            if (x > ymax) ymax = x;
        }
        if (v->differential) {
            float d = profile_value(v, 2, k);
            if (d > *pos) *pos = d;
            if (-d > *neg) *neg = -d;
        }
    }
    if (*pos + *neg > ymax) ymax = *pos + *neg;
    return ymax > 0 ? ymax : 1;
}

/* Chart C's background, name, full-height value and the shading of the masked keys. */
static void chart_frame(viewer *v, int c, const SDL_Rect *ch, float ymax, uint32_t name_color) {
    static const char *names[3] = {"softmax\u2081", "\u03bb\u00b7softmax\u2082", "difference"};
    SDL_Renderer *r = v->ren;
    draw_fill(r, ch->x, ch->y, ch->w, ch->h, C_PANEL);
    char name[48], tick[32], line[48];
    if (v->differential) snprintf(name, sizeof name, "%s", names[c]);
    else {
        snprintf(name, sizeof name, "head %d", v->li->heads[v->lwin + c]);
        name_color = v->lwin + c == v->head ? C_ACCENT : C_TEXT;
    }
    text_draw(r, FONT_UI, name, ch->x - 8, ch->y + 2, name_color, ALIGN_RIGHT);
    fmt_value(ymax, tick, sizeof tick);
    snprintf(line, sizeof line, "full height %s", tick);
    text_draw(r, FONT_SMALL, line, ch->x - 8, ch->y + 20, C_DIM, ALIGN_RIGHT);
    double xm = cell_to_px(v, v->row + 1, v->view_k0, ch->x, ch->w);
    if (xm < ch->x + ch->w) {
        int x0 = xm < ch->x ? ch->x : (int)lrint(xm);
        draw_fill(r, x0, ch->y, ch->x + ch->w - x0, ch->h, 0xFF191A20u);
    }
}

/* Chart C's bars from the zero line BASE, U pixels per unit: one per key when a key is at
 * least 2 px wide, else one per pixel column with the pooled value (largest, or largest
 * magnitude for the difference). */
static void chart_bars(viewer *v, int c, const SDL_Rect *ch, int base, double u, uint32_t color, int signed_bars) {
    SDL_Renderer *r = v->ren;
    int q = v->row;
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
            uint32_t col = signed_bars && x < 0 ? C_NEG : color;
            if (k == v->hover_k) col = C_HOVER;
            draw_fill(r, (int)lrint(xa) + (colw >= 5 ? 1 : 0), x >= 0 ? base - bh : base + 1, bw < 1 ? 1 : bw, bh, col);
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
            draw_color(r, signed_bars && best < 0 ? C_NEG : color);
            SDL_RenderDrawLine(r, ch->x + px, best >= 0 ? base : base + 1, ch->x + px, best >= 0 ? base - bh : base + bh);
        }
    }
    SDL_RenderSetClipRect(r, NULL);
}

/* Key labels under the last chart. */
static void key_labels(viewer *v, const SDL_Rect *last) {
    char lab[160];
    double cell = (double)last->w / v->span;
    int step = nice_step((text_height(FONT_LABEL) + 1) / cell);
    int first = (int)ceil(v->view_k0 - 0.5);
    for (int k = first - first % step; k < v->view_k0 + v->span && k < v->T; k += step) {
        if (k < 0) continue;
        double xc = cell_to_px(v, k + 0.5, v->view_k0, last->x, last->w);
        if (xc < last->x || xc > last->x + last->w) continue;
        token_label(v, k, step, FONT_LABEL, 56, 1, lab, sizeof lab);
        text_draw_up(v->ren, FONT_LABEL, lab, (int)xc, last->y + last->h + 4, k == v->hover_k ? C_HOVER : C_DIM);
    }
}

void render_profile(viewer *v) {
    SDL_Renderer *r = v->ren;
    const layout_info *L = &v->lay;
    int q = v->row, nc = L->n_charts;
    char buf[256], lab[160];
    token_label(v, q, 1, FONT_UI, 300, 0, lab, sizeof lab);
    snprintf(buf, sizeof buf, "row profile \u00b7 query %d  %s", q, lab);
    text_draw(r, FONT_UI, buf, L->area.x, L->area.y, C_TEXT, ALIGN_LEFT);
    if (v->differential)
        text_draw(r, FONT_SMALL, "common-mode mass in both maps cancels in the difference \u00b7 click a row to select it",
                  L->area.x + L->area.w, L->area.y + 3, C_DIM, ALIGN_RIGHT);
    float pos, neg, ymax = profile_scale(v, nc, &pos, &neg);
    uint32_t colors[LLAMA_PANELS] = {C_POS, v->differential ? C_S2 : C_POS, C_POS, C_POS};
    int is_diff[LLAMA_PANELS] = {0, 0, v->differential, 0};
    for (int c = 0; c < nc; c++) {
        const SDL_Rect *ch = &L->chart[c];
        double u = (ch->h - 4) / ymax; /* pixels per unit */
        int base = ch->y + ch->h - 2;
        if (is_diff[c]) base = ch->y + 2 + (int)lrint((ch->h - 4 - (pos + neg) * u) / 2 + pos * u);
        chart_frame(v, c, ch, ymax, is_diff[c] ? C_TEXT : colors[c]);
        draw_hline(r, ch->x, ch->x + ch->w - 1, base, C_GRID);
        chart_bars(v, c, ch, base, u, colors[c], is_diff[c]);
    }
    key_labels(v, &L->chart[nc - 1]);
}

void render_strip(viewer *v) {
    SDL_Renderer *r = v->ren;
    const SDL_Rect *s = &v->lay.strip;
    const ds_dump_layer_info *li = v->li;
    int hs = li->n_heads;
    char buf[200];
    if (v->differential)
        snprintf(buf, sizeof buf, "heads of layer %d at query %d \u00b7 cancelled share: of softmax\u2081 "
                 "cancelled by \u03bb\u00b7softmax\u2082 \u00b7 GN scale: GroupNorm factor \u00b7 click to select",
                 v->layer, v->row);
    else
        snprintf(buf, sizeof buf, "heads of layer %d at query %d \u00b7 entropy / log(q+1) \u00b7 largest "
                 "weight \u00b7 click to select", v->layer, v->row);
    text_draw(r, FONT_SMALL, buf, s->x, s->y, C_DIM, ALIGN_LEFT);
    const char *rowname[2] = {v->differential ? "cancelled" : "entropy", v->differential ? "GN scale" : "max weight"};
    uint32_t rowcol[2] = {v->differential ? C_POS : C_S2, C_GN};
    int top = s->y + 16, rh = 20;
    float bmax = 0;
    for (int h = 0; h < hs; h++)
        if (v->strip_b[h] > bmax) bmax = v->strip_b[h];
    if (!(bmax > 0)) bmax = 1;
    for (int row = 0; row < 2; row++)
        text_draw(r, FONT_LABEL, rowname[row], s->x - 8, top + row * (rh + 2) + 3, rowcol[row], ALIGN_RIGHT);
    int fh = text_height(FONT_SMALL);
    int no_gn = v->differential && !v->gn_scale;
    for (int h = 0; h < hs; h++) {
        int x0 = s->x + (int)((long)s->w * h / hs), x1 = s->x + (int)((long)s->w * (h + 1) / hs);
        int cw = x1 - x0 - 2;
        if (h == v->head) draw_fill(r, x0, top - 2, x1 - x0 - 1, 2 * rh + 6 + fh, 0xFF343846u);
        else if (!v->differential && h >= v->lwin && h < v->lwin + v->n_lheads) /* shown, not selected */
            draw_fill(r, x0, top - 2, x1 - x0 - 1, 2 * rh + 6 + fh, 0xFF262932u);
        for (int row = 0; row < 2; row++) {
            float val = row == 0 ? v->strip_a[h] : v->strip_b[h];
            float frac = row == 0 ? val : val / bmax;
            int y = top + row * (rh + 2);
            draw_fill(r, x0 + 1, y, cw, rh, C_PANEL);
            if (!isnan(val)) {
                int bw = (int)lrintf((frac < 0 ? 0 : frac > 1 ? 1 : frac) * cw);
                draw_fill(r, x0 + 1, y, bw, rh, rowcol[row]);
                if (cw >= 40) {
                    char vb[24];
                    fmt_value(val, vb, sizeof vb);
                    text_draw(r, FONT_SMALL, vb, x0 + 4, y + (rh - fh) / 2, 0xFFFFFFFFu, ALIGN_LEFT);
                }
            }
        }
        if (no_gn && h == 0)
            text_draw(r, FONT_SMALL, "no /groupnorm in this dump", x0 + 4, top + rh + 2 + (rh - fh) / 2, C_DIM,
                      ALIGN_LEFT);
        if (cw >= 14 || h % nice_step(14.0 / (cw + 2)) == 0) {
            snprintf(buf, sizeof buf, "%d", li->heads[h]);
            text_draw(r, FONT_SMALL, buf, (x0 + x1) / 2, top + 2 * rh + 4, h == v->head ? C_SEL : C_DIM, ALIGN_CENTER);
        }
    }
}
