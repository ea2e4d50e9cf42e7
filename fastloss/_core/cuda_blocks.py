"""Device functions every GPU kernel shares: block reductions in shared memory, with warp
shuffles for the last steps on a real GPU (the simulator has no warp intrinsics).

Compiled with :func:`fastloss._core.cuda.load`'s module, which is imported here: this
module, as each family's ``cuda.py``, is imported on the first call with a device array.
Kernels name the module ``cuda`` at module level, as Numba's simulator requires (it swaps
the module global for its own).
"""
import math

from .cuda import load, simulating

cuda = load()


@cuda.jit(device=True)
def divide(total, denominator):
    """total / denominator with IEEE results for a zero denominator (inf, or NaN for 0/0),
    as the CPU's :func:`fastloss._core.reduction._divide`: a mean over nothing is NaN."""
    if denominator != 0:
        return total / denominator
    if total == 0 or total != total:
        return math.nan
    return math.copysign(math.inf, total) * math.copysign(1.0, denominator)


@cuda.jit(device=True)
def shared_sum(buffer, value):
    """The sum of ``value`` over the block's threads (every thread gets it), reduced in
    ``buffer``, a shared array of one slot per thread; ``blockDim.x`` a power of two."""
    tid = cuda.threadIdx.x
    buffer[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            buffer[tid] += buffer[tid + step]
        cuda.syncthreads()
        step //= 2
    total = buffer[0]
    cuda.syncthreads()  # the buffer may be reused at once
    return total


@cuda.jit(device=True)
def shared_max(buffer, value):
    """The maximum of ``value`` over the block's threads, as :func:`shared_sum`; NaN wins."""
    tid = cuda.threadIdx.x
    buffer[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            other = buffer[tid + step]
            if other > buffer[tid] or other != other:
                buffer[tid] = other
        cuda.syncthreads()
        step //= 2
    top = buffer[0]
    cuda.syncthreads()
    return top


@cuda.jit(device=True)
def warp_sum(buffer, value):
    """:func:`shared_sum` with warp shuffles: each warp sums its 32 values, then warp 0
    sums the warps' totals (``buffer`` needs one slot per warp)."""
    lane = cuda.threadIdx.x % 32
    warp = cuda.threadIdx.x // 32
    offset = 16
    while offset > 0:
        value += cuda.shfl_down_sync(0xFFFFFFFF, value, offset)
        offset //= 2
    if lane == 0:
        buffer[warp] = value
    cuda.syncthreads()
    if warp == 0:
        value = buffer[lane] if lane < cuda.blockDim.x // 32 else 0.0 * value
        offset = 16
        while offset > 0:
            value += cuda.shfl_down_sync(0xFFFFFFFF, value, offset)
            offset //= 2
        if lane == 0:
            buffer[0] = value
    cuda.syncthreads()
    total = buffer[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def warp_max(buffer, value):
    """:func:`shared_max` with warp shuffles, as :func:`warp_sum`; NaN wins."""
    lane = cuda.threadIdx.x % 32
    warp = cuda.threadIdx.x // 32
    offset = 16
    while offset > 0:
        other = cuda.shfl_down_sync(0xFFFFFFFF, value, offset)
        if other > value or other != other:
            value = other
        offset //= 2
    if lane == 0:
        buffer[warp] = value
    cuda.syncthreads()
    if warp == 0:
        value = buffer[lane] if lane < cuda.blockDim.x // 32 else buffer[0]
        offset = 16
        while offset > 0:
            other = cuda.shfl_down_sync(0xFFFFFFFF, value, offset)
            if other > value or other != other:
                value = other
            offset //= 2
        if lane == 0:
            buffer[0] = value
    cuda.syncthreads()
    top = buffer[0]
    cuda.syncthreads()
    return top


#: ``block_sum(buffer, value)`` and ``block_max(buffer, value)``: the block's sum and
#: maximum, every thread gets it; ``buffer`` a shared array of ``block_size()`` slots.
if simulating():
    block_sum, block_max = shared_sum, shared_max
else:
    block_sum, block_max = warp_sum, warp_max
