/* safetensors writer (see include/diffscope/st_writer.h). */
#include "io/st_writer.h"
#include "diffscope/error.h"
#include "base/path.h"
#include "base/tmpfiles.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *name;
    int ndim;
    int64_t shape[DS_MAX_DIMS];
    int64_t numel;
    int shard;
    uint64_t offset; /* within its shard's data section */
} entry;

struct ds_st_writer {
    char *dir, *shown_dir; /* where the files go, and the folder messages name */
    ds_dtype dtype;
    uint64_t shard_bytes;
    entry *e;
    int n, nshards;
};

ds_st_writer *ds_st_writer_new(const char *dir, const char *shown_dir, ds_dtype dtype, uint64_t shard_bytes) {
    ds_st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir)) || !(w->shown_dir = strdup(shown_dir))) {
        if (w) free(w->dir);
        free(w);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->dtype = dtype;
    w->shard_bytes = shard_bytes;
    return w;
}

int ds_st_writer_add(ds_st_writer *w, const char *name, int ndim, const int64_t *shape) {
    entry *ne = realloc(w->e, (size_t)(w->n + 1) * sizeof *ne);
    if (!ne) return ds_failc(DS_ERR_NOMEM, "out of memory");
    w->e = ne;
    entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i], e->numel *= shape[i];
    return e->name ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
}

/* Assigns shards greedily in declaration order, like transformers' shard_checkpoint. */
static void plan_shards(ds_st_writer *w) {
    size_t es = ds_dtype_size(w->dtype);
    uint64_t used = 0;
    int shard = 0;
    for (int i = 0; i < w->n; i++) {
        uint64_t bytes = (uint64_t)w->e[i].numel * es;
        if (used > 0 && used + bytes > w->shard_bytes) shard++, used = 0;
        w->e[i].shard = shard;
        w->e[i].offset = used;
        used += bytes;
    }
    w->nshards = shard + 1;
}

static void shard_name(const ds_st_writer *w, int s, char *buf, size_t n) {
    if (w->nshards == 1) snprintf(buf, n, "model.safetensors");
    else snprintf(buf, n, "model-%05d-of-%05d.safetensors", s + 1, w->nshards);
}

static char *header_json(const ds_st_writer *w, int shard) {
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t es = ds_dtype_size(w->dtype);
    for (int i = 0; i < w->n; i++) {
        const entry *e = &w->e[i];
        if (e->shard != shard) continue;
        cJSON *t = cJSON_AddObjectToObject(h, e->name);
        cJSON_AddStringToObject(t, "dtype", ds_dtype_name(w->dtype));
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)e->offset));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(e->offset + (uint64_t)e->numel * es)));
    }
    char *s = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    return s;
}

static int write_all(FILE *f, const void *p, size_t n, const char *path) {
    return fwrite(p, 1, n, f) == n ? 0 : ds_failc(DS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
}

/* A new file PATH, never an existing one or through a planted link. */
static FILE *create_new(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (fd >= 0 && !f) close(fd);
    return f;
}

/* The index into REAL (the temporary folder's file); messages name PATH, the user's. */
static int write_index_to(const ds_st_writer *w, const char *real, const char *path) {
    char shard[64];
    cJSON *j = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(j, "metadata");
    uint64_t total = 0;
    for (int i = 0; i < w->n; i++) total += (uint64_t)w->e[i].numel * ds_dtype_size(w->dtype);
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *map = cJSON_AddObjectToObject(j, "weight_map");
    for (int i = 0; i < w->n; i++) {
        shard_name(w, w->e[i].shard, shard, sizeof shard);
        cJSON_AddStringToObject(map, w->e[i].name, shard);
    }
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    FILE *f = s ? create_new(real) : NULL;
    int rc = !s || !f ? ds_failc(DS_ERR_IO, "%s: cannot write: %s", path, strerror(errno)) : write_all(f, s, strlen(s), path);
    if (f && fclose(f) && !rc) rc = ds_failc(DS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    free(s);
    return rc;
}

static int write_index(const ds_st_writer *w) {
    static const char name[] = "model.safetensors.index.json";
    char *real = ds_path_join(w->dir, name), *path = real ? ds_path_join(w->shown_dir, name) : NULL;
    int rc = path ? write_index_to(w, real, path) : -1;
    free(real);
    free(path);
    return rc;
}

/* Shard S into REAL (the temporary folder's file); messages name PATH, the user's. */
static int write_shard_to(ds_st_writer *w, int s, const char *real, const char *path, ds_fill_fn fill, void *user) {
    char *hdr = header_json(w, s);
    FILE *f = hdr ? create_new(real) : NULL;
    if (!f) {
        free(hdr);
        return ds_failc(DS_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8; /* data section 8-byte aligned */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int rc = write_all(f, len8, 8, path) || write_all(f, hdr, hl, path) || write_all(f, "        ", padded - hl, path);
    free(hdr);
    size_t es = ds_dtype_size(w->dtype);
    for (int i = 0; i < w->n && !rc; i++) {
        const entry *e = &w->e[i];
        if (e->shard != s) continue;
        float *buf = malloc((size_t)e->numel * sizeof(float));
        if (!buf) {
            rc = ds_failc(DS_ERR_NOMEM, "out of memory for tensor '%s'", e->name);
            break;
        }
        fill(e->name, buf, e->numel, user);
        if (w->dtype == DS_DT_BF16) {
            uint16_t *h = (uint16_t *)buf; /* in place: each output is written before it is read again */
            for (int64_t k = 0; k < e->numel; k++) {
                uint32_t u;
                memcpy(&u, &buf[k], 4);
                u += 0x7fff + ((u >> 16) & 1); /* round to nearest even */
                h[k] = (uint16_t)(u >> 16);
            }
        }
        rc = write_all(f, buf, (size_t)e->numel * es, path);
        free(buf);
    }
    /* On disk before the rename; then out of the page cache, so that the first model load
     * reads it back through its huge-page mapping (src/io/safetensors.c) into 2 MiB folios,
     * instead of mapping the 4 KiB pages this write left behind. */
    if (!rc && (fflush(f) || fdatasync(fileno(f)))) rc = ds_failc(DS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (!rc) posix_fadvise(fileno(f), 0, 0, POSIX_FADV_DONTNEED);
    if (fclose(f) && !rc) rc = ds_failc(DS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (!rc) ds_test_stop_point("shard-written");
    return rc;
}

static int write_shard(ds_st_writer *w, int s, ds_fill_fn fill, void *user) {
    char name[64];
    shard_name(w, s, name, sizeof name);
    char *real = ds_path_join(w->dir, name), *path = real ? ds_path_join(w->shown_dir, name) : NULL;
    int rc = path ? write_shard_to(w, s, real, path, fill, user) : -1;
    free(real);
    free(path);
    return rc;
}

int ds_st_writer_write(ds_st_writer *w, ds_fill_fn fill, void *user) {
    plan_shards(w);
    int rc = 0;
    for (int s = 0; s < w->nshards && !rc; s++) rc = write_shard(w, s, fill, user);
    if (!rc && w->nshards > 1) rc = write_index(w);
    ds_st_writer_free(w);
    return rc;
}

void ds_st_writer_free(ds_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    free(w->dir);
    free(w->shown_dir);
    free(w);
}
