/* SHA-256 (FIPS 180-4), for the hashes of provenance records (src/io/provenance.h).
 *
 * Through OpenSSL's libcrypto: its SHA-NI and vector code hashes about 15 times faster than
 * portable C (1.5 GB/s against 90 MB/s here), and every command that writes a provenance
 * record hashes the model's config, tokenizer and (sampled) weights. */
#ifndef DIFFSCOPE_SHA256_H
#define DIFFSCOPE_SHA256_H
#include <stddef.h>

typedef struct {
    void *ctx; /* OpenSSL's EVP_MD_CTX */
} ds_sha256;

/* 0, or -1 with the message set when libcrypto has no memory or no SHA-256. */
int ds_sha256_init(ds_sha256 *s);
void ds_sha256_update(ds_sha256 *s, const void *data, size_t n);
/* The digest as 64 lowercase hex digits and a NUL in HEX; frees S. */
void ds_sha256_hex(ds_sha256 *s, char hex[65]);

#endif
