/* ds_tokenizer_encode: added tokens, normalizer, pre-tokenizer, BPE, post-processor. */
#include "tokenizer/internal.h"
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"

/* Does the text before END end with a \w character / the text from START begin with one? */
static int ends_with_word(const char *s, size_t end) {
    if (!end) return 0;
    size_t k = 1;
    while (k < 4 && k < end && ((unsigned char)s[end - k] & 0xC0) == 0x80) k++;
    int32_t cp;
    if ((size_t)tk_utf8_next(s + end - k, k, &cp) != k) cp = -1;
    return tk_is_word(cp);
}

static int starts_with_word(const char *s, size_t n) {
    if (!n) return 0;
    int32_t cp;
    tk_utf8_next(s, n, &cp);
    return tk_is_word(cp);
}

/* Start of the run of whitespace that ends at END. */
static size_t space_run_before(const char *s, size_t end) {
    while (end > 0) {
        size_t k = 1;
        while (k < 4 && k < end && ((unsigned char)s[end - k] & 0xC0) == 0x80) k++;
        int32_t cp;
        if ((size_t)tk_utf8_next(s + end - k, k, &cp) != k || !tk_is_space(cp)) break;
        end -= k;
    }
    return end;
}

static size_t space_run_after(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int k = tk_utf8_next(s + i, n - i, &cp);
        if (!tk_is_space(cp)) break;
        i += k;
    }
    return i;
}

/* The longest added token of the set that matches at s[i], or -1. */
static int match_at(const ds_tokenizer *t, int set, const char *s, size_t n, size_t i, size_t *mlen) {
    unsigned char c = (unsigned char)s[i];
    for (int k = 0; k < t->nbucket[set][c]; k++) {
        const tk_added *a = &t->added[t->bucket[set][c][k]];
        const char *p = set ? a->norm : a->content;
        size_t len = set ? a->norm_len : a->len;
        if (len <= n - i && !memcmp(s + i, p, len)) {
            *mlen = len;
            return t->bucket[set][c][k];
        }
    }
    return -1;
}

int tk_split_added(const ds_tokenizer *t, int normalized, const tk_pieces *in, tk_pieces *out) {
    for (int p = 0; p < in->n; p++) {
        const char *s = tk_piece_str(in, p);
        size_t n = in->v[p].len;
        int st = in->v[p].at_start;
        if (in->v[p].token >= 0) {
            if (tk_pieces_add(out, s, n, in->v[p].token, st)) return -1;
            continue;
        }
        /* Leftmost-longest, non-overlapping, as HF's Aho-Corasick (MatchKind::LeftmostLongest). */
        size_t done = 0, i = 0;
        while (i < n) {
            size_t mlen;
            int k = match_at(t, normalized, s, n, i, &mlen);
            if (k < 0) {
                i++;
                continue;
            }
            const tk_added *a = &t->added[k];
            size_t ms = i, me = i + mlen;
            i = me;
            if (a->single_word && ((ms > 0 && ends_with_word(s, ms)) ||
                                   (me < n && starts_with_word(s + me, n - me))))
                continue;
            if (ms < done) continue;
            size_t start = ms, stop = me;
            if (a->lstrip) {
                start = space_run_before(s, ms);
                if (start < done) start = done;
            }
            if (a->rstrip) stop += space_run_after(s + me, n - me);
            if (start > done && tk_pieces_add(out, s + done, start - done, -1, st && done == 0)) return -1;
            if (tk_pieces_add(out, s + start, stop - start, a->id, st && start == 0)) return -1;
            done = stop;
            if (i < done) i = done;
        }
        if (done < n && tk_pieces_add(out, s + done, n - done, -1, st && done == 0)) return -1;
    }
    return 0;
}

int ds_tokenizer_encode(const ds_tokenizer *t, const char *text, size_t len, int add_special,
                        int **ids_out, int *n_out) {
    *ids_out = NULL;
    *n_out = 0;
    long bad = tk_utf8_invalid_at(text, len);
    if (bad >= 0 && !t->bpe.byte_fallback && !t->byte_level)
        return ds_fail("prompt is not valid UTF-8 (byte 0x%02X at offset %ld) and %s has neither "
                       "byte_fallback nor a ByteLevel pre-tokenizer to encode it as bytes",
                       (unsigned char)text[bad], bad, t->path);
    tk_pieces raw = {0}, split = {0}, normed = {0}, pre = {0};
    tk_buf nb = {0};
    tk_ids ids = {0};
    int rc = -1;
    if (len && tk_pieces_add(&raw, text, len, -1, 1)) goto done;
    if (tk_split_added(t, 0, &raw, &split)) goto done;
    for (int i = 0; i < split.n; i++) {
        tk_pieces one = {0};
        const char *s = tk_piece_str(&split, i);
        size_t n = split.v[i].len;
        if (split.v[i].token < 0 && t->norm) {
            nb.len = 0;
            if (tk_buf_put(&nb, "", 0) || tk_normalize(t->norm, s, n, &nb)) goto done;
            s = nb.s;
            n = nb.len;
        }
        if (n && tk_pieces_add(&one, s, n, split.v[i].token, split.v[i].at_start)) {
            tk_pieces_free(&one);
            goto done;
        }
        int r = tk_split_added(t, 1, &one, &normed);
        tk_pieces_free(&one);
        if (r) goto done;
    }
    const tk_pieces *words = &normed;
    if (t->pre) {
        if (tk_pretokenize(t->pre, &normed, &pre)) goto done;
        words = &pre;
    }
    if (add_special)
        for (int i = 0; i < t->post.nbefore; i++)
            if (tk_ids_push(&ids, t->post.before[i])) goto done;
    for (int i = 0; i < words->n; i++) {
        if (words->v[i].token >= 0) {
            if (tk_ids_push(&ids, words->v[i].token)) goto done;
        } else if (tk_bpe_encode(&t->bpe, tk_piece_str(words, i), words->v[i].len, &ids)) {
            goto done;
        }
    }
    if (add_special)
        for (int i = 0; i < t->post.nafter; i++)
            if (tk_ids_push(&ids, t->post.after[i])) goto done;
    /* Always hand back an allocation, so that callers can free() without checking *n. */
    if (!ids.v && tk_ids_push(&ids, 0) == 0) ids.n = 0;
    if (!ids.v) goto done;
    *ids_out = ids.v;
    *n_out = ids.n;
    ids.v = NULL;
    rc = 0;
done:
    free(ids.v);
    tk_buf_free(&nb);
    tk_pieces_free(&raw);
    tk_pieces_free(&split);
    tk_pieces_free(&normed);
    tk_pieces_free(&pre);
    return rc;
}
