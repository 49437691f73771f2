/* diffscope verify DUMP REFERENCE [--atol A] [--rtol R]: regression check of one HDF5 file
 * against another. Everything REFERENCE holds must be in DUMP: every group and dataset (with
 * the same kind of object, and numeric where the reference is numeric, of the same shape) and
 * every numeric attribute. Numbers are compared element-wise with numpy's allclose rule
 * |a - b| <= atol + rtol * |b|, except that an infinity matches only the same infinity and a NaN
 * only a NaN (the NaN pairs are counted and reported). Exit 1 when anything fails. The
 * provenance records (/provenance) are not numbers to check: verify names the fields that
 * differ, and --provenance shows their values instead of checking numbers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "io/h5in.h"
#include "io/provenance.h"
#include <cjson/cJSON.h>

static const char *usage =
    "usage: diffscope verify DUMP REFERENCE [--atol A] [--rtol R] [--json]\n"
    "       diffscope verify DUMP REFERENCE --provenance [--json]\n\n"
    "Checks DUMP against REFERENCE: every group, dataset and numeric attribute of REFERENCE must\n"
    "be in DUMP (numeric where REFERENCE is, same shape), and every number must satisfy\n"
    "|a - b| <= atol + rtol * |b| (default atol 1e-5, rtol 1e-4); an infinity must be the same\n"
    "infinity and a NaN a NaN (NaN pairs are counted). Prints the maximum absolute and relative\n"
    "error of each. Exit status 1 when anything fails, 2 when a file is unreadable.\n"
    "The files' provenance records (/provenance: command line, interventions, model hashes,\n"
    "threads, ...) are left out of the check; the fields that differ are named on stderr.\n"
    "--provenance prints those fields' values instead (- DUMP, + REFERENCE), exit status 0.\n\n";

typedef struct {
    hid_t dump, ref;
    double atol, rtol;
    int json, compared, failed;
    long long nan_pairs;
    cJSON *rows; /* --json: one object per comparison */
} verify_ctx;

typedef struct {
    double max_abs, max_rel;
    long long nan_pairs;
    int ok;
} cmp_result;

static cmp_result compare(const double *x, const double *y, int64_t n, double atol, double rtol) {
    cmp_result r = {0, 0, 0, 1};
    for (int64_t i = 0; i < n; i++) {
        double a = x[i], b = y[i];
        if (isnan(a) || isnan(b)) {
            if (isnan(a) && isnan(b)) {
                r.nan_pairs++;
                continue;
            }
            r.ok = 0, r.max_abs = r.max_rel = INFINITY;
        } else if (isinf(a) || isinf(b)) {
            if (a == b) continue;
            /* a finite value is not close to an infinity, nor +inf to -inf, whatever rtol */
            r.ok = 0, r.max_abs = r.max_rel = INFINITY;
        } else {
            double d = fabs(a - b), rel = d / fmax(fabs(b), 1e-30);
            if (d > r.max_abs) r.max_abs = d;
            if (rel > r.max_rel) r.max_rel = rel;
            if (!(d <= atol + rtol * fabs(b))) r.ok = 0;
        }
    }
    return r;
}

static void report(verify_ctx *v, const char *what, const char *shape, cmp_result r, const char *note) {
    v->compared++;
    v->nan_pairs += r.nan_pairs;
    if (!r.ok) v->failed++;
    char nan_note[64] = "";
    if (r.nan_pairs && !note) snprintf(nan_note, sizeof nan_note, "%lld NaN in both", r.nan_pairs), note = nan_note;
    if (v->json) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "name", what);
        cJSON_AddStringToObject(row, "shape", shape);
        cJSON_AddNumberToObject(row, "max_abs", r.max_abs);
        cJSON_AddNumberToObject(row, "max_rel", r.max_rel);
        cJSON_AddNumberToObject(row, "nan_pairs", (double)r.nan_pairs);
        cJSON_AddBoolToObject(row, "ok", r.ok);
        if (note) cJSON_AddStringToObject(row, "note", note);
        cJSON_AddItemToArray(v->rows, row);
    } else {
        printf("%-48s %-16s %11.3e %11.3e  %s%s%s\n", what, shape, r.max_abs, r.max_rel, r.ok ? "ok" : "FAIL",
               note ? "  " : "", note ? note : "");
    }
}

static void report_missing(verify_ctx *v, const char *what, const char *why) {
    cmp_result r = {INFINITY, INFINITY, 0, 0};
    report(v, what, "-", r, why);
}

static void shape_str(const ds_h5_shape *s, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < s->ndim; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%lld", i ? "x" : "", (long long)s->dims[i]);
    if (!s->ndim) snprintf(buf, n, "scalar");
}

static int same_shape(const ds_h5_shape *a, const ds_h5_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

static int is_numeric(hid_t type) {
    H5T_class_t c = H5Tget_class(type);
    return c == H5T_FLOAT || c == H5T_INTEGER;
}

/* The kind of object at PATH in FILE: H5I_GROUP, H5I_DATASET, another H5I type, or H5I_BADID
 * when there is none (or only a soft or external link, which verify does not follow). */
static H5I_type_t object_kind(hid_t file, const char *path) {
    H5L_info_t li;
    if (strcmp(path, "/") && (H5Lexists(file, path, H5P_DEFAULT) <= 0 || H5Lget_info(file, path, &li, H5P_DEFAULT) < 0 ||
                              li.type != H5L_TYPE_HARD))
        return H5I_BADID;
    hid_t o = H5Oopen(file, path, H5P_DEFAULT);
    if (o < 0) return H5I_BADID;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

static int dataset_is_numeric(hid_t file, const char *path) {
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    hid_t t = d >= 0 ? H5Dget_type(d) : -1;
    int numeric = t >= 0 && is_numeric(t);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return numeric;
}

static void compare_dataset(verify_ctx *v, const char *path) {
    if (!dataset_is_numeric(v->ref, path)) return; /* strings: nothing to compare numerically */
    if (!dataset_is_numeric(v->dump, path)) {
        report_missing(v, path, "not numeric in DUMP");
        return;
    }
    ds_h5_shape sd, sr;
    char shape[64];
    double *x = ds_h5_read_f64(v->dump, path, &sd), *y = ds_h5_read_f64(v->ref, path, &sr);
    cmp_result r = {INFINITY, INFINITY, 0, 0};
    if (!x || !y) {
        report(v, path, "?", r, "unreadable");
    } else if (!same_shape(&sd, &sr)) {
        shape_str(&sd, shape, sizeof shape);
        report(v, path, shape, r, "shapes differ");
    } else {
        shape_str(&sr, shape, sizeof shape);
        report(v, path, shape, compare(x, y, sr.numel, v->atol, v->rtol), NULL);
    }
    free(x);
    free(y);
}

typedef struct {
    verify_ctx *v;
    const char *obj;
} attr_ctx;

/* Reads a numeric attribute whole as doubles: malloc'd, *N its element count; NULL if not one. */
static double *read_numeric_attr(hid_t a, hssize_t *n) {
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    *n = H5Sget_simple_extent_npoints(s);
    double *x = NULL;
    if (is_numeric(t) && *n > 0 && *n <= (1 << 20) && (x = malloc((size_t)*n * sizeof *x)) &&
        H5Aread(a, H5T_NATIVE_DOUBLE, x) < 0)
        free(x), x = NULL;
    H5Sclose(s), H5Tclose(t);
    return x;
}

static herr_t compare_attr(hid_t obj, const char *name, const H5A_info_t *info, void *u) {
    attr_ctx *ac = u;
    verify_ctx *v = ac->v;
    hid_t ar = H5Aopen(obj, name, H5P_DEFAULT), t = ar >= 0 ? H5Aget_type(ar) : -1;
    int numeric = t >= 0 && is_numeric(t);
    if (t >= 0) H5Tclose(t);
    if (!numeric) {
        if (ar >= 0) H5Aclose(ar);
        return 0;
    }
    char label[1024];
    snprintf(label, sizeof label, "%s@%s", ac->obj, name);
    hssize_t nr = 0, nd = 0;
    double *y = read_numeric_attr(ar, &nr), *x = NULL;
    H5Aclose(ar);
    if (H5Aexists_by_name(v->dump, ac->obj, name, H5P_DEFAULT) <= 0) {
        report_missing(v, label, "missing in DUMP");
    } else {
        hid_t ad = H5Aopen_by_name(v->dump, ac->obj, name, H5P_DEFAULT, H5P_DEFAULT);
        x = ad >= 0 ? read_numeric_attr(ad, &nd) : NULL;
        if (ad >= 0) H5Aclose(ad);
        char shape[32];
        snprintf(shape, sizeof shape, "%lld", (long long)nr);
        cmp_result r = {INFINITY, INFINITY, 0, 0};
        if (!x || !y) report(v, label, shape, r, x ? "unreadable" : "not numeric in DUMP");
        else if (nd != nr) report(v, label, shape, r, "sizes differ");
        else report(v, label, shape, compare(x, y, nr, v->atol, v->rtol), NULL);
    }
    free(x), free(y);
    return 0;
}

static void compare_attrs(verify_ctx *v, const char *path) {
    hid_t o = H5Oopen(v->ref, path, H5P_DEFAULT);
    if (o < 0) return;
    attr_ctx ac = {v, path};
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, NULL, compare_attr, &ac);
    H5Oclose(o);
}

/* 1 for the provenance group and what is under it: a record of how the file was made. */
static int is_provenance(const char *name) {
    size_t n = strlen(DS_PROVENANCE_GROUP) - 1;
    return !strncmp(name, DS_PROVENANCE_GROUP + 1, n) && (!name[n] || name[n] == '/');
}

/* One object of REFERENCE: it must be in DUMP as the same kind of object. */
static herr_t visit(hid_t group, const char *name, const H5L_info_t *info, void *u) {
    verify_ctx *v = u;
    if (info->type != H5L_TYPE_HARD || is_provenance(name)) return 0;
    size_t n = strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return -1;
    snprintf(path, n, "/%s", name);
    H5I_type_t want = object_kind(v->ref, path), have = object_kind(v->dump, path);
    if (have == H5I_BADID) report_missing(v, path, "missing in DUMP");
    else if (have != want) report_missing(v, path, want == H5I_GROUP ? "not a group in DUMP" : "not a dataset in DUMP");
    else {
        if (want == H5I_DATASET) compare_dataset(v, path);
        compare_attrs(v, path);
    }
    free(path);
    return 0;
}

/* Counts what DUMP holds beyond REFERENCE (reported, not a failure: a newer dump may hold more). */
static herr_t count_extra(hid_t group, const char *name, const H5L_info_t *info, void *u) {
    void **ctx = u;
    verify_ctx *v = ctx[0];
    if (is_provenance(name)) return 0;
    size_t n = strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return -1;
    snprintf(path, n, "/%s", name);
    if (object_kind(v->ref, path) == H5I_BADID) ++*(int *)ctx[1];
    free(path);
    return 0;
}

/* ---- provenance ---- */

/* A field's value as one line: text as it is, lists and numbers as JSON. */
static void print_value(char sign, const char *name, const cJSON *x) {
    char *s = !x ? NULL : cJSON_IsString(x) ? x->valuestring : cJSON_PrintUnformatted(x);
    printf("%c %s: %s\n", sign, name, x ? (s ? s : "?") : "(absent)");
    if (s && !cJSON_IsString(x)) free(s);
}

/* The two files' records (*A from DUMP, *B from REFERENCE; NULL when a file has none) and the
 * names of the fields that differ. */
static int read_provenances(hid_t dump, hid_t ref, cJSON **a, cJSON **b, cJSON **names) {
    *a = *b = *names = NULL;
    if (ds_provenance_read_h5(dump, a) || ds_provenance_read_h5(ref, b)) return -1;
    return (*names = ds_provenance_diff(*a, *b)) ? 0 : -1;
}

/* --provenance: the differing fields' values, "- " DUMP's and "+ " REFERENCE's, or with JSON
 * {"dump": record, "reference": record, "differ": [names]} (null for a file without one). */
static int show_provenance(const verify_ctx *v, const char *dump_path, const char *ref_path) {
    cJSON *a, *b, *names;
    if (read_provenances(v->dump, v->ref, &a, &b, &names)) return cli_lib_error();
    int rc = DS_EXIT_OK, n = cJSON_GetArraySize(names);
    if (v->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "dump", a ? a : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "reference", b ? b : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "differ", names);
        a = b = names = NULL;
        if (cli_print_json(o)) rc = cli_lib_error();
    } else {
        printf("--- %s%s\n+++ %s%s\n", dump_path, a ? "" : " (no provenance)", ref_path, b ? "" : " (no provenance)");
        for (const cJSON *e = names ? names->child : NULL; e; e = e->next) {
            print_value('-', e->valuestring, cJSON_GetObjectItemCaseSensitive(a, e->valuestring));
            print_value('+', e->valuestring, cJSON_GetObjectItemCaseSensitive(b, e->valuestring));
        }
    }
    if (rc == DS_EXIT_OK) fprintf(stderr, "diffscope: provenance: %d field%s differ%s\n", n, n == 1 ? "" : "s", n == 1 ? "s" : "");
    cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(names);
    return rc;
}

/* After the numeric check: one line naming the provenance fields that differ, if any. */
static void note_provenance(const verify_ctx *v) {
    cJSON *a, *b, *names;
    if (!read_provenances(v->dump, v->ref, &a, &b, &names) && a && b && cJSON_GetArraySize(names)) {
        fprintf(stderr, "diffscope: provenance differs in");
        for (const cJSON *e = names->child; e; e = e->next) fprintf(stderr, "%s %s", e == names->child ? "" : ",", e->valuestring);
        fprintf(stderr, " (verify --provenance shows the values)\n");
    }
    cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(names);
}

int cmd_verify(int argc, char **argv) {
    verify_ctx v = {.atol = 1e-5, .rtol = 1e-4};
    int rc, provenance = 0;
    const cli_opt opts[] = {{"atol", 0, CLI_DOUBLE, &v.atol, 0, HUGE_VAL, "A", "absolute tolerance"},
                            {"rtol", 0, CLI_DOUBLE, &v.rtol, 0, HUGE_VAL, "R", "relative tolerance"},
                            {"json", 0, CLI_FLAG, &v.json, 0, 0, NULL, "a JSON array of comparisons on stdout"},
                            {"provenance", 0, CLI_FLAG, &provenance, 0, 0, NULL,
                             "show how the files' provenance records differ instead"},
                            {0}};
    const cli_cmd cmd = {"verify", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 2) return cli_error("verify needs DUMP and REFERENCE (see diffscope verify --help)");
    v.dump = ds_h5_open_read(argv[optind]);
    if (v.dump < 0) return cli_lib_error();
    v.ref = ds_h5_open_read(argv[optind + 1]);
    if (v.ref < 0) {
        H5Fclose(v.dump);
        return cli_lib_error();
    }
    if (provenance) {
        rc = show_provenance(&v, argv[optind], argv[optind + 1]);
        H5Fclose(v.dump);
        H5Fclose(v.ref);
        return rc;
    }
    if (v.json) v.rows = cJSON_CreateArray();
    else
        printf("%-48s %-16s %11s %11s  %s\n", "dataset", "shape", "max_abs", "max_rel", "status");
    compare_attrs(&v, "/");
    int extra = 0;
    void *ctx[2] = {&v, &extra};
    herr_t walked = H5Lvisit(v.ref, H5_INDEX_NAME, H5_ITER_INC, visit, &v);
    if (walked >= 0) walked = H5Lvisit(v.dump, H5_INDEX_NAME, H5_ITER_INC, count_extra, ctx);
    if (walked >= 0) note_provenance(&v);
    H5Fclose(v.dump);
    H5Fclose(v.ref);
    if (walked < 0) {
        cJSON_Delete(v.rows);
        return cli_error("%s: cannot read the structure of the file", argv[optind + 1]);
    }
    if (v.json && cli_print_json(v.rows)) return cli_lib_error();
    if (!v.compared) return cli_error("%s holds nothing numeric to compare with", argv[optind + 1]);
    char nan_note[80] = "", extra_note[80] = "";
    if (v.nan_pairs) snprintf(nan_note, sizeof nan_note, "; %lld NaN in both files", v.nan_pairs);
    if (extra) snprintf(extra_note, sizeof extra_note, "; %d objects only in %s", extra, argv[optind]);
    fprintf(stderr, "diffscope: %d compared, %d failed (atol %g, rtol %g)%s%s\n", v.compared, v.failed, v.atol,
            v.rtol, nan_note, extra_note);
    return v.failed ? DS_EXIT_CHECK : DS_EXIT_OK;
}
