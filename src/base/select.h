/* Selection: the value of a given rank without sorting (medians of outlier statistics and of a
 * sweep's columns).
 *
 * ds_select_TYPE(a, n, k) returns the value of rank K (0-based, ascending) of A[0..N-1], which
 * must hold no NaN and 0 <= K < N. It reorders A so that every value of A[0..K-1] is <= the
 * result and every value after it >= (callers that want the mean of two middle values take the
 * largest of A[0..K-1]). Hoare's partition around the median of three; after too many rounds
 * (an adversarial order) it sorts what is left, so it never takes quadratic time. The result is
 * the value of that rank, whatever the algorithm: changing it changes no output. */
#ifndef DIFFSCOPE_SELECT_H
#define DIFFSCOPE_SELECT_H
#include <stddef.h>

float ds_select_float(float *a, size_t n, size_t k);
double ds_select_double(double *a, size_t n, size_t k);

#endif
