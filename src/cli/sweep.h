/* `diffscope sweep`: compare's per-prompt statistics (cli/compare.h) over a data set of prompts
 * (a JSONL file, or needle's grid of lengths × depths × trials), on one process, on N ranks
 * under mpirun, or as --shard I/N jobs merged later. docs/sweep.md describes the files.
 *
 * The flow, the same for one rank or many:
 *   prompts (every rank builds all of them, validated before any work)
 *   -> this rank's contiguous range, balanced by token count (sweep_ranges)
 *   -> every prompt of the range not yet in a journal: run, append one record to the journal;
 *      MPI ranks then take what is left of the others' ranges (sweep_queue)
 *   -> the range's shard file, written from the journals (atomically)
 *   -> rank 0: the master file, virtual datasets over the shards, and the aggregates computed
 *      from the shards in prompt order (so they do not depend on the number of ranks). */
#ifndef DIFFSCOPE_CLI_SWEEP_H
#define DIFFSCOPE_CLI_SWEEP_H
#include <stddef.h>
#include <stdint.h>
#include <hdf5.h>
#include "cli/cli_input.h"
#include "diffscope/attn_stats.h"
#include "diffscope/config.h"

/* ---- prompts (sweep_prompts.c) ---- */

typedef struct {
    int *ids, n;
    int query, span_begin, span_end; /* span_end == 0: no span */
    int answer_id;                   /* the kv task's value token, else -1 */
    char *meta;                      /* JSON: the line's other fields, or the grid cell */
    int length, depth, trial;        /* grid cell; -1 for JSONL prompts */
} sweep_prompt;

typedef struct {
    const char *model[2];
    const char *prompts, *out, *task;
    const char *haystack, *needle, *question, *answer;
    int *lengths, nlengths, *depths, ndepths;
    int trials, pairs, seed;
    int json, force, merge, times;
    int shard_i, shard_n; /* --shard I/N; shard_n == 0: not given */
    /* --dump-layers / --dump-heads: the maps of every prompt kept as dump files (NULL: all) */
    int maps;
    const int *map_layers, *map_heads;
    int nmap_layers, nmap_heads;
    cli_input in;
    const ds_provenance *provenance; /* of the run that writes the master */
} sweep_opts;

typedef struct {
    sweep_prompt *p;
    int n;
    long tokens; /* over all prompts */
} sweep_prompts;

/* Reads and checks every line of O->prompts (tokenized with A's tokenizer for "text"), or
 * builds the --task grid; CA is A's configuration. -1 with a message naming the line. */
int sweep_prompts_load(sweep_prompts *ps, const sweep_opts *o, const ds_config *ca);
void sweep_prompts_free(sweep_prompts *ps);
/* --depths A:B:STEP or a list. */
int sweep_parse_depths(const char *s, int **out, int *n);

/* ---- what is stored per prompt and model (sweep_layout.c) ---- */

enum { SWEEP_LH, SWEEP_L, SWEEP_T5 }; /* shapes [layer, head], [layer], [top1..median] */
enum { SWEEP_MAX_FIELDS = 24 };

typedef struct {
    char name[48]; /* dataset path under the model's group: "diff/answer_mass" */
    int shape;
    int count;     /* values per prompt */
    size_t offset; /* in the model's doubles of a record */
} sweep_field;

typedef struct {
    const char *name, *path, *arch; /* "A" or "B" */
    int L, heads, is_diff;
    int nfields;
    sweep_field f[SWEEP_MAX_FIELDS];
    size_t ndoubles;
} sweep_layout;

void sweep_layout_init(sweep_layout *lay, const char *name, const char *path, const ds_config *c);
/* The field's values of ST in OUT (lay->ndoubles). */
/* DIMS of one prompt's values of F ([L, heads], [L] or [6]); returns their number. */
int sweep_field_dims(const sweep_layout *lay, const sweep_field *f, int *dims);
void sweep_layout_extract(const sweep_layout *lay, const ds_attn_stats *st, double *out);

/* ---- one prompt's results (sweep_journal.c) ---- */

typedef struct {
    int32_t index, T, query, span_begin, span_end;
    int32_t top1[2], correct[2]; /* correct: top-1 is the answer (1/0), -1 without one */
    int32_t align;               /* 0: the doubles that follow start 8-byte aligned */
} sweep_rec_head;

typedef struct {
    int nmodels;
    sweep_layout lay[2];
    size_t rec_size; /* header, the models' doubles, checksum */
    uint64_t fingerprint;
} sweep_setup;

/* The record of a prompt: header then lay[0].ndoubles + lay[1].ndoubles doubles. */
static inline double *sweep_rec_values(void *rec) { return (double *)((char *)rec + sizeof(sweep_rec_head)); }

typedef struct {
    int fd;
    char *path;
} sweep_journal;

/* DIR/journal-R-of-N.bin, opened for appending; a torn last record is cut off. */
int sweep_journal_open(sweep_journal *j, const char *dir, int rank, int nranks, const sweep_setup *su);
/* Appends one record (sets its checksum) in one write. */
int sweep_journal_append(sweep_journal *j, const sweep_setup *su, void *rec);
void sweep_journal_close(sweep_journal *j);
/* Fills RECS[i] (malloc'd; RECS indexed by prompt) for each prompt i of [A, B) that it lacks
 * and a record of DIR's journals holds (whole, with a valid checksum). A journal of another
 * sweep is an error. */
int sweep_journal_load(const char *dir, const sweep_setup *su, int a, int b, void **recs);
/* The same from rank RANK of NRANKS's journal alone. */
int sweep_journal_load_rank(const char *dir, const sweep_setup *su, int rank, int nranks, int a, int b, void **recs);
void sweep_journal_free(void **recs, int nprompts);

/* ---- partition and files (sweep_files.c) ---- */

/* Contiguous ranges of prompts, balanced by token count: rank r gets [first[r], first[r+1]). */
void sweep_ranges(const sweep_prompts *ps, int nranks, int *first);
/* OUT.shards, the folder of journals and shards; malloc'd. */
char *sweep_dir(const char *out);
/* DIR/shard-R-of-N.h5 (malloc'd), and the same relative to the master's folder. */
char *sweep_shard_path(const char *dir, int rank, int nranks);
char *sweep_shard_relpath(const char *out, int rank, int nranks);
/* Removes DIR's journals and shards (--force). */
int sweep_dir_clear(const char *dir);
/* The N of DIR's complete set of shard-R-of-N.h5 files (--merge). */
int sweep_find_shards(const char *dir, int *nranks);
#define SWEEP_MAPS_DIR "maps"
/* DIR/maps/M-PPPPPPPP.h5 (malloc'd): model M's maps of prompt P, a dump file; and the same
 * relative to the master's folder. */
char *sweep_maps_path(const char *dir, const char *model, int prompt);
char *sweep_maps_relpath(const char *out, const char *model, int prompt);
/* Writes the shard of prompts [a, b) from RECS (all present). */
int sweep_shard_write(const char *path, const sweep_setup *su, void *const *recs, int a, int b);

/* ---- the order of a rank's prompts (sweep_queue.c) ---- */

typedef struct {
    const char *dir;
    const int *first;
    int rank, nranks, shared;
    int victim; /* 0: this rank's range, from the front; k: rank (rank + k) % nranks's, from the back */
    int next;
} sweep_queue;

/* RANK's queue over the ranges FIRST; SHARED: MPI ranks that take from each other's ranges. */
void sweep_queue_init(sweep_queue *q, const char *dir, const int *first, int rank, int nranks, int shared);
/* The next prompt to run: not in RECS and (shared) claimed by this rank; -1 when none is left,
 * -2 with a message on error. */
int sweep_queue_next(sweep_queue *q, void *const *recs);
/* Rank 0, before any rank takes a prompt: an empty DIR/claims. After the last: removed. */
int sweep_claims_reset(const char *dir);
void sweep_claims_remove(const char *dir);
/* Once no rank takes prompts any more: removes the claims of prompts [A, B), so that the ranks
 * share the removal and rank 0's sweep_claims_remove finds the folder (nearly) empty. */
void sweep_claims_release(const char *dir, int a, int b);
/* Once every rank has run its prompts: the records of prompts [A, B) that RECS lacks, from the
 * journals of the ranks that claimed them (every journal when a claim does not say). */
int sweep_claims_gather(const char *dir, const sweep_setup *su, int nranks, int a, int b, void **recs);

/* ---- the master file and aggregates (sweep_master.c, sweep_aggregates.c, sweep_report.c) ---- */

typedef struct {
    double *mean, *std, *ci95, *median;
    int *count;
} sweep_agg;

typedef struct {
    int nmodels;
    sweep_agg field[2][SWEEP_MAX_FIELDS];
    sweep_agg over_heads[2][SWEEP_MAX_FIELDS]; /* [L] for [layer, head] fields: of the head means */
    sweep_agg correct[2];                      /* [1] */
    /* grid: [length][depth]; the maps by their place in ds_attn_maps */
    double *grid_acc[2], *grid_answer[2][DS_ATTN_NMAPS], *grid_noise[2][DS_ATTN_NMAPS];
} sweep_aggs;

/* Writes OUT: virtual datasets over the NRANKS shards, the prompts' metadata, the aggregates
 * (computed from the shards in prompt order into AG). */
int sweep_master_write(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, int nranks,
                       sweep_aggs *ag);
/* PATH in FILE (its groups created): doubles or int32. 0, or -1 with a message. */
int sweep_write_f64(hid_t file, const char *path, int nd, const hsize_t *dims, const double *v);
int sweep_write_i32(hid_t file, const char *path, int nd, const hsize_t *dims, const int *v);
/* The aggregates of every model into AG and under /aggregates of the master FILE, from the
 * NRANKS shards of O->out (ranges FIRST) read in prompt order; spread over the OpenMP threads,
 * with the same figures for any number of them. */
int sweep_aggregates_write(hid_t file, const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps,
                           const int *first, int nranks, sweep_aggs *ag);
void sweep_aggs_free(sweep_aggs *ag);
/* Mean, std (n-1), 95 % half-width 1.96 std / sqrt(n), median of the non-NaN X[0..n). */
void sweep_stats(double *x, int n, double *mean, double *std, double *ci95, double *median, int *count);

void sweep_print_table(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, const sweep_aggs *ag);
int sweep_print_json(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, const sweep_aggs *ag);

/* ---- MPI, loaded at run time (sweep_mpi.c) ---- */

/* Starts MPI when a launcher (mpirun, srun) started this process; *RANK, *SIZE = 0, 1 when
 * not. -1 with a message when launched but libmpi cannot be loaded. */
int sweep_mpi_init(int *argc, char ***argv, int *rank, int *size);
/* The largest of every rank's V (V itself without MPI). */
int sweep_mpi_max(int v);
void sweep_mpi_finalize(void);

#endif
