/* Provenance records (src/io/provenance.h): the command line quoted as Python's shlex.quote
 * quotes it, the HDF5 record read back equal to the JSON record, and the diff of two records
 * naming exactly the fields that differ. The records of real runs are checked against hashlib
 * and the argv in tests/numerics/test_provenance.py. */
#include "test.h"
#include <cjson/cJSON.h>
#include <unistd.h>
#include "diffscope/dump.h"
#include "diffscope/error.h"
#include "diffscope/model.h"
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

/* The names of the fields in which A and B differ, as one string ("[]": none). */
static char *differing(const ds_provenance *a, const cJSON *b_json) {
    cJSON *ja = ds_provenance_json(a), *names = ja ? ds_provenance_diff(ja, b_json) : NULL;
    char *s = names ? cJSON_PrintUnformatted(names) : NULL;
    cJSON_Delete(ja), cJSON_Delete(names);
    return s;
}

static int same_but_created(const char *names) {
    return names && (!strcmp(names, "[]") || !strcmp(names, "[\"created\"]"));
}

/* A model's files hashed on a thread give the record that hashing them here gives, and a
 * failure there reaches the waiting thread with its message and status. */
TEST(provenance_model_hashed_on_a_thread) {
    const char *dir = "tests/data/golden/models/diff-sharded-deep-f32";
    if (!test_file_exists(dir)) SKIP("%s not present", dir);
    ds_provenance *here = ds_provenance_new(), *there = ds_provenance_new();
    REQUIRE(here && there && !ds_provenance_add_model(here, dir), "record: %s", ds_errmsg());
    CHECK(!ds_provenance_model_wait(ds_provenance_model_start(there, dir)), "hashed on a thread: %s", ds_errmsg());
    cJSON *jt = ds_provenance_json(there);
    char *names = differing(here, jt);
    CHECK(same_but_created(names), "the records differ in %s", names ? names : "(out of memory)");
    free(names), cJSON_Delete(jt);
    ds_provenance_free(here), ds_provenance_free(there);

    here = ds_provenance_new(), there = ds_provenance_new();
    REQUIRE(here && there, "record: %s", ds_errmsg());
    const char *missing = "tests/data/golden/models/no-such-model";
    CHECK(ds_provenance_add_model(here, missing), "hashing %s succeeded", missing);
    char want[1024];
    snprintf(want, sizeof want, "%s", ds_errmsg());
    ds_status want_code = ds_errcode();
    ds_fail("an earlier message");
    CHECK(ds_provenance_model_wait(ds_provenance_model_start(there, missing)), "hashing %s on a thread succeeded", missing);
    CHECK(!strcmp(ds_errmsg(), want) && ds_errcode() == want_code, "message '%s' (%d), want '%s' (%d)", ds_errmsg(),
          ds_errcode(), want, want_code);
    ds_provenance_free(here), ds_provenance_free(there);
}

/* A dump given no record makes its own, hashing the model while the forward pass runs: the
 * file holds the record that hashing the model first gives. */
TEST(provenance_dump_makes_its_own) {
    const char *dir = "tests/data/golden/models/llama-mha-bias-f32";
    if (!test_file_exists(dir)) SKIP("%s not present", dir);
    char path[] = "/tmp/ds_provenance_dump_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    ds_model *m = ds_model_load(dir);
    REQUIRE(m, "load %s: %s", dir, ds_errmsg());
    ds_provenance *want = ds_provenance_new();
    REQUIRE(want && !ds_provenance_add_model(want, dir), "record: %s", ds_errmsg());
    const int ids[] = {1, 5, 9, 2, 7};
    ds_dump_opts o = {.what = DS_DUMP_DEFAULT, .force = 1};
    ds_session *s = ds_session_new(m, 5, 0);
    ds_probes *p = ds_probes_new();
    ds_dump *d = s && p ? ds_dump_begin(path, &o, m, ids, 5, p) : NULL;
    int rc = !d || ds_forward(s, ids, 5, NULL, 0, p);
    if (d) rc = rc ? (ds_dump_abort(d), -1) : ds_dump_finish(d, NULL);
    CHECK(!rc, "dump: %s", ds_errmsg());
    cJSON *got = NULL;
    hid_t f = rc ? -1 : ds_h5_open_read(path);
    CHECK(rc || (f >= 0 && !ds_provenance_read_h5(f, &got) && got), "read %s: %s", path, ds_errmsg());
    if (f >= 0) H5Fclose(f);
    if (got) {
        char *names = differing(want, got);
        CHECK(same_but_created(names), "the dump's record differs in %s", names ? names : "(out of memory)");
        free(names);
    }
    cJSON_Delete(got);
    ds_probes_free(p);
    ds_session_free(s);
    ds_provenance_free(want);
    ds_model_free(m);
    unlink(path);
}

int main(void) {
    RUN(provenance_command_quoting);
    RUN(provenance_h5_round_trip_and_diff);
    RUN(provenance_model_hashed_on_a_thread);
    RUN(provenance_dump_makes_its_own);
    return test_summary();
}
