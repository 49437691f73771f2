/* Where a sweep's files go and how prompts are shared between ranks: OUT.h5 is the master,
 * OUT.h5.shards/ holds the journals and the shards (docs/sweep.md). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/sweep.h"
#include "diffscope/error.h"
#include "io/h5out.h"
#include <unistd.h>

static long distance(long a, long b) { return a > b ? a - b : b - a; }

void sweep_ranges(const sweep_prompts *ps, int nranks, int *first) {
    /* first[r]: the boundary whose preceding tokens come nearest to r/N of all tokens. */
    long before = 0;
    int i = 0;
    first[0] = 0;
    for (int r = 1; r < nranks; r++) {
        long target = (long)r * ps->tokens;
        while (i < ps->n && distance((before + ps->p[i].n) * nranks, target) <= distance(before * nranks, target))
            before += ps->p[i++].n;
        first[r] = i;
    }
    first[nranks] = ps->n;
}

char *sweep_dir(const char *out) {
    size_t n = strlen(out) + 8;
    char *d = malloc(n);
    if (d) snprintf(d, n, "%s.shards", out);
    else ds_failc(DS_ERR_NOMEM, "out of memory");
    return d;
}

char *sweep_shard_path(const char *dir, int rank, int nranks) {
    size_t n = strlen(dir) + 40;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/shard-%05d-of-%05d.h5", dir, rank, nranks);
    else ds_failc(DS_ERR_NOMEM, "out of memory");
    return p;
}

/* The sweep's folder as the master names it: relative to the master's own folder. */
static char *rel_dir(const char *out) {
    const char *base = strrchr(out, '/');
    return sweep_dir(base ? base + 1 : out);
}

char *sweep_shard_relpath(const char *out, int rank, int nranks) {
    char *dir = rel_dir(out);
    char *p = dir ? sweep_shard_path(dir, rank, nranks) : NULL;
    free(dir);
    return p;
}

char *sweep_maps_path(const char *dir, const char *model, int prompt) {
    size_t n = strlen(dir) + strlen(model) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/" SWEEP_MAPS_DIR "/%s-%08d.h5", dir, model, prompt);
    else ds_failc(DS_ERR_NOMEM, "out of memory");
    return p;
}

char *sweep_maps_relpath(const char *out, const char *model, int prompt) {
    char *dir = rel_dir(out);
    char *p = dir ? sweep_maps_path(dir, model, prompt) : NULL;
    free(dir);
    return p;
}

/* Column of prompts [a, b) gathered from the records: N values per prompt from OFFSET (in
 * doubles after the header), or one int32 of the header at byte IOFF when N == 0. */
static int write_rows(hid_t file, const char *path, void *const *recs, int a, int b, const int *dims, int ndims,
                      size_t offset, int ioff) {
    size_t per = 1;
    for (int k = 0; k < ndims; k++) per *= (size_t)dims[k];
    hsize_t hd[4] = {(hsize_t)(b - a)};
    for (int k = 0; k < ndims; k++) hd[k + 1] = (hsize_t)dims[k];
    char parent[128];
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = 0;
    hid_t g = ds_h5_group(file, parent);
    if (g < 0) return -1;
    const char *leaf = strrchr(path, '/') + 1;
    int rc;
    if (ioff >= 0) {
        int *v = malloc((size_t)(b - a + 1) * sizeof *v);
        for (int i = a; v && i < b; i++) memcpy(&v[i - a], (char *)recs[i] + ioff, sizeof(int32_t));
        rc = v ? ds_h5_write_i32(g, leaf, 1, hd, v) : ds_failc(DS_ERR_NOMEM, "out of memory");
        free(v);
    } else {
        double *v = malloc(((size_t)(b - a) * per + 1) * sizeof *v);
        for (int i = a; v && i < b; i++) memcpy(v + (size_t)(i - a) * per, sweep_rec_values(recs[i]) + offset, per * sizeof *v);
        rc = v ? ds_h5_write_f64(g, leaf, ndims + 1, hd, v) : ds_failc(DS_ERR_NOMEM, "out of memory");
        free(v);
    }
    H5Gclose(g);
    return rc;
}

int sweep_field_dims(const sweep_layout *lay, const sweep_field *f, int *dims) {
    if (f->shape == SWEEP_LH) return dims[0] = lay->L, dims[1] = lay->heads, 2;
    dims[0] = f->count;
    return 1;
}

int sweep_shard_write(const char *path, const sweep_setup *su, void *const *recs, int a, int b) {
    ds_h5out o;
    if (ds_h5out_open(&o, path, 1)) return -1;
    int rc = ds_h5_attr_str(o.file, "format", "diffscope-sweep-shard") || ds_h5_attr_int(o.file, "first_prompt", a) ||
             write_rows(o.file, "/prompts/index", recs, a, b, NULL, 0, 0, offsetof(sweep_rec_head, index));
    size_t base = 0;
    for (int m = 0; !rc && m < su->nmodels; m++) {
        const sweep_layout *lay = &su->lay[m];
        char path[128];
        snprintf(path, sizeof path, "/%s/top1", lay->name);
        rc = write_rows(o.file, path, recs, a, b, NULL, 0, 0, offsetof(sweep_rec_head, top1) + 4 * m);
        snprintf(path, sizeof path, "/%s/correct", lay->name);
        rc = rc || write_rows(o.file, path, recs, a, b, NULL, 0, 0, offsetof(sweep_rec_head, correct) + 4 * m);
        for (int k = 0; !rc && k < lay->nfields; k++) {
            int dims[2], nd = sweep_field_dims(lay, &lay->f[k], dims);
            snprintf(path, sizeof path, "/%s/%s", lay->name, lay->f[k].name);
            rc = write_rows(o.file, path, recs, a, b, dims, nd, base + lay->f[k].offset, -1);
        }
        base += lay->ndoubles;
    }
    if (rc) {
        ds_h5out_abort(&o);
        return -1;
    }
    return ds_h5out_commit(&o);
}

/* NAME is "PREFIX-RRRRR-of-NNNNN.EXT": *R and *N. */
static int parse_part(const char *name, const char *prefix, const char *ext, int *r, int *n) {
    size_t lp = strlen(prefix);
    char tail[16];
    return !strncmp(name, prefix, lp) && sscanf(name + lp, "-%5d-of-%5d.%15s", r, n, tail) == 3 && !strcmp(tail, ext);
}

/* A file of the maps folder: "A-00000017.h5", "B-...", and their temporary names. */
static int is_maps_file(const char *name) { return (name[0] == 'A' || name[0] == 'B') && name[1] == '-'; }

/* Removes the sweep's files from DIR: journals and shards, or with MAPS every maps file and then DIR. */
static int clear(const char *dir, int maps) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : ds_fail("%s: cannot read: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0, r, n;
    while (!rc && (e = readdir(d))) {
        if (maps ? !is_maps_file(e->d_name)
                 : !parse_part(e->d_name, "journal", "bin", &r, &n) && !parse_part(e->d_name, "shard", "h5", &r, &n))
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
        else if (snprintf(path, len, "%s/%s", dir, e->d_name), unlink(path))
            rc = ds_fail("%s: cannot remove: %s", path, strerror(errno));
        free(path);
    }
    closedir(d);
    if (!rc && maps && rmdir(dir) && errno != ENOTEMPTY && errno != EEXIST)
        rc = ds_fail("%s: cannot remove: %s", dir, strerror(errno));
    return rc;
}

int sweep_dir_clear(const char *dir) {
    size_t n = strlen(dir) + sizeof "/" SWEEP_MAPS_DIR;
    char *maps = malloc(n);
    if (!maps) return ds_failc(DS_ERR_NOMEM, "out of memory");
    snprintf(maps, n, "%s/" SWEEP_MAPS_DIR, dir);
    sweep_claims_remove(dir);
    int rc = clear(maps, 1) || clear(dir, 0);
    free(maps);
    return rc ? -1 : 0;
}

int sweep_find_shards(const char *dir, int *nranks) {
    DIR *d = opendir(dir);
    if (!d) return ds_fail("%s: no shards to merge (%s): run the --shard I/N jobs first", dir, strerror(errno));
    /* The largest N of which all N shards are present. */
    enum { MAXN = 4096 };
    unsigned short *seen = calloc(MAXN + 1, sizeof *seen);
    struct dirent *e;
    int r, n;
    while (seen && (e = readdir(d)))
        if (parse_part(e->d_name, "shard", "h5", &r, &n) && n <= MAXN && r < n) seen[n]++;
    closedir(d);
    if (!seen) return ds_failc(DS_ERR_NOMEM, "out of memory");
    int best = 0, partial = 0;
    for (n = 1; n <= MAXN; n++) {
        if (seen[n] == n) best = n;
        else if (seen[n]) partial = n;
    }
    int have = partial ? seen[partial] : 0;
    free(seen);
    if (best) return *nranks = best, 0;
    if (partial) return ds_fail("%s: %d of the %d shards are there: run the missing --shard I/%d jobs", dir, have, partial, partial);
    return ds_fail("%s: no shards to merge: run the --shard I/N jobs first", dir);
}
