/* Replays the dump-reader fuzz inputs (seeds in tests/fuzz/corpus/fuzz_dump_reader/, fixed
 * crashes in tests/fuzz/regressions/fuzz_dump_reader/) with the ordinary build, as
 * tests/unit/test_fuzz_regressions.c does for the other harnesses. */
#include "fuzz_replay.h"

#define LLVMFuzzerTestOneInput fuzz_dump_reader_one
#include "../fuzz/fuzz_dump_reader.c"
#undef LLVMFuzzerTestOneInput

TEST(fuzz_replay_dump_reader) { fuzz_replay("fuzz_dump_reader", fuzz_dump_reader_one); }

int main(void) {
    RUN(fuzz_replay_dump_reader);
    return test_summary();
}
