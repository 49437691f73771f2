/* The background raw writer (see raw_writer.h): a pool of buffers, a FIFO of filled ones, and
 * writer threads that pwrite() them. One mutex guards the pool, the queue, the thread count and
 * the error; three condition variables wake whoever waits for a free buffer, for work, or for
 * the queue to empty. */
#include "io/raw_writer.h"
#include "base/huge_alloc.h"
#include "diffscope/error.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    void *buf;
    ds_raw_range *ranges;
    int n;
} job;

struct ds_raw_writer {
    char *shown_path;
    int fd;
    size_t buf_bytes;
    int nbufs;
    char *block;   /* the memory of every buffer */
    void **pool;   /* every buffer */
    void **free_bufs;
    int nfree;
    job *queue;    /* ring of nbufs jobs: at most every buffer is queued */
    int qhead, qlen;
    int busy;      /* threads writing a job they have taken off the queue */
    int stop;
    int err;       /* errno of the first failed write, 0 if none */
    pthread_mutex_t mu;
    pthread_cond_t cv_free, cv_work, cv_help, cv_idle; /* cv_work wakes writer 0, cv_help the others */
    pthread_t threads[DS_RAW_WRITERS_MAX];
    int nthreads;
    int started;   /* threads that have taken their number: the first is 0 */
    int waiting;   /* callers waiting for a free buffer or for the queue to empty */
    ds_dump_io io; /* writer_threads and the buffers are filled in by ds_raw_writer_stats */
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The most bytes one pwrite() is given. The kernel's page cache takes folios as large as a
 * write; on virtual machines that hand free memory back to the host (virtio-balloon's free
 * page reporting) large free blocks are exactly the ones handed back, so a large write lands
 * on memory the host must fault in again, where small folios come from memory the guest still
 * holds (docs/performance-runs.md, run 10). Each piece costs a system call, which the writers
 * make in turn under the file's lock, so pieces too small hold up a dump whose writes outrun
 * one writer (run 19): 256 KiB is as fast as 128 KiB where large folios are slow, and faster
 * where the pieces' calls are what limits. */
#define WRITE_PIECE_BYTES ((size_t)256 << 10)

/* Writes N bytes at OFF in pieces, counting the pwrite() calls into *CALLS: 0 or an errno. */
static int write_all(int fd, const char *p, size_t n, off_t off, long *calls) {
    while (n) {
        ssize_t k = pwrite(fd, p, n < WRITE_PIECE_BYTES ? n : WRITE_PIECE_BYTES, off);
        ++*calls;
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? errno : EIO;
        p += k, n -= (size_t)k, off += k;
    }
    return 0;
}

/* Writer 0 writes whenever there is work; the others only while a caller waits for them (for a
 * free buffer, or for the queue to empty), on the cores the waiting callers leave: otherwise
 * they would take cores from the caller's computation, to which a dump leaves one. */
static void *writer_main(void *arg) {
    ds_raw_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    const int me = w->started++;
    pthread_cond_t *wake = me == 0 ? &w->cv_work : &w->cv_help;
    for (;;) {
        while (!(w->qlen && (me == 0 || w->waiting)) && !w->stop) pthread_cond_wait(wake, &w->mu);
        if (!w->qlen) break; /* stopping, and nothing left */
        job j = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % w->nbufs, w->qlen--;
        w->busy++;
        int failed = w->err;
        pthread_mutex_unlock(&w->mu);
        int e = 0;
        long calls = 0;
        double bytes = 0, t0 = now_s();
        for (int i = 0; i < j.n && !failed && !e; i++) {
            e = write_all(w->fd, (const char *)j.buf + j.ranges[i].buf_offset, j.ranges[i].len,
                          j.ranges[i].file_offset, &calls);
            bytes += (double)j.ranges[i].len;
        }
        const double took = now_s() - t0;
        free(j.ranges);
        pthread_mutex_lock(&w->mu);
        w->io.writing_s += took, w->io.writes += calls, w->io.bytes += bytes;
        if (e && !w->err) w->err = e;
        w->free_bufs[w->nfree++] = j.buf;
        w->busy--;
        pthread_cond_signal(&w->cv_free);
        if (!w->qlen && !w->busy) pthread_cond_broadcast(&w->cv_idle);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int fail_with(const ds_raw_writer *w, int err) {
    return ds_failc(DS_ERR_IO, "%s: write failed: %s", w->shown_path, strerror(err));
}

ds_raw_writer *ds_raw_writer_open(const char *path, const char *shown_path, size_t buf_bytes, int nbufs) {
    ds_raw_writer *w = calloc(1, sizeof *w);
    if (!w) return ds_failc(DS_ERR_NOMEM, "out of memory"), NULL;
    w->fd = -1;
    w->buf_bytes = buf_bytes, w->nbufs = nbufs;
    w->shown_path = strdup(shown_path);
    w->pool = calloc((size_t)nbufs, sizeof *w->pool);
    w->free_bufs = calloc((size_t)nbufs, sizeof *w->free_bufs);
    w->queue = calloc((size_t)nbufs, sizeof *w->queue);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_free, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_help, NULL);
    pthread_cond_init(&w->cv_idle, NULL);
    int ok = w->shown_path && w->pool && w->free_bufs && w->queue;
    /* One block for all buffers, in 2 MiB pages where the kernel grants them: filling fresh
     * buffers then costs a few page faults instead of one per 4 KiB. */
    char *block = ok ? ds_alloc_huge((size_t)nbufs * buf_bytes) : NULL;
    ok = ok && block;
    w->block = block;
    for (int i = 0; ok && i < nbufs; i++) w->pool[i] = w->free_bufs[i] = block + (size_t)i * buf_bytes;
    w->nfree = nbufs;
    if (!ok) {
        ds_failc(DS_ERR_NOMEM, "out of memory for %d write buffers of %zu bytes", nbufs, buf_bytes);
    } else if ((w->fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        ds_fail("%s: cannot open for writing: %s", shown_path, strerror(errno));
    } else if (pthread_create(&w->threads[0], NULL, writer_main, w)) {
        ds_fail("cannot start the writer thread");
    } else {
        w->nthreads = 1;
        return w;
    }
    ds_raw_writer_close(w);
    return NULL;
}

/* One more writer thread, if the limit allows: 1, or 0 when none was started (a failed start
 * leaves the threads there are). Called with the mutex held. */
static int add_thread(ds_raw_writer *w) {
    if (w->nthreads >= DS_RAW_WRITERS_MAX || pthread_create(&w->threads[w->nthreads], NULL, writer_main, w)) return 0;
    w->nthreads++;
    return 1;
}

void *ds_raw_writer_take(ds_raw_writer *w) {
    pthread_mutex_lock(&w->mu);
    /* Every buffer is queued: the writing falls behind, so one more thread writes, and the
     * helpers write while the caller waits. */
    if (!w->nfree && !w->err) {
        const double t0 = now_s();
        add_thread(w);
        w->waiting++;
        pthread_cond_broadcast(&w->cv_help);
        while (!w->nfree && !w->err) pthread_cond_wait(&w->cv_free, &w->mu);
        w->waiting--;
        w->io.waits++, w->io.waiting_s += now_s() - t0;
    }
    int err = w->err;
    void *buf = err ? NULL : w->free_bufs[--w->nfree];
    pthread_mutex_unlock(&w->mu);
    if (err) fail_with(w, err);
    return buf;
}

int ds_raw_writer_submit(ds_raw_writer *w, void *buf, const ds_raw_range *ranges, int nranges) {
    ds_raw_range *copy = malloc((size_t)(nranges > 0 ? nranges : 1) * sizeof *copy);
    if (copy && nranges > 0) memcpy(copy, ranges, (size_t)nranges * sizeof *copy);
    pthread_mutex_lock(&w->mu);
    int err = w->err;
    if (err || !copy) {
        w->free_bufs[w->nfree++] = buf;
        pthread_mutex_unlock(&w->mu);
        free(copy);
        return err ? fail_with(w, err) : ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    w->queue[(w->qhead + w->qlen++) % w->nbufs] = (job){buf, copy, nranges};
    pthread_cond_signal(&w->cv_work);
    if (w->waiting) pthread_cond_signal(&w->cv_help);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int ds_raw_writer_drain(ds_raw_writer *w) {
    pthread_mutex_lock(&w->mu);
    /* The caller has stopped producing and waits: the queued jobs get a thread each, on the
     * cores that the caller's computation no longer uses. */
    while (!w->err && w->nthreads - w->busy < w->qlen && add_thread(w)) continue;
    w->waiting++;
    pthread_cond_broadcast(&w->cv_help);
    const double t0 = now_s();
    while (w->qlen || w->busy) pthread_cond_wait(&w->cv_idle, &w->mu);
    w->io.draining_s += now_s() - t0;
    w->waiting--;
    int err = w->err;
    pthread_mutex_unlock(&w->mu);
    return err ? fail_with(w, err) : 0;
}

void ds_raw_writer_stats(ds_raw_writer *w, ds_dump_io *io) {
    pthread_mutex_lock(&w->mu);
    *io = w->io;
    io->writer_threads = w->nthreads;
    io->buffers = w->nbufs, io->buffer_bytes = (double)w->buf_bytes;
    pthread_mutex_unlock(&w->mu);
}

int ds_raw_writer_close(ds_raw_writer *w) {
    if (!w) return 0;
    int rc = 0;
    if (w->nthreads) {
        rc = ds_raw_writer_drain(w);
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_broadcast(&w->cv_work);
        pthread_cond_broadcast(&w->cv_help);
        pthread_mutex_unlock(&w->mu);
        for (int i = 0; i < w->nthreads; i++) pthread_join(w->threads[i], NULL);
    }
    if (w->fd >= 0 && close(w->fd) && !rc) rc = fail_with(w, errno);
    free(w->block);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv_free);
    pthread_cond_destroy(&w->cv_work);
    pthread_cond_destroy(&w->cv_help);
    pthread_cond_destroy(&w->cv_idle);
    free(w->pool), free(w->free_bufs), free(w->queue), free(w->shown_path), free(w);
    return rc;
}
