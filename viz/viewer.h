/* The viewer's state and the modules that share it:
 *
 *   head_data.c   the maps of the current layer and head, read from the dump(s), the current
 *                 λ, and the per-head summary strip at the selected row
 *   layout.c      where every panel, chart and control lies for a window size, and the
 *                 mapping between screen pixels and token cells
 *   text.c        fonts and cached text textures
 *   draw.c        drawing primitives, colours, value and token label formatting (draw.h)
 *   render_maps.c a heatmap panel: pooled pixels, overlays, colour bar, token labels
 *   render_profile.c  the row profile charts and the per-head strip
 *   render.c      one frame: top bar and λ slider, panels, profile, strip, tooltip, help
 *   ui.c          keys and mouse
 *   screenshot.c  PNG output, headless (software renderer on a surface) or from a window
 *
 * Cells: row q is the query token, column k the key token. The view is a square window of
 * `span` cells starting at (view_k0, view_q0), shared by every heatmap panel. */
#ifndef DIFFSCOPE_VIZ_VIEWER_H
#define DIFFSCOPE_VIZ_VIEWER_H
#include <SDL.h>
#include <stdint.h>
#include "colormap.h"
#include "diffscope/dump_reader.h"

typedef enum {
    PANEL_SOFTMAX1,   /* DiffLlama softmax1 */
    PANEL_SOFTMAX2,   /* DiffLlama softmax2 */
    PANEL_LSOFTMAX2,  /* λ·softmax2 at the current λ */
    PANEL_DIFF,       /* softmax1 − λ·softmax2 at the current λ */
    PANEL_SOFTMAX,    /* Llama dump: the softmax map of one of the heads shown */
    PANEL_VS,         /* --vs Llama dump: a head of the same layer */
    PANEL_KIND_COUNT
} panel_kind;

#define MAX_PANELS 5
/* A Llama dump shows this many consecutive heads side by side. */
#define LLAMA_PANELS 4

typedef struct {
    panel_kind kind;
    int slot;            /* PANEL_SOFTMAX: which of the heads shown (0 .. LLAMA_PANELS-1) */
    SDL_Rect map;        /* the square heatmap */
    SDL_Rect bar;        /* its colour bar */
    cmap_scale scale;
    SDL_Texture *tex;
    int tex_size;
    int dirty;           /* pixels must be recomputed */
    uint32_t *pixels;    /* tex_size² ARGB */
} panel;

typedef struct {
    SDL_Rect area;       /* the whole profile block */
    SDL_Rect chart[LLAMA_PANELS]; /* softmax1, λ·softmax2, difference; Llama: one per head shown */
    int n_charts;
    SDL_Rect strip;      /* per-head summary strip */
    SDL_Rect slider;     /* λ slider track (w = 0 for Llama) */
    int top_h;           /* height of the top bar */
    int font_px;         /* label font size */
} layout_info;

typedef struct viewer {
    /* Data */
    ds_dump_reader *dump, *vs;
    const ds_dump_info *info;
    int T;
    int differential;
    int layer;                   /* model layer number */
    int head;                    /* index among the layer's dumped heads */
    const ds_dump_layer_info *li;
    int vs_head;                 /* index among the --vs dump's heads of the same layer */
    const ds_dump_layer_info *vs_li;  /* NULL when --vs is absent or lacks this layer */
    float *s1, *s2, *diff_dump;  /* [T*T] DiffLlama maps of the head (diff_dump may be NULL) */
    float *lmaps[LLAMA_PANELS];  /* [T*T] Llama maps of heads lwin .. lwin+n_lheads-1 */
    int lmap_head[LLAMA_PANELS]; /* head index each lmaps buffer holds (-1: none) */
    int lwin, n_lheads;          /* Llama: first head shown and how many */
    float *vs_map;               /* [T*T] --vs head map */
    /* Colour scales: the largest value in view (viewer_update_scales), so a zoomed region of a
     * long map uses the whole colour range. */
    float vmax_soft, vmax_diff, vmax_vs;
    double scale_key[5];         /* the view, λ and data the scales were computed for */
    unsigned data_generation;    /* bumped whenever maps are (re)read */
    double lambda;               /* current λ (the slider) */
    /* Per-head summary at the selected row, all heads of the layer. */
    float *strip_s1, *strip_s2;  /* [Hs*T] row `row` of every head (softmax for Llama) */
    float *gn_scale;             /* [Hs*T] or NULL */
    float *strip_a, *strip_b;    /* [Hs] the two values shown per head */
    int strip_row;               /* row the strip rows were read for (-1: stale) */

    /* View */
    int row;                     /* selected query row (row profile) */
    double view_k0, view_q0, span;
    int log_scale;
    int show_help;
    int hover_q, hover_k;        /* -1 when the mouse is not over a cell */
    int mouse_x, mouse_y;
    int dragging, drag_moved, drag_x, drag_y;
    int dragging_slider;
    double drag_k0, drag_q0;

    /* Output */
    SDL_Renderer *ren;
    int win_w, win_h;
    panel panels[MAX_PANELS];
    int n_panels;
    layout_info lay;
    int print_state;             /* print a state line on stdout after every change */
    char status[256];            /* last error (a layer that failed to load), shown in the top bar */
    const char *dump_name;       /* base name of the dump, for the title */
} viewer;

/* head_data.c */
int viewer_load(viewer *v);                 /* (re)read the maps of layer/head and the strip */
int viewer_load_strip(viewer *v);
int viewer_load_vs(viewer *v);              /* (re)read the --vs map of layer/vs_head */           /* re-read row `row` of every head when stale */
void viewer_set_lambda(viewer *v, double lambda);
/* Recomputes the colour scales when the view, λ or the maps changed; 1 when it did. */
int viewer_update_scales(viewer *v);
double viewer_lambda_dump(const viewer *v); /* λ of the dumped diff (lambda_full) */
/* Value of panel KIND (SLOT: which Llama head shown) at cell (q, k); NaN for masked cells
 * (k > q) and absent maps. */
float viewer_value(const viewer *v, panel_kind kind, int slot, int q, int k);
void viewer_free_maps(viewer *v);
const char *panel_title(const viewer *v, const panel *p, char *buf, int n);

/* layout.c */
void layout_compute(viewer *v, int w, int h);
void view_fit(viewer *v);
void view_clamp(viewer *v);
/* Zooms by FACTOR (< 1 zooms in) around screen point (x, y) inside panel P. */
void view_zoom(viewer *v, double factor, int p, int x, int y);
/* Panel under screen point (x, y), or -1; with the cell when q/k are not NULL. */
int layout_hit(const viewer *v, int x, int y, int *q, int *k);
/* Screen x of the left edge of key column K (fractional view) in a rect of width W at X. */
double cell_to_px(const viewer *v, double cell, double origin, int px0, int size);
/* Chart of the row profile under (x, y): its index and the key, or -1. */
int layout_profile_hit(const viewer *v, int x, int y, int *k);
/* Head index of the strip cell under (x, y), or -1. */
int layout_strip_hit(const viewer *v, int x, int y);
/* λ at screen x on the slider, and the slider's range. */
double slider_lambda_at(const viewer *v, int x);
void slider_range(const viewer *v, double *lo, double *hi);

/* render.c */
void render_frame(viewer *v);
void render_mark_dirty(viewer *v);
/* Frees the panels' textures and pixels and the text cache; call before destroying the
 * renderer they belong to. */
void render_release(viewer *v);

/* ui.c: handles one event; returns 1 when the viewer should quit. */
int ui_handle_event(viewer *v, const SDL_Event *e);
void ui_print_state(const viewer *v);
/* Moves to layer index LI (in the dump's `layers`), head index HI; clamps both. */
int ui_goto(viewer *v, int layer_index, int head);

/* screenshot.c */
int screenshot_save(SDL_Renderer *ren, int w, int h, const char *path);
int screenshot_headless(viewer *v, int w, int h, const char *path, int print_layout);

#endif
