r"""Training-curve diagnosis: read the training and validation loss curves, say what is happening.

Each curve's trend is tested over a trailing window (by default the last half of the
run) with the Mann-Kendall test and sized with the Theil-Sen slope, both on **block
means**: the window is cut into consecutive blocks (10 by default) and each block is
averaged first. Oscillation with a period shorter than a block (mini-batch noise, a
cyclic learning rate, epoch effects) averages out inside the blocks, and the
autocorrelation that makes a plain Mann-Kendall test on raw points far too confident
is much weaker between block means (the approach of batch-means variance estimation).
A trend counts when it is significant (two-sided p below ``alpha``) *and* large enough
to matter: the Theil-Sen line moves by more than ``min_change`` across the window,
as a fraction of the curve's median level there (a change of -150% means the line
falls by one and a half times that level; it is not a ratio of start and end values).

Verdicts, as the API contract names them:

============================  ============================================================
``"still learning"``          training and validation loss falling: keep training
``"overfitting"``             training falling (or flat), validation flat or rising
``"data problem"``            training flat, validation falling: check the data split/labels
``"plateau"``                 both flat: lower the learning rate or the batch size
``"diverging"``               training loss rising, or either loss not finite: lower the learning rate
``"too early to tell"``       too few points for the test
============================  ============================================================

References: Mann (1945), Kendall (1975) *Rank Correlation Methods*; Sen (1968),
"Estimates of the regression coefficient based on Kendall's tau", JASA 63.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import numbers
import os
import textwrap

import numpy as np

__all__ = ["diagnose_training", "load_curve", "mann_kendall", "theil_sen", "Diagnosis", "Trend"]

VERDICTS = ("still learning", "overfitting", "data problem", "plateau", "diverging", "too early to tell")
# "{losses}" reads "both losses are" with a validation curve, "the training loss is" without one.
ADVICE = {
    "still learning": "{losses} still falling: keep training",
    "overfitting": "the validation loss stopped improving while the training loss falls: stop early, "
                   "regularise or get more data",
    "data problem": "validation improves while training does not: check the split, the labels and the "
                    "training-set augmentation",
    "plateau": "{losses} flat: lower the learning rate or the batch size",
    "diverging": "the loss is rising or not finite: lower the learning rate, check for exploding gradients",
    "too early to tell": "too few points for a trend test: train longer",
}


# --------------------------------------------------------------------------- statistics

def mann_kendall(values):
    """Mann-Kendall trend test: ``(S, z, p)`` with the tie-corrected variance and the
    continuity correction; ``p`` is two-sided (normal approximation)."""
    y = np.asarray(values, np.float64)
    n = y.size
    s = float(np.sign(y[None, :] - y[:, None])[np.triu_indices(n, 1)].sum())
    _, counts = np.unique(y, return_counts=True)
    variance = (n * (n - 1) * (2 * n + 5) - np.sum(counts * (counts - 1) * (2 * counts + 5))) / 18.0
    if variance <= 0:
        return s, 0.0, 1.0
    z = (s - np.sign(s)) / math.sqrt(variance)
    return s, z, math.erfc(abs(z) / math.sqrt(2.0))


def theil_sen(x, y):
    """Theil-Sen slope: the median of the pairwise slopes, and its intercept (median residual)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    i, j = np.triu_indices(x.size, 1)
    keep = x[j] != x[i]
    slope = float(np.median((y[j] - y[i])[keep] / (x[j] - x[i])[keep])) if keep.any() else 0.0
    return slope, float(np.median(y - slope * x))


@dataclasses.dataclass
class Trend:
    """A curve's trend over its trailing window: ``direction`` ("falling", "flat",
    "rising", or "not finite" when the window holds NaN or inf, the other fields then
    NaN), the Theil-Sen ``slope`` per step, ``change`` (the line's rise across the window
    as a fraction of ``level``, the window's median absolute loss), Mann-Kendall ``z``
    and ``p_value`` on ``blocks`` block means, the ``window`` (first, last step) and
    ``last`` (the last block's mean)."""

    direction: str
    slope: float
    change: float
    z: float
    p_value: float
    blocks: int
    window: tuple
    last: float
    level: float

    def describe(self, name):
        steps = f"steps {self.window[0]:g}-{self.window[1]:g}"
        if self.direction == "not finite":
            return f"{name} not finite: NaN or inf among the losses of {steps}"
        return (f"{name} {self.direction}: Theil-Sen slope {self.slope:.3g}/step, moving {self.change:+.1%} of "
                f"the median loss {self.level:.3g} over {steps}; Mann-Kendall on {self.blocks} block means "
                f"z={self.z:+.2f}, p={self.p_value:.2g}")


def trend(steps, losses, window=0.5, blocks=10, alpha=0.05, min_change=0.02):
    """The :class:`Trend` of one curve over its trailing ``window`` (a fraction of the
    points if below 1, else a number of points)."""
    steps, losses = np.asarray(steps, np.float64), np.asarray(losses, np.float64)
    size = int(round(window * steps.size)) if window < 1 else int(window)
    size = max(2, min(steps.size, size))
    s, y = steps[-size:], losses[-size:]
    if not np.isfinite(y).all():
        nan = math.nan
        return Trend("not finite", nan, nan, nan, nan, 0, (float(s[0]), float(s[-1])), nan, nan)
    n_blocks = max(2, min(blocks, size // 2))
    edges = np.linspace(0, size, n_blocks + 1).round().astype(int)
    bx = np.array([s[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    by = np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    _, z, p = mann_kendall(by)
    slope, _ = theil_sen(bx, by)
    level = float(np.median(np.abs(y))) or 1.0
    change = slope * (s[-1] - s[0]) / level
    direction = "flat"
    if p < alpha and abs(change) >= min_change:
        direction = "falling" if slope < 0 else "rising"
    return Trend(direction, slope, change, z, p, n_blocks, (float(s[0]), float(s[-1])), float(by[-1]), level)


# --------------------------------------------------------------------------- curves

def load_curve(curve):
    """``(steps, losses)`` float64 arrays from a curve: an array of losses, an (n, 2)
    array of (step, loss), a ``(steps, losses)`` pair, or a path to a CSV file (columns
    ``step`` and ``loss``, or a single column of losses; a header row is optional) or a
    JSON file (a list of losses, a list of ``{"step", "loss"}`` records, or
    ``{"step": [...], "loss": [...]}``)."""
    if isinstance(curve, (str, os.PathLike)):
        return _load_file(os.fspath(curve))
    if isinstance(curve, tuple) and len(curve) == 2:
        steps, losses = (np.asarray(a, np.float64) for a in curve)
    else:
        array = np.asarray(curve, np.float64)
        if array.ndim == 2 and array.shape[1] == 2:
            steps, losses = array[:, 0], array[:, 1]
        elif array.ndim == 1:
            steps, losses = np.arange(array.size, dtype=np.float64), array
        else:
            raise ValueError(f"a loss curve is a 1-D array of losses or an (n, 2) array of (step, loss); "
                             f"got shape {array.shape}")
    if steps.shape != losses.shape or steps.ndim != 1:
        raise ValueError(f"steps and losses differ in shape: {steps.shape} and {losses.shape}")
    order = np.argsort(steps, kind="stable")
    return steps[order], losses[order]


def _load_file(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, newline="") as f:
        text = f.read()
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error})") from None
        if isinstance(data, dict):
            data = (data.get("step", range(len(data["loss"]))), data["loss"]) if "loss" in data else None
        elif isinstance(data, list) and data and isinstance(data[0], dict):
            if not all(isinstance(r, dict) and "loss" in r for r in data):
                raise ValueError(f"{path}: every record needs a 'loss'")
            data = ([r.get("step", i) for i, r in enumerate(data)], [r["loss"] for r in data])
        if data is None:
            raise ValueError(f"{path}: expected a list of losses, records with 'step' and 'loss', "
                             f"or {{'step': [...], 'loss': [...]}}")
        return load_curve(data if isinstance(data, tuple) else list(data))
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path} holds no curve")
    header = [c.strip().lower() for c in rows[0]]
    if any(_not_number(c) for c in header):
        rows = rows[1:]
        if not rows:
            raise ValueError(f"{path} has a header ({','.join(header)}) and no rows")
        loss_col = header.index("loss") if "loss" in header else len(header) - 1
        step_col = header.index("step") if "step" in header else (0 if len(header) > 1 else None)
    else:
        loss_col, step_col = len(header) - 1, (0 if len(header) > 1 else None)
    try:
        losses = [float(r[loss_col]) for r in rows]
        steps = [float(r[step_col]) for r in rows] if step_col is not None else list(range(len(rows)))
    except (ValueError, IndexError):
        raise ValueError(f"{path}: expected numeric columns step,loss") from None
    return load_curve((steps, losses))


def _not_number(text):
    try:
        float(text)
        return False
    except ValueError:
        return True


def smooth(losses, span=None):
    """Exponential moving average (bias-corrected); ``span`` defaults to 5% of the curve."""
    y = np.asarray(losses, np.float64)
    span = span or max(1, y.size // 20)
    beta = 1 - 2 / (span + 1)
    out, acc = np.empty_like(y), 0.0
    for i, v in enumerate(y):
        acc = beta * acc + (1 - beta) * v
        out[i] = acc / (1 - beta ** (i + 1))
    return out


# --------------------------------------------------------------------------- verdict

@dataclasses.dataclass
class Diagnosis:
    """The verdict (one of :data:`VERDICTS`), the advice, the evidence (one line per
    curve), each curve's :class:`Trend`, and the curves themselves (for plotting)."""

    verdict: str
    advice: str
    evidence: list
    train: Trend | None
    val: Trend | None
    curves: dict = dataclasses.field(repr=False, default_factory=dict)

    def as_dict(self):
        """The diagnosis as JSON-ready values (NaN, the fields of a non-finite curve's trend, as None)."""
        def trend_dict(t):
            return None if t is None else {k: None if isinstance(v, float) and math.isnan(v) else v
                                           for k, v in dataclasses.asdict(t).items()}

        return {"verdict": self.verdict, "advice": self.advice, "evidence": self.evidence,
                "train": trend_dict(self.train), "val": trend_dict(self.val)}

    def report(self):
        return "\n".join([f"verdict: {self.verdict} ({self.advice})"] + [f"  {e}" for e in self.evidence])


def _verdict(train, val):
    # A rising training loss (with a rising validation loss, or alone), or a loss gone NaN or inf: the optimiser
    # diverges.
    if train.direction in ("rising", "not finite") or (val is not None and val.direction == "not finite"):
        return "diverging"
    if val is None:
        return {"falling": "still learning", "flat": "plateau"}[train.direction]
    table = {("falling", "falling"): "still learning", ("falling", "flat"): "overfitting",
             ("falling", "rising"): "overfitting", ("flat", "falling"): "data problem",
             ("flat", "flat"): "plateau", ("flat", "rising"): "overfitting"}
    return table[train.direction, val.direction]


def diagnose_training(train_loss, val_loss=None, *, window=0.5, blocks=10, alpha=0.05, min_change=0.02,
                      min_points=20):
    """Diagnose a run from its training (and validation) loss curves.

    Parameters
    ----------
    train_loss, val_loss : curve
        An array of losses, an (n, 2) array of (step, loss), or a CSV / JSON file path
        (see :func:`load_curve`). ``val_loss`` is optional.
    window : float or int
        Trailing window of the trend test: a fraction of the points in (0, 1), or a
        whole number of points (at least 2).
    blocks : int
        Block means per window for the tests (robustness to oscillation); at least 2.
    alpha : float
        Two-sided significance level of the Mann-Kendall test, in (0, 1).
    min_change : float
        Smallest change of the trend line across the window, as a fraction of the
        curve's median level there, that counts as a trend (finite, >= 0).
    min_points : int
        Fewer points than this in a curve gives "too early to tell"; at least 2.

    Returns
    -------
    Diagnosis
        ``.verdict`` is one of "still learning", "overfitting", "data problem",
        "plateau", "diverging", "too early to tell"; ``.evidence`` gives each curve's
        trend with its Theil-Sen slope and Mann-Kendall significance.

    Raises
    ------
    ValueError
        An option out of its range (named in the message), an empty curve, or a curve
        with no finite loss.
    """
    _check_options(window, blocks, alpha, min_change, min_points)
    curves = {"train": _curve("train_loss", train_loss)}
    if val_loss is not None:
        curves["val"] = _curve("val_loss", val_loss)
    advice = {v: a.format(losses="both losses are" if val_loss is not None else "the training loss is")
              for v, a in ADVICE.items()}
    short = [f"{name}: {s.size} points (fewer than {min_points})" for name, (s, _) in curves.items()
             if s.size < min_points]
    if short:
        return Diagnosis("too early to tell", advice["too early to tell"], short, None, None, curves)
    trends = {name: trend(s, y, window, blocks, alpha, min_change) for name, (s, y) in curves.items()}
    verdict = _verdict(trends["train"], trends.get("val"))
    evidence = [t.describe(name) for name, t in trends.items()]
    return Diagnosis(verdict, advice[verdict], evidence, trends["train"], trends.get("val"), curves)


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _check_options(window, blocks, alpha, min_change, min_points):
    w = _real("window", window)
    if not (0 < w < 1 or (w >= 2 and w.is_integer())):  # NaN and inf fail both
        raise ValueError(f"window must be a fraction of the points in (0, 1) or a whole number of points >= 2, "
                         f"got {window!r}")
    for name, value in (("blocks", blocks), ("min_points", min_points)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
        if value < 2:
            raise ValueError(f"{name} must be at least 2, got {value!r}")
    if not 0 < _real("alpha", alpha) < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0 <= _real("min_change", min_change) < math.inf:
        raise ValueError(f"min_change must be finite and >= 0, got {min_change!r}")


def _curve(name, curve):
    """:func:`load_curve`, refusing a curve with no point, a non-finite step or no finite loss."""
    steps, losses = load_curve(curve)
    label = f"{name} ({os.fspath(curve)})" if isinstance(curve, (str, os.PathLike)) else name
    if steps.size == 0:
        raise ValueError(f"{label} is empty: a curve needs points")
    if not np.isfinite(steps).all():
        raise ValueError(f"{label}: every step must be finite")
    if not np.isfinite(losses).any():
        raise ValueError(f"{label} holds no finite loss: all {losses.size} are NaN or inf")
    return steps, losses


def plot_diagnosis(diagnosis, path):
    """Both curves (raw and smoothed), the trend windows and lines, and the verdict, to ``path``."""
    fig = _figure(diagnosis)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _figure(diagnosis):
    """The matplotlib figure :func:`plot_diagnosis` saves."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastloss[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (name, (steps, losses)), color in zip(diagnosis.curves.items(), ("C0", "C1")):
        ax.plot(steps, losses, color=color, alpha=0.25, lw=0.8)
        ax.plot(steps, smooth(losses), color=color, lw=1.8, label=f"{name} (smoothed)")
        t = getattr(diagnosis, name)
        if t is not None and np.isfinite(t.slope):
            xs = np.array(t.window)
            ax.plot(xs, t.last + t.slope * (xs - xs[1]), color=color, ls="--", lw=1.2,
                    label=f"{name} trend: {t.direction} (p={t.p_value:.2g})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(textwrap.fill(f"{diagnosis.verdict}: {diagnosis.advice}", 90), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
