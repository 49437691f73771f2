/* Finding a piece of text among a prompt's tokens, and encoding text the way it reads inside a
 * prompt. Token boundaries depend on what precedes a word: SentencePiece-style tokenizers
 * (Llama 2) put the word-start mark on "▁word" whether or not the text starts with a space,
 * byte-level ones (Llama 3, GPT-2) give "Ġword" only for " word". So a text has up to two
 * token forms inside a prompt: encode(TEXT) and encode(" " + TEXT), the second only when the
 * first does not already start with a space (i.e. when the tokenizer does not mark word starts
 * itself). Leading spaces of TEXT are dropped first. Neither form adds special tokens. */
#ifndef DIFFSCOPE_SPAN_H
#define DIFFSCOPE_SPAN_H
#include "diffscope/tokenizer.h"

/* Finds TEXT in IDS[0..n) by tokens, in either form. *BEGIN and *END get the half-open token
 * range. Fails when TEXT gives no tokens, does not occur, or occurs more than once. */
int ds_span_find(const ds_tokenizer *t, const int *ids, int n, const char *text, int *begin, int *end);

/* TEXT as a continuation of earlier text (after a space): the " " + TEXT form, or the TEXT
 * form for tokenizers that mark word starts themselves. *IDS is
 * malloc'd. Fails when TEXT gives no tokens. */
int ds_encode_continuation(const ds_tokenizer *t, const char *text, int **ids, int *n);

#endif
