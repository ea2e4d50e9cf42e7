"""Where the small MLP's training step spends its time, phase by phase, with torch's
criterion, fastloss.torch's and the floor (a loss that computes nothing).

    python bench/step_phases.py               # 4 rounds of fresh processes; adds a table to bench/RESULTS.md

The step is bench/training_steps.py's MLP (256x64 -> 128 -> 10, CrossEntropyLoss, SGD,
float32), its phases timed one by one with ``time.perf_counter``: ``zero_grad``, the
model's forward, the criterion's forward, ``backward()`` and the update. After the steps
the same process times the criterion's forward again in a loop of calls on the step's
last logits ("in a loop"): the gap between the two columns is what the step's own work
does to the criterion's cost (caches, branch predictors), which a loop of calls does not
see. Each kind of process runs once a round, the kinds alternating; the table gives each
figure's median over the rounds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import report

PHASES = ["zero_grad", "model forward", "criterion forward", "backward", "update"]

JOB = """
import json, sys, time
import torch
import fastloss.torch as flt
from fastloss import benchmarks

impl, steps = sys.argv[1], int(sys.argv[2])
model, x, y = benchmarks.mlp_problem()
criterion = {"torch": torch.nn.CrossEntropyLoss(), "fastloss": flt.CrossEntropyLoss(),
             "floor": benchmarks._floor_criterion(torch)}[impl]
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
clock = time.perf_counter
phases = [[] for _ in range(5)]
for i in range(steps + steps // 10):
    t0 = clock(); optimizer.zero_grad(); t1 = clock()
    logits = model(x); t2 = clock()
    loss = criterion(logits, y); t3 = clock()
    loss.backward(); t4 = clock()
    optimizer.step(); t5 = clock()
    loss.item()
    if i >= steps // 10:  # after a warm-up
        for times, start, stop in zip(phases, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
            times.append(stop - start)
leaf = logits.detach().requires_grad_()
loop = []
for _ in range(steps):
    start = clock(); criterion(leaf, y); loop.append(clock() - start)
median = lambda v: sorted(v)[len(v) // 2]
print(json.dumps([median(times) for times in phases] + [median(loop)]))
"""


def measure(rounds, steps):
    """``{impl: [per-process list of the phases' medians, then the loop's]}``."""
    env = report.checkout_env()
    figures = {"torch": [], "fastloss": [], "floor": []}
    for _ in range(rounds):
        for impl in figures:
            done = subprocess.run([sys.executable, "-c", JOB, impl, str(steps)], env=env, cwd=report.ROOT,
                                  capture_output=True, text=True, check=True)
            figures[impl].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return figures


def table(figures):
    rows = ["| criterion | " + " | ".join(PHASES) + " | sum | criterion forward, in a loop |",
            "|---|" + "---|" * (len(PHASES) + 2)]
    for impl, runs in figures.items():
        medians = [statistics.median(run[i] for run in runs) for i in range(len(PHASES) + 1)]
        cells = [f"{m * 1e6:.1f} µs" for m in medians[:-1]]
        rows.append(f"| {impl} | " + " | ".join(cells) + f" | {sum(medians[:-1]) * 1e6:.1f} µs | "
                    f"{medians[-1] * 1e6:.1f} µs |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="fresh processes of each kind")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps a process")
    parser.add_argument("--output", default=os.path.join(report.HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    rows = table(measure(args.rounds, args.steps))
    print("\n".join(rows))
    report.add_section(
        "The MLP's training step, phase by phase",
        f"bench/step_phases.py: the MLP step of bench/training_steps.py with each phase timed on its own, "
        f"{args.rounds} rounds of fresh processes alternating torch's criterion, fastloss.torch's and the floor, "
        f"{args.steps} steps a process after a warm-up; each figure is the median over the processes of a "
        f"process's median. The last column times the criterion's forward in a loop of calls on the step's "
        f"last logits, in the same process after the steps.",
        report.command_line("step_phases.py", argv), rows, args.output)


if __name__ == "__main__":
    main()
