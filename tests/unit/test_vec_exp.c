/* ds_expf (src/base/vec_exp.h), the vectorised exp of the softmax and SiLU loops, against libm's
 * double-precision exp: at most 1 ulp off over the whole range where e^x is a normal float,
 * and the ends of that range (0 below, +inf above, NaN kept) as documented. */
#include "test.h"
#include "base/vec_exp.h"

/* Distance of GOT from the exact e^x in units of the float spacing at e^x. */
static double ulp_error(float got, float x) {
    double exact = exp((double)x);
    float near = (float)exact;
    return fabs((double)got - exact) / (double)(nextafterf(near, INFINITY) - near);
}

TEST(vec_exp_within_one_ulp) {
    enum { N = 2000000 };
    float *x = malloc(N * sizeof *x);
    REQUIRE(x, "out of memory");
    const float lo = -87.3f, hi = 88.0f;
    for (int i = 0; i < N; i++) x[i] = lo + (hi - lo) * (float)i / N;
    float *y = malloc(N * sizeof *y);
    REQUIRE(y, "out of memory");
#pragma omp simd
    for (int i = 0; i < N; i++) y[i] = ds_expf(x[i]); /* the vectorised form, as the model uses it */
    double worst = 0;
    float at = 0;
    for (int i = 0; i < N; i++) {
        double e = ulp_error(y[i], x[i]);
        if (e > worst) worst = e, at = x[i];
    }
    printf("# ds_expf: max error %.3f ulp (at x = %g) over %d points in [%g, %g]\n", worst, at, N, lo, hi);
    CHECK(worst <= 1.0, "max error %.3f ulp at x = %g", worst, at);
    free(x), free(y);
}

TEST(vec_exp_range_ends) {
    CHECK(ds_expf(0.0f) == 1.0f, "e^0 = %.9g", ds_expf(0.0f));
    CHECK(ds_expf(-INFINITY) == 0.0f, "e^-inf = %g", ds_expf(-INFINITY));
    CHECK(ds_expf(-100.0f) == 0.0f, "e^-100 = %g (subnormal results are 0)", ds_expf(-100.0f));
    CHECK(ds_expf(89.0f) == INFINITY, "e^89 = %g", ds_expf(89.0f));
    CHECK(ds_expf(INFINITY) == INFINITY, "e^inf = %g", ds_expf(INFINITY));
    CHECK(isnan(ds_expf(NAN)), "e^NaN = %g", ds_expf(NAN));
    CHECK(ulp_error(ds_expf(-87.3f), -87.3f) <= 1.0, "e^-87.3 = %g", ds_expf(-87.3f));
}

/* NaN and the infinities through the vectorised loop, from memory the compiler cannot fold:
 * under UBSan (make test-asan, with float-cast-overflow) a float-to-int conversion of NaN or a
 * left shift of a negative exponent aborts the test. */
TEST(vec_exp_nonfinite_inputs) {
    volatile float nan_v = NAN, inf_v = INFINITY;
    float x[64], y[64];
    for (int i = 0; i < 64; i++) x[i] = i % 4 == 0 ? nan_v : i % 4 == 1 ? inf_v : i % 4 == 2 ? -inf_v : -nan_v;
#pragma omp simd
    for (int i = 0; i < 64; i++) y[i] = ds_expf(x[i]);
    for (int i = 0; i < 64; i++) {
        if (i % 4 == 1) CHECK(y[i] == INFINITY, "e^inf = %g", y[i]);
        else if (i % 4 == 2) CHECK(y[i] == 0.0f, "e^-inf = %g", y[i]);
        else CHECK(isnan(y[i]), "e^%g = %g", x[i], y[i]);
    }
    CHECK(isnan(ds_expf(nan_v)), "scalar e^NaN = %g", ds_expf(nan_v));
}

int main(void) {
    RUN(vec_exp_within_one_ulp);
    RUN(vec_exp_range_ends);
    RUN(vec_exp_nonfinite_inputs);
    return test_summary();
}
