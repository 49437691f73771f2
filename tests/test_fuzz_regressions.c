/* Replays the libFuzzer inputs with the ordinary build: every crash the fuzzers found
 * (tests/fuzz/regressions/HARNESS/, kept once fixed) and the seed corpora
 * (tests/fuzz/corpus/HARNESS/). The harnesses themselves are included, so a replay runs the
 * exact checks of the fuzzing run; under `make test-asan` ASan, UBSan and LeakSanitizer watch
 * it too. A broken invariant aborts the suite, which run_tests.sh counts as a failure. */
#include <dirent.h>
#include "test.h"

#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_config_one
#include "fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* Runs FN on every file of tests/fuzz/SUB/NAME; returns how many, -1 when the folder is absent. */
static int replay_dir(const char *sub, const char *name, fuzz_fn fn) {
    char dir[512];
    snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", sub, name);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
        if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
            fn(buf, (size_t)len);
            n++;
        }
        free(buf);
        fclose(f);
    }
    closedir(d);
    return n;
}

static void replay(const char *name, fuzz_fn fn) {
    int seeds = replay_dir("corpus", name, fn);
    int crashes = replay_dir("regressions", name, fn);
    CHECK(seeds > 0, "no seed corpus tests/fuzz/corpus/%s", name);
    printf("# %s: %d seeds, %d regression inputs replayed\n", name, seeds, crashes < 0 ? 0 : crashes);
}

TEST(fuzz_replay_safetensors) { replay("fuzz_safetensors", fuzz_safetensors_one); }
TEST(fuzz_replay_config) { replay("fuzz_config", fuzz_config_one); }
TEST(fuzz_replay_tokenizer) { replay("fuzz_tokenizer", fuzz_tokenizer_one); }

int main(void) {
    RUN(fuzz_replay_safetensors);
    RUN(fuzz_replay_config);
    RUN(fuzz_replay_tokenizer);
    return test_summary();
}
