/* Library parts of compare/needle: the Table-5 accumulator against a plain sort, and span
 * finding / continuation encoding against HF tokenizers' own tokens (tests/data/tokenizers/
 * * /vectors.json: text, ids and token strings from the `tokenizers` library). The statistics
 * themselves are checked against NumPy over dumps in tests/numerics/test_compare.py. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include "diffscope/error.h"
#include "diffscope/span.h"
#include "diffscope/table5.h"
#include "test.h"

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static uint64_t rng_state = 12345;
static double uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

TEST(table5_matches_sort) {
    const int counts[] = {1, 2, 3, 10, 99, 100, 101, 1000, 12345};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int n = counts[c];
        float *v = malloc((size_t)n * sizeof *v), *a = malloc((size_t)n * sizeof *a);
        ds_table5_acc *acc = ds_table5_new();
        REQUIRE(v && a && acc, "out of memory");
        for (int i = 0; i < n; i++) {
            /* Wide range, both signs, some exact ties and zeros. */
            double x = (uniform() - 0.5) * exp(8 * (uniform() - 0.5));
            v[i] = i % 17 == 3 ? 0.0f : i % 13 == 5 ? 1.5f : (float)x;
            if (c % 2 == 0) ds_table5_push(acc, v[i]);
            a[i] = fabsf(v[i]);
        }
        for (int i = 0; c % 2 && i < n; i += 7) ds_table5_push_n(acc, v + i, (size_t)(n - i < 7 ? n - i : 7));
        ds_table5_push(acc, NAN); /* ignored */
        ds_table5 r;
        ds_table5_result(acc, &r);
        ds_table5_free(acc);
        qsort(a, (size_t)n, sizeof *a, cmp_desc);
        CHECK(r.count == n, "n=%d: count %lld", n, (long long)r.count);
        for (int k = 0; k < DS_TABLE5_RANKS; k++) {
            int rank = ds_table5_ranks[k];
            if (rank <= n) CHECK(r.top[k] == a[rank - 1], "n=%d top-%d %g != %g", n, rank, r.top[k], a[rank - 1]);
            else CHECK(isnan(r.top[k]), "n=%d top-%d should be NaN", n, rank);
        }
        /* NumPy's median: a is descending, so the middle ranks are the same from either end. */
        double med = n % 2 ? a[n / 2] : 0.5 * ((double)a[n / 2 - 1] + a[n / 2]);
        CHECK(fabs(r.median - med) <= 1.3e-4 * med + 1e-30, "n=%d median %.9g != %.9g", n, r.median, med);
        free(v), free(a);
    }
}

/* A freed accumulator's histogram is reused by the next one: none of its counts may remain
 * (2.05 shares the median's block of bins, [2, 2.5), below it: a stale count there would be
 * walked before the median's bin). */
TEST(table5_next_accumulator_starts_empty) {
    for (int round = 0; round < 6; round++) {
        ds_table5_acc *old = ds_table5_new();
        REQUIRE(old, "out of memory");
        for (int i = 0; i < 1001; i++) ds_table5_push(old, 2.05f);
        ds_table5_free(old);
        ds_table5_acc *acc = ds_table5_new();
        REQUIRE(acc, "out of memory");
        float v[10] = {1, 2.2f, 2.2f, 2.2f, 2.2f, 2.2f, 3, 3, 3, 4};
        ds_table5_push_n(acc, v, 10);
        ds_table5 r;
        ds_table5_result(acc, &r);
        ds_table5_free(acc);
        CHECK(r.count == 10 && r.top[0] == 4 && fabs(r.median - 2.2) <= 1.3e-4 * 2.2, "round %d: count %lld, top %g, median %g",
              round, (long long)r.count, r.top[0], r.median);
    }
}

TEST(table5_empty) {
    ds_table5_acc *acc = ds_table5_new();
    REQUIRE(acc, "out of memory");
    ds_table5 r;
    ds_table5_result(acc, &r);
    ds_table5_free(acc);
    CHECK(r.count == 0 && isnan(r.median) && isnan(r.top[0]), "empty stream");
}

/* ---- spans against HF tokens ---- */

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) free(s), s = NULL;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int count_substr(const char *hay, const char *needle) {
    int c = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) c++;
    return c;
}

/* The words of TEXT made of ASCII letters only, at least 3 long, occurring once in TEXT; for
 * each, the token range [i, j) of TOKENS whose strings concatenate to MARK + word. */
static void check_case(const char *name, const ds_tokenizer *t, const char *text, cJSON *ids_j, cJSON *tokens_j,
                       int *checked) {
    int n = cJSON_GetArraySize(ids_j);
    int *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    const char **tok = malloc((size_t)(n ? n : 1) * sizeof *tok);
    for (int i = 0; i < n; i++) {
        ids[i] = cJSON_GetArrayItem(ids_j, i)->valueint;
        tok[i] = cJSON_GetArrayItem(tokens_j, i)->valuestring;
    }
    const char *p = text;
    while (*p) {
        size_t len = 0;
        while (p[len] && ((p[len] >= 'a' && p[len] <= 'z') || (p[len] >= 'A' && p[len] <= 'Z'))) len++;
        if (len < 3 || (p > text && p[-1] != ' ') || (p[len] && p[len] != ' ')) {
            p += len ? len : 1;
            continue;
        }
        char word[64];
        snprintf(word, sizeof word, "%.*s", (int)len, p);
        p += len;
        if (len >= sizeof word - 1 || count_substr(text, word) != 1) continue;
        for (int i = 0; i < n; i++) {
            char joined[256] = "";
            for (int j = i; j < n && strlen(joined) < 128; j++) {
                strcat(joined, tok[j]);
                char want_sp[80], want_bl[80];
                snprintf(want_sp, sizeof want_sp, "\xe2\x96\x81%s", word); /* ▁word */
                snprintf(want_bl, sizeof want_bl, "\xc4\xa0%s", word);     /* Ġword */
                if (strcmp(joined, want_sp) && strcmp(joined, want_bl)) continue;
                int b = -1, e = -1;
                int rc = ds_span_find(t, ids, n, word, &b, &e);
                CHECK(rc == 0 && b == i && e == j + 1, "%s: '%s' in '%.40s': got %d:%d (%s), HF tokens %d:%d", name,
                      word, text, b, e, rc ? ds_errmsg() : "ok", i, j + 1);
                int *c = NULL, nc = 0;
                rc = ds_encode_continuation(t, word, &c, &nc);
                CHECK(rc == 0 && nc == j + 1 - i && !memcmp(c, ids + i, (size_t)nc * sizeof *c),
                      "%s: continuation of '%s' is not HF's in-context tokens", name, word);
                free(c);
                (*checked)++;
                i = n;
                break;
            }
        }
    }
    free(ids);
    free(tok);
}

TEST(span_find_matches_hf_tokens) {
    const char *names[] = {"llama2-bpe", "llama2-metaspace", "gpt2-bytelevel", "llama3-bytebpe"};
    for (int k = 0; k < 4; k++) {
        char dir[256], path[300];
        snprintf(dir, sizeof dir, "tests/data/tokenizers/%s", names[k]);
        snprintf(path, sizeof path, "%s/vectors.json", dir);
        char *js = read_file(path);
        REQUIRE(js, "%s missing", path);
        cJSON *root = cJSON_Parse(js);
        ds_tokenizer *t = ds_tokenizer_load(dir);
        REQUIRE(root && t, "%s: %s", dir, ds_errmsg());
        int checked = 0;
        cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
            cJSON *text = cJSON_GetObjectItem(c, "text");
            if (cJSON_IsString(text))
                check_case(names[k], t, text->valuestring, cJSON_GetObjectItem(c, "ids"), cJSON_GetObjectItem(c, "tokens"),
                           &checked);
        }
        CHECK(checked >= 5, "%s: only %d words checked", names[k], checked);
        ds_tokenizer_free(t);
        cJSON_Delete(root);
        free(js);
    }
}

TEST(span_find_errors) {
    ds_tokenizer *t = ds_tokenizer_load("tests/data/tokenizers/llama2-bpe");
    REQUIRE(t, "%s", ds_errmsg());
    int *ids, n, b, e;
    const char *text = "the cat saw the dog";
    REQUIRE(!ds_tokenizer_encode(t, text, strlen(text), 1, &ids, &n), "%s", ds_errmsg());
    CHECK(ds_span_find(t, ids, n, "the", &b, &e) < 0 && strstr(ds_errmsg(), "ambiguous"), "ambiguous: %s", ds_errmsg());
    CHECK(ds_span_find(t, ids, n, "bird", &b, &e) < 0 && strstr(ds_errmsg(), "does not occur"), "absent: %s",
          ds_errmsg());
    CHECK(ds_span_find(t, ids, n, "", &b, &e) < 0, "empty text accepted");
    CHECK(ds_span_find(t, ids, n, "cat saw", &b, &e) == 0 && e - b >= 2, "two words: %s", ds_errmsg());
    free(ids);
    ds_tokenizer_free(t);
}

int main(void) {
    RUN(table5_matches_sort);
    RUN(table5_next_accumulator_starts_empty);
    RUN(table5_empty);
    RUN(span_find_matches_hf_tokens);
    RUN(span_find_errors);
    return test_summary();
}
