/* Writing HDF5 output files safely: written under a temporary name next to the target and
 * committed only when complete (ds_h5out_commit), removed on failure (ds_h5out_abort); the
 * rules of src/io/outfile.h (an existing target is refused unless FORCE, and so on). */
#ifndef DIFFSCOPE_H5OUT_H
#define DIFFSCOPE_H5OUT_H
#include <hdf5.h>
#include "io/outfile.h"

typedef struct {
    hid_t file;
    char *path; /* the target and the temporary file: f.path and f.tmp */
    char *tmp;
    ds_outfile f;
} ds_h5out;

int ds_h5out_open(ds_h5out *o, const char *path, int force);
int ds_h5out_commit(ds_h5out *o);
void ds_h5out_abort(ds_h5out *o);

/* Small writers; each returns 0 or -1 with a message naming the output file. */
int ds_h5_write_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *data);
int ds_h5_write_f64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const double *data);
int ds_h5_write_i32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const int *data);
/* Names the NDIM axes of dataset LOC/NAME (HDF5 dimension labels), for h5py's dims and h5dump. */
int ds_h5_label_axes(hid_t loc, const char *name, int ndim, const char *const *axes);
int ds_h5_attr_str(hid_t loc, const char *name, const char *value);
/* A 1-D attribute of N variable-length UTF-8 strings (N may be 0). */
int ds_h5_attr_str_array(hid_t loc, const char *name, const char *const *v, int n);
int ds_h5_attr_int(hid_t loc, const char *name, long long value);
int ds_h5_attr_double(hid_t loc, const char *name, double value);
int ds_h5_attr_int_array(hid_t loc, const char *name, const int *v, int n);
/* Creates (or opens) a group path such as "layers/3/attn", intermediate groups included. */
hid_t ds_h5_group(hid_t file, const char *path);

#endif
