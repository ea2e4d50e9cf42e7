"""Zero-copy views that give kernels a fixed rank, and the gradient buffer."""
import numpy as np

#: NumPy 2.1 gave ``reshape`` its ``copy=`` and ``from_dlpack`` writable views (DLPack 1.0).
NUMPY_2_1 = np.lib.NumpyVersion(np.__version__) >= "2.1.0"


def _reshape_view(array, shape):
    """``array`` reshaped without a copy, or None when its strides do not allow it."""
    try:
        return np.reshape(array, shape, copy=False)
    except ValueError:
        return None


def _reshape_view_before_2_1(array, shape):
    """:func:`_reshape_view` for NumPy before 2.1, whose reshape has no ``copy=`` and
    copies where it must, silently: a result that shares no memory was a copy."""
    view = np.reshape(array, shape)
    return view if array.size == 0 or np.may_share_memory(view, array) else None


reshape_view = _reshape_view if NUMPY_2_1 else _reshape_view_before_2_1


def class_rows(array):
    """(N, C, d1, ..., dk) -> (N, K, C) with K = d1 * ... * dk; (C,) -> (1, 1, C).

    A view whenever the strides allow it (always for contiguous input), so class
    rows are read in place; otherwise a copy. :func:`class_rows_undo` inverts it.
    """
    if array.ndim == 2:
        return array[:, None, :]
    if array.ndim == 1:
        shape = (1, 1, array.shape[0])
        view = reshape_view(array, shape)
        return np.reshape(array, shape) if view is None else view
    n, c = array.shape[:2]
    k = int(np.prod(array.shape[2:], dtype=np.int64))
    view = reshape_view(array, (n, c, k))
    return (np.reshape(array, (n, c, k)) if view is None else view).transpose(0, 2, 1)


def class_rows_undo(rows, shape):
    """The array of ``shape`` whose :func:`class_rows` is ``rows``."""
    return rows.transpose(0, 2, 1).reshape(shape)


def read_only(array):
    """A read-only view: kernels then see one Numba type whether or not the caller's
    array (a memmap opened "r", say) was writeable, and compile once."""
    view = array.view()
    view.flags.writeable = False
    return view


_TOO_HARD = getattr(np, "exceptions", np).TooHardError  # np.exceptions since NumPy 1.25


def overlaps(a, b):
    """Whether arrays ``a`` and ``b`` share an element (cheap bounds test first; a
    problem too hard to decide exactly counts as an overlap)."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return np.shares_memory(a, b, max_work=1 << 16)
    except _TOO_HARD:
        return True


def _same_view(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.shape == b.shape
            and a.strides == b.strides)


def check_no_overlap(grad_out, like, reads, name="grad_out"):
    """ValueError unless the gradient can be written to ``grad_out`` while the kernel reads.

    ``grad_out`` may be the input ``like`` itself (the kernels write each gradient element
    after the last read of its input element) or an array apart from it; a partial
    overlap with the input, or any overlap with another array the kernel reads (``reads``:
    a dict by argument name, or a sequence), would make the kernel read values it has
    already overwritten.
    """
    if overlaps(grad_out, like) and not _same_view(grad_out, like):
        raise ValueError(f"{name} overlaps the input without being it (a shifted or strided view of the same "
                         f"buffer); pass the input itself for an in-place gradient, or a separate array")
    named = reads.items() if isinstance(reads, dict) else (("another argument", a) for a in reads)
    for what, array in named:
        if isinstance(array, np.ndarray) and array.size and overlaps(grad_out, array):
            raise ValueError(f"{name} overlaps {what}, which the loss reads while it writes the gradient; "
                             f"pass a separate array")


class GradientBuffer:
    """Where a kernel writes a gradient shaped like ``like``.

    A new C-contiguous array, or the caller's ``grad_out`` (possibly the input itself,
    for an in-place gradient). :meth:`contiguous` (or :meth:`view`, for a view of
    another layout) gives the kernel's view of it; when ``grad_out``'s strides admit no
    such view, the kernel writes to a scratch array and :meth:`result` copies it back.
    """

    def __init__(self, like, dtype, grad_out, name="grad_out", reads=()):
        if grad_out is None:
            self.array = np.empty(like.shape, dtype)
        else:
            if not isinstance(grad_out, np.ndarray):
                raise TypeError(f"{name} must be a NumPy array, got {type(grad_out).__name__}")
            if grad_out.shape != like.shape:
                raise ValueError(f"{name} has shape {grad_out.shape}; expected the input's shape {like.shape}")
            if grad_out.dtype != dtype:
                raise TypeError(f"{name} has dtype {grad_out.dtype}; the gradient is computed in {np.dtype(dtype)}")
            if not grad_out.flags.writeable:
                raise ValueError(f"{name} is read-only")
            check_no_overlap(grad_out, like, reads, name)
            self.array = grad_out
        self._scratch = None

    def contiguous(self, shape):
        """The buffer as a C-contiguous array of ``shape`` (its size): a view when its
        memory allows one (always for a new buffer), else a scratch array."""
        return self.view(lambda a: _c_contiguous(a, shape), lambda v, shape: v.reshape(shape))

    def view(self, make_view, undo):
        """``make_view(array)``; if that is a copy, ``undo(copy, shape)`` writes it back in :meth:`result`."""
        view = make_view(self.array)
        # a copy is a new array, which never overlaps: the bounds test tells it from a view
        if self.array.size and not np.may_share_memory(view, self.array):
            self._scratch = (view, undo)
        return view

    def result(self):
        if self._scratch is not None:
            view, undo = self._scratch
            self.array[...] = undo(view, self.array.shape)
        return self.array


def _c_contiguous(array, shape):
    view = reshape_view(array, shape)
    return view if view is not None and view.flags.c_contiguous else np.empty(shape, array.dtype)


def sum_to_shape(full, shape):
    """Sum a gradient of the broadcast shape back to an operand's own ``shape`` (in float64
    over the broadcast axes), as torch's backward of a broadcast does."""
    lead = full.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and full.shape[lead + i] != 1)
    summed = full.sum(axis=axes, keepdims=True, dtype=np.float64) if axes else full
    return summed.reshape(shape)


def gradient_of_broadcast(dx, like, dtype, grad_out, reads=()):
    """The gradient ``dx`` of ``like`` broadcast to ``dx``'s shape, summed back to ``like``'s
    shape, in ``grad_out`` when given (checked as :class:`GradientBuffer` checks it)."""
    buffer = GradientBuffer(like, dtype, grad_out, reads=reads)
    buffer.array[...] = sum_to_shape(dx, like.shape)
    return buffer.array
