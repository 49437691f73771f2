/* libFuzzer harness: the library's dump reader (src/dump/read.c), structure-aware.
 *
 * Raw random bytes would mostly exercise the HDF5 library's own parser, which is not ours to
 * fix. Instead the input drives the construction of a well-formed HDF5 file that is a more or
 * less damaged diffscope dump (docs/dump-format.md): every root attribute, token dataset,
 * layer group, λ attribute, map and GroupNorm dataset is, by one input byte each, correct,
 * absent, of the wrong class, an array, extreme, empty, or (datasets) of the wrong rank or
 * shape, float64 or float16, unwritten, or a group. An all-zero input is a valid dump. The
 * reader then opens it and reads everything it reports present, into buffers of exactly the
 * size the API promises, so ASan catches any read past them; rows are also read at fuzzed
 * ranges. */
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/dump_reader.h"
#include "diffscope/error.h"
#include "fuzz_file.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} dr_input;

/* The next input byte; 0 (the "correct" choice) once the input is used up. */
static unsigned dr_byte(dr_input *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

enum { DR_INT, DR_FLOAT, DR_STRING };

static hid_t dr_class_type(int cls) {
    if (cls == DR_INT) return H5Tcopy(H5T_NATIVE_INT);
    if (cls == DR_FLOAT) return H5Tcopy(H5T_NATIVE_DOUBLE);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    return t;
}

/* Writes attribute NAME on OBJ: N values of class CLS (ints in IV, doubles in DV, one string
 * in SV), unless the input picks a damaged variant. */
static void dr_attr(dr_input *in, hid_t obj, const char *name, int cls, const int *iv, const double *dv,
                    const char *sv, int n) {
    unsigned m = dr_byte(in) % 8;
    if (m == 1) return; /* absent */
    int c = cls;
    if (m == 2) c = (cls + 1) % 3; /* wrong class */
    if (m == 3) c = (cls + 2) % 3;
    hsize_t dims = (hsize_t)n + (m == 4 ? 1 + dr_byte(in) % 3 : 0); /* more values */
    if (m == 6 && n > 1) dims = (hsize_t)(dr_byte(in) % n);        /* fewer values */
    int vals[8];
    double dvals[8];
    for (int i = 0; i < 8; i++) {
        vals[i] = i < n ? (iv ? iv[i] : 1) : i < (int)dims ? (int)dr_byte(in) - 2 : 0;
        dvals[i] = i < n && dv ? dv[i] : (double)vals[i];
    }
    const char *str = sv ? sv : "1";
    if (m == 5) { /* extreme values */
        static const int ext[] = {INT_MIN, INT_MAX, -1, 0};
        vals[0] = ext[dr_byte(in) % 4];
        dvals[0] = (double[]){NAN, INFINITY, -1e308, 0}[dr_byte(in) % 4];
        str = "";
    }
    if (dims > 8) dims = 8;
    hid_t sp = m == 7 ? H5Screate(H5S_NULL) : (n == 1 && m != 4) ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, NULL);
    hid_t t = dr_class_type(c);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0 && m != 7) {
        const char *strs[8] = {str, str, str, str, str, str, str, str};
        H5Awrite(a, t, c == DR_INT ? (const void *)vals : c == DR_FLOAT ? (const void *)dvals : (const void *)strs);
    }
    if (a >= 0) H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}

/* Writes dataset NAME under LOC of class CLS and shape DIMS[RANK] (at most 3), or a damaged
 * variant picked by the input; variant 9 takes the values from the input (NaN, inf, strings
 * that are empty, invalid UTF-8 or NULL). */
static void dr_dataset(dr_input *in, hid_t loc, const char *name, int cls, int rank, const hsize_t *want) {
    unsigned m = dr_byte(in) % 10;
    if (m == 1) return; /* absent */
    if (m == 2) { /* a group where a dataset belongs */
        hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        return;
    }
    hsize_t dims[4] = {0};
    memcpy(dims, want, (size_t)rank * sizeof *dims);
    if (m == 3) rank = rank > 1 ? rank - 1 : 2; /* wrong rank */
    if (m == 4) { /* one extent off by one */
        unsigned k = dr_byte(in) % (unsigned)rank;
        dims[k] = dr_byte(in) % 2 ? dims[k] + 1 : dims[k] - 1;
    }
    int c = m == 5 ? (cls + 1 + (int)(dr_byte(in) % 2)) % 3 : cls;
    hid_t t;
    if (c == DR_FLOAT && m == 6) {
        t = H5Tcopy(H5T_IEEE_F32LE); /* IEEE binary16, as `dump --dtype f16` writes */
        H5Tset_fields(t, 15, 10, 5, 0, 10);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 15);
    } else if (c == DR_FLOAT && m == 7) {
        t = H5Tcopy(H5T_NATIVE_DOUBLE);
    } else {
        t = c == DR_FLOAT ? H5Tcopy(H5T_NATIVE_FLOAT) : dr_class_type(c);
    }
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (m == 8) { /* chunked, never written: reads give the fill value */
        hsize_t chunk[4] = {1, 1, 1, 1};
        H5Pset_chunk(dcpl, rank, chunk);
    }
    hid_t ds = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    if (ds >= 0 && m != 8 && n > 0 && n <= 4096) {
        if (c == DR_STRING) {
            const char **s = malloc(n * sizeof *s);
            for (size_t i = 0; s && i < n; i++)
                s[i] = m == 9 ? (const char *[]){"a", "", "\xff\xfe", NULL}[dr_byte(in) % 4] : "a";
            if (s) H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
            free(s);
        } else {
            double *v = malloc(n * sizeof *v);
            for (size_t i = 0; v && i < n; i++) {
                unsigned b = m == 9 ? dr_byte(in) : (unsigned)i;
                v[i] = b == 255 ? NAN : b == 254 ? INFINITY : (double)(b % 8) / 8;
            }
            if (v) H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Tclose(t);
}

/* The dump: DiffLlama (Llama when the input says), 2 layers of 4 heads, 3 tokens. */
static void dr_build(dr_input *in, hid_t f) {
    int llama = dr_byte(in) % 4 == 1;
    int T = 3, H = 4, L = 2, Hs = llama ? 4 : 2, heads[4] = {0, 1, 2, 3}, layers[2] = {0, 1}, one = 1;
    int num_kv = 2, head_dim = 8;
    double lam[2] = {0.25, 0.2};
    dr_attr(in, f, "format", DR_STRING, NULL, NULL, "diffscope-dump", 1);
    dr_attr(in, f, "format_version", DR_INT, &one, NULL, NULL, 1);
    dr_attr(in, f, "arch", DR_STRING, NULL, NULL, llama ? "llama" : "diffllama", 1);
    dr_attr(in, f, "num_layers", DR_INT, &L, NULL, NULL, 1);
    dr_attr(in, f, "num_heads", DR_INT, &H, NULL, NULL, 1);
    dr_attr(in, f, "num_kv_heads", DR_INT, &num_kv, NULL, NULL, 1);
    dr_attr(in, f, "head_dim", DR_INT, &head_dim, NULL, NULL, 1);
    dr_attr(in, f, "num_tokens", DR_INT, &T, NULL, NULL, 1);
    dr_attr(in, f, "layers", DR_INT, layers, NULL, NULL, 2);
    dr_attr(in, f, "prompt", DR_STRING, NULL, NULL, "a b c", 1);
    dr_attr(in, f, "model_path", DR_STRING, NULL, NULL, "model", 1);
    hid_t tok = H5Gcreate2(f, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t tdims[1] = {(hsize_t)T};
    dr_dataset(in, tok, "text", DR_STRING, 1, tdims);
    dr_dataset(in, tok, "ids", DR_INT, 1, tdims);
    H5Gclose(tok);
    hid_t lg = H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int l = 0; l < L; l++) {
        char name[32];
        snprintf(name, sizeof name, "%d", l);
        if (dr_byte(in) % 8 == 1) continue; /* the layer's group is missing */
        hid_t g = H5Gcreate2(lg, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hid_t a = H5Gcreate2(g, "attn", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        dr_attr(in, a, "heads", DR_INT, heads, NULL, NULL, Hs);
        hsize_t mdims[3] = {(hsize_t)Hs, (hsize_t)T, (hsize_t)T}, gdims[2] = {(hsize_t)Hs, (hsize_t)T};
        if (llama) {
            dr_dataset(in, a, "softmax", DR_FLOAT, 3, mdims);
        } else {
            dr_attr(in, a, "lambda_full", DR_FLOAT, NULL, lam, NULL, 1);
            dr_attr(in, a, "lambda_init", DR_FLOAT, NULL, lam + 1, NULL, 1);
            dr_attr(in, a, "lambda_overridden", DR_INT, &one, NULL, NULL, 1);
            dr_attr(in, a, "lambda_model", DR_FLOAT, NULL, lam, NULL, 1);
            dr_dataset(in, a, "softmax1", DR_FLOAT, 3, mdims);
            dr_dataset(in, a, "softmax2", DR_FLOAT, 3, mdims);
            dr_dataset(in, a, "diff", DR_FLOAT, 3, mdims);
            hid_t gn = H5Gcreate2(g, "groupnorm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            dr_dataset(in, gn, "scale", DR_FLOAT, 2, gdims);
            H5Gclose(gn);
        }
        H5Gclose(a);
        H5Gclose(g);
    }
    H5Gclose(lg);
}

static void dr_check(int cond) {
    if (!cond) abort();
}

/* Reads everything the reader says is there. */
static void dr_read_all(dr_input *in, ds_dump_reader *d) {
    const ds_dump_info *info = ds_dump_reader_info(d);
    int T = info->num_tokens;
    dr_check(T >= 1 && T <= DS_DUMP_MAX_TOKENS && info->n_layers >= 1 && info->layers);
    for (int i = 0; i < T; i++) dr_check(info->tokens[i] != NULL && strlen(info->tokens[i]) < 1 << 16);
    for (int i = 0; i < info->n_layers; i++) {
        int layer = info->layers[i];
        const ds_dump_layer_info *li = ds_dump_reader_layer(d, layer);
        if (!li) continue;
        dr_check(li->n_heads >= 1 && li->heads);
        for (int m = 0; m < DS_MAP_COUNT; m++) {
            if (!li->has_map[m]) continue;
            for (int hi = 0; hi < li->n_heads; hi++) {
                float *buf = malloc((size_t)T * T * sizeof *buf);
                if (!buf) continue;
                ds_dump_reader_read_head(d, layer, (ds_map)m, hi, buf);
                int row0 = (int)dr_byte(in) % (T + 2) - 1, nrows = (int)dr_byte(in) % (T + 2);
                if (row0 >= 0 && nrows >= 1 && row0 + nrows <= T)
                    ds_dump_reader_read_rows(d, layer, (ds_map)m, hi, row0, nrows, buf);
                else
                    dr_check(ds_dump_reader_read_rows(d, layer, (ds_map)m, hi, row0, nrows, buf) < 0);
                free(buf);
            }
        }
        if (li->has_groupnorm) {
            float *buf = malloc((size_t)li->n_heads * T * sizeof *buf);
            if (buf) ds_dump_reader_read_groupnorm_scale(d, layer, buf);
            free(buf);
        }
        ds_dump_reader_head_index(d, layer, (int)dr_byte(in) - 1);
    }
    ds_dump_reader_layer_index(d, (int)dr_byte(in) - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd;
    dr_input in = {data, size};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* Built in memory (HDF5's core driver), then handed over as the bytes of a file. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    hid_t f = H5Fcreate("fuzz-dump.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) abort(); /* the harness itself is broken */
    dr_build(&in, f);
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    ssize_t len = H5Fget_file_image(f, NULL, 0);
    void *image = len > 0 ? malloc((size_t)len) : NULL;
    if (!image || H5Fget_file_image(f, image, (size_t)len) != len) abort();
    H5Fclose(f);
    const char *path = fuzz_as_temp_file(&fd, image, (size_t)len);
    free(image);
    ds_dump_reader *d = ds_dump_reader_open(path);
    if (d) {
        dr_read_all(&in, d);
        ds_dump_reader_close(d);
    } else {
        dr_check(ds_errmsg()[0] != 0 && strchr(ds_errmsg(), '\n') == NULL);
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "fuzz_dump_reader: %s\n", d ? "opened" : ds_errmsg());
    return 0;
}
