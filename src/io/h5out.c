/* Safe HDF5 output files and small dataset/attribute writers (see diffscope/h5out.h). */
#include "io/h5out.h"
#include "diffscope/error.h"
#include "base/tmpfiles.h"
#include <errno.h>
#include <fcntl.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *current_path = "";

/* HDF5 opens the temporary file again by name: make sure that it found the file we created. */
static int same_file(hid_t file, int fd) {
    void *handle = NULL;
    struct stat a, b;
    return H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) >= 0 && handle && !fstat(*(int *)handle, &a) &&
           !fstat(fd, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* ext4 writes a file back at the next close of any of its open file descriptions when it was
 * truncated to size 0 (its guard for programs that rewrite a file in place without fsync), and
 * H5F_ACC_TRUNC truncates the file we have just created. That close would come after a dump
 * has written every map: it would then wait while the writeback of the whole file is started.
 * Closing a second open file description now, while the file is nearly empty, clears that
 * state; /proc/self/fd opens the same file without looking up its name again. */
static void settle_truncation(int fd) {
    char again_path[64];
    snprintf(again_path, sizeof again_path, "/proc/self/fd/%d", fd);
    int again = open(again_path, O_RDONLY | O_CLOEXEC);
    if (again >= 0) close(again);
}

int ds_h5out_open(ds_h5out *o, const char *path, int force) {
    memset(o, 0, sizeof *o);
    o->file = H5I_INVALID_HID;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages, not HDF5's error stack dumps */
    if (ds_outfile_create(&o->f, path, force)) return -1;
    o->path = o->f.path, o->tmp = o->f.tmp;
    errno = 0;
    /* HDF5 1.10's formats: chunked datasets of a fixed shape get a fixed array as their chunk
     * index, which allocates the chunks of a dataset one after the other, in order (the dump's
     * uncompressed maps rely on it; HDF5 1.8's B-tree index, much slower to allocate, does not
     * keep that order). Files need HDF5 1.10 or later to read. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    o->file = fapl < 0 ? H5I_INVALID_HID : H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (o->file < 0 || !same_file(o->file, o->f.fd)) {
        int e = errno;
        ds_h5out_abort(o);
        return ds_fail("%s: cannot create output file: %s", path,
                       e ? strerror(e) : "HDF5 error (or its temporary file was replaced)");
    }
    settle_truncation(o->f.fd);
    current_path = o->path;
    return 0;
}

int ds_h5out_commit(ds_h5out *o) {
    errno = 0;
    herr_t rc = H5Fclose(o->file);
    o->file = H5I_INVALID_HID;
    if (rc < 0) {
        int e = errno;
        ds_failc(DS_ERR_IO, "%s: writing failed: %s", o->path, e ? strerror(e) : "HDF5 error");
        ds_h5out_abort(o);
        return -1;
    }
    rc = ds_outfile_commit(&o->f);
    o->path = o->tmp = NULL;
    return rc;
}

void ds_h5out_abort(ds_h5out *o) {
    if (o->file >= 0) H5Fclose(o->file);
    o->file = H5I_INVALID_HID;
    ds_outfile_abort(&o->f);
    o->path = o->tmp = NULL;
}

static int write_ds(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims, const void *data) {
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = sp < 0 ? -1 : H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return rc < 0 ? ds_failc(DS_ERR_IO, "%s: cannot write dataset '%s' (disk full?)", current_path, name) : 0;
}

int ds_h5_write_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *data) {
    return write_ds(loc, name, H5T_NATIVE_FLOAT, ndim, dims, data);
}

int ds_h5_write_f64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const double *data) {
    return write_ds(loc, name, H5T_NATIVE_DOUBLE, ndim, dims, data);
}

int ds_h5_write_i32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const int *data) {
    return write_ds(loc, name, H5T_NATIVE_INT, ndim, dims, data);
}

int ds_h5_label_axes(hid_t loc, const char *name, int ndim, const char *const *axes) {
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    int ok = ds >= 0;
    for (int i = 0; ok && i < ndim; i++) ok = H5DSset_label(ds, (unsigned)i, axes[i]) >= 0;
    if (ds >= 0) H5Dclose(ds);
    return ok ? 0 : ds_failc(DS_ERR_IO, "cannot label the axes of dataset '%s'", name);
}

static int write_attr(hid_t loc, const char *name, hid_t type, hid_t space, const void *data) {
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, data);
    if (a >= 0) H5Aclose(a);
    return rc < 0 ? ds_failc(DS_ERR_IO, "%s: cannot write attribute '%s'", current_path, name) : 0;
}

int ds_h5_attr_str(hid_t loc, const char *name, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc = write_attr(loc, name, t, sp, &value);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

int ds_h5_attr_str_array(hid_t loc, const char *name, const char *const *v, int n) {
    hsize_t d = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate_simple(1, &d, NULL);
    const char *none = NULL; /* H5Awrite wants a buffer even for no element */
    int rc = write_attr(loc, name, t, sp, n ? (const void *)v : &none);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

int ds_h5_attr_int(hid_t loc, const char *name, long long value) {
    hid_t sp = H5Screate(H5S_SCALAR);
    int v32 = (int)value;
    int rc = value == v32 ? write_attr(loc, name, H5T_NATIVE_INT, sp, &v32)
                          : write_attr(loc, name, H5T_NATIVE_LLONG, sp, &value);
    H5Sclose(sp);
    return rc;
}

int ds_h5_attr_double(hid_t loc, const char *name, double value) {
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc = write_attr(loc, name, H5T_NATIVE_DOUBLE, sp, &value);
    H5Sclose(sp);
    return rc;
}

int ds_h5_attr_int_array(hid_t loc, const char *name, const int *v, int n) {
    hsize_t d = (hsize_t)n;
    hid_t sp = H5Screate_simple(1, &d, NULL);
    int rc = write_attr(loc, name, H5T_NATIVE_INT, sp, v);
    H5Sclose(sp);
    return rc;
}

hid_t ds_h5_group(hid_t file, const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p) continue;
        char c = *p;
        *p = 0;
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) {
            hid_t g = H5Gcreate2(file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0) {
                ds_fail("%s: cannot create group '%s'", current_path, buf);
                return -1;
            }
            H5Gclose(g);
        }
        if (!c) break;
        *p = c;
    }
    hid_t g = H5Gopen2(file, buf, H5P_DEFAULT);
    if (g < 0) ds_fail("%s: cannot open group '%s'", current_path, buf);
    return g;
}
