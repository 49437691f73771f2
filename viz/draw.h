/* Drawing helpers and colours shared by the render_*.c files. */
#ifndef DIFFSCOPE_VIZ_DRAW_H
#define DIFFSCOPE_VIZ_DRAW_H
#include <SDL.h>
#include <stdint.h>
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

void draw_color(SDL_Renderer *r, uint32_t c);
void draw_fill(SDL_Renderer *r, int x, int y, int w, int h, uint32_t c);
void draw_outline(SDL_Renderer *r, int x, int y, int w, int h, uint32_t c);
void draw_hline(SDL_Renderer *r, int x0, int x1, int y, uint32_t c);
/* A translucent box with a border, for the tooltip and the help overlay. */
void draw_box(SDL_Renderer *r, int x, int y, int w, int h);
/* Short form of a value for ticks and tooltips. */
void fmt_value(float x, char *buf, int n);
/* Smallest step of 1, 2, 5, 10, 20, 50, ... that is at least NEED. */
int nice_step(double need);
/* Label of token I shortened to fit MAXW pixels in font F. When only every STEP-th token is
 * labelled (STEP > 1) the label starts with the token's index; a ROTATED key label then holds
 * the index alone (its length is short). */
void token_label(const viewer *v, int i, int step, font_id f, int maxw, int rotated, char *out, int n);

/* render_maps.c: one heatmap panel with its title, overlays, colour bar and labels. */
void render_panel(viewer *v, panel *p, int first);
/* render_profile.c */
void render_profile(viewer *v);
void render_strip(viewer *v);

#endif
