/* PNG output: from a window's renderer (the 's' key) or headless, drawing one frame with a
 * software renderer on a memory surface, so no display or video driver is needed. */
#include <SDL_image.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "diffscope/error.h"
#include "io/outfile.h"
#include "viewer.h"

/* Writes SURF (any format) as an RGB image at PATH, through a temporary file (the rules of
 * src/io/outfile.h, with --force always: the viewer's user names the file to write): BMP when
 * PATH ends in .bmp (the tests read those without an image library), else PNG. */
static int save_surface(SDL_Surface *surf, const char *path) {
    size_t n = strlen(path);
    int bmp = n > 4 && !strcasecmp(path + n - 4, ".bmp");
    SDL_Surface *rgb = SDL_ConvertSurfaceFormat(surf, SDL_PIXELFORMAT_RGB24, 0);
    if (!rgb) return ds_fail("%s: cannot convert the frame: %s", path, SDL_GetError());
    ds_outfile out;
    if (ds_outfile_create(&out, path, 1)) {
        SDL_FreeSurface(rgb);
        return -1;
    }
    FILE *f = fdopen(out.fd, "wb");
    if (f) out.fd = -1; /* the stream owns it now */
    SDL_RWops *rw = f ? SDL_RWFromFP(f, SDL_FALSE) : NULL;
    int rc = !rw ? -1 : bmp ? SDL_SaveBMP_RW(rgb, rw, 1) : IMG_SavePNG_RW(rgb, rw, 1);
    SDL_FreeSurface(rgb);
    const char *why = rc < 0 ? (bmp || !rw ? SDL_GetError() : IMG_GetError()) : NULL;
    if (f) {
        int bad = fflush(f) != 0 || ferror(f);
        bad |= fclose(f) != 0;
        if (bad && !why) why = strerror(errno);
    }
    if (why) {
        ds_outfile_abort(&out);
        return ds_failc(DS_ERR_IO, "%s: cannot write the image: %s", path, why);
    }
    return ds_outfile_commit(&out);
}

int screenshot_save(SDL_Renderer *ren, int w, int h, const char *path) {
    SDL_Surface *s = SDL_CreateRGBSurfaceWithFormat(0, w, h, 32, SDL_PIXELFORMAT_ARGB8888);
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory for a %dx%d screenshot", w, h);
    int rc = SDL_RenderReadPixels(ren, NULL, SDL_PIXELFORMAT_ARGB8888, s->pixels, s->pitch);
    rc = rc < 0 ? ds_fail("%s: cannot read the frame back: %s", path, SDL_GetError()) : save_surface(s, path);
    SDL_FreeSurface(s);
    return rc;
}

/* Name of panel P in the layout lines; a Llama head's panel is softmax_h<head>. */
static const char *panel_key(const viewer *v, const panel *p, char *buf, int n) {
    static const char *names[PANEL_KIND_COUNT] = {"softmax1", "softmax2", "lambda_softmax2", "diff",
                                                  "softmax", "vs"};
    if (p->kind == PANEL_SOFTMAX) snprintf(buf, n, "softmax_h%d", v->li->heads[v->lwin + p->slot]);
    else snprintf(buf, n, "%s", names[p->kind]);
    return buf;
}

/* The geometry a test needs to find a cell in the picture, one line per item. */
static void print_layout(const viewer *v) {
    printf("view k0=%.4f q0=%.4f span=%.4f tokens=%d\n", v->view_k0, v->view_q0, v->span, v->T);
    for (int i = 0; i < v->n_panels; i++) {
        const panel *p = &v->panels[i];
        char name[32];
        printf("panel %s x=%d y=%d size=%d bar_x=%d bar_y=%d bar_w=%d bar_h=%d vmax=%.6g log=%d\n",
               panel_key(v, p, name, sizeof name), p->map.x, p->map.y, p->map.w, p->bar.x, p->bar.y, p->bar.w,
               p->bar.h, p->scale.vmax, p->scale.log);
    }
    for (int i = 0; i < v->lay.n_charts; i++)
        printf("chart %d x=%d y=%d w=%d h=%d\n", i, v->lay.chart[i].x, v->lay.chart[i].y,
               v->lay.chart[i].w, v->lay.chart[i].h);
    printf("strip x=%d y=%d w=%d h=%d heads=%d\n", v->lay.strip.x, v->lay.strip.y, v->lay.strip.w,
           v->lay.strip.h, v->li->n_heads);
    if (v->lay.slider.w > 0) {
        double lo, hi;
        slider_range(v, &lo, &hi);
        printf("slider x=%d y=%d w=%d h=%d lo=%.4f hi=%.4f\n", v->lay.slider.x, v->lay.slider.y,
               v->lay.slider.w, v->lay.slider.h, lo, hi);
    }
    fflush(stdout);
}

int screenshot_headless(viewer *v, int w, int h, const char *path, int want_layout) {
    SDL_Surface *s = SDL_CreateRGBSurfaceWithFormat(0, w, h, 32, SDL_PIXELFORMAT_ARGB8888);
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory for a %dx%d screenshot", w, h);
    SDL_Renderer *ren = SDL_CreateSoftwareRenderer(s);
    if (!ren) {
        SDL_FreeSurface(s);
        return ds_fail("cannot create a software renderer: %s", SDL_GetError());
    }
    v->ren = ren;
    layout_compute(v, w, h);
    if (v->hover_q >= 0) {
        /* --hover: the pointer at the centre of the cell in the difference (or only) panel. */
        const SDL_Rect *m = &v->panels[v->differential ? 3 : 0].map;
        v->mouse_x = (int)cell_to_px(v, v->hover_k + 0.5, v->view_k0, m->x, m->w);
        v->mouse_y = (int)cell_to_px(v, v->hover_q + 0.5, v->view_q0, m->y, m->h);
    }
    render_frame(v);
    SDL_RenderPresent(ren);
    if (want_layout) print_layout(v);
    int rc = save_surface(s, path);
    render_release(v);
    SDL_DestroyRenderer(ren);
    SDL_FreeSurface(s);
    v->ren = NULL;
    return rc;
}
