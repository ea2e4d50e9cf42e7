/* Vectorisable exp and log, and the row loops of the softmax kernels, for the Cython
 * backend: the C twins of fastloss/_core/numerics.py, with the same constants and the same
 * special values (see that module's docstring for the method and its error bounds).
 *
 * Why C: gcc vectorises a floating-point sum only when it may reorder it, which the
 * loops below allow one at a time with OpenMP's `simd reduction` (never -ffast-math,
 * whose finite-math assumption would break inf and NaN: -inf logits mask classes);
 * and the bit casts of exp/log are plain C. The row loops are compiled for AVX-512,
 * AVX2 + FMA and the baseline, and the loader picks one for the CPU (gcc's
 * target_clones, on x86-64 Linux), so a wheel runs anywhere and fast where it can.
 */
#ifndef FASTLOSS_FASTMATH_H
#define FASTLOSS_FASTMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define FL_UNUSED __attribute__((unused))
#else
#define FL_UNUSED
#endif

/* The threads of a parallel loop: fastloss.set_num_threads's count when there is one
 * (fl_thread_cap, one per extension module, set through threads.pxi), else OpenMP's
 * default for the calling thread (OMP_NUM_THREADS); 1 without OpenMP. */
FL_UNUSED static int fl_thread_cap = 0;
FL_UNUSED static void fl_set_thread_cap(int n) { fl_thread_cap = n; }
#ifdef _OPENMP
#include <omp.h>
FL_UNUSED static int fl_max_threads(void) { return fl_thread_cap > 0 ? fl_thread_cap : omp_get_max_threads(); }
#else
FL_UNUSED static int fl_max_threads(void) { return 1; }
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FL_CLONES FL_UNUSED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FL_CLONES FL_UNUSED
#endif

/* FL_FLATTEN: inline every call in the function, as Numba inlines the scalar kernels
 * into its loops (a loop with a call does not vectorise, and gcc's size heuristics
 * stop inlining `inline` functions into a function holding several copies of a kernel). */
#if defined(__GNUC__)
#define FL_FLATTEN __attribute__((flatten))
#else
#define FL_FLATTEN
#endif

/* `void` with FL_CLONES FL_FLATTEN in front: a return type for the Cython function
 * holding the vectorised loops (fastmath.pxd's clones_void), since Cython writes no
 * attributes of its own. */
#define FL_CLONES_VOID FL_CLONES FL_FLATTEN void

#define FL_PRAGMA(text) _Pragma(#text)

static inline float fl_bits_to_f32(int32_t bits) { float f; memcpy(&f, &bits, sizeof f); return f; }
static inline int32_t fl_f32_to_bits(float f) { int32_t bits; memcpy(&bits, &f, sizeof bits); return bits; }
static inline double fl_bits_to_f64(int64_t bits) { double f; memcpy(&f, &bits, sizeof f); return f; }
static inline int64_t fl_f64_to_bits(double f) { int64_t bits; memcpy(&bits, &f, sizeof bits); return bits; }

/* exp: Cody-Waite reduction x = n ln2 + r, a polynomial in r, 2**n written into the
 * exponent bits. `x < lo ? lo : x` lets NaN through; -inf gives exactly 0. */
static inline float fl_exp_f32(float x) {
    x = x < -88.02969193111305f ? -88.02969193111305f : x;  /* -127 ln2: the result is 0.0 */
    x = x > 88.8f ? 88.8f : x;                               /* 2**128 bits: inf */
    float shifted = x * 1.4426950408889634f + 12582912.0f;    /* 1.5 * 2**23 */
    int32_t n = fl_f32_to_bits(shifted) - 0x4B400000;
    float fn = shifted - 12582912.0f;
    float r = x - fn * 0.693359375f;                          /* ln2 = 0.693359375 - 2.12194440e-4 */
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;                                /* Cephes expf.c */
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    return y * fl_bits_to_f32((int32_t)((uint32_t)(n + 127) << 23));
}

static inline double fl_exp_f64(double x) {
    x = x < -709.0895657128241 ? -709.0895657128241 : x;     /* -1023 ln2 */
    x = x > 709.8 ? 709.8 : x;
    double shifted = x * 1.4426950408889634 + 6755399441055744.0;  /* 1.5 * 2**52 */
    int64_t n = fl_f64_to_bits(shifted) - 0x4338000000000000LL;
    double fn = shifted - 6755399441055744.0;
    double r = x - fn * 6.93145751953125e-1;                  /* Cephes exp.c split of ln2 */
    r = r - fn * 1.42860682030941723212e-6;
    double p = 1.6059043836821613e-10;                         /* Taylor 1/k!, k = 13 .. 2 */
    p = p * r + 2.08767569878681e-09;
    p = p * r + 2.505210838544172e-08;
    p = p * r + 2.755731922398589e-07;
    p = p * r + 2.7557319223985893e-06;
    p = p * r + 2.48015873015873e-05;
    p = p * r + 1.984126984126984e-04;
    p = p * r + 1.388888888888889e-03;
    p = p * r + 8.333333333333333e-03;
    p = p * r + 4.1666666666666664e-02;
    p = p * r + 1.6666666666666666e-01;
    p = p * r + 0.5;
    double y = p * (r * r) + r + 1.0;
    return y * fl_bits_to_f64((int64_t)((uint64_t)(n + 1023) << 52));
}

/* log: x = 2**k m with m in [sqrt(2)/2, sqrt(2)), log m = 2 atanh(s), s = (m-1)/(m+1). */
static inline float fl_log_f32(float x) {
    int tiny = x < 1.1754943508222875e-38f;                   /* subnormal: scale by 2**23 first */
    float y = tiny ? x * 8388608.0f : x;
    int32_t bits = fl_f32_to_bits(y);
    int32_t k = ((bits >> 23) & 0xFF) - 127 - (tiny ? 23 : 0);
    float m = fl_bits_to_f32((bits & 0x7FFFFF) | 0x3F800000); /* [1, 2) */
    int big = m > 1.4142135623730951f;
    m = big ? m * 0.5f : m;
    k = big ? k + 1 : k;
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float p = 1.0f / 11.0f;
    p = p * z + 1.0f / 9.0f;
    p = p * z + 1.0f / 7.0f;
    p = p * z + 1.0f / 5.0f;
    p = p * z + 1.0f / 3.0f;
    float fk = (float)k;
    float r = fk * 0.693359375f + (fk * -2.12194440e-4f + (f - s * (f - 2.0f * z * p)));
    r = x != INFINITY ? r : x;                                 /* log(inf) = inf, NaN passes */
    return x > 0.0f ? r : (x == 0.0f ? -INFINITY : NAN);
}

/* log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]: 2 atanh(s), s = f / (2 + f). */
static inline double fl_log1p_reduced_f64(double f) {
    double s = f / (2.0 + f);
    double z = s * s;
    double p = 1.0 / 23.0;                                     /* z <= 0.0295: to z^11 leaves < 1e-18 */
    p = p * z + 1.0 / 21.0;
    p = p * z + 1.0 / 19.0;
    p = p * z + 1.0 / 17.0;
    p = p * z + 1.0 / 15.0;
    p = p * z + 1.0 / 13.0;
    p = p * z + 1.0 / 11.0;
    p = p * z + 1.0 / 9.0;
    p = p * z + 1.0 / 7.0;
    p = p * z + 1.0 / 5.0;
    p = p * z + 1.0 / 3.0;
    return f - s * (f - 2.0 * z * p);                          /* 2 s (1 + z p), f = 2s + s f */
}

static inline double fl_log_f64(double x) {
    int tiny = x < 2.2250738585072014e-308;
    double y = tiny ? x * 4503599627370496.0 : x;             /* 2**52 */
    int64_t bits = fl_f64_to_bits(y);
    int64_t k = ((bits >> 52) & 0x7FF) - 1023 - (tiny ? 52 : 0);
    double m = fl_bits_to_f64((bits & 0xFFFFFFFFFFFFFLL) | 0x3FF0000000000000LL);
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    k = big ? k + 1 : k;
    double fk = (double)k;
    double r = fk * 6.93147180369123816490e-01 + (fk * 1.90821492927058770002e-10 + fl_log1p_reduced_f64(m - 1.0));
    r = x != INFINITY ? r : x;
    return x > 0.0 ? r : (x == 0.0 ? -INFINITY : NAN);
}

/* log(1 + e) for e in [0, 1] (softplus's log1p(exp(-|x|))), fastloss/_core/numerics.py's
 * log1p_unit: float32 a polynomial (LOG1P_UNIT_F32 there), float64 the atanh series on
 * 1 + e = 2**k (1 + f), k = 0 or 1, f taken from e without rounding 1 + e. NaN passes. */
static inline float fl_log1p_unit_f32(float e) {
    float p = -0.0031760570127516985f;
    p = p * e + 0.019542526453733444f;
    p = p * e + -0.056373611092567444f;
    p = p * e + 0.10543623566627502f;
    p = p * e + -0.1526966691017151f;
    p = p * e + 0.1966327428817749f;
    p = p * e + -0.24951615929603577f;
    p = p * e + 0.33329710364341736f;
    p = p * e + -0.49999892711639404f;
    p = p * e + 1.0f;
    return e * p;
}

static inline double fl_log1p_unit_f64(double e) {
    int big = e > 0.41421356237309503;                         /* sqrt(2) - 1 */
    double r = fl_log1p_reduced_f64(big ? (e - 1.0) * 0.5 : e);
    return big ? 6.93147180369123816490e-01 + (1.90821492927058770002e-10 + r) : r;
}

/* log1p, softplus and sigmoid on the exp and log above, for T = float (suffix f32) and
 * double (f64): fastloss/_core/numerics.py's log1p_fast, log1p_exp and sigmoid, the same formulas
 * and special values, written branch-free (selects) so that loops of them vectorise.
 *
 * log1p: for x > -1, log(u) x / (u - 1) with u = 1 + x (Goldberg), x itself where u
 *   rounds to 1; inf gives inf, NaN passes.
 * log1p_exp: log(1 + exp(x)) without overflow, max(x, 0) + log1p_unit(exp(-|x|)); max as
 *   Python's (x kept unless 0 > x, so NaN passes).
 * sigmoid: 1 / (1 + exp(-x)) without overflow for either sign; the exp of -|x| is the
 *   one log1p_exp takes, so gcc computes it once where a kernel calls both. */
#define FL_SCALAR_HELPERS(T, S, ABS)                                                                \
static inline T fl_log1p_##S(T x) {                                                                 \
    T u = 1 + x;                                                                                    \
    T r = u < INFINITY ? fl_log_##S(u) * x / (u - 1) : u;                                           \
    return u == 1 ? x : r;                                                                          \
}                                                                                                   \
static inline T fl_log1p_exp_##S(T x) {                                                             \
    return (0 > x ? 0 : x) + fl_log1p_unit_##S(fl_exp_##S(-ABS(x)));                                \
}                                                                                                   \
static inline T fl_sigmoid_##S(T x) {                                                               \
    T e = fl_exp_##S(-ABS(x));                                                                      \
    T q = 1 / (1 + e);                                                                              \
    return x >= 0 ? q : e * q;                                                                      \
}

FL_SCALAR_HELPERS(float, f32, fabsf)
FL_SCALAR_HELPERS(double, f64, fabs)

/* pow(q, g) with C pow's special values and sign rules (a negative finite base gives
 * NaN unless g is an integer, odd g keeps the base's sign; a zero or infinite base
 * follows from log's -inf and inf; pow(x, 0) = 1, pow(+-1, inf) = 1), |q|**g as
 * exp(g log|q|) as the kernels take q**g for q > 0: the sigmoid focal modulator's
 * branch for targets outside [0, 1]. Written branch-free, unlike a call of pow: gcc
 * vectorises no loop that calls pow, not even under a condition. Every select's
 * condition also tests q: gcc 12 vectorises no select whose condition is loop-invariant
 * (g's alone: the kernel's gamma), and the tests of q change nothing (copysign by a
 * q > 0 is the identity; NaN for a non-integer g needs q < 0 anyway). */
#define FL_POW(T, S, ABS, TRUNC, COPYSIGN)                                                          \
static inline T fl_pow_##S(T q, T g) {                                                              \
    T a = ABS(q);                                                                                   \
    /* g log 1 is NaN for infinite g; g log a is NaN for g = 0 and a = 0, inf or NaN */             \
    T m = (a == 1) | (g == 0) ? 1 : fl_exp_##S(g * fl_log_##S(a));                                  \
    int integer = TRUNC(g) == g;                         /* inf counts as an even integer */        \
    int odd = integer & (TRUNC(g * (T)0.5) * 2 != g);                                               \
    T r = odd & !(q > 0) ? COPYSIGN(m, q) : m;                                                      \
    return (q < 0) & (q > -INFINITY) & !integer ? NAN : r;                                          \
}

FL_POW(float, f32, fabsf, truncf, copysignf)
FL_POW(double, f64, fabs, trunc, copysign)

/* The row loops, for T = float (suffix f32) and double (f64), over contiguous rows.
 *
 * row_max: the largest entry, NaN entries skipped (a NaN still makes the row's loss
 *   NaN through exp(NaN - max)).
 * sum_exp_shifted: sum_c exp(row[c] - shift).
 * weighted_nll_sum: sum_c weight[c] (-log p_c), -log p_c = log_total - (row[c] - top).
 * weighted_target_sums: with q = keep * target + spread, (sum_c w_c q_c,
 *   sum_c w_c q_c (-log p_c)).
 * write_softmax_grad: out[c] = a_over_s exp(row[c] - top) - spread_scale weight[c];
 *   out may be row itself (an in-place gradient).
 * write_soft_target_grad: out[c] = factor exp(row[c] - top) - s weight[c] q_c.
 * sum_to_double: sum of n values, accumulated in double. */
#define FL_ROW_LOOPS(T, S)                                                                          \
FL_CLONES static T fl_row_max_##S(const T *restrict row, ptrdiff_t n) {                             \
    T m = row[0];                                                                                   \
    FL_PRAGMA(omp simd reduction(max:m))                                                            \
    for (ptrdiff_t c = 1; c < n; c++) m = row[c] > m ? row[c] : m;                                  \
    return m;                                                                                       \
}                                                                                                   \
FL_CLONES static T fl_sum_exp_shifted_##S(const T *restrict row, ptrdiff_t n, T shift) {           \
    T s = 0;                                                                                        \
    FL_PRAGMA(omp simd reduction(+:s))                                                              \
    for (ptrdiff_t c = 0; c < n; c++) s += fl_exp_##S(row[c] - shift);                              \
    return s;                                                                                       \
}                                                                                                   \
FL_CLONES static T fl_weighted_nll_sum_##S(const T *restrict row, const T *restrict weight,         \
                                           ptrdiff_t n, T top, T log_total) {                       \
    T s = 0;                                                                                        \
    FL_PRAGMA(omp simd reduction(+:s))                                                              \
    for (ptrdiff_t c = 0; c < n; c++) s += weight[c] * (log_total - (row[c] - top));                \
    return s;                                                                                       \
}                                                                                                   \
FL_CLONES static void fl_weighted_target_sums_##S(const T *restrict row, const T *restrict target,  \
                                                  const T *restrict weight, ptrdiff_t n, T keep,    \
                                                  T spread, T top, T log_total, T *mass, T *loss) { \
    T total = 0, l = 0;                                                                             \
    FL_PRAGMA(omp simd reduction(+:total, l))                                                       \
    for (ptrdiff_t c = 0; c < n; c++) {                                                             \
        T wq = weight[c] * (keep * target[c] + spread);                                             \
        total += wq;                                                                                \
        l += wq * (log_total - (row[c] - top));                                                     \
    }                                                                                               \
    *mass = total;                                                                                  \
    *loss = l;                                                                                      \
}                                                                                                   \
FL_CLONES static void fl_write_softmax_grad_##S(const T *row, ptrdiff_t n, T top, T a_over_s,      \
                                                T spread_scale, const T *restrict weight, T *out) { \
    if (out == row) {                                                                               \
        for (ptrdiff_t c = 0; c < n; c++)                                                           \
            out[c] = a_over_s * fl_exp_##S(out[c] - top) - spread_scale * weight[c];                \
    } else {                                                                                        \
        const T *restrict in = row;                                                                 \
        T *restrict dst = out;                                                                      \
        for (ptrdiff_t c = 0; c < n; c++)                                                           \
            dst[c] = a_over_s * fl_exp_##S(in[c] - top) - spread_scale * weight[c];                 \
    }                                                                                               \
}                                                                                                   \
FL_CLONES static void fl_write_soft_target_grad_##S(const T *row, const T *target,                 \
                                                    const T *restrict weight, ptrdiff_t n, T top,   \
                                                    T factor, T s, T keep, T spread, T *out) {      \
    for (ptrdiff_t c = 0; c < n; c++)                                                               \
        out[c] = factor * fl_exp_##S(row[c] - top) - s * weight[c] * (keep * target[c] + spread);   \
}                                                                                                   \
FL_CLONES static double fl_sum_to_double_##S(const T *restrict values, ptrdiff_t n) {               \
    double s = 0;                                                                                   \
    FL_PRAGMA(omp simd reduction(+:s))                                                              \
    for (ptrdiff_t i = 0; i < n; i++) s += values[i];                                               \
    return s;                                                                                       \
}

FL_ROW_LOOPS(float, f32)
FL_ROW_LOOPS(double, f64)

#endif
