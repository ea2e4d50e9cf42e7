r"""The GPU kernels of :mod:`fastloss.classification`'s row losses: :func:`cross_entropy`,
:func:`nll_loss` and :func:`focal_loss` on device arrays, in the ``numba.cuda`` dialect.

Imported on the first call with a device array (never by ``import fastloss``). The
formulas are the CPU kernels' (:mod:`fastloss.classification.cpu` and the module
docstring of :mod:`fastloss.classification`); the layout is the CPU's too: an input
(N, C, d1, ..., dk) is read as (N, K, C) rows, K = d1 * ... * dk, through a strided view
of the caller's memory (the class axis then has a stride of K elements), never a copy.

One kernel, :func:`class_rows_fwd_grad` (a variant per float type, kind of row and
gradient or not: :data:`ROW_KERNELS`),
serves the three losses (and cross-entropy's probability targets), one block of threads
per row, rows in a grid-stride loop:

1. online softmax: each thread runs a (max, sum of exp) pair over its classes (c = tid,
   tid + blockDim, ...), then the block merges the pairs (``block_max``, ``block_sum``):
   one read of the row;
2. the per-row scalars (target logit, focal factor, the gradient's scale), the same in
   every thread;
3. a second read of the row writes the gradient, each thread reading a logit before it
   writes the gradient over it (in place when ``grad_out`` is the input) and summing the
   label-smoothing or probability-target term of the loss;
4. thread 0 adds the row's loss to its block's float64 partial sum.

A reduced loss is summed on the device: :func:`sum_parts`, one block, adds the row
kernel's per-block partials in float64 and divides by the mean's denominator. For class
targets that denominator (the weight or count of the targets not ignored) depends on the
values, and a gradient of the mean needs it before any row is written: the small kernel
:func:`class_target_sums` sums it first (per-block partials, then :func:`sum_parts`).

A class index out of [0, C) that is not ``ignore_index`` makes its row NaN (loss and
gradient) and is flagged (``cuda.atomic.min``); the call then reads the flag once and
raises the CPU path's ValueError (:func:`fastloss._core.cuda.first_flagged`; with device
checks off nothing is read and the rows stay NaN).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .._core.cuda import (
    block_size,
    first_flagged,
    grid,
    is_device_array,
    new_flag,
    per_thread,
    resident,
    simulating,
    threads_for,
    to_device,
)
from .._core.cuda_blocks import block_max, block_sum, cuda, divide
from .._core.cuda_elementwise import (
    check_probabilities,
    device_input,
    elementwise_loss,
    launch,
    plumbing,
    secondary,
    value_at,
)
from .._core.layout import check_no_overlap, reshape_view
from .._core.reduction import check_options, loss_scale
from .._core.validation import (
    as_class_weight,
    as_index_array,
    as_target_array,
    check_bool,
    check_broadcast,
    check_integer,
    check_option,
    check_shape,
    class_index_error,
)
from . import _class_input, _loss_shape, cpu

#: Slots of the kernels' shared reduction buffer: the most threads a block has.
THREADS = block_size()
#: Bytes of a row each thread of :func:`class_rows_fwd_grad` loads before it uses them
#: (8 float32 or 4 float64 logits), and the blocks of 256 threads the kernel keeps on one
#: multiprocessor (launch bounds: at most 80 registers a thread on sm_90; 64, for 4
#: blocks, spills). A block then has 8 KiB of its row in flight, 24 KiB an SM; for rows
#: of up to 1024 float32 classes, blocks of 128 threads: 6 rows of 4 KiB an SM.
LOADS_IN_FLIGHT = 32
ROW_BLOCKS = 3

#: What a row of :func:`class_rows_fwd_grad` holds: logits and a class index
#: (cross-entropy, focal loss), logits and probabilities, or log-probabilities and a class
#: index (nll_loss).
CLASS, SOFT, NLL = 0, 1, 2

# ---------------------------------------------------------------- device functions


@cuda.jit(device=True)
def _merge_softmax(buffer, m, s):
    """The row's (max, sum of exp(x_c - max)) from every thread's pair; NaN when a logit
    is NaN or +inf, or when every logit is -inf, as on the CPU."""
    top = block_max(buffer, m)
    if top == -math.inf:
        scaled = math.nan  # every logit -inf: the CPU's sum of exp(-inf - -inf)
    elif s != 0:
        scaled = s * math.exp(m - top)  # NaN stays NaN, even at m = -inf
    else:
        scaled = 0.0  # no class here but masked ones (or none at all)
    return top, block_sum(buffer, scaled)


@cuda.jit(device=True)
def _fill_row(grad, n, k, value, step):
    """This thread's classes of gradient row (n, k) set to ``value``."""
    for c in range(cuda.threadIdx.x, grad.shape[2], step):
        grad[n, k, c] = value


@cuda.jit(device=True)
def _row_scale(scale, factor, den, n, k):
    """The gradient's factor for row (n, k): grad_output's (``scale``, empty for 1) times
    ``factor``, over the mean's device denominator (``den``, empty for 1)."""
    s = factor * scale[n, k] if scale.shape[0] else factor
    return s / den[0] if den.shape[0] else s


# ---------------------------------------------------------------- kernels

def _row_kernel(ft, mode, want_grad):
    """:func:`class_rows_fwd_grad` for logits of the float type ``ft`` (``numba.float32``
    or ``numba.float64``), rows of kind ``mode`` (:data:`CLASS`, :data:`SOFT` or
    :data:`NLL`), with the gradient (``want_grad``) or without: per-class arithmetic in
    ``ft``, as on the CPU (float64 runs at a fraction of float32's rate on a GPU: a float32
    row must not pay for it per class), per-row scalars and sums in float64. The mode and
    the gradient are constants of each variant: it holds only its own code, and so fewer
    live registers (more rows resident on a multiprocessor).

    Both passes over a row read it :data:`LOADS_IN_FLIGHT` bytes a thread at a time: a
    thread loads its next ``unroll`` logits (classes ``c, c + blockDim, ...``) into
    registers before it uses any, so that a multiprocessor has enough loads in flight to
    keep HBM busy; one load, used at once, would leave it waiting for each."""
    unroll = per_thread(LOADS_IN_FLIGHT, str(ft))
    low = ft(-math.inf)

    @cuda.jit(device=True)
    def load_round(values, targets, x, y, n, k, start, step, past):
        """This thread's next ``unroll`` logits of row (n, k) (classes start, start + step,
        ...) into ``values`` and, for soft targets, their targets into ``targets``, every
        load issued before any is used; a class past the row reads as ``past`` (target 0)."""
        n_classes = x.shape[2]
        for u in range(unroll):
            c = start + u * step
            values[u] = x[n, k, c] if c < n_classes else past
            if mode == SOFT:
                targets[u] = y[n, k, c] if c < n_classes else ft(0)

    @cuda.jit(device=True)
    def online_softmax(x, n, k, y, weight, keep, spread, step):
        """This thread's share of pass 1 over row (n, k): ``(m, s, mass)`` with m the largest
        of its logits, s = sum exp(x_c - m) over them, and mass = sum w_c q_c, the soft
        targets' (q_c = keep y_c + spread) or, with smoothing, the class weights' sum (q_c = 1)."""
        n_classes = x.shape[2]
        values = cuda.local.array(unroll, ft)
        targets = cuda.local.array(unroll, ft)  # soft targets: read with the logits
        m = low
        s = 0.0
        mass = 0.0
        for start in range(cuda.threadIdx.x, n_classes, step * unroll):
            load_round(values, targets, x, y, n, k, start, step, low)  # a class past the row: -inf, no term
            top = m
            for u in range(unroll):
                if values[u] > top:  # NaN is never larger: it reaches s through exp below
                    top = values[u]
            if top > m:
                s *= math.exp(m - top)  # the sum so far, rescaled to the new maximum (0 at m = -inf)
                m = top
            for u in range(unroll):
                if values[u] != -math.inf:  # -inf masks a class (exp(-inf - m) is NaN at m = -inf); NaN gives NaN
                    s += math.exp(values[u] - m)
            if mode == SOFT or spread != 0:
                for u in range(unroll):
                    c = start + u * step
                    if c < n_classes:
                        w = weight[c] if weight.shape[0] else ft(1)
                        mass += w * (ft(keep) * targets[u] + ft(spread)) if mode == SOFT else w
        return m, s, mass

    @cuda.jit(device=True)
    def row_loss(buffer, x, target, y, weight, keep, spread, gamma, ignore_index, scale, factor, den, grad, flag, n,
                 k):
        """Row (n, k) of :func:`class_rows_fwd_grad`: writes its gradient and returns its loss
        (every thread gets it)."""
        step = cuda.blockDim.x
        n_classes = x.shape[2]
        t = 0
        x_t = 0.0
        if mode != SOFT:
            t = target[n, k]
            if t != ignore_index and (t < 0 or t >= n_classes):
                if cuda.threadIdx.x == 0:
                    cuda.atomic.min(flag, 0, n * x.shape[1] + k)
                if want_grad:
                    _fill_row(grad, n, k, math.nan, step)
                return math.nan
            if t != ignore_index:
                x_t = x[n, k, t]  # read before any thread writes the gradient over it
        ignored = mode != SOFT and t == ignore_index
        if mode == NLL:
            cuda.syncthreads()  # every thread has read x_t
            w_t = (weight[t] if weight.shape[0] else 1.0) if not ignored else 0.0
            if want_grad:
                g_t = -w_t * _row_scale(scale, factor, den, n, k) if not ignored else 0.0  # torch's order: w (g / sum w)
                for c in range(cuda.threadIdx.x, n_classes, step):
                    grad[n, k, c] = g_t if c == t else 0.0
            cuda.syncthreads()  # the row is written before the next one is read (in place)
            return -w_t * x_t if not ignored else 0.0
        # 1. online softmax
        m, s, mass = online_softmax(x, n, k, y, weight, keep, spread, step)
        top, total = _merge_softmax(buffer, m, s)
        if mode == SOFT or spread != 0:
            mass = block_sum(buffer, mass)
        else:
            mass = 1.0
        if ignored:
            if want_grad:
                # 0, or NaN across the row where its log-softmax or, with smoothing, the weights'
                # sum is not finite (the CPU's _ignored_row_grad).
                _fill_row(grad, n, k, 0.0 * total * mass, step)
            return 0.0
        # 2. per-row scalars
        log_total = math.log(total)
        a = 0.0
        b = 0.0
        value = 0.0
        s_row = 0.0
        if want_grad:
            s_row = _row_scale(scale, factor, den, n, k)
        if mode == SOFT:
            a = mass * s_row
        else:
            nll = log_total + (top - x_t)
            w_t = weight[t] if weight.shape[0] else 1.0
            focal, g = cpu.focal_factors(nll, gamma)
            value = keep * w_t * focal * nll
            b = keep * w_t * g * s_row
            a = b
            if spread != 0:
                a += spread * mass * s_row
        # 3. gradient and the spread-out term of the loss (soft targets, label smoothing)
        top_x = ft(top)  # exact: a logit, or an infinity
        a_x = ft(a / total)
        s_x = ft(s_row)
        b_x = ft(b)
        spread_term = mode == SOFT or spread != 0
        part = 0.0
        values = cuda.local.array(unroll, ft)
        targets = cuda.local.array(unroll, ft)
        for start in range(cuda.threadIdx.x, n_classes, step * unroll):
            load_round(values, targets, x, y, n, k, start, step, ft(0))  # this thread's own classes: read, then written
            for u in range(unroll):
                c = start + u * step
                if c < n_classes:
                    v = values[u]
                    w = weight[c] if weight.shape[0] else ft(1)
                    q = ft(keep) * targets[u] + ft(spread) if mode == SOFT else ft(spread)
                    if spread_term:
                        part += w * q * (ft(log_total) - (v - top_x))
                    if want_grad:
                        out = a_x * math.exp(v - top_x)
                        if spread_term:
                            # Without smoothing no weight enters here: a NaN weight reaches its own class's rows only.
                            out -= s_x * w * q
                        if c == t and mode == CLASS:
                            out -= b_x
                        grad[n, k, c] = out
        if spread_term:
            value += block_sum(buffer, part)
        return value

    def class_rows_fwd_grad(x, target, y, weight, keep, spread, gamma, ignore_index, scale, factor, den, loss, grad,
                            parts, flag):
        """Fused softmax cross-entropy, focal loss and NLL over (N, K, C) rows, one block per row.

        The variant's ``mode``: :data:`CLASS` (``target`` (N, K) class indices; ``keep = 1 -
        label_smoothing``, ``spread = label_smoothing / C``, focal exponent ``gamma``),
        :data:`SOFT` (``y`` (N, K, C) probabilities, smoothed as ``keep y + spread``) or
        :data:`NLL` (``x`` holds log-probabilities). ``weight`` (C,), empty for ones. Writes
        each row's loss into ``loss`` (N, K) (unless empty) and, in a variant with the
        gradient (``want_grad``), its gradient times
        ``factor * scale[n, k] / den[0]`` (an empty ``scale`` or ``den`` stands for 1) into
        ``grad`` (N, K, C), which may be ``x`` itself; ``parts[block]``: the float64 sum of
        its block's row losses. A bad class index: NaN row, flagged in ``flag``.
        """
        buffer = cuda.shared.array(THREADS, np.float64)
        n_pos = x.shape[1]
        block_total = 0.0
        for r in range(cuda.blockIdx.x, x.shape[0] * n_pos, cuda.gridDim.x):
            n = r // n_pos
            k = r - n * n_pos
            value = row_loss(buffer, x, target, y, weight, keep, spread, gamma, ignore_index, scale, factor, den, grad,
                             flag, n, k)
            if loss.shape[0] and cuda.threadIdx.x == 0:
                loss[n, k] = value
            block_total += value
        if cuda.threadIdx.x == 0:
            parts[cuda.blockIdx.x] = block_total

    # Each variant's own name (class_rows_class_grad, ...), the one a profiler shows.
    name = f"class_rows_{('class', 'soft', 'nll')[mode]}{'_grad' if want_grad else ''}"
    class_rows_fwd_grad.__name__ = name
    class_rows_fwd_grad.__qualname__ = f"{class_rows_fwd_grad.__qualname__.rpartition('.')[0]}.{name}"
    return cuda.jit(**resident(ROW_BLOCKS))(class_rows_fwd_grad)


#: The row kernel's variants (see :func:`_row_kernel`), by (logits' dtype, mode, gradient wanted).
ROW_KERNELS = {(np.dtype(ft.name), mode, want_grad): _row_kernel(ft, mode, want_grad)
               for ft in (numba.float32, numba.float64) for mode in (CLASS, SOFT, NLL) for want_grad in (False, True)}


@cuda.jit
def class_target_sums(target, n_classes, ignore_index, weight, weighted, parts, flag):
    """Per-block float64 sums of the mean's denominator over (N, K) class indices: the
    weight of each target that is not ``ignore_index`` (``weighted``), else 1; a target
    out of [0, n_classes) is flagged and adds nothing."""
    buffer = cuda.shared.array(THREADS, np.float64)
    n_pos = target.shape[1]
    kept = 0.0
    for i in range(cuda.grid(1), target.shape[0] * n_pos, cuda.gridsize(1)):
        n = i // n_pos
        t = target[n, i - n * n_pos]
        if t == ignore_index:
            continue
        if t < 0 or t >= n_classes:
            cuda.atomic.min(flag, 0, i)
        elif weighted and weight.shape[0]:
            kept += weight[t]
        else:
            kept += 1.0
    kept = block_sum(buffer, kept)
    if cuda.threadIdx.x == 0:
        parts[cuda.blockIdx.x] = kept


@cuda.jit
def sum_parts(parts, den, divisor, out):
    """One block: ``out[0]`` = the float64 sum of ``parts`` over ``den[0]`` (device) or,
    if ``den`` is empty, over ``divisor``; a zero denominator gives inf or NaN."""
    buffer = cuda.shared.array(THREADS, np.float64)
    total = 0.0
    for i in range(cuda.threadIdx.x, parts.shape[0], cuda.blockDim.x):
        total += parts[i]
    total = block_sum(buffer, total)
    if cuda.threadIdx.x == 0:
        out[0] = divide(total, den[0] if den.shape[0] else divisor)


def _signatures():
    """(kernel, signature) for float32 and float64 inputs (int64 class indices), for a
    compile-only check of the kernels."""
    signatures = []
    for f in ("float32", "float64"):
        signatures += [
            (kernel, f"void({f}[:, :, :], int64[:, :], {f}[:, :, :], {f}[:], float64, float64, float64, int64, "
                     f"{f}[:, :], float64, float64[:], {f}[:, :], {f}[:, :, :], float64[:], int64[:])")
            for (dtype, _, _), kernel in ROW_KERNELS.items() if dtype == np.dtype(f)
        ] + [
            (class_target_sums, f"void(int64[:, :], int64, int64, {f}[:], boolean, float64[:], int64[:])"),
            (sum_parts, f"void(float64[:], float64[:], float64, {f}[:])"),  # float64: also the denominator's
        ]
    return signatures


PTX_SIGNATURES = _signatures()

# ---------------------------------------------------------------- device arrays as host-side shadows


class _Interface:
    """An object exposing an array interface (host or CUDA) and keeping its owner alive."""

    def __init__(self, name, interface, owner):
        setattr(self, name, interface)
        self.owner = owner


def _shadow(array):
    """A NumPy array with ``array``'s address, shape and strides, for layout arithmetic only
    (views, overlap tests): on a GPU its memory is the device's and must never be read.
    Under the simulator it is the device array's own NumPy array."""
    if simulating():
        return array._ary
    device = array.__cuda_array_interface__
    interface = {"shape": tuple(device["shape"]), "strides": device.get("strides"), "typestr": device["typestr"],
                 "data": (device["data"][0], False), "version": 3}
    return np.asarray(_Interface("__array_interface__", interface, array))


def _device_view(array, view):
    """The device array that ``view`` (a view of ``_shadow(array)``) describes, no copy."""
    if simulating():
        return type(array)(view)
    interface = {"shape": view.shape, "strides": view.strides, "typestr": view.dtype.str,
                 "data": (view.__array_interface__["data"][0], False), "version": 3, "stream": None}
    return cuda.as_cuda_array(_Interface("__cuda_array_interface__", interface, array))


def _rows(array, view, what):
    """``view(shadow)`` of device ``array`` as a device array; ValueError when its strides
    admit no such view (only an input of 4 or more dimensions whose trailing axes do not
    merge)."""
    shadow = _shadow(array)
    result = view(shadow)
    if result is None:
        raise ValueError(f"{what} of shape {array.shape} and strides {array.strides} has no (N, K, C) view: "
                         f"its axes after the class axis do not merge; pass a contiguous array")
    return _device_view(array, result)


def _class_rows(a):
    """:func:`fastloss._core.layout.class_rows` that never copies: None instead."""
    if a.ndim == 2:
        return a[:, None, :]
    if a.ndim == 1:
        return reshape_view(a, (1, 1, a.shape[0]))
    view = reshape_view(a, (a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64))))
    return None if view is None else view.transpose(0, 2, 1)


def _position_rows(a):
    """An array of loss shape (N, d...) or () as (N, K) rows, matching :func:`_class_rows`."""
    if a.ndim <= 1:
        return reshape_view(a, (1, 1) if a.ndim == 0 else (a.shape[0], 1))
    return reshape_view(a, (a.shape[0], int(np.prod(a.shape[1:], dtype=np.int64))))


def _blank(array):
    """A host array shaped and typed like device ``array`` that may be read (every element
    0): the host validation helpers take it in the device array's place."""
    return np.broadcast_to(np.zeros((), array.dtype), array.shape)


def _empty(ndim, dtype):
    """A size-0 device array, "not given" for an optional kernel argument (a NULL pointer:
    nothing is allocated, and it belongs to the current context, so it is not cached)."""
    return cuda.device_array((0,) * ndim, dtype)


# ---------------------------------------------------------------- host side


def _check_input(input):
    """The validated device logits: ``(x, n_classes, loss_shape)`` (the CPU's checks and messages)."""
    if not is_device_array(input):
        raise TypeError(f"input must be a device array here, got {type(input).__name__}")
    if np.dtype(input.dtype).kind == "f" and np.dtype(input.dtype) not in (np.float32, np.float64):
        raise TypeError(f"input has dtype {input.dtype} on the device; the GPU kernels take float32 or float64 "
                        f"(convert it on the device)")
    _, n_classes = _class_input(_blank(input))
    return input, n_classes, _loss_shape(_blank(input))


def _class_weight(weight, n_classes, dtype, name="weight"):
    """Class weights on the device (an empty array for None: ones), checked as on the CPU."""
    if weight is None:
        return _empty(1, dtype)
    if is_device_array(weight):
        as_class_weight(_blank(weight), n_classes, dtype, name)
        return to_device(weight, dtype)
    return to_device(as_class_weight(weight, n_classes, dtype, name), dtype)


def _class_targets(target, x, loss_shape):
    """Class indices on the device as (N, K) rows, checked as on the CPU (values by the kernels)."""
    if is_device_array(target):
        if np.dtype(target.dtype).kind not in "iu":
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        t = target
    else:
        t = to_device(as_index_array(target, "target"))
    if t.shape != loss_shape:
        check_shape(t.shape, loss_shape, "target", f"input of shape {x.shape} (class indices drop the class axis)")
    return _rows(t, _position_rows, "target")


def _grad_scale(reduction, grad_output, loss_shape, denominator, dtype):
    """(``scale`` (N, K) device view, or empty for 1; host ``factor``) with
    ``factor * scale`` = d(result)/d(loss) times ``grad_output``, as the CPU's
    :func:`~fastloss._core.reduction.loss_scale` gives it (checks and messages too)."""
    if grad_output is not None and is_device_array(grad_output):
        loss_scale(reduction, _blank(grad_output), loss_shape, denominator, dtype)  # checks its shape
        g = to_device(grad_output, dtype)
        scale = _rows(g, lambda a: _position_rows(np.broadcast_to(a, loss_shape)), "grad_output")
        return scale, float(loss_scale(reduction, None, loss_shape, denominator, dtype))
    factor = loss_scale(reduction, grad_output, loss_shape, denominator, dtype)
    if factor.ndim == 0:
        return _empty(2, dtype), float(factor)
    full = np.ascontiguousarray(np.broadcast_to(factor, loss_shape), dtype)
    return to_device(_position_rows(full)), 1.0


def _gradient_buffer(x, grad_out, reads):
    """The gradient's device array (``grad_out``, which may be ``x`` itself, or a new one)
    and its (N, K, C) rows; ``grad_out`` checked as the CPU's GradientBuffer checks it."""
    if grad_out is None:
        grad = cuda.device_array(x.shape, x.dtype)
    else:
        if not is_device_array(grad_out):
            raise TypeError(f"grad_out must be a device array for a device input, got {type(grad_out).__name__}")
        if grad_out.shape != x.shape:
            raise ValueError(f"grad_out has shape {grad_out.shape}; expected the input's shape {x.shape}")
        if np.dtype(grad_out.dtype) != np.dtype(x.dtype):
            raise TypeError(f"grad_out has dtype {grad_out.dtype}; the gradient is computed in {np.dtype(x.dtype)}")
        check_no_overlap(_shadow(grad_out), _shadow(x), {name: _shadow(a) for name, a in reads.items() if a.size})
        grad = grad_out
    return grad, _rows(grad, _class_rows, "grad_out")


def _rows_call(mode, x, loss_shape, n_classes, target, y, weight, keep, spread, gamma, ignore_index, weighted_mean,
               reduction, grad, grad_output, grad_out):
    """Common tail of the device row losses: targets' denominator, the row kernel, the
    reduction on the device, the flag; the result as the CPU's ``_run_rows`` returns it."""
    dtype = np.dtype(x.dtype)
    rows = _rows(x, _class_rows, "input")
    n_rows = rows.shape[0] * rows.shape[1]
    flag = new_flag(n_rows)
    blocks = grid(n_rows, 1)[0]  # one block per row (one "item" a block), up to the grid's cap
    # Threads per row: a power of two (the block reductions halve it) near C over the
    # logits a thread loads at once, 32 to THREADS.
    threads = threads_for(-(-n_classes // per_thread(LOADS_IN_FLIGHT, dtype)))
    # The mean's denominator: the number of rows for probability targets, else summed on the device.
    host_denominator = float(n_rows) if mode == SOFT else 1.0
    if grad:
        reads = {"target": target if mode != SOFT else y, "weight": weight}
        scale, factor = _grad_scale(reduction, grad_output, loss_shape, host_denominator, dtype)
        reads["grad_output"] = scale
        result_grad, grad_rows = _gradient_buffer(x, grad_out, reads)
    else:
        scale, factor, result_grad, grad_rows = _empty(2, dtype), 1.0, None, _empty(3, dtype)
    den = _empty(1, np.float64)
    if mode != SOFT and reduction == "mean":
        # The mean's denominator depends on the targets and the gradient needs it: sum it first.
        target_blocks, target_threads = grid(n_rows)
        target_parts = cuda.device_array(target_blocks, np.float64)
        class_target_sums[target_blocks, target_threads](target, n_classes, ignore_index, weight, weighted_mean,
                                                         target_parts, flag)
        den = cuda.device_array(1, np.float64)
        sum_parts[1, THREADS](target_parts, _empty(1, np.float64), 1.0, den)
    losses = cuda.device_array(loss_shape, dtype) if reduction == "none" else None
    loss_rows = _rows(losses, _position_rows, "loss") if losses is not None else _empty(2, dtype)
    parts = cuda.device_array(blocks, np.float64)
    ROW_KERNELS[dtype, mode, bool(grad)][blocks, threads](rows, target, y, weight, keep, spread, gamma, ignore_index,
                                                          scale, factor, den, loss_rows, grad_rows, parts, flag)
    if losses is None:
        out = cuda.device_array(1, dtype)
        sum_parts[1, THREADS](parts, den if reduction == "mean" else _empty(1, np.float64),
                              host_denominator if reduction == "mean" else 1.0, out)
        losses = out.reshape(())
    bad = first_flagged(flag, n_rows)
    if bad is not None:
        k = target.shape[1]
        value = np.array([int(target[bad // k, bad % k])])  # the one bad index, read back to name it
        raise class_index_error(value, 0, n_classes, "target", ignore_index)
    return (losses, result_grad) if grad else losses


def _class_loss(x, loss_shape, n_classes, target, weight, weighted_mean, ignore_index, smoothing, gamma, reduction,
                grad, grad_output, grad_out, mode=CLASS):
    t = _class_targets(target, x, loss_shape)
    return _rows_call(mode, x, loss_shape, n_classes, t, _empty(3, x.dtype), weight, 1.0 - smoothing,
                      smoothing / n_classes, gamma, ignore_index, weighted_mean, reduction, grad, grad_output,
                      grad_out)


# ---------------------------------------------------------------- entry points


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  grad=False, grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.cross_entropy` on device arrays (the formula is in its docstring):
    class-index targets (weight, ignore_index, label smoothing) or probability targets,
    inputs (N, C), (N, C, d1, ...) or (C,). Launches :func:`class_rows_fwd_grad`
    (:data:`CLASS` or :data:`SOFT`), then :func:`sum_parts` for a reduced loss, after
    :func:`class_target_sums` and :func:`sum_parts` for the mean of class targets."""
    check_options(reduction, grad)
    smoothing = check_option("cross_entropy", "label_smoothing", label_smoothing)
    ignore_index = check_integer(ignore_index, "ignore_index")
    x, n_classes, loss_shape = _check_input(input)
    dtype = np.dtype(x.dtype)
    w = _class_weight(weight, n_classes, dtype)
    kind = np.dtype(target.dtype).kind if is_device_array(target) else np.asarray(target).dtype.kind
    if kind != "f":
        return _class_loss(x, loss_shape, n_classes, target, w, True, ignore_index, smoothing, 0.0, reduction, grad,
                           grad_output, grad_out)
    if ignore_index >= 0:
        raise ValueError(f"ignore_index={ignore_index} is not supported for probability (floating-point) "
                         f"targets; leave it negative (default -100)")
    y = to_device(target if is_device_array(target) else as_target_array(target, "target", dtype), dtype)
    check_shape(y.shape, x.shape, "target", "input (probability targets have the input's shape)")
    y_rows = _rows(y, _class_rows, "target")
    return _rows_call(SOFT, x, loss_shape, n_classes, _empty(2, np.int64), y_rows, w, 1.0 - smoothing,
                      smoothing / n_classes, 0.0, ignore_index, False, reduction, grad, grad_output, grad_out)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean", grad=False, grad_output=None,
             grad_out=None, backend=None):
    """:func:`fastloss.nll_loss` on device arrays: launches :func:`class_rows_fwd_grad`
    (:data:`NLL`: no softmax, the gradient row zero but at the target), after
    :func:`class_target_sums` and :func:`sum_parts` for the mean, then :func:`sum_parts`
    for a reduced loss."""
    check_options(reduction, grad)
    ignore_index = check_integer(ignore_index, "ignore_index")
    x, n_classes, loss_shape = _check_input(input)
    w = _class_weight(weight, n_classes, np.dtype(x.dtype))
    return _class_loss(x, loss_shape, n_classes, target, w, True, ignore_index, 0.0, 0.0, reduction, grad,
                       grad_output, grad_out, mode=NLL)


def focal_loss(input, target, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean", *, grad=False,
               grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.focal_loss` on device arrays (alpha None, scalar or per class; the
    mean counts the targets kept): the kernels of :func:`cross_entropy` with ``gamma``."""
    check_options(reduction, grad)
    gamma = check_option("focal_loss", "gamma", gamma)
    ignore_index = check_integer(ignore_index, "ignore_index")
    x, n_classes, loss_shape = _check_input(input)
    dtype = np.dtype(x.dtype)
    if alpha is not None and not is_device_array(alpha) and np.ndim(alpha) == 0:
        alpha = np.full(n_classes, check_option("focal_loss", "alpha", alpha), dtype)
    w = _class_weight(alpha, n_classes, dtype, "alpha")
    return _class_loss(x, loss_shape, n_classes, target, w, False, ignore_index, 0.0, gamma, reduction, grad,
                       grad_output, grad_out)


# ---------------------------------------------------------------- the elementwise losses of this family
# Scalar kernels of cpu.py run by the one GPU elementwise driver (fastloss._core.cuda_elementwise).

def _elementwise_args(input, target, weight, names=("input", "target")):
    """classification's ``_elementwise_args`` on the device: the target of the input's
    shape, the weight broadcasting to it."""
    x = device_input(input, names[0])
    y = secondary(target, names[1], x.dtype)
    check_shape(y.shape, x.shape, names[1], names[0])
    if weight is not None:
        weight = secondary(weight, "weight", x.dtype)
        check_broadcast(weight.shape, x.shape, "weight")
    return x, y, weight


def binary_cross_entropy(input, target, weight=None, *, reduction="mean", grad=False, grad_output=None,
                         grad_out=None, backend=None):
    """:func:`fastloss.binary_cross_entropy` on the GPU: the elementwise driver with its
    kernel; an input or target outside [0, 1] is flagged in the kernel and raises the CPU
    path's ValueError (after one read of the flag)."""

    check_options(reduction, grad)
    x, y, weight = _elementwise_args(input, target, weight)
    result, bad = elementwise_loss(cpu._BCE, x, y, None, weight, check=check_probabilities,
                                   **plumbing(reduction, grad, grad_output, grad_out))
    for slot, (name, array) in enumerate((("input", x), ("target", y))):
        if bad is not None and bad[slot] is not None:
            raise ValueError(f"{name} must hold probabilities in [0, 1]; found {value_at(array, bad[slot], x.shape)}")
    return result


def binary_cross_entropy_with_logits(input, target, weight=None, *, reduction="mean", pos_weight=None, grad=False,
                                     grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.binary_cross_entropy_with_logits` on the GPU: the elementwise driver
    with the kernel with or without ``pos_weight``."""

    check_options(reduction, grad)
    x, y, weight = _elementwise_args(input, target, weight)
    kind = cpu._BCE_LOGITS
    if pos_weight is not None:
        pos_weight = secondary(pos_weight, "pos_weight", x.dtype)
        check_broadcast(pos_weight.shape, x.shape, "pos_weight")
        kind = cpu._BCE_LOGITS_POS_WEIGHT
    return launch(kind, x, y, pos_weight, weight, **plumbing(reduction, grad, grad_output, grad_out))


def kl_div(input, target, *, reduction="mean", log_target=False, grad=False, grad_output=None, grad_out=None,
           backend=None):
    """:func:`fastloss.kl_div` on the GPU: the elementwise driver with its kernel ("batchmean":
    the sum over the batch size)."""

    check_options(reduction, grad, ("none", "mean", "sum", "batchmean"))
    log_target = check_bool(log_target, "log_target")
    x, y, _ = _elementwise_args(input, target, None)
    denominator = None
    if reduction == "batchmean":
        denominator = x.shape[0] if x.ndim else 1
        reduction = "mean"
    return launch(cpu._KL_DIV, x, y, params=(float(log_target), 0.0, 0.0), denominator=denominator,
                   **plumbing(reduction, grad, grad_output, grad_out))


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none", *, grad=False, grad_output=None,
                       grad_out=None, backend=None):
    """:func:`fastloss.sigmoid_focal_loss` on the GPU: the elementwise driver with its kernel."""

    check_options(reduction, grad)
    alpha = check_option("sigmoid_focal_loss", "alpha", alpha)
    gamma = check_option("sigmoid_focal_loss", "gamma", gamma)
    x, y, _ = _elementwise_args(inputs, targets, None, ("inputs", "targets"))
    return launch(cpu._SIGMOID_FOCAL, x, y, params=(alpha, gamma, 0.0),
                   **plumbing(reduction, grad, grad_output, grad_out))
