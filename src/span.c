/* Text spans among a prompt's tokens (see include/diffscope/span.h). */
#include "diffscope/span.h"
#include "diffscope/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when ID decodes to spaces only (a lone "▁", "Ġ" or " "). */
static int is_blank_token(const ds_tokenizer *t, int id) {
    char *p = ds_tokenizer_piece(t, id);
    int blank = p && *p && strspn(p, " ") == strlen(p);
    free(p);
    return blank;
}

/* The two forms of TEXT: form 0 = encode(TEXT), form 1 = encode(" " + TEXT) less its leading
 * blank tokens, whose number goes to *SKIPPED. */
static int encode_forms(const ds_tokenizer *t, const char *text, int *ids[2], int n[2], int *skipped) {
    size_t len = strlen(text);
    char *spaced = malloc(len + 2);
    if (!spaced) return ds_fail("out of memory");
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
    int skip = 0;
    while (skip < n[1] && is_blank_token(t, ids[1][skip])) skip++;
    memmove(ids[1], ids[1] + skip, (size_t)(n[1] - skip) * sizeof **ids);
    n[1] -= skip;
    *skipped = skip;
    if (n[0] == 0 && n[1] == 0) {
        free(ids[0]), free(ids[1]);
        return ds_fail("'%s' gives no tokens", text);
    }
    return 0;
}

int ds_span_find(const ds_tokenizer *t, const int *ids, int n, const char *text, int *begin, int *end) {
    int *form[2], nf[2], skipped;
    if (encode_forms(t, text, form, nf, &skipped)) return -1;
    int found = 0, b0 = -1, e0 = -1, b1 = -1, e1 = -1;
    for (int i = 0; i < n; i++) {
        int hit_end = -1;
        for (int f = 0; f < 2 && hit_end < 0; f++)
            if (nf[f] > 0 && i + nf[f] <= n && !memcmp(ids + i, form[f], (size_t)nf[f] * sizeof *ids)) hit_end = i + nf[f];
        if (hit_end < 0) continue;
        if (found == 0) b0 = i, e0 = hit_end;
        else if (found == 1) b1 = i, e1 = hit_end;
        found++;
    }
    free(form[0]), free(form[1]);
    if (found == 0) return ds_fail("'%s' does not occur among the prompt's tokens", text);
    if (found > 1)
        return ds_fail("'%s' occurs %d times among the prompt's tokens (at %d:%d and %d:%d%s); the span is ambiguous",
                       text, found, b0, e0, b1, e1, found > 2 ? ", ..." : "");
    *begin = b0, *end = e0;
    return 0;
}

int ds_encode_continuation(const ds_tokenizer *t, const char *text, int **ids, int *n) {
    int *form[2], nf[2], skipped;
    if (encode_forms(t, text, form, nf, &skipped)) return -1;
    /* A blank token in front of " TEXT" means the tokenizer marks word starts itself. */
    int f = skipped || nf[1] == 0 ? 0 : 1;
    *ids = form[f], *n = nf[f];
    free(form[!f]);
    return 0;
}
