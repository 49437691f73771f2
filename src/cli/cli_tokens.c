/* Prompt text -> ids, and ids -> axis labels, with the model folder's tokenizer.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli/cli.h"
#include "diffscope/tokenizer.h"

static int labels_from(const ds_tokenizer *t, const int *ids, int n, char ***labels) {
    *labels = calloc((size_t)(n > 0 ? n : 1), sizeof **labels);
    if (!*labels) return ds_fail("out of memory");
    for (int i = 0; t && i < n; i++) (*labels)[i] = ds_tokenizer_piece(t, ids[i]);
    return 0;
}

int cli_tokenize_prompt(const char *model_dir, const char *text, int add_special, int **ids, int *n,
                        char ***labels) {
    ds_tokenizer *t = ds_tokenizer_load(model_dir);
    if (!t) return -1;
    int rc = ds_tokenizer_encode(t, text, strlen(text), add_special, ids, n);
    if (!rc && *n == 0) {
        free(*ids);
        *ids = NULL;
        rc = ds_fail("--prompt: the prompt gives no tokens");
    }
    if (!rc && labels) rc = labels_from(t, *ids, *n, labels);
    ds_tokenizer_free(t);
    return rc;
}

int cli_token_labels(const char *model_dir, const int *ids, int n, char ***labels) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (stat(path, &st)) return labels_from(NULL, ids, n, labels);
    ds_tokenizer *t = ds_tokenizer_load(model_dir);
    if (!t) return -1;
    int rc = labels_from(t, ids, n, labels);
    ds_tokenizer_free(t);
    return rc;
}

char *cli_detokenize(const char *model_dir, const int *ids, int n) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (stat(path, &st)) return NULL;
    ds_tokenizer *t = ds_tokenizer_load(model_dir);
    char *text = t ? ds_tokenizer_decode(t, ids, n, 1) : NULL;
    ds_tokenizer_free(t);
    return text;
}
