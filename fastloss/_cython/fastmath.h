/* Vectorisable exp and log, and the row loops of the softmax kernels, for the Cython
 * backend: the C twins of fastloss/_math.py, with the same constants and the same
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

#ifdef _OPENMP
#include <omp.h>
FL_UNUSED static int fl_max_threads(void) { return omp_get_max_threads(); }
#else
FL_UNUSED static int fl_max_threads(void) { return 1; }
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FL_CLONES FL_UNUSED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FL_CLONES FL_UNUSED
#endif

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

static inline double fl_log_f64(double x) {
    int tiny = x < 2.2250738585072014e-308;
    double y = tiny ? x * 4503599627370496.0 : x;             /* 2**52 */
    int64_t bits = fl_f64_to_bits(y);
    int64_t k = ((bits >> 52) & 0x7FF) - 1023 - (tiny ? 52 : 0);
    double m = fl_bits_to_f64((bits & 0xFFFFFFFFFFFFFLL) | 0x3FF0000000000000LL);
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    k = big ? k + 1 : k;
    double f = m - 1.0;
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
    double fk = (double)k;
    double r = fk * 6.93147180369123816490e-01 + (fk * 1.90821492927058770002e-10 + (f - s * (f - 2.0 * z * p)));
    r = x != INFINITY ? r : x;
    return x > 0.0 ? r : (x == 0.0 ? -INFINITY : NAN);
}

/* The row loops, for T = float (suffix f32) and double (f64), over contiguous rows.
 *
 * row_max: the largest entry, NaN entries skipped (a NaN still makes the row's loss
 *   NaN through exp(NaN - max)).
 * sum_exp_shifted: sum_c exp(row[c] - shift).
 * weighted_gap_sum: sum_c weight[c] (top - row[c]).
 * weighted_target_sums: with q = keep * target + spread, (sum_c w_c q_c,
 *   sum_c w_c q_c (top - row[c])).
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
FL_CLONES static T fl_weighted_gap_sum_##S(const T *restrict row, const T *restrict weight,         \
                                           ptrdiff_t n, T top) {                                    \
    T s = 0;                                                                                        \
    FL_PRAGMA(omp simd reduction(+:s))                                                              \
    for (ptrdiff_t c = 0; c < n; c++) s += weight[c] * (top - row[c]);                              \
    return s;                                                                                       \
}                                                                                                   \
FL_CLONES static void fl_weighted_target_sums_##S(const T *restrict row, const T *restrict target,  \
                                                  const T *restrict weight, ptrdiff_t n, T keep,    \
                                                  T spread, T top, T *mass, T *gap) {               \
    T total = 0, g = 0;                                                                             \
    FL_PRAGMA(omp simd reduction(+:total, g))                                                       \
    for (ptrdiff_t c = 0; c < n; c++) {                                                             \
        T wq = weight[c] * (keep * target[c] + spread);                                             \
        total += wq;                                                                                \
        g += wq * (top - row[c]);                                                                   \
    }                                                                                               \
    *mass = total;                                                                                  \
    *gap = g;                                                                                       \
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
