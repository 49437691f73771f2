/* The BPE model: a piece of text -> ids.
 *
 * Merges live in a hash keyed by the pair of ids, giving (rank, merged id) in O(1). A word is
 * merged with a min-heap of candidate pairs ordered by (rank, position), the same algorithm
 * as HF tokenizers' Word::merge_all, so ties and stale entries resolve identically. */
#include "tokenizer/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t pair_key(int a, int b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

/* The slot of KEY in M: where it is, or the empty slot where it goes (M has room). */
static size_t merge_slot(const tk_merges *m, uint64_t key) {
    size_t j = mix64(key) & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != key) j = (j + 1) & (m->cap - 1);
    return j;
}

static int merges_grow(tk_merges *m) {
    size_t cap = m->cap ? m->cap * 2 : 4096;
    tk_merges nm = {calloc(cap, sizeof(uint64_t)), malloc(cap * sizeof(uint32_t)),
                    malloc(cap * sizeof(uint32_t)), cap, m->count};
    if (!nm.keys || !nm.rank || !nm.merged) {
        free(nm.keys); free(nm.rank); free(nm.merged);
        return ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = merge_slot(&nm, m->keys[i]);
        nm.keys[j] = m->keys[i], nm.rank[j] = m->rank[i], nm.merged[j] = m->merged[i];
    }
    free(m->keys); free(m->rank); free(m->merged);
    *m = nm;
    return 0;
}

/* A pair listed twice keeps the later rank, as HF's HashMap collect does. */
int tk_merges_put(tk_merges *m, int a, int b, int rank, int merged) {
    if ((m->count + 1) * 2 > m->cap && merges_grow(m)) return -1;
    uint64_t key = pair_key(a, b);
    size_t j = merge_slot(m, key);
    if (!m->keys[j]) m->count++;
    m->keys[j] = key;
    m->rank[j] = (uint32_t)rank;
    m->merged[j] = (uint32_t)merged;
    return 0;
}

int tk_merges_get(const tk_merges *m, int a, int b, int *rank, int *merged) {
    if (!m->cap) return 0;
    size_t j = merge_slot(m, pair_key(a, b));
    if (!m->keys[j]) return 0;
    *rank = (int)m->rank[j];
    *merged = (int)m->merged[j];
    return 1;
}

typedef struct {
    int id, prev, next;
    size_t len; /* bytes covered; 0 marks a symbol merged into its left neighbour */
} symbol;

typedef struct {
    int rank, pos, merged;
} cand;

/* Min-heap on (rank, pos). */
static int cand_less(cand a, cand b) { return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos; }

typedef struct {
    cand *v;
    int n, cap;
} heap;

static int heap_push(heap *h, cand c) {
    cand *v = tk_room_for_one(h->v, h->n, &h->cap, sizeof *v, 64);
    if (!v) return -1;
    h->v = v;
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(c, h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        cand best = last;
        if (l < h->n && cand_less(h->v[l], best)) m = l, best = h->v[l];
        if (r < h->n && cand_less(h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

static int sym_push(symbol **v, int *n, int *cap, int id, size_t len) {
    symbol *nv = tk_room_for_one(*v, *n, cap, sizeof *nv, 32);
    if (!nv) return -1;
    *v = nv;
    (*v)[*n] = (symbol){id, *n - 1, -1, len};
    if (*n > 0) (*v)[*n - 1].next = *n;
    (*n)++;
    return 0;
}

/* Looks up one character, with the continuing-subword prefix / end-of-word suffix when set. */
static int char_id(const tk_bpe *m, const char *s, size_t k, int first, int last, tk_buf *tmp) {
    if ((first || !m->cont_prefix) && (!last || !m->end_suffix))
        return tk_strmap_get(&m->vocab, s, k);
    tmp->len = 0;
    if (!first && m->cont_prefix && tk_buf_puts(tmp, m->cont_prefix)) return -2;
    if (tk_buf_put(tmp, s, k)) return -2;
    if (last && m->end_suffix && tk_buf_puts(tmp, m->end_suffix)) return -2;
    return tk_strmap_get(&m->vocab, tmp->s, tmp->len);
}

static int merge_word(const tk_bpe *m, const char *s, size_t n, tk_ids *out) {
    symbol *sym = NULL;
    int ns = 0, cap = 0, rc = -1;
    heap h = {0};
    tk_buf tmp = {0};
    int unk_pending = 0;
    size_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t k = (size_t)tk_utf8_next(s + i, n - i, &cp);
        int id = char_id(m, s + i, k, i == 0, i + k == n, &tmp);
        if (id == -2) goto done;
        if (id >= 0) {
            if (unk_pending) {
                if (sym_push(&sym, &ns, &cap, m->unk_id, unk_len)) goto done;
                unk_pending = 0;
            }
            if (sym_push(&sym, &ns, &cap, id, k)) goto done;
        } else {
            int all_bytes = m->byte_fallback;
            for (size_t j = 0; all_bytes && j < k; j++)
                if (m->byte_ids[(unsigned char)s[i + j]] < 0) all_bytes = 0;
            if (all_bytes) {
                for (size_t j = 0; j < k; j++)
                    if (sym_push(&sym, &ns, &cap, m->byte_ids[(unsigned char)s[i + j]], 1)) goto done;
            } else if (m->unk_id >= 0) {
                if (unk_pending && m->fuse_unk) {
                    unk_len += k;
                } else {
                    if (unk_pending && sym_push(&sym, &ns, &cap, m->unk_id, unk_len)) goto done;
                    unk_pending = 1;
                    unk_len = k;
                }
            }
            /* No unk token and no byte for it: HF drops the character silently. */
        }
        i += k;
    }
    if (unk_pending && sym_push(&sym, &ns, &cap, m->unk_id, unk_len)) goto done;

    for (int i = 0; i + 1 < ns; i++) {
        int rank, merged;
        if (tk_merges_get(&m->merges, sym[i].id, sym[i + 1].id, &rank, &merged) &&
            heap_push(&h, (cand){rank, i, merged}))
            goto done;
    }
    while (h.n) {
        cand top = heap_pop(&h);
        symbol *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        symbol right = sym[cur->next];
        int rank, merged;
        /* Stale entry: the pair at this position changed since it was queued. */
        if (!tk_merges_get(&m->merges, cur->id, right.id, &rank, &merged) || merged != top.merged)
            continue;
        cur->id = top.merged;
        cur->len += right.len;
        sym[cur->next].len = 0;
        cur->next = right.next;
        if (right.next >= 0) sym[right.next].prev = top.pos;
        if (cur->prev >= 0 &&
            tk_merges_get(&m->merges, sym[cur->prev].id, cur->id, &rank, &merged) &&
            heap_push(&h, (cand){rank, cur->prev, merged}))
            goto done;
        if (cur->next >= 0 &&
            tk_merges_get(&m->merges, cur->id, sym[cur->next].id, &rank, &merged) &&
            heap_push(&h, (cand){rank, top.pos, merged}))
            goto done;
    }
    for (int i = 0; i < ns; i++)
        if (sym[i].len && tk_ids_push(out, sym[i].id)) goto done;
    rc = 0;
done:
    free(sym);
    free(h.v);
    tk_buf_free(&tmp);
    return rc;
}

int tk_bpe_encode(const tk_bpe *m, const char *s, size_t n, tk_ids *out) {
    if (n == 0) return 0;
    if (m->ignore_merges) {
        int id = tk_strmap_get(&m->vocab, s, n);
        if (id >= 0) return tk_ids_push(out, id);
    }
    if (!m->split_at_meta) return merge_word(m, s, n, out);
    /* No merge joins a token ending in another character to one starting with '▁' (checked at
     * load), so no token can span a '▁' that follows another character: merging the words
     * between those points one at a time gives the same ids, without a heap as long as the
     * whole text (Llama 2 has no pre-tokenizer). */
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (memcmp(s + i, "\xE2\x96\x81", 3) || (i >= 3 && !memcmp(s + i - 3, "\xE2\x96\x81", 3))) continue;
        if (merge_word(m, s + start, i - start, out)) return -1;
        start = i;
    }
    return merge_word(m, s + start, n - start, out);
}

void tk_bpe_free(tk_bpe *m) {
    tk_strmap_free(&m->vocab);
    free(m->merges.keys);
    free(m->merges.rank);
    free(m->merges.merged);
    free(m->cont_prefix);
    free(m->end_suffix);
    memset(m, 0, sizeof *m);
}
