/* Writing memory that this thread will not read again (the dump's write buffers, which the
 * writer threads pwrite() much later) with non-temporal stores: they go to memory without
 * first reading each destination line into the caches, and without evicting what the forward
 * pass works on there (its attention blocks, the next products' weights). */
#ifndef DIFFSCOPE_STREAM_STORE_H
#define DIFFSCOPE_STREAM_STORE_H
#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* DST[0..n) = SRC[0..n), then DST[n..total) = FILL. DST need not be aligned; SRC neither. The
 * stores are visible to other threads once the caller has passed a lock or ds_stream_fence(). */
static inline void ds_stream_row(float *dst, const float *src, size_t n, size_t total, float fill) {
    size_t i = 0;
#if defined(__SSE2__)
    size_t head = (16 - ((uintptr_t)dst & 15)) % 16 / sizeof *dst; /* plain stores up to a 16-byte boundary */
    if (head > total) head = total;
    for (; i < head; i++) dst[i] = i < n ? src[i] : fill;
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    if (i < n && i + 4 <= total) { /* the copy's last partial group, completed with FILL */
        float last[4];
        for (size_t k = 0; k < 4; k++) last[k] = i + k < n ? src[i + k] : fill;
        _mm_stream_ps(dst + i, _mm_loadu_ps(last));
        i += 4;
    }
    if (i >= n)
        for (; i + 4 <= total; i += 4) _mm_stream_ps(dst + i, _mm_set1_ps(fill));
#endif
    for (; i < total; i++) dst[i] = i < n ? src[i] : fill;
}

/* Orders this thread's non-temporal stores before its later stores (a lock's release among them). */
static inline void ds_stream_fence(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

#endif
