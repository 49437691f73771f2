/* Reading HDF5 datasets whole, converted to native float / int (used by verify, compare,
 * the dump reader and the tests). */
#ifndef DIFFSCOPE_H5IN_H
#define DIFFSCOPE_H5IN_H
#include <hdf5.h>
#include <stdint.h>

#define DS_H5_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t dims[DS_H5_MAX_DIMS];
    int64_t numel;
} ds_h5_shape;

/* Opens FILE read-only with HDF5's error printing off; -1 with a message on failure. */
hid_t ds_h5_open_read(const char *path);
/* 1 when every component of PATH (absolute, or relative to LOC) exists, else 0. */
int ds_h5_exists(hid_t loc, const char *path);
int ds_h5_shape_of(hid_t file, const char *path, ds_h5_shape *shape);
/* Malloc'd data converted to float / double / int; NULL with a message on failure. */
float *ds_h5_read_f32(hid_t file, const char *path, ds_h5_shape *shape);
double *ds_h5_read_f64(hid_t file, const char *path, ds_h5_shape *shape);
int *ds_h5_read_i32(hid_t file, const char *path, ds_h5_shape *shape);
/* Scalar attribute of the object at PATH ("/" for the root); 0 or -1. */
int ds_h5_read_attr_f64(hid_t file, const char *path, const char *name, double *out);

#endif
