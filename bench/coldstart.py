"""Cold start: how long a fresh process takes to import fastloss and compute one loss.

    python bench/coldstart.py            # 5 fresh processes a case; adds a table to bench/RESULTS.md
    python bench/coldstart.py --repeat 9

Each case starts a new Python process that imports numpy and fastloss and computes one
``cross_entropy`` on (4096, 100) float32 logits (the issue's size), timed from outside:
the wall time of the whole process, interpreter start-up included, median of
``--repeat`` runs. The cases:

- cython: ``FASTLOSS_BACKEND=cython`` (numba is never imported), the ahead-of-time kernels;
- numba, warm cache: the Numba kernels loaded from a cache that an untimed run filled;
- numba, cold cache: an empty ``NUMBA_CACHE_DIR`` for every run, so the kernels compile.

The bare interpreter's ``import numpy`` is timed too, as the floor every case pays.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import report

ROOT = report.ROOT
sys.path.insert(0, ROOT)

JOB = """
import numpy as np
import fastloss as fl
x = np.random.default_rng(0).standard_normal((4096, 100)).astype(np.float32)
t = np.random.default_rng(1).integers(0, 100, 4096)
value = fl.cross_entropy(x, t)
assert np.isfinite(value), value
"""


def wall_time(code, env):
    """Seconds from starting ``python -c code`` until it exits (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"the timed process failed:\n{done.stderr[-3000:]}")
    return elapsed


def measure(repeat):
    """``{case: median seconds}`` for the cases of the module docstring."""
    base = report.checkout_env({k: v for k, v in os.environ.items()
                                if k not in ("FASTLOSS_BACKEND", "NUMBA_CACHE_DIR")})
    with tempfile.TemporaryDirectory() as warm_cache:
        cases = {
            "python + import numpy (floor)": lambda: wall_time("import numpy", base),
            "cython": lambda: wall_time(JOB, {**base, "FASTLOSS_BACKEND": "cython"}),
            "numba, warm cache": lambda: wall_time(JOB, {**base, "FASTLOSS_BACKEND": "numba",
                                                         "NUMBA_CACHE_DIR": warm_cache}),
        }
        wall_time(JOB, {**base, "FASTLOSS_BACKEND": "numba", "NUMBA_CACHE_DIR": warm_cache})  # fills the cache
        medians = {}
        for name, run in cases.items():
            medians[name] = statistics.median(run() for _ in range(repeat))
            print(f"{name}: {medians[name]:.3f} s", flush=True)
        cold = []
        for i in range(max(1, repeat // 2)):  # compiling is slow and steady: fewer runs
            with tempfile.TemporaryDirectory() as empty:
                cold.append(wall_time(JOB, {**base, "FASTLOSS_BACKEND": "numba", "NUMBA_CACHE_DIR": empty}))
            print(f"numba, cold cache: run {i + 1}: {cold[-1]:.2f} s", flush=True)
        medians["numba, cold cache"] = statistics.median(cold)
    return medians, max(1, repeat // 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes a case (median)")
    parser.add_argument("--output", default=os.path.join(report.HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    from fastloss._core import backends as _backend  # noqa: E402 (after ROOT is on the path)

    if not _backend.cython_built():
        sys.exit("the Cython extension is not built: pip install -e . (with a C compiler), then run again")
    medians, cold_runs = measure(args.repeat)
    cython = medians["cython"]
    rows = ["| process | wall time (median) | over cython |", "|---|---|---|"]
    for name, seconds in medians.items():
        rows.append(f"| {name} | {seconds:.3f} s | {seconds / cython:.2f}x |")
    report.add_section(
        "Cold start",
        f"A fresh `python -c` process: import numpy and fastloss, one `cross_entropy` on (4096, 100) float32 "
        f"logits; wall time of the whole process, median of {args.repeat} runs ({cold_runs} with a cold cache, an "
        f"empty NUMBA_CACHE_DIR each).",
        report.command_line("coldstart.py", argv),
        rows, args.output)


if __name__ == "__main__":
    main()
