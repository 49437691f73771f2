/* diffscope verify DUMP REFERENCE [--atol A] [--rtol R]: regression check of one HDF5 file
 * against another. Every numeric dataset (and numeric attribute) the two files share is
 * compared element-wise with numpy's allclose rule |a - b| <= atol + rtol * |b|; equal
 * infinities and NaN pairs match. Exit 1 when any comparison fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/commands.h"
#include "io/h5in.h"
#include <cjson/cJSON.h>

static const char *usage =
    "usage: diffscope verify DUMP REFERENCE [--atol A] [--rtol R] [--json]\n\n"
    "Compares every numeric dataset and attribute that both HDF5 files hold and prints the\n"
    "maximum absolute and relative error of each. Exit status 1 when one exceeds\n"
    "|a - b| <= atol + rtol * |b| (default atol 1e-5, rtol 1e-4), 2 when a file is unreadable.\n\n";

typedef struct {
    hid_t a, b;
    double atol, rtol;
    int json, compared, failed, only_a;
    cJSON *rows; /* --json: one object per comparison */
} verify_ctx;

typedef struct {
    double max_abs, max_rel;
    int ok;
} cmp_result;

static cmp_result compare(const double *x, const double *y, int64_t n, double atol, double rtol) {
    cmp_result r = {0, 0, 1};
    for (int64_t i = 0; i < n; i++) {
        double a = x[i], b = y[i];
        if ((isnan(a) && isnan(b)) || (isinf(a) && a == b)) continue;
        double d = fabs(a - b);
        if (isnan(d)) d = INFINITY;
        double rel = d / fmax(fabs(b), 1e-30);
        if (d > r.max_abs) r.max_abs = d;
        if (rel > r.max_rel) r.max_rel = rel;
        if (!(d <= atol + rtol * fabs(b))) r.ok = 0;
    }
    return r;
}

static void report(verify_ctx *v, const char *what, const char *shape, cmp_result r, const char *note) {
    v->compared++;
    if (!r.ok) v->failed++;
    if (v->json) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "name", what);
        cJSON_AddStringToObject(row, "shape", shape);
        cJSON_AddNumberToObject(row, "max_abs", r.max_abs);
        cJSON_AddNumberToObject(row, "max_rel", r.max_rel);
        cJSON_AddBoolToObject(row, "ok", r.ok);
        if (note) cJSON_AddStringToObject(row, "note", note);
        cJSON_AddItemToArray(v->rows, row);
    } else
        printf("%-48s %-16s %11.3e %11.3e  %s%s%s\n", what, shape, r.max_abs, r.max_rel, r.ok ? "ok" : "FAIL",
               note ? "  " : "", note ? note : "");
}

static void shape_str(const ds_h5_shape *s, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < s->ndim; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%lld", i ? "x" : "", (long long)s->dims[i]);
    if (!s->ndim) snprintf(buf, n, "scalar");
}

static int is_numeric(hid_t type) {
    H5T_class_t c = H5Tget_class(type);
    return c == H5T_FLOAT || c == H5T_INTEGER;
}

static void compare_dataset(verify_ctx *v, const char *path) {
    if (!ds_h5_exists(v->b, path)) {
        v->only_a++;
        return;
    }
    hid_t da = H5Dopen2(v->a, path, H5P_DEFAULT), db = H5Dopen2(v->b, path, H5P_DEFAULT);
    hid_t ta = H5Dget_type(da), tb = db >= 0 ? H5Dget_type(db) : -1;
    int numeric = is_numeric(ta) && tb >= 0 && is_numeric(tb);
    H5Tclose(ta);
    if (tb >= 0) H5Tclose(tb);
    H5Dclose(da);
    if (db >= 0) H5Dclose(db);
    if (!numeric) return;
    ds_h5_shape sa, sb;
    char shape[64];
    double *x = ds_h5_read_f64(v->a, path, &sa), *y = ds_h5_read_f64(v->b, path, &sb);
    cmp_result r = {0, 0, 0};
    if (!x || !y) {
        report(v, path, "?", r, "unreadable");
    } else if (sa.numel != sb.numel || sa.ndim != sb.ndim) {
        shape_str(&sa, shape, sizeof shape);
        report(v, path, shape, r, "shapes differ");
    } else {
        shape_str(&sa, shape, sizeof shape);
        report(v, path, shape, compare(x, y, sa.numel, v->atol, v->rtol), NULL);
    }
    free(x);
    free(y);
}

typedef struct {
    verify_ctx *v;
    const char *obj;
} attr_ctx;

static herr_t compare_attr(hid_t obj, const char *name, const H5A_info_t *info, void *u) {
    attr_ctx *ac = u;
    verify_ctx *v = ac->v;
    if (H5Aexists_by_name(v->b, ac->obj, name, H5P_DEFAULT) <= 0) return 0;
    hid_t aa = H5Aopen(obj, name, H5P_DEFAULT), ab = H5Aopen_by_name(v->b, ac->obj, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t ta = H5Aget_type(aa), tb = H5Aget_type(ab), sa = H5Aget_space(aa), sb = H5Aget_space(ab);
    hssize_t na = H5Sget_simple_extent_npoints(sa), nb = H5Sget_simple_extent_npoints(sb);
    if (is_numeric(ta) && is_numeric(tb) && na > 0 && na <= (1 << 20)) {
        char label[512];
        snprintf(label, sizeof label, "%s@%s", ac->obj, name);
        double *x = malloc((size_t)na * sizeof *x), *y = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *y);
        cmp_result r = {0, 0, 0};
        if (x && y && na == nb && H5Aread(aa, H5T_NATIVE_DOUBLE, x) >= 0 && H5Aread(ab, H5T_NATIVE_DOUBLE, y) >= 0)
            r = compare(x, y, na, v->atol, v->rtol);
        char shape[32];
        snprintf(shape, sizeof shape, "%lld", (long long)na);
        report(v, label, shape, r, r.ok || na == nb ? NULL : "sizes differ");
        free(x);
        free(y);
    }
    H5Sclose(sa);
    H5Sclose(sb);
    H5Tclose(ta);
    H5Tclose(tb);
    H5Aclose(aa);
    H5Aclose(ab);
    return 0;
}

static void compare_attrs(verify_ctx *v, const char *path) {
    if (!ds_h5_exists(v->b, path) && strcmp(path, "/")) return;
    hid_t o = H5Oopen(v->a, path, H5P_DEFAULT);
    if (o < 0) return;
    attr_ctx ac = {v, path};
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, NULL, compare_attr, &ac);
    H5Oclose(o);
}

static herr_t visit(hid_t group, const char *name, const H5L_info_t *info, void *u) {
    verify_ctx *v = u;
    char path[512];
    snprintf(path, sizeof path, "/%s", name);
    hid_t o = H5Oopen(v->a, path, H5P_DEFAULT);
    if (o < 0) return 0;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    if (t == H5I_DATASET) compare_dataset(v, path);
    compare_attrs(v, path);
    return 0;
}

int cmd_verify(int argc, char **argv) {
    verify_ctx v = {.atol = 1e-5, .rtol = 1e-4};
    int rc;
    const cli_opt opts[] = {{"atol", 0, CLI_DOUBLE, &v.atol, 0, HUGE_VAL, "A", "absolute tolerance"},
                            {"rtol", 0, CLI_DOUBLE, &v.rtol, 0, HUGE_VAL, "R", "relative tolerance"},
                            {"json", 0, CLI_FLAG, &v.json, 0, 0, NULL, "a JSON array of comparisons on stdout"},
                            {0}};
    const cli_cmd cmd = {"verify", usage, NULL, opts};
    if (cli_parse(&cmd, argc, argv, &rc)) return rc;
    if (optind != argc - 2) return cli_error("verify needs DUMP and REFERENCE (see diffscope verify --help)");
    v.a = ds_h5_open_read(argv[optind]);
    if (v.a < 0) return cli_lib_error();
    v.b = ds_h5_open_read(argv[optind + 1]);
    if (v.b < 0) {
        H5Fclose(v.a);
        return cli_lib_error();
    }
    if (v.json) v.rows = cJSON_CreateArray();
    else
        printf("%-48s %-16s %11s %11s  %s\n", "dataset", "shape", "max_abs", "max_rel", "status");
    compare_attrs(&v, "/");
    H5Lvisit(v.a, H5_INDEX_NAME, H5_ITER_INC, visit, &v);
    H5Fclose(v.a);
    H5Fclose(v.b);
    if (v.json && cli_print_json(v.rows)) return cli_lib_error();
    if (!v.compared) return cli_error("%s and %s share no numeric dataset", argv[optind], argv[optind + 1]);
    fprintf(stderr, "diffscope: %d compared, %d failed (atol %g, rtol %g)%s\n", v.compared, v.failed, v.atol, v.rtol,
            v.only_a ? "; some datasets exist only in the first file" : "");
    return v.failed ? DS_EXIT_CHECK : DS_EXIT_OK;
}
