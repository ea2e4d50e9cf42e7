"""fastloss.torch against torch's own criteria, through autograd on CPU tensors.

* ``CrossEntropyLoss`` forward+backward: ``loss = crit(x, t); loss.backward()`` on a
  leaf whose ``.grad`` is cleared each time, float32, from a small batch (256x10, where
  fixed costs dominate) to the issue's N=65536, C=1000.
* The autograd floor at 256x10: a ``torch.autograd.Function`` whose forward and
  backward compute nothing (they return tensors made beforehand), called and
  differentiated as the criteria are. No loss implemented as an autograd function,
  fastloss.torch's included, can take less; its row shows how much of torch's own
  step at that size is autograd's fixed cost.
* The native floor at 256x10: ``x.sum()`` forward and backward, the cheapest graph
  autograd runs (one C++ node, no Python in backward). Any loss differentiated by
  autograd costs at least this much; torch's own criterion is two such nodes.
* The floor over the NumPy API at 256x10: a ``torch.autograd.Function`` whose forward
  calls ``fastloss.cross_entropy(..., grad=True)`` on the tensor's array and whose
  backward hands the gradient over, with nothing else (the target an array already, no
  checks, no options): the least that any torch wrapper of the NumPy API can take, and
  so the bound of fastloss.torch's criterion, whose binding and conversions come on top.
* Whole training steps (:data:`fastloss.benchmarks.TRAINING`): forward, the loss,
  ``backward()`` and an SGD update, with torch's criterion or fastloss.torch's on the
  same model, initial parameters and batch (tests/test_torch_loops.py checks they train
  alike); float32.
"""
import numpy as np
import pytest
from common import rng, run

import fastloss
from fastloss import benchmarks

torch = pytest.importorskip("torch")
flt = pytest.importorskip("fastloss.torch")

IMPLS = ("torch", "fastloss")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n, c, dtype", [(256, 10, "float32"), (4096, 1000, "float32"), (65536, 1000, "float32")])
def bench_cross_entropy_module(benchmark, impl, n, c, dtype):
    inputs = benchmarks._class_inputs(rng(), n, c, dtype)
    criterion = flt.CrossEntropyLoss() if impl == "fastloss" else torch.nn.CrossEntropyLoss()
    step = benchmarks._torch_forward_backward(criterion, inputs["x"], inputs["t"])
    run(benchmark, f"CrossEntropyLoss module {n}x{c} {dtype} forward+backward", impl, step)


class _Nothing(torch.autograd.Function):
    """forward gives a 0-d tensor, backward a gradient: both made beforehand."""

    @staticmethod
    def forward(ctx, x, value, gradient):
        ctx.gradient = gradient
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.gradient, None, None


def bench_autograd_floor(benchmark):
    inputs = benchmarks._class_inputs(rng(), 256, 10, "float32")
    value, gradient = torch.zeros(()), torch.zeros(256, 10)
    step = benchmarks._torch_forward_backward(lambda x, t: _Nothing.apply(x, value, gradient), inputs["x"],
                                              inputs["t"])
    run(benchmark, "autograd floor: a torch.autograd.Function computing nothing, 256x10 forward+backward", "torch",
        step)


def bench_autograd_native_floor(benchmark):
    inputs = benchmarks._class_inputs(rng(), 256, 10, "float32")
    step = benchmarks._torch_forward_backward(lambda x, t: x.sum(), inputs["x"], inputs["t"])
    run(benchmark, "autograd floor, native: x.sum(), 256x10 forward+backward", "torch", step)


class _NumPyCall(torch.autograd.Function):
    """forward is fastloss.cross_entropy's value and gradient in one call on the input's array,
    backward gives the gradient: an autograd function around the NumPy API, nothing more."""

    @staticmethod
    def forward(ctx, x, target):
        value, ctx.gradient = fastloss.cross_entropy(x.detach().numpy(), target, grad=True)
        return torch.from_numpy(np.asarray(value))

    @staticmethod
    def backward(ctx, grad_output):
        return torch.from_numpy(ctx.gradient), None


def bench_autograd_numpy_floor(benchmark):
    inputs = benchmarks._class_inputs(rng(), 256, 10, "float32")
    target = inputs["t"]
    step = benchmarks._torch_forward_backward(lambda x, t: _NumPyCall.apply(x, target), inputs["x"], inputs["t"])
    run(benchmark, "autograd floor over the NumPy API: an autograd.Function calling fastloss.cross_entropy, "
                   "256x10 forward+backward", "fastloss", step)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("problem", sorted(benchmarks.TRAINING))
def bench_training_step(benchmark, impl, problem):
    step, _ = benchmarks.training_step(problem, impl)
    run(benchmark, f"training step: {benchmarks.TRAINING[problem]}, float32", impl, step)
