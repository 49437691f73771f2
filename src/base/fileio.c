/* Whole-file reads (see src/base/fileio.h). */
#include "base/fileio.h"
#include "diffscope/error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int refuse_irregular(const char *path, const struct stat *st) {
    const char *what = S_ISDIR(st->st_mode)    ? "a folder"
                       : S_ISFIFO(st->st_mode) ? "a FIFO"
                       : S_ISCHR(st->st_mode)  ? "a character device"
                       : S_ISBLK(st->st_mode)  ? "a block device"
                       : S_ISSOCK(st->st_mode) ? "a socket"
                                               : "not a plain file";
    return ds_fail("%s: not a regular file (%s)", path, what);
}

int ds_check_regular_file(const char *path) {
    struct stat st;
    if (stat(path, &st)) return ds_fail("%s: cannot open: %s", path, strerror(errno));
    return S_ISREG(st.st_mode) ? 0 : refuse_irregular(path, &st);
}

/* "12.3 GB" or "4.1 MB" */
static const char *size_text(double bytes, char *buf, size_t n) {
    if (bytes >= 1e9) snprintf(buf, n, "%.1f GB", bytes / 1e9);
    else snprintf(buf, n, "%.1f MB", bytes / 1e6);
    return buf;
}

int ds_check_free_space(const char *path, double bytes) {
    const char *slash = strrchr(path, '/');
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir) return ds_failc(DS_ERR_NOMEM, "out of memory");
    struct statvfs fs;
    int rc = 0;
    if (!statvfs(dir, &fs)) {
        double avail = (double)fs.f_bavail * (double)fs.f_frsize;
        char need[32], have[32];
        if (bytes > avail)
            rc = ds_failc(DS_ERR_IO, "%s: the output would take about %s, more than the %s free in %s", path,
                          size_text(bytes, need, sizeof need), size_text(avail, have, sizeof have), dir);
    }
    free(dir);
    return rc;
}

static int too_big(const char *path, unsigned long long size, size_t max) {
    return ds_fail("%s: %llu bytes or more, over the limit of %zu MiB for this kind of file", path, size,
                   max >> 20);
}

char *ds_read_file(const char *path, size_t max, size_t *len) {
    /* O_NONBLOCK: should PATH become a FIFO between a check and the open, open() must not wait
     * for a writer; the fstat below refuses it either way. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        ds_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    int bad = fstat(fd, &st) ? ds_fail("%s: cannot stat: %s", path, strerror(errno))
              : !S_ISREG(st.st_mode) ? refuse_irregular(path, &st)
              : (unsigned long long)st.st_size > max ? too_big(path, (unsigned long long)st.st_size, max)
                                                     : 0;
    if (bad) {
        close(fd);
        return NULL;
    }
    /* Read until EOF rather than trusting st_size: /proc files say 0, a file may grow. At most
     * MAX + 1 bytes, to tell a file of exactly MAX bytes from a longer one. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    if (cap < 4096) cap = 4096;
    if (cap > max + 1) cap = max + 1;
    char *buf = malloc(cap + 1);
    int err = 0;
    while (buf) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) err = errno;
        if (k <= 0) break;
        n += (size_t)k;
        if (n > max) break;
        if (n == cap) {
            size_t ncap = cap > max / 2 ? max + 1 : 2 * cap;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) free(buf);
            buf = nb, cap = ncap;
        }
    }
    close(fd);
    if (!buf) {
        ds_failc(DS_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (err || n > max) {
        free(buf);
        if (err) ds_failc(DS_ERR_IO, "%s: read error: %s", path, strerror(err));
        else too_big(path, (unsigned long long)n, max);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
