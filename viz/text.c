/* Fonts and the text texture cache. */
#include "text.h"
#include <SDL_ttf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"

static const int font_px[FONT_COUNT] = {12, 11, 14, 15};
static TTF_Font *fonts[FONT_COUNT];

/* Open-addressing table keyed by (font, colour, string); emptied when half full. */
#define CACHE_SIZE 4096
typedef struct {
    char *s;
    font_id f;
    uint32_t argb;
    SDL_Texture *tex;
    int w, h;
} cache_entry;
static cache_entry cache[CACHE_SIZE];
static int cache_used;

int text_init(const char *path) {
    if (!path) path = getenv("DIFFSCOPE_FONT");
    if (!path || !*path) path = DEFAULT_FONT;
    if (!TTF_WasInit() && TTF_Init() < 0) return ds_fail("SDL_ttf: %s", TTF_GetError());
    char bold[1024];
    const char *dot = strrchr(path, '.');
    snprintf(bold, sizeof bold, "%.*s-Bold%s", dot ? (int)(dot - path) : (int)strlen(path), path,
             dot ? dot : "");
    for (int i = 0; i < FONT_COUNT; i++) {
        int want_bold = i == FONT_TITLE;
        fonts[i] = want_bold ? TTF_OpenFont(bold, font_px[i]) : NULL;
        if (!fonts[i]) fonts[i] = TTF_OpenFont(path, font_px[i]);
        if (!fonts[i]) {
            text_quit();
            return ds_fail("cannot open font %s (install fonts-dejavu-core, or set DIFFSCOPE_FONT "
                           "or --font to a .ttf file)", path);
        }
        TTF_SetFontHinting(fonts[i], TTF_HINTING_LIGHT);
    }
    return 0;
}

void text_clear_cache(void) {
    for (int i = 0; i < CACHE_SIZE; i++) {
        if (cache[i].tex) SDL_DestroyTexture(cache[i].tex);
        free(cache[i].s);
        memset(&cache[i], 0, sizeof cache[i]);
    }
    cache_used = 0;
}

void text_quit(void) {
    text_clear_cache();
    for (int i = 0; i < FONT_COUNT; i++) {
        if (fonts[i]) TTF_CloseFont(fonts[i]);
        fonts[i] = NULL;
    }
    if (TTF_WasInit()) TTF_Quit();
}

int text_height(font_id f) { return TTF_FontHeight(fonts[f]); }

int text_width(font_id f, const char *s) {
    int w = 0, h = 0;
    if (*s) TTF_SizeUTF8(fonts[f], s, &w, &h);
    return w;
}

static uint32_t hash(const char *s, font_id f, uint32_t argb) {
    uint32_t h = 2166136261u ^ (uint32_t)f * 16777619u ^ argb;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static cache_entry *lookup(SDL_Renderer *r, font_id f, const char *s, uint32_t argb) {
    uint32_t i = hash(s, f, argb) % CACHE_SIZE;
    for (; cache[i].s; i = (i + 1) % CACHE_SIZE)
        if (cache[i].f == f && cache[i].argb == argb && !strcmp(cache[i].s, s)) return &cache[i];
    if (cache_used >= CACHE_SIZE / 2) {
        text_clear_cache();
        i = hash(s, f, argb) % CACHE_SIZE;
    }
    SDL_Color c = {(argb >> 16) & 255, (argb >> 8) & 255, argb & 255, (argb >> 24) & 255};
    SDL_Surface *surf = TTF_RenderUTF8_Blended(fonts[f], s, c);
    if (!surf) return NULL;
    SDL_Texture *tex = SDL_CreateTextureFromSurface(r, surf);
    int w = surf->w, h = surf->h;
    SDL_FreeSurface(surf);
    char *copy = strdup(s);
    if (!tex || !copy) {
        if (tex) SDL_DestroyTexture(tex);
        free(copy);
        return NULL;
    }
    cache[i] = (cache_entry){copy, f, argb, tex, w, h};
    cache_used++;
    return &cache[i];
}

int text_draw(SDL_Renderer *r, font_id f, const char *s, int x, int y, uint32_t argb, text_align align) {
    if (!s || !*s) return 0;
    cache_entry *e = lookup(r, f, s, argb);
    if (!e) return 0;
    SDL_Rect dst = {align == ALIGN_LEFT ? x : align == ALIGN_CENTER ? x - e->w / 2 : x - e->w, y,
                    e->w, e->h};
    SDL_RenderCopy(r, e->tex, NULL, &dst);
    return e->w;
}

void text_draw_up(SDL_Renderer *r, font_id f, const char *s, int x, int y, uint32_t argb) {
    if (!s || !*s) return;
    cache_entry *e = lookup(r, f, s, argb);
    if (!e) return;
    /* Rotating by -90° about the rectangle's centre turns a w×h box into h×w: put that
     * centre at (x, y + w/2) so the rotated text spans y .. y + w. */
    SDL_Rect dst = {x - e->w / 2, y + e->w / 2 - e->h / 2, e->w, e->h};
    SDL_RenderCopyEx(r, e->tex, NULL, &dst, -90.0, NULL, SDL_FLIP_NONE);
}

void text_truncate(const char *s, int maxch, char *out, int outsize) {
    int n = 0;
    const char *p = s;
    while (*p && n < maxch) {
        p++;
        while ((*p & 0xC0) == 0x80) p++;
        n++;
    }
    int bytes = (int)(p - s);
    if (!*p) snprintf(out, outsize, "%s", s);
    else if (bytes + 4 <= outsize) snprintf(out, outsize, "%.*s\u2026", bytes, s);
    else snprintf(out, outsize, "%.*s", outsize - 1, s);
}
