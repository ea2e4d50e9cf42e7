# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
r"""The elementwise losses of :mod:`fastloss.classification` and :mod:`fastloss.regression`,
compiled ahead of time: one parametrised kernel, :func:`elementwise_tiles`, with the
arguments and results of :func:`fastloss._core.elementwise.elementwise_tiles`, applying one
of the scalar kernels below.

Layers, as in the Numba code: scalar kernels ``(x, y, z, p0, p1, p2) -> (loss, dloss/dx,
dloss/dz)``, each the twin of the Numba kernel of the same name (read its docstring
for the formula); :func:`_point`, which picks one at compile time from a kind tag
(a fused type of empty structs, so every kind gets its own loop, with its kernel
inlined and vectorised); the tile loop; and the Python entry point, which maps the
kind (:data:`KINDS`, keyed by the Numba kernel's name) to its tag.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport fabs

import numpy as np

include "threads.pxi"

from .fastmath cimport (clones_void, exp_fast, fl_max_threads, log1p_exp, log1p_fast, log_fast, pow_fast,
                        py_max, sigmoid, sign, sum_to_double)

# Columns per parallel work item (fastloss._core.elementwise.TILE): long enough to vectorise,
# short enough that a single long row still spreads over all threads. A C constant.
cdef enum:
    TILE = 4096


# ----------------------------------------------------------------- scalar kernels
# Every constant is of the kernel's own type (``one``, ``<floating>0.5``), as the Numba
# twin's ``typed``: Cython writes a bare ``1`` or ``0.5`` as the C double ``1.0``, which
# would turn float32 arithmetic into float64 (other roundings, half the vector width).

cdef inline (floating, floating, floating) _bce_point(floating x, floating y, floating z, floating p0, floating p1,
                                                      floating p2) noexcept nogil:
    cdef floating floor = -100
    cdef floating one = 1
    cdef floating loss = (y - one) * py_max(log1p_fast(-x), floor) - y * py_max(log_fast(x), floor)
    # torch's EPSILON is the float 1e-12 = 9.999999960041972e-13 in double as well.
    return loss, (x - y) / py_max((one - x) * x, <floating>9.999999960041972e-13), 0


cdef inline (floating, floating, floating) _bce_logits_point(floating x, floating y, floating z, floating p0,
                                                             floating p1, floating p2) noexcept nogil:
    cdef floating one = 1
    return (one - y) * x + log1p_exp(-x), sigmoid(x) - y, 0


cdef inline (floating, floating, floating) _bce_logits_pos_weight_point(floating x, floating y, floating pos_weight,
                                                                        floating p0, floating p1,
                                                                        floating p2) noexcept nogil:
    cdef floating one = 1
    cdef floating t = pos_weight * y
    cdef floating loss = (one - y) * x + ((pos_weight - one) * y + one) * log1p_exp(-x)
    return loss, (t + one - y) * sigmoid(x) - t, 0


cdef inline (floating, floating, floating) _kl_div_point(floating x, floating y, floating z, floating log_target,
                                                         floating p1, floating p2) noexcept nogil:
    cdef floating e, xlogy
    if log_target != 0:
        e = exp_fast(y)
        return e * (y - x), -e, 0
    xlogy = y * log_fast(y) if y != 0 else 0
    return xlogy - y * x, -y, 0


cdef inline (floating, floating, floating) _sigmoid_focal_point(floating x, floating y, floating z, floating alpha,
                                                                floating gamma, floating p2) noexcept nogil:
    cdef floating one = 1
    cdef floating p = sigmoid(x)
    cdef floating ce = (one - y) * x + log1p_exp(-x)
    cdef floating p_t = p * y + (one - p) * (one - y)
    cdef floating q = one - p_t
    # q ** gamma: exp(gamma log q) for q > 0 and gamma != 0, else pow's values (1 for
    # gamma = 0; sign rules for q <= 0, targets outside [0, 1], which torchvision accepts,
    # real for integer gamma as in torch): as the Numba twin, which calls pow for q <= 0.
    # Both are computed and one selected by a test that involves q: gcc 12 vectorises no
    # select on a loop-invariant condition such as gamma == 0 alone (pow_fast: fastmath.h).
    cdef floating m_pos = exp_fast(gamma * log_fast(q))
    cdef floating m_pow = pow_fast(q, gamma)
    cdef floating modulator = m_pos if (q > 0) & (gamma != 0) else m_pow
    cdef floating dce = p - y
    cdef floating dq = -p * (one - p) * (y + y - one)
    cdef floating d_pos = gamma * (modulator / q) * dq
    cdef floating d_pow = gamma * pow_fast(q, gamma - one) * dq
    cdef floating dmod = d_pos if q > 0 else d_pow
    dmod = 0 if (q == 0) | (gamma == 0) else dmod
    cdef floating loss = ce * modulator
    cdef floating dloss = dce * modulator + ce * dmod
    cdef floating a_t
    if alpha >= 0:
        a_t = alpha * y + (one - alpha) * (one - y)
        loss = a_t * loss
        dloss = a_t * dloss
    return loss, dloss, 0


cdef inline (floating, floating, floating) _l1_point(floating x, floating y, floating z, floating p0, floating p1,
                                                     floating p2) noexcept nogil:
    cdef floating d = x - y
    return fabs(d), sign(d), 0


cdef inline (floating, floating, floating) _mse_point(floating x, floating y, floating z, floating p0, floating p1,
                                                      floating p2) noexcept nogil:
    cdef floating d = x - y
    return d * d, d + d, 0


cdef inline (floating, floating, floating) _smooth_l1_point(floating x, floating y, floating z, floating beta,
                                                            floating p1, floating p2) noexcept nogil:
    cdef floating d = x - y
    cdef floating a = fabs(d)
    if beta > 0 and not (a >= beta):  # NaN takes this branch: a NaN gradient, as torch
        return <floating>0.5 * d * d / beta, d / beta, 0
    return a - <floating>0.5 * beta, sign(d), 0


cdef inline (floating, floating, floating) _huber_point(floating x, floating y, floating z, floating delta,
                                                        floating p1, floating p2) noexcept nogil:
    cdef floating d = x - y
    cdef floating a = fabs(d)
    if not (a >= delta):  # NaN takes this branch: a NaN gradient, as torch
        return <floating>0.5 * d * d, d, 0
    return delta * (a - <floating>0.5 * delta), delta * sign(d), 0


cdef inline floating _stirling(floating y) noexcept nogil:
    """torch's ``full`` term: y log y - y + 0.5 log(2 pi y), masked to 0 where y <= 1 (NaN passes)."""
    cdef floating zero = 0
    cdef floating term = y * log_fast(y) - y + <floating>0.5 * log_fast(<floating>6.283185307179586 * y)
    return term if not (y <= 1) else zero


cdef inline (floating, floating, floating) _poisson_log_input_point(floating x, floating y, floating z,
                                                                    floating p0, floating p1,
                                                                    floating p2) noexcept nogil:
    cdef floating e = exp_fast(x)
    return e - y * x, e - y, 0


cdef inline (floating, floating, floating) _poisson_log_input_full_point(floating x, floating y, floating z,
                                                                         floating p0, floating p1,
                                                                         floating p2) noexcept nogil:
    cdef (floating, floating, floating) r = _poisson_log_input_point(x, y, z, p0, p1, p2)
    return r[0] + _stirling(y), r[1], r[2]


cdef inline (floating, floating, floating) _poisson_point(floating x, floating y, floating z, floating p0,
                                                          floating eps, floating p2) noexcept nogil:
    cdef floating one = 1
    return x - y * log_fast(x + eps), one - y / (x + eps), 0


cdef inline (floating, floating, floating) _poisson_full_point(floating x, floating y, floating z, floating p0,
                                                               floating eps, floating p2) noexcept nogil:
    cdef (floating, floating, floating) r = _poisson_point(x, y, z, p0, eps, p2)
    return r[0] + _stirling(y), r[1], r[2]


cdef inline (floating, floating, floating) _gaussian_nll_point(floating x, floating y, floating var, floating eps,
                                                               floating full, floating p2) noexcept nogil:
    # As regression._gaussian_nll_point: divisions, not products with 1 / v, which gcc would
    # fuse (FMA) into the add differently in the loops with and without the gradient.
    cdef floating one = 1
    cdef floating half = <floating>0.5
    cdef floating v = var if not (var < eps) else eps  # NaN passes through
    cdef floating d = x - y
    cdef floating q = d * d / v
    cdef floating log_2pi = <floating>1.8378770664093453 if full != 0 else <floating>0  # log(2 pi)
    cdef floating loss = half * (log_fast(v) + q + log_2pi)
    return loss, d / v, half * (one / v - q / v)


# ----------------------------------------------------------------- kinds

cdef struct Bce:
    char unused
cdef struct BceLogits:
    char unused
cdef struct KlDiv:
    char unused
cdef struct SigmoidFocal:
    char unused
cdef struct L1:
    char unused
cdef struct Mse:
    char unused
cdef struct SmoothL1:
    char unused
cdef struct Huber:
    char unused
cdef struct PoissonLogInput:
    char unused
cdef struct Poisson:
    char unused
cdef struct GaussianNll:
    char unused
cdef struct PoissonLogInputFull:
    char unused
cdef struct PoissonFull:
    char unused
cdef struct BceLogitsPosWeight:
    char unused

ctypedef fused kind_t:
    Bce
    BceLogits
    KlDiv
    SigmoidFocal
    L1
    Mse
    SmoothL1
    Huber
    PoissonLogInput
    Poisson
    GaussianNll
    PoissonLogInputFull
    PoissonFull
    BceLogitsPosWeight

#: The scalar kernels with a Cython twin, by the Numba kernel's name.
KINDS = {name: code for code, name in enumerate([
    "_bce_point", "_bce_logits_point", "_kl_div_point", "_sigmoid_focal_point", "_l1_point", "_mse_point",
    "_smooth_l1_point", "_huber_point", "_poisson_log_input_point", "_poisson_point", "_gaussian_nll_point",
    "_poisson_log_input_full_point", "_poisson_full_point", "_bce_logits_pos_weight_point",
])}


cdef inline (floating, floating, floating) _point(kind_t kind, floating x, floating y, floating z, floating p0,
                                                  floating p1, floating p2) noexcept nogil:
    """The scalar kernel of ``kind``, chosen when this function is specialised."""
    if kind_t is Bce:
        return _bce_point(x, y, z, p0, p1, p2)
    elif kind_t is BceLogits:
        return _bce_logits_point(x, y, z, p0, p1, p2)
    elif kind_t is KlDiv:
        return _kl_div_point(x, y, z, p0, p1, p2)
    elif kind_t is SigmoidFocal:
        return _sigmoid_focal_point(x, y, z, p0, p1, p2)
    elif kind_t is L1:
        return _l1_point(x, y, z, p0, p1, p2)
    elif kind_t is Mse:
        return _mse_point(x, y, z, p0, p1, p2)
    elif kind_t is SmoothL1:
        return _smooth_l1_point(x, y, z, p0, p1, p2)
    elif kind_t is Huber:
        return _huber_point(x, y, z, p0, p1, p2)
    elif kind_t is PoissonLogInput:
        return _poisson_log_input_point(x, y, z, p0, p1, p2)
    elif kind_t is Poisson:
        return _poisson_point(x, y, z, p0, p1, p2)
    elif kind_t is PoissonLogInputFull:
        return _poisson_log_input_full_point(x, y, z, p0, p1, p2)
    elif kind_t is PoissonFull:
        return _poisson_full_point(x, y, z, p0, p1, p2)
    elif kind_t is BceLogitsPosWeight:
        return _bce_logits_pos_weight_point(x, y, z, p0, p1, p2)
    else:
        return _gaussian_nll_point(x, y, z, p0, p1, p2)


# ----------------------------------------------------------------- the tile loop

cdef struct Operand:
    # A C-contiguous (rows, cols), (1, cols), (rows, 1) or (1, 1) array broadcast to the
    # input's (rows, cols), and ``span`` copies of its value when it is (1, 1).
    const char *data
    Py_ssize_t rows, cols
    const char *constant


cdef struct Tiles:
    # One call of elementwise_tiles, its arrays as bytes (the dtype is the kernel's).
    Py_ssize_t rows, cols, per_row, block
    const char *x
    Operand y, z, weight, scale
    char *loss
    char *dx
    char *dz
    char *scratch  # per thread: 5 buffers of TILE values
    double *partial
    bint want_loss, want_dx, want_dz, uniform


cdef inline const floating *_column(Operand a, floating *scratch, Py_ssize_t r, Py_ssize_t c0,
                                    Py_ssize_t n) noexcept nogil:
    """Columns c0 : c0 + n of row r of operand ``a`` as ``n`` contiguous values: its own
    row, the row shared by every row, its constant, or its row's value copied into scratch."""
    cdef const floating *data = <const floating *>a.data
    cdef Py_ssize_t i
    if a.cols != 1:
        return data + (r if a.rows > 1 else 0) * a.cols + c0
    if a.rows == 1:
        return <const floating *>a.constant
    for i in range(n):
        scratch[i] = data[r]
    return scratch


cdef clones_void _item(kind_t kind, Py_ssize_t item, floating p0, floating p1, floating p2, Tiles *t,
                       floating *values) noexcept nogil:
    """Work item ``item``: columns [c0, c0 + TILE) of a block of rows. Writes the float64
    sum of its weighted losses to ``t.partial[item]``, and the losses and gradients asked
    for. ``values``: this thread's 5 * TILE scratch values. Compiled for AVX-512, AVX2 +
    FMA and the baseline, the loader picking one for the CPU, as the Numba kernels are
    compiled for the host CPU, with every call inlined so that the loops vectorise
    (``clones_void``: fastmath.h's FL_CLONES and FL_FLATTEN)."""
    cdef Py_ssize_t b = item // t.per_row
    cdef Py_ssize_t c0 = (item - b * t.per_row) * TILE
    cdef Py_ssize_t n = min(c0 + TILE, t.cols) - c0
    cdef floating *buf_y = values + TILE
    cdef floating *buf_z = values + 2 * TILE
    cdef floating *buf_w = values + 3 * TILE
    cdef floating *buf_s = values + 4 * TILE
    cdef floating w0 = (<const floating *>t.weight.data)[0]
    cdef floating g0 = (<const floating *>t.scale.data)[0] * w0 if t.want_dx else w0
    cdef double acc = 0
    cdef Py_ssize_t r, i, offset
    cdef const floating *xs
    cdef const floating *ys
    cdef const floating *zs
    cdef const floating *ws
    cdef const floating *ss
    cdef floating *out
    cdef floating *dxs
    cdef floating *dzs
    cdef floating l, gx, gz, w, g
    for r in range(b * t.block, min(b * t.block + t.block, t.rows)):
        offset = r * t.cols + c0
        xs = <const floating *>t.x + offset
        ys = _column(t.y, buf_y, r, c0, n)
        zs = _column(t.z, buf_z, r, c0, n)
        ws = _column(t.weight, buf_w, r, c0, n)
        out = <floating *>t.loss + offset if t.want_loss else values
        if t.want_dz:
            ss = _column(t.scale, buf_s, r, c0, n)
            dxs = <floating *>t.dx + offset
            dzs = <floating *>t.dz + offset
            for i in range(n):
                l, gx, gz = _point(kind, xs[i], ys[i], zs[i], p0, p1, p2)
                w = ws[i]
                g = ss[i] * w
                out[i] = l * w
                dxs[i] = gx * g
                dzs[i] = gz * g
        elif t.want_dx and t.uniform:
            # weight and scale are single values: fewer pointers in the loop, so the
            # compiler's runtime alias checks stay few. z is read per column even when it
            # is a single value (its row of copies): a kernel's tests of a loop-invariant
            # z (gaussian's log of var, its special values) would leave selects on
            # invariant conditions in the loop, which gcc 12 does not vectorise.
            dxs = <floating *>t.dx + offset
            for i in range(n):
                l, gx, gz = _point(kind, xs[i], ys[i], zs[i], p0, p1, p2)
                out[i] = l * w0
                dxs[i] = gx * g0
        elif t.want_dx:
            ss = _column(t.scale, buf_s, r, c0, n)
            dxs = <floating *>t.dx + offset
            for i in range(n):
                l, gx, gz = _point(kind, xs[i], ys[i], zs[i], p0, p1, p2)
                w = ws[i]
                out[i] = l * w
                dxs[i] = gx * (ss[i] * w)
        elif t.uniform:
            for i in range(n):
                l, gx, gz = _point(kind, xs[i], ys[i], zs[i], p0, p1, p2)
                out[i] = l * w0
        else:
            for i in range(n):
                l, gx, gz = _point(kind, xs[i], ys[i], zs[i], p0, p1, p2)
                out[i] = l * ws[i]
        acc += sum_to_double(out, n)
    t.partial[item] = acc


cdef void _tiles(kind_t kind, floating p0, floating p1, floating p2, Tiles *t, Py_ssize_t n_items,
                 int threads) noexcept nogil:
    cdef Py_ssize_t item
    for item in prange(n_items, schedule="static", num_threads=threads):
        _item(kind, item, p0, p1, p2, t, <floating *>t.scratch + 5 * TILE * threadid())


cdef void _dispatch(int kind, floating p0, floating p1, floating p2, Tiles *t, Py_ssize_t n_items,
                    int threads) noexcept nogil:
    if kind == 0:
        _tiles(Bce(0), p0, p1, p2, t, n_items, threads)
    elif kind == 1:
        _tiles(BceLogits(0), p0, p1, p2, t, n_items, threads)
    elif kind == 2:
        _tiles(KlDiv(0), p0, p1, p2, t, n_items, threads)
    elif kind == 3:
        _tiles(SigmoidFocal(0), p0, p1, p2, t, n_items, threads)
    elif kind == 4:
        _tiles(L1(0), p0, p1, p2, t, n_items, threads)
    elif kind == 5:
        _tiles(Mse(0), p0, p1, p2, t, n_items, threads)
    elif kind == 6:
        _tiles(SmoothL1(0), p0, p1, p2, t, n_items, threads)
    elif kind == 7:
        _tiles(Huber(0), p0, p1, p2, t, n_items, threads)
    elif kind == 8:
        _tiles(PoissonLogInput(0), p0, p1, p2, t, n_items, threads)
    elif kind == 9:
        _tiles(Poisson(0), p0, p1, p2, t, n_items, threads)
    elif kind == 10:
        _tiles(GaussianNll(0), p0, p1, p2, t, n_items, threads)
    elif kind == 11:
        _tiles(PoissonLogInputFull(0), p0, p1, p2, t, n_items, threads)
    elif kind == 12:
        _tiles(PoissonFull(0), p0, p1, p2, t, n_items, threads)
    else:
        _tiles(BceLogitsPosWeight(0), p0, p1, p2, t, n_items, threads)


cdef Operand _operand(const floating[:, ::1] a, floating[::1] constant):
    """``a`` as an :class:`Operand`; ``constant`` is filled with its value if it is (1, 1)."""
    if a.shape[0] == 1 and a.shape[1] == 1:
        constant[:] = a[0, 0]
    return Operand(<const char *>&a[0, 0], a.shape[0], a.shape[1], <const char *>&constant[0])


def elementwise_tiles(int kind, const floating[:, ::1] x, const floating[:, ::1] y, const floating[:, ::1] z,
                      const floating[:, ::1] weight, floating p0, floating p1, floating p2,
                      const floating[:, ::1] scale, floating[:, ::1] loss, floating[:, ::1] dx,
                      floating[:, ::1] dz, bint want_loss, bint want_dx, bint want_dz):
    """Apply scalar kernel ``kind`` (a value of :data:`KINDS`) elementwise over the
    C-contiguous (rows, cols) ``x``; ``y``, ``z``, ``weight`` and ``scale`` broadcast
    to it from (rows, cols), (1, cols), (rows, 1) or (1, 1). Returns the float64 sum of
    ``weight * loss``; fills ``loss`` (if ``want_loss``) and ``dx``/``dz`` = ``scale *
    weight * dloss`` (if asked): :func:`fastloss._core.elementwise.elementwise_tiles`,
    compiled ahead of time."""
    if not 0 <= kind < len(KINDS):
        raise ValueError(f"unknown elementwise kind {kind}")
    cdef Tiles t
    cdef double total
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1]
    if rows * cols == 0:
        return 0.0
    dtype = np.float32 if floating is float else np.float64
    span = min(cols, TILE)
    t.rows, t.cols = rows, cols
    t.per_row = (cols + TILE - 1) // TILE
    t.block = max(1, TILE // cols)
    cdef Py_ssize_t n_items = ((rows + t.block - 1) // t.block) * t.per_row
    cdef int threads = <int>min(<Py_ssize_t>fl_max_threads(), n_items)
    constants = np.empty((4, span), dtype)
    scratch = np.empty((threads, 5 * TILE), dtype)
    partial = np.empty(n_items)
    cdef floating[:, ::1] constants_view = constants
    cdef floating[:, ::1] scratch_view = scratch
    cdef double[::1] partial_view = partial
    t.x = <const char *>&x[0, 0]
    t.y = _operand(y, constants_view[0])
    t.z = _operand(z, constants_view[1])
    t.weight = _operand(weight, constants_view[2])
    t.scale = _operand(scale, constants_view[3])
    t.loss = <char *>&loss[0, 0] if want_loss else NULL
    t.dx = <char *>&dx[0, 0] if want_dx else NULL
    t.dz = <char *>&dz[0, 0] if want_dz else NULL
    t.scratch = <char *>&scratch_view[0, 0]
    t.partial = &partial_view[0]
    t.want_loss, t.want_dx, t.want_dz = want_loss, want_dx, want_dz
    t.uniform = weight.shape[0] == 1 and weight.shape[1] == 1 and scale.shape[0] == 1 and scale.shape[1] == 1
    with nogil:
        _dispatch(kind, p0, p1, p2, &t, n_items, threads)
        total = sum_to_double(&partial_view[0], n_items)
    return total
