/* Drawing primitives, value formatting and token labels shared by the renderers. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "draw.h"

void draw_color(SDL_Renderer *r, uint32_t c) {
    SDL_SetRenderDrawColor(r, (c >> 16) & 255, (c >> 8) & 255, c & 255, (c >> 24) & 255);
}

void draw_fill(SDL_Renderer *r, int x, int y, int w, int h, uint32_t c) {
    SDL_Rect rc = {x, y, w, h};
    draw_color(r, c);
    SDL_RenderFillRect(r, &rc);
}

void draw_outline(SDL_Renderer *r, int x, int y, int w, int h, uint32_t c) {
    SDL_Rect rc = {x, y, w, h};
    draw_color(r, c);
    SDL_RenderDrawRect(r, &rc);
}

void draw_hline(SDL_Renderer *r, int x0, int x1, int y, uint32_t c) {
    draw_color(r, c);
    SDL_RenderDrawLine(r, x0, y, x1, y);
}

void fmt_value(float x, char *buf, int n) {
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

int nice_step(double need) {
    int base = 1;
    for (;;) {
        if (base >= need) return base;
        if (2 * base >= need) return 2 * base;
        if (5 * base >= need) return 5 * base;
        base *= 10;
        if (base > 1000000) return base;
    }
}

void token_label(const viewer *v, int i, int step, font_id f, int maxw, int rotated, char *out,
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

void draw_box(SDL_Renderer *r, int x, int y, int w, int h) {
    SDL_SetRenderDrawBlendMode(r, SDL_BLENDMODE_BLEND);
    draw_fill(r, x, y, w, h, 0xF2101116u);
    SDL_SetRenderDrawBlendMode(r, SDL_BLENDMODE_NONE);
    draw_outline(r, x, y, w, h, 0xFF4A4F5Cu);
}
