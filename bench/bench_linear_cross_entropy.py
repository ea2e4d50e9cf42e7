"""linear_cross_entropy, value and all gradients, at N=4096 tokens, H=256, V=32768 float32:
fastloss vs torch's ``F.linear_cross_entropy`` ("torch": its reference path,
``options=None``; "torch_chunked": ``options=LinearCrossEntropyOptions()``, its chunked
path) vs "numpy", which here is the GEMM floor: the three matmuls of that size through
numpy (the logits X W^T, then G W and G^T X with G shaped as the logits), no loss at all.
CosFace (``large_margin_cosine_loss``), on the same engine, at N=65536, C=1000, D=128
against torch's composition (bench_extras.py's) and its own three GEMMs.

The peak memory of one call at N=8192, H=256, V=65536 is measured in a fresh process,
as the rise of its peak RSS (``ru_maxrss``) over the call: ``python
bench/bench_linear_cross_entropy.py`` prints it and adds it to bench/RESULTS.md.
"""
import subprocess
import sys

import numpy as np
import pytest
from bench_extras import CASES as EXTRAS
from bench_extras import _torch_cosface
from common import rng, run, torch, torch_backward

import fastloss as fl

N, H, V = 4096, 256, 32768


def _case(n, h, v, seed=0):
    g = rng(seed)
    return (g.standard_normal((n, h)).astype(np.float32), (g.standard_normal((v, h)) / np.sqrt(h)).astype(np.float32),
            g.integers(0, v, n))


CASE = _case(N, H, V)


def _gemm_floor(x, w, t):
    logits = x @ w.T
    return logits @ w, logits.T @ x


def _torch(options):
    x, w, t = (torch.from_numpy(a) for a in CASE)

    def fn():
        xi, wi = x.detach().requires_grad_(), w.detach().requires_grad_()
        torch.nn.functional.linear_cross_entropy(xi, wi, t, options=options).backward()
    return fn


@pytest.mark.parametrize("impl", ["numpy", "torch", "torch_chunked", "fastloss"])
def bench_linear_cross_entropy(benchmark, impl):
    if impl == "numpy":
        fn = lambda: _gemm_floor(*CASE)  # noqa: E731
    elif impl == "fastloss":
        fn = lambda: fl.linear_cross_entropy(*CASE, grad=True)  # noqa: E731
    elif torch is None:
        fn = None
    else:
        fn = _torch(torch.nn.LinearCrossEntropyOptions() if impl == "torch_chunked" else None)
    run(benchmark, f"linear_cross_entropy N={N} H={H} V={V} float32 value+grad", impl, fn)


COSFACE = EXTRAS["large_margin_cosine_loss N=65536 C=1000 D=128"][0]


@pytest.mark.parametrize("impl", ["numpy", "torch", "fastloss"])
def bench_cosface(benchmark, impl):
    if impl == "numpy":
        fn = lambda: _gemm_floor(*COSFACE)  # noqa: E731
    elif impl == "fastloss":
        fn = lambda: fl.large_margin_cosine_loss(*COSFACE, grad=True)  # noqa: E731
    else:
        fn = torch_backward(_torch_cosface, COSFACE, (0, 1))
    run(benchmark, "large_margin_cosine_loss N=65536 C=1000 D=128 float32 value+grad (numpy: its 3 GEMMs)", impl,
        fn)


# Run in a fresh process that imports neither torch nor the benchmark helpers. The rise is the
# peak RSS after the call (ru_maxrss) over the RSS just before it (VmRSS): an upper bound of the
# call's own peak, since an earlier, higher peak of the process would only raise it.
_MEASURE = """
import resource, numpy as np, fastloss as fl
n, h, v = 8192, 256, 65536
g = np.random.default_rng(0)
x = g.standard_normal((n, h), dtype=np.float32)
w = g.standard_normal((v, h), dtype=np.float32) / np.float32(16)
t = g.integers(0, v, n)
fl.linear_cross_entropy(x[:8], w[:64], t[:8] % 64, grad=True)  # compiles the kernels
before = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
fl.linear_cross_entropy(x, w, t, grad=True)
print(round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1))
"""


if __name__ == "__main__":
    import report

    done = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, check=True)
    print(f"linear_cross_entropy N=8192 H=256 V=65536 float32, grad=True: peak RSS rise {done.stdout.strip()} MB")
    report.add_section("linear_cross_entropy memory at N=8192, H=256, V=65536",
                       "bench/bench_linear_cross_entropy.py run as a script: one call with gradients in a fresh "
                       "process, float32; the rise of the peak RSS (ru_maxrss) over the RSS just before the call "
                       "(the issue's limit: 400 MB; the logits alone would take 2 GiB).",
                       "python bench/bench_linear_cross_entropy.py",
                       ["| call | peak RSS rise |", "|---|---|",
                        f"| linear_cross_entropy, grad=True | {done.stdout.strip()} MB |"])
