/* Keys and mouse. Every handler changes the viewer state; the main loop redraws. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"
#include "viewer.h"

void ui_print_state(const viewer *v) {
    static char last[256];
    char buf[256];
    snprintf(buf, sizeof buf,
             "state layer=%d head=%d row=%d lambda=%.4f log=%d span=%.2f k0=%.2f q0=%.2f help=%d hover=%d,%d size=%dx%d",
             v->layer, v->li->heads[v->head], v->row, v->lambda, v->log_scale, v->span, v->view_k0,
             v->view_q0, v->show_help, v->hover_q, v->hover_k, v->win_w, v->win_h);
    if (!strcmp(buf, last)) return;
    snprintf(last, sizeof last, "%s", buf);
    printf("%s\n", buf);
    fflush(stdout);
}

int ui_goto(viewer *v, int layer_index, int head) {
    const ds_dump_info *in = v->info;
    if (layer_index < 0) layer_index = 0;
    if (layer_index >= in->n_layers) layer_index = in->n_layers - 1;
    int old_layer = v->layer, old_head = v->head;
    v->layer = in->layers[layer_index];
    const ds_dump_layer_info *li = ds_dump_reader_layer(v->dump, v->layer);
    if (li) {
        v->head = head < 0 ? 0 : head >= li->n_heads ? li->n_heads - 1 : head;
        if (v->layer == old_layer && v->head == old_head) return 0;
        if (viewer_load(v) == 0) {
            v->status[0] = 0;
            render_mark_dirty(v);
            return 0;
        }
    }
    /* Keep showing the previous head, and say why the move failed. */
    snprintf(v->status, sizeof v->status, "%s", ds_errmsg());
    fprintf(stderr, "diffscope-view: %s\n", ds_errmsg());
    v->layer = old_layer;
    v->head = old_head;
    v->li = NULL; /* force the buffers to be rebuilt for the old layer */
    if (viewer_load(v) < 0) return -1;
    render_mark_dirty(v);
    return 0;
}

static int layer_index(const viewer *v) {
    for (int i = 0; i < v->info->n_layers; i++)
        if (v->info->layers[i] == v->layer) return i;
    return 0;
}

static void set_row(viewer *v, int row) {
    if (row < 0) row = 0;
    if (row >= v->T) row = v->T - 1;
    v->row = row;
    if (viewer_load_strip(v) < 0) snprintf(v->status, sizeof v->status, "%s", ds_errmsg());
}

static void set_lambda(viewer *v, double lambda) {
    if (!v->differential) return;
    viewer_set_lambda(v, lambda);
    v->panels[2].dirty = v->panels[3].dirty = 1; /* λ·softmax₂ and the difference */
}

static void update_hover(viewer *v) {
    int q, k;
    v->hover_q = v->hover_k = -1;
    if (layout_hit(v, v->mouse_x, v->mouse_y, &q, &k) >= 0) {
        v->hover_q = q;
        v->hover_k = k;
    } else if (layout_profile_hit(v, v->mouse_x, v->mouse_y, &k) >= 0) {
        v->hover_q = v->row;
        v->hover_k = k;
    }
}

static int on_slider(const viewer *v, int x, int y) {
    const SDL_Rect *s = &v->lay.slider;
    return s->w > 0 && x >= s->x - 8 && x <= s->x + s->w + 8 && y >= s->y - 12 && y <= s->y + s->h + 12;
}

static void save_screenshot(viewer *v) {
    char path[128];
    snprintf(path, sizeof path, "diffscope-view-L%d-H%d.png", v->layer, v->li->heads[v->head]);
    if (screenshot_save(v->ren, v->win_w, v->win_h, path) < 0)
        snprintf(v->status, sizeof v->status, "%s", ds_errmsg());
    else snprintf(v->status, sizeof v->status, "saved %s", path);
}

static int on_key(viewer *v, const SDL_KeyboardEvent *e) {
    SDL_Keycode key = e->keysym.sym;
    int shift = (e->keysym.mod & KMOD_SHIFT) != 0;
    switch (key) {
    case SDLK_q: return 1;
    case SDLK_ESCAPE:
        if (!v->show_help) return 1;
        v->show_help = 0;
        break;
    case SDLK_RIGHT: ui_goto(v, layer_index(v), v->head + 1); break;
    case SDLK_LEFT: ui_goto(v, layer_index(v), v->head - 1); break;
    case SDLK_PAGEDOWN: case SDLK_RIGHTBRACKET: ui_goto(v, layer_index(v) + 1, v->head); break;
    case SDLK_PAGEUP: case SDLK_LEFTBRACKET: ui_goto(v, layer_index(v) - 1, v->head); break;
    case SDLK_DOWN: set_row(v, v->row + 1); break;
    case SDLK_UP: set_row(v, v->row - 1); break;
    case SDLK_PLUS: case SDLK_EQUALS: case SDLK_KP_PLUS:
        view_zoom(v, 0.8, -1, 0, 0);
        render_mark_dirty(v);
        break;
    case SDLK_MINUS: case SDLK_KP_MINUS:
        view_zoom(v, 1.25, -1, 0, 0);
        render_mark_dirty(v);
        break;
    case SDLK_0: case SDLK_KP_0:
        view_fit(v);
        render_mark_dirty(v);
        break;
    case SDLK_PERIOD: set_lambda(v, v->lambda + (shift ? 0.1 : 0.01)); break;
    case SDLK_COMMA: set_lambda(v, v->lambda - (shift ? 0.1 : 0.01)); break;
    case SDLK_r: set_lambda(v, viewer_lambda_dump(v)); break;
    case SDLK_m:
        if (v->differential) set_lambda(v, v->li->lambda_model);
        break;
    case SDLK_l:
        v->log_scale = !v->log_scale;
        render_mark_dirty(v);
        break;
    case SDLK_v:
        if (v->vs_li) {
            int n = v->vs_li->n_heads;
            v->vs_head = (v->vs_head + (shift ? n - 1 : 1)) % n;
            if (viewer_load_vs(v) < 0) snprintf(v->status, sizeof v->status, "%s", ds_errmsg());
            v->panels[v->n_panels - 1].dirty = 1;
        }
        break;
    case SDLK_s: save_screenshot(v); break;
    case SDLK_h: case SDLK_QUESTION: case SDLK_F1: v->show_help = !v->show_help; break;
    default: break;
    }
    return 0;
}

int ui_handle_event(viewer *v, const SDL_Event *e) {
    switch (e->type) {
    case SDL_QUIT: return 1;
    case SDL_KEYDOWN: return on_key(v, &e->key);
    case SDL_TEXTINPUT:
        /* '?' arrives as text on most layouts (Shift+/). */
        if (!strcmp(e->text.text, "?")) v->show_help = !v->show_help;
        return 0;
    case SDL_MOUSEWHEEL: {
        int p = layout_hit(v, v->mouse_x, v->mouse_y, NULL, NULL);
        if (p < 0 && layout_profile_hit(v, v->mouse_x, v->mouse_y, NULL) >= 0) p = -2;
        double steps = e->wheel.preciseY != 0 ? e->wheel.preciseY : e->wheel.y;
        view_zoom(v, pow(0.85, steps), p, v->mouse_x, v->mouse_y);
        render_mark_dirty(v);
        update_hover(v);
        return 0;
    }
    case SDL_MOUSEBUTTONDOWN: {
        if (e->button.button != SDL_BUTTON_LEFT) return 0;
        int x = e->button.x, y = e->button.y;
        if (on_slider(v, x, y)) {
            v->dragging_slider = 1;
            set_lambda(v, slider_lambda_at(v, x));
        } else if (layout_hit(v, x, y, NULL, NULL) >= 0 || layout_profile_hit(v, x, y, NULL) >= 0) {
            v->dragging = 1;
            v->drag_moved = 0;
            v->drag_x = x;
            v->drag_y = y;
            v->drag_k0 = v->view_k0;
            v->drag_q0 = v->view_q0;
        } else {
            int h = layout_strip_hit(v, x, y);
            if (h >= 0) ui_goto(v, layer_index(v), h);
        }
        return 0;
    }
    case SDL_MOUSEMOTION: {
        v->mouse_x = e->motion.x;
        v->mouse_y = e->motion.y;
        if (v->dragging_slider) set_lambda(v, slider_lambda_at(v, v->mouse_x));
        if (v->dragging) {
            int dx = v->mouse_x - v->drag_x, dy = v->mouse_y - v->drag_y;
            if (abs(dx) + abs(dy) > 3) v->drag_moved = 1;
            if (v->drag_moved) {
                double cell = (double)v->panels[0].map.w / v->span;
                v->view_k0 = v->drag_k0 - dx / cell;
                v->view_q0 = v->drag_q0 - dy / cell;
                view_clamp(v);
                render_mark_dirty(v);
            }
        }
        update_hover(v);
        return 0;
    }
    case SDL_MOUSEBUTTONUP: {
        if (e->button.button != SDL_BUTTON_LEFT) return 0;
        int q, p;
        if (v->dragging && !v->drag_moved && (p = layout_hit(v, e->button.x, e->button.y, &q, NULL)) >= 0) {
            set_row(v, q);
            /* Llama: a click in a head's panel also selects that head. */
            if (v->panels[p].kind == PANEL_SOFTMAX) ui_goto(v, layer_index(v), v->lwin + v->panels[p].slot);
        }
        v->dragging = v->dragging_slider = 0;
        return 0;
    }
    case SDL_WINDOWEVENT:
        if (e->window.event == SDL_WINDOWEVENT_LEAVE) v->hover_q = v->hover_k = -1;
        return 0;
    default: return 0;
    }
}
