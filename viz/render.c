/* One frame: the top bar with the λ slider, the panels, the row profile, the strip, and the
 * tooltip or the help overlay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "draw.h"

/* ---- top bar and λ slider ---- */

static void draw_top(viewer *v) {
    SDL_Renderer *r = v->ren;
    const ds_dump_info *in = v->info;
    char buf[512];
    int x = 14;
    x += text_draw(r, FONT_TITLE, "diffscope-view", x, 10, C_ACCENT, ALIGN_LEFT) + 12;
    snprintf(buf, sizeof buf, "%s \u00b7 %s \u00b7 layer %d (of %d) \u00b7 head %d (%d of %d dumped) \u00b7 %d tokens%s",
             v->dump_name, ds_arch_get(in->arch)->label, v->layer, in->num_layers,
             v->li->heads[v->head], v->head + 1, v->li->n_heads, v->T, v->log_scale ? " \u00b7 log scale" : "");
    text_draw(r, FONT_UI, buf, x, 11, C_TEXT, ALIGN_LEFT);
    text_draw(r, FONT_UI, "h: help", v->win_w - 14, 11, C_DIM, ALIGN_RIGHT);
    if (!v->differential) {
        /* The text of the tokens (the prompt attribute is not read: see dump_reader.h). */
        char text[400] = "", cut[200];
        for (int i = 0; i < v->T && strlen(text) < 300; i++)
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s", in->tokens[i]);
        text_truncate(text, 100, cut, sizeof cut);
        snprintf(buf, sizeof buf, "heads %d\u2013%d shown \u00b7 tokens: %s", v->li->heads[v->lwin],
                 v->li->heads[v->lwin + v->n_lheads - 1], cut);
        text_draw(r, FONT_LABEL, buf, 14, 38, C_DIM, ALIGN_LEFT);
        return;
    }
    const ds_dump_layer_info *li = v->li;
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
    draw_fill(r, s->x, s->y, s->w, s->h, C_GRID);
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
        draw_fill(r, mx, s->y - 6, 2, s->h + 12, marks[i].col);
        text_draw(r, FONT_SMALL, marks[i].name, mx, marks[i].below ? s->y + s->h + 7 : s->y - 8 - fh,
                  marks[i].col, ALIGN_CENTER);
    }
    double lc = v->lambda < lo ? lo : v->lambda > hi ? hi : v->lambda;
    int kx = s->x + (int)lrint((lc - lo) / (hi - lo) * s->w);
    draw_fill(r, s->x, s->y, kx - s->x, s->h, 0xFF8A5A20u);
    draw_fill(r, kx - 5, s->y - 7, 10, s->h + 14, C_ACCENT);
}

/* ---- tooltip and help ---- */


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
                                           "difference", "softmax", "--vs"};
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
    if (viewer_update_scales(v)) render_mark_dirty(v);
    draw_color(r, C_BG);
    SDL_RenderClear(r);
    draw_top(v);
    for (int i = 0; i < v->n_panels; i++) render_panel(v, &v->panels[i], i == 0);
    render_profile(v);
    render_strip(v);
    if (v->show_help) draw_help(v);
    else draw_tooltip(v);
}

void render_release(viewer *v) {
    for (int i = 0; i < MAX_PANELS; i++) {
        if (v->panels[i].tex) SDL_DestroyTexture(v->panels[i].tex);
        free(v->panels[i].pixels);
        v->panels[i].tex = NULL;
        v->panels[i].pixels = NULL;
    }
    text_clear_cache();
}
