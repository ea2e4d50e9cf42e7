# The scalar helpers of the Cython kernels, one name for float and double (the
# `floating` fused type): fastmath.h's vectorisable exp/log (with log1p, softplus,
# sigmoid and pow on them, as fastloss._core.numerics) and row loops, libm's log in the
# argument's own precision (logf for float, as Numba's np.log on float32), and
# Numba's semantics where the kernels mirror a Numba kernel (max, sign).
from cython cimport floating
from libc.math cimport log, logf


cdef extern from "fastmath.h" nogil:
    # The return type of a Cython function holding vectorised loops: compiled like the
    # row loops below for several instruction sets, one picked at load time, with every
    # call inlined (FL_CLONES FL_FLATTEN): `void` with the attributes in front.
    ctypedef void clones_void "FL_CLONES_VOID"
    int fl_max_threads()
    void fl_set_thread_cap(int n)
    float fl_exp_f32(float x)
    double fl_exp_f64(double x)
    float fl_log_f32(float x)
    double fl_log_f64(double x)
    float fl_log1p_f32(float x)
    double fl_log1p_f64(double x)
    float fl_log1p_exp_f32(float x)
    double fl_log1p_exp_f64(double x)
    float fl_sigmoid_f32(float x)
    double fl_sigmoid_f64(double x)
    float fl_pow_f32(float q, float g)
    double fl_pow_f64(double q, double g)
    float fl_row_max_f32(const float *row, Py_ssize_t n)
    double fl_row_max_f64(const double *row, Py_ssize_t n)
    float fl_sum_exp_shifted_f32(const float *row, Py_ssize_t n, float shift)
    double fl_sum_exp_shifted_f64(const double *row, Py_ssize_t n, double shift)
    float fl_weighted_nll_sum_f32(const float *row, const float *weight, Py_ssize_t n, float top,
                                  float log_total)
    double fl_weighted_nll_sum_f64(const double *row, const double *weight, Py_ssize_t n, double top,
                                   double log_total)
    void fl_weighted_target_sums_f32(const float *row, const float *target, const float *weight, Py_ssize_t n,
                                     float keep, float spread, float top, float log_total, float *mass,
                                     float *loss)
    void fl_weighted_target_sums_f64(const double *row, const double *target, const double *weight,
                                     Py_ssize_t n, double keep, double spread, double top, double log_total,
                                     double *mass, double *loss)
    void fl_write_softmax_grad_f32(const float *row, Py_ssize_t n, float top, float a_over_s, float spread_scale,
                                   const float *weight, float *out)
    void fl_write_softmax_grad_f64(const double *row, Py_ssize_t n, double top, double a_over_s,
                                   double spread_scale, const double *weight, double *out)
    void fl_write_soft_target_grad_f32(const float *row, const float *target, const float *weight, Py_ssize_t n,
                                       float top, float factor, float s, float keep, float spread, float *out)
    void fl_write_soft_target_grad_f64(const double *row, const double *target, const double *weight,
                                       Py_ssize_t n, double top, double factor, double s, double keep,
                                       double spread, double *out)
    double fl_sum_to_double_f32(const float *values, Py_ssize_t n)
    double fl_sum_to_double_f64(const double *values, Py_ssize_t n)


cdef inline floating exp_fast(floating x) noexcept nogil:
    if floating is float:
        return fl_exp_f32(x)
    else:
        return fl_exp_f64(x)


cdef inline floating log_fast(floating x) noexcept nogil:
    if floating is float:
        return fl_log_f32(x)
    else:
        return fl_log_f64(x)


cdef inline floating log1p_fast(floating x) noexcept nogil:
    """log(1 + x) for x > -1 on log_fast (fastloss._core.numerics.log1p_fast)."""
    if floating is float:
        return fl_log1p_f32(x)
    else:
        return fl_log1p_f64(x)


cdef inline floating log1p_exp(floating x) noexcept nogil:
    """log(1 + exp(x)) without overflow (softplus; fastloss._core.numerics.log1p_exp)."""
    if floating is float:
        return fl_log1p_exp_f32(x)
    else:
        return fl_log1p_exp_f64(x)


cdef inline floating sigmoid(floating x) noexcept nogil:
    """1 / (1 + exp(-x)) without overflow for either sign (fastloss._core.numerics.sigmoid)."""
    if floating is float:
        return fl_sigmoid_f32(x)
    else:
        return fl_sigmoid_f64(x)


cdef inline floating pow_fast(floating q, floating g) noexcept nogil:
    """pow(q, g) on exp_fast and log_fast, with C pow's special values and sign rules."""
    if floating is float:
        return fl_pow_f32(q, g)
    else:
        return fl_pow_f64(q, g)


cdef inline floating libm_log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating py_max(floating a, floating b) noexcept nogil:
    """Python's (and Numba's) max(a, b): a unless b > a, so a NaN ``a`` is kept."""
    return b if b > a else a


cdef inline floating sign(floating d) noexcept nogil:
    """torch.sign: -1, 0 or 1, and 0 for NaN (torch's CPU sign)."""
    return 1 if d > 0 else (-1 if d < 0 else 0)


cdef inline floating row_max(const floating *row, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fl_row_max_f32(row, n)
    else:
        return fl_row_max_f64(row, n)


cdef inline floating sum_exp_shifted(const floating *row, Py_ssize_t n, floating shift) noexcept nogil:
    if floating is float:
        return fl_sum_exp_shifted_f32(row, n, shift)
    else:
        return fl_sum_exp_shifted_f64(row, n, shift)


cdef inline floating weighted_nll_sum(const floating *row, const floating *weight, Py_ssize_t n,
                                      floating top, floating log_total) noexcept nogil:
    if floating is float:
        return fl_weighted_nll_sum_f32(row, weight, n, top, log_total)
    else:
        return fl_weighted_nll_sum_f64(row, weight, n, top, log_total)


cdef inline (floating, floating) weighted_target_sums(const floating *row, const floating *target,
                                                      const floating *weight, Py_ssize_t n, floating keep,
                                                      floating spread, floating top,
                                                      floating log_total) noexcept nogil:
    cdef floating mass, loss
    if floating is float:
        fl_weighted_target_sums_f32(row, target, weight, n, keep, spread, top, log_total, &mass, &loss)
    else:
        fl_weighted_target_sums_f64(row, target, weight, n, keep, spread, top, log_total, &mass, &loss)
    return mass, loss


cdef inline void write_softmax_grad(const floating *row, Py_ssize_t n, floating top, floating a_over_s,
                                    floating spread_scale, const floating *weight, floating *out) noexcept nogil:
    if floating is float:
        fl_write_softmax_grad_f32(row, n, top, a_over_s, spread_scale, weight, out)
    else:
        fl_write_softmax_grad_f64(row, n, top, a_over_s, spread_scale, weight, out)


cdef inline void write_soft_target_grad(const floating *row, const floating *target, const floating *weight,
                                        Py_ssize_t n, floating top, floating factor, floating s, floating keep,
                                        floating spread, floating *out) noexcept nogil:
    if floating is float:
        fl_write_soft_target_grad_f32(row, target, weight, n, top, factor, s, keep, spread, out)
    else:
        fl_write_soft_target_grad_f64(row, target, weight, n, top, factor, s, keep, spread, out)


cdef inline double sum_to_double(const floating *values, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fl_sum_to_double_f32(values, n)
    else:
        return fl_sum_to_double_f64(values, n)
