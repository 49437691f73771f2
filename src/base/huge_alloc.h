/* Large buffers in 2 MiB pages where the kernel grants them (transparent huge pages on request):
 * one TLB entry per 2 MiB instead of 512, and a few page faults to fill one instead of one per
 * 4 KiB. */
#ifndef DS_HUGE_ALLOC_H
#define DS_HUGE_ALLOC_H
#include <stddef.h>

/* BYTES, 64-byte aligned; from 2 MiB up, aligned at and rounded up to 2 MiB and advised into
 * huge pages. free() it. NULL when memory runs out. */
void *ds_alloc_huge(size_t bytes);

#endif
