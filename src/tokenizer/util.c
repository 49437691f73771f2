/* Small containers and Unicode helpers shared by the tokenizer files. */
#include "tokenizer/internal.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "diffscope/error.h"

int tk_buf_put(tk_buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) return ds_failc(DS_ERR_NOMEM, "out of memory");
        b->s = s;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
    return 0;
}

void tk_buf_free(tk_buf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

/* FNV-1a: short keys, good enough spread for open addressing. */
static uint64_t hash_bytes(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

/* The slot of key K (KLEN bytes) in M: where it is, or the empty slot where it goes. */
static size_t strmap_slot(const tk_strmap *m, const char *k, size_t klen) {
    size_t j = hash_bytes(k, klen) & (m->cap - 1);
    while (m->keys[j] && !(m->klen[j] == klen && !memcmp(m->keys[j], k, klen))) j = (j + 1) & (m->cap - 1);
    return j;
}

static int strmap_grow(tk_strmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    tk_strmap nm = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(size_t)),
                    calloc(cap, sizeof(int)), cap, m->count};
    if (!nm.keys || !nm.klen || !nm.vals) {
        free(nm.keys); free(nm.klen); free(nm.vals);
        return ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = strmap_slot(&nm, m->keys[i], m->klen[i]);
        nm.keys[j] = m->keys[i], nm.klen[j] = m->klen[i], nm.vals[j] = m->vals[i];
    }
    free(m->keys); free(m->klen); free(m->vals);
    *m = nm;
    return 0;
}

int tk_strmap_put(tk_strmap *m, const char *k, size_t klen, int v) {
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    size_t j = strmap_slot(m, k, klen);
    if (!m->keys[j]) {
        char *copy = malloc(klen + 1);
        if (!copy) return ds_failc(DS_ERR_NOMEM, "out of memory");
        memcpy(copy, k, klen);
        copy[klen] = 0;
        m->keys[j] = copy;
        m->klen[j] = klen;
        m->count++;
    }
    m->vals[j] = v;
    return 0;
}

int tk_strmap_get(const tk_strmap *m, const char *k, size_t klen) {
    if (!m->cap) return -1;
    size_t j = strmap_slot(m, k, klen);
    return m->keys[j] ? m->vals[j] : -1;
}

void tk_strmap_free(tk_strmap *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys); free(m->klen); free(m->vals);
    memset(m, 0, sizeof *m);
}

int tk_utf8_next(const char *s, size_t n, int32_t *cp) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)(n < 4 ? n : 4), &c);
    if (k <= 0) {
        *cp = -1;
        return 1;
    }
    *cp = c;
    return (int)k;
}

int tk_utf8_encode(int32_t cp, char out[4]) {
    return (int)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

long tk_utf8_invalid_at(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        int k = tk_utf8_next(s + i, n - i, &cp);
        if (cp < 0) return (long)i;
        i += k;
    }
    return -1;
}

int tk_is_space(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

int tk_is_word(int32_t c) {
    if (c < 0) return 0;
    if (c == 0x200C || c == 0x200D) return 1; /* Join_Control */
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

int tk_regex_compile(tk_regex *r, const char *pattern, int literal, const char *what) {
    int err;
    PCRE2_SIZE erroff;
    /* MATCH_INVALID_UTF: a prompt with invalid UTF-8 is still split (its bad bytes never
     * match), so byte-level tokenizers can encode it as bytes. */
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    r->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &erroff, NULL);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ds_fail("%s: regex '%s' does not compile at offset %zu: %s", what, pattern,
                       (size_t)erroff, (char *)msg);
    }
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter on failure */
    return 0;
}

void tk_regex_free(tk_regex *r) {
    if (r->code) pcre2_code_free(r->code);
    r->code = NULL;
}

int tk_regex_next(const tk_regex *r, pcre2_match_data *md, const char *s, size_t n, size_t start,
                  size_t *ms, size_t *me) {
    while (start <= n) {
        int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, start, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ds_fail("regex match failed: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* An empty match splits nothing: look again one character further on. */
        if (ov[0] >= n) return 0;
        int32_t cp;
        start = ov[0] + tk_utf8_next(s + ov[0], n - ov[0], &cp);
    }
    return 0;
}

void *tk_room_for_one(void *v, int n, int *cap, size_t size, int first) {
    if (n < *cap) return v;
    int c = !*cap ? first : *cap <= INT_MAX / 2 ? *cap * 2 : 0;
    void *nv = c && (size_t)c <= SIZE_MAX / size ? realloc(v, (size_t)c * size) : NULL;
    if (!nv) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    *cap = c;
    return nv;
}

int tk_pieces_add(tk_pieces *p, const char *s, size_t len, int token, int at_start) {
    tk_piece *v = tk_room_for_one(p->v, p->n, &p->cap, sizeof *v, 16);
    if (!v) return -1;
    p->v = v;
    size_t off = p->arena.len;
    if (tk_buf_put(&p->arena, s, len)) return -1;
    p->v[p->n++] = (tk_piece){off, len, token, at_start};
    return 0;
}

void tk_pieces_free(tk_pieces *p) {
    tk_buf_free(&p->arena);
    free(p->v);
    memset(p, 0, sizeof *p);
}

int tk_ids_push(tk_ids *a, int id) {
    int *v = tk_room_for_one(a->v, a->n, &a->cap, sizeof *v, 64);
    if (!v) return -1;
    a->v = v;
    a->v[a->n++] = id;
    return 0;
}
