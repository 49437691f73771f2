/* Provenance records: one table of fields, and the record as one value per field of it. The
 * HDF5 writer, the JSON writer and the HDF5 reader all walk the table, so a field is added in
 * one place (and in docs/dump-format.md, "Provenance"). */
#include "io/provenance.h"
#include <cjson/cJSON.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "base/fileio.h"
#include "base/path.h"
#include "base/sha256.h"
#include "diffscope/diffscope.h" /* DS_VERSION */
#include "diffscope/model.h"     /* the process's compute mode */
#include "io/h5out.h"
#include "io/safetensors.h"
#include "git_commit.h" /* DS_GIT_COMMIT, written by the build */

typedef enum { TEXT, LIST, INT } field_kind;

enum {
    F_COMMAND, F_CWD, F_INTERVENTIONS,
    F_MODEL_PATH, F_CONFIG_SHA256, F_WEIGHTS_SHA256, F_WEIGHTS_HASHED, F_TOKENIZER_SHA256,
    F_TOOL_VERSION, F_GIT_COMMIT, F_COMPUTE, F_THREADS, F_HOST, F_CREATED,
    N_FIELDS
};

/* LIST fields hold one entry per intervention, or one per model (the per-model fields, in the
 * order of the output's models: A, then B). */
static const struct {
    const char *name;
    field_kind kind;
} fields[N_FIELDS] = {
    [F_COMMAND] = {"command", TEXT},          [F_CWD] = {"cwd", TEXT},
    [F_INTERVENTIONS] = {"interventions", LIST}, [F_MODEL_PATH] = {"model_path", LIST},
    [F_CONFIG_SHA256] = {"config_sha256", LIST}, [F_WEIGHTS_SHA256] = {"weights_sha256", LIST},
    [F_WEIGHTS_HASHED] = {"weights_hashed", LIST}, [F_TOKENIZER_SHA256] = {"tokenizer_sha256", LIST},
    [F_TOOL_VERSION] = {"tool_version", TEXT}, [F_GIT_COMMIT] = {"git_commit", TEXT},
    [F_COMPUTE] = {"compute", TEXT},          [F_THREADS] = {"threads", INT},
    [F_HOST] = {"host", TEXT},                [F_CREATED] = {"created", TEXT},
};

typedef struct {
    char **s; /* TEXT: s[0]; LIST: s[0..n) */
    int n;
    long long i; /* INT */
} value;

struct ds_provenance {
    value v[N_FIELDS];
};

/* Weights up to this many bytes in all are hashed whole; larger ones by their safetensors
 * headers and SAMPLES blocks of SAMPLE_BYTES spread over each file's data, so that a run on a
 * large model is not slowed by reading all its weights once more. */
#define WHOLE_MAX ((size_t)16 << 20)
#define SAMPLES 64
#define SAMPLE_BYTES ((size_t)64 << 10)

static int append(value *v, const char *text) {
    char **s = realloc(v->s, ((size_t)v->n + 1) * sizeof *s);
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory");
    v->s = s;
    if (!(s[v->n] = strdup(text))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    v->n++;
    return 0;
}

static int set_text(value *v, const char *text) {
    for (int i = 0; i < v->n; i++) free(v->s[i]);
    v->n = 0;
    return append(v, text);
}

/* The process's facts. The thread count and compute mode are the model part's settings
 * (ds_set_threads, ds_set_compute), read where the record is made. */
ds_provenance *ds_provenance_new(void) {
    ds_provenance *pv = calloc(1, sizeof *pv);
    char host[256] = "", created[32];
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (gethostname(host, sizeof host)) host[0] = 0;
    host[sizeof host - 1] = 0;
    char *cwd = getcwd(NULL, 0);
    int rc = !pv || set_text(&pv->v[F_COMMAND], "") || set_text(&pv->v[F_CWD], cwd ? cwd : "") ||
             set_text(&pv->v[F_TOOL_VERSION], DS_VERSION) || set_text(&pv->v[F_GIT_COMMIT], DS_GIT_COMMIT) ||
             set_text(&pv->v[F_COMPUTE], ds_compute_name(ds_get_compute())) || set_text(&pv->v[F_HOST], host) ||
             set_text(&pv->v[F_CREATED], created);
    free(cwd);
    if (pv) pv->v[F_THREADS].i = omp_get_max_threads(); /* what ds_set_threads set */
    if (rc) {
        ds_provenance_free(pv);
        if (!pv) ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return pv;
}

void ds_provenance_free(ds_provenance *pv) {
    if (!pv) return;
    for (int f = 0; f < N_FIELDS; f++) {
        for (int i = 0; i < pv->v[f].n; i++) free(pv->v[f].s[i]);
        free(pv->v[f].s);
    }
    free(pv);
}

/* ARG as Python's shlex.quote writes it: bare when every byte is an ASCII letter, digit or one
 * of @%+=:,./-_ ; else in single quotes, a quote inside becoming '"'"'. */
static int shell_safe(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("@%+=:,./-_", c));
}

static size_t shell_quote(const char *arg, char *out) {
    int bare = *arg != 0;
    for (const char *p = arg; *p && bare; p++) bare = shell_safe(*p);
    size_t n = 0;
    if (bare) {
        n = strlen(arg);
        if (out) memcpy(out, arg, n);
        return n;
    }
    if (out) out[n] = '\'';
    n++;
    for (const char *p = arg; *p; p++) {
        const char *piece = *p == '\'' ? "'\"'\"'" : NULL;
        size_t len = piece ? 5 : 1;
        if (out) memcpy(out + n, piece ? piece : p, len);
        n += len;
    }
    if (out) out[n] = '\'';
    return n + 1;
}

int ds_provenance_set_command(ds_provenance *pv, int argc, char *const *argv) {
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += shell_quote(argv[i], NULL) + 1;
    char *s = malloc(n), *end = s;
    if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < argc; i++) {
        if (i) *end++ = ' ';
        end += shell_quote(argv[i], end);
    }
    *end = 0;
    int rc = set_text(&pv->v[F_COMMAND], s);
    free(s);
    return rc;
}

int ds_provenance_add_intervention(ds_provenance *pv, const char *text) {
    return append(&pv->v[F_INTERVENTIONS], text);
}

int ds_provenance_set_compute(ds_provenance *pv, const char *mode) { return set_text(&pv->v[F_COMPUTE], mode); }

/* SHA-256 of file DIR/NAME (MAX bytes at most) in HEX; "" when OPTIONAL and it is absent. */
static int hash_file(const char *dir, const char *name, size_t max, int optional, char hex[65]) {
    char *path = ds_path_join(dir, name);
    struct stat st;
    hex[0] = 0;
    if (!path) return -1;
    if (optional && stat(path, &st) && lstat(path, &st)) return free(path), 0;
    size_t len;
    char *text = ds_read_file(path, max, &len);
    free(path);
    if (!text) return -1;
    ds_sha256 s;
    if (ds_sha256_init(&s)) return free(text), -1;
    ds_sha256_update(&s, text, len);
    ds_sha256_hex(&s, hex);
    free(text);
    return 0;
}

/* A safetensors file's 8-byte header length and header, then its data: whole when it is at
 * most SAMPLES * SAMPLE_BYTES, else SAMPLES blocks whose starts are spread evenly from the
 * first data byte to the last block's (block i at (data - SAMPLE_BYTES) * i / (SAMPLES - 1)). */
static void hash_sampled(ds_sha256 *s, const unsigned char *b, size_t size) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    size_t start = 8 + (size_t)hlen, data = size - start;
    ds_sha256_update(s, b, start);
    if (data <= SAMPLES * SAMPLE_BYTES) {
        ds_sha256_update(s, b + start, data);
        return;
    }
    for (size_t i = 0; i < SAMPLES; i++)
        ds_sha256_update(s, b + start + (data - SAMPLE_BYTES) * i / (SAMPLES - 1), SAMPLE_BYTES);
}

static int by_path(const void *a, const void *b) {
    return strcmp(((const ds_mapped_file *)a)->path, ((const ds_mapped_file *)b)->path);
}

/* The weights of DIR (model.safetensors or the shards of its index, in name order): hashed
 * whole when WHOLE_MAX bytes or less in all ("files"), else sampled ("sampled"). */
static int hash_weights(const char *dir, char hex[65], const char **how) {
    ds_weights w;
    if (ds_weights_open_dir(&w, dir)) {
        ds_weights_close(&w);
        return -1;
    }
    ds_mapped_file *files = malloc((size_t)w.nfiles * sizeof *files);
    if (!files) {
        ds_weights_close(&w);
        return ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    memcpy(files, w.files, (size_t)w.nfiles * sizeof *files);
    qsort(files, (size_t)w.nfiles, sizeof *files, by_path);
    size_t total = 0;
    for (int i = 0; i < w.nfiles; i++) total += files[i].size;
    int whole = total <= WHOLE_MAX;
    ds_sha256 s;
    if (ds_sha256_init(&s)) {
        free(files);
        ds_weights_close(&w);
        return -1;
    }
    for (int i = 0; i < w.nfiles; i++)
        if (whole) ds_sha256_update(&s, files[i].map, files[i].size);
        else hash_sampled(&s, files[i].map, files[i].size);
    ds_sha256_hex(&s, hex);
    *how = whole ? "files" : "sampled";
    free(files);
    ds_weights_close(&w);
    return 0;
}

int ds_provenance_add_model(ds_provenance *pv, const char *dir) {
    char config[65], weights[65], tokenizer[65];
    const char *how = "";
    if (hash_file(dir, "config.json", DS_MAX_CONFIG_BYTES, 0, config) || hash_weights(dir, weights, &how) ||
        hash_file(dir, "tokenizer.json", DS_MAX_TOKENIZER_BYTES, 1, tokenizer))
        return -1;
    return append(&pv->v[F_MODEL_PATH], dir) || append(&pv->v[F_CONFIG_SHA256], config) ||
                   append(&pv->v[F_WEIGHTS_SHA256], weights) || append(&pv->v[F_WEIGHTS_HASHED], how) ||
                   append(&pv->v[F_TOKENIZER_SHA256], tokenizer)
               ? -1
               : 0;
}

struct ds_provenance_model_job {
    ds_provenance *pv;
    char *dir;
    pthread_t thread;
    int threaded, rc;
    ds_status code; /* the hashing thread's failure, carried to the waiting thread */
    char msg[1024];
};

static void run_model_job(ds_provenance_model_job *j) {
    j->rc = ds_provenance_add_model(j->pv, j->dir);
    if (j->rc) j->code = ds_errcode(), snprintf(j->msg, sizeof j->msg, "%s", ds_errmsg());
}

static void *model_job_main(void *arg) {
    run_model_job(arg);
    return NULL;
}

ds_provenance_model_job *ds_provenance_model_start(ds_provenance *pv, const char *dir) {
    ds_provenance_model_job *j = calloc(1, sizeof *j);
    if (!j || !(j->dir = strdup(dir))) {
        free(j);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    j->pv = pv;
    j->threaded = !pthread_create(&j->thread, NULL, model_job_main, j);
    if (!j->threaded) run_model_job(j);
    return j;
}

int ds_provenance_model_wait(ds_provenance_model_job *j) {
    if (!j) return -1;
    if (j->threaded) pthread_join(j->thread, NULL);
    int rc = j->rc ? ds_failc(j->code, "%s", j->msg) : 0;
    free(j->dir), free(j);
    return rc;
}

/* ---- files ---- */

int ds_provenance_write_h5(const ds_provenance *pv, hid_t file) {
    hid_t g = ds_h5_group(file, DS_PROVENANCE_GROUP);
    int rc = g < 0;
    for (int f = 0; f < N_FIELDS && !rc; f++) {
        const value *v = &pv->v[f];
        if (fields[f].kind == INT) rc = ds_h5_attr_int(g, fields[f].name, v->i);
        else if (fields[f].kind == TEXT) rc = ds_h5_attr_str(g, fields[f].name, v->n ? v->s[0] : "");
        else rc = ds_h5_attr_str_array(g, fields[f].name, (const char *const *)v->s, v->n);
    }
    if (g >= 0) H5Gclose(g);
    return rc ? -1 : 0;
}

cJSON *ds_provenance_json(const ds_provenance *pv) {
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    for (int f = 0; f < N_FIELDS && ok; f++) {
        const value *v = &pv->v[f];
        cJSON *item = fields[f].kind == INT    ? cJSON_CreateNumber((double)v->i)
                      : fields[f].kind == TEXT ? cJSON_CreateString(v->n ? v->s[0] : "")
                      : v->n ? cJSON_CreateStringArray((const char *const *)v->s, v->n)
                             : cJSON_CreateArray(); /* cJSON makes no array of no strings */
        ok = item && cJSON_AddItemToObject(o, fields[f].name, item);
    }
    if (!ok) {
        cJSON_Delete(o);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return o;
}

int ds_provenance_add_to_json(const ds_provenance *pv, cJSON *o) {
    cJSON *p = ds_provenance_json(pv);
    if (p && cJSON_AddItemToObject(o, DS_PROVENANCE_KEY, p)) return 0;
    cJSON_Delete(p);
    return ds_failc(DS_ERR_NOMEM, "out of memory");
}

/* Attribute A (strings, variable or fixed length, or one integer) as JSON: a string, an array
 * of strings, or a number; NULL when it is none of them. */
static cJSON *read_attr(hid_t a, field_kind kind) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    cJSON *out = NULL;
    if (kind == INT && H5Tget_class(t) == H5T_INTEGER && n == 1) {
        long long x;
        if (H5Aread(a, H5T_NATIVE_LLONG, &x) >= 0) out = cJSON_CreateNumber((double)x);
    } else if (kind != INT && H5Tget_class(t) == H5T_STRING && n >= 0 && n < (1 << 20)) {
        int vlen = H5Tis_variable_str(t) > 0;
        size_t each = vlen ? sizeof(char *) : H5Tget_size(t);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, vlen ? H5T_VARIABLE : each + 1);
        H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 converts no string between character sets */
        char *buf = calloc((size_t)n + 1, vlen ? each : each + 1);
        if (buf && H5Aread(a, mt, buf) >= 0) {
            out = kind == LIST ? cJSON_CreateArray() : NULL;
            for (hssize_t i = 0; i < n; i++) {
                const char *s = vlen ? ((char **)buf)[i] : buf + i * (each + 1);
                cJSON *item = cJSON_CreateString(s ? s : "");
                if (kind == TEXT) {
                    out = n == 1 ? item : (cJSON_Delete(item), NULL);
                    break;
                }
                cJSON_AddItemToArray(out, item);
            }
            if (vlen) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, buf);
        }
        free(buf);
        H5Tclose(mt);
    }
    H5Sclose(sp);
    H5Tclose(t);
    return out;
}

cJSON *ds_provenance_diff(const cJSON *a, const cJSON *b) {
    cJSON *names = cJSON_CreateArray();
    for (int f = 0; f < N_FIELDS && names; f++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, fields[f].name);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, fields[f].name);
        if ((x || y) && !(x && y && cJSON_Compare(x, y, 1)) && !cJSON_AddItemToArray(names, cJSON_CreateString(fields[f].name))) {
            cJSON_Delete(names);
            names = NULL;
        }
    }
    if (!names) ds_failc(DS_ERR_NOMEM, "out of memory");
    return names;
}

int ds_provenance_read_h5(hid_t file, cJSON **out) {
    *out = NULL;
    if (H5Lexists(file, DS_PROVENANCE_GROUP, H5P_DEFAULT) <= 0) return 0;
    hid_t g = H5Gopen2(file, DS_PROVENANCE_GROUP, H5P_DEFAULT);
    if (g < 0) return ds_failc(DS_ERR_IO, "cannot open " DS_PROVENANCE_GROUP);
    cJSON *o = cJSON_CreateObject();
    for (int f = 0; f < N_FIELDS && o; f++) {
        if (H5Aexists(g, fields[f].name) <= 0) continue;
        hid_t a = H5Aopen(g, fields[f].name, H5P_DEFAULT);
        cJSON *item = a >= 0 ? read_attr(a, fields[f].kind) : NULL;
        if (a >= 0) H5Aclose(a);
        if (item) cJSON_AddItemToObject(o, fields[f].name, item);
    }
    H5Gclose(g);
    if (!o) return ds_failc(DS_ERR_NOMEM, "out of memory");
    *out = o;
    return 0;
}
