/* Hugging Face tokenizer.json: encode text to token ids and decode ids to text, exactly as
 * the `tokenizers` library does for BPE models (Llama 2 / Mistral SentencePiece-style BPE with
 * byte fallback, GPT-2 / Llama 3 byte-level BPE). docs/tokenizer.md lists what is supported.
 *
 * A ds_tokenizer is read-only after ds_tokenizer_load; several threads may encode and decode
 * with it at once. Every function that fails records a one-line message for ds_errmsg(). */
#ifndef DIFFSCOPE_TOKENIZER_H
#define DIFFSCOPE_TOKENIZER_H
#include <stddef.h>

typedef struct ds_tokenizer ds_tokenizer;

/* PATH is a model folder (its tokenizer.json is used) or a tokenizer.json file.
 * NULL on failure, with a message naming the file and the problem. */
ds_tokenizer *ds_tokenizer_load(const char *path);
void ds_tokenizer_free(ds_tokenizer *t);

/* Encodes LEN bytes of TEXT (need not be NUL-terminated) into a new malloc'd array *IDS of *N
 * ids. ADD_SPECIAL applies the post-processor (e.g. the BOS of Llama). Invalid UTF-8 is
 * encoded as bytes where the tokenizer has byte fallback or is byte-level, else an error.
 * Returns 0, or -1 with a message. */
int ds_tokenizer_encode(const ds_tokenizer *t, const char *text, size_t len, int add_special,
                        int **ids, int *n);

/* Decodes N ids into a new malloc'd UTF-8 string (HF `decode`) with a NUL after it; *LEN (when
 * LEN is not NULL) gets its length, which counts the NUL bytes the text itself may hold (a
 * byte-fallback <0x00> or byte-level 'Ā' decodes to one): print it with fwrite, not as a C
 * string. SKIP_SPECIAL drops special tokens. Ids outside the vocabulary are skipped, as HF
 * does. NULL on failure. */
char *ds_tokenizer_decode(const ds_tokenizer *t, const int *ids, int n, int skip_special, size_t *len);

/* A printable label for one id (for axis labels), malloc'd: byte-level characters decoded to
 * their bytes, '▁' shown as a space, byte-fallback pieces <0xNN> as their byte; NUL and bytes
 * that do not form valid UTF-8 are shown escaped as \xNN. NULL when ID is not in the vocabulary. */
char *ds_tokenizer_piece(const ds_tokenizer *t, int id);

/* One more than the largest id (model vocabulary and added tokens). */
int ds_tokenizer_vocab_size(const ds_tokenizer *t);

/* The id of the token spelled TOKEN (an added token or a model vocabulary entry), else -1. */
int ds_tokenizer_token_id(const ds_tokenizer *t, const char *token);

/* The raw vocabulary string of ID (e.g. "▁Hello", "Ġworld", "<0x0A>"), or NULL. Not a copy. */
const char *ds_tokenizer_token_str(const ds_tokenizer *t, int id);

/* 1 when ID is a special added token (BOS, EOS, <|eot_id|>, ...). */
int ds_tokenizer_is_special(const ds_tokenizer *t, int id);

#endif
