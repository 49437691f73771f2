/* The master file of a sweep: every per-prompt dataset is an HDF5 virtual dataset over the
 * shards (one array of all prompts for h5py and h5dump), the prompts' metadata is stored in it
 * directly, and the aggregates (sweep_aggregates.c) are computed from the shards in prompt
 * order, so that they do not depend on how the prompts were split between ranks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "cli/sweep.h"
#include "diffscope/error.h"
#include "io/h5out.h"
#include "io/provenance.h"

/* ---- writing ---- */

/* Opens the group holding PATH's last component; *LEAF points at it. */
static hid_t parent_of(hid_t file, const char *path, const char **leaf) {
    char parent[160];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = 0;
    *leaf = strrchr(path, '/') + 1;
    return parent[0] ? ds_h5_group(file, parent) : H5Gopen2(file, "/", H5P_DEFAULT);
}

/* PATH (intermediate groups created): doubles, or ints when I32 is given instead of F64. */
static int write_at(hid_t file, const char *path, int nd, const hsize_t *dims, const double *f64, const int *i32) {
    const char *leaf;
    hid_t g = parent_of(file, path, &leaf);
    int rc = g < 0 || (f64 ? ds_h5_write_f64(g, leaf, nd, dims, f64) : ds_h5_write_i32(g, leaf, nd, dims, i32));
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

int sweep_write_f64(hid_t file, const char *path, int nd, const hsize_t *dims, const double *v) {
    return write_at(file, path, nd, dims, v, NULL);
}

int sweep_write_i32(hid_t file, const char *path, int nd, const hsize_t *dims, const int *v) {
    return write_at(file, path, nd, dims, NULL, v);
}

/* PATH [P, DIMS...] mapped onto the same dataset of each rank's shard. */
static int write_virtual(hid_t file, const char *out, const char *path, hid_t type, int P, const int *dims, int nd,
                         const int *first, int nranks) {
    hsize_t vd[3] = {(hsize_t)P, 1, 1}, start[3] = {0}, count[3];
    for (int k = 0; k < nd; k++) vd[k + 1] = (hsize_t)dims[k];
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), vs = H5Screate_simple(nd + 1, vd, NULL);
    int rc = dcpl < 0 || vs < 0;
    for (int r = 0; !rc && r < nranks; r++) {
        if (first[r + 1] == first[r]) continue;
        memcpy(count, vd, sizeof count);
        start[0] = (hsize_t)first[r], count[0] = (hsize_t)(first[r + 1] - first[r]);
        hid_t ss = H5Screate_simple(nd + 1, count, NULL);
        char *src = sweep_shard_relpath(out, r, nranks);
        rc = ss < 0 || !src || H5Sselect_hyperslab(vs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
             H5Pset_virtual(dcpl, vs, src, path, ss) < 0;
        free(src);
        if (ss >= 0) H5Sclose(ss);
    }
    H5Sselect_all(vs);
    const char *leaf;
    hid_t g = rc ? -1 : parent_of(file, path, &leaf);
    hid_t d = g < 0 ? -1 : H5Dcreate2(g, leaf, type, vs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    rc = d < 0;
    if (d >= 0) H5Dclose(d);
    if (g >= 0) H5Gclose(g);
    if (vs >= 0) H5Sclose(vs);
    if (dcpl >= 0) H5Pclose(dcpl);
    return rc ? ds_fail("%s: cannot create the virtual dataset '%s'", out, path) : 0;
}

static int write_prompts(hid_t f, const sweep_prompts *ps) {
    int P = ps->n, *v = malloc((size_t)(2 * P + 1) * sizeof *v), *ids = malloc((size_t)(ps->tokens + 1) * sizeof *ids);
    long *off = malloc((size_t)(P + 1) * sizeof *off);
    const char **meta = malloc((size_t)(P + 1) * sizeof *meta);
    int rc = !v || !ids || !off || !meta ? ds_failc(DS_ERR_NOMEM, "out of memory") : 0;
    hsize_t d1 = (hsize_t)P, d2[2] = {(hsize_t)P, 2}, dt = (hsize_t)ps->tokens, doff = (hsize_t)P + 1;
    for (int i = 0, at = 0; !rc && i <= P; i++) {
        off[i] = at;
        if (i < P) memcpy(ids + at, ps->p[i].ids, (size_t)ps->p[i].n * sizeof *ids), at += ps->p[i].n;
    }
    /* Each int column of the prompts, by its offset in sweep_prompt. */
    static const struct { const char *name; size_t off; } cols[] = {
        {"/prompts/tokens", offsetof(sweep_prompt, n)},          {"/prompts/query", offsetof(sweep_prompt, query)},
        {"/prompts/answer_id", offsetof(sweep_prompt, answer_id)}, {"/prompts/length", offsetof(sweep_prompt, length)},
        {"/prompts/depth", offsetof(sweep_prompt, depth)},        {"/prompts/trial", offsetof(sweep_prompt, trial)}};
    for (size_t c = 0; !rc && c < sizeof cols / sizeof *cols; c++) {
        for (int i = 0; i < P; i++) memcpy(&v[i], (const char *)&ps->p[i] + cols[c].off, sizeof *v);
        rc = sweep_write_i32(f, cols[c].name, 1, &d1, v);
    }
    for (int i = 0; !rc && i < P; i++) {
        v[2 * i] = ps->p[i].span_end ? ps->p[i].span_begin : -1;
        v[2 * i + 1] = ps->p[i].span_end ? ps->p[i].span_end : -1;
        meta[i] = ps->p[i].meta;
    }
    rc = rc || sweep_write_i32(f, "/prompts/span", 2, d2, v) || sweep_write_i32(f, "/prompts/token_ids", 1, &dt, ids);
    hid_t g = rc ? -1 : H5Gopen2(f, "/prompts", H5P_DEFAULT);
    if (!rc) {
        hid_t sp = H5Screate_simple(1, &doff, NULL);
        hid_t d = H5Dcreate2(g, "token_offsets", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = d < 0 || H5Dwrite(d, H5T_NATIVE_LONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) < 0;
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE), H5Tset_cset(t, H5T_CSET_UTF8);
        sp = H5Screate_simple(1, &d1, NULL);
        d = rc ? -1 : H5Dcreate2(g, "meta", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, meta) < 0;
        if (d >= 0) H5Dclose(d);
        H5Sclose(sp), H5Tclose(t);
        if (rc) ds_fail("cannot write the prompts' metadata");
    }
    if (g >= 0) H5Gclose(g);
    free(v), free(ids), free(off), free(meta);
    return rc ? -1 : 0;
}

/* ---- the file ---- */

static int write_models(hid_t f, const char *out, const sweep_setup *su, int P, const int *first, int nranks) {
    int rc = 0;
    for (int m = 0; !rc && m < su->nmodels; m++) {
        const sweep_layout *lay = &su->lay[m];
        char path[128];
        snprintf(path, sizeof path, "/%s", lay->name);
        hid_t g = ds_h5_group(f, path);
        rc = g < 0 || ds_h5_attr_str(g, "path", lay->path) || ds_h5_attr_str(g, "arch", lay->arch) ||
             ds_h5_attr_int(g, "layers", lay->L) || ds_h5_attr_int(g, "heads", lay->heads);
        if (g >= 0) H5Gclose(g);
        for (int k = 0; !rc && k < 2; k++) {
            snprintf(path, sizeof path, "/%s/%s", lay->name, k ? "correct" : "top1");
            rc = write_virtual(f, out, path, H5T_STD_I32LE, P, NULL, 0, first, nranks);
        }
        for (int k = 0; !rc && k < lay->nfields; k++) {
            int dims[2], nd = sweep_field_dims(lay, &lay->f[k], dims);
            snprintf(path, sizeof path, "/%s/%s", lay->name, lay->f[k].name);
            rc = write_virtual(f, out, path, H5T_IEEE_F64LE, P, dims, nd, first, nranks);
        }
    }
    return rc;
}

/* The model's maps of every prompt: /{model}/maps/{i}, an external link to the root of the
 * prompt's dump file (relative to the master's folder, like the virtual datasets' sources),
 * with the layers and heads kept as attributes of /{model}/maps. Every file must be there. */
static int write_map_links(hid_t f, const sweep_opts *o, const sweep_layout *lay, int P) {
    char path[128], name[16];
    snprintf(path, sizeof path, "/%s/" SWEEP_MAPS_DIR, lay->name);
    hid_t g = ds_h5_group(f, path);
    int n = lay->L > lay->heads ? lay->L : lay->heads, *all = malloc((size_t)n * sizeof *all);
    for (int k = 0; all && k < n; k++) all[k] = k;
    int rc = g < 0 || !all ||
             ds_h5_attr_int_array(g, "layers", o->map_layers ? o->map_layers : all, o->map_layers ? o->nmap_layers : lay->L) ||
             ds_h5_attr_int_array(g, "heads", o->map_heads ? o->map_heads : all, o->map_heads ? o->nmap_heads : lay->heads);
    char *dir = sweep_dir(o->out);
    for (int i = 0; !rc && i < P; i++) {
        char *file = dir ? sweep_maps_path(dir, lay->name, i) : NULL, *rel = sweep_maps_relpath(o->out, lay->name, i);
        struct stat st;
        if (!file || !rel) rc = -1;
        else if (stat(file, &st)) rc = ds_fail("%s: missing (%s): the maps of prompt %d; rerun the sweep", file, strerror(errno), i);
        else if (snprintf(name, sizeof name, "%d", i), H5Lcreate_external(rel, "/", g, name, H5P_DEFAULT, H5P_DEFAULT) < 0)
            rc = ds_fail("%s: cannot link %s", o->out, rel);
        free(file), free(rel);
    }
    free(dir), free(all);
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

/* Maps in the folder that the options do not ask for: --merge without --dump-layers/--dump-heads. */
static int check_no_maps(const sweep_opts *o) {
    char *dir = sweep_dir(o->out), *file = dir ? sweep_maps_path(dir, "A", 0) : NULL;
    struct stat st;
    int rc = !file ? -1 : stat(file, &st) ? 0 : ds_fail("%s: the sweep kept maps: give --merge the same --dump-layers "
                                                         "and --dump-heads as the sweep", file);
    free(dir), free(file);
    return rc;
}

static int write_grid_axes(hid_t f, const sweep_opts *o) {
    hsize_t nl = (hsize_t)o->nlengths, nd = (hsize_t)o->ndepths;
    return sweep_write_i32(f, "/aggregates/grid/lengths", 1, &nl, o->lengths) ||
           sweep_write_i32(f, "/aggregates/grid/depths", 1, &nd, o->depths);
}

int sweep_master_write(const sweep_opts *o, const sweep_setup *su, const sweep_prompts *ps, int nranks,
                       sweep_aggs *ag) {
    int *first = malloc(((size_t)nranks + 1) * sizeof *first);
    ds_h5out h;
    if (!first) return ds_failc(DS_ERR_NOMEM, "out of memory");
    if (ds_h5out_open(&h, o->out, 1)) return free(first), -1;
    sweep_ranges(ps, nranks, first);
    hid_t f = h.file;
    int rc = ds_h5_attr_str(f, "format", "diffscope-sweep") || ds_h5_attr_int(f, "format_version", 1) ||
             ds_provenance_write_h5(o->provenance, f) ||
             ds_h5_attr_str(f, "source", o->task ? o->task : o->prompts) || ds_h5_attr_int(f, "prompts", ps->n) ||
             ds_h5_attr_int(f, "shards", nranks) || ds_h5_attr_int_array(f, "shard_first_prompt", first, nranks + 1) ||
             write_prompts(f, ps) || write_models(f, o->out, su, ps->n, first, nranks) || (!o->maps && check_no_maps(o));
    for (int m = 0; !rc && o->maps && m < su->nmodels; m++) rc = write_map_links(f, o, &su->lay[m], ps->n);
    rc = rc || (o->task && write_grid_axes(f, o)) || sweep_aggregates_write(f, o, su, ps, first, nranks, ag);
    free(first);
    if (rc) {
        ds_h5out_abort(&h);
        return -1;
    }
    return ds_h5out_commit(&h);
}
