/* The HDF5 dump writer (see include/diffscope/dump.h and docs/dump-format.md).
 *
 * Everything is written from probe callbacks as the forward pass produces it, and a layer's
 * datasets are closed and its outlier statistics written at its hook_resid_post.
 *
 * A layer's map datasets are made at its hook_resid_pre. Maps then take one of two paths.
 * Uncompressed (the default), a map is a dataset that HDF5 allocates at creation, and the
 * forward pass hands each head's rows of a row block to the dump from the task that made them
 * (ds_probes_add_point_heads), which copies them into a buffer of the raw writer
 * (io/raw_writer.h), whose threads write it at its file offset while the forward pass goes on.
 * Softmax and difference maps of long prompts are chunked in [1, R, C] (R the forward pass's
 * row block, C = DS_MAP_MAX_ROWS keys), allocated in order, one after the other: the chunks
 * right of the causal diagonal hold zeros only, are never written, and read back as zeros (a
 * hole, or an allocated range never written). Other uncompressed maps are contiguous. HDF5
 * itself is only called from the forward pass's calling thread. Compressed, a map
 * is chunked ([1, R, T], R = the forward pass's row-block height, so each block covers whole
 * chunks) and each block goes through H5Dwrite and its filters on that thread. The outlier
 * statistics of the scores and the cancelled share are also taken a head at a time, into places
 * fixed by (head, block), so that they do not depend on which thread took what when. */
#include "io/provenance.h"
#include "diffscope/dump.h"
#include "diffscope/dump_format.h"
#include "diffscope/error.h"
#include "io/h5out.h"
#include "diffscope/hidden_states.h"
#include "diffscope/attn_stats.h"
#include <hdf5_hl.h>
#include "dump/outliers.h"
#include "io/raw_writer.h"
#include "base/fileio.h"
#include "base/finite.h"
#include "base/half.h"
#include "base/stream_store.h"
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each outlier statistic is collected in this many parts, filled and finished in parallel and
 * combined in order when the layer ends. The split is fixed, so the statistics do not depend
 * on the thread count. 60 parts make whole rounds on 1-6, 10, 12, 15 (16 cores less the one a
 * dump leaves to its writers) and 30 threads, and 15 of 16 on 16 threads. */
enum { OUTLIER_PARTS = 60 };
/* A map block is checked for non-finite values in at least this many pieces. */
enum { COPY_PIECES = 64 };
/* Fewer values than this in a block are pushed on one thread. */
#define OUTLIER_PAR_MIN ((int64_t)1 << 16)

/* A non-finite entry of a map, found by a task; the smallest by (query, map in forward order,
 * head, key) is reported, whichever task found it first. */
typedef struct {
    int found;
    int64_t query, key;
    int order, head;
    ds_map map;
    float value;
} nonfinite_entry;

struct ds_dump {
    ds_h5out out;
    ds_dump_opts o;
    const ds_model *m;
    int T, L, H, Hd, is_diff; /* Hd: heads per map (ds_config.map_heads) */
    int R, nblocks;        /* the forward pass's row blocks of maps (ds_probes_block_rows) */
    int C, ncols;          /* chunked maps' chunks: C keys wide, ncols of them per row */
    int sparse;            /* uncompressed softmax and difference maps are chunked (sparse_pays) */
    char *layer_on;        /* [L] */
    int *heads;            /* selected heads (differential heads for DiffLlama) */
    int nheads;
    int *head_slot;        /* [Hd]: where head i is in heads, or -1 */
    hid_t f16;             /* IEEE half type */
    uint16_t *half_buf;    /* conversion scratch, one head-row block (compressed maps) */
    size_t half_cap;
    ds_raw_writer *raw;    /* background writer of uncompressed maps, made at the first block */
    /* State of the layer being written. */
    int layer;
    hid_t maps[DS_MAP_COUNT];
    haddr_t map_addr[DS_MAP_COUNT]; /* file offset of each uncompressed map (its first chunk) */
    ds_outliers scores[OUTLIER_PARTS], resid[OUTLIER_PARTS], mlp[OUTLIER_PARTS];
    size_t *score_at;         /* [H * nblocks]: where the scores of (sub-head, block) go in their part */
    ds_outliers *score_tally; /* [H * nblocks]: what each (sub-head, block) put there */
    nonfinite_entry bad;      /* the layer's first non-finite map entry, when one was seen */
    double lambda;           /* the layer's λ as the forward pass uses it */
    float *cancelled;        /* [nheads, T] of the layer */
    ds_hidden_states hidden; /* .out [L+1, T, D] when --hidden, else NULL */
    int caller_threads;      /* the OpenMP thread count to restore, 0 if unchanged */
    ds_provenance *own_provenance;      /* the record made here when the caller gives none */
    ds_provenance_model_job *hashing;   /* its model's files, hashed while the forward pass runs */
};

/* ---- small HDF5 helpers ---- */

static hid_t make_f16_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* 1 when uncompressed map KIND is stored in chunks of [1, R, C], some never written. */
static int in_chunks(const ds_dump *d, ds_map kind) {
    return d->o.compress <= 0 && d->sparse && kind != DS_MAP_SCORES;
}

static hid_t create_map_dataset(ds_dump *d, hid_t group, ds_map kind, int heads) {
    hsize_t dims[3] = {(hsize_t)heads, (hsize_t)d->T, (hsize_t)d->T};
    hsize_t chunk[3] = {1, (hsize_t)d->R, (hsize_t)(in_chunks(d, kind) ? d->C : d->T)};
    hid_t sp = H5Screate_simple(3, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (d->o.compress > 0) {
        H5Pset_chunk(dcpl, 3, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)d->o.compress);
    } else {
        /* Allocated now, never filled by HDF5: the raw writer writes every row of every head,
         * or of a chunked map the chunks that hold a causal key; the others read as zeros. */
        if (in_chunks(d, kind)) H5Pset_chunk(dcpl, 3, chunk);
        else H5Pset_layout(dcpl, H5D_CONTIGUOUS);
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    }
    const char *name = ds_map_name(kind);
    hid_t ds = H5Dcreate2(group, name, d->o.f16 ? d->f16 : H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    static const char *const axes[3] = DS_DUMP_MAP_AXES;
    int labelled = ds >= 0;
    for (unsigned i = 0; labelled && i < 3; i++) labelled = H5DSset_label(ds, i, axes[i]) >= 0;
    if (ds >= 0 && !labelled) {
        H5Dclose(ds);
        ds = H5I_INVALID_HID;
    }
    if (ds < 0) ds_fail("%s: cannot create dataset '%s' in layer %d", d->out.path, name, d->layer);
    return ds;
}

/* Writes rows [r0, r0+nr) x T of output head OUT_HEAD from a contiguous [nr, T] block. */
static int write_rows(ds_dump *d, hid_t ds, int out_head, int r0, int nr, const float *src) {
    hsize_t start[3] = {(hsize_t)out_head, (hsize_t)r0, 0}, count[3] = {1, (hsize_t)nr, (hsize_t)d->T};
    hsize_t mdims[2] = {(hsize_t)nr, (hsize_t)d->T};
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(2, mdims, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    herr_t rc;
    size_t n = (size_t)nr * d->T;
    if (d->o.f16) {
        if (n > d->half_cap) {
            free(d->half_buf);
            d->half_buf = malloc(n * sizeof *d->half_buf);
            d->half_cap = d->half_buf ? n : 0;
        }
        if (!d->half_buf) rc = -1;
        else {
            for (size_t i = 0; i < n; i++) d->half_buf[i] = ds_f32_to_f16(src[i]);
            rc = H5Dwrite(ds, d->f16, ms, fs, H5P_DEFAULT, d->half_buf);
        }
    } else {
        rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, src);
    }
    H5Sclose(ms);
    H5Sclose(fs);
    return rc < 0 ? ds_failc(DS_ERR_IO, "%s: writing layer %d failed (disk full?)", d->out.path, d->layer) : 0;
}

/* Each head of a block of NR rows in this many ranges of rows, so that there are pieces enough
 * for every thread even when the heads are few (16 heads on 15 threads would take two rounds). */
static int copy_pieces(const ds_dump *d, int nr) {
    return nr < COPY_PIECES / d->nheads + 1 ? nr : COPY_PIECES / d->nheads + 1;
}

/* The bytes of one chunk of an uncompressed map. */
static size_t chunk_bytes(const ds_dump *d) { return (size_t)d->R * d->C * (d->o.f16 ? 2 : 4); }

/* The chunks of row block B, from the left, that the raw writer writes: those holding a key
 * that one of its rows sees, up to its last row's own. The others hold zeros only. */
static int written_chunks(const ds_dump *d, int b) {
    const int64_t last_query = (int64_t)(b + 1) * d->R < d->T ? (int64_t)(b + 1) * d->R - 1 : d->T - 1;
    return (int)(last_query / d->C) + 1;
}

/* The chunks of one head's causal map that hold a causal key. */
static size_t causal_chunks(const ds_dump *d) {
    size_t chunks = 0;
    for (int b = 0; b < d->nblocks; b++) chunks += (size_t)written_chunks(d, b);
    return chunks;
}

/* 1 when those chunks take fewer bytes than the map itself: chunks pad the last row block to R
 * rows and the last keys to C, which for a few hundred tokens outweighs the zeros they leave
 * out (at 2048 tokens 136 chunks of 256 are written). */
static int sparse_pays(const ds_dump *d) { return causal_chunks(d) * d->R * d->C < (size_t)d->T * d->T; }

/* The softmax and difference maps (CAUSAL) and the score maps (SCORES) of a layer, each with
 * d->nheads heads. */
static void layer_maps(const ds_dump *d, int *causal, int *scores) {
    unsigned w = d->o.what;
    *causal = (w & DS_DUMP_SOFTMAX ? (d->is_diff ? 2 : 1) : 0) + (w & DS_DUMP_DIFF && d->is_diff ? 1 : 0);
    *scores = w & DS_DUMP_SCORES ? (d->is_diff ? 2 : 1) : 0;
}

/* The bytes of one layer's maps as written uncompressed: the chunks of the causal maps that
 * hold a causal key when they are chunked, else every entry. */
static double layer_map_bytes(const ds_dump *d) {
    int causal, scores;
    layer_maps(d, &causal, &scores);
    const double whole = (double)d->T * d->T * (d->o.f16 ? 2 : 4),
                 causal_map = in_chunks(d, DS_MAP_DIFF) ? (double)causal_chunks(d) * (double)chunk_bytes(d) : whole;
    return (double)d->nheads * (causal * causal_map + scores * whole);
}

/* The keys that row R of a block of maps sees: 0 .. its query position. */
static size_t causal_keys(const ds_probe_event *ev, int64_t r) {
    int64_t seen = ev->pos0 + ev->offset[1] + r + 1;
    return (size_t)(seen < ev->shape[2] ? seen : ev->shape[2]);
}

/* The most memory the raw writer's buffers take by default: 1 GiB, or a 16th of the memory. */
static double buffer_memory_cap(void) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const double hi = (double)(1 << 30);
    return pages > 0 && page > 0 && (double)pages * page / 16 < hi ? (double)pages * page / 16 : hi;
}

/* The bytes of maps the raw writer's buffers hold: one layer's as written, at least 64 MB, at
 * most buffer_memory_cap(). The attention makes a layer's maps in a burst and the MLP after it
 * makes none: with room for a layer the writers go on writing through the MLP, where with less
 * the next burst waits for them (at long context a layer's maps are hundreds of MB; see
 * docs/performance.md). DIFFSCOPE_DUMP_BUFFER_MB sets the size instead. */
static size_t write_buffer_bytes(const ds_dump *d) {
    const char *env = getenv("DIFFSCOPE_DUMP_BUFFER_MB");
    if (env && atol(env) > 0) return (size_t)atol(env) << 20;
    const double hi = buffer_memory_cap(), lo = (double)(64 << 20), layer = layer_map_bytes(d);
    return (size_t)(layer > hi ? hi : layer < lo ? lo : layer);
}

/* One row of a map, or of one of its chunks, into DST (WIDTH entries of ESIZE bytes): SEEN
 * causal keys from SRC, then up to VALID the masked ones (zeros in the softmax and difference
 * maps, -inf in the scores; the forward pass leaves them unset, since the dump's hooks read the
 * causal entries only), then zeros where a chunk reaches past the map's last key or row, which
 * HDF5 stores but never reads. */
static void copy_row(const ds_dump *d, ds_map kind, char *dst, const float *src, size_t seen, size_t valid,
                     size_t width) {
    const float fill = kind == DS_MAP_SCORES ? -INFINITY : 0.0f;
    if (d->o.f16) {
        uint16_t *h = (uint16_t *)dst, hfill = ds_f32_to_f16(fill);
        for (size_t i = 0; i < seen; i++) h[i] = ds_f32_to_f16(src[i]);
        for (size_t i = seen; i < valid; i++) h[i] = hfill;
        for (size_t i = valid; i < width; i++) h[i] = 0;
    } else { /* read again only by the writers, much later */
        ds_stream_row((float *)dst, src, seen, valid, fill);
        if (valid < width) ds_stream_row((float *)dst + valid, NULL, 0, width - valid, 0.0f);
    }
}

/* The file offset of the first chunk of map KIND's head J, row block B. HDF5 allocates the
 * chunks in order (head, row block, key chunk), one after the other (locate_chunks). */
static off_t chunk_offset(const ds_dump *d, ds_map kind, int j, int b) {
    return (off_t)(d->map_addr[kind] + ((size_t)j * d->nblocks + (size_t)b) * (size_t)d->ncols * chunk_bytes(d));
}

/* Where head EV->offset[0] of map KIND goes in its dataset, or -1 when it is not selected.
 * DiffLlama's scores hold all H sub-heads: the selected heads i, then their partners i + H/2. */
static int output_head(const ds_dump *d, ds_map kind, const ds_probe_event *ev) {
    int h = (int)ev->offset[0], second = kind == DS_MAP_SCORES && d->is_diff && h >= d->Hd;
    int j = d->head_slot[second ? h - d->Hd : h];
    return j < 0 ? -1 : second ? d->nheads + j : j;
}

/* The order of the maps in the forward pass, for reporting the first non-finite entry. */
static int forward_order(ds_map kind) {
    return kind == DS_MAP_SCORES ? 0 : kind == DS_MAP_SOFTMAX2 ? 2 : kind == DS_MAP_DIFF ? 3 : 1;
}

/* The first NaN or ±inf in rows R0..R1 of one head's block, ROWS its row 0 (row stride
 * ev->strides[1]), among the keys its queries see (the masked rest is 0, or -inf for scores):
 * 1 with its row and key in *ROW and *KEY, else 0. */
static int rows_nonfinite(const ds_probe_event *ev, const float *rows, int64_t r0, int64_t r1, int64_t *row,
                          int64_t *key) {
    for (int64_t r = r0; r < r1; r++) {
        int64_t bad = ds_first_nonfinite(rows + r * ev->strides[1], causal_keys(ev, r));
        if (bad >= 0) return *row = r, *key = bad, 1;
    }
    return 0;
}

static int fail_nonfinite(const nonfinite_entry *e, int layer) {
    return ds_failc(DS_ERR_NONFINITE, "layer %d: attention map '%s' holds %s (head %d, query %lld, key %lld)", layer,
                    ds_map_name(e->map), ds_nonfinite_name(e->value), e->head, (long long)e->query, (long long)e->key);
}

/* Keeps the first non-finite entry among the causal keys of one head's rows, in the order of
 * nonfinite_entry; reported at the layer's end (report_nonfinite). */
static void note_nonfinite(ds_dump *d, ds_map kind, const ds_probe_event *ev) {
    int64_t r, k;
    if (!rows_nonfinite(ev, ev->data, 0, ev->shape[1], &r, &k)) return;
    nonfinite_entry e = {1, ev->pos0 + ev->offset[1] + r, k, forward_order(kind), (int)ev->offset[0], kind,
                         ev->data[r * ev->strides[1] + k]};
#pragma omp critical(ds_dump_nonfinite)
    {
        const nonfinite_entry *b = &d->bad;
        int first = !b->found || e.query != b->query ? !b->found || e.query < b->query
                    : e.order != b->order ? e.order < b->order
                    : e.head != b->head ? e.head < b->head : e.key < b->key;
        if (first) d->bad = e;
    }
}

static int report_nonfinite(ds_dump *d, int layer) { return d->bad.found ? fail_nonfinite(&d->bad, layer) : 0; }

/* One head's rows of a block ([1, nr, T], from a task of the forward pass) into a buffer of the
 * raw writer, queued for the file range they fill: in a contiguous map a head's rows r0..r0+nr,
 * in a chunked one the block's chunks that hold a causal key, which come first of its run. */
static int queue_head_rows(ds_dump *d, const ds_probe_event *ev, ds_map kind) {
    const int j = output_head(d, kind, ev);
    if (j < 0) return 0;
    if (!ds_get_allow_nonfinite()) note_nonfinite(d, kind, ev);
    const int64_t nr = ev->shape[1], r0 = ev->offset[1];
    if (ev->pos0 || r0 % d->R || nr > d->R || nr < 1)
        return ds_fail("%s: internal error: maps of layer %d, rows %lld..%lld, not a row block of %d", d->out.path,
                       ev->layer, (long long)r0, (long long)(r0 + nr - 1), d->R);
    const size_t esize = d->o.f16 ? 2 : 4, T = (size_t)d->T;
    char *buf = ds_raw_writer_take(d->raw);
    if (!buf) return -1;
    ds_raw_range range;
    if (in_chunks(d, kind)) {
        const size_t cb = chunk_bytes(d), C = (size_t)d->C;
        const int b = (int)(r0 / d->R), nc = written_chunks(d, b);
        for (int c = 0; c < nc; c++) {
            const size_t k0 = (size_t)c * C, valid = T - k0 < C ? T - k0 : C;
            for (int64_t r = 0; r < d->R; r++) {
                const size_t seen = r < nr ? causal_keys(ev, r) : 0, here = seen <= k0 ? 0 : seen - k0;
                copy_row(d, kind, buf + (size_t)c * cb + (size_t)r * C * esize, ev->data + r * ev->strides[1] + k0,
                         here < valid ? here : valid, r < nr ? valid : 0, C);
            }
        }
        range = (ds_raw_range){chunk_offset(d, kind, j, b), 0, (size_t)nc * cb};
    } else {
        for (int64_t r = 0; r < nr; r++)
            copy_row(d, kind, buf + (size_t)r * T * esize, ev->data + r * ev->strides[1], causal_keys(ev, r), T, T);
        range = (ds_raw_range){(off_t)(d->map_addr[kind] + ((size_t)j * T + (size_t)r0) * T * esize), 0,
                               (size_t)nr * T * esize};
    }
    ds_stream_fence();
    return ds_raw_writer_submit(d->raw, buf, &range, 1);
}

static hid_t layer_group(ds_dump *d, int l, const char *sub) {
    char path[64];
    snprintf(path, sizeof path, DS_DUMP_LAYER_PATH, l, sub);
    return ds_h5_group(d->out.file, path);
}

/* ---- per-event writers ---- */

/* rows_nonfinite over selected head J's rows of a whole block (HEAD_BASE shifts the head). */
static int head_nonfinite(const ds_dump *d, const ds_probe_event *ev, int j, int head_base, int64_t r0, int64_t r1,
                          int64_t *row, int64_t *key) {
    return rows_nonfinite(ev, ev->data + (size_t)(d->heads[j] + head_base) * ev->strides[0], r0, r1, row, key);
}

/* Fails when a selected head's block holds NaN or ±inf, unless non-finite values are allowed.
 * The heads are checked in parallel, in pieces of rows as the copy is (16 heads on 15 threads
 * would take two rounds); the message names the first bad head in order, and its first bad
 * row. */
static int check_map_block(const ds_dump *d, ds_map kind, const ds_probe_event *ev, int head_base) {
    if (ds_get_allow_nonfinite()) return 0;
    const int nr = (int)ev->shape[1], pieces = copy_pieces(d, nr), ntasks = d->nheads * pieces;
    int first_bad = ntasks;
#pragma omp parallel for schedule(dynamic) reduction(min : first_bad) \
    if ((int64_t)d->nheads * ev->shape[1] * ev->shape[2] >= OUTLIER_PAR_MIN)
    for (int t = 0; t < ntasks; t++) {
        const int j = t / pieces, piece = t % pieces;
        int64_t r, k;
        if (t < first_bad && head_nonfinite(d, ev, j, head_base, piece * nr / pieces, (piece + 1) * nr / pieces, &r, &k))
            first_bad = t;
    }
    int64_t r, k;
    const int j = first_bad / pieces;
    if (first_bad == ntasks || !head_nonfinite(d, ev, j, head_base, 0, nr, &r, &k)) return 0;
    const int head = d->heads[j] + head_base;
    const nonfinite_entry e = {1, ev->pos0 + ev->offset[1] + r, k, forward_order(kind), head, kind,
                               ev->data[(size_t)head * ev->strides[0] + r * ev->strides[1] + k]};
    return fail_nonfinite(&e, ev->layer);
}

/* The file offset of uncompressed map KIND's first chunk, after checking that HDF5 allocated
 * its HEADS x nblocks x ncols chunks one after the other: the first and the last are where that
 * order puts them, and together they take exactly the room of that many chunks. */
static int locate_chunks(ds_dump *d, ds_map kind, int heads, int layer) {
    const hsize_t n = (hsize_t)heads * d->nblocks * d->ncols, cb = chunk_bytes(d);
    hsize_t first[3] = {0, 0, 0}, last[3] = {(hsize_t)heads - 1, (hsize_t)(d->nblocks - 1) * d->R,
                                             (hsize_t)(d->ncols - 1) * d->C};
    unsigned mask;
    haddr_t a0 = HADDR_UNDEF, a1 = HADDR_UNDEF;
    hsize_t s0 = 0, s1 = 0;
    if (H5Dget_chunk_info_by_coord(d->maps[kind], first, &mask, &a0, &s0) < 0 ||
        H5Dget_chunk_info_by_coord(d->maps[kind], last, &mask, &a1, &s1) < 0 || a0 == HADDR_UNDEF || s0 != cb ||
        s1 != cb || a1 != a0 + (n - 1) * cb || H5Dget_storage_size(d->maps[kind]) != n * cb)
        return ds_fail("%s: internal error: HDF5 did not lay out the chunks of dataset '%s' of layer %d in order",
                       d->out.path, ds_map_name(kind), layer);
    d->map_addr[kind] = a0;
    return 0;
}

/* Allocates on disk the chunks the raw writer will write (ds_outfile_reserve), in runs of
 * adjacent ones; the chunks of zeros stay unallocated. */
static int reserve_written_chunks(ds_dump *d, ds_map kind, int heads) {
    long long at = 0, len = 0;
    for (int j = 0; j < heads; j++)
        for (int b = 0; b < d->nblocks; b++) {
            const long long off = (long long)chunk_offset(d, kind, j, b),
                            n = (long long)written_chunks(d, b) * (long long)chunk_bytes(d);
            if (len && off == at + len) {
                len += n;
                continue;
            }
            if (ds_outfile_reserve(&d->out.f, at, len)) return -1;
            at = off, len = n;
        }
    return ds_outfile_reserve(&d->out.f, at, len);
}

/* Dataset KIND of the layer, with the heads it holds; its file offset when uncompressed, and
 * its blocks allocated on disk. */
static int create_layer_map(ds_dump *d, ds_map kind, int layer) {
    int heads = kind == DS_MAP_SCORES && d->is_diff ? 2 * d->nheads : d->nheads;
    hid_t g = layer_group(d, layer, DS_DUMP_ATTN);
    if (g < 0) return -1;
    d->maps[kind] = create_map_dataset(d, g, kind, heads);
    int *sel = malloc((size_t)heads * sizeof *sel), n = 0;
    for (int j = 0; sel && j < d->nheads; j++) sel[n++] = d->heads[j];
    for (int j = 0; sel && heads > d->nheads && j < d->nheads; j++) sel[n++] = d->heads[j] + d->Hd;
    int rc = d->maps[kind] < 0 || !sel ? -1 : ds_h5_attr_int_array(d->maps[kind], DS_DUMP_ATTR_HEADS, sel, n);
    free(sel);
    H5Gclose(g);
    if (rc) return -1;
    d->map_addr[kind] = HADDR_UNDEF;
    if (d->o.compress > 0) return 0;
    if (in_chunks(d, kind)) return locate_chunks(d, kind, heads, layer) || reserve_written_chunks(d, kind, heads);
    d->map_addr[kind] = H5Dget_offset(d->maps[kind]);
    if (d->map_addr[kind] == HADDR_UNDEF)
        return ds_fail("%s: no file offset for dataset '%s' of layer %d", d->out.path, ds_map_name(kind), layer);
    return ds_outfile_reserve(&d->out.f, (long long)d->map_addr[kind], (long long)H5Dget_storage_size(d->maps[kind]));
}

/* A block of compressed maps [heads, nr, T] from the forward pass -> the selected heads of
 * dataset KIND; DiffLlama's scores hold all H sub-heads, the partners i + H/2 after the heads. */
static int write_map_block(ds_dump *d, const ds_probe_event *ev, ds_map kind) {
    const int halves = kind == DS_MAP_SCORES && d->is_diff ? 2 : 1;
    for (int half = 0; half < halves; half++) {
        const int head_base = half * d->Hd, out_base = half * d->nheads;
        if (check_map_block(d, kind, ev, head_base)) return -1;
        for (int j = 0; j < d->nheads; j++) {
            const float *src = ev->data + (size_t)(d->heads[j] + head_base) * ev->strides[0];
            if (write_rows(d, d->maps[kind], out_base + j, (int)ev->offset[1], (int)ev->shape[1], src)) return -1;
        }
    }
    return 0;
}

/* The part that collects the scores of (sub-head H, row block B): fixed by the shapes, dealt
 * out in turn so that every part gets long rows of the causal triangle and short ones. */
static int scores_part(const ds_dump *d, int h, int b) { return (h * d->nblocks + b) % OUTLIER_PARTS; }

/* One sub-head's scores of a row block (from a task of the forward pass): its causal entries
 * into the place of (head, block) in their part, counted in the tally of (head, block). */
static int put_score_rows(ds_dump *d, const ds_probe_event *ev, ds_map unused) {
    (void)unused;
    const int h = (int)ev->offset[0], r0 = (int)ev->offset[1], b = r0 / d->R;
    if (ev->pos0 || r0 % d->R || h >= d->H)
        return ds_fail("%s: internal error: scores of head %d, rows from %d, not a row block of %d", d->out.path, h, r0,
                       d->R);
    size_t at = d->score_at[(size_t)h * d->nblocks + b];
    ds_outliers *part = &d->scores[scores_part(d, h, b)], *tally = &d->score_tally[(size_t)h * d->nblocks + b];
    for (int64_t r = 0; r < ev->shape[1]; r++) {
        const int64_t q = r0 + r;
        ds_outliers_put_row(part, at, tally, ev->data + r * ev->strides[1], q + 1, h, q); /* causal entries only */
        at += (size_t)q + 1;
    }
    return 0;
}

/* The tallies of the layer's scores into their parts, each part's in (head, block) order (the
 * parts in parallel). */
static void add_score_tallies(ds_dump *d) {
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < OUTLIER_PARTS; p++)
        for (int h = 0; h < d->H; h++)
            for (int b = 0; b < d->nblocks; b++)
                if (scores_part(d, h, b) == p)
                    ds_outliers_add_tally(&d->scores[p], &d->score_tally[(size_t)h * d->nblocks + b]);
}

static int write_groupnorm(ds_dump *d, const ds_probe_event *ev) {
    const ds_config *c = ds_model_config(d->m);
    double lam_init = ds_lambda_init(ev->layer);
    float *rms = malloc((size_t)d->nheads * d->T * sizeof(float));
    float *scale = malloc((size_t)d->nheads * d->T * sizeof(float));
    int rc = -1;
    if (rms && scale) {
        /* each (head, token) on its own: the same values for any thread count */
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)d->nheads * d->T * ev->shape[2] >= OUTLIER_PAR_MIN)
        for (int j = 0; j < d->nheads; j++)
            for (int t = 0; t < d->T; t++) {
                const float *o = ev->data + d->heads[j] * ev->strides[0] + t * ev->strides[1];
                double ss = 0;
                for (int i = 0; i < ev->shape[2]; i++) ss += (double)o[i] * o[i];
                double ms = ss / ev->shape[2];
                rms[(size_t)j * d->T + t] = (float)sqrt(ms);
                scale[(size_t)j * d->T + t] = (float)((1.0 - lam_init) / sqrt(ms + c->rms_norm_eps));
            }
        hid_t g = layer_group(d, ev->layer, DS_DUMP_GROUPNORM_GROUP);
        hsize_t dims[2] = {(hsize_t)d->nheads, (hsize_t)d->T};
        rc = g < 0 ? -1 : ds_h5_write_f32(g, DS_DUMP_GROUPNORM_RMS, 2, dims, rms) ||
                              ds_h5_write_f32(g, DS_DUMP_GROUPNORM_SCALE, 2, dims, scale);
        if (g >= 0) H5Gclose(g);
    } else {
        ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    free(rms), free(scale);
    return rc;
}

static int write_lambda(ds_dump *d, const ds_probe_event *ev) {
    double lam[4];
    ds_model_lambda(d->m, ev->layer, lam);
    /* The value the forward pass uses: an intervention registered before us may have set it. */
    double used = ev->data[3] == (float)lam[3] ? lam[3] : ev->data[3];
    d->lambda = used;
    hid_t g = layer_group(d, ev->layer, DS_DUMP_ATTN);
    if (g < 0) return -1;
    int rc = ds_h5_attr_double(g, DS_DUMP_ATTR_LAMBDA_1, lam[0]) || ds_h5_attr_double(g, DS_DUMP_ATTR_LAMBDA_2, lam[1]) ||
             ds_h5_attr_double(g, DS_DUMP_ATTR_LAMBDA_INIT, lam[2]) ||
             ds_h5_attr_double(g, DS_DUMP_ATTR_LAMBDA_FULL, used) ||
             ds_h5_attr_int(g, DS_DUMP_ATTR_LAMBDA_OVERRIDDEN, used != lam[3]) ||
             (used != lam[3] && ds_h5_attr_double(g, DS_DUMP_ATTR_LAMBDA_MODEL, lam[3]));
    H5Gclose(g);
    return rc ? -1 : 0;
}

/* The cancelled share of one differential head's rows: its softmax2 rows come with the same
 * rows of its softmax1 (ds_probe_event.first_map). */
static int cancelled_rows(ds_dump *d, const ds_probe_event *ev, ds_map unused) {
    (void)unused;
    const int j = d->head_slot[ev->offset[0]];
    if (j < 0) return 0;
    if (!ev->first_map) return ds_fail("%s: internal error: softmax2 without its softmax1", d->out.path);
    for (int64_t r = 0; r < ev->shape[1]; r++) {
        const int q = (int)(ev->pos0 + ev->offset[1] + r);
        const size_t at = (size_t)r * ev->strides[1];
        d->cancelled[(size_t)j * d->T + q] = (float)ds_cancelled_share(ev->first_map + at, ev->data + at, d->lambda, q + 1);
    }
    return 0;
}

/* /layers/{l} exists: the λ attributes (written for every DiffLlama layer) made it. */
static int write_cancelled(ds_dump *d, const ds_probe_event *ev) {
    char path[64];
    snprintf(path, sizeof path, DS_DUMP_LAYER_PATH, ev->layer, DS_DUMP_CANCELLED_SHARE);
    hsize_t dims[2] = {(hsize_t)d->nheads, (hsize_t)d->T};
    static const char *const axes[2] = {"head", "query"};
    if (ds_h5_write_f32(d->out.file, path, 2, dims, d->cancelled)) return -1;
    hid_t ds = H5Dopen2(d->out.file, path, H5P_DEFAULT);
    int rc = ds < 0 || ds_h5_attr_int_array(ds, DS_DUMP_ATTR_HEADS, d->heads, d->nheads) ||
             H5DSset_label(ds, 0, axes[0]) < 0 || H5DSset_label(ds, 1, axes[1]) < 0;
    if (ds >= 0) H5Dclose(ds);
    return rc ? ds_failc(DS_ERR_IO, "%s: cannot write %s", d->out.path, path) : 0;
}

static void push_matrix(ds_outliers *parts, const ds_probe_event *ev) {
    int64_t T = ev->shape[0];
#pragma omp parallel for schedule(dynamic) if (ev->shape[0] * ev->shape[1] >= OUTLIER_PAR_MIN)
    for (int p = 0; p < OUTLIER_PARTS; p++)
        for (int64_t t = p * T / OUTLIER_PARTS; t < (p + 1) * T / OUTLIER_PARTS; t++)
            ds_outliers_push_row(&parts[p], ev->data + t * ev->strides[0], ev->shape[1], t, 0);
}

static int write_outliers(ds_dump *d, int l, const char *name, const ds_outlier_result *r, int nc,
                          const char *index_names) {
    char path[64];
    snprintf(path, sizeof path, DS_DUMP_LAYER_PATH "/%s", l, DS_DUMP_OUTLIERS_GROUP, name);
    hid_t g = ds_h5_group(d->out.file, path);
    if (g < 0) return -1;
    hsize_t dv[1] = {(hsize_t)r->k}, di[2] = {(hsize_t)r->k, (hsize_t)nc};
    hid_t sp = H5Screate_simple(2, di, NULL);
    hid_t ds = H5Dcreate2(g, DS_DUMP_OUTLIER_INDEX, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->coords);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    int rc = w < 0 || ds_h5_write_f32(g, DS_DUMP_OUTLIER_VALUES, 1, dv, r->values) ||
             ds_h5_attr_double(g, DS_DUMP_ATTR_MEDIAN, r->median) || ds_h5_attr_double(g, DS_DUMP_ATTR_MEAN, r->mean) ||
             ds_h5_attr_double(g, DS_DUMP_ATTR_STD, r->std) || ds_h5_attr_double(g, DS_DUMP_ATTR_KURTOSIS, r->kurtosis) ||
             ds_h5_attr_int(g, DS_DUMP_ATTR_COUNT, r->count) || ds_h5_attr_str(g, DS_DUMP_ATTR_INDEX_NAMES, index_names);
    if (w < 0) ds_failc(DS_ERR_IO, "%s: cannot write outliers of layer %d", d->out.path, l);
    H5Gclose(g);
    return rc ? -1 : 0;
}

/* The three statistics of a layer, finished together by all threads over their 3 x 60 parts
 * (ds_outliers_finish_many), then written in order. */
static int write_layer_outliers(ds_dump *d, int l) {
    ds_outliers *const acc[3] = {d->scores, d->resid, d->mlp};
    static const char *const names[3] = {DS_DUMP_OUTLIER_SCORES, DS_DUMP_OUTLIER_RESID, DS_DUMP_OUTLIER_MLP};
    static const char *const index_names[3] = {DS_DUMP_INDEX_HEAD_QUERY_KEY, DS_DUMP_INDEX_TOKEN_CHANNEL,
                                               DS_DUMP_INDEX_TOKEN_CHANNEL};
    ds_outlier_result res[3];
    if (ds_outliers_finish_many(acc, 3, OUTLIER_PARTS, res))
        return ds_failc(DS_ERR_NOMEM, "out of memory collecting the outlier statistics of layer %d", l);
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        if (!rc) rc = write_outliers(d, l, names[i], &res[i], acc[i]->ncoords, index_names[i]);
        ds_outlier_result_free(&res[i]);
    }
    return rc;
}

/* ---- event handlers: one per (quantity, probe point) ---- */

/* The uncompressed maps go through the raw writer, a head's rows of a row block per buffer;
 * room for a layer's maps (write_buffer_bytes), and for a few buffers per thread at least.
 * Every buffer has room for a whole row block, but a chunked map's block fills only its causal
 * chunks, about half of that on average: the buffers are counted by the bytes a block writes on
 * average, so that each block of a layer finds one, not half of them, as long as their memory
 * stays within buffer_memory_cap() (or the room asked for, when that is more). */
static int open_raw_writer(ds_dump *d) {
    int causal, scores;
    layer_maps(d, &causal, &scores);
    const double blocks = (double)(causal + scores) * d->nheads * d->nblocks, room = (double)write_buffer_bytes(d),
                 most = room > buffer_memory_cap() ? room : buffer_memory_cap();
    const size_t bytes = (size_t)d->ncols * chunk_bytes(d), least = 4 * (size_t)omp_get_max_threads() + 4;
    size_t nbufs = blocks > 0 ? (size_t)(room / (layer_map_bytes(d) / blocks)) : least;
    if ((double)nbufs * (double)bytes > most) nbufs = (size_t)(most / (double)bytes);
    nbufs = nbufs < least ? least : nbufs > 4096 ? 4096 : nbufs;
    d->raw = ds_raw_writer_open(d->out.tmp, d->out.path, bytes, (int)nbufs);
    return d->raw ? 0 : -1;
}

/* ---- the quantities: what --what names, what each needs from the forward pass ---- */

enum { ANY_MODEL, DIFF_ONLY, STANDARD_ONLY }; /* which models a hook applies to */
enum { MAX_QUANTITY_HOOKS = 3 };
#define NO_MAP DS_MAP_COUNT /* a handler that writes no map */

/* A handler at a probe point: FN takes whole events on the forward pass's calling thread;
 * EACH_HEAD takes one head's rows of a row block at a time, from the forward pass's tasks,
 * concurrently (ds_probes_add_point_heads). MAP: the dataset a map writer writes; it writes
 * whole blocks through HDF5 when the maps are compressed, one head at a time otherwise. */
typedef struct {
    ds_hook_point point;
    int models;
    int (*fn)(ds_dump *d, const ds_probe_event *ev);
    ds_map map;
    int (*each_head)(ds_dump *d, const ds_probe_event *ev, ds_map map);
} quantity_hook;

typedef struct {
    const char *name; /* the --what word and the word in the root attribute `what`; NULL: always */
    unsigned bit;     /* DS_DUMP_* */
    const char *help; /* one line for --help */
    quantity_hook hooks[MAX_QUANTITY_HOOKS]; /* ended by one with neither fn nor each_head */
} quantity;

static int open_layer_maps(ds_dump *d, const ds_probe_event *ev);
static int close_layer_maps(ds_dump *d, const ds_probe_event *ev);
static int on_outlier_mlp(ds_dump *d, const ds_probe_event *ev) { return push_matrix(d->mlp, ev), 0; }
static int on_outlier_resid(ds_dump *d, const ds_probe_event *ev) {
    push_matrix(d->resid, ev);
    add_score_tallies(d);
    return write_layer_outliers(d, ev->layer);
}

/* In the order of the DS_DUMP_* bits. At a point several rows share, the handlers run in table
 * order: the layer's maps are closed before its outlier statistics are written. */
static const quantity quantities[] = {
    {NULL, 0, NULL,
     {{DS_HOOK_LAMBDA, DIFF_ONLY, write_lambda, NO_MAP, NULL}, {DS_HOOK_RESID_PRE, ANY_MODEL, open_layer_maps, NO_MAP, NULL},
      {DS_HOOK_RESID_POST, ANY_MODEL, close_layer_maps, NO_MAP, NULL}}},
    {"softmax", DS_DUMP_SOFTMAX, "attention maps: softmax1 and softmax2 (DiffLlama) or softmax (Llama)",
     {{DS_HOOK_PATTERN1, DIFF_ONLY, NULL, DS_MAP_SOFTMAX1, queue_head_rows},
      {DS_HOOK_PATTERN2, DIFF_ONLY, NULL, DS_MAP_SOFTMAX2, queue_head_rows},
      {DS_HOOK_PATTERN, STANDARD_ONLY, NULL, DS_MAP_SOFTMAX, queue_head_rows}}},
    {"diff", DS_DUMP_DIFF, "differential maps softmax1 - lambda*softmax2 (DiffLlama)",
     {{DS_HOOK_DIFF, DIFF_ONLY, NULL, DS_MAP_DIFF, queue_head_rows}}},
    {"scores", DS_DUMP_SCORES, "pre-softmax scores of every head (DiffLlama: every sub-head)",
     {{DS_HOOK_SCORES, ANY_MODEL, NULL, DS_MAP_SCORES, queue_head_rows}}},
    {"groupnorm", DS_DUMP_GROUPNORM, "GroupNorm rms and scale of each head and token (DiffLlama)",
     {{DS_HOOK_GROUPNORM_IN, DIFF_ONLY, write_groupnorm, NO_MAP, NULL}}},
    {"outliers", DS_DUMP_OUTLIERS, "top-k values and moments of |scores|, |residual|, |MLP activation|",
     {{DS_HOOK_SCORES, ANY_MODEL, NULL, NO_MAP, put_score_rows}, {DS_HOOK_MLP_POST, ANY_MODEL, on_outlier_mlp, NO_MAP, NULL},
      {DS_HOOK_RESID_POST, ANY_MODEL, on_outlier_resid, NO_MAP, NULL}}},
    {"cancelled_share", DS_DUMP_CANCELLED, "share of softmax1 that lambda*softmax2 cancels (DiffLlama)",
     {{DS_HOOK_PATTERN2, DIFF_ONLY, NULL, NO_MAP, cancelled_rows},
      {DS_HOOK_RESID_POST, DIFF_ONLY, write_cancelled, NO_MAP, NULL}}},
};
enum { N_QUANTITIES = sizeof quantities / sizeof quantities[0] };

/* Every handler of quantity Q, H running over them. */
#define FOR_HANDLERS(q, h) \
    for (const quantity_hook *h = (q)->hooks; h < (q)->hooks + MAX_QUANTITY_HOOKS && (h->fn || h->each_head); h++)

/* 1 when handler H takes one head at a time. */
static int takes_heads(const ds_dump *d, const quantity_hook *h) {
    return h->each_head && (h->map == NO_MAP || d->o.compress <= 0);
}

static int hook_fits_model(const ds_dump *d, const quantity_hook *h) {
    return h->models == ANY_MODEL || (h->models == DIFF_ONLY) == d->is_diff;
}

/* 1 when quantity Q is selected and hook H of it applies to this model. */
static int hook_applies(const ds_dump *d, const quantity *q, const quantity_hook *h) {
    return (!q->bit || (d->o.what & q->bit)) && hook_fits_model(d, h);
}

/* The layer's map datasets, made before the forward pass hands out its maps from its tasks
 * (HDF5 is called from the calling thread only); the raw writer with the first. */
static int open_layer_maps(ds_dump *d, const ds_probe_event *ev) {
    int made = 0;
    for (int i = 0; i < N_QUANTITIES; i++)
        FOR_HANDLERS(&quantities[i], h) {
            if (h->map == NO_MAP || !hook_applies(d, &quantities[i], h) || d->maps[h->map] >= 0) continue;
            if (create_layer_map(d, h->map, ev->layer)) return -1;
            made = 1;
        }
    return made && d->o.compress <= 0 && !d->raw ? open_raw_writer(d) : 0;
}

/* The layer is complete at its hook_resid_post: its maps are closed (before the outlier
 * statistics, whose handler comes later in the table, are written). */
static int close_layer_maps(ds_dump *d, const ds_probe_event *ev) {
    int rc = report_nonfinite(d, ev->layer);
    for (int k = 0; k < DS_MAP_COUNT; k++)
        if (d->maps[k] >= 0) {
            if (H5Dclose(d->maps[k]) < 0 && !rc)
                rc = ds_failc(DS_ERR_IO, "%s: writing layer %d failed (disk full?)", d->out.path, ev->layer);
            d->maps[k] = H5I_INVALID_HID;
        }
    return rc;
}

const char *ds_dump_quantity(int i, const char **help) {
    for (int k = 0; k < N_QUANTITIES; k++)
        if (quantities[k].name && i-- == 0) {
            if (help) *help = quantities[k].help;
            return quantities[k].name;
        }
    return NULL;
}

/* The names of the quantities in BITS as a list joined by SEP, into BUF. */
static void quantity_list(unsigned bits, const char *sep, char *buf, size_t size) {
    buf[0] = 0;
    for (int i = 0; i < N_QUANTITIES; i++)
        if (quantities[i].name && (bits & quantities[i].bit))
            snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? sep : "", quantities[i].name);
}

int ds_dump_parse_what(const char *s, unsigned *what) {
    *what = 0;
    for (const char *p = s; *p; ) {
        size_t n = strcspn(p, ",");
        unsigned bit = n == 3 && !strncmp(p, "all", 3) ? DS_DUMP_ALL : 0;
        for (int i = 0; i < N_QUANTITIES; i++)
            if (quantities[i].name && strlen(quantities[i].name) == n && !strncmp(p, quantities[i].name, n))
                bit = quantities[i].bit;
        if (!bit) {
            char known[96];
            quantity_list(DS_DUMP_ALL, ", ", known, sizeof known);
            return ds_fail("unknown item '%.*s' (%s, all)", (int)n, p, known);
        }
        *what |= bit;
        p += n + (p[n] == ',');
    }
    return *what ? 0 : ds_fail("nothing selected");
}

/* The DS_DUMP_* bits of the quantities this model has: those with a hook that applies to it. */
static unsigned model_quantities(const ds_dump *d) {
    unsigned bits = 0;
    for (int i = 0; i < N_QUANTITIES; i++)
        FOR_HANDLERS(&quantities[i], h)
            if (hook_fits_model(d, h)) bits |= quantities[i].bit;
    return bits;
}

/* Narrows the selection to the model's quantities (DS_DUMP_IF_PRESENT), or refuses one that the
 * model lacks, so that the root attribute `what` lists only what the file holds. */
static int resolve_what(ds_dump *d) {
    unsigned has = model_quantities(d), missing = d->o.what & ~has & ~(unsigned)DS_DUMP_IF_PRESENT;
    if (d->o.what & DS_DUMP_IF_PRESENT) missing = 0;
    d->o.what &= has;
    if (missing) {
        char name[96], list[96];
        quantity_list(missing, ",", name, sizeof name);
        quantity_list(has, ", ", list, sizeof list);
        return ds_fail("--what %s: model %s (%s) has no such maps or statistics (it has %s)", name,
                       ds_model_dir(d->m), ds_arch_name(ds_model_config(d->m)->arch), list);
    }
    return d->o.what ? 0 : ds_fail("--what: nothing selected that model %s has", ds_model_dir(d->m));
}

/* Whole events, on the forward pass's calling thread. */
static int on_event(const ds_probe_event *ev, void *user) {
    ds_dump *d = user;
    if (ev->layer < 0 || !d->layer_on[ev->layer]) return 0;
    d->layer = ev->layer;
    for (int i = 0; i < N_QUANTITIES; i++)
        FOR_HANDLERS(&quantities[i], h) {
            if (h->point != ev->point || !hook_applies(d, &quantities[i], h) || takes_heads(d, h)) continue;
            if (h->map != NO_MAP ? write_map_block(d, ev, h->map) : h->fn(d, ev)) return -1;
        }
    return 0;
}

/* One head's rows of a row block, from a task of the forward pass: touches nothing that
 * another head's or block's call touches. */
static int on_head(const ds_probe_event *ev, void *user) {
    ds_dump *d = user;
    for (int i = 0; i < N_QUANTITIES; i++)
        FOR_HANDLERS(&quantities[i], h)
            if (h->point == ev->point && hook_applies(d, &quantities[i], h) && takes_heads(d, h) &&
                h->each_head(d, ev, h->map))
                return -1;
    return 0;
}

/* ---- begin / finish ---- */

/* At each probe point that a selected quantity needs, on every selected layer, a hook for the
 * handlers of whole events and one for those of a head at a time. Compressed maps go to HDF5
 * from the forward pass's blocks, whole rows (the scores' masked keys -inf); every other
 * handler reads the causal entries only. */
static int register_hooks(ds_dump *d, ds_probes *p) {
    char whole[DS_HOOK_COUNT] = {0}, per_head[DS_HOOK_COUNT] = {0};
    for (int i = 0; i < N_QUANTITIES; i++)
        FOR_HANDLERS(&quantities[i], h)
            if (hook_applies(d, &quantities[i], h)) (takes_heads(d, h) ? per_head : whole)[h->point] = 1;
    for (int l = 0; l < d->L; l++)
        for (int point = 0; point < DS_HOOK_COUNT && d->layer_on[l]; point++) {
            ds_hook_point pt = (ds_hook_point)point;
            if (whole[point] && (d->o.compress > 0 ? ds_probes_add_point : ds_probes_add_point_causal)(p, pt, l, on_event, d))
                return -1;
            if (per_head[point] && ds_probes_add_point_heads(p, pt, l, on_head, d)) return -1;
        }
    return d->hidden.out ? ds_hidden_states_attach(p, &d->hidden) : 0;
}

static int write_tokens(ds_dump *d, const int *ids) {
    hid_t g = ds_h5_group(d->out.file, DS_DUMP_TOKENS);
    if (g < 0) return -1;
    hsize_t n = (hsize_t)d->T;
    int rc = ds_h5_write_i32(g, DS_DUMP_TOKEN_IDS, 1, &n, ids);
    char **text = malloc(n * sizeof *text);
    char (*idbuf)[16] = malloc(n * sizeof *idbuf);
    if (!rc && text && idbuf) {
        for (int t = 0; t < d->T; t++) {
            text[t] = d->o.token_text && d->o.token_text[t] ? d->o.token_text[t] : idbuf[t];
            snprintf(idbuf[t], sizeof idbuf[t], "[%d]", ids[t]);
        }
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        H5Tset_cset(st, H5T_CSET_UTF8);
        hid_t sp = H5Screate_simple(1, &n, NULL);
        hid_t ds = H5Dcreate2(g, DS_DUMP_TOKEN_TEXT, st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc = ds < 0 || H5Dwrite(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) < 0;
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
        H5Tclose(st);
        if (rc) ds_failc(DS_ERR_IO, "%s: cannot write " DS_DUMP_TOKEN_TEXT_PATH, d->out.path);
    } else if (!rc) {
        rc = ds_failc(DS_ERR_NOMEM, "out of memory");
    }
    free(text), free(idbuf);
    H5Gclose(g);
    return rc ? -1 : 0;
}

/* The caller's provenance record is written at once. Without one, a record is made here from
 * the model's folder; hashing it reads the model's files, which the forward pass need not
 * wait for, so it runs on a thread of its own and the record is written when the dump
 * finishes (finish_provenance). */
static int begin_provenance(ds_dump *d) {
    if (d->o.provenance) return ds_provenance_write_h5(d->o.provenance, d->out.file);
    if (!(d->own_provenance = ds_provenance_new())) return -1;
    d->hashing = ds_provenance_model_start(d->own_provenance, ds_model_dir(d->m));
    return d->hashing ? 0 : -1;
}

static int finish_provenance(ds_dump *d) {
    if (!d->own_provenance) return 0;
    int rc = ds_provenance_model_wait(d->hashing);
    d->hashing = NULL;
    return rc || ds_provenance_write_h5(d->own_provenance, d->out.file) ? -1 : 0;
}

static int write_root(ds_dump *d) {
    const ds_config *c = ds_model_config(d->m);
    hid_t f = d->out.file;
    int *layers = malloc((size_t)d->L * sizeof *layers), nl = 0;
    if (!layers) return ds_failc(DS_ERR_NOMEM, "out of memory");
    char what[96];
    quantity_list(d->o.what, ",", what, sizeof what);
    for (int l = 0; l < d->L; l++)
        if (d->layer_on[l]) layers[nl++] = l;
    int rc = ds_h5_attr_str(f, DS_DUMP_ATTR_FORMAT, DS_DUMP_FORMAT) ||
             ds_h5_attr_int(f, DS_DUMP_ATTR_FORMAT_VERSION, DS_DUMP_FORMAT_VERSION) ||
             ds_h5_attr_str(f, DS_DUMP_ATTR_ARCH, ds_arch_name(c->arch)) ||
             ds_h5_attr_int(f, DS_DUMP_ATTR_NUM_LAYERS, c->num_layers) ||
             ds_h5_attr_int(f, DS_DUMP_ATTR_NUM_HEADS, c->num_heads) ||
             ds_h5_attr_int(f, DS_DUMP_ATTR_NUM_KV_HEADS, c->num_kv_heads) ||
             ds_h5_attr_int(f, DS_DUMP_ATTR_HEAD_DIM, c->head_dim) || ds_h5_attr_int(f, DS_DUMP_ATTR_NUM_TOKENS, d->T) ||
             ds_h5_attr_str(f, DS_DUMP_ATTR_CONFIG, c->json_text) ||
             ds_h5_attr_str(f, DS_DUMP_ATTR_PROMPT, d->o.prompt ? d->o.prompt : "") ||
             ds_h5_attr_int_array(f, DS_DUMP_ATTR_LAYERS, layers, nl) ||
             ds_h5_attr_str(f, DS_DUMP_ATTR_WHAT, what) ||
             (ds_get_allow_nonfinite() && ds_h5_attr_int(f, DS_DUMP_ATTR_ALLOW_NONFINITE, 1));
    free(layers);
    return rc ? -1 : 0;
}

int ds_dump_check_layers(const ds_config *c, const int *layers, int n) {
    for (int i = 0; layers && i < n; i++)
        if (layers[i] < 0 || layers[i] >= c->num_layers)
            return ds_fail("layer %d out of range (0..%d)", layers[i], c->num_layers - 1);
    return 0;
}

int ds_dump_check_heads(const ds_config *c, const int *heads, int n) {
    for (int j = 0; heads && j < n; j++) {
        if (heads[j] < 0 || heads[j] >= c->map_heads)
            return ds_fail("head %d out of range (0..%d%s)", heads[j], c->map_heads - 1,
                           c->desc->differential ? ", differential heads" : "");
        for (int i = 0; i < j; i++)
            if (heads[i] == heads[j]) return ds_fail("head %d is selected twice", heads[j]);
    }
    return 0;
}

static int select_layers_heads(ds_dump *d) {
    const ds_config *c = ds_model_config(d->m);
    if (ds_dump_check_layers(c, d->o.layers, d->o.nlayers) || ds_dump_check_heads(c, d->o.heads, d->o.nheads))
        return -1;
    d->layer_on = calloc((size_t)d->L, 1);
    int all_heads = d->Hd;
    d->nheads = d->o.heads ? d->o.nheads : all_heads;
    d->heads = malloc((size_t)(d->nheads > 0 ? d->nheads : 1) * sizeof *d->heads);
    d->head_slot = malloc((size_t)d->Hd * sizeof *d->head_slot);
    if (!d->layer_on || !d->heads || !d->head_slot) return ds_failc(DS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < (d->o.layers ? d->o.nlayers : d->L); i++) d->layer_on[d->o.layers ? d->o.layers[i] : i] = 1;
    for (int i = 0; i < d->Hd; i++) d->head_slot[i] = -1;
    for (int j = 0; j < d->nheads; j++) d->heads[j] = d->o.heads ? d->o.heads[j] : j, d->head_slot[d->heads[j]] = j;
    return 0;
}

/* Uncompressed maps go to disk through writer threads (io/raw_writer.h). With every core
 * computing, the OpenMP threads that spin at the products' barriers keep the writers off the
 * cores, so the forward pass leaves them one. */
static void leave_a_core_to_the_writers(ds_dump *d) {
    unsigned maps = DS_DUMP_SOFTMAX | DS_DUMP_DIFF | DS_DUMP_SCORES;
    cpu_set_t set;
    int threads = omp_get_max_threads();
    if (d->o.compress > 0 || !(d->o.what & maps) || sched_getaffinity(0, sizeof set, &set)) return;
    if (threads >= 4 && threads >= CPU_COUNT(&set)) {
        d->caller_threads = threads;
        omp_set_num_threads(threads - 1);
    }
}

/* Each part's share of a layer's values, reserved at once: the buffers then fill without a copy
 * and with few page faults. The scores of (sub-head, block) go to a place fixed in advance in
 * their part, (head, block) in order. */
static void reserve_outliers(ds_dump *d, const ds_config *c) {
    const size_t T = (size_t)d->T;
    size_t scores[OUTLIER_PARTS] = {0};
    for (int h = 0; h < d->H; h++)
        for (int b = 0; b < d->nblocks; b++) {
            const size_t q0 = (size_t)b * d->R, q1 = q0 + (size_t)d->R < T ? q0 + (size_t)d->R : T;
            d->score_at[(size_t)h * d->nblocks + b] = scores[scores_part(d, h, b)];
            scores[scores_part(d, h, b)] += (q1 * (q1 + 1) - q0 * (q0 + 1)) / 2; /* rows q0..q1-1 hold q + 1 each */
        }
    for (int p = 0; p < OUTLIER_PARTS; p++) {
        size_t tokens = (p + 1) * T / OUTLIER_PARTS - p * T / OUTLIER_PARTS;
        ds_outliers_reserve(&d->scores[p], scores[p]);
        ds_outliers_reserve(&d->resid[p], tokens * (size_t)c->hidden_size);
        ds_outliers_reserve(&d->mlp[p], tokens * (size_t)c->intermediate_size);
    }
}

/* The file's disk space, roughly: the maps (as written when uncompressed; the causal zeros, half
 * of each, vanish under gzip), GroupNorm statistics, logits and hidden states. For refusing
 * a dump the disk cannot hold before the forward pass (--allow-long can ask for tens of GB). */
static double estimate_bytes(const ds_dump *d, const ds_config *c) {
    unsigned w = d->o.what;
    double per_layer = layer_map_bytes(d) / (d->o.compress > 0 ? 2 : 1);
    if (w & DS_DUMP_GROUPNORM && d->is_diff) per_layer += 2.0 * d->nheads * d->T * sizeof(float);
    if (w & DS_DUMP_CANCELLED && d->is_diff) per_layer += (double)d->nheads * d->T * sizeof(float);
    double bytes = 0;
    for (int l = 0; l < d->L; l++)
        if (d->layer_on[l]) bytes += per_layer;
    if (d->o.logits) bytes += (double)d->T * c->vocab_size * sizeof(float);
    if (d->o.hidden) bytes += (double)(d->L + 1) * d->T * c->hidden_size * sizeof(float);
    return bytes;
}

ds_dump *ds_dump_begin(const char *path, const ds_dump_opts *o, const ds_model *m, const int *ids, int T,
                       ds_probes *p) {
    const ds_config *c = ds_model_config(m);
    ds_dump *d = calloc(1, sizeof *d);
    if (!d) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    d->o = *o;
    if (d->o.topk <= 0) d->o.topk = 100;
    d->m = m, d->T = T, d->L = c->num_layers, d->H = c->num_heads, d->Hd = c->map_heads;
    d->is_diff = c->desc->differential;
    d->layer = -1;
    d->f16 = make_f16_type();
    d->out.file = H5I_INVALID_HID;
    for (int k = 0; k < DS_MAP_COUNT; k++) d->maps[k] = H5I_INVALID_HID;
    if (resolve_what(d) || select_layers_heads(d)) goto fail;
    d->R = ds_probes_block_rows(d->H, T, T);
    d->nblocks = (T + d->R - 1) / d->R;
    d->C = T < DS_MAP_MAX_ROWS ? T : DS_MAP_MAX_ROWS;
    d->ncols = (T + d->C - 1) / d->C;
    d->sparse = sparse_pays(d);
    /* One set of accumulators, emptied after each layer, so their buffers are reused. */
    for (int p = 0; p < OUTLIER_PARTS && (d->o.what & DS_DUMP_OUTLIERS); p++)
        if (ds_outliers_init(&d->scores[p], d->o.topk, 3) || ds_outliers_init(&d->resid[p], d->o.topk, 2) ||
            ds_outliers_init(&d->mlp[p], d->o.topk, 2))
            goto fail;
    if (d->o.what & DS_DUMP_OUTLIERS) {
        const size_t calls = (size_t)d->H * d->nblocks;
        d->score_at = malloc(calls * sizeof *d->score_at);
        d->score_tally = calloc(calls, sizeof *d->score_tally);
        if (!d->score_at || !d->score_tally) {
            ds_failc(DS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < calls; i++)
            if (ds_outliers_init(&d->score_tally[i], d->o.topk, 3)) goto fail;
    }
    if (d->o.what & DS_DUMP_CANCELLED && d->is_diff &&
        !(d->cancelled = malloc((size_t)d->nheads * T * sizeof *d->cancelled))) {
        ds_failc(DS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!o->force && ds_check_free_space(path, estimate_bytes(d, c))) goto fail; /* before any big buffer */
    if (d->o.what & DS_DUMP_OUTLIERS) reserve_outliers(d, c);
    d->hidden = (ds_hidden_states){NULL, T, c->hidden_size, d->L};
    if (o->hidden && !(d->hidden.out = malloc((size_t)(d->L + 1) * T * c->hidden_size * sizeof(float)))) {
        ds_failc(DS_ERR_NOMEM, "out of memory for hidden states");
        goto fail;
    }
    /* The provenance before a core is left to the writers: it records the caller's threads. */
    if (ds_h5out_open(&d->out, path, o->force) || write_root(d) || begin_provenance(d)) goto fail;
    leave_a_core_to_the_writers(d);
    if (write_tokens(d, ids) || register_hooks(d, p)) goto fail;
    return d;
fail:
    ds_dump_abort(d);
    return NULL;
}

static void release(ds_dump *d) {
    if (d->caller_threads) omp_set_num_threads(d->caller_threads);
    if (d->hashing) { /* the hashing thread reads the model's files and fills own_provenance */
        char *msg = strdup(ds_errmsg());
        ds_status code = ds_errcode();
        ds_provenance_model_wait(d->hashing);
        if (msg) ds_failc(code, "%s", msg);
        free(msg);
    }
    ds_provenance_free(d->own_provenance);
    for (int k = 0; k < DS_MAP_COUNT; k++)
        if (d->maps[k] >= 0) H5Dclose(d->maps[k]);
    for (int p = 0; p < OUTLIER_PARTS; p++) {
        ds_outliers_free(&d->scores[p]);
        ds_outliers_free(&d->resid[p]);
        ds_outliers_free(&d->mlp[p]);
    }
    for (size_t i = 0; d->score_tally && i < (size_t)d->H * d->nblocks; i++) ds_outliers_free(&d->score_tally[i]);
    free(d->score_tally), free(d->score_at), free(d->head_slot);
    if (d->f16 >= 0) H5Tclose(d->f16);
    free(d->layer_on), free(d->heads), free(d->half_buf), free(d->hidden.out), free(d->cancelled);
    free(d);
}

int ds_dump_finish(ds_dump *d, const float *logits) {
    const ds_config *c = ds_model_config(d->m);
    int rc = 0;
    if (d->o.logits && logits) {
        hsize_t dims[2] = {(hsize_t)d->T, (hsize_t)c->vocab_size};
        rc = ds_h5_write_f32(d->out.file, DS_DUMP_LOGITS, 2, dims, logits);
    }
    if (!rc && d->hidden.out) {
        hsize_t dims[3] = {(hsize_t)d->L + 1, (hsize_t)d->T, (hsize_t)c->hidden_size};
        rc = ds_h5_write_f32(d->out.file, DS_DUMP_HIDDEN_STATES, 3, dims, d->hidden.out);
    }
    if (!rc) rc = finish_provenance(d);
    for (int k = 0; k < DS_MAP_COUNT; k++)
        if (d->maps[k] >= 0) H5Dclose(d->maps[k]), d->maps[k] = H5I_INVALID_HID;
    /* Every queued map block is in the file before it is committed under its name. */
    if (d->raw && ds_raw_writer_drain(d->raw) && !rc) rc = -1;
    if (d->o.io) {
        memset(d->o.io, 0, sizeof *d->o.io);
        if (d->raw) ds_raw_writer_stats(d->raw, d->o.io);
    }
    if (ds_raw_writer_close(d->raw) && !rc) rc = -1;
    d->raw = NULL;
    if (rc) ds_h5out_abort(&d->out);
    else rc = ds_h5out_commit(&d->out);
    release(d);
    return rc;
}

void ds_dump_abort(ds_dump *d) {
    if (!d) return;
    for (int k = 0; k < DS_MAP_COUNT; k++)
        if (d->maps[k] >= 0) H5Dclose(d->maps[k]), d->maps[k] = H5I_INVALID_HID;
    if (d->raw) { /* keep the message of the failure that got us here, not a write error after it */
        char *msg = strdup(ds_errmsg());
        ds_raw_writer_close(d->raw);
        d->raw = NULL;
        if (msg) ds_fail("%s", msg);
        free(msg);
    }
    if (d->out.file >= 0 || d->out.tmp) ds_h5out_abort(&d->out);
    release(d);
}
