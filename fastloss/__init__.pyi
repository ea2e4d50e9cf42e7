# Generated from the table of losses (fastloss/_core/table.py) by `python -m fastloss._core.stubs`: do not edit.
# `python -m fastloss._core.stubs --check` tells whether it is current.
from typing import Any, Literal, overload

from numpy.typing import NDArray

from . import classification as classification
from . import ctc as ctc
from . import embedding as embedding
from . import extras as extras
from . import margin as margin
from . import regression as regression
from . import triplet as triplet
from ._core.criterion import Criterion
from ._core.cuda import set_device_checks as set_device_checks
from ._core.threads import get_num_threads as get_num_threads
from ._core.threads import num_threads as num_threads
from ._core.threads import set_num_threads as set_num_threads
from ._core.warmup import warmup as warmup
from ._typing import ArrayLike, Backend, FloatArray, Grad2, Grad3, Loss, Metric, Reduction, WithGrad
from .ctc import ctc_forced_align as ctc_forced_align
from .diagnose import diagnose_training as diagnose_training
from .triplet import mine_triplets as mine_triplets
from .triplet import pairwise_distances as pairwise_distances

__version__: str

__all__ = ["AnchorLoss", "BCELoss", "BCEWithLogitsLoss", "BatchTripletLoss", "CTCLoss", "ContrastiveLoss",
           "CosineEmbeddingLoss", "CrossEntropyLoss", "DiceLoss", "FocalLoss", "GaussianNLLLoss", "HingeEmbeddingLoss",
           "HingeLoss", "HuberLoss", "KLDivLoss", "L1Loss", "LargeMarginCosineLoss", "LinearCrossEntropyLoss",
           "MSELoss", "MarginRankingLoss", "MultiLabelMarginLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss",
           "NLLLoss", "PoissonNLLLoss", "SigmoidFocalLoss", "SmoothL1Loss", "SoftMarginLoss", "TripletMarginLoss",
           "TripletMarginWithDistanceLoss", "anchor_loss", "batch_triplet_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "contrastive_loss", "cosine_embedding_loss", "cross_entropy",
           "ctc_forced_align", "ctc_loss", "diagnose_training", "dice_loss", "focal_loss", "gaussian_nll_loss",
           "get_num_threads", "hinge_embedding_loss", "hinge_loss", "huber_loss", "kl_div", "l1_loss",
           "large_margin_cosine_loss", "linear_cross_entropy", "margin_ranking_loss", "mine_triplets", "mse_loss",
           "multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss", "nll_loss", "num_threads",
           "pairwise_distances", "poisson_nll_loss", "set_device_checks", "set_num_threads", "sigmoid_focal_loss",
           "smooth_l1_loss", "soft_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss", "warmup"]


@overload
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                         reduction: Reduction = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                         reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                         reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ...,
                         backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class BCELoss(Criterion):
    def __init__(self, weight: ArrayLike | None = ..., *, reduction: Reduction = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                                     reduction: Reduction = ..., pos_weight: ArrayLike | None = ...,
                                     grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                                     reduction: Reduction = ..., pos_weight: ArrayLike | None = ...,
                                     grad: Literal[True], grad_output: ArrayLike | None = ...,
                                     grad_out: NDArray[Any] | None = ...,
                                     backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                                     reduction: Reduction = ..., pos_weight: ArrayLike | None = ..., grad: bool,
                                     grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                                     backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class BCEWithLogitsLoss(Criterion):
    def __init__(self, weight: ArrayLike | None = ..., *, reduction: Reduction = ...,
                 pos_weight: ArrayLike | None = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *, ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ..., grad: Literal[False] = ...,
                  grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                  backend: Backend = ...) -> Loss: ...

@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *, ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ..., grad: Literal[True],
                  grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                  backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *, ignore_index: int = ...,
                  reduction: Reduction = ..., label_smoothing: float = ..., grad: bool,
                  grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                  backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class CrossEntropyLoss(Criterion):
    def __init__(self, weight: ArrayLike | None = ..., *, ignore_index: int = ..., reduction: Reduction = ...,
                 label_smoothing: float = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = ..., gamma: float = ...,
               ignore_index: int = ..., reduction: Reduction = ..., *, grad: Literal[False] = ...,
               grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
               backend: Backend = ...) -> Loss: ...

@overload
def focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = ..., gamma: float = ...,
               ignore_index: int = ..., reduction: Reduction = ..., *, grad: Literal[True],
               grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
               backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = ..., gamma: float = ...,
               ignore_index: int = ..., reduction: Reduction = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
               grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class FocalLoss(Criterion):
    def __init__(self, alpha: ArrayLike | None = ..., gamma: float = ..., ignore_index: int = ...,
                 reduction: Reduction = ..., *, backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def kl_div(input: ArrayLike, target: ArrayLike, *, reduction: Literal['mean', 'sum', 'none', 'batchmean'] = ...,
           log_target: bool = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
           grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def kl_div(input: ArrayLike, target: ArrayLike, *, reduction: Literal['mean', 'sum', 'none', 'batchmean'] = ...,
           log_target: bool = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
           grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def kl_div(input: ArrayLike, target: ArrayLike, *, reduction: Literal['mean', 'sum', 'none', 'batchmean'] = ...,
           log_target: bool = ..., grad: bool, grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
           backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class KLDivLoss(Criterion):
    def __init__(self, *, reduction: Literal['mean', 'sum', 'none', 'batchmean'] = ..., log_target: bool = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: Reduction = ..., ignore_index: int | None = ..., label_smoothing: float = ...,
                         chunk_size: int | None = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: Reduction = ..., ignore_index: int | None = ..., label_smoothing: float = ...,
                         chunk_size: int | None = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2 | Grad3]: ...

@overload
def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: Reduction = ..., ignore_index: int | None = ..., label_smoothing: float = ...,
                         chunk_size: int | None = ..., grad: bool, grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ...,
                         backend: Backend = ...) -> Loss | WithGrad[Grad2 | Grad3]: ...

class LinearCrossEntropyLoss(Criterion):
    def __init__(self, *, weight: ArrayLike | None = ..., reduction: Reduction = ..., ignore_index: int | None = ...,
                 label_smoothing: float = ..., chunk_size: int | None = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any, linear_bias: ArrayLike | None = ...) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...,
                       linear_bias: ArrayLike | None = ...) -> WithGrad[Grad2 | Grad3]: ...


@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *, ignore_index: int = ...,
             reduction: Reduction = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *, ignore_index: int = ...,
             reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *, ignore_index: int = ...,
             reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class NLLLoss(Criterion):
    def __init__(self, weight: ArrayLike | None = ..., *, ignore_index: int = ..., reduction: Reduction = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: Reduction = ..., *, grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                       grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: Reduction = ..., *, grad: Literal[True], grad_output: ArrayLike | None = ...,
                       grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: Reduction = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
                       grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class SigmoidFocalLoss(Criterion):
    def __init__(self, alpha: float = ..., gamma: float = ..., reduction: Reduction = ..., *,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *, from_logits: bool = ...,
             batch_first: bool = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *, from_logits: bool = ...,
             batch_first: bool = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *, from_logits: bool = ...,
             batch_first: bool = ..., grad: bool, grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class CTCLoss(Criterion):
    def __init__(self, blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *,
                 from_logits: bool = ..., batch_first: bool = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                     reduction: Reduction = ..., *, grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                     reduction: Reduction = ..., *, grad: Literal[True], grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...

@overload
def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                     reduction: Reduction = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...

class ContrastiveLoss(Criterion):
    def __init__(self, margin: float = ..., reduction: Reduction = ..., *, backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad2]: ...


@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                          reduction: Reduction = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                          grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                          reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                          grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...

@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                          reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
                          grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...

class CosineEmbeddingLoss(Criterion):
    def __init__(self, margin: float = ..., *, reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad2]: ...


@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., *, reduction: Reduction = ...,
                        grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                        grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., *, reduction: Reduction = ...,
                        grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                        backend: Backend = ...) -> WithGrad[Grad3]: ...

@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., *, reduction: Reduction = ..., grad: bool,
                        grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                        backend: Backend = ...) -> Loss | WithGrad[Grad3]: ...

class TripletMarginLoss(Criterion):
    def __init__(self, margin: float = ..., p: float = ..., eps: float = ..., swap: bool = ..., *,
                 reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad3]: ...


@overload
def triplet_margin_with_distance_loss(anchor: Any, positive: Any, negative: Any, *, distance_function: Any = ...,
                                      margin: Any = ..., swap: Any = ..., reduction: Any = ...,
                                      grad: Literal[False] = ..., grad_output: Any = ..., grad_out: Any = ...,
                                      backend: Any = ...) -> Loss: ...

@overload
def triplet_margin_with_distance_loss(anchor: Any, positive: Any, negative: Any, *, distance_function: Any = ...,
                                      margin: Any = ..., swap: Any = ..., reduction: Any = ..., grad: Literal[True],
                                      grad_output: Any = ..., grad_out: Any = ...,
                                      backend: Any = ...) -> WithGrad[Grad3]: ...

@overload
def triplet_margin_with_distance_loss(anchor: Any, positive: Any, negative: Any, *, distance_function: Any = ...,
                                      margin: Any = ..., swap: Any = ..., reduction: Any = ..., grad: bool,
                                      grad_output: Any = ..., grad_out: Any = ...,
                                      backend: Any = ...) -> Loss | WithGrad[Grad3]: ...

class TripletMarginWithDistanceLoss(Criterion):
    def __init__(self, *, distance_function: Any = ..., margin: Any = ..., swap: Any = ..., reduction: Any = ...,
                 backend: Any = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad3]: ...


@overload
def anchor_loss(input: ArrayLike, target: ArrayLike, gamma: float = ..., slack: float = ..., reduction: Reduction = ...,
                *, anchor: Literal['neg', 'pos'] = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def anchor_loss(input: ArrayLike, target: ArrayLike, gamma: float = ..., slack: float = ..., reduction: Reduction = ...,
                *, anchor: Literal['neg', 'pos'] = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def anchor_loss(input: ArrayLike, target: ArrayLike, gamma: float = ..., slack: float = ..., reduction: Reduction = ...,
                *, anchor: Literal['neg', 'pos'] = ..., grad: bool, grad_output: ArrayLike | None = ...,
                grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class AnchorLoss(Criterion):
    def __init__(self, gamma: float = ..., slack: float = ..., reduction: Reduction = ..., *,
                 anchor: Literal['neg', 'pos'] = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def dice_loss(input: ArrayLike, target: ArrayLike, smooth: float = ..., *, reduction: Reduction = ...,
              grad: Literal[False] = ..., grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
              backend: Backend = ...) -> Loss: ...

@overload
def dice_loss(input: ArrayLike, target: ArrayLike, smooth: float = ..., *, reduction: Reduction = ...,
              grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
              backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def dice_loss(input: ArrayLike, target: ArrayLike, smooth: float = ..., *, reduction: Reduction = ..., grad: bool,
              grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
              backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class DiceLoss(Criterion):
    def __init__(self, smooth: float = ..., *, reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def large_margin_cosine_loss(features: ArrayLike, weight: ArrayLike, target: ArrayLike, s: float = ..., m: float = ...,
                             reduction: Reduction = ..., *, grad: Literal[False] = ...,
                             grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                             backend: Backend = ...) -> Loss: ...

@overload
def large_margin_cosine_loss(features: ArrayLike, weight: ArrayLike, target: ArrayLike, s: float = ..., m: float = ...,
                             reduction: Reduction = ..., *, grad: Literal[True], grad_output: ArrayLike | None = ...,
                             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...

@overload
def large_margin_cosine_loss(features: ArrayLike, weight: ArrayLike, target: ArrayLike, s: float = ..., m: float = ...,
                             reduction: Reduction = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
                             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...

class LargeMarginCosineLoss(Criterion):
    def __init__(self, s: float = ..., m: float = ..., reduction: Reduction = ..., *,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad2]: ...


@overload
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., *, reduction: Reduction = ...,
                         grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                         grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., *, reduction: Reduction = ...,
                         grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                         backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., *, reduction: Reduction = ...,
                         grad: bool, grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                         backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class HingeEmbeddingLoss(Criterion):
    def __init__(self, margin: float = ..., *, reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., reduction: Reduction = ..., *,
               grad: Literal[False] = ..., grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
               backend: Backend = ...) -> Loss: ...

@overload
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., reduction: Reduction = ..., *,
               grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
               backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., reduction: Reduction = ..., *, grad: bool,
               grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
               backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class HingeLoss(Criterion):
    def __init__(self, margin: float = ..., reduction: Reduction = ..., *, backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                        reduction: Reduction = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                        grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                        reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                        grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...

@overload
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                        reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
                        grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...

class MarginRankingLoss(Criterion):
    def __init__(self, margin: float = ..., *, reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad2]: ...


@overload
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: Literal[1, 2] = ..., margin: float = ...,
                      weight: ArrayLike | None = ..., *, reduction: Reduction = ..., grad: Literal[False] = ...,
                      grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                      backend: Backend = ...) -> Loss: ...

@overload
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: Literal[1, 2] = ..., margin: float = ...,
                      weight: ArrayLike | None = ..., *, reduction: Reduction = ..., grad: Literal[True],
                      grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                      backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: Literal[1, 2] = ..., margin: float = ...,
                      weight: ArrayLike | None = ..., *, reduction: Reduction = ..., grad: bool,
                      grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                      backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class MultiMarginLoss(Criterion):
    def __init__(self, p: Literal[1, 2] = ..., margin: float = ..., weight: ArrayLike | None = ..., *,
                 reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def multilabel_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ...,
                           grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                           grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def multilabel_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., grad: Literal[True],
                           grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                           backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def multilabel_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., grad: bool,
                           grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                           backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class MultiLabelMarginLoss(Criterion):
    def __init__(self, *, reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def multilabel_soft_margin_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                                reduction: Reduction = ..., grad: Literal[False] = ...,
                                grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                                backend: Backend = ...) -> Loss: ...

@overload
def multilabel_soft_margin_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                                reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                                grad_out: NDArray[Any] | None = ...,
                                backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def multilabel_soft_margin_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ..., *,
                                reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
                                grad_out: NDArray[Any] | None = ...,
                                backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class MultiLabelSoftMarginLoss(Criterion):
    def __init__(self, weight: ArrayLike | None = ..., *, reduction: Reduction = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def soft_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., grad: Literal[False] = ...,
                     grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                     backend: Backend = ...) -> Loss: ...

@overload
def soft_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., grad: Literal[True],
                     grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                     backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def soft_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., grad: bool,
                     grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                     backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class SoftMarginLoss(Criterion):
    def __init__(self, *, reduction: Reduction = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = ..., eps: float = ...,
                      reduction: Reduction = ..., *, grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                      grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = ..., eps: float = ...,
                      reduction: Reduction = ..., *, grad: Literal[True], grad_output: ArrayLike | None = ...,
                      grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...

@overload
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = ..., eps: float = ...,
                      reduction: Reduction = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
                      grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...

class GaussianNLLLoss(Criterion):
    def __init__(self, full: bool = ..., eps: float = ..., reduction: Reduction = ..., *,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[Grad2]: ...


@overload
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: Reduction = ..., delta: float = ...,
               weight: ArrayLike | None = ..., *, grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
               grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: Reduction = ..., delta: float = ...,
               weight: ArrayLike | None = ..., *, grad: Literal[True], grad_output: ArrayLike | None = ...,
               grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: Reduction = ..., delta: float = ...,
               weight: ArrayLike | None = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
               grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class HuberLoss(Criterion):
    def __init__(self, reduction: Reduction = ..., delta: float = ..., weight: ArrayLike | None = ..., *,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
            grad: Literal[False] = ..., grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
            backend: Backend = ...) -> Loss: ...

@overload
def l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
            grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
            backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
            grad: bool, grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
            backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class L1Loss(Criterion):
    def __init__(self, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def mse_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
             grad: Literal[False] = ..., grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
             backend: Backend = ...) -> Loss: ...

@overload
def mse_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
             grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
             backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def mse_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
             grad: bool, grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
             backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class MSELoss(Criterion):
    def __init__(self, *, reduction: Reduction = ..., weight: ArrayLike | None = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = ..., full: bool = ..., *, eps: float = ...,
                     reduction: Reduction = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...

@overload
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = ..., full: bool = ..., *, eps: float = ...,
                     reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = ..., full: bool = ..., *, eps: float = ...,
                     reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class PoissonNLLLoss(Criterion):
    def __init__(self, log_input: bool = ..., full: bool = ..., *, eps: float = ..., reduction: Reduction = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., beta: float = ...,
                   grad: Literal[False] = ..., grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                   backend: Backend = ...) -> Loss: ...

@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., beta: float = ...,
                   grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                   backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = ..., beta: float = ..., grad: bool,
                   grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                   backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class SmoothL1Loss(Criterion):
    def __init__(self, *, reduction: Reduction = ..., beta: float = ..., backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...


@overload
def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal['batch_hard', 'batch_all', 'semi_hard'] = ..., margin: float = ...,
                       metric: Metric = ..., soft_margin: bool = ...,
                       reduction: Literal['mean', 'mean_nonzero', 'sum'] = ..., grad: Literal[False] = ...,
                       grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                       backend: Backend = ...) -> Loss: ...

@overload
def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal['batch_hard', 'batch_all', 'semi_hard'] = ..., margin: float = ...,
                       metric: Metric = ..., soft_margin: bool = ...,
                       reduction: Literal['mean', 'mean_nonzero', 'sum'] = ..., grad: Literal[True],
                       grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                       backend: Backend = ...) -> WithGrad[FloatArray]: ...

@overload
def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal['batch_hard', 'batch_all', 'semi_hard'] = ..., margin: float = ...,
                       metric: Metric = ..., soft_margin: bool = ...,
                       reduction: Literal['mean', 'mean_nonzero', 'sum'] = ..., grad: bool,
                       grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                       backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...

class BatchTripletLoss(Criterion):
    def __init__(self, *, strategy: Literal['batch_hard', 'batch_all', 'semi_hard'] = ..., margin: float = ...,
                 metric: Metric = ..., soft_margin: bool = ..., reduction: Literal['mean', 'mean_nonzero', 'sum'] = ...,
                 backend: Backend = ...) -> None: ...
    def __call__(self, *inputs: Any) -> Loss: ...
    def value_and_grad(self, *inputs: Any, grad_output: Any = ..., grad_out: Any = ...) -> WithGrad[FloatArray]: ...
