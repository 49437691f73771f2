/* Provenance: how an output file was made. Every file diffscope writes carries one record: the
 * command line, the interventions, each model's folder with hashes of its config.json, weights
 * and tokenizer.json, the tool's version and build commit, the compute mode, the thread count,
 * the host and the UTC time. The fields and their meaning are one table in
 * src/io/provenance.c, documented in docs/dump-format.md ("Provenance"); an HDF5 output holds
 * them as attributes of the group /provenance, a JSON output as the object "provenance".
 *
 *   ds_provenance *pv = ds_provenance_new();      tool, compute, threads, host, cwd, time
 *   ds_provenance_set_command(pv, argc, argv);    a program's command line
 *   ds_provenance_add_model(pv, "models/diff");   once per model, in the output's order
 *   ds_provenance_add_intervention(pv, "ablate-head 0.1");
 *   ... hand it to a writer (ds_dump_opts.provenance) ...
 *   ds_provenance_free(pv); */
#ifndef DIFFSCOPE_PROVENANCE_H
#define DIFFSCOPE_PROVENANCE_H

typedef struct ds_provenance ds_provenance;

/* A record holding the facts of this process: tool version and build commit, compute mode,
 * the current thread count (ds_get_threads), host name, working directory, and the time now.
 * NULL with a message when out of memory. */
ds_provenance *ds_provenance_new(void);
void ds_provenance_free(ds_provenance *pv);

/* The command line ARGV[0..ARGC), stored quoted for a POSIX shell (as Python's shlex.quote),
 * so that it can be pasted back into a shell in the recorded working directory. */
int ds_provenance_set_command(ds_provenance *pv, int argc, char *const *argv);
/* Appends model folder DIR: its path as given, and the SHA-256 of its config.json, of its
 * weights (docs/dump-format.md says which bytes) and of its tokenizer.json ("" when it has
 * none). -1 with a message naming the file that cannot be read. */
int ds_provenance_add_model(ds_provenance *pv, const char *dir);
/* Appends one intervention, in the CLI's words: "lambda-override 1=0.5", "ablate-head 0.1". */
int ds_provenance_add_intervention(ds_provenance *pv, const char *text);
/* Sets the compute mode (default: the process's, ds_get_compute: "f32" or "bf16"). */
int ds_provenance_set_compute(ds_provenance *pv, const char *mode);

#endif
