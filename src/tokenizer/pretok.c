/* Normalizers and pre-tokenizers of a tokenizer.json, as HF tokenizers applies them.
 *
 * Pieces that are already tokens (added tokens) pass through untouched. Every pre-tokenizer
 * drops the empty pieces it would produce, as PreTokenizedString::split does. */
#include "tokenizer/internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "diffscope/error.h"

/* GPT-2 maps the 188 printable bytes to themselves and the 68 others, in byte order, to
 * U+0100 onwards: 0x00-0x20 -> U+0100-U+0120, 0x7F-0xA0 -> U+0121-U+0142, 0xAD -> U+0143. */
int32_t tk_byte_char(unsigned char b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x121 + (b - 0x7F);
    if (b == 0xAD) return 0x143;
    return b;
}

int tk_char_to_byte(int32_t cp) {
    if (cp >= 0x100 && cp <= 0x120) return cp - 0x100;
    if (cp >= 0x121 && cp <= 0x142) return cp - 0x121 + 0x7F;
    if (cp == 0x143) return 0xAD;
    if (cp >= 0 && cp < 0x100 && tk_byte_char((unsigned char)cp) == cp) return cp;
    return -1;
}

/* ---------------------------------------------------------------- normalizers */

static int unicode_form(const char *s, size_t n, int opts, tk_buf *out) {
    /* Runs of valid UTF-8 go through utf8proc; invalid bytes are kept as they are. */
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n) {
            int32_t cp;
            int k = tk_utf8_next(s + j, n - j, &cp);
            if (cp < 0) break;
            j += k;
        }
        if (j > i) {
            utf8proc_uint8_t *dst = NULL;
            utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(j - i),
                                              &dst, (utf8proc_option_t)opts);
            if (m < 0) return ds_fail("Unicode normalization failed: %s", utf8proc_errmsg(m));
            int rc = tk_buf_put(out, dst, (size_t)m);
            free(dst);
            if (rc) return -1;
        }
        if (j < n && tk_buf_put(out, s + j, 1)) return -1;
        i = j + (j < n);
    }
    return 0;
}

static int lowercase(const char *s, size_t n, tk_buf *out) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = tk_utf8_next(s + i, n - i, &cp);
        if (cp < 0) {
            if (tk_buf_put(out, s + i, 1)) return -1;
        } else {
            char enc[4];
            if (tk_buf_put(out, enc, tk_utf8_encode(utf8proc_tolower(cp), enc))) return -1;
        }
        i += k;
    }
    return 0;
}

static int replace_all(const tk_regex *re, const char *content, const char *s, size_t n, tk_buf *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md) return ds_failc(DS_ERR_NOMEM, "out of memory");
    size_t pos = 0, ms, me;
    int rc;
    while ((rc = tk_regex_next(re, md, s, n, pos, &ms, &me)) == 1) {
        if (tk_buf_put(out, s + pos, ms - pos) || tk_buf_puts(out, content)) { rc = -1; break; }
        pos = me;
    }
    if (rc == 0) rc = tk_buf_put(out, s + pos, n - pos);
    pcre2_match_data_free(md);
    return rc;
}

static int strip(const char *s, size_t n, int left, int right, tk_buf *out) {
    size_t a = 0, b = n;
    while (left && a < b) {
        int32_t cp;
        int k = tk_utf8_next(s + a, b - a, &cp);
        if (!tk_is_space(cp)) break;
        a += k;
    }
    while (right && b > a) {
        size_t k = 1;
        while (k < 4 && b - k > a && ((unsigned char)s[b - k] & 0xC0) == 0x80) k++;
        int32_t cp;
        if ((size_t)tk_utf8_next(s + b - k, k, &cp) != k || !tk_is_space(cp)) break;
        b -= k;
    }
    return tk_buf_put(out, s + a, b - a);
}

int tk_normalize(const tk_norm *nm, const char *s, size_t n, tk_buf *out) {
    switch (nm->kind) {
    case TK_NORM_SEQUENCE: {
        tk_buf cur = {0}, next = {0};
        if (tk_buf_put(&cur, s, n)) return -1;
        for (int i = 0; i < nm->nitems; i++) {
            next.len = 0;
            if (tk_buf_put(&next, "", 0) || tk_normalize(&nm->items[i], cur.s, cur.len, &next)) {
                tk_buf_free(&cur);
                tk_buf_free(&next);
                return -1;
            }
            tk_buf t = cur;
            cur = next;
            next = t;
        }
        int rc = tk_buf_put(out, cur.s, cur.len);
        tk_buf_free(&cur);
        tk_buf_free(&next);
        return rc;
    }
    case TK_NORM_NFC: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE, out);
    case TK_NORM_NFD: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, out);
    case TK_NORM_NFKC: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
    case TK_NORM_NFKD: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
    case TK_NORM_PREPEND:
        /* HF prepends only to a non-empty string. */
        if (n && tk_buf_puts(out, nm->str)) return -1;
        return tk_buf_put(out, s, n);
    case TK_NORM_REPLACE: return replace_all(&nm->re, nm->str, s, n, out);
    case TK_NORM_LOWERCASE: return lowercase(s, n, out);
    case TK_NORM_STRIP: return strip(s, n, nm->left, nm->right, out);
    }
    return ds_fail("internal: unknown normalizer");
}

void tk_norm_free(tk_norm *nm) {
    for (int i = 0; i < nm->nitems; i++) tk_norm_free(&nm->items[i]);
    free(nm->items);
    free(nm->str);
    tk_regex_free(&nm->re);
}

/* ------------------------------------------------------------- pre-tokenizers */

typedef struct {
    size_t a, b;
    int match;
} seg;

/* HF NormalizedString::split: cut [s, s+n) at the matches of RE, then keep, drop or merge
 * the delimiters according to BEHAVIOR. */
static int split_piece(const tk_regex *re, tk_split_behavior behavior, int invert, const char *s,
                       size_t n, int at_start, tk_pieces *out) {
    seg *v = NULL;
    int nv = 0, cap = 0, rc = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md) return ds_failc(DS_ERR_NOMEM, "out of memory");
    size_t pos = 0, ms, me;
    for (;;) {
        int r = tk_regex_next(re, md, s, n, pos, &ms, &me);
        if (r < 0) { rc = -1; goto done; }
        size_t a = r ? ms : n;
        seg found[2] = {{pos, a, 0}, {r ? ms : n, r ? me : n, 1}};
        for (int k = 0; k < 1 + r; k++) {
            if (found[k].a == found[k].b) continue; /* no text before this match */
            seg *grown = tk_room_for_one(v, nv, &cap, sizeof *grown, 16);
            if (!grown) { rc = -1; goto done; }
            v = grown;
            found[k].match ^= invert;
            v[nv++] = found[k];
        }
        if (!r) break;
        pos = me;
    }
    /* Merge according to the behavior; the result is a list of kept spans. */
    int nk = 0;
    int prev_match = 0;
    switch (behavior) {
    case TK_SPLIT_ISOLATED:
        for (int i = 0; i < nv; i++) v[nk++] = (seg){v[i].a, v[i].b, 0};
        break;
    case TK_SPLIT_REMOVED:
        for (int i = 0; i < nv; i++)
            if (!v[i].match) v[nk++] = v[i];
        break;
    case TK_SPLIT_CONTIGUOUS:
        for (int i = 0; i < nv; i++) {
            int m = v[i].match;
            if (nk && m == prev_match) v[nk - 1].b = v[i].b;
            else v[nk++] = v[i];
            prev_match = m;
        }
        break;
    case TK_SPLIT_MERGED_PREV:
        for (int i = 0; i < nv; i++) {
            int m = v[i].match;
            if (m && !prev_match && nk) v[nk - 1].b = v[i].b;
            else v[nk++] = v[i];
            prev_match = m;
        }
        break;
    case TK_SPLIT_MERGED_NEXT: {
        /* Walk backwards: a delimiter joins the piece that follows it. */
        int w = nv;
        for (int i = nv - 1; i >= 0; i--) {
            int m = v[i].match;
            if (m && !prev_match && w < nv) v[w].a = v[i].a;
            else v[--w] = v[i];
            prev_match = m;
        }
        for (int i = w; i < nv; i++) v[nk++] = v[i];
        break;
    }
    }
    for (int i = 0; i < nk; i++)
        if (v[i].b > v[i].a &&
            tk_pieces_add(out, s + v[i].a, v[i].b - v[i].a, -1, at_start && v[i].a == 0)) {
            rc = -1;
            goto done;
        }
done:
    free(v);
    pcre2_match_data_free(md);
    return rc;
}

static int bytelevel_piece(const tk_pre *pre, const char *s, size_t n, int at_start, tk_pieces *out) {
    tk_buf pref = {0};
    tk_pieces parts = {0};
    int rc = -1;
    if (pre->add_prefix_space && (n == 0 || s[0] != ' ')) {
        if (tk_buf_put(&pref, " ", 1) || tk_buf_put(&pref, s, n)) goto done;
        s = pref.s;
        n = pref.len;
    }
    if (pre->use_regex) {
        if (split_piece(&pre->re, TK_SPLIT_ISOLATED, 0, s, n, at_start, &parts)) goto done;
    } else if (n && tk_pieces_add(&parts, s, n, -1, at_start)) {
        goto done;
    }
    tk_buf mapped = {0};
    for (int i = 0; i < parts.n; i++) {
        const unsigned char *p = (const unsigned char *)tk_piece_str(&parts, i);
        mapped.len = 0;
        for (size_t j = 0; j < parts.v[i].len; j++) {
            char enc[4];
            if (tk_buf_put(&mapped, enc, tk_utf8_encode(tk_byte_char(p[j]), enc))) {
                tk_buf_free(&mapped);
                goto done;
            }
        }
        if (tk_pieces_add(out, mapped.s, mapped.len, -1, parts.v[i].at_start)) {
            tk_buf_free(&mapped);
            goto done;
        }
    }
    tk_buf_free(&mapped);
    rc = 0;
done:
    tk_buf_free(&pref);
    tk_pieces_free(&parts);
    return rc;
}

static int metaspace_piece(const tk_pre *pre, const char *s, size_t n, int at_start, tk_pieces *out) {
    tk_buf b = {0};
    int rc = -1;
    size_t rl = strlen(pre->replacement);
    int starts_rep = n >= rl && !memcmp(s, pre->replacement, rl);
    int starts_space = n >= 1 && s[0] == ' ';
    int prepend = !starts_rep && !starts_space &&
                  (pre->prepend == TK_PREPEND_ALWAYS || (pre->prepend == TK_PREPEND_FIRST && at_start));
    if (prepend && tk_buf_puts(&b, pre->replacement)) goto done;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' ? tk_buf_puts(&b, pre->replacement) : tk_buf_put(&b, s + i, 1)) goto done;
    }
    if (pre->split) rc = split_piece(&pre->re, TK_SPLIT_MERGED_NEXT, 0, b.s ? b.s : "", b.len, at_start, out);
    else rc = b.len ? tk_pieces_add(out, b.s, b.len, -1, at_start) : 0;
done:
    tk_buf_free(&b);
    return rc;
}

int tk_pretokenize(const tk_pre *pre, const tk_pieces *in, tk_pieces *out) {
    if (pre->kind == TK_PRE_SEQUENCE) {
        tk_pieces cur = {0}, next;
        for (int i = 0; i < in->n; i++)
            if (tk_pieces_add(&cur, tk_piece_str(in, i), in->v[i].len, in->v[i].token, in->v[i].at_start)) {
                tk_pieces_free(&cur);
                return -1;
            }
        for (int k = 0; k < pre->nitems; k++) {
            memset(&next, 0, sizeof next);
            if (tk_pretokenize(&pre->items[k], &cur, &next)) {
                tk_pieces_free(&cur);
                tk_pieces_free(&next);
                return -1;
            }
            tk_pieces_free(&cur);
            cur = next;
        }
        for (int i = 0; i < cur.n; i++)
            if (tk_pieces_add(out, tk_piece_str(&cur, i), cur.v[i].len, cur.v[i].token, cur.v[i].at_start)) {
                tk_pieces_free(&cur);
                return -1;
            }
        tk_pieces_free(&cur);
        return 0;
    }
    for (int i = 0; i < in->n; i++) {
        const char *s = tk_piece_str(in, i);
        size_t n = in->v[i].len;
        int st = in->v[i].at_start, rc;
        if (in->v[i].token >= 0) {
            rc = tk_pieces_add(out, s, n, in->v[i].token, st);
        } else {
            switch (pre->kind) {
            case TK_PRE_SPLIT: rc = split_piece(&pre->re, pre->behavior, pre->invert, s, n, st, out); break;
            case TK_PRE_BYTELEVEL: rc = bytelevel_piece(pre, s, n, st, out); break;
            case TK_PRE_METASPACE: rc = metaspace_piece(pre, s, n, st, out); break;
            default: rc = ds_fail("internal: unknown pre-tokenizer");
            }
        }
        if (rc) return -1;
    }
    return 0;
}

void tk_pre_free(tk_pre *pre) {
    for (int i = 0; i < pre->nitems; i++) tk_pre_free(&pre->items[i]);
    free(pre->items);
    tk_regex_free(&pre->re);
}
