/* Error status codes beside the message (include/diffscope/error.h), and library messages that
 * describe the data without naming command-line flags (the CLI adds those). */
#include "test.h"
#include "diffscope/dump.h"
#include "diffscope/error.h"
#include "diffscope/intervene.h"
#include "diffscope/model.h"

#define MODEL "tests/data/golden/models/diff-mha-f32"

TEST(fail_is_input) {
    CHECK(ds_fail("%s: bad", "x") == -1, "ds_fail returns -1");
    CHECK(ds_errcode() == DS_ERR_INPUT, "status %d, want DS_ERR_INPUT", ds_errcode());
    CHECK(!strcmp(ds_errmsg(), "x: bad"), "message '%s'", ds_errmsg());
}

TEST(failc_keeps_status_through_prefix) {
    static const ds_status all[] = {DS_ERR_INPUT, DS_ERR_NOMEM, DS_ERR_IO, DS_ERR_INTERNAL, DS_ERR_NONFINITE};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        CHECK(ds_failc(all[i], "line\nbreak") == -1, "ds_failc returns -1");
        ds_err_prefix("file.h5");
        CHECK(ds_errcode() == all[i], "status %d after the prefix, want %d", ds_errcode(), all[i]);
        CHECK(!strcmp(ds_errmsg(), "file.h5: line break"), "message '%s'", ds_errmsg());
    }
}

/* Library messages name the data ("layer 7 out of range"), never a flag ("--layers"). */
static void check_no_flag(const char *what) {
    CHECK(ds_errcode() == DS_ERR_INPUT, "%s: status %d", what, ds_errcode());
    CHECK(!strstr(ds_errmsg(), "--"), "%s: the message names a flag: '%s'", what, ds_errmsg());
}

TEST(library_messages_name_no_flags) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s: %s", MODEL, ds_errmsg());
    ds_probes *p = ds_probes_new();
    REQUIRE(p, "out of memory");
    const ds_config *c = ds_model_config(m);
    int big = 7;
    unsigned what;
    CHECK(ds_intervene_lambda(p, m, big, 0.5f) < 0, "lambda of layer 7 accepted");
    check_no_flag("lambda layer");
    CHECK(ds_intervene_ablate(p, m, 0, big) < 0, "head 7 accepted");
    check_no_flag("ablate head");
    CHECK(ds_dump_parse_what("softmax,bogus", &what) < 0, "'bogus' accepted");
    check_no_flag("what");
    CHECK(ds_dump_check_layers(c, &big, 1) < 0 && strstr(ds_errmsg(), "layer 7"), "layer 7: '%s'", ds_errmsg());
    check_no_flag("layers");
    CHECK(ds_dump_check_heads(c, &big, 1) < 0 && strstr(ds_errmsg(), "head 7"), "head 7: '%s'", ds_errmsg());
    check_no_flag("heads");
    CHECK(!ds_session_new(m, c->max_position_embeddings + 1, 0), "a session past max_position_embeddings");
    check_no_flag("session length");
    ds_probes_free(p);
    ds_model_free(m);
}

/* The checks a caller can make on config.json before the weights are read. */
TEST(config_checks_prompt) {
    ds_model *m = ds_model_load(MODEL);
    REQUIRE(m, "%s: %s", MODEL, ds_errmsg());
    const ds_config *c = ds_model_config(m);
    int ids[3] = {1, c->vocab_size, 2};
    CHECK(ds_config_check_ids(c, ids, 1, 0) == 0, "id 1 refused: %s", ds_errmsg());
    CHECK(ds_config_check_ids(c, ids, 3, 5) < 0 && strstr(ds_errmsg(), "position 6"), "'%s'", ds_errmsg());
    CHECK(ds_config_check_length(c, c->max_position_embeddings) == 0, "max length refused");
    CHECK(ds_config_check_length(c, c->max_position_embeddings + 1) < 0, "past max length accepted");
    ds_model_free(m);
}

int main(void) {
    RUN(fail_is_input);
    RUN(failc_keeps_status_through_prefix);
    RUN(library_messages_name_no_flags);
    RUN(config_checks_prompt);
    return test_summary();
}
