"""fastloss.torch against torch's own criteria, through autograd on CPU tensors.

* ``CrossEntropyLoss`` forward+backward: ``loss = crit(x, t); loss.backward()`` on a
  leaf whose ``.grad`` is cleared each time (the issue's N=65536, C=1000 float32).
* One full-batch SGD step of the two-layer MLP that tests/test_torch.py trains for 200
  steps with both criteria (512 of scikit-learn's digits, float64): the per-step time.
"""
import pytest
from common import rng, run

from fastloss import benchmarks

torch = pytest.importorskip("torch")
flt = pytest.importorskip("fastloss.torch")

IMPLS = ("torch", "fastloss")


def _criterion(impl, name):
    return getattr(flt if impl == "fastloss" else torch.nn, name)()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n, c, dtype", [(65536, 1000, "float32")])
def bench_cross_entropy_module(benchmark, impl, n, c, dtype):
    inputs = benchmarks._class_inputs(rng(), n, c, dtype)
    step = benchmarks._torch_forward_backward(_criterion(impl, "CrossEntropyLoss"), inputs["x"], inputs["t"])
    run(benchmark, f"CrossEntropyLoss module {n}x{c} {dtype} forward+backward", impl, step)


@pytest.mark.parametrize("impl", IMPLS)
def bench_mlp_training_step(benchmark, impl):
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    step = benchmarks.mlp_sgd(_criterion(impl, "CrossEntropyLoss"), x[:512] / 16.0, y[:512])
    run(benchmark, "MLP SGD step (CrossEntropyLoss), digits 512x64 float64, per step", impl, step)
