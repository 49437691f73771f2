/* Reading diffscope dumps with HDF5 (see diffscope/dump_reader.h): validation first, then
 * hyperslab reads of one head. */
#include "diffscope/dump_reader.h"
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "diffscope/error.h"
#include "base/fileio.h"
#include "base/half.h"
#include "io/h5_guard.h"
#include "io/h5in.h"

struct ds_dump_reader {
    char *path;
    hid_t file;
    ds_dump_info info;
    ds_dump_layer_info **layer_cache; /* [info.n_layers], filled by ds_dump_reader_layer */
};

/* ---- small HDF5 helpers; each names the file and the object in its message ---- */

static int attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

/* Opens attribute NAME of OBJ; on success *n_elems holds its element count. */
static hid_t attr_open(const ds_dump_reader *d, hid_t obj, const char *where, const char *name,
                       H5T_class_t want, hssize_t *n_elems) {
    if (!attr_exists(obj, name))
        return ds_fail("%s: missing attribute '%s' on %s", d->path, name, where);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return ds_fail("%s: cannot open attribute '%s' on %s", d->path, name, where);
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (cls != want || n < 1) {
        H5Aclose(a);
        return ds_fail("%s: attribute '%s' on %s has the wrong type (expected %s)", d->path, name,
                       where, want == H5T_STRING ? "a string" : want == H5T_INTEGER ? "an integer"
                                                                                  : "a number");
    }
    *n_elems = n;
    return a;
}

/* Reads a one-element attribute of class CLS as MEM_TYPE into OUT. */
static int attr_scalar(const ds_dump_reader *d, hid_t obj, const char *where, const char *name, H5T_class_t cls,
                       hid_t mem_type, void *out) {
    hssize_t n;
    hid_t a = attr_open(d, obj, where, name, cls, &n);
    if (a < 0) return -1;
    int ok = n == 1 && H5Aread(a, mem_type, out) >= 0;
    H5Aclose(a);
    return ok ? 0 : ds_fail("%s: attribute '%s' on %s is not one %s", d->path, name, where,
                            cls == H5T_INTEGER ? "integer" : "number");
}

static int attr_int(const ds_dump_reader *d, hid_t obj, const char *where, const char *name, int *out) {
    return attr_scalar(d, obj, where, name, H5T_INTEGER, H5T_NATIVE_INT, out);
}

static int attr_double(const ds_dump_reader *d, hid_t obj, const char *where, const char *name, double *out) {
    return attr_scalar(d, obj, where, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, out);
}

/* Reads an integer array attribute of at most MAXN elements into a new array. */
static int attr_int_array(const ds_dump_reader *d, hid_t obj, const char *where, const char *name,
                          int maxn, int **out, int *n_out) {
    hssize_t n;
    hid_t a = attr_open(d, obj, where, name, H5T_INTEGER, &n);
    if (a < 0) return -1;
    if (n > maxn) {
        H5Aclose(a);
        return ds_fail("%s: attribute '%s' on %s has %lld entries, more than %d", d->path, name,
                       where, (long long)n, maxn);
    }
    int *v = malloc((size_t)n * sizeof *v);
    int ok = v && H5Aread(a, H5T_NATIVE_INT, v) >= 0;
    H5Aclose(a);
    if (!ok) {
        free(v);
        return ds_fail("%s: cannot read attribute '%s' on %s", d->path, name, where);
    }
    *out = v;
    *n_out = (int)n;
    return 0;
}

/* Reads a string attribute, variable or fixed length, into a new string. */
static int attr_string(const ds_dump_reader *d, hid_t obj, const char *where, const char *name,
                       char **out) {
    hssize_t n;
    hid_t a = attr_open(d, obj, where, name, H5T_STRING, &n);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    char *s = NULL;
    int ok = 0;
    if (n == 1 && ft >= 0 && mt >= 0) {
        if (H5Tis_variable_str(ft) > 0) {
            char *v = NULL;
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            if (H5Aread(a, mt, &v) >= 0) {
                s = strdup(v ? v : "");
                ok = s != NULL;
                H5free_memory(v);
            }
        } else {
            size_t sz = H5Tget_size(ft);
            char *buf = sz > 0 && sz < (1u << 26) ? calloc(1, sz + 1) : NULL;
            H5Tset_size(mt, sz ? sz : 1);
            if (buf && H5Aread(a, mt, buf) >= 0) {
                s = buf;
                ok = 1;
            } else free(buf);
        }
    }
    if (ft >= 0) H5Tclose(ft);
    if (mt >= 0) H5Tclose(mt);
    H5Aclose(a);
    if (!ok) return ds_fail("%s: cannot read string attribute '%s' on %s", d->path, name, where);
    *out = s;
    return 0;
}

/* Appends code point CP as UTF-8. */
static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) *o++ = (char)cp;
    else if (cp < 0x800) { *o++ = (char)(0xC0 | cp >> 6); *o++ = (char)(0x80 | (cp & 63)); }
    else { *o++ = (char)(0xE0 | cp >> 12); *o++ = (char)(0x80 | (cp >> 6 & 63)); *o++ = (char)(0x80 | (cp & 63)); }
    return o;
}

/* Token text made printable for axis labels: newline → ↵, tab → →, other control
 * characters → ·, bytes that are not valid UTF-8 → U+FFFD. */
static char *printable_token(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c < 0x20 || c == 0x7f) {
            o = put_utf8(o, c == '\n' ? 0x21B5 : c == '\t' ? 0x2192 : c == '\r' ? 0x21B5 : 0xB7);
            p++;
            continue;
        }
        if (c < 0x80) { *o++ = (char)c; p++; continue; }
        int len = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
        if (c >= 0xF5) len = 0;
        int ok = len > 0;
        for (int i = 1; ok && i < len; i++) ok = (p[i] & 0xC0) == 0x80;
        if (ok && len == 3) ok = !(c == 0xE0 && p[1] < 0xA0) && !(c == 0xED && p[1] >= 0xA0);
        if (ok && len == 4) ok = !(c == 0xF0 && p[1] < 0x90) && !(c == 0xF4 && p[1] >= 0x90);
        if (!ok) { o = put_utf8(o, 0xFFFD); p++; continue; }
        memcpy(o, p, (size_t)len);
        o += len;
        p += len;
    }
    *o = 0;
    return out;
}

/* Compact and contiguous datasets store exactly elements × element size bytes (or nothing
 * yet, read as fill values); HDF5 1.10 copies what the shape says from whatever is stored, past
 * its buffer when a damaged file stores less. Chunked storage may hold less (compression,
 * unwritten chunks) and is not checked. */
static int storage_fits(hid_t ds, const hsize_t *dims, int rank, size_t elem_size) {
    hid_t dcpl = H5Dget_create_plist(ds);
    H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (layout == H5D_CHUNKED) return 1;
    if (layout != H5D_COMPACT && layout != H5D_CONTIGUOUS) return 0;
    hsize_t n = elem_size, stored = H5Dget_storage_size(ds);
    for (int i = 0; i < rank; i++) n *= dims[i];
    return stored == 0 || stored == n;
}

/* Opens dataset PATH, checks its element class and its shape against WANT (rank RANK). */
static hid_t dataset_open(const ds_dump_reader *d, const char *path, H5T_class_t cls, int rank,
                          const hsize_t *want) {
    if (!ds_h5_exists(d->file, path)) return ds_fail("%s: missing dataset %s", d->path, path);
    H5O_info_t oi;
#if H5_VERSION_GE(1, 12, 0)
    if (H5Oget_info_by_name3(d->file, path, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
#else
    if (H5Oget_info_by_name2(d->file, path, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
#endif
        oi.type != H5O_TYPE_DATASET)
        return ds_fail("%s: %s is not a dataset", d->path, path);
    hid_t ds = H5Dopen2(d->file, path, H5P_DEFAULT);
    if (ds < 0) return ds_fail("%s: cannot open dataset %s", d->path, path);
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds);
    int ok = t >= 0 && s >= 0 && H5Tget_class(t) == cls && H5Sget_simple_extent_ndims(s) == rank;
    hsize_t dims[8] = {0};
    if (ok) H5Sget_simple_extent_dims(s, dims, NULL);
    size_t elem_size = ok && cls != H5T_STRING ? H5Tget_size(t) : 0;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (!ok) {
        H5Dclose(ds);
        return ds_fail("%s: dataset %s is not a rank-%d %s array", d->path, path, rank,
                       cls == H5T_FLOAT ? "float" : cls == H5T_STRING ? "string" : "integer");
    }
    for (int i = 0; i < rank; i++)
        if (dims[i] != want[i]) {
            char got[96] = "", exp[96] = "";
            for (int j = 0; j < rank; j++) {
                size_t gl = strlen(got), el = strlen(exp);
                snprintf(got + gl, sizeof got - gl, "%s%llu", j ? ", " : "", (unsigned long long)dims[j]);
                snprintf(exp + el, sizeof exp - el, "%s%llu", j ? ", " : "", (unsigned long long)want[j]);
            }
            H5Dclose(ds);
            return ds_fail("%s: dataset %s has shape [%s], expected [%s]", d->path, path, got, exp);
        }
    if (elem_size && !storage_fits(ds, want, rank, elem_size)) {
        H5Dclose(ds);
        return ds_fail("%s: dataset %s is damaged (its stored size does not match its shape)", d->path, path);
    }
    return ds;
}

/* Largest token text accepted, in bytes. */
#define MAX_TOKEN_BYTES 4096

/* Allocator of variable-length token strings, refusing what no token can be. */
static void *capped_alloc(size_t size, void *info) {
    (void)info;
    return size <= MAX_TOKEN_BYTES + 1 ? malloc(size) : NULL;
}
static void capped_free(void *p, void *info) {
    (void)info;
    free(p);
}

static int read_tokens(ds_dump_reader *d) {
    int T = d->info.num_tokens;
    hsize_t want[1] = {(hsize_t)T};
    hid_t ds = dataset_open(d, DS_DUMP_TOKEN_TEXT_PATH, H5T_STRING, 1, want);
    if (ds < 0) return -1;
    hid_t ft = H5Dget_type(ds), mt = H5Tcopy(H5T_C_S1);
    char **raw = calloc((size_t)T, sizeof *raw);
    d->info.tokens = calloc((size_t)T, sizeof *d->info.tokens);
    int ok = ft >= 0 && mt >= 0 && raw && d->info.tokens;
    if (ok && H5Tis_variable_str(ft) > 0) {
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        hid_t dx = H5Pcreate(H5P_DATASET_XFER);
        if (dx >= 0) H5Pset_vlen_mem_manager(dx, capped_alloc, NULL, capped_free, NULL);
        ok = dx >= 0 && H5Dread(ds, mt, H5S_ALL, H5S_ALL, dx, raw) >= 0;
        for (int i = 0; ok && i < T; i++) ok = (d->info.tokens[i] = printable_token(raw[i] ? raw[i] : "")) != NULL;
        for (int i = 0; i < T; i++) free(raw[i]);
        if (dx >= 0) H5Pclose(dx);
    } else if (ok) {
        size_t sz = H5Tget_size(ft);
        char *buf = sz > 0 && sz < 4096 ? calloc((size_t)T, sz + 1) : NULL;
        H5Tset_size(mt, sz + 1); /* one more byte: HDF5 null-terminates each element */
        ok = buf && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
        for (int i = 0; ok && i < T; i++) {
            buf[(size_t)i * (sz + 1) + sz] = 0;
            ok = (d->info.tokens[i] = printable_token(buf + (size_t)i * (sz + 1))) != NULL;
        }
        free(buf);
    }
    free(raw);
    if (ft >= 0) H5Tclose(ft);
    if (mt >= 0) H5Tclose(mt);
    H5Dclose(ds);
    if (!ok) return ds_fail("%s: cannot read " DS_DUMP_TOKEN_TEXT_PATH, d->path);

    d->info.ids = calloc((size_t)T, sizeof *d->info.ids);
    if (!d->info.ids) return ds_failc(DS_ERR_NOMEM, "out of memory");
    if (ds_h5_exists(d->file, DS_DUMP_TOKEN_IDS_PATH)) {
        ds = dataset_open(d, DS_DUMP_TOKEN_IDS_PATH, H5T_INTEGER, 1, want);
        if (ds < 0) return -1;
        ok = H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->info.ids) >= 0;
        H5Dclose(ds);
        if (!ok) return ds_fail("%s: cannot read " DS_DUMP_TOKEN_IDS_PATH, d->path);
    }
    return 0;
}

static int check_range(const ds_dump_reader *d, const char *name, int v, int lo, int hi) {
    if (v < lo || v > hi)
        return ds_fail("%s: attribute '%s' is %d, expected %d..%d", d->path, name, v, lo, hi);
    return 0;
}

/* Runs the raw check of h5_guard.h on /tokens/text before HDF5 reads any string: the
 * root attributes are variable-length strings too, usually in the same heap collection. */
static int guard_strings(ds_dump_reader *d) {
    if (!ds_h5_exists(d->file, DS_DUMP_TOKEN_TEXT_PATH)) return 0; /* read_tokens will say so */
    hid_t ds = H5Dopen2(d->file, DS_DUMP_TOKEN_TEXT_PATH, H5P_DEFAULT);
    if (ds < 0) return 0;
    hid_t t = H5Dget_type(ds), s = H5Dget_space(ds);
    hsize_t n = 0;
    int vstr = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0 && s >= 0 &&
               H5Sget_simple_extent_ndims(s) == 1 && H5Sget_simple_extent_dims(s, &n, NULL) == 1;
    int rc = vstr && n >= 1 && n <= DS_DUMP_MAX_TOKENS
                 ? h5guard_check_vlen_strings(d->file, d->path, DS_DUMP_TOKEN_TEXT_PATH, ds, (int)n, MAX_TOKEN_BYTES)
                 : 0;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Dclose(ds);
    return rc;
}

/* S for a message: at most 40 characters, anything but printable ASCII as '?', so that a
 * damaged attribute cannot break the one-line message or the terminal. */
static const char *shown(const char *s, char *buf, size_t n) {
    size_t i = 0;
    for (; s[i] && i < 40 && i + 1 < n; i++) buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = 0;
    return buf;
}

static int read_root(ds_dump_reader *d) {
    char *fmt = NULL, *arch = NULL;
    int version, rc = -1;
    if (h5guard_check_heaps(d->file, d->path, 4u << 20) < 0 || guard_strings(d) < 0) return -1;
    if (!attr_exists(d->file, DS_DUMP_ATTR_FORMAT))
        return ds_fail("%s: not a diffscope dump (no '" DS_DUMP_ATTR_FORMAT "' attribute)", d->path);
    if (attr_string(d, d->file, "/", DS_DUMP_ATTR_FORMAT, &fmt) < 0) return -1;
    if (strcmp(fmt, DS_DUMP_FORMAT)) {
        char b[48];
        ds_fail("%s: not a diffscope dump (format is '%s')", d->path, shown(fmt, b, sizeof b));
        goto out;
    }
    if (attr_int(d, d->file, "/", DS_DUMP_ATTR_FORMAT_VERSION, &version) < 0) goto out;
    if (version != DS_DUMP_FORMAT_VERSION) {
        ds_fail("%s: dump format_version %d is not supported (this reader reads %d)", d->path, version,
                DS_DUMP_FORMAT_VERSION);
        goto out;
    }
    if (attr_string(d, d->file, "/", DS_DUMP_ATTR_ARCH, &arch) < 0) goto out;
    const ds_arch_desc *desc = ds_arch_find(arch);
    if (!desc) {
        char b[48], names[128];
        ds_fail("%s: unknown arch '%s' (expected one of %s)", d->path, shown(arch, b, sizeof b),
                ds_arch_names(names, sizeof names, ", "));
        goto out;
    }
    d->info.arch = desc->arch;
    ds_dump_info *in = &d->info;
    if (attr_int(d, d->file, "/", DS_DUMP_ATTR_NUM_LAYERS, &in->num_layers) < 0 ||
        attr_int(d, d->file, "/", DS_DUMP_ATTR_NUM_HEADS, &in->num_heads) < 0 ||
        attr_int(d, d->file, "/", DS_DUMP_ATTR_NUM_TOKENS, &in->num_tokens) < 0 ||
        check_range(d, DS_DUMP_ATTR_NUM_LAYERS, in->num_layers, 1, DS_DUMP_MAX_LAYERS) < 0 ||
        check_range(d, DS_DUMP_ATTR_NUM_HEADS, in->num_heads, desc->differential ? 2 : 1,
                    DS_DUMP_MAX_HEADS) < 0 ||
        check_range(d, DS_DUMP_ATTR_NUM_TOKENS, in->num_tokens, 1, DS_DUMP_MAX_TOKENS) < 0)
        goto out;
    if (desc->differential && in->num_heads % 2) {
        ds_fail("%s: num_heads %d is odd, a %s model has an even number", d->path, in->num_heads, desc->label);
        goto out;
    }
    /* Shape attributes the viewer only displays: optional. */
    if (attr_exists(d->file, DS_DUMP_ATTR_NUM_KV_HEADS) &&
        attr_int(d, d->file, "/", DS_DUMP_ATTR_NUM_KV_HEADS, &in->num_kv_heads) < 0)
        goto out;
    if (attr_exists(d->file, DS_DUMP_ATTR_HEAD_DIM) && attr_int(d, d->file, "/", DS_DUMP_ATTR_HEAD_DIM, &in->head_dim) < 0)
        goto out;
    if (attr_int_array(d, d->file, "/", DS_DUMP_ATTR_LAYERS, in->num_layers, &in->layers, &in->n_layers) < 0) goto out;
    for (int i = 0; i < in->n_layers; i++)
        if (in->layers[i] < 0 || in->layers[i] >= in->num_layers) {
            ds_fail("%s: attribute 'layers' lists layer %d, outside 0..%d", d->path, in->layers[i],
                    in->num_layers - 1);
            goto out;
        }
    if (in->n_layers == 0) {
        ds_fail("%s: the dump holds no layers (attribute 'layers' is empty)", d->path);
        goto out;
    }
    rc = read_tokens(d);
out:
    free(fmt);
    free(arch);
    return rc;
}

ds_dump_reader *ds_dump_reader_open(const char *path) {
    /* HDF5 prints its own error stack by default; our messages replace it. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0) {
        ds_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (ds_check_regular_file(path)) return NULL; /* HDF5 would block on a FIFO */
    ds_dump_reader *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) {
        free(d);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    d->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (d->file < 0) {
        ds_fail("%s: not a diffscope dump (not an HDF5 file)", path);
        ds_dump_reader_close(d);
        return NULL;
    }
    if (read_root(d) < 0) {
        ds_dump_reader_close(d);
        return NULL;
    }
    d->layer_cache = calloc((size_t)d->info.n_layers, sizeof *d->layer_cache);
    if (!d->layer_cache) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        ds_dump_reader_close(d);
        return NULL;
    }
    return d;
}

static void layer_info_free(ds_dump_layer_info *li) {
    if (!li) return;
    free(li->heads);
    free(li);
}

void ds_dump_reader_close(ds_dump_reader *d) {
    if (!d) return;
    if (d->layer_cache)
        for (int i = 0; i < d->info.n_layers; i++) layer_info_free(d->layer_cache[i]);
    free(d->layer_cache);
    if (d->info.tokens)
        for (int i = 0; i < d->info.num_tokens; i++) free(d->info.tokens[i]);
    free(d->info.tokens);
    free(d->info.ids);
    free(d->info.layers);
    if (d->file > 0) H5Fclose(d->file);
    free(d->path);
    free(d);
}

const char *ds_dump_reader_path(const ds_dump_reader *d) { return d->path; }
const ds_dump_info *ds_dump_reader_info(const ds_dump_reader *d) { return &d->info; }

int ds_dump_reader_layer_index(const ds_dump_reader *d, int layer) {
    for (int i = 0; i < d->info.n_layers; i++)
        if (d->info.layers[i] == layer) return i;
    char list[128] = "";
    for (int i = 0; i < d->info.n_layers && strlen(list) < 100; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%d", i ? "," : "", d->info.layers[i]);
    }
    return ds_fail("%s: layer %d is not in the dump (layers: %s%s)", d->path, layer, list,
                   strlen(list) >= 100 ? ",..." : "");
}

/* Reads attribute NAME like attr_double when OBJ has it; leaves *OUT alone when it has not. */
static int opt_attr_double(const ds_dump_reader *d, hid_t obj, const char *where, const char *name, double *out) {
    return attr_exists(obj, name) ? attr_double(d, obj, where, name, out) : 0;
}

static void groupnorm_scale_path(char *buf, size_t n, int layer) {
    snprintf(buf, n, DS_DUMP_LAYER_PATH "/%s", layer, DS_DUMP_GROUPNORM_GROUP, DS_DUMP_GROUPNORM_SCALE);
}

static int load_layer(ds_dump_reader *d, int layer, ds_dump_layer_info *li) {
    const ds_dump_info *in = &d->info;
    char where[64], path[96];
    snprintf(where, sizeof where, DS_DUMP_LAYER_PATH, layer, DS_DUMP_ATTN);
    li->layer = layer;
    li->lambda_1 = li->lambda_2 = li->lambda_init = li->lambda_full = li->lambda_model = NAN;
    if (!ds_h5_exists(d->file, where)) return ds_fail("%s: missing group %s", d->path, where);
    hid_t g = H5Gopen2(d->file, where, H5P_DEFAULT);
    if (g < 0) return ds_fail("%s: %s is not a group", d->path, where);
    int rc = -1;
    const int differential = ds_arch_get(in->arch)->differential;
    int max_heads = ds_arch_map_heads(ds_arch_get(in->arch), in->num_heads);
    /* `heads` belongs on the group; a writer that put it on the map datasets is read too. */
    const char *first_map = ds_map_name(differential ? DS_MAP_SOFTMAX1 : DS_MAP_SOFTMAX);
    if (!attr_exists(g, DS_DUMP_ATTR_HEADS) && H5Lexists(g, first_map, H5P_DEFAULT) > 0) {
        hid_t m = H5Oopen(g, first_map, H5P_DEFAULT);
        int found = m >= 0 && attr_exists(m, DS_DUMP_ATTR_HEADS);
        snprintf(path, sizeof path, "%s/%s", where, first_map);
        int rc2 = found ? attr_int_array(d, m, path, DS_DUMP_ATTR_HEADS, max_heads, &li->heads, &li->n_heads) : 0;
        if (m >= 0) H5Oclose(m);
        if (rc2 < 0) goto out;
    }
    if (!li->heads && attr_int_array(d, g, where, DS_DUMP_ATTR_HEADS, max_heads, &li->heads, &li->n_heads) < 0)
        goto out;
    if (li->n_heads == 0) {
        ds_fail("%s: attribute '" DS_DUMP_ATTR_HEADS "' on %s is empty", d->path, where);
        goto out;
    }
    for (int i = 0; i < li->n_heads; i++)
        if (li->heads[i] < 0 || li->heads[i] >= max_heads) {
            ds_fail("%s: attribute '" DS_DUMP_ATTR_HEADS "' on %s lists head %d, outside 0..%d", d->path, where,
                    li->heads[i], max_heads - 1);
            goto out;
        }
    if (differential) {
        if (attr_double(d, g, where, DS_DUMP_ATTR_LAMBDA_FULL, &li->lambda_full) < 0 ||
            attr_double(d, g, where, DS_DUMP_ATTR_LAMBDA_INIT, &li->lambda_init) < 0 ||
            opt_attr_double(d, g, where, DS_DUMP_ATTR_LAMBDA_1, &li->lambda_1) < 0 ||
            opt_attr_double(d, g, where, DS_DUMP_ATTR_LAMBDA_2, &li->lambda_2) < 0 ||
            (attr_exists(g, DS_DUMP_ATTR_LAMBDA_OVERRIDDEN) &&
             attr_int(d, g, where, DS_DUMP_ATTR_LAMBDA_OVERRIDDEN, &li->lambda_overridden) < 0))
            goto out;
        li->lambda_model = li->lambda_full;
        if (li->lambda_overridden && opt_attr_double(d, g, where, DS_DUMP_ATTR_LAMBDA_MODEL, &li->lambda_model) < 0)
            goto out;
        if (!isfinite(li->lambda_full) || !isfinite(li->lambda_init) || !isfinite(li->lambda_model)) {
            ds_fail("%s: λ attributes on %s are not finite", d->path, where);
            goto out;
        }
    }
    hsize_t want[3] = {(hsize_t)li->n_heads, (hsize_t)in->num_tokens, (hsize_t)in->num_tokens};
    for (ds_map m = 0; m < DS_MAP_COUNT; m++) {
        if (m == DS_MAP_SCORES) continue; /* not read: its first axis holds sub-heads, not Hs heads */
        int diff_map = m != DS_MAP_SOFTMAX;
        if (diff_map != differential) continue;
        snprintf(path, sizeof path, "%s/%s", where, ds_map_name(m));
        /* diff is optional: the viewer computes it from the two maps and lambda_full. */
        if (m == DS_MAP_DIFF && !ds_h5_exists(d->file, path)) continue;
        hid_t ds = dataset_open(d, path, H5T_FLOAT, 3, want);
        if (ds < 0) goto out;
        H5Dclose(ds);
        li->has_map[m] = 1;
    }
    groupnorm_scale_path(path, sizeof path, layer);
    if (differential && ds_h5_exists(d->file, path)) {
        hid_t ds = dataset_open(d, path, H5T_FLOAT, 2, want);
        if (ds < 0) goto out;
        H5Dclose(ds);
        li->has_groupnorm = 1;
    }
    rc = 0;
out:
    H5Gclose(g);
    return rc;
}

const ds_dump_layer_info *ds_dump_reader_layer(ds_dump_reader *d, int layer) {
    int i = ds_dump_reader_layer_index(d, layer);
    if (i < 0) return NULL;
    if (d->layer_cache[i]) return d->layer_cache[i];
    ds_dump_layer_info *li = calloc(1, sizeof *li);
    if (!li) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (load_layer(d, layer, li) < 0) {
        layer_info_free(li);
        return NULL;
    }
    return d->layer_cache[i] = li;
}

int ds_dump_reader_head_index(ds_dump_reader *d, int layer, int head) {
    const ds_dump_layer_info *li = ds_dump_reader_layer(d, layer);
    if (!li) return -1;
    for (int i = 0; i < li->n_heads; i++)
        if (li->heads[i] == head) return i;
    char list[128] = "";
    for (int i = 0; i < li->n_heads && strlen(list) < 100; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%d", i ? "," : "", li->heads[i]);
    }
    return ds_fail("%s: head %d is not in layer %d of the dump (heads: %s%s)", d->path, head, layer,
                   list, strlen(list) >= 100 ? ",..." : "");
}

/* 1 when file type T is IEEE binary16, little-endian: such maps are read as raw 16-bit
 * words and converted here, because HDF5's generic soft conversion of a 16-bit float type
 * costs a second per 4096² map. */
static int is_half_le(hid_t t) {
    size_t spos, epos, esize, mpos, msize;
    return H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 2 && H5Tget_order(t) == H5T_ORDER_LE &&
           H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) >= 0 && spos == 15 && epos == 10 &&
           esize == 5 && mpos == 0 && msize == 10 && H5Tget_ebias(t) == 15;
}

static float half_table[65536];
static int half_table_ready;

static void half_to_float(float *out, size_t n) {
    if (!half_table_ready) {
        for (uint32_t i = 0; i < 65536; i++) half_table[i] = ds_f16_to_f32((uint16_t)i);
        half_table_ready = 1;
    }
    /* The words sit in the upper half of OUT: word i is read before float i overwrites it. */
    const uint16_t *h = (const uint16_t *)(out + n / 2) + (n & 1);
    for (size_t i = 0; i < n; i++) {
        uint16_t w = h[i];
        out[i] = half_table[w];
    }
}

/* Unfiltered chunked storage: every chunk that a read of rows [row0, row0+nrows) x NCOLS of
 * head HI touches must store exactly a chunk's bytes; HDF5 1.10 copies a whole chunk's worth
 * out of whatever a damaged file stores. (Filtered chunks are sized by the filter and not
 * checked.) */
static int chunks_fit(hid_t ds, hid_t ft, int rank, int hi, int row0, int nrows, int ncols) {
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return 0;
    int fits = 1;
    hsize_t c[3] = {0, 0, 0};
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) == 0) {
        fits = H5Pget_chunk(dcpl, rank, c) == rank;
        hsize_t bytes = H5Tget_size(ft);
        for (int i = 0; fits && i < rank; i++) fits = c[i] >= 1, bytes *= c[i];
        const hsize_t rows = rank == 3 ? c[1] : c[0], cols = rank == 3 ? c[2] : c[1];
        for (hsize_t r = fits ? (hsize_t)row0 / rows * rows : 0; fits && r < (hsize_t)(row0 + nrows); r += rows)
            for (hsize_t k = 0; fits && k < (hsize_t)ncols; k += cols) {
                hsize_t at[3] = {0, 0, 0};
                if (rank == 3) at[0] = (hsize_t)hi / c[0] * c[0], at[1] = r, at[2] = k;
                else at[0] = r, at[1] = k;
                unsigned mask;
                haddr_t addr;
                hsize_t size;
                if (H5Dget_chunk_info_by_coord(ds, at, &mask, &addr, &size) < 0) fits = 0;
                else if (addr != HADDR_UNDEF && size != bytes) fits = 0;
            }
    }
    H5Pclose(dcpl);
    return fits;
}

/* Reads as float a block of dataset PATH: [1, nrows, ncols] at (hi, row0, 0) when RANK is 3,
 * [nrows, ncols] at (row0, 0) when RANK is 2. */
static int read_block(ds_dump_reader *d, const char *path, int rank, int hi, int row0, int nrows,
                      int ncols, float *out) {
    hid_t ds = H5Dopen2(d->file, path, H5P_DEFAULT);
    if (ds < 0) return ds_fail("%s: cannot open dataset %s", d->path, path);
    hid_t fs = H5Dget_space(ds), ft = H5Dget_type(ds);
    hsize_t start3[3] = {(hsize_t)hi, (hsize_t)row0, 0}, count3[3] = {1, (hsize_t)nrows, (hsize_t)ncols};
    hsize_t start2[2] = {(hsize_t)row0, 0}, count2[2] = {(hsize_t)nrows, (hsize_t)ncols};
    size_t n = (size_t)nrows * (size_t)ncols;
    /* The memory space has the selection's shape, which lets HDF5 copy whole chunk rows. */
    hid_t ms = H5Screate_simple(rank, rank == 3 ? count3 : count2, NULL);
    int half = ft >= 0 && is_half_le(ft);
    void *dst = half ? (void *)((uint16_t *)(out + n / 2) + (n & 1)) : (void *)out;
    if (ft >= 0 && !chunks_fit(ds, ft, rank, hi, row0, nrows, ncols)) {
        if (ms >= 0) H5Sclose(ms);
        if (fs >= 0) H5Sclose(fs);
        H5Tclose(ft);
        H5Dclose(ds);
        return ds_fail("%s: dataset %s is damaged (a chunk's stored size does not match)", d->path, path);
    }
    int ok = fs >= 0 && ms >= 0 && ft >= 0 &&
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, rank == 3 ? start3 : start2, NULL,
                                 rank == 3 ? count3 : count2, NULL) >= 0 &&
             H5Dread(ds, half ? ft : H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst) >= 0;
    if (ok && half) half_to_float(out, n);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ft >= 0) H5Tclose(ft);
    H5Dclose(ds);
    return ok ? 0 : ds_fail("%s: cannot read dataset %s (damaged file?)", d->path, path);
}

int ds_dump_reader_read_rows(ds_dump_reader *d, int layer, ds_map map, int hi, int row0, int nrows, float *out) {
    const ds_dump_layer_info *li = ds_dump_reader_layer(d, layer);
    if (!li) return -1;
    int T = d->info.num_tokens;
    if (map < 0 || map >= DS_MAP_COUNT || !li->has_map[map])
        return ds_fail("%s: missing dataset " DS_DUMP_LAYER_PATH "/%s", d->path, layer, DS_DUMP_ATTN, ds_map_name(map));
    if (hi < 0 || hi >= li->n_heads || row0 < 0 || nrows < 1 || row0 + nrows > T)
        return ds_fail("%s: read of head index %d rows %d..%d outside the map", d->path, hi, row0,
                       row0 + nrows - 1);
    char path[96];
    snprintf(path, sizeof path, DS_DUMP_LAYER_PATH "/%s", layer, DS_DUMP_ATTN, ds_map_name(map));
    return read_block(d, path, 3, hi, row0, nrows, T, out);
}

int ds_dump_reader_read_head(ds_dump_reader *d, int layer, ds_map map, int hi, float *out) {
    return ds_dump_reader_read_rows(d, layer, map, hi, 0, d->info.num_tokens, out);
}

int ds_dump_reader_read_groupnorm_scale(ds_dump_reader *d, int layer, float *out) {
    const ds_dump_layer_info *li = ds_dump_reader_layer(d, layer);
    if (!li) return -1;
    char path[96];
    groupnorm_scale_path(path, sizeof path, layer);
    if (!li->has_groupnorm) return ds_fail("%s: missing dataset %s", d->path, path);
    return read_block(d, path, 2, 0, 0, li->n_heads, d->info.num_tokens, out);
}
