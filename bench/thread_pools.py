"""Thread pools: a fastloss call right after a torch operation, and the reverse.

    python bench/thread_pools.py             # 6 fresh processes a case; adds a table to bench/RESULTS.md
    python bench/thread_pools.py --repeat 10

torch runs its operators on its own OpenMP pool, fastloss's parallel kernels on Numba's
(its "omp" threading layer: another OpenMP runtime, loaded by Numba). An OpenMP
worker spins for a while after its parallel region before it sleeps, so the first
call on one pool right after work on the other may find the other pool's workers
still spinning on the same cores. Each case times, in a fresh process, many calls
of B made right after A, alternating with calls of B made after a pause of 50 ms
(when the other pool is asleep), and gives the median of each and their ratio:

- fastloss after torch: A is a (512, 512) @ (512, 512) float32 matmul, B
  ``fastloss.torch.cross_entropy`` forward+backward on (4096, 1000) float32 logits
  (parallel kernel) and on (256, 10) (the serial kernel, below 16K logits);
- torch after fastloss: A is that (4096, 1000) ``cross_entropy``, B the matmul.
"""
import argparse
import os
import statistics
import subprocess
import sys

import report

ROOT = report.ROOT
sys.path.insert(0, ROOT)

JOB = """
import json, sys, time
import torch
import fastloss.torch as flt

torch.manual_seed(0)
a, b = torch.randn(512, 512), torch.randn(512, 512)
def logits(n, c):
    return torch.randn(n, c, requires_grad=True), torch.randint(0, c, (n,))
big, small = logits(4096, 1000), logits(256, 10)
def loss(xt):
    x, t = xt
    x.grad = None
    flt.cross_entropy(x, t).backward()
def matmul():
    a @ b
first, second = {"matmul": matmul, "big": lambda: loss(big), "small": lambda: loss(small)}[sys.argv[1]], \\
    {"matmul": matmul, "big": lambda: loss(big), "small": lambda: loss(small)}[sys.argv[2]]
for _ in range(5):
    first(); second()
after, paused = [], []
for i in range(int(sys.argv[3])):
    first()
    if i % 2:
        time.sleep(0.05)
    start = time.perf_counter()
    second()
    (paused if i % 2 else after).append(time.perf_counter() - start)
    time.sleep(0.05)
print(json.dumps([after, paused]))
"""

CASES = {"fastloss (4096x1000) after a torch matmul": ("matmul", "big"),
         "fastloss (256x10, serial) after a torch matmul": ("matmul", "small"),
         "torch matmul after fastloss (4096x1000)": ("big", "matmul")}


def measure(repeat, calls):
    """``{case: (median right after, median after a pause)}`` over ``repeat`` fresh processes."""
    env = report.checkout_env()
    times = {case: ([], []) for case in CASES}
    for _ in range(repeat):
        for case, (first, second) in CASES.items():  # the cases in turn, process after process
            done = subprocess.run([sys.executable, "-c", JOB, first, second, str(calls)], env=env, cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            after, paused = eval(done.stdout.strip().splitlines()[-1])
            times[case][0].extend(after)
            times[case][1].extend(paused)
    return {case: (statistics.median(after), statistics.median(paused)) for case, (after, paused) in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=6, help="fresh processes a case")
    parser.add_argument("--calls", type=int, default=40, help="timed calls a process (half of them after a pause)")
    parser.add_argument("--output", default=os.path.join(report.HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    medians = measure(args.repeat, args.calls)
    rows = ["| call | right after the other pool's work | after a 50 ms pause | ratio |", "|---|---|---|---|"]
    for case, (after, paused) in medians.items():
        rows.append(f"| {case} | {after * 1e3:.3f} ms | {paused * 1e3:.3f} ms | {after / paused:.2f}x |")
    print("\n".join(rows))
    report.add_section(
        "Thread pools: torch then fastloss, and the reverse",
        f"bench/thread_pools.py: in {args.repeat} fresh processes a case, {args.calls} calls each, alternately "
        f"right after the other library's parallel work and after a 50 ms pause; medians.",
        report.command_line("thread_pools.py", argv),
        rows, args.output)


if __name__ == "__main__":
    main()
