"""Whole training steps with torch's criterion and with fastloss.torch's, in paired fresh processes.

    python bench/training_steps.py                 # 8 pairs; adds a table to bench/RESULTS.md
    python bench/training_steps.py --pairs 12 --problems mlp

A user chooses between a training loop with torch's loss and the same loop with
fastloss's: two programs. So each figure here comes from a fresh process that runs one
:func:`fastloss.benchmarks.training_step` only (a torch-only process never starts
Numba's thread pool), warms it up, then times ``--steps`` steps one by one; its median
is the process's figure. The kinds of process alternate, round after round, so that a
slow spell of a shared machine falls on each; the table gives the median over the rounds
of each, their ratio (torch / fastloss: above 1, fastloss's step is faster) and the
range of the pairs' own ratios. A third kind of process, the floor, runs the step with
a loss that computes nothing (``training_step(problem, "floor")``): torch / floor is
what a loss implemented in Python through ``autograd.Function`` could reach at best.

The steps themselves are those of ``bench/bench_torch.py::bench_training_step``, which
times them one after the other in one process under pytest-benchmark.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import report

ROOT = report.ROOT
sys.path.insert(0, ROOT)

from fastloss import benchmarks  # noqa: E402

JOB = """
import json, sys, time
from fastloss import benchmarks
problem, impl, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
step, _ = benchmarks.training_step(problem, impl)
for _ in range(max(3, steps // 10)):
    step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
times.sort()
print(json.dumps(times[len(times) // 2]))
"""

STEPS = {"mlp": 300, "lstm_ctc": 20, "embedding": 100}


def measure(problem, pairs, steps):
    """``{impl: [per-process median step time]}``, the processes alternating torch, fastloss and
    the floor (a loss that computes nothing)."""
    env = report.checkout_env()
    times = {"torch": [], "fastloss": [], "floor": []}
    for _ in range(pairs):
        for impl in times:
            done = subprocess.run([sys.executable, "-c", JOB, problem, impl, str(steps)], env=env, cwd=ROOT,
                                  capture_output=True, text=True, check=True)
            times[impl].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="pairs of fresh processes a problem")
    parser.add_argument("--problems", nargs="+", default=sorted(benchmarks.TRAINING),
                        choices=sorted(benchmarks.TRAINING))
    parser.add_argument("--output", default=os.path.join(report.HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    rows = ["| training step (float32) | torch | fastloss | torch / fastloss | pairs' ratios | floor | torch / floor |",
            "|---|---|---|---|---|---|---|"]
    for problem in args.problems:
        times = measure(problem, args.pairs, STEPS[problem])
        torch_median, fastloss_median, floor_median = (statistics.median(times[impl])
                                                       for impl in ("torch", "fastloss", "floor"))
        ratios = [a / b for a, b in zip(times["torch"], times["fastloss"])]
        rows.append(f"| {benchmarks.TRAINING[problem]} | {torch_median * 1e3:.3f} ms | {fastloss_median * 1e3:.3f} ms "
                    f"| {torch_median / fastloss_median:.2f}x | {min(ratios):.2f}x to {max(ratios):.2f}x "
                    f"| {floor_median * 1e3:.3f} ms | {torch_median / floor_median:.2f}x |")
        print(rows[-1], flush=True)
    report.add_section(
        "Training steps in paired fresh processes",
        f"bench/training_steps.py: {args.pairs} rounds of fresh processes a problem, alternating torch's criterion, "
        f"fastloss.torch's and the floor (an autograd.Function computing nothing in the loss's place: the step "
        f"of a loss that costs nothing, which no Python autograd function can beat); each process times "
        f"{', '.join(f'{STEPS[p]} steps ({p})' for p in args.problems)} after a warm-up and gives its median; "
        f"the table gives the medians over the processes.",
        report.command_line("training_steps.py", argv),
        rows, args.output)


if __name__ == "__main__":
    main()
