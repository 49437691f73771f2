/* libFuzzer harness: tokenizer.json loading and encoding (src/tokenizer_*.c).
 *
 * The first input byte picks the mode:
 *   even: the rest is a tokenizer.json. When ds_tokenizer_load accepts it, a fixed text is
 *         encoded and decoded with it (its vocabulary, merges, normalizer, pre-tokenizer and
 *         decoder are then all untrusted).
 *   odd:  the rest is arbitrary bytes, encoded with one of the real tokenizers of
 *         tests/data/tokenizers (picked by the bits above the lowest); every id is checked to be
 *         inside the vocabulary, then decoded back and turned into pieces.
 * The fixtures are found under $DS_FUZZ_TOKENIZERS, else tests/data/tokenizers (run from the
 * repository root, as `make fuzz` and the regression test do). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"
#include "diffscope/tokenizer.h"
#include "fuzz_file.h"

static const char *tok_fixtures[] = {"llama2-bpe", "llama2-metaspace", "gpt2-bytelevel", "llama3-bytebpe"};
#define N_TOK_FIXTURES (sizeof tok_fixtures / sizeof tok_fixtures[0])

static void tok_check(int cond) {
    if (!cond) abort();
}

static ds_tokenizer *tok_fixture(unsigned k) {
    static ds_tokenizer *loaded[N_TOK_FIXTURES];
    k %= N_TOK_FIXTURES;
    if (!loaded[k]) {
        const char *dir = getenv("DS_FUZZ_TOKENIZERS");
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data/tokenizers", tok_fixtures[k]);
        loaded[k] = ds_tokenizer_load(path);
        if (!loaded[k]) {
            fprintf(stderr, "fuzz_tokenizer: cannot load the fixture: %s\n", ds_errmsg());
            exit(1);
        }
    }
    return loaded[k];
}

/* Encodes LEN bytes of TEXT with T; checks the ids and decodes them back. */
static void tok_roundtrip(const ds_tokenizer *t, const char *text, size_t len, int add_special) {
    int *ids = NULL, n = 0;
    if (ds_tokenizer_encode(t, text, len, add_special, &ids, &n) == 0) {
        int v = ds_tokenizer_vocab_size(t);
        tok_check(n >= 0 && (n == 0 || ids));
        for (int i = 0; i < n; i++) tok_check(ids[i] >= 0 && ids[i] < v);
        for (int skip = 0; skip < 2; skip++) free(ds_tokenizer_decode(t, ids, n, skip, NULL));
        for (int i = 0; i < n && i < 64; i++) free(ds_tokenizer_piece(t, ids[i]));
        free(ids);
    } else {
        tok_check(ds_errmsg()[0] != 0 && strchr(ds_errmsg(), '\n') == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned mode = data[0];
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    if (mode & 1) {
        tok_roundtrip(tok_fixture(mode >> 2), rest, len, (mode >> 1) & 1);
        return 0;
    }
    static int fd;
    static char path[64];
    ds_tokenizer *t = ds_tokenizer_load(fuzz_as_file("tokenizer.json", &fd, path, rest, len));
    if (!t) {
        tok_check(ds_errmsg()[0] != 0 && strchr(ds_errmsg(), '\n') == NULL);
        return 0;
    }
    static const char sample[] = "Hello world! \xc3\xa9t\xc3\xa9 123  \n\t<s> \xe2\x96\x81x \xff\xfe end";
    tok_roundtrip(t, sample, sizeof sample - 1, 1);
    int ids[] = {0, 1, 2, 3, 255, 256, 1000, -1, 0x7fffffff};
    free(ds_tokenizer_decode(t, ids, (int)(sizeof ids / sizeof ids[0]), 0, NULL));
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        free(ds_tokenizer_piece(t, ids[i]));
        (void)ds_tokenizer_token_str(t, ids[i]);
        (void)ds_tokenizer_is_special(t, ids[i]);
    }
    (void)ds_tokenizer_token_id(t, "<s>");
    ds_tokenizer_free(t);
    return 0;
}
