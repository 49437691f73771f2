/* Tokenizer: ids and decoded text against HF tokenizers' own output (vectors.json written by
 * tools/gen_tokenizer_fixtures.py, and ../shared's real-tokenizer vectors), the llama.cpp
 * llama-spm vectors, printable pieces, and the bad-input errors. */
#include <cjson/cJSON.h>
#include "diffscope/error.h"
#include "base/fileio.h"
#include "diffscope/tokenizer.h"
#include "test.h"

#define FIXTURES "tests/data/tokenizers"

static int ids_equal(const int *a, int na, const cJSON *want) {
    if (cJSON_GetArraySize(want) != na) return 0;
    for (int i = 0; i < na; i++)
        if (cJSON_GetArrayItem(want, i)->valueint != a[i]) return 0;
    return 1;
}

static void print_ids(const char *label, const int *a, int n) {
    printf("    %s:", label);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", a[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* 1 when IDS decode to WANT (SKIP_SPECIAL as in HF's decode); the first mismatches are shown. */
static int decodes_to(const ds_tokenizer *t, const int *ids, int n, int skip_special, const char *want, int *shown) {
    char *d = ds_tokenizer_decode(t, ids, n, skip_special, NULL);
    int good = d && !strcmp(d, want);
    if (!good && (*shown)++ < 3)
        printf("  decode%s mismatch: got '%.80s' want '%.80s'\n", skip_special ? "" : " (keep special)",
               d ? d : "(null)", want);
    free(d);
    return good;
}

/* Ids of the special added tokens declared "normalized" in TOKENIZER (a tokenizer.json or its
 * folder), into FLAGS[id] (calloc'd, N_IDS long). HF's skip_special_tokens looks up the decoded
 * string, which for those is not the token's content ("▁<s>"), so HF keeps them; diffscope skips
 * by id. Vectors carry "decoded_skip_by_id" for that; ../shared's do not. */
static char *normalized_specials(const char *tokenizer, int n_ids) {
    char path[8192];
    snprintf(path, sizeof path, "%s%s", tokenizer, strstr(tokenizer, ".json") ? "" : "/tokenizer.json");
    char *text = ds_read_file(path, DS_MAX_TOKENIZER_BYTES, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    char *flags = calloc((size_t)n_ids + 1, 1);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(root, "added_tokens")) {
        int id = cJSON_GetObjectItem(a, "id")->valueint;
        if (flags && id >= 0 && id < n_ids && cJSON_IsTrue(cJSON_GetObjectItem(a, "special")) &&
            cJSON_IsTrue(cJSON_GetObjectItem(a, "normalized")))
            flags[id] = 1;
    }
    cJSON_Delete(root);
    return flags;
}

/* Whether IDS skip-decode to their decode without the special ids (kept): the by-id rule. */
static int skips_by_id(const ds_tokenizer *t, const int *ids, int n, int *shown) {
    int *rest = malloc(((size_t)n + 1) * sizeof *rest), m = 0;
    for (int i = 0; i < n; i++)
        if (!ds_tokenizer_is_special(t, ids[i])) rest[m++] = ids[i];
    char *want = ds_tokenizer_decode(t, rest, m, 0, NULL);
    int good = want && decodes_to(t, ids, n, 1, want, shown);
    free(want);
    free(rest);
    return good;
}

/* Checks every case of VECTORS with TOKENIZER; KEEP also checks "decoded_keep". */
static void check_vectors(const char *tokenizer, const char *vectors, int keep) {
    ds_tokenizer *t = ds_tokenizer_load(tokenizer);
    REQUIRE(t, "load %s: %s", tokenizer, ds_errmsg());
    char *text = ds_read_file(vectors, DS_MAX_TEXT_BYTES, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root) {
        ds_tokenizer_free(t);
        REQUIRE(0, "cannot read %s", vectors);
    }
    int total = 0, ok_ids = 0, ok_nos = 0, ok_dec = 0, ok_keep = 0, shown = 0, by_id_only = 0;
    const int n_ids = ds_tokenizer_vocab_size(t);
    char *normalized = normalized_specials(tokenizer, n_ids);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const cJSON *jt = cJSON_GetObjectItem(c, "text");
        /* cJSON strings end at a NUL; the batteries have none. */
        const char *s = jt->valuestring;
        int *ids = NULL, n = 0, *ids0 = NULL, n0 = 0;
        total++;
        int e1 = ds_tokenizer_encode(t, s, strlen(s), 1, &ids, &n);
        int e0 = ds_tokenizer_encode(t, s, strlen(s), 0, &ids0, &n0);
        int good1 = !e1 && ids_equal(ids, n, cJSON_GetObjectItem(c, "ids"));
        int good0 = !e0 && ids_equal(ids0, n0, cJSON_GetObjectItem(c, "ids_no_special"));
        ok_ids += good1;
        ok_nos += good0;
        if ((!good1 || !good0) && shown++ < 3) {
            printf("  mismatch on %.60s%s\n", s, strlen(s) > 60 ? "..." : "");
            if (!e1) print_ids("ours", ids, n);
            else printf("    error: %s\n", ds_errmsg());
        }
        /* Decode the reference ids, so a decode check does not depend on encode. */
        const cJSON *want = cJSON_GetObjectItem(c, "ids"), *x;
        int nw = cJSON_GetArraySize(want), k = 0;
        int *wids = malloc((nw + 1) * sizeof *wids);
        cJSON_ArrayForEach(x, want) wids[k++] = x->valueint;
        const cJSON *by_id = cJSON_GetObjectItem(c, "decoded_skip_by_id");
        int hf_keeps = 0;
        for (int i = 0; i < nw && normalized; i++) hf_keeps |= wids[i] >= 0 && wids[i] < n_ids && normalized[wids[i]];
        if (by_id) ok_dec += decodes_to(t, wids, nw, 1, by_id->valuestring, &shown);
        else if (hf_keeps) {
            ok_dec += skips_by_id(t, wids, nw, &shown);
            by_id_only++;
        } else ok_dec += decodes_to(t, wids, nw, 1, cJSON_GetObjectItem(c, "decoded")->valuestring, &shown);
        if (keep) ok_keep += decodes_to(t, wids, nw, 0, cJSON_GetObjectItem(c, "decoded_keep")->valuestring, &shown);
        free(wids);
        free(ids);
        free(ids0);
    }
    printf("  %s: ids %d/%d, ids_no_special %d/%d, decoded %d/%d", vectors, ok_ids, total, ok_nos,
           total, ok_dec, total);
    if (keep) printf(", decoded_keep %d/%d", ok_keep, total);
    if (by_id_only) printf(" (%d skip decodes checked by id: HF keeps its normalized special tokens)", by_id_only);
    printf("\n");
    free(normalized);
    CHECK(total > 0 && ok_ids == total && ok_nos == total && ok_dec == total && (!keep || ok_keep == total),
          "%s: not every vector matched", vectors);
    cJSON_Delete(root);
    ds_tokenizer_free(t);
}

TEST(fixture_llama2_bpe) { check_vectors(FIXTURES "/llama2-bpe/tokenizer.json", FIXTURES "/llama2-bpe/vectors.json", 1); }
TEST(fixture_llama2_metaspace) { check_vectors(FIXTURES "/llama2-metaspace", FIXTURES "/llama2-metaspace/vectors.json", 1); }
TEST(fixture_llama3_bytebpe) { check_vectors(FIXTURES "/llama3-bytebpe", FIXTURES "/llama3-bytebpe/vectors.json", 1); }
TEST(fixture_gpt2_bytelevel) { check_vectors(FIXTURES "/gpt2-bytelevel", FIXTURES "/gpt2-bytelevel/vectors.json", 1); }

static void check_shared(const char *name) {
    const char *sh = test_shared_dir();
    if (!sh) SKIP("../shared is absent");
    char tok[8192], vec[8192];
    snprintf(tok, sizeof tok, "%s/reference/tokenizers/%s/tokenizer.json", sh, name);
    snprintf(vec, sizeof vec, "%s/reference/tokenizers/%s/vectors.json", sh, name);
    if (!test_file_exists(tok)) SKIP("%s is absent", tok);
    check_vectors(tok, vec, 0);
}

TEST(shared_llama2) { check_shared("llama2"); }
TEST(shared_mistral) { check_shared("mistral"); }
TEST(shared_gpt2) { check_shared("gpt2"); }
TEST(shared_bytebpe_llama3style) { check_shared("bytebpe-llama3style"); }

/* llama.cpp's llama-spm vectors: inputs split by "\n__ggml_vocab_test__\n", ids without BOS. */
TEST(llamacpp_llama_spm) {
    const char *sh = test_shared_dir();
    if (!sh) SKIP("../shared is absent");
    char tok[8192], inp[8192], outp[8192];
    snprintf(tok, sizeof tok, "%s/reference/tokenizers/llama2/tokenizer.json", sh);
    snprintf(inp, sizeof inp, "%s/reference/tokenizers/llamacpp-vectors/ggml-vocab-llama-spm.gguf.inp", sh);
    snprintf(outp, sizeof outp, "%s/reference/tokenizers/llamacpp-vectors/ggml-vocab-llama-spm.gguf.out", sh);
    ds_tokenizer *t = ds_tokenizer_load(tok);
    REQUIRE(t, "%s", ds_errmsg());
    char *in = ds_read_file(inp, DS_MAX_TEXT_BYTES, NULL), *out = ds_read_file(outp, DS_MAX_TEXT_BYTES, NULL);
    REQUIRE(in && out, "cannot read the llama.cpp vectors");
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = in, *line = out;
    int total = 0, ok = 0;
    while (p && *p) {
        char *q = strstr(p, sep);
        size_t len = q ? (size_t)(q - p) : strlen(p);
        char *eol = strchr(line, '\n');
        if (!eol) break;
        *eol = 0;
        int *ids, n;
        total++;
        if (!ds_tokenizer_encode(t, p, len, 0, &ids, &n)) {
            int good = 1, k = 0;
            char *s = line, *end;
            for (;;) {
                long v = strtol(s, &end, 10);
                if (end == s) break;
                if (k >= n || ids[k] != v) good = 0;
                k++;
                s = end;
            }
            if (k != n) good = 0;
            ok += good;
            if (!good) printf("  mismatch on '%.*s'\n", (int)(len > 40 ? 40 : len), p);
            free(ids);
        }
        line = eol + 1;
        p = q ? q + strlen(sep) : NULL;
    }
    printf("  llama-spm: %d/%d\n", ok, total);
    CHECK(total > 30 && ok == total, "llama-spm: %d of %d match", ok, total);
    free(in);
    free(out);
    ds_tokenizer_free(t);
}

/* Pieces: the ids are looked up by their spelling in the file, not taken from our output. */
TEST(pieces) {
    ds_tokenizer *t = ds_tokenizer_load(FIXTURES "/llama2-bpe");
    REQUIRE(t, "%s", ds_errmsg());
    struct { const char *tok, *piece; } cases[] = {
        {"<0x41>", "A"}, {"<0x0A>", "\n"}, {"<0xE2>", "\\xE2"}, {"<s>", "<s>"}, {"\xE2\x96\x81t", " t"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int id = ds_tokenizer_token_id(t, cases[i].tok);
        CHECK(id >= 0, "no token %s", cases[i].tok);
        char *p = id >= 0 ? ds_tokenizer_piece(t, id) : NULL;
        CHECK(p && !strcmp(p, cases[i].piece), "piece of %s is '%s', want '%s'", cases[i].tok, p ? p : "", cases[i].piece);
        free(p);
    }
    CHECK(ds_tokenizer_piece(t, ds_tokenizer_vocab_size(t)) == NULL, "piece of an id past the vocabulary");
    ds_tokenizer_free(t);
    t = ds_tokenizer_load(FIXTURES "/llama3-bytebpe");
    REQUIRE(t, "%s", ds_errmsg());
    struct { const char *tok, *piece; } bl[] = {
        {"\xC4\xA0t", " t"}, {"\xC4\x8A", "\n"}, {"\xC3\xA2", "\\xE2"}, {"<|begin_of_text|>", "<|begin_of_text|>"},
    };
    for (size_t i = 0; i < sizeof bl / sizeof bl[0]; i++) {
        int id = ds_tokenizer_token_id(t, bl[i].tok);
        CHECK(id >= 0, "no token %s", bl[i].tok);
        char *p = id >= 0 ? ds_tokenizer_piece(t, id) : NULL;
        CHECK(p && !strcmp(p, bl[i].piece), "piece of %s is '%s', want '%s'", bl[i].tok, p ? p : "", bl[i].piece);
        free(p);
    }
    CHECK(ds_tokenizer_is_special(t, ds_tokenizer_token_id(t, "<|eot_id|>")), "<|eot_id|> is special");
    ds_tokenizer_free(t);
}

/* Invalid UTF-8 with byte fallback / byte-level: the bad byte becomes its byte token. */
TEST(invalid_utf8_as_bytes) {
    ds_tokenizer *t = ds_tokenizer_load(FIXTURES "/llama2-bpe");
    REQUIRE(t, "%s", ds_errmsg());
    int *ids, n;
    REQUIRE(ds_tokenizer_encode(t, "\xff", 1, 0, &ids, &n) == 0, "%s", ds_errmsg());
    int b = ds_tokenizer_token_id(t, "<0xFF>"), sp = ds_tokenizer_token_id(t, "\xE2\x96\x81");
    CHECK(n == 2 && ids[0] == sp && ids[1] == b, "\\xff -> %d ids (%d %d), want %d %d", n, n > 0 ? ids[0] : -1,
          n > 1 ? ids[1] : -1, sp, b);
    free(ids);
    ds_tokenizer_free(t);
    t = ds_tokenizer_load(FIXTURES "/llama3-bytebpe");
    REQUIRE(t, "%s", ds_errmsg());
    REQUIRE(ds_tokenizer_encode(t, "\xff", 1, 0, &ids, &n) == 0, "%s", ds_errmsg());
    b = ds_tokenizer_token_id(t, "\xC3\xBF"); /* 'ÿ', the byte-level character of 0xFF */
    CHECK(n == 1 && ids[0] == b, "\\xff -> %d ids, want [%d]", n, b);
    free(ids);
    ds_tokenizer_free(t);
}

/* Writes TEXT to a temporary file and returns its path (static buffer). */
static const char *temp_json(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/ds_tok_test_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_load_error(const char *json, const char *needle) {
    const char *p = temp_json(json);
    REQUIRE(p, "mkstemp");
    ds_tokenizer *t = ds_tokenizer_load(p);
    CHECK(!t, "loaded a bad tokenizer.json");
    CHECK(strstr(ds_errmsg(), p) && strstr(ds_errmsg(), needle) && !strchr(ds_errmsg(), '\n'),
          "message '%s' lacks the path or '%s'", ds_errmsg(), needle);
    ds_tokenizer_free(t);
    remove(p);
}

TEST(bad_not_json) { expect_load_error("{\"model\": [1, 2", "not valid JSON"); }
TEST(bad_wordpiece) { expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "unsupported model type 'WordPiece'"); }
TEST(bad_unigram) { expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "unsupported model type 'Unigram'"); }
TEST(bad_missing_vocab) { expect_load_error("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab is missing"); }
TEST(bad_merge_unknown_token) {
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                      "\"merges\": [\"a b\", \"a z\"]}}", "model.merges[1] names token 'z'");
}
TEST(bad_missing_file) {
    ds_tokenizer *t = ds_tokenizer_load("/nonexistent/tokenizer.json");
    CHECK(!t && strstr(ds_errmsg(), "/nonexistent/tokenizer.json"), "message '%s'", ds_errmsg());
}

TEST(bad_invalid_utf8_without_fallback) {
    const char *p = temp_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                              "\"merges\": [[\"a\", \"b\"]]}}");
    REQUIRE(p, "mkstemp");
    ds_tokenizer *t = ds_tokenizer_load(p);
    REQUIRE(t, "%s", ds_errmsg());
    int *ids, n;
    REQUIRE(ds_tokenizer_encode(t, "ab", 2, 1, &ids, &n) == 0 && n == 1 && ids[0] == 2, "ab -> [2] (pair-form merge)");
    free(ids);
    CHECK(ds_tokenizer_encode(t, "a\xc3(b", 4, 1, &ids, &n) < 0, "invalid UTF-8 was accepted");
    CHECK(strstr(ds_errmsg(), "not valid UTF-8") && strstr(ds_errmsg(), "offset 1"), "message '%s'", ds_errmsg());
    ds_tokenizer_free(t);
    remove(p);
}


static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

/* Random valid UTF-8 from ASCII, whitespace, Latin, CJK, emoji and combining marks. '<', '['
 * and U+2581 are left out so that no added token or metaspace character appears. */
static size_t random_text(char *buf, size_t max) {
    static const char *atoms[] = {"a", "b", "e", "z", "Q", " ", "  ", "\t", "\n", "\r\n", "0", "7", "42",
                                  ".", ",", "'s", "!", "(", "}", "#", "é", "ß", "ñ", "\xCC\x81", "中",
                                  "語", "한", "ع", "\xF0\x9F\xA6\x99", "\xE2\x80\x8D", "\xF0\x9F\x91\xA8",
                                  "\xD0\xB6", "\xE2\x82\xAC", "the", " the", "ing", "\xC2\xA0"};
    size_t n = 0, k = rnd() % 40;
    for (size_t i = 0; i < k; i++) {
        const char *a = atoms[rnd() % (sizeof atoms / sizeof atoms[0])];
        size_t l = strlen(a);
        if (n + l >= max) break;
        memcpy(buf + n, a, l);
        n += l;
    }
    buf[n] = 0;
    return n;
}

/* decode(encode(x)) == x for valid UTF-8 x, on tokenizers that lose nothing. */
TEST(roundtrip_random_text) {
    const char *names[] = {FIXTURES "/llama2-bpe", FIXTURES "/llama3-bytebpe"};
    for (int k = 0; k < 2; k++) {
        ds_tokenizer *t = ds_tokenizer_load(names[k]);
        REQUIRE(t, "%s", ds_errmsg());
        int bad = 0;
        for (int i = 0; i < 500; i++) {
            char buf[512];
            size_t n = random_text(buf, sizeof buf);
            int *ids, m;
            if (ds_tokenizer_encode(t, buf, n, 0, &ids, &m)) { bad++; continue; }
            char *d = ds_tokenizer_decode(t, ids, m, 1, NULL);
            if (!d || strcmp(d, buf)) {
                if (bad++ < 3) printf("  %s: '%s' came back as '%s'\n", names[k], buf, d ? d : "(null)");
            }
            free(d);
            free(ids);
        }
        CHECK(bad == 0, "%s: %d of 500 random texts did not round-trip", names[k], bad);
        ds_tokenizer_free(t);
    }
}

/* Random bytes (mostly invalid UTF-8) never fail or leave the vocabulary where bytes can be
 * encoded. */
TEST(random_bytes_encode) {
    const char *names[] = {FIXTURES "/llama2-bpe", FIXTURES "/llama2-metaspace", FIXTURES "/llama3-bytebpe",
                           FIXTURES "/gpt2-bytelevel"};
    for (int k = 0; k < 4; k++) {
        ds_tokenizer *t = ds_tokenizer_load(names[k]);
        REQUIRE(t, "%s", ds_errmsg());
        for (int i = 0; i < 300; i++) {
            char buf[256];
            size_t n = rnd() % sizeof buf;
            for (size_t j = 0; j < n; j++) buf[j] = (char)rnd();
            int *ids, m;
            int rc = ds_tokenizer_encode(t, buf, n, 1, &ids, &m);
            CHECK(rc == 0, "%s: random bytes rejected: %s", names[k], ds_errmsg());
            if (rc) break;
            for (int j = 0; j < m; j++)
                CHECK(ids[j] >= 0 && ids[j] < ds_tokenizer_vocab_size(t), "%s: id %d out of range", names[k], ids[j]);
            char *d = ds_tokenizer_decode(t, ids, m, 0, NULL);
            CHECK(d != NULL, "%s: decode failed", names[k]);
            free(d);
            free(ids);
        }
        ds_tokenizer_free(t);
    }
}

/* A tokenizer.json cut short anywhere is an error, never a crash. */
TEST(truncated_json) {
    size_t len;
    char *text = ds_read_file(FIXTURES "/llama3-bytebpe/tokenizer.json", DS_MAX_TOKENIZER_BYTES, &len);
    REQUIRE(text, "cannot read the fixture");
    for (int i = 0; i < 40; i++) {
        size_t cut = rnd() % len;
        text[cut] = 0;
        const char *p = temp_json(text);
        REQUIRE(p, "mkstemp");
        ds_tokenizer *t = ds_tokenizer_load(p);
        CHECK(!t && strstr(ds_errmsg(), "not valid JSON"), "cut at %zu: %s", cut, t ? "loaded" : ds_errmsg());
        ds_tokenizer_free(t);
        remove(p);
        free(text);
        text = ds_read_file(FIXTURES "/llama3-bytebpe/tokenizer.json", DS_MAX_TOKENIZER_BYTES, &len);
    }
    free(text);
}

int main(void) {
    RUN(fixture_llama2_bpe);
    RUN(fixture_llama2_metaspace);
    RUN(fixture_llama3_bytebpe);
    RUN(fixture_gpt2_bytelevel);
    RUN(shared_llama2);
    RUN(shared_mistral);
    RUN(shared_gpt2);
    RUN(shared_bytebpe_llama3style);
    RUN(llamacpp_llama_spm);
    RUN(pieces);
    RUN(invalid_utf8_as_bytes);
    RUN(bad_not_json);
    RUN(bad_wordpiece);
    RUN(bad_unigram);
    RUN(bad_missing_vocab);
    RUN(bad_merge_unknown_token);
    RUN(bad_missing_file);
    RUN(bad_invalid_utf8_without_fallback);
    RUN(roundtrip_random_text);
    RUN(random_bytes_encode);
    RUN(truncated_json);
    return test_summary();
}
