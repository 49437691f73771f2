/* Writing and reading provenance records (diffscope/provenance.h) in output files: the
 * attributes of the HDF5 group /provenance, or a JSON object "provenance", with the same names
 * and values in both. */
#ifndef DIFFSCOPE_IO_PROVENANCE_H
#define DIFFSCOPE_IO_PROVENANCE_H
#include <hdf5.h>
#include "diffscope/provenance.h"

#define DS_PROVENANCE_GROUP "/provenance"
#define DS_PROVENANCE_KEY "provenance"

typedef struct cJSON cJSON;

/* Writes PV as the attributes of the group /provenance of FILE. */
int ds_provenance_write_h5(const ds_provenance *pv, hid_t file);
/* Hashing a model's files (ds_provenance_add_model) on a thread of its own, for a writer that
 * has a forward pass to run meanwhile (the files may be cold on disk). PV must not be read or changed until ds_provenance_model_wait(), which
 * returns ds_provenance_add_model's result (its message, on the waiting thread). Start never
 * fails: without a thread it hashes at once, and wait returns that result. */
typedef struct ds_provenance_model_job ds_provenance_model_job;
ds_provenance_model_job *ds_provenance_model_start(ds_provenance *pv, const char *dir);
/* Waits and frees JOB; NULL (a job that could not even be allocated) is a failure. */
int ds_provenance_model_wait(ds_provenance_model_job *job);
/* PV as a JSON object (NULL with a message when out of memory). */
cJSON *ds_provenance_json(const ds_provenance *pv);
/* Adds PV to the JSON object O as "provenance"; -1 with a message when out of memory. */
int ds_provenance_add_to_json(const ds_provenance *pv, cJSON *o);
/* The record of FILE as the JSON object ds_provenance_json would make: *OUT is NULL when FILE
 * has no /provenance group. Fields of the table that are missing are left out. */
int ds_provenance_read_h5(hid_t file, cJSON **out);
/* The names of the fields whose values differ between two records as read (A or B may be
 * NULL: every field the other has differs), in the table's order: a new JSON array of strings,
 * NULL with a message when out of memory. */
cJSON *ds_provenance_diff(const cJSON *a, const cJSON *b);

#endif
