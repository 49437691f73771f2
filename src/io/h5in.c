/* Whole-dataset HDF5 reads (see diffscope/h5in.h). */
#include "io/h5in.h"
#include "diffscope/error.h"
#include "base/fileio.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hid_t ds_h5_open_read(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (ds_check_regular_file(path)) return -1; /* HDF5 would block on a FIFO */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) ds_fail("%s: cannot open as HDF5", path);
    return f;
}

int ds_h5_exists(hid_t loc, const char *path) {
    /* H5Lexists on "a/b/c" fails instead of answering when "a/b" is absent: check each prefix. */
    char buf[512];
    size_t n = strlen(path);
    if (n >= sizeof buf) return 0;
    memcpy(buf, path, n + 1);
    for (char *p = buf + (buf[0] == '/');; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
        if (!c) return 1;
        *p = c;
    }
}

int ds_h5_shape_of(hid_t file, const char *path, ds_h5_shape *shape) {
    if (!ds_h5_exists(file, path)) return ds_fail("no dataset '%s'", path);
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return ds_fail("'%s' is not a dataset", path);
    hid_t sp = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[DS_H5_MAX_DIMS];
    int rc = 0;
    if (nd < 0 || nd > DS_H5_MAX_DIMS) rc = ds_fail("dataset '%s' has an unsupported rank", path);
    else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        shape->ndim = nd;
        shape->numel = 1;
        for (int i = 0; i < nd && !rc; i++) {
            shape->dims[i] = (int64_t)dims[i];
            /* Dimensions come from an untrusted file: their product must not wrap. */
            if (dims[i] > INT64_MAX || __builtin_mul_overflow(shape->numel, (int64_t)dims[i], &shape->numel))
                rc = ds_fail("dataset '%s' has an impossibly large shape", path);
        }
    }
    H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

static void *read_as(hid_t file, const char *path, ds_h5_shape *shape, hid_t type, size_t size) {
    ds_h5_shape s;
    if (ds_h5_shape_of(file, path, &s)) return NULL;
    void *buf = (uint64_t)s.numel <= SIZE_MAX / size ? malloc((size_t)(s.numel ? s.numel : 1) * size) : NULL;
    if (!buf) {
        ds_failc(DS_ERR_NOMEM, "out of memory reading '%s'", path);
        return NULL;
    }
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    herr_t rc = H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    if (rc < 0) {
        free(buf);
        ds_fail("cannot read dataset '%s' as numbers", path);
        return NULL;
    }
    if (shape) *shape = s;
    return buf;
}

float *ds_h5_read_f32(hid_t f, const char *p, ds_h5_shape *s) { return read_as(f, p, s, H5T_NATIVE_FLOAT, 4); }
double *ds_h5_read_f64(hid_t f, const char *p, ds_h5_shape *s) { return read_as(f, p, s, H5T_NATIVE_DOUBLE, 8); }
int *ds_h5_read_i32(hid_t f, const char *p, ds_h5_shape *s) { return read_as(f, p, s, H5T_NATIVE_INT, sizeof(int)); }

int ds_h5_read_attr_f64(hid_t file, const char *path, const char *name, double *out) {
    if (H5Aexists_by_name(file, path, name, H5P_DEFAULT) <= 0) return ds_fail("no attribute '%s' on '%s'", name, path);
    hid_t a = H5Aopen_by_name(file, path, name, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, out);
    H5Aclose(a);
    return rc < 0 ? ds_fail("attribute '%s' on '%s' is not a number", name, path) : 0;
}
