/* SHA-256 (src/base/sha256.h) against the examples of FIPS 180-4 / NIST's test vectors, fed
 * whole and in pieces that straddle the 64-byte blocks. */
#include "test.h"
#include "base/sha256.h"

static void digest(const void *data, size_t n, size_t piece, char hex[65]) {
    ds_sha256 s;
    if (ds_sha256_init(&s)) {
        snprintf(hex, 65, "init failed");
        return;
    }
    for (size_t i = 0; i < n; i += piece) ds_sha256_update(&s, (const char *)data + i, n - i < piece ? n - i : piece);
    ds_sha256_hex(&s, hex);
}

TEST(sha256_nist_vectors) {
    static const struct {
        const char *msg, *want;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    static const size_t pieces[] = {1, 3, 63, 64, 65, 1000};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        for (size_t p = 0; p < sizeof pieces / sizeof *pieces; p++) {
            char hex[65];
            digest(v[i].msg, strlen(v[i].msg), pieces[p], hex);
            CHECK(!strcmp(hex, v[i].want), "\"%s\" in pieces of %zu: %s, want %s", v[i].msg, pieces[p], hex, v[i].want);
        }
}

TEST(sha256_million_a) {
    enum { N = 1000000 };
    char *a = malloc(N);
    REQUIRE(a, "out of memory");
    memset(a, 'a', N);
    char hex[65];
    digest(a, N, 4096 + 7, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "one million 'a': %s", hex);
    free(a);
}

int main(void) {
    RUN(sha256_nist_vectors);
    RUN(sha256_million_a);
    return test_summary();
}
