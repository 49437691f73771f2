/* Option tables: one per command. Each row names an option once, with its kind, where its
 * value goes, its range and its help line; cli_parse builds the getopt_long array from the
 * table, checks every value, prints --help from it, and reports a bad option in one line.
 *
 *   cli_opt opts[] = {
 *       {"layers", 0, CLI_LIST, &layers, 0, INT_MAX, "LIST", "layers to dump, e.g. 0,3-5"},
 *       {"output", 'o', CLI_STRING, &out_path, 0, 0, "FILE", "the HDF5 file to write"},
 *       {0}};
 *   const cli_cmd cmd = {"dump", usage_text, NULL, opts};
 *   int status;
 *   if (cli_parse(&cmd, argc, argv, &status)) return status;   // --help, or a usage error
 *   // argv[optind..argc) are the positional arguments
 *
 * The viewer (viz/main.c) uses the same tables with its own program name (cli_progname). */
#ifndef DIFFSCOPE_CLI_OPT_H
#define DIFFSCOPE_CLI_OPT_H
#include <getopt.h> /* optind: the first positional argument after cli_parse */
#include <limits.h>
#include <math.h>
#include <stdio.h>

/* Table rows leave out the trailing fields (call, flags) they do not use. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

typedef enum {
    CLI_FLAG,   /* int: set to 1 */
    CLI_INT,    /* int in [lo, hi] */
    CLI_DOUBLE, /* double: finite, in [lo, hi] ([lo excluded with CLI_LO_OPEN) */
    CLI_FLOAT,  /* float: as CLI_DOUBLE */
    CLI_STRING, /* const char *: the argument as given */
    CLI_CHOICE, /* const char *: one of the words of ARG, which are separated by '|' */
    CLI_LIST,   /* cli_list: "0,3-5", every element in [lo, hi]; freed by cli_opts_free */
    CLI_CALL,   /* call(dst, arg): returns 0, or -1 with a message (without the option name) */
} cli_kind;

enum { CLI_LO_OPEN = 1 };

typedef struct {
    int *v;
    int n;
} cli_list;

typedef struct {
    const char *name; /* the long name, without "--" */
    char short_name;  /* 0: none */
    cli_kind kind;
    void *dst;        /* where the value goes; its type follows from KIND */
    double lo, hi;    /* range of numbers and of list elements */
    const char *arg;  /* the value's name in --help ("N", "LIST", "f32|f16"); NULL for flags */
    const char *help; /* help text; '\n' continues it on the next line; NULL: not listed */
    int (*call)(void *dst, const char *arg);
    unsigned flags;   /* CLI_LO_OPEN */
} cli_opt;

typedef struct {
    const char *name;   /* "dump": in messages and "see diffscope dump --help" */
    const char *usage;  /* --help text before the options (usage line, description) */
    const char *epilog; /* --help text after them, or NULL */
    const cli_opt *opts; /* ends with an entry whose name is NULL */
} cli_cmd;

/* "diffscope" unless a program (the viewer) sets its own: the prefix of every message. */
extern const char *cli_progname;

/* Parses ARGV[1..ARGC) by CMD's table (-h/--help is added). Returns 0 with optind at the first
 * positional argument; or non-zero with *STATUS the exit status: DS_EXIT_OK after printing
 * --help on stdout, DS_EXIT_INPUT after printing one line naming the bad option. */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, int *status);

/* Prints CMD's --help on F. */
void cli_print_help(const cli_cmd *cmd, FILE *f);

/* Frees the CLI_LIST values of OPTS and empties them. */
void cli_opts_free(const cli_opt *opts);

/* Checked number parsing: the whole string, no wrap-around, non-finite values refused. Each
 * returns 0, or -1 with "OPT: 'S' is not ..." as the message. */
int cli_parse_int(const char *s, const char *opt, long lo, long hi, long *out);
int cli_parse_double(const char *s, const char *opt, double lo, double hi, unsigned flags, double *out);
/* "A<SEP>B", both integers in [lo, hi] ("3:7", "1.0", "1600x960"). */
int cli_parse_pair(const char *s, char sep, const char *opt, long lo, long hi, int *a, int *b);
/* "0,3-5" into a malloc'd list, every element in [lo, hi]. */
int cli_parse_list(const char *s, const char *opt, long lo, long hi, int **out, int *n);

#endif
