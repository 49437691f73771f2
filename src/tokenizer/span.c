/* Text spans among a prompt's tokens (see include/diffscope/span.h). */
#include "diffscope/span.h"
#include "diffscope/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when token ID's text starts with a space (a "▁" or "Ġ" word mark). */
static int starts_with_space(const ds_tokenizer *t, int id) {
    char *p = ds_tokenizer_piece(t, id);
    int yes = p && p[0] == ' ';
    free(p);
    return yes;
}

/* The forms of TEXT (leading spaces dropped: a form adds the word start itself) inside a
 * prompt: form 0 = encode(TEXT), form 1 = encode(" " + TEXT). Form 1 is left empty when the
 * tokenizer marks word starts itself, i.e. when form 0 already starts with a space
 * (SentencePiece's "▁"): then form 0 is how the text reads anywhere in a prompt. */
static int encode_forms(const ds_tokenizer *t, const char *text, int *ids[2], int n[2]) {
    text += strspn(text, " ");
    size_t len = strlen(text);
    char *spaced = malloc(len + 2);
    if (!spaced) return ds_failc(DS_ERR_NOMEM, "out of memory");
    spaced[0] = ' ';
    memcpy(spaced + 1, text, len + 1);
    ids[0] = ids[1] = NULL;
    int rc = ds_tokenizer_encode(t, text, len, 0, &ids[0], &n[0]) ||
             ds_tokenizer_encode(t, spaced, len + 1, 0, &ids[1], &n[1]);
    free(spaced);
    if (rc) {
        free(ids[0]), free(ids[1]);
        return -1;
    }
    if (n[0] == 0) {
        free(ids[0]), free(ids[1]);
        return ds_fail("'%s' gives no tokens", text);
    }
    if (starts_with_space(t, ids[0][0])) n[1] = 0;
    return 0;
}

int ds_span_find(const ds_tokenizer *t, const int *ids, int n, const char *text, int *begin, int *end) {
    int *form[2], nf[2];
    if (encode_forms(t, text, form, nf)) return -1;
    /* Occurrences, by where they end: a form-0 match that ends where a form-1 match ends is
     * that same occurrence without its leading space ("Key" inside " Key"), not another. */
    int found = 0, b[2] = {-1, -1}, e[2] = {-1, -1};
    for (int stop = 1; stop <= n; stop++) {
        int start = -1;
        for (int f = 1; f >= 0 && start < 0; f--)
            if (nf[f] > 0 && stop - nf[f] >= 0 && !memcmp(ids + stop - nf[f], form[f], (size_t)nf[f] * sizeof *ids))
                start = stop - nf[f];
        if (start < 0) continue;
        if (found < 2) b[found] = start, e[found] = stop;
        found++;
    }
    free(form[0]), free(form[1]);
    if (found == 0) return ds_fail("'%s' does not occur among the prompt's tokens", text);
    if (found > 1)
        return ds_fail("'%s' occurs %d times among the prompt's tokens (at %d:%d and %d:%d%s); the span is ambiguous",
                       text, found, b[0], e[0], b[1], e[1], found > 2 ? ", ..." : "");
    *begin = b[0], *end = e[0];
    return 0;
}

int ds_encode_continuation(const ds_tokenizer *t, const char *text, int **ids, int *n) {
    int *form[2], nf[2];
    if (encode_forms(t, text, form, nf)) return -1;
    int f = nf[1] == 0 ? 0 : 1; /* form 1 is empty for tokenizers that mark word starts */
    *ids = form[f], *n = nf[f];
    free(form[!f]);
    return 0;
}
