/* Internals of the tokenizer (src/tokenizer_*.c). Not part of the public API.
 *
 * The encode pipeline follows HF tokenizers step by step:
 *   1. split the text on added tokens whose `normalized` is false (raw text);
 *   2. normalize every other piece, then split it on the normalized added tokens;
 *   3. pre-tokenize each remaining piece (Split, ByteLevel, Metaspace, ...);
 *   4. run the BPE model on each piece;
 *   5. post-process (TemplateProcessing adds BOS) when special tokens are asked for. */
#ifndef DIFFSCOPE_TOKENIZER_INTERNAL_H
#define DIFFSCOPE_TOKENIZER_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "diffscope/tokenizer.h"

/* ---- growable byte string ---- */
typedef struct {
    char *s;
    size_t len, cap;
} tk_buf;
int tk_buf_put(tk_buf *b, const void *p, size_t n);
static inline int tk_buf_puts(tk_buf *b, const char *s);
void tk_buf_free(tk_buf *b);

/* ---- string -> int hash map (keys are byte strings, copied) ---- */
typedef struct {
    char **keys;
    size_t *klen;
    int *vals;
    size_t cap, count;
} tk_strmap;
int tk_strmap_put(tk_strmap *m, const char *k, size_t klen, int v); /* overwrites */
int tk_strmap_get(const tk_strmap *m, const char *k, size_t klen);  /* -1 when absent */
void tk_strmap_free(tk_strmap *m);

/* ---- UTF-8 ---- */
/* Length of the character at s[0] (n >= 1 bytes left): 1..4, or 1 for a byte that does not
 * start a valid sequence. *cp receives the code point, or -1 for an invalid byte. */
int tk_utf8_next(const char *s, size_t n, int32_t *cp);
int tk_utf8_encode(int32_t cp, char out[4]);
/* Offset of the first invalid byte, or -1 when all of S is valid UTF-8. */
long tk_utf8_invalid_at(const char *s, size_t n);
int tk_is_space(int32_t cp);  /* Unicode White_Space, as Rust's char::is_whitespace */
int tk_is_word(int32_t cp);   /* Rust regex \w: letters, marks, digits, connectors */

/* ---- regex (PCRE2, UTF + UCP) ---- */
typedef struct {
    pcre2_code *code;
} tk_regex;
/* Compiles PATTERN; LITERAL escapes it first (a Split or Replace given a plain string). */
int tk_regex_compile(tk_regex *r, const char *pattern, int literal, const char *what);
void tk_regex_free(tk_regex *r);
/* Finds the next non-empty match at or after START: 1 with [*ms, *me), 0 when none, -1 error. */
int tk_regex_next(const tk_regex *r, pcre2_match_data *md, const char *s, size_t n, size_t start,
                  size_t *ms, size_t *me);

/* ---- pieces of text flowing through the pipeline ---- */
typedef struct {
    size_t off, len;  /* bytes in the owning arena */
    int token;        /* >= 0 when the piece is already a token (an added token) */
    int at_start;     /* begins at offset 0 of the original text (Metaspace prepend "first") */
} tk_piece;

typedef struct {
    tk_buf arena;     /* all piece bytes */
    tk_piece *v;
    int n, cap;
} tk_pieces;
int tk_pieces_add(tk_pieces *p, const char *s, size_t len, int token, int at_start);
/* The array V (N elements used, *CAP allocated, SIZE bytes each) with room for one more: V
 * itself, or V grown to twice *CAP (FIRST when empty) with *CAP updated. NULL with "out of
 * memory" as the message, V still valid and owned by the caller, when it cannot grow. */
void *tk_room_for_one(void *v, int n, int *cap, size_t size, int first);
void tk_pieces_free(tk_pieces *p);
static inline const char *tk_piece_str(const tk_pieces *p, int i) { return p->arena.s + p->v[i].off; }

/* ---- normalizers ---- */
typedef enum { TK_NORM_SEQUENCE, TK_NORM_NFC, TK_NORM_NFD, TK_NORM_NFKC, TK_NORM_NFKD,
               TK_NORM_PREPEND, TK_NORM_REPLACE, TK_NORM_LOWERCASE, TK_NORM_STRIP } tk_norm_kind;
typedef struct tk_norm {
    tk_norm_kind kind;
    struct tk_norm *items; /* SEQUENCE */
    int nitems;
    char *str;             /* PREPEND text, REPLACE content */
    tk_regex re;           /* REPLACE pattern */
    int left, right;       /* STRIP */
} tk_norm;
/* Normalizes S into OUT (appended). */
int tk_normalize(const tk_norm *nm, const char *s, size_t n, tk_buf *out);
void tk_norm_free(tk_norm *nm);

/* ---- pre-tokenizers ---- */
typedef enum { TK_SPLIT_REMOVED, TK_SPLIT_ISOLATED, TK_SPLIT_MERGED_PREV, TK_SPLIT_MERGED_NEXT,
               TK_SPLIT_CONTIGUOUS } tk_split_behavior;
typedef enum { TK_PRE_SEQUENCE, TK_PRE_SPLIT, TK_PRE_BYTELEVEL, TK_PRE_METASPACE } tk_pre_kind;
typedef enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend_scheme;
typedef struct tk_pre {
    tk_pre_kind kind;
    struct tk_pre *items;  /* SEQUENCE */
    int nitems;
    tk_regex re;           /* SPLIT pattern; BYTELEVEL with use_regex: the GPT-2 pattern */
    tk_split_behavior behavior;
    int invert;
    int add_prefix_space, use_regex;     /* BYTELEVEL */
    char replacement[8];                 /* METASPACE, UTF-8 */
    tk_prepend_scheme prepend;
    int split;
} tk_pre;
/* Pre-tokenizes the non-token pieces of IN into OUT. */
int tk_pretokenize(const tk_pre *pre, const tk_pieces *in, tk_pieces *out);
void tk_pre_free(tk_pre *pre);
/* GPT-2's byte -> printable character map (ByteLevel), and its inverse (-1: not a byte char). */
int32_t tk_byte_char(unsigned char b);
int tk_char_to_byte(int32_t cp);

/* ---- BPE model ---- */
typedef struct {
    uint64_t *keys;     /* (left << 32 | right) + 1; 0 = empty slot */
    uint32_t *rank, *merged;
    size_t cap, count;
} tk_merges;
typedef struct {
    tk_strmap vocab;
    tk_merges merges;
    int unk_id;         /* -1 when no unk_token */
    int fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix, *end_suffix;  /* continuing_subword_prefix, end_of_word_suffix */
    int byte_ids[256];  /* <0xNN> ids for byte fallback, -1 when absent */
    int split_at_meta;  /* words may be merged separately at each '▁' (see tk_bpe_encode) */
} tk_bpe;
int tk_merges_put(tk_merges *m, int a, int b, int rank, int merged);
int tk_merges_get(const tk_merges *m, int a, int b, int *rank, int *merged);
/* Appends the ids of one pre-tokenized piece to OUT (a growable int array). */
typedef struct { int *v; int n, cap; } tk_ids;
int tk_ids_push(tk_ids *a, int id);
int tk_bpe_encode(const tk_bpe *m, const char *s, size_t n, tk_ids *out);
void tk_bpe_free(tk_bpe *m);

/* ---- added tokens ---- */
typedef struct {
    char *content;
    size_t len;
    char *norm;         /* content after the normalizer (normalized tokens only), else == content */
    size_t norm_len;
    int id;
    int special, single_word, lstrip, rstrip, normalized;
} tk_added;

/* ---- post-processor (TemplateProcessing, ByteLevel, Sequence, Bert/Roberta) ---- */
typedef struct {
    int *before, nbefore;  /* ids before the sequence ($A) */
    int *after, nafter;    /* ids after it */
} tk_post;

/* ---- decoders ---- */
typedef enum { TK_DEC_SEQUENCE, TK_DEC_BYTELEVEL, TK_DEC_BYTEFALLBACK, TK_DEC_FUSE, TK_DEC_STRIP,
               TK_DEC_REPLACE, TK_DEC_METASPACE } tk_dec_kind;
typedef struct tk_dec {
    tk_dec_kind kind;
    struct tk_dec *items;
    int nitems;
    char *pattern, *content;       /* REPLACE (literal pattern), STRIP content */
    tk_regex re;                   /* REPLACE with a Regex pattern */
    int is_regex;
    int start, stop;               /* STRIP */
    char replacement[8];           /* METASPACE */
    int prepend_never;
} tk_dec;
void tk_dec_free(tk_dec *d);

struct ds_tokenizer {
    char *path;
    tk_bpe bpe;
    char **id_to_str;     /* model vocabulary strings by id (NULL holes) */
    int nids;             /* one more than the largest id */
    tk_added *added;
    int nadded;
    int *added_of_id;     /* index into added[] by id, -1 when not an added token */
    /* Added tokens by the first byte of their pattern, longest first: [0] raw, [1] normalized. */
    int *bucket[2][256];
    int nbucket[2][256];
    tk_strmap special;    /* contents of the special added tokens (decode skips these strings) */
    tk_norm *norm;        /* NULL when none */
    tk_pre *pre;
    tk_post post;
    tk_dec *dec;
    int byte_level;       /* a ByteLevel pre-tokenizer or decoder: invalid UTF-8 is fine */
};

/* Splits PIECES on the added tokens of the given kind (normalized or not); see HF
 * AddedVocabulary::find_matches. */
int tk_split_added(const ds_tokenizer *t, int normalized, const tk_pieces *in, tk_pieces *out);

/* The string HF's decode sees for ID (normalized content for normalized added tokens). */
const char *tk_decode_string(const ds_tokenizer *t, int id, size_t *len);

static inline int tk_buf_puts(tk_buf *b, const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return tk_buf_put(b, s, n);
}
#endif
