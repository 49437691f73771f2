/* Provenance records (src/io/provenance.h): the command line quoted as Python's shlex.quote
 * quotes it, the HDF5 record read back equal to the JSON record, and the diff of two records
 * naming exactly the fields that differ. The records of real runs are checked against hashlib
 * and the argv in tests/numerics/test_provenance.py. */
#include "test.h"
#include <cjson/cJSON.h>
#include <unistd.h>
#include "diffscope/error.h"
#include "io/h5in.h"
#include "io/h5out.h"
#include "io/provenance.h"

static const char *field_text(const cJSON *o, const char *name) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(x) ? x->valuestring : "(not a string)";
}

TEST(provenance_command_quoting) {
    char *argv[] = {"build/diffscope", "a b", "it's", "", "plain-/.=:,@%+_9", "\xc3\xbc", "$HOME", "x\"y"};
    const char *want = "build/diffscope 'a b' 'it'\"'\"'s' '' plain-/.=:,@%+_9 '\xc3\xbc' '$HOME' 'x\"y'";
    ds_provenance *pv = ds_provenance_new();
    REQUIRE(pv && !ds_provenance_set_command(pv, 8, argv), "record: %s", ds_errmsg());
    cJSON *o = ds_provenance_json(pv);
    REQUIRE(o, "json: %s", ds_errmsg());
    CHECK(!strcmp(field_text(o, "command"), want), "command %s, want %s", field_text(o, "command"), want);
    cJSON_Delete(o);
    ds_provenance_free(pv);
}

TEST(provenance_h5_round_trip_and_diff) {
    char path[] = "/tmp/ds_provenance_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    ds_provenance *a = ds_provenance_new(), *b = ds_provenance_new();
    char *argv[] = {"diffscope", "dump"};
    REQUIRE(a && b && !ds_provenance_set_command(a, 2, argv) && !ds_provenance_add_intervention(a, "ablate-head 0.1") &&
                !ds_provenance_add_intervention(a, "lambda-override 1=0.5") && !ds_provenance_set_compute(b, "bf16"),
            "records: %s", ds_errmsg());
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0, "cannot create %s", path);
    CHECK(!ds_provenance_write_h5(a, f), "write: %s", ds_errmsg());
    H5Fclose(f);
    cJSON *want = ds_provenance_json(a), *wb = ds_provenance_json(b), *got = NULL, *none = NULL;
    f = ds_h5_open_read(path);
    REQUIRE(f >= 0, "reopen: %s", ds_errmsg());
    CHECK(!ds_provenance_read_h5(f, &got) && got, "read: %s", ds_errmsg());
    H5Fclose(f);
    CHECK(cJSON_Compare(got, want, 1), "read back %s, wrote %s", cJSON_PrintUnformatted(got), cJSON_PrintUnformatted(want));
    cJSON *names = ds_provenance_diff(want, wb);
    char *s = cJSON_PrintUnformatted(names);
    /* a and b were made in the same second or not: created may differ too */
    CHECK(s && (!strcmp(s, "[\"command\",\"interventions\",\"compute\"]") ||
                !strcmp(s, "[\"command\",\"interventions\",\"compute\",\"created\"]")),
          "differ: %s", s);
    free(s);
    cJSON_Delete(names);
    names = ds_provenance_diff(want, none);
    CHECK(cJSON_GetArraySize(names) == cJSON_GetArraySize(want), "against no record: %d of %d fields differ",
          cJSON_GetArraySize(names), cJSON_GetArraySize(want));
    cJSON_Delete(names), cJSON_Delete(want), cJSON_Delete(wb), cJSON_Delete(got);
    ds_provenance_free(a), ds_provenance_free(b);
    unlink(path);
}

int main(void) {
    RUN(provenance_command_quoting);
    RUN(provenance_h5_round_trip_and_diff);
    return test_summary();
}
