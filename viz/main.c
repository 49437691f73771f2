/* diffscope-view: options, opening the dumps, then either one headless frame to PNG
 * (--screenshot) or the interactive window and its event loop. */
#include <SDL.h>
#include <SDL_image.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "diffscope/error.h"
#include "base/tmpfiles.h"
#include "io/outfile.h"
#include "text.h"
#include "viewer.h"

static const char usage_text[] =
    "usage: diffscope-view DUMP.h5 [options]\n"
    "\n"
    "Shows the attention maps of a diffscope dump: for DiffLlama softmax1, softmax2,\n"
    "lambda*softmax2 and their difference side by side; for standard attention (Llama, Qwen2,\n"
    "Qwen3) the softmax maps of four consecutive heads.\n"
    "\n"
    "options:\n";

static const char epilog[] =
    "\n"
    "Press h in the window for the keys. Exit status: 0 ok, 2 bad input, 3 no display/font.\n";

/* --range A:B and --hover Q:K: two token positions. */
typedef struct {
    int a, b, given;
} token_pair;

typedef struct {
    const char *dump, *vs, *screenshot, *font;
    int layer, head, vs_head, row; /* -1: not given */
    int log, print_layout, print_state, version;
    int have_lambda;
    token_pair range, hover; /* A:B, Q:K */
    double lambda;
    int w, h;
} options;

static int parse_token_pair(void *user, const char *arg) {
    token_pair *p = user;
    if (cli_parse_pair(arg, ':', "", 0, INT_MAX, &p->a, &p->b))
        return ds_fail("'%s' is not two token positions separated by ':' (integers in 0..%d)", arg, INT_MAX);
    p->given = 1;
    return 0;
}

static int parse_size(void *user, const char *arg) {
    options *o = user;
    if (cli_parse_pair(arg, 'x', "", 480, 8192, &o->w, &o->h) || o->w < 640)
        return ds_fail("'%s' is not WxH within 640x480..8192x8192", arg);
    return 0;
}

static int parse_lambda(void *user, const char *arg) {
    options *o = user;
    if (cli_parse_double(arg, "", -HUGE_VAL, HUGE_VAL, 0, &o->lambda)) return ds_fail("'%s' is not a number", arg);
    o->have_lambda = 1;
    return 0;
}

/* 0 to go on; otherwise the exit status, or -1 after --help or --version. */
static int parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = o->vs_head = o->row = -1;
    o->w = 1600;
    o->h = 960;
    const cli_opt opts[] = {
        {"vs", 0, CLI_STRING, &o->vs, 0, 0, "OTHER.h5",
         "a standard-attention dump of the same tokens, beside the DiffLlama maps"},
        {"layer", 0, CLI_INT, &o->layer, 0, INT_MAX, "L", "start at model layer L (default: the first layer in the dump)"},
        {"head", 0, CLI_INT, &o->head, 0, INT_MAX, "H", "start at model head H (default: the first head dumped)"},
        {"vs-head", 0, CLI_INT, &o->vs_head, 0, INT_MAX, "H", "model head of the --vs dump to show (default: its first)"},
        {"row", 0, CLI_INT, &o->row, 0, INT_MAX, "Q", "selected query row for the row profile (default: the last token)"},
        {"lambda", 0, CLI_CALL, o, 0, 0, "X", "counterfactual lambda for the difference (default: the dump's)",
         parse_lambda},
        {"log", 0, CLI_FLAG, &o->log, 0, 0, NULL, "logarithmic colour scale"},
        {"range", 0, CLI_CALL, &o->range, 0, 0, "A:B", "show tokens A..B-1 on both axes (default: all)",
         parse_token_pair},
        {"size", 0, CLI_CALL, o, 0, 0, "WxH", "window or screenshot size in pixels (default 1600x960)", parse_size},
        {"screenshot", 0, CLI_STRING, &o->screenshot, 0, 0, "OUT.png",
         "render one frame to OUT.png (OUT.bmp: BMP) without a display, exit"},
        {"hover", 0, CLI_CALL, &o->hover, 0, 0, "Q:K", "with --screenshot: show the tooltip of cell (query Q, key K)",
         parse_token_pair},
        {"print-layout", 0, CLI_FLAG, &o->print_layout, 0, 0, NULL, "with --screenshot: print the panel geometry on stdout"},
        {"print-state", 0, CLI_FLAG, &o->print_state, 0, 0, NULL,
         "print a line on stdout after every change (for scripted tests)"},
        {"font", 0, CLI_STRING, &o->font, 0, 0, "PATH", "TrueType font (default $DIFFSCOPE_FONT, else " DEFAULT_FONT ")"},
        {"version", 0, CLI_FLAG, &o->version, 0, 0, NULL, "the version"},
        {0}};
    const cli_cmd cmd = {NULL, usage_text, epilog, opts};
    int status;
    cli_progname = "diffscope-view";
    if (cli_parse(&cmd, argc, argv, &status)) return status == DS_EXIT_OK ? -1 : status;
    if (o->version) {
        printf("diffscope-view %s\n", DS_VERSION);
        return -1;
    }
    if (optind < argc) o->dump = argv[optind++];
    if (optind < argc) return cli_error("more than one dump given ('%s' and '%s')", o->dump, argv[optind]);
    if (!o->dump) return cli_error("no dump given (see diffscope-view --help)");
    if (o->print_layout && !o->screenshot)
        return cli_error("--print-layout needs --screenshot");
    if (o->hover.given && !o->screenshot) return cli_error("--hover needs --screenshot");
    return 0;
}

/* The --vs dump must be a standard-attention dump (Llama, Qwen, ...) of the same tokens. */
static int check_vs(const viewer *v) {
    const ds_dump_info *a = v->info, *b = ds_dump_reader_info(v->vs);
    const char *p = ds_dump_reader_path(v->vs);
    if (!ds_arch_get(a->arch)->differential)
        return ds_fail("--vs: %s is not a differential (DiffLlama) dump; --vs compares one with a "
                       "standard-attention dump", ds_dump_reader_path(v->dump));
    if (ds_arch_get(b->arch)->differential)
        return ds_fail("%s: --vs needs a standard-attention dump (Llama, Qwen), this one is %s", p,
                       ds_arch_get(b->arch)->label);
    if (b->num_tokens != a->num_tokens)
        return ds_fail("%s: --vs dump has %d tokens, %s has %d", p, b->num_tokens,
                       ds_dump_reader_path(v->dump), a->num_tokens);
    for (int i = 0; i < a->num_tokens; i++)
        if (a->ids[i] != b->ids[i])
            return ds_fail("%s: --vs dump has other tokens (id %d at position %d, not %d)", p,
                           b->ids[i], i, a->ids[i]);
    return 0;
}

/* Applies the options to a freshly opened viewer; errors are bad input. */
static int setup(viewer *v, const options *o) {
    const ds_dump_info *in = v->info;
    v->T = in->num_tokens;
    v->differential = ds_arch_get(in->arch)->differential;
    v->strip_row = -1;
    v->hover_q = v->hover_k = -1;
    v->print_state = o->print_state;
    if (v->vs && check_vs(v) < 0) return -1;
    /* One head's maps live in memory whole: refuse a prompt they cannot fit, rather than
     * be killed by the kernel halfway. */
    double need = (double)v->T * v->T * sizeof(float) * (v->differential ? 3 : 1) + (v->vs ? (double)v->T * v->T * 4 : 0);
    double ram = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
    if (ram > 0 && need > 0.8 * ram)
        return ds_fail("%s: %d tokens need %.1f GB for one head's maps, more than this machine's %.1f GB allows",
                       o->dump, v->T, need / 1e9, ram / 1e9);
    v->layer = o->layer >= 0 ? o->layer : in->layers[0];
    if (ds_dump_reader_layer_index(v->dump, v->layer) < 0) return -1;
    if (!ds_dump_reader_layer(v->dump, v->layer)) return -1;
    v->head = 0;
    if (o->head >= 0 && (v->head = ds_dump_reader_head_index(v->dump, v->layer, o->head)) < 0) return -1;
    if (o->vs_head >= 0 && !v->vs) return ds_fail("--vs-head needs --vs");
    if (v->vs && o->vs_head >= 0) {
        /* --vs-head is a model head number, like --head; the layer must be in the --vs dump. */
        if (ds_dump_reader_layer_index(v->vs, v->layer) < 0) return -1;
        if ((v->vs_head = ds_dump_reader_head_index(v->vs, v->layer, o->vs_head)) < 0) return -1;
    }
    if (o->row >= v->T)
        return ds_fail("--row: %d is outside 0..%d (the dump has %d tokens)", o->row, v->T - 1, v->T);
    v->row = o->row >= 0 ? o->row : v->T - 1;
    if (o->have_lambda && !v->differential)
        return ds_fail("--lambda: %s is a %s dump, it has no λ", o->dump, ds_arch_get(in->arch)->label);
    if (viewer_load(v) < 0) return -1;
    if (o->have_lambda) viewer_set_lambda(v, o->lambda);
    v->log_scale = o->log;
    view_fit(v);
    if (o->range.given) {
        if (o->range.a < 0 || o->range.b > v->T || o->range.b - o->range.a < 1)
            return ds_fail("--range: %d:%d is not within 0:%d", o->range.a, o->range.b, v->T);
        v->view_k0 = v->view_q0 = o->range.a;
        v->span = o->range.b - o->range.a;
        view_clamp(v);
    }
    if (o->hover.given) {
        if (o->hover.a < 0 || o->hover.a >= v->T || o->hover.b < 0 || o->hover.b >= v->T)
            return ds_fail("--hover: %d:%d is outside the %d tokens", o->hover.a, o->hover.b, v->T);
        v->hover_q = o->hover.a;
        v->hover_k = o->hover.b;
    }
    return 0;
}

/* Whether a window can be shown at all: an X11 or Wayland display, or a driver the user names. */
static int display_available(void) {
    return getenv("DISPLAY") || getenv("WAYLAND_DISPLAY") || getenv("SDL_VIDEODRIVER");
}

static int run_window(viewer *v, const options *o) {
    if (!display_available())
        return cli_fail(DS_EXIT_INTERNAL, "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset); "
                    "--screenshot OUT.png works without a display");
    /* Only the drivers of the display that is there. Left to itself SDL probes Wayland (whose
     * library complains on stderr) and falls back to its offscreen driver, which never delivers
     * an event, so the event loop below would wait forever. A driver named by the user is kept. */
    if (!getenv("SDL_VIDEODRIVER")) SDL_SetHint(SDL_HINT_VIDEODRIVER, getenv("WAYLAND_DISPLAY") ? "wayland,x11" : "x11");
    if (SDL_InitSubSystem(SDL_INIT_VIDEO) < 0)
        return cli_fail(DS_EXIT_INTERNAL, "cannot open a window (%s); --screenshot OUT.png works without a display",
                    SDL_GetError());
    char title[512];
    snprintf(title, sizeof title, "diffscope-view \u2014 %s", v->dump_name);
    SDL_Window *win = SDL_CreateWindow(title, SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, o->w, o->h,
                                       SDL_WINDOW_RESIZABLE);
    if (!win) return cli_fail(DS_EXIT_INTERNAL, "cannot open a window: %s", SDL_GetError());
    SDL_Renderer *ren = SDL_CreateRenderer(win, -1, SDL_RENDERER_ACCELERATED | SDL_RENDERER_PRESENTVSYNC);
    if (!ren) ren = SDL_CreateRenderer(win, -1, SDL_RENDERER_SOFTWARE);
    if (!ren) {
        SDL_DestroyWindow(win);
        return cli_fail(DS_EXIT_INTERNAL, "cannot create a renderer: %s", SDL_GetError());
    }
    v->ren = ren;
    int w = 0, h = 0, quit = 0;
    SDL_GetRendererOutputSize(ren, &w, &h);
    layout_compute(v, w, h);
    SDL_Event e;
    while (!quit) {
        int cw, chh;
        SDL_GetRendererOutputSize(ren, &cw, &chh);
        if (cw != v->win_w || chh != v->win_h) layout_compute(v, cw, chh);
        render_frame(v);
        SDL_RenderPresent(ren);
        if (v->print_state) ui_print_state(v);
        /* Sleep until something happens, then take every queued event before redrawing. */
        if (!SDL_WaitEvent(&e)) break;
        do quit |= ui_handle_event(v, &e);
        while (!quit && SDL_PollEvent(&e));
    }
    if (v->print_state) printf("quit\n");
    render_release(v);
    SDL_DestroyRenderer(ren);
    SDL_DestroyWindow(win);
    return DS_EXIT_OK;
}

static int run(int argc, char **argv) {
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc < 0 ? DS_EXIT_OK : rc;

    viewer v;
    memset(&v, 0, sizeof v);
    const char *slash = strrchr(o.dump, '/');
    v.dump_name = slash ? slash + 1 : o.dump;
    if (!(v.dump = ds_dump_reader_open(o.dump))) return cli_lib_error();
    v.info = ds_dump_reader_info(v.dump);
    if (o.vs && !(v.vs = ds_dump_reader_open(o.vs))) {
        rc = cli_lib_error();
        goto out;
    }
    if (setup(&v, &o) < 0) {
        rc = cli_lib_error();
        goto out;
    }
    SDL_SetMainReady();
    if (SDL_Init(0) < 0) {
        rc = cli_fail(DS_EXIT_INTERNAL, "SDL: %s", SDL_GetError());
        goto out;
    }
    if (text_init(o.font) < 0) {
        rc = cli_fail(DS_EXIT_INTERNAL, "%s", ds_errmsg());
        SDL_Quit();
        goto out;
    }
    if (o.screenshot) {
        if (screenshot_headless(&v, o.w, o.h, o.screenshot, o.print_layout) < 0)
            rc = cli_lib_error();
    } else rc = run_window(&v, &o);
    text_quit();
    IMG_Quit();
    SDL_Quit();
out:
    viewer_free_maps(&v);
    ds_dump_reader_close(v.vs);
    ds_dump_reader_close(v.dump);
    return rc;
}

int main(int argc, char **argv) {
    ds_tmpfiles_catch_signals(); /* a signal removes the screenshot's temporary file */
    int rc = run(argc, argv);
    /* A --print-layout that did not arrive (a full disk) is a failure. */
    if (ds_close_stdout() && !rc) rc = cli_lib_error();
    return rc;
}
