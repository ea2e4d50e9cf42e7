"""The Cython backend against the Numba backend, option by option.

The Numba kernels are checked against torch in test_classification.py and
test_regression.py; here every covered loss runs on both backends with the same
arrays and must agree within the dtype's tolerance (values, gradients, dtypes,
shapes, NaN positions, errors). Then: selection by argument, by FASTLOSS_BACKEND and
automatically without numba (subprocesses in which numba is blocked or never
imported), and the clear errors of the losses that only Numba implements.
"""
import inspect
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from conftest import assert_close
from fastloss import classification, regression
from fastloss._core import backends as _backend
from fastloss._core.table import LOSSES as TABLE
from fastloss._core.jit import KernelKind

pytestmark = pytest.mark.skipif(not _backend.cython_built(), reason="the Cython extension is not built")
needs_numba = pytest.mark.skipif(_backend.numba is None, reason="numba is not in use: nothing to compare with")

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _compare(a, b, dtype):
    """Results of the two backends: same structure, dtypes and shapes; close values, NaN where NaN."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            _compare(x, y, dtype)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    finite = ~np.isnan(a)
    np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
    assert_close(b[finite], a[finite], dtype)


def both(fn, *args, **kwargs):
    """``fn`` on the Numba and on the Cython backend, compared; returns the Cython result."""
    dtype = np.asarray(args[0]).dtype.type if np.asarray(args[0]).dtype in DTYPES else np.float32
    expected = fn(*args, **kwargs, backend="numba")
    result = fn(*args, **kwargs, backend="cython")
    _compare(expected, result, dtype)
    return result


def _class_data(rng, shape, dtype, ignore_frac=0.0):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    c = shape[0] if len(shape) == 1 else shape[1]
    t = rng.integers(0, c, () if len(shape) == 1 else (shape[0],) + shape[2:])
    if ignore_frac and t.ndim:
        t[rng.random(t.shape) < ignore_frac] = -100
    return x, t


def _grad_output(rng, reduction, loss_shape):
    return rng.standard_normal(loss_shape) if reduction == "none" else 0.7


# ---------------------------------------------------------------------- row losses

@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(13, 7), (5, 4, 3, 2), (6,), (300, 70)], ids=["NC", "NCd1d2", "C", "parallel"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_targets(rng, dtype, shape, smoothing, weighted):
    x, t = _class_data(rng, shape, dtype, ignore_frac=0.2)
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = rng.random(c).astype(dtype) + 0.1 if weighted else None
    for reduction in REDUCTIONS:
        kwargs = dict(reduction=reduction, label_smoothing=smoothing)
        both(fl.cross_entropy, x, t, w, **kwargs)
        both(fl.cross_entropy, x, t, w, **kwargs, grad=True, grad_output=_grad_output(rng, reduction, np.shape(t)))


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 5), (3, 4, 5), (200, 90)], ids=["NC", "NCd", "parallel"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_probability_targets(rng, dtype, shape, smoothing):
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    y = rng.random(shape).astype(dtype)
    y /= y.sum(axis=1, keepdims=True)
    w = rng.random(shape[1]).astype(dtype) + 0.5
    for reduction in REDUCTIONS:
        both(fl.cross_entropy, x, y, w, reduction=reduction, label_smoothing=smoothing)
        both(fl.cross_entropy, x, y, w, reduction=reduction, label_smoothing=smoothing, grad=True)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_edge_cases(rng, dtype):
    x, t = _class_data(rng, (8, 6), dtype)
    # All ignored: "mean" is NaN, the gradient zero.
    value, grad = both(fl.cross_entropy, x, np.full(8, -100), grad=True)
    assert np.isnan(value) and not grad.any()
    # An ignore_index that is a valid class.
    both(fl.cross_entropy, x, t, ignore_index=2, grad=True)
    # -inf logits mask classes: finite without smoothing, inf with it, and with weights.
    masked = x.copy()
    masked[:, 4:] = -np.inf
    for smoothing in (0.0, 0.1):
        both(fl.cross_entropy, masked, t % 4, rng.random(6).astype(dtype), label_smoothing=smoothing, grad=True)
    # NaN propagates per row; huge logits stay finite.
    nan = x.copy()
    nan[2, 1] = np.nan
    both(fl.cross_entropy, nan, t, reduction="none", grad=True)
    both(fl.cross_entropy, x * 1e4, t, reduction="none", grad=True)
    # Empty batches.
    for reduction in REDUCTIONS:
        both(fl.cross_entropy, np.zeros((0, 5), dtype), np.zeros(0, int), reduction=reduction, grad=True)
        both(fl.nll_loss, np.zeros((0, 5), dtype), np.zeros(0, int), reduction=reduction, grad=True)


@needs_numba
def test_cross_entropy_layouts(rng):
    """Strided, transposed, read-only inputs; grad_out in place and strided; float16."""
    x, t = _class_data(rng, (40, 30), np.float32, ignore_frac=0.1)
    both(fl.cross_entropy, x[::2, ::3], t[::2] % 10, grad=True)
    both(fl.cross_entropy, np.asfortranarray(x), t, grad=True)
    readonly = x.copy()
    readonly.flags.writeable = False
    both(fl.cross_entropy, readonly, t.astype(np.int32), grad=True)
    both(fl.cross_entropy, x.astype(np.float16), t, grad=True)
    spatial, ts = _class_data(rng, (4, 3, 2, 5), np.float64, ignore_frac=0.2)
    for smoothing in (0.0, 0.2):
        expected = fl.cross_entropy(spatial, ts, label_smoothing=smoothing, grad=True, backend="numba")
        buffer = spatial.copy()
        value, grad = fl.cross_entropy(buffer, ts, label_smoothing=smoothing, grad=True, grad_out=buffer,
                                       backend="cython")
        assert grad is buffer
        _compare(expected, (value, grad), np.float64)
        out = np.zeros((4, 3, 5, 2)).transpose(0, 1, 3, 2)
        assert fl.cross_entropy(spatial, ts, label_smoothing=smoothing, grad=True, grad_out=out,
                                backend="cython")[1] is out
        _compare(expected[1], out, np.float64)
    strided_out = np.zeros(x.shape[::-1], x.dtype).T  # contiguous logits, a gradient strided along the classes
    assert fl.cross_entropy(x, t, grad=True, grad_out=strided_out, backend="cython")[1] is strided_out
    _compare(fl.cross_entropy(x, t, grad=True, backend="numba")[1], strided_out, np.float32)
    contiguous = x.copy()
    value, grad = fl.cross_entropy(contiguous, t, grad=True, grad_out=contiguous, backend="cython")
    _compare(fl.cross_entropy(x, t, grad=True, backend="numba"), (value, grad), np.float32)
    y = rng.random((4, 3, 2, 5))
    buffer = spatial.copy()
    expected = fl.cross_entropy(spatial, y, grad=True, backend="numba")
    _compare(expected, fl.cross_entropy(buffer, y, grad=True, grad_out=buffer, backend="cython"), np.float64)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["ignored", "probabilities"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_linear_cross_entropy_vocabulary_blocks(rng, monkeypatch, dtype, kind, smoothing):
    """The Cython twins of the vocabulary-block kernels give Numba's numbers: chunks of 8 rows,
    blocks of 10 classes (N = 300 and V = 53 divide neither), a whole block of -inf logits,
    a NaN row, a row of -inf, ignored rows among them."""
    n, h, v = 300, 9, 53
    x = rng.standard_normal((n, h)).astype(dtype)
    w = (rng.standard_normal((v, h)) / 3).astype(dtype)
    w[:, 0] = -np.abs(w[:, 0]) - 0.1  # x[n, 0] = inf makes row n all -inf
    b = rng.standard_normal(v).astype(dtype)
    b[10:20] = -np.inf
    x[3, 0], x[7, 4] = np.inf, np.nan
    if kind == "probabilities":
        t = rng.dirichlet(np.ones(v), n).astype(dtype)
    else:
        t = rng.integers(0, v, n)
        t[::4] = -100
        t[1] = 15  # a target on a masked class: inf
    monkeypatch.setattr(classification, "LINEAR_MIN_ROWS", 8)
    monkeypatch.setattr(classification, "LINEAR_CHUNK_BYTES", 8 * 10 * x.itemsize)
    for reduction in ("none", "sum"):
        both(fl.linear_cross_entropy, x, w, t, linear_bias=b, reduction=reduction, label_smoothing=smoothing,
             grad=True)
        finite = np.ones(n, bool)
        finite[[1, 3, 7]] = False
        both(fl.linear_cross_entropy, x[finite], w, t[finite], linear_bias=b, reduction=reduction,
             label_smoothing=smoothing, grad=True, grad_output=0.5)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [None, 0.25, "vector"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_loss(rng, dtype, alpha, gamma):
    x, t = _class_data(rng, (50, 6), dtype, ignore_frac=0.1)
    a = rng.random(6).astype(dtype) if alpha == "vector" else alpha
    for reduction in REDUCTIONS:
        both(fl.focal_loss, x, t, a, gamma, reduction=reduction)
        both(fl.focal_loss, x, t, a, gamma, reduction=reduction, grad=True,
             grad_output=_grad_output(rng, reduction, t.shape))
    confident = np.zeros((3, 4), dtype)
    confident[:, 1] = 60
    both(fl.focal_loss, confident, np.ones(3, int), gamma=gamma, grad=True)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(11, 5), (3, 5, 2, 2), (5,), (400, 60)], ids=["NC", "NCd1d2", "C", "parallel"])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(rng, dtype, shape, weighted):
    x, t = _class_data(rng, shape, dtype, ignore_frac=0.2)
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = rng.random(c).astype(dtype) + 0.1 if weighted else None
    for reduction in REDUCTIONS:
        both(fl.nll_loss, x, t, w, reduction=reduction)
        both(fl.nll_loss, x, t, w, reduction=reduction, grad=True,
             grad_output=_grad_output(rng, reduction, np.shape(t)))
    buffer = x.copy()
    expected = fl.nll_loss(x, t, w, grad=True, backend="numba")
    _compare(expected, fl.nll_loss(buffer, t, w, grad=True, grad_out=buffer, backend="cython"), dtype)


def test_python_threads(rng):
    """Eight Python threads calling the Cython kernels at once get the results of one."""
    cases = [_class_data(rng, (300, 70), np.float32, 0.1) for _ in range(8)]
    expected = [fl.cross_entropy(x, t, grad=True, backend="cython") for x, t in cases]
    results = [None] * 8

    def work(i):
        for _ in range(10):
            results[i] = fl.cross_entropy(*cases[i], grad=True, backend="cython")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (value, grad), (v, g) in zip(expected, results):
        assert value == v
        np.testing.assert_array_equal(grad, g)


# ---------------------------------------------------------------------- elementwise losses

def _weight(rng, kind, shape, dtype):
    """A weight of ``shape``'s full shape, its last axis only, one per row, a scalar, or none."""
    shapes = {"full": shape, "last": shape[-1:], "row": shape[:-1] + (1,), "scalar": (), "none": None}
    return None if shapes[kind] is None else (rng.random(shapes[kind]) + 0.5).astype(dtype)


ELEMENTWISE_SHAPES = [(7, 5), (3, 5000), (2000, 3)]  # one row of items, tiles across a row, many rows per tile


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=["small", "long-rows", "short-rows"])
def test_binary_losses(rng, dtype, shape):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    y = (rng.random(shape) < 0.4).astype(dtype)
    p = (rng.random(shape) * 0.98 + 0.01).astype(dtype)
    p.flat[:3] = [0.0, 1.0, 0.5]  # torch's log clamp at -100
    for reduction in REDUCTIONS:
        go = _grad_output(rng, reduction, shape)
        for weight in ("full", "last", "row", "scalar", "none"):
            w = _weight(rng, weight, shape, dtype)
            both(fl.binary_cross_entropy, p, y, w, reduction=reduction, grad=True, grad_output=go)
            both(fl.binary_cross_entropy_with_logits, x, y, w, reduction=reduction, grad=True, grad_output=go)
        pos_weight = (rng.random(shape[-1]) + 0.5).astype(dtype)
        both(fl.binary_cross_entropy_with_logits, x, y, reduction=reduction, pos_weight=pos_weight, grad=True)
        both(fl.sigmoid_focal_loss, x, y, 0.25, 2.0, reduction=reduction, grad=True, grad_output=go)
        both(fl.sigmoid_focal_loss, x, y, -1.0, 0.0, reduction=reduction)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    for reduction in REDUCTIONS + ["batchmean"]:
        for log_target in (False, True):
            target = log_p if log_target else p
            both(fl.kl_div, x, target, reduction=reduction, log_target=log_target, grad=True)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=["small", "long-rows", "short-rows"])
def test_regression_losses(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    counts = rng.poisson(2.0, shape).astype(dtype)
    for reduction in REDUCTIONS:
        go = _grad_output(rng, reduction, shape)
        for weight in ("full", "none"):
            w = _weight(rng, weight, shape, dtype)
            both(fl.l1_loss, x, y, reduction=reduction, weight=w, grad=True, grad_output=go)
            both(fl.mse_loss, x, y, reduction=reduction, weight=w, grad=True, grad_output=go)
            both(fl.huber_loss, x, y, reduction, 0.7, w, grad=True, grad_output=go)
        both(fl.l1_loss, x, y[0], reduction=reduction, grad=True)  # a target broadcast along the rows
        for beta in (0.0, 0.5):
            both(fl.smooth_l1_loss, x, y, reduction=reduction, beta=beta, grad=True, grad_output=go)
        for log_input in (True, False):
            for full in (False, True):
                inputs = x if log_input else np.abs(x)
                both(fl.poisson_nll_loss, inputs, counts, log_input, full, reduction=reduction, grad=True)
        var = (rng.random(shape) + 0.1).astype(dtype)
        for v in (var, var[..., 0], var[..., :1], var[:1], np.float64(0.3)):
            for full in (False, True):
                both(fl.gaussian_nll_loss, x, y, v, full, 1e-6, reduction, grad=True, grad_output=go)


@needs_numba
def test_elementwise_special_values_and_layouts(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    y = rng.standard_normal((6, 4)).astype(np.float32)
    for name in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "poisson_nll_loss",
                 "binary_cross_entropy_with_logits", "sigmoid_focal_loss"):
        both(getattr(fl, name), x, np.abs(y), reduction="none", grad=True)
    both(fl.mse_loss, x.T, y.T, grad=True)  # transposed (copied to C order)
    both(fl.mse_loss, x[:, ::2], y[:, ::2], grad=True)
    buffer = x.copy()
    expected = fl.mse_loss(x, y, grad=True, backend="numba")
    value, grad = fl.mse_loss(buffer, y, grad=True, grad_out=buffer, backend="cython")
    assert grad is buffer
    _compare(expected, (value, grad), np.float32)
    both(fl.mse_loss, np.float64(2.0), np.float64(0.5), grad=True)  # 0-d
    both(fl.mse_loss, np.zeros((0, 3)), np.zeros((0, 3)), grad=True)  # empty: NaN mean


def test_kinds_cover_every_scalar_kernel():
    """Every elementwise kernel of the covered modules has a Cython twin, and no other."""
    kinds = {v.name for module in (classification.cpu, regression.cpu) for v in vars(module).values()
             if isinstance(v, KernelKind)}
    assert set(_backend.cython_module("elementwise").KINDS) == kinds


# ---------------------------------------------------------------------- selection and errors

@needs_numba
@pytest.mark.parametrize("fn,args,kwargs", [
    (fl.cross_entropy, (np.zeros((3, 4)), np.array([0, 4, 1])), {}),
    (fl.cross_entropy, (np.zeros((3, 4)), np.array([0, -1, 1])), {"grad": True}),
    (fl.cross_entropy, (np.zeros((3, 4)), np.array([0, 1])), {}),
    (fl.cross_entropy, (np.zeros((3, 4)), np.array([0, 1, 2]), np.ones(3)), {}),
    (fl.cross_entropy, (np.zeros((3, 4)), np.array([0, 1, 2])), {"label_smoothing": 1.5}),
    (fl.cross_entropy, (np.zeros((3, 4), int), np.array([0, 1, 2])), {}),
    (fl.cross_entropy, (np.zeros((3, 4)), np.zeros(3, int)), {"reduction": "none", "grad": True,
                                                              "grad_output": np.ones(4)}),
    (fl.nll_loss, (np.zeros((3, 4)), np.array([0, 7, 1])), {}),
    (fl.focal_loss, (np.zeros((3, 4)), np.array([0, 1, 2])), {"gamma": -1}),
    (fl.binary_cross_entropy, (np.array([0.5, 1.5]), np.array([0.0, 1.0])), {}),
    (fl.mse_loss, (np.zeros((3, 2)), np.zeros((2, 2))), {}),
    (fl.gaussian_nll_loss, (np.zeros((3, 2)), np.zeros((3, 2)), -np.ones((3, 2))), {}),
    (fl.l1_loss, (np.zeros((3, 2)), np.zeros((3, 2))), {"grad": True, "grad_out": np.zeros((2, 3))}),
])
def test_bad_input_same_error(fn, args, kwargs):
    """Validation is shared: both backends raise the same exception with the same message."""
    errors = []
    for backend in _backend.BACKENDS:
        with pytest.raises((ValueError, TypeError)) as info:
            fn(*args, **kwargs, backend=backend)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


def test_bad_class_index_writes_nothing(rng):
    x = rng.standard_normal((5000, 4))
    t = rng.integers(0, 4, 5000)
    t[-1] = 9
    for fn in (fl.cross_entropy, fl.nll_loss, fl.focal_loss):
        buffer = x.copy()
        with pytest.raises(ValueError, match="class index 9"):
            fn(buffer, t, grad=True, grad_out=buffer, backend="cython")
        np.testing.assert_array_equal(buffer, x)


def test_every_loss_takes_backend():
    """Covered losses run on Cython; every other loss rejects backend="cython" by name,
    before looking at its arguments."""
    names = set(TABLE.names()) | {"ctc_forced_align", "mine_triplets", "pairwise_distances"}
    assert set(_backend.CYTHON_LOSSES) <= names
    for name in sorted(names - set(_backend.CYTHON_LOSSES)):
        fn = getattr(fl, name)
        n_data = sum(p.default is p.empty for p in inspect.signature(fn).parameters.values())
        with pytest.raises(ValueError, match=f"{name} has no Cython kernel.*covers cross_entropy"):
            fn(*[None] * n_data, backend="cython")
    with pytest.raises(ValueError, match="backend must be one of"):
        fl.mse_loss(np.zeros(2), np.zeros(2), backend="cuda")


@needs_numba
def test_criterion_backend(rng):
    x, t = _class_data(rng, (20, 5), np.float32)
    crit = fl.CrossEntropyLoss(label_smoothing=0.1, backend="cython")
    assert "backend='cython'" in repr(crit)
    _compare(fl.cross_entropy(x, t, label_smoothing=0.1, grad=True, backend="numba"), crit.value_and_grad(x, t),
             np.float32)


def _run(code, env=None):
    """``code`` in a fresh interpreter (repository root on the path); its last stdout line as JSON."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [environ.get("PYTHONPATH")] if p])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


_PROBE = """
import json, sys
import numpy as np
import fastloss as fl
from fastloss._core import backends as _backend
x = np.linspace(-3, 3, 4096 * 10, dtype=np.float32).reshape(4096, 10)
t = np.arange(4096) % 10
value, grad = fl.cross_entropy(x, t, grad=True)
errors = {}
for name, call in [("ctc_loss", lambda: fl.ctc_loss(None, None, None, None)),
                   ("numba", lambda: fl.cross_entropy(x, t, backend="numba"))]:
    try:
        call()
    except ImportError as error:
        errors[name] = str(error)
from fastloss._core.table import LOSSES
ran = []  # every loss of the Cython backend, its example with gradients
for entry in LOSSES:
    if "cython" in entry.backends:
        args, options = entry.call(np.random.default_rng(0), np.float64)
        entry.function(*args, **options, grad=True)
        ran.append(entry.name)
print(json.dumps({"numba_imported": "numba" in sys.modules, "default": _backend.DEFAULT, "value": float(value),
                  "grad_sum": float(np.abs(grad).sum()), "errors": errors, "ran": ran}))
"""

_BLOCK_NUMBA = """
import sys
class BlockNumba:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "llvmlite"):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, BlockNumba())
"""


@pytest.mark.parametrize("how", ["FASTLOSS_BACKEND=cython", "numba not importable"])
def test_cython_without_numba(how):
    """A process that never imports numba computes cross_entropy on the Cython kernels,
    and a loss without Cython kernels says why it cannot run."""
    if how == "numba not importable":
        result = _run(_BLOCK_NUMBA + _PROBE, {"FASTLOSS_BACKEND": ""})
        reason = "numba cannot be imported"
    else:
        result = _run(_PROBE, {"FASTLOSS_BACKEND": "cython"})
        reason = "FASTLOSS_BACKEND=cython"
    assert result["numba_imported"] is False and result["default"] == "cython"
    x = np.linspace(-3, 3, 4096 * 10, dtype=np.float32).reshape(4096, 10)
    t = np.arange(4096) % 10
    value, grad = fl.cross_entropy(x, t, grad=True, backend="cython")
    assert result["value"] == float(value) and result["grad_sum"] == float(np.abs(grad).sum())
    assert reason in result["errors"]["ctc_loss"] and "ctc_loss needs numba" in result["errors"]["ctc_loss"]
    cython_losses = [entry.name for entry in TABLE if "cython" in entry.backends]
    assert "Cython backend only: " + ", ".join(cython_losses) in result["errors"]["ctc_loss"]
    assert result["ran"] == cython_losses and "linear_cross_entropy" in cython_losses
    assert result["errors"]["numba"].startswith("backend='numba' is not available")


def test_backend_environment_variable():
    assert _run("import json, fastloss\nfrom fastloss._core import backends\nprint(json.dumps(backends.DEFAULT))",
                {"FASTLOSS_BACKEND": "numba"}) == "numba"
    code = "import fastloss"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "FASTLOSS_BACKEND": "cuda"}, cwd=os.path.dirname(fl.__path__[0]))
    assert done.returncode != 0 and "FASTLOSS_BACKEND='cuda': expected 'numba' or 'cython'" in done.stderr


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [True, False])
def test_poisson_huge_values_as_torch(log_input, full):
    """Where torch's exp(x) - y x is inf - inf (NaN) or rounds to exactly 0, the Cython kernel
    too: no fused multiply-add (setup.py: -ffp-contract=off). Expected: torch float64 CPU."""
    values = np.array([1e300, -1e300, 1e10, 2.0, 0.5, 0.0, 1e-300])
    x, y = (a.ravel() for a in np.meshgrid(values, np.abs(values)))
    expected = F.poisson_nll_loss(torch.tensor(x), torch.tensor(y), log_input=log_input, full=full,
                                  reduction="none").numpy()
    got = fl.poisson_nll_loss(x, y, log_input=log_input, full=full, reduction="none", backend="cython")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
