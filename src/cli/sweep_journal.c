/* The journals of a sweep: each rank appends one fixed-size record per finished prompt to its own
 * file, in one write, with a checksum. A rank killed (even by SIGKILL) leaves at most a torn last
 * record, which is cut off when the journal is opened again; so a rerun loses at most the prompt
 * that was in flight. A whole record whose checksum fails (damage on disk) is skipped by every
 * reader, so its prompt is run again. The journals are the resume state; the shards are built
 * from them.
 *
 * File: "DSSWEEP1", the sweep's fingerprint (u64), the record size (u64), then the records:
 * sweep_rec_head, the doubles of the models, FNV-1a 64 of the bytes before it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/fileio.h"
#include "cli/sweep.h"
#include "diffscope/error.h"

static const char magic[8] = {'D', 'S', 'S', 'W', 'E', 'E', 'P', '1'};
enum { HEADER = 24 };

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* DIR/journal-R-of-N.bin (malloc'd). */
static char *journal_path(const char *dir, int rank, int nranks) {
    size_t len = strlen(dir) + 64;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/journal-%05d-of-%05d.bin", dir, rank, nranks);
    else ds_failc(DS_ERR_NOMEM, "out of memory");
    return p;
}

static int record_ok(const sweep_setup *su, const unsigned char *r) {
    uint64_t sum;
    memcpy(&sum, r + su->rec_size - 8, 8);
    return sum == fnv1a(r, su->rec_size - 8);
}

/* The number of whole records of a journal of LEN bytes starting with the HEADER bytes H
 * (of PATH); -1 with a message when it is another sweep's. */
static long whole_records(const char *path, const unsigned char *h, size_t len, const sweep_setup *su) {
    uint64_t fp, rs;
    if (len < HEADER) return 0; /* killed before the header was written */
    memcpy(&fp, h + 8, 8), memcpy(&rs, h + 16, 8);
    if (memcmp(h, magic, 8) || fp != su->fingerprint || rs != su->rec_size)
        return ds_fail("%s: a journal of another sweep (other models, prompts or options): remove the folder or "
                       "run with --force", path);
    return (long)((len - HEADER) / su->rec_size);
}

int sweep_journal_open(sweep_journal *j, const char *dir, int rank, int nranks, const sweep_setup *su) {
    j->fd = -1;
    if (!(j->path = journal_path(dir, rank, nranks))) return -1;
    j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->fd < 0) return ds_fail("%s: cannot create: %s", j->path, strerror(errno));
    struct stat sb;
    unsigned char h[HEADER];
    if (fstat(j->fd, &sb)) return ds_fail("%s: cannot read: %s", j->path, strerror(errno));
    size_t size = (size_t)sb.st_size;
    if (size >= HEADER && pread(j->fd, h, HEADER, 0) != HEADER) return ds_fail("%s: cannot read: %s", j->path, strerror(errno));
    long n = whole_records(j->path, h, size, su);
    if (n < 0) return -1;
    off_t keep = size < HEADER ? 0 : HEADER + (off_t)n * (off_t)su->rec_size; /* a torn last record is cut off */
    if (ftruncate(j->fd, keep) || lseek(j->fd, keep, SEEK_SET) < 0)
        return ds_fail("%s: cannot truncate: %s", j->path, strerror(errno));
    if (keep == 0) {
        uint64_t rs = su->rec_size;
        memcpy(h, magic, 8), memcpy(h + 8, &su->fingerprint, 8), memcpy(h + 16, &rs, 8);
        if (write(j->fd, h, HEADER) != HEADER) return ds_fail("%s: write error: %s", j->path, strerror(errno));
    }
    return 0;
}

int sweep_journal_append(sweep_journal *j, const sweep_setup *su, void *rec) {
    uint64_t sum = fnv1a(rec, su->rec_size - 8);
    memcpy((char *)rec + su->rec_size - 8, &sum, 8);
    ssize_t w = write(j->fd, rec, su->rec_size);
    if (w != (ssize_t)su->rec_size)
        return ds_fail("%s: write error: %s", j->path, w < 0 ? strerror(errno) : "short write (disk full?)");
    return 0;
}

void sweep_journal_close(sweep_journal *j) {
    if (j->fd >= 0) close(j->fd);
    free(j->path);
    j->fd = -1, j->path = NULL;
}

/* The records of prompts [A, B) that RECS lacks, from the journal at PATH. Only those are
 * checked (their checksums), so a rank reads little more than the file for each journal. */
static int load_one(const char *path, const sweep_setup *su, int a, int b, void **recs) {
    size_t len;
    unsigned char *buf = (unsigned char *)ds_read_file(path, DS_MAX_JOURNAL_BYTES, &len);
    if (!buf) return -1;
    long n = whole_records(path, buf, len, su);
    int rc = n < 0 ? -1 : 0;
    for (long i = 0; !rc && i < n; i++) {
        const unsigned char *r = buf + HEADER + i * su->rec_size;
        sweep_rec_head h;
        memcpy(&h, r, sizeof h);
        if (h.index < a || h.index >= b || recs[h.index] || !record_ok(su, r)) continue;
        if (!(recs[h.index] = malloc(su->rec_size))) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
        else memcpy(recs[h.index], r, su->rec_size);
    }
    free(buf);
    return rc;
}

int sweep_journal_load_rank(const char *dir, const sweep_setup *su, int rank, int nranks, int a, int b, void **recs) {
    char *path = journal_path(dir, rank, nranks);
    int rc = !path ? -1 : load_one(path, su, a, b, recs);
    free(path);
    return rc;
}

int sweep_journal_load(const char *dir, const sweep_setup *su, int a, int b, void **recs) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : ds_fail("%s: cannot read: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "journal-", 8) || n < 12 || strcmp(e->d_name + n - 4, ".bin")) continue;
        size_t len = strlen(dir) + n + 2;
        char *path = malloc(len);
        if (!path) rc = ds_failc(DS_ERR_NOMEM, "out of memory");
        else snprintf(path, len, "%s/%s", dir, e->d_name), rc = load_one(path, su, a, b, recs);
        free(path);
    }
    closedir(d);
    return rc;
}

void sweep_journal_free(void **recs, int nprompts) {
    for (int i = 0; recs && i < nprompts; i++) free(recs[i]);
    free(recs);
}
