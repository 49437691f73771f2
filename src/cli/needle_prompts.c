/* Prompts of `diffscope needle` (see cli/needle.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/needle.h"
#include "diffscope/error.h"
#include "base/fileio.h"
#include "diffscope/span.h"

/* The special tokens the tokenizer adds in front of a text (BOS), found by encoding a word
 * with and without them. */
static int special_prefix(const ds_tokenizer *t, int add_special, int **ids, int *n) {
    *ids = NULL, *n = 0;
    if (!add_special) return 0;
    int *with, *without, nw, nwo;
    if (ds_tokenizer_encode(t, "a", 1, 1, &with, &nw)) return -1;
    if (ds_tokenizer_encode(t, "a", 1, 0, &without, &nwo)) {
        free(with);
        return -1;
    }
    int p = 0;
    while (p + nwo <= nw && memcmp(with + p, without, (size_t)nwo * sizeof *with)) p++;
    if (p + nwo > nw) p = 0; /* the post-processor rewrote the text itself: no prefix */
    free(without);
    *ids = with, *n = p;
    return 0;
}

int needle_text_load(needle_text *nt, const ds_tokenizer *t, const char *haystack_path, const char *needle,
                     const char *question, int add_special) {
    memset(nt, 0, sizeof *nt);
    char *hay = ds_read_file(haystack_path, DS_MAX_TEXT_BYTES, NULL);
    if (!hay) return -1;
    int rc = ds_tokenizer_encode(t, hay, strlen(hay), 0, &nt->hay, &nt->nhay);
    free(hay);
    if (rc) {
        ds_err_prefix(haystack_path);
        return -1;
    }
    if (ds_encode_continuation(t, needle, &nt->needle, &nt->nneedle)) return ds_err_prefix("--needle"), -1;
    if (ds_encode_continuation(t, question, &nt->question, &nt->nquestion)) return ds_err_prefix("--question"), -1;
    return special_prefix(t, add_special, &nt->prefix, &nt->nprefix);
}

/* Token ids separated by commas and/or white space (a file may hold one per line); SOURCE
 * names the option or file in the message. */
static int parse_id_list(const char *source, const char *list, int **ids, int *n) {
    if (cli_parse_ids(list, ids, n)) return ds_fail("%s: not a list of token ids separated by commas or spaces", source);
    return 0;
}

int needle_ids_load(needle_text *nt, const char *haystack_path, const char *needle_ids, const char *question_ids,
                    int prefix_id) {
    memset(nt, 0, sizeof *nt);
    char *hay = ds_read_file(haystack_path, DS_MAX_TEXT_BYTES, NULL);
    if (!hay) return -1;
    int rc = parse_id_list(haystack_path, hay, &nt->hay, &nt->nhay);
    free(hay);
    if (rc || parse_id_list("--needle-ids", needle_ids, &nt->needle, &nt->nneedle) ||
        parse_id_list("--question-ids", question_ids, &nt->question, &nt->nquestion))
        return -1;
    if (prefix_id < 0) return 0;
    if (!(nt->prefix = malloc(sizeof *nt->prefix))) return ds_failc(DS_ERR_NOMEM, "out of memory");
    nt->prefix[0] = prefix_id, nt->nprefix = 1;
    return 0;
}

void needle_text_free(needle_text *nt) {
    free(nt->prefix);
    free(nt->hay);
    free(nt->needle);
    free(nt->question);
    memset(nt, 0, sizeof *nt);
}

static int append(int *dst, int at, const int *src, int n) {
    if (n > 0) memcpy(dst + at, src, (size_t)n * sizeof *dst); /* SRC is NULL for an empty prefix */
    return at + n;
}

int needle_text_prompt(const needle_text *nt, int N, int depth, needle_prompt *p) {
    int c = (int)lround(depth / 100.0 * N);
    p->n = nt->nprefix + N + nt->nneedle + nt->nquestion;
    p->ids = malloc((size_t)p->n * sizeof *p->ids);
    if (!p->ids) return ds_failc(DS_ERR_NOMEM, "out of memory");
    int at = append(p->ids, 0, nt->prefix, nt->nprefix);
    at = append(p->ids, at, nt->hay, c);
    p->span_begin = at;
    at = append(p->ids, at, nt->needle, nt->nneedle);
    p->span_end = at;
    at = append(p->ids, at, nt->hay + c, N - c);
    append(p->ids, at, nt->question, nt->nquestion);
    p->answer_id = -1;
    return 0;
}

/* ---- the demo models' kv task ---- */

static int one_codepoint(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80; /* continuation bytes are 10xxxxxx */
    return n == 1;
}

int needle_kv_load(needle_kv *kv, const ds_tokenizer *t, const char *tokenizer_path, int add_special) {
    memset(kv, 0, sizeof *kv);
    kv->qmark = ds_tokenizer_token_id(t, "\xe2\x96\x81?");
    if (kv->qmark < 0)
        return ds_fail("%s: --task kv needs the demo models' tokenizer (tools/train_pair.py): no '\xe2\x96\x81?' token",
                       tokenizer_path);
    int V = ds_tokenizer_vocab_size(t);
    kv->keys = malloc((size_t)V * sizeof(int));
    kv->values = malloc((size_t)V * sizeof(int));
    kv->fillers = malloc((size_t)V * sizeof(int));
    if (!kv->keys || !kv->values || !kv->fillers) return ds_failc(DS_ERR_NOMEM, "out of memory");
    /* The task words follow "▁?" up to the first single-character token. */
    for (int id = kv->qmark + 1; id < V; id++) {
        const char *s = ds_tokenizer_token_str(t, id);
        if (!s || one_codepoint(s)) break;
        if (!strncmp(s, "\xe2\x96\x81k_", 5)) kv->keys[kv->nkeys++] = id;
        else if (!strncmp(s, "\xe2\x96\x81v_", 5)) kv->values[kv->nvalues++] = id;
        else kv->fillers[kv->nfillers++] = id;
    }
    if (!kv->nkeys || !kv->nvalues || !kv->nfillers)
        return ds_fail("%s: --task kv needs the demo models' tokenizer (tools/train_pair.py): no keys, values or "
                       "filler words after '\xe2\x96\x81?'",
                       tokenizer_path);
    return special_prefix(t, add_special, &kv->prefix, &kv->nprefix);
}

void needle_kv_free(needle_kv *kv) {
    free(kv->prefix);
    free(kv->keys);
    free(kv->values);
    free(kv->fillers);
    memset(kv, 0, sizeof *kv);
}

/* splitmix64 */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int below(uint64_t *rng, int n) { return (int)((next_u64(rng) >> 11) % (uint64_t)n); }

/* The first PICK entries of a random permutation of FROM[0..n) into OUT. */
static int pick_distinct(const int *from, int n, int pick, uint64_t *rng, int *out) {
    int *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) return ds_failc(DS_ERR_NOMEM, "out of memory");
    memcpy(tmp, from, (size_t)n * sizeof *tmp);
    for (int i = 0; i < pick; i++) {
        int j = i + below(rng, n - i), x = tmp[i];
        tmp[i] = tmp[j], tmp[j] = x;
        out[i] = tmp[i];
    }
    free(tmp);
    return 0;
}

int needle_kv_prompt(const needle_kv *kv, int N, int pairs, int depth, uint64_t *rng, needle_prompt *p) {
    if (pairs > kv->nkeys || pairs > kv->nvalues)
        return ds_fail("--pairs %d: the tokenizer has %d keys and %d values", pairs, kv->nkeys, kv->nvalues);
    int *keys = malloc((size_t)pairs * sizeof *keys), *vals = malloc((size_t)pairs * sizeof *vals);
    int *ctx = malloc((size_t)N * sizeof *ctx);
    p->n = kv->nprefix + N + 2;
    p->ids = malloc((size_t)p->n * sizeof *p->ids);
    int rc = !keys || !vals || !ctx || !p->ids ? ds_failc(DS_ERR_NOMEM, "out of memory") : 0;
    rc = rc || pick_distinct(kv->keys, kv->nkeys, pairs, rng, keys) || pick_distinct(kv->values, kv->nvalues, pairs, rng, vals);
    if (!rc) {
        for (int i = 0; i < N; i++) ctx[i] = -1;
        int pt = (int)lround(depth / 100.0 * (N - 2));
        ctx[pt] = keys[0], ctx[pt + 1] = vals[0];
        for (int j = 1; !rc && j < pairs; j++) {
            /* A random free slot of two tokens: scan from a random start. */
            int start = below(rng, N - 1), at = -1;
            for (int i = 0; i < N - 1 && at < 0; i++) {
                int q = (start + i) % (N - 1);
                if (ctx[q] < 0 && ctx[q + 1] < 0) at = q;
            }
            if (at < 0) rc = ds_fail("--context-tokens %d: no room for %d pairs", N, pairs);
            else ctx[at] = keys[j], ctx[at + 1] = vals[j];
        }
        for (int i = 0; i < N; i++)
            if (ctx[i] < 0) ctx[i] = kv->fillers[below(rng, kv->nfillers)];
        int at = append(p->ids, 0, kv->prefix, kv->nprefix);
        p->span_begin = at + pt, p->span_end = at + pt + 2;
        at = append(p->ids, at, ctx, N);
        p->ids[at] = kv->qmark, p->ids[at + 1] = keys[0];
        p->answer_id = vals[0];
    }
    free(keys);
    free(vals);
    free(ctx);
    if (rc) free(p->ids), p->ids = NULL;
    return rc ? -1 : 0;
}

int needle_starts_answer(const ds_tokenizer *t, int id, const char *answer) {
    char *piece = ds_tokenizer_piece(t, id);
    if (!piece) return 0;
    const char *a = answer + strspn(answer, " "), *s = piece + strspn(piece, " ");
    int ok = *s && !strncmp(a, s, strlen(s));
    free(piece);
    return ok;
}
