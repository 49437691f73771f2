/* One timed dump for `bench --dump`, with where its time goes (bench_dump.c). */
#ifndef DIFFSCOPE_BENCH_DUMP_H
#define DIFFSCOPE_BENCH_DUMP_H
#include "cli/bench_stages.h"
#include "diffscope/dump.h"
#include "diffscope/model.h"

/* FORWARD: the forward pass outside the dump's handlers at whole events, with the handlers
 * that take the maps a head at a time inside its attention tasks (check, copy into the
 * writers' buffers, |scores| into the outlier statistics, the cancelled share), and the writer
 * threads competing for cores; MLP_STATS: pushing |MLP activations| into the outlier
 * statistics; LAYER_END: the residual statistics, finishing and writing a layer's three
 * statistics, closing its maps; GROUPNORM: GroupNorm statistics; OTHER: λ attributes, making a
 * layer's map datasets; OPEN: creating the file; FINISH: waiting for the writers to write what
 * is queued, closing the file and renaming it into place. */
enum { DUMP_FORWARD, DUMP_MLP_STATS, DUMP_LAYER_END, DUMP_GROUPNORM, DUMP_OTHER, DUMP_OPEN, DUMP_FINISH, N_DUMP_PARTS };
extern const char *const bench_dump_part_names[N_DUMP_PARTS];

typedef struct {
    double seconds[N_DUMP_PARTS]; /* they add up to the dump's time */
    bench_stages forward;         /* DUMP_FORWARD stage by stage, as bench_stages splits a prefill */
    ds_dump_io io;                /* its writes (writer_threads: the most of any dump; the buffers: the last) */
} bench_dump_split;

/* A new private folder in $TMPDIR (else /tmp) for a benchmark's files: nobody else can plant
 * a link or a file at their names there. Remove it with ds_tmpdir_remove (io/outfile.h); NULL
 * with the library's message set. */
char *bench_tmpdir(void);

/* A dump of the quantities WHAT (DS_DUMP_*) of IDS[0..T) into a temporary file in $TMPDIR: its time in
 * seconds, or -1 with the library's message set. *MB receives the disk space the file takes
 * (the bytes written), SPLIT (added to) where the time went. */
double bench_dump_timed(const ds_model *m, ds_session *s, const int *ids, int T, unsigned what, float *logits, double *mb,
                        bench_dump_split *split);
/* SPLIT, the sums of ROUNDS dumps, made their means. */
void bench_dump_split_mean(bench_dump_split *split, int rounds);
#endif
