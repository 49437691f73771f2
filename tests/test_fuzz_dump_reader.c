/* Replays the dump-reader fuzz inputs (seeds in tests/fuzz/corpus/fuzz_dump_reader/, fixed
 * crashes in tests/fuzz/regressions/fuzz_dump_reader/) with the ordinary build, as
 * tests/test_fuzz_regressions.c does for the other harnesses. Separate because it links the
 * viewer's objects (see the Makefile). */
#include <dirent.h>
#include "test.h"

#define LLVMFuzzerTestOneInput fuzz_dump_reader_one
#include "fuzz/fuzz_dump_reader.c"
#undef LLVMFuzzerTestOneInput

static int replay_dir(const char *sub) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/%s/fuzz_dump_reader", sub);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        uint8_t buf[65536];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fuzz_dump_reader_one(buf, len);
        n++;
    }
    closedir(d);
    return n;
}

TEST(fuzz_replay_dump_reader) {
    int seeds = replay_dir("corpus"), crashes = replay_dir("regressions");
    CHECK(seeds > 0, "no seed corpus tests/fuzz/corpus/fuzz_dump_reader");
    printf("# fuzz_dump_reader: %d seeds, %d regression inputs replayed\n", seeds, crashes < 0 ? 0 : crashes);
}

int main(void) {
    RUN(fuzz_replay_dump_reader);
    return test_summary();
}
