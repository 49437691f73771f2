/* Loading tokenizer.json (cJSON) into a ds_tokenizer, validating as it goes. Every error
 * names the file and the field. */
#include "tokenizer/internal.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "diffscope/error.h"
#include "base/fileio.h"
#include "diffscope/config.h"

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct {
    const char *file;
} ctx;

static int get_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dup_or_fail(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) ds_failc(DS_ERR_NOMEM, "out of memory");
    return d;
}

/* A {"String": s} or {"Regex": r} pattern. */
static int parse_pattern(const ctx *c, const cJSON *o, const char *what, tk_regex *re, char **literal) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *s = get_str(p, "String"), *r = get_str(p, "Regex");
    if (!s && !r) return ds_fail("%s: %s has no pattern {\"String\": ...} or {\"Regex\": ...}", c->file, what);
    if (literal) {
        *literal = s ? dup_or_fail(s) : NULL;
        if (s && !*literal) return -1;
    }
    char where[600];
    snprintf(where, sizeof where, "%s: %s", c->file, what);
    return tk_regex_compile(re, s ? s : r, s != NULL, where);
}

/* The items of a "Sequence" normalizer, pre-tokenizer or decoder ARR into OUT->items and
 * OUT->nitems with PARSE, then returns from the calling parser. Each item is counted before
 * it is parsed, so that freeing frees a half-parsed one. A macro because the three item types
 * differ and a void * callback would call PARSE through an incompatible pointer type. */
#define PARSE_SEQUENCE(c, arr, out, parse)                                                   \
    do {                                                                                     \
        const cJSON *arr_ = (arr);                                                           \
        int n_ = cJSON_GetArraySize(arr_);                                                   \
        if (!((out)->items = calloc(n_ ? n_ : 1, sizeof *(out)->items)))                     \
            return ds_failc(DS_ERR_NOMEM, "out of memory");                                  \
        for (int i_ = 0; i_ < n_; i_++) {                                                    \
            (out)->nitems++;                                                                 \
            if (parse(c, cJSON_GetArrayItem(arr_, i_), &(out)->items[i_])) return -1;        \
        }                                                                                    \
        return 0;                                                                            \
    } while (0)

static int parse_norm(const ctx *c, const cJSON *o, tk_norm *nm) {
    memset(nm, 0, sizeof *nm);
    const char *type = get_str(o, "type");
    if (!type) return ds_fail("%s: normalizer without a \"type\"", c->file);
    if (!strcmp(type, "Sequence")) {
        nm->kind = TK_NORM_SEQUENCE;
        PARSE_SEQUENCE(c, cJSON_GetObjectItemCaseSensitive(o, "normalizers"), nm, parse_norm);
    }
    if (!strcmp(type, "NFC")) { nm->kind = TK_NORM_NFC; return 0; }
    if (!strcmp(type, "NFD")) { nm->kind = TK_NORM_NFD; return 0; }
    if (!strcmp(type, "NFKC")) { nm->kind = TK_NORM_NFKC; return 0; }
    if (!strcmp(type, "NFKD")) { nm->kind = TK_NORM_NFKD; return 0; }
    if (!strcmp(type, "Lowercase")) { nm->kind = TK_NORM_LOWERCASE; return 0; }
    if (!strcmp(type, "Strip")) {
        nm->kind = TK_NORM_STRIP;
        nm->left = get_bool(o, "strip_left", 1);
        nm->right = get_bool(o, "strip_right", 1);
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        nm->kind = TK_NORM_PREPEND;
        const char *p = get_str(o, "prepend");
        if (!p) return ds_fail("%s: Prepend normalizer without \"prepend\"", c->file);
        return (nm->str = dup_or_fail(p)) ? 0 : -1;
    }
    if (!strcmp(type, "Replace")) {
        nm->kind = TK_NORM_REPLACE;
        const char *content = get_str(o, "content");
        if (!content) return ds_fail("%s: Replace normalizer without \"content\"", c->file);
        if (!(nm->str = dup_or_fail(content))) return -1;
        return parse_pattern(c, o, "Replace normalizer", &nm->re, NULL);
    }
    return ds_fail("%s: unsupported normalizer '%s'", c->file, type);
}

static int parse_pre(const ctx *c, const cJSON *o, tk_pre *pre) {
    memset(pre, 0, sizeof *pre);
    const char *type = get_str(o, "type");
    if (!type) return ds_fail("%s: pre_tokenizer without a \"type\"", c->file);
    char where[600];
    snprintf(where, sizeof where, "%s: %s pre-tokenizer", c->file, type);
    if (!strcmp(type, "Sequence")) {
        pre->kind = TK_PRE_SEQUENCE;
        PARSE_SEQUENCE(c, cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), pre, parse_pre);
    }
    if (!strcmp(type, "Split")) {
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        pre->kind = TK_PRE_SPLIT;
        const char *b = get_str(o, "behavior");
        int k = -1;
        for (int i = 0; b && i < 5; i++)
            if (!strcmp(b, names[i])) k = i;
        if (k < 0) return ds_fail("%s: Split pre-tokenizer has unknown behavior '%s'", c->file, b ? b : "(none)");
        pre->behavior = (tk_split_behavior)k;
        pre->invert = get_bool(o, "invert", 0);
        return parse_pattern(c, o, "Split pre-tokenizer", &pre->re, NULL);
    }
    if (!strcmp(type, "ByteLevel")) {
        pre->kind = TK_PRE_BYTELEVEL;
        pre->add_prefix_space = get_bool(o, "add_prefix_space", 1);
        pre->use_regex = get_bool(o, "use_regex", 1);
        return pre->use_regex ? tk_regex_compile(&pre->re, GPT2_REGEX, 0, where) : 0;
    }
    if (!strcmp(type, "Metaspace")) {
        pre->kind = TK_PRE_METASPACE;
        const char *r = get_str(o, "replacement");
        snprintf(pre->replacement, sizeof pre->replacement, "%s", r ? r : "\xE2\x96\x81");
        const char *scheme = get_str(o, "prepend_scheme");
        pre->prepend = !scheme || !strcmp(scheme, "always") ? TK_PREPEND_ALWAYS
                       : !strcmp(scheme, "first")          ? TK_PREPEND_FIRST
                                                           : TK_PREPEND_NEVER;
        if (!get_bool(o, "add_prefix_space", 1)) pre->prepend = TK_PREPEND_NEVER;
        pre->split = get_bool(o, "split", 1);
        return tk_regex_compile(&pre->re, pre->replacement, 1, where);
    }
    /* Three simple splitters, expressed as the Split they are equivalent to. */
    if (!strcmp(type, "Whitespace")) {
        pre->kind = TK_PRE_SPLIT;
        pre->behavior = TK_SPLIT_REMOVED;
        pre->invert = 1;
        return tk_regex_compile(&pre->re, "\\w+|[^\\w\\s]+", 0, where);
    }
    if (!strcmp(type, "WhitespaceSplit")) {
        pre->kind = TK_PRE_SPLIT;
        pre->behavior = TK_SPLIT_REMOVED;
        return tk_regex_compile(&pre->re, "\\s+", 0, where);
    }
    if (!strcmp(type, "Digits")) {
        pre->kind = TK_PRE_SPLIT;
        pre->behavior = TK_SPLIT_ISOLATED;
        return tk_regex_compile(&pre->re, get_bool(o, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+", 0, where);
    }
    return ds_fail("%s: unsupported pre-tokenizer '%s'", c->file, type);
}

static int parse_dec(const ctx *c, const cJSON *o, tk_dec *d) {
    memset(d, 0, sizeof *d);
    const char *type = get_str(o, "type");
    if (!type) return ds_fail("%s: decoder without a \"type\"", c->file);
    if (!strcmp(type, "Sequence")) {
        d->kind = TK_DEC_SEQUENCE;
        PARSE_SEQUENCE(c, cJSON_GetObjectItemCaseSensitive(o, "decoders"), d, parse_dec);
    }
    if (!strcmp(type, "ByteLevel")) { d->kind = TK_DEC_BYTELEVEL; return 0; }
    if (!strcmp(type, "ByteFallback")) { d->kind = TK_DEC_BYTEFALLBACK; return 0; }
    if (!strcmp(type, "Fuse")) { d->kind = TK_DEC_FUSE; return 0; }
    if (!strcmp(type, "Strip")) {
        d->kind = TK_DEC_STRIP;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "start"), *e = cJSON_GetObjectItemCaseSensitive(o, "stop");
        d->start = cJSON_IsNumber(s) ? s->valueint : 0;
        d->stop = cJSON_IsNumber(e) ? e->valueint : 0;
        return (d->content = dup_or_fail(get_str(o, "content") ? get_str(o, "content") : " ")) ? 0 : -1;
    }
    if (!strcmp(type, "Replace")) {
        d->kind = TK_DEC_REPLACE;
        if (!(d->content = dup_or_fail(get_str(o, "content")))) return -1;
        if (parse_pattern(c, o, "Replace decoder", &d->re, &d->pattern)) return -1;
        d->is_regex = d->pattern == NULL;
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        d->kind = TK_DEC_METASPACE;
        const char *r = get_str(o, "replacement");
        snprintf(d->replacement, sizeof d->replacement, "%s", r ? r : "\xE2\x96\x81");
        const char *scheme = get_str(o, "prepend_scheme");
        d->prepend_never = (scheme && !strcmp(scheme, "never")) || !get_bool(o, "add_prefix_space", 1);
        return 0;
    }
    return ds_fail("%s: unsupported decoder '%s'", c->file, type);
}

/* A token id: an integer in [0, DS_MAX_VOCAB), so that the id tables (one entry per id up to
 * the largest) stay small and max_id + 1 cannot overflow; -1 when V is anything else. */
static int token_id(const cJSON *v) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < DS_MAX_VOCAB) ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    return (int)v->valuedouble;
}

static int push_id(int **v, int *n, int id) {
    int *nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) return ds_failc(DS_ERR_NOMEM, "out of memory");
    nv[(*n)++] = id;
    *v = nv;
    return 0;
}

/* The ids a TemplateProcessing "single" template puts before and after $A. */
static int parse_post(const ctx *c, const cJSON *o, tk_post *post) {
    const char *type = get_str(o, "type");
    if (!type) return ds_fail("%s: post_processor without a \"type\"", c->file);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "processors"), *it;
        cJSON_ArrayForEach(it, arr) if (parse_post(c, it, post)) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) return 0; /* only trims offsets */
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "cls"), *sep = cJSON_GetObjectItemCaseSensitive(o, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (token_id(ci) < 0 || token_id(si) < 0) return ds_fail("%s: %s without valid cls/sep ids", c->file, type);
        return push_id(&post->before, &post->nbefore, token_id(ci)) ||
               push_id(&post->after, &post->nafter, token_id(si)) ? -1 : 0;
    }
    if (strcmp(type, "TemplateProcessing")) return ds_fail("%s: unsupported post_processor '%s'", c->file, type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens"), *it;
    if (!cJSON_IsArray(single)) return ds_fail("%s: TemplateProcessing without a \"single\" template", c->file);
    int seen_seq = 0;
    cJSON_ArrayForEach(it, single) {
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        const char *name = get_str(cJSON_GetObjectItemCaseSensitive(it, "SpecialToken"), "id");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name ? name : ""), "ids"), *id;
        if (!name || !cJSON_IsArray(ids))
            return ds_fail("%s: TemplateProcessing names special token '%s' without ids", c->file, name ? name : "?");
        cJSON_ArrayForEach(id, ids) {
            if (token_id(id) < 0)
                return ds_fail("%s: TemplateProcessing special token '%s' has a bad id", c->file, name);
            if (seen_seq ? push_id(&post->after, &post->nafter, token_id(id))
                         : push_id(&post->before, &post->nbefore, token_id(id)))
                return -1;
        }
    }
    return 0;
}

static int has_bytelevel_pre(const tk_pre *p) {
    if (!p) return 0;
    if (p->kind == TK_PRE_BYTELEVEL) return 1;
    for (int i = 0; i < p->nitems; i++)
        if (has_bytelevel_pre(&p->items[i])) return 1;
    return 0;
}

static int vocab_id(const cJSON *v, const char *file, const char *tok) {
    int id = token_id(v);
    if (id < 0)
        return ds_fail("%s: model.vocab entry '%s' has no valid id (an integer from 0 to %d)", file, tok,
                       DS_MAX_VOCAB - 1);
    return id;
}

/* Splits merge I ("a b" or ["a", "b"]) into its two tokens. */
static int merge_parts(const ctx *c, const cJSON *m, int i, tk_buf *a, tk_buf *b) {
    a->len = b->len = 0;
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp) return ds_fail("%s: model.merges[%d] '%s' is not two tokens separated by a space", c->file, i, s);
        return tk_buf_put(a, s, sp - s) || tk_buf_puts(b, sp + 1) ? -1 : 0;
    }
    const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(x) || !cJSON_IsString(y))
        return ds_fail("%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", c->file, i);
    return tk_buf_puts(a, x->valuestring) || tk_buf_puts(b, y->valuestring) ? -1 : 0;
}

static int load_model(const ctx *c, ds_tokenizer *t, const cJSON *model, int *max_id) {
    const char *type = get_str(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!type && merges) type = "BPE"; /* old files leave the type out */
    if (!type) return ds_fail("%s: model has no \"type\"", c->file);
    if (strcmp(type, "BPE"))
        return ds_fail("%s: unsupported model type '%s' (diffscope supports BPE tokenizers only)", c->file, type);
    if (!cJSON_IsObject(vocab) || !vocab->child) return ds_fail("%s: model.vocab is missing or empty", c->file);
    tk_bpe *m = &t->bpe;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int id = vocab_id(it, c->file, it->string);
        if (id < 0 || tk_strmap_put(&m->vocab, it->string, strlen(it->string), id)) return -1;
        if (id > *max_id) *max_id = id;
    }
    const char *unk = get_str(model, "unk_token");
    m->unk_id = unk ? tk_strmap_get(&m->vocab, unk, strlen(unk)) : -1;
    m->fuse_unk = get_bool(model, "fuse_unk", 0);
    m->byte_fallback = get_bool(model, "byte_fallback", 0);
    m->ignore_merges = get_bool(model, "ignore_merges", 0);
    const char *pre = get_str(model, "continuing_subword_prefix"), *suf = get_str(model, "end_of_word_suffix");
    if (pre && *pre && !(m->cont_prefix = dup_or_fail(pre))) return -1;
    if (suf && *suf && !(m->end_suffix = dup_or_fail(suf))) return -1;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tk_strmap_get(&m->vocab, name, 6);
    }
    tk_buf a = {0}, b = {0}, ab = {0};
    int i = 0, rc = 0;
    size_t plen = m->cont_prefix ? strlen(m->cont_prefix) : 0;
    /* Safe to cut words before each '▁' unless a merge joins "x" + "▁..." (x not ending in '▁'). */
    const char *meta = "\xE2\x96\x81";
    m->split_at_meta = !m->cont_prefix && !m->end_suffix && tk_strmap_get(&m->vocab, meta, 3) >= 0;
    cJSON_ArrayForEach(it, merges) {
        if ((rc = merge_parts(c, it, i, &a, &b))) break;
        if (b.len >= 3 && !memcmp(b.s, meta, 3) && (a.len < 3 || memcmp(a.s + a.len - 3, meta, 3)))
            m->split_at_meta = 0;
        ab.len = 0;
        /* The merged token drops the second part's continuing-subword prefix, as HF does. */
        size_t skip = plen && b.len >= plen && !memcmp(b.s, m->cont_prefix, plen) ? plen : 0;
        if ((rc = tk_buf_put(&ab, a.s, a.len) || tk_buf_put(&ab, b.s + skip, b.len - skip))) break;
        int ia = tk_strmap_get(&m->vocab, a.s, a.len), ib = tk_strmap_get(&m->vocab, b.s, b.len);
        int iab = tk_strmap_get(&m->vocab, ab.s, ab.len);
        const char *missing = ia < 0 ? a.s : ib < 0 ? b.s : iab < 0 ? ab.s : NULL;
        if (missing) {
            rc = ds_fail("%s: model.merges[%d] names token '%s', which is not in model.vocab", c->file, i, missing);
            break;
        }
        if ((rc = tk_merges_put(&m->merges, ia, ib, i, iab))) break;
        i++;
    }
    tk_buf_free(&a);
    tk_buf_free(&b);
    tk_buf_free(&ab);
    return rc;
}

static int load_added(const ctx *c, ds_tokenizer *t, const cJSON *arr, int *max_id) {
    int n = cJSON_GetArraySize(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return ds_failc(DS_ERR_NOMEM, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const char *content = get_str(it, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!content || !cJSON_IsNumber(id))
            return ds_fail("%s: added_tokens[%d] needs a \"content\" string and an \"id\"", c->file, t->nadded);
        if (token_id(id) < 0)
            return ds_fail("%s: added_tokens[%d] has id %.17g, not an integer from 0 to %d", c->file, t->nadded,
                           id->valuedouble, DS_MAX_VOCAB - 1);
        tk_added *a = &t->added[t->nadded++];
        if (!(a->content = dup_or_fail(content))) return -1;
        a->len = strlen(content);
        a->id = token_id(id);
        a->special = get_bool(it, "special", 0);
        a->single_word = get_bool(it, "single_word", 0);
        a->lstrip = get_bool(it, "lstrip", 0);
        a->rstrip = get_bool(it, "rstrip", 0);
        a->normalized = get_bool(it, "normalized", !a->special);
        if (a->id > *max_id) *max_id = a->id;
    }
    return 0;
}

/* Normalized forms of the added tokens, the id tables and the first-byte buckets. */
static int index_added(ds_tokenizer *t) {
    for (int i = 0; i < t->nadded; i++) {
        tk_added *a = &t->added[i];
        if (a->normalized && t->norm) {
            tk_buf b = {0};
            if (tk_buf_put(&b, "", 0) || tk_normalize(t->norm, a->content, a->len, &b)) return -1;
            a->norm = b.s;
            a->norm_len = b.len;
        } else {
            if (!(a->norm = dup_or_fail(a->content))) return -1;
            a->norm_len = a->len;
        }
        t->added_of_id[a->id] = i;
        if (a->special && tk_strmap_put(&t->special, a->content, a->len, a->id)) return -1;
    }
    for (int set = 0; set < 2; set++) {
        for (int i = 0; i < t->nadded; i++) {
            const tk_added *a = &t->added[i];
            size_t len = set ? a->norm_len : a->len;
            if (a->normalized != set || len == 0) continue; /* HF ignores empty tokens */
            unsigned char c0 = (unsigned char)(set ? a->norm : a->content)[0];
            int *v = realloc(t->bucket[set][c0], (t->nbucket[set][c0] + 1) * sizeof *v);
            if (!v) return ds_failc(DS_ERR_NOMEM, "out of memory");
            t->bucket[set][c0] = v;
            /* Keep each bucket longest first, so the first hit is the longest match. */
            int k = t->nbucket[set][c0]++;
            while (k > 0) {
                const tk_added *p = &t->added[v[k - 1]];
                if ((set ? p->norm_len : p->len) >= len) break;
                v[k] = v[k - 1];
                k--;
            }
            v[k] = i;
        }
    }
    return 0;
}

static int build(ds_tokenizer *t, const cJSON *root) {
    ctx c = {t->path};
    if (!cJSON_IsObject(root)) return ds_fail("%s: not a tokenizer.json (the top level is not an object)", t->path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return ds_fail("%s: no \"model\" object", t->path);
    int max_id = -1;
    if (load_model(&c, t, model, &max_id)) return -1;
    if (load_added(&c, t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), &max_id)) return -1;
    t->nids = max_id + 1;
    t->id_to_str = calloc(t->nids, sizeof *t->id_to_str);
    t->added_of_id = malloc(t->nids * sizeof *t->added_of_id);
    if (!t->id_to_str || !t->added_of_id) return ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->nids; i++) t->added_of_id[i] = -1;
    for (size_t i = 0; i < t->bpe.vocab.cap; i++)
        if (t->bpe.vocab.keys[i]) t->id_to_str[t->bpe.vocab.vals[i]] = t->bpe.vocab.keys[i];

    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (cJSON_IsObject(o)) {
        if (!(t->norm = calloc(1, sizeof *t->norm))) return ds_failc(DS_ERR_NOMEM, "out of memory");
        if (parse_norm(&c, o, t->norm)) return -1;
    }
    if (index_added(t)) return -1;
    o = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (cJSON_IsObject(o)) {
        if (!(t->pre = calloc(1, sizeof *t->pre))) return ds_failc(DS_ERR_NOMEM, "out of memory");
        if (parse_pre(&c, o, t->pre)) return -1;
    }
    o = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (cJSON_IsObject(o) && parse_post(&c, o, &t->post)) return -1;
    for (int i = 0; i < t->post.nbefore + t->post.nafter; i++) {
        int id = i < t->post.nbefore ? t->post.before[i] : t->post.after[i - t->post.nbefore];
        if (id >= t->nids) return ds_fail("%s: post_processor adds id %d, beyond the vocabulary", t->path, id);
    }
    o = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (cJSON_IsObject(o)) {
        if (!(t->dec = calloc(1, sizeof *t->dec))) return ds_failc(DS_ERR_NOMEM, "out of memory");
        if (parse_dec(&c, o, t->dec)) return -1;
    }
    int dec_bl = t->dec && (t->dec->kind == TK_DEC_BYTELEVEL ||
                            (t->dec->kind == TK_DEC_SEQUENCE && t->dec->nitems && t->dec->items[0].kind == TK_DEC_BYTELEVEL));
    t->byte_level = has_bytelevel_pre(t->pre) || dec_bl;
    return 0;
}

ds_tokenizer *ds_tokenizer_load(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        ds_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    ds_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t plen = strlen(path) + 32;
    t->path = malloc(plen);
    if (!t->path) {
        free(t);
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(t->path, plen, "%s/tokenizer.json", path);
        if (stat(t->path, &st) != 0) {
            ds_fail("%s: no tokenizer.json in this folder", path);
            ds_tokenizer_free(t);
            return NULL;
        }
    } else {
        snprintf(t->path, plen, "%s", path);
    }
    size_t len = 0;
    char *text = ds_read_file(t->path, DS_MAX_TOKENIZER_BYTES, &len);
    if (text && !len) {
        free(text);
        text = NULL;
        ds_fail("%s: empty file, not a tokenizer.json", t->path);
    }
    if (!text) {
        ds_tokenizer_free(t);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        ds_fail("%s: not valid JSON (parse error near byte %ld)", t->path, off);
        free(text);
        ds_tokenizer_free(t);
        return NULL;
    }
    int rc = build(t, root);
    cJSON_Delete(root);
    free(text);
    if (rc) {
        ds_tokenizer_free(t);
        return NULL;
    }
    return t;
}

void ds_tokenizer_free(ds_tokenizer *t) {
    if (!t) return;
    tk_bpe_free(&t->bpe);
    free(t->id_to_str); /* the strings belong to the vocabulary map */
    for (int i = 0; i < t->nadded; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    free(t->added_of_id);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 256; c++) free(t->bucket[s][c]);
    tk_strmap_free(&t->special);
    if (t->norm) tk_norm_free(t->norm);
    free(t->norm);
    if (t->pre) tk_pre_free(t->pre);
    free(t->pre);
    free(t->post.before);
    free(t->post.after);
    if (t->dec) tk_dec_free(t->dec);
    free(t->dec);
    free(t->path);
    free(t);
}

int ds_tokenizer_vocab_size(const ds_tokenizer *t) { return t->nids; }

int ds_tokenizer_token_id(const ds_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, token, n)) return t->added[i].id;
    return tk_strmap_get(&t->bpe.vocab, token, n);
}

const char *ds_tokenizer_token_str(const ds_tokenizer *t, int id) {
    if (id < 0 || id >= t->nids) return NULL;
    if (t->added_of_id[id] >= 0) return t->added[t->added_of_id[id]].content;
    return t->id_to_str[id];
}

int ds_tokenizer_is_special(const ds_tokenizer *t, int id) {
    return id >= 0 && id < t->nids && t->added_of_id[id] >= 0 && t->added[t->added_of_id[id]].special;
}
