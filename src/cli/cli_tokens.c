/* Prompt text -> ids, and ids -> axis labels, with the model folder's tokenizer.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "diffscope/tokenizer.h"
#include "base/path.h"

/* The tokenizers of the model folders a command uses, each loaded once: a command may encode
 * the prompt, label its tokens, find a span and decode the output with the same one (a Llama 3
 * tokenizer.json is 9 MB). Freed at exit. */
typedef struct {
    char *dir;
    ds_tokenizer *t;
} cached_tokenizer;
static cached_tokenizer *cache;
static int ncached;

static void cache_free(void) {
    for (int i = 0; i < ncached; i++) free(cache[i].dir), ds_tokenizer_free(cache[i].t);
    free(cache);
    cache = NULL, ncached = 0;
}

const ds_tokenizer *cli_tokenizer(const char *model_dir) {
    for (int i = 0; i < ncached; i++)
        if (!strcmp(cache[i].dir, model_dir)) return cache[i].t;
    ds_tokenizer *t = ds_tokenizer_load(model_dir);
    if (!t) return NULL;
    char *dir = strdup(model_dir);
    cached_tokenizer *grown = dir ? realloc(cache, (size_t)(ncached + 1) * sizeof *cache) : NULL;
    if (!grown) {
        free(dir);
        ds_tokenizer_free(t);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (!cache) atexit(cache_free);
    cache = grown;
    cache[ncached++] = (cached_tokenizer){dir, t};
    return t;
}

static int labels_from(const ds_tokenizer *t, const int *ids, int n, char ***labels) {
    *labels = calloc((size_t)(n > 0 ? n : 1), sizeof **labels);
    if (!*labels) return ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int i = 0; t && i < n; i++) (*labels)[i] = ds_tokenizer_piece(t, ids[i]);
    return 0;
}

int cli_tokenize_prompt(const char *model_dir, const char *text, int add_special, int **ids, int *n,
                        char ***labels) {
    const ds_tokenizer *t = cli_tokenizer(model_dir);
    if (!t) return -1;
    int rc = ds_tokenizer_encode(t, text, strlen(text), add_special, ids, n);
    if (!rc && *n == 0) {
        free(*ids);
        *ids = NULL;
        rc = ds_fail("--prompt: the prompt gives no tokens");
    }
    if (!rc && labels) rc = labels_from(t, *ids, *n, labels);
    return rc;
}

int cli_has_tokenizer(const char *model_dir) {
    char *path = ds_path_join(model_dir, "tokenizer.json");
    struct stat st;
    int found = path && stat(path, &st) == 0;
    free(path);
    return found;
}

int cli_token_labels(const char *model_dir, const int *ids, int n, char ***labels) {
    if (!cli_has_tokenizer(model_dir)) return labels_from(NULL, ids, n, labels);
    const ds_tokenizer *t = cli_tokenizer(model_dir);
    return t ? labels_from(t, ids, n, labels) : -1;
}

char *cli_detokenize(const char *model_dir, const int *ids, int n, size_t *len) {
    if (!cli_has_tokenizer(model_dir)) return NULL;
    const ds_tokenizer *t = cli_tokenizer(model_dir);
    return t ? ds_tokenizer_decode(t, ids, n, 1, len) : NULL;
}
