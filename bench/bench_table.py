"""Every loss of the table of losses, value and gradient, fastloss vs torch: the case list
is the table's (``fastloss._core.table.LOSSES``), so a loss added there is timed here
with no code of its own.

Each case is the loss's example call (its entry's ``example``) repeated along its batch
axes to :data:`ROWS` samples (the axes the batch algebra reads off the table,
``fastloss._core.batch.layout``), in float32. torch's baseline is
``torch.nn.functional``'s function of the same name, forward and backward, where torch
has the loss (the table's ``reference`` is None); the other losses are timed on fastloss
alone here, and against their NumPy and torch compositions in the family benchmarks.
The family files hold the large, loss-specific cases; this file is the floor that keeps
every loss measured.
"""
import numpy as np
import pytest
from common import rng, run, torch

from fastloss._core import batch
from fastloss._core.table import LOSSES, Ragged

ROWS = 1 << 14
# The batch triplet loss compares every pair of its samples: a batch of ROWS would need
# a 1 GB distance matrix, so it runs on 1024.
PAIRWISE_ROWS = 1 << 10


def _tiled(entry):
    """``(args, options, n)``: the example call in float32 with its batch repeated to about ROWS (n) samples."""
    args, options = entry.call(rng(), np.float32)
    call = dict(zip(entry.data, args))
    n, sliced = batch.layout(entry, {**call, **options, "reduction": "mean"})
    k = max(1, (PAIRWISE_ROWS if entry.name == "batch_triplet_loss" else ROWS) // max(n, 1))
    for name, axis in sliced.items():
        if name in call:
            call[name] = np.concatenate([call[name]] * k, axis=0 if isinstance(axis, Ragged) else axis)
    return [call[name] for name in entry.data], options, n * k


def _torch_fn(entry, args, options):
    """torch forward and backward on the same arrays, or None where torch lacks the loss."""
    if torch is None or entry.reference is not None:
        return None
    import torch.nn.functional as F

    loss = getattr(F, entry.name)
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
    diff = [entry.data.index(name) for name in entry.differentiable if name in entry.data]  # not a keyword input

    def fn():
        inputs = [t.detach().requires_grad_(i in diff) for i, t in enumerate(tensors)]
        loss(*inputs, **options).backward()
    return fn


@pytest.mark.parametrize("impl", ["torch", "fastloss"])
@pytest.mark.parametrize("name", [entry.name for entry in LOSSES])
def bench_table(benchmark, impl, name):
    entry = LOSSES[name]
    args, options, n = _tiled(entry)
    if impl == "torch":
        fn = _torch_fn(entry, args, options)
        if fn is None:
            pytest.skip(f"torch has no {name}")
    else:
        def fn():
            entry.function(*args, **options, grad=True)
    run(benchmark, f"{name} table example x{n} float32 value+grad", impl, fn)
