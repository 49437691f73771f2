/* safetensors reader: mmap the file, parse the JSON header with cJSON, validate every
 * tensor's dtype, shape and byte range (see src/io/safetensors.h). */
#include "io/safetensors.h"
#include "base/path.h"
#include "diffscope/error.h"
#include "base/fileio.h"
#include <cjson/cJSON.h>
#include "base/finite.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    ds_dtype dt;
    size_t size;
} dtypes[] = {
    {"F32", DS_DT_F32, 4},     {"F16", DS_DT_F16, 2},   {"BF16", DS_DT_BF16, 2},
    {"F64", DS_DT_F64, 8},     {"I64", DS_DT_I64, 8},   {"I32", DS_DT_I32, 4},
    {"I16", DS_DT_I16, 2},     {"I8", DS_DT_I8, 1},     {"U8", DS_DT_U8, 1},
    {"BOOL", DS_DT_BOOL, 1},   {"F8_E4M3", DS_DT_F8_E4M3, 1}, {"F8_E5M2", DS_DT_F8_E5M2, 1},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *ds_dtype_name(ds_dtype dt) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dt == dt) return dtypes[i].name;
    return "?";
}

size_t ds_dtype_size(ds_dtype dt) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dt == dt) return dtypes[i].size;
    return 0;
}

static int dtype_from_name(const char *s, ds_dtype *dt) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (!strcmp(dtypes[i].name, s)) {
            *dt = dtypes[i].dt;
            return 0;
        }
    return -1;
}

/* ---- one file ---- */

static int cmp_by_offset(const void *a, const void *b) {
    const ds_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

static int parse_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    /* JSON numbers above 2^53 cannot be exact in cJSON; no real file needs them. */
    if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

/* ---- the name hash ---- */

static size_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* The slot holding NAME, or the empty slot where it would go. */
static int *name_slot(const ds_weights *w, const char *name) {
    size_t mask = w->nslots - 1;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        int *slot = &w->slots[i];
        if (!*slot || !strcmp(w->tensors[*slot - 1].name, name)) return slot;
    }
}

/* Room in the hash for N tensors in all: grown to keep it at most half full. */
static int reserve_slots(ds_weights *w, size_t n) {
    if (w->nslots >= 2 * n) return 0;
    size_t want = 16;
    while (want < 2 * n) want *= 2;
    int *slots = calloc(want, sizeof *slots);
    if (!slots) return -1;
    free(w->slots);
    w->slots = slots, w->nslots = want;
    for (int i = 0; i < w->ntensors; i++) *name_slot(w, w->tensors[i].name) = i + 1;
    return 0;
}

/* Validates and appends the tensors described by HEADER (data section DATA, DATASIZE bytes). */
static int add_tensors(ds_weights *w, const char *path, const cJSON *header, const char *data,
                       uint64_t datasize) {
    int first = w->ntensors, count = 0;
    for (const cJSON *e = header->child; e; e = e->next) count++;
    ds_tensor *nt = realloc(w->tensors, (size_t)(w->ntensors + count + 1) * sizeof *nt);
    if (!nt) return ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
    w->tensors = nt;
    if (reserve_slots(w, (size_t)w->ntensors + (size_t)count)) return ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
    for (const cJSON *e = header->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        const char *name = e->string;
        if (!cJSON_IsObject(e)) return ds_fail("%s: tensor '%s': entry is not an object", path, name);
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd)) return ds_fail("%s: tensor '%s': missing dtype", path, name);
        if (!cJSON_IsArray(js)) return ds_fail("%s: tensor '%s': missing shape", path, name);
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
            return ds_fail("%s: tensor '%s': data_offsets must be [begin, end]", path, name);
        ds_tensor t = {0};
        if (dtype_from_name(jd->valuestring, &t.dtype))
            return ds_fail("%s: tensor '%s': unknown dtype '%s'", path, name, jd->valuestring);
        t.ndim = cJSON_GetArraySize(js);
        if (t.ndim > DS_MAX_DIMS)
            return ds_fail("%s: tensor '%s': %d dimensions (at most %d)", path, name, t.ndim, DS_MAX_DIMS);
        uint64_t numel = 1;
        int d = 0;
        for (const cJSON *x = js->child; x; x = x->next, d++) {
            uint64_t v;
            if (parse_u64(x, &v) || v > INT64_MAX)
                return ds_fail("%s: tensor '%s': shape entries must be non-negative integers", path, name);
            t.shape[d] = (int64_t)v;
            if (__builtin_mul_overflow(numel, v, &numel))
                return ds_fail("%s: tensor '%s': shape product overflows", path, name);
        }
        uint64_t begin, end, nbytes;
        if (parse_u64(jo->child, &begin) || parse_u64(jo->child->next, &end) || begin > end)
            return ds_fail("%s: tensor '%s': bad data_offsets", path, name);
        if (end > datasize)
            return ds_fail("%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data (%llu bytes)",
                           path, name, (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)datasize);
        if (__builtin_mul_overflow(numel, (uint64_t)ds_dtype_size(t.dtype), &nbytes))
            return ds_fail("%s: tensor '%s': byte size overflows (shape of %llu %s elements)", path, name,
                           (unsigned long long)numel, jd->valuestring);
        if (nbytes != end - begin)
            return ds_fail("%s: tensor '%s': shape and dtype %s need %llu bytes but data_offsets give %llu",
                           path, name, jd->valuestring, (unsigned long long)nbytes,
                           (unsigned long long)(end - begin));
        t.numel = (int64_t)numel;
        t.nbytes = (size_t)nbytes;
        t.data = data + begin;
        t.file = path;
        int *slot = name_slot(w, name);
        if (*slot) return ds_fail("%s: tensor '%s' appears twice", path, name);
        t.name = strdup(name);
        if (!t.name) return ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
        w->tensors[w->ntensors++] = t;
        *slot = w->ntensors;
    }
    /* Byte ranges of one file must not overlap. */
    int n = w->ntensors - first;
    ds_tensor *sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) return ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
    memcpy(sorted, w->tensors + first, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_by_offset);
    for (int i = 1; i < n; i++) {
        const char *prev_end = (const char *)sorted[i - 1].data + sorted[i - 1].nbytes;
        if ((const char *)sorted[i].data < prev_end) {
            int rc = ds_fail("%s: tensors '%s' and '%s' overlap", path, sorted[i - 1].name, sorted[i].name);
            free(sorted);
            return rc;
        }
    }
    free(sorted);
    return 0;
}

/* Maps FD read-only at an address aligned to 2 MiB and asks for transparent huge pages. Where
 * the page cache holds the file in 2 MiB folios (as it does after reading it through such a
 * mapping, on kernels and filesystems with large folios: ext4 on Linux 6.18 here), the weights
 * are then mapped with one TLB entry per 2 MiB instead of 512, and the GEMMs that stream them
 * ran 5-8 % faster (src/model/linear.c). Only advice: elsewhere it is a plain mapping. */
static void *map_weights(int fd, size_t size) {
    const size_t huge = (size_t)2 << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t span = size + huge;
    char *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    char *at = (char *)(((uintptr_t)res + huge - 1) & ~(uintptr_t)(huge - 1));
    void *map = mmap(at, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (map == MAP_FAILED) {
        munmap(res, span);
        return map;
    }
    char *end = at + (size + page - 1) / page * page; /* hand back the reservation around it */
    if (at > res) munmap(res, (size_t)(at - res));
    if (res + span > end) munmap(end, (size_t)(res + span - end));
    madvise(map, size, MADV_HUGEPAGE);
    return map;
}

int ds_weights_add_file(ds_weights *w, const char *path) {
    /* O_NONBLOCK: a FIFO in place of the file must be refused below, not wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ds_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return ds_fail("%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return ds_fail("%s: truncated safetensors file (%zu bytes, no header length)", path, size);
    }
    void *map = map_weights(fd, size);
    close(fd);
    if (map == MAP_FAILED) return ds_failc(DS_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    ds_mapped_file *nf = realloc(w->files, (size_t)(w->nfiles + 1) * sizeof *nf);
    if (!nf) {
        munmap(map, size);
        return ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
    }
    w->files = nf;
    ds_mapped_file *f = &w->files[w->nfiles++];
    f->path = strdup(path);
    f->map = map;
    f->size = size;
    if (!f->path) return ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);

    uint64_t hlen = 0;
    const unsigned char *b = map;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > size - 8)
        return ds_fail("%s: header length %llu runs past the end of the file (%zu bytes): truncated or not safetensors",
                       path, (unsigned long long)hlen, size);
    cJSON *header = cJSON_ParseWithLength((const char *)b + 8, (size_t)hlen);
    if (!header) return ds_fail("%s: header is not valid JSON", path);
    int rc = 0;
    if (!cJSON_IsObject(header)) rc = ds_fail("%s: header is not a JSON object", path);
    else rc = add_tensors(w, f->path, header, (const char *)b + 8 + hlen, size - 8 - hlen);
    cJSON_Delete(header);
    return rc;
}

/* Sharded checkpoints: model.safetensors.index.json maps each tensor to a shard file. */
static int open_index(ds_weights *w, const char *dir, const char *index_path) {
    size_t len;
    char *text = ds_read_file(index_path, DS_MAX_INDEX_BYTES, &len);
    if (!text) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) return ds_fail("%s: not valid JSON", index_path);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    int rc = 0;
    if (!cJSON_IsObject(map)) rc = ds_fail("%s: no weight_map object", index_path);
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            rc = ds_fail("%s: weight_map entry '%s' is not a file name", index_path, e->string);
            break;
        }
        char *path = ds_path_join(dir, e->valuestring);
        int seen = 0;
        for (int i = 0; path && i < w->nfiles; i++)
            if (!strcmp(w->files[i].path, path)) seen = 1;
        if (!path) rc = -1;
        else if (!seen) rc = ds_weights_add_file(w, path);
        free(path);
    }
    /* Every tensor the index names must be in the shard it names. */
    for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
        const ds_tensor *t = ds_weights_find(w, e->string);
        if (!t) rc = ds_fail("%s: tensor '%s' is not in %s", index_path, e->string, e->valuestring);
    }
    cJSON_Delete(j);
    return rc;
}

int ds_weights_open_dir(ds_weights *w, const char *dir) {
    memset(w, 0, sizeof *w);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return ds_fail("%s: not a model folder", dir);
    char *single = ds_path_join(dir, "model.safetensors"), *index = ds_path_join(dir, "model.safetensors.index.json");
    int rc;
    if (!single || !index) {
        rc = -1;
    } else {
        int has_single = lstat(single, &st) == 0, has_index = lstat(index, &st) == 0;
        /* Which one transformers would load depends on its version and options: refuse to guess. */
        if (has_single && has_index)
            rc = ds_fail("%s: holds both model.safetensors and model.safetensors.index.json; remove the stale one", dir);
        else if (has_single) rc = ds_weights_add_file(w, single);
        else if (has_index) rc = open_index(w, dir, index);
        else rc = ds_fail("%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    free(single);
    free(index);
    return rc;
}

void ds_weights_close(ds_weights *w) {
    for (int i = 0; i < w->ntensors; i++) free(w->tensors[i].name);
    for (int i = 0; i < w->nfiles; i++) {
        munmap(w->files[i].map, w->files[i].size);
        free(w->files[i].path);
    }
    free(w->tensors);
    free(w->files);
    free(w->slots);
    memset(w, 0, sizeof *w);
}

const ds_tensor *ds_weights_find(const ds_weights *w, const char *name) {
    if (!w->nslots) return NULL;
    int slot = *name_slot(w, name);
    return slot ? &w->tensors[slot - 1] : NULL;
}

/* The message for a non-finite element I of T (value V): its flat index and, for a matrix, its
 * row and column. */
static void fail_nonfinite(const ds_tensor *t, int64_t i, float v) {
    char where[96] = "";
    if (t->ndim == 2 && t->shape[1] > 0)
        snprintf(where, sizeof where, " (row %lld, column %lld)", (long long)(i / t->shape[1]),
                 (long long)(i % t->shape[1]));
    ds_failc(DS_ERR_NONFINITE, "%s: tensor '%s' holds %s at index %lld%s: the checkpoint is damaged or overflowed",
             t->file, t->name, ds_nonfinite_name(v), (long long)i, where);
}

float *ds_tensor_to_f32(const ds_tensor *t, int check_finite, int *owned) {
    if (t->dtype == DS_DT_F32 && ((uintptr_t)t->data & 3) == 0) {
        const float *f = t->data;
        int64_t bad = check_finite ? ds_first_nonfinite(f, (size_t)t->numel) : -1;
        if (bad >= 0) {
            fail_nonfinite(t, bad, f[bad]);
            return NULL;
        }
        *owned = 0;
        return (float *)f;
    }
    if (t->dtype != DS_DT_F32 && t->dtype != DS_DT_BF16 && t->dtype != DS_DT_F16 && t->dtype != DS_DT_F64) {
        ds_fail("%s: tensor '%s' has dtype %s; only F32, BF16, F16 and F64 weights are supported", t->file,
                t->name, ds_dtype_name(t->dtype));
        return NULL;
    }
    float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
    if (!out) {
        ds_failc(DS_ERR_NOMEM, "%s: out of memory converting '%s'", t->file, t->name);
        return NULL;
    }
    /* Block by block, each checked while it is still in the cache: one pass over memory. F64
     * values beyond float32's range become ±inf here and are caught with the rest. */
    const unsigned char *p = t->data;
    const int64_t block = 4096;
    for (int64_t b = 0; b < t->numel; b += block) {
        int64_t e = b + block < t->numel ? b + block : t->numel;
        for (int64_t i = b; i < e; i++) {
            uint16_t h;
            switch (t->dtype) {
            case DS_DT_F32: memcpy(&out[i], p + 4 * i, 4); break;
            case DS_DT_F64: { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; break; }
            case DS_DT_BF16: memcpy(&h, p + 2 * i, 2); out[i] = ds_bf16_to_f32(h); break;
            default: memcpy(&h, p + 2 * i, 2); out[i] = ds_f16_to_f32(h); break;
            }
        }
        int64_t bad = check_finite ? ds_first_nonfinite(out + b, (size_t)(e - b)) : -1;
        if (bad >= 0) {
            fail_nonfinite(t, b + bad, out[b + bad]);
            free(out);
            return NULL;
        }
    }
    *owned = 1;
    return out;
}

/* Index of the first NaN or ±inf (exponent all ones) in bf16 X[0..n), or -1. */
static int64_t first_nonfinite_bf16(const uint16_t *x, int64_t n) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t i = 0; i < n; i++) any |= (x[i] & 0x7f80) == 0x7f80;
    for (int64_t i = 0; any && i < n; i++)
        if ((x[i] & 0x7f80) == 0x7f80) return i;
    return -1;
}

uint16_t *ds_tensor_to_bf16(const ds_tensor *t, int check_finite, int *owned) {
    if (t->dtype == DS_DT_BF16 && ((uintptr_t)t->data & 1) == 0) {
        const uint16_t *h = t->data;
        int64_t bad = check_finite ? first_nonfinite_bf16(h, t->numel) : -1;
        if (bad >= 0) {
            fail_nonfinite(t, bad, ds_bf16_to_f32(h[bad]));
            return NULL;
        }
        *owned = 0;
        return (uint16_t *)h;
    }
    int f32_owned;
    float *f = ds_tensor_to_f32(t, check_finite, &f32_owned);
    if (!f) return NULL;
    uint16_t *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
    if (!out) {
        if (f32_owned) free(f);
        ds_failc(DS_ERR_NOMEM, "%s: out of memory converting '%s' to bfloat16", t->file, t->name);
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++) out[i] = ds_f32_to_bf16(f[i]);
    if (f32_owned) free(f);
    /* a float32 value within half a bf16 step of FLT_MAX rounds to inf */
    int64_t bad = check_finite ? first_nonfinite_bf16(out, t->numel) : -1;
    if (bad >= 0) {
        fail_nonfinite(t, bad, ds_bf16_to_f32(out[bad]));
        free(out);
        return NULL;
    }
    *owned = 1;
    return out;
}
