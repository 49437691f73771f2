/* Quickselect for float and double (see select.h): one body, two types. */
#include "base/select.h"
#include <stdlib.h>

/* Rounds of partitioning before the rest is sorted: about 2 log2(n) for any n that fits. */
#define MAX_ROUNDS 128

#define DEFINE_SELECT(NAME, T)                                                                 \
    static int cmp_##T(const void *pa, const void *pb) {                                       \
        T x = *(const T *)pa, y = *(const T *)pb;                                              \
        return (x > y) - (x < y);                                                              \
    }                                                                                          \
    T NAME(T *a, size_t n, size_t k) {                                                         \
        /* signed indices: the partition's j may step below lo */                              \
        ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;                            \
        for (int round = 0; lo < hi; round++) {                                                \
            if (round == MAX_ROUNDS) {                                                         \
                qsort(a + lo, (size_t)(hi - lo + 1), sizeof *a, cmp_##T);                      \
                break;                                                                         \
            }                                                                                  \
            T x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi];                                 \
            T pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);       \
            ptrdiff_t i = lo, j = hi;                                                          \
            while (i <= j) {                                                                   \
                while (a[i] < pivot) i++;                                                      \
                while (a[j] > pivot) j--;                                                      \
                if (i <= j) {                                                                  \
                    T t = a[i];                                                                \
                    a[i++] = a[j], a[j--] = t;                                                 \
                }                                                                              \
            }                                                                                  \
            if (kk <= j) hi = j;                                                               \
            else if (kk >= i) lo = i;                                                          \
            else break; /* a[j+1 .. i-1] all equal the pivot */                                \
        }                                                                                      \
        return a[kk];                                                                          \
    }

DEFINE_SELECT(ds_select_float, float)
DEFINE_SELECT(ds_select_double, double)
