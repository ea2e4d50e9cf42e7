"""linear_cross_entropy: the chunked head-and-loss against torch.

Where each expected number comes from:

* ``torch.nn.functional.linear_cross_entropy`` (torch 2.13, its reference path,
  ``options=None``) on the inputs cast to float64, differentiated by torch autograd: the
  truth for the value and the three gradients, for every option and both dtypes.
* fastloss's own call with the default chunking: the expected numbers of the calls
  with other chunk sizes (the chunking must not change them beyond rounding).
* torch's ``nn.LinearCrossEntropyLoss`` with the same head parameters, differentiated by
  autograd, for ``fastloss.torch.LinearCrossEntropyLoss``.
* The in-memory call, for streaming (``fastloss eval``).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close

import fastloss as fl
import fastloss.torch as flt
from fastloss import classification
from fastloss._core import blas

ROOT = Path(__file__).resolve().parents[1]


def _head(rng, n=37, h=11, v=53, dtype=np.float64):
    """Sizes that divide no chunk size the tests use."""
    x = rng.standard_normal((n, h)).astype(dtype)
    w = (rng.standard_normal((v, h)) / np.sqrt(h)).astype(dtype)
    b = rng.standard_normal(v).astype(dtype)
    return x, w, b


def _targets(rng, kind, n, v, dtype):
    if kind == "probabilities":
        return rng.dirichlet(np.ones(v), n).astype(dtype)
    t = rng.integers(0, v, n)
    if kind == "ignored":
        t[::4] = -100
    return t


def _torch(x, w, t, b, grad_output, **options):
    """torch's value and autograd gradients (input, weight[, bias]) in float64."""
    leaves = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w) + ((b,) if b is not None else ())]
    target = torch.tensor(t.astype(np.float64) if t.dtype.kind == "f" else t)
    weight = options.pop("weight", None)
    value = F.linear_cross_entropy(leaves[0], leaves[1], target, linear_bias=leaves[2] if b is not None else None,
                                   weight=None if weight is None else torch.tensor(weight.astype(np.float64)),
                                   **options)
    value.backward(torch.as_tensor(grad_output, dtype=torch.float64).expand(value.shape))
    return value.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["classes", "ignored", "probabilities"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_against_torch(rng, dtype, reduction, kind, bias, weighted, smoothing):
    x, w, b = _head(rng, dtype=dtype)
    t = _targets(rng, kind, x.shape[0], w.shape[0], dtype)
    weight = rng.uniform(0.3, 1.5, w.shape[0]).astype(dtype) if weighted else None
    grad_output = 0.7 if reduction != "none" else rng.standard_normal(x.shape[0])
    options = {"reduction": reduction, "label_smoothing": smoothing, "weight": weight}
    expected, expected_grads = _torch(x, w, t, b if bias else None, grad_output, **options)
    value, grads = fl.linear_cross_entropy(x, w, t, linear_bias=b if bias else None, **options, chunk_size=8,
                                           grad=True, grad_output=grad_output)
    assert np.asarray(value).dtype == dtype and np.shape(value) == expected.shape
    assert len(grads) == (3 if bias else 2)
    assert_close(value, expected, dtype, scale=4)
    for got, want in zip(grads, expected_grads):
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype, scale=4)


@pytest.mark.parametrize("kind", ["classes", "probabilities"])
def test_unbatched_input(rng, kind):
    x, w, b = _head(rng, n=1)
    t = _targets(rng, kind, 1, w.shape[0], np.float64)[0]
    expected, expected_grads = _torch(x[0], w, np.asarray(t), b, 1.0)
    value, grads = fl.linear_cross_entropy(x[0], w, t, linear_bias=b, grad=True)
    assert np.shape(value) == () and grads[0].shape == x[0].shape
    assert_close(value, expected, np.float64)
    for got, want in zip(grads, expected_grads):
        assert_close(got, want, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["ignored", "probabilities"])
@pytest.mark.parametrize("chunk_size", [1, 5, 36, 37, 1000])
def test_chunk_size_does_not_change_the_numbers(rng, monkeypatch, dtype, kind, chunk_size):
    """An explicit chunk size, and the default one made small (a few rows of logits), give
    the numbers of one chunk; N = 37 and V = 53 divide none of these sizes."""
    x, w, b = _head(rng, dtype=dtype)
    t = _targets(rng, kind, x.shape[0], w.shape[0], dtype)
    options = {"linear_bias": b, "label_smoothing": 0.1, "grad": True}
    value, grads = fl.linear_cross_entropy(x, w, t, **options, chunk_size=x.shape[0])
    got = fl.linear_cross_entropy(x, w, t, **options, chunk_size=chunk_size)
    monkeypatch.setattr(classification, "LINEAR_CHUNK_BYTES", chunk_size * w.shape[0] * x.itemsize)
    monkeypatch.setattr(classification, "LINEAR_MIN_ROWS", 1)  # whole rows, however few fit
    by_default = fl.linear_cross_entropy(x, w, t, **options)
    for value_, grads_ in (got, by_default):
        assert_close(value_, value, dtype)
        for g, want in zip(grads_, grads):
            assert_close(g, want, dtype)


def test_chunk_rows_bound_the_logits():
    assert classification.linear_chunk_rows(4096, 32768, 4) == classification.LINEAR_CHUNK_BYTES // (32768 * 4)
    assert classification.linear_chunk_rows(10, 1000, 4) == 10  # a small batch is one chunk
    assert classification.linear_chunk_rows(10, 1 << 30, 8) == 1  # a row larger than the budget: one row


def test_equals_cross_entropy_of_the_logits(rng):
    """The definition, and the value without grad equal to the value with it."""
    x, w, b = _head(rng)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], np.float64)
    logits = x @ w.T + b
    expected, expected_grad = fl.cross_entropy(logits, t, label_smoothing=0.2, grad=True)
    value, (d_x, d_w, d_b) = fl.linear_cross_entropy(x, w, t, linear_bias=b, label_smoothing=0.2, grad=True)
    assert_close(value, expected, np.float64)
    assert fl.linear_cross_entropy(x, w, t, linear_bias=b, label_smoothing=0.2) == value
    assert_close(d_x, expected_grad @ w, np.float64)
    assert_close(d_w, expected_grad.T @ x, np.float64)
    assert_close(d_b, expected_grad.sum(0), np.float64)


def test_grad_out_may_be_the_input(rng):
    x, w, b = _head(rng)
    t = _targets(rng, "classes", x.shape[0], w.shape[0], np.float64)
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, grad=True, chunk_size=7)
    inplace = x.copy()
    value, grads = fl.linear_cross_entropy(inplace, w, t, linear_bias=b, grad=True, grad_out=inplace, chunk_size=7)
    assert grads[0] is inplace and value == expected
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got, want)


def test_ignore_index_as_torch(rng):
    """torch: None means -100 for class targets; probabilities refuse any ignore_index."""
    x, w, _ = _head(rng)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], np.float64)
    assert fl.linear_cross_entropy(x, w, t) == fl.linear_cross_entropy(x, w, t, ignore_index=-100)
    t[t == -100] = 3
    expected, _ = _torch(x, w, t, None, 1.0, ignore_index=3)
    assert_close(fl.linear_cross_entropy(x, w, t, ignore_index=3), expected, np.float64)
    p = _targets(rng, "probabilities", x.shape[0], w.shape[0], np.float64)
    with pytest.raises(RuntimeError):
        F.linear_cross_entropy(torch.tensor(x), torch.tensor(w), torch.tensor(p), ignore_index=-100)
    with pytest.raises(ValueError, match="ignore_index"):
        fl.linear_cross_entropy(x, w, p, ignore_index=-100)


@pytest.mark.parametrize("mistake, name", [
    ("h", "linear_weight"), ("bias", "linear_bias"), ("target", "target"), ("target_shape", "target"),
    ("chunk", "chunk_size"), ("input_rank", "input")])
def test_bad_input_raises_before_any_gemm(rng, monkeypatch, mistake, name):
    x, w, b = _head(rng)
    t = _targets(rng, "classes", x.shape[0], w.shape[0], np.float64)
    call = {"input": x, "linear_weight": w, "target": t, "linear_bias": b}
    call.update({"h": {"linear_weight": w[:, :-1]}, "bias": {"linear_bias": b[:-1]},
                 "target": {"target": np.r_[t[:-1], w.shape[0]]}, "target_shape": {"target": t[:-1]},
                 "chunk": {"chunk_size": 0}, "input_rank": {"input": x[None]}}[mistake])

    def no_gemm(*args, **kwargs):
        raise AssertionError("a GEMM ran before the checks")

    monkeypatch.setattr(classification.np, "matmul", no_gemm)
    with pytest.raises(ValueError, match=name):
        fl.linear_cross_entropy(**call, grad=True)


def test_criterion(rng):
    x, w, b = _head(rng)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], np.float64)
    weight = rng.uniform(0.5, 1.5, w.shape[0])
    crit = fl.LinearCrossEntropyLoss(weight=weight, reduction="sum", label_smoothing=0.1)
    options = {"weight": weight, "reduction": "sum", "label_smoothing": 0.1}
    assert crit(x, w, t, linear_bias=b) == fl.linear_cross_entropy(x, w, t, linear_bias=b, **options)
    value, grads = crit.value_and_grad(x, w, t, linear_bias=b, grad_output=2.0)
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, **options, grad=True, grad_output=2.0)
    assert value == expected and len(grads) == 3
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="linear_bias"):
        crit(x, w, t, bias=b)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("bias", [False, True])
def test_torch_module_holds_the_head(rng, reduction, bias):
    """flt.LinearCrossEntropyLoss against torch's module with the same parameters:
    autograd reaches the input, the weight and the bias."""
    h, v = 11, 53
    torch.manual_seed(0)
    theirs = torch.nn.LinearCrossEntropyLoss(h, v, bias=bias, dtype=torch.float64, reduction=reduction,
                                             label_smoothing=0.1)
    ours = flt.LinearCrossEntropyLoss(h, v, bias=bias, dtype=torch.float64, reduction=reduction,
                                      label_smoothing=0.1, chunk_size=8)
    ours.load_state_dict(theirs.state_dict())
    x = torch.tensor(rng.standard_normal((37, h)))
    t = torch.tensor(rng.integers(0, v, 37))
    results = []
    for module in (theirs, ours):
        leaf = x.clone().requires_grad_(True)
        value = module(leaf, t)
        value.backward(torch.ones_like(value) * 0.5)
        results.append([value.detach().numpy(), leaf.grad.numpy()] + [p.grad.numpy() for p in module.parameters()])
    assert len(results[1]) == (4 if bias else 3)
    for got, want in zip(results[1], results[0]):
        assert_close(got, want, np.float64)


def test_streaming_cli_equals_in_memory(rng, tmp_path):
    """``fastloss eval linear_cross_entropy --arg linear_weight=...`` and its per-token losses."""
    x, w, _ = _head(rng, n=301)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], np.float64)
    for name, array in (("hidden", x), ("head", w), ("tokens", t)):
        np.save(tmp_path / f"{name}.npy", array)
    done = subprocess.run(
        [sys.executable, "-m", "fastloss.cli", "eval", "linear_cross_entropy", "--input", "hidden.npy", "--arg",
         "linear_weight=head.npy", "--target", "tokens.npy", "--chunk-rows", "64", "--per-sample", "per.npy",
         "--json", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    assert_close(np.load(tmp_path / "per.npy"), fl.linear_cross_entropy(x, w, t, reduction="none"), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosface_in_chunks_equals_one_chunk(rng, monkeypatch, dtype):
    """large_margin_cosine_loss runs on the same engine: chunks of 1 and 5 rows (the default
    made small) give the numbers of one chunk, the logits never whole."""
    f, w, _ = _head(rng, dtype=dtype)
    t = _targets(rng, "classes", f.shape[0], w.shape[0], dtype)
    expected, expected_grads = fl.large_margin_cosine_loss(f, w, t, s=8.0, grad=True, grad_output=0.5)
    for rows in (1, 5):
        monkeypatch.setattr(classification, "LINEAR_CHUNK_BYTES", rows * w.shape[0] * f.itemsize)
        monkeypatch.setattr(classification, "LINEAR_MIN_ROWS", 1)
        value, grads = fl.large_margin_cosine_loss(f, w, t, s=8.0, grad=True, grad_output=0.5)
        assert_close(value, expected, dtype)
        for got, want in zip(grads, expected_grads):
            assert_close(got, want, dtype)


# ---------------------------------------------------------------- GEMMs inside the kernel
# Where numpy's OpenBLAS is found (fastloss/_core/blas.py), whole-row chunks with class
# targets and rows for every thread (classification._blas_in_kernel; the small inputs here
# always) run their GEMMs inside the Numba kernel; every test above then checks that path
# against torch. These check the np.matmul path it replaces (blas.BLAS = None) against it.
needs_blas = pytest.mark.skipif(blas.BLAS is None, reason="numpy's OpenBLAS is not found: only the np.matmul path")


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"linear_bias": True, "label_smoothing": 0.1}, {"weight": True},
                                     {"reduction": "none", "chunk_rows": 5}, {"reduction": "sum", "chunk_rows": 1}])
def test_gemms_in_the_kernel_as_through_matmul(rng, monkeypatch, dtype, options):
    """The kernel's GEMMs give the numbers of np.matmul's (rounding aside: the bias's
    gradient is summed in float64 there), the path is taken, and OpenBLAS's thread count
    is back where it was after the call. ``chunk_rows``: the kernel's chunks made that
    small, in blocks of 2 rows (or 1) and 3 classes (37 rows and 53 classes: a short last
    chunk, block and class block)."""
    x, w, b = _head(rng, dtype=dtype)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], dtype)
    if "chunk_rows" in options:
        rows = options.pop("chunk_rows")
        for name, value in (("FUSED_CHUNK_BYTES", rows * w.shape[0] * x.itemsize), ("FUSED_MIN_ROWS", 1),
                            ("FUSED_ROWS", min(rows, 2)), ("FUSED_CLASSES", 3), ("FUSED_MIN_BLOCKS", 1)):
            monkeypatch.setattr(classification, name, value)
    options = {**options, "linear_bias": b if options.get("linear_bias") else None,
               "weight": rng.random(w.shape[0]).astype(dtype) if options.get("weight") else None}
    threads = blas.BLAS._get()
    calls = []
    monkeypatch.setattr(classification, "_linear_softmax_fused",
                        lambda *args, _run=classification._linear_softmax_fused: calls.append(1) or _run(*args))
    value, grads = fl.linear_cross_entropy(x, w, t, grad=True, **options)
    in_kernel = fl.linear_cross_entropy(x, w, t, **options)
    assert calls == [1, 1] and blas.BLAS._get() == threads
    monkeypatch.setattr(blas, "BLAS", None)
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, grad=True, **options)
    assert calls == [1, 1]
    np.testing.assert_array_equal(in_kernel, value)
    assert_close(value, expected, dtype)
    for got, want in zip(grads, expected_grads, strict=True):
        assert_close(got, want, dtype)


@needs_blas
def test_gemms_in_the_kernel_in_place_and_cosface(rng, monkeypatch):
    """grad_out = input (the input's gradient waits for the weight's GEMM, the last read of
    the input), and CosFace, as through np.matmul."""
    x, w, b = _head(rng)
    t = _targets(rng, "classes", x.shape[0], w.shape[0], np.float64)
    inplace = x.copy()
    value, grads = fl.linear_cross_entropy(inplace, w, t, linear_bias=b, grad=True, grad_out=inplace)
    cosface, cosface_grads = fl.large_margin_cosine_loss(x, w, t, s=8.0, grad=True)
    monkeypatch.setattr(blas, "BLAS", None)
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, grad=True)
    assert grads[0] is inplace
    for got, want in zip((value, *grads), (expected, *expected_grads), strict=True):
        assert_close(got, want, np.float64)
    expected, expected_grads = fl.large_margin_cosine_loss(x, w, t, s=8.0, grad=True)
    for got, want in zip((cosface, *cosface_grads), (expected, *expected_grads), strict=True):
        assert_close(got, want, np.float64)


def test_gemms_in_the_kernel_only_where_chunks_give_every_thread_rows(monkeypatch):
    """The path needs chunks of at least as many blocks of rows as the pool has threads,
    up to FUSED_MIN_BLOCKS (or the whole input): with 8 threads, a large vocabulary,
    whose chunks hold few rows, keeps np.matmul; with 2 it takes the path."""
    kernels, y = classification.select("linear_cross_entropy", None).kernels("classification"), np.zeros((1, 1), int)
    monkeypatch.setattr(classification, "max_threads", lambda: 8)
    floor = classification.FUSED_ROWS * classification.FUSED_MIN_BLOCKS

    def takes(n_rows, n_classes, step=1 << 30):
        rows, w = np.zeros((n_rows, 4), np.float32), np.zeros((n_classes, 4), np.float32)
        return classification._blas_in_kernel(rows, w, kernels, y, None, step)

    if blas.BLAS is None:
        assert not takes(100, 10)
        return
    assert takes(100, 10) and takes(4 * floor, 1000)  # CosFace's shape: chunks of 8388 rows
    assert not takes(4 * floor, 32768)  # chunks of 512 rows
    assert takes(300, 32768)  # the whole input in one chunk
    assert not takes(100, 10, step=5)  # an explicit chunk_size of 5 rows
    monkeypatch.setattr(classification, "max_threads", lambda: 2)
    assert takes(4 * floor, 32768)  # two blocks of 256 rows: one a thread


@needs_blas
def test_single_threaded_blas_nests_across_threads():
    """Overlapping ``single_threaded`` blocks of two Python threads: OpenBLAS stays on one
    thread until the last ends, then has its setting again."""
    import threading

    before = blas.BLAS._get()
    inside, release = threading.Event(), threading.Event()

    def other():
        with blas.BLAS.single_threaded():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with blas.BLAS.single_threaded():
        thread.start()
        inside.wait(10)
        assert blas.BLAS._get() == 1
    assert blas.BLAS._get() == 1  # the other thread's block is still open
    release.set()
    thread.join(10)
    assert blas.BLAS._get() == before


@needs_blas
def test_gemms_in_the_kernel_from_several_threads(rng):
    """Four Python threads calling linear_cross_entropy and CosFace at once, a fifth
    multiplying matrices through numpy meanwhile: every call gives the single-threaded
    numbers, the matmuls numpy's, and OpenBLAS's thread count is back at the end."""
    import threading

    x, w, b = _head(rng, n=300, v=200, dtype=np.float32)
    t = _targets(rng, "classes", x.shape[0], w.shape[0], np.float32)
    expected = fl.linear_cross_entropy(x, w, t, linear_bias=b, grad=True), fl.large_margin_cosine_loss(x, w, t)
    a, c = rng.standard_normal((200, 300)), rng.standard_normal((300, 100))
    product = a @ c
    threads_before = blas.BLAS._get()
    failures = []

    def losses():
        for _ in range(20):
            value, grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, grad=True)
            same = value == expected[0][0] and all(np.array_equal(g, e) for g, e in zip(grads, expected[0][1]))
            if not (same and fl.large_margin_cosine_loss(x, w, t) == expected[1]):
                failures.append("loss")

    def matmuls():
        for _ in range(50):
            if not np.allclose(a @ c, product, rtol=1e-12, atol=1e-12):
                failures.append("matmul")

    workers = [threading.Thread(target=losses) for _ in range(4)] + [threading.Thread(target=matmuls)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(worker.is_alive() for worker in workers)
    assert failures == [] and blas.BLAS._get() == threads_before


# ---------------------------------------------------------------- vocabulary blocks
# A budget of 8 rows x 10 classes with at least 8 rows per chunk: N = 37 and V = 53 take
# chunks of 8 rows (the last of 5) and blocks of 10 classes (the last of 3).
BLOCK_ROWS, BLOCK_WIDTH = 8, 10


@pytest.fixture
def blocks(monkeypatch):
    """Makes the default chunking take vocabulary blocks on the small test shapes; returns the budget
    for a dtype's itemsize."""
    monkeypatch.setattr(classification, "LINEAR_MIN_ROWS", BLOCK_ROWS)

    def budget(itemsize):
        monkeypatch.setattr(classification, "LINEAR_CHUNK_BYTES", BLOCK_ROWS * BLOCK_WIDTH * itemsize)
        return BLOCK_ROWS * BLOCK_WIDTH * itemsize

    return budget


def test_chunk_shape():
    """Whole rows while LINEAR_MIN_ROWS fit the budget; else that many rows and blocks of classes."""
    budget, least = classification.LINEAR_CHUNK_BYTES, classification.LINEAR_MIN_ROWS
    assert classification.linear_chunk_shape(4096, 32768, 4) == (budget // (32768 * 4), 32768)
    assert classification.linear_chunk_shape(10, 1000, 4) == (10, 1000)
    assert classification.linear_chunk_shape(4096, 1 << 20, 4) == (least, budget // (least * 4))
    assert classification.linear_chunk_shape(3, 1 << 30, 8) == (3, budget // (3 * 8))  # a row over the budget
    assert classification.linear_chunk_shape(4096, 1 << 20, 4, chunk_size=16) == (16, 1 << 20)
    assert classification.linear_chunk_shape(4096, 1 << 20, 4, chunk_size=1024) == (1024, budget // (1024 * 4))


_BLOCK_OPTIONS = {"plain": {}, "bias and weight": {"bias": True, "weighted": True},
                  "smoothing and weight": {"smoothing": 0.15, "weighted": True},
                  "smoothing and bias": {"smoothing": 0.15, "bias": True}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["classes", "ignored", "probabilities"])
@pytest.mark.parametrize("option", list(_BLOCK_OPTIONS))
def test_blocks_against_torch(rng, blocks, dtype, reduction, kind, option):
    """The vocabulary blocks equal torch (float64) and the path of whole rows, for every option."""
    chosen = _BLOCK_OPTIONS[option]
    x, w, b = _head(rng, dtype=dtype)
    t = _targets(rng, kind, x.shape[0], w.shape[0], dtype)
    weight = rng.uniform(0.3, 1.5, w.shape[0]).astype(dtype) if chosen.get("weighted") else None
    bias = b if chosen.get("bias") else None
    grad_output = 0.7 if reduction != "none" else rng.standard_normal(x.shape[0])
    options = {"reduction": reduction, "label_smoothing": chosen.get("smoothing", 0.0), "weight": weight}
    expected, expected_grads = _torch(x, w, t, bias, grad_output, **options)
    rows_value, rows_grads = fl.linear_cross_entropy(x, w, t, linear_bias=bias, **options, grad=True,
                                                     grad_output=grad_output)
    blocks(x.itemsize)
    assert classification.linear_chunk_shape(x.shape[0], w.shape[0], x.itemsize) == (BLOCK_ROWS, BLOCK_WIDTH)
    value, grads = fl.linear_cross_entropy(x, w, t, linear_bias=bias, **options, grad=True, grad_output=grad_output)
    np.testing.assert_array_equal(fl.linear_cross_entropy(x, w, t, linear_bias=bias, **options), value)  # no grad
    assert np.asarray(value).dtype == dtype and np.shape(value) == expected.shape
    assert_close(value, expected, dtype, scale=4)
    assert_close(value, rows_value, dtype)
    for got, want, rows_got in zip(grads, expected_grads, rows_grads, strict=True):
        assert got.dtype == dtype and got.shape == want.shape
        assert_close(got, want, dtype, scale=4)
        assert_close(got, rows_got, dtype)


@pytest.mark.parametrize("kind", ["classes", "probabilities"])
def test_blocks_unbatched_input(rng, blocks, kind):
    """An (H,) input is one row; a budget of 10 classes splits its 53 logits into blocks."""
    x, w, b = _head(rng, n=1)
    t = _targets(rng, kind, 1, w.shape[0], np.float64)[0]
    expected, expected_grads = _torch(x[0], w, np.asarray(t), b, 1.0, label_smoothing=0.1)
    blocks(x.itemsize)
    value, grads = fl.linear_cross_entropy(x[0], w, t, linear_bias=b, grad=True, label_smoothing=0.1)
    assert np.shape(value) == () and grads[0].shape == x[0].shape
    assert_close(value, expected, np.float64)
    for got, want in zip(grads, expected_grads, strict=True):
        assert_close(got, want, np.float64)


def test_blocks_bound_the_logits(rng, blocks, monkeypatch):
    """The blocks really run: every product that makes logits (every GEMM whose result is not
    H wide) stays within the budget, is narrower than V, and there are two per chunk and
    block with the gradient (the value pass and the gradient pass's recomputation)."""
    x, w, b = _head(rng)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], np.float64)
    budget = blocks(x.itemsize)
    matmul, logits = np.matmul, []

    def spy(a, b, out=None):
        result = matmul(a, b, out=out)
        if result.shape[-1] != x.shape[1]:
            logits.append(result.shape)
        return result

    monkeypatch.setattr(classification.np, "matmul", spy)
    fl.linear_cross_entropy(x, w, t, linear_bias=b, label_smoothing=0.1, grad=True)
    monkeypatch.setattr(classification.np, "matmul", matmul)
    chunks, blocks_per_row = -(-x.shape[0] // BLOCK_ROWS), -(-w.shape[0] // BLOCK_WIDTH)
    assert len(logits) == 2 * chunks * blocks_per_row
    assert max(r * c for r, c in logits) * x.itemsize <= budget
    assert {c for _, c in logits} == {BLOCK_WIDTH, w.shape[0] % BLOCK_WIDTH}


def _special_head(rng, dtype):
    """A head whose logits hold NaN and inf in known places: feature 0 of ``w`` is negative
    but for class 33, feature 1 negative everywhere, and the bias -inf on classes 10-19 (a
    whole block) and 41. Row 3 of ``x`` gets feature 0 = inf (+inf at class 33, -inf
    elsewhere), row 5 feature 1 = inf (every logit -inf), row 7 a NaN, row 9 feature 0 = -inf
    (+inf but at class 33)."""
    x, w, b = _head(rng, dtype=dtype)
    w[:, :2] = -np.abs(w[:, :2]) - 0.1
    w[33, 0] = 0.5
    b[10:20] = -np.inf
    b[41] = -np.inf
    x[3, 0], x[5, 1], x[7, 4], x[9, 0] = np.inf, np.inf, np.nan, -np.inf
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["ignored", "probabilities"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_blocks_nan_and_inf_as_whole_rows(rng, blocks, dtype, kind, smoothing):
    """NaN and inf logits give the blocks the numbers of whole rows: a NaN or +inf logit or
    a row of -inf makes the row NaN, a -inf logit (a whole block of them included) masks its
    class, a target on a masked class gives inf; ignored rows (every fourth, rows 0, 4 and 8
    among the special ones) give 0, with a NaN gradient where the row is NaN (rows 8
    and up hold none: row 8 is plain)."""
    x, w, b = _special_head(rng, dtype)
    t = _targets(rng, kind, x.shape[0], w.shape[0], dtype)
    if kind == "ignored":
        t[1], t[2], t[4], t[6] = 41, 15, -100, 15  # masked targets; row 4 ignored
        x[4, 1] = np.inf  # an ignored row of -inf: NaN in its gradient
    options = {"linear_bias": b, "reduction": "none", "label_smoothing": smoothing, "grad": True}
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, **options)
    with np.errstate(invalid="ignore"):
        for row in (3, 5, 7, 9):
            assert np.isnan(expected[row])
    if kind == "ignored":
        assert np.isinf(expected[1]) and np.isinf(expected[2]) and expected[4] == 0
        assert np.isnan(expected_grads[0][4]).all()
    blocks(x.itemsize)
    value, grads = fl.linear_cross_entropy(x, w, t, **options)
    assert_close(value, expected, dtype)  # NaN where the other has NaN, inf where it has inf
    for got, want in zip(grads, expected_grads, strict=True):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert_close(got, want, dtype)


def test_blocks_grad_out_may_be_the_input(rng, blocks):
    """grad_out = input: each chunk's rows are read by every block's two products, so the
    input gradient waits for the chunk's last block."""
    x, w, b = _head(rng)
    t = _targets(rng, "ignored", x.shape[0], w.shape[0], np.float64)
    blocks(x.itemsize)
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, label_smoothing=0.1, grad=True)
    inplace = x.copy()
    value, grads = fl.linear_cross_entropy(inplace, w, t, linear_bias=b, label_smoothing=0.1, grad=True,
                                           grad_out=inplace)
    assert grads[0] is inplace and value == expected
    for got, want in zip(grads, expected_grads, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosface_in_blocks_equals_whole_rows(rng, blocks, dtype):
    """large_margin_cosine_loss in vocabulary blocks: the margin reaches the target's logit in
    its block, in the value pass and in the gradient pass."""
    f, w, _ = _head(rng, dtype=dtype)
    t = _targets(rng, "classes", f.shape[0], w.shape[0], dtype)
    expected, expected_grads = fl.large_margin_cosine_loss(f, w, t, s=8.0, grad=True, grad_output=0.5)
    blocks(f.itemsize)
    value, grads = fl.large_margin_cosine_loss(f, w, t, s=8.0, grad=True, grad_output=0.5)
    assert_close(value, expected, dtype)
    for got, want in zip(grads, expected_grads, strict=True):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", ["offset", "rising", "falling"])
@pytest.mark.parametrize("kind", ["ignored", "probabilities"])
def test_blocks_far_apart_logits(rng, blocks, dtype, bias, kind):
    """The online log-sum-exp where the blocks' logits lie far apart: all near 300 (the
    smoothing sums must not cancel), rising by 80 from block to block (the running sum
    rescaled by e^-80 at each block: it underflows in float32), or falling (the later
    blocks add nothing). Against whole rows, and against torch in float64 (float32 logits
    near 400 are a few 1e-5 off whatever the path)."""
    x, w, _ = _head(rng, dtype=dtype)
    b = {"offset": np.full(w.shape[0], 300.0), "rising": np.arange(w.shape[0]) // BLOCK_WIDTH * 80.0,
         "falling": -(np.arange(w.shape[0]) // BLOCK_WIDTH) * 80.0}[bias].astype(dtype)
    t = _targets(rng, kind, x.shape[0], w.shape[0], dtype)
    options = {"reduction": "none", "label_smoothing": 0.1}
    expected, expected_grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, **options, grad=True)
    if dtype == np.float64:
        truth, truth_grads = _torch(x, w, t, b, 1.0, **options)
        assert_close(expected, truth, dtype)
        for got, want in zip(expected_grads, truth_grads, strict=True):
            assert_close(got, want, dtype)
    blocks(x.itemsize)
    value, grads = fl.linear_cross_entropy(x, w, t, linear_bias=b, **options, grad=True)
    assert_close(value, expected, dtype)
    for got, want in zip(grads, expected_grads, strict=True):
        assert_close(got, want, dtype)
