/* Text drawing with SDL2_ttf (DejaVu Sans) and a cache of rendered strings, so redrawing
 * hundreds of token labels per frame costs texture copies, not glyph rendering. */
#ifndef DIFFSCOPE_VIZ_TEXT_H
#define DIFFSCOPE_VIZ_TEXT_H
#include <SDL.h>
#include <stdint.h>

#define DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

typedef enum { FONT_LABEL, FONT_SMALL, FONT_UI, FONT_TITLE, FONT_COUNT } font_id;
typedef enum { ALIGN_LEFT, ALIGN_CENTER, ALIGN_RIGHT } text_align;

/* Opens the font at PATH (NULL: $DIFFSCOPE_FONT, else DEFAULT_FONT) in every size; the bold
 * face is looked for beside it (…-Bold.ttf) and the regular one used when absent. On failure
 * returns -1 with a message that names the path. */
int text_init(const char *path);
void text_quit(void);
/* Drops cached textures (they belong to one renderer). */
void text_clear_cache(void);
int text_height(font_id f);
int text_width(font_id f, const char *s);
/* Draws S with its top at Y; X is its left, centre or right edge by ALIGN. Returns the width. */
int text_draw(SDL_Renderer *r, font_id f, const char *s, int x, int y, uint32_t argb, text_align align);
/* Draws S rotated to read bottom-to-top, its last character at Y (top), centred on X. */
void text_draw_up(SDL_Renderer *r, font_id f, const char *s, int x, int y, uint32_t argb);
/* Copies at most MAXCH characters of UTF-8 S into OUT, ending with … when cut. */
void text_truncate(const char *s, int maxch, char *out, int outsize);

#endif
