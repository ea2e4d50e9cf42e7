"""numpy's BLAS threads and fastloss's: a parallel kernel right after a matmul.

    python bench/blas_spin.py              # 4 fresh processes a setting; adds a table to bench/RESULTS.md
    python bench/blas_spin.py --repeat 6

numpy's OpenBLAS runs a matmul on its own pthreads, which then spin, waiting for more
work, for OpenBLAS's thread timeout (2**28 cycles by default, about 0.1 s) before they
sleep. fastloss's parallel kernels run on another pool (Numba's). On a machine with
few cores, a kernel started while the BLAS threads spin shares its cores with them.
linear_cross_entropy and CosFace (:func:`fastloss.classification.linear_softmax_chunks`)
need both for every chunk of rows: the logits by a GEMM, the cross-entropy kernel's
gradient, two more GEMMs. By default, for shapes like CosFace's here, their GEMMs run
inside the kernel, on its threads, with OpenBLAS on one thread (fastloss/_core/blas.py);
with ``FASTLOSS_BLAS_IN_KERNELS=0`` they go through ``np.matmul`` and the pools alternate.

Each setting runs in fresh processes: the GEMMs in the kernel (the default) and through
``np.matmul`` (``FASTLOSS_BLAS_IN_KERNELS=0``), each with OpenBLAS's default timeout and
with ``OPENBLAS_THREAD_TIMEOUT=4`` (2**4 cycles: the BLAS threads sleep at once), which
OpenBLAS reads when numpy loads it. Each process times:

- ``cross_entropy`` with its gradient on (32768, 1000) float32 logits (one chunk of
  CosFace through ``np.matmul`` at its benchmark size: a parallel kernel) right after a
  (4096, 128) @ (128, 1000) matmul, and after a 0.5 s pause;
- ``large_margin_cosine_loss`` with its gradients at N=65536, C=1000, D=128 against its
  three GEMMs (bench/bench_linear_cross_entropy.py's floor), interleaved: each CosFace
  call starts right after the floor's GEMMs, while their BLAS threads spin (in
  bench_cosface, pytest-benchmark times CosFace's calls back to back instead).

The table gives the medians over the processes of each process's medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import report

ROOT = report.ROOT

JOB = """
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import fastloss as fl
from bench_linear_cross_entropy import COSFACE, _gemm_floor

rng = np.random.default_rng(0)
n, c = 32768, 1000
x, t = rng.standard_normal((n, c), dtype=np.float32), rng.integers(0, c, n)
a, b = rng.standard_normal((4096, 128), dtype=np.float32), rng.standard_normal((1000, 128), dtype=np.float32)
fl.cross_entropy(x, t, grad=True)

def kernel_after(pause):
    a @ b.T
    time.sleep(pause)
    start = time.perf_counter()
    fl.cross_entropy(x, t, grad=True)
    return time.perf_counter() - start

after = statistics.median(kernel_after(0.0) for _ in range(7))
paused = statistics.median(kernel_after(0.5) for _ in range(5))
cosface, gemms = [], []
fl.large_margin_cosine_loss(*COSFACE, grad=True)
for _ in range(5):
    start = time.perf_counter()
    fl.large_margin_cosine_loss(*COSFACE, grad=True)
    cosface.append(time.perf_counter() - start)
    start = time.perf_counter()
    _gemm_floor(*COSFACE)
    gemms.append(time.perf_counter() - start)
print(json.dumps([after, paused, statistics.median(cosface), statistics.median(gemms)]))
"""

SETTINGS = {"GEMMs in the kernel (the default)": {},
            "GEMMs in the kernel, OPENBLAS_THREAD_TIMEOUT=4": {"OPENBLAS_THREAD_TIMEOUT": "4"},
            "FASTLOSS_BLAS_IN_KERNELS=0": {"FASTLOSS_BLAS_IN_KERNELS": "0"},
            "FASTLOSS_BLAS_IN_KERNELS=0, OPENBLAS_THREAD_TIMEOUT=4": {"FASTLOSS_BLAS_IN_KERNELS": "0",
                                                                     "OPENBLAS_THREAD_TIMEOUT": "4"}}


def measure(repeat):
    """``{setting: [per-process [after, paused, cosface, gemms]]}``, the settings alternating."""
    results = {setting: [] for setting in SETTINGS}
    for _ in range(repeat):
        for setting, variables in SETTINGS.items():
            env = report.checkout_env()
            env.pop("OPENBLAS_THREAD_TIMEOUT", None)
            env.pop("FASTLOSS_BLAS_IN_KERNELS", None)
            env.update(variables)
            done = subprocess.run([sys.executable, "-c", JOB, report.HERE], env=env, cwd=ROOT, capture_output=True,
                                  text=True, check=True)
            results[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="fresh processes a setting")
    parser.add_argument("--output", default=os.path.join(report.HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    rows = ["| setting | kernel right after a matmul | after a 0.5 s pause | CosFace | its 3 GEMMs | CosFace / GEMMs |",
            "|---|---|---|---|---|---|"]
    for setting, runs in measure(args.repeat).items():
        after, paused, cosface, gemms = (statistics.median(run[i] for run in runs) for i in range(4))
        rows.append(f"| {setting} | {after * 1e3:.1f} ms | {paused * 1e3:.1f} ms | {cosface * 1e3:.0f} ms "
                    f"| {gemms * 1e3:.0f} ms | {cosface / gemms:.2f}x |")
        print(rows[-1], flush=True)
    report.add_section(
        "numpy's BLAS threads, then a fastloss kernel",
        f"bench/blas_spin.py: {args.repeat} fresh processes a setting, the settings alternating; cross_entropy "
        f"with its gradient on (32768, 1000) float32 logits right after a numpy matmul and after a 0.5 s "
        f"pause (medians of 7 and 5 calls), CosFace (N=65536, C=1000, D=128, with gradients) and its three GEMMs "
        f"interleaved (medians of 5); the table gives the medians over the processes.",
        report.command_line("blas_spin.py", argv),
        rows, args.output)


if __name__ == "__main__":
    main()
