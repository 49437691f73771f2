/* Replays the libFuzzer inputs with the ordinary build: every crash the fuzzers found
 * (tests/fuzz/regressions/HARNESS/, kept once fixed) and the seed corpora
 * (tests/fuzz/corpus/HARNESS/). The harnesses themselves are included, so a replay runs the
 * exact checks of the fuzzing run; under `make test-asan` ASan, UBSan and LeakSanitizer watch
 * it too. A broken invariant aborts the suite, which run_tests.sh counts as a failure. */
#include "fuzz_replay.h"

#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_config_one
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "../fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput

TEST(fuzz_replay_safetensors) { fuzz_replay("fuzz_safetensors", fuzz_safetensors_one); }
TEST(fuzz_replay_config) { fuzz_replay("fuzz_config", fuzz_config_one); }
TEST(fuzz_replay_tokenizer) { fuzz_replay("fuzz_tokenizer", fuzz_tokenizer_one); }

int main(void) {
    RUN(fuzz_replay_safetensors);
    RUN(fuzz_replay_config);
    RUN(fuzz_replay_tokenizer);
    return test_summary();
}
