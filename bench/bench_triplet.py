"""Batch triplet losses, loss + gradient, B=1024, D=256, 64 classes, float32.

"torch" is pytorch-metric-learning 2.9 (the issue's baseline): a miner, then
``TripletMarginLoss(margin=0.2)`` on its triplets, then ``backward()``, all with
un-normalised Euclidean distances (``LpDistance(normalize_embeddings=False)``), as
fastloss's ``metric="euclidean"``:

* semi_hard: ``TripletMarginMiner(type_of_triplets="semihard")``
* batch_all: ``TripletMarginMiner(type_of_triplets="all")`` (its loss averages over the
  triplets with a positive loss: fastloss's ``reduction="mean_nonzero"``)
* batch_hard: ``BatchHardMiner()``

"numpy" is a vectorised NumPy batch-hard (distance matrix, masked arg-max / arg-min, a
dense pair-weight matrix and one product for the gradient); semi-hard and batch-all
have no fair vectorised NumPy form at this size (their NumPy forms are B^3 = 10^9
element masks), so they have none.

``python bench/bench_triplet.py`` prints the peak RSS increase of each strategy at
B=4096, D=512 (float32, 256 classes), each measured in a fresh process.
"""
import subprocess
import sys

import numpy as np
import pytest
from common import IMPLS, _torch, rng, run

import fastloss as fl

B, D, CLASSES, MARGIN = 1024, 256, 64, 0.2
FASTLOSS = {
    "semi_hard": dict(strategy="semi_hard"),
    "batch_all": dict(strategy="batch_all", reduction="mean_nonzero"),
    "batch_hard": dict(strategy="batch_hard"),
}


def inputs(b=B, d=D, classes=CLASSES, seed=0):
    r = rng(seed)
    return r.standard_normal((b, d)).astype(np.float32), r.integers(0, classes, b)


def pml_impl(strategy, x, y):
    torch = _torch()
    from pytorch_metric_learning import distances, losses, miners

    distance = distances.LpDistance(normalize_embeddings=False)
    miner = {
        "semi_hard": lambda: miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard", distance=distance),
        "batch_all": lambda: miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="all", distance=distance),
        "batch_hard": lambda: miners.BatchHardMiner(distance=distance),
    }[strategy]()
    loss_fn = losses.TripletMarginLoss(margin=MARGIN, distance=distance)
    leaf = torch.from_numpy(x).clone().requires_grad_(True)
    labels = torch.from_numpy(y)

    def call():
        leaf.grad = None
        loss = loss_fn(leaf, labels, miner(leaf, labels))
        loss.backward()
        return loss, leaf.grad

    return call


def numpy_batch_hard(x, y, margin=MARGIN):
    """Batch-hard triplet loss and its gradient, vectorised NumPy (euclidean)."""
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    d = sq[:, None] + sq[None, :] - 2 * (x @ x.T)
    np.maximum(d, 0, out=d)
    np.sqrt(d, out=d)
    np.fill_diagonal(d, 0)
    same = y[:, None] == y[None, :]
    np.fill_diagonal(same, False)
    hp = np.where(same, d, -np.inf).argmax(1)
    np.fill_diagonal(same, True)
    hn = np.where(same, np.inf, d).argmin(1)
    rows = np.arange(n)
    valid = same[rows, hp] & ~same[rows, hn] & (hp != rows)
    hinge = margin + d[rows, hp] - d[rows, hn]
    active = valid & (hinge > 0)
    count = max(int(valid.sum()), 1)
    loss = hinge[active].sum() / count
    w = np.zeros((n, n), x.dtype)
    a = rows[active]
    np.add.at(w, (a, hp[active]), 1 / (2 * d[a, hp[active]] * count))
    np.add.at(w, (a, hn[active]), -1 / (2 * d[a, hn[active]] * count))
    w += w.T
    grad = 2 * (w.sum(1)[:, None] * x - w @ x)
    return loss, grad


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("strategy", list(FASTLOSS))
def bench_triplet(benchmark, impl, strategy):
    x, y = inputs()
    if impl == "numpy" and strategy != "batch_hard":
        pytest.skip("no fair vectorised NumPy form (B^3 masks)")
    fn = {
        "fastloss": lambda: (lambda: fl.batch_triplet_loss(x, y, margin=MARGIN, grad=True, **FASTLOSS[strategy])),
        "torch": lambda: pml_impl(strategy, x, y),
        "numpy": lambda: (lambda: numpy_batch_hard(x, y)),
    }[impl]()
    run(benchmark, f"batch_triplet_loss {strategy} {B}x{D} {CLASSES} classes float32 forward+grad", impl, fn)


_MEMORY_SCRIPT = """
import sys
sys.path[:0] = [{here!r}, {root!r}]
import numpy as np
import fastloss as fl
from bench_triplet import inputs

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

x, y = inputs(4096, 512, 256)
fl.batch_triplet_loss(x[:64], y[:64], strategy={strategy!r}, grad=True)  # compile / load outside the peak
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
fl.batch_triplet_loss(x, y, strategy={strategy!r}, grad=True)
print(f"{strategy} B=4096 D=512 float32: peak RSS increase {{status('VmHWM:') - before:.1f}} MB")
"""


def memory_report():
    """Print the peak RSS increase of each strategy (loss + gradient) at B=4096, D=512, each
    in a fresh process (tests/test_triplet.py checks the lines); returns them."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    lines = []
    for strategy in FASTLOSS:
        script = _MEMORY_SCRIPT.format(here=here, root=os.path.dirname(here), strategy=strategy)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        lines.append(out.stdout.strip())
        print(lines[-1])
    return lines


def write_memory_section(lines):
    """The lines of :func:`memory_report` as a section of bench/RESULTS.md."""
    import report

    rows = ["| strategy | peak RSS increase, loss + gradient |", "|---|---|"]
    rows += [f"| {line.split()[0]} | {line.split('increase')[1].strip()} |" for line in lines]
    report.add_section("Triplet memory at B=4096, D=512",
                       "bench/bench_triplet.py run as a script: each strategy in a fresh process on (4096, 512) "
                       "float32 embeddings, 256 classes; VmHWM reset after a small warm-up call, so the figure is "
                       "the call's own peak (the issue's limit: 256 MB).",
                       "PYTHONPATH=$PWD python bench/bench_triplet.py", rows)


if __name__ == "__main__":
    write_memory_section(memory_report())
