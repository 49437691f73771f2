/* Shared helpers of the CLI: messages, option values, id lists, progress bar. */
#include "cli/cli.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *cli_progname = "diffscope";

static void message(const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", cli_progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    return status;
}

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    message(fmt, ap);
    va_end(ap);
    return DS_EXIT_INPUT;
}

/* The exit status of each library status (the README's table of exit codes). A full disk or
 * an unwritable output is the user's to fix, as bad input is; running out of memory and bugs
 * are not. */
static const int exit_status[] = {
    [DS_OK] = DS_EXIT_INPUT,
    [DS_ERR_INPUT] = DS_EXIT_INPUT,
    [DS_ERR_IO] = DS_EXIT_INPUT,
    [DS_ERR_NOMEM] = DS_EXIT_INTERNAL,
    [DS_ERR_INTERNAL] = DS_EXIT_INTERNAL,
    [DS_ERR_NONFINITE] = DS_EXIT_INPUT,
};

int cli_exit_status(ds_status status) {
    return (unsigned)status < sizeof exit_status / sizeof *exit_status ? exit_status[status] : DS_EXIT_INTERNAL;
}

int cli_lib_error(void) {
    if (ds_errcode() == DS_ERR_NONFINITE) cli_error("%s; --allow-nonfinite keeps going", ds_errmsg());
    else cli_error("%s", ds_errmsg());
    return cli_exit_status(ds_errcode());
}

void cli_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: warning: ", cli_progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_ids(const char *s, int **ids, int *n) {
    int cap = 16, cnt = 0;
    int *v = malloc(cap * sizeof *v);
    if (!v) return ds_failc(DS_ERR_NOMEM, "out of memory");
    const char *p = s;
    for (;;) {
        p += strspn(p, " \t\r\n");
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT_MAX) {
            free(v);
            return ds_fail("--ids: '%s' is not a list of non-negative integers separated by commas or spaces", s);
        }
        if (cnt == cap) {
            cap *= 2;
            int *nv = realloc(v, cap * sizeof *v);
            if (!nv) { free(v); return ds_failc(DS_ERR_NOMEM, "out of memory"); }
            v = nv;
        }
        v[cnt++] = (int)x;
        p = end + strspn(end, " \t\r\n");
        if (*p == ',') p++; /* a comma, white space, or both, between ids */
    }
    if (cnt == 0) { free(v); return ds_fail("--ids: no token ids given"); }
    *ids = v;
    *n = cnt;
    return 0;
}

int cli_print_json(cJSON *o) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) return ds_failc(DS_ERR_NOMEM, "out of memory for JSON output");
    puts(text);
    free(text);
    return 0;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *label, long total) {
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->active = isatty(STDERR_FILENO);
    p->t0 = cli_now();
}

void cli_progress_step(cli_progress *p, long done) {
    p->done = done;
    if (!p->active) return;
    int width = 30, fill = (int)(width * done / p->total);
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    double t = cli_now() - p->t0, rate = t > 0 ? done / t : 0;
    fprintf(stderr, "] %ld/%ld %.1fs", done, p->total, t);
    if (done > 0 && done < p->total) fprintf(stderr, " %.2f/s ETA %.0fs\033[K", rate, (p->total - done) / rate);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->active) fputs("\r\033[K", stderr);
}
