/* The paper's Table-5 outlier figures of a stream of values in bounded memory: the k-th
 * largest |value| for k = 1, 2, 3, 10, 100, and the median of |value|.
 *
 * The top values are kept exactly (a sorted list of 100). The median comes from a histogram
 * of 2^20 bins (8 MB of address space, of which only the pages of the bins used are touched)
 * over bits 30..11 of |x|'s float32 bit pattern (the 8 exponent bits and
 * the top 12 mantissa bits): each bin spans a relative width of at most 2^-12, and the median
 * reported is the middle of its bin, so for normal floats it is within 1.3e-4 (relative) of
 * the exact median (NumPy's: the mean of the two middle values for an even count). Memory does not
 * grow with the number of values, unlike ds_outliers (which keeps them all). */
#ifndef DIFFSCOPE_TABLE5_H
#define DIFFSCOPE_TABLE5_H
#include <stddef.h>
#include <stdint.h>

#define DS_TABLE5_RANKS 5
extern const int ds_table5_ranks[DS_TABLE5_RANKS]; /* 1, 2, 3, 10, 100 */
#define DS_TABLE5_TOP 100                          /* the largest rank */

typedef struct {
    int64_t count;
    double top[DS_TABLE5_RANKS]; /* the k-th largest |value|; NaN when count < k */
    double median;               /* NaN when count == 0 */
} ds_table5;

typedef struct ds_table5_acc ds_table5_acc;

ds_table5_acc *ds_table5_new(void);
/* Adds |v| (NaN is ignored). */
void ds_table5_push(ds_table5_acc *a, float v);
/* The same for V[0..N-1]. */
void ds_table5_push_n(ds_table5_acc *a, const float *v, size_t n);
void ds_table5_result(const ds_table5_acc *a, ds_table5 *out);
void ds_table5_free(ds_table5_acc *a);

#endif
