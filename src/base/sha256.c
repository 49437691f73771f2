/* SHA-256 through OpenSSL's EVP interface (see sha256.h). */
#include "base/sha256.h"
#include <openssl/evp.h>
#include <stdio.h>
#include "diffscope/error.h"

int ds_sha256_init(ds_sha256 *s) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        s->ctx = NULL;
        return ds_failc(DS_ERR_NOMEM, "libcrypto could not start a SHA-256 (out of memory?)");
    }
    s->ctx = ctx;
    return 0;
}

void ds_sha256_update(ds_sha256 *s, const void *data, size_t n) {
    /* SHA-256's update cannot fail once initialised: it only buffers and compresses */
    EVP_DigestUpdate(s->ctx, data, n);
}

void ds_sha256_hex(ds_sha256 *s, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE] = {0};
    unsigned int len = 0;
    EVP_DigestFinal_ex(s->ctx, md, &len);
    EVP_MD_CTX_free(s->ctx);
    s->ctx = NULL;
    for (unsigned int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[64] = 0;
}
