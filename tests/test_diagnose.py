"""Training-curve diagnosis: synthetic noisy curves of every verdict, and a real run
(softmax regression on scikit-learn's digits, trained with fastloss.cross_entropy's gradients)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss as fl
from fastloss.diagnose import diagnose_training, mann_kendall, theil_sen


def noisy(rng, level, n=400, oscillation=0.0):
    """A curve ``level(step)`` with autocorrelated (AR(1)) noise and an optional oscillation
    (period 25 steps) that a test on raw points would mistake for trend evidence."""
    steps = np.arange(n, dtype=float)
    noise = np.zeros(n)
    e = rng.normal(0, 0.02, n)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + e[i]
    return level(steps) + noise + oscillation * np.sin(2 * np.pi * steps / 25)


FALL = lambda s: 2.0 * np.exp(-s / 300) + 0.3  # noqa: E731
FLAT = lambda s: 0.8 + 0 * s  # noqa: E731
RISE = lambda s: 0.5 + s / 200  # noqa: E731
U = lambda s: 0.6 + ((s - 150) / 300) ** 2  # noqa: E731  (validation: minimum early, then rising)


@pytest.mark.parametrize("train,val,verdict", [
    (FALL, FALL, "still learning"),
    (FALL, U, "overfitting"),
    (FALL, FLAT, "overfitting"),
    (FLAT, FALL, "data problem"),
    (FLAT, FLAT, "plateau"),
    (RISE, RISE, "diverging"),
])
@pytest.mark.parametrize("oscillation", [0.0, 0.15])
def test_synthetic_verdicts(train, val, verdict, oscillation):
    rng = np.random.default_rng(7)
    d = diagnose_training(noisy(rng, train, oscillation=oscillation), noisy(rng, val, oscillation=oscillation))
    assert d.verdict == verdict, d.report()
    assert len(d.evidence) == 2 and "Mann-Kendall" in d.evidence[0]


def test_too_early_non_finite_and_train_only():
    rng = np.random.default_rng(3)
    assert diagnose_training(np.linspace(2, 1, 10), np.linspace(2, 1, 10)).verdict == "too early to tell"
    exploded = noisy(rng, FALL)
    exploded[-5:] = np.nan
    assert diagnose_training(exploded).verdict == "diverging"
    assert diagnose_training(noisy(rng, FALL)).verdict == "still learning"
    assert diagnose_training(noisy(rng, FLAT)).verdict == "plateau"


@pytest.mark.parametrize("at", [-1, -150])
def test_a_validation_loss_gone_non_finite_is_divergence(rng, at):
    """A validation loss that turns NaN or inf while training falls is divergence (it read as a rising
    validation curve, "overfitting"); the JSON form holds null, not NaN, for that curve's statistics."""
    val = noisy(rng, FALL)
    val[at:] = rng.choice([np.nan, np.inf])
    d = diagnose_training(noisy(rng, FALL), val)
    assert d.verdict == "diverging", d.report()
    assert d.val.direction == "not finite" and "val not finite" in d.evidence[1]
    as_json = json.dumps(d.as_dict(), allow_nan=False)
    assert json.loads(as_json)["val"]["slope"] is None


def test_advice_names_the_curves_given(rng):
    """Without a validation curve the advice speaks of the training loss alone, not of "both losses"."""
    for level, verdict in ((FALL, "still learning"), (FLAT, "plateau")):
        train = noisy(rng, level)
        alone, with_val = diagnose_training(train), diagnose_training(train, noisy(rng, level))
        assert alone.verdict == with_val.verdict == verdict
        assert "both" not in alone.report() and alone.advice.startswith("the training loss is")
        assert with_val.advice.startswith("both losses are")


def test_the_printed_change_says_what_it_is_relative_to(rng):
    """The change is the Theil-Sen line's rise across the window over the window's median absolute
    loss, which can pass -100% (a line falling more than its median level): the text names that level.
    Expected numbers: the slope from theil_sen on the block means, the level from np.median here."""
    steps = np.arange(400.0)
    losses = 3.0 * np.exp(-steps / 60) + 0.05 + rng.normal(0, 1e-3, 400)
    d = diagnose_training(losses)
    t = d.train
    level = np.median(np.abs(losses[200:]))
    assert t.level == pytest.approx(level) and t.change == pytest.approx(t.slope * 199 / level)
    assert t.change < -1  # the case the wording is for: the line falls by more than the median level
    assert f"{t.change:+.1%} of the median loss {level:.3g} over steps 200-399" in d.evidence[0]


@pytest.mark.parametrize("option,value,error", [
    ("window", 0, ValueError), ("window", -1, ValueError), ("window", 1, ValueError), ("window", 2.5, ValueError),
    ("window", float("nan"), ValueError), ("window", float("inf"), ValueError), ("window", "0.5", TypeError),
    ("alpha", 2, ValueError), ("alpha", float("nan"), ValueError), ("alpha", 0, ValueError),
    ("alpha", 1, ValueError), ("blocks", 0, ValueError), ("blocks", 1, ValueError), ("blocks", 2.0, TypeError),
    ("min_points", 0, ValueError), ("min_points", 1, ValueError), ("min_points", True, TypeError),
    ("min_change", -0.1, ValueError), ("min_change", float("nan"), ValueError),
])
def test_options_out_of_range_are_refused(rng, option, value, error):
    with pytest.raises(error, match=option):
        diagnose_training(noisy(rng, FALL), **{option: value})


def test_window_bounds_that_are_valid(rng):
    """The edges of the valid ranges compute: the smallest count window, whole-number floats, few blocks."""
    curve = noisy(rng, FALL)
    assert diagnose_training(curve, window=2).train.window == (398, 399)
    assert diagnose_training(curve, window=100.0).train.window == (300, 399)
    assert diagnose_training(curve, blocks=2, min_points=2, alpha=0.999).train.blocks == 2


def test_curves_without_usable_points_are_errors(tmp_path):
    """A curve with no points or no finite loss is an error naming it, not a verdict."""
    with pytest.raises(ValueError, match="train_loss is empty"):
        diagnose_training([])
    with pytest.raises(ValueError, match="val_loss holds no finite loss: all 30 are NaN"):
        diagnose_training(np.linspace(2, 1, 30), np.full(30, np.nan))
    with pytest.raises(ValueError, match="every step must be finite"):
        diagnose_training((np.r_[0.0, np.nan, 2.0], np.ones(3)))
    (tmp_path / "empty.csv").write_text("step,loss\n")
    with pytest.raises(ValueError, match="empty.csv has a header \\(step,loss\\) and no rows"):
        diagnose_training(str(tmp_path / "empty.csv"))
    (tmp_path / "no_loss.json").write_text(json.dumps([{"step": 1, "loss": 2.0}, {"step": 2}]))
    with pytest.raises(ValueError, match="every record needs a 'loss'"):
        diagnose_training(str(tmp_path / "no_loss.json"))


@pytest.mark.parametrize("args,message", [
    (["--window", "0"], "window must be"), (["--window", "-1"], "window must be"),
    (["--alpha", "2"], "alpha must be"), (["--alpha", "nan"], "alpha must be"),
    (["--window", "x"], "argument --window: invalid float value"),
])
def test_cli_refuses_bad_options_in_one_line(tmp_path, args, message):
    (tmp_path / "train.csv").write_text("".join(f"{i},{2 - i / 100}\n" for i in range(50)))
    out = _diagnose_cli(tmp_path, ["train.csv"] + args)
    assert out.returncode != 0 and len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr
    assert out.stdout == ""


def test_cli_on_curves_without_usable_points(tmp_path):
    (tmp_path / "empty.csv").write_text("step,loss\n")
    (tmp_path / "nan.csv").write_text("".join(f"{i},nan\n" for i in range(50)))
    for name, message in (("empty.csv", "empty.csv has a header (step,loss) and no rows"),
                          ("nan.csv", "holds no finite loss")):
        out = _diagnose_cli(tmp_path, [name])
        assert out.returncode == 1 and len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr
        assert out.stdout == ""


def _diagnose_cli(cwd, args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    return subprocess.run([sys.executable, "-m", "fastloss.cli", "diagnose"] + args, capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": root})


def test_statistics_against_scipy_formulas():
    # Mann-Kendall: S of a strictly increasing series of n points is n(n-1)/2; var n(n-1)(2n+5)/18.
    s, z, p = mann_kendall(np.arange(10.0))
    assert s == 45 and z == pytest.approx(44 / np.sqrt(10 * 9 * 25 / 18)) and p < 1e-3
    # Theil-Sen on an exact line with one outlier keeps the line's slope (median of pairwise slopes).
    y = 3 * np.arange(9.0) + 1
    y[4] = 100
    assert theil_sen(np.arange(9.0), y)[0] == 3


def test_curve_files_and_cli(tmp_path):
    rng = np.random.default_rng(1)
    train, val = noisy(rng, FALL), noisy(rng, U)
    with open(tmp_path / "train.csv", "w") as f:
        f.write("step,loss\n" + "".join(f"{i * 10},{v}\n" for i, v in enumerate(train)))
    (tmp_path / "val.json").write_text(json.dumps([{"step": i * 10, "loss": v} for i, v in enumerate(val)]))
    d = diagnose_training(str(tmp_path / "train.csv"), str(tmp_path / "val.json"))
    assert d.verdict == "overfitting" and d.train.window[1] == 3990
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    cmd = [sys.executable, "-m", "fastloss.cli", "diagnose", "train.csv", "val.json", "--json"]
    if _has_matplotlib():
        cmd += ["--plot", "curves.png"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verdict"] == "overfitting"
    if _has_matplotlib():
        assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
        assert out.stderr.splitlines() == ["fastloss diagnose: plot written to curves.png"]
    bad = subprocess.run([sys.executable, "-m", "fastloss.cli", "diagnose", "missing.csv"], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert bad.returncode == 1 and bad.stderr.strip() == "fastloss diagnose: error: no such file: missing.csv"


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def train_softmax_regression(steps, lr, n_train=150):
    """Full-batch gradient descent on digits; gradients from fastloss.cross_entropy(grad=True)."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    x = x / 16.0
    order = np.random.default_rng(0).permutation(len(y))
    train, val = order[:n_train], order[1000:1500]
    w, b = np.zeros((64, 10)), np.zeros(10)
    train_curve, val_curve = [], []
    for _ in range(steps):
        loss, g = fl.cross_entropy(x[train] @ w + b, y[train], grad=True)
        w -= lr * x[train].T @ g
        b -= lr * g.sum(0)
        train_curve.append(float(loss))
        val_curve.append(float(fl.cross_entropy(x[val] @ w + b, y[val])))
    return np.array(train_curve), np.array(val_curve)


def test_real_run_on_digits():
    # Long run on 150 training images: the training loss keeps falling toward 0 while the
    # validation loss passes its minimum and rises (the weights grow on separable data).
    train, val = train_softmax_regression(3000, 2.0)
    assert val.argmin() < 1500 < len(val)  # the run really overfits (validation minimum early)
    assert diagnose_training(train, val).verdict == "overfitting"
    # Short run with a small step: both curves still falling.
    train, val = train_softmax_regression(60, 0.05)
    assert diagnose_training(train, val).verdict == "still learning"


def test_bench_plot(tmp_path):
    """fastloss bench --plot: one line per implementation, a figure of ordinary proportions, and a line
    on stderr saying where it went (stdout stays the JSON). matplotlib optional."""
    if not _has_matplotlib():
        pytest.skip("matplotlib not installed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    out = subprocess.run([sys.executable, "-m", "fastloss.cli", "bench", "--rows", "512", "--classes", "8",
                          "--repeat", "2", "--loss", "focal_loss", "--loss", "cross_entropy", "--impl", "numpy",
                          "--no-progress", "--json", "--plot", "tp.png"], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3
    assert out.stderr.splitlines() == ["fastloss bench: plot written to tp.png"]
    png = (tmp_path / "tp.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # the IHDR chunk
    assert 600 <= width <= 1600 and 400 <= height <= 1400 and 0.5 <= width / height <= 2, (width, height)


def test_diagnose_plot_wraps_the_verdict():
    """The verdict and its advice are wrapped into the figure's title, which lies inside the figure
    (it was one line clipped at both edges)."""
    if not _has_matplotlib():
        pytest.skip("matplotlib not installed")
    import matplotlib.pyplot as plt

    from fastloss.diagnose import _figure

    rng = np.random.default_rng(5)
    d = diagnose_training(noisy(rng, FALL), noisy(rng, U))
    fig = _figure(d)
    try:
        fig.canvas.draw()
        title = fig.axes[0].title
        assert title.get_text().replace("\n", " ") == f"{d.verdict}: {d.advice}" and "\n" in title.get_text()
        box, page = title.get_window_extent(), fig.bbox
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, (box, page)
    finally:
        plt.close(fig)
