/* Replaying libFuzzer inputs in the ordinary test build: every file of the seed corpus
 * (tests/fuzz/corpus/HARNESS/) and of the fixed crashes (tests/fuzz/regressions/HARNESS/) is
 * run through the harness's entry point. Used by the test_fuzz_*.c suites. */
#ifndef DIFFSCOPE_FUZZ_REPLAY_H
#define DIFFSCOPE_FUZZ_REPLAY_H
#include <dirent.h>
#include <stdint.h>
#include "base/fileio.h"
#include "test.h"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* Runs FN on every file of tests/fuzz/SUB/NAME; returns how many, -1 when the folder is absent. */
static int fuzz_replay_dir(const char *sub, const char *name, fuzz_fn fn) {
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
        size_t len;
        char *buf = ds_read_file(path, DS_MAX_TOKENIZER_BYTES, &len);
        if (!buf) continue;
        fn((const uint8_t *)buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

/* The body of one replay case: the seeds must exist, the regression folder may not. */
static void fuzz_replay(const char *name, fuzz_fn fn) {
    int seeds = fuzz_replay_dir("corpus", name, fn);
    int crashes = fuzz_replay_dir("regressions", name, fn);
    CHECK(seeds > 0, "no seed corpus tests/fuzz/corpus/%s", name);
    printf("# %s: %d seeds, %d regression inputs replayed\n", name, seeds, crashes < 0 ? 0 : crashes);
}
#endif
