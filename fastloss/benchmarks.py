"""Benchmark cases: seeded inputs and the same loss in NumPy, torch and fastloss.

One definition serves the ``fastloss bench`` command and the pytest-benchmark files
in ``bench/``. NumPy baselines are written as a NumPy expert would (stable
log-sum-exp, in-place ufuncs, one fancy-index gather); torch's forward+gradient is
``loss.backward()`` on a leaf; fastloss's is one ``grad=True`` call, on its Numba
kernels ("fastloss") or on its Cython kernels ("cython"). Each factory returns a
zero-argument callable, so input preparation is never timed.
"""
import dataclasses
import os
import platform
import time

import numpy as np

import fastloss as fl
from fastloss._core import backends as _backend

IMPLS = ("numpy", "torch", "fastloss", "cython")


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: a loss, a mode ("forward" or "forward+grad") and its implementations."""

    loss: str
    mode: str
    make_inputs: object  # (rng, n, c, dtype) -> dict of arrays
    impls: dict  # impl name -> (inputs) -> zero-argument callable

    def label(self, n, c, dtype):
        return f"{self.loss} {n}x{c} {np.dtype(dtype).name} {self.mode}"


def _class_inputs(rng, n, c, dtype):
    return {"x": (rng.standard_normal((n, c)) * 2).astype(dtype), "t": rng.integers(0, c, n)}


def _binary_inputs(rng, n, c, dtype):
    return {"x": (rng.standard_normal((n, c)) * 2).astype(dtype), "y": (rng.random((n, c)) < 0.3).astype(dtype)}


def numpy_cross_entropy(x, t, grad=False):
    n = x.shape[0]
    rows = np.arange(n)
    m = x.max(axis=1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.log(s[:, 0]) + m[:, 0] - x[rows, t]).mean()
    if not grad:
        return loss
    e /= s * n
    e[rows, t] -= 1.0 / n
    return loss, e


def numpy_focal(x, t, gamma=2.0):
    m = x.max(axis=1, keepdims=True)
    s = np.exp(x - m).sum(axis=1)
    logp_t = x[np.arange(x.shape[0]), t] - m[:, 0] - np.log(s)
    return (-(-np.expm1(logp_t)) ** gamma * logp_t).mean()


def numpy_bce_with_logits(x, y, grad=False):
    e = np.exp(-np.abs(x))
    loss = (np.maximum(x, 0) - x * y + np.log1p(e)).mean()
    if not grad:
        return loss
    sig = np.where(x >= 0, 1, e) / (1 + e)
    return loss, (sig - y) / x.size


def _torch_forward_backward(loss_fn, x, *rest):
    torch = _torch()
    leaf = torch.from_numpy(x).clone().requires_grad_(True)
    rest = [torch.from_numpy(a) for a in rest]

    def run():
        leaf.grad = None
        loss = loss_fn(leaf, *rest)
        loss.backward()
        return loss, leaf.grad

    return run


def _torch_forward(loss_fn, *arrays):
    torch = _torch()
    tensors = [torch.from_numpy(a) for a in arrays]
    return lambda: loss_fn(*tensors)


def _forward_or_grad_case(loss, mode, make_inputs, keys, numpy_fn, torch_name, fastloss_fn):
    """A case whose three implementations take the inputs named by ``keys`` and, for
    "forward+grad", return the gradient with respect to the first."""
    grad = mode != "forward"

    def torch_impl(d):
        f = getattr(_torch().nn.functional, torch_name)
        arrays = [d[k] for k in keys]
        return _torch_forward_backward(f, *arrays) if grad else _torch_forward(f, *arrays)

    return Case(loss, mode, make_inputs, {
        "numpy": lambda d: lambda: numpy_fn(*[d[k] for k in keys], grad),
        "torch": torch_impl,
        "fastloss": lambda d: lambda: fastloss_fn(*[d[k] for k in keys], grad=grad, backend="numba"),
        "cython": lambda d: lambda: fastloss_fn(*[d[k] for k in keys], grad=grad, backend="cython"),
    })


def _cross_entropy(mode):
    return _forward_or_grad_case("cross_entropy", mode, _class_inputs, ("x", "t"), numpy_cross_entropy,
                                 "cross_entropy", fl.cross_entropy)


def _bce_with_logits(mode):
    return _forward_or_grad_case("binary_cross_entropy_with_logits", mode, _binary_inputs, ("x", "y"),
                                 numpy_bce_with_logits, "binary_cross_entropy_with_logits",
                                 fl.binary_cross_entropy_with_logits)


def _torch_focal(x, t, gamma=2.0):
    logp_t = _torch().log_softmax(x, 1).gather(1, t[:, None])[:, 0]
    return (-(1 - logp_t.exp()) ** gamma * logp_t).mean()


CASES = [
    _cross_entropy("forward"),
    _cross_entropy("forward+grad"),
    Case("focal_loss", "forward", _class_inputs, {
        "numpy": lambda d: lambda: numpy_focal(d["x"], d["t"]),
        "torch": lambda d: _torch_forward(_torch_focal, d["x"], d["t"]),
        "fastloss": lambda d: lambda: fl.focal_loss(d["x"], d["t"], backend="numba"),
        "cython": lambda d: lambda: fl.focal_loss(d["x"], d["t"], backend="cython"),
    }),
    _bce_with_logits("forward+grad"),
]


def mlp_sgd(criterion, x, y, hidden=32, lr=0.5, seed=0):
    """A two-layer tanh MLP on the whole batch ``(x, y)`` trained by plain SGD with
    ``criterion`` (torch's or :mod:`fastloss.torch`'s): returns ``step()``, which runs the
    forward pass, the loss, ``backward()`` and the update, and returns the loss as a float.

    The initial weights depend only on ``seed`` (drawn by NumPy, scaled by
    1/sqrt(fan-in)), so two criteria start from the same model and can be compared
    step by step. Biases start at zero.
    """
    torch = _torch()
    rng = np.random.default_rng(seed)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    n_classes = int(y.max()) + 1
    initial = (rng.standard_normal((x.shape[1], hidden)) / np.sqrt(x.shape[1]), np.zeros(hidden),
               rng.standard_normal((hidden, n_classes)) / np.sqrt(hidden), np.zeros(n_classes))
    params = [torch.tensor(a, dtype=x.dtype, requires_grad=True) for a in initial]
    w1, b1, w2, b2 = params

    def step():
        for p in params:
            p.grad = None
        loss = criterion(torch.tanh(x @ w1 + b1) @ w2 + b2, y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
        return loss.item()

    return step


def torch_batch_hard_triplet(embeddings, labels, margin=0.2):
    """:func:`fastloss.batch_triplet_loss`'s default (batch-hard, Euclidean, "mean" over the
    anchors that have a positive and a negative) in vectorised torch: the mining on a
    ``torch.cdist`` matrix without grad, then the chosen distances, so that autograd never
    meets the diagonal's zero distance (whose square root has no derivative)."""
    torch = _torch()
    with torch.no_grad():
        d = torch.cdist(embeddings, embeddings)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool)
        positive = same & ~eye
        hardest_positive = torch.where(positive, d, -torch.inf).argmax(1)
        hardest_negative = torch.where(same, torch.inf, d).argmin(1)
        valid = positive.any(1) & ~same.all(1)
    d_ap = (embeddings - embeddings[hardest_positive]).norm(dim=1)
    d_an = (embeddings - embeddings[hardest_negative]).norm(dim=1)
    hinge = (margin + d_ap - d_an).clamp_min(0)
    return hinge[valid].sum() / valid.sum().clamp_min(1)


TRAINING = {
    "mlp": "MLP 256x64 -> 128 -> 10, CrossEntropyLoss",
    "lstm_ctc": "2-layer LSTM (hidden 128) + CTCLoss, T=100 N=16 C=29",
    "embedding": "embedding net 256x64 -> 256 -> 128, BatchTripletLoss (batch-hard)",
}


def mlp_problem(seed=0):
    """The model and batch of :data:`TRAINING`'s MLP: ``(model, x, y)``, a float32
    ``Linear(64, 128)``, ``Tanh``, ``Linear(128, 10)`` and 256 rows of 64 features with
    their classes, all drawn from ``seed`` alone (bench/step_phases.py times its step
    phase by phase)."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10))
    return model, torch.randn(256, 64, generator=gen), torch.randint(0, 10, (256,), generator=gen)


def training_step(problem, impl, dtype="float32", seed=0):
    """One of the :data:`TRAINING` problems: ``(step, model)``, where ``step()`` runs the
    model's forward pass, the loss with torch's criterion (``impl="torch"``; for the
    embedding net, :func:`torch_batch_hard_triplet`) or :mod:`fastloss.torch`'s
    (``impl="fastloss"``), ``backward()`` and one SGD update, and returns the loss as a
    float. The model's initial parameters and the batch depend only on ``seed``, so that
    both criteria train the same model on the same data. ``impl="floor"`` puts in the
    loss's place an ``autograd.Function`` that computes nothing (its loss is 0, its
    gradient zeros): the step's cost for a loss of no cost, the floor of any loss
    written in Python as an autograd function, fastloss.torch's included."""
    torch = _torch()
    import fastloss.torch as flt

    if impl not in ("torch", "fastloss", "floor"):
        raise ValueError(f"unknown impl {impl!r}; expected 'torch', 'fastloss' or 'floor'")
    dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if problem == "mlp":
        model, x, y = mlp_problem(seed)
        criterion = flt.CrossEntropyLoss() if impl == "fastloss" else torch.nn.CrossEntropyLoss()
        loss_of = lambda: criterion(model(x.to(dtype)), y)  # noqa: E731
    elif problem == "lstm_ctc":
        t, n, c, features = 100, 16, 29, 40
        lstm, head = torch.nn.LSTM(features, 128, num_layers=2), torch.nn.Linear(128, c)
        model = torch.nn.ModuleList([lstm, head])
        x = torch.randn(t, n, features, generator=gen)
        target_lengths = torch.randint(10, 30, (n,), generator=gen)
        targets = torch.randint(1, c, (n, 30), generator=gen)
        input_lengths = torch.randint(80, t + 1, (n,), generator=gen)
        criterion = flt.CTCLoss() if impl == "fastloss" else torch.nn.CTCLoss()
        loss_of = lambda: criterion(head(lstm(x.to(dtype))[0]).log_softmax(2), targets,  # noqa: E731
                                    input_lengths, target_lengths)
    elif problem == "embedding":
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128))
        x, y = torch.randn(256, 64, generator=gen), torch.randint(0, 32, (256,), generator=gen)
        criterion = flt.BatchTripletLoss() if impl == "fastloss" else torch_batch_hard_triplet
        loss_of = lambda: criterion(model(x.to(dtype)), y)  # noqa: E731
    else:
        raise ValueError(f"unknown training problem {problem!r}; expected one of {sorted(TRAINING)}")
    if impl == "floor":  # loss_of reads criterion when it is called
        criterion = _floor_criterion(torch)
    model.to(dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def step():
        optimizer.zero_grad()
        loss = loss_of()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, model


def _floor_criterion(torch):
    """A criterion whose forward and backward compute nothing: a 0-d zero loss, and zeros
    for the gradient of its first argument (allocated, as a loss's gradient is)."""

    class Nothing(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, *rest):
            ctx.shape, ctx.dtype, ctx.rest = x.shape, x.dtype, len(rest)
            return x.new_zeros(())

        @staticmethod
        def backward(ctx, grad_output):
            return (torch.zeros(ctx.shape, dtype=ctx.dtype),) + (None,) * ctx.rest

    def criterion(x, *rest):
        return Nothing.apply(x, *rest)

    return criterion


def available_impls():
    """The implementations this environment can run: torch if installed, fastloss's
    Numba kernels if numba is in use, its Cython kernels if they were built."""
    present = {"torch": _torch() is not None, "fastloss": _backend.numba is not None,
               "cython": _backend.cython_built()}
    return [impl for impl in IMPLS if present.get(impl, True)]


def time_calls(fn, repeat=5, min_time=0.0):
    """Seconds of each of ``repeat`` runs of ``fn()`` (more while their sum is below
    ``min_time``), after one untimed warm-up call."""
    fn()
    times = []
    while len(times) < repeat or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.array(times)


def time_call(fn, repeat=5, min_time=0.0):
    """Median seconds of ``fn()`` over the runs of :func:`time_calls`."""
    return float(np.median(time_calls(fn, repeat, min_time)))


def cpu_name():
    """The CPU's model name (Linux's /proc/cpuinfo), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    """One line naming the CPU, its cores, the thread counts and the versions a timing depends on."""
    numba = _backend.numba
    parts = [f"{cpu_name()}, {os.cpu_count()} logical cores", f"fastloss {fl.__version__}",
             f"numba {numba.__version__} ({fl.get_num_threads()} threads)" if numba is not None
             else f"numba not in use ({_backend.NUMBA_OFF_REASON})",
             f"numpy {np.__version__}"]
    torch = _torch()
    parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch is not None
                 else "torch not installed (pip install 'fastloss[bench]' to compare)")
    return ", ".join(parts + [f"python {platform.python_version()}"])
