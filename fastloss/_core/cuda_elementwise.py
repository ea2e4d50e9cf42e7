"""The elementwise losses on the GPU: one grid-stride driver for every scalar kernel.

The sibling of :mod:`fastloss._core.elementwise`, with the same protocol: a loss registers
its scalar kernel ``kernel(x, y, z, p0, p1, p2) -> (loss, dloss/dx, dloss/dz)`` (or, with
``takes_grad``, ``kernel(x, y, z, g, p0, p1, p2)``) in its family's ``cpu.py``, and the
same function runs here: numba-cuda compiles a CPU ``@jit`` function called from a CUDA
kernel for the device (the helpers the kernels call, :func:`~fastloss._core.numerics.exp_fast`,
``log_fast``, ``typed``, ``maxnum``, are overloads and intrinsics of Numba's generic target,
which compile for sm_90 too: ``bench/gpu_compile.py``). :func:`driver` makes one CUDA
kernel per scalar kernel (cached), and :func:`elementwise_loss` runs it as the CPU's
``elementwise_loss`` runs its driver.

The driver is a grid-stride loop, for bandwidth: each thread loads a few elements of
every operand a round before it computes any, so that enough loads are in flight. Every
operand is read through a flat view with its own strides (:func:`fastloss._core.cuda.strided`),
so that a broadcast target, weight or ``grad_output`` is read where it lies, never
materialised; axes along which every operand is laid out contiguously are merged on the
host first, and when every operand is then contiguous or a single value, the common
case, a variant of the kernel without index arithmetic runs (``flat``). Each block sums
its weighted losses in float64 (as the CPU driver does) and writes one partial sum;
:func:`_finish` adds the partial sums in one block and divides by the mean's denominator,
on the device. A gradient with respect to a broadcast ``z`` is summed over the broadcast
axes with float64 atomics, then cast.

Values that only the kernel sees and the CPU wrapper refuses (binary cross-entropy's
probabilities, a negative Gaussian variance) are checked in the kernel: the element's
loss and gradients become NaN, and the first bad element of each argument is flagged
(:func:`fastloss._core.cuda.new_flag`); the entry point raises the CPU path's ValueError
after one read of the flag, or, with ``fastloss.set_device_checks(False)``, not at all.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .cuda import block_size, flagged, grid, is_device_array, load, new_flag, per_thread, resident, strided, to_device
from .cuda_blocks import block_sum, cuda, divide
from .elementwise import SCALAR_KERNELS
from .reduction import loss_scale
from .validation import as_target_array

#: Threads per block (:func:`fastloss._core.cuda.block_size`), the size of the shared buffers.
THREADS = block_size()
#: The most axes an operand may keep once the axes laid out alike are merged.
MAXDIM = 8
#: Bytes of each operand a thread of :func:`driver`'s kernel loads before it computes (4
#: float32 or 2 float64 elements: with two inputs, 32 bytes in flight a thread), and the
#: blocks of 256 threads it keeps on one multiprocessor (launch bounds: at most 64
#: registers a thread on sm_90): 32 KiB in flight an SM.
LOADS_IN_FLIGHT = 16
ELEMENTWISE_BLOCKS = 4
# How an operand's element i is found: at i, at its one value, or through its strides.
CONTIGUOUS, SINGLE, STRIDED = 0, 1, 2

# ---------------------------------------------------------------- device functions


@cuda.jit(device=True)
def _offset(operand, i, shape, ndim):
    """Where element ``i`` (in C order over ``shape``) of ``operand`` is in its flat array;
    ``operand`` is ``(flat, start, mode, strides)`` (see :func:`_operand`)."""
    mode = operand[2]
    if mode == CONTIGUOUS:
        return operand[1] + i
    if mode == SINGLE:
        return operand[1]
    offset = operand[1]
    rest = i
    for d in range(MAXDIM - 1, MAXDIM - 1 - ndim, -1):
        extent = shape[d]
        quotient = rest // extent
        offset += (rest - quotient * extent) * operand[3][d]
        rest = quotient
    return offset


@cuda.jit(device=True)
def _read(operand, i, shape, ndim):
    return operand[0][_offset(operand, i, shape, ndim)]


@cuda.jit(device=True)
def no_check(x, y, z):
    """Every value valid (the check of a loss that takes any real value)."""
    return 0


@cuda.jit(device=True)
def check_probabilities(x, y, z):
    """1 for an input outside [0, 1] (NaN included), 2 for such a target, else 0."""
    if not (x >= 0 and x <= 1):
        return 1
    if not (y >= 0 and y <= 1):
        return 2
    return 0


@cuda.jit(device=True)
def check_variance(x, y, z):
    """3 for a negative variance (NaN passes, as the CPU check lets it), else 0."""
    return 3 if z < 0 else 0


# ---------------------------------------------------------------- kernels


@functools.cache
def driver(name, check=no_check, flat=False, dtype=np.dtype(np.float64)):
    """The CUDA kernel applying registered scalar kernel ``name`` elementwise to operands of
    ``dtype`` (cached per kernel, check, layout and dtype):

    ``driver[blocks, THREADS](shape, ndim, n, x, y, z, weight, scale, p0, p1, p2, loss,
    dx, dz, atomic_dx, atomic_dz, want_loss, want_dx, want_dz, flag, partial)``

    ``x``..``scale``, ``dx``, ``dz``: operands ``(flat, start, mode, strides)`` over the
    merged ``shape`` (:data:`MAXDIM` axes, the last ``ndim`` in use); with ``flat``, every
    operand is contiguous or a single value (no index arithmetic: element i is at
    ``start + i`` or ``start``). ``loss``: a contiguous array of ``n`` losses (when
    ``want_loss``); ``dx`` and ``dz`` summed with float64 atomics when ``atomic_dx``,
    ``atomic_dz`` (a broadcast x or z); ``flag``: slots 0..2 receive the first element
    whose x, y or z ``check`` refuses; ``partial[block]``: the block's float64 sum of
    ``weight * loss``.

    A thread takes :data:`LOADS_IN_FLIGHT` bytes of each operand a round (elements i, i +
    grid size, ...): it loads them all before it computes any, so that a multiprocessor has
    enough loads in flight to keep HBM busy.
    """
    scalar, takes_grad = SCALAR_KERNELS[name]
    ft = numba.from_dtype(np.dtype(dtype))
    unroll = per_thread(LOADS_IN_FLIGHT, dtype)

    @cuda.jit(device=True)
    def at(operand, i, shape, ndim):
        """Where element ``i`` of ``operand`` is in its flat array."""
        if flat:  # a constant of the closure: CONTIGUOUS (0) steps by 1, SINGLE (1) by 0
            return operand[1] + i * (1 - operand[2])
        return _offset(operand, i, shape, ndim)

    def elementwise(shape, ndim, n, x, y, z, weight, scale, p0, p1, p2, loss, dx, dz, atomic_dx, atomic_dz, want_loss,
                    want_dx, want_dz, flag, partial):
        buffer = cuda.shared.array(THREADS, np.float64)
        xs = cuda.local.array(unroll, ft)
        ys = cuda.local.array(unroll, ft)
        zs = cuda.local.array(unroll, ft)
        ws = cuda.local.array(unroll, ft)
        gs = cuda.local.array(unroll, ft)
        acc = 0.0
        step = np.int64(cuda.gridDim.x) * cuda.blockDim.x
        for first in range(np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x, n, step * unroll):
            for u in range(unroll):  # every load of the round first
                i = first + u * step
                if i < n:
                    xs[u] = x[0][at(x, i, shape, ndim)]
                    ys[u] = y[0][at(y, i, shape, ndim)]
                    zs[u] = z[0][at(z, i, shape, ndim)]
                    ws[u] = weight[0][at(weight, i, shape, ndim)]
                    gs[u] = scale[0][at(scale, i, shape, ndim)]
            for u in range(unroll):
                i = first + u * step
                if i < n:
                    xv, yv, zv, w = xs[u], ys[u], zs[u], ws[u]
                    g = gs[u] * w
                    if takes_grad:  # a constant of the closure: Numba compiles one branch
                        value, gx, gz = scalar(xv, yv, zv, g, p0, p1, p2)
                    else:
                        value, gx, gz = scalar(xv, yv, zv, p0, p1, p2)
                        gx *= g
                        gz *= g
                    value *= w
                    bad = check(xv, yv, zv)
                    if bad:
                        cuda.atomic.min(flag, bad - 1, i)
                        value = gx = gz = xv * math.nan
                    if want_loss:
                        loss[i] = value
                    acc += value
                    if want_dx:
                        if atomic_dx:
                            cuda.atomic.add(dx[0], at(dx, i, shape, ndim), np.float64(gx))
                        else:
                            dx[0][at(dx, i, shape, ndim)] = gx
                    if want_dz:
                        if atomic_dz:
                            cuda.atomic.add(dz[0], at(dz, i, shape, ndim), np.float64(gz))
                        else:
                            dz[0][at(dz, i, shape, ndim)] = gz
        total = block_sum(buffer, acc)
        if cuda.threadIdx.x == 0:
            partial[cuda.blockIdx.x] = total

    elementwise.__name__ = elementwise.__qualname__ = f"elementwise_{name.strip('_')}{'_flat' if flat else ''}"
    return cuda.jit(**resident(ELEMENTWISE_BLOCKS))(elementwise)


@cuda.jit
def _finish(values, count, on_device, denominator, out):
    """``out[0] = sum(values[:count]) / d`` (float64 sums, IEEE division by zero), in one
    block, with ``d`` the one value of ``on_device`` when it has one (a denominator the
    device computed), else ``denominator``: a reduction's partial sums to its value, or
    ``grad_output`` to the factor of every gradient element."""
    buffer = cuda.shared.array(THREADS, np.float64)
    acc = 0.0
    j = cuda.threadIdx.x
    while j < count:
        acc += values[j]
        j += cuda.blockDim.x
    total = block_sum(buffer, acc)
    if cuda.threadIdx.x == 0:
        out[0] = divide(total, on_device[0] if on_device.size else denominator)


@cuda.jit
def divide_into(source, divisor, out):
    """``out[:] = source / divisor`` in ``out``'s dtype (grid-stride; contiguous 1-D arrays):
    a cast with a divisor of 1."""
    i = cuda.grid(1)
    while i < out.size:
        out[i] = source[i] / divisor
        i += cuda.gridsize(1)


@cuda.jit
def row_sums(loss, n_columns, out):
    """``out[r]``: the float64 sum of row ``r`` of the contiguous (rows, n_columns) ``loss``, in
    ``out``'s dtype (one thread per row: the rows of a multi-label loss are short)."""
    r = cuda.grid(1)
    while r < out.size:
        acc = 0.0
        for c in range(r * n_columns, r * n_columns + n_columns):
            acc += loss[c]
        out[r] = acc
        r += cuda.gridsize(1)


@cuda.jit
def _sum(shape, ndim, n, operand, partial):
    """``partial[block]``: the float64 sum of the block's elements of ``operand``."""
    buffer = cuda.shared.array(THREADS, np.float64)
    acc = 0.0
    i = np.int64(cuda.blockIdx.x) * cuda.blockDim.x + cuda.threadIdx.x
    step = np.int64(cuda.gridDim.x) * cuda.blockDim.x
    while i < n:
        acc += _read(operand, i, shape, ndim)
        i += step
    total = block_sum(buffer, acc)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


# ---------------------------------------------------------------- host side


def _operand(value, shape, dtype):
    """``(flat, start, strides)`` of ``value`` (a device array, or a host value copied to
    the device at its own size) broadcast to ``shape``: 0 strides along broadcast axes."""
    array = to_device(value, dtype)
    flat, start, steps = strided(array)
    lead = len(shape) - array.ndim
    return flat, start, (0,) * lead + tuple(0 if n == 1 else s for n, s in zip(array.shape, steps))


def _c_strides(shape):
    steps, size = [], 1
    for n in reversed(shape):
        steps.append(size if n > 1 else 0)
        size *= n
    return tuple(reversed(steps))


def _merge(shape, operands):
    """``(merged shape, operands)``: axes of length 1 dropped, and neighbouring axes merged
    where every operand steps over the outer one as over the whole inner one; each
    operand ``(flat, start, mode, strides)`` padded to :data:`MAXDIM` axes."""
    axes: list = []
    for d, n in enumerate(shape):
        if n == 1:
            continue
        steps = [op[2][d] for op in operands]
        if axes and all(outer == inner * n for outer, inner in zip(axes[-1][1], steps)):
            axes[-1] = (axes[-1][0] * n, steps)
        else:
            axes.append((n, steps))
    if len(axes) > MAXDIM:
        raise ValueError(f"the GPU kernels take at most {MAXDIM} axes that cannot be merged; got shape {shape}")
    pad = MAXDIM - len(axes)
    merged = (1,) * pad + tuple(n for n, _ in axes)
    contiguous = _c_strides(merged)
    out = []
    for k, (flat, start, _) in enumerate(operands):
        steps = (0,) * pad + tuple(a[1][k] for a in axes)
        mode = SINGLE if not any(steps) else CONTIGUOUS if steps == contiguous else STRIDED
        out.append((flat, np.int64(start), np.int64(mode), tuple(np.int64(s) for s in steps)))
    return tuple(np.int64(n) for n in merged), np.int64(len(axes)), out


def _scale(reduction, grad_output, shape, denominator, dtype):
    """What every gradient element is multiplied by (with its weight): ``grad_output``
    for "none" (broadcastable to the loss), else ``grad_output / denominator`` as a
    one-element device array, computed on the device when either is there."""
    if reduction == "none":
        if grad_output is None or not is_device_array(grad_output):
            return loss_scale(reduction, grad_output, shape, denominator, dtype)
        if not broadcasts(grad_output.shape, shape):
            raise ValueError(f"grad_output has shape {grad_output.shape}; expected the loss's shape {tuple(shape)}")
        return secondary(grad_output, "grad_output", dtype)
    device_g = is_device_array(grad_output)
    if not device_g and not is_device_array(denominator):
        return loss_scale(reduction, grad_output, shape, denominator, dtype).reshape(1)
    if device_g:
        if grad_output.ndim != 0:
            raise ValueError(f"grad_output must be a scalar for reduction={reduction!r}, got shape {grad_output.shape}")
        g = secondary(grad_output, "grad_output", dtype).reshape(1)
    else:
        g = np.asarray(loss_scale("sum", grad_output, shape, 1, np.float64)).reshape(1)
    return _divided(to_device(g), 1, denominator if reduction == "mean" else 1.0, dtype)


def broadcasts(shape, target):
    """Whether an array of ``shape`` broadcasts to ``target``."""
    try:
        return np.broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ValueError:
        return False


def _divided(values, count, denominator, dtype):
    """A one-element device array: the float64 sum of ``values[:count]`` over
    ``denominator`` (a number, or a one-element float64 device array), in ``dtype``."""
    out = load().device_array(1, dtype)
    if is_device_array(denominator):
        _finish[1, THREADS](values, np.int64(count), denominator, 1.0, out)
    else:
        _finish[1, THREADS](values, np.int64(count), _constant(np.float64, 0), float(denominator), out)
    return out


def device_sum(value, dtype):
    """The float64 sum of device array ``value`` as a one-element float64 device array (a
    mean's denominator that depends on values, such as the sum of the weights)."""
    n = int(np.prod(value.shape, dtype=np.int64))
    shape, ndim, (op,) = _merge(value.shape, [_operand(value, value.shape, dtype)])
    blocks, threads = grid(n)
    partial = load().device_array(blocks, np.float64)
    _sum[blocks, threads](shape, ndim, np.int64(n), op, partial)
    return _divided(partial, blocks, 1.0, np.float64)


def _gradient_buffer(x, grad_out, reads):
    """Where the gradient for ``x`` goes: a new device array, or ``grad_out`` (a device
    array of the input's shape and dtype, the input itself or apart from every operand)."""
    if grad_out is None:
        return load().device_array(x.shape, x.dtype)
    if not is_device_array(grad_out):
        raise TypeError(f"grad_out must be a device array for a call on the GPU, got {type(grad_out).__name__}")
    if tuple(grad_out.shape) != tuple(x.shape):
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}; expected the input's shape {tuple(x.shape)}")
    if np.dtype(grad_out.dtype) != np.dtype(x.dtype):
        raise TypeError(f"grad_out has dtype {grad_out.dtype}; the gradient is computed in {np.dtype(x.dtype)}")
    same = _bounds(grad_out) == _bounds(x) and tuple(grad_out.strides) == tuple(x.strides)
    if not same and _overlap(grad_out, x):
        raise ValueError("grad_out overlaps the input without being it (a shifted or strided view of the same "
                         "buffer); pass the input itself for an in-place gradient, or a separate array")
    for array in reads:
        if is_device_array(array) and _overlap(grad_out, array):
            raise ValueError("grad_out overlaps another argument, which the loss reads while it writes the gradient; "
                             "pass a separate array")
    return grad_out


def _bounds(array):
    """The device addresses ``[low, high)`` that ``array`` spans."""
    if type(array).__name__ == "FakeCUDAArray":
        return np.lib.array_utils.byte_bounds(array._ary)
    flat = strided(array)[0]
    low = flat.__cuda_array_interface__["data"][0]
    return low, low + flat.shape[0] * np.dtype(array.dtype).itemsize


def _overlap(a, b):
    if not (a.size and b.size):
        return False
    (a0, a1), (b0, b1) = _bounds(a), _bounds(b)
    return a0 < b1 and b0 < a1


def elementwise_loss(kind, x, y, z=None, weight=None, params=(0.0, 0.0, 0.0), *, reduction, grad, grad_output,
                     grad_out, dz_like=None, denominator=None, check=no_check, shape=None):
    """Run scalar kernel ``kind`` over device array ``x`` and assemble the result as the
    CPU's :func:`fastloss._core.elementwise.elementwise_loss` does, on the device.

    ``y``, ``z``, ``weight``: device arrays, or host values, of ``x``'s dtype, that
    broadcast to ``shape`` (default ``x``'s; ``x`` broadcasts to it too, its gradient then
    summed back to its shape); ``dz_like``: the shape the gradient with respect to ``z``
    takes (asks for it); ``denominator`` of the mean: the number of elements by default,
    a number, or a one-element float64 device array. Launches :func:`driver` (one pass
    over the elements), then :func:`_finish` for a reduced value (and before, for a
    ``grad_output`` or denominator on the device). Returns ``(result, bad)``: ``bad`` the
    first element flagged by ``check`` for x, y and z (or None, with checks off).
    """
    cu = load()
    dtype = np.dtype(x.dtype)
    shape = tuple(x.shape) if shape is None else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    denominator = n if denominator is None else denominator
    one = _constant(dtype, 1).reshape(())
    scale = _scale(reduction, grad_output, shape, denominator, dtype) if grad else one
    want_loss = reduction == "none"
    loss = cu.device_array(shape if want_loss else 0, dtype)
    blocks, threads = grid(-(-n // per_thread(LOADS_IN_FLIGHT, dtype)))  # a round of loads a thread, at least
    partial = cu.device_array(blocks, np.float64) if n else to_device(np.zeros(1))  # no element: the sum is 0
    flag = new_flag(n, 3) if check is not no_check else _constant(np.int64, 0)
    atomic_dx = grad and tuple(x.shape) != shape
    want_dz = grad and dz_like is not None
    atomic_dz = want_dz and tuple(dz_like) != shape
    if grad:
        out = _gradient_buffer(x, grad_out, (y, z, weight))
        dx, dx_operand = _gradient(x.shape, shape, dtype) if atomic_dx else (out, None)
    if want_dz:
        dz, dz_operand = _gradient(dz_like, shape, dtype)
    if n:
        inputs = [_operand(a if a is not None else one, shape, dtype) for a in (x, y, z, weight, scale)]
        if grad and not atomic_dx:
            dx_operand = _operand(dx, shape, dtype)
        stand_in = inputs[0]  # for a gradient not asked for: never written
        merged, ndim, operands = _merge(shape, inputs + [dx_operand if grad else stand_in,
                                                         dz_operand if want_dz else stand_in])
        xo, yo, zo, wo, so, dxo, dzo = operands
        params = tuple(dtype.type(p) for p in params)
        flat = all(operand[2] != STRIDED for operand in operands)
        driver(kind.name, check, flat, dtype)[blocks, threads](
            merged, ndim, np.int64(n), xo, yo, zo, wo, so, *params, loss.reshape(n) if want_loss else loss, dxo, dzo,
            atomic_dx, atomic_dz, want_loss, grad, want_dz, flag, partial)
    bad = flagged(flag, n) if check is not no_check else None
    if want_loss:
        result = loss
    else:
        result = _divided(partial, blocks, denominator if reduction == "mean" else 1.0, dtype).reshape(())
    if not grad:
        return result, bad
    dx = _summed(dx, x.shape, dtype, out) if atomic_dx else dx
    if not want_dz:
        return (result, dx), bad
    return (result, (dx, _summed(dz, dz_like, dtype) if atomic_dz else dz)), bad


def _gradient(own, shape, dtype):
    """``(buffer, operand)`` where the driver writes the gradient of an operand of shape
    ``own`` broadcast to ``shape``: a new array of ``shape`` written element by element,
    or, for a broadcast operand, a float64 buffer of its own size that the driver sums
    into with atomics (its contiguous strides, 0 along the broadcast axes)."""
    own = tuple(own)
    size = int(np.prod(own, dtype=np.int64))
    buffer = load().device_array(own, dtype) if own == shape else to_device(np.zeros(size))
    lead = len(shape) - len(own)
    steps = (0,) * lead + tuple(0 if m == 1 else s for m, s in zip(own, _c_strides(own)))
    return buffer, (buffer.reshape(size), 0, steps)


def _summed(buffer, own, dtype, out=None):
    """The float64 sums of :func:`_gradient`'s buffer in ``dtype``, of shape ``own``: in
    ``out`` (a C-contiguous device array) when given."""
    size = int(np.prod(own, dtype=np.int64))
    if out is None:
        out = load().device_array(tuple(own), dtype)
    elif any(n > 1 and s != c * out.dtype.itemsize for n, s, c in zip(out.shape, out.strides, _c_strides(own))):
        raise TypeError("grad_out must be C-contiguous on the GPU when the input is broadcast")
    divide_into[grid(size)](buffer, dtype.type(1), out.reshape(size))
    return out


@functools.cache
def _constant(dtype, size):
    """A device array of ``size`` ones in ``dtype``, copied once per process: the absent
    operands (size 1), the flag of a loss without checks and the absent device
    denominator (size 0), which no kernel writes."""
    return to_device(np.ones(size, dtype))


def launch(kind, x, y, z=None, weight=None, params=(0.0, 0.0, 0.0), **options):
    """:func:`elementwise_loss` for a loss that takes any value (nothing to flag)."""
    return elementwise_loss(kind, x, y, z, weight, params, **options)[0]


def value_at(array, position, shape):
    """The element of ``array`` (device or host, broadcast to ``shape``) at flat ``position``
    of ``shape``: one element copied to the host, for an error message."""
    index = np.unravel_index(position, shape)
    lead = len(shape) - len(array.shape)
    own = tuple(0 if m == 1 else i for m, i in zip(array.shape, index[lead:]))
    return array[own] if own else (array.copy_to_host() if is_device_array(array) else np.asarray(array))[()]


def device_input(value, name):
    """The data argument ``name``: a float32 or float64 device array; another float dtype
    (float16) is converted to float32 on the device, as the CPU path computes it."""
    if not is_device_array(value):
        raise TypeError(f"{name} must be a device array, as the first data argument is, got {type(value).__name__}")
    if np.dtype(value.dtype).kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {value.dtype}; cast it on the device "
                        f"to float32 or float64")
    if np.dtype(value.dtype) in (np.dtype(np.float32), np.dtype(np.float64)):
        return value
    return _converted(value, name, np.dtype(np.float32))


def secondary(value, name, dtype):
    """A further array argument (target, weight, variance, ...) in ``dtype``: a device array
    of that dtype as it is, one of another real dtype (integers, booleans) converted on
    the device, a host value checked and converted as the CPU path does it."""
    if not is_device_array(value):
        return as_target_array(value, name, dtype)
    if np.dtype(value.dtype) == dtype:
        return value
    if np.dtype(value.dtype).kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {value.dtype}")
    return _converted(value, name, dtype)


def _converted(value, name, dtype):
    """Device array ``value`` as a new device array of ``dtype`` (a C-contiguous ``value``)."""
    if any(n > 1 and s != c * value.dtype.itemsize for n, s, c in zip(value.shape, value.strides,
                                                                       _c_strides(tuple(value.shape)))):
        raise TypeError(f"{name} has dtype {value.dtype} and is not contiguous: convert it to {dtype} on the device")
    out = load().device_array(tuple(value.shape), dtype)
    if value.size:
        divide_into[grid(value.size)](value.reshape(value.size), dtype.type(1), out.reshape(value.size))
    return out


def weight_sum(weight):
    """The float64 sum of the weights: a number for host weights, a one-element device
    array for device weights (the weighted mean's denominator of l1_loss and mse_loss)."""
    if is_device_array(weight):
        return device_sum(weight, np.dtype(weight.dtype))
    return weight.sum(dtype=np.float64)


def plumbing(reduction, grad, grad_output, grad_out):
    """The gradient plumbing of an entry point's call, as keyword arguments of :func:`launch`."""
    return {"reduction": reduction, "grad": grad, "grad_output": grad_output, "grad_out": grad_out}


def _ptx_signatures():
    """``(kernel, signatures)`` of every kernel above, for every scalar kernel the entry
    points run and both dtypes, as they are launched: ``bench/gpu_compile.py`` compiles
    them for sm_90 without a GPU."""
    from numba import types

    index = types.UniTuple(types.int64, MAXDIM)

    def operand(dtype):
        return types.Tuple((dtype[::1], types.int64, types.int64, index))

    checks = {"_bce_point": check_probabilities, "_gaussian_nll_point": check_variance}  # as the entry points pass
    flag, partial, boolean = types.int64[::1], types.float64[::1], types.boolean
    listed = []
    for name in SCALAR_KERNELS:
        for dtype in (types.float32, types.float64):
            dz = types.float64 if name == "_gaussian_nll_point" else dtype  # gaussian's var is broadcast here
            signature = (index, types.int64, types.int64, *[operand(dtype)] * 5, dtype, dtype, dtype, dtype[::1],
                         operand(dtype), operand(dz), boolean, boolean, boolean, boolean, boolean, flag, partial)
            for flat in (True, False):
                listed.append((driver(name, checks.get(name, no_check), flat, np.dtype(dtype.name)), [signature]))
    for dtype in (types.float32, types.float64):
        listed += [(_finish, [(partial, types.int64, partial, types.float64, dtype[::1])]),
                   (_sum, [(index, types.int64, types.int64, operand(dtype), partial)]),
                   (divide_into, [(types.float64[::1], dtype, dtype[::1]), (dtype[::1], dtype, dtype[::1])]),
                   (row_sums, [(dtype[::1], types.int64, dtype[::1])])]
    return listed


#: The kernels and launch signatures ``bench/gpu_compile.py`` compiles for sm_90.
PTX_SIGNATURES = _ptx_signatures()
