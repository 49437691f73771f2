/* Raw checks of variable-length strings and global heap collections (see h5_guard.h).
 * Layouts from the HDF5 file format specification, version 2 ("Global Heap" and
 * "Variable-length datatype" sections). */
#include "io/h5_guard.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diffscope/error.h"

/* A collection larger than this is damaged as far as token strings are concerned. */
#define MAX_COLLECTION (64u << 20)

static uint64_t le(const unsigned char *p, size_t n) {
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

static int read_at(FILE *f, uint64_t off, void *buf, size_t n) {
    return fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, n, f) == n;
}

typedef struct {
    uint64_t addr;
    unsigned char *data; /* the whole collection, NULL when damaged */
    uint64_t size;
} collection;

/* Walks the objects of collection C the way HDF5 1.10 does when it loads one: from the end
 * of the header, each object is an index (2 bytes), a reference count (2), 4 reserved bytes,
 * a size (sizeof_size) and the data padded to 8 bytes; an object of index 0 is free space
 * and spans exactly its size; a tail too short for an object header is free space too.
 * HDF5 trusts every size (a zero free-space size loops forever, a large one reads past the
 * buffer): here each step must be positive and stay inside the collection, and the walk must
 * end exactly at its end. Returns 0 when sound; with IDX > 0, *FOUND gets that object's size
 * (-1 when absent). */
static int walk(const collection *c, size_t ss, unsigned idx, int64_t *found) {
    uint64_t ohs = 8 + ss, pos = 8 + ss;
    if (found) *found = -1;
    while (pos < c->size) {
        if (c->size - pos < ohs) break; /* tail of free space */
        unsigned i = (unsigned)le(c->data + pos, 2);
        uint64_t osize = le(c->data + pos + 8, ss);
        if (osize > c->size) return -1;
        uint64_t need = i > 0 ? ohs + ((osize + 7) & ~(uint64_t)7) : osize;
        if (need == 0 || need > c->size - pos) return -1;
        if (found && i == idx && i > 0) *found = (int64_t)osize;
        pos += need;
    }
    return 0;
}

/* Loads the collection at ADDR ("GCOL", version 1, 3 reserved bytes, its total size in
 * sizeof_size bytes, then the objects) and checks its walk. NULL data when damaged. */
static collection load_collection(FILE *f, uint64_t addr, size_t ss, uint64_t file_size) {
    collection c = {addr, NULL, 0};
    unsigned char head[16];
    size_t hs = 8 + ss;
    if (addr > file_size || hs > file_size - addr || !read_at(f, addr, head, hs)) return c;
    uint64_t size = le(head + 8, ss);
    if (memcmp(head, "GCOL", 4) || head[4] != 1 || size < hs || size > MAX_COLLECTION ||
        size > file_size - addr)
        return c;
    unsigned char *data = malloc(size);
    if (!data || !read_at(f, addr, data, size)) {
        free(data);
        return c;
    }
    c.data = data;
    c.size = size;
    if (walk(&c, ss, 0, NULL) < 0) {
        free(data);
        c.data = NULL;
        c.size = 0;
    }
    return c;
}

int h5guard_check_vlen_strings(hid_t file, const char *path, const char *name, hid_t ds, int n,
                               size_t max_len) {
    haddr_t off = H5Dget_offset(ds);
    hid_t fcpl = H5Fget_create_plist(file);
    size_t sa = 0, ss = 0;
    if (fcpl >= 0) {
        H5Pget_sizes(fcpl, &sa, &ss);
        H5Pclose(fcpl);
    }
    /* Each element: length (4 bytes), then the heap id: collection address (sizeof_addr)
     * and object index (4 bytes). */
    size_t elem = 8 + sa;
    if (off == HADDR_UNDEF || sa < 2 || sa > 8 || ss < 2 || ss > 8 || n < 1 ||
        H5Dget_storage_size(ds) != (hsize_t)n * elem)
        return 0;
    FILE *f = fopen(path, "rb");
    unsigned char *buf = malloc((size_t)n * elem);
    uint64_t file_size = 0;
    if (f && fseeko(f, 0, SEEK_END) == 0) file_size = (uint64_t)ftello(f);
    int rc = 0;
    if (!f || !buf || !read_at(f, off, buf, (size_t)n * elem)) goto out; /* HDF5 will say */
    collection cache = {0, NULL, 0};
    int have = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const unsigned char *e = buf + (size_t)i * elem;
        uint64_t len = le(e, 4), addr = le(e + 4, sa);
        unsigned idx = (unsigned)le(e + 4 + sa, 4);
        if (len > max_len) {
            rc = ds_fail("%s: %s is damaged (string %d claims %llu bytes)", path, name, i,
                         (unsigned long long)len);
            break;
        }
        if (len == 0) continue; /* an empty string need not have a heap object */
        if (!have || cache.addr != addr) {
            free(cache.data);
            cache = load_collection(f, addr, ss, file_size);
            have = 1;
        }
        int64_t osize = -1;
        if (cache.data) walk(&cache, ss, idx, &osize);
        if (osize < (int64_t)len)
            rc = ds_fail("%s: %s is damaged (string %d points to %s)", path, name, i,
                         cache.data ? "a missing or short heap object" : "a damaged heap collection");
    }
    free(cache.data);
out:
    free(buf);
    if (f) fclose(f);
    return rc;
}

int h5guard_check_heaps(hid_t file, const char *path, size_t scan_bytes) {
    hid_t fcpl = H5Fget_create_plist(file);
    size_t sa = 0, ss = 0;
    if (fcpl >= 0) {
        H5Pget_sizes(fcpl, &sa, &ss);
        H5Pclose(fcpl);
    }
    if (ss < 2 || ss > 8) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t file_size = 0;
    if (fseeko(f, 0, SEEK_END) == 0) file_size = (uint64_t)ftello(f);
    size_t n = file_size < scan_bytes ? (size_t)file_size : scan_bytes;
    unsigned char *buf = malloc(n ? n : 1);
    int rc = 0;
    if (buf && read_at(f, 0, buf, n)) {
        static const unsigned char sig[8] = {'G', 'C', 'O', 'L', 1, 0, 0, 0};
        for (const unsigned char *p = buf; (p = memmem(p, n - (size_t)(p - buf), sig, 8)) != NULL; p++) {
            uint64_t addr = (uint64_t)(p - buf);
            /* Only what HDF5 would take for a collection: at least its minimum size of 4 KB. */
            if ((size_t)(p - buf) + 8 + ss > n || le(p + 8, ss) < 4096) continue;
            collection c = load_collection(f, addr, ss, file_size);
            if (!c.data) {
                rc = ds_fail("%s: damaged file (the string heap at byte %llu is inconsistent)", path,
                             (unsigned long long)addr);
                break;
            }
            free(c.data);
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

