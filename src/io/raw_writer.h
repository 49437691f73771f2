/* A background writer of raw byte ranges into a file, so that a dump's disk writes overlap
 * the forward pass instead of stopping it.
 *
 * The writer owns a fixed pool of equal buffers. A caller takes a free buffer (waiting while
 * all are queued), fills it, and submits it with the file ranges its bytes go to; writer
 * threads pwrite() the queue and return each buffer to the pool. Several threads may take and
 * submit at once. One writer thread writes whenever there is work; one more (up to
 * DS_RAW_WRITERS_MAX) starts each time a caller finds no free buffer, and these helpers write
 * only while some caller waits (for a buffer, or in ds_raw_writer_drain): on the cores that
 * the waiting callers leave idle, never on those of a computation that goes on, which a dump
 * leaves one core. When a caller drains the queue, each queued buffer gets a thread (up to the
 * same limit). The ranges of different buffers never overlap, so the order in which the
 * threads write them does not matter. It never calls HDF5: the dump allocates contiguous
 * datasets through HDF5 and hands their file offsets here, so HDF5 (not thread-safe) is only
 * ever used by the forward pass's calling thread.
 *
 * Invariants: every submitted range is written exactly once before ds_raw_writer_drain()
 * returns; the first write error (disk full, file size limit) is kept and returned by every
 * later call, naming the file; buffers are never written to by the writer threads. */
#ifndef DIFFSCOPE_RAW_WRITER_H
#define DIFFSCOPE_RAW_WRITER_H
#include "diffscope/dump.h"
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    off_t file_offset;
    size_t buf_offset, len;
} ds_raw_range;

typedef struct ds_raw_writer ds_raw_writer;

#define DS_RAW_WRITERS_MAX 8

/* Opens PATH for writing (it must exist) with NBUFS buffers of BUF_BYTES each; error messages
 * name SHOWN_PATH (the file the user asked for, when PATH is its temporary name). */
ds_raw_writer *ds_raw_writer_open(const char *path, const char *shown_path, size_t buf_bytes, int nbufs);
/* A free buffer of the BUF_BYTES given to ds_raw_writer_open, or NULL after a write error. */
void *ds_raw_writer_take(ds_raw_writer *w);
/* Queues BUF (from take) to be written to the NRANGES ranges; 0, or -1 after a write error
 * (the buffer is returned to the pool either way). */
int ds_raw_writer_submit(ds_raw_writer *w, void *buf, const ds_raw_range *ranges, int nranges);
/* Waits until everything submitted is on its way to the file (written, not fsync'ed). */
int ds_raw_writer_drain(ds_raw_writer *w);
/* How the writing has gone so far (call it while no other thread takes buffers). */
void ds_raw_writer_stats(ds_raw_writer *w, ds_dump_io *io);
/* Drains, stops the threads, closes the file; returns the drain's result. NULL is allowed. */
int ds_raw_writer_close(ds_raw_writer *w);

#endif
