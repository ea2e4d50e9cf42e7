r"""The one table of fastloss's losses: every fact about a loss that is not its math.

Each :class:`Loss` entry says where the loss lives (its family module), which of its
arguments are differentiable, how its batch splits and how its reduction is built
from per-chunk parts, which backends have its kernels, a small valid example call and
the reference its tests take as the truth. Everything else is derived from here: the
package's exports and criterion classes (:meth:`Table.export`), the type stubs
(:mod:`fastloss._core.stubs`), :mod:`fastloss.torch`, :mod:`fastloss.dask`, streaming's
chunk algebra (:mod:`fastloss._core.batch`), warm-up, the backends' coverage, and the test and
benchmark case lists.

To add a loss: write its function (and kernels) in its family module, and add its entry
here. The function is found by name in ``fastloss.<family>``.

How a reduction is formed is not here: each loss's wrapper forms it once, and the
chunked paths take its parts from there (:func:`fastloss._core.reduction.in_parts`).
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any, Callable, Iterator

import numpy as np

PLUMBING = ("grad", "grad_output", "grad_out")


# ---------------------------------------------------------------- how a batch splits

@dataclasses.dataclass(frozen=True)
class Ragged:
    """A 1-D argument holding the batch's variable-length items back to back (CTC's
    concatenated targets); their lengths are the argument named ``lengths``. A 2-D
    (padded) value of the same argument runs along axis 0 instead."""

    lengths: str


# ---------------------------------------------------------------- valid ranges

@dataclasses.dataclass(frozen=True)
class Interval:
    """A real option's valid range, as scikit-learn's ``link.Interval``: ``low``/``high``
    with open or closed ends (a closed infinite end admits that infinity), and whether
    NaN is admitted. It validates the option (:func:`fastloss._core.validation.check_option`)
    and the tests draw values on and beyond its edges from it."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = True
    high_open: bool = True
    nan: bool = False

    def __contains__(self, value):
        if value != value:
            return self.nan
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return bool(above and below)

    def __str__(self):
        if self == REAL:
            return "finite"
        if self.high == math.inf and self.high_open:
            return f"{'>' if self.low_open else '>='} {self.low:g} and finite"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


REAL = Interval()  # the default: any finite real
EXTENDED = Interval(low_open=False, high_open=False, nan=True)  # torch computes with any value, NaN and inf too
NONNEGATIVE = Interval(0.0, low_open=False)
POSITIVE = Interval(0.0)
PROBABILITY = Interval(0.0, 1.0, low_open=False, high_open=False)
TRIPLET_MARGIN = Interval(0.0, high_open=False, nan=True)  # torch's one check is margin > 0 (NaN passes it)


# ---------------------------------------------------------------- example calls

def _normal(rng, *shape):
    return rng.standard_normal(shape)


def _offset(rng, shape):
    """Differences kept at least 0.2 away from 0 (L1's and the hinges' kinks), either sign."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.2, 1.0, shape)


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _class_weight(rng):
    return rng.uniform(0.3, 1.5, 3)


def _log_softmax(z):
    shifted = z - z.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


X, T = (4, 3), (4,)  # (batch, classes) and the batch of class targets in every example


def _ctc_example(rng):
    log_probs = _log_softmax(_normal(rng, 6, 3, 4))
    return [log_probs, rng.integers(1, 4, (3, 2)), np.array([6, 5, 6]), np.array([2, 1, 2])], {}


# ---------------------------------------------------------------- the entries

@dataclasses.dataclass(frozen=True)
class Loss:
    """One loss of fastloss.

    ``example(rng)`` gives ``(args, options)``: a small valid float64 call (inputs are
    continuous random draws; differences whose kink the loss takes are drawn away from
    it); ``variants`` are further ``(args, options)`` makers that reach the loss's other
    kernels (warm-up compiles them all). ``weights(rng)`` gives its float array options
    (class weights, ``pos_weight``), for tests that put hostile values in them.
    ``reference`` names the torch function the tests take as the truth:
    ``torch.nn.functional.<name>`` by default, or a composition in the tests'
    ``references`` module. ``domains`` gives the valid range of its real options, finite
    reals (:data:`REAL`) where it says nothing. ``reductions`` are the values its
    ``reduction`` takes; ``decomposable`` is False for a loss whose value over a batch is
    not a combination of its values over parts of the batch.
    """

    name: str
    family: str
    criterion: str
    example: Callable
    grads: tuple = ()
    axes: dict = dataclasses.field(default_factory=dict)
    reductions: tuple = ("none", "sum", "mean")
    decomposable: bool = True
    backends: tuple = ("numba",)
    variants: tuple = ()
    weights: Callable | None = None
    reference: str | None = None
    domains: dict = dataclasses.field(default_factory=dict)

    def call(self, rng, dtype=np.float64, make=None):
        """``(args, options)`` of the example call (or of ``make``, one of its variants),
        its float arrays in ``dtype`` and its integer arrays as they are."""
        args, options = (make or self.example)(rng)
        return [a.astype(dtype) if a.dtype.kind == "f" else a for a in map(np.asarray, args)], options

    @property
    def function(self) -> Callable[..., Any]:
        """The NumPy loss function, ``fastloss.<family>.<name>``."""
        return getattr(importlib.import_module(f"fastloss.{self.family}"), self.name)

    @property
    def data(self) -> tuple:
        """The data arguments (those without a default), in order."""
        import inspect

        return tuple(n for n, p in inspect.signature(self.function).parameters.items()
                     if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    @property
    def differentiable(self) -> tuple:
        """The arguments the gradient tuple follows (and :mod:`fastloss.torch` differentiates)."""
        return self.grads or self.data[:1]



class Table:
    """The entries by name, in the order of :data:`LOSSES`' list."""

    def __init__(self, entries):
        self.entries = {entry.name: entry for entry in entries}

    def __getitem__(self, name) -> Loss:
        return self.entries[name]

    def __contains__(self, name):
        return name in self.entries

    def __iter__(self) -> Iterator[Loss]:
        return iter(self.entries.values())

    def names(self):
        return list(self.entries)

    def of_family(self, family):
        return [entry for entry in self if entry.family == family]

    def on_backend(self, backend):
        """The losses with kernels on ``backend``."""
        return tuple(entry.name for entry in self if backend in entry.backends)

    def export(self, module_name, namespace):
        """Wrap every loss function of family module ``module_name`` in its ``namespace`` so
        that it takes the arrays of other libraries (:func:`fastloss._core.interop.interop`),
        and make its criterion class there; return their names and the losses', for the
        module's ``__all__``."""
        from .criterion import criterion
        from .interop import interop

        names = []
        for entry in self.of_family(module_name.rsplit(".", 1)[-1]):
            function = namespace[entry.name] = interop(namespace[entry.name])
            keywords = tuple(name for name in entry.differentiable if name not in entry.data)
            namespace[entry.criterion] = criterion(entry.criterion, function, len(entry.data), keywords)
            names += [entry.name, entry.criterion]
        return names


_BOTH = ("numba", "cython")

LOSSES = Table([
    # classification
    Loss("cross_entropy", "classification", "CrossEntropyLoss", lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
         backends=_BOTH,
         variants=(lambda r: ([_normal(r, *X), r.dirichlet(np.ones(3), 4)], {}),), weights=lambda r: {"weight": _class_weight(r)},
         domains={"label_smoothing": PROBABILITY}),
    Loss("linear_cross_entropy", "classification", "LinearCrossEntropyLoss",
         lambda r: ([_normal(r, 4, 2), _normal(r, 3, 2), r.integers(0, 3, T)], {}),
         grads=("input", "linear_weight", "linear_bias"), axes={"linear_weight": None},
         backends=_BOTH,
         variants=(lambda r: ([_normal(r, 4, 2), _normal(r, 3, 2), r.dirichlet(np.ones(3), 4)],
                              {"linear_bias": _normal(r, 3)}),),
         weights=lambda r: {"weight": _class_weight(r)}, domains={"label_smoothing": PROBABILITY}),
    Loss("nll_loss", "classification", "NLLLoss", lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
         backends=_BOTH,
         weights=lambda r: {"weight": _class_weight(r)}),
    Loss("binary_cross_entropy", "classification", "BCELoss", lambda r: ([r.uniform(0.1, 0.9, X), r.random(X)], {}),
         backends=_BOTH, weights=lambda r: {"weight": r.uniform(0.3, 1.5, X)}),
    Loss("binary_cross_entropy_with_logits", "classification", "BCEWithLogitsLoss",
         lambda r: ([_normal(r, *X), r.random(X)], {}), backends=_BOTH,
         variants=(lambda r: ([_normal(r, *X), r.random(X)], {"pos_weight": _class_weight(r)}),),
         weights=lambda r: {"weight": r.uniform(0.3, 1.5, X), "pos_weight": _class_weight(r)}),
    Loss("kl_div", "classification", "KLDivLoss", lambda r: ([_normal(r, *X), r.uniform(0.1, 1.0, X)], {}),
         reductions=("none", "sum", "mean", "batchmean"), backends=_BOTH),
    Loss("focal_loss", "classification", "FocalLoss", lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
         backends=_BOTH, weights=lambda r: {"alpha": _class_weight(r)}, reference="references.torch_focal",
         domains={"gamma": NONNEGATIVE}),
    Loss("sigmoid_focal_loss", "classification", "SigmoidFocalLoss",
         lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {}), backends=_BOTH,
         reference="references.torchvision_sigmoid_focal_loss", domains={"gamma": NONNEGATIVE}),
    # regression
    Loss("l1_loss", "regression", "L1Loss", lambda r: ([x := _normal(r, *X), x + _offset(r, X)], {}),
         backends=_BOTH),
    Loss("mse_loss", "regression", "MSELoss", lambda r: ([_normal(r, *X), _normal(r, *X)], {}), backends=_BOTH),
    Loss("smooth_l1_loss", "regression", "SmoothL1Loss",
         lambda r: ([x := _normal(r, *X), x + 2 * _offset(r, X)], {}), backends=_BOTH,
         domains={"beta": NONNEGATIVE}),
    Loss("huber_loss", "regression", "HuberLoss", lambda r: ([x := _normal(r, *X), x + 2 * _offset(r, X)], {}),
         backends=_BOTH, domains={"delta": POSITIVE}),
    Loss("poisson_nll_loss", "regression", "PoissonNLLLoss",
         lambda r: ([_normal(r, *X), r.poisson(2.0, X).astype(float)], {}), backends=_BOTH,
         variants=(lambda r: ([r.uniform(0.5, 2.0, X), r.poisson(2.0, X).astype(float)],
                              {"log_input": False, "full": True}),), domains={"eps": NONNEGATIVE}),
    Loss("gaussian_nll_loss", "regression", "GaussianNLLLoss",
         lambda r: ([_normal(r, *X), _normal(r, *X), r.uniform(0.5, 1.5, X)], {}), grads=("input", "var"),
         backends=_BOTH, domains={"eps": NONNEGATIVE}),
    # margin
    Loss("margin_ranking_loss", "margin", "MarginRankingLoss",
         lambda r: ([x := _normal(r, 5), x + _offset(r, 5), _signs(r, 5)], {}), grads=("input1", "input2")),
    Loss("hinge_embedding_loss", "margin", "HingeEmbeddingLoss", lambda r: ([1.0 + _offset(r, X), _signs(r, X)], {})),
    Loss("soft_margin_loss", "margin", "SoftMarginLoss", lambda r: ([_normal(r, *X), _signs(r, X)], {})),
    Loss("multilabel_soft_margin_loss", "margin", "MultiLabelSoftMarginLoss",
         lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {}),
         weights=lambda r: {"weight": _class_weight(r)}),
    Loss("multi_margin_loss", "margin", "MultiMarginLoss", lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
         weights=lambda r: {"weight": _class_weight(r)}),
    Loss("multilabel_margin_loss", "margin", "MultiLabelMarginLoss",
         lambda r: ([_normal(r, *X), np.array([[0, -1, 1], [2, 1, -1], [1, 0, 2], [-1, 0, 0]])], {})),
    Loss("hinge_loss", "margin", "HingeLoss", lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
         variants=(lambda r: ([_normal(r, 4), _signs(r, 4)], {}),), reference="references.hinge_torch"),
    # embedding
    Loss("cosine_embedding_loss", "embedding", "CosineEmbeddingLoss",
         lambda r: ([_normal(r, *X), _normal(r, *X), _signs(r, T)], {}), grads=("input1", "input2"), domains={"margin": EXTENDED}),
    Loss("triplet_margin_loss", "embedding", "TripletMarginLoss",
         lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {}), grads=("anchor", "positive", "negative"),
         domains={"margin": TRIPLET_MARGIN, "p": EXTENDED, "eps": EXTENDED}),
    Loss("triplet_margin_with_distance_loss", "embedding", "TripletMarginWithDistanceLoss",
         lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {}), grads=("anchor", "positive", "negative"),
         variants=(lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {"distance_function": "cosine"}),),
         domains={"margin": TRIPLET_MARGIN}),
    Loss("contrastive_loss", "embedding", "ContrastiveLoss",
         lambda r: ([_normal(r, *X), _normal(r, *X), r.integers(0, 2, T)], {}), grads=("input1", "input2"),
         reference="references.contrastive_torch"),
    # extras
    Loss("large_margin_cosine_loss", "extras", "LargeMarginCosineLoss",
         lambda r: ([_normal(r, *X), _normal(r, 5, 3), r.integers(0, 5, T)], {"s": 8.0}), axes={"weight": None},
         grads=("features", "weight"), reference="references.cosface_torch", domains={"s": POSITIVE}),
    Loss("anchor_loss", "extras", "AnchorLoss", lambda r: ([2 * _normal(r, *X), r.integers(0, 3, T)], {}),
         reference="references.anchor_torch", domains={"gamma": NONNEGATIVE}),
    Loss("dice_loss", "extras", "DiceLoss", lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {}),
         decomposable=False, variants=(lambda r: ([_normal(r, 4, 3, 2), r.integers(0, 3, (4, 2))], {}),),
         reference="references.dice_torch", domains={"smooth": NONNEGATIVE}),
    # triplet mining
    Loss("batch_triplet_loss", "triplet", "BatchTripletLoss",
         lambda r: ([_normal(r, 6, 3), np.array([0, 0, 1, 1, 2, 2])], {}), reductions=("mean", "mean_nonzero", "sum"),
         decomposable=False, variants=tuple(
             (lambda r, s=s: ([_normal(r, 6, 3), np.array([0, 0, 1, 1, 2, 2])], {"strategy": s}))
             for s in ("batch_all", "semi_hard")), reference="references.batch_triplet_torch", domains={"margin": NONNEGATIVE}),
    # sequences
    Loss("ctc_loss", "ctc", "CTCLoss", _ctc_example,
         variants=(lambda r: ([_normal(r, 6, 3, 4), *_ctc_example(r)[0][1:]], {"from_logits": True}),), axes={"log_probs": 1, "targets": Ragged("target_lengths")}),
])
