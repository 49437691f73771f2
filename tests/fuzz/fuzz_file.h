/* Shared by the libFuzzer harnesses: hand an input to a loader that takes a path, without
 * touching the disk. The bytes go into a memfd (an anonymous in-memory file), opened again
 * through /proc/self/fd/N, so the loaders run their real open/stat/mmap/read code. */
#ifndef DIFFSCOPE_FUZZ_FILE_H
#define DIFFSCOPE_FUZZ_FILE_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Replaces the content of the memfd named NAME (created on first use) with DATA and returns
 * its path; exits when the system has no memfd (the harness cannot run at all then). */
static inline const char *fuzz_as_file(const char *name, int *fd, char path[64], const void *data, size_t size) {
    if (*fd <= 0) {
        *fd = memfd_create(name, 0);
        if (*fd < 0) {
            perror("memfd_create");
            exit(1);
        }
        snprintf(path, 64, "/proc/self/fd/%d", *fd);
    }
    if (ftruncate(*fd, 0) || (size && pwrite(*fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz_as_file");
        exit(1);
    }
    return path;
}

/* The same for loaders that resolve the path (HDF5 does, and cannot follow /proc/self/fd to a
 * memfd): a real temporary file in /dev/shm (memory) or $TMPDIR, removed at exit. */
static char fuzz_temp_path[256];
static void fuzz_temp_remove(void) { unlink(fuzz_temp_path); }
static inline const char *fuzz_as_temp_file(int *fd, const void *data, size_t size) {
    if (*fd <= 0) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(fuzz_temp_path, sizeof fuzz_temp_path, "%s/diffscope-fuzz-XXXXXX", dir);
        *fd = mkstemp(fuzz_temp_path);
        if (*fd < 0) {
            perror("mkstemp");
            exit(1);
        }
        atexit(fuzz_temp_remove);
    }
    if (ftruncate(*fd, 0) || (size && pwrite(*fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz_as_temp_file");
        exit(1);
    }
    return fuzz_temp_path;
}

#endif
