/* Tokenizer encode speed: encodes 1 MB of English text on one core and prints MB/s.
 *
 *   bench_tokenizer [TOKENIZER ...]
 *
 * TOKENIZER is a model folder or tokenizer.json; without arguments it uses the committed
 * fixtures and, when ../shared is present, the real Llama 2, Mistral and GPT-2 files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "diffscope/error.h"
#include "diffscope/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 MB of English-like prose from a fixed word list (deterministic). */
static char *english(size_t n) {
    static const char *words[] = {
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
        "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but",
        "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
        "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
        "attention", "transformer", "differential", "noise", "cancellation", "language", "model",
        "layer", "head", "softmax", "probability", "sequence", "tokenizer", "vocabulary",
        "morning", "river", "mountain", "government", "development", "understanding", "because",
        "people", "through", "between", "important", "information", "experiment", "results",
        "don't", "it's", "we'll", "1984", "42", "3.14", "2025", "(see", "below)", "e.g.", "—"};
    size_t nw = sizeof words / sizeof words[0];
    char *s = malloc(n + 64);
    size_t len = 0;
    unsigned long long x = 88172645463325252ULL;
    int sentence_start = 1;
    while (len < n) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const char *w = words[x % nw];
        int k = snprintf(s + len, 64, "%s%c%s", len && !sentence_start ? " " : (len ? " " : ""),
                         sentence_start ? (char)(w[0] >= 'a' && w[0] <= 'z' ? w[0] - 32 : w[0]) : w[0], w + 1);
        len += k;
        sentence_start = 0;
        if (x % 13 == 0) { len += snprintf(s + len, 8, "."); sentence_start = 1; }
        else if (x % 17 == 0) len += snprintf(s + len, 8, ",");
        if (x % 97 == 0) len += snprintf(s + len, 8, "\n\n");
    }
    s[n] = 0;
    return s;
}

static int bench(const char *path, const char *text, size_t n) {
    ds_tokenizer *t = ds_tokenizer_load(path);
    if (!t) {
        fprintf(stderr, "bench_tokenizer: %s\n", ds_errmsg());
        return 2;
    }
    int *ids, count = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (ds_tokenizer_encode(t, text, n, 1, &ids, &count)) {
            fprintf(stderr, "bench_tokenizer: %s\n", ds_errmsg());
            ds_tokenizer_free(t);
            return 2;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
        free(ids);
    }
    printf("tokenizer encode  %-60s %7d tokens  %.3f s  %6.2f MB/s\n", path, count, best, n / 1e6 / best);
    ds_tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    size_t n = 1000000;
    char *text = english(n);
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) rc |= bench(argv[i], text, n);
    } else {
        const char *paths[] = {"tests/data/tokenizers/llama2-bpe", "tests/data/tokenizers/llama3-bytebpe",
                               "../shared/reference/tokenizers/llama2", "../shared/reference/tokenizers/mistral",
                               "../shared/reference/tokenizers/gpt2",
                               "../shared/reference/tokenizers/bytebpe-llama3style"};
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            struct stat st;
            if (stat(paths[i], &st) == 0) rc |= bench(paths[i], text, n);
        }
    }
    free(text);
    return rc;
}
