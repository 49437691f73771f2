/* The background raw writer (src/io/raw_writer.c): every submitted range lands at its offset,
 * buffers recycle through a small pool without losing or reordering data, from one caller or
 * from several threads at once (the dump's attention tasks), and a failing
 * device (/dev/full: ENOSPC) gives an error naming the file instead of a silent short file. */
#include "diffscope/error.h"
#include "io/raw_writer.h"
#include "test.h"
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

/* The file at PATH (open as FD) holds the uint32 values 0 .. TOTAL-1 in order, and nothing
 * more; the file is closed and removed. */
static void check_counts_back(int fd, const char *path, size_t total) {
    uint32_t *back = malloc(total * sizeof *back);
    REQUIRE(back, "out of memory");
    ssize_t got = pread(fd, back, total * sizeof *back, 0);
    CHECK(got == (ssize_t)(total * sizeof *back), "file has %zd bytes, want %zu", got, total * sizeof *back);
    size_t bad = 0;
    for (size_t i = 0; got > 0 && i < (size_t)got / sizeof *back; i++) bad += back[i] != (uint32_t)i;
    CHECK(bad == 0, "%zu values out of place", bad);
    free(back);
    close(fd);
    unlink(path);
}

/* 64 jobs through a pool of 2 buffers (so that the caller often finds none free, and more
 * writer threads start), each job scattering 4 ranges of 1000 uint32 values into a file,
 * interleaved so that no job's ranges are adjacent; then the file is read back. */
TEST(raw_writer_ranges_land_at_their_offsets) {
    char path[] = "/tmp/ds_raw_writer_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp failed");
    enum { JOBS = 64, RANGES = 4, N = 1000 };
    ds_raw_writer *w = ds_raw_writer_open(path, path, RANGES * N * sizeof(uint32_t), 2);
    REQUIRE(w, "%s", ds_errmsg());
    for (int j = 0; j < JOBS; j++) {
        uint32_t *buf = ds_raw_writer_take(w);
        REQUIRE(buf, "%s", ds_errmsg());
        ds_raw_range r[RANGES];
        for (int k = 0; k < RANGES; k++) {
            size_t slot = (size_t)k * JOBS + j; /* file slot of range k of job j */
            for (int i = 0; i < N; i++) buf[k * N + i] = (uint32_t)(slot * N + i);
            r[k] = (ds_raw_range){(off_t)(slot * N * sizeof *buf), (size_t)k * N * sizeof *buf, N * sizeof *buf};
        }
        REQUIRE(ds_raw_writer_submit(w, buf, r, RANGES) == 0, "%s", ds_errmsg());
    }
    /* the statistics count every range's bytes and one pwrite per range (each under a piece) */
    CHECK(ds_raw_writer_drain(w) == 0, "%s", ds_errmsg());
    ds_dump_io io;
    ds_raw_writer_stats(w, &io);
    CHECK(io.writer_threads >= 1 && io.writer_threads <= DS_RAW_WRITERS_MAX, "%d writer threads", io.writer_threads);
    CHECK(io.buffers == 2 && io.buffer_bytes == (double)RANGES * N * sizeof(uint32_t), "%d buffers of %.0f bytes",
          io.buffers, io.buffer_bytes);
    CHECK(io.bytes == (double)JOBS * RANGES * N * sizeof(uint32_t), "%.0f bytes counted", io.bytes);
    CHECK(io.writes == JOBS * RANGES, "%ld writes counted, want %d", io.writes, JOBS * RANGES);
    CHECK(io.writing_s > 0, "%g s of writing", io.writing_s);
    CHECK(io.waits >= 0 && io.waiting_s >= 0 && (io.waits > 0) == (io.waiting_s > 0), "%ld waits, %g s", io.waits,
          io.waiting_s);
    CHECK(ds_raw_writer_close(w) == 0, "%s", ds_errmsg());
    check_counts_back(fd, path, (size_t)JOBS * RANGES * N);
}

/* One range of 3 MiB + 5 bytes goes to pwrite in pieces of at most 256 KiB: 13 calls. */
TEST(raw_writer_writes_large_ranges_in_pieces) {
    char path[] = "/tmp/ds_raw_writer_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp failed");
    const size_t n = ((size_t)3 << 20) + 5;
    ds_raw_writer *w = ds_raw_writer_open(path, path, n, 1);
    REQUIRE(w, "%s", ds_errmsg());
    unsigned char *buf = ds_raw_writer_take(w);
    REQUIRE(buf, "%s", ds_errmsg());
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 7);
    ds_raw_range r = {0, 0, n};
    REQUIRE(ds_raw_writer_submit(w, buf, &r, 1) == 0, "%s", ds_errmsg());
    CHECK(ds_raw_writer_drain(w) == 0, "%s", ds_errmsg());
    ds_dump_io io;
    ds_raw_writer_stats(w, &io);
    CHECK(io.writes == 13 && io.bytes == (double)n, "%ld writes of %.0f bytes", io.writes, io.bytes);
    CHECK(ds_raw_writer_close(w) == 0, "%s", ds_errmsg());
    unsigned char *back = malloc(n);
    REQUIRE(back, "out of memory");
    CHECK(pread(fd, back, n, 0) == (ssize_t)n, "short file");
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += back[i] != (unsigned char)(i * 7);
    CHECK(bad == 0, "%zu bytes out of place", bad);
    free(back);
    close(fd);
    unlink(path);
}

/* 512 one-range jobs taken and submitted by 4 threads at once through a pool of 3 buffers:
 * the callers wait for buffers in turn, waking the helper writers and letting them sleep
 * again, and every range still lands once, at its offset. */
TEST(raw_writer_takes_from_many_threads) {
    char path[] = "/tmp/ds_raw_writer_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp failed");
    enum { JOBS = 512, N = 2048 };
    ds_raw_writer *w = ds_raw_writer_open(path, path, N * sizeof(uint32_t), 3);
    REQUIRE(w, "%s", ds_errmsg());
    int failed = 0;
#pragma omp parallel for num_threads(4) schedule(dynamic) reduction(+ : failed)
    for (int j = 0; j < JOBS; j++) {
        uint32_t *buf = ds_raw_writer_take(w);
        if (!buf) {
            failed++;
            continue;
        }
        size_t slot = (size_t)(j * 37) % JOBS; /* the jobs scattered over the file */
        for (int i = 0; i < N; i++) buf[i] = (uint32_t)(slot * N + i);
        ds_raw_range r = {(off_t)(slot * N * sizeof *buf), 0, N * sizeof *buf};
        failed += ds_raw_writer_submit(w, buf, &r, 1) != 0;
    }
    CHECK(failed == 0, "%d takes or submissions failed", failed);
    CHECK(ds_raw_writer_close(w) == 0, "%s", ds_errmsg());
    check_counts_back(fd, path, (size_t)JOBS * N);
}

TEST(raw_writer_reports_a_full_disk) {
    if (access("/dev/full", W_OK)) SKIP("no /dev/full");
    ds_raw_writer *w = ds_raw_writer_open("/dev/full", "out.h5", 4096, 2);
    REQUIRE(w, "%s", ds_errmsg());
    int failed = 0;
    /* The first write fails in the background; a later take, submit or drain reports it. */
    for (int j = 0; j < 8 && !failed; j++) {
        char *buf = ds_raw_writer_take(w);
        if (!buf) { failed = 1; break; }
        memset(buf, 7, 4096);
        ds_raw_range r = {0, 0, 4096};
        failed = ds_raw_writer_submit(w, buf, &r, 1) != 0;
    }
    if (!failed) failed = ds_raw_writer_drain(w) != 0;
    CHECK(failed, "writing to /dev/full did not fail");
    CHECK(strstr(ds_errmsg(), "out.h5") && strstr(ds_errmsg(), "No space left"), "message: %s", ds_errmsg());
    CHECK(ds_raw_writer_close(w) != 0, "close after a failed write reported success");
}

TEST(raw_writer_missing_file) {
    ds_raw_writer *w = ds_raw_writer_open("/nonexistent/dir/x.h5", "x.h5", 4096, 2);
    CHECK(!w, "opened a file in a missing folder");
    CHECK(strstr(ds_errmsg(), "x.h5: cannot open"), "message: %s", ds_errmsg());
}

int main(void) {
    RUN(raw_writer_ranges_land_at_their_offsets);
    RUN(raw_writer_writes_large_ranges_in_pieces);
    RUN(raw_writer_takes_from_many_threads);
    RUN(raw_writer_reports_a_full_disk);
    RUN(raw_writer_missing_file);
    return test_summary();
}
