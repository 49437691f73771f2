/* SHA-256 (FIPS 180-4), for the hashes of provenance records (src/io/provenance.h). */
#ifndef DIFFSCOPE_SHA256_H
#define DIFFSCOPE_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;     /* message length so far */
    unsigned char block[64];
    size_t fill;        /* bytes waiting in BLOCK */
} ds_sha256;

void ds_sha256_init(ds_sha256 *s);
void ds_sha256_update(ds_sha256 *s, const void *data, size_t n);
/* The digest as 64 lowercase hex digits and a NUL in HEX. */
void ds_sha256_hex(ds_sha256 *s, char hex[65]);

#endif
