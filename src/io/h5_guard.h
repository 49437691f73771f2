/* Checks of raw HDF5 structures that the HDF5 1.10 library trusts.
 *
 * Reading a variable-length string makes HDF5 follow the string's global heap id into a heap
 * collection and copy the claimed number of bytes. In a damaged file the claim or the
 * collection can be anything, and HDF5 1.10.8 then allocates gigabytes, or reads outside its
 * buffers and crashes (found by mutating dumps). Before the viewer reads /tokens/text it
 * checks here, from the file's bytes, that the heap collections near the start of the file
 * (where the root attributes' strings are) are well formed, and that every token string's
 * length is plausible and its heap id names an object of at least that size inside a
 * well-formed collection. Damage elsewhere can still reach HDF5. */
#ifndef DIFFSCOPE_VIZ_H5_GUARD_H
#define DIFFSCOPE_VIZ_H5_GUARD_H
#include <hdf5.h>
#include <stddef.h>

/* DS is a rank-1 variable-length string dataset of N elements in FILE (at PATH on disk).
 * Returns -1 with a message when a string is damaged; 0 when all are sound, and also when the
 * dataset is not stored in the one layout this can check (contiguous, allocated). */
int h5guard_check_vlen_strings(hid_t file, const char *path, const char *name, hid_t ds, int n,
                               size_t max_len);

/* Finds the global heap collections in the first SCAN_BYTES of FILE (by their signature; the
 * root attributes' strings are written there) and checks that each is well formed. Returns -1
 * with a message when one is damaged. */
int h5guard_check_heaps(hid_t file, const char *path, size_t scan_bytes);

#endif
