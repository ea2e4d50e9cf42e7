"""``fastloss eval`` and fastloss.streaming: chunked evaluation equals the in-memory call.

The oracle everywhere is the in-memory fastloss call on the whole arrays (itself tested
against torch in test_classification.py); per-sample losses must be identical, the
reductions equal to float64 rounding.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss as fl
from fastloss import streaming
from fastloss._core import batch
from fastloss._core.reduction import Parts, in_parts
from fastloss._core.table import LOSSES

DECOMPOSABLE = [entry.name for entry in LOSSES if entry.decomposable]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "fastloss.cli", "eval", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


@pytest.fixture
def files(tmp_path, rng):
    x = rng.standard_normal((503, 7)).astype(np.float32)
    t = rng.integers(0, 7, 503)
    t[::9] = -100
    w = rng.random(7) + 0.1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    np.save(tmp_path / "w.npy", w)
    np.savez_compressed(tmp_path / "d.npz", x=x, t=t)
    return tmp_path, x, t, w


@pytest.mark.parametrize("chunk_rows", [1, 64, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_weighted_cross_entropy_equals_in_memory(files, chunk_rows, reduction):
    path, x, t, w = files
    arrays = {"input": streaming.open_array(str(path / "x.npy")), "target": streaming.open_array(str(path / "t.npy"))}
    options = {"weight": w, "label_smoothing": 0.1}
    result = streaming.evaluate("cross_entropy", arrays, options, reduction, chunk_rows,
                                per_sample=str(path / "ps.npy"))
    expected = fl.cross_entropy(x, t, w, label_smoothing=0.1, reduction=reduction)
    assert result.value.dtype == expected.dtype
    np.testing.assert_allclose(result.value, expected, rtol=2e-7)
    np.testing.assert_array_equal(np.load(path / "ps.npy"),
                                  fl.cross_entropy(x, t, w, label_smoothing=0.1, reduction="none"))
    # torch's weighted-mean denominator: sum of w[t] over the kept targets
    if reduction == "mean":
        np.testing.assert_allclose(result.denominator, w.astype(np.float32)[t[t != -100]].sum(dtype=np.float64), rtol=1e-12)


@pytest.mark.parametrize("name,make", [
    ("nll_loss", lambda r: (r.standard_normal((300, 5)), r.integers(0, 5, 300))),
    ("focal_loss", lambda r: (r.standard_normal((300, 4, 3)), r.integers(0, 4, (300, 3)))),
    ("kl_div", lambda r: (r.standard_normal((300, 6)), r.random((300, 6)))),
    ("binary_cross_entropy_with_logits", lambda r: (r.standard_normal((300, 6)), r.random((300, 6)))),
])
def test_every_loss_through_the_same_path(name, make, rng):
    """float64, class-dimension inputs, kl_div's batchmean, per-element weights: no per-loss code."""
    x, y = make(rng)
    fn = getattr(fl, name)
    options = {}
    reductions = ["mean", "sum"] + (["batchmean"] if name == "kl_div" else [])
    if name == "binary_cross_entropy_with_logits":
        options = {"weight": rng.random((300, 6)), "pos_weight": rng.random(6) + 0.5}  # sliced / shared
    for reduction in reductions:
        result = streaming.evaluate(name, {"input": x, "target": y}, options, reduction, chunk_rows=37)
        np.testing.assert_allclose(result.value, fn(x, y, reduction=reduction, **options), rtol=1e-12)


def _calls(entry, rng, dtype):
    """The loss's example call and its variants, in ``dtype``."""
    for make in (entry.example, *entry.variants):
        yield entry.call(rng, dtype, make)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", DECOMPOSABLE)
def test_every_loss_gives_its_own_parts(name, dtype, rng):
    """In parts, a reduced call returns the numerator and the denominator that make its own
    value (the same bits once divided), its unreduced losses (the same bits as
    reduction="none"), and, given the whole batch's denominator, the gradient scaled by it."""
    entry = LOSSES[name]
    fn = entry.function
    for args, options in _calls(entry, rng, dtype):
        unreduced = fn(*args, **options, reduction="none")
        for reduction in entry.reductions[1:]:
            with in_parts():
                parts = fn(*args, **options, reduction=reduction)
            assert isinstance(parts, Parts)
            np.testing.assert_array_equal(parts.losses, unreduced, strict=True)
            value, grads = fn(*args, **options, reduction=reduction, grad=True, grad_output=1.5)
            assert batch.combine(reduction, parts.numerator, parts.denominator, np.dtype(dtype)).tobytes() == \
                np.asarray(value).tobytes()
            if reduction == "sum":
                assert parts.denominator == 0
                continue
            for factor in (1, 4):  # a chunk of a batch whose denominator is ``factor`` times the chunk's
                with in_parts(parts.denominator * factor):
                    _, chunk_grads = fn(*args, **options, reduction=reduction, grad=True, grad_output=1.5)
                for whole, chunk in zip(*(g if isinstance(g, tuple) else (g,) for g in (grads, chunk_grads))):
                    if factor == 1:
                        np.testing.assert_array_equal(chunk, whole)
                    else:  # exactly a quarter, but for where rounding depends on the scale
                        np.testing.assert_allclose(chunk, whole / factor, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("name", DECOMPOSABLE)
def test_every_loss_streams_as_in_memory(name, rng, tmp_path):
    """Two-row chunks of each loss's example calls: per-sample losses identical, every reduction
    equal to float64 rounding."""
    entry = LOSSES[name]
    per_sample = str(tmp_path / "losses.npy")
    for args, options in _calls(entry, rng, np.float64):
        arrays = dict(zip(entry.data, args))
        for reduction in entry.reductions:
            result = streaming.evaluate(name, arrays, options, reduction, chunk_rows=2, per_sample=per_sample)
            np.testing.assert_array_equal(np.load(per_sample), entry.function(*args, **options, reduction="none"))
            if reduction != "none":
                np.testing.assert_allclose(result.value, entry.function(*args, **options, reduction=reduction),
                                           rtol=1e-13)


def test_npz_and_parquet_sources(files):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path, x, t, w = files
    pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 7), "label": t}),
                   path / "d.parquet", row_group_size=100)
    pq.write_table(pa.table({f"c{i}": x[:, i] for i in range(7)}), path / "cols.parquet", row_group_size=64)
    expected = fl.cross_entropy(x, t, w)
    for pred, target in [("d.npz:x", "d.npz:t"), ("d.parquet:logits", "d.parquet:label"), ("cols.parquet", "t.npy")]:
        arrays = {"input": streaming.open_array(str(path / pred)), "target": streaming.open_array(str(path / target))}
        result = streaming.evaluate("cross_entropy", arrays, {"weight": w}, "mean", chunk_rows=45)
        np.testing.assert_allclose(result.value, expected, rtol=2e-7, err_msg=pred)


def test_cli_eval_text_json_and_per_sample(files):
    path, x, t, w = files
    out = run_cli("cross_entropy", "--input", "x.npy", "--target", "d.npz:t", "--weight", "w.npy",
                  "--ignore-index", "-100", "--label-smoothing", "0.05", "--chunk-rows", "50", "--json",
                  "--per-sample", "losses.npy", cwd=path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no progress bar when stderr is not a terminal
    result = json.loads(out.stdout)
    np.testing.assert_allclose(result["value"], fl.cross_entropy(x, t, w, label_smoothing=0.05), rtol=2e-7)
    assert result["rows"] == 503
    np.testing.assert_array_equal(np.load(path / "losses.npy"),
                                  fl.cross_entropy(x, t, w, label_smoothing=0.05, reduction="none"))
    text = run_cli("focal_loss", "--input", "x.npy", "--target", "t.npy", "--gamma", "1.5", "--reduction", "sum",
                   cwd=path)
    assert text.returncode == 0 and text.stdout.startswith("focal_loss (sum over 503 rows, float32): ")
    np.testing.assert_allclose(float(text.stdout.rsplit(":", 1)[1]), fl.focal_loss(x, t, gamma=1.5, reduction="sum"),
                               rtol=1e-6)


@pytest.mark.parametrize("args,message", [
    (["cross_entropy", "--input", "missing.npy", "--target", "t.npy"], "no such file: missing.npy"),
    (["cross_entropy", "--input", "x.npy", "--target", "short.npy"], "the batch sizes differ"),
    (["cross_entropy", "--input", "t.npy", "--target", "t.npy"], "must be a floating-point array"),
    (["cross_entropy", "--input", "x.npy", "--target", "tf.npy"], "target has shape"),
    (["no_such_loss", "--input", "x.npy"], "unknown loss 'no_such_loss'"),
    (["cross_entropy", "--input", "x.npy", "--target", "t.npy", "--gamma", "2"], "has no option --gamma"),
    (["cross_entropy", "--input", "x.npy", "--target", "t.npy", "--reduction", "batchmean"], "reduction must be"),
    (["cross_entropy", "--input", "x.npy", "--target", "bad.npy"], "is not a .npy array"),
    (["cross_entropy", "--input", "d.npz", "--target", "t.npy"], "holds 2 arrays"),
    (["cross_entropy", "--input", "x.npy", "--target", "t.npy", "--ignore-index", "x"], "expects an integer"),
    (["cross_entropy", "--input", "x.npy", "--target", "t.npy", "--label-smoothing", "2"], "label_smoothing"),
])
def test_cli_bad_input_one_line_and_no_output_left(files, args, message):
    path, x, t, w = files
    np.save(path / "short.npy", t[:-1])
    np.save(path / "tf.npy", t.astype(np.float32))  # float targets are probabilities: shaped like the input
    (path / "bad.npy").write_bytes(b"not an array")
    out = run_cli(*args, "--per-sample", "out.npy", cwd=path)
    assert out.returncode == 1
    assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert not [p for p in os.listdir(path) if p.startswith("out.npy")]


def test_failure_midway_leaves_no_partial_file(files):
    """A bad class index in the last chunk: the error comes after chunks were written."""
    path, x, t, w = files
    bad = t.copy()
    bad[-1] = 99
    with pytest.raises(ValueError, match="class index 99"):
        streaming.evaluate("cross_entropy", {"input": x, "target": bad}, None, "mean", chunk_rows=100,
                           per_sample=str(path / "out.npy"))
    assert not [p for p in os.listdir(path) if p.startswith("out.npy")]


def test_unknown_argument_one_line(files):
    out = run_cli("cross_entropy", "--input", "x.npy", "--bogus", "3", cwd=files[0])
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr
    assert out.stderr.count("\n") == 1
