/* Decoding: ids -> token strings -> the decoder chain of tokenizer.json -> text; and the
 * printable piece of one id for axis labels. */
#include "tokenizer/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"

typedef struct {
    tk_buf *v;
    int n;
} toklist;

static void toklist_free(toklist *l) {
    for (int i = 0; i < l->n; i++) tk_buf_free(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int toklist_init(toklist *l, int n) {
    l->v = calloc(n ? n : 1, sizeof *l->v);
    l->n = n;
    return l->v ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
}

/* Appends S to OUT, replacing each maximal invalid UTF-8 subpart with U+FFFD (Rust's
 * String::from_utf8_lossy). */
static int put_lossy(tk_buf *out, const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int k = tk_utf8_next((const char *)s + i, n - i, &cp);
        if (cp >= 0) {
            if (tk_buf_put(out, s + i, k)) return -1;
            i += k;
            continue;
        }
        /* Length of the maximal subpart: a lead byte and the continuation bytes it allows. */
        unsigned char c = s[i];
        size_t want = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        size_t j = 1;
        while (j < want && i + j < n) {
            unsigned char d = s[i + j];
            unsigned char lo = 0x80, hi = 0xBF;
            if (j == 1) {
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
                else if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
            }
            if (d < lo || d > hi) break;
            j++;
        }
        if (tk_buf_puts(out, "\xEF\xBF\xBD")) return -1;
        i += j;
    }
    return 0;
}

static int byte_of_fallback(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int replace_in(const tk_dec *d, tk_buf *tok) {
    tk_buf out = {0};
    if (tk_buf_put(&out, "", 0)) return -1;
    if (d->is_regex) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(d->re.code, NULL);
        if (!md) return ds_failc(DS_ERR_NOMEM, "out of memory");
        size_t pos = 0, ms, me;
        int r;
        while ((r = tk_regex_next(&d->re, md, tok->s, tok->len, pos, &ms, &me)) == 1) {
            tk_buf_put(&out, tok->s + pos, ms - pos);
            tk_buf_puts(&out, d->content);
            pos = me;
        }
        pcre2_match_data_free(md);
        if (r < 0) { tk_buf_free(&out); return -1; }
        tk_buf_put(&out, tok->s + pos, tok->len - pos);
    } else {
        size_t pl = strlen(d->pattern);
        for (size_t i = 0; i < tok->len;) {
            if (pl && i + pl <= tok->len && !memcmp(tok->s + i, d->pattern, pl)) {
                tk_buf_puts(&out, d->content);
                i += pl;
            } else {
                tk_buf_put(&out, tok->s + i, 1);
                i++;
            }
        }
    }
    if (!out.s) return ds_failc(DS_ERR_NOMEM, "out of memory");
    tk_buf_free(tok);
    *tok = out;
    return 0;
}

static int strip_tok(const tk_dec *d, tk_buf *tok) {
    size_t cl = strlen(d->content);
    size_t a = 0, b = tok->len;
    for (int i = 0; i < d->start && cl && a + cl <= b && !memcmp(tok->s + a, d->content, cl); i++) a += cl;
    for (int i = 0; i < d->stop && cl && b >= a + cl && !memcmp(tok->s + b - cl, d->content, cl); i++) b -= cl;
    memmove(tok->s, tok->s + a, b - a);
    tok->len = b - a;
    tok->s[tok->len] = 0;
    return 0;
}

static int metaspace_tok(const tk_dec *d, tk_buf *tok, int first) {
    size_t rl = strlen(d->replacement), w = 0;
    for (size_t i = 0; i < tok->len;) {
        if (rl && i + rl <= tok->len && !memcmp(tok->s + i, d->replacement, rl)) {
            if (!first || d->prepend_never) tok->s[w++] = ' ';
            i += rl;
        } else {
            tok->s[w++] = tok->s[i++];
        }
    }
    tok->len = w;
    if (tok->s) tok->s[w] = 0;
    return 0;
}

/* One decoder step over the token list, in place. */
static int decode_chain(const tk_dec *d, toklist *l) {
    switch (d->kind) {
    case TK_DEC_SEQUENCE:
        for (int i = 0; i < d->nitems; i++)
            if (decode_chain(&d->items[i], l)) return -1;
        return 0;
    case TK_DEC_FUSE:
    case TK_DEC_BYTELEVEL: {
        tk_buf all = {0}, bytes = {0};
        int rc = tk_buf_put(&all, "", 0);
        for (int i = 0; !rc && i < l->n; i++) {
            if (d->kind == TK_DEC_FUSE) {
                rc = tk_buf_put(&all, l->v[i].s, l->v[i].len);
                continue;
            }
            /* A token whose characters are all byte characters becomes those bytes; any
             * other token (an added token such as <|eot_id|>) stays as written. */
            size_t mark = bytes.len;
            int all_bytes = 1;
            for (size_t j = 0; j < l->v[i].len && all_bytes;) {
                int32_t cp;
                int k = tk_utf8_next(l->v[i].s + j, l->v[i].len - j, &cp);
                int b = tk_char_to_byte(cp);
                if (b < 0) { all_bytes = 0; break; }
                unsigned char c = (unsigned char)b;
                rc |= tk_buf_put(&bytes, &c, 1);
                j += k;
            }
            if (!all_bytes) {
                bytes.len = mark;
                rc |= tk_buf_put(&bytes, l->v[i].s, l->v[i].len);
            }
        }
        if (!rc && d->kind == TK_DEC_BYTELEVEL) rc = put_lossy(&all, (const unsigned char *)bytes.s, bytes.len);
        tk_buf_free(&bytes);
        if (rc) { tk_buf_free(&all); return -1; }
        toklist_free(l);
        if (toklist_init(l, 1)) { tk_buf_free(&all); return -1; }
        l->v[0] = all;
        return 0;
    }
    case TK_DEC_BYTEFALLBACK: {
        toklist out;
        if (toklist_init(&out, l->n)) return -1;
        out.n = 0;
        unsigned char *pending = malloc(l->n + 1);
        int np = 0, rc = pending ? 0 : ds_failc(DS_ERR_NOMEM, "out of memory");
        for (int i = 0; !rc && i <= l->n; i++) {
            int b = i < l->n ? byte_of_fallback(l->v[i].s, l->v[i].len) : -1;
            if (b >= 0) {
                pending[np++] = (unsigned char)b;
                continue;
            }
            if (np) {
                /* Bytes that form valid UTF-8 become one token; otherwise one U+FFFD each. */
                tk_buf *o = &out.v[out.n++];
                if (tk_utf8_invalid_at((const char *)pending, np) < 0) rc |= tk_buf_put(o, pending, np);
                else for (int k = 0; k < np; k++) rc |= tk_buf_puts(o, "\xEF\xBF\xBD");
                np = 0;
            }
            if (i < l->n) {
                out.v[out.n++] = l->v[i];
                memset(&l->v[i], 0, sizeof l->v[i]);
            }
        }
        free(pending);
        toklist_free(l);
        *l = out;
        return rc;
    }
    case TK_DEC_STRIP:
        for (int i = 0; i < l->n; i++) strip_tok(d, &l->v[i]);
        return 0;
    case TK_DEC_REPLACE:
        for (int i = 0; i < l->n; i++)
            if (replace_in(d, &l->v[i])) return -1;
        return 0;
    case TK_DEC_METASPACE:
        for (int i = 0; i < l->n; i++) metaspace_tok(d, &l->v[i], i == 0);
        return 0;
    }
    return ds_fail("internal: unknown decoder");
}

const char *tk_decode_string(const ds_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->nids) return NULL;
    int a = t->added_of_id[id];
    if (a >= 0) {
        *len = t->added[a].norm_len;
        return t->added[a].norm;
    }
    const char *s = t->id_to_str[id];
    if (s) *len = strlen(s);
    return s;
}

char *ds_tokenizer_decode(const ds_tokenizer *t, const int *ids, int n, int skip_special, size_t *len) {
    toklist l;
    if (toklist_init(&l, n)) return NULL;
    l.n = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        size_t len;
        const char *s = tk_decode_string(t, ids[i], &len);
        if (!s) continue; /* HF skips ids it does not know */
        /* By id: a special token declared "normalized" decodes to another string ("▁<s>"),
         * which the content lookup alone would miss. */
        if (skip_special && (ds_tokenizer_is_special(t, ids[i]) || tk_strmap_get(&t->special, s, len) >= 0))
            continue;
        rc = tk_buf_put(&l.v[l.n++], s, len);
    }
    if (!rc && t->dec) rc = decode_chain(t->dec, &l);
    tk_buf out = {0};
    if (!rc) rc = tk_buf_put(&out, "", 0);
    for (int i = 0; !rc && i < l.n; i++) {
        /* Without a decoder HF joins the tokens with spaces. */
        if (!t->dec && i > 0) rc = tk_buf_put(&out, " ", 1);
        if (!rc) rc = tk_buf_put(&out, l.v[i].s, l.v[i].len);
    }
    toklist_free(&l);
    if (rc) {
        tk_buf_free(&out);
        return NULL;
    }
    if (len) *len = out.len;
    return out.s;
}

char *ds_tokenizer_piece(const ds_tokenizer *t, int id) {
    const char *raw = ds_tokenizer_token_str(t, id);
    if (!raw) {
        ds_fail("token id %d is not in the vocabulary of %s", id, t->path);
        return NULL;
    }
    size_t n = strlen(raw);
    tk_buf bytes = {0}, out = {0};
    int rc = tk_buf_put(&bytes, "", 0);
    int fb = t->bpe.byte_fallback ? byte_of_fallback(raw, n) : -1;
    int added = t->added_of_id[id] >= 0;
    if (fb >= 0) {
        unsigned char c = (unsigned char)fb;
        rc |= tk_buf_put(&bytes, &c, 1);
    } else if (t->byte_level && !added) {
        for (size_t j = 0; j < n;) {
            int32_t cp;
            int k = tk_utf8_next(raw + j, n - j, &cp);
            int b = tk_char_to_byte(cp);
            if (b >= 0) {
                unsigned char c = (unsigned char)b;
                rc |= tk_buf_put(&bytes, &c, 1);
            } else {
                rc |= tk_buf_put(&bytes, raw + j, k);
            }
            j += k;
        }
    } else {
        for (size_t j = 0; j < n;) {
            if (j + 3 <= n && !memcmp(raw + j, "\xE2\x96\x81", 3)) { /* U+2581 '▁' */
                rc |= tk_buf_put(&bytes, " ", 1);
                j += 3;
            } else {
                rc |= tk_buf_put(&bytes, raw + j, 1);
                j++;
            }
        }
    }
    rc |= tk_buf_put(&out, "", 0);
    for (size_t j = 0; !rc && j < bytes.len;) {
        int32_t cp;
        int k = tk_utf8_next(bytes.s + j, bytes.len - j, &cp);
        if (cp > 0) {
            rc |= tk_buf_put(&out, bytes.s + j, k);
        } else { /* invalid UTF-8, or a NUL, which would end the label as a C string */
            char esc[8];
            snprintf(esc, sizeof esc, "\\x%02X", (unsigned char)bytes.s[j]);
            rc |= tk_buf_puts(&out, esc);
        }
        j += k;
    }
    tk_buf_free(&bytes);
    if (rc) {
        tk_buf_free(&out);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return out.s;
}

void tk_dec_free(tk_dec *d) {
    for (int i = 0; i < d->nitems; i++) tk_dec_free(&d->items[i]);
    free(d->items);
    free(d->pattern);
    free(d->content);
    tk_regex_free(&d->re);
}
