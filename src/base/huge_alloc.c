#include "base/huge_alloc.h"
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *ds_alloc_huge(size_t bytes) {
    const size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : 64;
    const size_t size = bytes ? (bytes + align - 1) / align * align : align;
    void *p = aligned_alloc(align, size);
    if (p && align == HUGE_PAGE) madvise(p, size, MADV_HUGEPAGE);
    return p;
}
