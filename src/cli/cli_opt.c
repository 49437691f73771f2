/* Option tables (cli/cli_opt.h): getopt_long driven by one table per command, checked
 * numbers, generated --help, one-line usage errors. */
#include "cli/cli_opt.h"
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"

/* getopt_long's value for row I of a table: above every short option character. */
enum { LONG_BASE = 256, HELP_ROW = -1 };

static int nopts(const cli_opt *opts) {
    int n = 0;
    while (opts[n].name) n++;
    return n;
}

static int takes_value(const cli_opt *o) { return o->kind != CLI_FLAG; }

int cli_parse_int(const char *s, const char *opt, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < lo || x > hi)
        return ds_fail("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
    *out = x;
    return 0;
}

/* "a number >= 0", "a number in (0, 1]", "a finite number": the range of a double option. */
static void describe_range(char *buf, size_t n, double lo, double hi, unsigned flags) {
    const char *open = flags & CLI_LO_OPEN ? "(" : "[";
    if (isinf(lo) && isinf(hi)) snprintf(buf, n, "a finite number");
    else if (isinf(hi)) snprintf(buf, n, "a number %s %g", flags & CLI_LO_OPEN ? ">" : ">=", lo);
    else snprintf(buf, n, "a number in %s%g, %g]", open, lo, hi);
}

int cli_parse_double(const char *s, const char *opt, double lo, double hi, unsigned flags, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    int below = flags & CLI_LO_OPEN ? x <= lo : x < lo;
    if (end == s || *end || errno || !isfinite(x) || below || x > hi) {
        char range[96];
        describe_range(range, sizeof range, lo, hi, flags);
        return ds_fail("%s: '%s' is not %s", opt, s, range);
    }
    *out = x;
    return 0;
}

/* An integer in [lo, hi] that is the whole of S[0..len). */
static int whole_int(const char *s, size_t len, long lo, long hi, int *out) {
    char buf[32];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long x = strtol(buf, &end, 10);
    if (*end || errno || x < lo || x > hi || x < INT_MIN || x > INT_MAX) return -1;
    *out = (int)x;
    return 0;
}

int cli_parse_pair(const char *s, char sep, const char *opt, long lo, long hi, int *a, int *b) {
    const char *at = strchr(s, sep);
    if (!at || whole_int(s, (size_t)(at - s), lo, hi, a) || whole_int(at + 1, strlen(at + 1), lo, hi, b))
        return ds_fail("%s: '%s' is not two integers in %ld..%ld separated by '%c'", opt, s, lo, hi, sep);
    return 0;
}

int cli_parse_list(const char *s, const char *opt, long lo, long hi, int **out, int *n) {
    int cap = 16, cnt = 0;
    int *v = malloc(cap * sizeof *v);
    if (!v) return ds_failc(DS_ERR_NOMEM, "out of memory");
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || errno || a < 0) break;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q || errno || b < a || b - a > 1000000) break;
        }
        if (a < lo || b > hi) {
            free(v);
            return ds_fail("%s: %ld (in '%s') is outside %ld..%ld", opt, a < lo ? a : b, s, lo, hi);
        }
        for (long x = a; x <= b; x++) {
            if (cnt == cap) {
                int *nv = realloc(v, (cap *= 2) * sizeof *v);
                if (!nv) {
                    free(v);
                    return ds_failc(DS_ERR_NOMEM, "out of memory");
                }
                v = nv;
            }
            v[cnt++] = (int)x;
        }
        p = end;
        if (*p == ',') p++;
        else if (*p) break;
    }
    if (*p || cnt == 0) {
        free(v);
        return ds_fail("%s: '%s' is not a list like 0,3-5", opt, s);
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* Is WORD one of the '|'-separated words of CHOICES? */
static int is_choice(const char *word, const char *choices) {
    size_t n = strlen(word);
    for (const char *p = choices; p; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
        if (!strncmp(p, word, n) && (p[n] == '|' || !p[n])) return 1;
    return 0;
}

/* Stores ARG as row O says; -1 with "--NAME: ..." as the message. */
static int apply(const cli_opt *o, const char *arg) {
    char opt[80];
    snprintf(opt, sizeof opt, "--%s", o->name);
    long l;
    double d;
    switch (o->kind) {
    case CLI_FLAG: *(int *)o->dst = 1; return 0;
    case CLI_STRING: *(const char **)o->dst = arg; return 0;
    case CLI_INT:
        if (cli_parse_int(arg, opt, (long)o->lo, (long)o->hi, &l)) return -1;
        *(int *)o->dst = (int)l;
        return 0;
    case CLI_DOUBLE:
    case CLI_FLOAT:
        if (cli_parse_double(arg, opt, o->lo, o->hi, o->flags, &d)) return -1;
        if (o->kind == CLI_FLOAT) *(float *)o->dst = (float)d;
        else *(double *)o->dst = d;
        return 0;
    case CLI_CHOICE:
        if (!is_choice(arg, o->arg)) return ds_fail("%s: '%s' is not one of %s", opt, arg, o->arg);
        *(const char **)o->dst = arg;
        return 0;
    case CLI_LIST: {
        cli_list *list = o->dst;
        free(list->v);
        list->v = NULL;
        list->n = 0;
        return cli_parse_list(arg, opt, (long)o->lo, (long)o->hi, &list->v, &list->n);
    }
    case CLI_CALL:
        if (!o->call(o->dst, arg)) return 0;
        ds_err_prefix(opt);
        return -1;
    }
    return ds_fail("%s: unknown option kind", opt);
}

void cli_opts_free(const cli_opt *opts) {
    for (int i = 0; opts[i].name; i++)
        if (opts[i].kind == CLI_LIST) {
            cli_list *list = opts[i].dst;
            free(list->v);
            list->v = NULL;
            list->n = 0;
        }
}

/* "  -o, --output FILE": the left column of an option's help line. */
static int left_column(char *buf, size_t n, const cli_opt *o) {
    char short_form[8] = "";
    if (o->short_name) snprintf(short_form, sizeof short_form, "-%c, ", o->short_name);
    return snprintf(buf, n, "  %s--%s%s%s", short_form, o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

static void print_row(FILE *f, const char *left, int col, const char *help) {
    int len = fprintf(f, "%s", left);
    fprintf(f, "%*s", len < col ? col - len : 2, "");
    for (const char *p = help; *p; p++) {
        fputc(*p, f);
        if (*p == '\n' && p[1]) fprintf(f, "%*s", col, "");
    }
    fputc('\n', f);
}

void cli_print_help(const cli_cmd *cmd, FILE *f) {
    enum { WIDEST = 26 };
    char left[160];
    int col = 0;
    for (const cli_opt *o = cmd->opts; o->name; o++) {
        if (!o->help) continue;
        int len = left_column(left, sizeof left, o);
        if (len <= WIDEST && len > col) col = len;
    }
    col += 2;
    fputs(cmd->usage, f);
    for (const cli_opt *o = cmd->opts; o->name; o++) {
        if (!o->help) continue;
        left_column(left, sizeof left, o);
        print_row(f, left, col, o->help);
    }
    const cli_opt help = {"help", 'h', CLI_FLAG, NULL, 0, 0, NULL, "this text"};
    left_column(left, sizeof left, &help);
    print_row(f, left, col, help.help);
    if (cmd->epilog) fputs(cmd->epilog, f);
}

/* "diffscope dump" or "diffscope-view": who to ask for --help. */
static void program_name(const cli_cmd *cmd, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", cli_progname, cmd->name ? " " : "", cmd->name ? cmd->name : "");
}

/* One line for an option getopt_long did not accept: ARG is the word it stopped at. */
static int usage_error(const cli_cmd *cmd, int missing, const char *arg, int row) {
    char prog[64], word[80];
    program_name(cmd, prog, sizeof prog);
    const char *cmd_prefix = cmd->name ? cmd->name : "", *colon = cmd->name ? ": " : "";
    if (missing) {
        if (row >= 0) snprintf(word, sizeof word, "--%s", cmd->opts[row].name);
        else snprintf(word, sizeof word, "%.70s", arg);
        return cli_error("%s%soption '%s' needs a value (see %s --help)", cmd_prefix, colon, word, prog);
    }
    snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
    int matches = 0;
    if (!strncmp(word, "--", 2))
        for (const cli_opt *o = cmd->opts; o->name; o++) matches += !strncmp(o->name, word + 2, strlen(word + 2));
    return cli_error("%s%s%s option '%s' (see %s --help)", cmd_prefix, colon, matches > 1 ? "ambiguous" : "unrecognized",
                     word, prog);
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, int *status) {
    int n = nopts(cmd->opts);
    struct option *longopts = calloc((size_t)n + 2, sizeof *longopts);
    char *shortopts = malloc(2 * (size_t)n + 3);
    *status = DS_EXIT_INPUT;
    if (!longopts || !shortopts) {
        free(longopts);
        free(shortopts);
        cli_error("out of memory");
        *status = DS_EXIT_INTERNAL;
        return -1;
    }
    /* ':' first: a missing value is reported as ':' rather than '?', and getopt prints nothing. */
    char *s = shortopts;
    *s++ = ':';
    for (int i = 0; i < n; i++) {
        const cli_opt *o = &cmd->opts[i];
        longopts[i] = (struct option){o->name, takes_value(o) ? required_argument : no_argument, NULL, LONG_BASE + i};
        if (o->short_name) {
            *s++ = o->short_name;
            if (takes_value(o)) *s++ = ':';
        }
    }
    longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
    *s++ = 'h';
    *s = 0;
    opterr = 0;
    optind = 1;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int row = c >= LONG_BASE ? c - LONG_BASE : HELP_ROW;
        for (int i = 0; c < LONG_BASE && i < n; i++)
            if (cmd->opts[i].short_name && cmd->opts[i].short_name == c) row = i;
        if (c == 'h' && row == HELP_ROW) {
            cli_print_help(cmd, stdout);
            *status = DS_EXIT_OK;
            rc = 1;
        } else if (c == '?' || c == ':') {
            int missing_row = optopt >= LONG_BASE ? optopt - LONG_BASE : -1;
            char short_word[3] = {'-', (char)optopt, 0};
            usage_error(cmd, c == ':', optopt && optopt < LONG_BASE ? short_word : argv[optind - 1], missing_row);
            rc = 1;
        } else if (apply(&cmd->opts[row], optarg)) {
            cli_error("%s", ds_errmsg());
            rc = 1;
        }
    }
    free(longopts);
    free(shortopts);
    if (rc) cli_opts_free(cmd->opts);
    return rc;
}
