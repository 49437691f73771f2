/* The HDF5 dump writer: a probe consumer that streams every attention map, λ, GroupNorm
 * statistic and outlier statistic of a forward pass into the layout of docs/dump-format.md.
 *
 *   ds_dump *d = ds_dump_begin(path, &opts, model, ids, T, probes);   registers its hooks
 *   ds_forward(session, ids, T, logits, 0, probes);                   streams layer by layer
 *   ds_dump_finish(d, logits)  or  ds_dump_abort(d)                   rename or delete
 *
 * Memory: one row block of maps (in the forward pass) plus, when outliers are on, every
 * |score| of the current layer (4 bytes each) for the exact median. Layers and heads not
 * selected cost nothing in the forward pass.
 *
 * Threads: when uncompressed maps are written and the calling thread's OpenMP thread count is
 * every core the process may run on (4 or more), the dump lowers it by one from begin to
 * finish or abort, so that its writer threads have a core; results are the same for any
 * thread count (docs/performance.md). */
#ifndef DIFFSCOPE_DUMP_H
#define DIFFSCOPE_DUMP_H
#include "diffscope/dump_format.h"
#include "diffscope/model.h"
#include "diffscope/provenance.h"

enum {
    DS_DUMP_SOFTMAX = 1 << 0,   /* softmax1/softmax2 (DiffLlama) or softmax (Llama) */
    DS_DUMP_DIFF = 1 << 1,      /* diff (DiffLlama) */
    DS_DUMP_SCORES = 1 << 2,    /* pre-softmax scores */
    DS_DUMP_GROUPNORM = 1 << 3, /* groupnorm rms and scale (DiffLlama) */
    DS_DUMP_OUTLIERS = 1 << 4,  /* outlier statistics of scores, resid, mlp */
    DS_DUMP_CANCELLED = 1 << 5, /* cancelled share of each head and query row (DiffLlama) */
    /* Not a quantity: keep of the others only those the model has (diff and groupnorm exist
     * only for DiffLlama). Without it, asking for one the model lacks is refused. */
    DS_DUMP_IF_PRESENT = 1u << 8,
    DS_DUMP_DEFAULT = DS_DUMP_SOFTMAX | DS_DUMP_DIFF | DS_DUMP_GROUPNORM | DS_DUMP_OUTLIERS | DS_DUMP_CANCELLED |
                      DS_DUMP_IF_PRESENT,
    DS_DUMP_ALL = DS_DUMP_DEFAULT | DS_DUMP_SCORES, /* --what all: everything the model has */
};

/* How the uncompressed maps' writes went (ds_dump_opts.io): what a benchmark needs to tell a
 * dump held up by its writes from one held up by its computation. Times are summed over the
 * threads concerned. */
typedef struct {
    int writer_threads; /* writer threads started */
    int buffers;        /* the writer's buffers, each with room for one row block of one head */
    double buffer_bytes; /* the room of each */
    double bytes;       /* bytes handed to pwrite() */
    long writes;        /* pwrite() calls */
    double writing_s;   /* the writer threads' time in pwrite() */
    long waits;         /* times a thread of the forward pass found every buffer queued */
    double waiting_s;   /* its threads' time waiting for a free buffer */
    double draining_s;  /* the time waiting for the last queued writes at the dump's end */
} ds_dump_io;

typedef struct {
    unsigned what;          /* DS_DUMP_* bits */
    const int *layers;      /* NULL: every layer */
    int nlayers;
    const int *heads;       /* NULL: every head (differential heads for DiffLlama) */
    int nheads;
    int f16;                /* store maps as IEEE float16 */
    int compress;           /* gzip level 0-9 (0: none), with shuffle */
    int topk;               /* outliers kept per statistic */
    int logits;             /* write /logits */
    int hidden;             /* write /hidden_states */
    int force;              /* overwrite an existing file; write even when the estimated size
                             * exceeds the free space (else refused before the forward pass) */
    const char *prompt;     /* root attribute (may be NULL) */
    const ds_provenance *provenance; /* /provenance; NULL: a record of this process and the
                                      * model's folder, without command line or interventions */
    char *const *token_text; /* [T] labels (NULL entries: the id is used) */
    ds_dump_io *io;          /* filled by ds_dump_finish when not NULL (zeros when no map was
                              * written uncompressed) */
} ds_dump_opts;

typedef struct ds_dump ds_dump;

/* Parses "softmax,diff,scores,groupnorm,outliers,cancelled_share" (or "all") into DS_DUMP_* bits. */
int ds_dump_parse_what(const char *s, unsigned *what);
/* The name of quantity I (0, 1, ... in the order above), as ds_dump_parse_what knows it, and
 * in *HELP (may be NULL) a one-line description; NULL past the last. */
const char *ds_dump_quantity(int i, const char **help);

/* Checks a selection of layers, or of heads (differential heads for DiffLlama), against C:
 * -1 with "layer 7 out of range (0..3)" when one is not in the model. ds_dump_begin checks
 * both; a caller may check them first to say which of its inputs was wrong. */
int ds_dump_check_layers(const ds_config *c, const int *layers, int n);
int ds_dump_check_heads(const ds_config *c, const int *heads, int n);

ds_dump *ds_dump_begin(const char *path, const ds_dump_opts *o, const ds_model *m, const int *ids, int T,
                       ds_probes *p);
/* LOGITS ([T, V]) is written when opts.logits; may be NULL otherwise. */
int ds_dump_finish(ds_dump *d, const float *logits);
void ds_dump_abort(ds_dump *d);

#endif
