"""Classification losses: the cases of :mod:`fastloss.benchmarks` at the issue's sizes,
with the implementation (NumPy, torch, fastloss on Numba, fastloss on Cython) as an axis
next to loss, size and dtype."""
import pytest
from common import CYTHON_IMPLS, _torch, rng, run

from fastloss import benchmarks

SIZES = {
    "cross_entropy": [(65536, 1000, "float32"), (65536, 1000, "float64"), (32, 10, "float32")],
    "focal_loss": [(16384, 1000, "float32")],
    "binary_cross_entropy_with_logits": [(4096, 1024, "float32")],
}
PARAMS = [(case, size) for case in benchmarks.CASES for size in SIZES[case.loss]]


@pytest.mark.parametrize("impl", CYTHON_IMPLS)
@pytest.mark.parametrize("case,size", PARAMS, ids=[case.label(*size) for case, size in PARAMS])
def bench_classification(benchmark, impl, case, size):
    n, c, dtype = size
    if impl == "torch" and _torch() is None:
        pytest.skip("torch not installed")
    inputs = case.make_inputs(rng(), n, c, dtype)
    run(benchmark, case.label(n, c, dtype), impl, case.impls[impl](inputs))
